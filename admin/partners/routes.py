"""The partners area (admin/app.py finds an area by its routes.py): its modules declare their
pages and operations on AREA when imported here."""

from __future__ import annotations

# commission_pages first: its /partners/commissions... paths would otherwise be taken by /partners/{id}
from admin.partners import commission_pages, partners  # noqa: F401
from admin.partners.common import AREA

__all__ = ["AREA"]
