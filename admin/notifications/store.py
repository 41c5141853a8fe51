"""The SQL of the notification engine: settings, rules and templates as a message is made and
sent (scheduler.py, deliver.py, announce.py), the scheduling statements, and the life of a
message (table messages):

    scheduled --claim--> sending --answer--> sent
        ^                   |  \\--refused--> failed --retry (admin)--> scheduled
        |                   \\--4xx, outage, lease expired--> scheduled (later)
        \\--cancel (admin), cause gone--> cancelled

A claim is committed at once (``status = 'sending'``, ``lease_until``, ``attempts + 1``) and each
answer is marked by its own statement as soon as it comes, so a worker that dies loses at most
the message in flight, which goes again (with the same Message-ID) once its lease expires.

Resolution rules (the schema's comments): a partner's settings row is used whole, else the
default row (partner_id NULL), else none (UTC, relative reminder days, no mail server or SMS
gateway); a partner's rule of a kind, else the default's, else none (the kind is off); a
template of (partner, kind, channel, language): partner+language, partner+'', default+language,
default+'', else the built-in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from admin.auth.store import Connection
from admin.notifications import schedule
from admin.notifications.model import MailSettings, SmsSettings
from daemons.secrets import Keyring, SecretError

SMTP_PASSWORD = "notification_settings.smtp_password"  # noqa: S105 (a purpose, not a password)
SMS_AUTH_HEADER = "notification_settings.sms_auth_header"
WORKER = "schedule"
"""messages.created_by of what the schedule made."""


# -- settings ----------------------------------------------------------------------------------

async def settings_rows(conn: Connection) -> dict[int | None, asyncpg.Record]:
    """Every notification_settings row, by partner (None: the default row)."""
    return {r["partner_id"]: r for r in await conn.fetch("SELECT * FROM notification_settings")}


async def settings_of(conn: Connection, partner_id: int) -> asyncpg.Record | None:
    """The settings a partner's messages follow: its own row, else the default row, else None."""
    return await conn.fetchrow("SELECT * FROM notification_settings WHERE partner_id = $1 OR partner_id IS NULL "
                               "ORDER BY partner_id NULLS LAST LIMIT 1", partner_id)


def effective(rows: Mapping[int | None, asyncpg.Record], partner_id: int) -> asyncpg.Record | None:
    """``settings_rows()`` resolved for one partner."""
    return rows.get(partner_id) or rows.get(None)


async def partner_ids(conn: Connection) -> list[int]:
    return [r["id"] for r in await conn.fetch("SELECT id FROM partners ORDER BY id")]


def zone(row: asyncpg.Record | None) -> ZoneInfo:
    """The zone of a settings row (UTC without one, or for a name zoneinfo does not know)."""
    try:
        return ZoneInfo(row["timezone"]) if row is not None and row["timezone"] else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def reminder_mode(row: asyncpg.Record | None) -> schedule.ReminderMode:
    return "static" if row is not None and row["reminder_days"] == "static" else "relative"


@dataclass(frozen=True, slots=True)
class Calendar:
    """Dunning's calendar (billing_settings' country, billing_holidays): the days off of send windows."""

    country: str | None
    subdivision: str | None
    days: frozenset[dt.date]


async def calendar(conn: Connection) -> Calendar:
    row = await conn.fetchrow("SELECT holiday_country, holiday_subdivision FROM billing_settings")
    days = frozenset(r["day"] for r in await conn.fetch("SELECT day FROM billing_holidays"))
    return Calendar(row["holiday_country"] if row else None, row["holiday_subdivision"] if row else None, days)


def window(row: asyncpg.Record | None, cal: Calendar, around: dt.date) -> schedule.Window | None:
    """The send window of document notices of a settings row (None without a row: any time),
    closed on the calendar's days from ``around`` to 400 days on when ``skip_holidays``."""
    if row is None:
        return None
    closed: frozenset[dt.date] = frozenset()
    if row["skip_holidays"]:
        try:
            closed = schedule.holidays_between(cal.country, cal.subdivision, cal.days, around - dt.timedelta(days=1),
                                               around + dt.timedelta(days=400))
        except schedule.ScheduleError:  # a country the holidays package does not know: the ISP's own days
            closed = frozenset(d for d in cal.days if d >= around - dt.timedelta(days=1))
    return schedule.Window(frozenset(row["send_days"]), row["send_from"], row["send_until"], zone(row), closed)


def _opened(keyring: Keyring | None, sealed: str | None, purpose: str) -> str:
    if not sealed:
        return ""
    if keyring is None:
        raise SecretError(f"{purpose}: no secret key to open it with ([secrets] key_file)")
    return keyring.open(sealed, purpose)


def mail_settings(row: asyncpg.Record | None, keyring: Keyring | None) -> MailSettings | None:
    """A settings row's mail server, its password opened (SecretError when it does not open);
    None when no mail server is set."""
    if row is None or not row["smtp_host"]:
        return None
    return MailSettings(host=row["smtp_host"], port=row["smtp_port"], security=row["smtp_security"],
                        username=row["smtp_username"], password=_opened(keyring, row["smtp_password"], SMTP_PASSWORD),
                        sender=row["mail_from"], reply_to=row["mail_reply_to"], per_minute=row["mail_per_minute"])


def sms_settings(row: asyncpg.Record | None, keyring: Keyring | None) -> SmsSettings | None:
    """A settings row's SMS gateway, its Authorization header opened; None when no gateway is set."""
    if row is None or not row["sms_url"]:
        return None
    return SmsSettings(url=row["sms_url"], format=row["sms_format"], to_field=row["sms_to_field"],
                       text_field=row["sms_text_field"], from_field=row["sms_from_field"], sender=row["sms_sender"],
                       auth_header=_opened(keyring, row["sms_auth_header"], SMS_AUTH_HEADER),
                       id_field=row["sms_id_field"], region=row["sms_region"], per_minute=row["sms_per_minute"])


# -- rules and templates -----------------------------------------------------------------------

async def rule_rows(conn: Connection) -> dict[tuple[int | None, str], asyncpg.Record]:
    """Every notice rule, by (partner or None, kind)."""
    return {(r["partner_id"], r["kind"]): r for r in await conn.fetch("SELECT * FROM notice_rules")}


def rule_for(rows: Mapping[tuple[int | None, str], asyncpg.Record], partner_id: int,
             kind: str) -> asyncpg.Record | None:
    """``rule_rows()`` resolved: the partner's rule of ``kind``, else the default's; None: off."""
    return rows.get((partner_id, kind)) or rows.get((None, kind))


async def rule(conn: Connection, partner_id: int, kind: str) -> asyncpg.Record | None:
    """A partner's rule of ``kind`` (its own row, else the default row); None: the kind is off."""
    return await conn.fetchrow("SELECT * FROM notice_rules WHERE kind = $2 AND (partner_id = $1 OR partner_id IS NULL) "
                               "ORDER BY partner_id NULLS LAST LIMIT 1", partner_id, kind)


async def template_source(conn: Connection, partner_id: int, kind: str, channel: str, language: str) -> str | None:
    """The operator's template for a message (see the module's order); None: the built-in."""
    body: str | None = await conn.fetchval(
        "SELECT body FROM message_templates WHERE kind = $2 AND channel = $3 "
        "AND (partner_id = $1 OR partner_id IS NULL) AND language IN ($4, '') "
        "ORDER BY partner_id IS NULL, language <> $4 LIMIT 1", partner_id, kind, channel, language)
    return body


class Templates:
    """The operators' templates of some partners, read once for a batch of messages."""

    def __init__(self, rows: Iterable[asyncpg.Record]) -> None:
        self._bodies: dict[tuple[int | None, str, str, str], str] = {
            (r["partner_id"], r["kind"], r["channel"], r["language"]): r["body"] for r in rows}

    def source(self, partner_id: int, kind: str, channel: str, language: str) -> str | None:
        for key in ((partner_id, kind, channel, language), (partner_id, kind, channel, ""),
                    (None, kind, channel, language), (None, kind, channel, "")):
            body = self._bodies.get(key)
            if body is not None:
                return body
        return None


async def templates(conn: Connection, partner_ids: Sequence[int]) -> Templates:
    rows = await conn.fetch("SELECT partner_id, kind, channel, language, body FROM message_templates "
                            "WHERE partner_id IS NULL OR partner_id = ANY($1::bigint[])", list(partner_ids))
    return Templates(rows)


# -- making messages ---------------------------------------------------------------------------

MESSAGE_COLUMNS = ("partner_id", "customer_id", "kind", "channel", "cause", "document_id", "marketing", "bcc",
                   "subject", "body", "attachments", "send_at", "created_by")
_TYPES = ("bigint", "bigint", "text", "text", "text", "bigint", "boolean", "text", "text", "text", "text",
          "timestamptz", "text")


@dataclass(frozen=True, slots=True)
class NewMessage:
    partner_id: int
    customer_id: int | None
    kind: str
    channel: str
    cause: str
    send_at: dt.datetime
    document_id: int | None = None
    attachments: tuple[int, ...] = ()
    bcc: str = ""
    marketing: bool = False
    subject: str = ""
    body: str = ""
    created_by: str = WORKER


async def insert_messages(conn: Connection, messages: Sequence[NewMessage]) -> int:
    """Insert messages in one statement; one already made for its (cause, kind, channel) is left
    as it is. The number inserted."""
    if not messages:
        return 0
    columns = [
        [m.partner_id for m in messages], [m.customer_id for m in messages], [m.kind for m in messages],
        [m.channel for m in messages], [m.cause for m in messages], [m.document_id for m in messages],
        [m.marketing for m in messages], [m.bcc for m in messages], [m.subject for m in messages],
        [m.body for m in messages], ["{" + ",".join(map(str, m.attachments)) + "}" for m in messages],
        [m.send_at for m in messages], [m.created_by for m in messages]]
    names = ", ".join(MESSAGE_COLUMNS)
    params = ", ".join(f"${i}::{t}[]" for i, t in enumerate(_TYPES, start=1))
    select = ", ".join("u.attachments::bigint[]" if c == "attachments" else f"u.{c}" for c in MESSAGE_COLUMNS)
    rows = await conn.fetch(f"INSERT INTO messages ({names}) SELECT {select} FROM unnest({params}) AS u({names}) "
                            "ON CONFLICT ON CONSTRAINT messages_once DO NOTHING RETURNING id", *columns)
    return len(rows)


async def any_due(conn: Connection, now: dt.datetime) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM messages WHERE status = 'scheduled' "
                                    "AND send_at <= $1)", now))


# Document notices: the events of the outbox (dispatch.py hands their ids over) ----------------

NOTICE_EVENTS = """
SELECT e.id, CASE e.subject WHEN 'payment' THEN 'payment' ELSE e.subject END AS kind, e.partner_id, e.occurred_at,
       (e.payload->>'customer_id')::bigint AS customer_id,
       CASE e.subject WHEN 'payment' THEN (e.payload->>'receipt_id')::bigint ELSE (e.payload->>'id')::bigint END
           AS document_id,
       CASE e.subject WHEN 'payment' THEN 'payment:' ELSE 'document:' END || (e.payload->>'id') AS cause
FROM events e
WHERE e.id = ANY($1::bigint[]) AND e.partner_id IS NOT NULL
  AND ((e.subject IN ('invoice', 'proforma', 'credit_note') AND e.name = 'created')
       OR (e.subject = 'payment' AND e.name = 'recorded'))
ORDER BY e.id
"""


async def notice_events(conn: Connection, event_ids: Sequence[int]) -> list[asyncpg.Record]:
    """Of these outbox events, those a document notice is made for: kind, partner, customer,
    document (a payment's receipt), cause and when it happened."""
    return await conn.fetch(NOTICE_EVENTS, list(event_ids))


# The daily schedule: one statement per kind and group of partners ---------------------------

_UNPAID = """
unpaid AS (
    SELECT c.partner_id, d.customer_id, d.id, d.issued_on, coalesce(d.due_on, d.issued_on + b.due_days) AS due_on
    FROM documents d
    JOIN customers c ON c.id = d.customer_id
    JOIN customer_billing b ON b.customer_id = d.customer_id
    WHERE d.kind = 'invoice' AND c.partner_id = ANY($1::bigint[]) AND b.billing_type = 'recurring'
      AND c.status IN ('active', 'blocked', 'inactive')
      AND NOT EXISTS (SELECT 1 FROM document_voids v WHERE v.document_id = d.id)
      AND d.total > coalesce((SELECT sum(a.amount) FROM allocations a WHERE a.target_document_id = d.id), 0)
),
owing AS (
    SELECT partner_id, customer_id, array_agg(id ORDER BY issued_on, id) AS ids,
           (array_agg(id ORDER BY issued_on, id))[1] AS oldest,
           (array_agg(due_on ORDER BY issued_on, id))[1] AS due_on
    FROM unpaid GROUP BY partner_id, customer_id
)"""

REMINDER_DUE_DATES = f"""
WITH {_UNPAID}
SELECT DISTINCT due_on FROM owing ORDER BY due_on
"""

REMINDERS = f"""
WITH {_UNPAID},
plan AS (SELECT * FROM unnest($2::date[], $3::text[]) AS p(due_on, kind)),
rules AS (SELECT DISTINCT ON (kind) * FROM unnest($3::text[], $4::text[], $5::boolean[], $6::text[], $7::text[],
                                                  $8::timestamptz[])
          AS r(kind, channels, attach, bcc, methods, send_at)),
made AS (
    INSERT INTO messages (partner_id, customer_id, kind, channel, cause, document_id, bcc, attachments, send_at,
                          created_by)
    SELECT o.partner_id, o.customer_id, r.kind, ch.channel, 'invoice:' || o.oldest, o.oldest, r.bcc,
           CASE WHEN r.attach THEN o.ids ELSE '{{}}'::bigint[] END, r.send_at, '{WORKER}'
    FROM owing o
    JOIN plan p ON p.due_on = o.due_on
    JOIN rules r ON r.kind = p.kind
    CROSS JOIN LATERAL unnest(r.channels::text[]) AS ch(channel)
    WHERE r.methods::text[] = '{{}}' OR EXISTS (
        SELECT 1 FROM (SELECT
            EXISTS (SELECT 1 FROM sepa_mandates s WHERE s.customer_id = o.customer_id AND s.revoked_at IS NULL) AS dd,
            EXISTS (SELECT 1 FROM payment_methods pm WHERE pm.customer_id = o.customer_id AND pm.autopay
                    AND pm.removed_at IS NULL) AS card) pays
        WHERE ('direct_debit' = ANY(r.methods::text[]) AND pays.dd) OR ('card' = ANY(r.methods::text[]) AND pays.card)
           OR ('manual' = ANY(r.methods::text[]) AND NOT pays.dd AND NOT pays.card))
    ON CONFLICT ON CONSTRAINT messages_once DO NOTHING
    RETURNING kind
)
SELECT kind, count(*) AS made FROM made GROUP BY kind
"""
"""Reminders of the customers whose oldest unpaid invoice is due on one of the plan's days:
the plan pairs each due date with the reminder whose day has come (the latest), the rules give
each reminder's channels, attachments, BCC, payment methods and send time."""


@dataclass(frozen=True, slots=True)
class RuleParams:
    """What a scheduling statement needs of a rule."""

    kind: str
    channels: Sequence[str]
    send_at: dt.datetime
    attach: bool = False
    bcc: str = ""
    payment_methods: Sequence[str] = ()
    day: int | None = None


def _array(values: Iterable[str]) -> str:
    return "{" + ",".join(values) + "}"


async def reminder_due_dates(conn: Connection, partner_ids: Sequence[int]) -> list[dt.date]:
    """The due dates of these partners' customers' oldest unpaid invoices (distinct)."""
    return [r["due_on"] for r in await conn.fetch(REMINDER_DUE_DATES, list(partner_ids))]


PREPAID = f"""
WITH cost AS (
    SELECT c.id AS customer_id, c.partner_id, b.min_balance,
           coalesce((SELECT sum(t.amount * CASE t.direction WHEN 'credit' THEN 1 ELSE -1 END)
                     FROM transactions t WHERE t.customer_id = c.id), 0) AS balance,
           (SELECT sum(CASE WHEN b.billing_type = 'prepaid_custom' AND b.period_days IS NOT NULL
                            THEN tf.price / b.period_days
                            ELSE tf.price / ((date_trunc('month', $2::date) + interval '1 month')::date
                                             - date_trunc('month', $2::date)::date)
                       END)
            FROM services s JOIN tariffs tf ON tf.id = s.tariff_id
            WHERE s.customer_id = c.id AND s.status = 'active'
              AND (s.end_date IS NULL OR s.end_date >= $2::date)) AS daily_cost
    FROM customers c JOIN customer_billing b ON b.customer_id = c.id
    WHERE c.partner_id = ANY($1::bigint[]) AND c.status = 'active' AND b.enabled
      AND b.billing_type IN ('prepaid_daily', 'prepaid_custom')
),
outlook AS (
    SELECT customer_id, partner_id,
           greatest(floor((balance - min_balance) / daily_cost), 0)::int AS days_left,
           $2::date + greatest(ceil((balance - min_balance) / daily_cost), 0)::int AS blocking_on
    FROM cost WHERE daily_cost > 0 AND (balance - min_balance) / daily_cost < {schedule.MAX_OUTLOOK_DAYS}
)
INSERT INTO messages (partner_id, customer_id, kind, channel, cause, bcc, send_at, created_by)
SELECT o.partner_id, o.customer_id, $3, ch.channel, 'prepaid:' || o.customer_id || ':' || o.blocking_on, $5, $6,
       '{WORKER}'
FROM outlook o CROSS JOIN unnest($4::text[]) AS ch(channel)
WHERE o.days_left <= $7 AND o.days_left > ALL($8::int[])
ON CONFLICT ON CONSTRAINT messages_once DO NOTHING
"""
"""Prepaid notice ``$3`` to the active prepaid customers whose balance lasts ``$7`` days or less
(as schedule.prepaid_outlook counts: days left = whole days the balance above the minimum pays at
the daily cost, blocking on the day whose charge takes it to the minimum) but more than every
more urgent notice's threshold ``$8`` (that one is due instead)."""

WAVE = f"""
INSERT INTO messages (partner_id, customer_id, kind, channel, cause, bcc, send_at, created_by)
SELECT c.partner_id, c.id, $2, ch.channel, 'status:' || s.id, $4,
       CASE WHEN s.at <= $5 THEN $5 ELSE $6 END, '{WORKER}'
FROM customer_status_changes s
JOIN customers c ON c.id = s.customer_id
CROSS JOIN unnest($3::text[]) AS ch(channel)
WHERE c.partner_id = ANY($1::bigint[]) AND s.reason = 'dunning' AND s.to_status = $7 AND c.status = $7
  AND s.at > $8 AND s.at <= $9
ON CONFLICT ON CONSTRAINT messages_once DO NOTHING
"""
"""A blocking or inactive wave: the customers dunning moved to ``$7`` in the last days (and still
there), each at the rule's hour after its change (today's ``$5``, or tomorrow's ``$6``)."""

CARD_EXPIRY = f"""
INSERT INTO messages (partner_id, customer_id, kind, channel, cause, bcc, send_at, created_by)
SELECT c.partner_id, c.id, 'card_expiry', ch.channel,
       'card:' || pm.id || ':' || to_char(make_date(pm.exp_year, pm.exp_month, 1), 'YYYY-MM'), $3, $4, '{WORKER}'
FROM payment_methods pm
JOIN customers c ON c.id = pm.customer_id
CROSS JOIN unnest($2::text[]) AS ch(channel)
CROSS JOIN LATERAL (SELECT (make_date(pm.exp_year, pm.exp_month, 1) + interval '1 month')::date - 1 AS last) x
WHERE c.partner_id = ANY($1::bigint[]) AND c.status IN ('active', 'blocked') AND pm.removed_at IS NULL
  AND pm.exp_year IS NOT NULL AND pm.exp_month IS NOT NULL
  AND x.last >= $5::date AND x.last - $6::int <= $5::date
ON CONFLICT ON CONSTRAINT messages_once DO NOTHING
"""
"""Saved cards whose last valid day (the end of their expiry month) is ``$6`` days away or less."""

CONTRACT_END = f"""
INSERT INTO messages (partner_id, customer_id, kind, channel, cause, bcc, send_at, created_by)
SELECT c.partner_id, c.id, 'contract_end', ch.channel, 'service:' || s.id || ':' || s.end_date, $3, $4, '{WORKER}'
FROM services s
JOIN customers c ON c.id = s.customer_id
CROSS JOIN unnest($2::text[]) AS ch(channel)
WHERE c.partner_id = ANY($1::bigint[]) AND c.status IN ('active', 'blocked') AND s.status IN ('active', 'blocked')
  AND s.end_date IS NOT NULL AND s.end_date >= $5::date AND s.end_date - $6::int <= $5::date
ON CONFLICT ON CONSTRAINT messages_once DO NOTHING
"""
"""Services whose end date is ``$6`` days away or less."""


def _inserted(status: str) -> int:
    """The row count of an INSERT's status line ("INSERT 0 12")."""
    return int(status.rsplit(" ", 1)[-1])


async def schedule_reminders(conn: Connection, partner_ids: Sequence[int], plan: Sequence[tuple[dt.date, str]],
                             rules: Sequence[RuleParams]) -> dict[str, int]:
    """Schedule reminders by ``plan`` ((due date, reminder kind): the reminder whose day has come
    for invoices due that day); the messages made, per kind."""
    if not plan or not rules:
        return {}
    by_kind = {r.kind: r for r in rules}
    kinds = [k for _, k in plan]
    rows = await conn.fetch(
        REMINDERS, list(partner_ids), [d for d, _ in plan], kinds,
        [_array(by_kind[k].channels) for k in kinds], [by_kind[k].attach for k in kinds],
        [by_kind[k].bcc for k in kinds], [_array(by_kind[k].payment_methods) for k in kinds],
        [by_kind[k].send_at for k in kinds])
    return {r["kind"]: r["made"] for r in rows}


async def schedule_prepaid(conn: Connection, partner_ids: Sequence[int], today: dt.date, rule: RuleParams,
                           more_urgent: Sequence[int]) -> int:
    assert rule.day is not None
    status = await conn.execute(PREPAID, list(partner_ids), today, rule.kind, list(rule.channels), rule.bcc,
                                rule.send_at, rule.day, list(more_urgent))
    return _inserted(status)


async def schedule_wave(conn: Connection, partner_ids: Sequence[int], rule: RuleParams, tomorrow_at: dt.datetime,
                        since: dt.datetime, now: dt.datetime) -> int:
    status = await conn.execute(WAVE, list(partner_ids), rule.kind, list(rule.channels), rule.bcc, rule.send_at,
                                tomorrow_at, "blocked" if rule.kind == "blocking" else "inactive", since, now)
    return _inserted(status)


async def schedule_card_expiry(conn: Connection, partner_ids: Sequence[int], today: dt.date, rule: RuleParams) -> int:
    status = await conn.execute(CARD_EXPIRY, list(partner_ids), list(rule.channels), rule.bcc, rule.send_at, today,
                                rule.day or 0)
    return _inserted(status)


async def schedule_contract_end(conn: Connection, partner_ids: Sequence[int], today: dt.date,
                                rule: RuleParams) -> int:
    status = await conn.execute(CONTRACT_END, list(partner_ids), list(rule.channels), rule.bcc, rule.send_at, today,
                                rule.day or 0)
    return _inserted(status)


# Announcements -------------------------------------------------------------------------------

ANNOUNCE = """
INSERT INTO messages (partner_id, customer_id, kind, channel, cause, marketing, subject, body, send_at, created_by)
SELECT c.partner_id, c.id, 'announcement', ch.channel, $3 || ':' || c.id, $5, $6, $7, $8, $9
FROM customers c CROSS JOIN unnest($4::text[]) AS ch(channel)
WHERE c.id = ANY($2::bigint[]) AND ($1::bigint IS NULL OR c.partner_id = $1) AND c.status <> 'deleted'
  AND NOT ($5 AND c.marketing_opt_out)
ON CONFLICT ON CONSTRAINT messages_once DO NOTHING
"""


async def insert_announcement(conn: Connection, *, partner_id: int | None, customer_ids: Sequence[int],
                              channels: Sequence[str], cause: str, marketing: bool, subject: str, body: str,
                              send_at: dt.datetime, created_by: str) -> int:
    """One message per customer (of ``partner_id`` when given; not deleted; not opted out of a
    marketing one) and channel, cause ``<cause>:<customer>``; the number made."""
    status = await conn.execute(ANNOUNCE, partner_id, list(customer_ids), cause, list(channels), marketing, subject,
                                body, send_at, created_by)
    return _inserted(status)


# -- delivering --------------------------------------------------------------------------------

async def put_back_expired(conn: Connection, now: dt.datetime) -> int:
    """Messages whose worker died while sending them (their lease expired): scheduled again, to go
    at once (with the same Message-ID: it is made from the id)."""
    status = await conn.execute(
        "UPDATE messages SET status = 'scheduled', lease_until = NULL, send_at = least(send_at, $1), "
        "last_error = 'sent again: the worker sending it stopped before its answer was recorded' "
        "WHERE status = 'sending' AND lease_until < $1", now)
    return int(status.rsplit(" ", 1)[-1])


async def next_lease_expiry(conn: Connection) -> dt.datetime | None:
    """When the next message being sent (by a worker that may be gone) comes free."""
    value: dt.datetime | None = await conn.fetchval(
        "SELECT min(lease_until) FROM messages WHERE status = 'sending'")
    return value


CLAIM = """
WITH due AS (
    SELECT id FROM messages WHERE status = 'scheduled' AND send_at <= $1
    ORDER BY send_at, id LIMIT $2 FOR UPDATE SKIP LOCKED
)
UPDATE messages m SET status = 'sending', lease_until = $3, attempts = m.attempts + 1
FROM due WHERE m.id = due.id
RETURNING m.id, m.partner_id, m.customer_id, m.kind, m.channel, m.cause, m.document_id, m.marketing, m.bcc,
          m.subject, m.body, m.attachments, m.attempts, m.send_at, m.recipient, m.reply_headers, m.cc
"""
"""``recipient``, ``reply_headers`` and ``cc``: what a ticket's reply is sent to, threaded with and
copied to (deliver.py)."""


async def claim(conn: Connection, now: dt.datetime, limit: int, lease_until: dt.datetime) -> list[asyncpg.Record]:
    """Take up to ``limit`` due messages (oldest first) for sending until ``lease_until``: committed
    at once (the caller holds no transaction), an attempt counted."""
    rows = await conn.fetch(CLAIM, now, limit, lease_until)
    return sorted(rows, key=lambda r: (r["send_at"], r["id"]))


async def extend_lease(conn: Connection, ids: Sequence[int], until: dt.datetime) -> None:
    await conn.execute("UPDATE messages SET lease_until = $2 WHERE id = ANY($1::bigint[]) AND status = 'sending'",
                       list(ids), until)


@dataclass(frozen=True, slots=True)
class Sent:
    id: int
    recipient: str
    subject: str
    body: str
    provider_id: str = ""
    answer: str = ""
    keep_text: bool = False  # an announcement keeps the subject and body it was made with


MARK_SENT = """
UPDATE messages m SET status = 'sent', sent_at = $2, lease_until = NULL, last_error = '',
       recipient = u.recipient, provider_id = u.provider_id, provider_answer = u.answer,
       subject = CASE WHEN u.keep THEN m.subject ELSE u.subject END,
       body = CASE WHEN u.keep THEN m.body ELSE u.body END
FROM unnest($1::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::boolean[])
     AS u(id, recipient, subject, body, provider_id, answer, keep)
WHERE m.id = u.id AND m.status = 'sending'
"""


MARK_ONE = """
UPDATE messages SET status = 'sent', sent_at = $2, lease_until = NULL, last_error = '', recipient = $3,
       subject = CASE WHEN $8 THEN subject ELSE $4 END, body = CASE WHEN $8 THEN body ELSE $5 END,
       provider_id = $6, provider_answer = $7
WHERE id = $1 AND status = 'sending'
"""


async def mark_sent(conn: Connection, sent: Sequence[Sent], at: dt.datetime) -> None:
    """Record messages as sent, with what was sent and the provider's answer (one statement)."""
    if not sent:
        return
    if len(sent) == 1:  # the delivery loop's case: a plain UPDATE costs the server less than unnest
        s = sent[0]
        await conn.execute(MARK_ONE, s.id, at, s.recipient, s.subject, s.body, s.provider_id, s.answer[:2000],
                           s.keep_text)
        return
    await conn.execute(MARK_SENT, [s.id for s in sent], at, [s.recipient for s in sent], [s.subject for s in sent],
                       [s.body for s in sent], [s.provider_id for s in sent], [s.answer[:2000] for s in sent],
                       [s.keep_text for s in sent])


async def retry_later(conn: Connection, message_id: int, send_at: dt.datetime, error: str, answer: str) -> None:
    """A temporary failure: scheduled again for ``send_at``, the attempt counted, why kept."""
    await conn.execute("UPDATE messages SET status = 'scheduled', lease_until = NULL, send_at = $2, last_error = $3, "
                       "provider_answer = $4 WHERE id = $1 AND status = 'sending'", message_id, send_at, error[:2000],
                       answer[:2000])


async def fail(conn: Connection, message_id: int, error: str, answer: str = "") -> None:
    """A permanent failure (or out of attempts): held as failed with why, until an admin's retry."""
    await conn.execute("UPDATE messages SET status = 'failed', lease_until = NULL, last_error = $2, "
                       "provider_answer = $3 WHERE id = $1 AND status = 'sending'", message_id, error[:2000],
                       answer[:2000])


async def cancel_gone(conn: Connection, reasons: Mapping[int, str]) -> None:
    """Messages claimed whose cause went away: cancelled, with why (one statement)."""
    if not reasons:
        return
    await conn.execute("UPDATE messages m SET status = 'cancelled', lease_until = NULL, last_error = u.why "
                       "FROM unnest($1::bigint[], $2::text[]) AS u(id, why) WHERE m.id = u.id AND m.status = 'sending'",
                       list(reasons), list(reasons.values()))


async def release(conn: Connection, ids: Sequence[int], send_at: dt.datetime, error: str = "") -> None:
    """Claimed messages not tried (an outage of their transport, a stop, the rate limit): back to
    scheduled for ``send_at`` with their attempt not counted."""
    if not ids:
        return
    await conn.execute("UPDATE messages SET status = 'scheduled', lease_until = NULL, send_at = $2, "
                       "attempts = greatest(attempts - 1, 0), "
                       "last_error = CASE WHEN $3 = '' THEN last_error ELSE $3 END "
                       "WHERE id = ANY($1::bigint[]) AND status = 'sending'", list(ids), send_at, error[:2000])


GONE = """
SELECT m.id,
    CASE
        WHEN m.marketing AND c.marketing_opt_out THEN 'cancelled: the customer opted out of marketing messages'
        WHEN c.id IS NOT NULL AND c.status = 'deleted' THEN 'cancelled: the customer was deleted'
        WHEN m.kind IN ('invoice', 'proforma', 'credit_note', 'payment') AND dv.document_id IS NOT NULL
            THEN 'cancelled: the document was voided'
        WHEN m.kind IN ('reminder_1', 'reminder_2', 'reminder_3') AND dv.document_id IS NOT NULL
            THEN 'cancelled: the invoice was voided'
        WHEN m.kind IN ('reminder_1', 'reminder_2', 'reminder_3') AND ds.open <= 0
            THEN 'cancelled: the invoice was paid'
        WHEN m.kind IN ('blocking', 'inactive') AND c.status IS DISTINCT FROM
                 (SELECT s.to_status FROM customer_status_changes s
                  WHERE s.id = split_part(m.cause, ':', 2)::bigint)
            THEN 'cancelled: the customer is no longer '
                 || CASE m.kind WHEN 'blocking' THEN 'blocked' ELSE 'inactive' END
        WHEN m.kind = 'card_expiry' AND NOT EXISTS (
                 SELECT 1 FROM payment_methods pm WHERE pm.id = split_part(m.cause, ':', 2)::bigint
                 AND pm.removed_at IS NULL
                 AND to_char(make_date(pm.exp_year, pm.exp_month, 1), 'YYYY-MM') = split_part(m.cause, ':', 3))
            THEN 'cancelled: the card was removed or replaced'
        WHEN m.kind = 'contract_end' AND NOT EXISTS (
                 SELECT 1 FROM services s WHERE s.id = split_part(m.cause, ':', 2)::bigint
                 AND s.status IN ('active', 'blocked') AND s.end_date::text = split_part(m.cause, ':', 3))
            THEN 'cancelled: the contract''s end date moved'
        WHEN m.kind IN ('prepaid_1', 'prepaid_2', 'prepaid_3') AND (c.status <> 'active' OR NOT EXISTS (
                 SELECT 1 FROM customer_billing b WHERE b.customer_id = c.id
                 AND b.billing_type IN ('prepaid_daily', 'prepaid_custom')))
            THEN 'cancelled: the customer is no longer an active prepaid customer'
    END AS why
FROM unnest($1::bigint[]) AS u(id)
JOIN messages m ON m.id = u.id
LEFT JOIN customers c ON c.id = m.customer_id
LEFT JOIN document_voids dv ON dv.document_id = m.document_id
LEFT JOIN billing_documents_state ds ON ds.id = m.document_id AND m.kind IN ('reminder_1', 'reminder_2', 'reminder_3')
"""


async def gone(conn: Connection, ids: Sequence[int]) -> dict[int, str]:
    """Of these messages, those whose cause went away, with why (the invoice of a reminder paid or
    voided, a document voided, the customer no longer blocked, the card removed, the contract's
    end moved, an opted-out customer's marketing message). A prepaid notice's top-up is judged by
    the caller from the customer's outlook (context_store)."""
    rows = await conn.fetch(GONE, list(ids))
    return {r["id"]: r["why"] for r in rows if r["why"] is not None}


# -- the admin's actions -----------------------------------------------------------------------

async def retry(conn: Connection, message_id: int, now: dt.datetime, partner_id: int | None = None) -> bool:
    """"Retry" of a failed message: scheduled now, its attempts kept (and its last error, until the
    next try). False when it is not failed (or not the partner's)."""
    status = await conn.execute(
        "UPDATE messages SET status = 'scheduled', send_at = $2, lease_until = NULL "
        "WHERE id = $1 AND status = 'failed' AND ($3::bigint IS NULL OR partner_id = $3)", message_id, now, partner_id)
    return status.endswith(" 1")


async def cancel(conn: Connection, message_id: int, by: str, partner_id: int | None = None) -> bool:
    """"Cancel" of a scheduled message; False when it is not scheduled (or not the partner's)."""
    status = await conn.execute(
        "UPDATE messages SET status = 'cancelled', lease_until = NULL, last_error = $2 "
        "WHERE id = $1 AND status = 'scheduled' AND ($3::bigint IS NULL OR partner_id = $3)",
        message_id, f"cancelled by {by}" if by else "cancelled", partner_id)
    return status.endswith(" 1")

