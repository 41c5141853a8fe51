"""Support → Ticket settings: the tickets the system opens itself (admin/tickets/automatic.py),
each kind on or off, the router drift after which one is opened (0: never), and the group they
go to: the one ``ticket_settings`` row (its page and API, one save). The operator's only: a
partner's administrator finds no page (404). support.view sees, support.edit changes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, pages, schemas
from admin.tickets import editing, settings_store
from admin.tickets.common import AREA, log, out
from admin.tickets.schemas import TicketSettings, TicketSettingsPatch

_OWNER = {"id": None, "partner_id": None, "customer_id": None}


class SettingsFields(msgspec.Struct, kw_only=True):
    tariff_tickets: bool = False
    cpe_fault_tickets: bool = False
    payment_failure_tickets: bool = False
    router_drift_minutes: Annotated[int, msgspec.Meta(ge=0, le=525600)] = 60
    group_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] | None = None


def _operator_only(request: web.Request) -> None:
    if keys.principal(request).partner_id is not None:
        raise web.HTTPNotFound(text="no such page")


async def _page(request: web.Request, values: Mapping[str, Any], errors: Mapping[str, str], *,
                status: int = 200) -> web.Response:
    async with request.app[keys.POOL].acquire() as conn:
        groups = await settings_store.groups(conn)
    return pages.render("tickets/settings.html", request, {
        "s": values, "errors": errors, "notice": request.query.get("done", ""),
        "group_options": [(g["id"], f"{g['name']} ({g['partner_name']})" if g["partner_name"] else g["name"])
                          for g in groups]}, status=status)


@AREA.page("/tickets/settings", permission="support.view")
async def settings_page(request: web.Request) -> web.StreamResponse:
    _operator_only(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await settings_store.settings(conn)
    return await _page(request, dict(row), {})


async def _save(request: web.Request, form: Mapping[str, Any]) -> asyncpg.Record:
    """The settings from the posted form (the page's, the API's body over the stored values):
    schemas.Invalid by field."""
    values = msgspec.structs.asdict(schemas.from_strings(form, SettingsFields))
    try:
        async with request.app[keys.POOL].acquire() as conn, conn.transaction():
            before = await settings_store.settings(conn, lock=True)
            if values["group_id"] is not None and values["group_id"] not in {
                    g["id"] for g in await settings_store.groups(conn)}:
                raise schemas.Invalid({"group_id": "no such group"})
            diff = [c for c in settings_store.COLUMNS if before[c] != values[c]]
            if not diff:
                return before
            row = await settings_store.update(conn, values)
            await log(conn, request, "update", _OWNER, f"changed ticket settings: {', '.join(diff)}",
                      object_type="ticket_settings", before=schemas.row_json(before, diff),
                      after=schemas.row_json(row, diff))
            return row
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise schemas.Invalid({"": f"the database refused a value: {str(e).splitlines()[0]}"}) from None


@AREA.page("/tickets/settings", permission="support.edit", method="POST")
async def settings_save(request: web.Request) -> web.StreamResponse:
    _operator_only(request)
    form = await request.post()
    try:
        await _save(request, form)
    except schemas.Invalid as e:
        shown: dict[str, Any] = {k: v for k, v in form.items() if k != "_csrf"}
        for box in ("tariff_tickets", "cpe_fault_tickets", "payment_failure_tickets"):
            shown[box] = box in form
        return await _page(request, shown, e.errors, status=422)
    raise web.HTTPFound("/admin/tickets/settings?done=saved")


# -- API --------------------------------------------------------------------------------------

@AREA.api("GET", "/tickets/settings", permission="support.view", summary="Get the automatic tickets' settings",
          response=TicketSettings)
async def api_settings(request: web.Request) -> web.StreamResponse:
    """The operator's: a partner's key finds none (404)."""
    _operator_only(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await settings_store.settings(conn)
    return schemas.json(out(row, TicketSettings))


@AREA.api("PATCH", "/tickets/settings", permission="support.edit", summary="Change the automatic tickets' settings",
          body=TicketSettingsPatch, response=TicketSettings)
async def api_settings_change(request: web.Request) -> web.StreamResponse:
    """Only the fields given change (``group_id`` null: no group)."""
    _operator_only(request)
    patch = await schemas.body(request, TicketSettingsPatch)
    async with request.app[keys.POOL].acquire() as conn:
        stored = await settings_store.settings(conn)
    row = await _save(request, editing.as_form(patch, editing.as_form({c: stored[c] for c in settings_store.COLUMNS})))
    return schemas.json(out(row, TicketSettings))
