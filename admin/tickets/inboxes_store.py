"""The SQL of the inboxes' pages (inboxes.py): a partner's inboxes, one inbox, its deny-list
lines, the groups and partners its form offers. ``partner``: the principal's partner (None: an
administrator of every partner, who sees them all)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from admin.auth.store import Connection

COLUMNS = ("name", "enabled", "address", "host", "port", "security", "username", "password", "folder", "read_mode",
           "since", "mark_read", "accept_unknown", "group_id", "priority", "type")
"""What the form sets (partner_id on creation only)."""
_SCOPE = "($2::bigint IS NULL OR i.partner_id = $2)"


async def inboxes(conn: Connection, partner: int | None) -> list[asyncpg.Record]:
    """The inboxes ``partner`` sees, by name: every column but the password."""
    return list(await conn.fetch(
        "SELECT i.id, i.partner_id, p.name AS partner_name, i.name, i.enabled, i.address, i.host, i.port, i.security, "
        "i.username, i.folder, i.read_mode, i.since, i.mark_read, i.accept_unknown, i.group_id, i.priority, i.type, "
        "i.last_checked_at, i.last_error, g.name AS group_name FROM ticket_inboxes i "
        "JOIN partners p ON p.id = i.partner_id LEFT JOIN ticket_groups g ON g.id = i.group_id "
        "WHERE $1::bigint IS NULL OR i.partner_id = $1 ORDER BY lower(i.name), i.id", partner))


async def inbox(conn: Connection, inbox_id: int, partner: int | None, *, lock: bool = False) -> asyncpg.Record | None:
    """The inbox when ``partner`` sees it."""
    return await conn.fetchrow(
        "SELECT i.*, p.name AS partner_name FROM ticket_inboxes i JOIN partners p ON p.id = i.partner_id "
        f"WHERE i.id = $1 AND {_SCOPE}" + (" FOR UPDATE OF i" if lock else ""), inbox_id, partner)


async def create(conn: Connection, partner_id: int, values: Mapping[str, Any]) -> asyncpg.Record:
    names = ", ".join(COLUMNS)
    marks = ", ".join(f"${i}" for i in range(2, len(COLUMNS) + 2))
    row = await conn.fetchrow(f"INSERT INTO ticket_inboxes (partner_id, {names}) VALUES ($1, {marks}) RETURNING *",
                              partner_id, *(values[c] for c in COLUMNS))
    assert row is not None
    return row


async def update(conn: Connection, inbox_id: int, values: Mapping[str, Any]) -> asyncpg.Record:
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(COLUMNS, 2))
    row = await conn.fetchrow(f"UPDATE ticket_inboxes SET {sets}, updated_at = now() WHERE id = $1 RETURNING *",
                              inbox_id, *(values[c] for c in COLUMNS))
    assert row is not None
    return row


async def groups(conn: Connection, partner_id: int | None) -> list[asyncpg.Record]:
    """The groups an inbox of ``partner_id`` may give its tickets to: its own and every partner's
    (None, no partner picked yet: every partner's only)."""
    return list(await conn.fetch(
        "SELECT id, name FROM ticket_groups WHERE partner_id IS NULL OR partner_id = $1 ORDER BY lower(name), id",
        partner_id))


async def group_ok(conn: Connection, partner_id: int, group_id: int) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM ticket_groups WHERE id = $1 AND (partner_id IS NULL OR partner_id = $2))",
        group_id, partner_id))


async def partners(conn: Connection, partner: int | None) -> list[asyncpg.Record]:
    """The partners the principal may make an inbox for (its own, or all)."""
    return list(await conn.fetch("SELECT id, name FROM partners WHERE $1::bigint IS NULL OR id = $1 "
                                 "ORDER BY name, id", partner))


async def deny_rules(conn: Connection, inbox_id: int) -> list[asyncpg.Record]:
    """The inbox's own deny-list lines (not those of every inbox)."""
    return list(await conn.fetch("SELECT id, field, match, pattern, created_at FROM ticket_denylist "
                                 "WHERE inbox_id = $1 ORDER BY id", inbox_id))


async def add_deny_rule(conn: Connection, inbox_id: int, field: str, match: str, pattern: str) -> asyncpg.Record:
    row = await conn.fetchrow("INSERT INTO ticket_denylist (inbox_id, field, match, pattern) VALUES ($1, $2, $3, $4) "
                              "RETURNING id, field, match, pattern", inbox_id, field, match, pattern)
    assert row is not None
    return row


async def delete_deny_rule(conn: Connection, inbox_id: int, rule_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow("DELETE FROM ticket_denylist WHERE id = $1 AND inbox_id = $2 "
                               "RETURNING id, field, match, pattern", rule_id, inbox_id)
