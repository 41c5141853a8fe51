"""Memory and start-up time of the daemons' caches with many subscribers (docs/scaling.md).

    .venv/bin/python bench/scale/caches.py                    # 1,000,000 subscribers (~5 min)
    CACHE_SUBSCRIBERS=100000 .venv/bin/python bench/scale/caches.py
    CACHE_DAEMONS=radiusd CACHE_SETTLE=120 .venv/bin/python bench/scale/caches.py   # one daemon, longer idle

radiusd and flowcollector keep the subscribers, NAS and open sessions in memory (DESIGN.md:
hot copies kept by NOTIFY), so their memory grows with the subscriber count; this measures by
how much, with real processes. One embedded PostgreSQL (``daemons.pgembed``) in a new
temporary directory gets the schema, ``lastmile demo --customers N`` and an open session at the
demo NAS for every active service (with its static address, a bound address of its lastmile
pool while the pool lasts, else an address of the NAS's own pool, as after logins); then
``lastmile radiusd`` and ``lastmile flowcollector`` are started one after the other on free
ports of 127.0.0.1, each until its metrics say ready, and measured: seconds from the start to
ready (loading everything from PostgreSQL), RSS of the process (VmRSS, after ``CACHE_SETTLE``
seconds of idling) and, for radiusd, the size of the cache snapshot on disk by then. The baseline is
the same daemon with 1,000 subscribers, measured first in the same way, so the difference per
subscriber is the caches'. Everything started is stopped by PID; the directory is removed
(CACHE_KEEP=1 keeps it). Results: a Markdown table on stdout and in bench/results/caches-<date>.md.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "radius"))

import procstat  # noqa: E402
import servers  # noqa: E402

from daemons.pgembed import DATABASE, EmbeddedPostgres, bin_dir  # noqa: E402

LASTMILE = str(ROOT / ".venv" / "bin" / "lastmile")

OPEN_SESSIONS = """
WITH s AS (
    SELECT s.id, s.login, s.ipv4, s.pool_id, row_number() OVER (PARTITION BY s.pool_id ORDER BY s.id) AS n
    FROM services s JOIN customers c ON c.id = s.customer_id
    WHERE s.status = 'active' AND c.status = 'active'
), f AS (
    SELECT address, pool_id, row_number() OVER (PARTITION BY pool_id ORDER BY address) AS n
    FROM ip_leases WHERE state = 'free'
), o AS (
    -- the static address, else a free one of the service's lastmile pool, else (that pool is full:
    -- the demo's has 65,534 addresses) one of the NAS's own pool
    SELECT s.id, s.login, coalesce(s.ipv4, f.address, '10.128.0.0'::inet + s.id) AS address,
           f.address IS NOT NULL AS pooled, 'open-' || s.id AS uid
    FROM s LEFT JOIN f ON s.ipv4 IS NULL AND f.pool_id = s.pool_id AND f.n = s.n
), x AS (
    INSERT INTO radius_session_index (acct_unique_id, started_at) SELECT uid, now() - interval '1 minute' FROM o
), l AS (
    UPDATE ip_leases SET state = 'bound', service_id = o.id, acct_unique_id = o.uid,
        expires_at = now() + interval '1 hour', updated_at = now()
    FROM o WHERE o.pooled AND ip_leases.address = o.address
)
INSERT INTO radius_sessions (acct_unique_id, started_at, service_id, nas_id, username, acct_session_id, nas_address,
    nas_port_id, calling_station_id, called_station_id, framed_ip, updated_at)
SELECT uid, now() - interval '1 minute', id, (SELECT min(id) FROM nas), login, uid, '127.0.0.1', 'vlan100',
    '4C:5E:0C:00:00:00', 'pppoe-bench', address, now()
FROM o;
ANALYZE;
"""


@dataclass
class Measured:
    daemon: str
    subscribers: int
    sessions: int
    ready_s: float
    rss_mb: float
    snapshot_mb: float


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Caches:
    def __init__(self, work: Path, settle_s: float) -> None:
        self.work = work
        self.settle_s = settle_s
        self.pg: EmbeddedPostgres | None = None
        self.config = work / "lastmile.toml"

    def psql(self, sql: str) -> str:
        assert self.pg is not None
        argv = [str(bin_dir() / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"]
        argv += ["-p", str(self.pg.port), "-U", "postgres", "-d", DATABASE]
        result = subprocess.run(argv, input=sql, capture_output=True, text=True, check=False, timeout=3600)
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()[-800:]}")
        return result.stdout.strip()

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        assert self.pg is not None
        return {**os.environ, "LASTMILE_DATABASE__URL": self.pg.url, "LASTMILE_CONFIG": str(self.config),
                "LASTMILE_LOG__LEVEL": "warning", **(extra or {})}  # fmt: skip

    def lastmile(self, *args: str) -> None:
        result = subprocess.run([LASTMILE, *args], env=self.env(), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"lastmile {' '.join(args)} failed: {result.stderr.strip()[-800:]}")

    def start_db(self) -> None:
        self.config.write_text("# empty: everything through the environment\n")
        self.pg = EmbeddedPostgres(self.work / "pg", servers.free_ports(1)[0], durable=True)
        self.pg.start()
        self.lastmile("db", "init")

    def load(self, customers: int) -> tuple[int, int]:
        """Add demo customers up to ``customers`` and open a session for every active service
        without one; returns (services, open sessions)."""
        have = int(self.psql("SELECT count(*) FROM customers"))
        if customers > have:
            log(f"loading {customers - have:,} demo customers")
            self.lastmile("demo", "--customers", str(customers - have), "--seed", str(have + 1))
        log("an open session for every active service")
        self.psql("DELETE FROM radius_sessions; DELETE FROM radius_session_index; "
                  "UPDATE ip_leases SET state = 'free', service_id = NULL, acct_unique_id = NULL, expires_at = NULL "
                  "WHERE state <> 'free' OR service_id IS NOT NULL;" + OPEN_SESSIONS)  # fmt: skip
        services = int(self.psql("SELECT count(*) FROM services"))
        sessions = int(self.psql("SELECT count(*) FROM radius_sessions WHERE stopped_at IS NULL"))
        self.psql("VACUUM ANALYZE")
        return services, sessions

    def measure(self, daemon: str, subscribers: int, sessions: int) -> Measured:
        base = self.work / f"{daemon}-{subscribers}"
        base.mkdir()
        ports = servers.free_ports(3)
        if daemon == "radiusd":
            extra = {
                "LASTMILE_RADIUSD__BIND": "127.0.0.1",
                "LASTMILE_RADIUSD__AUTH_PORT": str(ports[0]),
                "LASTMILE_RADIUSD__ACCT_PORT": str(ports[1]),
                "LASTMILE_RADIUSD__METRICS_PORT": str(ports[2]),
            }
        else:
            extra = {"LASTMILE_FLOWCOLLECTOR__BIND": "127.0.0.1",
                     "LASTMILE_FLOWCOLLECTOR__NETFLOW_PORT": str(ports[0]),
                     "LASTMILE_FLOWCOLLECTOR__IPFIX_PORT": str(ports[1]),
                     "LASTMILE_FLOWCOLLECTOR__METRICS_PORT": str(ports[2])}  # fmt: skip
        url = f"http://127.0.0.1:{ports[2]}/metrics"
        ready = f'lastmile_ready{{daemon="{daemon}"}} 1.0'
        log_path = base / "daemon.log"
        started = time.perf_counter()
        proc = servers.start([LASTMILE, daemon], log_path, self.work / "pids", self.env(extra), cwd=base)
        try:
            servers.wait_metrics(proc, log_path, url, ready, 1800)
            ready_s = time.perf_counter() - started
            time.sleep(self.settle_s)
            with urllib.request.urlopen(url, timeout=5):
                pass  # one scrape, as Prometheus would do
            rss = max(procstat.rss_mb(proc.pid), default=0.0)
            snapshot_mb = sum(p.stat().st_size for p in base.rglob("cache.snapshot")) / 1e6  # written by now
        finally:
            servers.stop(proc)
        m = Measured(daemon, subscribers, sessions, ready_s, rss, snapshot_mb)
        log(f"{daemon}, {subscribers:,} subscribers, {sessions:,} sessions: ready after {ready_s:.1f} s, "
            f"RSS {rss:,.0f} MB, snapshot {snapshot_mb:,.1f} MB")  # fmt: skip
        return m

    def stop(self) -> None:
        servers.stop_all()
        if self.pg is not None:
            self.pg.stop()


def markdown(rows: list[Measured], date: str) -> str:
    lines = [
        f"## Daemon caches with many subscribers ({date}, bench/scale/caches.py)",
        "",
        "| daemon | services | open sessions | ready after s | RSS MB | snapshot MB | per service over the baseline |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base: dict[str, Measured] = {}
    for r in rows:  # each daemon's smallest run is its baseline
        if r.daemon not in base or r.subscribers < base[r.daemon].subscribers:
            base[r.daemon] = r
    for r in rows:
        b = base[r.daemon]
        extra = r.subscribers - b.subscribers
        per = f"{(r.rss_mb - b.rss_mb) * 1e6 / extra:,.0f} bytes" if extra > 0 else "(baseline)"
        snap = f"{r.snapshot_mb:,.1f}" if r.daemon == "radiusd" else "–"
        lines.append(f"| {r.daemon} | {r.subscribers:,} | {r.sessions:,} | {r.ready_s:.1f} | {r.rss_mb:,.0f} "
                     f"| {snap} | {per} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    subscribers = int(os.environ.get("CACHE_SUBSCRIBERS", "1000000"))
    settle_s = float(os.environ.get("CACHE_SETTLE", "5"))
    daemons = os.environ.get("CACHE_DAEMONS", "radiusd,flowcollector").split(",")
    signal.signal(signal.SIGTERM, _on_signal)
    work = Path(tempfile.mkdtemp(prefix="lastmile-bench-caches."))
    caches = Caches(work, settle_s)
    rows: list[Measured] = []
    try:
        caches.start_db()
        for customers in (1000, subscribers):
            services, sessions = caches.load(customers)
            for daemon in daemons:
                rows.append(caches.measure(daemon, services, sessions))
    except RuntimeError as e:
        log(f"failed: {e}")
        return 1
    finally:
        caches.stop()
        if os.environ.get("CACHE_KEEP") == "1":
            log(f"work files in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    text = markdown(rows, time.strftime("%Y-%m-%d %H:%M"))
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"caches-{time.strftime('%Y-%m-%d')}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
