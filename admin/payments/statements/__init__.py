"""Bank statements: the files a bank gives (CSV through a saved column mapping, ISO 20022
CAMT.053, SWIFT MT940) turned into statement lines (model.py, one parser a format), imported
once and matched to customers (importer.py, admin/payments/matching.py). The parsers are pure:
bytes in, lines out, or the whole file refused with one sentence naming where."""
