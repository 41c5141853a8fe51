"""The SQL of tariffs. Tariffs belong to no partner: every administrator with the permission sees
them all (a partner's administrator included)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.queries import keyset

SORTS = {"name": "t.name", "price": "t.price", "download": "t.download_kbps"}

COLUMNS = ("t.id, t.name, t.download_kbps, t.upload_kbps, t.burst_download_kbps, t.burst_upload_kbps, "
           "t.burst_threshold_download_kbps, t.burst_threshold_upload_kbps, t.burst_time_s, t.priority, "
           "t.limit_at_download_kbps, t.limit_at_upload_kbps, t.contention, t.price, t.currency, "
           "t.session_timeout_s, t.custom, t.created_at, t.updated_at, "
           "(SELECT count(*) FROM services s WHERE s.tariff_id = t.id) AS services, "
           "t.tax_group_id, (SELECT g.name FROM tax_groups g WHERE g.id = t.tax_group_id) AS tax_group, "
           "t.price_includes_tax, t.portal_change, t.portal_stop, "
           "ARRAY(SELECT x.target_id FROM tariff_portal_targets x WHERE x.tariff_id = t.id ORDER BY x.target_id) "
           "AS portal_targets")


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def list_tariffs(conn: Connection, *, q: str | None, sort: str, direction: str, after: Sequence[Any] | None,
                       limit: int) -> list[asyncpg.Record]:
    """A page of tariffs (``limit`` rows: ask one more to know of a next page), each with the
    number of services on it and its sort value (``sort_value``, for the cursor)."""
    sort_sql = SORTS[sort]
    condition, order, params = keyset(sort_sql, direction, after, 3, "t.id")
    return await conn.fetch(
        f"SELECT {COLUMNS}, {sort_sql} AS sort_value FROM tariffs t "
        f"WHERE ($1::text IS NULL OR t.name ILIKE $1) AND {condition} {order} LIMIT $2",
        _like(q) if q else None, limit, *params)


async def tariff(conn: Connection, tariff_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {COLUMNS} FROM tariffs t WHERE t.id = $1" + (" FOR UPDATE" if lock else ""),
                               tariff_id)


async def create(conn: Connection, values: dict[str, Any]) -> asyncpg.Record:
    columns = list(values)
    row = await conn.fetchrow(
        f"WITH t AS (INSERT INTO tariffs ({', '.join(columns)}) "
        f"VALUES ({', '.join(f'${i}' for i in range(1, len(columns) + 1))}) RETURNING *) SELECT {COLUMNS} FROM t",
        *values.values())
    assert row is not None
    return row


async def update(conn: Connection, tariff_id: int, values: dict[str, Any]) -> asyncpg.Record:
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(values, start=2))
    row = await conn.fetchrow(
        f"WITH t AS (UPDATE tariffs SET {sets} WHERE id = $1 RETURNING *) SELECT {COLUMNS} FROM t",
        tariff_id, *values.values())
    assert row is not None
    return row


async def delete(conn: Connection, tariff_id: int) -> bool:
    return bool(await conn.execute("DELETE FROM tariffs WHERE id = $1", tariff_id) == "DELETE 1")


async def tax_groups(conn: Connection) -> list[asyncpg.Record]:
    """The tax groups a tariff may name (Finance -> Settings -> Taxes), by name."""
    return await conn.fetch("SELECT id, name FROM tax_groups ORDER BY name, id")


async def services_using(conn: Connection, tariff_id: int, limit: int = 5) -> tuple[int, list[str]]:
    """How many services are on the tariff, and the logins of the first few."""
    row = await conn.fetchrow(
        "SELECT count(*) AS n, (SELECT array_agg(login ORDER BY login) FROM (SELECT login FROM services "
        "WHERE tariff_id = $1 ORDER BY login LIMIT $2) f) AS logins FROM services WHERE tariff_id = $1",
        tariff_id, limit)
    assert row is not None
    return int(row["n"]), list(row["logins"] or [])


async def all_names(conn: Connection) -> list[asyncpg.Record]:
    """Every tariff's id and name, by name: the portal targets a tariff's form offers."""
    return await conn.fetch("SELECT id, name FROM tariffs ORDER BY name, id")


async def set_targets(conn: Connection, tariff_id: int, targets: Sequence[int]) -> None:
    """The tariffs the plan's customers may move to in the portal (tariff_portal_targets), replaced."""
    await conn.execute("DELETE FROM tariff_portal_targets WHERE tariff_id = $1 AND NOT target_id = ANY($2::bigint[])",
                       tariff_id, list(targets))
    await conn.execute("INSERT INTO tariff_portal_targets (tariff_id, target_id) SELECT $1, unnest($2::bigint[]) "
                       "ON CONFLICT DO NOTHING", tariff_id, list(targets))
