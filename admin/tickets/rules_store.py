"""The automation's rules applied (the ``tickets.rules`` job): each enabled rule, the tickets its
condition may hold for (found by SQL on the indexed columns), checked again with
automation.due, and its action done through store.py.

An action is done in the order a person would: the canned reply (a staff message, mailed), the
note, then the fields (so "close with a reply" ends closed, not "waiting on customer"). Each
ticket is its own transaction. A rule is due only while it would change something
(automation.due), so a run repeated, or two workers at once (the ticket row is locked), do
nothing twice: a reply or note moves the ticket's last activity to now, which ends an idle time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any

from admin.auth.store import Connection
from admin.tickets import automation, replies, store
from admin.tickets.automation import Author

BATCH = 500
"""Tickets one rule looks at per run (the oldest activity first); the next run takes the rest."""


@dataclass(frozen=True, slots=True)
class Applied:
    rule_id: int
    ticket_id: int
    changes: automation.Changes


def rule_of(row: Any) -> automation.Rule:
    """A ``ticket_rules`` row as a Rule (keys its JSON does not know are refused)."""
    def made(kind: type[Any], value: dict[str, Any]) -> Any:
        known = {f.name for f in fields(kind)}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"rule {row['id']}: unknown {kind.__name__.lower()} key {', '.join(sorted(unknown))}")
        return kind(**value)
    return automation.Rule(row["id"], row["name"], made(automation.Condition, row["condition"]),
                           made(automation.Action, row["action"]), row["enabled"])


async def rule_rows(conn: Connection) -> list[Any]:
    """The enabled rules' rows (rule_of reads each)."""
    return list(await conn.fetch("SELECT id, name, enabled, condition, action FROM ticket_rules WHERE enabled "
                                 "ORDER BY id"))


async def rules(conn: Connection) -> list[automation.Rule]:
    return [rule_of(r) for r in await rule_rows(conn)]


async def candidates(conn: Connection, rule: automation.Rule, now: dt.datetime) -> list[automation.Facts]:
    """The tickets ``rule``'s condition holds for, as the database can tell."""
    c = rule.condition
    idle_before = now - dt.timedelta(hours=c.idle_hours) if c.idle_hours is not None else None
    rows = await conn.fetch(
        "SELECT t.id, t.status, s.closed, t.priority, t.type, t.group_id, t.assignee_id, t.last_activity_at, "
        "t.created_at FROM tickets t JOIN ticket_statuses s ON s.code = t.status "
        "WHERE t.merged_into IS NULL "
        "AND ($1::text IS NULL AND NOT s.closed OR t.status = $1) "
        "AND ($2::timestamptz IS NULL OR t.last_activity_at <= $2) "
        "AND ($3::text IS NULL OR t.priority = $3) AND ($4::text IS NULL OR t.type = $4) "
        "AND ($5::bigint IS NULL OR t.group_id = $5) "
        "AND ($6::boolean IS NULL OR (t.assignee_id IS NULL) = $6) "
        "ORDER BY t.last_activity_at, t.id LIMIT $7",
        c.status, idle_before, c.priority, c.type, c.group_id, c.unassigned, BATCH)
    return [automation.Facts(**dict(r)) for r in rows]


async def apply(conn: Connection, rule: automation.Rule, ticket_id: int, *, now: dt.datetime,
                domain: str | None = None) -> Applied | None:
    """Do ``rule``'s action on one ticket if it is still due (the row locked). None: it is not."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT t.id, t.status, s.closed, t.priority, t.type, t.group_id, t.assignee_id, t.last_activity_at, "
            "t.created_at FROM tickets t JOIN ticket_statuses s ON s.code = t.status WHERE t.id = $1 "
            "FOR UPDATE OF t", ticket_id)
        if row is None:
            return None
        facts = automation.Facts(**dict(row))
        if not automation.due(rule, facts, now):
            return None
        changes = automation.apply(rule, facts)
        if changes.canned_reply_id is not None:
            body = await _canned(conn, changes.canned_reply_id, ticket_id)
            message = await store.add_message(conn, ticket_id, store.NewMessage(Author.STAFF, body), now=now)
            if message is not None:
                await store.queue_reply(conn, ticket_id, message, domain=domain, now=now)
        if changes.note is not None:
            await store.add_message(conn, ticket_id, store.NewMessage(Author.NOTE, changes.note), now=now)
            await conn.execute("UPDATE tickets SET last_activity_at = $2 WHERE id = $1", ticket_id, now)
        fields_ = {k: v for k, v in (("status", changes.status), ("priority", changes.priority),
                                     ("group_id", changes.group_id)) if v is not None}
        if fields_:
            await store.set_fields(conn, ticket_id, fields_, now=now)
        await store.add_message(conn, ticket_id, store.NewMessage(Author.SYSTEM, f"Rule “{rule.name}” applied."),
                                now=now)
        return Applied(rule.id, ticket_id, changes)


async def _canned(conn: Connection, reply_id: int, ticket_id: int) -> str:
    row = await conn.fetchrow(
        "SELECT r.body, t.id, t.subject, t.status, t.priority, t.type, coalesce(c.name, t.requester_name) AS name, "
        "coalesce(c.number, '') AS number, coalesce(c.email, t.requester_email) AS email, "
        "(SELECT m.body FROM ticket_messages m WHERE m.ticket_id = t.id AND m.author = 'customer' "
        " ORDER BY m.id DESC LIMIT 1) AS last "
        "FROM ticket_canned_replies r, tickets t LEFT JOIN customers c ON c.id = t.customer_id "
        "WHERE r.id = $1 AND t.id = $2", reply_id, ticket_id)
    if row is None:
        raise LookupError(f"canned reply {reply_id} does not exist")
    return replies.render(row["body"], ticket=replies.TicketView(row["id"], row["subject"], row["status"],
                                                                 row["priority"], row["type"]),
                          customer=replies.CustomerView(row["name"], row["number"], row["email"] or ""),
                          agent=replies.AgentView(""), message=replies.MessageView(row["last"] or ""))
