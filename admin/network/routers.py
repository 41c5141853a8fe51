"""Routers: the list with provisiond's sync state (``?sync=out``: those out of step), a router's
page with its last run's report and "Sync now", the form, delete; and the API.

Sync now touches the router's row (``UPDATE routers SET updated_at = now()``). The table's UPDATE
trigger (schema.sql ``lastmile_watch``) sends a NOTIFY on ``lastmile_routers``, which provisiond
LISTENs to (daemons/provisiond/__main__.py ``TABLES``). After its debounce (0.05 s by default)
provisiond marks that router for a full run, and its scheduler (scheduler.py) reconciles the router
within about a second and writes router_sync. A disabled router is never reconciled, and a router
in backoff after failures waits for its retry.

The API password is write-only. It is stored sealed (daemons/secrets.py, ``ROUTER_PURPOSE``),
is never shown, and is kept when an edit leaves it empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, listing, pages, schemas
from admin.administration import custom
from admin.network import queries
from admin.network.common import (
    AREA,
    REQUIRED,
    TOO_LONG,
    InUse,
    Row,
    api_custom,
    back,
    changed,
    check_cursor,
    checked,
    form_values,
    log,
    names,
    plural,
    refused,
)
from admin.network.schemas import (
    Router,
    RouterFields,
    RouterIn,
    RouterPatch,
    RouterQuery,
    SyncRequested,
    SyncState,
    host_name,
)
from admin.schemas import Deleted, Page
from admin.web import path_id
from daemons.secrets import ROUTER_PURPOSE

DEFAULTS: dict[str, Any] = {"api_port": 8728, "api_tls": False, "api_tls_verify": True, "enabled": True,
                            "auth_mode": "radius", "custom": {}}
CSV_COLUMNS = ("id", "name", "host", "api_port", "api_tls", "enabled", "auth_mode", "reachable", "last_success_at",
               "last_error", "drift", "adds", "sets", "removes", "services")
SYNC_EXPLAINED = ("provisiond reconciles the router within about a second: the change of its row is notified to "
                  "provisiond (a PostgreSQL notification on lastmile_routers), which reads what the router should "
                  "have and writes the differences.")
REPORT_LISTS = (("drift", "Drift repaired (changed on the router by hand, set back)"),
                ("missing", "Missing (an object without lastmile's tag holds the name)"),
                ("conflicts", "Conflicts"), ("leaks", "Revenue leaks (on the router, unknown to billing)"),
                ("failed", "Refused or failed"))


def _sync(row: Row) -> SyncState | None:
    if not row["synced"]:
        return None
    fields = [f for f in SyncState.__struct_fields__ if f != "report"]
    return SyncState(**{f: row[f] for f in fields}, report=row.get("report"))


def _out(row: Row) -> Router:
    shown = {f: row[f] for f in Router.__struct_fields__ if f != "sync"}
    return Router(**shown, sync=_sync(row))


def _logged(row: Row, fields: Mapping[str, Any]) -> dict[str, Any]:
    shown = schemas.row_json(row, [k for k in fields if k != "password"])
    return {**shown, "password": "(changed)"} if "password" in fields else shown


def _values(request: web.Request, data: RouterFields, password: str | None, errors: dict[str, str]) -> dict[str, Any]:
    values = msgspec.structs.asdict(data)
    values["host"] = checked(errors, "host", lambda: host_name(data.host))
    if password:
        values["password"] = request.app[keys.KEYRING].seal(password, ROUTER_PURPOSE)
    return values


async def _save(request: web.Request, router_id: int | None, values: dict[str, Any]) -> asyncpg.Record:
    try:
        async with request.app[keys.POOL].acquire() as conn, conn.transaction():
            if router_id is None:
                row = await queries.create_router(conn, values)
                await log(conn, request, "create", "router", row["id"], f"created router {row['name']}",
                          after={**_logged(row, values), "password": "(set)"})
                return row
            before = await queries.router(conn, router_id, lock=True)
            if before is None:
                raise web.HTTPNotFound()
            diff = changed(before, values)
            if not diff:
                return before
            row = await queries.update_router(conn, router_id, diff)
            await log(conn, request, "update", "router", router_id, f"changed router {row['name']}: {', '.join(diff)}",
                      before=_logged(before, diff), after=_logged(row, diff))
            return row
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise refused(e) from None


def _users(users: Row) -> str:
    parts = []
    if users["nas"]:
        parts.append(f"{plural(len(users['nas']), 'NAS', 'NAS')} ({names(users['nas'])})")
    if users["exporters"]:
        parts.append(f"{plural(len(users['exporters']), 'flow exporter')} ({names(users['exporters'])})")
    if users["services"]:
        parts.append(f"{plural(users['services'], 'service')} ({names(users['logins'], users['services'])})")
    return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1] if parts else ""


async def _delete(request: web.Request, router_id: int) -> asyncpg.Record:
    async with request.app[keys.POOL].acquire() as conn:
        try:
            async with conn.transaction():
                row = await queries.router(conn, router_id, lock=True)
                if row is None:
                    raise web.HTTPNotFound()
                users = await queries.router_users(conn, router_id)
                if not _users(users) and await queries.delete_router(conn, router_id):
                    await log(conn, request, "delete", "router", router_id, f"deleted router {row['name']}",
                              before=_logged(row, {f: None for f in RouterFields.__struct_fields__}))
                    return row
        except asyncpg.ForeignKeyViolationError:
            users = await queries.router_users(conn, router_id)  # something took the router meanwhile
    raise InUse(f"This router is used by {_users(users)}: move them to another router or delete them first.")


async def _sync_now(request: web.Request, router_id: int) -> datetime:
    """Have provisiond reconcile the router now (see the module's docstring)."""
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        row = await queries.router(conn, router_id, lock=True)
        if row is None:
            raise web.HTTPNotFound()
        if not row["enabled"]:
            raise web.HTTPConflict(text="This router is disabled: provisiond does not reconcile it. Enable it first.")
        at = await queries.touch_router(conn, router_id)
        await log(conn, request, "sync", "router", router_id, f"asked provisiond to reconcile router {row['name']}")
    assert at is not None
    return at


# -- pages ----------------------------------------------------------------------------------------

@AREA.page("/routers", permission="networking.view")
async def routers_list(request: web.Request) -> web.StreamResponse:
    f = schemas.query(request, RouterQuery)
    ls = listing.Listing.of(request, queries.ROUTER_SORTS, "name", limit=request.app[keys.SETTINGS].page_size)
    check_cursor(ls, {})
    pool = request.app[keys.POOL]

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with pool.acquire() as conn:
            return await queries.list_routers(conn, q=f.q, out_of_sync=f.sync == "out", sort=ls.sort,
                                              direction=ls.direction, after=after, limit=limit)

    def key(r: Any) -> tuple[Any, int]:
        return (r["sort_value"], r["id"])

    if ls.wants_csv:
        return await listing.export_csv(request, "routers.csv", CSV_COLUMNS, fetch, key,
                                        lambda r: [r[c] for c in CSV_COLUMNS])
    rows = ls.take(await fetch(ls.after, ls.limit + 1), key)
    return pages.render("network/routers_list.html", request, {"rows": rows, "ls": ls, "f": f,
                                                                "notice": request.query.get("done", "")})


async def _form(request: web.Request, r: Row, errors: dict[str, str], *, status: int = 200,
                editing: bool = False) -> web.Response:
    async with request.app[keys.POOL].acquire() as conn:
        fields = await custom.definitions(conn, "router")
    return pages.render("network/router_form.html", request, {"r": r, "errors": errors, "editing": editing,
                                                               "fields": fields}, status=status)


async def _submitted(request: web.Request, router_id: int | None) -> web.StreamResponse:
    form = await request.post()
    values = form_values(form)
    errors: dict[str, str] = {}
    given = {d: form.get(custom.PREFIX + d, "") for d in (k[len(custom.PREFIX):] for k in form
                                                          if k.startswith(custom.PREFIX))}
    async with request.app[keys.POOL].acquire() as conn:
        fields = await custom.definitions(conn, "router")
        kept: dict[str, Any] = {}
        if router_id is not None:
            before = await queries.router(conn, router_id)
            if before is None:
                raise web.HTTPNotFound()
            kept = {k: v for k, v in before["custom"].items() if k not in {d.key for d in fields}}
    try:
        custom_values, custom_errors = custom.validate(fields, form)
        errors.update(custom_errors)
        data: RouterFields | None = None
        try:
            data = schemas.from_strings(values, RouterFields)
        except schemas.Invalid as e:
            errors.update(e.errors)
            if values.get("host") and "host" not in errors:  # say all that is wrong at once
                checked(errors, "host", lambda: host_name(str(values["host"])))
        password = str(values.get("password", ""))
        if router_id is None and not password:
            errors["password"] = REQUIRED
        elif len(password) > 128:
            errors["password"] = TOO_LONG
        checked_values = _values(request, data, password, errors) if data is not None else {}
        if errors:
            raise schemas.Invalid(errors)
        checked_values["custom"] = {**kept, **custom_values}
        row = await _save(request, router_id, checked_values)
    except schemas.Invalid as e:
        return await _form(request, {**values, "password": "", "id": router_id, "custom": given}, e.errors,
                           status=422, editing=router_id is not None)
    raise web.HTTPFound(f"/admin/routers/{row['id']}?done={'saved' if router_id else 'created'}")


@AREA.page("/routers/new", permission="networking.add")
async def router_new_form(request: web.Request) -> web.StreamResponse:
    return await _form(request, DEFAULTS, {})


@AREA.page("/routers/new", permission="networking.add", method="POST")
async def router_create_form(request: web.Request) -> web.StreamResponse:
    return await _submitted(request, None)


async def _detail(request: web.Request, router_id: int, *, error: str = "", status: int = 200) -> web.Response:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.router(conn, router_id)
        if row is None:
            raise web.HTTPNotFound()
        users = await queries.router_users(conn, router_id)
        fields = await custom.definitions(conn, "router")
    report = row["report"] or {}
    lists = [(label, report.get(key) or []) for key, label in REPORT_LISTS if report.get(key)]
    return pages.render("network/router_detail.html", request, {
        "r": row, "users": users, "fields": fields, "lists": lists, "error": error,
        "notice": request.query.get("done", ""), "sync_explained": SYNC_EXPLAINED}, status=status)


@AREA.page("/routers/{id}", permission="networking.view")
async def router_page(request: web.Request) -> web.StreamResponse:
    return await _detail(request, path_id(request))


@AREA.page("/routers/{id}/edit", permission="networking.edit")
async def router_edit_form(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.router(conn, path_id(request))
    if row is None:
        raise web.HTTPNotFound()
    return await _form(request, dict(row), {}, editing=True)


@AREA.page("/routers/{id}/edit", permission="networking.edit", method="POST")
async def router_edit(request: web.Request) -> web.StreamResponse:
    return await _submitted(request, path_id(request))


@AREA.page("/routers/{id}/sync", permission="networking.edit", method="POST")
async def router_sync_form(request: web.Request) -> web.StreamResponse:
    router_id = path_id(request)
    try:
        await _sync_now(request, router_id)
    except web.HTTPConflict as e:
        return await _detail(request, router_id, error=e.text or "", status=409)
    raise web.HTTPFound(f"/admin/routers/{router_id}?done=sync")


@AREA.page("/routers/{id}/delete", permission="networking.delete", method="POST")
async def router_delete_form(request: web.Request) -> web.StreamResponse:
    router_id = path_id(request)
    try:
        row = await _delete(request, router_id)
    except InUse as e:
        return await _detail(request, router_id, error=str(e), status=409)
    raise back("/admin/routers", "deleted", row["name"])


# -- API ------------------------------------------------------------------------------------------

@AREA.api("GET", "/routers", permission="networking.view", summary="List routers", query=RouterQuery,
          response=Page[Router])
async def list_routers(request: web.Request) -> web.StreamResponse:
    """Routers with provisiond's sync state (``sync=out``: enabled routers never synced,
    unreachable, or whose last run failed; drift a run repaired is in step); the report is in GET /routers/{id}."""
    f = schemas.query(request, RouterQuery)
    ls = listing.Listing.of(request, queries.ROUTER_SORTS, "name", limit=request.app[keys.SETTINGS].page_size)
    check_cursor(ls, {})
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.list_routers(conn, q=f.q, out_of_sync=f.sync == "out", sort=ls.sort,
                                          direction=ls.direction, after=ls.after, limit=ls.limit + 1)
    page = ls.take(rows, lambda r: (r["sort_value"], r["id"]))
    return schemas.json(Page[Router](items=[_out(r) for r in page], next=ls.next))


@AREA.api("GET", "/routers/{id}", permission="networking.view", summary="Get a router", response=Router)
async def get_router(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.router(conn, path_id(request))
    if row is None:
        raise web.HTTPNotFound(text="no such router")
    return schemas.json(_out(row))


async def _api_values(request: web.Request, data: RouterFields, password: str | None,
                      kept: Mapping[str, Any] | None) -> dict[str, Any]:
    """The columns to write; ``data.custom`` is checked unless ``kept`` is None (the custom values
    were not given: they stay as they are)."""
    if kept is not None:
        async with request.app[keys.POOL].acquire() as conn:
            defs = await custom.definitions(conn, "router")
        data.custom = api_custom(data.custom, defs, kept)
    errors: dict[str, str] = {}
    values = _values(request, data, password, errors)
    if errors:
        raise schemas.Invalid(errors)
    return values


@AREA.api("POST", "/routers", permission="networking.add", summary="Create a router", body=RouterIn,
          response=Router, status=201)
async def create_router(request: web.Request) -> web.StreamResponse:
    data = await schemas.body(request, RouterIn)
    fields = RouterFields(**{k: getattr(data, k) for k in RouterFields.__struct_fields__})
    values = await _api_values(request, fields, data.password, {})
    return schemas.json(_out(await _save(request, None, values)), status=201)


@AREA.api("PATCH", "/routers/{id}", permission="networking.edit", summary="Change a router", body=RouterPatch,
          response=Router)
async def update_router(request: web.Request) -> web.StreamResponse:
    """Only the fields given change; a password given replaces the router's."""
    router_id = path_id(request)
    patch = await schemas.body(request, RouterPatch)
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.router(conn, router_id)
    if row is None:
        raise web.HTTPNotFound(text="no such router")
    given = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    password = given.pop("password", None)
    current = {k: row[k] for k in RouterFields.__struct_fields__}
    try:
        data = msgspec.convert({**current, **given}, RouterFields)
    except msgspec.ValidationError as e:
        raise schemas.Invalid({"": str(e)}) from None
    values = await _api_values(request, data, password, row["custom"] if "custom" in given else None)
    return schemas.json(_out(await _save(request, router_id, values)))


@AREA.api("POST", "/routers/{id}/sync", permission="networking.edit", summary="Sync a router now",
          response=SyncRequested, status=202,
          description="provisiond reconciles the router within about a second (a PostgreSQL notification on "
                      "lastmile_routers); GET /routers/{id} shows the run's result in `sync`. 409: the router "
                      "is disabled.")
async def sync_router(request: web.Request) -> web.StreamResponse:
    router_id = path_id(request)
    at = await _sync_now(request, router_id)
    return schemas.json(SyncRequested(router_id, at.astimezone(UTC), SYNC_EXPLAINED), status=202)


@AREA.api("DELETE", "/routers/{id}", permission="networking.delete", summary="Delete a router", response=Deleted,
          description="Refused (409) while NAS, flow exporters or services refer to the router.")
async def delete_router(request: web.Request) -> web.StreamResponse:
    router_id = path_id(request)
    try:
        await _delete(request, router_id)
    except InUse as e:
        return schemas.problem(409, "router in use", str(e))
    return schemas.json(Deleted(router_id))
