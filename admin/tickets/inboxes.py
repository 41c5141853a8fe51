"""Support → Inboxes: the e-mail inboxes intake.py reads into tickets, their list (with where the
last reading got to and its error), the form, and each inbox's own deny-list lines, and the API
of both (the page's save and checks: editing.py).

An inbox is its partner's: a partner's administrator sees and changes its own partner's only
(another's: not found); an administrator of every partner picks the partner of a new inbox.
support.view sees, support.edit changes.

The password is write-only: sealed as it is saved (daemons/secrets.py, purpose
intake_store.PASSWORD_PURPOSE), never shown; an empty password field keeps the stored one. A
deny-list line is checked as the intake would take it (denylist.problems).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, pages, schemas
from admin.auth.store import Connection
from admin.schemas import Deleted
from admin.tickets import denylist, editing, inboxes_store
from admin.tickets.common import AREA, Row, log, out
from admin.tickets.intake_store import PASSWORD_PURPOSE
from admin.tickets.schemas import PRIORITIES, TYPES, DenyLine, DenyLineIn, Inbox, InboxIn, InboxPatch
from admin.web import parse_id, path_id

SECURITY = ("tls", "starttls", "none")
DEFAULTS: dict[str, Any] = {"name": "", "enabled": True, "address": "", "host": "", "port": 993, "security": "tls",
                            "username": "", "folder": "INBOX", "read_mode": "unread", "since": None,
                            "mark_read": True, "accept_unknown": True, "group_id": None, "priority": "medium",
                            "type": "question", "partner_id": None}
CONSTRAINTS = {
    "ticket_inboxes_name_nonempty": ("name", "is required"),
    "ticket_inboxes_address_valid": ("address", "must be an e-mail address: name@example.net"),
    "ticket_inboxes_address_unique": ("address", "another inbox reads this address"),
    "ticket_inboxes_host_nonempty": ("host", "is required"),
    "ticket_inboxes_port_range": ("port", "must be from 1 to 65535"),
    "ticket_inboxes_security_valid": ("security", "must be tls, starttls or none"),
    "ticket_inboxes_username_nonempty": ("username", "is required"),
    "ticket_inboxes_read_mode_valid": ("read_mode", "must be unread or all"),
    "ticket_inboxes_group_fk": ("group_id", "no such group"),
    "ticket_inboxes_partner_fk": ("partner_id", "no such partner"),
    "ticket_inboxes_priority_valid": ("priority", f"must be one of {', '.join(PRIORITIES)}"),
    "ticket_inboxes_type_valid": ("type", f"must be one of {', '.join(TYPES)}"),
}
"""A constraint the database refused with, as the field and sentence the form shows."""
_LINE = re.compile(r"[\r\n\x00]")
Text = Annotated[str, msgspec.Meta(max_length=300)]


class InboxFields(msgspec.Struct, kw_only=True):
    """The form's fields but the password and the partner."""

    name: Annotated[str, msgspec.Meta(max_length=200)]
    address: Text
    host: Annotated[str, msgspec.Meta(max_length=253)]
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 993
    security: Literal["tls", "starttls", "none"] = "tls"
    username: Text
    folder: Text = "INBOX"
    read_mode: Literal["unread", "all"] = "unread"
    since: dt.date | None = None
    mark_read: bool = False
    accept_unknown: bool = False
    group_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] | None = None
    priority: Literal["low", "medium", "high", "urgent"] = "medium"
    type: Literal["question", "incident", "problem", "feature_request"] = "question"
    enabled: bool = False


def refused(e: asyncpg.PostgresError) -> schemas.Invalid:
    """A write the database refused, as the field's sentence."""
    name = getattr(e, "constraint_name", None) or ""
    if name in CONSTRAINTS:
        field, sentence = CONSTRAINTS[name]
        return schemas.Invalid({field: sentence})
    return schemas.Invalid({"": f"the database refused a value: {str(e).splitlines()[0]}"})


def from_form(form: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The form's values (COLUMNS but the password) and the new password (None: keep the stored one)."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    try:
        values = msgspec.structs.asdict(schemas.from_strings(form, InboxFields))
    except schemas.Invalid as e:
        errors.update(e.errors)
    for name in ("name", "address", "host", "username", "folder"):
        if name in values and _LINE.search(values[name]):
            errors[name] = "must be one line"
    if values.get("folder") == "":
        values["folder"] = "INBOX"
    password = str(form.get("password", ""))
    if _LINE.search(password):
        errors["password"] = "must be one line"  # noqa: S105  (a field's error, not a password)
    elif len(password) > 500:
        errors["password"] = "is longer than 500 characters"  # noqa: S105
    if errors:
        raise schemas.Invalid(errors)
    return values, password or None


def _log_view(row: Row, fields: Any = None) -> dict[str, Any]:
    return schemas.row_json({k: row[k] for k in (fields or inboxes_store.COLUMNS) if k != "password"})


async def _save(request: web.Request, inbox_id: int | None, form: Mapping[str, Any]) -> asyncpg.Record:
    values, password = from_form(form)
    who = keys.principal(request)
    keyring = request.app[keys.KEYRING]
    try:
        async with request.app[keys.POOL].acquire() as conn, conn.transaction():
            before = None
            if inbox_id is None:
                partner_id = editing.partner_of(request, form, required="pick the partner whose mail this is")
                assert partner_id is not None
                if not await inboxes_store.partners(conn, partner_id):
                    raise schemas.Invalid({"partner_id": "no such partner"})
            else:
                before = await inboxes_store.inbox(conn, inbox_id, who.partner_id, lock=True)
                if before is None:
                    raise web.HTTPNotFound(text="no such inbox")
                partner_id = before["partner_id"]
            if values["group_id"] is not None and not await inboxes_store.group_ok(conn, partner_id,
                                                                                   values["group_id"]):
                raise schemas.Invalid({"group_id": "no such group of this partner"})
            if password is not None:
                values["password"] = keyring.seal(password, PASSWORD_PURPOSE)
            elif before is not None:
                values["password"] = before["password"]
            else:
                raise schemas.Invalid({"password": "is required"})
            secret = keyring.fingerprint(password, PASSWORD_PURPOSE) if password is not None else None
            if before is None:
                row = await inboxes_store.create(conn, partner_id, values)
                await log(conn, request, "create", editing.owner(row),
                          f"created inbox {row['name']} <{row['address']}>", object_type="ticket_inbox",
                          after={**_log_view(row), "password": secret})
                return row
            diff = [c for c in inboxes_store.COLUMNS if c != "password" and before[c] != values[c]]
            if not diff and password is None:
                return before
            row = await inboxes_store.update(conn, before["id"], values)
            after_log = _log_view(row, diff)
            before_log = _log_view(before, diff)
            if password is not None:
                diff.append("password")
                after_log["password"], before_log["password"] = secret, "(set)"
            await log(conn, request, "update", editing.owner(row), f"changed inbox {row['name']}: {', '.join(diff)}",
                      object_type="ticket_inbox", before=before_log, after=after_log)
            return row
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise refused(e) from None


def form_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """An inbox as the form's fields (never its password)."""
    return {k: row.get(k, v) for k, v in {**DEFAULTS, "id": None, "partner_name": ""}.items()}


async def _editor(request: web.Request, inbox: Mapping[str, Any], errors: Mapping[str, str], *,
                  status: int = 200, deny: Mapping[str, Any] | None = None,
                  deny_errors: Mapping[str, str] | None = None) -> web.Response:
    who = keys.principal(request)
    editing = inbox.get("id") is not None
    async with request.app[keys.POOL].acquire() as conn:
        partners = await inboxes_store.partners(conn, who.partner_id)
        partner_id = parse_id(str(inbox.get("partner_id") or "")) if inbox.get("partner_id") else who.partner_id
        groups = await inboxes_store.groups(conn, partner_id)
        rules = await inboxes_store.deny_rules(conn, int(inbox["id"])) if editing else []
    opts = {name: [(v, v.replace("_", " ")) for v in values] for name, values in {
        "security": SECURITY, "priorities": PRIORITIES, "types": TYPES,
        "fields": [f.value for f in denylist.Field], "matches": [m.value for m in denylist.Match]}.items()}
    return pages.render("tickets/inbox_form.html", request, {
        "i": inbox, "errors": errors, "editing": editing, "opts": opts, "rules": rules,
        "partner_options": [(r["id"], r["name"]) for r in partners],
        "group_options": [(r["id"], r["name"]) for r in groups],
        "pick_partner": who.partner_id is None and not editing,
        "deny": deny or {"field": "address", "match": "exact", "pattern": ""}, "deny_errors": deny_errors or {},
        "password_set": editing, "notice": request.query.get("done", "")}, status=status)


async def _inbox_or_404(request: web.Request, conn: Connection, inbox_id: int, *,
                        lock: bool = False) -> asyncpg.Record:
    row = await inboxes_store.inbox(conn, inbox_id, keys.principal(request).partner_id, lock=lock)
    if row is None:
        raise web.HTTPNotFound(text="no such inbox")
    return row


def _shown(form: Mapping[str, Any]) -> dict[str, Any]:
    """A posted form as it is shown again: never the password; an unticked box unticked."""
    shown = {k: v for k, v in form.items() if k not in ("password", "_csrf")}
    for box in ("enabled", "mark_read", "accept_unknown"):
        shown[box] = box in form
    return shown


INBOXES = editing.Kind("/tickets/inboxes", _inbox_or_404, _save, editing.rendering(_editor), DEFAULTS,
                       form_of=lambda row: form_of(dict(row)), shown=_shown)


@AREA.page("/tickets/inboxes", permission="support.view")
async def inboxes_list(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        rows = await inboxes_store.inboxes(conn, keys.principal(request).partner_id)
    return pages.render("tickets/inboxes_list.html", request, {"rows": rows, "notice": request.query.get("done", "")})


INBOXES.declare(AREA, "inbox")


# -- the deny list -----------------------------------------------------------------------------

def deny_rule_of(form: Mapping[str, Any]) -> denylist.Rule:
    """The posted deny-list line, checked as the intake takes it: schemas.Invalid by field."""
    try:
        field = denylist.Field(str(form.get("field", "")))
    except ValueError:
        raise schemas.Invalid({"deny_field": "must be address, subject or body"}) from None
    try:
        match = denylist.Match(str(form.get("match", "")))
    except ValueError:
        raise schemas.Invalid({"deny_match": "must be exact, contains, starts, ends or regex"}) from None
    rule = denylist.Rule(field, match, str(form.get("pattern", "")).strip())
    problems = denylist.problems(rule)
    if problems:
        raise schemas.Invalid({"deny_pattern": "; ".join(problems)})
    return rule


async def _add_deny(request: web.Request, inbox_id: int, form: Mapping[str, Any]) -> asyncpg.Record:
    """The posted deny-list line added to the inbox (the page's form, the API's body)."""
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        inbox = await _inbox_or_404(request, conn, inbox_id, lock=True)
        rule = deny_rule_of(form)
        row = await inboxes_store.add_deny_rule(conn, inbox_id, rule.field.value, rule.match.value, rule.pattern)
        await log(conn, request, "create", editing.owner(inbox),
                  f"inbox {inbox['name']}: deny mail whose {rule.field} {rule.match} {rule.pattern!r}",
                  object_type="ticket_denylist", object_id=row["id"], after=schemas.row_json(row))
        return row


async def _delete_deny(request: web.Request, inbox_id: int, rule_id: int) -> None:
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        inbox = await _inbox_or_404(request, conn, inbox_id, lock=True)
        gone = await inboxes_store.delete_deny_rule(conn, inbox_id, rule_id)
        if gone is None:
            raise web.HTTPNotFound(text="no such deny-list line")
        await log(conn, request, "delete", editing.owner(inbox),
                  f"inbox {inbox['name']}: no longer deny mail whose {gone['field']} {gone['match']} "
                  f"{gone['pattern']!r}", object_type="ticket_denylist", object_id=rule_id,
                  before=schemas.row_json(gone))


@AREA.page("/tickets/inboxes/{id}/denylist", permission="support.edit", method="POST")
async def deny_add(request: web.Request) -> web.StreamResponse:
    inbox_id = path_id(request)
    form = await request.post()
    try:
        await _add_deny(request, inbox_id, form)
    except schemas.Invalid as e:
        deny = {k: str(form.get(k, "")) for k in ("field", "match", "pattern")}
        inbox = await INBOXES.row(request, inbox_id)
        return await _editor(request, form_of(dict(inbox)), {}, status=422, deny=deny, deny_errors=e.errors)
    raise web.HTTPFound(f"/admin/tickets/inboxes/{inbox_id}?done=denied#denylist")


@AREA.page("/tickets/inboxes/{id}/denylist/{rule}/delete", permission="support.edit", method="POST")
async def deny_delete(request: web.Request) -> web.StreamResponse:
    inbox_id = path_id(request)
    await _delete_deny(request, inbox_id, path_id(request, "rule"))
    raise web.HTTPFound(f"/admin/tickets/inboxes/{inbox_id}?done=undenied#denylist")


# -- API --------------------------------------------------------------------------------------

async def _inbox_out(request: web.Request, inbox_id: int) -> Inbox:
    return out(await INBOXES.row(request, inbox_id), Inbox)


@AREA.api("GET", "/tickets/inboxes", permission="support.view", summary="List ticket inboxes", response=list[Inbox])
async def api_inboxes(request: web.Request) -> web.StreamResponse:
    """The inboxes the caller sees (a partner's: its own partner's), by name, with where the last
    reading got to and its error; never a password."""
    async with request.app[keys.POOL].acquire() as conn:
        rows = await inboxes_store.inboxes(conn, keys.principal(request).partner_id)
    return schemas.json([out(r, Inbox) for r in rows])


@AREA.api("GET", "/tickets/inboxes/{id}", permission="support.view", summary="Get a ticket inbox", response=Inbox)
async def api_inbox(request: web.Request) -> web.StreamResponse:
    return schemas.json(await _inbox_out(request, path_id(request)))


@AREA.api("POST", "/tickets/inboxes", permission="support.edit", summary="Add a ticket inbox", body=InboxIn,
          response=Inbox, status=201)
async def api_inbox_create(request: web.Request) -> web.StreamResponse:
    """The IMAP password is sealed as it is stored and never returned."""
    data = await schemas.body(request, InboxIn)
    row = await _save(request, None, editing.as_form(data))
    return schemas.json(await _inbox_out(request, row["id"]), status=201)


@AREA.api("PATCH", "/tickets/inboxes/{id}", permission="support.edit", summary="Change a ticket inbox",
          body=InboxPatch, response=Inbox)
async def api_inbox_change(request: web.Request) -> web.StreamResponse:
    """Only the fields given change; without ``password`` the stored one is kept."""
    inbox_id = path_id(request)
    patch = await schemas.body(request, InboxPatch)
    before = await INBOXES.row(request, inbox_id)
    await _save(request, inbox_id, editing.as_form(patch, editing.as_form(form_of(dict(before)))))
    return schemas.json(await _inbox_out(request, inbox_id))


@AREA.api("GET", "/tickets/inboxes/{id}/denylist", permission="support.view",
          summary="List a ticket inbox's deny-list lines", response=list[DenyLine])
async def api_denylist(request: web.Request) -> web.StreamResponse:
    """The inbox's own lines (not those of every inbox), oldest first."""
    inbox_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        await _inbox_or_404(request, conn, inbox_id)
        rows = await inboxes_store.deny_rules(conn, inbox_id)
    return schemas.json([out(r, DenyLine) for r in rows])


@AREA.api("POST", "/tickets/inboxes/{id}/denylist", permission="support.edit",
          summary="Add a deny-list line to a ticket inbox", body=DenyLineIn, response=DenyLine, status=201)
async def api_deny_add(request: web.Request) -> web.StreamResponse:
    """The inbox's mail whose ``field`` matches ``pattern`` opens no ticket; the line is checked as
    the intake takes it (a regex that does not compile: 422)."""
    data = await schemas.body(request, DenyLineIn)
    try:
        row = await _add_deny(request, path_id(request), editing.as_form(data))
    except schemas.Invalid as e:
        raise schemas.Invalid({k.removeprefix("deny_"): v for k, v in e.errors.items()}) from None
    return schemas.json(out(row, DenyLine), status=201)


@AREA.api("DELETE", "/tickets/inboxes/{id}/denylist/{rule}", permission="support.edit",
          summary="Delete a ticket inbox's deny-list line", response=Deleted)
async def api_deny_delete(request: web.Request) -> web.StreamResponse:
    rule_id = path_id(request, "rule")
    await _delete_deny(request, path_id(request), rule_id)
    return schemas.json(Deleted(rule_id))
