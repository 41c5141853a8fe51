"""The SQL of staff's view of a customer's portal account (accounts.py): the account with what
staff may know of it (whether a password and a second factor are set, never the hash nor the
secret), the login's owner, the account made or changed, and the customer's own sessions ended.
The customer's login itself is accounts_store.py's (the portal's)."""

from __future__ import annotations

import asyncpg

from admin.auth.store import Connection

ACCOUNT = ("SELECT a.customer_id, a.login, a.password_hash IS NOT NULL AS password_set, "
           "a.totp_secret IS NOT NULL AS second_factor, a.enabled, a.password_changed_at, a.last_login_at, "
           "a.created_at, a.updated_at, "
           "(SELECT count(*) FROM portal_sessions s WHERE s.customer_id = a.customer_id "
           "   AND s.impersonator_id IS NULL AND s.expires_at > now()) AS sessions "
           "FROM portal_accounts a")


async def account(conn: Connection, customer_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    """The customer's portal account as staff see it, or None when it has none."""
    return await conn.fetchrow(f"{ACCOUNT} WHERE a.customer_id = $1" + (" FOR UPDATE OF a" if lock else ""),
                               customer_id)


async def login_owner(conn: Connection, login: str) -> int | None:
    """The customer whose portal login is ``login`` (ignoring case), or None."""
    value = await conn.fetchval("SELECT customer_id FROM portal_accounts WHERE lower(login) = lower($1)", login)
    return int(value) if value is not None else None


async def create(conn: Connection, customer_id: int, login: str) -> None:
    """An account with no password yet (staff set one, or the customer asks for a reset code)."""
    await conn.execute("INSERT INTO portal_accounts (customer_id, login) VALUES ($1, $2)", customer_id, login)


async def set_login(conn: Connection, customer_id: int, login: str) -> None:
    await conn.execute("UPDATE portal_accounts SET login = $2, updated_at = now() WHERE customer_id = $1",
                       customer_id, login)


async def set_password(conn: Connection, customer_id: int, password_hash: str | None) -> None:
    """The password's hash (None: cleared, the customer sets one with a reset code)."""
    await conn.execute("UPDATE portal_accounts SET password_hash = $2, password_changed_at = "
                       "CASE WHEN $2::text IS NULL THEN NULL ELSE now() END, updated_at = now() "
                       "WHERE customer_id = $1", customer_id, password_hash)


async def set_enabled(conn: Connection, customer_id: int, enabled: bool) -> None:
    await conn.execute("UPDATE portal_accounts SET enabled = $2, updated_at = now() WHERE customer_id = $1",
                       customer_id, enabled)


async def remove_totp(conn: Connection, customer_id: int) -> None:
    await conn.execute("UPDATE portal_accounts SET totp_secret = NULL, updated_at = now() WHERE customer_id = $1",
                       customer_id)


async def end_sessions(conn: Connection, customer_id: int) -> int:
    """End the customer's own portal sessions (not an administrator's "log in as"); how many."""
    done = await conn.execute("DELETE FROM portal_sessions WHERE customer_id = $1 AND impersonator_id IS NULL",
                              customer_id)
    return int(done.split()[-1])
