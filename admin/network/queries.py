"""The SQL of NAS, routers (with provisiond's sync state), IP pools and their leases, and flow
exporters. None of these tables has a partner column: network objects are the operator's, and
every administrator with the ``networking`` permissions sees them all."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.queries import keyset

Record = asyncpg.Record


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _placeholders(values: dict[str, Any], first: int = 1) -> str:
    return ", ".join(f"${i}" for i in range(first, first + len(values)))


def _sets(values: dict[str, Any]) -> str:
    return ", ".join(f"{c} = ${i}" for i, c in enumerate(values, start=2))


async def _one(conn: Connection, sql: str, *args: Any) -> Record:
    row = await conn.fetchrow(sql, *args)
    assert row is not None
    return row


async def _deleted(conn: Connection, table: str, object_id: int) -> bool:
    return bool(await conn.execute(f"DELETE FROM {table} WHERE id = $1", object_id) == "DELETE 1")


async def router_choices(conn: Connection) -> list[Record]:
    """Every router (id, name), for the router of a NAS or an exporter."""
    return list(await conn.fetch("SELECT id, name FROM routers ORDER BY name"))


# -- NAS ------------------------------------------------------------------------------------------

NAS_SORTS = {"name": "n.name", "address": "n.address"}
_NAS = ("n.id, n.name, n.address, '••••••' || CASE WHEN length(n.secret) >= 8 THEN right(n.secret, 2) ELSE '' END "
        "AS secret_hint, n.type, n.coa_port, n.require_message_authenticator, n.limit_proxy_state, n.router_id, "
        "r.name AS router, n.created_at, n.updated_at")


async def list_nas(conn: Connection, *, q: str | None, type_: str | None, sort: str, direction: str,
                   after: Sequence[Any] | None, limit: int) -> list[Record]:
    condition, order, params = keyset(NAS_SORTS[sort], direction, after, 4, "n.id")
    return list(await conn.fetch(
        f"SELECT {_NAS}, {NAS_SORTS[sort]} AS sort_value FROM nas n LEFT JOIN routers r ON r.id = n.router_id "
        f"WHERE ($1::text IS NULL OR n.name ILIKE $1) AND ($2::text IS NULL OR n.type = $2) AND {condition} "
        f"{order} LIMIT $3", _like(q) if q else None, type_, limit, *params))


async def nas(conn: Connection, nas_id: int, *, lock: bool = False) -> Record | None:
    return await conn.fetchrow(f"SELECT {_NAS} FROM nas n LEFT JOIN routers r ON r.id = n.router_id WHERE n.id = $1"
                               + (" FOR UPDATE OF n" if lock else ""), nas_id)


async def create_nas(conn: Connection, values: dict[str, Any]) -> Record:
    return await _one(conn, f"WITH n AS (INSERT INTO nas ({', '.join(values)}) VALUES ({_placeholders(values)}) "
                            f"RETURNING *) SELECT {_NAS} FROM n LEFT JOIN routers r ON r.id = n.router_id",
                      *values.values())


async def update_nas(conn: Connection, nas_id: int, values: dict[str, Any]) -> Record:
    return await _one(conn, f"WITH n AS (UPDATE nas SET {_sets(values)} WHERE id = $1 RETURNING *) "
                            f"SELECT {_NAS} FROM n LEFT JOIN routers r ON r.id = n.router_id", nas_id,
                      *values.values())


async def delete_nas(conn: Connection, nas_id: int) -> bool:
    return await _deleted(conn, "nas", nas_id)


async def nas_overlapping(conn: Connection, address: str, nas_id: int | None) -> list[Record]:
    """The NAS whose address overlaps ``address`` (but ``nas_id``)."""
    return list(await conn.fetch("SELECT name, address FROM nas WHERE address && $1::cidr AND id IS DISTINCT FROM $2 "
                                 "ORDER BY address LIMIT 3", address, nas_id))


# -- routers --------------------------------------------------------------------------------------

ROUTER_SORTS = {"name": "r.name", "host": "r.host"}
OUT_OF_SYNC = ("r.enabled AND (y.router_id IS NULL OR NOT y.reachable OR y.last_error IS NOT NULL "
               "OR y.last_success_at IS NULL)")
"""A router provisiond should have in step and has not: never synced, unreachable, or its last run
failed (the dashboard counts the same). Drift a run found and repaired is not out
of sync: ``drift`` says what the last run had to change."""
_ROUTER = ("r.id, r.name, r.host, r.api_port, r.api_tls, r.api_tls_verify, r.username, r.enabled, r.auth_mode, "
           "r.custom, r.created_at, r.updated_at, y.router_id IS NOT NULL AS synced, y.generation, y.reachable, "
           "y.last_attempt_at, y.last_success_at, y.last_error, y.adds, y.sets, y.removes, y.drift, y.duration_ms, "
           f"NOT ({OUT_OF_SYNC}) AND r.enabled AS in_sync, "
           "(SELECT count(*) FROM services s WHERE s.router_id = r.id) AS services")


async def list_routers(conn: Connection, *, q: str | None, out_of_sync: bool, sort: str, direction: str,
                       after: Sequence[Any] | None, limit: int) -> list[Record]:
    condition, order, params = keyset(ROUTER_SORTS[sort], direction, after, 4, "r.id")
    return list(await conn.fetch(
        f"SELECT {_ROUTER}, {ROUTER_SORTS[sort]} AS sort_value FROM routers r "
        "LEFT JOIN router_sync y ON y.router_id = r.id "
        f"WHERE ($1::text IS NULL OR r.name ILIKE $1 OR r.host ILIKE $1) AND (NOT $2::boolean OR {OUT_OF_SYNC}) "
        f"AND {condition} {order} LIMIT $3", _like(q) if q else None, out_of_sync, limit, *params))


async def router(conn: Connection, router_id: int, *, lock: bool = False) -> Record | None:
    """A router with its sync state and the last run's report (never its password)."""
    return await conn.fetchrow(
        f"SELECT {_ROUTER}, y.report FROM routers r LEFT JOIN router_sync y ON y.router_id = r.id WHERE r.id = $1"
        + (" FOR UPDATE OF r" if lock else ""), router_id)


async def create_router(conn: Connection, values: dict[str, Any]) -> Record:
    return await _one(conn, f"WITH r AS (INSERT INTO routers ({', '.join(values)}) VALUES ({_placeholders(values)}) "
                            f"RETURNING *) SELECT {_ROUTER}, y.report FROM r "
                            "LEFT JOIN router_sync y ON y.router_id = r.id", *values.values())


async def update_router(conn: Connection, router_id: int, values: dict[str, Any]) -> Record:
    return await _one(conn, f"WITH r AS (UPDATE routers SET {_sets(values)} WHERE id = $1 RETURNING *) "
                            f"SELECT {_ROUTER}, y.report FROM r LEFT JOIN router_sync y ON y.router_id = r.id",
                      router_id, *values.values())


async def touch_router(conn: Connection, router_id: int) -> datetime | None:
    """Touch the router's row: its UPDATE trigger NOTIFYs lastmile_routers, and provisiond
    reconciles that router (schema.sql lastmile_watch; daemons/provisiond/__main__.py)."""
    at: datetime | None = await conn.fetchval("UPDATE routers SET updated_at = now() WHERE id = $1 "
                                              "RETURNING updated_at", router_id)
    return at


async def delete_router(conn: Connection, router_id: int) -> bool:
    return await _deleted(conn, "routers", router_id)


async def router_users(conn: Connection, router_id: int, limit: int = 5) -> Record:
    """What refers to a router: its NAS and flow exporters (names), its services (count and the
    first few logins)."""
    return await _one(conn, """
        SELECT ARRAY(SELECT name FROM nas WHERE router_id = $1 ORDER BY name) AS nas,
               ARRAY(SELECT name FROM flow_exporters WHERE router_id = $1 ORDER BY name) AS exporters,
               (SELECT count(*) FROM services WHERE router_id = $1) AS services,
               ARRAY(SELECT login FROM services WHERE router_id = $1 ORDER BY login LIMIT $2) AS logins""",
                      router_id, limit)


# -- IP pools and leases --------------------------------------------------------------------------

POOL_SORTS = {"name": "p.name", "network": "p.network"}
_POOL = ("p.id, p.name, p.network, p.managed_by, p.created_at, p.updated_at, "
         "CASE WHEN p.managed_by = 'lastmile' THEN c.size END AS size, "
         "CASE WHEN p.managed_by = 'lastmile' THEN c.free END AS free, "
         "CASE WHEN p.managed_by = 'lastmile' THEN c.bound END AS bound, "
         "CASE WHEN p.managed_by = 'lastmile' THEN c.held END AS held, "
         "(SELECT count(*) FROM services s WHERE s.pool_id = p.id) AS services")
_LEASE_COUNTS = ("LEFT JOIN LATERAL (SELECT count(*) AS size, count(*) FILTER (WHERE l.state = 'free') AS free, "
                 "count(*) FILTER (WHERE l.state = 'bound') AS bound, "
                 "count(*) FILTER (WHERE l.state IN ('reserved', 'stock')) AS held "
                 "FROM ip_leases l WHERE l.address <<= p.network AND l.pool_id = p.id) c ON true")
"""A pool's leases by state, read through the leases' primary key (the addresses of the pool's prefix)."""


async def list_pools(conn: Connection, *, q: str | None, sort: str, direction: str, after: Sequence[Any] | None,
                     limit: int) -> list[Record]:
    condition, order, params = keyset(POOL_SORTS[sort], direction, after, 3, "p.id")
    return list(await conn.fetch(
        f"SELECT {_POOL}, {POOL_SORTS[sort]} AS sort_value FROM (SELECT * FROM ip_pools p "
        f"WHERE ($1::text IS NULL OR p.name ILIKE $1) AND {condition} {order} LIMIT $2) p {_LEASE_COUNTS} {order}",
        _like(q) if q else None, limit, *params))


async def pool(conn: Connection, pool_id: int, *, lock: bool = False) -> Record | None:
    if lock:
        await conn.execute("SELECT 1 FROM ip_pools WHERE id = $1 FOR UPDATE", pool_id)
    return await conn.fetchrow(f"SELECT {_POOL} FROM ip_pools p {_LEASE_COUNTS} WHERE p.id = $1", pool_id)


async def create_pool(conn: Connection, values: dict[str, Any]) -> int:
    """A new pool (a lastmile pool gets its leases from the ip_pools_fill trigger)."""
    return int(await conn.fetchval(f"INSERT INTO ip_pools ({', '.join(values)}) VALUES ({_placeholders(values)}) "
                                   "RETURNING id", *values.values()))


async def rename_pool(conn: Connection, pool_id: int, name: str) -> None:
    await conn.execute("UPDATE ip_pools SET name = $2 WHERE id = $1", pool_id, name)


async def delete_pool(conn: Connection, pool_id: int) -> bool:
    return await _deleted(conn, "ip_pools", pool_id)


async def pool_users(conn: Connection, pool_id: int, limit: int = 5) -> Record:
    """The services that take their address from the pool (count, first logins), and its live leases."""
    return await _one(conn, """
        SELECT (SELECT count(*) FROM services WHERE pool_id = $1) AS services,
               ARRAY(SELECT login FROM services WHERE pool_id = $1 ORDER BY login LIMIT $2) AS logins,
               (SELECT count(*) FROM ip_leases WHERE pool_id = $1 AND state IN ('reserved', 'bound')) AS live""",
                      pool_id, limit)


async def pool_overlapping(conn: Connection, network: str, pool_id: int | None) -> list[Record]:
    return list(await conn.fetch("SELECT name, network FROM ip_pools WHERE network && $1::cidr "
                                 "AND id IS DISTINCT FROM $2 ORDER BY network LIMIT 3", network, pool_id))


async def leases(conn: Connection, pool_id: int, network: str, *, state: str | None, direction: str,
                 after: str | None, limit: int) -> list[Record]:
    """A page of a pool's leases in address order (the cursor is the last address), with the
    login of the service each names (a free lease keeps the service it had last)."""
    op, order = (">", "ASC") if direction == "asc" else ("<", "DESC")
    return list(await conn.fetch(
        "SELECT l.address, l.state, l.service_id, s.login, l.acct_unique_id, l.holder, l.expires_at, l.updated_at "
        "FROM ip_leases l LEFT JOIN services s ON s.id = l.service_id "
        f"WHERE l.address <<= $2::cidr AND l.pool_id = $1 AND ($3::text IS NULL OR l.state = $3) "
        f"AND ($4::inet IS NULL OR l.address {op} $4::inet) ORDER BY l.address {order} LIMIT $5",
        pool_id, network, state, after, limit))


# -- flow exporters -------------------------------------------------------------------------------

EXPORTER_SORTS = {"name": "e.name", "address": "e.address"}
_EXPORTER = ("e.id, e.name, e.address, e.sampling_rate, e.router_id, r.name AS router, e.enabled, e.created_at, "
             "e.updated_at")


async def list_exporters(conn: Connection, *, q: str | None, sort: str, direction: str,
                         after: Sequence[Any] | None, limit: int) -> list[Record]:
    condition, order, params = keyset(EXPORTER_SORTS[sort], direction, after, 3, "e.id")
    return list(await conn.fetch(
        f"SELECT {_EXPORTER}, {EXPORTER_SORTS[sort]} AS sort_value FROM flow_exporters e "
        f"LEFT JOIN routers r ON r.id = e.router_id WHERE ($1::text IS NULL OR e.name ILIKE $1) AND {condition} "
        f"{order} LIMIT $2", _like(q) if q else None, limit, *params))


async def exporter(conn: Connection, exporter_id: int, *, lock: bool = False) -> Record | None:
    return await conn.fetchrow(f"SELECT {_EXPORTER} FROM flow_exporters e LEFT JOIN routers r ON r.id = e.router_id "
                               "WHERE e.id = $1" + (" FOR UPDATE OF e" if lock else ""), exporter_id)


async def create_exporter(conn: Connection, values: dict[str, Any]) -> Record:
    return await _one(conn, f"WITH e AS (INSERT INTO flow_exporters ({', '.join(values)}) "
                            f"VALUES ({_placeholders(values)}) RETURNING *) "
                            f"SELECT {_EXPORTER} FROM e LEFT JOIN routers r ON r.id = e.router_id", *values.values())


async def update_exporter(conn: Connection, exporter_id: int, values: dict[str, Any]) -> Record:
    return await _one(conn, f"WITH e AS (UPDATE flow_exporters SET {_sets(values)} WHERE id = $1 RETURNING *) "
                            f"SELECT {_EXPORTER} FROM e LEFT JOIN routers r ON r.id = e.router_id", exporter_id,
                      *values.values())


async def delete_exporter(conn: Connection, exporter_id: int) -> bool:
    return await _deleted(conn, "flow_exporters", exporter_id)
