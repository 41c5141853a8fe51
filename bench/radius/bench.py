"""RADIUS benchmark (issue #3): lastmile radiusd against FreeRADIUS 3.2, in one run on this machine.

(The other scenario of this folder, the auth storm after a BRAS reboot of issue #9, is storm.py:
``BENCH_SCENARIO=storm bench/radius/run.sh``; it reuses this module's database set-up and servers.)

What runs
    One embedded PostgreSQL (lastmile's ``daemons.pgembed``, durable: fsync and synchronous
    commit on) with lastmile's schema and ``lastmile demo`` subscribers (100,000; ~95% of them
    active, and only those are used by the load). FreeRADIUS's stock tables live in the schema
    ``freeradius`` of the same database, radacct with a lived-in baseline (100,000 closed
    sessions of the subscribers, 10,000 open ones of other users) and the (UserName,
    AcctStopTime) index of FreeRADIUS's tuning guide (BENCH_FR_SIMUL_INDEX=0: stock schema only),
    restored before every FreeRADIUS+SQL measurement. lastmile's ``radius_sessions`` gets the
    same history (100,000 closed sessions of the subscribers, this month), so neither server
    starts on empty tables. The servers, one after the other, on private ports of 127.0.0.1:

    * ``freeradius-sql``: rlm_sql reading lastmile's ``services`` directly, accounting into
      radacct (stock queries);
    * ``freeradius-sql-isp``: the same plus Simultaneous-Use (stock simul_count_query on
      radacct) and post-auth logging (radpostauth), as ISPs run it;
    * ``freeradius-files``: a users file of the same subscribers, accounting to a detail file;
    * ``lastmile``: ``lastmile radiusd`` (reported as "not built" while it says so).

    freeradius.py has the FreeRADIUS configuration.

What is expected of ``lastmile radiusd``
    It is started as ``.venv/bin/lastmile radiusd`` (or $BENCH_RADIUSD radiusd) in a directory
    of its own, with LASTMILE_CONFIG naming an empty TOML file and LASTMILE_DATABASE__URL,
    LASTMILE_RADIUSD__BIND=127.0.0.1, LASTMILE_RADIUSD__AUTH_PORT, __ACCT_PORT and
    __METRICS_PORT (free ports), LASTMILE_LOG__LEVEL=warning; any other LASTMILE_* variable
    (LASTMILE_RADIUSD__WORKERS...) passes through. It is ready when
    http://127.0.0.1:METRICS_PORT/metrics has ``lastmile_ready{daemon="radiusd"} 1.0`` and an
    Access-Request of a demo subscriber gets an Access-Accept (BENCH_READY_TIMEOUT, 120 s). Exit
    code 2 with "not built yet" makes its rows "not built". The demo NAS (127.0.0.1/32, secret
    lastmile-demo-secret) sends everything; the sessions of each accounting run must be in
    radius_sessions (Acct-Session-Id, stopped_at) when the run ends, and the rows of
    radius_postauth grow by one per Access-Accept (counted, within 10 s). It is stopped with
    SIGTERM (SIGKILL after 20 s); CPU and memory are those of its whole process tree.

What is measured, per server
    * Maximum rate: radclient (freeradius-utils), from separate processes, keeps 256 requests in
      flight (2 streams of ``-p 128``, see loader.py). PAP Access-Requests with
      Message-Authenticator, the active subscribers in random order, correct passwords; and
      Accounting-Request sessions (Start, 2 Interim-Updates, Stop; unique Acct-Session-Ids,
      MikroTik attributes and counters). A short probe run sizes the timed runs to about
      BENCH_SECONDS each; the median of BENCH_RUNS runs is reported.
    * CPU per request: utime+stime (+ reaped children) from /proc before and after each run, of
      the server's process tree and of the PostgreSQL postmaster with all its children
      (backends, WAL writer, checkpointer...), divided by the requests. Client and server share
      the cores, so CPU per request is the steadier figure; radclient's own CPU is shown too.
    * Latency: latency.py sends Access-Requests at a fixed rate, half the server's median
      maximum rate, and reports p50/p90/p99/p99.9 (radclient cannot pace its requests).
    * Memory: the largest RSS of any one process of the server (per worker) after the runs.
    * Correctness: every Access-Request answered with Access-Accept (radclient's summary);
      every accounting session present and stopped in the database afterwards (radacct,
      lastmile's radius_sessions) or in the detail file; post-auth rows counted.

Settings come from the environment (BENCH_QUICK=1: 10,000 subscribers and short runs); see
Settings.from_env. Results go to bench/results/radius-<date>.{csv,md}.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # daemons.pgembed

import database  # noqa: E402
import freeradius  # noqa: E402
import loader  # noqa: E402
import procstat  # noqa: E402
import report  # noqa: E402
import servers  # noqa: E402
import workload  # noqa: E402
from report import LatencyResult, Run, ServerResult  # noqa: E402

from daemons.pgembed import DATABASE, EmbeddedPostgres, bin_dir  # noqa: E402

LASTMILE = str(ROOT / ".venv" / "bin" / "lastmile")
NAS_SECRET = "lastmile-demo-secret"  # daemons/demo.py's demo NAS, 127.0.0.1/32
READY_LINE = 'lastmile_ready{daemon="radiusd"} 1.0'


def _env(name: str, full: str, quick: str | None = None) -> str:
    quick_mode = os.environ.get("BENCH_QUICK", "0") == "1"
    return os.environ.get(name, quick if quick_mode and quick is not None else full)


@dataclass(frozen=True)
class Settings:
    quick: bool
    subscribers: int
    seconds: float  # length of a timed run
    runs: int
    latency_seconds: float
    probe_requests: int
    min_requests: int
    max_requests: int
    chunk: int
    interims: int
    radacct_history: int
    radacct_online: int
    fr_max_servers: int
    fr_simul_index: bool
    servers: tuple[str, ...]
    workdir: Path
    results: Path
    lock: Path
    ready_timeout: float
    seed: int
    radiusd: str  # the lastmile command that runs radiusd
    client: loader.Options

    @classmethod
    def from_env(cls) -> Settings:
        """BENCH_* variables; the second default is BENCH_QUICK=1's. BENCH_SECONDS is the length
        of a timed run (its size comes from the probe run's rate, within BENCH_MIN_REQUESTS and
        BENCH_MAX_REQUESTS); BENCH_SERVERS a comma-separated subset of the SPECS names;
        BENCH_RADIUSD another ``lastmile`` executable; BENCH_LOCK the file that serialises timed
        runs with other benchmarks; BENCH_RUN_LIMIT stops a run that hangs."""
        return cls(
            quick=_env("BENCH_QUICK", "0") == "1",
            subscribers=int(_env("BENCH_SUBSCRIBERS", "100000", "10000")),
            seconds=float(_env("BENCH_SECONDS", "12", "3")),
            runs=int(_env("BENCH_RUNS", "3", "1")),
            latency_seconds=float(_env("BENCH_LATENCY_SECONDS", "10", "3")),
            probe_requests=int(_env("BENCH_PROBE_REQUESTS", "4000", "2000")),
            min_requests=int(_env("BENCH_MIN_REQUESTS", "5000", "2000")),
            max_requests=int(_env("BENCH_MAX_REQUESTS", "600000")),
            chunk=int(_env("BENCH_CHUNK", "5000")),
            interims=int(_env("BENCH_INTERIMS", "2")),
            radacct_history=int(_env("BENCH_RADACCT_HISTORY", "100000", "10000")),
            radacct_online=int(_env("BENCH_RADACCT_ONLINE", "10000", "1000")),
            fr_max_servers=int(_env("BENCH_FR_MAX_SERVERS", "32")),
            fr_simul_index=_env("BENCH_FR_SIMUL_INDEX", "1") == "1",
            servers=tuple(_env("BENCH_SERVERS", ",".join(s.name for s in SPECS)).replace(" ", ",").split(",")),
            workdir=Path(_env("BENCH_WORKDIR", "/tmp/lastmile-bench-radius")),
            results=Path(_env("BENCH_RESULTS", str(ROOT / "bench" / "results"))),
            lock=Path(_env("BENCH_LOCK", "/tmp/bench.lock")),
            ready_timeout=float(_env("BENCH_READY_TIMEOUT", "120")),
            seed=int(_env("BENCH_SEED", "1")),
            radiusd=_env("BENCH_RADIUSD", LASTMILE),
            client=loader.Options(
                parallel=int(_env("BENCH_PARALLEL", "256")),
                streams=int(_env("BENCH_STREAMS", "2")),
                timeout_s=int(_env("BENCH_RC_TIMEOUT", "3")),
                retries=int(_env("BENCH_RC_RETRIES", "3")),
                run_limit_s=float(_env("BENCH_RUN_LIMIT", "300")),
            ),
        )


@dataclass(frozen=True)
class Spec:
    name: str
    label: str
    setup: str  # a freeradius.SETUPS entry, or "lastmile"
    workloads: tuple[str, ...]

    @property
    def uses_sql(self) -> bool:
        return self.setup.startswith("sql")


SPECS = (
    Spec("freeradius-sql", "FreeRADIUS + SQL", "sql", ("auth", "acct")),
    Spec("freeradius-sql-isp", "FreeRADIUS + SQL, Simultaneous-Use + post-auth log", "sql+simul+postauth", ("auth",)),
    Spec("freeradius-files", "FreeRADIUS `files` (acct: detail file)", "files", ("auth", "acct")),
    Spec("lastmile", "lastmile radiusd", "lastmile", ("auth", "acct")),
)


@dataclass
class Running:
    """A server under test, started and answering."""

    spec: Spec
    proc: subprocess.Popen[bytes]
    log: Path
    base: Path
    auth_port: int
    acct_port: int
    metrics_url: str = ""  # lastmile's /metrics ("" for FreeRADIUS)
    rss_mb: list[float] = field(default_factory=list)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Bench:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.work = settings.workdir
        self.pid_file = self.work / "pids"
        self.pg: EmbeddedPostgres | None = None
        self.db: database.Database | None = None
        self.subscribers: list[workload.Subscriber] = []
        self.subs_file = self.work / "subscribers.tsv"
        self.config_file = self.work / "lastmile.toml"
        self.results: list[ServerResult] = []
        self.started = time.time()
        self.lock_wait_s = 0.0

    # -- setup ---------------------------------------------------------------------------------

    def lastmile_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        assert self.pg is not None
        return servers.environ(
            {"LASTMILE_DATABASE__URL": self.pg.url, "LASTMILE_CONFIG": str(self.config_file), **(extra or {})}
        )

    def setup_database(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        if any(self.work.iterdir()):
            raise RuntimeError(f"{self.work} is not empty (BENCH_WORKDIR must name an empty directory)")
        self.config_file.write_text("# empty: the benchmark sets everything through the environment\n")
        port = servers.free_ports(1)[0]
        self.pg = EmbeddedPostgres(self.work / "pg", port, durable=True)
        log(f"PostgreSQL: starting on 127.0.0.1:{port} (data in {self.pg.datadir})")
        self.pg.start()
        self._record_postmaster()
        self.db = database.Database(port)
        self._lastmile("db", "init")
        log(f"loading {self.s.subscribers:,} demo customers")
        self._lastmile("demo", "--customers", str(self.s.subscribers), "--seed", str(self.s.seed))
        log("FreeRADIUS tables (schema freeradius) and the radacct baseline")
        self.db.create_freeradius_tables()
        self.db.fill_radacct_baseline(self.s.radacct_history, self.s.radacct_online)
        self.db.fill_sessions_baseline(self.s.radacct_history)
        if self.s.fr_simul_index:
            self.db.add_simul_index()
        self.subscribers = [
            workload.Subscriber(int(i), login, pw, ip, rate, mac)
            for i, login, pw, ip, rate, mac in self.db.active_services()
        ]
        workload.write_subscribers(self.subs_file, self.subscribers)
        self.db.settle()
        log(f"{len(self.subscribers):,} active subscribers (active service of an active customer) in the load")

    def _record_postmaster(self) -> None:
        cmdline = Path(f"/proc/{self.postmaster}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        with self.pid_file.open("a") as f:
            f.write(f"{self.postmaster}\t{cmdline}\n")

    def _lastmile(self, *args: str) -> None:
        result = subprocess.run([LASTMILE, *args], env=self.lastmile_env(), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"lastmile {' '.join(args)} failed: {result.stderr.strip()[-800:]}")

    @property
    def postmaster(self) -> int:
        assert self.pg is not None
        return int((self.pg.datadir / "postmaster.pid").read_text().split()[0])

    # -- servers -------------------------------------------------------------------------------

    def start(self, spec: Spec, env: dict[str, str] | None = None) -> Running:
        """Start the server of ``spec`` on free ports; return once it accepts a subscriber.
        ``env``: more variables for lastmile radiusd (settings of one run)."""
        auth_port, acct_port, metrics_port = servers.free_ports(3)
        base = self.work / spec.name
        base.mkdir(parents=True, exist_ok=True)
        log_path = base / "server.log"
        if spec.setup == "lastmile":
            proc = self._start_lastmile(base, log_path, auth_port, acct_port, metrics_port, env)
            ready = f"http://127.0.0.1:{metrics_port}/metrics"
        else:
            proc = self._start_freeradius(spec.setup, base, log_path, auth_port, acct_port)
            ready = ""
        try:
            if ready:
                servers.wait_metrics(proc, log_path, ready, READY_LINE, self.s.ready_timeout)
            servers.wait_radius(proc, log_path, auth_port, NAS_SECRET, self.subscribers[0], self.s.ready_timeout)
        except Exception:
            servers.stop(proc)
            raise
        return Running(spec, proc, log_path, base, auth_port, acct_port, ready)

    def _start_lastmile(
        self, base: Path, log_path: Path, auth_port: int, acct_port: int, metrics_port: int,
        extra: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:  # fmt: skip
        env = self.lastmile_env(
            {
                "LASTMILE_RADIUSD__BIND": "127.0.0.1",
                "LASTMILE_RADIUSD__AUTH_PORT": str(auth_port),
                "LASTMILE_RADIUSD__ACCT_PORT": str(acct_port),
                "LASTMILE_RADIUSD__METRICS_PORT": str(metrics_port),
                "LASTMILE_LOG__LEVEL": "warning",
                **(extra or {}),
            }
        )
        return servers.start([self.s.radiusd, "radiusd"], log_path, self.pid_file, env, cwd=base)

    def _start_freeradius(
        self, setup: str, base: Path, log_path: Path, auth_port: int, acct_port: int
    ) -> subprocess.Popen[bytes]:
        assert self.pg is not None
        raddb = freeradius.make_raddb(
            base, setup, auth_port, acct_port, NAS_SECRET, self.pg.port, DATABASE, self.subscribers,
            self.s.fr_max_servers,
        )  # fmt: skip
        freeradius.check(raddb)
        return servers.start(freeradius.command(raddb), log_path, self.pid_file, cwd=base)

    # -- one timed run -------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Only one benchmark run at a time on this machine (same lock file as shared/bench)."""
        with self.s.lock.open("a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"waiting for {self.s.lock} (another benchmark is running)")
                waited = time.monotonic()
                fcntl.flock(f, fcntl.LOCK_EX)
                self.lock_wait_s += time.monotonic() - waited
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def prepare(self, server: Running) -> None:
        assert self.db is not None
        if server.spec.uses_sql:
            self.db.reset_freeradius_tables()
        self.db.checkpoint()

    def cpu(self, server: Running) -> tuple[float, float]:
        return procstat.cpu_seconds(server.proc.pid), procstat.cpu_seconds(self.postmaster)

    def timed_run(self, server: Running, kind: str, chunks: workload.Chunks, number: int, prefix: str) -> Run:
        port = server.auth_port if kind == "auth" else server.acct_port
        with self.lock():
            self.prepare(server)
            postauth0 = self.postauth_rows(server)
            (srv0, pg0), errs0, load0 = self.cpu(server), procstat.udp_rcvbuf_errors(), procstat.loadavg()
            client = loader.run(chunks.directory, f"127.0.0.1:{port}", kind, NAS_SECRET, self.s.client)
            (srv1, pg1), errs1 = self.cpu(server), procstat.udp_rcvbuf_errors()
        server.rss_mb = _larger(server.rss_mb, procstat.rss_mb(server.proc.pid))
        run = Run(
            server=server.spec.name,
            workload=kind,
            run=number,
            requests=chunks.requests,
            accepted=client.accepted,
            rejected=client.rejected,
            lost=client.lost,
            elapsed_s=client.elapsed_s,
            server_cpu_s=srv1 - srv0,
            pg_cpu_s=pg1 - pg0,
            client_cpu_s=client.client_cpu_s,
            loadavg=load0,
            rcvbuf_errors=errs1 - errs0,
        )
        run.check = self.verify(server, run, chunks, prefix, postauth0, client.errors)
        return run

    # -- correctness ---------------------------------------------------------------------------

    def postauth_rows(self, server: Running) -> int | None:
        assert self.db is not None
        if server.spec.setup == "sql+simul+postauth":
            return self.db.count("freeradius.radpostauth")
        if server.spec.setup == "lastmile":
            return self.db.count("radius_postauth")
        return None

    def verify(
        self, server: Running, run: Run, chunks: workload.Chunks, prefix: str, postauth0: int | None, errors: list[str]
    ) -> str:
        problems = [f"radclient: {e}" for e in errors[:2]]
        if run.accepted != run.requests or run.rejected or run.lost:
            problems.append(f"{run.accepted} of {run.requests} acknowledged, {run.rejected} rejected, {run.lost} lost")
            problems += self.reject_reasons(server, run.rejected)
        if run.workload == "acct":
            problems += self.verify_sessions(server, chunks, prefix)
        elif postauth0 is not None:
            problems += self.verify_postauth(server, run, postauth0)
        return "; ".join(problems) or "ok"

    def verify_sessions(self, server: Running, chunks: workload.Chunks, prefix: str) -> list[str]:
        assert self.db is not None
        if server.spec.setup == "files":
            found = self.detail_records(server, prefix)
            want = chunks.requests
            return [] if found == want else [f"detail file: {found} of {want} records"]
        try:
            if server.spec.setup == "lastmile":
                total, stopped = self.db.lastmile_sessions(prefix)
            else:
                total, stopped = self.db.radacct_sessions(prefix)
        except RuntimeError as e:
            return [f"cannot count sessions: {e}"]
        if (total, stopped) != (chunks.sessions, chunks.sessions):
            return [f"{total} sessions stored, {stopped} stopped, of {chunks.sessions}"]
        return []

    def verify_postauth(self, server: Running, run: Run, before: int) -> list[str]:
        deadline = time.monotonic() + 10  # lastmile may write its post-auth log in batches
        while True:
            after = self.postauth_rows(server) or 0
            if after - before >= run.accepted or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        logged = after - before
        run.notes.append(f"post-auth rows +{logged}")
        return [] if logged >= run.accepted else [f"only {logged} post-auth rows for {run.accepted} accepts"]

    @staticmethod
    def detail_records(server: Running, prefix: str) -> int:
        needle = f'Acct-Session-Id = "{prefix}'
        total = 0
        for path in (server.base / "log" / "radacct").rglob("detail-*"):
            with path.open(errors="replace") as f:
                total += sum(1 for line in f if needle in line)
        return total

    # -- workloads -----------------------------------------------------------------------------

    def write_chunks(self, server: Running, kind: str, count: int, tag: str) -> tuple[workload.Chunks, str]:
        directory = server.base / f"{kind}-{tag}"
        prefix = f"{tag}-"
        seed = self.s.seed * 1_000_000 + zlib.crc32(tag.encode())
        if kind == "auth":
            chunk = min(self.s.chunk, -(-count // self.s.client.streams))
            chunks = workload.write_auth(directory, self.subscribers, count, chunk, seed)
        else:
            sessions = max(1, count // (self.s.interims + 2))
            chunk = min(self.s.chunk, -(-sessions // self.s.client.streams))
            chunks = workload.write_acct(
                directory, self.subscribers, sessions, self.s.interims, prefix, chunk, seed, int(time.time())
            )
        return chunks, prefix

    def measure(self, server: Running, kind: str, index: int) -> list[Run]:
        """A probe run to size the timed runs, then the timed runs."""
        tag = f"b{index}{kind[:2]}"  # b1au, b1ac, ...: Acct-Session-Ids b1ac2-0000002a
        chunks, prefix = self.write_chunks(server, kind, self.s.probe_requests, f"{tag}0")
        probe = self.timed_run(server, kind, chunks, 0, prefix)
        log(f"  {kind} probe: {probe.rate:,.0f} req/s ({probe.check})")
        count = int(min(self.s.max_requests, max(self.s.min_requests, probe.rate * self.s.seconds)))
        runs = []
        for number in range(1, self.s.runs + 1):
            chunks, prefix = self.write_chunks(server, kind, count, f"{tag}{number}")
            run = self.timed_run(server, kind, chunks, number, prefix)
            log(f"  {kind} run {number}: {report.run_line(run)}")
            runs.append(run)
        return runs

    def latency(self, server: Running, rate: float) -> LatencyResult:
        argv = [sys.executable, str(HERE / "latency.py"), "--port", str(server.auth_port), "--secret", NAS_SECRET]
        argv += ["--rate", f"{rate:.0f}", "--seconds", str(self.s.latency_seconds)]
        argv += ["--subscribers", str(self.subs_file), "--seed", str(self.s.seed)]
        with self.lock():
            self.prepare(server)
            srv0, pg0 = self.cpu(server)
            result = subprocess.run(argv, capture_output=True, text=True, check=False)
            srv1, pg1 = self.cpu(server)
        if result.returncode != 0:
            raise RuntimeError(f"latency.py failed: {result.stderr.strip()[-800:]}")
        data = json.loads(result.stdout)
        lat = LatencyResult(server=server.spec.name, **data)
        answered = max(1, lat.answered)
        lat.server_cpu_us = (srv1 - srv0) * 1e6 / answered
        lat.pg_cpu_us = (pg1 - pg0) * 1e6 / answered
        counts = {"rejected": lat.rejected, "invalid replies": lat.invalid, "lost": lat.lost}
        problems = [f"{n:,} {what}" for what, n in counts.items() if n]
        problems += self.reject_reasons(server, lat.rejected)
        lat.check = "; ".join(problems) or "ok"
        return lat

    def reject_reasons(self, server: Running, rejected: int) -> list[str]:
        """Why lastmile rejected (its radius_postauth log), when it rejected anything."""
        if not rejected or server.spec.setup != "lastmile":
            return []
        assert self.db is not None
        try:
            return [f"lastmile's reasons so far: {self.db.lastmile_rejects()}"]
        except RuntimeError as e:
            return [f"reasons unknown: {e}"]

    def measure_server(self, index: int, spec: Spec) -> ServerResult:
        result = ServerResult(spec.name, spec.label)
        try:
            log(f"{spec.name}: starting")
            server = self.start(spec)
        except servers.NotBuilt as e:
            result.status = "not built"
            result.notes.append(str(e))
            log(f"{spec.name}: not built ({e})")
            return result
        except (servers.StartFailed, RuntimeError) as e:
            result.status = "failed to start"
            result.notes.append(str(e))
            log(f"{spec.name}: failed to start: {e}")
            return result
        try:
            self.run_workloads(index, server, result)
        except (RuntimeError, OSError) as e:
            result.status = "failed"
            result.notes.append(f"{e}; server log: {servers.log_tail(server.log, 400)}")
            log(f"{spec.name}: failed: {e}")
        finally:
            result.rss_mb = server.rss_mb
            servers.stop(server.proc)
        return result

    def run_workloads(self, index: int, server: Running, result: ServerResult) -> None:
        for kind in server.spec.workloads:
            result.runs += self.measure(server, kind, index)
            if kind == "auth":
                rate = statistics.median(r.rate for r in result.runs if r.workload == "auth") / 2
                result.latency = self.latency(server, rate)
                log(f"  latency at {rate:,.0f} req/s: {report.latency_line(result.latency)}")
        result.status = "ok"

    # -- the whole run -------------------------------------------------------------------------

    def run(self) -> None:
        self.setup_database()
        for index, spec in enumerate(SPECS, start=1):
            if spec.name in self.s.servers:
                self.results.append(self.measure_server(index, spec))

    def environment(self) -> dict[str, str]:
        assert self.pg is not None
        postgres = _output([str(bin_dir() / "postgres"), "--version"])
        commit = _output(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
        return {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "host": f"{platform.node()}: {os.cpu_count()} CPUs ({_cpu_model()}), Linux {platform.release()}",
            "freeradius": freeradius.version(),
            "postgresql": postgres.split()[-1] + " (embedded, fsync and synchronous_commit on)",
            "python": platform.python_version(),
            "lastmile": f"git {commit or '?'}",
            "subscribers": f"{self.s.subscribers:,} demo customers, {len(self.subscribers):,} active in the load",
            "radacct": f"{self.s.radacct_history:,} closed + {self.s.radacct_online:,} open sessions, restored before "
            "each FreeRADIUS+SQL run; (UserName, AcctStopTime) index for Simultaneous-Use: "
            + ("yes" if self.s.fr_simul_index else "no (stock schema)"),
            "radius_sessions": f"{self.s.radacct_history:,} closed sessions of the subscribers (lastmile's lived-in "
            "history, as radacct's)",
            "mode": "quick" if self.s.quick else "full",
            "duration": f"{time.time() - self.started:.0f} s, of which {self.lock_wait_s:.0f} s waiting for "
            f"{self.s.lock} (held by another benchmark)",
        }

    def cleanup(self) -> None:
        loader.kill_all()
        servers.stop_all()
        if self.pg is not None:
            with contextlib.suppress(Exception):
                self.pg.stop()


def _output(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    return result.stdout.strip()


def _larger(a: list[float], b: list[float]) -> list[float]:
    """The RSS sample whose largest process is larger."""
    return b if max(b, default=0) > max(a, default=0) else a


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def _on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    settings = Settings.from_env()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    bench = Bench(settings)
    try:
        bench.run()
        paths = report.write(bench.results, bench.environment(), settings.results, settings.quick)
    except RuntimeError as e:  # setup failed (a failing server is reported, not raised)
        log(f"failed: {e}")
        return 1
    except (KeyboardInterrupt, SystemExit):
        log("interrupted: stopping everything this run started")
        raise
    finally:
        bench.cleanup()
    print(paths[1].read_text())
    log(f"results: {paths[0]} and {paths[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
