"""Support → Groups: the groups of agents a ticket is given to, their list, the form (name, who
gets a new ticket, the members) and the members' shifts, and the API of both (the page's save and checks:
editing.py).

A group is its partner's, or every partner's (``partner_id`` NULL): a partner's administrator
sees and changes its own partner's groups and every partner's (another partner's: not found); an
administrator of every partner picks the partner of a new group (or none). Members are enabled
administrators of the group's partner or of every partner. support.view sees, support.edit
changes.

A shift (automation.Shift) is a member's: weekdays, a start and an end in the operator's time
zone; an end at or before the start crosses midnight. A member who leaves the group takes its
shifts along.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import asyncpg
from aiohttp import web

from admin import keys, pages, schemas
from admin.auth.store import Connection
from admin.schemas import Deleted
from admin.tickets import editing, groups_store
from admin.tickets.automation import AssignMode
from admin.tickets.common import AREA, Row, log, out
from admin.tickets.schemas import Group, GroupIn, GroupPatch, Shift, ShiftIn
from admin.web import parse_id, path_id

MODES = [(AssignMode.NOBODY.value, "Nobody: every member is told, none is assigned"),
         (AssignMode.RANDOM.value, "Random: a random member is assigned"),
         (AssignMode.SHIFT.value, "Shift: a random member on shift now is assigned (nobody on shift: "
                                  "every member is told)")]
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DEFAULTS: dict[str, Any] = {"name": "", "assign_mode": AssignMode.NOBODY.value, "partner_id": None, "members": []}
CONSTRAINTS = {
    "ticket_groups_name_nonempty": ("name", "is required"),
    "ticket_groups_name_unique": ("name", "another group of this partner has this name"),
    "ticket_groups_assign_mode_valid": ("assign_mode", "must be nobody, random or shift"),
    "ticket_groups_partner_fk": ("partner_id", "no such partner"),
    "ticket_shifts_weekdays_valid": ("weekdays", "tick at least one weekday"),
}
"""A constraint the database refused with, as the field and sentence the form shows."""


def refused(e: asyncpg.PostgresError) -> schemas.Invalid:
    name = getattr(e, "constraint_name", None) or ""
    if name in CONSTRAINTS:
        field, sentence = CONSTRAINTS[name]
        return schemas.Invalid({field: sentence})
    return schemas.Invalid({"": f"the database refused a value: {str(e).splitlines()[0]}"})


def _ids(form: Mapping[str, Any], name: str) -> list[int] | None:
    """Every value of ``name`` as ids (None: one is not an id)."""
    raw = form.getall(name, []) if hasattr(form, "getall") else form.get(name, [])
    values = [raw] if isinstance(raw, str) else list(raw)
    found = [parse_id(str(v)) for v in values if str(v) != ""]
    if any(v is None for v in found):
        return None
    return list(dict.fromkeys(v for v in found if v is not None))


def from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The group's name, assign mode and members: schemas.Invalid by field."""
    errors: dict[str, str] = {}
    name = str(form.get("name", "")).strip()
    if not name:
        errors["name"] = "is required"
    elif len(name) > 200 or "\n" in name or "\r" in name:
        errors["name"] = "must be one line of at most 200 characters"
    mode = str(form.get("assign_mode", ""))
    if mode not in {m.value for m in AssignMode}:
        errors["assign_mode"] = "must be nobody, random or shift"
    members = _ids(form, "members")
    if members is None:
        errors["members"] = "pick administrators from the list"
    if errors:
        raise schemas.Invalid(errors)
    return {"name": name, "assign_mode": mode, "members": members}


async def _save(request: web.Request, group_id: int | None, form: Mapping[str, Any]) -> asyncpg.Record:
    values = from_form(form)
    who = keys.principal(request)
    try:
        async with request.app[keys.POOL].acquire() as conn, conn.transaction():
            before = None
            if group_id is None:
                partner_id = editing.partner_of(request, form)
                if partner_id is not None and not await groups_store.partners(conn, partner_id):
                    raise schemas.Invalid({"partner_id": "no such partner"})
            else:
                before = await groups_store.group(conn, group_id, who.partner_id, lock=True)
                if before is None:
                    raise web.HTTPNotFound(text="no such group")
                _yours(request, before)
                partner_id = before["partner_id"]
            allowed = {int(r["id"]) for r in await groups_store.administrators(conn, partner_id)}
            if set(values["members"]) - allowed:
                raise schemas.Invalid({"members": "pick enabled administrators of the group's partner"})
            if before is None:
                row = await groups_store.create(conn, partner_id, values["name"], values["assign_mode"])
                await groups_store.set_members(conn, row["id"], values["members"])
                await log(conn, request, "create", editing.owner(row), f"created group {row['name']}",
                          object_type="ticket_group",
                          after={**schemas.row_json(row, ("name", "assign_mode", "partner_id")),
                                 "members": values["members"]})
                return row
            old_members = await groups_store.members(conn, before["id"])
            diff = [c for c in ("name", "assign_mode") if before[c] != values[c]]
            if sorted(values["members"]) != old_members:
                diff.append("members")
            if not diff:
                return before
            row = await groups_store.update(conn, before["id"], values["name"], values["assign_mode"])
            await groups_store.set_members(conn, row["id"], values["members"])
            show = {"name": None, "assign_mode": None}
            await log(conn, request, "update", editing.owner(row), f"changed group {row['name']}: {', '.join(diff)}",
                      object_type="ticket_group",
                      before={**{k: before[k] for k in show if k in diff}, "members": old_members},
                      after={**{k: row[k] for k in show if k in diff}, "members": sorted(values["members"])})
            return row
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise refused(e) from None


async def _group_or_404(request: web.Request, conn: Connection, group_id: int, *,
                        lock: bool = False) -> asyncpg.Record:
    """The group, to read, or (``lock``) to change: a group every partner shares is the
    operator's to change, a partner's administrator only reads it (403)."""
    row = await groups_store.group(conn, group_id, keys.principal(request).partner_id, lock=lock)
    if row is None:
        raise web.HTTPNotFound(text="no such group")
    if lock:
        _yours(request, row)
    return row


def _yours(request: web.Request, row: Row) -> None:
    if keys.principal(request).partner_id is not None and row["partner_id"] is None:
        raise web.HTTPForbidden(text="this group is every partner's: only the operator's administrators change it")


def _shift_view(row: Row) -> dict[str, Any]:
    """A shift as the operations log keeps it."""
    return {"administrator_id": row["administrator_id"], "weekdays": sorted(row["weekdays"]),
            "starts": row["starts"].isoformat(), "ends": row["ends"].isoformat()}


def _shift_line(row: Row) -> dict[str, Any]:
    days = sorted(row["weekdays"])
    crosses = row["ends"] <= row["starts"]
    return {"id": row["id"], "member": row.get("member", row["administrator_id"]),
            "days": ", ".join(WEEKDAYS[d] for d in days), "starts": row["starts"].strftime("%H:%M"),
            "ends": row["ends"].strftime("%H:%M"), "crosses": crosses}


async def _editor(request: web.Request, group: Mapping[str, Any], errors: Mapping[str, str], *,
                  status: int = 200, shift: Mapping[str, Any] | None = None,
                  shift_errors: Mapping[str, str] | None = None) -> web.Response:
    who = keys.principal(request)
    editing = group.get("id") is not None
    async with request.app[keys.POOL].acquire() as conn:
        partners = await groups_store.partners(conn, who.partner_id)
        if editing:
            partner_id = group.get("partner_id")
        elif who.partner_id is not None:
            partner_id = who.partner_id
        else:
            partner_id = parse_id(str(group.get("partner_id") or ""))
        admins = await groups_store.administrators(conn, partner_id)
        shifts = await groups_store.shifts(conn, int(group["id"])) if editing else []
        stored = await groups_store.members(conn, int(group["id"])) if editing else []
    members = group.get("members", stored)
    chosen = {str(m) for m in members}
    names = {int(r["id"]): r["name"] or r["login"] for r in admins}
    return pages.render("tickets/group_form.html", request, {
        "g": group, "errors": errors, "editing": editing, "modes": MODES,
        "partner_options": [(r["id"], r["name"]) for r in partners],
        "pick_partner": who.partner_id is None and not editing,
        "admin_options": [(r["id"], f"{r['name'] or r['login']} ({r['login']})") for r in admins],
        "chosen": chosen, "member_options": [(m, names.get(m, str(m))) for m in stored],
        "shifts": [_shift_line(s) for s in shifts], "weekdays": list(enumerate(WEEKDAYS)),
        "shift": shift or {"administrator_id": "", "weekdays": [], "starts": "08:00", "ends": "16:00"},
        "shift_errors": shift_errors or {}, "notice": request.query.get("done", "")}, status=status)


def _shown(form: Mapping[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {k: v for k, v in form.items() if k not in ("_csrf", "members")}
    shown["members"] = form.getall("members", []) if hasattr(form, "getall") else form.get("members", [])
    return shown


async def _load(request: web.Request, conn: Connection, group_id: int) -> asyncpg.Record:
    return await _group_or_404(request, conn, group_id)


GROUPS = editing.Kind("/tickets/groups", _load, _save, editing.rendering(_editor), DEFAULTS, shown=_shown)


@AREA.page("/tickets/groups", permission="support.view")
async def groups_list(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        rows = await groups_store.groups(conn, keys.principal(request).partner_id)
    modes = dict(MODES)
    return pages.render("tickets/groups_list.html", request, {
        "rows": rows, "modes": {k: v.split(":")[0] for k, v in modes.items()}, "notice": request.query.get("done", "")})


GROUPS.declare(AREA, "group")


# -- shifts ------------------------------------------------------------------------------------

def _time(text: str) -> dt.time | None:
    try:
        return dt.time.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        return None


def shift_of(form: Mapping[str, Any], members: list[int]) -> tuple[int, list[int], dt.time, dt.time]:
    """The posted shift line: its member (one of ``members``), weekdays, start and end; schemas.Invalid by field."""
    errors: dict[str, str] = {}
    member = parse_id(str(form.get("administrator_id", "")))
    if member is None or member not in members:
        errors["administrator_id"] = "pick a member of the group"
    raw = form.getall("weekdays", []) if hasattr(form, "getall") else form.get("weekdays", [])
    days = sorted({int(d) for d in raw if str(d) in {"0", "1", "2", "3", "4", "5", "6"}})
    if not days or len(days) != len(set(raw)):
        errors["weekdays"] = "tick at least one weekday"
    starts, ends = _time(str(form.get("starts", ""))), _time(str(form.get("ends", "")))
    if starts is None:
        errors["starts"] = "must be a time: 08:00"
    if ends is None:
        errors["ends"] = "must be a time: 16:00"
    if errors:
        raise schemas.Invalid(errors)
    assert member is not None and starts is not None and ends is not None
    return member, days, starts, ends


async def _add_shift(request: web.Request, group_id: int, form: Mapping[str, Any]) -> asyncpg.Record:
    """The posted shift added to the group (the page's form, the API's body): schemas.Invalid by field."""
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        group = await _group_or_404(request, conn, group_id, lock=True)
        member, days, starts, ends = shift_of(form, await groups_store.members(conn, group_id))
        row = await groups_store.add_shift(conn, group_id, member, days, starts, ends)
        line = _shift_line(row)
        await log(conn, request, "create", editing.owner(group),
                  f"group {group['name']}: shift of administrator {member} on {line['days']} "
                  f"{line['starts']}–{line['ends']}", object_type="ticket_shift", object_id=row["id"],
                  after=_shift_view(row))
        return row


async def _delete_shift(request: web.Request, group_id: int, shift_id: int) -> None:
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        group = await _group_or_404(request, conn, group_id, lock=True)
        gone = await groups_store.delete_shift(conn, group_id, shift_id)
        if gone is None:
            raise web.HTTPNotFound(text="no such shift")
        line = _shift_line(gone)
        await log(conn, request, "delete", editing.owner(group),
                  f"group {group['name']}: no shift of administrator {gone['administrator_id']} on {line['days']} "
                  f"{line['starts']}–{line['ends']}", object_type="ticket_shift", object_id=shift_id,
                  before=_shift_view(gone))


@AREA.page("/tickets/groups/{id}/shifts", permission="support.edit", method="POST")
async def shift_add(request: web.Request) -> web.StreamResponse:
    group_id = path_id(request)
    form = await request.post()
    try:
        await _add_shift(request, group_id, form)
    except schemas.Invalid as e:
        shift = {"administrator_id": str(form.get("administrator_id", "")),
                 "weekdays": [str(d) for d in form.getall("weekdays", [])],
                 "starts": str(form.get("starts", "")), "ends": str(form.get("ends", ""))}
        group = await GROUPS.row(request, group_id)
        return await _editor(request, dict(group), {}, status=422, shift=shift, shift_errors=e.errors)
    raise web.HTTPFound(f"/admin/tickets/groups/{group_id}?done=shift#shifts")


@AREA.page("/tickets/groups/{id}/shifts/{shift}/delete", permission="support.edit", method="POST")
async def shift_delete(request: web.Request) -> web.StreamResponse:
    group_id = path_id(request)
    await _delete_shift(request, group_id, path_id(request, "shift"))
    raise web.HTTPFound(f"/admin/tickets/groups/{group_id}?done=unshift#shifts")


# -- API --------------------------------------------------------------------------------------

async def _described(request: web.Request, group_id: int | None = None) -> list[Group]:
    async with request.app[keys.POOL].acquire() as conn:
        rows = await groups_store.described(conn, keys.principal(request).partner_id, group_id)
    return [out(r, Group) for r in rows]


async def _group_out(request: web.Request, group_id: int) -> Group:
    found = await _described(request, group_id)
    if not found:
        raise web.HTTPNotFound(text="no such group")
    return found[0]


@AREA.api("GET", "/tickets/groups", permission="support.view", summary="List ticket groups", response=list[Group])
async def api_groups(request: web.Request) -> web.StreamResponse:
    """The groups the caller sees (a partner's: its own partner's and every partner's), by name,
    each with its members and their shifts."""
    return schemas.json(await _described(request))


@AREA.api("GET", "/tickets/groups/{id}", permission="support.view", summary="Get a ticket group", response=Group)
async def api_group(request: web.Request) -> web.StreamResponse:
    return schemas.json(await _group_out(request, path_id(request)))


@AREA.api("POST", "/tickets/groups", permission="support.edit", summary="Add a ticket group", body=GroupIn,
          response=Group, status=201)
async def api_group_create(request: web.Request) -> web.StreamResponse:
    """``assign_mode``: who gets a new ticket of the group (nobody: every member is told; random;
    shift: a random member on shift now)."""
    data = await schemas.body(request, GroupIn)
    row = await _save(request, None, editing.as_form(data))
    return schemas.json(await _group_out(request, row["id"]), status=201)


@AREA.api("PATCH", "/tickets/groups/{id}", permission="support.edit", summary="Change a ticket group",
          body=GroupPatch, response=Group)
async def api_group_change(request: web.Request) -> web.StreamResponse:
    """Only the fields given change; ``members`` replaces the members. A group every partner
    shares is the operator's to change (403 for a partner's key)."""
    group_id = path_id(request)
    patch = await schemas.body(request, GroupPatch)
    before = await _group_out(request, group_id)
    base = {"name": before.name, "assign_mode": before.assign_mode, "members": before.members}
    await _save(request, group_id, editing.as_form(patch, editing.as_form(base)))
    return schemas.json(await _group_out(request, group_id))


@AREA.api("POST", "/tickets/groups/{id}/shifts", permission="support.edit", summary="Add a shift to a ticket group",
          body=ShiftIn, response=Shift, status=201)
async def api_shift_add(request: web.Request) -> web.StreamResponse:
    """A member's shift on its weekdays; an end at or before the start crosses midnight."""
    data = await schemas.body(request, ShiftIn)
    row = await _add_shift(request, path_id(request), editing.as_form(data))
    return schemas.json(out(row, Shift), status=201)


@AREA.api("DELETE", "/tickets/groups/{id}/shifts/{shift}", permission="support.edit",
          summary="Delete a ticket group's shift", response=Deleted)
async def api_shift_delete(request: web.Request) -> web.StreamResponse:
    shift_id = path_id(request, "shift")
    await _delete_shift(request, path_id(request), shift_id)
    return schemas.json(Deleted(shift_id))
