"""Flow exporters (NetFlow/IPFIX sources flowcollector accepts): list, form, delete; and the API."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, listing, pages, schemas
from admin.network import queries
from admin.network.common import (
    AREA,
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
from admin.network.schemas import Exporter, ExporterIn, ExporterPatch, ExporterQuery, host_address
from admin.schemas import Deleted, Page
from admin.web import path_id

DEFAULTS: dict[str, Any] = {"sampling_rate": 1, "enabled": True}
CSV_COLUMNS = ("id", "name", "address", "sampling_rate", "router", "enabled")


def _values(data: ExporterIn) -> dict[str, Any]:
    errors: dict[str, str] = {}
    values = msgspec.structs.asdict(data)
    values["address"] = checked(errors, "address", lambda: host_address(data.address))
    if errors:
        raise schemas.Invalid(errors)
    return values


async def _save(request: web.Request, exporter_id: int | None, values: dict[str, Any]) -> asyncpg.Record:
    try:
        async with request.app[keys.POOL].acquire() as conn, conn.transaction():
            if exporter_id is None:
                row = await queries.create_exporter(conn, values)
                await log(conn, request, "create", "flow_exporter", row["id"], f"created flow exporter {row['name']}",
                          after=schemas.row_json(row, values))
                return row
            before = await queries.exporter(conn, exporter_id, lock=True)
            if before is None:
                raise web.HTTPNotFound()
            diff = changed(before, values)
            if not diff:
                return before
            row = await queries.update_exporter(conn, exporter_id, diff)
            await log(conn, request, "update", "flow_exporter", exporter_id,
                      f"changed flow exporter {row['name']}: {', '.join(diff)}", before=schemas.row_json(before, diff),
                      after=schemas.row_json(row, diff))
            return row
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise refused(e) from None


async def _delete(request: web.Request, exporter_id: int) -> asyncpg.Record:
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        row = await queries.exporter(conn, exporter_id, lock=True)
        if row is None or not await queries.delete_exporter(conn, exporter_id):
            raise web.HTTPNotFound()
        await log(conn, request, "delete", "flow_exporter", exporter_id, f"deleted flow exporter {row['name']}",
                  before=schemas.row_json(row, ExporterIn.__struct_fields__))
    return row


# -- pages ----------------------------------------------------------------------------------------

@AREA.page("/flow-exporters", permission="networking.view")
async def exporters_list(request: web.Request) -> web.StreamResponse:
    f = schemas.query(request, ExporterQuery)
    ls = listing.Listing.of(request, queries.EXPORTER_SORTS, "name", limit=request.app[keys.SETTINGS].page_size)
    check_cursor(ls, {"address": address_text})
    pool = request.app[keys.POOL]

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with pool.acquire() as conn:
            return await queries.list_exporters(conn, q=f.q, sort=ls.sort, direction=ls.direction, after=after,
                                                limit=limit)

    def key(r: Any) -> tuple[Any, int]:
        return (r["sort_value"], r["id"])

    if ls.wants_csv:
        return await listing.export_csv(request, "flow-exporters.csv", CSV_COLUMNS, fetch, key,
                                        lambda r: [r[c] for c in CSV_COLUMNS])
    rows = ls.take(await fetch(ls.after, ls.limit + 1), key)
    return pages.render("network/exporters_list.html", request, {"rows": rows, "ls": ls, "f": f,
                                                                  "notice": request.query.get("done", "")})


async def _form(request: web.Request, e: Row, errors: dict[str, str], *, status: int = 200,
                editing: bool = False) -> web.Response:
    async with request.app[keys.POOL].acquire() as conn:
        routers = await queries.router_choices(conn)
    return pages.render("network/exporter_form.html", request, {"e": e, "errors": errors, "editing": editing,
                                                                 "routers": routers}, status=status)


async def _submitted(request: web.Request, exporter_id: int | None) -> web.StreamResponse:
    values = form_values(await request.post())
    try:
        row = await _save(request, exporter_id, _values(schemas.from_strings(values, ExporterIn)))
    except schemas.Invalid as err:
        return await _form(request, {**values, "id": exporter_id}, err.errors, status=422,
                           editing=exporter_id is not None)
    raise back("/admin/flow-exporters", "saved" if exporter_id else "created", row["name"])


@AREA.page("/flow-exporters/new", permission="networking.add")
async def exporter_new_form(request: web.Request) -> web.StreamResponse:
    return await _form(request, DEFAULTS, {})


@AREA.page("/flow-exporters/new", permission="networking.add", method="POST")
async def exporter_create_form(request: web.Request) -> web.StreamResponse:
    return await _submitted(request, None)


@AREA.page("/flow-exporters/{id}/edit", permission="networking.edit")
async def exporter_edit_form(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.exporter(conn, path_id(request))
    if row is None:
        raise web.HTTPNotFound()
    return await _form(request, schemas.row_json(row), {}, editing=True)


@AREA.page("/flow-exporters/{id}/edit", permission="networking.edit", method="POST")
async def exporter_edit(request: web.Request) -> web.StreamResponse:
    return await _submitted(request, path_id(request))


@AREA.page("/flow-exporters/{id}/delete", permission="networking.delete", method="POST")
async def exporter_delete_form(request: web.Request) -> web.StreamResponse:
    row = await _delete(request, path_id(request))
    raise back("/admin/flow-exporters", "deleted", row["name"])


# -- API ------------------------------------------------------------------------------------------

@AREA.api("GET", "/flow-exporters", permission="networking.view", summary="List flow exporters",
          query=ExporterQuery, response=Page[Exporter])
async def list_exporters(request: web.Request) -> web.StreamResponse:
    f = schemas.query(request, ExporterQuery)
    ls = listing.Listing.of(request, queries.EXPORTER_SORTS, "name", limit=request.app[keys.SETTINGS].page_size)
    check_cursor(ls, {"address": address_text})
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.list_exporters(conn, q=f.q, sort=ls.sort, direction=ls.direction, after=ls.after,
                                            limit=ls.limit + 1)
    page = ls.take(rows, lambda r: (r["sort_value"], r["id"]))
    return schemas.json(Page[Exporter](items=[out(r, Exporter) for r in page], next=ls.next))


@AREA.api("GET", "/flow-exporters/{id}", permission="networking.view", summary="Get a flow exporter",
          response=Exporter)
async def get_exporter(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.exporter(conn, path_id(request))
    if row is None:
        raise web.HTTPNotFound(text="no such flow exporter")
    return schemas.json(out(row, Exporter))


@AREA.api("POST", "/flow-exporters", permission="networking.add", summary="Create a flow exporter",
          body=ExporterIn, response=Exporter, status=201)
async def create_exporter(request: web.Request) -> web.StreamResponse:
    values = _values(await schemas.body(request, ExporterIn))
    return schemas.json(out(await _save(request, None, values), Exporter), status=201)


@AREA.api("PATCH", "/flow-exporters/{id}", permission="networking.edit", summary="Change a flow exporter",
          body=ExporterPatch, response=Exporter)
async def update_exporter(request: web.Request) -> web.StreamResponse:
    exporter_id = path_id(request)
    patch = await schemas.body(request, ExporterPatch)
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.exporter(conn, exporter_id)
    if row is None:
        raise web.HTTPNotFound(text="no such flow exporter")
    given = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    try:
        data = msgspec.convert({**schemas.row_json(row, ExporterIn.__struct_fields__), **given}, ExporterIn)
    except msgspec.ValidationError as e:
        raise schemas.Invalid({"": str(e)}) from None
    return schemas.json(out(await _save(request, exporter_id, _values(data)), Exporter))


@AREA.api("DELETE", "/flow-exporters/{id}", permission="networking.delete", summary="Delete a flow exporter",
          response=Deleted)
async def delete_exporter(request: web.Request) -> web.StreamResponse:
    exporter_id = path_id(request)
    await _delete(request, exporter_id)
    return schemas.json(Deleted(exporter_id))
