"""Billing's settings (the one billing_settings row): the global switch, what new customers' billing
starts as, document numbers, dunning's calendar, automatic issuing; and "apply to existing
customers", which copies chosen groups of them to every customer's billing.

The row is global: only an administrator of every partner changes it. Applying it reaches the
customers the principal sees (a partner's administrator: its partner's).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, oplog_store, schemas
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.billing import money, numbering
from admin.finance import common, queries
from admin.finance.area import AREA
from admin.finance.schemas import (
    APPLY_GROUPS,
    SETTINGS_EDITABLE,
    Applied,
    ApplyIn,
    BillingSettings,
    BillingSettingsIn,
    BillingSettingsPatch,
)

GROUP_LABELS = {"billing": "billing type and timing", "billing_day": "billing day", "due_days": "days to pay",
                "dunning": "blocking and deactivation periods", "min_balance": "minimum balance",
                "enabled": "billing on or off"}
PATTERNS = ("invoice_pattern", "proforma_pattern", "credit_note_pattern", "receipt_pattern")
CONSTRAINTS = {
    "billing_settings_currency_iso": ("currency", "must be a three-letter currency code, like EUR"),
    "billing_settings_holiday_country_iso": ("holiday_country", "must be a two-letter country code"),
}


def _out(row: common.Row) -> BillingSettings:
    return common.out(BillingSettings, row, min_balance=str(row["min_balance"]), upgrade_fee=str(row["upgrade_fee"]),
                      downgrade_fee=str(row["downgrade_fee"]))


def _global(who: Principal) -> None:
    if who.partner_id is not None or who.creator_id is not None:
        raise web.HTTPForbidden(text="Billing's settings are every partner's: only an administrator of every "
                                     "partner changes them.")


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    """The settings' values as the row holds them; Invalid with every wrong field."""
    errors: dict[str, str] = {}
    out = dict(values)
    currency = out.get("currency")
    if currency is not None:
        try:
            money.digits(currency)
        except money.MoneyError:
            errors["currency"] = "not an ISO 4217 currency"
    for name in ("min_balance", "upgrade_fee", "downgrade_fee"):
        if name in out:
            out[name] = Decimal(str(out[name]))  # the schema's pattern: at most 4 decimals, as the column
            if currency is not None and "currency" not in errors and money.quantize(out[name], currency) != out[name]:
                errors[name] = f"{currency} has {money.digits(currency)} decimals"
    for name in PATTERNS:
        if name in out:
            try:
                numbering.validate(out[name])
            except numbering.NumberingError as e:
                errors[name] = str(e)
    if errors:
        raise schemas.Invalid(errors)
    return out


async def _save(conn: Connection, request: web.Request, values: dict[str, Any]) -> asyncpg.Record:
    who = keys.principal(request)
    _global(who)
    values = _checked(values)
    try:
        async with conn.transaction():
            before = await queries.settings(conn)
            changed = {k: v for k, v in values.items() if before[k] != v}
            if not changed:
                return before
            after = await queries.update_settings(conn, changed)
            old, new = schemas.row_json(before), schemas.row_json(after)
            await oplog_store.record(conn, who, keys.client_address(request), "update", "billing_settings", None,
                                     summary=f"billing settings: changed {', '.join(changed)}",
                                     before={k: old[k] for k in changed}, after={k: new[k] for k in changed})
            return after
    except asyncpg.CheckViolationError as e:
        field, text = CONSTRAINTS.get(e.constraint_name or "", ("", "the settings break a rule of the database"))
        raise schemas.Invalid({field: text}) from None


async def _apply(conn: Connection, request: web.Request, data: ApplyIn) -> int:
    who = keys.principal(request)
    if who.creator_id is not None:
        raise web.HTTPForbidden(text="An administrator limited to the customers it created applies no settings.")
    groups = list(dict.fromkeys(data.groups))
    columns = [c for g in groups for c in APPLY_GROUPS[g]]
    async with conn.transaction():
        count = await queries.apply_settings(conn, *common.scope(who), columns)
        await oplog_store.record(conn, who, keys.client_address(request), "apply", "billing_settings", None,
                                 partner_id=who.partner_id,
                                 summary=f"billing settings applied to {count} customers: "
                                         + ", ".join(GROUP_LABELS[g] for g in groups),
                                 after={"groups": groups, "customers": count})
    return count


def _render(request: web.Request, row: common.Row, *, values: Mapping[str, Any] | None = None,
            errors: Mapping[str, Mapping[str, str]] | None = None, status: int = 200) -> web.Response:
    who = keys.principal(request)
    saved = {k: row[k] for k in SETTINGS_EDITABLE}
    for name in ("min_balance", "upgrade_fee", "downgrade_fee"):
        saved[name] = str(money.quantize(row[name], row["currency"]))
    shown = {**saved, **(values or {})}
    return common.render("finance/settings.html", request, {
        "s": shown, "updated_at": row["updated_at"], "errors": errors or {}, "done": request.query.get("done", ""),
        "applied": request.query.get("customers", ""), "groups": list(GROUP_LABELS.items()),
        "may_edit": who.can("finance.edit") and who.partner_id is None and who.creator_id is None,
        "may_apply": who.can("finance.edit") and who.creator_id is None}, status=status)


@AREA.page("/finance/settings", permission="finance.view")
async def settings_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.settings(conn)
    return _render(request, row)


@AREA.page("/finance/settings", permission="finance.edit", method="POST")
async def save_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.settings(conn)
        values = {k: str(v) for k, v in form.items() if k != "_csrf"}
        try:
            _global(keys.principal(request))
            data = schemas.from_strings(values, BillingSettingsIn)
            await _save(conn, request, msgspec.structs.asdict(data))
        except schemas.Invalid as e:
            shown = {**values, **{k: k in values for k in ("enabled", "block_on_non_working_days", "auto_issue")}}
            return _render(request, row, values=shown, errors={"settings": e.errors}, status=422)
    raise web.HTTPFound("/admin/finance/settings?done=saved")


@AREA.page("/finance/settings/apply", permission="finance.edit", method="POST")
async def apply_form(request: web.Request) -> web.StreamResponse:
    """Copy the chosen groups of the settings to the customers' billing."""
    form = await request.post()
    async with request.app[keys.POOL].acquire() as conn:
        try:
            data = schemas.from_strings(form, ApplyIn)
            count = await _apply(conn, request, data)
        except schemas.Invalid as e:
            row = await queries.settings(conn)
            return _render(request, row, errors={"apply": {"groups": "choose what to apply"} if e.errors else {}},
                           status=422)
    raise web.HTTPFound(f"/admin/finance/settings?done=applied&customers={count}")


# -- the API ------------------------------------------------------------------------------------

@AREA.api("GET", "/finance/settings", permission="finance.view", response=BillingSettings,
          summary="Billing's settings")
async def api_settings(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(_out(await queries.settings(conn)))


@AREA.api("PATCH", "/finance/settings", permission="finance.edit", body=BillingSettingsPatch,
          response=BillingSettings, summary="Change billing's settings")
async def api_update_settings(request: web.Request) -> web.StreamResponse:
    """What new customers' billing starts as and the rest; existing customers keep theirs (see the apply operation).
    A key of one partner may not: the settings are every partner's (403)."""
    _global(keys.principal(request))
    patch = await schemas.body(request, BillingSettingsPatch)
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    async with request.app[keys.POOL].acquire() as conn:
        row = await _save(conn, request, changes) if changes else await queries.settings(conn)
        return schemas.json(_out(row))


@AREA.api("POST", "/finance/settings/apply", permission="finance.edit", body=ApplyIn, response=Applied,
          summary="Apply billing's settings to existing customers")
async def api_apply(request: web.Request) -> web.StreamResponse:
    """Copies the chosen groups of the settings to every customer's billing (a partner's key: its
    partner's customers); the currency never changes. `customers`: how many changed."""
    data = await schemas.body(request, ApplyIn)
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(Applied(await _apply(conn, request, data)))
