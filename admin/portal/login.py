"""A customer's login to the portal: by login name or e-mail address (one only one customer has),
the password (argon2id, admin/auth/passwords.py), throttling by login and by address as the
admin's (``[admin] login_failures_per_account`` / ``_per_address`` / ``login_window``, counted in
portal_login_attempts), an optional TOTP second factor (admin/auth/totp.py), logging out, and a
forgotten password: a 6-digit code by e-mail or SMS (the notifications outbox, kind
``portal_code``), single use, valid 15 minutes and for 5 wrong tries, then a new password.

Nothing tells whether a login exists: a wrong login and a wrong password get one answer, a reset
asked for an unknown login gets the answer a known one gets, and a code typed for it is "wrong or
expired" as any other.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from urllib.parse import quote, urlencode, urlsplit

import asyncpg
from aiohttp import web

from admin import keys
from admin.auth import passwords, tokens, totp
from admin.auth.store import Connection
from admin.portal import accounts_store, auth, pages, sessions, sessions_store
from admin.portal.common import AREA, CUSTOMER, customer
from admin.web import PORTAL_CUSTOMER, PORTAL_PUBLIC, PORTAL_SECOND_FACTOR
from daemons import log
from daemons.secrets import SecretError

TOTP_PURPOSE = "portal_accounts.totp"
ENROL_COOKIE = "lastmile_portal_enrol"
CODE_TTL_S = 15 * 60
CODE_TRIES = 5
CODES_PER_WINDOW = 3            # codes sent to one customer per login_window (no SMS bombing)
SHARED_EMAIL = "Several customers share this e-mail address: use your login name."
WRONG = "Wrong login or password."
WRONG_CODE = "That code is wrong or has expired. Ask for a new one if it keeps failing."
_log = log.get("lastmile.portal")


def _next(request: web.Request) -> str:
    """Where to go after logging in: a portal path only (no open redirect)."""
    target = request.query.get("next", auth.HOME)
    parts = urlsplit(target)
    ok = not parts.scheme and not parts.netloc and target.startswith("/portal") and not target.startswith("//")
    return target if ok else auth.HOME


def _with_login_csrf(request: web.Request) -> str:
    token = request.cookies.get(sessions.LOGIN_COOKIE) or tokens.new_token()
    request[pages.LOGIN_CSRF] = token
    return token


def _public_form(request: web.Request, template: str, context: dict[str, object], status: int = 200) -> web.Response:
    """A form shown before there is a session, with the pre-login CSRF cookie (double submit)."""
    token = _with_login_csrf(request)
    response = pages.render(template, request, context, status=status)
    sessions.cookie(response, request, sessions.LOGIN_COOKIE, token)
    return response


def _login_page(request: web.Request, error: str = "", status: int = 200, login: str = "") -> web.Response:
    notice = ("Your session has ended: please log in again." if request.query.get("expired") else
              "Your new password is set: log in with it." if request.query.get("reset") else "")
    return _public_form(request, "portal/login.html", {
        "error": error, "notice": notice, "login": login, "next": _next(request)}, status)


@AREA.portal("/login", access=PORTAL_PUBLIC)
async def login_form(request: web.Request) -> web.StreamResponse:
    if request.get(CUSTOMER) is not None:
        raise web.HTTPFound(_next(request))
    return _login_page(request)


async def _account(conn: Connection, typed: str) -> tuple[asyncpg.Record | None, bool]:
    """The account ``typed`` names (a login, or an e-mail address only one customer has), and
    whether it is an address several customers share."""
    if "@" in typed:
        rows = await accounts_store.by_email(conn, typed)
        if len(rows) > 1:
            return None, True
        if rows:
            return rows[0], False
    return await accounts_store.by_login(conn, typed), False


@AREA.portal("/login", access=PORTAL_PUBLIC, method="POST")
async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    typed = str(form.get("login", "")).strip()[:254]
    key = typed.lower()
    password = str(form.get("password", ""))
    settings = request.app[keys.SETTINGS]
    address = keys.client_address(request)
    pool = request.app[keys.POOL]
    async with pool.acquire() as conn:
        by_login, by_address = await accounts_store.failures(conn, key, address, settings.login_window)
        if by_login >= settings.login_failures_per_account or by_address >= settings.login_failures_per_address:
            await accounts_store.record_attempt(conn, key, address, False)
            _log.warning("portal login throttled", login=key, address=address, failures_login=by_login,
                         failures_address=by_address)
            return _login_page(request, f"Too many failed logins: try again in {int(settings.login_window // 60)} "
                               "minutes.", 429, typed)
        row, shared = await _account(conn, typed)
        if shared:
            await accounts_store.record_attempt(conn, key, address, False)
            return _login_page(request, SHARED_EMAIL, 401, typed)
    stored = row["password_hash"] if row is not None else None
    ok = await passwords.verify_async(stored, password)
    async with pool.acquire() as conn:
        if row is None or not ok or not row["enabled"] or row["status"] == "deleted" or \
                row["partner_id"] != auth.partner_id(request):
            await accounts_store.record_attempt(conn, key, address, False)
            _log.info("portal login failed", login=key, address=address)
            return _login_page(request, WRONG, 401, typed)
        r = row
        await accounts_store.record_attempt(conn, key, address, True)
        has_totp = r["totp_secret"] is not None
        async with conn.transaction():
            token = await sessions.open_session(
                conn, r["customer_id"], impersonator_id=None, address=address,
                user_agent=request.headers.get("User-Agent", ""), verified=not has_totp,
                absolute_timeout_s=settings.portal_absolute_timeout)
            rehash = passwords.hash_password(password) if passwords.needs_rehash(stored or "") else None
            await accounts_store.logged_in(conn, r["customer_id"], rehash)
    _log.info("portal login", customer=r["customer_id"], address=address, second_factor=has_totp)
    target = auth.CODE_PATH + "?next=" + quote(_next(request)) if has_totp else _next(request)
    response = web.HTTPFound(target)
    sessions.set_cookie(response, request, token)
    sessions.del_cookie(response, sessions.LOGIN_COOKIE)
    raise response


# -- the second factor ---------------------------------------------------------------------------

@AREA.portal("/login/code", access=PORTAL_SECOND_FACTOR)
async def code_form(request: web.Request) -> web.StreamResponse:
    return pages.render("portal/code.html", request, {"error": "", "next": _next(request)})


@AREA.portal("/login/code", access=PORTAL_SECOND_FACTOR, method="POST")
async def code(request: web.Request) -> web.StreamResponse:
    who = request[auth.PENDING]
    digest = request[auth.SESSION]
    form = await request.post()
    given = str(form.get("code", "")).strip()
    address = keys.client_address(request)
    settings = request.app[keys.SETTINGS]
    attempts = f"#2fa:{who.customer_id}"  # apart from the password's, which a login resets
    async with request.app[keys.POOL].acquire() as conn:
        by_login, _ = await accounts_store.failures(conn, attempts, address, settings.login_window)
        row = await accounts_store.by_id(conn, who.customer_id)
        ok = False
        if row is not None and row["totp_secret"] is not None and by_login < settings.login_failures_per_account:
            ok = await _totp_ok(request, conn, row["customer_id"], bytes(row["totp_secret"]).decode(), given)
        await accounts_store.record_attempt(conn, attempts, address, ok)
        if not ok:
            _log.info("portal second factor refused", customer=who.customer_id, address=address)
            error = ("Too many failed attempts: log in again later." if by_login >= settings.login_failures_per_account
                     else "That code is not valid (or was used already). Try the next one.")
            return pages.render("portal/code.html", request, {"error": error, "next": _next(request)}, status=401)
        await sessions_store.verify(conn, digest)
    raise web.HTTPFound(_next(request))


async def _totp_ok(request: web.Request, conn: Connection, customer_id: int, sealed: str, given: str) -> bool:
    try:
        secret = request.app[keys.KEYRING].open(sealed, TOTP_PURPOSE)
    except SecretError:
        _log.error("portal two-factor secret cannot be opened (another key?)", customer=customer_id)
        return False
    step = totp.verify(secret, given, time.time(), None)
    return step is not None and await accounts_store.use_totp_step(conn, customer_id, step)


@AREA.portal("/logout", access=PORTAL_CUSTOMER, method="POST")
async def logout(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        await sessions.close_session(conn, request[auth.SESSION])
    response = web.HTTPFound(auth.LOGIN_PATH)
    sessions.del_cookie(response)
    raise response


# -- a forgotten password ------------------------------------------------------------------------

def _code_hash(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


@AREA.portal("/reset", access=PORTAL_PUBLIC)
async def reset_form(request: web.Request) -> web.StreamResponse:
    return _public_form(request, "portal/reset.html", {"login": request.query.get("login", ""), "error": ""})


@AREA.portal("/reset", access=PORTAL_PUBLIC, method="POST")
async def reset(request: web.Request) -> web.StreamResponse:
    """Send a code if the login (or an e-mail address only one customer has) is an account of this
    portal's partner with an address for the channel; the same answer either way."""
    form = await request.post()
    typed = str(form.get("login", "")).strip()[:254]
    channel = "sms" if form.get("channel") == "sms" else "email"
    if not typed:
        return _public_form(request, "portal/reset.html", {"login": "", "error": "Type your login name."}, 422)
    settings = request.app[keys.SETTINGS]
    async with request.app[keys.POOL].acquire() as conn:
        row, _ = await _account(conn, typed)
        recipient = ""
        if row is not None:
            r = row
            recipient = ((r["email"] if channel == "email" else r["phone"]) or "").strip()
        if row is not None and recipient and r["enabled"] and r["status"] != "deleted" and \
                r["partner_id"] == auth.partner_id(request):
            customer_id = r["customer_id"]
            if await accounts_store.codes_since(conn, customer_id, settings.login_window) < CODES_PER_WINDOW:
                code = f"{secrets.randbelow(10**6):06d}"
                async with conn.transaction():
                    code_id = await accounts_store.create_code(conn, customer_id, _code_hash(code), channel,
                                                               CODE_TTL_S)
                    await accounts_store.queue_code(conn, code_id, r["partner_id"], customer_id, channel,
                                                    recipient, code)
                _log.info("portal reset code queued", customer=customer_id, channel=channel)
            else:
                _log.warning("portal reset codes capped", customer=customer_id)
    raise web.HTTPFound("/portal/reset/code?" + urlencode({"login": typed, "channel": channel}))


def _code_page(request: web.Request, login: str, error: str = "", status: int = 200) -> web.Response:
    return _public_form(request, "portal/reset_code.html", {
        "login": login, "channel": request.query.get("channel", "email"), "error": error,
        "minutes": CODE_TTL_S // 60}, status)


@AREA.portal("/reset/code", access=PORTAL_PUBLIC)
async def reset_code_form(request: web.Request) -> web.StreamResponse:
    return _code_page(request, request.query.get("login", ""))


@AREA.portal("/reset/code", access=PORTAL_PUBLIC, method="POST")
async def reset_code(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    typed = str(form.get("login", "")).strip()[:254]
    given = "".join(str(form.get("code", "")).split())
    new, again = str(form.get("new", "")), str(form.get("again", ""))
    if (weak := passwords.weak(new)) is not None:
        return _code_page(request, typed, f"The new password {weak}.", 422)
    if new != again:
        return _code_page(request, typed, "The two passwords differ.", 422)
    if new.strip().lower() == typed.lower():
        return _code_page(request, typed, "The new password must not be your login.", 422)
    async with request.app[keys.POOL].acquire() as conn:
        row, _ = await _account(conn, typed)
        ok = False
        if row is not None and row["partner_id"] == auth.partner_id(request) and \
                len(given) == 6 and given.isascii() and given.isdigit():
            r = row
            if new.strip().lower() == str(r["login"]).lower():
                return _code_page(request, typed, "The new password must not be your login.", 422)
            ok = await accounts_store.use_code(conn, r["customer_id"], _code_hash(given), CODE_TRIES)
        if not ok:
            _log.info("portal reset code refused", login=typed.lower())
            return _code_page(request, typed, WRONG_CODE, 401)
        customer_id = r["customer_id"]
        async with conn.transaction():
            await accounts_store.set_password(conn, customer_id, await _hash(new))
            await sessions_store.end_of(conn, customer_id)
            await accounts_store.record_attempt(conn, str(r["login"]).lower(), keys.client_address(request), True)
    _log.info("portal password reset", customer=customer_id)
    raise web.HTTPFound(auth.LOGIN_PATH + "?reset=1")


async def _hash(password: str) -> str:
    return await asyncio.to_thread(passwords.hash_password, password)


# -- the security page: the second factor on or off ---------------------------------------------

async def _security(request: web.Request, *, error: str = "", status: int = 200, notice: str = "") -> web.Response:
    me = customer(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await accounts_store.by_id(conn, me.customer_id)
    on = row is not None and row["totp_secret"] is not None
    context: dict[str, object] = {"on": on, "error": error, "notice": notice, "qr": "", "secret": "",
                                  "has_account": row is not None}
    response_cookie = None
    if not on and row is not None:
        secret = totp.new_secret()
        context["qr"] = totp.qr_svg(totp.provisioning_uri(secret, row["login"], auth.brand(request).name or "portal"))
        context["secret"] = secret
        response_cookie = request.app[keys.KEYRING].seal(secret, TOTP_PURPOSE + ".enrol")
    response = pages.render("portal/security.html", request, context, status=status)
    if response_cookie is not None:
        sessions.cookie(response, request, ENROL_COOKIE, response_cookie, 600)
    return response


@AREA.portal("/security")
async def security(request: web.Request) -> web.StreamResponse:
    done = request.query.get("done", "")
    notice = {"on": "Two-factor login is on.", "off": "Two-factor login is off."}.get(done, "")
    return await _security(request, notice=notice)


@AREA.portal("/security", method="POST")
async def change_security(request: web.Request) -> web.StreamResponse:
    me = customer(request)
    if me.impersonator_id is not None:
        raise web.HTTPForbidden(text="Staff looking as a customer do not change its login.")
    form = await request.post()
    action = str(form.get("action", ""))
    async with request.app[keys.POOL].acquire() as conn:
        row = await accounts_store.by_id(conn, me.customer_id)
    if row is None:
        raise web.HTTPNotFound()
    if not await passwords.verify_async(row["password_hash"], str(form.get("password", ""))):
        return await _security(request, error="That is not your password.", status=422)
    keyring = request.app[keys.KEYRING]
    async with request.app[keys.POOL].acquire() as conn:
        if action == "off":
            await accounts_store.set_totp(conn, me.customer_id, None)
            _log.info("portal two-factor off", customer=me.customer_id)
            raise web.HTTPFound("/portal/security?done=off")
        try:
            secret = keyring.open(request.cookies.get(ENROL_COOKIE, ""), TOTP_PURPOSE + ".enrol")
        except SecretError:
            raise web.HTTPFound("/portal/security") from None
        step = totp.verify(secret, str(form.get("code", "")), time.time(), None)
        if step is None:
            return await _security(request, error="That code does not match: check the phone's clock and try the "
                                   "next one.", status=422)
        await accounts_store.set_totp(conn, me.customer_id, keyring.seal(secret, TOTP_PURPOSE))
        await accounts_store.use_totp_step(conn, me.customer_id, step)
    _log.info("portal two-factor on", customer=me.customer_id)
    response = web.HTTPFound("/portal/security?done=on")
    sessions.del_cookie(response, ENROL_COOKIE)
    raise response
