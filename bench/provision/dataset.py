"""The billing rows of the benchmark: routers (the doubles), tariffs, customers and their services.

Every service sits on one router (``services.router_id``) with a static address of its own (a
/32 from 100.64.0.0/10), so provisiond owes each a simple queue, and an entry in the blocked address list
while its customer is blocked; each service has its own customer. Rows go
in with COPY, as ``daemons/demo.py`` loads them (a bulk insert sends one NOTIFY, not one per row,
and provisiond is not running yet anyway).
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

import asyncpg

from daemons.secrets import ROUTER_PURPOSE, Keyring

BASE = ipaddress.IPv4Address("100.64.0.0")
# (name, down kbit/s, up kbit/s, burst down, burst up, burst threshold down, up, burst time s, limit-at down, up)
TARIFFS: tuple[tuple[str, int, int, int | None, int | None, int | None, int | None, int | None, int | None,
                     int | None], ...] = (
    ("Bench 10/2", 10_000, 2_000, None, None, None, None, None, None, None),
    ("Bench 30/5", 30_000, 5_000, 60_000, 10_000, 22_500, 3_750, 16, None, None),
    ("Bench 100/20", 100_000, 20_000, 200_000, 40_000, 75_000, 15_000, 16, 10_000, 2_000),
    ("Bench 300/50", 300_000, 50_000, None, None, None, None, None, 30_000, 5_000),
)


@dataclass(frozen=True, slots=True)
class RouterRow:
    index: int  # 0-based, the double's
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class ServiceRow:
    customer_id: int
    router: int  # index of its router
    address: str
    blocked: bool  # its customer's status at load


def address(router: int, n: int) -> str:
    """The ``n``-th service address of router ``router``: 4 /24s each, .1 to .250 used."""
    return str(BASE + router * 1024 + (n // 250) * 256 + n % 250 + 1)


async def load(conn: asyncpg.Connection, keyring: Keyring, doubles: list[tuple[str, int, str, str]],
               per_router: int, blocked_share: float, rnd: random.Random) -> tuple[list[RouterRow], list[ServiceRow]]:
    """``doubles``: (name, API port, user, password) of each router. Returns the routers and services."""
    if per_router > 1000:
        raise ValueError("at most 1,000 services per router (4 /24s of addresses each)")
    async with conn.transaction():
        partner = await conn.fetchval("INSERT INTO partners (name) VALUES ('Bench ISP') RETURNING id")
        tariff_ids = []
        for t in TARIFFS:
            tariff_ids.append(await conn.fetchval(
                "INSERT INTO tariffs (name, download_kbps, upload_kbps, burst_download_kbps, burst_upload_kbps, "
                "burst_threshold_download_kbps, burst_threshold_upload_kbps, burst_time_s, limit_at_download_kbps, "
                "limit_at_upload_kbps) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id", *t))
        routers = []
        for i, (name, port, user, password) in enumerate(doubles):
            rid = await conn.fetchval(
                "INSERT INTO routers (name, host, api_port, username, password) VALUES ($1, '127.0.0.1', $2, $3, $4) "
                "RETURNING id", name, port, user, keyring.seal(password, ROUTER_PURPOSE))
            routers.append(RouterRow(i, rid, name))
        customers = []
        plan = []
        for r in range(len(doubles)):
            for n in range(per_router):
                number = f"B{r:02d}{n:04d}"
                blocked = rnd.random() < blocked_share
                customers.append((partner, number, f"Bench Customer {r:02d}-{n:04d}",
                                  "blocked" if blocked else "active"))
                plan.append((number, r, n, blocked))
        await conn.copy_records_to_table("customers", records=customers,
                                         columns=["partner_id", "number", "name", "status"])
        ids = {row["number"]: row["id"] for row in await conn.fetch("SELECT id, number FROM customers")}
        services = []
        out = []
        for number, r, n, blocked in plan:
            ip = address(r, n)
            services.append((ids[number], rnd.choice(tariff_ids), routers[r].id, f"r{r:02d}s{n:04d}",
                             f"pw{rnd.getrandbits(48):012x}", ipaddress.IPv4Interface(f"{ip}/32")))
            out.append(ServiceRow(ids[number], r, ip, blocked))
        await conn.copy_records_to_table("services", records=services,
                                         columns=["customer_id", "tariff_id", "router_id", "login", "password",
                                                  "ipv4"])
    await conn.execute("ANALYZE customers; ANALYZE services; ANALYZE routers")
    return routers, out


@dataclass(frozen=True, slots=True)
class Sync:
    router_id: int
    generation: int
    success_at: float | None  # epoch seconds
    adds: int
    sets: int
    removes: int
    drift: int
    error: str | None
    duration_ms: int


async def sync_rows(conn: asyncpg.Connection) -> dict[int, Sync]:
    rows = await conn.fetch(
        "SELECT router_id, generation, extract(epoch FROM last_success_at)::float8 AS at, adds, sets, removes, "
        "drift, last_error, duration_ms FROM router_sync")
    return {r["router_id"]: Sync(r["router_id"], r["generation"], r["at"], r["adds"], r["sets"], r["removes"],
                                 r["drift"], r["last_error"], r["duration_ms"]) for r in rows}
