"""daemons.runtime in a real process: readiness, /metrics, SIGTERM drain order, failures."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

SAMPLE = Path(__file__).with_name("sample_daemon.py")
ROOT = Path(__file__).resolve().parents[2]


class Notifications:
    """A NOTIFY_SOCKET, as systemd provides one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(10)

    def next(self) -> str:
        return self.sock.recv(4096).decode()


@pytest.fixture
def notes(tmp_path: Path) -> Iterator[Notifications]:
    n = Notifications(tmp_path / "notify.sock")
    yield n
    n.sock.close()


def start(
    tmp_path: Path, notes: Notifications, *flags: str, drain: str = "5"
) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    env = dict(
        os.environ,
        NOTIFY_SOCKET=str(notes.path),
        LASTMILE_LOG__FORMAT="json",
        LASTMILE_RADIUSD__METRICS_PORT=str(port),
        LASTMILE_RADIUSD__DRAIN_TIMEOUT=drain,
        PYTHONPATH=str(ROOT),
    )
    proc = subprocess.Popen(
        [sys.executable, str(SAMPLE), *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    return proc, port


def lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_ready_metrics_and_ordered_drain(tmp_path: Path, notes: Notifications) -> None:
    proc, port = start(tmp_path, notes)
    try:
        assert notes.next().startswith("READY=1")
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'lastmile_ready{daemon="sample"} 1.0' in body
        assert "process_cpu_seconds_total" in body and "lastmile_build_info" in body
        proc.send_signal(signal.SIGTERM)
        assert notes.next().startswith("STOPPING=1")
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    events = lines(out)
    drained = [e["step"] for e in events if e["event"] == "drained"]
    assert drained == ["worker", "listener", "pool", "metrics"]  # last opened, first closed
    closed = [e["resource"] for e in events if e["event"] == "closed"]
    assert closed == ["worker", "listener", "pool"]
    assert all(e["daemon"] == "sample" for e in events)
    assert events[-1]["event"] == "stopped" and events[-1]["clean"] is True


def test_drain_that_overruns_is_cut_off(tmp_path: Path, notes: Notifications) -> None:
    """Every step shares the one deadline: a step that never ends (not even when cancelled, as a
    query on a hung PostgreSQL) is abandoned, and the steps after it only abort."""
    proc, _ = start(tmp_path, notes, "--slow", drain="1")
    try:
        notes.next()
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        took = time.monotonic() - t
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert took < 2.0, took  # the 1 s drain and the process exit, nothing per step
    events = lines(out)
    assert any(e["event"] == "drain step timed out" and e["step"] == "slow" for e in events)
    skipped = [e["step"] for e in events if e["event"] == "drain step skipped: out of time"]
    assert skipped == ["worker", "listener", "pool", "metrics"]
    assert [e["resource"] for e in events if e["event"] == "aborted"] == ["worker", "listener", "pool"]
    assert not [e for e in events if e["event"] == "drained"]
    assert [e["clean"] for e in events if e["event"] == "stopped"] == [False]
    assert events[-1]["event"] == "exiting without waiting for what is stuck" and events[-1]["steps"] == ["drain:slow"]


def test_crashed_task_stops_the_daemon_for_a_restart(tmp_path: Path, notes: Notifications) -> None:
    proc, _ = start(tmp_path, notes, "--crash")
    try:
        notes.next()
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert any(e["event"] == "task failed" and e["task"] == "crasher" for e in lines(out))


def test_start_failure_is_one_line_and_exit_1(tmp_path: Path, notes: Notifications) -> None:
    proc, _ = start(tmp_path, notes, "--fail-start")
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 1
    failed = [e for e in lines(out) if e["event"] == "start failed"]
    assert failed and "address in use" in str(failed[0]["error"])
    assert "Traceback" not in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_both_signals_drain(tmp_path: Path, notes: Notifications, sig: signal.Signals) -> None:
    proc, _ = start(tmp_path, notes)
    try:
        notes.next()
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert lines(out)[-1]["event"] == "stopped"


def test_http_app_is_ready_when_bound_and_drains_in_order(tmp_path: Path, notes: Notifications) -> None:
    """daemons.http: READY after the port is bound; on SIGTERM no new connection is taken, the
    request in flight finishes, then the application's cleanup runs; Runtime.every shrugs off a
    database error and goes on."""
    port = free_port()
    env = dict(os.environ, NOTIFY_SOCKET=str(notes.path), LASTMILE_LOG__FORMAT="json",
               LASTMILE_RADIUSD__METRICS_PORT="0", LASTMILE_RADIUSD__DRAIN_TIMEOUT="5", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(SAMPLE.with_name("sample_http_daemon.py")), str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        assert notes.next().startswith("READY=1")
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # bound before READY
        time.sleep(0.5)  # a few ticks
        answer: list[bytes] = []
        request = socket.create_connection(("127.0.0.1", port), timeout=10)
        request.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(0.3)  # the request is in flight
        proc.send_signal(signal.SIGTERM)
        assert notes.next().startswith("STOPPING=1")
        time.sleep(0.2)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()  # no new connections
        while chunk := request.recv(4096):
            answer.append(chunk)
        request.close()
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert b"".join(answer).startswith(b"HTTP/1.1 200") and b"done" in b"".join(answer)
    assert proc.returncode == 0, out
    events = [e["event"] for e in lines(out)]
    assert events.index("resource opened") < events.index("serving") < events.index("slow request started")
    assert events.index("slow request started") < events.index("resource closed")
    assert [e["step"] for e in lines(out) if e["event"] == "drained"] == ["ticker", "http"]  # last opened first
    assert any(e["event"] == "ticker skipped" and "database is away" in str(e["error"]) for e in lines(out))
    assert any(e["event"] == "ticker skipped: works again" for e in lines(out))
    assert [e["n"] for e in lines(out) if e["event"] == "tick"][:2] == [1, 3]
