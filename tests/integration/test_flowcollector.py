"""flowcollector end to end: datagrams over UDP into a real process, counters in a real PostgreSQL.

Datagrams are built by tests/unit/flow/flowbuild.py, written from the formats and sharing no code
with the decoder. Every test ends with SIGTERM: the daemon flushes on the way out, so what it
received is in the database when it exits.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from daemons.pgembed import EmbeddedPostgres
from tests.conftest import free_port
from tests.integration.conftest import crash
from tests.integration.daemon import ROOT, Daemon, start_daemon
from tests.integration.radius_env import add_service, eventually
from tests.unit.flow import flowbuild as fb

V9_FIELDS: list[fb.FieldSpec] = [(8, 4), (12, 4), (1, 4), (2, 4), (22, 4), (21, 4), (7, 2), (11, 2), (4, 1)]
IPFIX_FIELDS: list[fb.FieldSpec] = [(8, 4), (12, 4), (1, 8), (2, 8), (152, 8), (153, 8)]


@dataclass
class Flowcollector(Daemon):
    port: int = 0


def start(db_url: str, tmp: Path, **settings: str) -> Flowcollector:
    port = free_port(socket.SOCK_DGRAM)
    env = {"LASTMILE_FLOWCOLLECTOR__BIND": "127.0.0.1", "LASTMILE_FLOWCOLLECTOR__NETFLOW_PORT": str(port),
           "LASTMILE_FLOWCOLLECTOR__IPFIX_PORT": str(port), "LASTMILE_FLOWCOLLECTOR__STATE_DIR": str(tmp / "state"),
           "LASTMILE_FLOWCOLLECTOR__FLUSH_INTERVAL": "0.5"}
    env.update({f"LASTMILE_FLOWCOLLECTOR__{k.upper()}": v for k, v in settings.items()})
    return start_daemon(Flowcollector, "flowcollector", db_url, tmp, env, port=port)


def send(port: int, datagrams: list[bytes], source: str = "127.0.0.1") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        for d in datagrams:
            s.sendto(d, ("127.0.0.1", port))
            time.sleep(0.0005)  # keep loopback from outrunning the receive buffer; loss is tested separately


@pytest.fixture
async def services(conn: asyncpg.Connection) -> dict[str, int]:
    """Three subscribers with fixed addresses and one exporter (127.0.0.1)."""
    await conn.execute("INSERT INTO flow_exporters (name, address) VALUES ('bras', '127.0.0.1')")
    return {
        "100.64.0.1": await add_service(conn, "a", "x", ipv4="100.64.0.1"),
        "100.64.0.2": await add_service(conn, "b", "x", ipv4="100.64.0.2"),
        "2001:db8:0:3::/64": await add_service(conn, "c", "x", ipv6_prefix="2001:db8:0:3::/64"),
    }


@pytest.fixture
async def collector(db_url: str, services: dict[str, int], tmp_path: Path) -> AsyncIterator[Flowcollector]:
    daemon = start(db_url, tmp_path)
    yield daemon
    if daemon.proc.poll() is None:
        assert daemon.stop() == 0, "\n".join(daemon.output)


async def totals(conn: asyncpg.Connection) -> dict[int, tuple[int, int, int, int]]:
    rows = await conn.fetch("SELECT service_id, sum(bytes_down)::bigint AS bd, sum(bytes_up)::bigint AS bu, "
                            "sum(packets_down)::bigint AS pd, sum(packets_up)::bigint AS pu "
                            "FROM traffic_usage GROUP BY 1")
    return {r["service_id"]: (r["bd"], r["bu"], r["pd"], r["pu"]) for r in rows}


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_v5_v9_and_ipfix_land_per_service_to_the_byte(collector: Flowcollector, services: dict[str, int],
                                                            conn: asyncpg.Connection) -> None:
    secs, uptime = int(time.time()), 3_600_000
    a, b = services["100.64.0.1"], services["100.64.0.2"]
    v5 = fb.v5([{"src": "8.8.8.8", "dst": "100.64.0.1", "packets": 10, "octets": 15_000,
                 "first": uptime - 5_000, "last": uptime - 1_000},
                {"src": "100.64.0.2", "dst": "1.1.1.1", "packets": 3, "octets": 900,
                 "first": uptime - 5_000, "last": uptime - 1_000}], uptime=uptime, secs=secs, seq=0)
    v9_records = [fb.record(V9_FIELDS, {8: "9.9.9.9", 12: "100.64.0.2", 1: 7777, 2: 7, 22: uptime - 3_000,
                                        21: uptime - 2_000, 7: 443, 11: 50000, 4: 6}),
                  fb.record(V9_FIELDS, {8: "100.64.0.1", 12: "9.9.9.9", 1: 333, 2: 3, 22: uptime - 3_000,
                                        21: uptime - 2_000, 4: 17})]
    v9 = fb.v9([fb.template_set(9, [(256, V9_FIELDS)]), fb.data_set(256, v9_records)], uptime=uptime, secs=secs)
    end = now_ms() - 2_000
    ipfix_records = [fb.record(IPFIX_FIELDS, {8: "1.2.3.4", 12: "100.64.0.1", 1: 1_000_001, 2: 1000,
                                              152: end - 1_000, 153: end}),
                     fb.record(IPFIX_FIELDS, {8: "100.99.99.99", 12: "1.2.3.4", 1: 5555, 2: 5,
                                              152: end - 1_000, 153: end})]  # nobody's address
    ipfix = fb.ipfix([fb.template_set(10, [(300, IPFIX_FIELDS)]), fb.data_set(300, ipfix_records)],
                     export=int(time.time()))
    send(collector.port, [v5, v9, ipfix])
    await eventually(lambda: collector.metric("lastmile_flow_records_total", exporter="127.0.0.1") == 6)
    assert collector.stop() == 0
    assert await totals(conn) == {
        a: (15_000 + 1_000_001, 333, 10 + 1000, 3),
        b: (7777, 900, 7, 3),
    }
    unknown = await conn.fetchrow("SELECT sum(bytes)::bigint AS b, sum(packets)::bigint AS p FROM traffic_unknown")
    assert unknown is not None
    assert (unknown["b"], unknown["p"]) == (5555, 5)


async def test_ipv6_prefix_attribution(collector: Flowcollector, services: dict[str, int],
                                       conn: asyncpg.Connection) -> None:
    fields: list[fb.FieldSpec] = [(27, 16), (28, 16), (1, 8), (2, 8), (152, 8), (153, 8)]
    end = now_ms() - 1_000
    records = [fb.record(fields, {27: "2001:4860::8888", 28: "2001:db8:0:3::42", 1: 123_456, 2: 100,
                                  152: end - 500, 153: end})]
    send(collector.port, [fb.ipfix([fb.template_set(10, [(400, fields)]), fb.data_set(400, records)],
                                   export=int(time.time()))])
    await eventually(lambda: collector.metric("lastmile_flow_records_total") == 1)
    assert collector.stop() == 0
    assert await totals(conn) == {services["2001:db8:0:3::/64"]: (123_456, 0, 100, 0)}


async def test_sessions_attribute_by_time_when_an_address_changes_hands(collector: Flowcollector,
                                                                        services: dict[str, int],
                                                                        conn: asyncpg.Connection) -> None:
    """100.96.0.9 belongs to A's session until t1, then to B's: flows follow the flow time."""
    a, b = services["100.64.0.1"], services["100.64.0.2"]
    t0 = time.time() - 600
    t1 = time.time() - 300
    # What radiusd announces on lastmile_sessions when sessions open and close.
    sessions = [{"uid": "sa", "service": a, "ip": "100.96.0.9", "start": t0, "stop": t1},
                {"uid": "sb", "service": b, "ip": "100.96.0.9", "start": t1, "stop": None}]
    await conn.execute("SELECT pg_notify('lastmile_sessions', $1)", json.dumps({"sessions": sessions}))
    await asyncio.sleep(0.3)
    at_a, at_b = int((t0 + 60) * 1000), int((t1 + 60) * 1000)
    records = [fb.record(IPFIX_FIELDS, {8: "1.1.1.1", 12: "100.96.0.9", 1: 1000, 2: 1, 152: at_a - 100, 153: at_a}),
               fb.record(IPFIX_FIELDS, {8: "1.1.1.1", 12: "100.96.0.9", 1: 2000, 2: 2, 152: at_b - 100, 153: at_b})]
    send(collector.port, [fb.ipfix([fb.template_set(10, [(300, IPFIX_FIELDS)]), fb.data_set(300, records)],
                                   export=int(time.time()))])
    await eventually(lambda: collector.metric("lastmile_flow_records_total") == 2)
    assert collector.stop() == 0
    assert await totals(conn) == {a: (1000, 0, 1, 0), b: (2000, 0, 2, 0)}


async def test_service_map_gauges_follow_every_change(collector: Flowcollector, services: dict[str, int],
                                                      conn: asyncpg.Connection) -> None:
    """Issue 8: the sessions gauge changed only on a full reload; it follows each session
    announced, ended or replaced, and the static one each change of the services."""
    a, b = services["100.64.0.1"], services["100.64.0.2"]
    assert collector.metric("lastmile_flow_service_map_entries", kind="sessions") == 0
    assert collector.metric("lastmile_flow_service_map_entries", kind="static") == 3
    t0 = time.time() - 60
    started = [{"uid": "sa", "service": a, "ip": "100.96.0.1", "start": t0, "stop": None},
               {"uid": "sb", "service": b, "ip": "100.96.0.2", "start": t0, "stop": None}]
    await conn.execute("SELECT pg_notify('lastmile_sessions', $1)", json.dumps({"sessions": started}))
    await eventually(lambda: collector.metric("lastmile_flow_service_map_entries", kind="sessions") == 2)
    stopped = [{**started[0], "stop": t0 + 30}]  # a Stop: the session is kept (late flows), still one
    await conn.execute("SELECT pg_notify('lastmile_sessions', $1)", json.dumps({"sessions": stopped}))
    moved = [{"uid": "sc", "service": a, "ip": "100.96.0.2", "start": t0 + 40, "stop": None}]  # address reused
    await conn.execute("SELECT pg_notify('lastmile_sessions', $1)", json.dumps({"sessions": moved}))
    await eventually(lambda: collector.metric("lastmile_flow_service_map_entries", kind="sessions") == 3)
    await add_service(conn, "d", "x", ipv4="100.64.0.4")
    await eventually(lambda: collector.metric("lastmile_flow_service_map_entries", kind="static") == 4)


async def test_long_flow_is_spread_over_its_minutes(collector: Flowcollector, services: dict[str, int],
                                                    conn: asyncpg.Connection) -> None:
    """A 30-minute flow (MikroTik's active timeout) lands in 30-31 minutes, exactly summing up."""
    end = (int(time.time()) // 60 * 60 - 60) * 1000
    records = [fb.record(IPFIX_FIELDS, {8: "1.1.1.1", 12: "100.64.0.1", 1: 1_800_000_007, 2: 1_800_003,
                                        152: end - 1_800_000, 153: end})]
    send(collector.port, [fb.ipfix([fb.template_set(10, [(300, IPFIX_FIELDS)]), fb.data_set(300, records)],
                                   export=int(time.time()))])
    await eventually(lambda: collector.metric("lastmile_flow_records_total") == 1)
    assert collector.stop() == 0
    rows = await conn.fetch("SELECT minute, sum(bytes_down)::bigint AS b FROM traffic_usage GROUP BY 1 ORDER BY 1")
    assert 30 <= len(rows) <= 31
    assert sum(r["b"] for r in rows) == 1_800_000_007
    assert max(r["b"] for r in rows) - min(r["b"] for r in rows if r["b"]) <= 60_000_000 // 30 + 2


async def test_late_flow_is_booked_in_its_own_hour_and_counted(collector: Flowcollector, services: dict[str, int],
                                                                conn: asyncpg.Connection) -> None:
    """Issue 8: a flow from 5 h ago (beyond max_age, within late_window) is booked at the start of
    its hour, not at the arrival minute, and counted as moved (late)."""
    end = now_ms() - 5 * 3_600_000
    records = [fb.record(IPFIX_FIELDS, {8: "1.1.1.1", 12: "100.64.0.1", 1: 5000, 2: 5, 152: end - 1000, 153: end})]
    send(collector.port, [fb.ipfix([fb.template_set(10, [(300, IPFIX_FIELDS)]), fb.data_set(300, records)],
                                   export=int(time.time()))])
    await eventually(lambda: collector.metric("lastmile_flow_records_total") == 1)
    await eventually(lambda: collector.metric("lastmile_flow_records_moved_total", reason="late") == 1)
    assert collector.stop() == 0
    row = await conn.fetchrow("SELECT minute, bytes_down FROM traffic_usage")
    assert row is not None
    assert row["bytes_down"] == 5000
    assert int(row["minute"].timestamp()) == end // 3_600_000 * 3600


async def test_unknown_exporter_is_dropped_without_state(collector: Flowcollector, services: dict[str, int],
                                                          conn: asyncpg.Connection) -> None:
    v9 = fb.v9([fb.template_set(9, [(256, V9_FIELDS)])], uptime=1000, secs=int(time.time()))
    send(collector.port, [v9, v9], source="127.0.0.2")
    await eventually(lambda: collector.metric("lastmile_flow_unknown_exporter_datagrams_total") == 2)
    assert collector.metric("lastmile_flow_decoder_state", kind="templates") == 0
    assert collector.metric("lastmile_flow_datagrams_total", exporter="127.0.0.2") == 0


async def test_sequence_gaps_are_reported_as_lost_records(collector: Flowcollector, services: dict[str, int]) -> None:
    """v5 counts flows: sent = received + lost, exactly."""
    secs, uptime = int(time.time()), 10_000
    flow = {"src": "1.1.1.1", "dst": "100.64.0.1", "packets": 1, "octets": 100, "first": 9_000, "last": 9_500}
    datagrams, seq = [], 0
    for i in range(60):
        if i % 10 == 3:  # skipped: lost on the way
            seq += 2
            continue
        datagrams.append(fb.v5([flow, flow], uptime=uptime, secs=secs, seq=seq))
        seq += 2
    send(collector.port, datagrams)
    received = 2 * len(datagrams)
    await eventually(lambda: collector.metric("lastmile_flow_records_total") == received)
    # Gaps count once enough later datagrams came (reorder window): send a tail to close them.
    send(collector.port, [fb.v5([flow], uptime=uptime, secs=secs, seq=seq + k) for k in range(40)])
    await eventually(lambda: collector.metric("lastmile_flow_records_lost_total") == 12)
    assert collector.metric("lastmile_flow_kernel_drops_total") == 0


async def test_templates_survive_a_restart(db_url: str, services: dict[str, int], conn: asyncpg.Connection,
                                           tmp_path: Path) -> None:
    first = start(db_url, tmp_path)
    uptime, secs = 50_000, int(time.time())
    send(first.port, [fb.v9([fb.template_set(9, [(256, V9_FIELDS)])], uptime=uptime, secs=secs, seq=0)])
    await eventually(lambda: first.metric("lastmile_flow_decoder_state", kind="templates") == 1)
    assert first.stop() == 0
    second = start(db_url, tmp_path)
    try:
        data = fb.record(V9_FIELDS, {8: "1.1.1.1", 12: "100.64.0.2", 1: 4242, 2: 4, 22: uptime - 2000,
                                     21: uptime - 1000})
        send(second.port, [fb.v9([fb.data_set(256, [data])], uptime=uptime + 1000, secs=secs + 1, seq=1)])
        await eventually(lambda: second.metric("lastmile_flow_records_total") == 1)
    finally:
        assert second.stop() == 0
    assert await totals(conn) == {services["100.64.0.2"]: (4242, 0, 4, 0)}


async def test_records_sent_while_stopped_are_counted_as_lost_on_restart(db_url: str, services: dict[str, int],
                                                                         tmp_path: Path) -> None:
    """Issue 8: v9 flowing, SIGTERM, datagrams sent while nobody listens, start again: the gap is
    counted from the saved sequence, as restart loss (not network loss), datagrams x records."""
    uptime, secs = 50_000_000, int(time.time())
    data = [fb.record(V9_FIELDS, {8: "1.1.1.1", 12: "100.64.0.2", 1: 100, 2: 1, 22: uptime - 2000,
                                  21: uptime - 1000})] * 3

    def datagram(seq: int) -> bytes:
        sets = [fb.template_set(9, [(256, V9_FIELDS)])] if seq == 0 else []
        return fb.v9([*sets, fb.data_set(256, data)], uptime=uptime + seq * 20, secs=secs, seq=seq)

    first = start(db_url, tmp_path)
    try:
        for seq in range(60):  # 1.2 s at 50 datagrams a second
            send(first.port, [datagram(seq)])
            time.sleep(0.02)
        await eventually(lambda: first.metric("lastmile_flow_records_total") == 180)
        assert first.metric("lastmile_flow_records_lost_total") == 0
    finally:
        assert first.stop() == 0
    second = start(db_url, tmp_path)  # datagrams 60..99 went to a closed port meanwhile
    try:
        send(second.port, [datagram(100), datagram(101)])
        await eventually(lambda: second.metric("lastmile_flow_records_total") == 6)
        assert second.metric("lastmile_flow_records_lost_total", reason="restart") == 40 * 3
        assert second.metric("lastmile_flow_records_lost_total", reason="network") == 0
    finally:
        assert second.stop() == 0


async def test_counters_wait_while_postgresql_is_down(own_pg: EmbeddedPostgres, own_db: str,
                                                      tmp_path: Path) -> None:
    """PostgreSQL crashes between receipt and flush: the counters wait and are written when it is back."""
    conn = await asyncpg.connect(own_db)
    try:
        await conn.execute("INSERT INTO flow_exporters (name, address) VALUES ('bras', '127.0.0.1')")
        service = await add_service(conn, "a", "x", ipv4="100.64.0.1")
    finally:
        await conn.close()
    daemon = start(own_db, tmp_path, flush_interval="0.3")
    try:
        await asyncio.to_thread(crash, own_pg)
        end = now_ms() - 1000
        records = [fb.record(IPFIX_FIELDS, {8: "1.1.1.1", 12: "100.64.0.1", 1: 999, 2: 9, 152: end - 10, 153: end})]
        send(daemon.port, [fb.ipfix([fb.template_set(10, [(300, IPFIX_FIELDS)]), fb.data_set(300, records)],
                                    export=int(time.time()))])
        await eventually(lambda: daemon.metric("lastmile_flow_backlog_rows") == 1)
        await asyncio.to_thread(own_pg.start)
        await eventually(lambda: daemon.metric("lastmile_flow_rows_written_total", table="traffic_usage") == 1,
                         timeout=15)
    finally:
        assert daemon.stop() == 0
    conn = await asyncpg.connect(own_db)
    try:
        assert await totals(conn) == {service: (999, 0, 9, 0)}
    finally:
        await conn.close()


def lastmile(*args: str, db_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    env.update(PYTHONPATH=str(ROOT), LASTMILE_DATABASE__URL=db_url)
    return subprocess.run([sys.executable, "-m", "daemons.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=60)


async def test_leaks_are_recorded_per_address_and_flagged_by_billing(db_url: str, conn: asyncpg.Connection,
                                                                     tmp_path: Path) -> None:
    """Issue 8: unknown traffic of the ISP's own addresses (here: derived from its pool) is kept per
    address, traffic of blocked, disabled and archived services is flagged, and `lastmile flows
    leaks` lists both with what billing says; an active service's traffic and foreign addresses
    are no leak."""
    await conn.execute("INSERT INTO flow_exporters (name, address) VALUES ('bras', '127.0.0.1')")
    await conn.execute("INSERT INTO ip_pools (name, network, managed_by) VALUES ('cgnat', '100.64.0.0/24', 'nas')")
    await add_service(conn, "paid", "x", ipv4="100.64.0.1")
    await add_service(conn, "blocked", "x", ipv4="100.64.0.2", status="blocked")
    await add_service(conn, "gone", "x", ipv4="100.64.0.3", status="archived")
    await add_service(conn, "unpaid", "x", ipv4="100.64.0.4", customer_status="inactive")
    daemon = start(db_url, tmp_path)
    try:
        end = now_ms() - 1000
        octets = {"100.64.0.1": 1000, "100.64.0.2": 2000, "100.64.0.3": 3000, "100.64.0.4": 4000,
                  "100.64.0.9": 9000, "9.9.9.9": 99}
        records = [fb.record(IPFIX_FIELDS, {8: "8.8.8.8", 12: dst, 1: n, 2: 1, 152: end - 10, 153: end})
                   for dst, n in octets.items()]
        send(daemon.port, [fb.ipfix([fb.template_set(10, [(300, IPFIX_FIELDS)]), fb.data_set(300, records)],
                                    export=int(time.time()))])
        await eventually(lambda: daemon.metric("lastmile_flow_records_total") == 6)
        assert daemon.metric("lastmile_flow_service_map_entries", kind="own_prefixes") == 5  # pool + 4 services
    finally:
        assert daemon.stop() == 0
    unknown = {r["address"] and str(r["address"]): r["b"] for r in await conn.fetch(
        "SELECT address, sum(bytes)::bigint AS b FROM traffic_unknown GROUP BY 1")}
    assert unknown == {"100.64.0.3": 3000, "100.64.0.9": 9000, None: 99}
    flags = {r["login"]: r["billing"] for r in await conn.fetch(
        "SELECT s.login, u.billing FROM traffic_usage u JOIN services s ON s.id = u.service_id")}
    assert flags == {"paid": None, "blocked": "service_blocked", "unpaid": "customer_inactive"}

    result = lastmile("flows", "leaks", "--since", "1h", db_url=db_url)
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split()[:3] == ["ADDRESS", "SERVICE", "CUSTOMER"]
    got = [(line.split()[0], line.split()[1], line.split("  ")[-1].strip()) for line in lines]
    assert got == [("100.64.0.9", "-", "no service"), ("100.64.0.4", "unpaid", "customer inactive"),
                   ("100.64.0.3", "gone", "service archived"), ("100.64.0.2", "blocked", "service blocked")]


async def test_flows_leaks_in_a_pipe_and_with_nothing_to_say(db_url: str, conn: asyncpg.Connection) -> None:
    """`lastmile flows leaks | head -1`: the pipe closes early, no traceback."""
    quiet = lastmile("flows", "leaks", db_url=db_url)
    assert quiet.returncode == 0 and quiet.stdout.startswith("no leaks since ") and quiet.stderr == ""
    await conn.execute("INSERT INTO traffic_unknown (exporter, minute, address, bytes, packets) "
                       "SELECT '192.0.2.1', now(), '100.64.0.0'::inet + g, g, 1 FROM generate_series(1, 5000) g")
    first, code, errors = head_1("flows", "leaks", "--limit", "5000", db_url=db_url)
    assert first.startswith("ADDRESS") and code == 0 and errors == ""


def head_1(*args: str, db_url: str) -> tuple[str, int, str]:
    """Run `lastmile ARGS | head -1`: (the line read, exit code, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    env.update(PYTHONPATH=str(ROOT), LASTMILE_DATABASE__URL=db_url)
    proc = subprocess.Popen([sys.executable, "-m", "daemons.cli", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout and proc.stderr
    line = proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does, long before the output ends
    errors = proc.stderr.read()
    proc.stderr.close()
    return line, proc.wait(60), errors
