"""What the partner pages share: the area. Partners are managed under the Administration
permissions; their commissions, statements and payouts under Finance's."""

from __future__ import annotations

from admin.web import Area

AREA = Area("partners", "Partners", order=80, nav=[
    ("Partners", "/partners", "administration.view"),
    ("Commissions", "/partners/commissions", "finance.view"),
])
