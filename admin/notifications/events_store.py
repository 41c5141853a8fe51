"""The events outbox's SQL: taking pending events for dispatch and fanning them out to webhooks,
the sessions' events, pruning, and the outbox as the API lists it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import asyncpg

from admin.auth.store import Connection

# A webhook takes an event when one of its patterns is '*', the event's type, or '<subject>.*'
# (event_types.matches says the same in Python), and when it is every partner's or the event's.
_MATCHES = ("w.enabled AND (w.partner_id IS NULL OR w.partner_id = e.partner_id) "
            "AND (w.events && ARRAY['*', e.subject || '.' || e.name, e.subject || '.*'])")


async def take_pending(conn: Connection, limit: int) -> list[asyncpg.Record]:
    """Up to ``limit`` events not dispatched yet, oldest first, locked (SKIP LOCKED: another
    dispatcher takes others); call inside a transaction. The payload comes as its JSON text, so
    amounts keep every digit."""
    return await conn.fetch(
        "SELECT id, subject, name, partner_id, occurred_at, payload::text AS payload FROM events "
        "WHERE dispatched_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", limit)


async def fan_out(conn: Connection, event_ids: Sequence[int], now: dt.datetime) -> int:
    """A pending delivery for every enabled webhook the events match, in event order; how many."""
    result = await conn.execute(
        "INSERT INTO webhook_deliveries (webhook_id, event_id, next_attempt_at, created_at, updated_at) "
        "SELECT w.id, e.id, $2, $2, $2 FROM events e JOIN webhooks w ON " + _MATCHES + " "
        "WHERE e.id = ANY($1::bigint[]) ORDER BY e.id, w.id "
        "ON CONFLICT ON CONSTRAINT webhook_deliveries_once DO NOTHING", list(event_ids), now)
    return int(result.split()[-1])


async def mark_dispatched(conn: Connection, event_ids: Sequence[int], now: dt.datetime) -> None:
    await conn.execute("UPDATE events SET dispatched_at = $2 WHERE id = ANY($1::bigint[])", list(event_ids), now)


# -- sessions ----------------------------------------------------------------------------------

SESSIONS_CURSOR = "sessions"

_SESSION_PAYLOAD = """jsonb_build_object(
    'acct_unique_id', r.acct_unique_id, 'service_id', r.service_id, 'customer_id', s.customer_id,
    'username', r.username, 'framed_ip', host(r.framed_ip), 'nas', n.name, 'started_at', r.started_at,
    'stopped_at', {stopped}, 'octets', jsonb_build_object('input', r.input_octets, 'output', r.output_octets),
    'terminate_cause', {cause})"""

_SESSION_EVENTS = f"""
INSERT INTO events (subject, name, partner_id, payload, occurred_at)
SELECT 'session', x.name, x.partner_id, x.payload, x.at FROM (
    SELECT 'started' AS name, c.partner_id, r.started_at AS at, r.acct_unique_id AS key,
           {_SESSION_PAYLOAD.format(stopped="NULL::timestamptz", cause="NULL::text")} AS payload
    FROM radius_sessions r
    LEFT JOIN services s ON s.id = r.service_id LEFT JOIN customers c ON c.id = s.customer_id
    LEFT JOIN nas n ON n.id = r.nas_id
    WHERE r.started_at > $1 AND r.started_at <= $2
    UNION ALL
    SELECT 'stopped', c.partner_id, r.stopped_at, r.acct_unique_id,
           {_SESSION_PAYLOAD.format(stopped="r.stopped_at", cause="r.terminate_cause")}
    FROM radius_sessions r
    LEFT JOIN services s ON s.id = r.service_id LEFT JOIN customers c ON c.id = s.customer_id
    LEFT JOIN nas n ON n.id = r.nas_id
    WHERE r.stopped_at > $1 AND r.stopped_at <= $2 AND r.started_at <= $2
) x ORDER BY x.at, x.name, x.key
"""


async def session_events(conn: Connection, upto: dt.datetime, first: dt.timedelta) -> tuple[dt.datetime, int]:
    """The sessions started or stopped after the cursor and up to ``upto`` as ``session.started`` /
    ``session.stopped`` events, in the order they happened, and the cursor moved to ``upto``, in one
    transaction (a first run starts ``first`` before ``upto``); (where it started, events written)."""
    async with conn.transaction():
        await conn.execute("INSERT INTO event_cursors (name, position) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                           SESSIONS_CURSOR, upto - first)
        since: dt.datetime = await conn.fetchval(
            "SELECT position FROM event_cursors WHERE name = $1 FOR UPDATE", SESSIONS_CURSOR)
        if since >= upto:
            return since, 0
        result = await conn.execute(_SESSION_EVENTS, since, upto)
        await conn.execute("UPDATE event_cursors SET position = $2 WHERE name = $1", SESSIONS_CURSOR, upto)
    return since, int(result.split()[-1])


# -- pruning -----------------------------------------------------------------------------------

async def prune_events(conn: Connection, before: dt.datetime, batch: int) -> int:
    """Delete up to ``batch`` dispatched events that occurred before ``before`` and have no delivery
    still pending, with their deliveries and attempts (ON DELETE CASCADE); how many."""
    result = await conn.execute(
        "DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.occurred_at < $1 "
        "AND e.dispatched_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d "
        "WHERE d.event_id = e.id AND d.status = 'pending') ORDER BY e.occurred_at LIMIT $2)", before, batch)
    return int(result.split()[-1])


async def prune_attempts(conn: Connection, before: dt.datetime, batch: int) -> int:
    """Delete up to ``batch`` attempts older than ``before`` of deliveries no longer pending (a
    replayed delivery of a recent event keeps its recent attempts); how many."""
    result = await conn.execute(
        "DELETE FROM webhook_attempts WHERE id IN (SELECT a.id FROM webhook_attempts a "
        "JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE a.attempted_at < $1 AND d.status <> 'pending' "
        "LIMIT $2)", before, batch)
    return int(result.split()[-1])


# -- the outbox, as the API lists it -----------------------------------------------------------

async def events_after(conn: Connection, partner: int | None, after: int, limit: int) -> list[asyncpg.Record]:
    """Dispatched events after the id ``after``, oldest first, of ``partner`` (None: every partner's);
    webhook.ping events (one webhook's) aside."""
    return await conn.fetch(
        "SELECT id, subject, name, partner_id, occurred_at, payload::text AS payload FROM events "
        "WHERE id > $2 AND dispatched_at IS NOT NULL AND subject <> 'webhook' "
        "AND ($1::bigint IS NULL OR partner_id = $1) ORDER BY id LIMIT $3", partner, after, limit)
