"""Results of the auth storm (storm.py): the Markdown report, a summary CSV and the timeline CSV."""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import bras

if TYPE_CHECKING:
    from storm import StormRun

BAR = 40  # characters of a full bar in the text chart
CHART_ROWS = 30


def _n(x: float, digits: int = 0) -> str:
    return "–" if math.isnan(x) else f"{x:,.{digits}f}"


def _percentile(values: list[float], q: float) -> float:
    """The time by which a share ``q`` of all subscribers was online (NaN if never)."""
    done = sorted(t for t in values if t >= 0)
    need = max(1, math.ceil(q * len(values)))
    return done[need - 1] if len(done) >= need else math.nan


def peak_rate(res: bras.Result) -> float:
    """The most subscribers that came online in one sample interval, per second."""
    best, prev = 0.0, None
    for s in res.samples:
        if prev is not None and s.t > prev.t:
            best = max(best, (s.online - prev.online) / (s.t - prev.t))
        prev = s
    return best


def figures(run: StormRun) -> dict[str, float]:
    """The numbers of one storm, for the tables and the CSV."""
    res = run.result
    if res is None:
        return {}
    logins = max(1, res.online)
    requests = max(1, res.requests)
    return {
        "subscribers": res.subscribers,
        "online": res.online,
        "on_acked_s": res.on_acked_s,
        "on_retransmits": res.on_retransmits,
        "first_accept_s": min((t for t in res.accept_at if t >= 0), default=math.nan),
        "all_online_s": res.elapsed_s if res.online == res.subscribers else math.nan,
        "p50_online_s": _percentile(res.online_at, 0.5),
        "p90_online_s": _percentile(res.online_at, 0.9),
        "p99_online_s": _percentile(res.online_at, 0.99),
        "logins_per_s": res.online / res.elapsed_s if res.elapsed_s else math.nan,
        "peak_logins_per_s": peak_rate(res),
        "auth_sent": res.auth_sent,
        "auth_retransmits": res.auth_retransmits,
        "auth_lost": res.auth_lost,
        "acct_sent": res.acct_sent,
        "acct_retransmits": res.acct_retransmits,
        "acct_lost": res.acct_lost,
        "redials": res.redials,
        "rejected": res.rejected,
        "subscribers_retransmitted": res.subscribers_retransmitted,
        "invalid_or_stray": res.invalid + res.stray,
        "pool_addresses": res.pool_addresses,
        "same_address": run.state.get("same_address", math.nan),
        "server_cpu_s": run.server_cpu_s,
        "pg_cpu_s": run.pg_cpu_s,
        "client_cpu_s": run.client_cpu_s,
        "server_cores": run.server_cpu_s / res.elapsed_s if res.elapsed_s else math.nan,
        "pg_cores": run.pg_cpu_s / res.elapsed_s if res.elapsed_s else math.nan,
        "server_us_per_login": run.server_cpu_s * 1e6 / logins,
        "pg_us_per_login": run.pg_cpu_s * 1e6 / logins,
        "total_us_per_login": (run.server_cpu_s + run.pg_cpu_s) * 1e6 / logins,
        "client_us_per_login": run.client_cpu_s * 1e6 / logins,
        "total_us_per_request": (run.server_cpu_s + run.pg_cpu_s) * 1e6 / requests,
        "wal_bytes_per_login": run.wal_bytes / logins,
        "rss_mb": max(run.rss_mb, default=math.nan),
        "loadavg": run.loadavg,
        "udp_rcvbuf_errors_host": run.rcvbuf_errors,
    }


def wave_figures(run: StormRun) -> dict[str, float]:
    """The Interim-Update wave after the storm: one Interim-Update per session."""
    w = run.wave
    if w is None:
        return {}
    n = max(1, w.online)
    return {
        "interims": w.online,
        "of": w.subscribers,
        "elapsed_s": w.elapsed_s,
        "per_s": w.online / w.elapsed_s if w.elapsed_s else math.nan,
        "retransmits": w.acct_retransmits,
        "lost": w.acct_lost,
        "server_us": run.wave_server_cpu_s * 1e6 / n,
        "pg_us": run.wave_pg_cpu_s * 1e6 / n,
        "wal_bytes": run.wave_wal_bytes / n,
    }


def wave_line(run: StormRun) -> str:
    f = wave_figures(run)
    if not f:
        return "no Interim-Update wave"
    return (
        f"{f['interims']:,.0f}/{f['of']:,.0f} Interim-Updates acknowledged in {f['elapsed_s']:.1f} s "
        f"({f['per_s']:,.0f}/s; retransmitted {f['retransmits']:,.0f}, lost {f['lost']:,.0f}) | CPU µs/request: "
        f"server {f['server_us']:.0f}, PG {f['pg_us']:.0f} | WAL {f['wal_bytes']:,.0f} bytes/request"
    )


def _wave_table(runs: list[StormRun]) -> list[str]:
    shown = [(r, wave_figures(r)) for r in runs if r.wave is not None]
    if not shown:
        return []
    lines = [
        "### Then an Interim-Update of every session at once",
        "",
        "Sessions that started together send their Interim-Updates together (every 300 s, unless the NAS "
        "spreads them): right after the storm, after a checkpoint, the BRAS sends every session's first "
        "Interim-Update (counters of 300 s) with the same window and retransmissions.",
        "",
        "| | Interim-Updates acknowledged | in s | per s | retransmitted / lost | server CPU µs/request "
        "| PostgreSQL CPU µs/request | WAL bytes/request |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r, f in shown:
        lines.append(
            f"| {r.label} | {f['interims']:,.0f} / {f['of']:,.0f} | {f['elapsed_s']:.1f} | {f['per_s']:,.0f} "
            f"| {f['retransmits']:,.0f} / {f['lost']:,.0f} | {f['server_us']:,.0f} | {f['pg_us']:,.0f} "
            f"| {f['wal_bytes']:,.0f} |"
        )
    return [*lines, ""]


def summary_line(run: StormRun) -> str:
    f = figures(run)
    if not f:
        return f"{run.name}: {run.status}"
    return (
        f"{f['online']:,.0f}/{f['subscribers']:,.0f} online after {run.result.elapsed_s if run.result else 0:.1f} s "
        f"(Accounting-On answered in {f['on_acked_s']:.2f} s; 50 % at {f['p50_online_s']:.1f} s, "
        f"99 % at {f['p99_online_s']:.1f} s; {f['logins_per_s']:,.0f} logins/s, peak {f['peak_logins_per_s']:,.0f}) | "
        f"retransmitted {f['auth_retransmits']:,.0f} auth + {f['acct_retransmits']:,.0f} acct, lost "
        f"{f['auth_lost']:,.0f} + {f['acct_lost']:,.0f}, rejected {f['rejected']:,.0f} | CPU µs/login: server "
        f"{f['server_us_per_login']:.0f}, PG {f['pg_us_per_login']:.0f}, generator {f['client_us_per_login']:.0f}"
    )


# -- Markdown --------------------------------------------------------------------------------


def _summary_table(runs: list[StormRun]) -> list[str]:
    rows: list[tuple[str, Callable[[dict[str, float]], str]]] = [
        ("subscribers online / of", lambda f: f"{f['online']:,.0f} / {f['subscribers']:,.0f}"),
        ("Accounting-On answered after (retransmitted) / first Access-Accept after",
         lambda f: f"{f['on_acked_s']:.2f} s ({f['on_retransmits']:.0f}) / {_n(f['first_accept_s'], 2)} s"),
        ("**all online after** (from the Accounting-On)", lambda f: f"**{_n(f['all_online_s'], 1)} s**"),
        ("50 % / 90 % / 99 % online after",
         lambda f: f"{_n(f['p50_online_s'], 1)} / {_n(f['p90_online_s'], 1)} / {_n(f['p99_online_s'], 1)} s"),
        ("logins/s: mean / best second", lambda f: f"{_n(f['logins_per_s'])} / {_n(f['peak_logins_per_s'])}"),
        ("Access-Requests: sent / retransmitted / lost",
         lambda f: f"{f['auth_sent']:,.0f} / {f['auth_retransmits']:,.0f} / {f['auth_lost']:,.0f}"),
        ("Accounting-Starts: sent / retransmitted / lost",
         lambda f: f"{f['acct_sent']:,.0f} / {f['acct_retransmits']:,.0f} / {f['acct_lost']:,.0f}"),
        ("subscribers that needed a retransmission", lambda f: f"{f['subscribers_retransmitted']:,.0f}"),
        ("redials (after a loss or reject) / Access-Rejects", lambda f: f"{f['redials']:,.0f} / {f['rejected']:,.0f}"),
        ("Accepts with a Framed-IP-Address from a lastmile pool", lambda f: f"{f['pool_addresses']:,.0f}"),
        ("of them the address from before the reboot",
         lambda f: "–" if math.isnan(f["same_address"]) else f"{f['same_address']:,.0f}"),
        ("CPU s: server / PostgreSQL / generator",
         lambda f: f"{f['server_cpu_s']:.1f} / {f['pg_cpu_s']:.1f} / {f['client_cpu_s']:.1f}"),
        ("cores busy on average: server / PostgreSQL", lambda f: f"{f['server_cores']:.2f} / {f['pg_cores']:.2f}"),
        ("**CPU µs per login** (Access-Request + Start): server / PostgreSQL / both",
         lambda f: f"{f['server_us_per_login']:,.0f} / {f['pg_us_per_login']:,.0f} / "
                   f"**{f['total_us_per_login']:,.0f}**"),
        ("WAL bytes per login (after a checkpoint at the start)", lambda f: _n(f["wal_bytes_per_login"])),
        ("RSS MB, largest server process", lambda f: _n(f["rss_mb"])),
        ("UDP receive-buffer drops on the host", lambda f: f"{f['udp_rcvbuf_errors_host']:,.0f}"),
    ]  # fmt: skip
    shown = [r for r in runs if r.result is not None]
    lines = ["| | " + " | ".join(r.label for r in shown) + " |", "| --- |" + " ---: |" * len(shown)]
    per_run = [figures(r) for r in shown]
    for title, cell in rows:
        lines.append(f"| {title} | " + " | ".join(cell(f) for f in per_run) + " |")
    lines.append("| checks | " + " | ".join(r.check for r in shown) + " |")
    return lines


def _online_at(res: bras.Result, t: float) -> int:
    """Subscribers online at ``t`` seconds, interpolated between the two samples around it
    (samples fall a few milliseconds either side of their nominal times, so taking the last one
    before ``t`` would sometimes take the one a whole interval earlier)."""
    before = None
    for s in res.samples:
        if s.t >= t:
            if before is None or s.t == before.t:
                return s.online
            share = (t - before.t) / (s.t - before.t)
            return round(before.online + share * (s.online - before.online))
        before = s
    return before.online if before is not None else 0


def _marks(longest: float) -> list[float]:
    marks, t = [], 1.0
    steps = (1, 2, 5)
    decade = 1.0
    while t < longest:
        for step in steps:
            t = step * decade
            if t < longest:
                marks.append(t)
        decade *= 10
    return [*marks, longest]


def _curve_table(runs: list[StormRun]) -> list[str]:
    shown = [r for r in runs if r.result is not None]
    longest = max((r.result.elapsed_s for r in shown if r.result), default=0.0)
    if not shown or longest <= 0:
        return []
    lines = ["| seconds after Accounting-On | " + " | ".join(r.label for r in shown) + " |",
             "| ---: |" + " ---: |" * len(shown)]  # fmt: skip
    for t in _marks(longest):
        cells = []
        for r in shown:
            assert r.result is not None
            n = _online_at(r.result, t) if t < r.result.elapsed_s else r.result.online
            cells.append(f"{n:,} ({100 * n / max(1, r.result.subscribers):.0f} %)")
        lines.append(f"| {t:,.{0 if t == int(t) else 1}f} | " + " | ".join(cells) + " |")
    return lines


def _nice(x: float) -> float:
    """The smallest of 1, 2, 5 x 10^n that is at least ``x``."""
    decade = 10.0 ** math.floor(math.log10(x)) if x > 0 else 1.0
    return next((m * decade for m in (1, 2, 5, 10) if m * decade >= x), 10 * decade)


def _chart(run: StormRun) -> list[str]:
    """Subscribers online over time as text bars, with the logins per second of each step."""
    res = run.result
    if res is None or not res.samples:
        return []
    sample = res.samples[1].t - res.samples[0].t if len(res.samples) > 1 else 1.0
    step = max(sample, _nice(res.elapsed_s / CHART_ROWS))
    width = len(f"{res.subscribers:,}")
    lines = [f"{run.label}: subscribers online, every {step:g} s", ""]
    prev_online, prev_t = 0, 0.0
    t = step
    while True:
        last = t >= res.elapsed_s
        at = res.elapsed_s if last else t
        online = res.online if last else _online_at(res, at)
        bar = "█" * round(BAR * online / max(1, res.subscribers))
        rate = (online - prev_online) / (at - prev_t) if at > prev_t else 0.0
        lines.append(f"{at:7.1f} s |{bar:<{BAR}}| {online:>{width},}  {rate:>8,.0f}/s")
        if last:
            break
        prev_online, prev_t = online, at
        t += step
    return ["```", *lines, "```"]


def _tables(tables: list[tuple[str, int, int]], copy_note: str) -> list[str]:
    if not tables:
        return []
    lines = [
        "### Table sizes after the storms",
        "",
        "Heap, TOAST and indexes of every partition, over the live rows (dead row versions of the storms' "
        "updates included; radius_sessions has fillfactor 50). traffic_usage and traffic_unknown hold only "
        f"the rows of the COPY below. {copy_note}.",
        "",
        "| table | rows | MB | bytes per row |",
        "| --- | ---: | ---: | ---: |",
    ]
    for table, rows, size in tables:
        lines.append(f"| {table} | {rows:,} | {size / 1e6:,.1f} | {size / rows if rows else math.nan:,.0f} |")
    return [*lines, ""]


def markdown(
    runs: list[StormRun], env: dict[str, str], tables: list[tuple[str, int, int]] | None = None, copy_note: str = ""
) -> str:
    out = [f"## RADIUS auth storm after a BRAS reboot ({env['date']}, {env['mode']} mode)", ""]
    out += [f"- {key}: {value}" for key, value in env.items() if key not in ("date", "mode")]
    out += [
        "",
        "The BRAS (bench/radius/bras.py) sends Accounting-On; once it is answered every subscriber dials: "
        "PAP Access-Request with Message-Authenticator, and for the Accept an Accounting-Start (with the "
        "Accept's Framed-IP-Address). A subscriber is online when its Start is acknowledged. CPU from /proc: "
        "the server's process tree, the PostgreSQL postmaster with all its children, over the whole storm.",
        "",
        "### Summary",
        "",
        *_summary_table(runs),
        "",
        "### Subscribers online over time",
        "",
        *_curve_table(runs),
        "",
    ]
    for run in runs:
        out += [*_chart(run), ""]
    out += _wave_table(runs)
    counters = [
        f"- {r.label}: " + ", ".join(f"`{k}` {v:,.0f}" for k, v in r.metrics.items()) for r in runs if r.metrics
    ]
    if counters:
        out += ["radiusd's own counters after the storm (non-zero ones):", "", *counters, ""]
    out += _tables(tables or [], copy_note)
    not_run = [r for r in runs if r.result is None]
    notes = [f"- {r.label}: {r.status}" + (f" ({'; '.join(r.notes)})" if r.notes else "") for r in not_run]
    notes += [f"- {r.label}: {n}" for r in runs if r.result is not None for n in r.notes]
    if notes:
        out += ["Notes:", "", *notes, ""]
    return "\n".join(out)


# -- CSV -------------------------------------------------------------------------------------

SUMMARY_FIELDS = [
    "date", "mode", "server", "status", "subscribers", "online", "on_acked_s", "on_retransmits", "first_accept_s",
    "all_online_s", "p50_online_s", "p90_online_s", "p99_online_s", "logins_per_s", "peak_logins_per_s",
    "auth_sent", "auth_retransmits", "auth_lost", "acct_sent", "acct_retransmits", "acct_lost", "redials",
    "rejected", "subscribers_retransmitted", "invalid_or_stray", "pool_addresses", "same_address",
    "server_cpu_s", "pg_cpu_s", "client_cpu_s", "server_cores", "pg_cores", "server_us_per_login",
    "pg_us_per_login", "total_us_per_login", "client_us_per_login", "total_us_per_request", "wal_bytes_per_login",
    "rss_mb", "loadavg", "udp_rcvbuf_errors_host", "check",
]  # fmt: skip
TIMELINE_FIELDS = [
    "server", "t_s", "online", "accepted", "rejected", "auth_sent", "acct_sent", "retransmits", "lost", "in_flight",
    "server_cpu_s", "pg_cpu_s",
]  # fmt: skip


def _cell(value: object) -> object:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}".rstrip("0").rstrip(".")
    return value


def write(
    runs: list[StormRun],
    env: dict[str, str],
    directory: Path,
    quick: bool,
    tables: list[tuple[str, int, int]] | None = None,
    copy_note: str = "",
) -> tuple[Path, Path, Path]:
    """storm-<date>[-quick].md, .csv (one row per server) and -timeline.csv under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"storm-{time.strftime('%Y-%m-%d')}{'-quick' if quick else ''}"
    md_path, csv_path = directory / f"{stem}.md", directory / f"{stem}.csv"
    timeline_path = directory / f"{stem}-timeline.csv"
    md_path.write_text(markdown(runs, env, tables, copy_note))
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        for run in runs:
            row = {k: _cell(v) for k, v in figures(run).items() if k in SUMMARY_FIELDS}
            writer.writerow({"date": env["date"], "mode": env["mode"], "server": run.name, "status": run.status,
                             **row, "check": run.check or "; ".join(run.notes)[:300]})  # fmt: skip
    with timeline_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TIMELINE_FIELDS)
        writer.writeheader()
        for run in runs:
            for s in run.result.samples if run.result else []:
                writer.writerow({"server": run.name, "t_s": _cell(s.t), "online": s.online, "accepted": s.accepted,
                                 "rejected": s.rejected, "auth_sent": s.auth_sent, "acct_sent": s.acct_sent,
                                 "retransmits": s.retransmits, "lost": s.lost, "in_flight": s.in_flight,
                                 "server_cpu_s": _cell(s.server_cpu_s), "pg_cpu_s": _cell(s.pg_cpu_s)})  # fmt: skip
    return md_path, csv_path, timeline_path
