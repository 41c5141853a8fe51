"""What every portal module shares: the area, the customer logged in, and the page renderer.

Portal pages are declared with ``AREA.portal(path, access=...)`` (admin/web.py) and live under
``/portal``; the portal's configuration pages for staff (brands, accounts) with ``AREA.page`` under
``/admin/portal``. A customer page reads who is logged in with :func:`customer` and scopes every
query by ``customer_id``: a row of another customer is 404, never 403 (nothing tells it exists).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from admin.web import Area

AREA = Area("portal", "Portal", order=85, nav=[("Portal brands", "/portal/brands", "config.view")])
"""Staff's portal pages join the menu (Config permissions); the customer pages have their own."""


@dataclass(frozen=True, slots=True)
class Customer:
    """The customer a portal session belongs to (admin/portal/auth.py sets it on the request)."""

    customer_id: int
    partner_id: int
    name: str
    csrf_token: str
    impersonator_id: int | None = None  # an administrator's "log in as": who is looking
    impersonator_name: str = ""


CUSTOMER = web.RequestKey("portal_customer", Customer)


def customer(request: web.Request) -> Customer:
    """The customer logged in (only on pages declared PORTAL_CUSTOMER: the middleware set it)."""
    return request[CUSTOMER]
