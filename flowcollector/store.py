"""flowcollector's SQL: who may export, who owns which address, and where counters go."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from daemons.db import Connection

USAGE_COLUMNS = ["service_id", "minute", "bytes_down", "bytes_up", "packets_down", "packets_up", "billing"]
UNKNOWN_COLUMNS = ["exporter", "minute", "address", "bytes", "packets"]


class AllowList:
    """Sources flow data is taken from: flow exporters, routers and NAS (hosts or prefixes)."""

    def __init__(self, hosts: Iterable[str] = (), networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]
                 = ()) -> None:
        self.hosts = set(hosts)
        self.networks = list(networks)
        self._decided: dict[str, bool] = {}

    def __contains__(self, source: str) -> bool:
        known = self._decided.get(source)
        if known is None:
            known = source in self.hosts
            if not known and self.networks:
                address = ipaddress.ip_address(source.removeprefix("::ffff:") if "." in source else source)
                known = any(address in n for n in self.networks)
            if len(self._decided) < 65536:  # the unknown are many; remember only so many
                self._decided[source] = known
        return known

    def __len__(self) -> int:
        return len(self.hosts) + len(self.networks)


async def load_allow_list(conn: Connection) -> tuple[AllowList, dict[str, int]]:
    """The allow-list and the configured sampling rates of exporters (rate > 1 only)."""
    hosts: set[str] = set()
    networks = []
    rates: dict[str, int] = {}
    for r in await conn.fetch("SELECT host(address) AS a, sampling_rate FROM flow_exporters WHERE enabled"):
        hosts.add(r["a"])
        if r["sampling_rate"] > 1:
            rates[r["a"]] = r["sampling_rate"]
    for r in await conn.fetch("SELECT host FROM routers WHERE enabled"):
        # A host name is skipped: such a router's export address must then be a flow exporter.
        with contextlib.suppress(ValueError):
            hosts.add(str(ipaddress.ip_address(r["host"])))
    for r in await conn.fetch("SELECT address FROM nas"):
        net = ipaddress.ip_network(r["address"])
        if net.num_addresses == 1:
            hosts.add(str(net.network_address))
        else:
            networks.append(net)
    return AllowList(hosts, networks), rates


async def load_static(conn: Connection) -> list[tuple[str, int]]:
    """(prefix, service_id) of every service's fixed addresses."""
    rows = await conn.fetch(
        "SELECT id, host(ipv4) AS v4, ipv6_prefix::text AS v6, delegated_ipv6_prefix::text AS pd "
        "FROM services WHERE status <> 'archived'")
    out: list[tuple[str, int]] = []
    for r in rows:
        out.extend((p, r["id"]) for p in (f"{r['v4']}/32" if r["v4"] else None, r["v6"], r["pd"]) if p)
    return out


async def load_own_prefixes(conn: Connection) -> list[str]:
    """The ISP's own address space when no setting gives it: the networks of its address
    pools and the fixed addresses and prefixes of every service, archived ones too (their
    traffic is exactly what the leak report is for)."""
    rows = await conn.fetch(
        "SELECT network::text AS p FROM ip_pools "
        "UNION SELECT host(ipv4) || '/32' FROM services WHERE ipv4 IS NOT NULL "
        "UNION SELECT ipv6_prefix::text FROM services WHERE ipv6_prefix IS NOT NULL "
        "UNION SELECT delegated_ipv6_prefix::text FROM services WHERE delegated_ipv6_prefix IS NOT NULL")
    return [r["p"] for r in rows]


BILLING_SQL = """
SELECT s.id, CASE WHEN s.status <> 'active' THEN 'service_' || s.status ELSE 'customer_' || c.status END AS flag
FROM services s JOIN customers c ON c.id = s.customer_id
WHERE s.status <> 'active' OR c.status <> 'active'
"""


async def load_billing(conn: Connection) -> dict[int, str]:
    """What billing says of every service that is not simply active (its status, else its
    customer's): service id -> ``traffic_usage.billing``."""
    return {r["id"]: r["flag"] for r in await conn.fetch(BILLING_SQL)}


async def load_sessions(conn: Connection, history_s: float) -> list[Any]:
    """Sessions with an address that are open, or ended within ``history_s`` (late flows)."""
    return list(await conn.fetch(
        "SELECT service_id, host(framed_ip) AS ip, started_at, stopped_at FROM radius_sessions "
        "WHERE framed_ip IS NOT NULL AND service_id IS NOT NULL "
        "AND (stopped_at IS NULL OR stopped_at > now() - make_interval(secs => $1))", history_s))


async def rollup_traffic(conn: Connection) -> None:
    """Roll minute rows up into hourly and daily ones (schema.sql, lastmile_rollup_traffic), from
    three hours back: flows arrive late."""
    await conn.execute("SELECT lastmile_rollup_traffic(now() - interval '3 hours')")


async def leaks(conn: Connection, since: datetime, limit: int) -> list[Any]:
    """Traffic billing gets nothing for since ``since`` (schema.sql, traffic_leaks)."""
    return list(await conn.fetch("SELECT * FROM traffic_leaks($1, $2)", since, limit))


def _minute(start: int, cache: dict[int, datetime]) -> datetime:
    minute = cache.get(start)
    if minute is None:
        minute = cache[start] = datetime.fromtimestamp(start, UTC)
    return minute


async def write_usage(conn: Connection, services: dict[tuple[int, int], list[int]],
                      unknown: dict[tuple[str, int, str | None], list[int]],
                      billing: Mapping[int, str] | None = None) -> None:
    """COPY the counters (call inside a transaction: both tables or neither).  ``billing`` flags
    the rows of services that are not active (service id -> ``traffic_usage.billing``).
    Minutes of hours already rolled up (late traffic) are marked for the next rollup, under
    its lock, so the readers' totals stay exact (schema.sql, lastmile_traffic_written)."""
    minutes: dict[int, datetime] = {}
    flag = (billing or {}).get
    if services:
        records = [(sid, _minute(start, minutes), *c, flag(sid)) for (sid, start), c in services.items()]
        await conn.execute("SELECT lastmile_traffic_written($1::timestamptz[])", list(minutes.values()))
        await conn.copy_records_to_table("traffic_usage", columns=USAGE_COLUMNS, records=records)
    if unknown:
        await conn.copy_records_to_table(
            "traffic_unknown", columns=UNKNOWN_COLUMNS,
            records=[(ipaddress.ip_address(exporter), _minute(start, minutes), address, *c)
                     for (exporter, start, address), c in unknown.items()])
