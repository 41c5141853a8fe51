"""Starting, probing and stopping the servers under test; every process is stopped by its PID.

Each started process is also written to ``<workdir>/pids`` (PID and command line), so that
run.sh can still stop it by PID if the driver itself was killed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import radpkt
import workload

STARTED: list[subprocess.Popen[bytes]] = []


class NotBuilt(Exception):
    """The daemon says it is not built yet (exit code 2)."""


class StartFailed(Exception):
    pass


def start(
    argv: list[str], log: Path, pid_file: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (a Ctrl-C meant for the benchmark does not reach it),
    in ``cwd`` (so relative paths, like radiusd's spool, stay in the benchmark's directory)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
    STARTED.append(proc)
    with pid_file.open("a") as f:
        f.write(f"{proc.pid}\t{' '.join(argv)}\n")
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` s; only this PID."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc in STARTED:
        STARTED.remove(proc)


def stop_all() -> None:
    for proc in list(STARTED):
        stop(proc, timeout=10.0)


def log_tail(log: Path, chars: int = 1500) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def probe_auth(port: int, secret: str, sub: workload.Subscriber, timeout: float = 0.5) -> int | None:
    """Send one Access-Request for ``sub``; the reply's code, or None without a valid reply."""
    request = radpkt.access_request(1, workload.auth_attrs(sub, 1), secret.encode())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        s.send(request)
        try:
            reply = s.recv(4096)
        except (TimeoutError, ConnectionRefusedError):
            return None
    return reply[0] if radpkt.reply_ok(reply, request, secret.encode()) else None


def _check_alive(proc: subprocess.Popen[bytes], log: Path) -> None:
    code = proc.poll()
    if code is None:
        return
    tail = log_tail(log)
    if code == 2 and "not built yet" in tail:
        raise NotBuilt(tail.strip().splitlines()[-1])
    raise StartFailed(f"exited with code {code}: {tail.strip()[-600:]}")


def wait_radius(
    proc: subprocess.Popen[bytes], log: Path, port: int, secret: str, sub: workload.Subscriber, timeout: float
) -> None:
    """Until an Access-Request for a known subscriber gets an Access-Accept."""
    deadline = time.monotonic() + timeout
    code = None
    while time.monotonic() < deadline:
        _check_alive(proc, log)
        code = probe_auth(port, secret, sub)
        if code == radpkt.ACCESS_ACCEPT:
            return
        time.sleep(0.2)
    raise StartFailed(f"no Access-Accept for {sub.login} within {timeout:.0f} s (last reply code {code})")


def wait_metrics(proc: subprocess.Popen[bytes], log: Path, url: str, ready_line: str, timeout: float) -> None:
    """Until ``url`` serves a line starting with ``ready_line``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(proc, log)
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if any(line.startswith(ready_line) for line in response.read().decode().splitlines()):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise StartFailed(f"{url} did not report {ready_line!r} within {timeout:.0f} s")


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free on 127.0.0.1 for UDP (or TCP) right now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free for both UDP and TCP."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        if port not in ports:
            ports.append(port)
    return ports


def environ(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}
