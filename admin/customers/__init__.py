"""Customers and their services: the lifecycle, contacts, custom fields, the search box."""
