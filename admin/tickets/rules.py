"""Support → Rules: the automation's rules (automation.py Rule: a condition, all of whose given
fields must hold, and an action), their list, the form, enabling and disabling, deleting, and a
dry run on a rule's page: how many tickets the rule would act on now (rules_store.candidates,
checked again with automation.due, as the ``tickets.rules`` job does; nothing is changed), and the
API, through the form's checks and save (editing.py).

A rule is checked as the job reads it (automation.problems): each of its sentences is shown and
nothing is saved. The rules are the operator's: a partner's administrator finds none (404).
support.view sees, support.edit changes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Awaitable, Mapping
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, pages, schemas
from admin.auth.store import Connection
from admin.schemas import Deleted
from admin.tickets import automation, editing, rules_admin_store, rules_store
from admin.tickets.common import AREA, Row, log, out
from admin.tickets.schemas import Rule, RuleIn, RulePatch
from admin.web import parse_id, path_id

DEFAULTS: dict[str, Any] = {"name": "", "enabled": True, "status": "", "idle_hours": "", "priority": "", "type": "",
                            "group_id": "", "unassigned": "", "set_status": "", "set_priority": "",
                            "set_group_id": "", "canned_reply_id": "", "note": ""}
UNASSIGNED = [("", "any"), ("yes", "yes: nobody assigned"), ("no", "no: somebody assigned")]
_OWNER = {"partner_id": None, "customer_id": None}


class Refused(schemas.Invalid):
    """The rule cannot be saved: the fields' errors and the rule's sentences (automation.problems,
    also joined as the whole's error ``""``: the API's 422 names them)."""

    def __init__(self, errors: dict[str, str], problems: list[str]) -> None:
        super().__init__({**errors, **({"": "; ".join(problems)} if problems else {})})
        self.problems = problems


def _operator_only(request: web.Request) -> None:
    if keys.principal(request).partner_id is not None:
        raise web.HTTPNotFound(text="no such page")


def _text(form: Mapping[str, Any], name: str) -> str | None:
    value = str(form.get(name, "")).strip()
    return value or None


def _id(form: Mapping[str, Any], name: str, errors: dict[str, str]) -> int | None:
    text = _text(form, name)
    if text is None:
        return None
    found = parse_id(text)
    if found is None:
        errors[name] = "pick one from the list"
    return found


def rule_from_form(form: Mapping[str, Any], rule_id: int = 0) -> automation.Rule:
    """The posted rule (its fields' errors and automation.problems: Refused)."""
    errors: dict[str, str] = {}
    name = str(form.get("name", "")).strip()
    if not name:
        errors["name"] = "is required"
    elif len(name) > 200 or "\n" in name or "\r" in name:
        errors["name"] = "must be one line of at most 200 characters"
    idle: int | None = None
    idle_text = _text(form, "idle_hours")
    if idle_text is not None:
        if idle_text.isascii() and idle_text.isdigit() and len(idle_text) < 10:
            idle = int(idle_text)
        else:
            errors["idle_hours"] = "must be a whole number of hours"
    unassigned = {"": None, "yes": True, "no": False}.get(str(form.get("unassigned", "")))
    if str(form.get("unassigned", "")) not in ("", "yes", "no"):
        errors["unassigned"] = "must be any, yes or no"
    note = str(form.get("note", "")).replace("\r\n", "\n")
    if len(note) > 10_000:
        errors["note"] = "is longer than 10000 characters"
    condition = automation.Condition(status=_text(form, "status"), idle_hours=idle, priority=_text(form, "priority"),
                                     type=_text(form, "type"), group_id=_id(form, "group_id", errors),
                                     unassigned=unassigned)
    action = automation.Action(set_status=_text(form, "set_status"), set_priority=_text(form, "set_priority"),
                               set_group_id=_id(form, "set_group_id", errors),
                               canned_reply_id=_id(form, "canned_reply_id", errors),
                               note=note if note.strip() else None)
    rule = automation.Rule(rule_id, name, condition, action, enabled="enabled" in form and
                           form.get("enabled") not in ("", "0", "false", "off"))
    problems = automation.problems(rule)
    if errors or problems:
        raise Refused(errors, problems)
    return rule


def json_of(part: Any) -> dict[str, Any]:
    """A Condition or Action as the row's JSON: its given fields only."""
    return {k: v for k, v in dataclasses.asdict(part).items() if v is not None}


def form_of(row: Row) -> dict[str, Any]:
    """A rule row as the form's fields."""
    values: dict[str, Any] = {**DEFAULTS, "id": row["id"], "name": row["name"], "enabled": row["enabled"]}
    for key, value in {**row["condition"], **row["action"]}.items():
        if key == "unassigned":
            values[key] = "yes" if value else "no"
        elif key in values:
            values[key] = "" if value is None else str(value)
    return values


async def _known(conn: Connection, rule: automation.Rule) -> dict[str, str]:
    """The statuses, groups and canned reply the rule names that do not exist."""
    errors: dict[str, str] = {}
    statuses = {r["code"] for r in await rules_admin_store.statuses(conn)}
    groups = {int(r["id"]) for r in await rules_admin_store.groups(conn)}
    canned = {int(r["id"]) for r in await rules_admin_store.canned_replies(conn)}
    c, a = rule.condition, rule.action
    for field, status in (("status", c.status), ("set_status", a.set_status)):
        if status is not None and status not in statuses:
            errors[field] = "no such status"
    for field, group in (("group_id", c.group_id), ("set_group_id", a.set_group_id)):
        if group is not None and group not in groups:
            errors[field] = "no such group"
    if a.canned_reply_id is not None and a.canned_reply_id not in canned:
        errors["canned_reply_id"] = "no such canned reply"
    return errors


def _view(row: Row) -> dict[str, Any]:
    return {k: schemas.jsonable(row[k]) for k in ("name", "enabled", "condition", "action")}


async def _save(request: web.Request, rule_id: int | None, form: Mapping[str, Any]) -> asyncpg.Record:
    rule = rule_from_form(form, rule_id or 0)
    condition, action = json_of(rule.condition), json_of(rule.action)
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        missing = await _known(conn, rule)
        if missing:
            raise Refused(missing, [])
        if rule_id is None:
            row = await rules_admin_store.create(conn, rule.name, rule.enabled, condition, action)
            await log(conn, request, "create", {**_OWNER, "id": row["id"]}, f"created rule {row['name']}",
                      object_type="ticket_rule", after=_view(row))
            return row
        before = await rules_admin_store.rule(conn, rule_id, lock=True)
        if before is None:
            raise web.HTTPNotFound(text="no such rule")
        after = {"name": rule.name, "enabled": rule.enabled, "condition": condition, "action": action}
        diff = [k for k, v in after.items() if before[k] != v]
        if not diff:
            return before
        row = await rules_admin_store.update(conn, rule_id, rule.name, rule.enabled, condition, action)
        await log(conn, request, "update", {**_OWNER, "id": rule_id}, f"changed rule {row['name']}: {', '.join(diff)}",
                  object_type="ticket_rule", before={k: schemas.jsonable(before[k]) for k in diff},
                  after={k: schemas.jsonable(row[k]) for k in diff})
        return row


async def dry_run(conn: Connection, row: Row, now: dt.datetime) -> tuple[int, bool]:
    """How many tickets the rule of ``row`` would act on at ``now`` were it enabled, and whether
    that is only the first batch (there may be more)."""
    rule = dataclasses.replace(rules_store.rule_of(row), enabled=True)
    found = await rules_store.candidates(conn, rule, now)
    return sum(automation.due(rule, facts, now) for facts in found), len(found) >= rules_store.BATCH


def _summary(row: Row, names: Mapping[str, Mapping[Any, str]]) -> tuple[str, str]:
    """The rule's condition and action in words (for the list)."""
    c, a = row["condition"], row["action"]
    when: list[str] = []
    if "status" in c:
        when.append(f"status {names['status'].get(c['status'], c['status'])}")
    if "idle_hours" in c:
        when.append(f"idle {c['idle_hours']} h")
    for key in ("priority", "type"):
        if key in c:
            when.append(f"{key} {c[key]}")
    if "group_id" in c:
        when.append(f"group {names['group'].get(c['group_id'], c['group_id'])}")
    if "unassigned" in c:
        when.append("unassigned" if c["unassigned"] else "assigned")
    does: list[str] = []
    if "set_status" in a:
        does.append(f"status → {names['status'].get(a['set_status'], a['set_status'])}")
    if "set_priority" in a:
        does.append(f"priority → {a['set_priority']}")
    if "set_group_id" in a:
        does.append(f"group → {names['group'].get(a['set_group_id'], a['set_group_id'])}")
    if "canned_reply_id" in a:
        does.append(f"reply “{names['canned'].get(a['canned_reply_id'], a['canned_reply_id'])}”")
    if "note" in a:
        does.append("note")
    return ", ".join(when), ", ".join(does)


async def _names(conn: Connection) -> dict[str, dict[Any, str]]:
    return {"status": {r["code"]: r["title"] for r in await rules_admin_store.statuses(conn)},
            "group": {r["id"]: r["name"] for r in await rules_admin_store.groups(conn)},
            "canned": {r["id"]: r["name"] for r in await rules_admin_store.canned_replies(conn)}}


async def _editor(request: web.Request, rule: Mapping[str, Any], errors: Mapping[str, str], *,
                  problems: list[str] | None = None, status: int = 200) -> web.Response:
    editing = rule.get("id") is not None
    run: tuple[int, bool] | None = None
    async with request.app[keys.POOL].acquire() as conn:
        statuses = await rules_admin_store.statuses(conn)
        groups = await rules_admin_store.groups(conn)
        canned = await rules_admin_store.canned_replies(conn)
        stored = await rules_admin_store.rule(conn, int(rule["id"])) if editing else None
        run_error = ""
        if stored is not None:
            try:
                run = await dry_run(conn, stored, dt.datetime.now(dt.UTC))
            except (ValueError, TypeError) as e:
                run_error = str(e)
    def named(r: Row) -> str:
        return f"{r['name']} ({r['partner_name']})" if r["partner_name"] else r["name"]
    return pages.render("tickets/rule_form.html", request, {
        "r": rule, "errors": errors, "problems": problems or [], "editing": editing,
        "enabled": bool(stored["enabled"]) if stored is not None else False,
        "status_options": [(s["code"], s["title"] + (" (closed)" if s["closed"] else "")) for s in statuses],
        "priority_options": [(p, p) for p in automation.PRIORITIES],
        "type_options": [(t, t.replace("_", " ")) for t in automation.TYPES],
        "group_options": [(g["id"], named(g)) for g in groups],
        "canned_options": [(c["id"], named(c)) for c in canned], "unassigned_options": UNASSIGNED,
        "run": run, "run_error": run_error, "notice": request.query.get("done", "")}, status=status)


def _shown(form: Mapping[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in form.items() if k != "_csrf"}
    shown["enabled"] = "enabled" in form
    return shown


def _render(request: web.Request, values: Mapping[str, Any],
            refusal: schemas.Invalid | None) -> Awaitable[web.Response]:
    problems = refusal.problems if isinstance(refusal, Refused) else None
    return _editor(request, values, refusal.errors if refusal else {}, problems=problems,
                   status=422 if refusal else 200)


async def _rule_or_404(_: web.Request, conn: Connection, rule_id: int) -> asyncpg.Record:
    row = await rules_admin_store.rule(conn, rule_id)
    if row is None:
        raise web.HTTPNotFound(text="no such rule")
    return row


RULES = editing.Kind("/tickets/rules", _rule_or_404, _save, _render, DEFAULTS, form_of=form_of, shown=_shown,
                     guard=_operator_only)


@AREA.page("/tickets/rules", permission="support.view")
async def rules_list(request: web.Request) -> web.StreamResponse:
    _operator_only(request)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await rules_admin_store.rules(conn)
        names = await _names(conn)
    listed = [{**dict(r), "when": w, "does": d} for r in rows for w, d in [_summary(r, names)]]
    return pages.render("tickets/rules_list.html", request, {"rows": listed, "notice": request.query.get("done", "")})


RULES.declare(AREA, "rule")


async def _switch(request: web.Request, enabled: bool) -> web.StreamResponse:
    _operator_only(request)
    rule_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        before = await rules_admin_store.rule(conn, rule_id, lock=True)
        if before is None:
            raise web.HTTPNotFound(text="no such rule")
        if before["enabled"] != enabled:
            if enabled and automation.problems(rules_store.rule_of(before)):
                raise web.HTTPConflict(text="the rule has problems: correct it first")
            row = await rules_admin_store.set_enabled(conn, rule_id, enabled)
            assert row is not None
            await log(conn, request, "enable" if enabled else "disable", {**_OWNER, "id": rule_id},
                      f"{'enabled' if enabled else 'disabled'} rule {row['name']}", object_type="ticket_rule",
                      before={"enabled": before["enabled"]}, after={"enabled": enabled})
    raise web.HTTPFound(f"/admin/tickets/rules/{rule_id}?done={'enabled' if enabled else 'disabled'}")


@AREA.page("/tickets/rules/{id}/enable", permission="support.edit", method="POST")
async def rule_enable(request: web.Request) -> web.StreamResponse:
    return await _switch(request, True)


@AREA.page("/tickets/rules/{id}/disable", permission="support.edit", method="POST")
async def rule_disable(request: web.Request) -> web.StreamResponse:
    return await _switch(request, False)


async def _delete(request: web.Request, rule_id: int) -> None:
    _operator_only(request)
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        gone = await rules_admin_store.delete(conn, rule_id)
        if gone is None:
            raise web.HTTPNotFound(text="no such rule")
        await log(conn, request, "delete", {**_OWNER, "id": rule_id}, f"deleted rule {gone['name']}",
                  object_type="ticket_rule", before=_view(gone))


@AREA.page("/tickets/rules/{id}/delete", permission="support.edit", method="POST")
async def rule_delete(request: web.Request) -> web.StreamResponse:
    await _delete(request, path_id(request))
    raise web.HTTPFound("/admin/tickets/rules?done=deleted")


# -- API --------------------------------------------------------------------------------------

def _body_form(data: RuleIn | RulePatch, base: Mapping[str, Any]) -> dict[str, Any]:
    """A rule's body over ``base`` as the form rule_from_form checks (a condition or action given
    replaces the stored one whole)."""
    given: dict[str, Any] = {}
    for part in (data.condition, data.action):
        if not isinstance(part, msgspec.UnsetType):
            given.update(msgspec.structs.asdict(part))
    if "unassigned" in given:
        given["unassigned"] = {None: "", True: "yes", False: "no"}[given["unassigned"]]
    for name in ("name", "enabled"):
        if getattr(data, name) is not msgspec.UNSET:
            given[name] = getattr(data, name)
    return editing.as_form(given, base)


async def _rule_out(request: web.Request, rule_id: int) -> Rule:
    return out(await RULES.row(request, rule_id), Rule)


@AREA.api("GET", "/tickets/rules", permission="support.view", summary="List ticket rules", response=list[Rule])
async def api_rules(request: web.Request) -> web.StreamResponse:
    """The automation's rules, by name. The operator's: a partner's key finds none (404)."""
    _operator_only(request)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await rules_admin_store.rules(conn)
    return schemas.json([out(r, Rule) for r in rows])


@AREA.api("GET", "/tickets/rules/{id}", permission="support.view", summary="Get a ticket rule", response=Rule)
async def api_rule(request: web.Request) -> web.StreamResponse:
    _operator_only(request)
    return schemas.json(await _rule_out(request, path_id(request)))


@AREA.api("POST", "/tickets/rules", permission="support.edit", summary="Add a ticket rule", body=RuleIn,
          response=Rule, status=201)
async def api_rule_create(request: web.Request) -> web.StreamResponse:
    """Checked as the ``tickets.rules`` job reads it: a field's error by its name, the rule's own
    sentences (an action that undoes its condition, no condition at all…) joined as ``""``."""
    _operator_only(request)
    data = await schemas.body(request, RuleIn)
    row = await _save(request, None, _body_form(data, DEFAULTS))
    return schemas.json(await _rule_out(request, row["id"]), status=201)


@AREA.api("PATCH", "/tickets/rules/{id}", permission="support.edit", summary="Change a ticket rule",
          body=RulePatch, response=Rule)
async def api_rule_change(request: web.Request) -> web.StreamResponse:
    """Only the fields given change; ``enabled`` enables or disables it."""
    _operator_only(request)
    rule_id = path_id(request)
    patch = await schemas.body(request, RulePatch)
    base = editing.as_form(form_of(await RULES.row(request, rule_id)))
    if not isinstance(patch.condition, msgspec.UnsetType):
        base.update(dict.fromkeys(automation.Condition.__dataclass_fields__, ""))
    if not isinstance(patch.action, msgspec.UnsetType):
        base.update(dict.fromkeys(automation.Action.__dataclass_fields__, ""))
    await _save(request, rule_id, _body_form(patch, base))
    return schemas.json(await _rule_out(request, rule_id))


@AREA.api("DELETE", "/tickets/rules/{id}", permission="support.edit", summary="Delete a ticket rule",
          response=Deleted)
async def api_rule_delete(request: web.Request) -> web.StreamResponse:
    rule_id = path_id(request)
    await _delete(request, rule_id)
    return schemas.json(Deleted(rule_id))
