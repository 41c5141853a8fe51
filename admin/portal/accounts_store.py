"""The SQL of customers' portal logins: accounts, login attempts (throttling), the TOTP steps used,
and the single-use password reset codes (only their sha256 is kept)."""

from __future__ import annotations

import asyncpg

from admin.auth.store import Connection

_ACCOUNT = """
SELECT a.customer_id, a.login, a.password_hash, a.totp_secret, a.enabled, c.partner_id, c.name, c.email, c.phone,
       c.status
FROM portal_accounts a JOIN customers c ON c.id = a.customer_id
"""


async def by_login(conn: Connection, login: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_ACCOUNT + "WHERE lower(a.login) = lower($1)", login)


async def by_id(conn: Connection, customer_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(_ACCOUNT + "WHERE a.customer_id = $1", customer_id)


async def by_email(conn: Connection, email: str) -> list[asyncpg.Record]:
    """The accounts of the customers with this e-mail address (several: a family's, a company's)."""
    return list(await conn.fetch(_ACCOUNT + "WHERE lower(btrim(c.email)) = lower(btrim($1)) ORDER BY a.customer_id "
                                 "LIMIT 2", email))


async def create(conn: Connection, customer_id: int, login: str, password_hash: str | None) -> None:
    await conn.execute("INSERT INTO portal_accounts (customer_id, login, password_hash, password_changed_at) "
                       "VALUES ($1, $2, $3, CASE WHEN $3::text IS NULL THEN NULL ELSE now() END)",
                       customer_id, login, password_hash)


async def record_attempt(conn: Connection, login: str, address: str | None, ok: bool) -> None:
    await conn.execute("INSERT INTO portal_login_attempts (login, address, ok) VALUES ($1, $2::inet, $3)",
                       login, address, ok)


async def failures(conn: Connection, login: str, address: str | None, window_s: float) -> tuple[int, int]:
    """Failed logins in the last ``window_s`` seconds: of this login (since its last success) and
    from this address (as admin/auth/store.py counts the administrators')."""
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM portal_login_attempts WHERE login = $1 AND NOT ok "
        "          AND at > now() - make_interval(secs => $3)"
        "          AND at > coalesce((SELECT max(at) FROM portal_login_attempts WHERE login = $1 AND ok),"
        "                            '-infinity')),"
        "       (SELECT count(*) FROM portal_login_attempts WHERE address = $2::inet AND NOT ok "
        "          AND at > now() - make_interval(secs => $3))",
        login, address, window_s)
    assert row is not None
    return int(row[0]), int(row[1])


async def forget_attempts(conn: Connection, window_s: float) -> None:
    await conn.execute("DELETE FROM portal_login_attempts WHERE at < now() - make_interval(secs => $1)", window_s)


async def logged_in(conn: Connection, customer_id: int, new_hash: str | None) -> None:
    await conn.execute("UPDATE portal_accounts SET last_login_at = now(), password_hash = coalesce($2, password_hash) "
                       "WHERE customer_id = $1", customer_id, new_hash)


async def set_password(conn: Connection, customer_id: int, password_hash: str) -> None:
    await conn.execute("UPDATE portal_accounts SET password_hash = $2, password_changed_at = now() "
                       "WHERE customer_id = $1", customer_id, password_hash)


async def set_totp(conn: Connection, customer_id: int, sealed_secret: str | None) -> None:
    await conn.execute("UPDATE portal_accounts SET totp_secret = $2 WHERE customer_id = $1", customer_id,
                       sealed_secret.encode() if sealed_secret is not None else None)


async def use_totp_step(conn: Connection, customer_id: int, step: int) -> bool:
    """Record ``step`` as used by this customer; False when it was used already (a replay, even by
    a concurrent request: the customer's advisory lock orders them). portal_accounts keeps no last
    step: the step is an ok row of portal_login_attempts (``#totp:<customer>:<step>``), forgotten
    with the attempts, long after the step's code stopped being valid."""
    marker = f"#totp:{customer_id}:{step}"
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('portal.totp'), ($1 % 2147483647)::int)", customer_id)
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM portal_login_attempts WHERE login = $1)", marker):
            return False
        await conn.execute("INSERT INTO portal_login_attempts (login, ok) VALUES ($1, true)", marker)
    return True


# -- reset codes ---------------------------------------------------------------------------------

async def codes_since(conn: Connection, customer_id: int, window_s: float) -> int:
    """Codes made for this customer in the last ``window_s`` seconds (a cap on codes sent)."""
    return int(await conn.fetchval("SELECT count(*) FROM portal_codes WHERE customer_id = $1 "
                                   "AND created_at > now() - make_interval(secs => $2)", customer_id, window_s))


async def create_code(conn: Connection, customer_id: int, code_hash: bytes, channel: str, ttl_s: int) -> int:
    """A new code (the customer's earlier unused ones stop counting: only the latest is checked)."""
    return int(await conn.fetchval(
        "INSERT INTO portal_codes (customer_id, code_hash, channel, expires_at) "
        "VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING id",
        customer_id, code_hash, channel, ttl_s))


async def use_code(conn: Connection, customer_id: int, code_hash: bytes, max_attempts: int) -> bool:
    """Spend the customer's latest code if it is ``code_hash``, unused, unexpired and not tried
    ``max_attempts`` times wrongly; a wrong one counts against it. One transaction, the code's row
    locked: two requests never both spend it."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT id, code_hash, attempts, used_at, expires_at <= now() AS expired FROM portal_codes "
            "WHERE customer_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1 FOR UPDATE", customer_id)
        if row is None or row["used_at"] is not None or row["expired"] or row["attempts"] >= max_attempts:
            return False
        if bytes(row["code_hash"]) != code_hash:
            await conn.execute("UPDATE portal_codes SET attempts = attempts + 1 WHERE id = $1", row["id"])
            return False
        await conn.execute("UPDATE portal_codes SET used_at = now() WHERE id = $1", row["id"])
    return True


async def queue_code(conn: Connection, code_id: int, partner_id: int, customer_id: int, channel: str,
                     recipient: str, code: str) -> int | None:
    """The code's message in the notifications outbox (kind ``portal_code``, addressed when made:
    the address or number the customer chose); the delivery worker sends it."""
    value = await conn.fetchval(
        "INSERT INTO messages (partner_id, customer_id, kind, channel, cause, recipient, body, send_at, created_by) "
        "VALUES ($1, $2, 'portal_code', $3, $4, $5, $6, now(), 'portal') "
        "ON CONFLICT ON CONSTRAINT messages_once DO NOTHING RETURNING id",
        partner_id, customer_id, channel, f"portal_code:{code_id}", recipient, code)
    return int(value) if value is not None else None
