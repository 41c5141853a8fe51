"""The SQL of the rules' pages (rules.py): the rules, one rule, and what the form offers (the
statuses, every group, every canned reply). The rules are the operator's: no partner scope."""

from __future__ import annotations

from typing import Any

import asyncpg

from admin.auth.store import Connection


async def rules(conn: Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT id, name, enabled, condition, action, updated_at FROM ticket_rules "
                                 "ORDER BY lower(name), id"))


async def rule(conn: Connection, rule_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM ticket_rules WHERE id = $1" + (" FOR UPDATE" if lock else ""), rule_id)


async def create(conn: Connection, name: str, enabled: bool, condition: dict[str, Any],
                 action: dict[str, Any]) -> asyncpg.Record:
    row = await conn.fetchrow("INSERT INTO ticket_rules (name, enabled, condition, action) VALUES ($1, $2, $3, $4) "
                              "RETURNING *", name, enabled, condition, action)
    assert row is not None
    return row


async def update(conn: Connection, rule_id: int, name: str, enabled: bool, condition: dict[str, Any],
                 action: dict[str, Any]) -> asyncpg.Record:
    row = await conn.fetchrow("UPDATE ticket_rules SET name = $2, enabled = $3, condition = $4, action = $5, "
                              "updated_at = now() WHERE id = $1 RETURNING *", rule_id, name, enabled, condition, action)
    assert row is not None
    return row


async def set_enabled(conn: Connection, rule_id: int, enabled: bool) -> asyncpg.Record | None:
    return await conn.fetchrow("UPDATE ticket_rules SET enabled = $2, updated_at = now() WHERE id = $1 RETURNING *",
                               rule_id, enabled)


async def delete(conn: Connection, rule_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow("DELETE FROM ticket_rules WHERE id = $1 RETURNING *", rule_id)


async def statuses(conn: Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT code, title, closed FROM ticket_statuses ORDER BY position, code"))


async def groups(conn: Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT g.id, g.name, p.name AS partner_name FROM ticket_groups g LEFT JOIN partners p ON p.id = g.partner_id "
        "ORDER BY lower(g.name), g.id"))


async def canned_replies(conn: Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT r.id, r.name, p.name AS partner_name FROM ticket_canned_replies r "
        "LEFT JOIN partners p ON p.id = r.partner_id ORDER BY lower(r.name), r.id"))
