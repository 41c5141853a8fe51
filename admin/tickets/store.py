"""Tickets written: a new ticket with its first message, a message added, a ticket's fields
changed, and a staff reply queued as e-mail. Every write of a ticket goes through here, so the
status automation (automation.py) and the first-response time the SLA report reads are kept in
one place.

Idempotent where a retry can happen: a message carrying a mail's Message-ID lands once
(``ticket_messages.mail_id`` is unique), and an automatic ticket once per ``rule_key``; both
return None the second time. The caller holds the transaction: a ticket and its first message,
a message and its ticket's new status, are written together or not at all.

**Staff notices** (:func:`queue_staff_notices`, kind :data:`STAFF_KIND`): the agents told of a
ticket's message by e-mail, queued in the notifications outbox in the same transaction:

- a new ticket: whom the group's assign mode tells (``Created.notify``: every member when nobody
  is assigned, mode 'nobody' or 'shift' with nobody on shift; else the member it went to); not
  for a machine's mail (``NewTicket.machine``: an auto-reply, a bounce, loops.py), which nobody
  answers;
- a customer's message, a staff reply or an internal note on a ticket: its assignee and its
  watchers (``ticket_watchers``). The system's lines (a machine's mail on a ticket among them)
  tell nobody.

Never the message's own author; never an administrator disabled, without an e-mail address,
or of another partner than the ticket's. One notice per (message, administrator):
``messages.cause`` is ``ticket_message:<message id>:administrator:<administrator id>``, unique
with the kind and channel, so queueing again makes nothing twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from admin.auth.store import Connection
from admin.tickets import automation, threading
from admin.tickets.automation import Author
from admin.tickets.inbound import Attachment


class Duplicate(Exception):
    """The mail became a ticket's message in another transaction meanwhile: roll this one back."""


REPLY_KIND = "ticket_reply"
"""The kind of a staff reply's message in the notifications outbox (``messages``)."""
STAFF_KIND = "ticket_staff"
"""The kind of an agent's notice of a ticket's message in the notifications outbox."""


@dataclass(frozen=True, slots=True)
class NewTicket:
    subject: str
    body: str
    source: str  # email, admin, portal, api, rule
    partner_id: int | None = None
    customer_id: int | None = None
    requester_email: str = ""
    requester_name: str = ""
    author: Author = Author.CUSTOMER  # who wrote the first message
    administrator_id: int | None = None  # of a ticket staff opened
    priority: str = "medium"
    type: str = "question"
    group_id: int | None = None
    assignee_id: int | None = None
    inbox_id: int | None = None
    cc: tuple[str, ...] = ()
    rule_key: str | None = None
    created_by: str = ""
    mail_id: str | None = None
    problems: tuple[str, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    machine: bool = False  # a machine's mail (loops.py: not answered): nobody is told of it


@dataclass(frozen=True, slots=True)
class Created:
    ticket_id: int
    message_id: int
    assignee_id: int | None
    notify: tuple[int, ...] = ()  # whom the group's assign mode tells (every member when nobody is assigned)


@dataclass(frozen=True, slots=True)
class NewMessage:
    author: Author
    body: str
    administrator_id: int | None = None
    from_address: str = ""
    from_name: str = ""
    mail_id: str | None = None
    problems: tuple[str, ...] = ()
    attachments: tuple[Attachment, ...] = ()


async def create_ticket(conn: Connection, new: NewTicket, *, now: dt.datetime,
                        rng: random.Random | None = None) -> Created | None:
    """Open a ticket with its first message (status new). Given a group and no assignee, the
    group's assign mode picks one, and whom it tells get a staff notice (not of a machine's
    mail). None: its ``rule_key`` or ``mail_id`` is there already."""
    if new.mail_id is not None and await _mail_known(conn, new.mail_id):
        return None
    assignment = automation.Assignment(new.assignee_id, ())
    if new.group_id is not None and new.assignee_id is None:
        assignment = await _assign(conn, new.group_id, new.partner_id, now, rng or random.Random())
    ticket_id = await conn.fetchval(
        "INSERT INTO tickets (partner_id, customer_id, requester_email, requester_name, subject, status, priority, "
        "type, group_id, assignee_id, inbox_id, source, cc, rule_key, created_by, created_at, updated_at, "
        "last_activity_at, awaiting_since) "
        "VALUES ($1, $2, $3, $4, $5, 'new', $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $15, "
        "CASE WHEN $16 THEN $15::timestamptz END) "
        "ON CONFLICT ON CONSTRAINT tickets_rule_key_unique DO NOTHING RETURNING id",
        new.partner_id, new.customer_id, new.requester_email.lower(), new.requester_name, new.subject[:500],
        new.priority, new.type, new.group_id, assignment.assignee_id, new.inbox_id, new.source, list(new.cc),
        new.rule_key, new.created_by, now, new.author is Author.CUSTOMER)
    if ticket_id is None:
        return None
    message_id = await _insert_message(conn, ticket_id, NewMessage(
        new.author, new.body, new.administrator_id, new.requester_email.lower(), new.requester_name, new.mail_id,
        new.problems, new.attachments), now)
    if message_id is None:  # the same mail, written by another reader since _mail_known
        raise Duplicate(new.mail_id or "")
    if assignment.notify and not new.machine:
        await queue_staff_notices(conn, ticket_id, message_id, assignment.notify, now=now)
    return Created(ticket_id, message_id, assignment.assignee_id, assignment.notify)


async def add_message(conn: Connection, ticket_id: int, message: NewMessage, *, now: dt.datetime) -> int | None:
    """Add a message to a ticket and move the ticket as automation.after_message says: its
    status, a reopen, the first response of staff, its last activity; a customer's, staff's or
    internal message is told to the ticket's assignee and watchers (staff notices). None: the
    mail is there."""
    ticket = await conn.fetchrow(
        "SELECT t.status, s.closed, t.first_response_at, t.assignee_id, "
        "coalesce((SELECT array_agg(w.administrator_id ORDER BY w.administrator_id) FROM ticket_watchers w "
        "WHERE w.ticket_id = t.id), '{}') AS watchers FROM tickets t "
        "JOIN ticket_statuses s ON s.code = t.status WHERE t.id = $1 FOR UPDATE OF t", ticket_id)
    if ticket is None:
        raise LookupError(f"ticket {ticket_id} does not exist")
    if message.mail_id is not None and await _mail_known(conn, message.mail_id):
        return None
    message_id = await _insert_message(conn, ticket_id, message, now)
    if message_id is None:
        return None
    move = automation.after_message(ticket["status"], ticket["closed"], message.author)
    staff = message.author is Author.STAFF
    first = staff and ticket["first_response_at"] is None
    active = message.author in (Author.CUSTOMER, Author.STAFF)
    # a customer's message starts a wait (unless one runs); staff's ends it, counted with its length
    await conn.execute(
        "UPDATE tickets SET status = $2, reopened = reopened + $3::boolean::int, "
        "resolved_at = CASE WHEN $3::boolean THEN NULL ELSE resolved_at END, "
        "first_response_at = CASE WHEN $4 THEN $5 ELSE first_response_at END, "
        "first_response_by = CASE WHEN $4 THEN $6 ELSE first_response_by END, "
        "last_activity_at = CASE WHEN $7 THEN $5 ELSE last_activity_at END, "
        "responses = responses + ($8 AND awaiting_since IS NOT NULL)::int, "
        "response_seconds = response_seconds + CASE WHEN $8 AND awaiting_since IS NOT NULL "
        "  THEN greatest(extract(epoch FROM $5 - awaiting_since), 0) ELSE 0 END, "
        "awaiting_since = CASE WHEN $8 THEN NULL WHEN $9 THEN coalesce(awaiting_since, $5) ELSE awaiting_since END, "
        "updated_at = $5 WHERE id = $1",
        ticket_id, move.status, move.reopened, first, now, message.administrator_id, active, staff,
        message.author is Author.CUSTOMER)
    if message.author is not Author.SYSTEM:
        told = [ticket["assignee_id"], *ticket["watchers"]]
        await queue_staff_notices(conn, ticket_id, message_id, [a for a in told if a is not None], now=now)
    return message_id


async def set_fields(conn: Connection, ticket_id: int, changes: dict[str, Any], *, now: dt.datetime) -> bool:
    """Change a ticket's status, priority, type, group or assignee (the keys given). A move to a
    closed status records when it was resolved, one out of it counts a reopen. False: no ticket."""
    allowed = {"status", "priority", "type", "group_id", "assignee_id", "subject", "customer_id"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"not a ticket field: {', '.join(sorted(unknown))}")
    before = await conn.fetchrow(
        "SELECT t.status, s.closed FROM tickets t JOIN ticket_statuses s ON s.code = t.status "
        "WHERE t.id = $1 FOR UPDATE OF t", ticket_id)
    if before is None:
        return False
    sets = [f"{name} = ${i}" for i, name in enumerate(changes, start=3)]
    if "status" in changes and changes["status"] != before["status"]:
        closed = await conn.fetchval("SELECT closed FROM ticket_statuses WHERE code = $1", changes["status"])
        if closed and not before["closed"]:
            sets.append("resolved_at = $2")
        elif before["closed"] and closed is False:
            sets += ["resolved_at = NULL", "reopened = reopened + 1"]
    await conn.execute(f"UPDATE tickets SET {', '.join([*sets, 'updated_at = $2'])} WHERE id = $1",
                       ticket_id, now, *changes.values())
    return True


async def queue_reply(conn: Connection, ticket_id: int, message_id: int, *, domain: str | None = None,
                      now: dt.datetime) -> int | None:
    """Queue a staff message as e-mail to the ticket's requester (its customer's address, or the
    unknown sender's), threaded to what the ticket received and sent before. ``domain``: of our
    Message-IDs; by default the ticket's inbox's, else the partner's mail sender's. None: the
    ticket has no address or no partner whose mail settings could send it."""
    t = await conn.fetchrow(
        "SELECT t.id, t.subject, t.cc, coalesce(t.partner_id, c.partner_id, i.partner_id) AS partner_id, "
        "t.customer_id, coalesce(nullif(c.email, ''), nullif(t.requester_email, '')) AS recipient, "
        "i.address AS inbox_address FROM tickets t LEFT JOIN customers c ON c.id = t.customer_id "
        "LEFT JOIN ticket_inboxes i ON i.id = t.inbox_id WHERE t.id = $1", ticket_id)
    if t is None or t["recipient"] is None or t["partner_id"] is None:
        return None
    if domain is None:
        domain = await _domain(conn, t["inbox_address"], t["partner_id"])
    m = await conn.fetchrow("SELECT body FROM ticket_messages WHERE id = $1 AND ticket_id = $2", message_id, ticket_id)
    if m is None:
        raise LookupError(f"message {message_id} is not ticket {ticket_id}'s")
    parents = await conn.fetchval(
        "SELECT coalesce(array_agg(mail_id ORDER BY id), '{}') FROM ticket_messages "
        "WHERE ticket_id = $1 AND id < $2 AND mail_id IS NOT NULL", ticket_id, message_id)
    headers = threading.reply_headers(ticket_id, message_id, domain, parents)
    await conn.execute("UPDATE ticket_messages SET mail_id = $2 WHERE id = $1", message_id, headers["Message-ID"])
    outgoing: int | None = await conn.fetchval(
        "INSERT INTO messages (partner_id, customer_id, kind, channel, cause, recipient, cc, subject, body, send_at, "
        "created_by, reply_headers) VALUES ($1, $2, $3, 'email', $4, $5, $6, $7, $8, $9, 'tickets', $10) "
        "ON CONFLICT ON CONSTRAINT messages_once DO NOTHING RETURNING id",
        t["partner_id"], t["customer_id"], REPLY_KIND, f"ticket_message:{message_id}", t["recipient"],
        ", ".join(t["cc"]), threading.reply_subject(t["subject"], ticket_id), m["body"], now,
        {"message_id": headers["Message-ID"], "in_reply_to": headers.get("In-Reply-To", ""),
         "references": headers.get("References", "")})
    if outgoing is not None:
        await conn.execute("UPDATE ticket_messages SET outgoing_id = $2 WHERE id = $1", message_id, outgoing)
    return outgoing


STAFF_NOTICES = """
INSERT INTO messages (partner_id, kind, channel, cause, recipient, body, send_at, created_by)
SELECT coalesce(m.ticket_partner, a.partner_id, (SELECT min(id) FROM partners)), $3, 'email',
       'ticket_message:' || m.id || ':administrator:' || a.id, btrim(a.email), m.body, $4, 'tickets'
FROM (SELECT m.id, m.body, m.administrator_id AS author,
             coalesce(t.partner_id, c.partner_id, i.partner_id) AS ticket_partner
      FROM ticket_messages m JOIN tickets t ON t.id = m.ticket_id LEFT JOIN customers c ON c.id = t.customer_id
      LEFT JOIN ticket_inboxes i ON i.id = t.inbox_id WHERE m.id = $1 AND m.ticket_id = $5) m
JOIN administrators a ON a.id = ANY($2::bigint[])
WHERE a.enabled AND coalesce(btrim(a.email), '') <> '' AND a.id IS DISTINCT FROM m.author
  AND (a.partner_id IS NULL OR m.ticket_partner IS NULL OR a.partner_id = m.ticket_partner)
  AND EXISTS (SELECT 1 FROM partners)
ORDER BY a.id
ON CONFLICT ON CONSTRAINT messages_once DO NOTHING RETURNING id
"""
"""A staff notice of one ticket message to each administrator of $2 who may have it (the partner:
the ticket's, else the administrator's own, else the first; messages.partner_id is required)."""


async def queue_staff_notices(conn: Connection, ticket_id: int, message_id: int, administrator_ids: Sequence[int],
                              *, now: dt.datetime) -> list[int]:
    """Queue a notice of ticket ``ticket_id``'s message ``message_id`` by e-mail to each of these
    administrators (see the module: not its author, nor one disabled, without an address or of
    another partner), once per (message, administrator) however often called; sent as the
    notifications' ``ticket_staff`` (its text as written, the rest read when it goes). The ids
    of the notices made now."""
    wanted = sorted(set(administrator_ids))
    if not wanted:
        return []
    rows = await conn.fetch(STAFF_NOTICES, message_id, wanted, STAFF_KIND, now, ticket_id)
    return [r["id"] for r in rows]


# -- helpers -----------------------------------------------------------------------------------

async def _domain(conn: Connection, inbox_address: str | None, partner_id: int) -> str:
    """The domain of our Message-IDs: the inbox's address's, else the partner's mail sender's."""
    address = inbox_address or await conn.fetchval(
        "SELECT mail_from FROM notification_settings WHERE partner_id = $1 OR partner_id IS NULL "
        "ORDER BY partner_id NULLS LAST LIMIT 1", partner_id) or ""
    host = address.rstrip("> ").rpartition("@")[2].strip().lower()
    return host if host and all(part.isalnum() or "-" in part for part in host.split(".")) else "localhost"


async def _mail_known(conn: Connection, mail_id: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM ticket_messages WHERE mail_id = $1)", mail_id))


async def _insert_message(conn: Connection, ticket_id: int, m: NewMessage, now: dt.datetime) -> int | None:
    message_id: int | None = await conn.fetchval(
        "INSERT INTO ticket_messages (ticket_id, author, administrator_id, from_address, from_name, body, mail_id, "
        "problems, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        "ON CONFLICT ON CONSTRAINT ticket_messages_mail_id_unique DO NOTHING RETURNING id",
        ticket_id, m.author.value, m.administrator_id, m.from_address, m.from_name, m.body, m.mail_id,
        list(m.problems), now)
    if message_id is not None and m.attachments:
        await conn.executemany(
            "INSERT INTO ticket_attachments (message_id, file_name, declared_type, served_type, size, sha256, data) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [(message_id, a.filename, a.declared_type, a.served_type, a.size, hashlib.sha256(a.data).digest(), a.data)
             for a in m.attachments])
    return message_id


async def _assign(conn: Connection, group_id: int, partner_id: int | None, now: dt.datetime,
                  rng: random.Random) -> automation.Assignment:
    group = await conn.fetchrow(
        "SELECT g.assign_mode, coalesce((SELECT array_agg(m.administrator_id ORDER BY m.administrator_id) "
        "FROM ticket_group_members m JOIN administrators a ON a.id = m.administrator_id "
        "WHERE m.group_id = g.id AND a.enabled), '{}') AS members, "
        "coalesce((SELECT timezone FROM notification_settings WHERE partner_id = $2 OR partner_id IS NULL "
        "ORDER BY partner_id NULLS LAST LIMIT 1), 'UTC') AS timezone "
        "FROM ticket_groups g WHERE g.id = $1", group_id, partner_id)
    if group is None:
        raise LookupError(f"ticket group {group_id} does not exist")
    shifts = [automation.Shift(r["administrator_id"], frozenset(r["weekdays"]), r["starts"], r["ends"])
              for r in await conn.fetch("SELECT administrator_id, weekdays, starts, ends FROM ticket_shifts "
                                        "WHERE group_id = $1", group_id)]
    local = now.astimezone(zoneinfo.ZoneInfo(group["timezone"]))
    return automation.assign(automation.AssignMode(group["assign_mode"]), list(group["members"]), shifts, local, rng)
