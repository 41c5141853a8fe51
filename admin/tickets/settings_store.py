"""The SQL of the helpdesk's settings page (settings_page.py): the one ``ticket_settings`` row."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from admin.auth.store import Connection

COLUMNS = ("tariff_tickets", "cpe_fault_tickets", "payment_failure_tickets", "router_drift_minutes", "group_id")


async def settings(conn: Connection, *, lock: bool = False) -> asyncpg.Record:
    await conn.execute("INSERT INTO ticket_settings (id) VALUES (true) ON CONFLICT DO NOTHING")
    row = await conn.fetchrow("SELECT * FROM ticket_settings" + (" FOR UPDATE" if lock else ""))
    assert row is not None
    return row


async def update(conn: Connection, values: Mapping[str, Any]) -> asyncpg.Record:
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(COLUMNS, 1))
    row = await conn.fetchrow(f"UPDATE ticket_settings SET {sets}, updated_at = now() RETURNING *",
                              *(values[c] for c in COLUMNS))
    assert row is not None
    return row


async def groups(conn: Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT g.id, g.name, p.name AS partner_name FROM ticket_groups g LEFT JOIN partners p ON p.id = g.partner_id "
        "ORDER BY lower(g.name), g.id"))
