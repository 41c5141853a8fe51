"""What the benchmark drivers share beyond procstat: the lock that serialises benchmarks, free
ports, /proc figures, percentiles, and SIGTERM unwinding (bench/admin and bench/provision use it;
it sits here with procstat, on the MYPYPATH `make lint` gives every bench folder)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import math
import os
import signal
import socket
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TextIO, TypeVar

T = TypeVar("T")


def take_lock(f: TextIO, name: Path, wait: float, say: Callable[[str], None]) -> tuple[bool, float]:
    """Take the benchmarks' lock ``f`` (file ``name``) within ``wait`` seconds: (taken, seconds waited).
    Not taken in time: the run measures without it, and says so."""
    t = time.monotonic()
    told = False
    while True:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True, time.monotonic() - t
        except BlockingIOError:
            if time.monotonic() - t > wait:
                say(f"could not take {name} in {wait:.0f} s: measuring without it")
                return False, time.monotonic() - t
            if not told:
                say(f"waiting for {name} (another benchmark holds it)")
                told = True
            time.sleep(1)


def on_embedded_postgres(work: Path, port: int, measure: Callable[[str], Coroutine[Any, Any, T]],
                         say: Callable[[str], None]) -> T:
    """Under the benchmarks' lock: a durable embedded PostgreSQL in ``work``/pg on ``port``
    (``BENCH_PG_PORT`` says another), ``measure(its url)`` run to the end, the server stopped (the
    database benchmarks of bench/billing and bench/payments)."""
    from daemons.pgembed import EmbeddedPostgres  # here: the other benchmarks need no daemons

    work.mkdir(parents=True, exist_ok=True)
    with open("/tmp/bench.lock", "w") as lock:
        take_lock(lock, Path("/tmp/bench.lock"), 3600, say)
        server = EmbeddedPostgres(work / "pg", int(os.environ.get("BENCH_PG_PORT", str(port))), durable=True)
        server.start()
        try:
            return asyncio.run(measure(server.url))
        finally:
            server.stop()


def percentile(values: list[float], p: float) -> float:
    """Nearest rank (NaN of nothing)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def status_kb(pid: int, key: str) -> int | None:
    """A ``/proc/<pid>/status`` figure in kB (``VmRSS``, ``VmHWM``)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """run.sh turns a Ctrl-C into SIGTERM for the driver: make it unwind like a KeyboardInterrupt."""

    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
