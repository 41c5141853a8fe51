"""Making messages: the document notices of the events outbox, and the day's scheduled notices.

Each message is made once per (cause, kind, channel) (the messages_once constraint: every
statement here is ``INSERT ... ON CONFLICT DO NOTHING``), so running anything here twice makes
nothing twice. Subjects and bodies are not rendered here but when the message is sent
(deliver.py), with the templates and the entity as they are then.

- :func:`document_notices`: for invoice.created, proforma.created, credit_note.created and
  payment.recorded events, one message per channel of the kind's enabled rule, due
  ``delay_hours`` after the event, at the first open moment of the partner's send window.
- :func:`run_day` (hourly): for each partner, each enabled scheduled kind whose hour has come
  today in the partner's zone: payment reminders, prepaid notices, blocking and inactive waves,
  card expiry and contract end (see each ``_schedule_*``). One statement per kind and group of
  partners that share their settings and rule, never one per customer.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import asyncpg

from admin.auth.store import Connection
from admin.notifications import schedule, store
from admin.notifications.model import SCHEDULED_KINDS
from daemons import log

REMINDERS = ("reminder_1", "reminder_2", "reminder_3")
PREPAID = ("prepaid_1", "prepaid_2", "prepaid_3")
WAVE_DAYS = 7
"""How far back a blocking or inactive wave's status changes are looked at."""
DEFAULT_RELATIVE_DAYS = 7
"""A reminder without a day (its rule never set): this many days after the one before."""

_log = log.get("lastmile.notifications")


async def wake(conn: Connection) -> None:
    """Have the delivery job run now (jobs.wake, imported late: jobs.py imports this module)."""
    from admin.notifications import jobs

    await jobs.wake(conn)


# -- document notices --------------------------------------------------------------------------

async def document_notices(conn: Connection, event_ids: Sequence[int], now: dt.datetime) -> int:
    """Schedule the document notices of these outbox events; the messages made. Runs in the
    caller's transaction (the dispatcher's) and opens none of its own."""
    events = await store.notice_events(conn, event_ids)
    if not events:
        return 0
    rules = await store.rule_rows(conn)
    settings = await store.settings_rows(conn)
    cal: store.Calendar | None = None
    windows: dict[int, schedule.Window | None] = {}
    made: list[store.NewMessage] = []
    for e in events:
        rule = store.rule_for(rules, e["partner_id"], e["kind"])
        if rule is None or not rule["enabled"] or e["customer_id"] is None or e["document_id"] is None:
            continue
        if e["partner_id"] not in windows:
            row = store.effective(settings, e["partner_id"])
            if row is not None and cal is None:
                cal = await store.calendar(conn)
            windows[e["partner_id"]] = store.window(row, cal, now.date()) if cal is not None else None
        try:
            send_at = schedule.document_send_at(e["occurred_at"], rule["delay_hours"], windows[e["partner_id"]])
        except schedule.ScheduleError as err:  # a window that never opens: after the delay, and said why
            _log.warning("send window ignored", partner=e["partner_id"], error=str(err))
            send_at = e["occurred_at"] + dt.timedelta(hours=rule["delay_hours"])
        attachments = (e["document_id"],) if rule["attach"] else ()
        made.extend(store.NewMessage(
            partner_id=e["partner_id"], customer_id=e["customer_id"], kind=e["kind"], channel=channel,
            cause=e["cause"], send_at=send_at, document_id=e["document_id"], attachments=attachments,
            bcc=rule["bcc"], created_by="event") for channel in rule["channels"])
    count = await store.insert_messages(conn, made)
    if count and any(m.send_at <= now for m in made):
        await wake(conn)
    return count


# -- the day's schedule ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Partner:
    id: int
    settings: asyncpg.Record | None
    tz: ZoneInfo
    local: dt.datetime  # now in the partner's zone

    @property
    def today(self) -> dt.date:
        return self.local.date()


def _hour_come(rule: asyncpg.Record | None, p: _Partner) -> bool:
    return rule is not None and rule["enabled"] and p.local.hour >= rule["send_hour"]


def _params(rule: asyncpg.Record, p: _Partner) -> store.RuleParams:
    at = schedule.at_hour(p.today, rule["send_hour"], p.tz)
    return store.RuleParams(kind=rule["kind"], channels=list(rule["channels"]), send_at=at, attach=rule["attach"],
                            bcc=rule["bcc"], payment_methods=list(rule["payment_methods"]), day=rule["day"])


def _groups(partners: Sequence[_Partner], rules: Mapping[tuple[int | None, str], asyncpg.Record],
            kinds: Sequence[str]) -> dict[tuple[object, ...], list[_Partner]]:
    """Partners that share their settings row and their rules of ``kinds``: one statement each."""
    groups: dict[tuple[object, ...], list[_Partner]] = defaultdict(list)
    for p in partners:
        key = (p.settings["id"] if p.settings is not None else None,
               *((r["id"] if (r := store.rule_for(rules, p.id, k)) is not None else None) for k in kinds))
        groups[key].append(p)
    return groups


async def run_day(conn: Connection, now: dt.datetime) -> dict[str, int]:
    """Schedule every scheduled notice whose hour has come today; how many were made, per kind."""
    settings = await store.settings_rows(conn)
    rules = await store.rule_rows(conn)
    partners = []
    for pid in await store.partner_ids(conn):
        row = store.effective(settings, pid)
        tz = store.zone(row)
        partners.append(_Partner(pid, row, tz, now.astimezone(tz)))
    counts: dict[str, int] = dict.fromkeys(SCHEDULED_KINDS, 0)
    for group in _groups(partners, rules, REMINDERS).values():
        for kind, n in (await _schedule_reminders(conn, group, rules, now)).items():
            counts[kind] += n
    for group in _groups(partners, rules, PREPAID).values():
        for kind, n in (await _schedule_prepaid(conn, group, rules, now)).items():
            counts[kind] += n
    for kind in ("blocking", "inactive", "card_expiry", "contract_end"):
        for group in _groups(partners, rules, (kind,)).values():
            counts[kind] += await _schedule_one(conn, group, rules, kind, now)
    if any(counts.values()) and await store.any_due(conn, now):
        await wake(conn)
    return counts


def _reminder_days(group_rules: Sequence[asyncpg.Record | None], mode: schedule.ReminderMode) -> tuple[int, int, int]:
    days: list[int] = []
    for r in group_rules:
        day = r["day"] if r is not None else None
        if day is None:
            day = DEFAULT_RELATIVE_DAYS if mode == "relative" else (days[-1] if days else 1)
        days.append(day)
    return days[0], days[1], days[2]


async def _schedule_reminders(conn: Connection, group: Sequence[_Partner],
                              rules: Mapping[tuple[int | None, str], asyncpg.Record],
                              now: dt.datetime) -> dict[str, int]:
    """Payment reminders: for each customer whose oldest unpaid invoice is due on a day D, the
    latest enabled reminder whose day (schedule.reminder_dates of D) has come, once its hour has
    come today; cause ``invoice:<that invoice>``, so each reminder goes once per invoice."""
    first = group[0]
    group_rules = [store.rule_for(rules, first.id, k) for k in REMINDERS]
    enabled = [r for r in group_rules if r is not None and r["enabled"]]
    if not any(_hour_come(r, first) for r in enabled):
        return {}
    mode = store.reminder_mode(first.settings)
    try:
        days = _reminder_days(group_rules, mode)
        schedule.reminder_dates(first.today, days, mode)
    except schedule.ScheduleError as err:
        _log.warning("reminders not scheduled: their days are wrong", partners=[p.id for p in group], error=str(err))
        return {}
    ids = [p.id for p in group]
    plan: list[tuple[dt.date, str]] = []
    for due_on in await store.reminder_due_dates(conn, ids):
        dates = schedule.reminder_dates(due_on, days, mode)
        come = [r for r in enabled if dates[int(r["kind"][-1]) - 1] <= first.today]
        if come:
            latest = max(come, key=lambda r: r["kind"])
            if _hour_come(latest, first):
                plan.append((due_on, latest["kind"]))
    if not plan:
        return {}
    return await store.schedule_reminders(conn, ids, plan, [_params(r, first) for r in enabled])


async def _schedule_prepaid(conn: Connection, group: Sequence[_Partner],
                            rules: Mapping[tuple[int | None, str], asyncpg.Record],
                            now: dt.datetime) -> dict[str, int]:
    """Prepaid notices: to active prepaid customers whose balance lasts no more days than a
    notice's threshold, the most urgent notice only (schedule.notice_due); cause
    ``prepaid:<customer>:<blocking date>``, so a top-up that moves the blocking date makes the
    notices due again for the new date."""
    first = group[0]
    found = [store.rule_for(rules, first.id, k) for k in PREPAID]
    thresholds = [r["day"] if r is not None and r["enabled"] else None for r in found]
    counts: dict[str, int] = {}
    for number, r in enumerate(found, start=1):
        if r is None or not _hour_come(r, first) or r["day"] is None:
            continue
        threshold = r["day"]
        more_urgent = [t for j, t in enumerate(thresholds, start=1)
                       if t is not None and j != number and (t < threshold or (t == threshold and j > number))]
        counts[r["kind"]] = await store.schedule_prepaid(conn, [p.id for p in group], first.today,
                                                         _params(r, first), more_urgent)
    return counts


async def _schedule_one(conn: Connection, group: Sequence[_Partner],
                        rules: Mapping[tuple[int | None, str], asyncpg.Record], kind: str, now: dt.datetime) -> int:
    """Blocking and inactive waves (dunning's status changes of the last days, cause
    ``status:<change>``), card expiry (``card:<card>:<yyyy-mm>``, ``day`` days before the end of
    the expiry month) and contract end (``service:<service>:<end date>``, ``day`` days before)."""
    first = group[0]
    rule = store.rule_for(rules, first.id, kind)
    if rule is None or not _hour_come(rule, first):
        return 0
    params = _params(rule, first)
    ids = [p.id for p in group]
    if kind in ("blocking", "inactive"):
        tomorrow = schedule.at_hour(first.today + dt.timedelta(days=1), rule["send_hour"], first.tz)
        return await store.schedule_wave(conn, ids, params, tomorrow, now - dt.timedelta(days=WAVE_DAYS), now)
    if kind == "card_expiry":
        return await store.schedule_card_expiry(conn, ids, first.today, params)
    return await store.schedule_contract_end(conn, ids, first.today, params)
