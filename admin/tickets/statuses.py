"""Support → Ticket statuses: the list in the lists' order, with how many tickets are in each, a
status added, renamed, reordered, and (the operator's own, when no ticket is in it and no rule
names it) deleted; and the API.

The five built-in statuses (automation.Status: new, in_progress, waiting_agent, waiting_customer,
resolved) are the ones the automation moves tickets through: they are renamed (title) and
reordered, never deleted, and their closed flag stays (resolved closed, the others open). A code
never changes, built in or not: the rules name statuses by code in their JSON (ticket_rules), out
of the foreign key's reach. A status the operator adds is open or closed (a ticket moved into a
closed one counts as resolved, store.set_fields); the ticket list's filter, the ticket's status
select and the rules' choices read ticket_statuses, so it shows there at once.

Statuses are the operator's, every partner's: a partner's administrator sees them, and changing
them is refused (403). support.view sees, support.edit changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, oplog_store, pages, schemas
from admin.auth.store import Connection
from admin.tickets import statuses_store
from admin.tickets.common import AREA, Row, out
from admin.tickets.config_schemas import StatusForm, TicketStatus, TicketStatusIn, TicketStatusPatch

_FIELDS = ("title", "closed", "position")
CODE_RULE = "must be lower case letters, digits and _, starting with a letter, at most 40 (as the database's CHECK)"


def _operator_only(request: web.Request) -> None:
    if keys.principal(request).partner_id is not None:
        raise web.HTTPForbidden(text="ticket statuses are every partner's: only the operator's administrators "
                                     "change them")


async def _log(conn: Connection, request: web.Request, action: str, summary: str, *, before: Any = None,
               after: Any = None) -> None:
    await oplog_store.record(conn, keys.principal(request), keys.client_address(request), action, "ticket_status",
                             None, summary=summary, before=before, after=after)


async def _status_or_404(conn: Connection, code: str, *, lock: bool = False) -> asyncpg.Record:
    row = await statuses_store.status(conn, code, lock=lock)
    if row is None:
        raise web.HTTPNotFound(text="no such ticket status")
    return row


def _refused(e: asyncpg.PostgresError) -> schemas.Invalid:
    return schemas.Invalid({"": f"the database refused a value: {str(e).splitlines()[0]}"})


async def add(conn: Connection, request: web.Request, data: TicketStatusIn) -> asyncpg.Record:
    """A status of the operator's own: schemas.Invalid when its code or title is taken."""
    _operator_only(request)
    title = data.title.strip()
    try:
        async with conn.transaction():
            if await statuses_store.title_taken(conn, title, None):
                raise schemas.Invalid({"title": "another status has this title"})
            if not await statuses_store.create(conn, data.code, title, data.closed, data.position):
                raise schemas.Invalid({"code": f"the code {data.code} is taken"})
            row = await _status_or_404(conn, data.code)
            await _log(conn, request, "create", f"added ticket status {row['code']}: {row['title']}"
                       + (" (closed)" if row["closed"] else ""),
                       after=schemas.row_json(row, ("code", "title", "closed", "position")))
            return row
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise _refused(e) from None


async def change(conn: Connection, request: web.Request, code: str, patch: TicketStatusPatch) -> asyncpg.Record:
    """Only what ``patch`` gives changes; a built-in status's closed flag is refused (409)."""
    _operator_only(request)
    try:
        async with conn.transaction():
            before = await _status_or_404(conn, code, lock=True)
            values = {f: before[f] if getattr(patch, f) is msgspec.UNSET else getattr(patch, f) for f in _FIELDS}
            values["title"] = values["title"].strip()
            if before["builtin"] and values["closed"] != before["closed"]:
                raise web.HTTPConflict(text=f"{before['title']} ({code}) is built in: the automation relies on it "
                                            f"being {'closed' if before['closed'] else 'open'}")
            diff = [f for f in _FIELDS if values[f] != before[f]]
            if not diff:
                return before
            if "title" in diff and await statuses_store.title_taken(conn, values["title"], code):
                raise schemas.Invalid({"title": "another status has this title"})
            await statuses_store.update(conn, code, values["title"], values["closed"], values["position"])
            row = await _status_or_404(conn, code)
            await _log(conn, request, "update", f"changed ticket status {code}: {', '.join(diff)}",
                       before={"code": code, **schemas.row_json(before, diff)},
                       after={"code": code, **schemas.row_json(row, diff)})
            return row
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise _refused(e) from None


async def remove(conn: Connection, request: web.Request, code: str) -> asyncpg.Record:
    """Delete the operator's own status; 409, saying why, while it is built in, a ticket is in it
    or a rule names it."""
    _operator_only(request)
    try:
        async with conn.transaction():
            row = await _status_or_404(conn, code, lock=True)
            if row["builtin"]:
                raise web.HTTPConflict(text=f"{row['title']} ({code}) is built in: the automation moves tickets "
                                            "through it, so it is not deleted")
            if row["tickets"]:
                raise web.HTTPConflict(text=f"{row['tickets']} ticket{'' if row['tickets'] == 1 else 's'} "
                                            f"{'is' if row['tickets'] == 1 else 'are'} in {row['title']} ({code}): "
                                            "move them to another status first")
            rules = await statuses_store.rules_using(conn, code)
            if rules:
                raise web.HTTPConflict(text=f"the rules {', '.join(rules)} name {row['title']} ({code}): "
                                            "change them first")
            await statuses_store.delete(conn, code)
            await _log(conn, request, "delete", f"deleted ticket status {code}: {row['title']}",
                       before=schemas.row_json(row, ("code", "title", "closed", "position")))
            return row
    except asyncpg.ForeignKeyViolationError:  # a ticket moved into it meanwhile
        raise web.HTTPConflict(text=f"a ticket is in {code}: move it to another status first") from None


# -- the page -----------------------------------------------------------------------------------

async def _page(request: web.Request, *, errors: Mapping[str, Mapping[str, str]] | None = None,
                values: Mapping[str, Any] | None = None, status: int = 200) -> web.Response:
    """The list; ``errors`` by the form they belong to (``add``, or a status's code), ``values``
    the posted form shown again."""
    async with request.app[keys.POOL].acquire() as conn:
        rows = await statuses_store.statuses(conn)
    who = keys.principal(request)
    return pages.render("tickets/statuses.html", request, {
        "rows": rows, "errors": errors or {}, "values": dict(values or {}), "notice": request.query.get("done", ""),
        "edit": who.partner_id is None and who.can("support.edit")}, status=status)


def _form_values(form: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in form.items() if k != "_csrf"} | {"closed": "closed" in form}


@AREA.page("/tickets/statuses", permission="support.view")
async def statuses_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@AREA.page("/tickets/statuses", permission="support.edit", method="POST")
async def status_add(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        data = schemas.from_strings(form, TicketStatusIn)
        async with request.app[keys.POOL].acquire() as conn:
            await add(conn, request, data)
    except schemas.Invalid as e:
        errors = dict(e.errors)
        if "matching regex" in errors.get("code", ""):
            errors["code"] = CODE_RULE
        return await _page(request, errors={"add": errors}, values=_form_values(form), status=422)
    raise web.HTTPFound("/admin/tickets/statuses?done=added")


@AREA.page("/tickets/statuses/{code}", permission="support.edit", method="POST")
async def status_edit(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"]
    form = await request.post()
    try:
        data = schemas.from_strings(form, StatusForm)
        async with request.app[keys.POOL].acquire() as conn:
            row = await _status_or_404(conn, code)
            closed = row["closed"] if row["builtin"] else data.closed  # its box is shown disabled
            await change(conn, request, code, TicketStatusPatch(title=data.title, closed=closed,
                                                                position=data.position))
    except schemas.Invalid as e:
        return await _page(request, errors={code: e.errors}, values=_form_values(form), status=422)
    raise web.HTTPFound(f"/admin/tickets/statuses?done=saved#status-{code}")


@AREA.page("/tickets/statuses/{code}/delete", permission="support.edit", method="POST")
async def status_delete(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"]
    try:
        async with request.app[keys.POOL].acquire() as conn:
            await remove(conn, request, code)
    except web.HTTPConflict as e:
        return await _page(request, errors={code: {"": e.text or "it cannot be deleted"}}, status=409)
    raise web.HTTPFound("/admin/tickets/statuses?done=deleted")


# -- the API ------------------------------------------------------------------------------------

def _out(row: Row) -> TicketStatus:
    return out(row, TicketStatus)


@AREA.api("GET", "/tickets/statuses", permission="support.view", summary="List ticket statuses",
          response=list[TicketStatus])
async def api_statuses(request: web.Request) -> web.StreamResponse:
    """Built in and the operator's own, in the lists' order (``position``), with how many tickets
    are in each; a ticket names its status by ``code``."""
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json([_out(r) for r in await statuses_store.statuses(conn)])


@AREA.api("POST", "/tickets/statuses", permission="support.edit", summary="Add a ticket status",
          body=TicketStatusIn, response=TicketStatus, status=201)
async def api_add(request: web.Request) -> web.StreamResponse:
    """A status of the operator's own: its ``code`` (never changed), its title, open or closed,
    and its position (none: after the last). 422 when the code or the title is taken."""
    data = await schemas.body(request, TicketStatusIn)
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(_out(await add(conn, request, data)), status=201)


@AREA.api("PATCH", "/tickets/statuses/{code}", permission="support.edit", body=TicketStatusPatch,
          response=TicketStatus, summary="Rename, reorder, open or close a ticket status")
async def api_change(request: web.Request) -> web.StreamResponse:
    """Only the fields given change; a built-in status's ``closed`` does not (409). Tickets already
    in a status keep their resolved time when its ``closed`` changes."""
    patch = await schemas.body(request, TicketStatusPatch)
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(_out(await change(conn, request, request.match_info["code"], patch)))


@AREA.api("DELETE", "/tickets/statuses/{code}", permission="support.edit", response=TicketStatus,
          summary="Delete a ticket status")
async def api_delete(request: web.Request) -> web.StreamResponse:
    """The operator's own status, when no ticket is in it and no rule names it (409 otherwise,
    saying which); a built-in one never (409)."""
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(_out(await remove(conn, request, request.match_info["code"])))
