"""Finance: transactions (transactions.py), documents and their actions (documents.py), billing
runs (runs.py), a customer's billing tab (customer.py), reports (reports.py) and billing's
settings (settings.py). Each module declares its pages and API operations on the one
:data:`AREA` (area.py); the money they move goes through admin/billing/ledger.py and run.py."""

from __future__ import annotations

from admin.finance import (
    branding,
    customer,
    direct_debit,
    doc_templates,
    documents,
    gateways,
    payment_types,
    payments,
    reports,
    runs,
    settings,
    statements,
    taxes,
    transactions,
)
from admin.finance.area import AREA

__all__ = ["AREA", "branding", "customer", "direct_debit", "doc_templates", "documents", "gateways", "payment_types",
           "payments", "reports", "runs", "settings", "statements", "taxes", "transactions"]
