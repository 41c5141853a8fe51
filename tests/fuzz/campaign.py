"""The mutation campaign of reliability.md R-2 and N-2: a million mutated inputs per codec (`make fuzz`).

Each codec's golden vectors (``tests/vectors/``) are mutated (bit flips, boundary bytes and
lengths, insertions, deletions, truncation, splices of other vectors, repeats) and run through
its target (``tests/fuzz/targets.py``): decode, then read everything that decoded. The campaign
checks that only the codec's own error escapes, and reports mutations/s, exceptions by class
(the codec's own by reason), decode times (p50, p99, p99.9, the slowest inputs) and the growth
of the resident set after a warm-up.

A run passes when nothing but the codec's error escaped, no input takes longer than the target's
limit (RADIUS 100 ms, the hang guard of R-2; NetFlow 5 ms, N-2; MQTT 5 ms) and RSS grew less
than 50 MB. Times are the CPU time of the thread (``CLOCK_THREAD_CPUTIME_ID``, about 2.5 µs a
reading): on a shared machine a wall-clock time also counts the moments the process was not
running, and a million inputs see many of those. The slowest inputs are timed again at the end,
best of five; both times are reported.
Each codec's report goes to ``OUT/campaign-<codec>.json``, with the inputs that raised something
else (``OUT/<codec>-unexpected-<n>.hex``) and the slowest one (``OUT/<codec>-slowest.hex``), to
become regression vectors.

    python -m tests.fuzz.campaign                                   # 1,000,000 per codec
    python -m tests.fuzz.campaign --codec radius --mutations 20000  # one codec, a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import random
import sys
import time
import traceback
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.fuzz.targets import TARGETS, Target

INTERESTING_BYTES = (0, 1, 2, 3, 4, 16, 17, 18, 19, 20, 0x1F, 0x20, 0x3F, 0x40, 0x7F, 0x80, 0xFE, 0xFF)
INTERESTING_WORDS = (b"\x00\x00", b"\x00\x01", b"\x00\x02", b"\x00\x04", b"\x00\x10", b"\x01\x00", b"\x01\x01",
                     b"\x7f\xff", b"\x80\x00", b"\x80\x01", b"\xff\xfe", b"\xff\xff")
SLOWEST_KEPT = 16
RETIMES = 5
UNEXPECTED_KEPT = 20


def mutate(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    """One to six mutations of ``data``."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(9)
        pos = rng.randrange(len(b)) if b else 0
        if op == 0 and b:
            b[pos] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[pos] = rng.choice(INTERESTING_BYTES)
        elif op == 2 and len(b) > 1:
            b[pos : pos + 2] = rng.choice(INTERESTING_WORDS)
        elif op == 3:
            b[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == 4:
            del b[pos : pos + rng.randint(1, 16)]
        elif op == 5:
            del b[pos:]
        elif op == 6:
            other = rng.choice(seeds)
            start = rng.randrange(len(other)) if other else 0
            b[pos:pos] = other[start : start + rng.randint(1, 64)]
        elif op == 7 and b:
            b[pos:pos] = b[pos : pos + rng.randint(1, 32)]
        elif op == 8 and b:
            b[pos] = rng.randrange(256)
    return bytes(b)


def rss_mb() -> float:
    """This process's resident set now (Linux /proc), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@dataclass
class Report:
    codec: str
    check: str
    #: the class name of the codec's own error
    error_name: str
    seed: int
    mutations: int
    seconds: float = 0.0
    #: CPU time of the loop (mutating included): the rate on a shared machine varies, this less
    cpu_seconds: float = 0.0
    per_second: float = 0.0
    #: exceptions by class: the codec's own, and any other (a failure)
    exceptions: dict[str, int] = field(default_factory=dict)
    #: the codec's own exceptions by reason (their ``reason``, else their class)
    reasons: dict[str, int] = field(default_factory=dict)
    #: the first inputs that raised something else: class, message, input, traceback
    unexpected: list[dict[str, str]] = field(default_factory=list)
    p50_us: float = 0.0
    p99_us: float = 0.0
    p999_us: float = 0.0
    #: the slowest inputs: time as first measured, best of RETIMES at the end, size, input
    slowest: list[dict[str, Any]] = field(default_factory=list)
    limit_ms: float = 0.0
    rss_after_warmup_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_limit_mb: float = 50.0
    failures: list[str] = field(default_factory=list)

    @property
    def rss_growth_mb(self) -> float:
        return self.rss_end_mb - self.rss_after_warmup_mb

    @property
    def passed(self) -> bool:
        return not self.failures

    def lines(self) -> list[str]:
        other = {n: c for n, c in self.exceptions.items() if n != self.error_name}
        reasons = ", ".join(f"{r} {c:,}" for r, c in Counter(self.reasons).most_common(6))
        slow = self.slowest[0] if self.slowest else {"best_us": 0.0, "first_us": 0.0, "size": 0}
        return [
            f"{self.codec} ({self.check}): {self.mutations:,} mutations in {self.seconds:.1f} s "
            f"({self.cpu_seconds:.1f} s of CPU), {self.per_second:,.0f}/s (seed {self.seed})",
            f"  accepted {self.mutations - sum(self.exceptions.values()):,}; refused by {self.error_name} "
            f"{self.exceptions.get(self.error_name, 0):,} ({reasons}); other exceptions: "
            + (", ".join(f"{n} {c:,}" for n, c in other.items()) if other else "none"),
            f"  time per input: p50 {self.p50_us:.0f} µs, p99 {self.p99_us:.0f} µs, p99.9 {self.p999_us:.0f} µs; "
            f"slowest {slow['best_us'] / 1000:.2f} ms (best of {RETIMES}; {slow['first_us'] / 1000:.2f} ms as first "
            f"timed), {slow['size']} bytes; limit {self.limit_ms:g} ms",
            f"  RSS: {self.rss_after_warmup_mb:.1f} MB after warm-up, {self.rss_end_mb:.1f} MB at the end "
            f"({self.rss_growth_mb:+.1f} MB; limit {self.rss_limit_mb:g} MB)",
            "  PASS" if self.passed else "  FAIL: " + "; ".join(self.failures),
        ]

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "rss_growth_mb": self.rss_growth_mb, "passed": self.passed}


def run_campaign(target: Target, mutations: int, seed: int = 2026, rss_limit_mb: float = 50.0,
                 progress: Callable[[int, float], None] | None = None) -> Report:
    """``mutations`` mutated seeds through ``target``; the report says what escaped and how long it took."""
    report = Report(target.name, target.check, target.error.__name__, seed, mutations, limit_ms=target.limit_ms,
                    rss_limit_mb=rss_limit_mb)
    run = target.make()
    rng = random.Random(seed)
    seeds = list(target.seeds)
    exceptions: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    durations = array("q", bytes(8 * mutations))  # allocated before the RSS baseline
    slowest: list[tuple[int, int, bytes]] = []  # a min-heap of (ns, index, input)
    warmup = min(10_000, mutations // 10)
    report.rss_after_warmup_mb = rss_mb()
    clock = time.thread_time_ns
    started = last_progress = time.monotonic()
    cpu_started = time.thread_time()
    for i in range(mutations):
        base = rng.choice(seeds)
        if rng.random() < target.unmutated:
            data = base
        else:
            data = mutate(rng, base, seeds)
            if target.repair is not None and rng.random() < 0.5:
                data = target.repair(data)
        t0 = clock()
        try:
            run(data)
        except target.error as e:
            exceptions[target.error.__name__] += 1
            reasons[getattr(e, "reason", None) or type(e).__name__] += 1
        except Exception as e:  # what the campaign is looking for
            exceptions[type(e).__name__] += 1
            if len(report.unexpected) < UNEXPECTED_KEPT:
                report.unexpected.append({"class": type(e).__name__, "message": str(e)[:300], "input": data.hex(),
                                          "traceback": traceback.format_exc()})
        elapsed = clock() - t0
        durations[i] = elapsed
        if len(slowest) < SLOWEST_KEPT:
            heapq.heappush(slowest, (elapsed, i, data))
        elif elapsed > slowest[0][0]:
            heapq.heapreplace(slowest, (elapsed, i, data))
        if i + 1 == warmup:
            report.rss_after_warmup_mb = rss_mb()
        if progress is not None and i % 4096 == 0 and time.monotonic() - last_progress > 30:
            last_progress = time.monotonic()
            progress(i, (i + 1) / (last_progress - started))
    report.seconds = time.monotonic() - started
    report.cpu_seconds = time.thread_time() - cpu_started
    report.rss_end_mb = rss_mb()
    report.per_second = mutations / report.seconds if report.seconds else 0.0
    report.exceptions = dict(exceptions.most_common())
    report.reasons = dict(reasons.most_common())
    if mutations:
        p50, p99, p999 = np.percentile(np.frombuffer(durations, dtype=np.int64), [50, 99, 99.9]) / 1000
        report.p50_us, report.p99_us, report.p999_us = float(p50), float(p99), float(p999)
    report.slowest = _retimed(run, target, slowest)
    _judge(report, target)
    return report


def _retimed(run: Callable[[bytes], object], target: Target,
             slowest: list[tuple[int, int, bytes]]) -> list[dict[str, Any]]:
    """The slowest inputs, each run again RETIMES times (a stateful target runs them on its state
    at the end of the campaign), slowest best time first."""
    out = []
    for first, _, data in slowest:
        best = first
        for _ in range(RETIMES):
            t0 = time.thread_time_ns()
            with contextlib.suppress(Exception):  # counted when it was first run
                run(data)
            best = min(best, time.thread_time_ns() - t0)
        out.append({"best_us": best / 1000, "first_us": first / 1000, "size": len(data), "input": data.hex()})
    return sorted(out, key=lambda s: -s["best_us"])


def _judge(report: Report, target: Target) -> None:
    other = {n: c for n, c in report.exceptions.items() if n != target.error.__name__}
    if other:
        report.failures.append("exceptions other than " + target.error.__name__ + ": "
                               + ", ".join(f"{n} {c}" for n, c in other.items()))
    if report.slowest and report.slowest[0]["best_us"] > target.limit_ms * 1000:
        report.failures.append(f"an input took {report.slowest[0]['best_us'] / 1000:.1f} ms "
                               f"(limit {target.limit_ms:g} ms)")
    if report.rss_growth_mb > report.rss_limit_mb:
        report.failures.append(f"RSS grew {report.rss_growth_mb:.1f} MB (limit {report.rss_limit_mb:g} MB)")


def save(report: Report, out: Path) -> Path:
    """The JSON report, the unexpected inputs and the slowest one, under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for n, failure in enumerate(report.unexpected):
        (out / f"{report.codec}-unexpected-{n}.hex").write_text(failure["input"] + "\n")
    if report.slowest:
        (out / f"{report.codec}-slowest.hex").write_text(report.slowest[0]["input"] + "\n")
    path = out / f"campaign-{report.codec}.json"
    path.write_text(json.dumps(report.as_json(), indent=1) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mutations", type=int, default=1_000_000, help="inputs per codec (default 1,000,000)")
    parser.add_argument("--codec", action="append", choices=sorted(TARGETS), help="only this codec (repeatable)")
    parser.add_argument("--seed", type=int, default=2026, help="of the mutations (a run is reproducible)")
    parser.add_argument("--out", type=Path, default=Path("var/fuzz"), help="reports and inputs (default var/fuzz)")
    parser.add_argument("--rss-limit-mb", type=float, default=50.0)
    args = parser.parse_args(argv)
    ok = True
    for name in args.codec or list(TARGETS):

        def progress(done: int, rate: float, name: str = name) -> None:
            print(f"{name}: {done:,}/{args.mutations:,} ({rate:,.0f}/s)", file=sys.stderr, flush=True)

        report = run_campaign(TARGETS[name], args.mutations, args.seed, args.rss_limit_mb, progress)
        path = save(report, args.out)
        print("\n".join(report.lines()), f"  report: {path}", sep="\n", flush=True)
        ok = ok and report.passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
