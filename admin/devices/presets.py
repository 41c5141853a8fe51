"""CPE presets: the list (in the order the ACS applies them), the editor, a dry run against a
device, delete; and the API.

Presets are global (acs_presets has no partner): every administrator with the ``networking``
permissions sees and changes them all. A preset is checked as the ACS checks it
(schemas.py ``preset_problems``: its match keys, each action's shape, the aliases, each value's
template compiled in Jinja2's sandbox) and the files it downloads must exist, so the ACS never
meets a preset it refuses. Saving one notifies the ACS (acs_presets' NOTIFY trigger), which takes
it from its next session on.

A dry run inserts the draft ({"match", "actions"}) into acs_dry_runs for one device; an acs
instance computes what it would do (acs/plan.py ``dry_run_json``: the presets that match, the
values they declare, the RPCs of the first round, the faults) into the row, which the editor
polls for :data:`DRY_RUN_WAIT_S` seconds before it says that no ACS answered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, pages, schemas
from admin.auth.store import Connection
from admin.devices import queries
from admin.devices.common import AREA, Row, actor, log, out, refused, scope
from admin.devices.schemas import (
    ALIASES,
    MASK,
    CpePreset,
    PresetFields,
    PresetIn,
    downloads_of,
    is_secret,
    parse_tags,
    preset_problems,
)
from admin.schemas import Deleted
from admin.web import path_id

DRY_RUN_WAIT_S = 10
"""How long the editor waits for an acs instance to answer a dry run."""
PROTECTED = "default"
"""The preset schema.sql puts back on every `lastmile db init`: disabled, not deleted."""
DEFAULTS: dict[str, Any] = {"name": "", "enabled": True, "weight": 0, "match": {}, "actions": []}
EXAMPLE = [{"set": "@wifi.ssid", "value": "{{ customer.name }} Wi-Fi"},
           {"set": "@pppoe.username", "value": "{{ service.login }}"},
           {"refresh": "@device_info", "max_age": 86400}]


async def _check(conn: Connection, data: PresetIn) -> None:
    """The preset as the ACS would take it, and the files its downloads name: schemas.Invalid
    with the problems on the match and actions fields."""
    problems = preset_problems(data.match, data.actions)
    for i, action in enumerate(data.actions, 1):
        for file_id in downloads_of([action]):
            f = await queries.file(conn, file_id) if 0 < file_id < 2**63 else None
            if f is None or not f["complete"]:
                problems.append(f"action {i}: download: no such file {file_id}")
    errors: dict[str, str] = {}
    for field in ("match", "actions"):
        mine = [p for p in problems if p.startswith("match") == (field == "match")]
        if mine:
            errors[field] = "; ".join(mine)
    if errors:
        raise schemas.Invalid(errors)


async def _save(request: web.Request, preset_id: int | None, data: PresetIn) -> Row:
    values = msgspec.structs.asdict(data)
    try:
        async with request.app[keys.POOL].acquire() as conn, conn.transaction():
            await _check(conn, data)
            if preset_id is None:
                row = await queries.create_preset(conn, values)
                await log(conn, request, "create", "cpe_preset", row["id"], f"created CPE preset {row['name']}",
                          after=schemas.row_json(row, values))
                return row
            before = await queries.preset(conn, preset_id, lock=True)
            if before is None:
                raise web.HTTPNotFound(text="no such preset")
            diff = [k for k in values if before[k] != values[k]]
            if not diff:
                return before
            row = await queries.update_preset(conn, preset_id, values)
            await log(conn, request, "update", "cpe_preset", preset_id,
                      f"changed CPE preset {row['name']}: {', '.join(diff)}",
                      before=schemas.row_json(before, diff), after=schemas.row_json(row, diff))
            return row
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise refused(e) from None


async def _delete(request: web.Request, preset_id: int) -> Row:
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        row = await queries.preset(conn, preset_id, lock=True)
        if row is None:
            raise web.HTTPNotFound(text="no such preset")
        if row["name"] == PROTECTED:
            raise web.HTTPConflict(text=f"The {PROTECTED} preset comes back with every `lastmile db init`: "
                                        "disable it instead.")
        await queries.delete_preset(conn, preset_id)
        await log(conn, request, "delete", "cpe_preset", preset_id, f"deleted CPE preset {row['name']}",
                  before=schemas.row_json(row, DEFAULTS))
    return row


# -- the form ---------------------------------------------------------------------------------

def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def from_form(form: Mapping[str, Any]) -> PresetIn:
    """The editor's fields as a preset: the match from its fields (an empty one left out), the
    actions from the JSON text."""
    errors: dict[str, str] = {}
    match: dict[str, Any] = {}
    try:
        tags = parse_tags(str(form.get("match_tags", "")))
        if tags:
            match["tags"] = tags
    except ValueError as e:
        errors["match_tags"] = str(e)
    for key in ("oui", "product_class", "software_version", "data_model"):
        value = str(form.get(f"match_{key}", "")).strip()
        if value:
            match[key] = value
    events = _split(str(form.get("match_events", "")))
    if events:
        match["events"] = events
    text = str(form.get("actions", "")).strip() or "[]"
    actions: Any = []
    try:
        actions = json.loads(text)
    except ValueError as e:
        errors["actions"] = f"not JSON: {e}"
    if not isinstance(actions, list):
        errors.setdefault("actions", "must be a JSON list of actions: [{...}, ...]")
        actions = []
    fields: PresetFields | None = None
    try:
        fields = schemas.from_strings(form, PresetFields)
    except schemas.Invalid as e:
        errors.update(e.errors)
    if errors or fields is None:
        raise schemas.Invalid(errors)
    return PresetIn(name=fields.name, enabled=fields.enabled, weight=fields.weight, match=match, actions=actions)


def form_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """A preset as the editor's fields."""
    match = row.get("match") or {}
    return {"id": row.get("id"), "name": row.get("name", ""), "enabled": row.get("enabled", True),
            "weight": row.get("weight", 0), "match_tags": ", ".join(match.get("tags", [])),
            "match_oui": match.get("oui", ""), "match_product_class": match.get("product_class", ""),
            "match_software_version": match.get("software_version", ""),
            "match_data_model": match.get("data_model", ""), "match_events": ", ".join(match.get("events", [])),
            "actions": json.dumps(row.get("actions", []), indent=2, ensure_ascii=False)}


async def _editor(request: web.Request, p: Mapping[str, Any], errors: Mapping[str, str], *, status: int = 200,
                  editing: bool) -> web.Response:
    async with request.app[keys.POOL].acquire() as conn:
        files = await queries.file_choices(conn)
    return pages.render("devices/preset.html", request, {
        "p": p, "errors": errors, "editing": editing, "aliases": ALIASES, "files": files,
        "example": json.dumps(EXAMPLE, indent=2), "protected": PROTECTED,
        "notice": request.query.get("done", "")}, status=status)


@AREA.page("/cpe/presets", permission="networking.view")
async def presets_list(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.list_presets(conn)
    return pages.render("devices/presets_list.html", request, {"rows": rows, "notice": request.query.get("done", ""),
                                                                 "name": request.query.get("name", "")})


@AREA.page("/cpe/presets/new", permission="networking.add")
async def preset_new(request: web.Request) -> web.StreamResponse:
    return await _editor(request, form_of({**DEFAULTS, "actions": EXAMPLE}), {}, editing=False)


@AREA.page("/cpe/presets/new", permission="networking.add", method="POST")
async def preset_create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        row = await _save(request, None, from_form(form))
    except schemas.Invalid as e:
        return await _editor(request, dict(form), e.errors, status=422, editing=False)
    raise web.HTTPFound(f"/admin/cpe/presets/{row['id']}?done=created")


@AREA.page("/cpe/presets/{id}", permission="networking.view")
async def preset_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.preset(conn, path_id(request))
    if row is None:
        raise web.HTTPNotFound()
    return await _editor(request, form_of(dict(row)), {}, editing=True)


@AREA.page("/cpe/presets/{id}", permission="networking.edit", method="POST")
async def preset_edit(request: web.Request) -> web.StreamResponse:
    preset_id = path_id(request)
    form = await request.post()
    try:
        await _save(request, preset_id, from_form(form))
    except schemas.Invalid as e:
        return await _editor(request, {**form, "id": preset_id}, e.errors, status=422, editing=True)
    raise web.HTTPFound(f"/admin/cpe/presets/{preset_id}?done=saved")


@AREA.page("/cpe/presets/{id}/delete", permission="networking.delete", method="POST")
async def preset_delete(request: web.Request) -> web.StreamResponse:
    preset_id = path_id(request)
    try:
        row = await _delete(request, preset_id)
    except web.HTTPConflict as e:
        async with request.app[keys.POOL].acquire() as conn:
            found = await queries.preset(conn, preset_id)
        assert found is not None
        return await _editor(request, form_of(dict(found)), {"": e.text or ""}, status=409, editing=True)
    raise web.HTTPFound(f"/admin/cpe/presets?done=deleted&name={row['name']}")


@AREA.page("/cpe/dry-runs", permission="networking.edit", method="POST")
async def dry_run_form(request: web.Request) -> web.StreamResponse:
    """The editor's draft against one device (an htmx fragment that polls the dry run's row)."""
    form = await request.post()
    try:
        draft = from_form({**form, "name": form.get("name") or "draft"})
        target = str(form.get("device", "")).strip()[:200]
        if not target:
            raise schemas.Invalid({"device": "give the cwmp id or serial of a device"})
        async with request.app[keys.POOL].acquire() as conn, conn.transaction():
            await _check(conn, draft)
            device = await queries.device_by_name(conn, *scope(request), target)
            if device is None:
                raise schemas.Invalid({"device": "no device has this cwmp id or serial"})
            run_id = await queries.create_dry_run(conn, device["id"], {"match": draft.match,
                                                                       "actions": draft.actions}, actor(request))
            await log(conn, request, "dry run", "cpe_preset", form_id(form),
                      f"dry run of preset {draft.name} against CPE {device['cwmp_id']}")
            row = await queries.dry_run(conn, *scope(request), run_id)
    except schemas.Invalid as e:
        # htmx swaps only a 2xx answer in: the errors go as one
        status = 200 if request.headers.get("HX-Request") else 422
        return pages.render("devices/_dry_run.html", request, {"errors": e.errors, "r": None}, status=status)
    return pages.render("devices/_dry_run.html", request, _dry_run_context(row))


def form_id(form: Mapping[str, Any]) -> int | None:
    """The preset a dry run was asked from (none for a new one)."""
    text = str(form.get("id", ""))
    return int(text) if text.isascii() and text.isdigit() and 0 < len(text) < 19 else None


def _dry_run_context(row: Row | None) -> dict[str, Any]:
    assert row is not None
    waited = row["waited"].total_seconds()
    result = row["result"] if isinstance(row["result"], dict) else {}
    values = [(path, MASK if is_secret(path) else v[0], v[1] if len(v) > 1 else "")
              for path, v in (result.get("values") or {}).items() if isinstance(v, list) and v]
    return {"r": row, "errors": {}, "result": result, "values": values, "wait_s": DRY_RUN_WAIT_S,
            "timed_out": row["status"] == "pending" and waited >= DRY_RUN_WAIT_S,
            "rpcs": [json.dumps(rpc, ensure_ascii=False) for rpc in result.get("rpcs") or []]}


@AREA.page("/cpe/dry-runs/{id}", permission="networking.view")
async def dry_run_status(request: web.Request) -> web.StreamResponse:
    """A dry run's fragment: polls itself each second while pending, up to DRY_RUN_WAIT_S."""
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.dry_run(conn, *scope(request), path_id(request))
    if row is None:
        raise web.HTTPNotFound()
    return pages.render("devices/_dry_run.html", request, _dry_run_context(row))


# -- API --------------------------------------------------------------------------------------

@AREA.api("GET", "/cpe/presets", permission="networking.view", summary="List CPE presets",
          response=list[CpePreset])
async def api_presets(request: web.Request) -> web.StreamResponse:
    """Every preset, in the order the ACS applies them (weight, then id)."""
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.list_presets(conn)
    return schemas.json([out(r, CpePreset) for r in rows])


@AREA.api("POST", "/cpe/presets", permission="networking.add", summary="Create a CPE preset", body=PresetIn,
          response=CpePreset, status=201)
async def api_create_preset(request: web.Request) -> web.StreamResponse:
    """422 with the problems in ``errors.match`` and ``errors.actions``, as the ACS would find them."""
    data = await schemas.body(request, PresetIn)
    return schemas.json(out(await _save(request, None, data), CpePreset), status=201)


@AREA.api("GET", "/cpe/presets/{id}", permission="networking.view", summary="Get a CPE preset", response=CpePreset)
async def api_preset(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.preset(conn, path_id(request))
    if row is None:
        raise web.HTTPNotFound(text="no such preset")
    return schemas.json(out(row, CpePreset))


@AREA.api("PUT", "/cpe/presets/{id}", permission="networking.edit", summary="Replace a CPE preset", body=PresetIn,
          response=CpePreset)
async def api_replace_preset(request: web.Request) -> web.StreamResponse:
    preset_id = path_id(request)
    data = await schemas.body(request, PresetIn)
    return schemas.json(out(await _save(request, preset_id, data), CpePreset))


@AREA.api("DELETE", "/cpe/presets/{id}", permission="networking.delete", summary="Delete a CPE preset",
          response=Deleted, description=f"409 for the {PROTECTED} preset (disable it instead).")
async def api_delete_preset(request: web.Request) -> web.StreamResponse:
    preset_id = path_id(request)
    try:
        await _delete(request, preset_id)
    except web.HTTPConflict as e:
        return schemas.problem(409, "preset protected", e.text or "")
    return schemas.json(Deleted(preset_id))
