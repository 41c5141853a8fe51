"""The processes the benchmark starts (RouterOS doubles, provisiond), and what /proc says of them.

Each process starts in its own session, so a Ctrl-C meant for the benchmark reaches the driver
only, which then stops them in order (provisiond before the routers it talks to). Each is also
written to ``<workdir>/pids`` (PID and command line), so that run.sh can still stop it by PID
if the driver itself was killed. Only those PIDs are ever signalled.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STARTED: list[subprocess.Popen[bytes]] = []


class StartFailed(Exception):
    pass


def register(pids: Path, pid: int) -> None:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return
    with pids.open("a") as f:
        f.write(f"{pid}\t{cmdline}\n")


def start(argv: list[str], *, env: dict[str, str], cwd: Path, stdout: Path, stderr: Path | None,
          pids: Path) -> subprocess.Popen[bytes]:
    with stdout.open("wb") as out:
        err = stderr.open("wb") if stderr is not None else None
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err if err is not None else subprocess.STDOUT, env=env, cwd=cwd,
                                    start_new_session=True)
        finally:
            if err is not None:
                err.close()
    STARTED.append(proc)
    register(pids, proc.pid)
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout`` s; this PID only. Its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc in STARTED:
        STARTED.remove(proc)
    return proc.returncode


def stop_all() -> None:
    for proc in list(reversed(STARTED)):
        stop(proc, timeout=10.0)


# --- the doubles ------------------------------------------------------------------------------


@dataclass(slots=True)
class Double:
    index: int
    name: str
    user: str
    password: str
    proc: subprocess.Popen[bytes]
    out: Path
    port: int = 0
    version: str = ""


def start_double(index: int, user: str, password: str, work: Path, pids: Path) -> Double:
    """``python -m tests.fakes.routeros`` on a free port; ``wait_listening`` reads the port."""
    argv = [sys.executable, "-m", "tests.fakes.routeros", "--port", "0", "--user", user, "--password", password]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    out = work / f"router-{index:02d}.out"
    proc = start(argv, env=env, cwd=ROOT, stdout=out, stderr=work / f"router-{index:02d}.log", pids=pids)
    return Double(index, f"bench-r{index:02d}", user, password, proc, out)


def wait_listening(doubles: list[Double], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for d in doubles:
        while True:
            text = d.out.read_text() if d.out.exists() else ""
            if text.endswith("\n"):
                line = json.loads(text.splitlines()[0])
                d.port, d.version = int(line["port"]), str(line["version"])
                break
            if d.proc.poll() is not None:
                log = d.out.with_suffix(".log").read_text(errors="replace")[-600:]
                raise StartFailed(f"RouterOS double {d.index} exited with code {d.proc.returncode}: {log}")
            if time.monotonic() > deadline:
                raise StartFailed(f"RouterOS double {d.index} did not listen within {timeout:.0f} s")
            time.sleep(0.05)


# --- /proc ------------------------------------------------------------------------------------


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = f[3] + f[4]
    return sum(f) - idle, sum(f)

