"""Billing documents as PDF: what they show (model), their templates in Jinja2's sandbox, WeasyPrint,
and the CSV exports for accounting software. No SQL: the finance area and the worker give it values."""
