"""Tariff plans: speeds, bursts, priority, contention, price; the list, the forms and the API."""
