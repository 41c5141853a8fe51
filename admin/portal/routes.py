"""The customer portal (/portal) and its configuration pages for staff (/admin/portal). Declared
on the one :data:`AREA` (common.py); importing the modules declares them."""

from __future__ import annotations

from admin.portal import (  # noqa: F401  (importing a module declares its routes)
    accounts,
    brands,
    dashboard,
    equipment,
    finance,
    login,
    mandates,
    manifest,
    pay,
    plan,
    profile,
    services,
    support,
    usage,
)
from admin.portal.common import AREA

__all__ = ["AREA"]
