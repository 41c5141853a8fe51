#!/usr/bin/env python3
"""NetFlow v5 / v9 / IPFIX benchmark: lastmile's flowcollector against pmacct's nfacctd (issue #4).

What is measured, for each collector and each of v5, v9 and IPFIX:

* the highest offered rate (records/s) it takes with zero loss: a ladder of rates (default
  250 k, 500 k, 1 M, 1.5 M, 2 M records/s; 10 s steps, 5 s in quick mode) stopped at the first
  step that loses anything, then, in full mode, the best rate held for 60 s (one step down if
  that fails);
* CPU microseconds per record: user + system time of every process of the collector (from
  /proc and wait4; see sysstat.py), from the start of the load until it has flushed and exited,
  divided by the records it stored; PostgreSQL's CPU over the same time is reported apart;
* the exact totals in PostgreSQL: per service, the bytes stored (download and upload apart)
  must equal the bytes the generator sent to and from that service's address, to the byte,
  and the packets the records sent (every record has packets = 1).  Loss is the records sent
  and not stored, counted per service and direction, so a double count elsewhere cannot hide
  it; records stored beyond those sent are reported as "too many" (the step is then lossless
  but not exact).  Kernel drops on the collector's sockets and lastmile's own
  ``lastmile_flow_records_lost_total`` are reported next to it.

How, in one run (``bench/netflow/run.sh``):

1. a private embedded PostgreSQL (``daemons.pgembed``) in the work directory; ``lastmile db
   init``; ``lastmile demo --customers 50000 --seed 1``.  The services' static addresses
   (100.64.0.0/10, about 60 % of them) are the subscribers of the load;
2. per step, the collector is started fresh: nfacctd with two pgsql plugins (download by
   dst_host, upload by src_host, COPY into ``bench.pmacct_down``/``_up`` in the same
   server), or ``lastmile flowcollector`` (ready when its /metrics says
   ``lastmile_ready{daemon="flowcollector"} 1.0``; rows in ``traffic_usage``);
3. ``flowgen.py`` offers the load (pre-built datagrams replayed with sendmmsg, paced to the
   rate; it writes the bytes it sent per address), the harness waits until the collector's
   socket queue is empty and its CPU idle, reads its counters, stops it so that it flushes
   (nfacctd: SIGINT; lastmile: SIGTERM) and waits for all its processes to exit;
4. the totals are read from PostgreSQL and compared per service with what was sent.

If ``lastmile flowcollector`` says "not built yet" (exit code 2), its rows say so and nfacctd
is still measured in full.  The summary is printed and written to
``bench/results/netflow-<date>[-quick].{csv,md}``.

Caveats: the generator, the collector and PostgreSQL share this machine's cores; on loopback
the kernel's UDP receive work is charged to the sender, so the collector's CPU is its own
decoding, aggregation and writing.  The machine may be shared: each ladder takes the benchmark
lock (``/tmp/bench.lock``, as the other benchmarks do), each step first waits (within a budget)
for other processes to go quiet, records the cores they used meanwhile (``other_load``), and a
step that failed while they used more than a quarter of a core is repeated once.

Settings (environment): BENCH_QUICK=1, BENCH_VERSIONS=5,9,10, BENCH_COLLECTORS=nfacctd,lastmile,
BENCH_RATES=250000,...; BENCH_STEP_SECONDS, BENCH_CONFIRM_SECONDS, BENCH_CUSTOMERS=50000,
BENCH_SEED=1, BENCH_RESULTS=bench/results, BENCH_LOCK=/tmp/bench.lock, BENCH_LOCK_WAIT=600 and
BENCH_QUIET_WAIT=240 (seconds, in all), BENCH_FLOWCOLLECTOR_CMD (instead of `lastmile
flowcollector`), BENCH_WORKDIR (run.sh makes one; BENCH_KEEP=1 keeps it).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import fcntl
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors import Collector, LastmileFlowcollector, Nfacctd, NotBuilt, StartFailed
from pg import BENCH_SCHEMA, REPO, Database
from sysstat import (
    Session,
    all_stats,
    become_subreaper,
    cpu_model,
    free_port,
    machine_jiffies,
    register,
    tree_cpu,
    udp_state,
)

HERE = Path(__file__).resolve().parent
FLOWGEN = HERE / "flowgen.py"
VERSION_NAMES = {5: "v5", 9: "v9", 10: "IPFIX"}
DISTURBED = 0.25  # cores used by other processes during a step that make a failed step worth repeating
GEN_SHORT = 0.98  # a step whose generator reached less than this share of the offered rate is repeated


# ------------------------------------------------------------------------------ options
@dataclass(frozen=True, slots=True)
class Options:
    quick: bool
    versions: tuple[int, ...]
    collectors: tuple[str, ...]
    rates: tuple[int, ...]
    step_seconds: float
    confirm_seconds: float
    customers: int
    seed: int
    results: Path
    lock: Path
    lock_wait: float
    quiet_wait: float
    settle: float = 1.0
    drain_timeout: float = 60.0

    @classmethod
    def from_env(cls) -> Options:
        env = os.environ.get
        quick = env("BENCH_QUICK", "0") not in ("", "0")
        return cls(
            quick=quick,
            versions=tuple(int(v) for v in env("BENCH_VERSIONS", "5,9,10").split(",")),
            collectors=tuple(env("BENCH_COLLECTORS", "nfacctd,lastmile").split(",")),
            rates=tuple(int(float(r)) for r in env("BENCH_RATES", "250000,500000,1000000,1500000,2000000").split(",")),
            step_seconds=float(env("BENCH_STEP_SECONDS", "5" if quick else "10")),
            confirm_seconds=float(env("BENCH_CONFIRM_SECONDS", "0" if quick else "60")),
            customers=int(env("BENCH_CUSTOMERS", "50000")),
            seed=int(env("BENCH_SEED", "1")),
            results=Path(env("BENCH_RESULTS", str(REPO / "bench" / "results"))),
            lock=Path(env("BENCH_LOCK", "/tmp/bench.lock")),
            lock_wait=float(env("BENCH_LOCK_WAIT", "600")),
            quiet_wait=float(env("BENCH_QUIET_WAIT", "240")),
        )


# ------------------------------------------------------------------------------ one step
@dataclass(slots=True)
class Trial:
    collector: str
    version: str
    rate_offered: int
    seconds: float
    status: str = "ok"  # ok | not built | failed: ... | died
    ok: bool = False
    records_sent: int = 0
    gen_records_per_s: float = 0.0
    gen_max_lag_ms: float = 0.0
    gen_cpu_s: float = 0.0
    records_stored: int = 0
    loss_records: int = 0  # sent and not stored (per service and direction)
    extra_records: int = 0  # stored beyond what was sent (counted twice, or to no service)
    loss_pct: float = 0.0
    kernel_drops: int = 0
    collector_lost: int | None = None  # what the collector says it lost (sequence numbers)
    collector_records: int | None = None  # what the collector says it decoded
    cpu_s_load: float = 0.0
    cpu_s_total: float = 0.0
    cpu_us_per_record: float | None = None
    cpu_us_per_record_load: float | None = None
    pg_cpu_s: float = 0.0
    services_sent: int = 0
    services_stored: int = 0
    services_bytes_exact: int = 0
    services_all_exact: int = 0
    bytes_sent: int = 0
    bytes_stored: int = 0
    exact: bool = False
    drain_s: float = 0.0
    stop_s: float = 0.0
    stop_clean: bool = True
    other_cpu_s: float = 0.0
    other_load: float = 0.0  # cores other processes used on average during the step
    machine_busy: float = 0.0  # cores in use on average during the step, everything included
    quiet_wait_s: float = 0.0
    superseded: bool = False  # failed while the machine was busy, and was repeated
    note: str = ""
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))


@dataclass(slots=True)
class Context:
    opts: Options
    work: Path
    db: Database
    addresses: Path
    registry: Path
    step: int = 0
    quiet_budget: float = 0.0  # seconds the run may still spend waiting for a quiet machine
    generator: dict[str, dict[str, float]] = field(default_factory=dict)
    not_built: dict[str, str] = field(default_factory=dict)


def run_trial(ctx: Context, collector: Collector, version: int, rate: int, seconds: float) -> Trial:
    ctx.step += 1
    trial = Trial(collector.name, VERSION_NAMES[version], rate, seconds)
    tdir = ctx.work / f"{ctx.step:02d}-{collector.name}-{trial.version}-{rate}-{seconds:g}s"
    tdir.mkdir()
    ctx.db.execute(collector.reset_sql)
    try:
        collector.start(tdir)
    except StartFailed as e:
        collector.kill()
        trial.status = f"failed: {e}"[:300]
        print_trial(trial)
        return trial
    try:
        measure_load(ctx, collector, version, trial, tdir)
    finally:
        collector.kill()  # only what is left after a clean stop, or everything on an error
    read_back(ctx, collector, trial, tdir)
    print_trial(trial)
    return trial


def measure_load(ctx: Context, collector: Collector, version: int, trial: Trial, tdir: Path) -> None:
    """Offer the load, wait for the collector to drain, stop it; fill the CPU and loss fields."""
    session = collector.session
    assert session is not None
    time.sleep(ctx.opts.settle)
    ours = {os.getpid(), ctx.db.postmaster_pid() or -1}
    trial.quiet_wait_s = wait_quiet(ctx, ours)
    cpu0, pg0, others0 = session.cpu(), postgres_cpu(ctx), foreign_cpu(ours)
    window_start, jiffies0 = time.monotonic(), machine_jiffies()
    drops0 = udp_state(collector.ports).drops
    gen = run_flowgen(ctx, collector.port_for(version), version, trial.rate_offered, trial.seconds, tdir)
    trial.records_sent = gen["sent"]["records"]
    trial.gen_records_per_s = gen["records_per_s"] or 0.0
    trial.gen_max_lag_ms = gen["max_lag_ms"]
    trial.gen_cpu_s = gen["cpu_seconds"]
    trial.drain_s = wait_drained(session, collector.ports, ctx.opts.drain_timeout)
    trial.cpu_s_load = session.cpu() - cpu0
    trial.kernel_drops = udp_state(collector.ports).drops - drops0
    if not session.running():
        trial.status = f"died (exit {session.returncode}): {session.tail(200)}"
    counters = collector.counters(tdir)
    trial.collector_lost = counters.get("collector_lost")
    trial.collector_records = counters.get("collector_records")
    started = time.monotonic()
    trial.stop_clean = collector.stop()
    trial.stop_s = time.monotonic() - started
    trial.cpu_s_total = session.cpu() - cpu0
    trial.pg_cpu_s = postgres_cpu(ctx) - pg0
    trial.other_cpu_s = max(0.0, foreign_cpu(ours) - others0)
    trial.other_load = round(trial.other_cpu_s / (time.monotonic() - window_start), 2)
    trial.machine_busy = machine_busy(jiffies0, machine_jiffies())
    if trial.gen_records_per_s < GEN_SHORT * trial.rate_offered:
        trial.status = f"generator reached only {trial.gen_records_per_s / 1e6:.2f} M/s"


def read_back(ctx: Context, collector: Collector, trial: Trial, tdir: Path) -> None:
    """Totals and the per-service comparison from PostgreSQL."""
    packets, _ = ctx.db.fetchrow(collector.totals_sql)
    trial.records_stored = int(packets)
    ctx.db.load_expected(tdir / "expected.csv")
    cmp = ctx.db.compare(collector.usage_sql)
    for name in ("services_sent", "services_stored", "services_bytes_exact", "services_all_exact"):
        setattr(trial, name, getattr(cmp, name))
    trial.bytes_sent, trial.bytes_stored = cmp.bytes_sent, cmp.bytes_stored
    trial.loss_records = cmp.records_missing
    trial.extra_records = cmp.records_extra + trial.records_stored - cmp.packets_stored  # + rows of no service
    trial.loss_pct = round(100.0 * trial.loss_records / trial.records_sent, 4) if trial.records_sent else 0.0
    trial.exact = cmp.exact and trial.extra_records == 0
    if trial.records_stored:
        trial.cpu_us_per_record = round(1e6 * trial.cpu_s_total / trial.records_stored, 3)
        trial.cpu_us_per_record_load = round(1e6 * trial.cpu_s_load / trial.records_stored, 3)
    trial.ok = trial.status == "ok" and trial.loss_records == 0 and trial.stop_clean


def flowgen_argv(ctx: Context, port: int, version: int, rate: int, seconds: float) -> list[str]:
    args = f"--port {port} -V {version} --rate {rate} --duration {seconds} --addresses {ctx.addresses}"
    return [sys.executable, str(FLOWGEN), *args.split()]


def run_flowgen(ctx: Context, port: int, version: int, rate: int, seconds: float, tdir: Path) -> dict[str, Any]:
    argv = [*flowgen_argv(ctx, port, version, rate, seconds), "--expect", str(tdir / "expected.csv")]
    summary = flowgen(ctx, argv, timeout=1.5 * seconds + 120)
    (tdir / "flowgen.json").write_text(json.dumps(summary) + "\n")
    return summary


def flowgen(ctx: Context, argv: list[str], timeout: float) -> dict[str, Any]:
    """Run flowgen in a session of its own, registered for the cleanup; return its summary."""
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as proc:
        register(ctx.registry, proc.pid)
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException:
            proc.kill()
            raise
    if proc.returncode != 0:
        raise RuntimeError(f"flowgen failed ({proc.returncode}): {err[-800:]}")
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return summary


def wait_drained(session: Session, ports: list[int], timeout: float, idle: float = 1.0) -> float:
    """Seconds until the socket queues are empty and the collector used under 5 % of a core
    for ``idle`` seconds (or ``timeout``)."""
    start = time.monotonic()
    idle_since: float | None = None
    last = session.cpu()
    while time.monotonic() - start < timeout and session.running():
        time.sleep(0.25)
        now, cpu = time.monotonic(), session.cpu()
        quiet = cpu - last < 0.25 * 0.05 and udp_state(ports).queued == 0
        last = cpu
        if not quiet:
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif now - idle_since >= idle:
            return round(idle_since - start, 2)
    return round(time.monotonic() - start, 2)


def machine_busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    busy, total = after[0] - before[0], after[1] - before[1]
    return round(busy / total * (os.cpu_count() or 1), 2) if total else 0.0


def wait_quiet(ctx: Context, ours: set[int], threshold: float = DISTURBED, most: float = 30.0) -> float:
    """Wait (at most ``most`` seconds, within the run's budget) until other processes use under
    ``threshold`` of a core, so that a step is not measured while something else loads this
    small machine."""
    waited = 0.0
    while waited < min(most, ctx.quiet_budget):
        before = foreign_cpu(ours)
        time.sleep(1.0)
        waited += 1.0
        if foreign_cpu(ours) - before < threshold:
            break
    ctx.quiet_budget -= waited
    return waited


def postgres_cpu(ctx: Context) -> float:
    pid = ctx.db.postmaster_pid()
    return tree_cpu(pid) if pid else 0.0


def foreign_cpu(ours: set[int]) -> float:
    """CPU seconds used so far by user processes outside our process trees: the other load on
    the machine.  A difference of two calls is what they used in between."""
    stats = all_stats()
    parent = {s.pid: s.ppid for s in stats}

    def is_ours(pid: int) -> bool:
        while pid > 1:
            if pid in ours:
                return True
            pid = parent.get(pid, 0)
        return False

    return sum(s.own + s.children for s in stats if s.pid != 2 and s.ppid != 2 and not is_ours(s.pid))


# ------------------------------------------------------------------------------ the ladder
def ladder(ctx: Context, collector: Collector, version: int) -> list[Trial]:
    """Rates upward until the first loss, then the best rate held for the confirmation time."""
    trials: list[Trial] = []
    best = 0
    for rate in ctx.opts.rates:
        trial = step(ctx, collector, version, rate, ctx.opts.step_seconds, trials)
        if not trial.ok:
            break
        best = rate
    if ctx.opts.confirm_seconds and best:
        for rate in [r for r in sorted(ctx.opts.rates, reverse=True) if r <= best][:2]:
            if step(ctx, collector, version, rate, ctx.opts.confirm_seconds, trials).ok:
                break
    return trials


def step(ctx: Context, collector: Collector, version: int, rate: int, seconds: float, trials: list[Trial]) -> Trial:
    """One step, repeated once if it failed while other processes loaded the machine, or if the
    generator did not reach the rate (a step that offered less says nothing about the rate)."""
    trial = run_trial(ctx, collector, version, rate, seconds)
    trials.append(trial)
    disturbed = not trial.ok and trial.other_load > DISTURBED
    if disturbed or trial.status.startswith("generator"):
        trial.superseded = True
        trial.note = f"repeated: {trial.status if trial.status != 'ok' else 'lossy'}, other processes used "
        trial.note += f"{trial.other_load:.2f} cores meanwhile"
        print(f"  ({trial.note})", flush=True)
        trial = run_trial(ctx, collector, version, rate, seconds)
        trials.append(trial)
    return trial


def measure(ctx: Context, collector: Collector, version: int) -> list[Trial]:
    if collector.name in ctx.not_built:
        return [not_built_trial(ctx, collector, version)]
    with bench_lock(ctx.opts):
        try:
            return ladder(ctx, collector, version)
        except NotBuilt as e:
            ctx.not_built[collector.name] = str(e)
            print(f"  {collector.name}: not built ({e})", flush=True)
            return [not_built_trial(ctx, collector, version)]


def not_built_trial(ctx: Context, collector: Collector, version: int) -> Trial:
    return Trial(collector.name, VERSION_NAMES[version], 0, 0, status="not built")


@contextlib.contextmanager
def bench_lock(opts: Options) -> Iterator[None]:
    """One timed ladder at a time on this machine: other benchmarks (the shared harness, the
    RADIUS one) take the same lock.  Held until the file is closed."""
    with opts.lock.open("a") as f:
        if not take_lock(f.fileno(), opts.lock_wait):
            print(f"  (could not take {opts.lock} in {opts.lock_wait:.0f} s: measuring without it)", flush=True)
        yield


def take_lock(fd: int, wait: float) -> bool:
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            if not told:
                print("  (waiting for another benchmark to release the lock)", flush=True)
                told = True
            time.sleep(1)


# ------------------------------------------------------------------------------ set-up
def setup(opts: Options, work: Path) -> Context:
    db = Database(work / "pg", free_port(socket.SOCK_STREAM))
    ctx = Context(opts, work, db, work / "addresses.txt", work / "pids", quiet_budget=opts.quiet_wait)
    started = time.monotonic()
    db.start()
    print(f"PostgreSQL {db.url} (embedded, {work / 'pg'})", flush=True)
    db.connect()
    print("  " + db.lastmile("db", "init", cwd=work), flush=True)
    print("  " + db.lastmile("demo", "--customers", str(opts.customers), "--seed", str(opts.seed), cwd=work))
    db.execute(BENCH_SCHEMA)
    addresses = db.subscriber_addresses()
    ctx.addresses.write_text("\n".join(addresses) + "\n")
    print(
        f"  {len(addresses)} services with a static IPv4 address are the subscribers "
        f"(set-up {time.monotonic() - started:.1f} s)",
        flush=True,
    )
    return ctx


def generator_capacity(ctx: Context) -> None:
    """flowgen unthrottled for a few seconds into a socket nobody reads (the kernel drops)."""
    for version in ctx.opts.versions:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
            sink.bind(("127.0.0.1", 0))
            seconds = 2 if ctx.opts.quick else 3
            argv = flowgen_argv(ctx, sink.getsockname()[1], version, 0, seconds)
            out = flowgen(ctx, argv, timeout=60)
        ctx.generator[VERSION_NAMES[version]] = {
            "records_per_s": out["records_per_s"],
            "datagrams_per_s": out["datagrams_per_s"],
            "cpu_share": round(out["cpu_seconds"] / out["seconds"], 2),
        }
        print(
            f"  flowgen {VERSION_NAMES[version]}: {out['records_per_s'] / 1e6:.2f} M records/s "
            f"({out['datagrams_per_s'] / 1e3:.0f} k datagrams/s) unthrottled",
            flush=True,
        )


def cleanup_leftovers(work: Path) -> None:
    """What run.sh calls on exit: end the sessions this run registered, if still there, and
    stop its PostgreSQL.  Only processes of registered sessions are touched, by PID."""
    registry = work / "pids"
    leaders = []
    if registry.exists():
        for line in registry.read_text().split("\n"):
            if line.strip():
                pid, start = (int(x) for x in line.split())
                leaders.append((pid, start))
    for s in all_stats():
        for pid, start in leaders:
            if s.sid == pid and s.start >= start and s.state != "Z":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(s.pid, signal.SIGKILL)
    if (work / "pg" / "postmaster.pid").exists():
        Database(work / "pg", 0).server.stop()


# ------------------------------------------------------------------------------ results
@dataclass(slots=True)
class Summary:
    collector: str
    version: str
    status: str
    best_rate: int | None
    best_seconds: float
    cpu_us: float | None
    cpu_us_load: float | None
    pg_us: float | None
    exact: str
    first_loss: str
    gen_rate: float | None
    rate_ratio: str = ""
    cpu_ratio: str = ""


def summarize(opts: Options, trials: list[Trial]) -> list[Summary]:
    held = opts.confirm_seconds or opts.step_seconds
    out = []
    for (name, version), group in group_by(trials).items():
        if group[0].status == "not built":
            out.append(Summary(name, version, "not built", None, held, None, None, None, "-", "-", None))
            continue
        out.append(summarize_one(name, version, [t for t in group if not t.superseded], held))
    add_ratios(out)
    return out


def summarize_one(name: str, version: str, group: list[Trial], held: float) -> Summary:
    good = [t for t in group if t.ok and t.seconds == held]
    best = max(good, key=lambda t: t.rate_offered) if good else None
    bad = next((t for t in group if not t.ok), None)
    first_loss = f"{bad.rate_offered / 1e6:g} M/s: {describe_failure(bad)}" if bad else "none up to the top rate"
    if best is None:
        short = [t.rate_offered for t in group if t.ok]
        if short:
            status = f"lossless only in shorter steps (up to {max(short) / 1e6:g} M/s)"
        elif group[0].status != "ok":
            status = group[0].status
        else:
            status = "lossy at every rate"
        return Summary(name, version, status, None, held, None, None, None, exact_text(group[-1]), first_loss, None)
    pg_us = round(1e6 * best.pg_cpu_s / best.records_stored, 3) if best.records_stored else None
    return Summary(
        name,
        version,
        "ok",
        best.rate_offered,
        held,
        best.cpu_us_per_record,
        best.cpu_us_per_record_load,
        pg_us,
        exact_text(best) + inexact_elsewhere(group, best),
        first_loss,
        best.gen_records_per_s,
    )


def group_by(trials: list[Trial]) -> dict[tuple[str, str], list[Trial]]:
    groups: dict[tuple[str, str], list[Trial]] = {}
    for t in trials:
        groups.setdefault((t.collector, t.version), []).append(t)
    return groups


def describe_failure(t: Trial) -> str:
    if t.status != "ok":
        return t.status[:120]
    parts = [f"loss {t.loss_pct:g} % ({t.loss_records:,} records)"]
    if t.kernel_drops:
        parts.append(f"{t.kernel_drops:,} kernel drops")
    if t.collector_lost is not None:
        parts.append(f"{t.collector_lost:,} counted lost by the collector")
    if not t.stop_clean:
        parts.append("did not stop cleanly")
    if t.other_load > DISTURBED:
        parts.append(f"other processes used {t.other_load:.2f} cores meanwhile")
    return ", ".join(parts)


def exact_text(t: Trial) -> str:
    if t.exact:
        return f"yes: {t.services_all_exact:,}/{t.services_sent:,} services, {t.bytes_stored:,} bytes"
    text = (
        f"no: {t.services_all_exact:,}/{t.services_sent:,} services exact, {t.bytes_stored:,} of {t.bytes_sent:,} bytes"
    )
    return text + (f", {t.extra_records:,} records too many" if t.extra_records else "")


def inexact_elsewhere(group: list[Trial], best: Trial) -> str:
    """Lossless steps other than the best whose totals were still wrong (double counts)."""
    wrong = [t for t in group if t is not best and t.ok and not t.exact]
    return "".join(
        f"; at {t.rate_offered / 1e6:g} M/s x {t.seconds:g} s: {t.extra_records:,} records too many" for t in wrong
    )


def add_ratios(rows: list[Summary]) -> None:
    peer = {r.version: r for r in rows if r.collector == "nfacctd"}
    for r in rows:
        p = peer.get(r.version)
        if r.collector == "nfacctd" or p is None or r.status == "not built":
            continue
        if r.best_rate and p.best_rate:
            r.rate_ratio = f"{r.best_rate / p.best_rate:.2f}x"
        if r.cpu_us and p.cpu_us:
            r.cpu_ratio = f"{r.cpu_us / p.cpu_us:.1f}x"


def print_trial(t: Trial) -> None:
    cpu = f"{t.cpu_us_per_record:.3f}" if t.cpu_us_per_record is not None else "-"
    print(
        f"  {t.collector:8} {t.version:5} {t.rate_offered / 1e6:4.2f} M/s x {t.seconds:g} s: "
        f"sent {t.records_sent:,} (at {t.gen_records_per_s / 1e6:.3f} M/s), stored {t.records_stored:,}, "
        f"loss {t.loss_pct:g} %, drops {t.kernel_drops}, {cpu} us/record (+PG {t.pg_cpu_s:.1f} s), "
        f"exact {'yes' if t.exact else 'NO'}{extra_text(t)}, other processes {t.other_load:.2f} cores"
        f"{'' if t.status == 'ok' else ' [' + t.status[:80] + ']'}",
        flush=True,
    )


def extra_text(t: Trial) -> str:
    return f" ({t.extra_records:,} records too many)" if t.extra_records else ""


def rate_text(rate: int | None) -> str:
    return "-" if rate is None else f"{rate / 1e6:g} M"


def markdown(ctx: Context, summary: list[Summary], trials: list[Trial], machine: dict[str, str]) -> str:
    lines = summary_markdown(ctx, summary, machine)
    lines += [
        "",
        "Generator (flowgen, one process): "
        + "; ".join(f"{v} {g['records_per_s'] / 1e6:.1f} M records/s unthrottled" for v, g in ctx.generator.items())
        + "; achieved rate per step below.",
        "",
    ]
    lines += trial_table(trials)
    if ctx.not_built:
        lines += ["", "Not built: " + "; ".join(f"{k}: {v}" for k, v in ctx.not_built.items())]
    return "\n".join(lines) + "\n"


def summary_markdown(ctx: Context, summary: list[Summary], machine: dict[str, str]) -> list[str]:
    o = ctx.opts
    lines = [
        f"## NetFlow / IPFIX: lastmile flowcollector vs nfacctd ({machine['date']}{', quick' if o.quick else ''})",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, kernel {machine['kernel']}, Python "
        f"{machine['python']}, {machine['nfacctd']}, PostgreSQL {machine['postgres']} (embedded, durable), "
        f"net.core.rmem_max {machine['rmem_max']}.",
        f"Load: `bench/netflow/flowgen.py`, {machine['subscribers']} subscribers (the static addresses of "
        f"`lastmile demo --customers {o.customers} --seed {o.seed}`), one download and one upload record each "
        "per cycle, packets = 1 per record, v5 30 / v9 29 / IPFIX 25 records per datagram, a template every "
        "20 datagrams, one sender process on 127.0.0.1.",
        f"Ladder {', '.join(rate_text(r) for r in o.rates)} records/s, {o.step_seconds:g} s a step"
        + (f", best rate held for {o.confirm_seconds:g} s." if o.confirm_seconds else "."),
        "",
        "| version | collector | highest lossless offered rate | held for | CPU µs/record (load + flush) "
        "| CPU µs/record (load only) | PostgreSQL µs/record | exact totals in PostgreSQL | first loss | "
        "rate vs nfacctd | CPU vs nfacctd |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in sorted(summary, key=lambda s: (list(VERSION_NAMES.values()).index(s.version), s.collector)):
        if s.status == "not built":
            lines.append(f"| {s.version} | {s.collector} | not built | | | | | | | | |")
            continue
        best = f"{rate_text(s.best_rate)} records/s" if s.best_rate else s.status
        lines.append(
            f"| {s.version} | {s.collector} | {best} | {s.best_seconds:g} s "
            f"| {fmt(s.cpu_us)} | {fmt(s.cpu_us_load)} | {fmt(s.pg_us)} | {s.exact} | {s.first_loss} "
            f"| {s.rate_ratio} | {s.cpu_ratio} |"
        )
    return lines


def trial_table(trials: list[Trial]) -> list[str]:
    rows = [
        "| collector | version | offered | s | sent | generator achieved | stored | loss | kernel drops "
        "| CPU s | µs/record | PostgreSQL CPU s | exact | machine busy / other processes (cores) | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in trials:
        if t.status == "not built":
            continue
        rows.append(
            f"| {t.collector} | {t.version} | {rate_text(t.rate_offered)} | {t.seconds:g} | {t.records_sent:,} "
            f"| {t.gen_records_per_s / 1e6:.3f} M/s | {t.records_stored:,} | {t.loss_pct:g} % | {t.kernel_drops:,} "
            f"| {t.cpu_s_total:.2f} | {fmt(t.cpu_us_per_record)} | {t.pg_cpu_s:.2f} | "
            f"{'yes' if t.exact else 'no'}{extra_text(t)} | {t.machine_busy:.2f} / {t.other_load:.2f} "
            f"| {trial_status(t)} |"
        )
    return rows


def trial_status(t: Trial) -> str:
    text = "ok" if t.ok else ("lossy" if t.status == "ok" else t.status[:60])
    return f"{text}; {t.note}" if t.note else text


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def machine_info(ctx: Context) -> dict[str, str]:
    nfacctd = subprocess.run(["nfacctd", "-V"], capture_output=True, text=True, check=False).stdout
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nfacctd": nfacctd.splitlines()[0].replace("NetFlow Accounting Daemon, ", "") if nfacctd else "nfacctd ?",
        "postgres": ctx.db.server_version(),
        "rmem_max": Path("/proc/sys/net/core/rmem_max").read_text().strip(),
        "subscribers": f"{len(ctx.addresses.read_text().split()):,}",
    }


def write_results(ctx: Context, trials: list[Trial], summary: list[Summary], machine: dict[str, str]) -> Path:
    ctx.opts.results.mkdir(parents=True, exist_ok=True)
    base = ctx.opts.results / f"netflow-{machine['date']}{'-quick' if ctx.opts.quick else ''}"
    with base.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[x.name for x in dataclasses.fields(Trial)])
        writer.writeheader()
        for t in trials:
            writer.writerow({k: round(v, 3) if isinstance(v, float) else v for k, v in dataclasses.asdict(t).items()})
    base.with_suffix(".md").write_text(markdown(ctx, summary, trials, machine))
    return base


# ------------------------------------------------------------------------------ main
def collectors_for(opts: Options, db: Database, registry: Path) -> list[Collector]:
    known: dict[str, type[Collector]] = {"nfacctd": Nfacctd, "lastmile": LastmileFlowcollector}
    unknown = set(opts.collectors) - set(known)
    if unknown:
        raise SystemExit(f"bench: unknown collectors {sorted(unknown)} (known: {sorted(known)})")
    return [known[name](db, registry) for name in opts.collectors]


def run(opts: Options, work: Path) -> int:
    ctx = setup(opts, work)
    try:
        become_subreaper()  # after PostgreSQL started: its server is not ours to reap
        with bench_lock(opts):
            generator_capacity(ctx)
        trials: list[Trial] = []
        for collector in collectors_for(opts, ctx.db, ctx.registry):
            print(f"{collector.description}", flush=True)
            for version in opts.versions:
                trials += measure(ctx, collector, version)
        summary = summarize(opts, trials)
        machine = machine_info(ctx)
        base = write_results(ctx, trials, summary, machine)
        print()
        print("\n".join(summary_markdown(ctx, summary, machine)))
        print(f"results: {base}.csv, {base}.md")
    finally:
        ctx.db.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cleanup", metavar="WORKDIR", help="end what a killed run left behind (run.sh's trap)")
    args = parser.parse_args()
    if args.cleanup:
        cleanup_leftovers(Path(args.cleanup))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through every finally
    opts = Options.from_env()
    given = os.environ.get("BENCH_WORKDIR")
    work = Path(given) if given else Path(tempfile.mkdtemp(prefix="lastmile-bench-netflow."))
    try:
        return run(opts, work)
    finally:
        if not given and os.environ.get("BENCH_KEEP", "0") in ("", "0"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
