"""The shape every area shares: routes that declare their permission, pages and API operations.

An area (``admin/<area>/routes.py``) makes one :class:`Area` named ``AREA`` and declares its
handlers on it::

    AREA = Area("tariffs", "Tariff plans", nav=[("Tariffs", "/tariffs", "tariffs.view")])

    @AREA.page("/tariffs", permission="tariffs.view")
    async def tariffs(request: web.Request) -> web.StreamResponse: ...

    @AREA.api("GET", "/tariffs", permission="tariffs.view", summary="List tariffs",
              query=TariffQuery, response=Page[Tariff])
    async def list_tariffs(request: web.Request) -> web.StreamResponse: ...

A page lives under ``/admin``, an operation under ``/api/v1`` and goes into the OpenAPI document
with its schemas (admin/openapi.py). The auth middleware (admin/auth/middleware.py) refuses a
request whose handler declared nothing, so a route cannot be left open by forgetting.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC = "public"
"""No login needed: the login pages, the API's document."""
LOGGED_IN = "logged-in"
"""Any administrator logged in (its own profile, logging out)."""
SECOND_FACTOR = "second-factor"
"""A login waiting for its second factor (the code page)."""
SIGNED = "signed"
"""No login, no CSRF token: the request proves itself by a signature its handler checks (a payment
gateway's webhook, at ``/hooks/...``: Area.hook)."""

PORTAL_PUBLIC = "portal-public"
"""A customer portal page anyone may open: its login, the password reset, the brand's manifest."""
PORTAL_SECOND_FACTOR = "portal-second-factor"
"""A portal login waiting for the customer's second factor (the code page)."""
PORTAL_CUSTOMER = "portal-customer"
"""A portal page of the customer logged in (admin/portal/common.py ``customer(request)``): every
query it makes is scoped by that customer, so another customer's id answers 404."""
PORTAL = frozenset({PORTAL_PUBLIC, PORTAL_SECOND_FACTOR, PORTAL_CUSTOMER})

PERMISSIONS: dict[Handler, str] = {}
"""Every declared handler -> its permission (a permission name, or PUBLIC, LOGGED_IN, SECOND_FACTOR)."""


@dataclass(frozen=True, slots=True)
class Operation:
    """An API operation, as the OpenAPI document describes it."""

    method: str
    path: str
    summary: str
    permission: str
    tag: str
    query: type | None = None
    body: type | None = None
    response: Any = None
    status: int = 200
    description: str = ""


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    path: str
    permission: str


@dataclass
class Area:
    name: str
    title: str
    nav: list[tuple[str, str, str]] = field(default_factory=list)
    order: int = 50
    routes: list[tuple[str, str, Handler]] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)
    #: run when the application starts (it may set the area's state on the application then)
    startup: list[Callable[[web.Application], Awaitable[None]]] = field(default_factory=list)
    #: run when the application stops (what its startup opened, closed)
    cleanup: list[Callable[[web.Application], Awaitable[None]]] = field(default_factory=list)

    def page(self, path: str, *, permission: str, method: str = "GET") -> Callable[[Handler], Handler]:
        """A page (or a form's POST) at ``/admin<path>``."""
        def declare(handler: Handler) -> Handler:
            PERMISSIONS[handler] = permission
            self.routes.append((method, "/admin" + path, handler))
            return handler
        return declare

    def api(self, method: str, path: str, *, permission: str, summary: str, query: type | None = None,
            body: type | None = None, response: Any = None, status: int = 200,
            description: str = "") -> Callable[[Handler], Handler]:
        """An operation at ``/api/v1<path>`` (OpenAPI path syntax: ``/customers/{id}``)."""
        def declare(handler: Handler) -> Handler:
            PERMISSIONS[handler] = permission
            self.routes.append((method, "/api/v1" + path, handler))
            self.operations.append(Operation(method, path, summary, permission, self.title, query, body, response,
                                             status, description or (handler.__doc__ or "").strip()))
            return handler
        return declare

    def portal(self, path: str, *, access: str = PORTAL_CUSTOMER, method: str = "GET") -> Callable[[Handler], Handler]:
        """A customer portal page (or a form's POST) at ``/portal<path>``, behind the portal's own
        login (admin/portal/auth.py), never the admin's; ``access`` is one of :data:`PORTAL`."""
        assert access in PORTAL, access

        def declare(handler: Handler) -> Handler:
            PERMISSIONS[handler] = access
            self.routes.append((method, "/portal" + path, handler))
            return handler
        return declare

    def hook(self, path: str, *, method: str = "POST") -> Callable[[Handler], Handler]:
        """A webhook at ``/hooks<path>`` for a peer that signs what it sends (SIGNED): the handler
        checks the signature before anything else, and answers 400 when it does not hold."""
        def declare(handler: Handler) -> Handler:
            PERMISSIONS[handler] = SIGNED
            self.routes.append((method, "/hooks" + path, handler))
            return handler
        return declare

    @property
    def nav_items(self) -> list[NavItem]:
        return [NavItem(label, "/admin" + path, permission) for label, path, permission in self.nav]

    def register(self, app: web.Application) -> None:
        for method, path, handler in self.routes:
            app.router.add_route(method, path, handler)
        app.on_startup.extend(self.startup)
        app.on_cleanup.extend(self.cleanup)


_ID = re.compile(r"[0-9]{1,19}")


def parse_id(text: str) -> int | None:
    """``text`` as a row id (a bigint above 0, ASCII digits only: ``"¹".isdigit()`` is true), else None."""
    if not _ID.fullmatch(text) or not 0 < int(text) < 2**63:
        return None
    return int(text)


def path_id(request: web.Request, name: str = "id") -> int:
    """The id in the path (``/customers/{id}``); 404 when it is not one (a bigint above 0)."""
    found = parse_id(request.match_info[name])
    if found is None:
        raise web.HTTPNotFound()
    return found


def permission_of(request: web.Request) -> str | None:
    """What the matched route declared, or None (an undeclared route: refused)."""
    return PERMISSIONS.get(request.match_info.handler)
