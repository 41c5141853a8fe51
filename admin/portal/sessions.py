"""A customer's portal session: its own cookie (``lastmile_portal``, Path=/portal: the admin's
``lm_session`` never reaches the portal's handlers as a login, nor this one the admin's), a random
token of which only the digest is stored (admin/auth/tokens.py), a CSRF token, and the idle and
absolute timeouts of ``[admin] portal_idle_timeout`` / ``portal_absolute_timeout``."""

from __future__ import annotations

from aiohttp import web

from admin import keys
from admin.auth import tokens
from admin.auth.store import Connection
from admin.portal import sessions_store

COOKIE = "lastmile_portal"
LOGIN_COOKIE = "lastmile_portal_login"  # the login forms' CSRF token (double submit: before there is a session)
PATH = "/portal"


async def open_session(conn: Connection, customer_id: int, *, impersonator_id: int | None, address: str | None,
                       user_agent: str, verified: bool, absolute_timeout_s: int = 43200) -> str:
    """A new session of ``customer_id`` (``verified``: no second factor to wait for); its token,
    for :func:`set_cookie`. ``impersonator_id``: the administrator looking as the customer."""
    token = tokens.new_token()
    await sessions_store.create(conn, tokens.digest(token), customer_id, tokens.new_token(), verified=verified,
                                impersonator_id=impersonator_id, absolute_timeout_s=absolute_timeout_s,
                                address=address, user_agent=user_agent)
    return token


def set_cookie(response: web.StreamResponse, request: web.Request, token: str) -> None:
    """The session's cookie on ``response`` (a session cookie: gone when the browser closes)."""
    cookie(response, request, COOKIE, token)


def cookie(response: web.StreamResponse, request: web.Request, name: str, value: str,
           max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path=PATH, httponly=True, samesite="Lax",
                        secure=request.app[keys.SETTINGS].tls)


def del_cookie(response: web.StreamResponse, name: str = COOKIE) -> None:
    response.del_cookie(name, path=PATH)


async def close_session(conn: Connection, token_digest: bytes) -> None:
    await sessions_store.end(conn, token_digest)
