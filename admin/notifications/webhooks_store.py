"""Webhooks' SQL: the webhooks themselves (partner-scoped), claiming and settling deliveries, their
attempts, replays and test events."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from typing import Any

import asyncpg

from admin.auth.store import Connection

# The principal's partner ($1): None sees every webhook, a partner only its own.
_SCOPE = "($1::bigint IS NULL OR w.partner_id = $1)"

_WEBHOOK = """w.id, w.partner_id, p.name AS partner, w.url, w.events, w.enabled, w.description, w.created_by,
    w.created_at, w.updated_at,
    (SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending') AS pending,
    (SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'failed') AS failed,
    (SELECT max(d.delivered_at) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'delivered')
        AS last_delivered_at"""


async def webhooks(conn: Connection, partner: int | None) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_WEBHOOK} FROM webhooks w LEFT JOIN partners p ON p.id = w.partner_id "
                            f"WHERE {_SCOPE} ORDER BY w.id", partner)


async def webhook(conn: Connection, partner: int | None, webhook_id: int, *,
                  lock: bool = False) -> asyncpg.Record | None:
    """A webhook the principal sees (with its sealed secret), or None."""
    return await conn.fetchrow(
        f"SELECT {_WEBHOOK}, w.secret FROM webhooks w LEFT JOIN partners p ON p.id = w.partner_id "
        f"WHERE w.id = $2 AND {_SCOPE}" + (" FOR UPDATE OF w" if lock else ""), partner, webhook_id)


async def partners(conn: Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT id, name FROM partners ORDER BY name"))


async def partner_exists(conn: Connection, partner_id: int) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM partners WHERE id = $1)", partner_id))


async def add(conn: Connection, values: dict[str, Any]) -> int:
    """A new webhook of ``values`` (partner_id, url, events, secret sealed, enabled, description, created_by)."""
    webhook_id: int = await conn.fetchval(
        "INSERT INTO webhooks (partner_id, url, events, secret, enabled, description, created_by) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        values["partner_id"], values["url"], values["events"], values["secret"], values["enabled"],
        values["description"], values["created_by"])
    return webhook_id


_COLUMNS = frozenset({"partner_id", "url", "events", "secret", "enabled", "description"})


async def update(conn: Connection, webhook_id: int, values: dict[str, Any]) -> None:
    columns = [c for c in values if c in _COLUMNS]
    if not columns:
        return
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
    await conn.execute(f"UPDATE webhooks SET {assignments} WHERE id = $1", webhook_id, *(values[c] for c in columns))


async def delete(conn: Connection, webhook_id: int) -> None:
    await conn.execute("DELETE FROM webhooks WHERE id = $1", webhook_id)


# -- deliveries: the pages and the API ---------------------------------------------------------

_DELIVERY = """d.id, d.webhook_id, d.event_id, e.subject || '.' || e.name AS type, d.status, d.attempts,
    d.next_attempt_at, d.delivered_at, d.created_at, d.updated_at, e.occurred_at,
    a.response_status AS last_status, a.error AS last_error, a.attempted_at AS last_attempt_at"""
_LAST_ATTEMPT = ("LEFT JOIN LATERAL (SELECT response_status, error, attempted_at FROM webhook_attempts "
                 "WHERE delivery_id = d.id ORDER BY id DESC LIMIT 1) a ON true")


async def deliveries(conn: Connection, webhook_id: int, status: str | None, before: int | None,
                     limit: int) -> list[asyncpg.Record]:
    """A webhook's deliveries, newest first, below the id ``before`` (keyset), ``limit`` of them."""
    return await conn.fetch(
        f"SELECT {_DELIVERY} FROM webhook_deliveries d JOIN events e ON e.id = d.event_id {_LAST_ATTEMPT} "
        "WHERE d.webhook_id = $1 AND ($2::text IS NULL OR d.status = $2) AND ($3::bigint IS NULL OR d.id < $3) "
        "ORDER BY d.id DESC LIMIT $4", webhook_id, status, before, limit)


async def delivery(conn: Connection, partner: int | None, delivery_id: int) -> asyncpg.Record | None:
    """A delivery of a webhook the principal sees, with its event (the payload as JSON text), or None."""
    return await conn.fetchrow(
        f"SELECT {_DELIVERY}, w.url, w.partner_id, e.payload::text AS payload "
        f"FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id JOIN events e ON e.id = d.event_id "
        f"{_LAST_ATTEMPT} WHERE d.id = $2 AND {_SCOPE}", partner, delivery_id)


async def attempts(conn: Connection, delivery_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, attempted_at, response_status, response_body, error, duration_ms FROM webhook_attempts "
        "WHERE delivery_id = $1 ORDER BY id", delivery_id)


async def replay(conn: Connection, delivery_id: int, now: dt.datetime) -> None:
    """Pending again, due ``now``, its attempts counted afresh (their rows stay: the history)."""
    await conn.execute(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $2, lease_until = NULL, "
        "delivered_at = NULL WHERE id = $1", delivery_id, now)


async def ping(conn: Connection, webhook_id: int, partner_id: int | None, payload: dict[str, Any],
               now: dt.datetime) -> int:
    """A ``webhook.ping`` event for this webhook alone (dispatched already: it fans out to no other)
    and its delivery, due now; the delivery's id."""
    delivery_id: int = await conn.fetchval(
        "WITH e AS (INSERT INTO events (subject, name, partner_id, payload, occurred_at, dispatched_at) "
        "VALUES ('webhook', 'ping', $2, $3::jsonb, $4, $4) RETURNING id) "
        "INSERT INTO webhook_deliveries (webhook_id, event_id, next_attempt_at, created_at, updated_at) "
        "SELECT $1, e.id, $4, $4, $4 FROM e RETURNING id", webhook_id, partner_id, payload, now)
    return delivery_id


# -- delivering --------------------------------------------------------------------------------

_DUE = """SELECT d.id, d.webhook_id, d.next_attempt_at FROM webhook_deliveries d
          JOIN webhooks w ON w.id = d.webhook_id AND w.enabled
          WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND {which}
          ORDER BY d.next_attempt_at, d.id LIMIT $6"""

# Two looks at the due deliveries, each the oldest $6: those of webhooks with none in flight (so
# that one webhook's backlog never hides another's), and those of webhooks with some in flight
# and room for more ($4, room $5); then at most the room of each webhook, oldest first.
_CLAIM = f"""
WITH room AS (
    SELECT w, n FROM unnest($4::bigint[], $5::int[]) AS r(w, n)
), candidates AS (
    SELECT d.id, row_number() OVER (PARTITION BY d.webhook_id ORDER BY d.next_attempt_at, d.id) AS rn,
           coalesce(room.n, $3) AS allowed, d.next_attempt_at
    FROM (({_DUE.format(which="d.webhook_id <> ALL($8::bigint[])")})
          UNION ALL ({_DUE.format(which="d.webhook_id = ANY($4::bigint[])")})) d
    LEFT JOIN room ON room.w = d.webhook_id
), picked AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.id IN (SELECT id FROM candidates WHERE rn <= allowed ORDER BY next_attempt_at, id LIMIT $2)
      AND d.status = 'pending' AND d.next_attempt_at <= $1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE webhook_deliveries d SET lease_until = $7, next_attempt_at = $7
    FROM picked WHERE d.id = picked.id
    RETURNING d.id, d.webhook_id, d.event_id, d.attempts, d.lease_until
)
SELECT c.id, c.webhook_id, c.event_id, c.attempts, c.lease_until, w.url, w.secret,
       e.subject || '.' || e.name AS type, e.occurred_at, e.payload::text AS payload
FROM claimed c JOIN webhooks w ON w.id = c.webhook_id JOIN events e ON e.id = c.event_id
ORDER BY c.webhook_id, e.id
"""


async def claim(conn: Connection, now: dt.datetime, limit: int, per_webhook: int, busy: dict[int, int],
                lease_until: dt.datetime, scan: int) -> list[asyncpg.Record]:
    """Up to ``limit`` deliveries due at ``now``, oldest first, at most ``per_webhook`` less what
    ``busy`` has in flight of each webhook, leased until ``lease_until`` (made due again then, so a
    worker that dies leaves them to another): with their webhook's URL and sealed secret and their
    event. Looks at the ``scan`` oldest due deliveries of the enabled webhooks with nothing in flight,
    and as many of those with room left (index ranges), so a claim stays cheap under a backlog of
    millions and one webhook's backlog does not hide another's deliveries."""
    used = [w for w, n in busy.items() if 0 < n < per_webhook]
    rows = await conn.fetch(_CLAIM, now, limit, per_webhook, used, [per_webhook - busy[w] for w in used],
                            scan, lease_until, [w for w, n in busy.items() if n > 0])
    return list(rows)


_SETTLE = """
WITH attempt AS (
    INSERT INTO webhook_attempts (delivery_id, attempted_at, response_status, response_body, error, duration_ms)
    SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = $1)
    RETURNING id
)
UPDATE webhook_deliveries SET status = $7, attempts = attempts + 1, next_attempt_at = coalesce($8, next_attempt_at),
    delivered_at = CASE WHEN $7 = 'delivered' THEN $2 ELSE delivered_at END, lease_until = NULL
WHERE id = $1 AND lease_until = $9 AND status = 'pending'
"""


async def settle(conn: Connection, outcome: Sequence[Any]) -> None:
    """Record one attempt and its delivery's new state: (delivery id, attempted at, HTTP status,
    body, error, duration ms, status, next attempt at, the lease it was claimed under). A delivery
    replayed or deleted while it was in flight keeps what was done to it: its attempt is kept (when
    it still exists), its state is not touched."""
    with contextlib.suppress(asyncpg.ForeignKeyViolationError):  # its webhook was deleted meanwhile
        await conn.execute(_SETTLE, *outcome)
