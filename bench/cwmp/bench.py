#!/usr/bin/env python3
"""CWMP benchmark (``bench/cwmp/run.sh``): complete Inform sessions per second from
``loadclient.py`` (a second process, pinned to core 1) against an ACS pinned to core 0, and the
ACS's CPU milliseconds per session from ``/proc/<pid>/stat`` (utime + stime deltas over the
measured window only); for ``lastmile acs`` also its PostgreSQL's (the postmaster's tree).

1. The peer floor, ``stub.py`` (a do-nothing raw-asyncio ACS with the same digest step), then
   ``lastmile acs`` (acsdaemon.py: embedded PostgreSQL, a service per device), each with the
   TR-098 and TR-181 PERIODIC Informs of ``BENCH_DEVICES`` (10,000) distinct serials over
   ``BENCH_CPES`` (50) keep-alive connections for ``BENCH_SECONDS`` (30) each. Before its timed
   rows the ACS sees one session of every device (``--once``): the first session of a device
   is the slow path (the presets applied), the next ones are the steady state measured.
2. BOOTSTRAP: ``BENCH_DEVICES`` new devices, each linked to its service by serial, inform
   "0 BOOTSTRAP" + "1 BOOT" once (at most ``BENCH_SECONDS``); each session must carry one
   SetParameterValues with the default preset's values and the PPPoE + Wi-Fi preset's
   (``--require``), and the values must be in the database afterwards (counted).

Results: tables on stdout, ``results.json`` in ``BENCH_WORKDIR``, and ``--record`` writes the
block under "## ACS (CWMP)" in docs/benchmarks.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import procstat
from acsdaemon import PASSWORD, PRESET_ALIASES, AcsDaemon, register
from benchkit import take_lock

from acs import datamodel

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PYTHON = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
TARGET = 1000.0  # complete sessions/s on one core (issue 15)
MODELS = {"tr098": "PA", "tr181": "PB"}  # serial prefix of each model's PERIODIC devices
BOOTSTRAP = "BS"  # serial prefix of the BOOTSTRAP devices (TR-098)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit("bench/cwmp: the stub did not start")


def measure(port: int, model: str, cpes: int, devices: int, seconds: float, server_pid: int, *,
            prefix: str = "BENCH", inform: str = "inform-2-periodic", once: bool = False,
            require: tuple[str, ...] = (), postmaster: int = 0, password: str = "cpe") -> dict[str, object]:
    """One load-client run; the server's CPU (and its PostgreSQL's) over exactly that run."""
    argv = ["taskset", "-c", "1", PYTHON, str(HERE / "loadclient.py"), "--port", str(port),
            "--model", model, "--cpes", str(cpes), "--devices", str(devices), "--seconds", str(seconds),
            "--prefix", prefix, "--inform", inform, "--password", password, "--require", ",".join(require)]
    if once:
        argv.append("--once")
    before, pg_before = cpu_seconds(server_pid), procstat.cpu_seconds(postmaster) if postmaster else 0.0
    out = subprocess.run(argv, check=True, capture_output=True, text=True, cwd=HERE).stdout
    server_cpu = cpu_seconds(server_pid) - before
    pg_cpu = procstat.cpu_seconds(postmaster) - pg_before if postmaster else 0.0
    result: dict[str, object] = json.loads(out.splitlines()[-1])
    sessions = max(int(str(result["sessions"])), 1)
    wall = float(str(result["wall_s"]))
    result.update({"model": model, "cpes": cpes, "devices": devices,
                   "sessions_per_s": round(sessions / wall, 1),
                   "server_cpu_s": round(server_cpu, 3),
                   "server_ms_per_session": round(server_cpu * 1000 / sessions, 4),
                   "pg_ms_per_session": round(pg_cpu * 1000 / sessions, 4) if postmaster else None,
                   "requests_per_session": round(int(str(result["requests"])) / sessions, 2),
                   "rpcs_per_session": round(int(str(result["rpcs"])) / sessions, 2),
                   "client_ms_per_session": round(float(str(result["cpu_s"])) * 1000 / sessions, 4)})
    return result


def run_stub(work: Path, cpes: int, devices: int, seconds: float) -> list[dict[str, object]]:
    port = 17547 + os.getpid() % 1000
    argv = ["taskset", "-c", "0", PYTHON, str(HERE / "stub.py"), "--port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=HERE)
    try:
        wait_ready(proc)
        register(work, proc.pid)  # after taskset's exec: the stub's own command line
        return [measure(port, model, cpes, devices, seconds, proc.pid) | {"server": "stub (peer floor)"}
                for model in MODELS]
    finally:
        proc.terminate()
        proc.wait(10)


def run_acs(work: Path, cpes: int, devices: int, seconds: float) -> tuple[list[dict[str, object]],
                                                                           list[dict[str, object]]]:
    """(PERIODIC rows, [the BOOTSTRAP row]) of ``lastmile acs``."""
    acs = AcsDaemon(work)
    with open("/tmp/bench.lock", "w") as lock:
        take_lock(lock, Path("/tmp/bench.lock"), 900, say)
        try:
            acs.start([*MODELS.values(), BOOTSTRAP], devices)
            assert acs.proc is not None
            pid, pg = acs.proc.pid, acs.postmaster
            for model, prefix in MODELS.items():
                warm = measure(acs.port, model, cpes, devices, 3600, pid, prefix=prefix, once=True,
                               postmaster=pg, password=PASSWORD)
                say(f"warm-up {model}: {warm['sessions']} first sessions at {warm['sessions_per_s']}/s, "
                    f"{warm['server_ms_per_session']} ms ACS CPU each, {warm['errors']} errors")
                if int(str(warm["errors"])) or int(str(warm["sessions"])) != devices:
                    raise SystemExit(f"bench/cwmp: warm-up of {model} failed: {warm['first_errors']}\n"
                                     f"{acs.log_tail()}")
            acs.db.settle()  # statistics of the devices' tables as a lived-in database has them
            periodic = []
            for model, prefix in MODELS.items():
                batches, rows = acs.writer_counts()
                row = measure(acs.port, model, cpes, devices, seconds, pid, prefix=prefix, postmaster=pg,
                              password=PASSWORD)
                batches_after, rows_after = acs.writer_counts()
                periodic.append(row | {"server": "lastmile acs", "inform_batch": round(
                    (rows_after - rows) / max(batches_after - batches, 1), 1)})
            require = tuple(datamodel.resolve(a, "tr098") for a in PRESET_ALIASES)
            boot = measure(acs.port, "tr098", cpes, devices, seconds, pid, prefix=BOOTSTRAP,
                           inform="inform-0-bootstrap-1-boot.pr18", once=True, require=require,
                           postmaster=pg, password=PASSWORD)
            boot |= {"server": "lastmile acs", "landed": acs.landed(BOOTSTRAP, "tr098")}
            return periodic, [boot]
        finally:
            acs.stop()


def say(text: str) -> None:
    print(f"bench/cwmp: {text}", file=sys.stderr, flush=True)


def table(rows: list[dict[str, object]]) -> str:
    lines = ["| server | model | CPEs (connections) / devices | sessions/s | p50 / p99 session "
             "| server CPU ms/session | PostgreSQL CPU ms/session | load client CPU ms/session | errors |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        pg = "-" if r.get("pg_ms_per_session") is None else r["pg_ms_per_session"]
        lines.append(f"| {r['server']} | {r['model']} | {r['cpes']} / {r['devices']:,} "
                     f"| {float(str(r['sessions_per_s'])):,.0f} | {r['p50_ms']} / {r['p99_ms']} ms "
                     f"| {r['server_ms_per_session']} | {pg} | {r['client_ms_per_session']} "
                     f"| {r['errors']} |")
    return "\n".join(lines)


def ratios(stub: list[dict[str, object]], acs: list[dict[str, object]]) -> str:
    lines = []
    for s, a in zip(stub, acs, strict=True):
        ms, floor = float(str(a["server_ms_per_session"])), float(str(s["server_ms_per_session"]))
        rate = float(str(a["sessions_per_s"]))
        lines.append(f"- {a['model']}: the ACS costs {ms / floor:.1f} x the stub's CPU per session "
                     f"({ms} vs {floor} ms), so one core carries about {1000 / ms:,.0f} sessions/s; "
                     f"measured {rate:,.0f} sessions/s = {rate / TARGET:.2f} x the target of {TARGET:,.0f} "
                     f"({a['inform_batch']} Informs per commit of the writer)")
    return "\n".join(lines)


def boot_table(rows: list[dict[str, object]]) -> str:
    lines = ["| sessions | sessions/s | p50 / p99 session | HTTP requests / RPCs per session "
             "| ACS CPU ms/session | PostgreSQL CPU ms/session | one SPV with PPPoE + Wi-Fi | values in the "
             "database | errors |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {int(str(r['sessions'])):,} | {float(str(r['sessions_per_s'])):,.0f} "
                     f"| {r['p50_ms']} / {r['p99_ms']} ms | {r['requests_per_session']} / {r['rpcs_per_session']} "
                     f"| {r['server_ms_per_session']} | {r['pg_ms_per_session']} | {int(str(r['complete'])):,} "
                     f"| {int(str(r['landed'])):,} | {r['errors']} |")
    return "\n".join(lines)


def record(text: str) -> None:
    """Replace (or append) the "## ACS (CWMP)" section of docs/benchmarks.md."""
    path = ROOT / "docs" / "benchmarks.md"
    doc = path.read_text()
    head = "## ACS (CWMP)"
    start = doc.find(head)
    if start < 0:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    else:
        end = doc.find("\n## ", start + len(head))
        doc = doc[:start] + text + ("\n" + doc[end:] if end >= 0 else "\n")
    path.write_text(doc)


def main() -> None:
    work = Path(os.environ.get("BENCH_WORKDIR", "/tmp"))
    cpes = int(os.environ.get("BENCH_CPES", "50"))
    devices = int(os.environ.get("BENCH_DEVICES", "10000"))
    seconds = float(os.environ.get("BENCH_SECONDS", "30"))
    load_before = os.getloadavg()[0]
    stub = run_stub(work, cpes, devices, seconds)
    periodic, boot = run_acs(work, cpes, devices, seconds)
    (work / "results.json").write_text(json.dumps({"periodic": stub + periodic, "bootstrap": boot}, indent=2))
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    result = (f"{table(stub + periodic)}\n\n{ratios(stub, periodic)}\n\n"
              f"BOOTSTRAP (TR-098, \"0 BOOTSTRAP\" + \"1 BOOT\", new devices linked to their services by "
              f"serial, once each):\n\n{boot_table(boot)}")
    print(result)
    if "--record" in sys.argv:
        record(f"## ACS (CWMP)\n\n{(HERE / 'SECTION.md').read_text().strip()}\n\n"
               f"### {when}, {seconds:.0f} s per row, 2 shared vCPUs (server on CPU0, load "
               f"client on CPU1; load average {load_before:.2f} before the run)\n\n{result}\n")


if __name__ == "__main__":
    main()
