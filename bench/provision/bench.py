#!/usr/bin/env python3
"""provisiond benchmark: 20 RouterOS doubles with 500 services each (the issue's targets).

What is measured, in one run (``bench/provision/run.sh``):

(a) **first full reconcile from empty**: ``lastmile provisiond`` starts against 20 empty
    routers (RouterOS API doubles, tests/fakes/routeros.py, one process each) and a database of
    10,000 services (500 per router, each with a static /32 and its own customer, ~4 % of the
    customers blocked): a simple queue per service, the blocked ones' addresses in the blocked
    address list (``[provisiond] blocked_list``, its default). Timed from the daemon's start, and
    apart from its readiness (``lastmile_ready{daemon="provisiond"} 1`` on its /metrics), until
    every router's ``router_sync`` row has a ``last_success_at`` (the time is the latest of
    those); then the routers are asked (``print =count-only=``) whether they hold every expected
    object.
(b) **no-change pass**: ``UPDATE routers SET updated_at = now()`` (its NOTIFY marks every router),
    timed from the commit until every ``router_sync.generation`` has moved on (the latest
    ``last_success_at``); every run must write nothing (adds, sets, removes all 0). Several passes,
    each after provisiond went quiet.
(c) **propagation**: one streaming session per router (``/ip/firewall/address-list/listen``,
    rosapi.py) records when each entry appears and goes. 1,000 changes, each its own committed
    ``UPDATE customers SET status = 'blocked'|'active' WHERE id = ...``, at a steady rate
    (50/s): blocks of random active customers, each unblocked again 5 to 10 s later (blocks alone
    for the first 5 s, then blocks and unblocks alternating, unblocks alone for the last 5 s), while
    every router is also touched every 2 s (a full run of all of them in the background).
    Latency = the entry's appearance (block) or disappearance (unblock) on the router's stream
    minus the time the UPDATE's commit was acknowledged. A change that does not arrive within
    10 s (or before the customer's unblock) is a counted failure; percentiles count it as
    infinite. Afterwards every router must hold exactly the blocked entries of the start.
    (c2) Then the same again (other customers) with no background touches, so that what the
    changes cost by themselves shows beside it (reported, not judged against the target). It
    starts ``BENCH_FOLLOW_UP`` (32) s after (c)'s last change: provisiond follows the targeted
    runs of blocks with a full run of the router within 30 s (docs/operations.md, "When"), and
    those would otherwise land in (c2).
(d) **provisiond's memory and CPU**: VmHWM from /proc/<pid>/status at the end (and VmRSS sampled
    every 100 ms), CPU seconds from /proc/<pid>/stat per phase: per object written in (a), per
    pass in (b); the doubles', PostgreSQL's, the driver's and everyone else's CPU apart.

Set-up: an embedded PostgreSQL (``daemons.pgembed``) in the work directory, ``lastmile db init``,
a secret key file (the routers' passwords sealed with it), the rows loaded with COPY. provisiond
runs with ``LASTMILE_PROVISIOND__FULL_INTERVAL=3600`` (only the benchmark triggers runs),
no MQTT, JSON logs, and an empty settings file (``LASTMILE_CONFIG``: neither
/etc/lastmile/lastmile.toml nor ./lastmile.toml is read); everything else is its default.

The run holds ``/tmp/bench.lock`` (as the other benchmarks do), waiting for it first; then,
before the timed phases, it waits (up to ``BENCH_QUIET_WAIT`` s in all) until the rest of the
machine uses less than a quarter of a core (another benchmark's unlocked set-up, a test run),
and reports what the others used during each phase all the same.
Results: a Markdown report on stdout and in ``bench/results/provision-<date>[-quick].md``, each
change's times in the ``.csv`` beside it.

Settings (environment): BENCH_QUICK=1 (5 routers x 100 services, 200 changes, 2 passes),
BENCH_ROUTERS=20, BENCH_SERVICES=500 (per router), BENCH_CHANGES=1000, BENCH_RATE=50 (changes/s),
BENCH_UNBLOCK_AFTER=10 (s), BENCH_TOUCH_INTERVAL=2 (s), BENCH_TIMEOUT=10 (s), BENCH_PASSES=5,
BENCH_QUIET_PROPAGATION=1 (0: no (c2)), BENCH_FOLLOW_UP=32 (s),
BENCH_BLOCKED_SHARE=0.04, BENCH_SEED=1, BENCH_FIRST_TIMEOUT=180 (s), BENCH_RESULTS=bench/results,
BENCH_LOCK=/tmp/bench.lock, BENCH_LOCK_WAIT=1800 (s), BENCH_QUIET_WAIT=300 (s),
BENCH_WORKDIR (run.sh makes one).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import hashlib
import json
import math
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import asyncpg
import uvloop

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "radius"))  # procstat: CPU of process trees, as the radius bench counts it

import benchkit  # noqa: E402
import dataset  # noqa: E402
import fleet  # noqa: E402
import procstat  # noqa: E402
import rosapi  # noqa: E402
from benchkit import percentile  # noqa: E402

from daemons.config import SecretsSettings  # noqa: E402
from daemons.pgembed import EmbeddedPostgres, bin_dir  # noqa: E402
from daemons.provisiond.settings import ProvisiondSettings  # noqa: E402
from daemons.secrets import Keyring  # noqa: E402

LASTMILE = ROOT / ".venv" / "bin" / "lastmile"
BLOCKED_LIST = ProvisiondSettings().blocked_list  # provisiond's default, which it runs with
QUEUE = "/queue/simple"
TARGET_FIRST_S = 10.0
TARGET_NOCHANGE_S = 2.0
TARGET_P99_S = 1.0
TARGET_RSS_MB = 150.0


def log(text: str) -> None:
    print(f"bench/provision: {text}", file=sys.stderr, flush=True)


class Failed(Exception):
    """A phase could not be measured (provisiond exited, never finished, ...): said in the report."""


# --- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    quick: bool
    routers: int
    per_router: int
    changes: int
    rate: float
    unblock_after: float
    touch_interval: float
    timeout: float
    passes: int
    quiet_propagation: bool
    follow_up: float
    blocked_share: float
    seed: int
    first_timeout: float
    results: Path
    lock: Path
    lock_wait: float
    quiet_wait: float
    work: Path

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        quick = env("BENCH_QUICK", "0") not in ("", "0")
        work = env("BENCH_WORKDIR")
        if not work:
            raise SystemExit("bench/provision: BENCH_WORKDIR is not set (run bench/provision/run.sh)")
        return cls(
            quick=quick,
            routers=int(env("BENCH_ROUTERS", "5" if quick else "20")),
            per_router=int(env("BENCH_SERVICES", "100" if quick else "500")),
            changes=int(env("BENCH_CHANGES", "200" if quick else "1000")),
            rate=float(env("BENCH_RATE", "50")),
            unblock_after=float(env("BENCH_UNBLOCK_AFTER", "10")),
            touch_interval=float(env("BENCH_TOUCH_INTERVAL", "2")),
            timeout=float(env("BENCH_TIMEOUT", "10")),
            passes=int(env("BENCH_PASSES", "2" if quick else "5")),
            quiet_propagation=env("BENCH_QUIET_PROPAGATION", "1") not in ("", "0"),
            follow_up=float(env("BENCH_FOLLOW_UP", "32")),
            blocked_share=float(env("BENCH_BLOCKED_SHARE", "0.04")),
            seed=int(env("BENCH_SEED", "1")),
            first_timeout=float(env("BENCH_FIRST_TIMEOUT", "180")),
            results=Path(env("BENCH_RESULTS", str(ROOT / "bench" / "results"))),
            lock=Path(env("BENCH_LOCK", "/tmp/bench.lock")),
            lock_wait=float(env("BENCH_LOCK_WAIT", "1800")),
            quiet_wait=float(env("BENCH_QUIET_WAIT", "300")),
            work=Path(work),
        )


# --- measurements ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snap:
    """CPU seconds so far of each party, and the machine's busy time."""

    at: float
    provisiond: float
    doubles: float
    postgres: float
    driver: float
    busy: float  # all CPUs, seconds

    def __sub__(self, other: Snap) -> Cpu:
        wall = self.at - other.at
        ours = (self.provisiond - other.provisiond) + (self.doubles - other.doubles) + (
            self.postgres - other.postgres) + (self.driver - other.driver)
        return Cpu(wall, self.provisiond - other.provisiond, self.doubles - other.doubles,
                   self.postgres - other.postgres, self.driver - other.driver,
                   max(0.0, (self.busy - other.busy) - ours))


@dataclass(frozen=True, slots=True)
class Cpu:
    wall: float
    provisiond: float
    doubles: float
    postgres: float
    driver: float
    others: float  # everything else on the machine meanwhile

    def cores(self, seconds: float) -> float:
        return seconds / self.wall if self.wall > 0 else 0.0


@dataclass(slots=True)
class First:
    start_to_ready: float | None = None
    ready_to_done: float | None = None
    start_to_done: float | None = None
    cpu_start: Cpu | None = None  # start -> done
    cpu_ready: Cpu | None = None  # ready -> done
    adds: int = 0  # lastmile_provisiond_changes_total{op="add"}
    expected: int = 0
    queues: tuple[int, int] = (0, 0)  # on the routers, expected
    blocked: tuple[int, int] = (0, 0)
    verified_after: float | None = None  # s after done until the counts were right (0: at once)
    run_ms: list[int] = field(default_factory=list)
    rss_mb: float | None = None
    error: str | None = None


@dataclass(slots=True)
class Pass:
    number: int
    seconds: float
    cpu: Cpu
    runs: int
    adds: int
    sets: int
    removes: int
    errors: list[str]


@dataclass(slots=True)
class ChangeRec:
    index: int
    kind: str  # "block" or "unblock"
    customer_id: int
    router: int
    address: str
    sent: float = 0.0
    committed: float = 0.0
    seen: float | None = None
    note: str = ""

    @property
    def latency(self) -> float:
        if self.seen is None:
            return math.inf
        return max(0.0, self.seen - self.committed)


@dataclass(slots=True)
class Propagation:
    label: str
    touch_interval: float  # 0: no background touches
    records: list[ChangeRec] = field(default_factory=list)
    span: float = 0.0
    behind_max: float = 0.0  # worst lag of the sender behind its schedule
    touches: int = 0
    full_runs: int = 0  # router_sync generations moved on
    runs: int = 0  # lastmile_provisiond_runs_total: full and targeted runs
    cpu: Cpu | None = None
    unexpected: list[str] = field(default_factory=list)
    final_ok: bool = False
    final_note: str = ""
    error: str | None = None


# --- the run -----------------------------------------------------------------------------------


class Bench:
    def __init__(self, s: Settings) -> None:
        self.s = s
        self.work = s.work
        self.pids = s.work / "pids"
        self.started = time.time()
        self.digest = sources_digest()  # before provisiond starts: what it loads
        self.lock_wait_s = 0.0
        self.locked = False
        self.quiet_wait_s = 0.0
        self.others_at_start: float | None = None  # cores the rest of the machine used just before (a)
        self.pg: EmbeddedPostgres | None = None
        self.pg_url = ""
        self.postmaster = 0
        self.doubles: list[fleet.Double] = []
        self.prov: Any = None  # subprocess.Popen[bytes]
        self.metrics_port = benchkit.free_port()
        self.key_file = s.work / "secret.key"
        self.config_file = s.work / "lastmile.toml"
        self.routers: list[dataset.RouterRow] = []
        self.services: list[dataset.ServiceRow] = []
        self.conn: Any = None  # asyncpg.Connection
        self.http: aiohttp.ClientSession | None = None
        self.checkers: list[rosapi.Api] = []
        self.watches: list[rosapi.ListWatch] = []
        self.rss_max_kb = 0
        self.hwm_kb: int | None = None
        self.first = First()
        self.passes: list[Pass] = []
        self.pass_error: str | None = None
        self.props: list[Propagation] = []  # the first is the one the target is judged on
        self.waiting: dict[tuple[int, str], ChangeRec] = {}
        self.drained = asyncio.Event()  # nothing waiting
        self.problems: list[str] = []
        self.metrics_end: dict[str, float] = {}
        self.stop_code: int | None = None
        self.stop_seconds: float | None = None
        self.log_levels: dict[str, int] = {}
        self.log_notes: list[str] = []

    # -- processes and set-up -------------------------------------------------------------------

    def take_lock(self, f: TextIO) -> None:
        self.locked, self.lock_wait_s = benchkit.take_lock(f, self.s.lock, self.s.lock_wait, log)

    async def wait_quiet(self, limit: float = 0.25, window: float = 2.0) -> None:
        """Until everything but the benchmark's own processes used under ``limit`` cores over
        ``window`` s, or ``quiet_wait`` s have gone."""
        t = time.monotonic()
        told = False
        while True:
            a = self.snap()
            await asyncio.sleep(window)
            cpu = self.snap() - a
            self.others_at_start = cpu.cores(cpu.others)
            if self.others_at_start < limit or time.monotonic() - t > self.s.quiet_wait:
                break
            if not told:
                log(f"waiting for the machine to go quiet (others use {self.others_at_start:.2f} cores)")
                told = True
        self.quiet_wait_s = time.monotonic() - t
        if self.others_at_start >= limit:
            log(f"measuring with others using {self.others_at_start:.2f} cores (waited {self.quiet_wait_s:.0f} s)")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
        env.update({"LASTMILE_DATABASE__URL": self.pg_url, "LASTMILE_SECRETS__KEY_FILE": str(self.key_file),
                    "LASTMILE_CONFIG": str(self.config_file), "LASTMILE_LOG__FORMAT": "json"})
        return env

    def start_database(self) -> None:
        self.pg = EmbeddedPostgres(self.work / "pg", benchkit.free_port(), durable=True)
        self.pg_url = self.pg.start()
        self.postmaster = int((self.work / "pg" / "postmaster.pid").read_text().split("\n", 1)[0])
        fleet.register(self.pids, self.postmaster)
        self.config_file.write_text("# bench/provision: every setting from the environment or its default\n")
        Keyring.load(SecretsSettings(key_file=str(self.key_file)), create=True)
        out = subprocess.run([str(LASTMILE), "db", "init"], env=self.env(), cwd=self.work, capture_output=True,
                             text=True, timeout=300, check=False)
        if out.returncode != 0:
            raise Failed(f"lastmile db init failed ({out.returncode}): {(out.stderr or out.stdout)[-800:]}")
        log(f"PostgreSQL {self.pg_url} (embedded, {self.work / 'pg'}); schema applied")

    def start_doubles(self) -> None:
        rnd = random.Random(self.s.seed + 1)
        for i in range(self.s.routers):
            self.doubles.append(fleet.start_double(i, f"lastmile{i:02d}", f"pw-{rnd.getrandbits(64):016x}",
                                                   self.work, self.pids))
        fleet.wait_listening(self.doubles)
        log(f"{len(self.doubles)} RouterOS doubles listening (ports {self.doubles[0].port}..."
            f"{self.doubles[-1].port})")

    async def load(self) -> None:
        keyring = Keyring.load(SecretsSettings(key_file=str(self.key_file)))
        t = time.monotonic()
        self.routers, self.services = await dataset.load(
            self.conn, keyring, [(d.name, d.port, d.user, d.password) for d in self.doubles], self.s.per_router,
            self.s.blocked_share, random.Random(self.s.seed))
        blocked = sum(1 for x in self.services if x.blocked)
        log(f"loaded {len(self.routers)} routers, {len(self.services):,} services ({blocked} customers blocked) "
            f"in {time.monotonic() - t:.1f} s")

    def expected_blocked(self, router: int) -> set[str]:
        return {x.address for x in self.services if x.router == router and x.blocked}

    def snap(self) -> Snap:
        prov = procstat.cpu_seconds(self.prov.pid) if self.prov is not None else 0.0
        doubles = procstat.cpu_seconds(*(d.proc.pid for d in self.doubles)) if self.doubles else 0.0
        pg = procstat.cpu_seconds(self.postmaster) if self.postmaster else 0.0
        me = resource.getrusage(resource.RUSAGE_SELF)
        busy, _ = fleet.machine_jiffies()
        return Snap(time.time(), prov, doubles, pg, me.ru_utime + me.ru_stime, busy / procstat.HZ)

    def alive(self) -> None:
        if self.prov is not None and self.prov.poll() is not None:
            raise Failed(f"provisiond exited with code {self.prov.returncode}: {self.log_tail()}")

    def log_tail(self, chars: int = 1200) -> str:
        try:
            return (self.work / "provisiond.log").read_text(errors="replace")[-chars:].strip()
        except OSError:
            return ""

    async def sample_rss(self) -> None:
        while True:
            if self.prov is not None and self.prov.poll() is None:
                kb = benchkit.status_kb(self.prov.pid, "VmRSS")
                if kb is not None:
                    self.rss_max_kb = max(self.rss_max_kb, kb)
            await asyncio.sleep(0.1)

    async def metrics(self) -> str:
        assert self.http is not None
        async with self.http.get(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                 timeout=aiohttp.ClientTimeout(total=2)) as r:
            return await r.text()

    async def ready(self) -> bool:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
            return 'lastmile_ready{daemon="provisiond"} 1.0' in await self.metrics()
        return False

    async def metric_sums(self) -> dict[str, float]:
        """Each series summed over its labels but one (``name|label=value``), plus plain totals."""
        out: dict[str, float] = {}
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
            for line in (await self.metrics()).splitlines():
                if not line.startswith("lastmile_provisiond_") or " " not in line:
                    continue
                series, _, value = line.rpartition(" ")
                name, _, labels = series.partition("{")
                v = float(value)
                out[name] = out.get(name, 0.0) + v
                for pair in labels.rstrip("}").split(","):
                    k, _, lv = pair.partition("=")
                    if k in ("op", "result", "stage"):
                        key = f"{name}|{k}={lv.strip(chr(34))}"
                        out[key] = out.get(key, 0.0) + v
        return out

    async def counts(self) -> tuple[list[int], list[int]]:
        """Per router: its simple queues, and its entries in the blocked list (``=count-only=``)."""
        if not self.checkers:
            self.checkers = list(await asyncio.gather(*(rosapi.Api.open("127.0.0.1", d.port, d.user, d.password)
                                                        for d in self.doubles)))
        queues = await asyncio.gather(*(a.count(QUEUE) for a in self.checkers))
        blocked = await asyncio.gather(*(a.count(rosapi.ADDRESS_LIST, f"?list={BLOCKED_LIST}")
                                         for a in self.checkers))
        return list(queues), list(blocked)

    # -- (a) ------------------------------------------------------------------------------------

    async def phase_first(self) -> None:
        f = self.first
        n = len(self.routers)
        f.expected = len(self.services) + sum(1 for x in self.services if x.blocked)
        env = self.env()
        env.update({"LASTMILE_PROVISIOND__METRICS_PORT": str(self.metrics_port),
                    "LASTMILE_PROVISIOND__FULL_INTERVAL": "3600"})
        log(f"(a) starting provisiond: first full reconcile of {len(self.services):,} services "
            f"({f.expected:,} objects) on {n} empty routers")
        s0 = self.snap()
        t0 = time.time()
        self.prov = fleet.start([str(LASTMILE), "provisiond"], env=env, cwd=self.work,
                                stdout=self.work / "provisiond.log", stderr=None, pids=self.pids)
        ready_snap: Snap | None = None
        ready_at: float | None = None
        deadline = t0 + self.s.first_timeout
        rows: dict[int, dataset.Sync] = {}
        while True:
            self.alive()
            if ready_at is None and await self.ready():
                ready_at, ready_snap = time.time(), self.snap()
            rows = await dataset.sync_rows(self.conn)
            synced = [r for r in rows.values() if r.success_at is not None]
            if len(synced) == n and ready_at is not None:
                break
            if time.time() > deadline:
                errors = sorted({r.error for r in rows.values() if r.error})
                raise Failed(f"after {self.s.first_timeout:.0f} s, {len(synced)} of {n} routers synced"
                             f"{'' if ready_at else ', never ready'}; router errors: {errors[:3]}")
            await asyncio.sleep(0.02)
        done_snap = self.snap()
        done = max(r.success_at or 0.0 for r in rows.values())
        f.start_to_done = done - t0
        f.start_to_ready = ready_at - t0
        f.ready_to_done = done - ready_at
        f.cpu_start = done_snap - s0
        assert ready_snap is not None
        f.cpu_ready = done_snap - ready_snap
        f.run_ms = sorted(r.duration_ms for r in rows.values())
        for r in rows.values():
            if r.error:
                self.problems.append(f"(a) router {r.router_id}: last_error {r.error!r}")
        f.rss_mb = (benchkit.status_kb(self.prov.pid, "VmRSS") or 0) / 1024
        # what the routers hold, asked through the API
        want_q = [self.s.per_router] * n
        want_b = [len(self.expected_blocked(i)) for i in range(n)]
        checked = time.time()
        tries = 0
        while True:
            queues, blocked = await self.counts()
            tries += 1
            if queues == want_q and blocked == want_b:
                f.verified_after = 0.0 if tries == 1 else time.time() - checked
                break
            if time.time() - checked > 30:
                f.error = "the routers did not hold every expected object 30 s after router_sync said done"
                break
            await asyncio.sleep(0.1)
        f.queues = (sum(queues), sum(want_q))
        f.blocked = (sum(blocked), sum(want_b))
        sums = await self.metric_sums()
        f.adds = int(sums.get("lastmile_provisiond_changes_total|op=add", 0))
        log(f"(a) ready after {f.start_to_ready:.2f} s; every router synced {f.start_to_done:.2f} s after the start "
            f"({f.ready_to_done:.2f} s after ready); routers hold {f.queues[0]:,}/{f.queues[1]:,} queues, "
            f"{f.blocked[0]}/{f.blocked[1]} blocked entries")

    # -- (b) ------------------------------------------------------------------------------------

    async def settle(self, quiet: float = 1.0, limit: float = 60.0) -> None:
        """Until no router_sync row has changed for ``quiet`` s (provisiond has nothing running)."""
        last = await dataset.sync_rows(self.conn)
        since = time.monotonic()
        deadline = since + limit
        while time.monotonic() - since < quiet:
            self.alive()
            if time.monotonic() > deadline:
                raise Failed(f"provisiond did not go quiet within {limit:.0f} s")
            await asyncio.sleep(0.1)
            now = await dataset.sync_rows(self.conn)
            if {k: v.generation for k, v in now.items()} != {k: v.generation for k, v in last.items()}:
                last, since = now, time.monotonic()

    async def touch_all(self, conn: Any) -> float:
        """Touch every router (one committed UPDATE: its NOTIFY marks them all); the commit's time."""
        await conn.execute("UPDATE routers SET updated_at = now()")
        return time.time()

    async def phase_nochange(self) -> None:
        n = len(self.routers)
        for number in range(1, self.s.passes + 1):
            await self.settle()
            before = await dataset.sync_rows(self.conn)
            s0 = self.snap()
            committed = await self.touch_all(self.conn)
            deadline = committed + 60
            while True:
                self.alive()
                rows = await dataset.sync_rows(self.conn)
                moved = [r for k, r in rows.items() if r.generation > before[k].generation]
                if len(moved) == n:
                    break
                if time.time() > deadline:
                    raise Failed(f"no-change pass {number}: {len(moved)} of {n} routers ran within 60 s")
                await asyncio.sleep(0.01)
            s1 = self.snap()
            done = max(r.success_at or 0.0 for r in rows.values())
            p = Pass(number, done - committed, s1 - s0,
                     sum(r.generation - before[k].generation for k, r in rows.items()),
                     sum(r.adds for r in rows.values()), sum(r.sets for r in rows.values()),
                     sum(r.removes for r in rows.values()), sorted({r.error for r in rows.values() if r.error}))
            self.passes.append(p)
            log(f"(b) no-change pass {number}: {p.seconds:.3f} s, {p.runs} runs, writes {p.adds}/{p.sets}/{p.removes}, "
                f"provisiond CPU {p.cpu.provisiond:.2f} s")

    # -- (c) ------------------------------------------------------------------------------------

    def on_change(self, router: int, address: str, present: bool, at: float) -> None:
        rec = self.waiting.get((router, address))
        kind = "block" if present else "unblock"
        if rec is not None and rec.kind == kind and rec.sent:
            rec.seen = at
            del self.waiting[(router, address)]
            if not self.waiting:
                self.drained.set()
            return
        self.props[-1].unexpected.append(f"{'appeared' if present else 'went'}: {address} on router {router} "
                                        f"at +{at - self.started:.3f} s")

    def schedule(self, seed: int) -> list[tuple[str, dataset.ServiceRow]]:
        """The changes in order: blocks of random active customers, each unblocked ``unblock_after`` s
        later at the steady rate (blocks alone first, then alternating, unblocks alone last)."""
        rnd = random.Random(seed)
        pairs = self.s.changes // 2
        active = [x for x in self.services if not x.blocked]
        chosen = rnd.sample(active, min(pairs, len(active)))
        lead = min(len(chosen), max(1, round(self.s.unblock_after * self.s.rate / 2)))
        ops: list[tuple[str, dataset.ServiceRow]] = []
        blocks = iter(chosen)
        pending: deque[dataset.ServiceRow] = deque()
        left = len(chosen)
        for k in range(2 * len(chosen)):
            if k < lead or (left and (k - lead) % 2 == 1):
                x = next(blocks)
                left -= 1
                ops.append(("block", x))
                pending.append(x)
            else:
                ops.append(("unblock", pending.popleft()))
        return ops

    async def touch_loop(self, conn: Any, p: Propagation) -> None:
        while True:
            await asyncio.sleep(p.touch_interval)
            await self.touch_all(conn)
            p.touches += 1

    async def phase_propagation(self, label: str, touch_interval: float, seed: int) -> None:
        p = Propagation(label, touch_interval)
        self.props.append(p)
        n = len(self.routers)
        if not self.watches:
            for d in self.doubles:
                api = await rosapi.Api.open("127.0.0.1", d.port, d.user, d.password)
                w = rosapi.ListWatch(api, BLOCKED_LIST, functools.partial(self.on_change, d.index))
                await w.start()
                self.watches.append(w)
        for i, w in enumerate(self.watches):
            if w.addresses != self.expected_blocked(i):
                raise Failed(f"router {i} does not hold the expected blocked entries before the changes")
        ops = self.schedule(seed)
        if self.props[:-1] and self.props[-2].records:  # the follow-up full runs of the last phase's targeted runs
            wait = self.props[-2].records[-1].committed + self.s.follow_up - time.time()
            if wait > 0:
                log(f"{label}: waiting {wait:.0f} s for the follow-up full runs of the phase before")
                await asyncio.sleep(wait)
        await self.settle()
        log(f"{label}: {len(ops)} changes at {self.s.rate:g}/s, "
            + (f"every router touched every {touch_interval:g} s" if touch_interval else "no background touches"))
        touch_conn = await asyncpg.connect(self.pg_url)
        gen0 = sum(r.generation for r in (await dataset.sync_rows(self.conn)).values())
        runs0 = (await self.metric_sums()).get("lastmile_provisiond_runs_total", 0.0)
        s0 = self.snap()
        touches = asyncio.create_task(self.touch_loop(touch_conn, p)) if touch_interval > 0 else None
        try:
            t0 = time.time() + 0.05
            for k, (kind, x) in enumerate(ops):
                due = t0 + k / self.s.rate
                delay = due - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    p.behind_max = max(p.behind_max, -delay)
                if k % 100 == 0:
                    self.alive()
                key = (x.router, x.address)
                old = self.waiting.pop(key, None)
                if old is not None:  # its block had not arrived when its unblock was due
                    old.note = "not on the router when its unblock was sent"
                rec = ChangeRec(k, kind, x.customer_id, x.router, x.address)
                p.records.append(rec)
                self.waiting[key] = rec
                self.drained.clear()
                rec.sent = time.time()
                await self.conn.execute("UPDATE customers SET status = $1 WHERE id = $2",
                                        "blocked" if kind == "block" else "active", x.customer_id)
                rec.committed = time.time()
            p.span = p.records[-1].committed - p.records[0].sent
            deadline = p.records[-1].committed + self.s.timeout
            if self.waiting:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.drained.wait(), max(0.0, deadline - time.time()))
        finally:
            if touches is not None:
                touches.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await touches
            await touch_conn.close()
        for rec in self.waiting.values():
            rec.note = rec.note or f"not seen within {self.s.timeout:g} s"
        self.waiting.clear()
        await self.settle()
        p.cpu = self.snap() - s0
        p.full_runs = sum(r.generation for r in (await dataset.sync_rows(self.conn)).values()) - gen0
        p.runs = int((await self.metric_sums()).get("lastmile_provisiond_runs_total", 0.0) - runs0)
        await asyncio.sleep(0.5)  # the last stream sentences
        wrong = [i for i, w in enumerate(self.watches) if w.addresses != self.expected_blocked(i)]
        queues, blocked = await self.counts()
        want_b = [len(self.expected_blocked(i)) for i in range(n)]
        p.final_ok = not wrong and queues == [self.s.per_router] * n and blocked == want_b
        if not p.final_ok:
            p.final_note = (f"routers whose blocked list differs from billing: {wrong}; queues {sum(queues):,}, "
                            f"blocked entries {sum(blocked)} (expected {sum(want_b)})")
        arrived = [r for r in p.records if r.seen is not None]
        log(f"{label}: {len(arrived)}/{len(p.records)} changes arrived; p99 "
            f"{fmt_ms(percentile([r.latency for r in p.records], 99))}; {p.runs} runs meanwhile, {p.full_runs} of "
            "them full")

    # -- the whole run ----------------------------------------------------------------------------

    async def run(self) -> None:
        self.start_database()
        self.conn = await asyncpg.connect(self.pg_url)
        self.http = aiohttp.ClientSession()
        sampler: asyncio.Task[None] | None = None
        try:
            self.start_doubles()
            await self.load()
            await self.wait_quiet()
            sampler = asyncio.create_task(self.sample_rss())
            phases: list[tuple[str, Callable[[], Awaitable[None]]]] = [
                ("(a) first full reconcile", self.phase_first),
                ("(b) no-change pass", self.phase_nochange),
                ("(c) propagation", functools.partial(self.phase_propagation, "(c) propagation",
                                                      self.s.touch_interval, self.s.seed + 2))]
            if self.s.quiet_propagation and self.s.touch_interval > 0:
                phases.append(("(c2) propagation without background touches",
                               functools.partial(self.phase_propagation, "(c2) propagation, no background touches",
                                                 0.0, self.s.seed + 3)))
            for name, phase in phases:
                try:
                    await phase()
                except (Failed, rosapi.ApiError, OSError, TimeoutError, asyncpg.PostgresError) as e:
                    message = f"{name}: {type(e).__name__ if not isinstance(e, Failed) else ''} {e}".strip()
                    log(message)
                    self.problems.append(message)
                    if name.startswith("(a)"):
                        self.first.error = str(e)
                    elif name.startswith("(b)"):
                        self.pass_error = str(e)
                    elif self.props:
                        self.props[-1].error = str(e)
                    if self.prov is None or self.prov.poll() is not None or name.startswith("(a)"):
                        break
            if self.prov is not None and self.prov.poll() is None:
                self.metrics_end = await self.metric_sums()
                self.hwm_kb = benchkit.status_kb(self.prov.pid, "VmHWM")
        finally:
            if sampler is not None:
                sampler.cancel()
            for w in self.watches:
                await w.close()
            for a in self.checkers:
                await a.close()
            await self.http.close()
            if self.prov is not None:
                t = time.monotonic()
                self.stop_code = fleet.stop(self.prov)
                self.stop_seconds = time.monotonic() - t
            with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                await self.conn.close(timeout=5)
        self.scan_log()

    def cleanup(self) -> None:
        fleet.stop_all()
        if self.pg is not None:
            with contextlib.suppress(Exception):
                self.pg.stop()

    def scan_log(self) -> None:
        """provisiond's log lines by level; the warnings and errors (and anything not JSON) noted."""
        seen: dict[str, int] = {}
        try:
            lines = (self.work / "provisiond.log").read_text(errors="replace").splitlines()
        except OSError:
            return
        for line in lines:
            text = line.strip()
            if not text:
                continue
            try:
                event = json.loads(text[text.index("{"):]) if "{" in text else None
            except ValueError:
                event = None
            if not isinstance(event, dict):
                self.log_levels["not JSON"] = self.log_levels.get("not JSON", 0) + 1
                key = f"not JSON: {text[:200]}"
            else:
                level = str(event.get("level", "?"))
                self.log_levels[level] = self.log_levels.get(level, 0) + 1
                if level not in ("warning", "error", "critical"):
                    continue
                detail = {k: v for k, v in event.items() if k not in ("timestamp", "level", "daemon", "logger")}
                key = f"{level}: {json.dumps(detail, ensure_ascii=False)[:400]}"
            seen[key] = seen.get(key, 0) + 1
        self.log_notes = [f"{k} (x{n})" if n > 1 else k for k, n in seen.items()]

    # -- the report -------------------------------------------------------------------------------

    def environment(self) -> list[tuple[str, str]]:
        def out(argv: list[str]) -> str:
            return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()

        from importlib import metadata

        ps = ProvisiondSettings()
        postgres = out([str(bin_dir() / "postgres"), "--version"]).split()[-1:] or ["?"]
        commit = out(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]) or "?"
        version = self.doubles[0].version if self.doubles else "?"
        return [
            ("host", f"{platform.node()}: {os.cpu_count()} CPUs ({benchkit.cpu_model()}), Linux {platform.release()}"),
            ("python", platform.python_version()),
            ("postgresql", f"{postgres[0]} (embedded, fsync and synchronous_commit on)"),
            ("librouteros", metadata.version("librouteros") + f"; asyncpg {metadata.version('asyncpg')}, "
             f"uvloop {metadata.version('uvloop')}"),
            ("lastmile", f"git {commit}; daemons/provisiond/*.py as run: sha256 {self.digest}"),
            ("routers", f"{self.s.routers} RouterOS API doubles (tests/fakes/routeros.py, RouterOS {version} as "
             "emulated; one process each, plain API on 127.0.0.1)"),
            ("billing", f"{len(self.services):,} services ({self.s.per_router} per router), each with a static /32 "
             f"and its own customer, on {len(dataset.TARIFFS)} tariffs; "
             f"{sum(1 for x in self.services if x.blocked)} customers blocked at the start"),
            ("provisiond", f"defaults (concurrency {ps.concurrency}, pipeline {ps.pipeline}, debounce "
             f"{ps.debounce * 1000:.0f} ms, blocked list `{ps.blocked_list}`) but full_interval 3600 s; no MQTT; "
             "JSON log"),
            ("mode", "quick" if self.s.quick else "full"),
            ("duration", f"{time.time() - self.started:.0f} s, of which {self.lock_wait_s:.0f} s waiting for "
             f"{self.s.lock}" + ("" if self.locked else " (not taken: measured without it)")
             + f" and {self.quiet_wait_s:.0f} s for the rest of the machine to go quiet (it used "
             + (f"{self.others_at_start:.2f} cores" if self.others_at_start is not None else "?")
             + " just before (a))"),
        ]

    def report(self) -> list[str]:
        s = self.s
        f = self.first
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines = [f"## provisiond: {s.routers} routers x {s.per_router} services ({when}, "
                 f"{'quick' if s.quick else 'full'} mode)", ""]
        lines += [f"- {k}: {v}" for k, v in self.environment()]
        lines += ["", "### Targets", "", "| measurement | result | target | met |", "| --- | ---: | ---: | --- |"]
        total = len(self.services)
        first = f.start_to_done
        lines.append(f"| first full reconcile of {total:,} services, from provisiond's start | "
                     f"{fmt_s(first) if first is not None and not f.error else 'failed'} | < {TARGET_FIRST_S:g} s | "
                     f"{met(first is not None and not f.error and first < TARGET_FIRST_S)} |")
        worst = max((p.seconds for p in self.passes), default=None)
        clean = all(not (p.adds or p.sets or p.removes) for p in self.passes)
        lines.append(f"| no-change pass of all {s.routers} routers (worst of {len(self.passes)}) | "
                     f"{fmt_s(worst) if worst is not None else 'failed'} | < {TARGET_NOCHANGE_S:g} s | "
                     f"{met(worst is not None and not self.pass_error and clean and worst < TARGET_NOCHANGE_S)} |")
        main = self.props[0] if self.props else Propagation("(c)", s.touch_interval, error="not run")
        recs = main.records
        p99 = percentile([r.latency for r in recs], 99) if recs else None
        lines.append(f"| p99 block/unblock propagation ({len(recs):,} changes, during reconciles) | "
                     f"{fmt_ms(p99) if p99 is not None else 'failed'} | < {TARGET_P99_S * 1000:,.0f} ms | "
                     f"{met(p99 is not None and p99 < TARGET_P99_S and not main.error)} |")
        rss = (self.hwm_kb or self.rss_max_kb) / 1024 if (self.hwm_kb or self.rss_max_kb) else None
        lines.append(f"| provisiond RSS, most over the run (VmHWM) | {f'{rss:.0f} MB' if rss else '?'} | "
                     f"< {TARGET_RSS_MB:g} MB | {met(rss is not None and rss < TARGET_RSS_MB)} |")
        lines += ["", "No peer runs here: Splynx and UISP are proprietary, and the public MikroTik provisioning "
                  "scripts push one change at a time rather than reconcile, so there is no ratio to a peer; "
                  "the targets are the issue's absolute ones."]
        lines += self.report_first() + self.report_passes() + self.report_propagation() + self.report_process()
        lines += self.report_caveats()
        return lines

    def report_first(self) -> list[str]:
        f = self.first
        out = ["", "### (a) First full reconcile from empty", ""]
        if f.start_to_done is None:
            return [*out, f"Not measured: {f.error}"]
        assert f.cpu_start is not None and f.cpu_ready is not None
        runs = f.run_ms
        out += [
            "| | |", "| --- | ---: |",
            f"| provisiond start → ready (`lastmile_ready 1`) | {fmt_s(f.start_to_ready)} |",
            f"| ready → every router's `router_sync.last_success_at` | {fmt_s(f.ready_to_done)} |",
            f"| **start → every router in step** | **{fmt_s(f.start_to_done)}** |",
            f"| objects written (`changes_total{{op=\"add\"}}`) / expected | {f.adds:,} / {f.expected:,} |",
            f"| on the routers (`print =count-only=`): simple queues | {f.queues[0]:,} / {f.queues[1]:,} |",
            f"| on the routers: `{BLOCKED_LIST}` entries | {f.blocked[0]:,} / {f.blocked[1]:,} |",
            "| counts right when router_sync said done | "
            + ("yes" if f.verified_after == 0.0 else f"after {fmt_s(f.verified_after)}" if f.verified_after
               else f"no: {f.error}") + " |",
            f"| one router's run (`router_sync.duration_ms`): min / median / max | {runs[0]:,} / "
            f"{int(statistics.median(runs)):,} / {runs[-1]:,} ms |" if runs else "| one router's run | ? |",
            f"| provisiond CPU, start → done (imports and start-up included) | {f.cpu_start.provisiond:.2f} s |",
            f"| provisiond CPU, ready → done | {f.cpu_ready.provisiond:.2f} s "
            f"(**{per_object_us(f.cpu_ready.provisiond, f.adds)}** per object written) |",
            f"| doubles' CPU, start → done (all {len(self.doubles)}) | {f.cpu_start.doubles:.2f} s "
            f"({per_object_us(f.cpu_start.doubles, f.adds)} per object) |",
            f"| PostgreSQL CPU, start → done | {f.cpu_start.postgres:.2f} s |",
            f"| others on the machine meanwhile | {f.cpu_start.cores(f.cpu_start.others):.2f} cores |",
            f"| provisiond RSS right after | {f.rss_mb:.0f} MB |" if f.rss_mb else "| provisiond RSS right after | ? |",
        ]
        return out

    def report_passes(self) -> list[str]:
        out = ["", "### (b) No-change passes (`UPDATE routers SET updated_at = now()`)", ""]
        if self.passes:
            out += ["| pass | commit → every router ran | runs | adds / sets / removes | provisiond CPU | "
                    "CPU per router | doubles' CPU | PostgreSQL CPU | others (cores) | router errors |",
                    "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
            for p in self.passes:
                out.append(f"| {p.number} | {fmt_s(p.seconds)} | {p.runs} | {p.adds} / {p.sets} / {p.removes} | "
                           f"{p.cpu.provisiond * 1000:,.0f} ms | {p.cpu.provisiond * 1000 / max(1, p.runs):,.1f} ms | "
                           f"{p.cpu.doubles * 1000:,.0f} ms | {p.cpu.postgres * 1000:,.0f} ms | "
                           f"{p.cpu.cores(p.cpu.others):.2f} | {'; '.join(p.errors) or '-'} |")
            secs = [p.seconds for p in self.passes]
            out += ["", f"Median {fmt_s(statistics.median(secs))}, worst {fmt_s(max(secs))}. The CPU columns run "
                    "from the commit until the benchmark saw the last generation move (polled every 10 ms)."]
        if self.pass_error:
            out += ["", f"Stopped: {self.pass_error}"]
        return out

    def report_propagation(self) -> list[str]:
        out = ["", "### (c) Block → router propagation", ""]
        measured = [p for p in self.props if p.records]
        if not measured:
            error = self.props[0].error if self.props else "not run"
            return [*out, f"Not measured: {error or 'no changes were made'}"]
        out += ["| run | change | count | arrived | p50 | p90 | p99 | max | never arrived |",
                "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for p in measured:
            background = (f"every router touched every {p.touch_interval:g} s" if p.touch_interval
                          else "no background touches")
            for label, recs in (("block (entry appears)", [r for r in p.records if r.kind == "block"]),
                                ("unblock (entry goes)", [r for r in p.records if r.kind == "unblock"]),
                                ("**all**", p.records)):
                lat = [r.latency for r in recs]
                arrived = sum(1 for v in lat if v != math.inf)
                bold = "**" if label.startswith("**") else ""
                run = f"{p.label[:4].strip()}: {background}" if label.startswith("block") else ""
                out.append(f"| {run} | {label} | {len(recs):,} | {arrived:,} | {fmt_ms(percentile(lat, 50))} | "
                           f"{fmt_ms(percentile(lat, 90))} | {bold}{fmt_ms(percentile(lat, 99))}{bold} | "
                           f"{fmt_ms(max(lat))} | {len(recs) - arrived} |")
        for p in measured:
            commit = statistics.median(r.committed - r.sent for r in p.records)
            assert p.cpu is not None
            background = (f"every router touched every {p.touch_interval:g} s ({p.touches} times)"
                          if p.touch_interval else "none")
            full_cpu = self.full_run_cpu()
            rate = len(self.routers) / p.touch_interval if p.touch_interval else 0.0
            demand = (f"; at {full_cpu * 1000:.0f} ms of provisiond CPU per full run of one router (the no-change "
                      f"passes' median), the background touches alone ask for {rate:.1f} full runs a second, "
                      f"{full_cpu * rate:.2f} cores" if rate and full_cpu else "")
            out += ["", f"{p.label}:", "",
                    f"- {len(p.records):,} changes in {p.span:.1f} s ({len(p.records) / p.span:.1f}/s offered at "
                    f"{self.s.rate:g}/s; the sender fell behind its schedule by at most "
                    f"{p.behind_max * 1000:.0f} ms); each UPDATE's commit acknowledged in {commit * 1000:.2f} ms "
                    "(median)",
                    f"- background: {background}; {p.runs:,} router runs during the phase "
                    f"(`lastmile_provisiond_runs_total`), {p.full_runs:,} of them full runs (`router_sync.generation`)"
                    + demand,
                    f"- CPU over the phase ({p.cpu.wall:.1f} s): provisiond {p.cpu.provisiond:.1f} s "
                    f"({p.cpu.cores(p.cpu.provisiond):.2f} cores; {p.cpu.provisiond * 1000 / len(p.records):.1f} ms "
                    f"per change{', background included' if p.touch_interval else ''}), doubles {p.cpu.doubles:.1f} s "
                    f"({p.cpu.cores(p.cpu.doubles):.2f} cores), PostgreSQL {p.cpu.postgres:.1f} s, benchmark driver "
                    f"{p.cpu.driver:.1f} s, others {p.cpu.cores(p.cpu.others):.2f} cores",
                    f"- afterwards every router holds exactly billing's blocked entries: "
                    f"{'yes' if p.final_ok else 'no: ' + p.final_note}",
                    f"- entries that appeared or went with no change waiting for it: {len(p.unexpected)}"
                    + (f" (first: {p.unexpected[0]})" if p.unexpected else "")]
            late = [r for r in p.records if r.seen is None]
            if late:
                out.append("- never arrived: " + ", ".join(f"#{r.index} {r.kind} {r.address} ({r.note})"
                                                           for r in late[:5])
                           + (f" and {len(late) - 5} more" if len(late) > 5 else ""))
            if p.error:
                out.append(f"- stopped: {p.error}")
        out += ["", "The target is judged on (c). Times: the commit is when the UPDATE's acknowledgement reached "
                "the benchmark, the arrival when the bytes of the router's `listen` sentence did (both "
                "time.time() in the driver); a change that never arrived counts as infinite in the percentiles."]
        return out

    def report_process(self) -> list[str]:
        m = self.metrics_end
        runs = ", ".join(f"{k.split('=')[1]} {int(v):,}" for k, v in sorted(m.items())
                         if k.startswith("lastmile_provisiond_runs_total|")) or "?"
        errors = ", ".join(f"{k.split('=')[1]} {int(v):,}" for k, v in sorted(m.items())
                           if k.startswith("lastmile_provisiond_errors_total|")) or "none"
        changes = ", ".join(f"{k.split('=')[1]} {int(v):,}" for k, v in sorted(m.items())
                            if k.startswith("lastmile_provisiond_changes_total|")) or "?"
        hwm = f"{self.hwm_kb / 1024:.0f} MB" if self.hwm_kb else "?"
        levels = ", ".join(f"{k} {v:,}" for k, v in sorted(self.log_levels.items())) or "none"
        out = ["", "### provisiond over the whole run", "",
               f"- RSS: VmHWM {hwm}, highest VmRSS sampled every 100 ms {self.rss_max_kb / 1024:.0f} MB",
               f"- runs by result: {runs}; changes written: {changes}; errors by stage: {errors}",
               f"- stopped by SIGTERM in {self.stop_seconds or 0:.2f} s, exit code {self.stop_code}",
               f"- log lines by level: {levels}"]
        if self.log_notes:
            out.append("- its warnings and errors:")
            out += [f"  - `{n}`" for n in self.log_notes[:15]]
        if self.problems:
            out.append("- problems seen by the benchmark:")
            out += [f"  - {p}" for p in self.problems]
        return out

    def report_caveats(self) -> list[str]:
        return ["", "### What the double leaves out that matters here", "",
                "- Speed of a real router. The double keeps each menu in a Python dict and caches every row's "
                f"encoded words: a no-change pass cost all {len(self.doubles)} doubles together "
                f"{self.doubles_per_row()} of CPU per row printed. A RouterOS box is slower to print large lists "
                "(on a MIPS box such as a hEX or RB750Gr3 much slower), and does real work on every write (a "
                "simple queue changes its queue tree), which the double does not. Every full run prints all "
                "four menus in full (a targeted run reads only its services' keys), so on real routers the first "
                "reconcile, the no-change pass and the background full runs of (c) take longer than here, and "
                "a pass ends with the slowest router's prints.",
                "- The network: loopback instead of a management network or a tower link with milliseconds of "
                "round trip; provisiond's reads are one round trip per menu, its writes are pipelined.",
                f"- Everything shares this machine's cores: the {len(self.doubles)} doubles (single-threaded Python "
                "each), PostgreSQL, provisiond and the driver. The CPU figures are per process and depend on "
                "that less than the times do, though a busy second core still raises them (see the 'others' "
                "columns for what else ran meanwhile).",
                "- No firewall or queue does anything on a double: a blocked address is in the list, nothing "
                "is dropped; nor does it save its configuration, log, or limit API sessions."]

    def full_run_cpu(self) -> float:
        """provisiond's CPU seconds per full run of one router, the median over the no-change passes."""
        per = [p.cpu.provisiond / p.runs for p in self.passes if p.runs]
        return statistics.median(per) if per else 0.0

    def doubles_per_row(self) -> str:
        rows = (self.s.per_router * len(self.doubles) + sum(1 for x in self.services if x.blocked))
        if not self.passes or not rows:
            return "?"
        return f"about {statistics.median(p.cpu.doubles for p in self.passes) * 1e6 / rows:.0f} µs"

    def write(self, lines: list[str]) -> Path:
        self.s.results.mkdir(parents=True, exist_ok=True)
        base = self.s.results / f"provision-{datetime.now(UTC):%Y-%m-%d}{'-quick' if self.s.quick else ''}"
        base.with_suffix(".md").write_text("\n".join(lines) + "\n")
        with base.with_suffix(".csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["phase", "index", "kind", "customer_id", "router", "address", "sent", "committed", "seen",
                        "latency_ms", "note"])
            for p in self.props:
                for r in p.records:
                    w.writerow([p.label, r.index, r.kind, r.customer_id, r.router, r.address, f"{r.sent:.6f}",
                                f"{r.committed:.6f}", f"{r.seen:.6f}" if r.seen is not None else "",
                                f"{r.latency * 1000:.2f}" if r.seen is not None else "", r.note])
        return base


# --- helpers -----------------------------------------------------------------------------------


def sources_digest() -> str:
    """A digest of provisiond's sources as they were run (the work tree may differ from the commit)."""
    h = hashlib.sha256()
    for path in sorted((ROOT / "daemons" / "provisiond").glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def fmt_ms(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "-"
    if v == math.inf:
        return "never"
    return f"{v * 1000:,.0f} ms" if v >= 0.1 else f"{v * 1000:.1f} ms"


def fmt_s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def per_object_us(seconds: float, objects: int) -> str:
    return f"{seconds * 1e6 / objects:,.0f} µs" if objects else "-"


def main() -> int:
    s = Settings.from_env()
    bench = Bench(s)
    s.lock.touch(exist_ok=True)
    with benchkit.terminate_on_sigterm(), s.lock.open("a") as lock:
        try:
            bench.take_lock(lock)
            uvloop.run(bench.run())
        except KeyboardInterrupt:
            log("interrupted: stopping everything it started")
            return 130
        except Failed as e:
            log(str(e))
            bench.problems.append(str(e))
        finally:
            bench.cleanup()
    lines = bench.report()
    print("\n".join(lines), flush=True)
    base = bench.write(lines)
    log(f"results: {base}.md, {base}.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
