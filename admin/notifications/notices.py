"""Notifications → Notices: what is sent and when, per partner (and the default of partners
without their own), in four groups: document notices (invoice, proforma, payment, credit note),
payment reminders 1-3, prepaid notices 1-3 and the others (blocking and inactive waves, card
expiry, contract end); beside the reminders, their calendar: how many of each reminder would go
on each day of a month for the invoices unpaid now. "Run today's notices now" queues the day's
schedule and the delivery (the worker runs them).

A rule is read when the schedule runs, so a change reaches every existing customer from then on:
there is nothing to apply. A partner's page shows its own rule of a kind, else the default one;
saving a group gives the partner its own rules of that group's kinds ("Use the default notices"
deletes them). Scoping as the settings page's (settings.py): a partner's administrator sees and
changes its partner's rules only and reads the default ones, which an administrator of every
partner changes.
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import re
import zoneinfo
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, oplog_store, pages, schemas
from admin.auth.store import Connection
from admin.notifications import model, notices_store, schedule, scheduler, settings, settings_store, templates
from admin.notifications.area import AREA
from admin.notifications.settings import Scope, checked_scope, editor, may_edit, page_scope, parse_scope, partner_name
from admin.worker import queue

GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "documents": ("Document notices", model.DOCUMENT_KINDS),
    "reminders": ("Payment reminders", ("reminder_1", "reminder_2", "reminder_3")),
    "prepaid": ("Prepaid notices", ("prepaid_1", "prepaid_2", "prepaid_3")),
    "others": ("Others", ("blocking", "inactive", "card_expiry", "contract_end")),
}
REMINDERS = GROUPS["reminders"][1]
PREPAID = GROUPS["prepaid"][1]
_COMMON = ("enabled", "channels", "subject")
FIELDS: dict[str, tuple[str, ...]] = {
    **{k: (*_COMMON, "delay_hours", "attach", "bcc") for k in model.DOCUMENT_KINDS},
    **{k: (*_COMMON, "send_hour", "day", "attach", "payment_methods") for k in REMINDERS},
    **{k: (*_COMMON, "send_hour", "day") for k in PREPAID},
    "blocking": (*_COMMON, "send_hour"), "inactive": (*_COMMON, "send_hour"),
    "card_expiry": (*_COMMON, "send_hour", "day"), "contract_end": (*_COMMON, "send_hour", "day"),
}
"""What the page shows and changes of each kind's rule (the other columns keep their values)."""
RULE_DEFAULTS: dict[str, Any] = {"enabled": False, "channels": ["email"], "subject": "", "delay_hours": 0,
                                 "send_hour": 9, "day": None, "attach": True, "bcc": "", "payment_methods": []}
"""A kind without any rule: off (schema.sql's defaults)."""
DELAYS = (0, 1, 3, 6, 12, 24, 48, 72)
METHODS = (("manual", "pays by hand"), ("direct_debit", "direct debit"), ("card", "card (autopay)"))
CHANNEL_NAMES = (("email", "Email"), ("sms", "SMS"), ("portal", "Portal"))
DAY_LABELS = {**{k: "Days before blocking" for k in PREPAID}, "card_expiry": "Days before the card expires",
              "contract_end": "Days before the contract ends"}
MAX_SUBJECT = 250
_ADDRESS = re.compile(r"[^@\s<>\",]+@[^@\s<>\",]+\.[^@\s<>\",]+")
Source = Literal["partner", "default", "built-in"]


# -- the API's shapes --------------------------------------------------------------------------------

class NoticeRule(msgspec.Struct, kw_only=True):
    """The rule of ``kind`` in effect for ``partner_id`` (null: the default one); ``source``: the
    partner's own, the default, or none at all (built-in: off). ``day``: reminders: the reminder's
    day (see the settings' `reminder_days`); prepaid notices: days before blocking; card expiry,
    contract end: days before."""

    partner_id: int | None
    kind: str
    source: Source
    enabled: bool
    channels: list[str]
    subject: str
    delay_hours: int
    send_hour: int
    day: int | None
    attach: bool
    bcc: str
    payment_methods: list[str]
    updated_by: str
    updated_at: dt.datetime | None


class NoticeRuleIn(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The fields to change; the others keep the values in effect (a partner without its own rule
    of the kind starts from the default one)."""

    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    channels: Annotated[list[model.Channel], msgspec.Meta(min_length=1, max_length=3)] | msgspec.UnsetType = \
        msgspec.UNSET
    subject: Annotated[str, msgspec.Meta(max_length=MAX_SUBJECT, description=(
        "a template (the message's variables); empty: the kind's default subject"))] | msgspec.UnsetType = \
        msgspec.UNSET
    delay_hours: Literal[0, 1, 3, 6, 12, 24, 48, 72] | msgspec.UnsetType = msgspec.UNSET
    send_hour: Annotated[int, msgspec.Meta(ge=0, le=23)] | msgspec.UnsetType = msgspec.UNSET
    day: Annotated[int, msgspec.Meta(ge=0, le=366)] | msgspec.UnsetType | None = msgspec.UNSET
    attach: bool | msgspec.UnsetType = msgspec.UNSET
    bcc: Annotated[str, msgspec.Meta(max_length=500)] | msgspec.UnsetType = msgspec.UNSET
    payment_methods: Annotated[list[Literal["manual", "direct_debit", "card"]], msgspec.Meta(max_length=3)] | \
        msgspec.UnsetType = msgspec.UNSET


class Queued(msgspec.Struct, kw_only=True):
    schedule_job: int
    deliver_job: int


# -- rules ---------------------------------------------------------------------------------------------

def effective(rows: Sequence[asyncpg.Record] | Sequence[Mapping[str, Any]], scope: Scope,
              kind: str) -> tuple[dict[str, Any], Source]:
    """(the rule of ``kind`` in effect for ``scope``, its source) from the scope's and the default rows."""
    own = next((r for r in rows if r["kind"] == kind and r["partner_id"] == scope), None)
    default = next((r for r in rows if r["kind"] == kind and r["partner_id"] is None), None)
    if own is not None:
        return dict(own), "partner" if scope is not None else "default"
    if default is not None:
        return dict(default), "default"
    return {**RULE_DEFAULTS, "kind": kind, "partner_id": scope, "updated_by": "", "updated_at": None}, "built-in"


def _subject_errors(kind: str, subject: str) -> list[str]:
    """What is wrong with ``subject`` as a template of ``kind`` (checked the way a message renders it)."""
    if not subject:
        return []
    return templates.check(kind, "email", templates.builtin_source(kind, "email"), subject)


def _bcc(text: str) -> str | None:
    """BCC as kept ('a@x.net, b@y.org'), or None when it is not addresses."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    for part in parts:
        name, address = parseaddr(part)
        if name or not _ADDRESS.fullmatch(address) or address != part:
            return None
    return ", ".join(parts)


def checked(values: Mapping[str, Mapping[str, Any]], mode: str,
            only: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Every kind's rule of ``values`` as the rows keep them; Invalid with every wrong field
    (``kind.field``) of the kinds in ``only`` (all, for None): the others are what is saved
    already, and are read only to check the changed ones against (reminder days ascend, prepaid
    days descend). ``mode``: the reminders' day mode (the settings' reminder_days)."""
    out = {k: dict(v) for k, v in values.items()}
    checking = set(out if only is None else only)
    errors: dict[str, str] = {}
    for kind in checking:
        _check_rule(kind, out[kind], mode, errors)
    on = [(k, out[k]["day"]) for k in REMINDERS if k in out and out[k]["enabled"] and out[k]["day"] is not None]
    if mode == "static":
        for (previous, before), (kind, day) in itertools.pairwise(on):
            if day <= before and checking & {kind, previous} and f"{kind}.day" not in errors:
                errors[f"{kind if kind in checking else previous}.day"] = (
                    f"{model.KIND_TITLES[kind]} (day {day}) must come after {model.KIND_TITLES[previous].lower()} "
                    f"(day {before}): static days ascend")
    prepaid = [(k, out[k]["day"]) for k in PREPAID if k in out and out[k]["enabled"] and out[k]["day"] is not None]
    for (previous, before), (kind, day) in itertools.pairwise(prepaid):
        if day >= before and checking & {kind, previous} and f"{kind}.day" not in errors:
            errors[f"{kind if kind in checking else previous}.day"] = (
                f"{model.KIND_TITLES[kind]} ({day} days) must come closer to blocking than "
                f"{model.KIND_TITLES[previous].lower()} ({before} days): the days before blocking descend")
    if errors:
        raise schemas.Invalid(errors)
    return out


def _check_rule(kind: str, rule: dict[str, Any], mode: str, errors: dict[str, str]) -> None:
    """One kind's rule made as the row keeps it, in place; what is wrong added to ``errors``."""
    def wrong(name: str, text: str) -> None:
        errors.setdefault(f"{kind}.{name}", text)
    channels = [c for c in model.CHANNELS if c in rule["channels"]]
    if not channels or len(channels) != len(set(rule["channels"])):
        wrong("channels", "choose email, SMS or the portal (one at least)")
    rule["channels"] = channels
    subject = str(rule["subject"]).strip()
    if "\n" in subject or "\r" in subject or "\x00" in subject:
        wrong("subject", "must be one line")
    elif len(subject) > MAX_SUBJECT:
        wrong("subject", f"at most {MAX_SUBJECT} characters")
    else:
        problems = _subject_errors(kind, subject)
        if problems:
            wrong("subject", "; ".join(problems))
    rule["subject"] = subject
    if rule["delay_hours"] not in DELAYS:
        wrong("delay_hours", "one of " + ", ".join(map(str, DELAYS)) + " hours")
    hour = rule["send_hour"]
    if isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23:
        wrong("send_hour", "an hour from 0 to 23")
    bcc = _bcc(str(rule["bcc"]))
    if bcc is None:
        wrong("bcc", "must be an email address (or several, separated by commas)")
    else:
        rule["bcc"] = bcc
    if any(m not in ("manual", "direct_debit", "card") for m in rule["payment_methods"]):
        wrong("payment_methods", "manual, direct_debit or card")
    rule["payment_methods"] = [m for m, _ in METHODS if m in rule["payment_methods"]]
    day = rule["day"]
    if day is not None and (isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 366):
        wrong("day", "a number of days from 0 to 366")
    elif "day" in FIELDS[kind] and rule["enabled"] and day is None:
        wrong("day", "is required while the notice is on")
    elif kind in REMINDERS and day is not None:
        if mode == "static" and not 1 <= day <= 31:
            wrong("day", "a day of the month, 1 to 31 (the reminders' days are static: see Settings)")
        elif mode != "static" and not 1 <= day <= 366:
            wrong("day", "1 to 366 days after " + ("the due date" if kind == "reminder_1" else "the reminder before"))


async def _mode(conn: Connection, scope: Scope) -> tuple[str, str]:
    """The reminders' day mode and the time zone in effect for ``scope`` (its settings)."""
    values, _ = settings.effective(await settings_store.rows(conn, scope), scope)
    return str(values["reminder_days"]), str(values["timezone"])


def _logged(rule: Mapping[str, Any] | asyncpg.Record) -> dict[str, Any]:
    return schemas.row_json({c: rule[c] for c in notices_store.EDITABLE})


async def save(conn: Connection, request: web.Request, scope: Scope, changes: Mapping[str, Mapping[str, Any]],
               *, what: str) -> dict[str, asyncpg.Record]:
    """Apply ``changes`` (kind -> columns) to the scope's rules, each made from the rule in effect
    the first time; checked with the scope's other rules; one line in the operations log."""
    who = keys.principal(request)
    editor(who, scope)
    name = await partner_name(conn, scope)
    async with conn.transaction():
        await notices_store.lock(conn, scope)
        rows = await notices_store.rules(conn, scope)
        mode, _ = await _mode(conn, scope)
        current = {k: effective(rows, scope, k) for k in model.RULE_KINDS}
        wanted = {k: {**{c: v[c] for c in notices_store.EDITABLE}, **dict(changes.get(k, {}))}
                  for k, (v, _) in current.items()}
        new = checked(wanted, mode, list(changes))
        saved: dict[str, asyncpg.Record] = {}
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for kind in changes:
            old, source = current[kind]
            own = source == "partner" or (scope is None and source == "default")
            if own and all(new[kind][c] == old[c] for c in notices_store.EDITABLE):
                continue
            saved[kind] = await notices_store.save(conn, scope, kind, new[kind], who.name)
            before[kind] = _logged(old) if own else None
            after[kind] = _logged(new[kind])
        if saved:
            whose = f"{name}'s" if scope is not None else "the default"
            await oplog_store.record(conn, who, keys.client_address(request), "update", "notice_rules", None,
                                     partner_id=scope, summary=f"{whose} notices: {what} "
                                     f"({', '.join(model.KIND_TITLES[k].lower() for k in saved)})",
                                     before=before, after=after)
    return saved


async def reset(conn: Connection, request: web.Request, scope: Scope, kinds: Sequence[str]) -> int:
    """A partner's own rules of ``kinds`` deleted (it follows the default ones again); how many."""
    if scope is None:
        raise web.HTTPConflict(text="The default notices have nothing to fall back to: change them instead.")
    who = keys.principal(request)
    editor(who, scope)
    name = await partner_name(conn, scope)
    async with conn.transaction():
        gone = await notices_store.delete(conn, scope, kinds)
        if gone:
            await oplog_store.record(conn, who, keys.client_address(request), "delete", "notice_rules", None,
                                     partner_id=scope, summary=f"{name}'s notices: back to the default ones "
                                     f"({', '.join(model.KIND_TITLES[r['kind']].lower() for r in gone)})",
                                     before={r["kind"]: _logged(r) for r in gone})
    return len(gone)


# -- the reminders' calendar ----------------------------------------------------------------------

@dataclass
class CalendarDay:
    day: dt.date
    in_month: bool
    past: bool
    today: bool
    counts: list[tuple[int, int]] = field(default_factory=list)  # (reminder 1-3, how many), the day's


@dataclass
class Calendar:
    month: dt.date  # its first day
    weeks: list[list[CalendarDay]]
    hours: dict[int, int]  # reminder 1-3 -> its hour (the shown scope's rule)
    enabled: list[int]
    timezone: str
    mode: str
    total: dict[int, int]  # reminder -> how many in the month
    problems: list[str]

    @property
    def previous(self) -> str:
        return (self.month - dt.timedelta(days=1)).strftime("%Y-%m")

    @property
    def next(self) -> str:
        return (self.month + dt.timedelta(days=32)).replace(day=1).strftime("%Y-%m")


def month_of(text: str, today: dt.date) -> dt.date:
    """``?month=2026-12`` as its first day (this month when absent; a wrong one: not found)."""
    if not text:
        return today.replace(day=1)
    match = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if not match or not 1 <= int(match.group(2)) <= 12 or not 1970 <= int(match.group(1)) <= 9998:
        raise web.HTTPNotFound(text="month=YYYY-MM")
    return dt.date(int(match.group(1)), int(match.group(2)), 1)


def _days(rules: Sequence[Mapping[str, Any]], mode: str) -> tuple[int, int, int]:
    """The three reminders' days for schedule.reminder_dates, as the scheduler fills a reminder
    without a day: relative, scheduler.DEFAULT_RELATIVE_DAYS; static, the day before it (or the 1st)."""
    days: list[int] = []
    for r in rules:
        day = r["day"]
        if day is None:
            day = scheduler.DEFAULT_RELATIVE_DAYS if mode != "static" else (days[-1] if days else 1)
        days.append(int(day))
    return days[0], days[1], days[2]


def pays_by(methods: Sequence[str], dd: bool, card: bool) -> bool:
    """Whether a customer paying so (dd: an active mandate, card: an autopay card) gets a reminder
    restricted to ``methods`` (none: everyone), as the scheduler chooses (store.py)."""
    return (not methods or ("direct_debit" in methods and dd) or ("card" in methods and card)
            or ("manual" in methods and not dd and not card))


Groups = Sequence[Mapping[str, Any]] | Sequence[asyncpg.Record]
Counts = dict[tuple[dt.date, int], int]


def count_reminders(groups: Groups, rules_of: Mapping[int, Sequence[Mapping[str, Any]] | None],
                    modes: Mapping[int, str], start: dt.date, end: dt.date) -> tuple[Counts, list[str]]:
    """How many of each reminder go on each day from ``start`` to ``end`` (inclusive): each group of
    unpaid invoices (partner_id, due_on, dd, card, invoices) mapped through its partner's three
    reminder rules (``rules_of``; None: the partner is not counted here) and day mode. Also the
    problems met (rules whose days do not fit the mode)."""
    counts: dict[tuple[dt.date, int], int] = defaultdict(int)
    problems: set[str] = set()
    for g in groups:
        rules = rules_of.get(g["partner_id"])
        if rules is None:
            continue
        mode = modes.get(g["partner_id"], "relative")
        try:
            dates = schedule.reminder_dates(g["due_on"], _days(rules, mode),
                                            "static" if mode == "static" else "relative")
        except (schedule.ScheduleError, ValueError) as e:
            problems.add(str(e))
            continue
        for number, (rule, day) in enumerate(zip(rules, dates, strict=True), start=1):
            if not rule["enabled"] or rule.get("counted") is False or not start <= day <= end:
                continue
            if not pays_by(rule["payment_methods"], g["dd"], g["card"]):
                continue
            counts[(day, number)] += int(g["invoices"])
    return counts, sorted(problems)


async def reminders_calendar(conn: Connection, scope: Scope, visible: int | None, month: dt.date | None,
                             month_text: str = "", *, mode_zone: tuple[str, str] | None = None) -> Calendar:
    """The calendar of ``month`` (None: ``month_text``, else this month) for ``scope``: a
    partner's customers through its rules; for the default, the customers of every partner
    (``visible``'s alone, for its administrator) whose reminder follows the default rule.
    ``mode_zone``: the scope's reminder day mode and time zone, when the caller has them."""
    mode, timezone = mode_zone or await _mode(conn, scope)
    try:
        today = dt.datetime.now(zoneinfo.ZoneInfo(timezone)).date()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        today = dt.datetime.now(dt.UTC).date()
    first = month or month_of(month_text, today)
    weeks = calendar.Calendar(firstweekday=0).monthdatescalendar(first.year, first.month)
    start, end = weeks[0][0], weeks[-1][-1]
    partner = scope if scope is not None else visible
    groups = await notices_store.unpaid_by_due_date(conn, partner)
    rows = await notices_store.rules_of_kinds(conn, REMINDERS, partner)
    settings_rows = await notices_store.reminder_settings(conn)
    default_mode = next((r["reminder_days"] for r in settings_rows if r["partner_id"] is None), "relative")
    own_mode = {r["partner_id"]: r["reminder_days"] for r in settings_rows if r["partner_id"] is not None}
    rules_of: dict[int, Sequence[Mapping[str, Any]] | None] = {}
    for g in groups:
        p = g["partner_id"]
        if p in rules_of:
            continue
        found = [effective(rows, p, k) for k in REMINDERS]
        if scope is None:  # the default's calendar: a partner's reminder counted only where it follows the default
            rules_of[p] = [{**r, "counted": source != "partner"} for r, source in found]
        else:
            rules_of[p] = [r for r, _ in found]
    modes = {p: own_mode.get(p, default_mode) for p in rules_of}
    counts, problems = count_reminders(groups, rules_of, modes, start, end)
    shown = [effective(rows, scope, k)[0] for k in REMINDERS]
    total: dict[int, int] = defaultdict(int)
    grid = []
    for week in weeks:
        row = []
        for day in week:
            entries = [(n, counts[(day, n)]) for n in (1, 2, 3) if counts.get((day, n))]
            if day.month == first.month:
                for n, c in entries:
                    total[n] += c
            row.append(CalendarDay(day, day.month == first.month, day < today, day == today, entries))
        grid.append(row)
    return Calendar(month=first, weeks=grid, hours={n: int(r["send_hour"]) for n, r in enumerate(shown, start=1)},
                    enabled=[n for n, r in enumerate(shown, start=1) if r["enabled"]], timezone=timezone, mode=mode,
                    total=dict(total), problems=problems)


# -- the page ----------------------------------------------------------------------------------------

def _form_rules(form: Mapping[str, Any], kinds: Sequence[str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """A group's form as kind -> the changed columns; with the errors of the form itself."""
    getall = getattr(form, "getall", None)
    errors: dict[str, str] = {}
    out: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        rule: dict[str, Any] = {}
        for name in FIELDS[kind]:
            key = f"{kind}.{name}"
            if name in ("enabled", "attach"):
                rule[name] = bool(form.get(key))
            elif name in ("channels", "payment_methods"):
                rule[name] = [str(v) for v in (getall(key, []) if getall is not None else form.get(key, []))]
            elif name in ("subject", "bcc"):
                rule[name] = str(form.get(key, ""))
            else:
                text = str(form.get(key, "")).strip()
                if not text and name == "day":
                    rule[name] = None
                elif re.fullmatch(r"[0-9]{1,5}", text):
                    rule[name] = int(text)
                else:
                    rule[name] = text
                    errors[key] = "must be a whole number"
        out[kind] = rule
    return out, errors


async def _render(request: web.Request, conn: Connection, scope: Scope, *, group: str = "",
                  values: Mapping[str, Mapping[str, Any]] | None = None, errors: Mapping[str, str] | None = None,
                  status: int = 200) -> web.Response:
    who = keys.principal(request)
    name = await partner_name(conn, scope)
    rows = await notices_store.rules(conn, scope)
    mode, timezone = await _mode(conn, scope)
    rules: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    for kind in model.RULE_KINDS:
        rules[kind], sources[kind] = effective(rows, scope, kind)
        if values and kind in values:
            rules[kind] = {**rules[kind], **values[kind]}
    cal = await reminders_calendar(conn, scope, who.partner_id, None, request.query.get("month", ""),
                                   mode_zone=(mode, timezone))
    return pages.render("notifications/notices.html", request, {
        "scope": settings.scope_text(scope), "partner_id": scope, "partner": name, "rules": rules,
        "sources": sources, "own": any(s == "partner" for s in sources.values()), "groups": GROUPS,
        "fields": FIELDS, "titles": model.KIND_TITLES, "errors": errors or {}, "group": group, "mode": mode,
        "timezone": timezone, "delays": DELAYS, "methods": METHODS, "channel_names": CHANNEL_NAMES,
        "day_labels": DAY_LABELS, "cal": cal, "done": request.query.get("done", ""),
        "partners": await settings.partners_of(conn, who), "may_edit": may_edit(who, scope),
        "may_run": who.can("notifications.edit") and who.creator_id is None,
        "may_pick_default": who.partner_id is None}, status=status)


def _url(scope: Scope, **query: str) -> str:
    return "/admin/notifications/notices?" + urlencode({"partner": settings.scope_text(scope), **query})


@AREA.page("/notifications/notices", permission="notifications.view")
async def notices_page(request: web.Request) -> web.StreamResponse:
    scope = page_scope(keys.principal(request), request.query)
    async with request.app[keys.POOL].acquire() as conn:
        return await _render(request, conn, scope)


@AREA.page("/notifications/notices", permission="notifications.edit", method="POST")
async def save_form(request: web.Request) -> web.StreamResponse:
    """One group's form (``group``): its kinds' rules saved together, or the page again with the errors."""
    form = await request.post()
    who = keys.principal(request)
    scope = checked_scope(who, parse_scope(str(form.get("partner", ""))))
    group = str(form.get("group", ""))
    if group not in GROUPS:
        raise web.HTTPNotFound(text="no such group of notices")
    title, kinds = GROUPS[group]
    changes, errors = _form_rules(form, kinds)
    async with request.app[keys.POOL].acquire() as conn:
        try:
            editor(who, scope)
            if errors:
                raise schemas.Invalid(errors)
            await save(conn, request, scope, changes, what=f"{title.lower()} changed")
        except schemas.Invalid as e:
            return await _render(request, conn, scope, group=group, values=changes, errors={**errors, **e.errors},
                                 status=422)
    raise web.HTTPFound(_url(scope, done=f"saved-{group}") + f"#{group}")


@AREA.page("/notifications/notices/reset", permission="notifications.edit", method="POST")
async def reset_form(request: web.Request) -> web.StreamResponse:
    """"Use the default notices": the partner's own rules (every kind) deleted."""
    form = await request.post()
    scope = checked_scope(keys.principal(request), parse_scope(str(form.get("partner", ""))))
    async with request.app[keys.POOL].acquire() as conn:
        await reset(conn, request, scope, model.RULE_KINDS)
    raise web.HTTPFound(_url(scope, done="reset"))


async def run_today(conn: Connection, request: web.Request) -> Queued:
    """Queue the day's schedule (notifications.schedule) and the delivery (notifications.deliver),
    as the Jobs page's "Run now" does: one of each queued or running at a time."""
    who = keys.principal(request)
    if not who.can("notifications.edit") or who.creator_id is not None:
        raise web.HTTPForbidden(text="An administrator limited to the customers it created runs no notices.")
    async with conn.transaction():
        first = await queue.enqueue(conn, "notifications.schedule", priority=10,
                                    dedupe_key=queue.schedule_key("notifications.schedule"))
        then = await queue.enqueue(conn, "notifications.deliver",
                                   dedupe_key=queue.schedule_key("notifications.deliver"))
        await oplog_store.record(conn, who, keys.client_address(request), "run", "job", first,
                                 partner_id=who.partner_id,
                                 summary=f"ran today's notices now (jobs {first} and {then}): "
                                         "notifications.schedule, then notifications.deliver",
                                 after={"jobs": [first, then]})
    return Queued(schedule_job=first, deliver_job=then)


@AREA.page("/notifications/notices/run", permission="notifications.edit", method="POST")
async def run_form(request: web.Request) -> web.StreamResponse:
    """"Run today's notices now"."""
    form = await request.post()
    scope = checked_scope(keys.principal(request), parse_scope(str(form.get("partner", "default"))))
    async with request.app[keys.POOL].acquire() as conn:
        queued = await run_today(conn, request)
    raise web.HTTPFound(_url(scope, done="run", jobs=f"{queued.schedule_job},{queued.deliver_job}"))


# -- the API ----------------------------------------------------------------------------------------

def _kind(text: str) -> str:
    if text not in model.RULE_KINDS:
        raise web.HTTPNotFound(text=f"no notice kind {text!r} (one of {', '.join(model.RULE_KINDS)})")
    return text


def _rule_out(rule: Mapping[str, Any], source: Source, scope: Scope, kind: str) -> NoticeRule:
    values = {k: rule[k] for k in NoticeRule.__struct_fields__ if k in rule}
    return msgspec.convert({**values, "partner_id": scope, "kind": kind, "source": source,
                            "channels": list(rule["channels"]), "payment_methods": list(rule["payment_methods"])},
                           NoticeRule)


async def _api_rule(conn: Connection, scope: Scope, kind: str) -> NoticeRule:
    await partner_name(conn, scope)
    rule, source = effective(await notices_store.rules(conn, scope), scope, kind)
    return _rule_out(rule, source, scope, kind)


def _api_target(request: web.Request) -> tuple[Scope, str]:
    scope = checked_scope(keys.principal(request), parse_scope(request.match_info["partner"]))
    return scope, _kind(request.match_info["kind"])


@AREA.api("GET", "/notifications/rules/{partner}/{kind}", permission="notifications.view", response=NoticeRule,
          summary="A notice rule of a partner (or the default one)")
async def api_get(request: web.Request) -> web.StreamResponse:
    """``partner``: a partner's id, or `default`; ``kind``: invoice, proforma, payment, credit_note,
    reminder_1..3, prepaid_1..3, blocking, inactive, card_expiry, contract_end."""
    scope, kind = _api_target(request)
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(await _api_rule(conn, scope, kind))


@AREA.api("PUT", "/notifications/rules/{partner}/{kind}", permission="notifications.edit", body=NoticeRuleIn,
          response=NoticeRule, summary="Change a notice rule of a partner (or the default one)")
async def api_put(request: web.Request) -> web.StreamResponse:
    """The fields given change. Checked with the partner's other rules: static reminder days ascend
    (1-31), relative ones are 1-366, the prepaid notices' days before blocking descend, BCC is an
    address, the subject compiles as a template; a wrong field is 422 (`errors` names it)."""
    scope, kind = _api_target(request)
    data = await schemas.body(request, NoticeRuleIn)
    given = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    async with request.app[keys.POOL].acquire() as conn:
        try:
            await save(conn, request, scope, {kind: given}, what="changed through the API")
        except schemas.Invalid as e:
            raise schemas.Invalid({k.removeprefix(f"{kind}."): v for k, v in e.errors.items()}) from None
        return schemas.json(await _api_rule(conn, scope, kind))


@AREA.api("DELETE", "/notifications/rules/{partner}/{kind}", permission="notifications.edit", response=NoticeRule,
          summary="A partner's notice rule back to the default one")
async def api_reset(request: web.Request) -> web.StreamResponse:
    """Deletes the partner's own rule of ``kind``; the answer is the rule it follows now. `default`: 409."""
    scope, kind = _api_target(request)
    async with request.app[keys.POOL].acquire() as conn:
        await reset(conn, request, scope, [kind])
        return schemas.json(await _api_rule(conn, scope, kind))
