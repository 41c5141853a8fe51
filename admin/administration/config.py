"""Global settings (two-factor for everyone) and the definitions of custom fields (config.*: by
default only the super administrator has them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from aiohttp import web

from admin import keys, oplog_store, pages
from admin import schemas as common
from admin.administration import custom, guard, queries
from admin.administration import schemas as s
from admin.administration.area import AREA
from admin.administration.queries import Row
from admin.auth.store import Connection
from admin.web import path_id


@AREA.page("/settings", permission="config.view")
async def settings(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.admin_settings(conn)
    return pages.render("administration/settings.html", request, {
        "s": row, "done": request.query.get("done", ""), "error": ""})


@AREA.page("/settings", permission="config.edit", method="POST")
async def save_settings(request: web.Request) -> web.StreamResponse:
    """Save the settings. Requiring two-factor login for everyone needs the one who asks to have it
    (as GitHub asks of an organisation's owner), so the switch never sends its own author away."""
    who = keys.principal(request)
    f = common.from_strings(await request.post(), s.SettingsForm)
    async with request.app[keys.POOL].acquire() as conn:
        before = await queries.admin_settings(conn)
        me = await queries.administrator(conn, who.admin_id, None) if who.admin_id is not None else None
        if f.require_2fa and not before["require_2fa"] and (me is None or not me["two_factor"]):
            return pages.render("administration/settings.html", request, {
                "s": before, "done": "", "error": "Set up your own two-factor login first."}, status=409)
        async with conn.transaction():
            await queries.set_require_2fa(conn, f.require_2fa)
            await oplog_store.record(conn, who, keys.client_address(request), "update", "settings", None,
                                     summary="two-factor login " + ("required for everyone" if f.require_2fa
                                                                    else "no longer required for everyone"),
                                     before={"require_2fa": before["require_2fa"]},
                                     after={"require_2fa": f.require_2fa})
    raise web.HTTPFound("/admin/settings?done=saved")


# --- custom fields --------------------------------------------------------------------------------

def _public(row: Row) -> dict[str, Any]:
    return guard.snapshot(row, ("id", "object_type", "key", "label", "kind", "choices", "required",
                                               "position"))


def _choices(text: str) -> list[str]:
    """Choices one a line (or separated by commas when on one line), without blanks or repeats."""
    parts = text.splitlines() if "\n" in text.strip() else text.split(",")
    out: list[str] = []
    for p in (p.strip() for p in parts):
        if p and p not in out:
            out.append(p)
    return out


def _check(f: s.CustomFieldForm, new: bool) -> tuple[list[str], dict[str, str]]:
    errors: dict[str, str] = {}
    choices = _choices(f.choices) if f.kind == "choice" else []
    if new and not custom.KEY.match(f.key):
        errors["key"] = "lower-case letters, digits and _, starting with a letter (at most 40 characters)"
    if f.kind == "choice" and not choices:
        errors["choices"] = "a choice field needs its choices, one a line"
    if any(len(c) > 200 for c in choices):
        errors["choices"] = "a choice is at most 200 characters"
    return choices, errors


@AREA.page("/custom-fields", permission="config.view")
async def custom_fields(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        rows = [custom.Field.of(r) for r in await queries.custom_fields(conn)]
    groups = [(t, title, [r for r in rows if r.object_type == t]) for t, title in custom.OBJECT_TYPES.items()]
    return pages.render("administration/custom_fields.html", request, {
        "groups": groups, "kinds": custom.KINDS, "done": request.query.get("done", "")})


def _render_field(request: web.Request, field: Row | None, values: Mapping[str, Any],
                  errors: Mapping[str, str] | None = None) -> web.Response:
    return pages.render("administration/custom_field.html", request, {
        "field": field, "values": values, "errors": errors or {},
        "object_types": list(custom.OBJECT_TYPES.items()), "kinds": list(custom.KINDS.items())},
        status=422 if errors else 200)


def _submitted(form: Mapping[str, Any]) -> dict[str, Any]:
    return {k: str(form.get(k, "")) for k in ("object_type", "key", "label", "kind", "choices", "position")} | {
        "required": "required" in form}


@AREA.page("/custom-fields/new", permission="config.add")
async def new_field(request: web.Request) -> web.StreamResponse:
    wanted = request.query.get("object_type", "customer")
    return _render_field(request, None, {"object_type": wanted if wanted in custom.OBJECT_TYPES else "customer",
                                         "key": "", "label": "", "kind": "text", "choices": "", "required": False,
                                         "position": 0})


@AREA.page("/custom-fields", permission="config.add", method="POST")
async def create_field(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    form = await request.post()
    try:
        f = common.from_strings(form, s.CustomFieldForm)
    except common.Invalid as e:
        return _render_field(request, None, _submitted(form), e.errors)
    choices, errors = _check(f, True)
    if not errors:
        try:
            async with request.app[keys.POOL].acquire() as conn, conn.transaction():
                field_id = await queries.insert_custom_field(conn, f.object_type, f.key, f.label, f.kind, choices,
                                                             f.required, f.position)
                row = await queries.custom_field(conn, field_id)
                assert row is not None
                await oplog_store.record(conn, who, keys.client_address(request), "create", "custom_field", field_id,
                                         summary=f"added custom field {f.object_type}.{f.key}", after=_public(row))
        except asyncpg.UniqueViolationError:
            errors["key"] = f"a {f.object_type} field has this key already"
        except asyncpg.CheckViolationError:
            errors[""] = "the field is not valid"
    if errors:
        return _render_field(request, None, _submitted(form), errors)
    raise web.HTTPFound(f"/admin/custom-fields?done=created#{f.object_type}")


async def _field(conn: Connection, request: web.Request) -> asyncpg.Record:
    row = await queries.custom_field(conn, path_id(request))
    if row is None:
        raise web.HTTPNotFound(text="No such custom field.")
    return row


@AREA.page("/custom-fields/{id}", permission="config.view")
async def field(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await _field(conn, request)
    return _render_field(request, row, {**_public(row), "choices": "\n".join(row["choices"])})


@AREA.page("/custom-fields/{id}", permission="config.edit", method="POST")
async def save_field(request: web.Request) -> web.StreamResponse:
    """Change a field's label, kind, choices, whether it is required and its place (not its object
    or key: the values already stored are kept under the key)."""
    who = keys.principal(request)
    form = await request.post()
    async with request.app[keys.POOL].acquire() as conn:
        row = await _field(conn, request)
        values = _submitted(form) | {"object_type": row["object_type"], "key": row["key"]}
        try:
            f = common.from_strings(values, s.CustomFieldForm)
        except common.Invalid as e:
            return _render_field(request, row, values, e.errors)
        choices, errors = _check(f, False)
        if errors:
            return _render_field(request, row, values, errors)
        async with conn.transaction():
            await queries.update_custom_field(conn, row["id"], f.label, f.kind, choices, f.required, f.position)
            after = await queries.custom_field(conn, row["id"])
            assert after is not None
            await oplog_store.record(conn, who, keys.client_address(request), "update", "custom_field", row["id"],
                                     summary=f"changed custom field {row['object_type']}.{row['key']}",
                                     before=_public(row), after=_public(after))
    raise web.HTTPFound(f"/admin/custom-fields?done=saved#{row['object_type']}")


@AREA.page("/custom-fields/{id}/delete", permission="config.delete", method="POST")
async def delete_field(request: web.Request) -> web.StreamResponse:
    """Delete a definition; values stored under its key stay in the rows but are no longer shown."""
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        row = await _field(conn, request)
        await queries.delete_custom_field(conn, row["id"])
        await oplog_store.record(conn, who, keys.client_address(request), "delete", "custom_field", row["id"],
                                 summary=f"deleted custom field {row['object_type']}.{row['key']}",
                                 before=_public(row))
    raise web.HTTPFound(f"/admin/custom-fields?done=deleted#{row['object_type']}")
