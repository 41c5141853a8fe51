"""The SQL of the canned replies' pages (canned.py). ``partner``: the principal's partner (None:
an administrator of every partner, who sees them all); a partner's administrator sees its own
partner's replies and those of every partner (``partner_id`` NULL)."""

from __future__ import annotations

import asyncpg

from admin.auth.store import Connection

_SCOPE = "($2::bigint IS NULL OR r.partner_id IS NULL OR r.partner_id = $2)"


async def replies(conn: Connection, partner: int | None) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT r.id, r.partner_id, p.name AS partner_name, r.name, r.body, r.updated_at "
        "FROM ticket_canned_replies r LEFT JOIN partners p ON p.id = r.partner_id "
        "WHERE $1::bigint IS NULL OR r.partner_id IS NULL OR r.partner_id = $1 ORDER BY lower(r.name), r.id", partner))


async def reply(conn: Connection, reply_id: int, partner: int | None, *, lock: bool = False) -> asyncpg.Record | None:
    """The canned reply when ``partner`` sees it."""
    return await conn.fetchrow(
        "SELECT r.*, p.name AS partner_name FROM ticket_canned_replies r LEFT JOIN partners p ON p.id = r.partner_id "
        f"WHERE r.id = $1 AND {_SCOPE}" + (" FOR UPDATE OF r" if lock else ""), reply_id, partner)


async def create(conn: Connection, partner_id: int | None, name: str, body: str) -> asyncpg.Record:
    row = await conn.fetchrow("INSERT INTO ticket_canned_replies (partner_id, name, body) VALUES ($1, $2, $3) "
                              "RETURNING *", partner_id, name, body)
    assert row is not None
    return row


async def update(conn: Connection, reply_id: int, name: str, body: str) -> asyncpg.Record:
    row = await conn.fetchrow("UPDATE ticket_canned_replies SET name = $2, body = $3, updated_at = now() "
                              "WHERE id = $1 RETURNING *", reply_id, name, body)
    assert row is not None
    return row


async def delete(conn: Connection, reply_id: int) -> None:
    await conn.execute("DELETE FROM ticket_canned_replies WHERE id = $1", reply_id)


async def rules_using(conn: Connection, reply_id: int) -> list[str]:
    """The names of the rules whose action sends this reply."""
    return [r["name"] for r in await conn.fetch(
        "SELECT name FROM ticket_rules WHERE (action->>'canned_reply_id')::bigint = $1 ORDER BY id", reply_id)]


async def partners(conn: Connection, partner: int | None) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT id, name FROM partners WHERE $1::bigint IS NULL OR id = $1 "
                                 "ORDER BY name, id", partner))
