"""NAS (RADIUS clients): list, page, form, delete, and the API. The shared secret is write-only:
lists, pages and the API show a hint of it (masked, with its last two characters), and an edit
that leaves it empty keeps it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, listing, pages, schemas
from admin.network import queries
from admin.network.common import (
    AREA,
    REQUIRED,
    TOO_LONG,
    Row,
    address_text,
    back,
    changed,
    check_cursor,
    checked,
    form_values,
    log,
    out,
    refused,
)
from admin.network.schemas import NAS_TYPES, Nas, NasFields, NasIn, NasPatch, NasQuery, network
from admin.schemas import Deleted, Page
from admin.web import path_id

DEFAULTS: dict[str, Any] = {"type": "mikrotik", "coa_port": 3799, "require_message_authenticator": True,
                            "limit_proxy_state": True}
CSV_COLUMNS = ("id", "name", "address", "type", "coa_port", "require_message_authenticator", "limit_proxy_state",
               "router")


def _values(data: NasFields, errors: dict[str, str]) -> dict[str, Any]:
    values = msgspec.structs.asdict(data)
    values["address"] = checked(errors, "address", lambda: network(data.address))
    return values


def _logged(row: Row, fields: Mapping[str, Any]) -> dict[str, Any]:
    """What the log keeps of a change: never the secret, only that it changed."""
    shown = schemas.row_json(row, [k for k in fields if k != "secret"])
    return {**shown, "secret": "(changed)"} if "secret" in fields else shown


async def _save(request: web.Request, nas_id: int | None, values: dict[str, Any]) -> asyncpg.Record:
    pool = request.app[keys.POOL]
    try:
        async with pool.acquire() as conn, conn.transaction():
            if nas_id is None:
                row = await queries.create_nas(conn, values)
                await log(conn, request, "create", "nas", row["id"], f"created NAS {row['name']}",
                          after={**schemas.row_json(row), "secret": "(set)"})
                return row
            before = await queries.nas(conn, nas_id, lock=True)
            if before is None:
                raise web.HTTPNotFound()
            diff = changed(before, values)
            if not diff:
                return before
            row = await queries.update_nas(conn, nas_id, diff)
            await log(conn, request, "update", "nas", nas_id, f"changed NAS {row['name']}: {', '.join(diff)}",
                      before=_logged(before, diff), after=_logged(row, diff))
            return row
    except asyncpg.ExclusionViolationError:
        async with pool.acquire() as conn:
            others = await queries.nas_overlapping(conn, values["address"], nas_id)
        raise schemas.Invalid({"address": "overlaps the address of " + ", ".join(
            f"NAS {o['name']} ({o['address']})" for o in others) if others else "overlaps another NAS"}) from None
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise refused(e) from None


async def _delete(request: web.Request, nas_id: int) -> asyncpg.Record:
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        row = await queries.nas(conn, nas_id, lock=True)
        if row is None or not await queries.delete_nas(conn, nas_id):
            raise web.HTTPNotFound()
        await log(conn, request, "delete", "nas", nas_id, f"deleted NAS {row['name']}", before=schemas.row_json(row))
    return row


# -- pages ----------------------------------------------------------------------------------------

@AREA.page("/nas", permission="networking.view")
async def nas_list(request: web.Request) -> web.StreamResponse:
    f = schemas.query(request, NasQuery)
    ls = listing.Listing.of(request, queries.NAS_SORTS, "name", limit=request.app[keys.SETTINGS].page_size)
    check_cursor(ls, {"address": address_text})
    pool = request.app[keys.POOL]

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with pool.acquire() as conn:
            return await queries.list_nas(conn, q=f.q, type_=f.type, sort=ls.sort, direction=ls.direction,
                                          after=after, limit=limit)

    def key(r: Any) -> tuple[Any, int]:
        return (r["sort_value"], r["id"])

    if ls.wants_csv:
        return await listing.export_csv(request, "nas.csv", CSV_COLUMNS, fetch, key,
                                        lambda r: [r[c] for c in CSV_COLUMNS])
    rows = ls.take(await fetch(ls.after, ls.limit + 1), key)
    return pages.render("network/nas_list.html", request, {"rows": rows, "ls": ls, "f": f, "types": NAS_TYPES,
                                                            "notice": request.query.get("done", "")})


async def _form(request: web.Request, n: Row, errors: dict[str, str], *, status: int = 200,
                editing: bool = False) -> web.Response:
    async with request.app[keys.POOL].acquire() as conn:
        routers = await queries.router_choices(conn)
    return pages.render("network/nas_form.html", request, {"n": n, "errors": errors, "editing": editing,
                                                            "types": NAS_TYPES, "routers": routers}, status=status)


async def _submitted(request: web.Request, nas_id: int | None) -> web.StreamResponse:
    values = form_values(await request.post())
    errors: dict[str, str] = {}
    try:
        try:
            data = schemas.from_strings(values, NasFields)
        except schemas.Invalid as e:
            errors.update(e.errors)
            data = None
            if values.get("address") and "address" not in errors:  # say all that is wrong at once
                checked(errors, "address", lambda: network(str(values["address"])))
        secret = str(values.get("secret", ""))
        if nas_id is None and not secret:
            errors["secret"] = REQUIRED
        if len(secret) > 128:
            errors["secret"] = TOO_LONG
        checked_values = _values(data, errors) if data is not None else {}
        if errors:
            raise schemas.Invalid(errors)
        if secret:
            checked_values["secret"] = secret
        row = await _save(request, nas_id, checked_values)
    except schemas.Invalid as e:
        return await _form(request, {**values, "secret": "", "id": nas_id}, e.errors, status=422,
                           editing=nas_id is not None)
    raise web.HTTPFound(f"/admin/nas/{row['id']}?done={'saved' if nas_id else 'created'}")


@AREA.page("/nas/new", permission="networking.add")
async def nas_new_form(request: web.Request) -> web.StreamResponse:
    return await _form(request, DEFAULTS, {})


@AREA.page("/nas/new", permission="networking.add", method="POST")
async def nas_create_form(request: web.Request) -> web.StreamResponse:
    return await _submitted(request, None)


@AREA.page("/nas/{id}", permission="networking.view")
async def nas_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.nas(conn, path_id(request))
    if row is None:
        raise web.HTTPNotFound()
    return pages.render("network/nas_detail.html", request, {"n": row, "notice": request.query.get("done", "")})


@AREA.page("/nas/{id}/edit", permission="networking.edit")
async def nas_edit_form(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.nas(conn, path_id(request))
    if row is None:
        raise web.HTTPNotFound()
    return await _form(request, schemas.row_json(row), {}, editing=True)


@AREA.page("/nas/{id}/edit", permission="networking.edit", method="POST")
async def nas_edit(request: web.Request) -> web.StreamResponse:
    return await _submitted(request, path_id(request))


@AREA.page("/nas/{id}/delete", permission="networking.delete", method="POST")
async def nas_delete_form(request: web.Request) -> web.StreamResponse:
    row = await _delete(request, path_id(request))
    raise back("/admin/nas", "deleted", row["name"])


# -- API ------------------------------------------------------------------------------------------

@AREA.api("GET", "/nas", permission="networking.view", summary="List NAS", query=NasQuery, response=Page[Nas])
async def list_nas(request: web.Request) -> web.StreamResponse:
    """RADIUS clients; secrets come as a hint only."""
    f = schemas.query(request, NasQuery)
    ls = listing.Listing.of(request, queries.NAS_SORTS, "name", limit=request.app[keys.SETTINGS].page_size)
    check_cursor(ls, {"address": address_text})
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.list_nas(conn, q=f.q, type_=f.type, sort=ls.sort, direction=ls.direction,
                                      after=ls.after, limit=ls.limit + 1)
    page = ls.take(rows, lambda r: (r["sort_value"], r["id"]))
    return schemas.json(Page[Nas](items=[out(r, Nas) for r in page], next=ls.next))


@AREA.api("GET", "/nas/{id}", permission="networking.view", summary="Get a NAS", response=Nas)
async def get_nas(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.nas(conn, path_id(request))
    if row is None:
        raise web.HTTPNotFound(text="no such NAS")
    return schemas.json(out(row, Nas))


def _api_values(data: NasFields, secret: str | None) -> dict[str, Any]:
    errors: dict[str, str] = {}
    values = _values(data, errors)
    if errors:
        raise schemas.Invalid(errors)
    if secret is not None:
        values["secret"] = secret
    return values


@AREA.api("POST", "/nas", permission="networking.add", summary="Create a NAS", body=NasIn, response=Nas,
          status=201)
async def create_nas(request: web.Request) -> web.StreamResponse:
    data = await schemas.body(request, NasIn)
    fields = msgspec.convert({k: getattr(data, k) for k in NasFields.__struct_fields__}, NasFields)
    return schemas.json(out(await _save(request, None, _api_values(fields, data.secret)), Nas), status=201)


@AREA.api("PATCH", "/nas/{id}", permission="networking.edit", summary="Change a NAS", body=NasPatch, response=Nas)
async def update_nas(request: web.Request) -> web.StreamResponse:
    """Only the fields given change; a secret given replaces the NAS's."""
    nas_id = path_id(request)
    patch = await schemas.body(request, NasPatch)
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.nas(conn, nas_id)
    if row is None:
        raise web.HTTPNotFound(text="no such NAS")
    given = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    secret = given.pop("secret", None)
    try:
        data = msgspec.convert({**schemas.row_json(row, NasFields.__struct_fields__), **given}, NasFields)
    except msgspec.ValidationError as e:
        raise schemas.Invalid({"": str(e)}) from None
    return schemas.json(out(await _save(request, nas_id, _api_values(data, secret)), Nas))


@AREA.api("DELETE", "/nas/{id}", permission="networking.delete", summary="Delete a NAS", response=Deleted)
async def delete_nas(request: web.Request) -> web.StreamResponse:
    nas_id = path_id(request)
    await _delete(request, nas_id)
    return schemas.json(Deleted(nas_id))
