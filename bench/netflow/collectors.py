"""The collectors under test: pmacct's nfacctd (the peer) and lastmile's flowcollector.

Each is started fresh for every load step (its own session, so its CPU time is all of its
processes'), told where to listen, stopped the way that makes it flush (nfacctd: SIGINT to
the core, which purges its plugins' caches to PostgreSQL; lastmile: SIGTERM, which drains),
and read back with two queries against PostgreSQL: totals (every record it stored) and usage
per service (for the to-the-byte comparison in ``pg.COMPARE``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from pg import LASTMILE, Database
from sysstat import Session, free_port, register, socket_owners, udp_state

SUBSCRIBER_NET = "100.64.0.0/10"  # lastmile demo's static addresses (CGNAT space)
RCVBUF = 64 << 20


class NotBuilt(Exception):
    """The collector is not part of this installation yet."""


class StartFailed(Exception):
    """The collector exited or never became ready."""


class Collector:
    name = ""
    description = ""
    reset_sql = ""
    totals_sql = ""  # -> (packets, bytes) of everything stored
    usage_sql = ""  # -> service_id, bytes_down, bytes_up, packets_down, packets_up

    def __init__(self, db: Database, registry: Path) -> None:
        self.db = db
        self.registry = registry  # sessions started, for a cleanup after a killed driver
        self.session: Session | None = None
        self.ports: list[int] = []

    def start(self, workdir: Path) -> None:
        raise NotImplementedError

    def port_for(self, version: int) -> int:
        return self.ports[0]

    def counters(self, workdir: Path) -> dict[str, int | None]:
        """Loss counters of its own, read after the load and before the stop."""
        return {}

    def stop(self) -> bool:
        """Stop so that it flushes; True if it exited by itself (not killed)."""
        raise NotImplementedError

    def kill(self) -> None:
        if self.session is not None:
            self.session.kill()

    def _spawn(self, argv: list[str], env: dict[str, str], workdir: Path, log: str) -> Session:
        self.session = Session(argv, env=env, cwd=workdir, log=workdir / log)
        register(self.registry, self.session.pid)
        return self.session

    def _stop(self, sig: signal.Signals, leader_timeout: float, rest_timeout: float) -> bool:
        assert self.session is not None
        self.session.signal(sig)
        clean = self.session.wait_leader(leader_timeout) and self.session.wait_empty(rest_timeout)
        if not clean:
            self.session.kill()
        return clean


# ------------------------------------------------------------------------------ nfacctd
NFACCTD_CONF = """\
! written by lastmile bench/netflow/collectors.py
daemonize: false
nfacctd_ip: 127.0.0.1
nfacctd_port: {port}
nfacctd_pipe_size: {rcvbuf}
nfacctd_time_new: true
plugin_pipe_size: 40960000
plugin_buffer_size: 40960
logfile: {dir}/nfacctd.log
pidfile: {dir}/nfacctd.pid
! per subscriber: download = destination in the subscriber range, upload = source in it
aggregate[down]: dst_host
aggregate[up]: src_host
aggregate_filter[down]: dst net {net}
aggregate_filter[up]: src net {net}
plugins: pgsql[down], pgsql[up]
sql_host: 127.0.0.1
sql_port: {pg_port}
sql_user: postgres
sql_passwd: unused
sql_db: {database}
sql_table[down]: bench.pmacct_down
sql_table[up]: bench.pmacct_up
sql_optimize_clauses: true
sql_cache_entries: 131071
! INSERT-only with COPY, one-minute bins; pmacct wants sql_history == sql_refresh_time then
sql_refresh_time: 60
sql_history: 1m
sql_history_roundoff: m
sql_dont_try_update: true
sql_use_copy: true
"""


class Nfacctd(Collector):
    name = "nfacctd"
    description = "pmacct nfacctd, pgsql plugin x2 (dst_host, src_host), COPY, 1-minute bins"
    reset_sql = "TRUNCATE bench.pmacct_down, bench.pmacct_up"
    totals_sql = """SELECT coalesce(sum(packets), 0)::bigint, coalesce(sum(bytes), 0)::bigint FROM (
        SELECT packets, bytes FROM bench.pmacct_down UNION ALL SELECT packets, bytes FROM bench.pmacct_up) t"""
    usage_sql = """SELECT s.id AS service_id, sum(u.bytes_down)::bigint AS bytes_down,
        sum(u.bytes_up)::bigint AS bytes_up, sum(u.packets_down)::bigint AS packets_down,
        sum(u.packets_up)::bigint AS packets_up
        FROM (SELECT ip_dst AS address, bytes AS bytes_down, 0 AS bytes_up, packets AS packets_down,
                     0 AS packets_up FROM bench.pmacct_down
              UNION ALL
              SELECT ip_src, 0, bytes, 0, packets FROM bench.pmacct_up) u
        JOIN services s ON s.ipv4 = u.address GROUP BY s.id"""

    def start(self, workdir: Path) -> None:
        port = free_port()
        self.ports = [port]
        conf = workdir / "nfacctd.conf"
        conf.write_text(
            NFACCTD_CONF.format(
                port=port,
                rcvbuf=RCVBUF,
                dir=workdir,
                net=SUBSCRIBER_NET,
                pg_port=self.db.server.port,
                database="lastmile",
            )
        )
        session = self._spawn(["nfacctd", "-f", str(conf)], dict(os.environ), workdir, "nfacctd.out")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not session.running():
                raise StartFailed(f"nfacctd exited ({session.returncode}): {last_error(session.tail())}")
            state = udp_state([port])
            if state.sockets and socket_owners(state.inodes) & {m.pid for m in session.members()}:
                return
            time.sleep(0.1)
        raise StartFailed(f"nfacctd did not bind udp/{port} in 20 s")

    def stop(self) -> bool:
        # SIGINT to the core only: it flushes its buffers to the plugins, which purge to
        # PostgreSQL in forked writers that may outlive the core (signalling the whole group
        # loses the core's last buffer); hence wait for the session to empty.
        return self._stop(signal.SIGINT, 120, 120)


# ------------------------------------------------------------------------------ lastmile
class LastmileFlowcollector(Collector):
    name = "lastmile"
    description = "lastmile flowcollector into traffic_usage"
    reset_sql = "TRUNCATE traffic_usage"
    totals_sql = """SELECT coalesce(sum(packets_down + packets_up), 0)::bigint,
        coalesce(sum(bytes_down + bytes_up), 0)::bigint FROM traffic_usage"""
    usage_sql = """SELECT service_id, sum(bytes_down)::bigint AS bytes_down, sum(bytes_up)::bigint AS bytes_up,
        sum(packets_down)::bigint AS packets_down, sum(packets_up)::bigint AS packets_up
        FROM traffic_usage GROUP BY service_id"""
    ready_line = 'lastmile_ready{daemon="flowcollector"} 1.0'
    lost_metric = "lastmile_flow_records_lost_total"
    records_metric = "lastmile_flow_records_total"
    ready_timeout = 120.0
    drain_timeout = 60.0

    def __init__(self, db: Database, registry: Path) -> None:
        super().__init__(db, registry)
        self.metrics_port = 0
        # Another build or a wrapper (`perf record ...`) can stand in for the installed command.
        command = os.environ.get("BENCH_FLOWCOLLECTOR_CMD")
        self.command = shlex.split(command) if command else [str(LASTMILE), "flowcollector"]

    def port_for(self, version: int) -> int:
        return self.ports[1] if version == 10 else self.ports[0]

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "LASTMILE_DATABASE__URL": self.db.url,
            "LASTMILE_FLOWCOLLECTOR__BIND": "127.0.0.1",
            "LASTMILE_FLOWCOLLECTOR__NETFLOW_PORT": str(self.ports[0]),
            "LASTMILE_FLOWCOLLECTOR__IPFIX_PORT": str(self.ports[1]),
            "LASTMILE_FLOWCOLLECTOR__METRICS_PORT": str(self.metrics_port),
            "LASTMILE_FLOWCOLLECTOR__DRAIN_TIMEOUT": str(self.drain_timeout),
            "LASTMILE_FLOWCOLLECTOR__RCVBUF": str(RCVBUF),  # what nfacctd is given
            "LASTMILE_LOG__LEVEL": "warning",
        }

    def start(self, workdir: Path) -> None:
        netflow = free_port()
        ipfix = free_port()
        while ipfix == netflow:
            ipfix = free_port()
        self.ports = [netflow, ipfix]
        self.metrics_port = free_port(socket.SOCK_STREAM)
        session = self._spawn(self.command, self.env(), workdir, "flowcollector.out")
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if not session.running():
                session.wait_empty(5)
                if session.returncode == 2 and "not built yet" in session.tail():
                    raise NotBuilt(session.tail().strip())
                raise StartFailed(f"exited ({session.returncode}): {last_error(session.tail(4000))}")
            if self.ready_line in self.metrics():
                return
            time.sleep(0.2)
        raise StartFailed(f"not ready ({self.ready_line}) within {self.ready_timeout:.0f} s")

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with contextlib.suppress(OSError, urllib.error.URLError), urllib.request.urlopen(url, timeout=2) as r:
            return str(r.read().decode())
        return ""

    def counters(self, workdir: Path) -> dict[str, int | None]:
        text = self.metrics()
        (workdir / "metrics.txt").write_text(text)
        return {
            "collector_lost": metric_sum(text, self.lost_metric),
            "collector_records": metric_sum(text, self.records_metric),
        }

    def stop(self) -> bool:
        return self._stop(signal.SIGTERM, self.drain_timeout + 30, 30)


def last_error(output: str) -> str:
    """The last line of a log that says what went wrong (the ``error`` of a JSON log line)."""
    for line in reversed(output.strip().splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            return line.strip()
        if isinstance(entry, dict) and ("error" in entry or "exception" in entry):
            return f"{entry.get('event', '')}: {entry.get('error') or entry['exception'].splitlines()[-1]}"
    return output.strip()[-300:]


def metric_sum(text: str, name: str) -> int | None:
    """Sum of every sample of ``name`` (any labels) in Prometheus text, None if absent."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
            seen = True
    return round(total) if seen else None
