"""provisiond's SQL: routers, the rows their desired state comes from, their sync state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asyncpg import Record

from daemons.db import Connection
from daemons.provisiond.desired import Service, Tariff


@dataclass(frozen=True, slots=True)
class Router:
    id: int
    name: str
    host: str
    api_port: int
    api_tls: bool
    api_tls_verify: bool
    username: str
    password: str  # sealed (daemons/secrets.py)
    auth_mode: str
    enabled: bool


_ROUTER = ("SELECT id, name, host, api_port, api_tls, api_tls_verify, username, password, auth_mode, enabled "
           "FROM routers")


def _router(r: Record) -> Router:
    return Router(**dict(r))


async def routers(conn: Connection, ids: Iterable[int] | None = None) -> list[Router]:
    if ids is None:
        rows = await conn.fetch(_ROUTER + " ORDER BY name")
    else:
        rows = await conn.fetch(_ROUTER + " WHERE id = ANY($1::bigint[]) ORDER BY name", list(ids))
    return [_router(r) for r in rows]


async def router_by_name(conn: Connection, name: str) -> Router | None:
    row = await conn.fetchrow(_ROUTER + " WHERE name = $1", name)
    return _router(row) if row is not None else None


async def clear_passwords(conn: Connection) -> list[tuple[int, str, str]]:
    """Routers whose password is not sealed: (id, name, password)."""
    rows = await conn.fetch("SELECT id, name, password FROM routers WHERE password NOT LIKE 'lm1:%'")
    return [(r["id"], r["name"], r["password"]) for r in rows]


async def set_password(conn: Connection, router_id: int, sealed: str, was: str) -> bool:
    """Replace a clear password by its sealed form, unless it changed meanwhile."""
    status = await conn.execute("UPDATE routers SET password = $2 WHERE id = $1 AND password = $3",
                                router_id, sealed, was)
    return bool(status == "UPDATE 1")


_SERVICES = """
SELECT s.id, s.login, s.password, s.status, c.status AS customer_status, c.name AS customer_name,
       host(s.ipv4) AS ipv4, upper(s.mac::text) AS mac, s.router_id,
       t.download_kbps, t.upload_kbps, t.limit_at_download_kbps, t.limit_at_upload_kbps,
       t.burst_download_kbps, t.burst_upload_kbps, t.burst_threshold_download_kbps,
       t.burst_threshold_upload_kbps, t.burst_time_s, t.priority
FROM services s JOIN customers c ON c.id = s.customer_id JOIN tariffs t ON t.id = s.tariff_id
"""
_TARIFF = ("download_kbps", "upload_kbps", "limit_at_download_kbps", "limit_at_upload_kbps", "burst_download_kbps",
           "burst_upload_kbps", "burst_threshold_download_kbps", "burst_threshold_upload_kbps", "burst_time_s",
           "priority")


def _service(r: Record) -> Service:
    return Service(r["id"], r["login"], r["password"], r["status"], r["customer_status"], r["customer_name"],
                   r["ipv4"], r["mac"], Tariff(**{k: r[k] for k in _TARIFF}))


async def services(conn: Connection, router_id: int, ids: Iterable[int] | None = None) -> list[Service]:
    """Every service of the router (or those of ``ids`` on it), whatever its status (desired.py picks)."""
    if ids is None:
        rows = await conn.fetch(_SERVICES + " WHERE s.router_id = $1 ORDER BY s.id", router_id)
    else:
        rows = await conn.fetch(_SERVICES + " WHERE s.router_id = $1 AND s.id = ANY($2::bigint[]) ORDER BY s.id",
                                router_id, list(ids))
    return [_service(r) for r in rows]


_ROUTERS_OF = {
    "tariffs": "SELECT DISTINCT router_id FROM services WHERE tariff_id = ANY($1::bigint[]) AND router_id IS NOT NULL",
}


async def routers_of(conn: Connection, table: str, ids: Iterable[int]) -> set[int]:
    """The routers whose desired state rows ``ids`` of ``table`` (routers, tariffs) touch; a
    change of services or customers is :func:`services_by_router`'s."""
    if table == "routers":
        return set(ids)
    rows = await conn.fetch(_ROUTERS_OF[table], list(ids))
    return {r["router_id"] for r in rows}


_SERVICES_OF = {
    "services": "SELECT id, router_id FROM services WHERE id = ANY($1::bigint[])",
    "customers": "SELECT id, router_id FROM services WHERE customer_id = ANY($1::bigint[])",
}


async def services_by_router(conn: Connection, table: str, ids: Iterable[int]) -> tuple[dict[int, set[int]], int]:
    """Router id -> the services on it that rows ``ids`` of ``table`` (services, customers) are
    or own; and for services, how many of ``ids`` are gone (deleted: on which router, nobody knows)."""
    wanted = list(ids)
    out: dict[int, set[int]] = {}
    rows = await conn.fetch(_SERVICES_OF[table], wanted)
    for r in rows:
        if r["router_id"] is not None:
            out.setdefault(r["router_id"], set()).add(r["id"])
    return out, (len(set(wanted)) - len(rows) if table == "services" else 0)


async def record_failure(conn: Connection, router_id: int, at: datetime, error: str, reachable: bool) -> None:
    await conn.execute(
        "INSERT INTO router_sync (router_id, reachable, last_attempt_at, last_error) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (router_id) DO UPDATE SET reachable = EXCLUDED.reachable, "
        "last_attempt_at = EXCLUDED.last_attempt_at, last_error = EXCLUDED.last_error",
        router_id, reachable, at, error)


async def record_run(conn: Connection, router_id: int, at: datetime, counts: dict[str, int], duration_ms: int,
                     drift: int, report: dict[str, Any], error: str | None) -> int:
    """Record a full run that reached the router; its generation. ``error``: the router refused
    changes, or the safety valve stopped the run; then the router is not in step, and
    ``last_success_at`` stays what it was."""
    generation: int = await conn.fetchval(
        "INSERT INTO router_sync AS s (router_id, generation, reachable, last_attempt_at, last_success_at, "
        "last_error, adds, sets, removes, duration_ms, drift, report) "
        "VALUES ($1, 1, true, $2::timestamptz, CASE WHEN $3::text IS NULL THEN $2::timestamptz END, $3, $4, $5, "
        "$6, $7, $8, $9::jsonb) "
        "ON CONFLICT (router_id) DO UPDATE SET generation = s.generation + 1, reachable = true, last_attempt_at = $2, "
        "last_success_at = CASE WHEN $3::text IS NULL THEN $2::timestamptz ELSE s.last_success_at END, "
        "last_error = $3, adds = $4, sets = $5, removes = $6, duration_ms = $7, drift = $8, report = $9::jsonb "
        "RETURNING generation",
        router_id, at, error, counts.get("add", 0), counts.get("set", 0), counts.get("remove", 0), duration_ms,
        drift, report)
    return generation


async def sync_states(conn: Connection) -> list[Record]:
    """Every router with its sync state, for `lastmile routers`."""
    return list(await conn.fetch(
        "SELECT r.id, r.name, r.host, r.api_port, r.api_tls, r.enabled, r.auth_mode, s.generation, s.reachable, "
        "s.last_attempt_at, s.last_success_at, s.last_error, s.adds, s.sets, s.removes, s.duration_ms, s.drift, "
        "s.report, (SELECT count(*) FROM services v WHERE v.router_id = r.id) AS services "
        "FROM routers r LEFT JOIN router_sync s ON s.router_id = r.id ORDER BY r.name"))


LOCK_SPACE = 0x6C6D_7072  # "lmpr": advisory locks of routers (key: space, router id)


async def try_lock(conn: Connection, router_id: int) -> bool:
    """Take the router's advisory lock on this connection (one writer per router, whichever
    process: provisiond instances, `lastmile routers sync`); False if another holds it."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1, $2::int)", LOCK_SPACE, router_id))


async def unlock(conn: Connection, router_id: int) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1, $2::int)", LOCK_SPACE, router_id)


async def known_services(conn: Connection) -> tuple[dict[str, tuple[int, str]], dict[str, tuple[int, str]]]:
    """Services by login and by address: (service id, customer name), for the import."""
    rows = await conn.fetch("SELECT s.id, s.login, host(s.ipv4) AS ip, c.name FROM services s "
                            "JOIN customers c ON c.id = s.customer_id")
    return ({r["login"]: (r["id"], r["name"]) for r in rows},
            {r["ip"]: (r["id"], r["name"]) for r in rows if r["ip"] is not None})


async def tariff_speeds(conn: Connection) -> dict[tuple[int, int], str]:
    """Tariff name by (download, upload) kbit/s; the first by id where several share speeds."""
    rows = await conn.fetch("SELECT DISTINCT ON (download_kbps, upload_kbps) download_kbps, upload_kbps, name "
                            "FROM tariffs ORDER BY download_kbps, upload_kbps, id")
    return {(r["download_kbps"], r["upload_kbps"]): r["name"] for r in rows}


async def set_auth_mode(conn: Connection, router_id: int, mode: str) -> None:
    await conn.execute("UPDATE routers SET auth_mode = $2 WHERE id = $1", router_id, mode)


async def import_subscribers(conn: Connection, router_id: int, partner: str | None, subscribers: list[Any],
                             tariff_name: Any, new_password: Any) -> list[int]:
    """Create a customer, a service (and its tariff, when new) per subscriber of the import; the
    service ids, in order. The caller holds the transaction."""
    if partner is None:
        names = [r["name"] for r in await conn.fetch("SELECT name FROM partners ORDER BY id LIMIT 2")]
        partner = names[0] if len(names) == 1 else "Imported"
    partner_id = await conn.fetchval(
        "INSERT INTO partners (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        partner)
    router = await conn.fetchval("SELECT name FROM routers WHERE id = $1", router_id)
    ids = []
    for s in subscribers:
        down, up = s.speeds
        tariff_id = await conn.fetchval(
            "SELECT id FROM tariffs WHERE download_kbps = $1 AND upload_kbps = $2 ORDER BY id LIMIT 1", down, up)
        if tariff_id is None:
            tariff_id = await conn.fetchval(
                "INSERT INTO tariffs (name, download_kbps, upload_kbps) VALUES ($1, $2, $3) RETURNING id",
                tariff_name(down, up), down, up)
        customer_id = await conn.fetchval(
            "INSERT INTO customers (partner_id, number, name, status) VALUES ($1, $2, $3, $4) RETURNING id",
            partner_id, f"{router}/{s.login}", s.name or s.login, "blocked" if s.blocked else "active")
        ids.append(await conn.fetchval(
            "INSERT INTO services (customer_id, tariff_id, router_id, login, password, ipv4, mac) "
            "VALUES ($1, $2, $3, $4, $5, $6::inet, $7::macaddr) RETURNING id",
            customer_id, tariff_id, router_id, s.login, s.password or new_password(), s.ipv4, s.mac))
    return ids


async def customer_statuses(conn: Connection, ids: Iterable[int] | None = None) -> dict[int, tuple[str, str]]:
    """Customer id -> (status, number): all of them, or ``ids`` (absent: deleted)."""
    if ids is None:
        rows = await conn.fetch("SELECT id, status, number FROM customers")
    else:
        rows = await conn.fetch("SELECT id, status, number FROM customers WHERE id = ANY($1::bigint[])", list(ids))
    return {r["id"]: (r["status"], r["number"]) for r in rows}
