"""The portal's side of the auth middleware (admin/auth/middleware.py sends every route declared
PORTAL_* here): the address list ``[admin] portal_allow_from`` (not the admin's ``allow_from``:
customers are on the internet), the brand of the host asked for, the customer's session (its own
cookie, sessions.py), the second factor, and CSRF.

The brand: the partner that claims the Host (portal_hosts), else the ISP's own (the first
partner). A session is only good on its customer's partner's portal: on another partner's host it
is ended, as if the customer had logged out (a customer never sees another brand's portal logged in).
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from admin import keys
from admin.auth import tokens
from admin.portal import brand_cache, sessions_store
from admin.portal.brand import Brand
from admin.portal.common import CUSTOMER, Customer
from admin.portal.sessions import COOKIE, LOGIN_COOKIE, del_cookie
from admin.web import PORTAL_CUSTOMER, PORTAL_PUBLIC, PORTAL_SECOND_FACTOR, Handler
from daemons import log

PARTNER = web.RequestKey("portal_partner_id", int)
"""``request[PARTNER]`` (or :func:`partner_id`): the partner whose portal this host is."""
BRAND = web.RequestKey("portal_brand", Brand)
SESSION = web.RequestKey("portal_session", bytes)
"""The digest of the customer's session token (to end it: logging out)."""
PENDING = web.RequestKey("portal_pending", Customer)
"""A session waiting for its second factor: its customer (not yet ``CUSTOMER``: no page of its own)."""
LOGIN_PATH = "/portal/login"
CODE_PATH = "/portal/login/code"
LOGOUT_PATH = "/portal/logout"
HOME = "/portal/"
TOUCH_EVERY_S = 60
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SESSIONLESS = ("/portal/static/", "/portal/brand.css", "/portal/logo.svg", "/portal/manifest.webmanifest")
"""Served the same to everyone (PORTAL_PUBLIC, GET only): the session is not looked up."""

_log = log.get("lastmile.portal")


def login_redirect(request: web.Request, reason: str = "") -> web.HTTPFound:
    target = request.path_qs if request.method == "GET" else HOME
    suffix = f"&{reason}=1" if reason else ""
    return web.HTTPFound(f"{LOGIN_PATH}?next={quote(target)}{suffix}")


def brand(request: web.Request) -> Brand:
    """The brand of the portal asked for (set on every portal request)."""
    return request[BRAND]


def partner_id(request: web.Request) -> int:
    return request[PARTNER]


async def csrf_ok(request: web.Request, expected: str) -> bool:
    given = request.headers.get("X-CSRF-Token", "")
    if not given and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        given = str((await request.post()).get("_csrf", ""))
    return bool(expected) and tokens.same(given, expected)


async def page(request: web.Request, handler: Handler, permission: str, address: str | None) -> web.StreamResponse:
    if not keys.allowed(address, request.app[keys.NETWORKS].portal):
        raise web.HTTPForbidden(text="The portal is not served to this address ([admin] portal_allow_from).")
    settings = request.app[keys.SETTINGS]
    token = request.cookies.get(COOKIE, "")
    digest = tokens.digest(token) if token else None
    row = None
    found = await request.app[brand_cache.CACHE].lookup(request.app[keys.POOL], request.host)
    partner = found.partner_id
    request[PARTNER] = partner or 0  # 0: no partner yet (a new install), so no customer either
    request[BRAND] = found.brand
    if request.method == "GET" and request.path.startswith(SESSIONLESS):  # nobody's: no session looked up
        return await handler(request)
    if digest is not None:
        async with request.app[keys.POOL].acquire() as conn:
            row = await sessions_store.session(conn, digest)
            if row is not None:
                idle = (row["now"] - row["seen_at"]).total_seconds() > settings.portal_idle_timeout
                gone = (not row["enabled"] and row["impersonator_id"] is None) or row["status"] == "deleted"
                other = row["partner_id"] != partner
                if idle or row["now"] >= row["expires_at"] or gone or other:
                    await sessions_store.end(conn, digest)
                    if other:
                        _log.info("portal session on another partner's host: logged out",
                                  customer=row["customer_id"], host=request.host)
                    row = None
                    if permission != PORTAL_PUBLIC:
                        response = login_redirect(request, "expired")
                        del_cookie(response)
                        raise response
                elif (row["now"] - row["seen_at"]).total_seconds() > TOUCH_EVERY_S:
                    await sessions_store.touch(conn, digest)
    if row is None or digest is None:
        if permission != PORTAL_PUBLIC:
            raise login_redirect(request)
        if request.method in UNSAFE and not await csrf_ok(request, request.cookies.get(LOGIN_COOKIE, "")):
            raise web.HTTPForbidden(text="The form has expired: reload the page and try again.")
        return await handler(request)
    who = Customer(
        customer_id=row["customer_id"], partner_id=row["partner_id"], name=row["name"], csrf_token=row["csrf_token"],
        impersonator_id=row["impersonator_id"], impersonator_name=row["impersonator_name"])
    request[SESSION] = digest
    if request.method in UNSAFE and not await csrf_ok(request, row["csrf_token"]):
        raise web.HTTPForbidden(text="The form has expired (CSRF token): reload the page and try again.")
    if not row["verified"]:
        request[PENDING] = who
        if permission in (PORTAL_SECOND_FACTOR, PORTAL_PUBLIC) or request.path == LOGOUT_PATH:
            return await handler(request)
        raise web.HTTPFound(CODE_PATH)
    if permission == PORTAL_SECOND_FACTOR:
        raise web.HTTPFound(HOME)
    assert permission in (PORTAL_PUBLIC, PORTAL_CUSTOMER), permission
    request[CUSTOMER] = who
    return await handler(request)
