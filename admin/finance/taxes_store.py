"""The SQL of the taxes editor: tax rates, tax groups and the rates each group takes (schema.sql
section 8), with what uses them. Rates and groups belong to no partner. Billing reads them
through admin/billing/store.py (tax_groups); an issued line keeps its taxes in its own JSON, so a
change here reaches only documents issued after it."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import asyncpg

from admin.auth.store import Connection

#: How many users of a rate or a group a refusal names (the rest are counted).
NAMED = 5

RATE_COLUMNS = (
    "r.id, r.name, r.percent, r.created_at, "
    "coalesce((SELECT array_agg(g.name ORDER BY g.name) FROM tax_group_rates gr "
    "JOIN tax_groups g ON g.id = gr.group_id WHERE gr.rate_id = r.id), '{}') AS groups")
GROUP_COLUMNS = (
    "g.id, g.name, g.created_at, "
    "coalesce((SELECT array_agg(r.id ORDER BY r.name, r.id) FROM tax_group_rates gr "
    "JOIN tax_rates r ON r.id = gr.rate_id WHERE gr.group_id = g.id), '{}') AS rate_ids, "
    "(SELECT count(*) FROM tariffs t WHERE t.tax_group_id = g.id) AS tariffs")


async def rates(conn: Connection) -> list[asyncpg.Record]:
    """Every rate by name, with the names of the groups that take it."""
    return await conn.fetch(f"SELECT {RATE_COLUMNS} FROM tax_rates r ORDER BY r.name, r.id")


async def rate(conn: Connection, rate_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {RATE_COLUMNS} FROM tax_rates r WHERE r.id = $1"
                               + (" FOR UPDATE OF r" if lock else ""), rate_id)


async def create_rate(conn: Connection, name: str, percent: Decimal) -> asyncpg.Record:
    row = await conn.fetchrow(f"WITH r AS (INSERT INTO tax_rates (name, percent) VALUES ($1, $2) RETURNING *) "
                              f"SELECT {RATE_COLUMNS} FROM r", name, percent)
    assert row is not None
    return row


async def update_rate(conn: Connection, rate_id: int, name: str, percent: Decimal) -> asyncpg.Record:
    row = await conn.fetchrow(f"WITH r AS (UPDATE tax_rates SET name = $2, percent = $3 WHERE id = $1 RETURNING *) "
                              f"SELECT {RATE_COLUMNS} FROM r", rate_id, name, percent)
    assert row is not None
    return row


async def delete_rate(conn: Connection, rate_id: int) -> bool:
    return bool(await conn.execute("DELETE FROM tax_rates WHERE id = $1", rate_id) == "DELETE 1")


async def groups(conn: Connection) -> list[asyncpg.Record]:
    """Every group by name, with the ids of its rates and how many tariffs are on it."""
    return await conn.fetch(f"SELECT {GROUP_COLUMNS} FROM tax_groups g ORDER BY g.name, g.id")


async def group(conn: Connection, group_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {GROUP_COLUMNS} FROM tax_groups g WHERE g.id = $1"
                               + (" FOR UPDATE OF g" if lock else ""), group_id)


async def create_group(conn: Connection, name: str) -> int:
    group_id = await conn.fetchval("INSERT INTO tax_groups (name) VALUES ($1) RETURNING id", name)
    return int(group_id)


async def rename_group(conn: Connection, group_id: int, name: str) -> None:
    await conn.execute("UPDATE tax_groups SET name = $2 WHERE id = $1", group_id, name)


async def set_group_rates(conn: Connection, group_id: int, rate_ids: Sequence[int]) -> None:
    """The group takes exactly ``rate_ids`` (an unknown id: tax_group_rates_rate_fk)."""
    await conn.execute("DELETE FROM tax_group_rates WHERE group_id = $1 AND rate_id <> ALL($2::bigint[])",
                       group_id, list(rate_ids))
    await conn.execute("INSERT INTO tax_group_rates (group_id, rate_id) SELECT $1, unnest($2::bigint[]) "
                       "ON CONFLICT DO NOTHING", group_id, list(rate_ids))


async def delete_group(conn: Connection, group_id: int) -> bool:
    return bool(await conn.execute("DELETE FROM tax_groups WHERE id = $1", group_id) == "DELETE 1")


async def group_users(conn: Connection, group_id: int) -> tuple[int, list[str], int]:
    """What keeps a group: (how many tariffs, the first names of them, how many items waiting for
    the next invoice)."""
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM tariffs WHERE tax_group_id = $1) AS n, "
        "(SELECT array_agg(name ORDER BY name) FROM (SELECT name FROM tariffs WHERE tax_group_id = $1 "
        "ORDER BY name LIMIT $2) f) AS names, "
        "(SELECT count(*) FROM next_invoice_items WHERE tax_group_id = $1) AS items", group_id, NAMED)
    assert row is not None
    return int(row["n"]), list(row["names"] or []), int(row["items"])


async def rate_ids(conn: Connection) -> set[int]:
    return {r["id"] for r in await conn.fetch("SELECT id FROM tax_rates")}
