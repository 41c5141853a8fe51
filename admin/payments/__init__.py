"""Payments: how money comes in (at the desk, online, by direct debit, by bank transfer) and is
recorded once (record.py), the customer's payment reference (reference.py), and the ways in:
bank statements, gateways, SEPA direct debit. The money itself moves in admin/billing/ledger.py."""
