"""Every request passes here first: the address allow-lists, who is asking (a login session's
cookie for pages, an API key for the API), timeouts, the second factor, CSRF, and the permission
the route declared (admin/web.py). A route that declared nothing is refused (500), never served.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import quote

import asyncpg
from aiohttp import web

from admin import keys, schemas
from admin.auth import permissions, store, tokens
from admin.auth.principal import Principal
from admin.portal import auth as portal
from admin.settings import networks
from admin.web import LOGGED_IN, PORTAL, PUBLIC, SECOND_FACTOR, SIGNED, Handler, permission_of
from daemons import log

SESSION_COOKIE = "lm_session"
LOGIN_COOKIE = "lm_login"        # the login form's CSRF token (double submit: before there is a session)
TOUCH_EVERY_S = 60               # seen_at is written at most this often (idle timeouts are this coarse)
KEY_CACHE_S = 5.0                # an API key's row is reused this long (a revoked key stops within it)
ENROL_PATH = "/admin/profile/two-factor"
CODE_PATH = "/admin/login/code"
LOGOUT_PATH = "/admin/logout"    # served to a session waiting for its code too (the code page's "Cancel")
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_log = log.get("lastmile.admin")


def _principal(r: asyncpg.Record, *, csrf: str = "", session: bytes | None = None, name: str | None = None,
               admin_id: int | None = None, api_key_id: int | None = None) -> Principal:
    """From a row of store.session (an administrator) or store.api_key (a key: no grants or revokes)."""
    grants = r["grants"] if admin_id is not None else ()
    revokes = r["revokes"] if admin_id is not None else ()
    return Principal(
        name=name or r["login"], role=r["role"],
        permissions=permissions.effective(r["role_permissions"], grants, revokes,
                                          super_role=r["builtin"] == permissions.SUPER),
        admin_id=admin_id, api_key_id=api_key_id, partner_id=r["partner_id"],
        own_customers_only=r["own_customers_only"], csrf_token=csrf, session=session)


class KeyCache:
    def __init__(self) -> None:
        self.entries: dict[bytes, tuple[float, Principal | None, list[keys.Network]]] = {}

    async def lookup(self, request: web.Request, key: str) -> tuple[Principal | None, list[keys.Network]]:
        digest = tokens.digest(key)
        now = time.monotonic()
        hit = self.entries.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        async with request.app[keys.POOL].acquire() as conn:
            row = await store.api_key(conn, digest)
        if row is None or row["revoked_at"] is not None:
            found: Principal | None = None
            nets: list[keys.Network] = []
        else:
            found = _principal(row, name=f"key:{row['name']}", api_key_id=row["id"])
            nets = networks(",".join(row["allow_from"]))
        if len(self.entries) > 10_000:
            self.entries.clear()
        self.entries[digest] = (now + KEY_CACHE_S, found, nets)
        return found, nets


KEY_CACHE = web.AppKey("key_cache", KeyCache)


def _api_error(status: int, title: str, detail: str = "") -> web.Response:
    response = schemas.problem(status, title, detail)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="lastmile"'
    return response


async def _api(request: web.Request, handler: Handler, permission: str, address: str | None) -> web.StreamResponse:
    if permission == PUBLIC:
        return await handler(request)
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or tokens.api_key_prefix(key.strip()) is None:
        return _api_error(401, "API key needed", "send `Authorization: Bearer lm_...`")
    who, nets = await request.app[KEY_CACHE].lookup(request, key.strip())
    if who is None:
        return _api_error(401, "unknown or revoked API key")
    if not keys.allowed(address, nets):
        return _api_error(403, "this API key is not allowed from this address")
    request[keys.PRINCIPAL] = who
    started = time.perf_counter()
    status = 500
    try:
        if permission not in (LOGGED_IN, SECOND_FACTOR) and not who.can(permission):
            response: web.StreamResponse = _api_error(403, "permission denied", f"this key's role lacks {permission}")
        else:
            response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        assert who.api_key_id is not None
        request.app[keys.API_LOG].add(datetime.now(UTC), who.api_key_id, request.method, request.path_qs, status,
                                      address, (time.perf_counter() - started) * 1000)


def _login_redirect(request: web.Request, reason: str = "") -> web.HTTPFound:
    target = request.path_qs if request.method == "GET" else "/admin/"
    suffix = f"&{reason}=1" if reason else ""
    return web.HTTPFound(f"/admin/login?next={quote(target)}{suffix}")


async def _csrf_ok(request: web.Request, expected: str) -> bool:
    given = request.headers.get("X-CSRF-Token", "")
    if not given and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        given = str((await request.post()).get("_csrf", ""))
    return bool(expected) and tokens.same(given, expected)


async def _page(request: web.Request, handler: Handler, permission: str, address: str | None) -> web.StreamResponse:
    token = request.cookies.get(SESSION_COOKIE, "")
    row = None
    digest = tokens.digest(token) if token else None
    if digest is not None:
        async with request.app[keys.POOL].acquire() as conn:
            row = await store.session(conn, digest)
            if row is not None:
                idle = (row["now"] - row["seen_at"]).total_seconds() > row["idle_timeout_s"]
                if idle or row["now"] >= row["expires_at"] or not row["enabled"]:
                    await store.end_session(conn, digest)
                    if permission != PUBLIC:
                        raise _login_redirect(request, "expired")
                    row = None
                elif (row["now"] - row["seen_at"]).total_seconds() > TOUCH_EVERY_S:
                    await store.touch_session(conn, digest)
    if row is None:
        if permission != PUBLIC:
            raise _login_redirect(request)
        if request.method in UNSAFE and not await _csrf_ok(request, request.cookies.get(LOGIN_COOKIE, "")):
            raise web.HTTPForbidden(text="The form has expired: reload the page and try again.")
        return await handler(request)
    who = _principal(row, csrf=row["csrf_token"], session=digest, admin_id=row["id"])
    request[keys.PRINCIPAL] = who
    if request.method in UNSAFE and not await _csrf_ok(request, row["csrf_token"]):
        raise web.HTTPForbidden(text="The form has expired (CSRF token): reload the page and try again.")
    if not row["verified"]:
        if permission in (SECOND_FACTOR, PUBLIC) or request.path == LOGOUT_PATH:
            return await handler(request)
        raise web.HTTPFound(CODE_PATH)
    if permission == SECOND_FACTOR:
        raise web.HTTPFound("/admin/")
    if row["require_2fa"] and row["totp_secret"] is None and permission != PUBLIC and \
            not request.path.startswith((ENROL_PATH, LOGOUT_PATH)):
        raise web.HTTPFound(ENROL_PATH + "?required=1")
    if permission not in (PUBLIC, LOGGED_IN) and not who.can(permission):
        raise web.HTTPForbidden(text=f"Your role ({who.role}) may not do this: it needs the permission {permission}.")
    return await handler(request)


async def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response's security headers (an ``on_response_prepare`` signal, admin/app.py: so that
    redirects, error pages and static files get them too, not only what a handler returns)."""
    h = response.headers
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("X-Frame-Options", "DENY")
    if not request.path.startswith("/admin/static/"):
        h.setdefault("Cache-Control", "no-store")
    h.setdefault("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                 "script-src 'self'; frame-ancestors 'none'; form-action 'self'")
    if request.app[keys.SETTINGS].tls:
        h.setdefault("Strict-Transport-Security", "max-age=31536000")


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    address = keys.client_address(request)
    nets = request.app[keys.NETWORKS]
    if request.path == "/metrics":
        if not keys.allowed(address, nets.metrics):
            raise web.HTTPForbidden(text="/metrics is not served to this address ([admin] metrics_allow)")
        return await handler(request)
    if permission_of(request) == SIGNED:
        # A gateway's webhook (/hooks/...): neither the admin nor the API, so not held to their
        # allow_from; its handler checks the signature before anything else (admin/web.py Area.hook).
        return await handler(request)
    if request.path == "/" and request.match_info.http_exception is None:
        return await handler(request)  # admin/app.py root: a redirect to /admin/ or /portal/, for anyone
    if permission_of(request) in PORTAL or request.path == "/portal" or request.path.startswith("/portal/"):
        # The customer portal: its own login, sessions and address list ([admin] portal_allow_from),
        # never the admin's allow_from (customers are on the internet): admin/portal/auth.py.
        permission = permission_of(request)
        if permission not in PORTAL:
            if not keys.allowed(address, nets.portal):
                raise web.HTTPForbidden(text="The portal is not served to this address.")
            if request.match_info.http_exception is not None:
                raise request.match_info.http_exception
            _log.error("a portal route declares no portal access: refused", path=request.path, method=request.method)
            raise web.HTTPInternalServerError(text="This route declares no permission and is not served.")
        return await portal.page(request, handler, permission, address)
    if not keys.allowed(address, nets.allow):
        raise web.HTTPForbidden(text="The admin is not served to this address ([admin] allow_from).")
    if isinstance(request.match_info.route.resource, web.StaticResource):
        return await handler(request)
    if request.match_info.http_exception is not None:
        raise request.match_info.http_exception
    permission = permission_of(request)
    if permission is None:
        _log.error("a route declares no permission: refused", path=request.path, method=request.method)
        raise web.HTTPInternalServerError(text="This route declares no permission and is not served.")
    if request.path.startswith("/api/"):
        return await _api(request, handler, permission, address)
    return await _page(request, handler, permission, address)
