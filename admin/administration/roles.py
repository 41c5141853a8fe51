"""Roles: the list with how many use each, the permission matrix, copying a role into a new
custom one, deleting an unused custom role. Built-in roles keep their name and cannot be deleted;
the super role has every permission whatever its row says."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from aiohttp import web

from admin import keys, oplog_store, pages
from admin import schemas as common
from admin.administration import guard, queries
from admin.administration import schemas as s
from admin.administration.area import AREA
from admin.administration.queries import Row
from admin.auth import permissions
from admin.auth.store import Connection
from admin.web import path_id


def public(row: Row) -> dict[str, Any]:
    return guard.snapshot(row, ("id", "name", "builtin", "permissions", "own_customers_only",
                                               "require_2fa"))


def to_api(row: Row) -> s.Role:
    return s.Role(id=row["id"], name=row["name"], builtin=row["builtin"],
                  permissions=sorted(guard.role_permissions(row)), own_customers_only=row["own_customers_only"],
                  require_2fa=row["require_2fa"], administrators=row["administrators"], api_keys=row["api_keys"])


async def _role(conn: Connection, request: web.Request) -> asyncpg.Record:
    row = await queries.role(conn, path_id(request))
    if row is None:
        raise web.HTTPNotFound(text="No such role.")
    return row


def _usage(admins: int, api_keys: int) -> str:
    parts = [f"{admins} administrator{'s' if admins != 1 else ''}"] if admins else []
    parts += [f"{api_keys} API key{'s' if api_keys != 1 else ''}"] if api_keys else []
    return " and ".join(parts)


@AREA.page("/roles", permission="administration.view")
async def roles(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.roles(conn)
    return pages.render("administration/roles.html", request, {
        "rows": rows, "done": request.query.get("done", ""), "all": len(permissions.ALL)})


async def _render_role(request: web.Request, role: Row, values: Mapping[str, Any] | None = None,
                       errors: Mapping[str, str] | None = None, status: int = 422) -> web.Response:
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn:
        a = await guard.actor(conn, who)
        admins, api_keys = await queries.role_usage(conn, role["id"])
    editable = who.can("administration.edit") and who.partner_id is None and (
        role["builtin"] != permissions.SUPER or a.is_super)
    return pages.render("administration/role.html", request, {
        "role": role, "values": values or {"name": role["name"], "perm": list(guard.role_permissions(role)),
                                           "own_customers_only": role["own_customers_only"],
                                           "require_2fa": role["require_2fa"]},
        "errors": errors or {}, "editable": editable, "used_by": _usage(admins, api_keys),
        "areas": permissions.AREAS, "actions": permissions.ACTIONS, "done": request.query.get("done", "")},
        status=status if errors else 200)


@AREA.page("/roles/{id}", permission="administration.view")
async def role(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await _role(conn, request)
    return await _render_role(request, row)


@AREA.page("/roles/{id}", permission="administration.edit", method="POST")
async def save(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    guard.edit_roles(who)
    form = await request.post()
    async with request.app[keys.POOL].acquire() as conn:
        a = await guard.actor(conn, who)
        row = await _role(conn, request)
        is_super_role = row["builtin"] == permissions.SUPER
        if is_super_role and not a.is_super:
            raise web.HTTPForbidden(text="Only a super administrator may change the super role.")
        try:
            f = common.from_strings(form, s.RoleForm)
        except common.Invalid as e:
            return await _render_role(request, row, {"name": str(form.get("name", "")), "perm": form.getall(
                "perm", []), "own_customers_only": "own_customers_only" in form, "require_2fa": "require_2fa" in form},
                e.errors)
        values = {"name": f.name, "perm": f.perm, "own_customers_only": f.own_customers_only,
                  "require_2fa": f.require_2fa}
        errors: dict[str, str] = {}
        name = row["name"] if row["builtin"] is not None else f.name
        if not name:
            errors["name"] = "is required"
        wanted = set(permissions.ALL if is_super_role else f.perm)
        if why := guard.add_permissions(a, wanted - set(row["permissions"])):
            errors["perm"] = why
        if not errors:
            try:
                async with conn.transaction():
                    await queries.update_role(conn, row["id"], name, sorted(wanted), f.own_customers_only,
                                              f.require_2fa)
                    after = await queries.role(conn, row["id"])
                    assert after is not None
                    await oplog_store.record(conn, who, keys.client_address(request), "update", "role", row["id"],
                                             summary=f"changed role {name}", before=public(row), after=public(after))
            except asyncpg.UniqueViolationError:
                errors["name"] = "another role has this name"
    if errors:
        return await _render_role(request, row, values, errors)
    raise web.HTTPFound(f"/admin/roles/{row['id']}?done=saved")


@AREA.page("/roles/{id}/copy", permission="administration.add")
async def copy_form(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await _role(conn, request)
    return pages.render("administration/role_copy.html", request, {
        "role": row, "values": {"name": f"{row['name']} (copy)"}, "errors": {}})


@AREA.page("/roles/{id}/copy", permission="administration.add", method="POST")
async def copy(request: web.Request) -> web.StreamResponse:
    """A new custom role with the permissions and settings of this one."""
    who = keys.principal(request)
    guard.edit_roles(who)
    form = await request.post()
    errors: dict[str, str] = {}
    async with request.app[keys.POOL].acquire() as conn:
        a = await guard.actor(conn, who)
        row = await _role(conn, request)
        try:
            f = common.from_strings(form, s.CopyForm)
        except common.Invalid as e:
            errors = e.errors
        else:
            perms = sorted(guard.role_permissions(row))
            if why := guard.add_permissions(a, perms):
                errors["name"] = why
            else:
                try:
                    async with conn.transaction():
                        new_id = await queries.insert_role(conn, f.name, perms, row["own_customers_only"],
                                                           row["require_2fa"])
                        new = await queries.role(conn, new_id)
                        assert new is not None
                        await oplog_store.record(conn, who, keys.client_address(request), "create", "role", new_id,
                                                 summary=f"copied role {row['name']} to {f.name}", after=public(new))
                except asyncpg.UniqueViolationError:
                    errors["name"] = "another role has this name"
    if errors:
        return pages.render("administration/role_copy.html", request, {
            "role": row, "values": {"name": str(form.get("name", ""))}, "errors": errors}, status=422)
    raise web.HTTPFound(f"/admin/roles/{new_id}?done=copied")


@AREA.page("/roles/{id}/delete", permission="administration.delete", method="POST")
async def delete(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    guard.edit_roles(who)
    error = ""
    async with request.app[keys.POOL].acquire() as conn:
        row = await _role(conn, request)
        admins, api_keys = await queries.role_usage(conn, row["id"])
        if row["builtin"] is not None:
            error = "A built-in role cannot be deleted."
        elif admins or api_keys:
            error = f"This role is used by {_usage(admins, api_keys)}: give them another role first."
        else:
            try:
                async with conn.transaction():
                    await queries.delete_role(conn, row["id"])
                    await oplog_store.record(conn, who, keys.client_address(request), "delete", "role", row["id"],
                                             summary=f"deleted role {row['name']}", before=public(row))
            except asyncpg.ForeignKeyViolationError:
                error = "This role is in use: give its users another role first."
    if error:
        return await _render_role(request, row, errors={"": error}, status=409)
    raise web.HTTPFound("/admin/roles?done=deleted")


@AREA.api("GET", "/roles", permission="administration.view", summary="List roles",
          response=common.Page[s.Role])
async def api_roles(request: web.Request) -> web.StreamResponse:
    """Every role with its permissions and how many administrators and API keys have it (one page)."""
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.roles(conn)
    return common.json(common.Page(items=[to_api(r) for r in rows]))
