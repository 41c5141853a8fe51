"""Logging in and out, the second factor, and an administrator's own profile."""

from __future__ import annotations

import time
from urllib.parse import quote, urlsplit

from aiohttp import web

from admin import keys, oplog_store, pages
from admin.auth import middleware as auth
from admin.auth import passwords, store, tokens, totp
from admin.web import LOGGED_IN, PUBLIC, SECOND_FACTOR, Area
from daemons import log
from daemons.secrets import SecretError

AREA = Area("account", "Account", order=99)
TOTP_PURPOSE = "administrators.totp"
_log = log.get("lastmile.admin")


def _next(request: web.Request) -> str:
    """Where to go after logging in: a path of this admin only (no open redirect)."""
    target = request.query.get("next", "/admin/")
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc and target.startswith("/admin") else "/admin/"


def _cookie(request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="Lax",
                        secure=request.app[keys.SETTINGS].tls)


def _login_page(request: web.Request, error: str = "", status: int = 200, login: str = "") -> web.Response:
    token = request.cookies.get(auth.LOGIN_COOKIE) or tokens.new_token()
    request[pages.LOGIN_CSRF] = token
    notice = "Your session has ended: please log in again." if request.query.get("expired") else ""
    response = pages.render("account/login.html", request, {
        "error": error, "notice": notice, "login": login, "next": _next(request)}, status=status)
    _cookie(request, response, auth.LOGIN_COOKIE, token, None)
    return response


@AREA.page("/login", permission=PUBLIC)
async def login_form(request: web.Request) -> web.StreamResponse:
    return _login_page(request)


@AREA.page("/login", permission=PUBLIC, method="POST")
async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    login_name = str(form.get("login", "")).strip().lower()[:64]
    password = str(form.get("password", ""))
    settings = request.app[keys.SETTINGS]
    address = keys.client_address(request)
    pool = request.app[keys.POOL]
    async with pool.acquire() as conn:
        by_login, by_address = await store.failures(conn, login_name, address, settings.login_window)
        if by_login >= settings.login_failures_per_account or by_address >= settings.login_failures_per_address:
            await store.record_attempt(conn, login_name, address, False)
            _log.warning("login throttled", login=login_name, address=address, failures_login=by_login,
                         failures_address=by_address)
            return _login_page(request, f"Too many failed logins: try again in {int(settings.login_window // 60)} "
                               "minutes.", 429, login_name)
        row = await store.admin_by_login(conn, login_name)
    ok = await passwords.verify_async(row["password_hash"] if row is not None else None, password)
    async with pool.acquire() as conn:
        if row is None or not ok or not row["enabled"]:
            await store.record_attempt(conn, login_name, address, False)
            _log.info("login failed", login=login_name, address=address)
            return _login_page(request, "Wrong login or password.", 401, login_name)
        await store.record_attempt(conn, login_name, address, True)
        token, csrf = tokens.new_token(), tokens.new_token()
        has_totp = row["totp_secret"] is not None
        async with conn.transaction():
            await store.create_session(conn, tokens.digest(token), row["id"], csrf, not has_totp,
                                       row["absolute_timeout_s"], address, request.headers.get("User-Agent", ""))
            rehash = passwords.hash_password(password) if passwords.needs_rehash(row["password_hash"]) else None
            await store.logged_in(conn, row["id"], rehash)
    _log.info("logged in", login=login_name, address=address, second_factor=has_totp)
    response = web.HTTPFound(auth.CODE_PATH + "?next=" + quote(_next(request)) if has_totp else _next(request))
    _cookie(request, response, auth.SESSION_COOKIE, token, None)
    response.del_cookie(auth.LOGIN_COOKIE, path="/")
    raise response


@AREA.page("/login/code", permission=SECOND_FACTOR)
async def code_form(request: web.Request) -> web.StreamResponse:
    return pages.render("account/code.html", request, {"error": "", "next": _next(request)})


@AREA.page("/login/code", permission=SECOND_FACTOR, method="POST")
async def code(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    assert who.admin_id is not None and who.session is not None
    form = await request.post()
    given = str(form.get("code", "")).strip()
    address = keys.client_address(request)
    settings = request.app[keys.SETTINGS]
    # Counted apart from the password's attempts, which a password login resets: else logging in
    # again would give a code guesser a new allowance. (Upper case: a login typed into the form is
    # lower-cased, so none becomes this.)
    attempts = f"2FA:{who.name}"
    async with request.app[keys.POOL].acquire() as conn:
        by_login, _ = await store.failures(conn, attempts, address, settings.login_window)
        row = await store.admin_by_id(conn, who.admin_id)
        assert row is not None
        ok = False
        if by_login < settings.login_failures_per_account:
            ok = await _second_factor(request, conn, row, given)
        await store.record_attempt(conn, attempts, address, ok)
        if not ok:
            _log.info("second factor refused", login=who.name, address=address)
            error = ("Too many failed attempts: log in again later." if by_login >= settings.login_failures_per_account
                     else "That code is not valid (or was used already). Try the next one.")
            return pages.render("account/code.html", request, {"error": error,
                                                  "next": _next(request)}, status=401)
        await store.verify_session(conn, who.session)
    raise web.HTTPFound(_next(request))


async def _second_factor(request: web.Request, conn: store.Connection, row: object, given: str) -> bool:
    """A TOTP code (once per time step) or an unused recovery code (spent now)."""
    r = row
    if "-" in given or len(given.replace(" ", "")) == 10:
        remaining = totp.use_recovery(r["recovery_codes"], given)  # type: ignore[index]
        return remaining is not None and await store.set_recovery_codes(
            conn, r["id"], remaining, r["recovery_codes"])  # type: ignore[index]
    try:
        secret = request.app[keys.KEYRING].open(r["totp_secret"], TOTP_PURPOSE)  # type: ignore[index]
    except SecretError:
        _log.error("two-factor secret cannot be opened (another key?)", login=r["login"])  # type: ignore[index]
        return False
    step = totp.verify(secret, given, time.time(), r["totp_last_step"])  # type: ignore[index]
    return step is not None and await store.use_totp_step(conn, r["id"], step)  # type: ignore[index]


@AREA.page("/logout", permission=LOGGED_IN, method="POST")
async def logout(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    if who.session is not None:
        async with request.app[keys.POOL].acquire() as conn:
            await store.end_session(conn, who.session)
    response = web.HTTPFound("/admin/login")
    response.del_cookie(auth.SESSION_COOKIE, path="/")
    raise response


@AREA.page("/profile", permission=LOGGED_IN)
async def profile(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    assert who.admin_id is not None
    async with request.app[keys.POOL].acquire() as conn:
        row = await store.admin_by_id(conn, who.admin_id)
    return pages.render("account/profile.html", request, {
        "admin": row, "errors": {}, "notice": request.query.get("done", "")})


@AREA.page("/profile/password", permission=LOGGED_IN, method="POST")
async def change_password(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    assert who.admin_id is not None
    form = await request.post()
    current, new, again = (str(form.get(k, "")) for k in ("current", "new", "again"))
    async with request.app[keys.POOL].acquire() as conn:
        row = await store.admin_by_id(conn, who.admin_id)
        assert row is not None
        errors: dict[str, str] = {}
        if not await passwords.verify_async(row["password_hash"], current):
            errors["current"] = "is not your current password"
        elif (weak := passwords.weak(new)) is not None:
            errors["new"] = weak
        elif new != again:
            errors["again"] = "does not match the new password"
        if errors:
            return pages.render("account/profile.html", request, {
                "admin": row, "errors": errors, "notice": ""}, status=422)
        async with conn.transaction():
            await store.set_password(conn, who.admin_id, passwords.hash_password(new))
            await store.end_sessions_of(conn, who.admin_id, keep=who.session)
            await oplog_store.record(conn, who, keys.client_address(request), "password", "administrator",
                                     who.admin_id, summary="changed own password")
    raise web.HTTPFound("/admin/profile?done=password")


@AREA.page("/profile/two-factor", permission=LOGGED_IN)
async def enrol_form(request: web.Request) -> web.StreamResponse:
    """A new secret to scan; it is kept (sealed) in a cookie until a code from it confirms it."""
    who = keys.principal(request)
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, who.name)
    response = pages.render("account/two_factor.html", request, {
        "qr": totp.qr_svg(uri), "secret": secret, "error": "", "codes": None,
        "required": bool(request.query.get("required"))})
    _cookie(request, response, "lm_enrol", request.app[keys.KEYRING].seal(secret, TOTP_PURPOSE + ".enrol"), 600)
    return response


@AREA.page("/profile/two-factor", permission=LOGGED_IN, method="POST")
async def enrol(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    assert who.admin_id is not None
    form = await request.post()
    keyring = request.app[keys.KEYRING]
    try:
        secret = keyring.open(request.cookies.get("lm_enrol", ""), TOTP_PURPOSE + ".enrol")
    except SecretError:
        raise web.HTTPFound("/admin/profile/two-factor") from None
    step = totp.verify(secret, str(form.get("code", "")), time.time(), None)
    if step is None:
        return pages.render("account/two_factor.html", request, {
            "qr": totp.qr_svg(totp.provisioning_uri(secret, who.name)), "secret": secret, "codes": None,
            "error": "That code does not match: check the phone's clock and try the next one.", "required": False},
            status=422)
    codes = totp.new_recovery_codes()
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        await store.set_totp(conn, who.admin_id, keyring.seal(secret, TOTP_PURPOSE),
                             [totp.hash_recovery(c) for c in codes], step)
        await oplog_store.record(conn, who, keys.client_address(request), "enrol", "administrator", who.admin_id,
                                 summary="turned on two-factor login")
    response = pages.render("account/two_factor.html", request, {
        "qr": "", "secret": "", "error": "", "codes": codes, "required": False})
    response.del_cookie("lm_enrol", path="/")
    return response
