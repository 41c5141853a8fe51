"""Support → Deny list: the lines every inbox shares (``ticket_denylist.inbox_id`` NULL; an inbox's
own lines are on its page, inboxes.py), added, changed (API) and deleted, and a test: a pasted
address, subject and text, and the line that would refuse that mail, or none; and the API.

A line is checked as the intake takes it (denylist.problems: a regular expression that does not
compile, is too long or could backtrack is refused with its sentence), and the test runs the
intake's own matcher (denylist.check) over the lines the intake reads: the shared ones, or given an
inbox, the shared ones and that inbox's (intake_store.deny_rules), in the same order.

The shared lines refuse mail to every partner's inboxes, so they are the operator's: a partner's
administrator sees and tests them (with its own inboxes), and changing them is refused (403).
support.view sees and tests, support.edit changes.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, oplog_store, pages, schemas
from admin.auth.store import Connection
from admin.tickets import denylist, denylist_store, intake_store
from admin.tickets.common import AREA, Row, out
from admin.tickets.config_schemas import DenyTest, DenyVerdict, SharedDenyLine, SharedDenyLineIn, SharedDenyLinePatch
from admin.tickets.inbound import InboundMail, Party
from admin.web import path_id

_FIELDS = ("field", "match", "pattern")


@dataclass(frozen=True, slots=True)
class Line(denylist.Rule):
    """A deny-list line as the matcher takes it, with its row's id and inbox (None: every inbox's)."""

    id: int
    inbox_id: int | None


def rule_of(field: str, match: str, pattern: str) -> denylist.Rule:
    """The line checked as the intake takes it: schemas.Invalid with the pattern's sentence."""
    rule = denylist.Rule(denylist.Field(field), denylist.Match(match), pattern.strip())
    found = denylist.problems(rule)
    if found:
        raise schemas.Invalid({"pattern": "; ".join(found)})
    return rule


def mail_of(test: DenyTest) -> InboundMail:
    """The pasted address, subject and text as inbound.parse gives a mail: the address alone in
    lower case, the subject on one line, the text with \\n line ends."""
    address = email.utils.parseaddr(test.address)[1].strip().lower() or test.address.strip().lower()
    return InboundMail(
        sender=Party(address) if address else None, to=(), cc=(), reply_to=(),
        subject=" ".join(test.subject.split()), date=None, message_id="", in_reply_to=(), references=(),
        text=test.body.replace("\r\n", "\n").replace("\r", "\n"), reply="", from_html=False, attachments=(),
        content_type="text/plain", headers=(), size=0, problems=())


def _operator_only(request: web.Request) -> None:
    if keys.principal(request).partner_id is not None:
        raise web.HTTPForbidden(text="the shared deny list refuses mail to every partner's inboxes: only the "
                                     "operator's administrators change it")


def _said(row: Row) -> str:
    return f"{row['field']} {row['match']} {row['pattern']!r}"


async def _log(conn: Connection, request: web.Request, action: str, line_id: int, summary: str, *,
               before: Any = None, after: Any = None) -> None:
    await oplog_store.record(conn, keys.principal(request), keys.client_address(request), action,
                             "ticket_denylist", line_id, summary=summary, before=before, after=after)


def _refused(e: asyncpg.PostgresError) -> schemas.Invalid:
    return schemas.Invalid({"": f"the database refused a value: {str(e).splitlines()[0]}"})


async def add(conn: Connection, request: web.Request, data: SharedDenyLineIn) -> asyncpg.Record:
    _operator_only(request)
    rule = rule_of(data.field, data.match, data.pattern)
    try:
        async with conn.transaction():
            row = await denylist_store.create(conn, rule.field.value, rule.match.value, rule.pattern)
            await _log(conn, request, "create", row["id"], f"every inbox: deny mail whose {_said(row)}",
                       after=schemas.row_json(row, _FIELDS))
            return row
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise _refused(e) from None


async def change(conn: Connection, request: web.Request, line_id: int, patch: SharedDenyLinePatch) -> asyncpg.Record:
    _operator_only(request)
    try:
        async with conn.transaction():
            before = await denylist_store.line(conn, line_id, lock=True)
            if before is None:
                raise web.HTTPNotFound(text="no such line of the shared deny list")
            values = {f: before[f] if getattr(patch, f) is msgspec.UNSET else getattr(patch, f) for f in _FIELDS}
            rule = rule_of(values["field"], values["match"], values["pattern"])
            values["pattern"] = rule.pattern
            diff = [f for f in _FIELDS if values[f] != before[f]]
            if not diff:
                return before
            row = await denylist_store.update(conn, line_id, values["field"], values["match"], values["pattern"])
            await _log(conn, request, "update", line_id, f"every inbox: deny mail whose {_said(row)} "
                       f"(was {_said(before)})", before=schemas.row_json(before, diff),
                       after=schemas.row_json(row, diff))
            return row
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise _refused(e) from None


async def remove(conn: Connection, request: web.Request, line_id: int) -> asyncpg.Record:
    _operator_only(request)
    async with conn.transaction():
        gone = await denylist_store.delete(conn, line_id)
        if gone is None:
            raise web.HTTPNotFound(text="no such line of the shared deny list")
        await _log(conn, request, "delete", line_id, f"every inbox: no longer deny mail whose {_said(gone)}",
                   before=schemas.row_json(gone, _FIELDS))
    return gone


async def verdict(conn: Connection, request: web.Request, test: DenyTest) -> Line | None:
    """The line that refuses the test's mail: of the shared lines, or with an inbox (one the
    principal sees, else schemas.Invalid) the lines its intake reads."""
    rows = await denylist_store.lines(conn)
    shared = {int(r["id"]) for r in rows}
    if test.inbox_id is not None:
        if not await denylist_store.inbox_seen(conn, test.inbox_id, keys.principal(request).partner_id):
            raise schemas.Invalid({"inbox_id": "no such inbox"})
        rows = await intake_store.deny_rules(conn, test.inbox_id)
    lines = [Line(denylist.Field(r["field"]), denylist.Match(r["match"]), r["pattern"], id=int(r["id"]),
                  inbox_id=None if int(r["id"]) in shared else test.inbox_id) for r in rows]
    return denylist.check(lines, mail_of(test))


def _line_out(line: Line | Row) -> SharedDenyLine:
    if isinstance(line, Line):
        return SharedDenyLine(id=line.id, field=line.field.value, match=line.match.value,
                        pattern=line.pattern, inbox_id=line.inbox_id)
    return out(line, SharedDenyLine)


# -- the page -----------------------------------------------------------------------------------

async def _page(request: web.Request, *, errors: Mapping[str, str] | None = None,
                values: Mapping[str, Any] | None = None, test: Mapping[str, Any] | None = None,
                test_errors: Mapping[str, str] | None = None, found: Line | None = None,
                status: int = 200) -> web.Response:
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await denylist_store.lines(conn)
        inboxes = await denylist_store.inboxes(conn, who.partner_id)
    return pages.render("tickets/denylist.html", request, {
        "rows": rows, "errors": errors or {}, "values": values or {"field": "address", "match": "exact", "pattern": ""},
        "test": test or {}, "test_errors": test_errors or {}, "tested": test is not None and not test_errors,
        "found": found, "notice": request.query.get("done", ""),
        "edit": who.partner_id is None and who.can("support.edit"),
        "fields": [(f.value, f.value) for f in denylist.Field], "matches": [(m.value, m.value) for m in denylist.Match],
        "inbox_options": [(r["id"], f"{r['name']} <{r['address']}>") for r in inboxes]}, status=status)


@AREA.page("/tickets/denylist", permission="support.view")
async def denylist_list(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@AREA.page("/tickets/denylist", permission="support.edit", method="POST")
async def denylist_add(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        data = schemas.from_strings(form, SharedDenyLineIn)
        async with request.app[keys.POOL].acquire() as conn:
            await add(conn, request, data)
    except schemas.Invalid as e:
        return await _page(request, errors=e.errors, values={k: str(form.get(k, "")) for k in _FIELDS}, status=422)
    raise web.HTTPFound("/admin/tickets/denylist?done=added")


@AREA.page("/tickets/denylist/test", permission="support.view", method="POST")
async def denylist_test(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    shown = {k: str(form.get(k, "")) for k in ("address", "subject", "body", "inbox_id")}
    try:
        test = schemas.from_strings(shown, DenyTest)
        async with request.app[keys.POOL].acquire() as conn:
            found = await verdict(conn, request, test)
    except schemas.Invalid as e:
        return await _page(request, test=shown, test_errors=e.errors, status=422)
    return await _page(request, test=shown, found=found)


@AREA.page("/tickets/denylist/{id}/delete", permission="support.edit", method="POST")
async def denylist_delete(request: web.Request) -> web.StreamResponse:
    line_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        await remove(conn, request, line_id)
    raise web.HTTPFound("/admin/tickets/denylist?done=deleted")


# -- the API ------------------------------------------------------------------------------------

@AREA.api("GET", "/tickets/denylist", permission="support.view", summary="List the shared deny list",
          response=list[SharedDenyLine])
async def api_lines(request: web.Request) -> web.StreamResponse:
    """The lines every inbox shares, in the order the intake tries them (an inbox's own lines are
    not listed here)."""
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json([_line_out(r) for r in await denylist_store.lines(conn)])


@AREA.api("POST", "/tickets/denylist", permission="support.edit", summary="Add a line to the shared deny list",
          body=SharedDenyLineIn, response=SharedDenyLine, status=201)
async def api_add(request: web.Request) -> web.StreamResponse:
    """Mail to any inbox whose field matches the pattern (ignoring case) makes no ticket. A
    regular expression that does not compile, or could backtrack without end, is refused (422)."""
    data = await schemas.body(request, SharedDenyLineIn)
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(_line_out(await add(conn, request, data)), status=201)


@AREA.api("POST", "/tickets/denylist/test", permission="support.view", summary="Try a mail on the deny list",
          body=DenyTest, response=DenyVerdict)
async def api_test(request: web.Request) -> web.StreamResponse:
    """The line that would refuse a mail of this address, subject and text: of the shared lines,
    or given ``inbox_id``, of those and the inbox's own (as its intake reads them)."""
    test = await schemas.body(request, DenyTest)
    async with request.app[keys.POOL].acquire() as conn:
        found = await verdict(conn, request, test)
    return schemas.json(DenyVerdict(refused=found is not None, line=_line_out(found) if found else None))


@AREA.api("PATCH", "/tickets/denylist/{id}", permission="support.edit", summary="Change a line of the shared deny list",
          body=SharedDenyLinePatch, response=SharedDenyLine)
async def api_change(request: web.Request) -> web.StreamResponse:
    """Only the fields given change; the line is checked again as a whole (422)."""
    line_id = path_id(request)
    patch = await schemas.body(request, SharedDenyLinePatch)
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(_line_out(await change(conn, request, line_id, patch)))


@AREA.api("DELETE", "/tickets/denylist/{id}", permission="support.edit", response=schemas.Deleted,
          summary="Delete a line of the shared deny list")
async def api_delete(request: web.Request) -> web.StreamResponse:
    line_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        await remove(conn, request, line_id)
    return schemas.json(schemas.Deleted(id=line_id))
