"""Billing's pure engines: money and rounding, taxes, billing periods and proration, allocation
of payments to debts, dunning dates, document numbers. No I/O (the layering test holds it):
the finance area and the worker call them with rows they read, and store what they return."""
