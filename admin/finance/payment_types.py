"""Finance -> Payments -> Types: how money comes. The built-in types (cash, bank transfer, card,
cheque, other, online, direct debit) are fixed: the desk, the gateways, direct debit and bank
statements record under their codes, so none is renamed, disabled or deleted. The operator adds
its own (a code, which never changes, and a name), renames them and disables one it no longer
takes (its payments keep it; the forms stop offering it). Types are the operator's, not a
partner's: a partner's administrator sees them but does not change them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, oplog_store, schemas
from admin.auth.store import Connection
from admin.finance import common
from admin.finance import payments_store as store
from admin.finance.area import AREA
from admin.finance.payments_schemas import PaymentType, PaymentTypeIn, PaymentTypePatch, TypeName


def _operator_only(request: web.Request) -> None:
    if keys.principal(request).partner_id is not None:
        raise web.HTTPForbidden(text="Payment types are the operator's: a partner's administrator does not "
                                     "change them.")


async def _type_or_404(conn: Connection, code: str) -> asyncpg.Record:
    row = await store.type_by_code(conn, code)
    if row is None:
        raise web.HTTPNotFound()
    return row


async def add(conn: Connection, request: web.Request, data: PaymentTypeIn) -> asyncpg.Record:
    _operator_only(request)
    async with conn.transaction():
        row = await store.add_type(conn, data.code, data.name.strip())
        if row is None:
            raise schemas.Invalid({"code": f"the code {data.code} is taken"})
        await oplog_store.record(conn, keys.principal(request), keys.client_address(request), "create",
                                 "payment_type", row["id"], summary=f"payment type {data.code}: {data.name.strip()}",
                                 after={"code": data.code, "name": data.name.strip()})
    return row


async def change(conn: Connection, request: web.Request, row: asyncpg.Record, patch: PaymentTypePatch) -> None:
    _operator_only(request)
    if row["builtin"]:
        raise web.HTTPConflict(text=f"{row['name']} is built in: it is not renamed or disabled")
    name = row["name"] if patch.name is msgspec.UNSET else patch.name.strip()
    enabled = row["enabled"] if patch.enabled is msgspec.UNSET else patch.enabled
    if (name, enabled) == (row["name"], row["enabled"]):
        return
    async with conn.transaction():
        await store.update_type(conn, row["code"], name, enabled)
        await oplog_store.record(conn, keys.principal(request), keys.client_address(request), "update",
                                 "payment_type", row["id"], summary=f"payment type {row['code']}: {name}"
                                 + ("" if enabled else " (disabled)"),
                                 before={"name": row["name"], "enabled": row["enabled"]},
                                 after={"name": name, "enabled": enabled})


def _out(row: common.Row) -> PaymentType:
    return common.out(PaymentType, row)


async def _page(conn: Connection, request: web.Request, *, errors: Mapping[str, Any] | None = None,
                values: Mapping[str, Any] | None = None, status: int = 200) -> web.Response:
    return common.render("finance/payment_types.html", request, {
        "types": await store.types(conn), "errors": errors or {}, "values": dict(values or {}),
        "done": request.query.get("done", ""), "operator": keys.principal(request).partner_id is None},
        status=status)


@AREA.page("/finance/payments/types", permission="payments.edit")
async def types_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        return await _page(conn, request)


@AREA.page("/finance/payments/types", permission="payments.edit", method="POST")
async def add_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    async with request.app[keys.POOL].acquire() as conn:
        try:
            await add(conn, request, schemas.from_strings(form, PaymentTypeIn))
        except schemas.Invalid as e:
            return await _page(conn, request, errors={"add": e.errors}, values=form, status=422)
    raise web.HTTPFound("/admin/finance/payments/types?done=added")


@AREA.page("/finance/payments/types/{code}", permission="payments.edit", method="POST")
async def change_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    async with request.app[keys.POOL].acquire() as conn:
        row = await _type_or_404(conn, request.match_info["code"])
        try:
            name = schemas.from_strings(form, _Rename).name
            await change(conn, request, row, PaymentTypePatch(name=name, enabled="enabled" in form))
        except schemas.Invalid as e:
            return await _page(conn, request, errors={row["code"]: e.errors}, values=form, status=422)
    raise web.HTTPFound("/admin/finance/payments/types?done=saved")


class _Rename(msgspec.Struct, kw_only=True):
    """A type's row of the page: its name (its "enabled" box is read as it is)."""

    name: TypeName


# -- the API ------------------------------------------------------------------------------------

@AREA.api("GET", "/payments/types", permission="payments.view", summary="List payment types",
          response=list[PaymentType])
async def api_types(request: web.Request) -> web.StreamResponse:
    """Built-in and the operator's own, with how many payments each has; a payment names one by
    its `code` (a disabled one is refused for new payments)."""
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json([_out(r) for r in await store.types(conn)])


@AREA.api("POST", "/payments/types", permission="payments.edit", body=PaymentTypeIn, response=PaymentType,
          status=201, summary="Add a payment type")
async def api_add(request: web.Request) -> web.StreamResponse:
    """A type of the operator's own: its `code` (lower case, never changed) and its name."""
    data = await schemas.body(request, PaymentTypeIn)
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(_out(await add(conn, request, data)), status=201)


@AREA.api("PATCH", "/payments/types/{code}", permission="payments.edit", body=PaymentTypePatch,
          response=PaymentType, summary="Rename, disable or enable a payment type")
async def api_change(request: web.Request) -> web.StreamResponse:
    """Only the operator's own types change (409 for a built-in one); the code never does."""
    async with request.app[keys.POOL].acquire() as conn:
        row = await _type_or_404(conn, request.match_info["code"])
        patch = await schemas.body(request, PaymentTypePatch)
        await change(conn, request, row, patch)
        changed = [r for r in await store.types(conn) if r["code"] == row["code"]]
        return schemas.json(_out(changed[0]))
