"""Administrators: the list, creating and editing them (with their own permission grants and
revokes), disabling, resetting the second factor, ending sessions; and the same in the API.
Administrators are never deleted (customers.created_by and the operations log name them)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, listing, oplog_store, pages
from admin import schemas as common
from admin.administration import guard, queries
from admin.administration import schemas as s
from admin.administration.area import AREA
from admin.administration.queries import Row
from admin.auth import passwords, permissions
from admin.auth.store import Connection
from admin.web import path_id

SORTS = {"login": "a.login", "name": "a.name"}
LOGIN = re.compile(s.LOGIN_PATTERN)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
# The form's names of the fields whose API names differ.
FORM_NAMES = {"idle_timeout_s": "idle_minutes", "absolute_timeout_s": "absolute_hours", "grants": "grant",
              "revokes": "revoke"}
CSV_HEADER = ["id", "login", "name", "email", "role", "partner", "two_factor", "enabled", "last_login_at"]


def _listing(request: web.Request, sorts: dict[str, str]) -> listing.Listing:
    """The list's sort and cursor; a cursor of another list (its sort value not text) is refused."""
    lst = listing.Listing.of(request, sorts, "login", limit=request.app[keys.SETTINGS].page_size)
    if lst.after is not None and not isinstance(lst.after[0], str):
        raise web.HTTPBadRequest(text="bad page cursor (after=...)")
    return lst


def public(row: Row) -> dict[str, Any]:
    """What the operations log keeps of an administrator (never its password hash or TOTP secret)."""
    return guard.snapshot(row, (
        "id", "login", "name", "email", "role_id", "role", "partner_id", "enabled", "two_factor", "grants",
        "revokes", "idle_timeout_s", "absolute_timeout_s"))


def to_api(row: Row) -> s.Administrator:
    return s.Administrator(
        id=row["id"], login=row["login"], name=row["name"], email=row["email"], role_id=row["role_id"],
        role=row["role"], partner_id=row["partner_id"], partner=row["partner"], enabled=row["enabled"],
        two_factor=row["two_factor"], grants=list(row["grants"]), revokes=list(row["revokes"]),
        permissions=sorted(guard.effective(row)), idle_timeout_s=row["idle_timeout_s"],
        absolute_timeout_s=row["absolute_timeout_s"], last_login_at=row["last_login_at"],
        created_at=row["created_at"])


async def _target(conn: Connection, request: web.Request) -> asyncpg.Record:
    """The administrator of the path, if the principal may see it (404 otherwise)."""
    row = await queries.administrator(conn, path_id(request), keys.principal(request).partner_id)
    if row is None:
        raise web.HTTPNotFound(text="No such administrator.")
    return row


# --- saving: one path for the form and the API ----------------------------------------------------

async def _check(conn: Connection, a: guard.Actor, data: queries.AdminRow, password: str | None,
                 target: Row | None) -> tuple[queries.AdminRow, dict[str, str]]:
    """The row to save (the partner a partner's administrator must keep, overrides the role
    already gives dropped) and the errors by field (API names)."""
    errors: dict[str, str] = {}
    if not LOGIN.match(data.login):
        errors["login"] = ("lower-case letters, digits and _ . @ -, starting with a letter or digit "
                           "(at most 64 characters)")
    if data.email is not None and not EMAIL.match(data.email):
        errors["email"] = "is not an email address"
    if password is not None and (weak := passwords.weak(password)):
        errors["password"] = weak
    elif password is None and target is None:
        errors["password"] = "is required"  # noqa: S105 (a message, not a password)
    role = await queries.role(conn, data.role_id)
    if (target is None or data.role_id != target["role_id"]) and (why := guard.give_role(a, role)):
        errors["role_id"] = why
    partner_id, why = guard.partner(a.who, data.partner_id)
    if why:
        errors["partner_id"] = why
    elif partner_id is not None and not await queries.partner_exists(conn, partner_id):
        errors["partner_id"] = "no such partner"
    if why := guard.add_permissions(a, set(data.grants) - set(target["grants"] if target else ())):
        errors["grants"] = why
    if unknown := sorted(set(data.revokes) - permissions.ALL):
        errors["revokes"] = "no such permission: " + ", ".join(unknown)
    if data.absolute_timeout_s < data.idle_timeout_s:
        errors["absolute_timeout_s"] = "must not be shorter than the idle timeout"
    given = guard.role_permissions(role) if role is not None else frozenset()
    is_super = role is not None and role["builtin"] == permissions.SUPER
    grants = [] if is_super else sorted(set(data.grants) - given)
    revokes = [] if is_super else sorted(set(data.revokes) & given)
    row = queries.AdminRow(data.login, data.name, data.email, data.role_id, partner_id, data.idle_timeout_s,
                           data.absolute_timeout_s, grants, revokes)
    return row, errors


async def save(request: web.Request, target_id: int | None, data: queries.AdminRow, password: str | None,
               enabled: bool | None = None) -> int:
    """Create (``target_id`` None) or update an administrator; raises :class:`common.Invalid` with
    the errors by field (API names), 404 for an administrator the principal does not see, 403 for
    one it may not manage."""
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn:
        a = await guard.actor(conn, who)
        target = None
        if target_id is not None:
            target = await queries.administrator(conn, target_id, who.partner_id)
            if target is None:
                raise web.HTTPNotFound(text="No such administrator.")
            guard.manage(a, target)
            if enabled is False and target_id == who.admin_id:
                raise common.Invalid({"enabled": "you cannot disable yourself"})
        row, errors = await _check(conn, a, data, password, target)
        if errors:
            raise common.Invalid(errors)
        hashed = await asyncio.to_thread(passwords.hash_password, password) if password is not None else None
        try:
            async with conn.transaction():
                if target is None:
                    assert hashed is not None
                    admin_id = await queries.insert_administrator(conn, row, hashed)
                else:
                    admin_id = target["id"]
                    await queries.update_administrator(conn, admin_id, row, hashed)
                    if enabled is not None:
                        await queries.set_enabled(conn, admin_id, enabled)
                    if hashed is not None or enabled is False:
                        await queries.end_sessions(conn, admin_id, keep=who.session)
                saved = await queries.administrator(conn, admin_id, None)
                assert saved is not None
                after = public(saved) | ({"password": "changed"} if hashed is not None and target else {})
                await oplog_store.record(
                    conn, who, keys.client_address(request), "create" if target is None else "update",
                    "administrator", admin_id, partner_id=row.partner_id,
                    summary=f"{'created' if target is None else 'changed'} administrator {row.login}",
                    before=public(target) if target is not None else None, after=after)
        except asyncpg.UniqueViolationError:
            raise common.Invalid({"login": "is taken by another administrator"}) from None
        except asyncpg.CheckViolationError as e:
            field = {"administrators_login_valid": "login", "administrators_absolute_positive": "absolute_timeout_s",
                     "administrators_idle_positive": "idle_timeout_s"}.get(e.constraint_name or "", "")
            raise common.Invalid({field: "is not valid"}) from None
    return int(admin_id)


async def _act(request: web.Request, action: str, summary: str) -> web.StreamResponse:
    """Disable, enable, reset two-factor, end sessions: each a button on the administrator's page."""
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn:
        a = await guard.actor(conn, who)
        target = await _target(conn, request)
        guard.manage(a, target)
        if action == "disable" and target["id"] == who.admin_id:
            raise web.HTTPFound(f"/admin/administrators/{target['id']}?done=self")
        async with conn.transaction():
            if action in ("disable", "enable"):
                await queries.set_enabled(conn, target["id"], action == "enable")
            if action == "reset-two-factor":
                await queries.reset_two_factor(conn, target["id"])
            if action in ("disable", "end-sessions", "reset-two-factor"):
                await queries.end_sessions(conn, target["id"], keep=who.session)
            after = await queries.administrator(conn, target["id"], None)
            assert after is not None
            await oplog_store.record(conn, who, keys.client_address(request), action.replace("-", "_"),
                                     "administrator", target["id"], partner_id=target["partner_id"],
                                     summary=f"{summary} {target['login']}", before=public(target),
                                     after=public(after))
    raise web.HTTPFound(f"/admin/administrators/{target['id']}?done={action}")


# --- pages ----------------------------------------------------------------------------------------

@AREA.page("/administrators", permission="administration.view")
async def administrators(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    lst = _listing(request, SORTS)
    errors: dict[str, str] = {}
    try:
        q = common.query(request, s.AdministratorQuery)
    except common.Invalid as e:
        errors, q = e.errors, s.AdministratorQuery()
    f = queries.AdminFilter(q.q, q.role_id, None if q.status is None else q.status == "enabled")
    pool = request.app[keys.POOL]

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with pool.acquire() as conn:
            return await queries.administrators(conn, who.partner_id, f, lst.column, lst.direction, after, limit)

    def key(r: Any) -> list[Any]:
        return [r[lst.sort], r["id"]]

    if lst.wants_csv:
        return await listing.export_csv(request, "administrators.csv", CSV_HEADER, fetch, key, lambda r: [
            r["id"], r["login"], r["name"], r["email"], r["role"], r["partner"], r["two_factor"], r["enabled"],
            r["last_login_at"]])
    rows = lst.take(await fetch(lst.after, lst.limit + 1), key)
    async with pool.acquire() as conn:
        roles = await queries.roles(conn)
    return pages.render("administration/administrators.html", request, {
        "listing": lst, "rows": rows, "q": q, "errors": errors, "roles": [(r["id"], r["name"]) for r in roles]},
        status=422 if errors else 200)


async def _form_context(conn: Connection, a: guard.Actor, target: Row | None) -> dict[str, Any]:
    roles = [r for r in await queries.roles(conn)
             if guard.give_role(a, r) is None or (target is not None and r["id"] == target["role_id"])]
    partners = await queries.partners(conn, a.who.partner_id)
    return {"roles": [(r["id"], r["name"]) for r in roles], "role_rows": {r["id"]: r for r in roles},
            "partners": [(p["id"], p["name"]) for p in partners], "any_partner": a.who.partner_id is None,
            "areas": permissions.AREAS, "actions": permissions.ACTIONS, "target": target}


def _form_values(target: Row | None, who_partner: int | None) -> dict[str, Any]:
    if target is None:
        return {"login": "", "name": "", "email": "", "role_id": "", "partner_id": who_partner or "",
                "idle_minutes": 30, "absolute_hours": 12, "grant": [], "revoke": []}
    return {"login": target["login"], "name": target["name"], "email": target["email"] or "",
            "role_id": target["role_id"], "partner_id": target["partner_id"] or "",
            "idle_minutes": target["idle_timeout_s"] // 60, "absolute_hours": target["absolute_timeout_s"] // 3600,
            "grant": list(target["grants"]), "revoke": list(target["revokes"])}


async def _render_form(request: web.Request, target_id: int | None, values: Mapping[str, Any] | None = None,
                       errors: Mapping[str, str] | None = None) -> web.Response:
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn:
        a = await guard.actor(conn, who)
        target = None
        if target_id is not None:
            target = await queries.administrator(conn, target_id, who.partner_id)
            if target is None:
                raise web.HTTPNotFound(text="No such administrator.")
            guard.manage(a, target)
        context = await _form_context(conn, a, target)
    form_errors = {FORM_NAMES.get(k, k): v for k, v in (errors or {}).items()}
    return pages.render("administration/administrator_form.html", request, {
        **context, "values": values if values is not None else _form_values(target, who.partner_id),
        "errors": form_errors}, status=422 if errors else 200)


def _form_input(form: Mapping[str, Any]) -> tuple[queries.AdminRow, str | None]:
    f = common.from_strings(form, s.AdministratorForm)
    return queries.AdminRow(
        login=f.login.lower(), name=f.name, email=f.email or None, role_id=f.role_id, partner_id=f.partner_id,
        idle_timeout_s=f.idle_minutes * 60, absolute_timeout_s=f.absolute_hours * 3600, grants=f.grant,
        revokes=f.revoke), f.password or None


def _submitted(form: Any) -> dict[str, Any]:
    values = {k: str(form.get(k, "")) for k in ("login", "name", "email", "role_id", "partner_id", "idle_minutes",
                                                "absolute_hours")}
    return values | {"grant": form.getall("grant", []), "revoke": form.getall("revoke", [])}


@AREA.page("/administrators/new", permission="administration.add")
async def new_form(request: web.Request) -> web.StreamResponse:
    return await _render_form(request, None)


@AREA.page("/administrators", permission="administration.add", method="POST")
async def create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        data, password = _form_input(form)
        admin_id = await save(request, None, data, password)
    except common.Invalid as e:
        return await _render_form(request, None, _submitted(form), e.errors)
    raise web.HTTPFound(f"/admin/administrators/{admin_id}?done=created")


@AREA.page("/administrators/{id}", permission="administration.view")
async def detail(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn:
        target = await _target(conn, request)
        a = await guard.actor(conn, who)
        sessions = await queries.session_count(conn, target["id"])
    try:
        guard.manage(a, target)
        manageable = who.can("administration.edit")
    except web.HTTPForbidden:
        manageable = False
    return pages.render("administration/administrator.html", request, {
        "a": target, "sessions": sessions, "manageable": manageable, "done": request.query.get("done", ""),
        "permissions": sorted(guard.effective(target)), "is_self": target["id"] == who.admin_id,
        "areas": permissions.AREAS, "actions": permissions.ACTIONS})


@AREA.page("/administrators/{id}/edit", permission="administration.edit")
async def edit_form(request: web.Request) -> web.StreamResponse:
    return await _render_form(request, path_id(request))


@AREA.page("/administrators/{id}/edit", permission="administration.edit", method="POST")
async def edit(request: web.Request) -> web.StreamResponse:
    target_id = path_id(request)
    form = await request.post()
    try:
        data, password = _form_input(form)
        await save(request, target_id, data, password)
    except common.Invalid as e:
        return await _render_form(request, target_id, _submitted(form), e.errors)
    raise web.HTTPFound(f"/admin/administrators/{target_id}?done=saved")


@AREA.page("/administrators/{id}/disable", permission="administration.edit", method="POST")
async def disable(request: web.Request) -> web.StreamResponse:
    return await _act(request, "disable", "disabled")


@AREA.page("/administrators/{id}/enable", permission="administration.edit", method="POST")
async def enable(request: web.Request) -> web.StreamResponse:
    return await _act(request, "enable", "enabled")


@AREA.page("/administrators/{id}/reset-two-factor", permission="administration.edit", method="POST")
async def reset_two_factor(request: web.Request) -> web.StreamResponse:
    return await _act(request, "reset-two-factor", "reset the two-factor login of")


@AREA.page("/administrators/{id}/end-sessions", permission="administration.edit", method="POST")
async def end_sessions(request: web.Request) -> web.StreamResponse:
    return await _act(request, "end-sessions", "ended the sessions of")


# --- the API --------------------------------------------------------------------------------------

@AREA.api("GET", "/administrators", permission="administration.view", summary="List administrators",
          query=s.AdministratorQuery, response=common.Page[s.Administrator])
async def api_list(request: web.Request) -> web.StreamResponse:
    """Administrators by login (a partner's key sees only its partner's)."""
    who = keys.principal(request)
    q = common.query(request, s.AdministratorQuery)
    lst = _listing(request, {"login": "a.login"})
    f = queries.AdminFilter(q.q, q.role_id, None if q.status is None else q.status == "enabled")
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.administrators(conn, who.partner_id, f, "a.login", "asc", lst.after, lst.limit + 1)
    rows = lst.take(rows, lambda r: [r["login"], r["id"]])
    return common.json(common.Page(items=[to_api(r) for r in rows], next=lst.next))


async def _one(request: web.Request, admin_id: int) -> web.Response:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.administrator(conn, admin_id, keys.principal(request).partner_id)
    if row is None:
        raise web.HTTPNotFound(text="No such administrator.")
    return common.json(to_api(row))


@AREA.api("POST", "/administrators", permission="administration.add", summary="Create an administrator",
          body=s.AdministratorCreate, response=s.Administrator, status=201)
async def api_create(request: web.Request) -> web.StreamResponse:
    b = await common.body(request, s.AdministratorCreate)
    data = queries.AdminRow(b.login, b.name, b.email, b.role_id, b.partner_id, b.idle_timeout_s,
                            b.absolute_timeout_s, b.grants, b.revokes)
    admin_id = await save(request, None, data, b.password)
    response = await _one(request, admin_id)
    response.set_status(201)
    return response


@AREA.api("GET", "/administrators/{id}", permission="administration.view", summary="One administrator",
          response=s.Administrator)
async def api_get(request: web.Request) -> web.StreamResponse:
    return await _one(request, path_id(request))


@AREA.api("PATCH", "/administrators/{id}", permission="administration.edit", summary="Change an administrator",
          body=s.AdministratorPatch, response=s.Administrator)
async def api_patch(request: web.Request) -> web.StreamResponse:
    """Change the fields given; a new password or ``enabled: false`` ends its sessions."""
    admin_id = path_id(request)
    b = await common.body(request, s.AdministratorPatch)
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.administrator(conn, admin_id, keys.principal(request).partner_id)
    if row is None:
        raise web.HTTPNotFound(text="No such administrator.")

    def given(name: str) -> Any:
        value = getattr(b, name)
        return row[name] if value is msgspec.UNSET else value

    data = queries.AdminRow(given("login"), given("name"), given("email"), given("role_id"), given("partner_id"),
                            given("idle_timeout_s"), given("absolute_timeout_s"), list(given("grants")),
                            list(given("revokes")))
    password = None if b.password is msgspec.UNSET else b.password
    enabled = None if b.enabled is msgspec.UNSET else b.enabled
    await save(request, admin_id, data, password, enabled)
    return await _one(request, admin_id)
