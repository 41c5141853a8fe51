"""The SQL of merging and splitting tickets and of their watchers (admin/tickets/merge.py).

Messages stay append-only: a merge or a split moves them to another ticket by their
``ticket_id`` alone (their body and author never change). Status changes and system lines go
through admin/tickets/store.py; the caller holds the transaction.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from admin.auth.store import Connection
from admin.tickets.queries import TICKET_COLUMNS, TICKET_FROM, TICKET_SCOPE

Record = asyncpg.Record

_WATCHERS = ("coalesce((SELECT json_agg(json_build_object('id', wa.id, 'login', wa.login, 'name', wa.name) "
             "ORDER BY lower(coalesce(nullif(wa.name, ''), wa.login)), wa.id) FROM ticket_watchers w "
             "JOIN administrators wa ON wa.id = w.administrator_id WHERE w.ticket_id = t.id), '[]')::text")


async def ticket_view(conn: Connection, partner: int | None, creator: int | None, ticket_id: int) -> Record | None:
    """One ticket the principal sees (as queries.ticket), with the ticket it was merged into and
    its watchers (id, login, name) as JSON, in one statement."""
    return await conn.fetchrow(
        f"SELECT {TICKET_COLUMNS}, t.merged_into, {_WATCHERS} AS watchers {TICKET_FROM} "
        f"WHERE t.id = $3 AND {TICKET_SCOPE}",
        partner, creator, ticket_id)


async def lock(conn: Connection, *ticket_ids: int) -> dict[int, Record]:
    """Lock the tickets FOR UPDATE in id order (two merges of the same pair never deadlock)."""
    rows = await conn.fetch(
        "SELECT id, partner_id, merged_into FROM tickets WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
        sorted(set(ticket_ids)))
    return {r["id"]: r for r in rows}


async def move_into(conn: Connection, source: int, target: int) -> int:
    """Move every message of ``source`` to ``target``, add its CC addresses and watchers to the
    target's, keep the earlier first response (and the earlier wait, the later activity) on the
    target, and mark the source merged. Returns how many messages moved."""
    moved = await conn.execute("UPDATE ticket_messages SET ticket_id = $2 WHERE ticket_id = $1", source, target)
    await conn.execute(
        "INSERT INTO ticket_watchers (ticket_id, administrator_id) SELECT $2, administrator_id "
        "FROM ticket_watchers WHERE ticket_id = $1 ON CONFLICT ON CONSTRAINT ticket_watchers_pk DO NOTHING",
        source, target)
    await conn.execute(
        "UPDATE tickets t SET cc = t.cc || ARRAY(SELECT x FROM unnest(s.cc) WITH ORDINALITY AS u (x, n) "
        "  WHERE lower(x) <> ALL (SELECT lower(y) FROM unnest(t.cc) y) ORDER BY n), "
        "first_response_at = least(t.first_response_at, s.first_response_at), "
        "first_response_by = CASE WHEN s.first_response_at IS NOT NULL AND (t.first_response_at IS NULL "
        "  OR s.first_response_at < t.first_response_at) THEN s.first_response_by ELSE t.first_response_by END, "
        "awaiting_since = least(t.awaiting_since, s.awaiting_since), "
        "last_activity_at = greatest(t.last_activity_at, s.last_activity_at) "
        "FROM tickets s WHERE t.id = $2 AND s.id = $1", source, target)
    await conn.execute("UPDATE tickets SET merged_into = $2, awaiting_since = NULL WHERE id = $1", source, target)
    return int(moved.split()[-1])


async def message_of(conn: Connection, ticket_id: int, message_id: int) -> Record | None:
    """A message of the ticket: its author, and whether an earlier one of the ticket is there."""
    return await conn.fetchrow(
        "SELECT m.id, m.author, m.created_at, EXISTS (SELECT 1 FROM ticket_messages e WHERE e.ticket_id = m.ticket_id "
        "AND e.id < m.id) AS has_earlier FROM ticket_messages m WHERE m.id = $2 AND m.ticket_id = $1",
        ticket_id, message_id)


async def split_off(conn: Connection, source: int, message_id: int, subject: str, *, source_kind: str,
                    created_by: str, now: dt.datetime) -> int:
    """A new ticket like ``source`` (its partner, customer, requester, priority, type, group,
    inbox and CC), status new, with the message ``message_id`` and every later one of the
    source moved to it. Returns the new ticket's id."""
    new_id: int = await conn.fetchval(
        "INSERT INTO tickets (partner_id, customer_id, requester_email, requester_name, subject, status, priority, "
        "type, group_id, inbox_id, source, cc, created_by, created_at, updated_at, last_activity_at, awaiting_since) "
        "SELECT partner_id, customer_id, requester_email, requester_name, $2, 'new', priority, type, group_id, "
        "inbox_id, $3, cc, $4, $5, $5, $5, "
        "CASE WHEN NOT EXISTS (SELECT 1 FROM ticket_messages m WHERE m.ticket_id = $1 AND m.id >= $6 "
        "  AND m.author = 'staff') THEN (SELECT created_at FROM ticket_messages WHERE id = $6) END "
        "FROM tickets WHERE id = $1 RETURNING id",
        source, subject[:500], source_kind, created_by, now, message_id)
    await conn.execute("UPDATE ticket_messages SET ticket_id = $2 WHERE ticket_id = $1 AND id >= $3",
                       source, new_id, message_id)
    return new_id


async def watch(conn: Connection, ticket_id: int, administrator_id: int) -> bool:
    """The administrator watches the ticket; False: it did already."""
    done = await conn.execute(
        "INSERT INTO ticket_watchers (ticket_id, administrator_id) VALUES ($1, $2) "
        "ON CONFLICT ON CONSTRAINT ticket_watchers_pk DO NOTHING", ticket_id, administrator_id)
    return done != "INSERT 0 0"


async def unwatch(conn: Connection, ticket_id: int, administrator_id: int) -> bool:
    """The administrator no longer watches the ticket; False: it did not."""
    done = await conn.execute("DELETE FROM ticket_watchers WHERE ticket_id = $1 AND administrator_id = $2",
                              ticket_id, administrator_id)
    return done != "DELETE 0"
