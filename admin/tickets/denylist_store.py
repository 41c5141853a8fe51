"""The SQL of the shared deny list's page and API (denylist_page.py): the lines every inbox shares
(``inbox_id`` NULL; an inbox's own lines are inboxes_store's), and the inboxes its test offers."""

from __future__ import annotations

import asyncpg

from admin.auth.store import Connection

_COLUMNS = "id, inbox_id, field, match, pattern, created_at"


async def lines(conn: Connection) -> list[asyncpg.Record]:
    """The lines every inbox shares, in the order the intake tries them."""
    return list(await conn.fetch(f"SELECT {_COLUMNS} FROM ticket_denylist WHERE inbox_id IS NULL ORDER BY id"))


async def line(conn: Connection, line_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_COLUMNS} FROM ticket_denylist WHERE id = $1 AND inbox_id IS NULL"
                               + (" FOR UPDATE" if lock else ""), line_id)


async def create(conn: Connection, field: str, match: str, pattern: str) -> asyncpg.Record:
    row = await conn.fetchrow("INSERT INTO ticket_denylist (inbox_id, field, match, pattern) "
                              f"VALUES (NULL, $1, $2, $3) RETURNING {_COLUMNS}", field, match, pattern)
    assert row is not None
    return row


async def update(conn: Connection, line_id: int, field: str, match: str, pattern: str) -> asyncpg.Record:
    row = await conn.fetchrow("UPDATE ticket_denylist SET field = $2, match = $3, pattern = $4 "
                              f"WHERE id = $1 AND inbox_id IS NULL RETURNING {_COLUMNS}", line_id, field, match,
                              pattern)
    assert row is not None
    return row


async def delete(conn: Connection, line_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(f"DELETE FROM ticket_denylist WHERE id = $1 AND inbox_id IS NULL RETURNING {_COLUMNS}",
                               line_id)


async def inboxes(conn: Connection, partner: int | None) -> list[asyncpg.Record]:
    """The inboxes the principal sees (its partner's, or all), for the test's choice."""
    return list(await conn.fetch("SELECT id, name, address FROM ticket_inboxes WHERE $1::bigint IS NULL "
                                 "OR partner_id = $1 ORDER BY lower(name), id", partner))


async def inbox_seen(conn: Connection, inbox_id: int, partner: int | None) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM ticket_inboxes WHERE id = $1 "
                                    "AND ($2::bigint IS NULL OR partner_id = $2))", inbox_id, partner))
