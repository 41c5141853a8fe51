"""The SQL of portal sessions: a customer's login (or an administrator's "log in as")."""

from __future__ import annotations

import asyncpg

from admin.auth.store import Connection


async def create(conn: Connection, token_hash: bytes, customer_id: int, csrf_token: str, *, verified: bool,
                 impersonator_id: int | None, absolute_timeout_s: int, address: str | None, user_agent: str) -> None:
    await conn.execute(
        "INSERT INTO portal_sessions (token_hash, customer_id, csrf_token, verified, impersonator_id, expires_at, "
        "address, user_agent) VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7::inet, $8)",
        token_hash, customer_id, csrf_token, verified, impersonator_id, absolute_timeout_s, address, user_agent[:300])


async def session(conn: Connection, token_hash: bytes) -> asyncpg.Record | None:
    """A session with its customer and account (and who impersonates, if anyone), or None; whether
    it has timed out is the caller's (``now`` is the database's)."""
    return await conn.fetchrow(
        "SELECT s.customer_id, s.csrf_token, s.verified, s.impersonator_id, s.seen_at, s.expires_at, now() AS now, "
        "       c.partner_id, c.name, c.status, coalesce(a.enabled, false) AS enabled, a.login, "
        "       coalesce(ad.name, '') AS impersonator_name "
        "FROM portal_sessions s JOIN customers c ON c.id = s.customer_id "
        "LEFT JOIN portal_accounts a ON a.customer_id = s.customer_id "
        "LEFT JOIN administrators ad ON ad.id = s.impersonator_id WHERE s.token_hash = $1", token_hash)


async def touch(conn: Connection, token_hash: bytes) -> None:
    await conn.execute("UPDATE portal_sessions SET seen_at = now() WHERE token_hash = $1", token_hash)


async def verify(conn: Connection, token_hash: bytes) -> None:
    await conn.execute("UPDATE portal_sessions SET verified = true, seen_at = now() WHERE token_hash = $1", token_hash)


async def end(conn: Connection, token_hash: bytes) -> None:
    await conn.execute("DELETE FROM portal_sessions WHERE token_hash = $1", token_hash)


async def end_of(conn: Connection, customer_id: int, *, keep: bytes | None = None) -> None:
    """End a customer's sessions but ``keep`` (a new password: the other devices log in again)."""
    await conn.execute("DELETE FROM portal_sessions WHERE customer_id = $1 AND token_hash IS DISTINCT FROM $2 "
                       "AND impersonator_id IS NULL", customer_id, keep)


async def expire(conn: Connection) -> int:
    """Delete sessions past their absolute timeout (idle ones are refused when they come back)."""
    return int((await conn.execute("DELETE FROM portal_sessions WHERE expires_at < now()")).split()[-1])
