"""The finance area's :class:`~admin.web.Area`, which its modules declare their routes on."""

from __future__ import annotations

from admin.web import Area

AREA = Area("finance", "Finance", nav=[
    ("Transactions", "/finance/transactions", "finance.view"),
    ("Invoices", "/finance/invoices", "finance.view"),
    ("Proforma invoices", "/finance/proformas", "finance.view"),
    ("Credit notes", "/finance/credit-notes", "finance.view"),
    ("Receipts", "/finance/receipts", "finance.view"),
    ("Payments", "/finance/payments", "payments.view"),
    ("Direct debit", "/finance/direct-debit", "finance.view"),
    ("Bank statements", "/finance/bank-statements", "finance.view"),
    ("Payment gateways", "/finance/gateways", "finance.view"),
    ("Billing runs", "/finance/billing-runs", "finance.view"),
    ("Reports", "/finance/reports", "finance.view"),
    ("Billing settings", "/finance/settings", "finance.view"),
], order=30)
