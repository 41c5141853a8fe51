"""A customer's portal access, for staff: its login (unique, not case sensitive), a password staff
type for the customer (hashed argon2id at once: never shown, returned nor logged; staff only see
whether one is set), or none (the customer sets one with "forgot password"), the account enabled
or disabled (disabling ends its sessions), the second factor removed (a customer who lost its
phone), and "log in as": a portal session of the administrator's, looking as the customer.

customers.view sees the account, customers.edit changes it and logs in as the customer. The
customer is scoped as everywhere (admin/customers/): another partner's customer, or one an "own
customers only" administrator did not create, is 404. Each change is a line in the operations
log, in the customer's history; what it records of a password is "set" or "not set".
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, oplog_store, pages, schemas
from admin.auth import passwords
from admin.auth.store import Connection
from admin.customers import queries as customers
from admin.portal import accounts_admin_store as store
from admin.portal import brands_store, sessions
from admin.portal.common import AREA
from admin.web import path_id

LOGIN_RULE = "must be 1 to 64 characters without spaces or @ (the customer may also log in with its e-mail address)"
Login = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\s@]+$", description=LOGIN_RULE)]
Password = Annotated[str, msgspec.Meta(min_length=passwords.MIN_LENGTH, max_length=200, description=(
    f"at least {passwords.MIN_LENGTH} characters, not beginning or ending with a space; stored as an argon2id "
    "hash and never returned"))]
VIEW_AS_S = 3600
"""How long an administrator's "log in as" session lasts at most (the portal's own timeouts if shorter)."""
TAKEN = "is taken by another customer's portal account (logins are not case sensitive)"


class PortalAccount(msgspec.Struct, kw_only=True):
    """A customer's portal account as staff see it: ``exists`` false, it has none (the rest empty).
    The password is never returned: ``password_set`` says whether there is one."""

    customer_id: int
    exists: bool
    login: str | None
    password_set: bool
    second_factor: bool
    enabled: bool
    sessions: int
    last_login_at: dt.datetime | None
    password_changed_at: dt.datetime | None


class PortalAccountIn(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What to change; what is left out stays. A customer without an account gets one: ``login``
    is then needed. ``password`` null clears it (the customer sets a new one with "forgot
    password"); a new password or none ends the customer's sessions, as ``enabled`` false does.
    ``second_factor`` false removes the customer's TOTP (true is refused: the customer sets it up
    in the portal)."""

    login: Login | msgspec.UnsetType = msgspec.UNSET
    password: Password | msgspec.UnsetType | None = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    second_factor: bool | msgspec.UnsetType = msgspec.UNSET


def _out(customer_id: int, row: asyncpg.Record | None) -> PortalAccount:
    if row is None:
        return PortalAccount(customer_id=customer_id, exists=False, login=None, password_set=False,
                             second_factor=False, enabled=False, sessions=0, last_login_at=None,
                             password_changed_at=None)
    return PortalAccount(customer_id=customer_id, exists=True, login=row["login"], password_set=row["password_set"],
                         second_factor=row["second_factor"], enabled=row["enabled"], sessions=row["sessions"],
                         last_login_at=row["last_login_at"], password_changed_at=row["password_changed_at"])


def _logged(row: asyncpg.Record | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The operations log's view of an account: the password as "set" / "not set", nothing more."""
    if row is None:
        return None
    return {"login": row["login"], "password": "set" if row["password_set"] else "not set",
            "enabled": row["enabled"], "second_factor": row["second_factor"]}


async def _customer(conn: Connection, request: web.Request, customer_id: int, *, lock: bool = False) -> Any:
    who = keys.principal(request)
    row = await customers.customer(conn, who.partner_id, who.creator_id, customer_id, lock=lock)
    if row is None or row["status"] == "deleted":
        raise web.HTTPNotFound()
    return row


async def _hashed(patch: PortalAccountIn) -> str | msgspec.UnsetType | None:
    """The new password's hash (hashed in a thread, before any row is locked), None, or UNSET."""
    if isinstance(patch.password, str):
        why = passwords.weak(patch.password)
        if why:
            raise schemas.Invalid({"password": why})
        return await asyncio.to_thread(passwords.hash_password, patch.password)
    return patch.password


async def change(conn: Connection, request: web.Request, customer_id: int, patch: PortalAccountIn) -> asyncpg.Record:
    """Apply ``patch`` to the customer's account (made if it has none); schemas.Invalid on a bad
    or taken login, a weak password, a second factor asked for."""
    if patch.second_factor is True:
        raise schemas.Invalid({"second_factor": "cannot be turned on by staff: the customer sets it up in the portal"})
    password_hash = await _hashed(patch)
    login = patch.login.strip() if isinstance(patch.login, str) else patch.login
    who = keys.principal(request)
    try:
        async with conn.transaction():
            c = await _customer(conn, request, customer_id, lock=True)
            before = await store.account(conn, customer_id, lock=True)
            if before is None and not isinstance(login, str):
                raise schemas.Invalid({"login": "is needed: the customer has no portal account yet"})
            done: list[str] = []
            if isinstance(login, str) and (before is None or login != before["login"]):
                owner = await store.login_owner(conn, login)
                if owner is not None and owner != customer_id:
                    raise schemas.Invalid({"login": TAKEN})
                if before is None:
                    await store.create(conn, customer_id, login)
                    done.append(f"made it with the login {login}")
                else:
                    await store.set_login(conn, customer_id, login)
                    done.append(f"login {before['login']} -> {login}")
            ended = 0
            if not isinstance(password_hash, msgspec.UnsetType):
                await store.set_password(conn, customer_id, password_hash)
                done.append("password set by staff" if password_hash is not None else
                            "password cleared (the customer sets one with \"forgot password\")")
                ended += await store.end_sessions(conn, customer_id)
            if isinstance(patch.enabled, bool) and (before is None or patch.enabled != before["enabled"]):
                await store.set_enabled(conn, customer_id, patch.enabled)
                done.append("enabled" if patch.enabled else "disabled")
                if not patch.enabled:
                    ended += await store.end_sessions(conn, customer_id)
            if patch.second_factor is False and before is not None and before["second_factor"]:
                await store.remove_totp(conn, customer_id)
                done.append("second factor (TOTP) removed")
            after = await store.account(conn, customer_id)
            assert after is not None
            if done:
                await oplog_store.record(
                    conn, who, keys.client_address(request), "create" if before is None else "update",
                    "portal_account", customer_id, customer_id=customer_id, partner_id=c["partner_id"],
                    summary=f"portal account of {c['name']}: {', '.join(done)}"
                            + (f"; {ended} session{'' if ended == 1 else 's'} ended" if ended else ""),
                    before=_logged(before), after=_logged(after))
            return after
    except asyncpg.UniqueViolationError:  # portal_accounts_login_unique: another request took it meanwhile
        raise schemas.Invalid({"login": TAKEN}) from None
    except asyncpg.CheckViolationError:  # portal_accounts_login_valid: the Login pattern says it first
        raise schemas.Invalid({"login": LOGIN_RULE}) from None


async def host_partner(conn: Connection, request: web.Request) -> int | None:
    """The partner whose portal this host serves (the one a portal session here must belong to)."""
    return await brands_store.partner_of_host(conn, request.host) or await brands_store.default_partner(conn)


# -- pages ------------------------------------------------------------------------------------------

async def _page(request: web.Request, customer_id: int, *, errors: Mapping[str, str] | None = None,
                values: Mapping[str, Any] | None = None, status: int = 200) -> web.Response:
    async with request.app[keys.POOL].acquire() as conn:
        c = await _customer(conn, request, customer_id)
        account = await store.account(conn, customer_id)
        here = await host_partner(conn, request)
        hosts = await brands_store.hosts(conn, c["partner_id"]) if here != c["partner_id"] else []
    return pages.render("portal/admin_account.html", request, {
        "c": c, "a": account, "errors": errors or {}, "values": dict(values or {}),
        "done": request.query.get("done", ""), "may_edit": keys.principal(request).can("customers.edit"),
        "other_host": here != c["partner_id"], "hosts": hosts, "min_length": passwords.MIN_LENGTH}, status=status)


@AREA.page("/portal/accounts/{customer_id}", permission="customers.view")
async def account_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, path_id(request, "customer_id"))


_ACTIONS = ("login", "password", "clear_password", "enable", "disable", "remove_totp")


@AREA.page("/portal/accounts/{customer_id}", permission="customers.edit", method="POST")
async def account_form(request: web.Request) -> web.StreamResponse:
    """One of the page's forms (``action``): the login, a password, none, enabled, disabled, no TOTP."""
    customer_id = path_id(request, "customer_id")
    form = await request.post()
    action = str(form.get("action", ""))
    if action not in _ACTIONS:
        raise web.HTTPBadRequest(text="no such action")
    try:
        if action == "login":
            try:
                patch = msgspec.convert({"login": str(form.get("login", "")).strip()}, PortalAccountIn)
            except msgspec.ValidationError:
                raise schemas.Invalid({"login": LOGIN_RULE}) from None
        elif action == "password":
            password = str(form.get("password", ""))
            why = passwords.weak(password) or ("the two passwords differ" if password != form.get("password2") else
                                               "must be at most 200 characters" if len(password) > 200 else None)
            if why:
                raise schemas.Invalid({"password": why})
            patch = PortalAccountIn(password=password)
        else:
            patch = {"clear_password": PortalAccountIn(password=None), "enable": PortalAccountIn(enabled=True),
                     "disable": PortalAccountIn(enabled=False),
                     "remove_totp": PortalAccountIn(second_factor=False)}[action]
        async with request.app[keys.POOL].acquire() as conn:
            await change(conn, request, customer_id, patch)
    except schemas.Invalid as e:
        return await _page(request, customer_id, errors=e.errors, values={"login": form.get("login", "")},
                           status=422)
    raise web.HTTPFound(f"/admin/portal/accounts/{customer_id}?done={action}")


@AREA.page("/portal/accounts/{customer_id}/view-as", permission="customers.edit", method="POST")
async def view_as(request: web.Request) -> web.StreamResponse:
    """Open the portal as the customer: a portal session of this administrator's (the portal shows
    a staff banner, and refuses every change), its cookie, and the portal's first page."""
    customer_id = path_id(request, "customer_id")
    who = keys.principal(request)
    settings = request.app[keys.SETTINGS]
    async with request.app[keys.POOL].acquire() as conn:
        c = await _customer(conn, request, customer_id)
        if who.admin_id is None:  # a page: always an administrator's session; kept plain all the same
            raise web.HTTPForbidden(text="Only an administrator logged in may look as a customer.")
        if await host_partner(conn, request) != c["partner_id"]:
            hosts = await brands_store.hosts(conn, c["partner_id"])
            raise web.HTTPConflict(text=(
                f"{c['name']} is a customer of {c['partner']}, whose portal is not the one this host serves: "
                + (f"open the admin on {', '.join(hosts)} to look as the customer." if hosts else
                   "give that partner a portal host name (Portal brands) and open the admin there.")))
        async with conn.transaction():
            token = await sessions.open_session(
                conn, customer_id, impersonator_id=who.admin_id, address=keys.client_address(request),
                user_agent=request.headers.get("User-Agent", ""), verified=True,
                absolute_timeout_s=min(settings.portal_absolute_timeout, VIEW_AS_S))
            await oplog_store.record(conn, who, keys.client_address(request), "view_as", "customer", customer_id,
                                     customer_id=customer_id, partner_id=c["partner_id"],
                                     summary=f"{who.name} opened {c['name']}'s portal view")
    response = web.HTTPFound("/portal/")
    sessions.set_cookie(response, request, token)
    raise response


# -- the API ----------------------------------------------------------------------------------------

@AREA.api("GET", "/customers/{id}/portal-account", permission="customers.view", response=PortalAccount,
          summary="A customer's portal account")
async def api_account(request: web.Request) -> web.StreamResponse:
    """Whether the customer has a portal account, its login, whether a password and a second
    factor are set (never the password), enabled, its open sessions and last login."""
    customer_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        await _customer(conn, request, customer_id)
        return schemas.json(_out(customer_id, await store.account(conn, customer_id)))


@AREA.api("PUT", "/customers/{id}/portal-account", permission="customers.edit", body=PortalAccountIn,
          response=PortalAccount, summary="Make or change a customer's portal account")
async def api_change(request: web.Request) -> web.StreamResponse:
    """Only the fields given change (``login`` is needed when the customer has no account yet).
    A login another customer has, in any case, is refused (422, ``errors.login``)."""
    customer_id = path_id(request)
    patch = await schemas.body(request, PortalAccountIn)
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(_out(customer_id, await change(conn, request, customer_id, patch)))
