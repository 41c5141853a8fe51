"""Tariff plans: the list (filter, sort, CSV), a tariff's page, its form, deleting it; and the API.

Tariffs belong to no partner (the table has no partner column): every administrator with the
``tariffs`` permissions sees and edits them all, a partner's administrator included.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, listing, oplog_store, pages, schemas
from admin.administration import custom
from admin.schemas import Deleted, Page
from admin.tariffs import queries
from admin.tariffs.schemas import (
    EDITABLE,
    TARGETS,
    Tariff,
    TariffIn,
    TariffPatch,
    TariffQuery,
    constraint_errors,
    values_of,
)
from admin.tickets import automatic
from admin.web import Area, path_id

AREA = Area("tariffs", "Tariff plans", nav=[("Tariffs", "/tariffs", "tariffs.view")], order=20)

CSV_COLUMNS = ("id", "name", "download_kbps", "upload_kbps", "burst_download_kbps", "burst_upload_kbps",
               "burst_threshold_download_kbps", "burst_threshold_upload_kbps", "burst_time_s", "priority",
               "limit_at_download_kbps", "limit_at_upload_kbps", "contention", "price", "currency",
               "session_timeout_s", "tax_group", "price_includes_tax", "services")
DEFAULTS: dict[str, Any] = {"priority": 8, "contention": 1, "price": "0", "currency": "EUR", "custom": {},
                            "price_includes_tax": False, "portal_change": "off", "portal_targets": [],
                            "portal_stop": False}
PORTAL_CHANGES = (("off", "off: not in the portal"), ("self_service", "self-service: the customer changes it"),
                  ("request", "on request: the customer asks, a ticket is opened"))
"""The form's choices of ``portal_change`` (admin/portal/plan.py)."""


Row = Mapping[str, Any] | asyncpg.Record


class InUse(Exception):
    """A tariff that services still use: ``str()`` says how many and which."""


BILLING = frozenset({"price", "currency", "tax_group_id", "price_includes_tax", "download_kbps", "upload_kbps",
                     "burst_download_kbps", "burst_upload_kbps", "burst_threshold_download_kbps",
                     "burst_threshold_upload_kbps", "burst_time_s", "limit_at_download_kbps",
                     "limit_at_upload_kbps"})
"""The fields whose change the form asks to confirm when active services are on the plan."""


class Unconfirmed(Exception):
    """A billing-relevant change of a tariff with active services, not confirmed (the form's
    ``confirm=1``): nothing was saved."""

    def __init__(self, services: int) -> None:
        super().__init__(f"{services} active service{'s are' if services != 1 else ' is'} on this plan; "
                         "they change with it")
        self.services = services


def _name(value: Any) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError(value)
    return value


def _integer(value: Any) -> int:
    if not isinstance(value, int):
        raise TypeError(value)
    return value


CURSOR_TYPES: dict[str, Callable[[Any], Any]] = {"name": _name, "price": lambda v: Decimal(str(v)),
                                                 "download": _integer}


def _listing(request: web.Request) -> listing.Listing:
    """The list's sort and page; a cursor whose sort value is not of its column's type is a 400."""
    ls = listing.Listing.of(request, queries.SORTS, "name", limit=request.app[keys.SETTINGS].page_size)
    if ls.after is not None:
        try:
            ls.after[0] = CURSOR_TYPES[ls.sort](ls.after[0])
        except (ValueError, TypeError, ArithmeticError):
            raise web.HTTPBadRequest(text="bad page cursor (after=...)") from None
    return ls


def _out(row: Row) -> Tariff:
    return msgspec.convert({k: row[k] for k in Tariff.__struct_fields__}, Tariff)


def _api_custom(given: Mapping[str, Any], defs: list[custom.Field]) -> tuple[dict[str, object], dict[str, str]]:
    """The API's ``custom`` object checked like the form's ``custom.<key>`` inputs (unknown keys refused)."""
    known = {d.key for d in defs}
    errors = {f"{custom.PREFIX}{k}": "no such custom field" for k in given if k not in known}
    errors.update({f"{custom.PREFIX}{k}": "must be text or a number" for k, v in given.items()
                   if k in known and (isinstance(v, dict | list | bool))})
    values, more = custom.validate(defs, {custom.PREFIX + k: "" if v is None else str(v) for k, v in given.items()
                                          if k in known and not isinstance(v, dict | list | bool)})
    return values, {**errors, **more}


async def _save(request: web.Request, tariff_id: int | None, data: TariffIn, *,
                confirmed: bool = True) -> asyncpg.Record:
    """Create (``tariff_id`` None) or update a tariff, log it and open its automatic ticket
    (admin/tickets/automatic.py), in one transaction; a violated constraint becomes field errors
    (schemas.Invalid). Not ``confirmed``, a billing-relevant change of a tariff with active
    services saves nothing and raises Unconfirmed. The portal's targets go to
    tariff_portal_targets (and in the log as ``portal_targets``)."""
    who = keys.principal(request)
    try:
        values = values_of(data)
    except ValueError as e:
        raise schemas.Invalid({"price": str(e)}) from None
    targets = sorted(set(data.portal_targets))
    try:
        async with request.app[keys.POOL].acquire() as conn, conn.transaction():
            if tariff_id is None:
                row = await queries.create(conn, values)
                if targets:
                    await queries.set_targets(conn, row["id"], targets)
                    again = await queries.tariff(conn, row["id"])
                    assert again is not None
                    row = again
                await oplog_store.record(conn, who, keys.client_address(request), "create", "tariff", row["id"],
                                         summary=f"created tariff {row['name']}", after=schemas.row_json(row))
                await automatic.tariff_changed(conn, None, row, now=dt.datetime.now(dt.UTC))
                return row
            before = await queries.tariff(conn, tariff_id, lock=True)
            if before is None:
                raise web.HTTPNotFound()
            changed = {k: v for k, v in values.items() if before[k] != v}
            moved = list(before[TARGETS]) != targets
            if not changed and not moved:
                return before
            if not confirmed and BILLING & set(changed):
                services = await automatic.active_services(conn, tariff_id)
                if services:
                    raise Unconfirmed(services)
            row = await queries.update(conn, tariff_id, changed) if changed else before
            if moved:
                await queries.set_targets(conn, tariff_id, targets)
                again = await queries.tariff(conn, tariff_id)
                assert again is not None
                row = again
            names = [*changed, *([TARGETS] if moved else [])]
            old, new = schemas.row_json(before), schemas.row_json(row)
            await oplog_store.record(conn, who, keys.client_address(request), "update", "tariff", tariff_id,
                                     summary=f"changed tariff {row['name']}: {', '.join(names)}",
                                     before={k: old[k] for k in names}, after={k: new[k] for k in names})
            await automatic.tariff_changed(conn, before, row, now=dt.datetime.now(dt.UTC))
            return row
    except asyncpg.IntegrityConstraintViolationError as e:
        raise schemas.Invalid(constraint_errors(e.constraint_name or "", values)) from None
    except asyncpg.DataError as e:  # a NUL character, which PostgreSQL text cannot hold
        raise schemas.Invalid({"": f"the database refused a value: {str(e).splitlines()[0]}"}) from None


async def _delete(request: web.Request, tariff_id: int) -> asyncpg.Record:
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn:
        try:
            async with conn.transaction():
                row = await queries.tariff(conn, tariff_id, lock=True)
                if row is None:
                    raise web.HTTPNotFound()
                if row["services"] == 0 and await queries.delete(conn, tariff_id):
                    await oplog_store.record(conn, who, keys.client_address(request), "delete", "tariff", tariff_id,
                                             summary=f"deleted tariff {row['name']}", before=schemas.row_json(row))
                    return row
        except asyncpg.ForeignKeyViolationError:
            pass  # a service took the tariff meanwhile
        n, logins = await queries.services_using(conn, tariff_id)
    more = f" and {n - len(logins)} more" if n > len(logins) else ""
    raise InUse(f"This tariff is used by {n} service{'s' if n != 1 else ''} ({', '.join(logins)}{more}): "
                "move them to another tariff before deleting it.")


# -- pages ----------------------------------------------------------------------------------------

@AREA.page("/tariffs", permission="tariffs.view")
async def tariffs_page(request: web.Request) -> web.StreamResponse:
    f = schemas.query(request, TariffQuery)
    ls = _listing(request)
    pool = request.app[keys.POOL]

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with pool.acquire() as conn:
            return await queries.list_tariffs(conn, q=f.q, sort=ls.sort, direction=ls.direction, after=after,
                                              limit=limit)

    def key(r: Any) -> tuple[Any, int]:
        return (r["sort_value"], r["id"])

    if ls.wants_csv:
        return await listing.export_csv(request, "tariffs.csv", CSV_COLUMNS, fetch, key,
                                        lambda r: [r[c] for c in CSV_COLUMNS])
    rows = ls.take(await fetch(ls.after, ls.limit + 1), key)
    return pages.render("tariffs/list.html", request, {"rows": rows, "ls": ls, "f": f,
                                                        "notice": request.query.get("done", "")})


def _form_values(form: Mapping[str, Any]) -> dict[str, Any]:
    """The form's inputs (custom fields apart); a price may be typed with a decimal comma."""
    values = {k: v for k, v in form.items() if not k.startswith(custom.PREFIX) and k not in ("_csrf", "confirm")}
    if hasattr(form, "getall"):
        values[TARGETS] = form.getall(TARGETS, [])
    if isinstance(values.get("price"), str):
        values["price"] = values["price"].strip().replace(",", ".")
    if isinstance(values.get("currency"), str):
        values["currency"] = values["currency"].strip().upper()
    return values


async def _form(request: web.Request, t: Mapping[str, Any], errors: dict[str, str], *, status: int = 200,
                editing: bool = False, warning: str = "") -> web.Response:
    async with request.app[keys.POOL].acquire() as conn:
        fields = await custom.definitions(conn, "tariff")
        groups = [(g["id"], g["name"]) for g in await queries.tax_groups(conn)]
        others = [(r["id"], r["name"]) for r in await queries.all_names(conn) if r["id"] != t.get("id")]
    chosen = {str(v) for v in t.get(TARGETS) or []}
    return pages.render("tariffs/form.html", request, {"t": t, "errors": errors, "fields": fields,
                                                        "editing": editing, "tax_groups": groups,
                                                        "warning": warning, "portal_changes": PORTAL_CHANGES,
                                                        "targets": others, "chosen_targets": chosen}, status=status)


async def _submitted(request: web.Request, tariff_id: int | None) -> web.StreamResponse:
    form = await request.post()
    values = _form_values(form)
    async with request.app[keys.POOL].acquire() as conn:
        fields = await custom.definitions(conn, "tariff")
        kept = {}
        if tariff_id is not None:
            before = await queries.tariff(conn, tariff_id)
            if before is None:
                raise web.HTTPNotFound()
            kept = {k: v for k, v in before["custom"].items() if k not in {d.key for d in fields}}
    given = {d.key: form.get(custom.PREFIX + d.key, "") for d in fields}
    try:
        custom_values, custom_errors = custom.validate(fields, form)
        try:
            data = schemas.from_strings(values, TariffIn)
        except schemas.Invalid as e:
            raise schemas.Invalid({**e.errors, **custom_errors}) from None
        if custom_errors:
            raise schemas.Invalid(custom_errors)
        data.custom = {**kept, **custom_values}
        row = await _save(request, tariff_id, data, confirmed=form.get("confirm") == "1")
    except schemas.Invalid as e:
        shown = {**values, "id": tariff_id, "custom": given, "price_includes_tax": "price_includes_tax" in values,
                 "portal_stop": "portal_stop" in values}
        return await _form(request, shown, e.errors, status=422, editing=tariff_id is not None)
    except Unconfirmed as e:
        shown = {**values, "id": tariff_id, "custom": given, "price_includes_tax": "price_includes_tax" in values,
                 "portal_stop": "portal_stop" in values}
        return await _form(request, shown, {}, editing=True, warning=str(e))
    raise web.HTTPFound(f"/admin/tariffs/{row['id']}?done={'saved' if tariff_id else 'created'}")


@AREA.page("/tariffs/new", permission="tariffs.add")
async def new_tariff_form(request: web.Request) -> web.StreamResponse:
    return await _form(request, DEFAULTS, {})


@AREA.page("/tariffs/new", permission="tariffs.add", method="POST")
async def create_tariff_form(request: web.Request) -> web.StreamResponse:
    return await _submitted(request, None)


async def _detail(request: web.Request, tariff_id: int, *, error: str = "", status: int = 200) -> web.Response:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.tariff(conn, tariff_id)
        if row is None:
            raise web.HTTPNotFound()
        fields = await custom.definitions(conn, "tariff")
    return pages.render("tariffs/detail.html", request, {"t": row, "fields": fields, "error": error,
                                                          "notice": request.query.get("done", "")}, status=status)


@AREA.page("/tariffs/{id}", permission="tariffs.view")
async def tariff_page(request: web.Request) -> web.StreamResponse:
    return await _detail(request, path_id(request))


@AREA.page("/tariffs/{id}/edit", permission="tariffs.edit")
async def edit_tariff_form(request: web.Request) -> web.StreamResponse:
    tariff_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.tariff(conn, tariff_id)
    if row is None:
        raise web.HTTPNotFound()
    return await _form(request, dict(row), {}, editing=True)


@AREA.page("/tariffs/{id}/edit", permission="tariffs.edit", method="POST")
async def edit_tariff(request: web.Request) -> web.StreamResponse:
    return await _submitted(request, path_id(request))


@AREA.page("/tariffs/{id}/delete", permission="tariffs.delete", method="POST")
async def delete_tariff_form(request: web.Request) -> web.StreamResponse:
    tariff_id = path_id(request)
    try:
        row = await _delete(request, tariff_id)
    except InUse as e:
        return await _detail(request, tariff_id, error=str(e), status=409)
    raise web.HTTPFound("/admin/tariffs?" + urlencode({"done": "deleted", "name": row["name"]}))


# -- API ------------------------------------------------------------------------------------------

@AREA.api("GET", "/tariffs", permission="tariffs.view", summary="List tariffs", query=TariffQuery,
          response=Page[Tariff])
async def list_tariffs(request: web.Request) -> web.StreamResponse:
    """Tariffs sorted by name, price or download speed, each with the number of services on it."""
    f = schemas.query(request, TariffQuery)
    ls = _listing(request)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.list_tariffs(conn, q=f.q, sort=ls.sort, direction=ls.direction, after=ls.after,
                                          limit=ls.limit + 1)
    page = ls.take(rows, lambda r: (r["sort_value"], r["id"]))
    return schemas.json(Page[Tariff](items=[_out(r) for r in page], next=ls.next))


@AREA.api("GET", "/tariffs/{id}", permission="tariffs.view", summary="Get a tariff", response=Tariff)
async def get_tariff(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.tariff(conn, path_id(request))
    if row is None:
        raise web.HTTPNotFound(text="no such tariff")
    return schemas.json(_out(row))


async def _api_custom_checked(request: web.Request, given: Mapping[str, Any],
                              kept: Mapping[str, Any]) -> dict[str, Any]:
    async with request.app[keys.POOL].acquire() as conn:
        defs = await custom.definitions(conn, "tariff")
    values, errors = _api_custom(given, defs)
    if errors:
        raise schemas.Invalid(errors)
    return {**{k: v for k, v in kept.items() if k not in {d.key for d in defs}}, **values}


@AREA.api("POST", "/tariffs", permission="tariffs.add", summary="Create a tariff", body=TariffIn,
          response=Tariff, status=201)
async def create_tariff(request: web.Request) -> web.StreamResponse:
    data = await schemas.body(request, TariffIn)
    data.custom = await _api_custom_checked(request, data.custom, {})
    return schemas.json(_out(await _save(request, None, data)), status=201)


@AREA.api("PATCH", "/tariffs/{id}", permission="tariffs.edit", summary="Change a tariff", body=TariffPatch,
          response=Tariff)
async def update_tariff(request: web.Request) -> web.StreamResponse:
    """Only the fields given change; ``custom`` replaces the tariff's custom values."""
    tariff_id = path_id(request)
    patch = await schemas.body(request, TariffPatch)
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.tariff(conn, tariff_id)
    if row is None:
        raise web.HTTPNotFound(text="no such tariff")
    current = {**{k: row[k] for k in EDITABLE}, "price": str(row["price"])}
    given = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    if "custom" in given:
        given["custom"] = await _api_custom_checked(request, given["custom"], row["custom"])
    try:
        data = msgspec.convert({**current, **given}, TariffIn)
    except msgspec.ValidationError as e:
        raise schemas.Invalid({"": str(e)}) from None
    return schemas.json(_out(await _save(request, tariff_id, data)))


@AREA.api("DELETE", "/tariffs/{id}", permission="tariffs.delete", summary="Delete a tariff", response=Deleted,
          description="Refused (409) while services use the tariff.")
async def delete_tariff(request: web.Request) -> web.StreamResponse:
    tariff_id = path_id(request)
    try:
        await _delete(request, tariff_id)
    except InUse as e:
        return schemas.problem(409, "tariff in use", str(e))
    return schemas.json(Deleted(tariff_id))
