"""Load a server with radclient (freeradius-utils), keeping ``parallel`` requests in flight.

radclient 3.2 walks its whole request list on every send pass, so its CPU time grows with the
square of the file size; the requests are therefore split into chunk files (``workload.py``)
and ``streams`` concurrent streams each run one radclient (``-p parallel/streams``) per chunk,
one after the other. Chunk K of every phase goes to stream K mod ``streams`` and a stream runs
its chunks phase by phase, so a session's Start, Interims and Stop arrive in order.
"""

from __future__ import annotations

import re
import resource
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SUMMARY = re.compile(r"^\s*(Accepted|Rejected|Lost)\s*:\s*(\d+)", re.M)
LIVE: set[subprocess.Popen[str]] = set()  # radclients running now, for the cleanup on a signal
_live_lock = threading.Lock()
_stop = threading.Event()  # set by kill_all: no stream starts another radclient


@dataclass
class ClientResult:
    accepted: int = 0
    rejected: int = 0
    lost: int = 0
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Options:
    parallel: int = 256
    streams: int = 2
    timeout_s: int = 3
    retries: int = 3
    run_limit_s: float = 300.0  # a run still going after this is stopped, its requests counted lost


def _chunk_number(path: Path) -> int:
    return int(path.stem.split("-c")[1])


def _radclient(path: Path, target: str, kind: str, secret: str, opts: Options) -> str:
    argv = ["radclient", "-q", "-s", "-c", "1", "-p", str(max(1, opts.parallel // opts.streams))]
    argv += ["-t", str(opts.timeout_s), "-r", str(opts.retries), "-f", str(path), target, kind, secret]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with _live_lock:
        LIVE.add(proc)
    try:
        out, _ = proc.communicate()
    finally:
        with _live_lock:
            LIVE.discard(proc)
    return out


def _stream(files: list[Path], target: str, kind: str, secret: str, opts: Options, result: ClientResult) -> None:
    for path in files:
        if _stop.is_set():
            return
        out = _radclient(path, target, kind, secret, opts)
        counts = {name: 0 for name in ("Accepted", "Rejected", "Lost")}
        for name, value in SUMMARY.findall(out):
            counts[name] += int(value)
        result.accepted += counts["Accepted"]
        result.rejected += counts["Rejected"]
        result.lost += counts["Lost"]
        if "Packet summary" not in out and not _stop.is_set():
            result.errors.append(f"{path.name}: {out.strip()[-300:]}")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(directory: Path, target: str, kind: str, secret: str, opts: Options) -> ClientResult:
    """Send every chunk of ``directory`` to ``target`` ("host:port"); ``kind`` is auth or acct."""
    _stop.clear()
    files = sorted(directory.glob("p*-c*.txt"))
    per_stream = [[f for f in files if _chunk_number(f) % opts.streams == s] for s in range(opts.streams)]
    results = [ClientResult() for _ in per_stream]
    threads = [
        threading.Thread(target=_stream, args=(fs, target, kind, secret, opts, r), daemon=True)
        for fs, r in zip(per_stream, results, strict=True)
        if fs
    ]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, t0 + opts.run_limit_s - time.perf_counter()))
    stopped = any(t.is_alive() for t in threads)
    if stopped:
        kill_all()
        for t in threads:
            t.join()
    total = ClientResult(elapsed_s=time.perf_counter() - t0, client_cpu_s=_children_cpu() - cpu0)
    if stopped:
        total.errors.append(f"run stopped after {opts.run_limit_s:.0f} s")
    for r in results:
        total.accepted += r.accepted
        total.rejected += r.rejected
        total.lost += r.lost
        total.errors += r.errors
    return total


def kill_all() -> None:
    """Kill the running radclients (by PID), and keep any stream from starting another."""
    _stop.set()
    with _live_lock:
        for proc in LIVE:
            proc.kill()
