"""The SQL of the groups' pages (groups.py): the groups a principal sees, one group, its members
and shifts, the administrators its form offers. ``partner``: the principal's partner (None: an
administrator of every partner, who sees them all); a partner's administrator sees its own
partner's groups and those of every partner (``partner_id`` NULL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import asyncpg

from admin.auth.store import Connection

_SCOPE = "($2::bigint IS NULL OR g.partner_id IS NULL OR g.partner_id = $2)"


async def groups(conn: Connection, partner: int | None) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT g.id, g.partner_id, p.name AS partner_name, g.name, g.assign_mode, "
        "(SELECT count(*) FROM ticket_group_members m WHERE m.group_id = g.id) AS members, "
        "(SELECT count(*) FROM ticket_shifts s WHERE s.group_id = g.id) AS shifts "
        "FROM ticket_groups g LEFT JOIN partners p ON p.id = g.partner_id "
        "WHERE $1::bigint IS NULL OR g.partner_id IS NULL OR g.partner_id = $1 ORDER BY lower(g.name), g.id", partner))


async def group(conn: Connection, group_id: int, partner: int | None, *, lock: bool = False) -> asyncpg.Record | None:
    """The group when ``partner`` sees it."""
    return await conn.fetchrow(
        "SELECT g.*, p.name AS partner_name FROM ticket_groups g LEFT JOIN partners p ON p.id = g.partner_id "
        f"WHERE g.id = $1 AND {_SCOPE}" + (" FOR UPDATE OF g" if lock else ""), group_id, partner)


async def described(conn: Connection, partner: int | None, group_id: int | None = None) -> list[asyncpg.Record]:
    """The groups ``partner`` sees (or only ``group_id``), each with its members' ids and its
    shifts (JSON), in one statement: the API's groups."""
    return list(await conn.fetch(
        "SELECT g.id, g.partner_id, p.name AS partner_name, g.name, g.assign_mode, "
        "coalesce((SELECT array_agg(m.administrator_id ORDER BY m.administrator_id) FROM ticket_group_members m "
        "WHERE m.group_id = g.id), '{}') AS members, "
        "coalesce((SELECT jsonb_agg(jsonb_build_object('id', s.id, 'administrator_id', s.administrator_id, "
        "'weekdays', s.weekdays, 'starts', s.starts, 'ends', s.ends) ORDER BY s.id) FROM ticket_shifts s "
        "WHERE s.group_id = g.id), '[]') AS shifts "
        "FROM ticket_groups g LEFT JOIN partners p ON p.id = g.partner_id "
        "WHERE ($1::bigint IS NULL OR g.partner_id IS NULL OR g.partner_id = $1) AND ($2::bigint IS NULL OR g.id = $2) "
        "ORDER BY lower(g.name), g.id", partner, group_id))


async def create(conn: Connection, partner_id: int | None, name: str, assign_mode: str) -> asyncpg.Record:
    row = await conn.fetchrow("INSERT INTO ticket_groups (partner_id, name, assign_mode) VALUES ($1, $2, $3) "
                              "RETURNING *", partner_id, name, assign_mode)
    assert row is not None
    return row


async def update(conn: Connection, group_id: int, name: str, assign_mode: str) -> asyncpg.Record:
    row = await conn.fetchrow("UPDATE ticket_groups SET name = $2, assign_mode = $3 WHERE id = $1 RETURNING *",
                              group_id, name, assign_mode)
    assert row is not None
    return row


async def members(conn: Connection, group_id: int) -> list[int]:
    return [int(r["administrator_id"]) for r in await conn.fetch(
        "SELECT administrator_id FROM ticket_group_members WHERE group_id = $1 ORDER BY administrator_id", group_id)]


async def set_members(conn: Connection, group_id: int, administrators: Sequence[int]) -> None:
    """The group's members are ``administrators``; the shifts of those who left go with them."""
    await conn.execute("DELETE FROM ticket_group_members WHERE group_id = $1 AND NOT administrator_id = ANY($2)",
                       group_id, list(administrators))
    await conn.execute("DELETE FROM ticket_shifts WHERE group_id = $1 AND NOT administrator_id = ANY($2)",
                       group_id, list(administrators))
    await conn.execute("INSERT INTO ticket_group_members (group_id, administrator_id) SELECT $1, unnest($2::bigint[]) "
                       "ON CONFLICT DO NOTHING", group_id, list(administrators))


async def administrators(conn: Connection, partner_id: int | None) -> list[asyncpg.Record]:
    """The enabled administrators a group of ``partner_id`` may have: that partner's and those of
    every partner (None: a group of every partner: those of every partner only)."""
    return list(await conn.fetch(
        "SELECT id, login, name FROM administrators WHERE enabled AND (partner_id IS NULL OR partner_id = $1) "
        "ORDER BY lower(coalesce(nullif(name, ''), login)), id", partner_id))


async def shifts(conn: Connection, group_id: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT s.id, s.administrator_id, coalesce(nullif(a.name, ''), a.login) AS member, s.weekdays, s.starts, "
        "s.ends FROM ticket_shifts s JOIN administrators a ON a.id = s.administrator_id WHERE s.group_id = $1 "
        "ORDER BY lower(coalesce(nullif(a.name, ''), a.login)), s.starts, s.id", group_id))


async def add_shift(conn: Connection, group_id: int, administrator_id: int, weekdays: Sequence[int],
                    starts: dt.time, ends: dt.time) -> asyncpg.Record:
    row = await conn.fetchrow("INSERT INTO ticket_shifts (group_id, administrator_id, weekdays, starts, ends) "
                              "VALUES ($1, $2, $3, $4, $5) RETURNING *", group_id, administrator_id, list(weekdays),
                              starts, ends)
    assert row is not None
    return row


async def delete_shift(conn: Connection, group_id: int, shift_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow("DELETE FROM ticket_shifts WHERE id = $1 AND group_id = $2 RETURNING *",
                               shift_id, group_id)


async def partners(conn: Connection, partner: int | None) -> list[asyncpg.Record]:
    """The partners the principal may make a group for (its own, or all)."""
    return list(await conn.fetch("SELECT id, name FROM partners WHERE $1::bigint IS NULL OR id = $1 "
                                 "ORDER BY name, id", partner))
