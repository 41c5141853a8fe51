"""Results of the RADIUS benchmark: the records, the CSV and the Markdown tables (with the
issue's targets, lastmile against FreeRADIUS)."""

from __future__ import annotations

import csv
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Run:
    """One timed radclient run against one server."""

    server: str
    workload: str  # auth | acct
    run: int
    requests: int
    accepted: int
    rejected: int
    lost: int
    elapsed_s: float
    server_cpu_s: float
    pg_cpu_s: float
    client_cpu_s: float
    loadavg: float
    rcvbuf_errors: int
    check: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Answered requests per second (all of them, unless the run went wrong)."""
        return (self.accepted + self.rejected) / self.elapsed_s if self.elapsed_s else 0.0

    def per_request_us(self, seconds: float) -> float:
        return seconds * 1e6 / self.requests if self.requests else math.nan

    @property
    def server_us(self) -> float:
        return self.per_request_us(self.server_cpu_s)

    @property
    def pg_us(self) -> float:
        return self.per_request_us(self.pg_cpu_s)

    @property
    def total_us(self) -> float:
        return self.per_request_us(self.server_cpu_s + self.pg_cpu_s)

    @property
    def client_us(self) -> float:
        return self.per_request_us(self.client_cpu_s)


@dataclass
class LatencyResult:
    """latency.py's output for one server."""

    server: str
    rate: float
    sent: int
    answered: int
    accepted: int
    rejected: int
    invalid: int
    lost: int
    elapsed_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    max_send_lag_ms: float
    server_cpu_us: float = math.nan
    pg_cpu_us: float = math.nan
    check: str = ""


@dataclass
class ServerResult:
    name: str
    label: str
    status: str = "not run"  # ok | not built | failed to start | failed
    runs: list[Run] = field(default_factory=list)
    latency: LatencyResult | None = None
    rss_mb: list[float] = field(default_factory=list)  # per process, the largest sample
    notes: list[str] = field(default_factory=list)

    def of(self, workload: str) -> list[Run]:
        return [r for r in self.runs if r.workload == workload]

    def median(self, workload: str, value: Callable[[Run], float]) -> float:
        runs = self.of(workload)
        return statistics.median(value(r) for r in runs) if runs else math.nan


def run_line(run: Run) -> str:
    return (
        f"{run.requests:,} req in {run.elapsed_s:.2f} s = {run.rate:,.0f} req/s | CPU us/req: server "
        f"{run.server_us:.0f}, PG {run.pg_us:.0f}, server+PG {run.total_us:.0f}, radclient {run.client_us:.0f} "
        f"| {run.check}{'; ' + ', '.join(run.notes) if run.notes else ''}"
    )


def latency_line(lat: LatencyResult) -> str:
    return (
        f"p50 {lat.p50_ms:.2f} ms, p99 {lat.p99_ms:.2f} ms, p99.9 {lat.p999_ms:.2f} ms, max {lat.max_ms:.1f} ms; "
        f"{lat.accepted:,}/{lat.sent:,} accepted, {lat.rejected:,} rejected, {lat.lost} lost; "
        f"send lag max {lat.max_send_lag_ms:.1f} ms | {lat.check}"
    )


# -- CSV -------------------------------------------------------------------------------------

CSV_FIELDS = [
    "date", "mode", "server", "status", "workload", "run", "requests", "accepted", "rejected", "lost", "elapsed_s",
    "req_per_s", "server_cpu_us_per_req", "pg_cpu_us_per_req", "server_pg_cpu_us_per_req", "client_cpu_us_per_req",
    "rate_req_per_s", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "rss_mb_largest_process", "loadavg",
    "udp_rcvbuf_errors_host", "check",
]  # fmt: skip


def _csv_rows(results: list[ServerResult], date: str, mode: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for res in results:
        base = {"date": date, "mode": mode, "server": res.name, "status": res.status,
                "rss_mb_largest_process": f"{max(res.rss_mb, default=0):.0f}"}  # fmt: skip
        if not res.runs:
            rows.append({**base, "check": "; ".join(res.notes)[:300]})
        for r in res.runs:
            rows.append({
                **base, "workload": r.workload, "run": r.run, "requests": r.requests, "accepted": r.accepted,
                "rejected": r.rejected, "lost": r.lost, "elapsed_s": f"{r.elapsed_s:.3f}", "req_per_s": f"{r.rate:.0f}",
                "server_cpu_us_per_req": f"{r.server_us:.1f}", "pg_cpu_us_per_req": f"{r.pg_us:.1f}",
                "server_pg_cpu_us_per_req": f"{r.total_us:.1f}", "client_cpu_us_per_req": f"{r.client_us:.1f}",
                "loadavg": r.loadavg, "udp_rcvbuf_errors_host": r.rcvbuf_errors,
                "check": "; ".join([r.check, *r.notes]),
            })  # fmt: skip
        if (lat := res.latency) is not None:
            rows.append({
                **base, "workload": "latency", "requests": lat.sent, "accepted": lat.accepted,
                "rejected": lat.rejected, "lost": lat.lost, "elapsed_s": lat.elapsed_s,
                "server_cpu_us_per_req": f"{lat.server_cpu_us:.1f}", "pg_cpu_us_per_req": f"{lat.pg_cpu_us:.1f}",
                "server_pg_cpu_us_per_req": f"{lat.server_cpu_us + lat.pg_cpu_us:.1f}",
                "rate_req_per_s": f"{lat.rate:.0f}", "p50_ms": f"{lat.p50_ms:.3f}", "p90_ms": f"{lat.p90_ms:.3f}",
                "p99_ms": f"{lat.p99_ms:.3f}", "p999_ms": f"{lat.p999_ms:.3f}", "max_ms": f"{lat.max_ms:.3f}",
                "check": f"{lat.check}; send lag max {lat.max_send_lag_ms:.1f} ms",
            })  # fmt: skip
    return rows


# -- Markdown --------------------------------------------------------------------------------


def _n(x: float, digits: int = 0) -> str:
    return "–" if math.isnan(x) else f"{x:,.{digits}f}"


def _throughput_table(results: list[ServerResult]) -> list[str]:
    lines = [
        "| server | workload | req/s (median) | runs (req/s) | server CPU µs/req | PostgreSQL CPU µs/req "
        "| server+PG µs/req | radclient CPU µs/req | checks |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for res in results:
        if res.status != "ok" and not res.runs:
            lines.append(f"| {res.label} | – | {res.status} | | | | | | {'; '.join(res.notes)[:160]} |")
            continue
        for kind in ("auth", "acct"):
            runs = res.of(kind)
            if not runs:
                continue
            checks = sorted({r.check for r in runs})
            notes = sorted({n for r in runs for n in r.notes})
            lines.append(
                f"| {res.label} | {'PAP auth' if kind == 'auth' else 'accounting'} "
                f"| **{_n(res.median(kind, lambda r: r.rate))}** | {' / '.join(_n(r.rate) for r in runs)} "
                f"| {_n(res.median(kind, lambda r: r.server_us))} | {_n(res.median(kind, lambda r: r.pg_us))} "
                f"| {_n(res.median(kind, lambda r: r.total_us))} | {_n(res.median(kind, lambda r: r.client_us))} "
                f"| {'; '.join(checks + notes)} |"
            )
    return lines


def _latency_table(results: list[ServerResult]) -> list[str]:
    lines = [
        "| server | rate req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | lost | server CPU µs/req "
        "| server+PG µs/req | RSS MB (largest process) | checks |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for res in results:
        lat = res.latency
        rss = _n(max(res.rss_mb, default=math.nan))
        if lat is None:
            lines.append(f"| {res.label} | {res.status} | | | | | | | | | {rss} | |")
            continue
        lines.append(
            f"| {res.label} | {_n(lat.rate)} | {lat.p50_ms:.2f} | {lat.p90_ms:.2f} | **{lat.p99_ms:.2f}** "
            f"| {lat.p999_ms:.2f} | {lat.max_ms:.1f} | {lat.lost} | {_n(lat.server_cpu_us)} "
            f"| {_n(lat.server_cpu_us + lat.pg_cpu_us)} | {rss} | {lat.check} |"
        )
    return lines


@dataclass(frozen=True)
class Target:
    text: str
    reference: str  # server compared with ("" for an absolute target)
    workload: str
    value: Callable[[ServerResult, str], float]
    unit: str
    ratio: float | None  # lastmile / reference must reach this
    limit: float | None  # or lastmile's value must stay below this


def _rate(res: ServerResult, kind: str) -> float:
    return res.median(kind, lambda r: r.rate)


TARGETS = (
    Target("PAP Access-Requests/s ≥ 2× FreeRADIUS+SQL", "freeradius-sql", "auth", _rate, "req/s", 2, None),
    Target("PAP Access-Requests/s ≥ 5× FreeRADIUS+SQL with Simultaneous-Use + post-auth log",
           "freeradius-sql-isp", "auth", _rate, "req/s", 5, None),
    Target("server CPU per Access-Request ≤ 50 µs", "freeradius-sql", "auth",
           lambda res, kind: res.median(kind, lambda r: r.server_us), "µs", None, 50),
    Target("accounting (acknowledged after commit): server+PostgreSQL CPU ≤ 100 µs/request", "freeradius-sql",
           "acct", lambda res, kind: res.median(kind, lambda r: r.total_us), "µs", None, 100),
    Target("Accounting-Requests/s ≥ 3× FreeRADIUS+SQL", "freeradius-sql", "acct", _rate, "req/s", 3, None),
    Target("p99 auth latency < 5 ms at half the maximum rate", "freeradius-sql", "latency",
           lambda res, _: res.latency.p99_ms if res.latency else math.nan, "ms", None, 5),
    Target("RSS per worker < 300 MB (100,000 subscribers)", "freeradius-files", "rss",
           lambda res, _: max(res.rss_mb, default=math.nan), "MB", None, 300),
)  # fmt: skip


def _met(target: Target, value: float, ratio: float) -> bool:
    if math.isnan(value):
        return False
    if target.ratio is not None:
        return ratio >= target.ratio
    return target.limit is not None and value <= target.limit


def _targets_table(results: list[ServerResult]) -> list[str]:
    by_name = {r.name: r for r in results}
    mine = by_name.get("lastmile")
    lines = ["| target | lastmile | compared with | ratio | met |", "| --- | ---: | --- | ---: | --- |"]
    for t in TARGETS:
        ref = by_name.get(t.reference)
        ref_value = t.value(ref, t.workload) if ref else math.nan
        ref_text = f"{_n(ref_value, 1 if t.unit == 'ms' else 0)} {t.unit} ({ref.label})" if ref else "not run"
        if mine is None or mine.status != "ok":
            status = mine.status if mine else "not run"
            lines.append(f"| {t.text} | {status} | {ref_text} | – | – |")
            continue
        value = t.value(mine, t.workload)
        ratio = value / ref_value if ref_value and not math.isnan(ref_value) else math.nan
        lines.append(
            f"| {t.text} | {_n(value, 1 if t.unit == 'ms' else 0)} {t.unit} | {ref_text} | {_n(ratio, 2)}× "
            f"| {'yes' if _met(t, value, ratio) else 'NO'} |"
        )
    return lines


def markdown(results: list[ServerResult], env: dict[str, str]) -> str:
    out = [f"## RADIUS: lastmile radiusd against FreeRADIUS ({env['date']}, {env['mode']} mode)", ""]
    out += [f"- {key}: {value}" for key, value in env.items() if key not in ("date", "mode")]
    out += [
        "",
        "Load: radclient (freeradius-utils 3.2.1) from separate processes, 256 requests in flight "
        "(2 streams × `-p 128`); PAP Access-Requests with Message-Authenticator over the active "
        "subscribers in random order; accounting sessions of Start, 2 Interim-Updates and Stop. "
        "CPU µs/request from /proc: the server's process tree, and the PostgreSQL postmaster with "
        "all its children. Client and servers share the machine's cores.",
        "",
        "### Maximum rate",
        "",
        *_throughput_table(results),
        "",
        "### Latency at half the maximum rate (fixed-rate generator, bench/radius/latency.py), memory",
        "",
        *_latency_table(results),
        "",
        "### Targets of issue #3",
        "",
        *_targets_table(results),
        "",
    ]
    notes = [f"- {r.label}: {n}" for r in results for n in r.notes]
    if notes:
        out += ["Notes:", "", *notes, ""]
    return "\n".join(out)


def write(results: list[ServerResult], env: dict[str, str], directory: Path, quick: bool) -> tuple[Path, Path]:
    """Write radius-<date>[-quick].csv and .md under ``directory``; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"radius-{time.strftime('%Y-%m-%d')}{'-quick' if quick else ''}"
    csv_path, md_path = directory / f"{stem}.csv", directory / f"{stem}.md"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(_csv_rows(results, env["date"], env["mode"]))
    md_path.write_text(markdown(results, env))
    return csv_path, md_path
