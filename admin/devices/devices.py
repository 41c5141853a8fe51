"""CPE devices: the list and its search, a device's page (identity, its customer and service,
tags, tasks, faults, sessions, the parameter tree), the forms that change it, and the API.

Everything here is a row for the ACS (acs/) to act on, never a call to it: a task is a row of
acs_tasks the device's next session runs; "connection request" is a pending row of acs_wakeups
that an acs instance sends to the device's ConnectionRequestURL (the page polls the row for its
outcome), so the session, and the task, starts within seconds. A change of tags or of the
customer/service link marks the device stale: its presets apply again in its next session.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, listing, pages, schemas
from admin.auth.store import Connection
from admin.devices import queries
from admin.devices.common import AREA, Row, actor, log, out, refused, scope
from admin.devices.schemas import (
    ALIASES,
    CpeConnectionRequest,
    CpeDevice,
    CpeDeviceDetail,
    CpeParameter,
    CpeTask,
    DevicePatch,
    DeviceQuery,
    TaskCreateQuery,
    TaskIn,
    masked_args,
    parse_tags,
    shown,
    task_problems,
)
from admin.listing import as_time, listing_of
from admin.schemas import Page
from admin.web import path_id

CSV_COLUMNS = ("id", "cwmp_id", "oui", "product_class", "serial", "manufacturer", "software_version",
               "hardware_version", "status", "last_inform_at", "address", "pppoe_username", "tags",
               "customer_number", "customer_name", "service_login")
FORM_TASKS = ("reboot", "factory_reset", "refresh", "get", "set", "download")
"""The tasks the device page queues (the API takes every kind)."""
XSD_TYPES = ("xsd:string", "xsd:boolean", "xsd:unsignedInt", "xsd:int", "xsd:dateTime", "xsd:base64")
WAKEUP_POLL_S = 30
CPE_PASSWORD_PURPOSE = "acs-cpe"  # noqa: S105 (a name, not a password)
"""The sealing purpose of acs_devices.cpe_password: acs.server's CPE_PASSWORD_PURPOSE (the two
components meet in the column; tests/unit/test_admin_devices.py checks they agree)."""
_PASSWORD = re.compile(r"[\x21-\x7e]{8,256}")
"""How long the page polls a pending connection request before it says no acs instance took it."""
_NUMBER = re.compile(r"(\d+)")
TYPES = {"last_inform": as_time}


def _natural(name: str) -> list[Any]:
    """"10" after "9": instance numbers in their order."""
    return [int(p) if p.isdigit() else p for p in _NUMBER.split(name)]


@dataclass
class Node:
    """An object of the parameter tree: its parameters and sub-objects, and how many parameters are below."""

    path: str
    name: str
    params: list[Row] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)
    count: int = 0
    row: Row | None = None  # the object's own row (its writable flag), when the ACS has one


def tree(rows: Sequence[Row]) -> Node:
    """The parameter rows (paths) as nested objects, each level in natural order."""
    root = Node("", "")
    nodes = {"": root}

    def node(path: str) -> Node:
        if path in nodes:
            return nodes[path]
        inner = path[:-1]
        parent = inner.rsplit(".", 1)[0] + "." if "." in inner else ""
        made = Node(path, inner.rsplit(".", 1)[-1])
        node(parent).children.append(made)
        nodes[path] = made
        return made

    for r in rows:
        path = r["path"]
        if path.endswith("."):
            node(path).row = r
        else:
            parent = path.rsplit(".", 1)[0] + "." if "." in path else ""
            node(parent).params.append(r)

    def finish(n: Node) -> int:
        n.children.sort(key=lambda c: _natural(c.name))
        n.params.sort(key=lambda p: _natural(p["path"]))
        n.count = len(n.params) + sum(finish(c) for c in n.children)
        return n.count

    finish(root)
    return root


def _task_out(row: Row, wakeup_id: int | None = None) -> CpeTask:
    return out(row, CpeTask, args=masked_args(row["kind"], row["args"]), wakeup_id=wakeup_id)


def _device_out(row: Row) -> CpeDevice:
    return out(row, CpeDevice)


# -- changes (forms and API) ------------------------------------------------------------------

async def _device_or_404(conn: Connection, request: web.Request, device_id: int, *, lock: bool = False) -> Row:
    row = await queries.device(conn, *scope(request), device_id, lock=lock)
    if row is None:
        raise web.HTTPNotFound(text="no such device")
    return row


async def _link_values(conn: Connection, request: web.Request, before: Row,
                       given: Mapping[str, Any]) -> dict[str, Any]:
    """The customer_id and service_id columns ``given`` asks for, checked against the principal's
    scope: a service brings its customer; a customer alone keeps the service only if it is that
    customer's; no customer, no service."""
    partner, creator = scope(request)
    customer_id = given.get("customer_id", before["customer_id"])
    service_id = given.get("service_id", before["service_id"])
    if "service_id" in given and service_id is not None:
        service = await queries.service_in_scope(conn, partner, creator, service_id=service_id)
        if service is None:
            raise schemas.Invalid({"service_id": "no such service"})
        if "customer_id" in given and customer_id != service["customer_id"]:
            raise schemas.Invalid({"customer_id": "is not the service's customer"})
        return {"customer_id": service["customer_id"], "service_id": service_id}
    if customer_id is None:
        return {"customer_id": None, "service_id": None}
    if customer_id != before["customer_id"]:
        if await queries.customer_in_scope(conn, partner, creator, customer_id) is None:
            raise schemas.Invalid({"customer_id": "no such customer"})
        if "service_id" not in given:
            service_id = None
    return {"customer_id": customer_id, "service_id": service_id}


async def _change(request: web.Request, device_id: int, given: Mapping[str, Any]) -> Row:
    """Change tags and/or the link of a device; returns the device as it is now."""
    pool = request.app[keys.POOL]
    try:
        async with pool.acquire() as conn, conn.transaction():
            before = await _device_or_404(conn, request, device_id, lock=True)
            values: dict[str, Any] = {}
            if "tags" in given:
                values["tags"] = list(given["tags"])
            if "customer_id" in given or "service_id" in given:
                values.update(await _link_values(conn, request, before, given))
            diff = {k: v for k, v in values.items() if before[k] != v}
            password = given.get("cpe_password")
            new_password = password is not None or ("cpe_password" in given and before["own_password"])
            if not diff and not new_password:
                return before
            if diff:
                await queries.update_device(conn, device_id, diff)
            if new_password:
                keyring = request.app[keys.KEYRING]
                await queries.set_cpe_password(
                    conn, device_id, None if password is None else keyring.seal(password, CPE_PASSWORD_PURPOSE))
            after = await queries.device(conn, None, None, device_id)
            assert after is not None
            said = [_said(before, after, diff)] if diff else []
            if new_password:
                said.append("its own CWMP password set" if password is not None else "its own CWMP password removed")
            summary = f"changed CPE {before['cwmp_id']}: {'; '.join(said)}"
            await log(conn, request, "update", "cpe_device", device_id, summary,
                      device=after if after["customer_id"] is not None else before,
                      before=schemas.row_json(before, diff), after=schemas.row_json(after, diff))
            return after
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise refused(e) from None


def _said(before: Row, after: Row, diff: Mapping[str, Any]) -> str:
    parts = []
    if "tags" in diff:
        parts.append("tags " + (", ".join(after["tags"]) or "none"))
    if "customer_id" in diff or "service_id" in diff:
        if after["customer_id"] is None:
            parts.append(f"unlinked from customer {before['customer_number']}")
        else:
            parts.append(f"linked to customer {after['customer_number']}"
                         + (f", service {after['service_login']}" if after["service_login"] else ""))
    return "; ".join(parts)


async def _file_ok(conn: Connection, args: Mapping[str, Any]) -> None:
    if "file_id" in args:
        f = await queries.file(conn, args["file_id"]) if 0 < args["file_id"] < 2**63 else None
        if f is None or not f["complete"]:
            raise schemas.Invalid({"args": f"download: no such file {args['file_id']}"})


async def _queue(request: web.Request, device_id: int, kind: str, args: dict[str, Any], *, max_attempts: int = 5,
                 connect: bool = False) -> tuple[Row, int | None]:
    """Queue a task (and, with ``connect``, a connection request); (the task, the wakeup's id)."""
    problems = task_problems(kind, args)
    if problems:
        raise schemas.Invalid({"args": "; ".join(problems)})
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        device = await _device_or_404(conn, request, device_id)
        if kind == "download":
            await _file_ok(conn, args)
        task, wakeup_id = await queries.queue_task(conn, device_id, kind, args, max_attempts, actor(request),
                                                   connect=connect)
        summary = f"queued {kind} on CPE {device['cwmp_id']}"
        if connect:
            summary += " with a connection request"
        await log(conn, request, "queue", "cpe_task", task["id"], summary, device=device,
                  after={"kind": kind, "args": masked_args(kind, args), "wakeup_id": wakeup_id})
    return task, wakeup_id


async def _task_change(request: web.Request, task_id: int, action: str) -> Row:
    """Cancel a queued task or retry a failed one; 409 when the task is not in that state."""
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        before = await queries.task(conn, *scope(request), task_id, lock=True)
        if before is None:
            raise web.HTTPNotFound(text="no such task")
        row = await (queries.cancel_task(conn, task_id) if action == "cancel" else queries.retry_task(conn, task_id))
        if row is None:
            wanted = "queued" if action == "cancel" else "fault"
            raise web.HTTPConflict(text=f"The task is {before['status']}: only a {wanted} task can be "
                                        f"{'cancelled' if action == 'cancel' else 'retried'}.")
        await log(conn, request, action, "cpe_task", task_id, f"{action} {before['kind']} on CPE {before['cwmp_id']}",
                  device=before, before={"status": before["status"]}, after={"status": row["status"]})
    return row


async def _wakeup(request: web.Request, device_id: int) -> Row:
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        device = await _device_or_404(conn, request, device_id)
        row = await queries.create_wakeup(conn, device_id, actor(request))
        await log(conn, request, "connection request", "cpe_device", device_id,
                  f"asked CPE {device['cwmp_id']} for a session (connection request)", device=device)
    return row


# -- pages ------------------------------------------------------------------------------------

@AREA.page("/cpe/devices", permission="networking.view")
async def devices_list(request: web.Request) -> web.StreamResponse:
    f = schemas.query(request, DeviceQuery)
    ls = listing_of(request, queries.DEVICE_SORTS, "last_inform", direction="desc", types=TYPES)
    pool = request.app[keys.POOL]
    partner, creator = scope(request)

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with pool.acquire() as conn:
            return await queries.list_devices(
                conn, partner, creator, q=f.q, customer=f.customer, customer_id=f.customer_id,
                software_version=f.software_version, tag=f.tag, param=f.param, value=f.value, status=f.status,
                sort=ls.sort, direction=ls.direction, after=after, limit=limit)

    def key(r: Any) -> tuple[Any, int]:
        return (r["sort_value"], r["id"])

    if ls.wants_csv:
        return await listing.export_csv(request, "cpe-devices.csv", CSV_COLUMNS, fetch, key,
                                        lambda r: [" ".join(r[c]) if c == "tags" else r[c] for c in CSV_COLUMNS])
    rows = ls.take(await fetch(ls.after, ls.limit + 1), key)
    return pages.render("devices/devices_list.html", request, {"rows": rows, "ls": ls, "f": f})


async def _detail(request: web.Request, device_id: int, *, error: str = "", errors: Mapping[str, str] | None = None,
                  status: int = 200, form: Mapping[str, Any] | None = None) -> web.Response:
    find = request.query.get("find", "").strip()[:200]
    async with request.app[keys.POOL].acquire() as conn:
        d = await _device_or_404(conn, request, device_id)
        params = await queries.parameters(conn, device_id)
        tasks = await queries.tasks_of(conn, device_id)
        faults = await queries.faults_of(conn, device_id)
        sessions = await queries.sessions_of(conn, device_id)
        wakeup = await queries.last_wakeup(conn, device_id)
        files = await queries.file_choices(conn)
    shown_params = [p for p in params if find.lower() in p["path"].lower()] if find else params
    return pages.render("devices/device.html", request, {
        "d": d, "root": tree(shown_params), "find": find, "total": len(params),
        "truncated": len(params) >= queries.PARAMETERS_SHOWN, "tasks": tasks, "faults": faults,
        "sessions": sessions, "wakeup": wakeup, "files": files, "error": error, "errors": errors or {},
        "form": form or {}, "form_tasks": FORM_TASKS, "xsd_types": XSD_TYPES, "aliases": ALIASES,
        "writable": [p["path"] for p in params if p["writable"] and not p["path"].endswith(".")],
        "masked_args": masked_args, "show": shown, "notice": request.query.get("done", ""),
        "poll_s": WAKEUP_POLL_S}, status=status)


@AREA.page("/cpe/devices/{id}", permission="networking.view")
async def device_page(request: web.Request) -> web.StreamResponse:
    return await _detail(request, path_id(request))


@AREA.page("/cpe/devices/{id}/tags", permission="networking.edit", method="POST")
async def tags_form(request: web.Request) -> web.StreamResponse:
    device_id = path_id(request)
    form = await request.post()
    try:
        tags = parse_tags(str(form.get("tags", "")))
    except ValueError as e:
        return await _detail(request, device_id, errors={"tags": str(e)}, status=422, form=form)
    await _change(request, device_id, {"tags": tags})
    raise web.HTTPFound(f"/admin/cpe/devices/{device_id}?done=tags")


@AREA.page("/cpe/devices/{id}/link", permission="networking.edit", method="POST")
async def link_form(request: web.Request) -> web.StreamResponse:
    """Link to the service of a login, or to the customer of a number (unlink: ``unlink``)."""
    device_id = path_id(request)
    form = await request.post()
    if "unlink" in form:
        await _change(request, device_id, {"customer_id": None})
        raise web.HTTPFound(f"/admin/cpe/devices/{device_id}?done=unlinked")
    target = str(form.get("target", "")).strip()[:200]
    partner, creator = scope(request)
    async with request.app[keys.POOL].acquire() as conn:
        service = await queries.service_in_scope(conn, partner, creator, login=target) if target else None
        customer = await queries.customer_by_number(conn, partner, creator, target) if target and not service else None
    if service is not None:
        given: dict[str, Any] = {"service_id": service["id"]}
    elif customer is not None:
        given = {"customer_id": customer["id"]}
    else:
        why = "is required" if not target else "no service has this login, and no customer this number"
        return await _detail(request, device_id, errors={"target": why}, status=422, form=form)
    await _change(request, device_id, given)
    raise web.HTTPFound(f"/admin/cpe/devices/{device_id}?done=linked")


@AREA.page("/cpe/devices/{id}/password", permission="networking.edit", method="POST")
async def password_form(request: web.Request) -> web.StreamResponse:
    """Give the device a CWMP password of its own (its user name is then its cwmp id), or remove it
    (``remove``: the shared login again)."""
    device_id = path_id(request)
    form = await request.post()
    if "remove" in form:
        await _change(request, device_id, {"cpe_password": None})
        raise web.HTTPFound(f"/admin/cpe/devices/{device_id}?done=password_removed")
    password = str(form.get("password", ""))
    if not _PASSWORD.fullmatch(password):
        why = "8 to 256 characters, letters, digits and punctuation (no spaces)"
        return await _detail(request, device_id, errors={"password": why}, status=422)
    await _change(request, device_id, {"cpe_password": password})
    raise web.HTTPFound(f"/admin/cpe/devices/{device_id}?done=password")


def _form_args(form: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The task a device page's form asks for: (kind, args)."""
    kind = str(form.get("kind", ""))
    path = str(form.get("path", "")).strip()
    if kind not in FORM_TASKS:
        raise schemas.Invalid({"kind": "is not a task the page queues"})
    if kind == "refresh":
        return kind, {"path": path}
    if kind == "get":
        return kind, {"names": [path]}
    if kind == "set":
        return kind, {"values": [[path, str(form.get("value", "")), str(form.get("type", "xsd:string"))]]}
    if kind == "download":
        file_id = str(form.get("file_id", ""))
        if not file_id.isascii() or not file_id.isdigit() or len(file_id) > 18:
            raise schemas.Invalid({"file_id": "choose a file"})
        return kind, {"file_id": int(file_id)}
    return kind, {}


@AREA.page("/cpe/devices/{id}/tasks", permission="networking.edit", method="POST")
async def task_form(request: web.Request) -> web.StreamResponse:
    device_id = path_id(request)
    form = await request.post()
    try:
        kind, args = _form_args(form)
        task, wakeup_id = await _queue(request, device_id, kind, args, connect="connect" in form)
    except schemas.Invalid as e:
        return await _detail(request, device_id, error="The task was not queued: " + str(e).removeprefix("args: "),
                             status=422, form=form)
    raise web.HTTPFound(f"/admin/cpe/devices/{device_id}?done=queued&task={task['id']}"
                        + (f"&wakeup={wakeup_id}" if wakeup_id else ""))


async def _task_form(request: web.Request, action: str) -> web.StreamResponse:
    task_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.task(conn, *scope(request), task_id)
    if row is None:
        raise web.HTTPNotFound()
    try:
        await _task_change(request, task_id, action)
    except web.HTTPConflict as e:
        return await _detail(request, row["device_id"], error=e.text or "", status=409)
    raise web.HTTPFound(f"/admin/cpe/devices/{row['device_id']}?done={action}")


@AREA.page("/cpe/tasks/{id}/cancel", permission="networking.edit", method="POST")
async def cancel_form(request: web.Request) -> web.StreamResponse:
    return await _task_form(request, "cancel")


@AREA.page("/cpe/tasks/{id}/retry", permission="networking.edit", method="POST")
async def retry_form(request: web.Request) -> web.StreamResponse:
    return await _task_form(request, "retry")


@AREA.page("/cpe/devices/{id}/wakeup", permission="networking.edit", method="POST")
async def wakeup_form(request: web.Request) -> web.StreamResponse:
    """A connection request; htmx gets the status fragment (it polls itself), a form the page."""
    device_id = path_id(request)
    row = await _wakeup(request, device_id)
    if request.headers.get("HX-Request"):
        return pages.render("devices/_wakeup.html", request, {"w": row, "poll_s": WAKEUP_POLL_S})
    raise web.HTTPFound(f"/admin/cpe/devices/{device_id}?done=wakeup")


@AREA.page("/cpe/wakeups/{id}", permission="networking.view")
async def wakeup_status(request: web.Request) -> web.StreamResponse:
    """A connection request's status (an htmx fragment: while pending it asks again a second later)."""
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.wakeup(conn, *scope(request), path_id(request))
    if row is None:
        raise web.HTTPNotFound()
    return pages.render("devices/_wakeup.html", request, {"w": row, "poll_s": WAKEUP_POLL_S})


# -- API --------------------------------------------------------------------------------------

@AREA.api("GET", "/cpe/devices", permission="networking.view", summary="List CPE devices", query=DeviceQuery,
          response=Page[CpeDevice])
async def api_devices(request: web.Request) -> web.StreamResponse:
    """Devices the key sees (a partner's: those of its customers), newest inform first; the
    filters combine (``param`` and ``value``: "devices whose SSID is X")."""
    f = schemas.query(request, DeviceQuery)
    ls = listing_of(request, queries.DEVICE_SORTS, "last_inform", direction="desc", types=TYPES)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.list_devices(
            conn, *scope(request), q=f.q, customer=f.customer, customer_id=f.customer_id,
            software_version=f.software_version, tag=f.tag, param=f.param, value=f.value, status=f.status,
            sort=ls.sort, direction=ls.direction, after=ls.after, limit=ls.limit + 1)
    page = ls.take(rows, lambda r: (r["sort_value"], r["id"]))
    return schemas.json(Page[CpeDevice](items=[_device_out(r) for r in page], next=ls.next))


async def _detail_out(conn: Connection, row: Row) -> CpeDeviceDetail:
    params = await queries.parameters(conn, row["id"])
    return out(row, CpeDeviceDetail, parameters=[
        CpeParameter(p["path"], shown(p["path"], p["value"]), p["type"], p["writable"], p["read_at"]) for p in params])


@AREA.api("GET", "/cpe/devices/{id}", permission="networking.view", summary="Get a CPE device and its parameters",
          response=CpeDeviceDetail)
async def api_device(request: web.Request) -> web.StreamResponse:
    """The device with its parameter tree as last read (secrets masked; at most 20,000 parameters)."""
    async with request.app[keys.POOL].acquire() as conn:
        row = await _device_or_404(conn, request, path_id(request))
        detail = await _detail_out(conn, row)
    return schemas.json(detail)


@AREA.api("PATCH", "/cpe/devices/{id}", permission="networking.edit",
          summary="Change a CPE device's tags, link or own password",
          body=DevicePatch, response=CpeDeviceDetail)
async def api_change_device(request: web.Request) -> web.StreamResponse:
    """Tags replace the device's; ``service_id`` links it to that service and its customer,
    ``customer_id`` alone to a customer, ``customer_id: null`` unlinks it. The device's presets
    apply again in its next session. ``cpe_password`` gives it a CWMP password of its own (its user
    name is then its cwmp id; null takes it away); it is never returned."""
    device_id = path_id(request)
    patch = await schemas.body(request, DevicePatch)
    given = {k: getattr(patch, k) for k in DevicePatch.__struct_fields__ if getattr(patch, k) is not msgspec.UNSET}
    row = await _change(request, device_id, given)
    async with request.app[keys.POOL].acquire() as conn:
        detail = await _detail_out(conn, row)
    return schemas.json(detail)


@AREA.api("POST", "/cpe/devices/{id}/connection-request", permission="networking.edit",
          summary="Ask a CPE device for a session now", response=CpeConnectionRequest, status=202,
          description="Its queued tasks then run at once; GET /cpe/connection-requests/{id} says how it went.")
async def api_connection_request(request: web.Request) -> web.StreamResponse:
    row = await _wakeup(request, path_id(request))
    return schemas.json(out(row, CpeConnectionRequest), status=202)


@AREA.api("GET", "/cpe/connection-requests/{id}", permission="networking.view",
          summary="Get a connection request", response=CpeConnectionRequest)
async def api_connection_request_status(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.wakeup(conn, *scope(request), path_id(request))
    if row is None:
        raise web.HTTPNotFound(text="no such connection request")
    return schemas.json(out(row, CpeConnectionRequest))


@AREA.api("POST", "/cpe/devices/{id}/tasks", permission="networking.edit", summary="Queue a task for a CPE device",
          query=TaskCreateQuery, body=TaskIn, response=CpeTask, status=202)
async def api_queue(request: web.Request) -> web.StreamResponse:
    """The task runs in the device's next session (its next periodic Inform, or at once after a
    connection request: ``connection_request=true``). 422: args that do not fit the kind."""
    device_id = path_id(request)
    q = schemas.query(request, TaskCreateQuery)
    data = await schemas.body(request, TaskIn)
    task, wakeup_id = await _queue(request, device_id, data.kind, data.args, max_attempts=data.max_attempts,
                                   connect=q.connection_request)
    return schemas.json(_task_out(task, wakeup_id), status=202)


@AREA.api("GET", "/cpe/tasks/{id}", permission="networking.view", summary="Get a CPE task", response=CpeTask)
async def api_task(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.task(conn, *scope(request), path_id(request))
    if row is None:
        raise web.HTTPNotFound(text="no such task")
    return schemas.json(_task_out(row))


@AREA.api("DELETE", "/cpe/tasks/{id}", permission="networking.edit", summary="Cancel a queued CPE task",
          response=CpeTask, description="409: the task is not queued (running, waiting or ended).")
async def api_cancel(request: web.Request) -> web.StreamResponse:
    try:
        row = await _task_change(request, path_id(request), "cancel")
    except web.HTTPConflict as e:
        return schemas.problem(409, "task not queued", e.text or "")
    return schemas.json(_task_out(row))


@AREA.api("POST", "/cpe/tasks/{id}/retry", permission="networking.edit", summary="Retry a failed CPE task",
          response=CpeTask, description="The task is queued again from its first attempt; 409: it has not failed.")
async def api_retry(request: web.Request) -> web.StreamResponse:
    try:
        row = await _task_change(request, path_id(request), "retry")
    except web.HTTPConflict as e:
        return schemas.problem(409, "task not failed", e.text or "")
    return schemas.json(_task_out(row))
