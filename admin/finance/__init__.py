"""Finance: the ledger's transactions, documents (invoices, proforma invoices, credit notes,
receipts), billing runs, a customer's billing tab, reports and billing's settings."""
