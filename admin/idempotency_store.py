"""The SQL of the API's Idempotency-Key (admin/idempotency.py): a (caller, key)'s row is claimed
before its request runs, finished with the answer, or released when the request changed nothing.

Every statement here runs on its own (autocommit): a claim must be seen by a second request at
once, before the first one's handler commits anything.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from admin.auth.store import Connection


async def claim(conn: Connection, principal: str, key: str, digest: str) -> dt.datetime | None:
    """Claim (principal, key) for a request of ``digest``; the claim's time (its token), or None
    when the key is taken already."""
    value: dt.datetime | None = await conn.fetchval(
        "INSERT INTO idempotency_keys (principal, key, request_sha256) VALUES ($1, $2, $3) "
        "ON CONFLICT ON CONSTRAINT idempotency_keys_pk DO NOTHING RETURNING created_at", principal, key, digest)
    return value


async def find(conn: Connection, principal: str, key: str, lease_s: float) -> asyncpg.Record | None:
    """The key's row, with ``stale``: its first request is still unfinished after ``lease_s``."""
    return await conn.fetchrow(
        "SELECT request_sha256, status, content_type, body, created_at, "
        "status IS NULL AND created_at < now() - make_interval(secs => $3) AS stale "
        "FROM idempotency_keys WHERE principal = $1 AND key = $2", principal, key, lease_s)


async def take_over(conn: Connection, principal: str, key: str, claimed_at: dt.datetime) -> dt.datetime | None:
    """Claim again a key whose first request was abandoned (its claim of ``claimed_at`` never
    finished); the new claim's time, or None when another request took it over first."""
    value: dt.datetime | None = await conn.fetchval(
        "UPDATE idempotency_keys SET created_at = clock_timestamp() "
        "WHERE principal = $1 AND key = $2 AND status IS NULL AND created_at = $3 RETURNING created_at",
        principal, key, claimed_at)
    return value


async def finish(conn: Connection, principal: str, key: str, claimed_at: dt.datetime, status: int,
                 content_type: str, body: bytes) -> None:
    """Keep the answer of the request that holds the claim."""
    await conn.execute(
        "UPDATE idempotency_keys SET status = $4, content_type = $5, body = $6 "
        "WHERE principal = $1 AND key = $2 AND status IS NULL AND created_at = $3",
        principal, key, claimed_at, status, content_type, body)


async def release(conn: Connection, principal: str, key: str, claimed_at: dt.datetime) -> None:
    """Drop the claim of a request that changed nothing (it failed): a retry runs again."""
    await conn.execute("DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 AND status IS NULL "
                       "AND created_at = $3", principal, key, claimed_at)


async def prune(conn: Connection, hours: float) -> int:
    """Delete the keys older than ``hours``; how many."""
    result = await conn.execute("DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
                                hours * 3600)
    return int(result.split()[-1])
