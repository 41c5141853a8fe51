"""The SQL of logins: administrators, their sessions, login attempts, API keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

_ADMIN = """
SELECT a.id, a.login, a.name, a.email, a.password_hash, a.enabled, a.partner_id, a.grants, a.revokes,
       a.totp_secret, a.totp_last_step, a.recovery_codes, a.idle_timeout_s, a.absolute_timeout_s,
       r.name AS role, r.builtin, r.permissions AS role_permissions, r.own_customers_only,
       r.require_2fa OR st.require_2fa AS require_2fa
FROM administrators a JOIN admin_roles r ON r.id = a.role_id CROSS JOIN admin_settings st
"""


async def admin_by_login(conn: Connection, login: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_ADMIN + "WHERE a.login = $1", login)


async def admin_by_id(conn: Connection, admin_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(_ADMIN + "WHERE a.id = $1", admin_id)


async def session(conn: Connection, token_hash: bytes) -> asyncpg.Record | None:
    """A login session with its administrator, or None; whether it has timed out is the caller's."""
    return await conn.fetchrow(
        "SELECT s.csrf_token, s.verified, s.created_at, s.seen_at, s.expires_at, now() AS now, x.* "
        "FROM admin_sessions s JOIN LATERAL (" + _ADMIN + "WHERE a.id = s.admin_id) x ON true "
        "WHERE s.token_hash = $1", token_hash)


async def create_session(conn: Connection, token_hash: bytes, admin_id: int, csrf_token: str, verified: bool,
                         absolute_timeout_s: int, address: str | None, user_agent: str) -> None:
    await conn.execute(
        "INSERT INTO admin_sessions (token_hash, admin_id, csrf_token, verified, expires_at, address, user_agent) "
        "VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), $6::inet, $7)",
        token_hash, admin_id, csrf_token, verified, absolute_timeout_s, address, user_agent[:300])


async def touch_session(conn: Connection, token_hash: bytes) -> None:
    await conn.execute("UPDATE admin_sessions SET seen_at = now() WHERE token_hash = $1", token_hash)


async def verify_session(conn: Connection, token_hash: bytes) -> None:
    await conn.execute("UPDATE admin_sessions SET verified = true, seen_at = now() WHERE token_hash = $1", token_hash)


async def end_session(conn: Connection, token_hash: bytes) -> None:
    await conn.execute("DELETE FROM admin_sessions WHERE token_hash = $1", token_hash)


async def end_sessions_of(conn: Connection, admin_id: int, *, keep: bytes | None = None) -> None:
    await conn.execute("DELETE FROM admin_sessions WHERE admin_id = $1 AND token_hash IS DISTINCT FROM $2",
                       admin_id, keep)


async def expire_sessions(conn: Connection) -> int:
    """Delete sessions past their absolute timeout (idle ones are refused when they come back)."""
    return int((await conn.execute("DELETE FROM admin_sessions WHERE expires_at < now()")).split()[-1])


async def record_attempt(conn: Connection, login: str, address: str | None, ok: bool) -> None:
    await conn.execute("INSERT INTO admin_login_attempts (login, address, ok) VALUES ($1, $2::inet, $3)",
                       login, address, ok)


async def failures(conn: Connection, login: str, address: str | None, window_s: float) -> tuple[int, int]:
    """Failed logins in the last ``window_s`` seconds: of this login (since its last success) and
    from this address."""
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM admin_login_attempts WHERE login = $1 AND NOT ok "
        "          AND at > now() - make_interval(secs => $3)"
        "          AND at > coalesce((SELECT max(at) FROM admin_login_attempts WHERE login = $1 AND ok), '-infinity')),"
        "       (SELECT count(*) FROM admin_login_attempts WHERE address = $2::inet AND NOT ok "
        "          AND at > now() - make_interval(secs => $3))",
        login, address, window_s)
    assert row is not None
    return int(row[0]), int(row[1])


async def forget_attempts(conn: Connection, window_s: float) -> None:
    await conn.execute("DELETE FROM admin_login_attempts WHERE at < now() - make_interval(secs => $1)", window_s)


async def logged_in(conn: Connection, admin_id: int, new_hash: str | None) -> None:
    await conn.execute("UPDATE administrators SET last_login_at = now(), "
                       "password_hash = coalesce($2, password_hash) WHERE id = $1", admin_id, new_hash)


async def use_totp_step(conn: Connection, admin_id: int, step: int) -> bool:
    """Record ``step`` as used; False when it (or a later one) was used already: a replay, even
    by a concurrent request."""
    done = await conn.fetchval(
        "UPDATE administrators SET totp_last_step = $2 WHERE id = $1 "
        "AND (totp_last_step IS NULL OR totp_last_step < $2) RETURNING id", admin_id, step)
    return done is not None


async def set_recovery_codes(conn: Connection, admin_id: int, hashes: Sequence[str], old: Sequence[str]) -> bool:
    """Replace the recovery codes if they are still ``old`` (a code is spent once)."""
    done = await conn.fetchval("UPDATE administrators SET recovery_codes = $2 WHERE id = $1 AND recovery_codes = $3 "
                               "RETURNING id", admin_id, list(hashes), list(old))
    return done is not None


async def set_totp(conn: Connection, admin_id: int, sealed_secret: str | None, recovery: Sequence[str],
                   step: int | None) -> None:
    await conn.execute("UPDATE administrators SET totp_secret = $2, recovery_codes = $3, totp_last_step = $4 "
                       "WHERE id = $1", admin_id, sealed_secret, list(recovery), step)


async def set_password(conn: Connection, admin_id: int, password_hash: str) -> None:
    await conn.execute("UPDATE administrators SET password_hash = $2 WHERE id = $1", admin_id, password_hash)


async def api_key(conn: Connection, key_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT k.id, k.name, k.partner_id, k.allow_from::text[] AS allow_from, k.revoked_at, "
        "       r.name AS role, r.builtin, r.permissions AS role_permissions, r.own_customers_only "
        "FROM api_keys k JOIN admin_roles r ON r.id = k.role_id WHERE k.key_hash = $1", key_hash)


async def log_api_requests(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """COPY a batch of (at, key_id, method, path, status, address, duration_ms); stamps last_used_at."""
    await conn.copy_records_to_table("api_requests", records=rows, columns=[
        "at", "key_id", "method", "path", "status", "address", "duration_ms"])
    last: dict[int, datetime] = {}
    for r in rows:
        last[r[1]] = max(last.get(r[1], r[0]), r[0])
    await conn.executemany("UPDATE api_keys SET last_used_at = greatest(last_used_at, $2) WHERE id = $1",
                           list(last.items()))


async def create_admin(conn: Connection, login: str, name: str, email: str | None, password_hash: str,
                       role_builtin: str) -> int:
    return int(await conn.fetchval(
        "INSERT INTO administrators (login, name, email, password_hash, role_id) "
        "SELECT $1, $2, $3, $4, id FROM admin_roles WHERE builtin = $5 RETURNING id",
        login, name, email, password_hash, role_builtin))


async def any_admin(conn: Connection) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM administrators)"))
