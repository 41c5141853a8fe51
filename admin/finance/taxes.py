"""Taxes (Finance → Settings → Taxes): tax rates (a name and a percent) and tax groups (the rates a
line pays together; a group without rates is outside the scope of tax), which tariffs and items
for the next invoice name (admin/tariffs/, admin/billing/taxes.py prices them).

Rates and groups are every partner's (the tables have no partner): an administrator of one
partner sees them, only an administrator of every partner changes them. A rate that a group
takes, or a group that a tariff or a waiting item names, is not deleted (the foreign keys are
RESTRICT): the refusal names what uses it. Changing a rate changes the documents issued from then
on; an issued line keeps the taxes it was issued with (document_lines.taxes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, oplog_store, schemas
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.finance import common, taxes_store
from admin.finance.area import AREA
from admin.schemas import Deleted, Id
from admin.web import path_id

PERCENT_PATTERN = r"^[0-9]{1,3}(\.[0-9]{1,4})?$"
TaxName = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]
Percent = Annotated[str, msgspec.Meta(
    description='a decimal string from 0 to 999.9999 ("20", "7.7"): the rate\'s percent of the net',
    extra_json_schema={"pattern": PERCENT_PATTERN, "format": "decimal"})]


class TaxRateIn(msgspec.Struct, kw_only=True):
    name: TaxName
    percent: Percent


class TaxRatePatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: TaxName | msgspec.UnsetType = msgspec.UNSET
    percent: Percent | msgspec.UnsetType = msgspec.UNSET


class TaxRate(msgspec.Struct, kw_only=True):
    """A rate, with the names of the groups that take it (a rate in a group is not deleted)."""

    id: int
    name: str
    percent: Decimal
    groups: list[str]
    created_at: dt.datetime


class TaxGroupIn(msgspec.Struct, kw_only=True):
    """A group and the ids of the rates it takes (none: outside the scope of tax)."""

    name: TaxName
    rate_ids: Annotated[list[Id], msgspec.Meta(max_length=20)] = []


class TaxGroupPatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: TaxName | msgspec.UnsetType = msgspec.UNSET
    rate_ids: Annotated[list[Id], msgspec.Meta(max_length=20)] | msgspec.UnsetType = msgspec.UNSET


class TaxGroupRate(msgspec.Struct, kw_only=True):
    id: int
    name: str
    percent: Decimal


class TaxGroup(msgspec.Struct, kw_only=True):
    """A group with its rates and how many tariffs are on it (a group in use is not deleted)."""

    id: int
    name: str
    rates: list[TaxGroupRate]
    tariffs: int
    created_at: dt.datetime


CONSTRAINTS = {
    "tax_rates_name_unique": ("name", "another tax rate has this name"),
    "tax_rates_name_nonempty": ("name", "is required"),
    "tax_rates_percent_range": ("percent", "must be from 0 to 999.9999"),
    "tax_groups_name_unique": ("name", "another tax group has this name"),
    "tax_groups_name_nonempty": ("name", "is required"),
    "tax_group_rates_rate_fk": ("rate_ids", "no such tax rate (deleted meanwhile?)"),
}


class InUse(Exception):
    """A rate or group that something still uses: ``str()`` says what."""


def _editor(who: Principal) -> None:
    if who.partner_id is not None or who.creator_id is not None:
        raise web.HTTPForbidden(text="Tax rates and groups are every partner's: only an administrator of every "
                                     "partner changes them.")


def _name(text: str) -> str:
    name = text.strip()
    if not name:
        raise schemas.Invalid({"name": "is required"})
    return name


def _percent(text: str) -> Decimal:
    given = text.strip().replace(",", ".").removesuffix("%").strip()
    try:
        value = Decimal(given)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or not 0 <= value < 1000 or value != value.quantize(Decimal("0.0001")):
        raise schemas.Invalid({"percent": "must be a percent from 0 to 999.9999 with at most 4 decimals, like 20 "
                                          "or 7.7"})
    return value


def _refused(e: asyncpg.IntegrityConstraintViolationError) -> schemas.Invalid:
    field, text = CONSTRAINTS.get(e.constraint_name or "", ("", "the database refused it: "
                                                              + str(e).splitlines()[0]))
    return schemas.Invalid({field: text})


def _rate_out(row: common.Row) -> TaxRate:
    return common.out(TaxRate, row, groups=list(row["groups"]))


def _group_out(row: common.Row, rates: Mapping[int, common.Row]) -> TaxGroup:
    return common.out(TaxGroup, row, rates=[TaxGroupRate(id=i, name=rates[i]["name"], percent=rates[i]["percent"])
                                            for i in row["rate_ids"] if i in rates])


def _rate_json(row: common.Row) -> dict[str, Any]:
    return schemas.row_json(row, ("name", "percent"))


# -- the changes, each in one transaction with its line of the operations log ----------------------

async def _save_rate(conn: Connection, request: web.Request, rate_id: int | None, name: str,
                     percent_text: str) -> asyncpg.Record:
    who = keys.principal(request)
    _editor(who)
    errors: dict[str, str] = {}
    for check, text in ((_name, name), (_percent, percent_text)):
        try:
            check(text)
        except schemas.Invalid as e:
            errors.update(e.errors)
    if errors:
        raise schemas.Invalid(errors)
    clean, percent = _name(name), _percent(percent_text)
    address = keys.client_address(request)
    try:
        async with conn.transaction():
            if rate_id is None:
                row = await taxes_store.create_rate(conn, clean, percent)
                await oplog_store.record(conn, who, address, "create", "tax_rate", row["id"],
                                         summary=f"created tax rate {clean} ({common.number(percent)}%)",
                                         after=_rate_json(row))
                return row
            before = await taxes_store.rate(conn, rate_id, lock=True)
            if before is None:
                raise web.HTTPNotFound(text="no such tax rate")
            if (before["name"], before["percent"]) == (clean, percent):
                return before
            row = await taxes_store.update_rate(conn, rate_id, clean, percent)
            await oplog_store.record(conn, who, address, "update", "tax_rate", rate_id,
                                     summary=f"changed tax rate {clean}: {common.number(before['percent'])}% -> "
                                             f"{common.number(percent)}% (documents issued from now on)",
                                     before=_rate_json(before), after=_rate_json(row))
            return row
    except asyncpg.IntegrityConstraintViolationError as e:
        raise _refused(e) from None


async def _delete_rate(conn: Connection, request: web.Request, rate_id: int) -> asyncpg.Record:
    who = keys.principal(request)
    _editor(who)
    try:
        async with conn.transaction():
            row = await taxes_store.rate(conn, rate_id, lock=True)
            if row is None:
                raise web.HTTPNotFound(text="no such tax rate")
            if not row["groups"] and await taxes_store.delete_rate(conn, rate_id):
                await oplog_store.record(conn, who, keys.client_address(request), "delete", "tax_rate", rate_id,
                                         summary=f"deleted tax rate {row['name']}", before=_rate_json(row))
                return row
    except asyncpg.ForeignKeyViolationError:
        pass  # a group took it meanwhile
    row = await taxes_store.rate(conn, rate_id)
    names = list(row["groups"]) if row is not None else []
    raise InUse(f"The tax rate {row['name'] if row else ''} is in the tax group{'s' if len(names) != 1 else ''} "
                f"{', '.join(names)}: take it out of {'them' if len(names) != 1 else 'it'} before deleting it.")


async def _save_group(conn: Connection, request: web.Request, group_id: int | None, name: str,
                      rate_ids: list[int]) -> asyncpg.Record:
    who = keys.principal(request)
    _editor(who)
    clean = _name(name)
    wanted = list(dict.fromkeys(rate_ids))
    address = keys.client_address(request)
    try:
        async with conn.transaction():
            known = await taxes_store.rate_ids(conn)
            if any(i not in known for i in wanted):
                raise schemas.Invalid({"rate_ids": "no such tax rate"})
            if group_id is None:
                group_id = await taxes_store.create_group(conn, clean)
                await taxes_store.set_group_rates(conn, group_id, wanted)
                row = await taxes_store.group(conn, group_id)
                assert row is not None
                await oplog_store.record(conn, who, address, "create", "tax_group", group_id,
                                         summary=f"created tax group {clean}",
                                         after={"name": clean, "rate_ids": list(row["rate_ids"])})
                return row
            before = await taxes_store.group(conn, group_id, lock=True)
            if before is None:
                raise web.HTTPNotFound(text="no such tax group")
            if before["name"] == clean and set(before["rate_ids"]) == set(wanted):
                return before
            if before["name"] != clean:
                await taxes_store.rename_group(conn, group_id, clean)
            await taxes_store.set_group_rates(conn, group_id, wanted)
            row = await taxes_store.group(conn, group_id)
            assert row is not None
            await oplog_store.record(conn, who, address, "update", "tax_group", group_id,
                                     summary=f"changed tax group {clean} (documents issued from now on)",
                                     before={"name": before["name"], "rate_ids": list(before["rate_ids"])},
                                     after={"name": clean, "rate_ids": list(row["rate_ids"])})
            return row
    except asyncpg.IntegrityConstraintViolationError as e:
        raise _refused(e) from None


async def _delete_group(conn: Connection, request: web.Request, group_id: int) -> asyncpg.Record:
    who = keys.principal(request)
    _editor(who)
    name = ""
    try:
        async with conn.transaction():
            row = await taxes_store.group(conn, group_id, lock=True)
            if row is None:
                raise web.HTTPNotFound(text="no such tax group")
            name = row["name"]
            if await taxes_store.delete_group(conn, group_id):
                await oplog_store.record(conn, who, keys.client_address(request), "delete", "tax_group", group_id,
                                         summary=f"deleted tax group {row['name']}",
                                         before={"name": row["name"], "rate_ids": list(row["rate_ids"])})
                return row
    except asyncpg.ForeignKeyViolationError:
        pass  # tariffs_tax_group_fk, next_invoice_items_tax_group_fk
    n, names, items = await taxes_store.group_users(conn, group_id)
    users = []
    if n:
        more = f" and {n - len(names)} more" if n > len(names) else ""
        users.append(f"{n} tariff{'s' if n != 1 else ''} ({', '.join(names)}{more})")
    if items:
        users.append(f"{items} item{'s' if items != 1 else ''} waiting for a customer's next invoice")
    raise InUse(f"The tax group {name} is used by {' and '.join(users) or 'a tariff'}: give "
                f"{'them' if n + items != 1 else 'it'} another tax group before deleting it.")


# -- the page ---------------------------------------------------------------------------------------

async def _render(request: web.Request, conn: Connection, *, form: str = "", values: Mapping[str, Any] | None = None,
                  errors: Mapping[str, str] | None = None, error: str = "", status: int = 200) -> web.Response:
    """The page; after a refused form, that form (``form``: "rate-new", "rate-<id>", "group-...")
    shows what was typed and its errors."""
    who = keys.principal(request)
    rates = await taxes_store.rates(conn)
    groups = await taxes_store.groups(conn)
    by_id = {r["id"]: r for r in rates}
    return common.render("finance/taxes.html", request, {
        "rates": rates, "groups": groups, "rates_by_id": by_id, "form": form, "values": values or {},
        "errors": errors or {}, "error": error, "done": request.query.get("done", ""),
        "may_edit": who.can("finance.edit") and who.partner_id is None and who.creator_id is None}, status=status)


@AREA.page("/finance/taxes", permission="finance.view")
async def taxes_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        return await _render(request, conn)


def _form_ids(form: Any) -> list[int]:
    ids = []
    for value in form.getall("rate_ids", []):
        if not str(value).isdigit() or not 0 < int(value) < 2**63:
            raise schemas.Invalid({"rate_ids": "no such tax rate"})
        ids.append(int(value))
    return ids


Change = Callable[[Connection, web.Request, "int | None", Any], Awaitable[object]]


def _form(path: str, what: str, done: str, change: Change) -> None:
    """A form of the page at ``path`` (POST): ``change(conn, request, id, form)`` does it; a refusal
    shows the page again (422, or 409 for what is in use) with the form as it was typed."""

    async def posted(request: web.Request) -> web.StreamResponse:
        object_id = path_id(request) if "{id}" in path else None
        form = await request.post()
        async with request.app[keys.POOL].acquire() as conn:
            try:
                await change(conn, request, object_id, form)
            except schemas.Invalid as e:
                values = {"name": form.get("name", ""), "percent": form.get("percent", ""),
                          "rate_ids": [str(v) for v in form.getall("rate_ids", [])]}
                return await _render(request, conn, form=f"{what}-{object_id or 'new'}", values=values,
                                     errors=e.errors, status=422)
            except InUse as e:
                return await _render(request, conn, error=str(e), status=409)
        raise web.HTTPFound(f"/admin/finance/taxes?done={what}-{done}")

    posted.__name__ = posted.__qualname__ = f"{what}_{done}_form"
    AREA.page(path, permission="finance.edit", method="POST")(posted)


def _rate_form(conn: Connection, request: web.Request, rate_id: int | None, form: Any) -> Awaitable[object]:
    return _save_rate(conn, request, rate_id, str(form.get("name", "")), str(form.get("percent", "")))


def _group_form(conn: Connection, request: web.Request, group_id: int | None, form: Any) -> Awaitable[object]:
    return _save_group(conn, request, group_id, str(form.get("name", "")), _form_ids(form))


_form("/finance/tax-rates", "rate", "created", _rate_form)
_form("/finance/tax-rates/{id}", "rate", "saved", _rate_form)
_form("/finance/tax-rates/{id}/delete", "rate", "deleted",
      lambda conn, request, i, _: _delete_rate(conn, request, i or 0))
_form("/finance/tax-groups", "group", "created", _group_form)
_form("/finance/tax-groups/{id}", "group", "saved", _group_form)
_form("/finance/tax-groups/{id}/delete", "group", "deleted",
      lambda conn, request, i, _: _delete_group(conn, request, i or 0))


# -- the API ----------------------------------------------------------------------------------------

@AREA.api("GET", "/finance/tax-rates", permission="finance.view", response=list[TaxRate], summary="Tax rates")
async def api_rates(request: web.Request) -> web.StreamResponse:
    """Every tax rate by name, with the groups that take it."""
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json([_rate_out(r) for r in await taxes_store.rates(conn)])


@AREA.api("POST", "/finance/tax-rates", permission="finance.edit", body=TaxRateIn, response=TaxRate, status=201,
          summary="Add a tax rate")
async def api_create_rate(request: web.Request) -> web.StreamResponse:
    """Only an administrator of every partner (403 for a partner's key); a name already taken is 422."""
    _editor(keys.principal(request))
    data = await schemas.body(request, TaxRateIn)
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(_rate_out(await _save_rate(conn, request, None, data.name, data.percent)), status=201)


@AREA.api("PATCH", "/finance/tax-rates/{id}", permission="finance.edit", body=TaxRatePatch, response=TaxRate,
          summary="Change a tax rate")
async def api_update_rate(request: web.Request) -> web.StreamResponse:
    """The documents issued from then on use the new percent; issued ones keep theirs."""
    _editor(keys.principal(request))
    rate_id = path_id(request)
    patch = await schemas.body(request, TaxRatePatch)
    async with request.app[keys.POOL].acquire() as conn:
        row = await taxes_store.rate(conn, rate_id)
        if row is None:
            raise web.HTTPNotFound(text="no such tax rate")
        name = row["name"] if patch.name is msgspec.UNSET else patch.name
        percent = str(row["percent"]) if patch.percent is msgspec.UNSET else patch.percent
        return schemas.json(_rate_out(await _save_rate(conn, request, rate_id, name, percent)))


@AREA.api("DELETE", "/finance/tax-rates/{id}", permission="finance.edit", response=Deleted,
          summary="Delete a tax rate", description="Refused (409) while a tax group takes the rate.")
async def api_delete_rate(request: web.Request) -> web.StreamResponse:
    rate_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        try:
            await _delete_rate(conn, request, rate_id)
        except InUse as e:
            return schemas.problem(409, "tax rate in use", str(e))
    return schemas.json(Deleted(rate_id))


@AREA.api("GET", "/finance/tax-groups", permission="finance.view", response=list[TaxGroup], summary="Tax groups")
async def api_groups(request: web.Request) -> web.StreamResponse:
    """Every tax group by name, with its rates (none: outside the scope of tax) and its tariffs' count."""
    async with request.app[keys.POOL].acquire() as conn:
        rates = {r["id"]: r for r in await taxes_store.rates(conn)}
        return schemas.json([_group_out(g, rates) for g in await taxes_store.groups(conn)])


async def _group_response(conn: Connection, row: asyncpg.Record, status: int = 200) -> web.Response:
    rates = {r["id"]: r for r in await taxes_store.rates(conn)}
    return schemas.json(_group_out(row, rates), status=status)


@AREA.api("POST", "/finance/tax-groups", permission="finance.edit", body=TaxGroupIn, response=TaxGroup, status=201,
          summary="Add a tax group")
async def api_create_group(request: web.Request) -> web.StreamResponse:
    _editor(keys.principal(request))
    data = await schemas.body(request, TaxGroupIn)
    async with request.app[keys.POOL].acquire() as conn:
        row = await _save_group(conn, request, None, data.name, list(data.rate_ids))
        return await _group_response(conn, row, 201)


@AREA.api("PATCH", "/finance/tax-groups/{id}", permission="finance.edit", body=TaxGroupPatch, response=TaxGroup,
          summary="Change a tax group")
async def api_update_group(request: web.Request) -> web.StreamResponse:
    """``rate_ids`` replaces the group's rates. The documents issued from then on are taxed so."""
    _editor(keys.principal(request))
    group_id = path_id(request)
    patch = await schemas.body(request, TaxGroupPatch)
    async with request.app[keys.POOL].acquire() as conn:
        row = await taxes_store.group(conn, group_id)
        if row is None:
            raise web.HTTPNotFound(text="no such tax group")
        name = row["name"] if patch.name is msgspec.UNSET else patch.name
        ids = list(row["rate_ids"]) if patch.rate_ids is msgspec.UNSET else list(patch.rate_ids)
        return await _group_response(conn, await _save_group(conn, request, group_id, name, ids))


@AREA.api("DELETE", "/finance/tax-groups/{id}", permission="finance.edit", response=Deleted,
          summary="Delete a tax group",
          description="Refused (409) while a tariff or an item for the next invoice names the group.")
async def api_delete_group(request: web.Request) -> web.StreamResponse:
    group_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        try:
            await _delete_group(conn, request, group_id)
        except InUse as e:
            return schemas.problem(409, "tax group in use", str(e))
    return schemas.json(Deleted(group_id))
