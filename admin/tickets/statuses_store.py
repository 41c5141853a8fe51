"""The SQL of the ticket statuses' page and API (statuses.py): the statuses with how many tickets
are in each, one status, and the rules that name one (a rule's condition ``status`` or action
``set_status``: JSON the foreign key does not see)."""

from __future__ import annotations

import asyncpg

from admin.auth.store import Connection

_LIST = ("SELECT s.code, s.title, s.closed, s.builtin, s.position, coalesce(n.tickets, 0) AS tickets "
         "FROM ticket_statuses s LEFT JOIN (SELECT status, count(*) AS tickets FROM tickets GROUP BY status) n "
         "ON n.status = s.code")
MAX_POSITION = 32767


async def statuses(conn: Connection) -> list[asyncpg.Record]:
    """Every status in the lists' order, with how many tickets are in it."""
    return list(await conn.fetch(f"{_LIST} ORDER BY s.position, s.code"))


async def status(conn: Connection, code: str, *, lock: bool = False) -> asyncpg.Record | None:
    """One status (``lock``: to change or delete it; the tickets' count is then read after the lock)."""
    if lock and not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM ticket_statuses WHERE code = $1 FOR UPDATE)",
                                        code):
        return None
    return await conn.fetchrow(f"{_LIST} WHERE s.code = $1", code)


async def title_taken(conn: Connection, title: str, code: str | None) -> bool:
    """Whether another status than ``code`` has this title (ignoring case)."""
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM ticket_statuses WHERE lower(title) = lower($1) AND code IS DISTINCT FROM $2)",
        title, code))


async def create(conn: Connection, code: str, title: str, closed: bool, position: int | None) -> bool:
    """A status of the operator's own (``position`` None: after the last); False when the code is taken."""
    done = await conn.fetchval(
        "INSERT INTO ticket_statuses (code, title, closed, builtin, position) "
        "SELECT $1, $2, $3, false, coalesce($4::smallint, "
        f"(SELECT least(coalesce(max(position), 0) + 10, {MAX_POSITION}) FROM ticket_statuses)) "
        "ON CONFLICT (code) DO NOTHING RETURNING true", code, title, closed, position)
    return bool(done)


async def update(conn: Connection, code: str, title: str, closed: bool, position: int) -> None:
    await conn.execute("UPDATE ticket_statuses SET title = $2, closed = $3, position = $4 WHERE code = $1",
                       code, title, closed, position)


async def delete(conn: Connection, code: str) -> None:
    await conn.execute("DELETE FROM ticket_statuses WHERE code = $1 AND NOT builtin", code)


async def rules_using(conn: Connection, code: str) -> list[str]:
    """The names of the rules whose condition or action names this status."""
    return [r["name"] for r in await conn.fetch(
        "SELECT name FROM ticket_rules WHERE condition->>'status' = $1 OR action->>'set_status' = $1 ORDER BY id",
        code)]
