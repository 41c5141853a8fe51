"""Auth storm after a BRAS reboot (issue #9): lastmile radiusd and FreeRADIUS + SQL in one run.

    BENCH_SCENARIO=storm bench/radius/run.sh                 # 100,000 subscribers (~6 min)
    BENCH_SCENARIO=storm BENCH_QUICK=1 bench/radius/run.sh   # 10,000 subscribers (~1 min)

The scenario
    A BRAS with 100,000 subscribers, all online: each has an open session in the database
    (lastmile's ``radius_sessions``, with its pool address bound in ``ip_leases``; FreeRADIUS's
    ``radacct``), started hours to days ago, last Interim-Update within the last 300 s, as a
    lived-in BRAS has them, besides the bench's history (bench.py: 100,000 closed sessions each,
    and radacct's 10,000 open ones of other NASes). The BRAS reboots: it sends Accounting-On
    (the server closes its sessions), and then every subscriber's router dials at once:
    Access-Request, and for the Accept an Accounting-Start. bras.py is that BRAS: at most
    ``STORM_INFLIGHT`` (256) requests outstanding, a retransmission after ``STORM_TIMEOUT`` (3 s),
    ``STORM_TRIES`` (3) sends of a request in all; a lost or rejected login dials again after
    ``STORM_REDIAL`` (10 s).

What is measured, per server
    * the time from the Accounting-On until every subscriber is online again (its Accept received
      and its Start acknowledged), the Accounting-On's own answer time, and when 50/90/99 % were
      online; the online count every ``STORM_SAMPLE`` seconds (the throughput curve);
    * Access-Requests and Starts sent, retransmitted and lost, redials, rejects, and how many
      subscribers needed a retransmission;
    * CPU seconds of the server's process tree and of PostgreSQL (postmaster and all its
      children), also per sample, from /proc; the generator's own CPU; per login (one
      Access-Request + one Accounting-Start) the CPU of each; the WAL PostgreSQL wrote;
    * afterwards, in the database: every storm session open once, every pre-reboot session closed
      as NAS-Reboot, lastmile's pool addresses bound to the new sessions (and how many pool
      subscribers got their address from before the reboot back), the post-auth rows; radiusd's
      own counters (spooled, dropped, deadlines, pool hand-outs, MQTT events);
    * then (``STORM_INTERIMS=1``, the default) every session's first Interim-Update at once, as
      sessions that started together send them: time, CPU and WAL per request;
    * at the end, the bytes per row of the tables docs/scaling.md counts, and the PostgreSQL CPU
      and WAL of a COPY of 5 minutes of ``traffic_usage`` rows for every subscriber.

The servers (bench.py's SPECS, set up as there; BENCH_SERVERS-like ``STORM_SERVERS``): FreeRADIUS
3.2 + rlm_sql with Simultaneous-Use and post-auth logging (``freeradius-sql-isp``), then lastmile
radiusd (``lastmile``; LASTMILE_RADIUSD__* variables pass through, e.g. WORKERS), one after the
other on the same PostgreSQL. An entry ``lastmile:KEY=VALUE[:KEY=VALUE]`` runs radiusd once more
with those ``[radiusd]`` settings
(``STORM_SERVERS=freeradius-sql-isp,lastmile,lastmile:workers=2``); before a second lastmile
run its tables are put back to the pre-reboot state. The database set-up is bench.py's
(``Bench.setup_database``), with enough demo customers that 100,000 of the active ones dial (one
more, with a static address, is the readiness probe). Results go to
bench/results/storm-<date>[-quick].{md,csv} (and -timeline.csv); figures in docs/benchmarks.md.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import signal
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bras  # noqa: E402
import database  # noqa: E402
import procstat  # noqa: E402
import servers  # noqa: E402
import stormreport  # noqa: E402
import workload  # noqa: E402

import bench  # noqa: E402

ACTIVE_SHARE = 0.94  # demo customers that are active (95 % drawn at random), with a margin
#: radiusd's counters worth reading after a storm (non-zero samples are reported)
METRICS = (
    "lastmile_radiusd_requests_total", "lastmile_radiusd_dropped_total", "lastmile_radiusd_duplicates_total",
    "lastmile_radiusd_db_deadline_total", "lastmile_radiusd_spooled_total", "lastmile_radiusd_replayed_total",
    "lastmile_radiusd_acct_unrecorded_total", "lastmile_radiusd_slow_commits_total",
    "lastmile_radiusd_pool_addresses_total", "lastmile_events_published_total", "lastmile_events_dropped_total",
)  # fmt: skip


def _env(name: str, full: str, quick: str | None = None) -> str:
    quick_mode = os.environ.get("BENCH_QUICK", "0") == "1"
    return os.environ.get(name, quick if quick_mode and quick is not None else full)


@dataclass(frozen=True)
class StormSettings:
    quick: bool
    subscribers: int  # subscribers of the BRAS: all online before, all dialling after
    servers: tuple[str, ...]
    options: bras.Options
    interims: bool  # after each storm, an Interim-Update of every session

    @classmethod
    def from_env(cls) -> StormSettings:
        """STORM_* variables (the second default is BENCH_QUICK=1's); the database and servers
        take bench.py's BENCH_* variables too (BENCH_WORKDIR, BENCH_LOCK, BENCH_RADIUSD...)."""
        return cls(
            quick=_env("BENCH_QUICK", "0") == "1",
            subscribers=int(_env("STORM_SUBSCRIBERS", "100000", "10000")),
            servers=tuple(_env("STORM_SERVERS", "freeradius-sql-isp,lastmile").replace(" ", ",").split(",")),
            interims=_env("STORM_INTERIMS", "1") == "1",
            options=bras.Options(
                inflight=int(_env("STORM_INFLIGHT", "256")),
                timeout_s=float(_env("STORM_TIMEOUT", "3")),
                tries=int(_env("STORM_TRIES", "3")),
                redial_s=float(_env("STORM_REDIAL", "10")),
                limit_s=float(_env("STORM_LIMIT", "1200", "300")),
                sample_s=float(_env("STORM_SAMPLE", "1", "0.25")),
            ),
        )

    def bench_settings(self) -> bench.Settings:
        """bench.py's settings, with enough demo customers for ``subscribers`` active ones."""
        customers = int(self.subscribers / ACTIVE_SHARE) + 100
        return dataclasses.replace(bench.Settings.from_env(), subscribers=customers)


@dataclass
class StormRun:
    """One server's storm."""

    name: str
    label: str
    status: str = "not run"  # ok | not built | failed to start | failed
    result: bras.Result | None = None
    server_cpu_s: float = 0.0
    pg_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    loadavg: float = 0.0
    rcvbuf_errors: int = 0
    postauth_rows: int | None = None
    state: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # radiusd's own counters after the storm
    wal_bytes: int = 0  # WAL PostgreSQL wrote during the storm
    wave: bras.Result | None = None  # the Interim-Update of every session after the storm
    wave_server_cpu_s: float = 0.0
    wave_pg_cpu_s: float = 0.0
    wave_wal_bytes: int = 0
    rss_mb: list[float] = field(default_factory=list)
    check: str = ""
    notes: list[str] = field(default_factory=list)


class Storm:
    def __init__(self, settings: StormSettings) -> None:
        self.s = settings
        self.bench = bench.Bench(settings.bench_settings())
        self.dialers: list[workload.Subscriber] = []
        self.runs: list[StormRun] = []
        self.lastmile_stormed = False
        self.tables: list[tuple[str, int, int]] = []  # (table, rows, bytes) after the storms
        self.copy_note = ""

    @property
    def db(self) -> database.Database:
        assert self.bench.db is not None
        return self.bench.db

    def setup(self) -> None:
        """bench.py's database, then the BRAS's subscribers and their open sessions."""
        b = self.bench
        b.setup_database()
        active = b.subscribers
        probe = next((s for s in active if s.ipv4 and not s.bound_mac), None)
        if probe is None:
            raise RuntimeError("no active subscriber with a static address to probe the servers with")
        self.dialers = [s for s in active if s is not probe][: self.s.subscribers]
        if len(self.dialers) < self.s.subscribers:
            raise RuntimeError(f"only {len(self.dialers):,} active subscribers for {self.s.subscribers:,}")
        b.subscribers = [probe]  # what the readiness probes log in with (never one of the BRAS's)
        bench.log(f"the BRAS's {len(self.dialers):,} subscribers: open sessions (radacct now, lastmile before it runs)")
        self.db.storm_online([s.index for s in self.dialers])
        self.db.storm_radacct(workload.NAS_IP)
        self.db.settle()

    def prepare(self, spec: bench.Spec) -> None:
        """The pre-reboot state of this server's tables: radacct restored to its baseline, or
        lastmile's sessions and leases written (before radiusd starts and loads them)."""
        if spec.uses_sql:
            self.db.reset_freeradius_tables()
        elif spec.setup == "lastmile":
            if self.lastmile_stormed:  # a second lastmile run: back to the state before the first
                self.db.storm_reset_lastmile()
            self.db.storm_sessions()
            self.lastmile_stormed = True
        self.db.checkpoint()

    def measure(self, position: int, spec: bench.Spec, env: dict[str, str]) -> StormRun:
        run = StormRun(spec.name, spec.label)
        b = self.bench
        try:
            self.prepare(spec)
            bench.log(f"{spec.name}: starting")
            server = b.start(spec, env)
        except servers.NotBuilt as e:
            run.status, run.notes = "not built", [str(e)]
            return run
        except (servers.StartFailed, RuntimeError) as e:
            run.status, run.notes = "failed to start", [str(e)]
            bench.log(f"{spec.name}: failed to start: {e}")
            return run
        try:
            self.storm(position, server, run)
            run.status = "ok"
        except (RuntimeError, OSError) as e:
            run.status = "failed"
            run.notes.append(f"{e}; server log: {servers.log_tail(server.log, 400)}")
            bench.log(f"{spec.name}: failed: {e}")
        finally:
            run.rss_mb = procstat.rss_mb(server.proc.pid)
            servers.stop(server.proc)
        return run

    def storm(self, position: int, server: bench.Running, run: StormRun) -> None:
        b = self.bench
        prefix = f"st{position}-"
        nas = bras.Bras("127.0.0.1", server.auth_port, server.acct_port, bench.NAS_SECRET, self.dialers,
                        self.s.options, prefix, cpu=lambda: b.cpu(server))  # fmt: skip
        try:
            nas.prepare()
            with b.lock():
                self.db.checkpoint()
                postauth0 = b.postauth_rows(server)
                (srv0, pg0), errs0, wal0 = b.cpu(server), procstat.udp_rcvbuf_errors(), self.db.wal_bytes()
                run.loadavg = procstat.loadavg()
                own0 = resource.getrusage(resource.RUSAGE_SELF)
                bench.log(f"{server.spec.name}: Accounting-On, then {len(self.dialers):,} subscribers dial")
                result = nas.run()
                own1 = resource.getrusage(resource.RUSAGE_SELF)
                (srv1, pg1), errs1, wal1 = b.cpu(server), procstat.udp_rcvbuf_errors(), self.db.wal_bytes()
            run.result = result
            run.server_cpu_s, run.pg_cpu_s, run.wal_bytes = srv1 - srv0, pg1 - pg0, wal1 - wal0
            run.client_cpu_s = own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime
            run.rcvbuf_errors = errs1 - errs0
            bench.log(f"  {stormreport.summary_line(run)}")
            run.postauth_rows = self.postauth_added(server, postauth0, result.accepted + result.rejected)
            if server.metrics_url:
                run.metrics = scrape(server.metrics_url, METRICS)
            if server.spec.setup == "lastmile":
                run.state = self.db.storm_lastmile_state(prefix)
            else:
                run.state = self.db.storm_radacct_state(prefix)
            run.check = self.verify(server, run)
            bench.log(f"  checks: {run.check}")
            if self.s.interims and result.online == len(self.dialers):
                self.interim_wave(server, nas, run)
        finally:
            nas.close()

    def interim_wave(self, server: bench.Running, nas: bras.Bras, run: StormRun) -> None:
        """Every session of the storm sends its first Interim-Update (sessions that started
        together report together), after a checkpoint, as the steady accounting load does."""
        b = self.bench
        nas.prepare_interims()
        with b.lock():
            self.db.checkpoint()
            (srv0, pg0), wal0 = b.cpu(server), self.db.wal_bytes()
            bench.log(f"{server.spec.name}: an Interim-Update of every session")
            wave = nas.run()
            (srv1, pg1), wal1 = b.cpu(server), self.db.wal_bytes()
        run.wave = wave
        run.wave_server_cpu_s, run.wave_pg_cpu_s, run.wave_wal_bytes = srv1 - srv0, pg1 - pg0, wal1 - wal0
        bench.log(f"  {stormreport.wave_line(run)}")

    def postauth_added(self, server: bench.Running, before: int | None, accepted: int) -> int | None:
        """Post-auth rows written since ``before`` (lastmile writes them in batches: up to 10 s)."""
        if before is None:
            return None
        deadline = time.monotonic() + 10
        while True:
            after = self.bench.postauth_rows(server) or 0
            if after - before >= accepted or time.monotonic() > deadline:
                return after - before
            time.sleep(0.5)

    def verify(self, server: bench.Running, run: StormRun) -> str:
        assert run.result is not None
        n, res, st = len(self.dialers), run.result, run.state
        problems = []
        if res.online != n:
            problems.append(f"{n - res.online:,} of {n:,} subscribers not online after {res.elapsed_s:.0f} s")
        if st.get("open") != n:
            problems.append(f"{st.get('open', 0):,} storm sessions open in the database, of {n:,}")
        if st.get("closed_by_reboot") != n:
            problems.append(f"{st.get('closed_by_reboot', 0):,} pre-reboot sessions closed as NAS-Reboot, of {n:,}")
        for key, what in (("services_twice", "subscribers with two open sessions"),
                          ("addresses_twice", "addresses on two open sessions")):  # fmt: skip
            if st.get(key):
                problems.append(f"{st[key]:,} {what}")
        if server.spec.setup == "lastmile" and st.get("leases_bound") != st.get("pooled"):
            problems.append(f"{st.get('leases_bound', 0):,} pool leases bound, of {st.get('pooled', 0):,}")
        if run.postauth_rows is not None and run.postauth_rows < res.accepted + res.rejected:
            problems.append(f"only {run.postauth_rows:,} post-auth rows for {res.accepted + res.rejected:,} answers")
        if res.rejected:
            problems.append(f"{res.rejected:,} Access-Rejects")
            problems += self.bench.reject_reasons(server, res.rejected)
        return "; ".join(problems) or "ok"

    def run(self) -> None:
        self.setup()
        specs = {s.name: s for s in bench.SPECS}
        for position, entry in enumerate(self.s.servers, start=1):
            name, _, rest = entry.partition(":")
            if name not in specs:
                raise RuntimeError(f"STORM_SERVERS: no server {name!r} (one of {', '.join(specs)})")
            spec, env = specs[name], {}
            if rest:
                if spec.setup != "lastmile":
                    raise RuntimeError(f"STORM_SERVERS: settings are for lastmile only, not {entry!r}")
                pairs = [p.partition("=") for p in rest.split(":")]
                env = {f"LASTMILE_RADIUSD__{k.strip().upper()}": v.strip() for k, _, v in pairs}
                shown = ", ".join(f"{k.strip()} = {v.strip()}" for k, _, v in pairs)
                spec = dataclasses.replace(spec, name=entry.replace(":", "+"), label=f"{spec.label} ({shown})")
            self.runs.append(self.measure(position, spec, env))
        self.measure_tables()

    def measure_tables(self) -> None:
        """Bytes per row of the tables the load model counts (docs/scaling.md), as the storms left
        them, and traffic_usage and traffic_unknown after a COPY of 5 minutes of rows for every
        subscriber; PostgreSQL's CPU per traffic_usage row of that COPY."""
        minutes = 5
        with self.bench.lock():
            self.db.checkpoint()
            pg0, wal0 = procstat.cpu_seconds(self.bench.postmaster), self.db.wal_bytes()
            started = time.perf_counter()
            rows = self.db.copy_traffic([s.index for s in self.dialers], minutes)
            elapsed = time.perf_counter() - started
            pg_us = (procstat.cpu_seconds(self.bench.postmaster) - pg0) * 1e6 / rows
            wal = (self.db.wal_bytes() - wal0) / rows
        self.copy_note = (
            f"COPY of {rows:,} traffic_usage rows ({minutes} minutes x {len(self.dialers):,} services, text format "
            f"from psql, with {minutes * 1000:,} traffic_unknown rows): {elapsed:.1f} s, PostgreSQL CPU {pg_us:.1f} µs "
            f"per traffic_usage row and {wal:,.0f} bytes of WAL (after a checkpoint)"
        )
        bench.log(self.copy_note)
        self.db.run("ANALYZE")
        for table in ("radius_sessions", "radius_session_index", "radius_postauth", "ip_leases", "traffic_usage",
                      "traffic_unknown", "freeradius.radacct", "freeradius.radpostauth"):  # fmt: skip
            rows_now, size = self.db.table_bytes(table)
            self.tables.append((table, rows_now, size))

    def environment(self) -> dict[str, str]:
        env = self.bench.environment()
        o = self.s.options
        env["subscribers"] = (
            f"{len(self.dialers):,} on one BRAS (of {self.bench.s.subscribers:,} demo customers), all online before "
            f"the reboot: {sum(1 for s in self.dialers if not s.ipv4):,} with lastmile pool addresses"
        )
        env["radius_sessions"] = (
            f"{len(self.dialers):,} open sessions of the BRAS (pool addresses bound) + "
            f"{self.bench.s.radacct_history:,} closed ones (history)"
        )
        env["radacct"] = (
            f"{len(self.dialers):,} open sessions of the BRAS + {self.bench.s.radacct_history:,} closed + "
            f"{self.bench.s.radacct_online:,} open of other NASes; (UserName, AcctStopTime) index: "
            + ("yes" if self.bench.s.fr_simul_index else "no (stock schema)")
        )
        env["bras"] = (
            f"{o.inflight} requests in flight at most, retransmission after {o.timeout_s:g} s, {o.tries} tries, "
            f"redial {o.redial_s:g} s after a lost or rejected login, limit {o.limit_s:g} s"
        )
        env["radiusd settings"] = ", ".join(
            f"{k.removeprefix('LASTMILE_RADIUSD__').lower()}={v}" for k, v in sorted(os.environ.items())
            if k.startswith("LASTMILE_RADIUSD__")
        ) or "defaults (workers = 1)"  # fmt: skip
        return env


def scrape(url: str, names: tuple[str, ...]) -> dict[str, float]:
    """The non-zero samples of the metrics ``names`` at ``url`` (sample with its labels → value)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        sample, value = line.rsplit(" ", 1)
        if sample.split("{", 1)[0] in names and float(value):
            found[sample] = float(value)
    return found


def _on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    settings = StormSettings.from_env()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    storm = Storm(settings)
    try:
        storm.run()
        paths = stormreport.write(
            storm.runs, storm.environment(), storm.bench.s.results, settings.quick, storm.tables, storm.copy_note
        )
    except RuntimeError as e:
        bench.log(f"failed: {e}")
        return 1
    except (KeyboardInterrupt, SystemExit):
        bench.log("interrupted: stopping everything this run started")
        raise
    finally:
        storm.bench.cleanup()
    print(paths[0].read_text())
    bench.log("results: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
