"""Resellers (issue 18): partners with their details, sub-partners, modes and the tariffs they may
sell (partners.py), and percentage mode's commissions, statements and payouts (commissions.py)."""
