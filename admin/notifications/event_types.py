"""The events of the outbox (table ``events``): every type a webhook may subscribe to, its payload's
fields and an example. schema.sql's ``lastmile_emit_*`` triggers write them (sessions: the
``events.sessions`` job, session_events in events_store.py); tests/db/test_events_outbox.py holds the
fields here equal to what the triggers write, and docs/webhooks.md lists them.

A type is ``<subject>.<name>``: ``invoice.created``. A webhook subscribes with patterns: a type,
``<subject>.*`` or ``*`` (:func:`matches`, as dispatch's SQL matches them). On the wire, amounts are
decimal strings (``"20.4000"``), dates ISO 8601 (``"2026-04-01"``), times ISO 8601 with their offset.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

PATTERN = re.compile(r"\*|[a-z][a-z_]*\.(\*|[a-z][a-z_]*)")
"""A subscription: ``*``, ``invoice.*`` or ``invoice.created``."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str  # as JSON has it: integer, string, "decimal string", date, time, object, or null
    doc: str


@dataclass(frozen=True, slots=True)
class EventType:
    type: str  # "invoice.created"
    summary: str
    fields: tuple[Field, ...]
    example: dict[str, Any]
    mqtt: bool = True  # also published on lastmile/<subject>/<name>

    @property
    def subject(self) -> str:
        return self.type.partition(".")[0]

    @property
    def name(self) -> str:
        return self.type.partition(".")[2]

    @property
    def topic(self) -> str:
        return f"lastmile/{self.subject}/{self.name}"


def _f(name: str, type_: str, doc: str) -> Field:
    return Field(name, type_, doc)


_CUSTOMER = (
    _f("id", "integer", "the customer"),
    _f("number", "string", "its number"),
    _f("name", "string", "its name"),
    _f("status", "string", "`new`, `active`, `blocked`, `inactive` or `deleted`"),
    _f("partner_id", "integer", "its partner"),
)
_CUSTOMER_EXAMPLE = {"id": 42, "number": "C00042", "name": "Ann Example", "status": "active", "partner_id": 1}
_SERVICE = (
    _f("id", "integer", "the service"),
    _f("customer_id", "integer", "its customer"),
    _f("tariff_id", "integer", "its tariff"),
    _f("login", "string", "its PPPoE/hotspot login"),
    _f("status", "string", "`active`, `blocked`, `disabled` or `archived`"),
    _f("ipv4", "string or null", "its fixed IPv4 address, if any"),
    _f("start_date", "date", "when it starts"),
    _f("end_date", "date or null", "when it ends (exclusive), if it does"),
)
_SERVICE_EXAMPLE = {"id": 7, "customer_id": 42, "tariff_id": 3, "login": "ann", "status": "active",
                    "ipv4": None, "start_date": "2026-04-01", "end_date": None}
_DOCUMENT = (
    _f("id", "integer", "the document"),
    _f("number", "string", "its number"),
    _f("customer_id", "integer", "its customer"),
    _f("issued_on", "date", "its date"),
    _f("due_on", "date or null", "when it is due (invoices, proformas)"),
    _f("currency", "string", "ISO 4217"),
    _f("total", "decimal string", "its total, tax included"),
    _f("origin", "string", "`recurring`, `prepaid`, `one_time`, `manual`, `plan_change`, `pause`, `proforma` "
                           "or `payment`"),
    _f("related_id", "integer or null", "a credit note's invoice, a tax invoice's proforma"),
)
_VOID = (
    _f("id", "integer", "the document"),
    _f("number", "string", "its number"),
    _f("customer_id", "integer", "its customer"),
    _f("reason", "string", "why it was voided"),
)
_SESSION = (
    _f("acct_unique_id", "string", "the session's key (Acct-Unique-Session-Id)"),
    _f("service_id", "integer or null", "the service whose login it is (null: an unknown login)"),
    _f("customer_id", "integer or null", "that service's customer"),
    _f("username", "string", "User-Name"),
    _f("framed_ip", "string or null", "the subscriber's IPv4 address, if any"),
    _f("nas", "string or null", "the NAS's name"),
    _f("started_at", "time", "when it started"),
    _f("stopped_at", "time or null", "when it ended (null in `session.started`)"),
    _f("octets", "object", "`{\"input\": n, \"output\": n}`: bytes so far (from the subscriber, to it)"),
    _f("terminate_cause", "string or null", "Acct-Terminate-Cause (`User-Request`, `Lost-Carrier`, ...)"),
)
_SESSION_EXAMPLE = {"acct_unique_id": "9a1f0c2e77d0b3aa", "service_id": 7, "customer_id": 42, "username": "ann",
                    "framed_ip": "100.64.0.9", "nas": "bras-1", "started_at": "2026-04-01T08:00:05+00:00",
                    "stopped_at": None, "octets": {"input": 0, "output": 0}, "terminate_cause": None}

DOCUMENT_KINDS = {"invoice": "An invoice", "proforma": "A proforma invoice", "credit_note": "A credit note",
                  "receipt": "A receipt (a payment's)"}

CATALOGUE: tuple[EventType, ...] = (
    EventType("customer.created", "A customer was added.", _CUSTOMER, _CUSTOMER_EXAMPLE),
    EventType("customer.updated", "A customer's record changed (any column of it).", _CUSTOMER, _CUSTOMER_EXAMPLE),
    EventType("customer.status_changed", "A customer's status changed (by staff, or by dunning).", (
        _f("id", "integer", "the customer"),
        _f("number", "string", "its number"),
        _f("from", "string", "the status before"),
        _f("to", "string", "the status now"),
        _f("reason", "string", "`staff` or `dunning`"),
        _f("change_id", "integer", "the change's row (customer_status_changes)"),
    ), {"id": 42, "number": "C00042", "from": "active", "to": "blocked", "reason": "dunning", "change_id": 311}),
    EventType("service.created", "A service was added to a customer.", _SERVICE, _SERVICE_EXAMPLE),
    EventType("service.updated", "A service changed (tariff, status, address, dates, ...).", _SERVICE,
              _SERVICE_EXAMPLE),
    *(EventType(f"{kind}.created", f"{title} was issued.", _DOCUMENT, {
        "id": 1001, "number": "202604000123", "customer_id": 42, "issued_on": "2026-04-01",
        "due_on": None if kind in ("credit_note", "receipt") else "2026-04-15", "currency": "EUR",
        "total": "37.2000", "origin": "payment" if kind == "receipt" else "recurring",
        "related_id": 998 if kind == "credit_note" else None}) for kind, title in DOCUMENT_KINDS.items()),
    *(EventType(f"{kind}.voided", f"{title} was voided.", _VOID,
                {"id": 1001, "number": "202604000123", "customer_id": 42, "reason": "issued twice"})
      for kind, title in DOCUMENT_KINDS.items()),
    EventType("payment.recorded", "A payment was recorded (desk, API, online, direct debit, bank statement).", (
        _f("id", "integer", "the payment"),
        _f("customer_id", "integer", "its customer"),
        _f("receipt_id", "integer", "its receipt (a document)"),
        _f("amount", "decimal string", "how much"),
        _f("currency", "string", "ISO 4217"),
        _f("paid_on", "date", "when"),
        _f("source", "string", "`desk`, `api`, `online`, `direct_debit` or `bank_statement`"),
        _f("document_id", "integer or null", "the invoice or proforma it paid, when it named one"),
    ), {"id": 512, "customer_id": 42, "receipt_id": 1002, "amount": "37.2000", "currency": "EUR",
        "paid_on": "2026-04-03", "source": "online", "document_id": 1001}),
    EventType("payment.reversed", "A payment was taken back (a refund, a bounced debit, a mistake).", (
        _f("id", "integer", "the payment"),
        _f("customer_id", "integer", "its customer"),
        _f("amount", "decimal string", "how much"),
        _f("currency", "string", "ISO 4217"),
        _f("reason", "string", "why"),
        _f("refund_ref", "string or null", "the gateway's refund, for a refund"),
    ), {"id": 512, "customer_id": 42, "amount": "37.2000", "currency": "EUR", "reason": "refunded",
        "refund_ref": "re_3Nx"}),
    EventType("session.started", "A RADIUS session started (read from the accounting a minute later).", _SESSION,
              _SESSION_EXAMPLE, mqtt=False),
    EventType("session.stopped", "A RADIUS session ended.", _SESSION,
              {**_SESSION_EXAMPLE, "stopped_at": "2026-04-01T09:12:40+00:00",
               "octets": {"input": 18234411, "output": 402993120}, "terminate_cause": "User-Request"}, mqtt=False),
    EventType("ticket.created", "A ticket was opened (from an e-mail, the admin, the portal, the API or a rule).", (
        _f("id", "integer", "the ticket"),
        _f("customer_id", "integer or null", "its customer; null: an unknown sender's or the system's"),
        _f("subject", "string", "its subject"),
        _f("status", "string", "`new`"),
        _f("priority", "string", "`low`, `medium`, `high` or `urgent`"),
        _f("type", "string", "`question`, `incident`, `problem` or `feature_request`"),
        _f("group_id", "integer or null", "the group it was given to"),
        _f("assignee_id", "integer or null", "the administrator it was assigned to"),
        _f("source", "string", "`email`, `admin`, `portal`, `api` or `rule`"),
    ), {"id": 731, "customer_id": 42, "subject": "No internet since this morning", "status": "new",
        "priority": "medium", "type": "incident", "group_id": 2, "assignee_id": None, "source": "email"}),
    EventType("ticket.message", "A message was added to a ticket by its customer or by staff (not a note).", (
        _f("id", "integer", "the message"),
        _f("ticket_id", "integer", "its ticket"),
        _f("customer_id", "integer or null", "the ticket's customer"),
        _f("author", "string", "`customer` or `staff`"),
        _f("administrator_id", "integer or null", "who wrote it, for staff"),
    ), {"id": 5120, "ticket_id": 731, "customer_id": 42, "author": "staff", "administrator_id": 7}),
    EventType("webhook.ping", "Sent to one webhook by \"Send a test event\": it needs no subscription.", (
        _f("webhook_id", "integer", "the webhook"),
        _f("message", "string", "a line saying what it is"),
    ), {"webhook_id": 3, "message": "a test event from lastmile"}, mqtt=False),
)
"""Every type, in the order the page and docs/webhooks.md show them. ``session.*`` are not published
on MQTT from here: radiusd publishes ``lastmile/session/start`` and ``stop`` as they happen
(docs/events.md). ``webhook.ping`` goes to one webhook only."""

BY_TYPE: dict[str, EventType] = {e.type: e for e in CATALOGUE}
SUBSCRIBABLE: tuple[str, ...] = tuple(e.type for e in CATALOGUE if e.subject != "webhook")
PING = BY_TYPE["webhook.ping"]


def matches(pattern: str, type_: str) -> bool:
    """Whether the subscription ``pattern`` takes events of ``type_`` (``*``, ``invoice.*``, ``invoice.created``)."""
    if pattern == "*":
        return True
    subject, _, name = pattern.partition(".")
    return type_ == pattern or (name == "*" and type_.partition(".")[0] == subject)


def check_patterns(patterns: list[str]) -> str | None:
    """What is wrong with a webhook's subscriptions, or None."""
    if not patterns:
        return "subscribe to one event at least (or * for all)"
    bad = [p for p in patterns if not PATTERN.fullmatch(p)]
    if bad:
        return f"{bad[0][:60]!r} is not an event type, subject.* or *"
    return None


def decode_payload(text: str) -> dict[str, Any]:
    """An event's payload from its JSON text (``payload::text``): amounts as Decimal, never float."""
    value = json.loads(text, parse_float=Decimal)
    if not isinstance(value, dict):
        raise ValueError(f"an event's payload is a JSON object, not {type(value).__name__}")
    return value


def to_json(value: Any) -> bytes:
    """Compact JSON as lastmile sends it: Decimal as a decimal string, times and dates ISO 8601."""
    return json.dumps(value, default=_text, separators=(",", ":"), ensure_ascii=False).encode()


def _text(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def envelope(event_id: int, type_: str, occurred_at: dt.datetime, payload_text: str) -> bytes:
    """A webhook's body (and an API event's): ``{"id", "type", "occurred_at", "data"}``."""
    return to_json({"id": event_id, "type": type_, "occurred_at": occurred_at, "data": decode_payload(payload_text)})


def describe() -> str:
    """The catalogue as docs/webhooks.md shows it (tests/unit/notifications/test_event_types.py
    holds the two equal)."""
    lines = ["<!-- the catalogue: generated from admin/notifications/event_types.py (describe) -->", ""]
    for e in CATALOGUE:
        topic = f"MQTT `{e.topic}`" if e.mqtt else "not on MQTT" + (
            " (radiusd publishes `lastmile/session/start` and `stop` as they happen)" if e.subject == "session" else "")
        lines += [f"### `{e.type}`", "", f"{e.summary} ({topic}.)", "", "| field | type | meaning |",
                  "| --- | --- | --- |"]
        lines += [f"| `{f.name}` | {f.type} | {f.doc} |" for f in e.fields]
        lines += ["", "```json", json.dumps(e.example, default=_text, ensure_ascii=False), "```", ""]
    lines.append("<!-- end of the catalogue -->")
    return "\n".join(lines)
