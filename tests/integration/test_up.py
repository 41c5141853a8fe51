"""`lastmile up` end to end: starts, serves, stops cleanly within 10 s, leaves nothing behind,
and a second run reuses ./var."""

import asyncio
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import asyncpg
import pytest

from daemons.pgembed import EmbeddedPostgres
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


NOOP = '''"""A component that does nothing: what it takes to add one (daemons/registry.py)."""
from dataclasses import dataclass

from daemons import runtime
from daemons.config import DaemonSettings, listen_port
from daemons.registry import Component


@dataclass(frozen=True, slots=True)
class NoopSettings(DaemonSettings):
    metrics_port: int = listen_port(0, "Port of `/metrics`.")


async def serve(rt):
    pass


def main(settings):
    return runtime.run("noop", serve, settings, settings.of(NoopSettings))


COMPONENT = Component(name="noop", summary="does nothing", settings=NoopSettings, main="noop_component:main",
                      addresses=lambda settings: [("noop", "nothing to see here")])
'''


def install_noop(where: Path) -> Path:
    """The do-nothing component and its one declaration: an entry point in its distribution's
    metadata, as a third-party package would have it (no file of lastmile edited)."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "noop_component.py").write_text(NOOP)
    info = where / "lastmile_noop-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lastmile-noop\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lastmile.components]\nnoop = noop_component:COMPONENT\n")
    return where


class Up:
    def __init__(self, cwd: Path, pg_port: int, mqtt_port: int, plugins: Path | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
        env.update(
            PYTHONPATH=os.pathsep.join([str(ROOT), *([str(plugins)] if plugins else [])]),
            LASTMILE_NOOP__METRICS_PORT=str(free_port()),
            LASTMILE_DATABASE__EMBEDDED_PORT=str(pg_port),
            LASTMILE_MQTT__EMBEDDED_PORT=str(mqtt_port),
            LASTMILE_LOG__FORMAT="json",
        )
        # Each daemon gets ports nobody else uses during the test.
        for section, keys in {
            "RADIUSD": ("AUTH_PORT", "ACCT_PORT", "METRICS_PORT"),
            "FLOWCOLLECTOR": ("NETFLOW_PORT", "IPFIX_PORT", "METRICS_PORT"),
            "PROVISIOND": ("METRICS_PORT",),
            "ACS": ("PORT", "METRICS_PORT"),
        }.items():
            for key in keys:
                env[f"LASTMILE_{section}__{key}"] = str(free_port())
        env["LASTMILE_RADIUSD__BIND"] = env["LASTMILE_FLOWCOLLECTOR__BIND"] = env["LASTMILE_ACS__BIND"] = "127.0.0.1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemons.cli", "up", "--customers", "200"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.reader.join(5)
        assert self.proc.stdout
        self.proc.stdout.close()

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no {pattern!r} in output:\n{''.join(self.output)}")

    def text(self) -> str:
        return "".join(self.output)


def running_with(marker: str) -> list[int]:
    """PIDs of processes whose command line mentions ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline and entry.name != str(os.getpid()):
                pids.append(int(entry.name))
    return pids


async def check_serving(up: Up, pg_port: int, mqtt_port: int) -> int:
    db = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{pg_port}/lastmile")
    try:
        customers: int = await db.fetchval("SELECT count(*) FROM customers")
        # provisiond in step with the demo router (the RouterOS API double `up` runs), its
        # password sealed in the database.
        assert re.search(r"demo router\s+RouterOS API 127.0.0.1:\d+", up.text())
        deadline = time.monotonic() + 30
        while not await db.fetchval("SELECT s.last_success_at IS NOT NULL AND s.last_error IS NULL FROM router_sync s "
                                    "JOIN routers r ON r.id = s.router_id WHERE r.name = 'demo-router'"):
            assert time.monotonic() < deadline, "provisiond never synced the demo router:\n" + up.text()
            await asyncio.sleep(0.2)
        assert (await db.fetchval("SELECT password FROM routers WHERE name = 'demo-router'")).startswith("lm1:")
    finally:
        await db.close()
    async with aiomqtt.Client("127.0.0.1", mqtt_port, identifier="test-up") as client:
        await client.subscribe("lastmile/test")
        await client.publish("lastmile/test", b"ping")
        async for message in client.messages:
            assert message.payload == b"ping"
            break
    for url in re.findall(r"(http://\S+/metrics)", up.text()):
        assert b"lastmile_ready" in urllib.request.urlopen(url, timeout=5).read()
    return customers


def child_of(parent: int, marker: str) -> int:
    """The PID of ``parent``'s child whose command line contains ``marker``."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent and marker in cmdline:
                return int(entry.name)
    raise AssertionError(f"no child of {parent} runs {marker!r}")


def kill_and_see_it_come_back(up: Up, name: str) -> None:
    """SIGKILL a daemon `up` started: `up` says so, starts it again after 1 s, and it serves."""
    old = child_of(up.proc.pid, f"daemons.cli {name}")
    os.kill(old, signal.SIGKILL)
    up.wait_for(rf"{name} exited with signal SIGKILL after [\d.]+ s; restarting it in 1 s", 10)
    back = up.wait_for(rf"{name} is back \(pid \d+", 60)
    new = int(re.search(r"pid (\d+)", back).group(1))  # type: ignore[union-attr]
    assert new != old and child_of(up.proc.pid, f"daemons.cli {name}") == new
    url = re.search(rf"{name} metrics\s+(http://\S+/metrics)", up.text()).group(1)  # type: ignore[union-attr]
    assert f'lastmile_ready{{daemon="{name}"}} 1.0' in urllib.request.urlopen(url, timeout=5).read().decode()


def stop(up: Up) -> float:
    t = time.monotonic()
    up.proc.send_signal(signal.SIGINT)
    up.proc.wait(timeout=15)
    return time.monotonic() - t


@pytest.fixture
def workdir() -> Iterator[Path]:
    """`up`'s directory, outside pytest's tmp_path (as tests/conftest.py does): another pytest
    session starting resets /tmp/pytest-of-<user> to 0700, locking the server's user
    (`pgserver` under root) out of ./var/pg."""
    path = Path(tempfile.mkdtemp(prefix="lastmile-up-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_up_serves_stops_clean_and_reuses_var(workdir: Path) -> None:
    tmp_path = workdir
    pg_port, mqtt_port = free_port(), free_port()
    datadir = str(tmp_path / "var" / "pg")

    first = Up(tmp_path, pg_port, mqtt_port, plugins=install_noop(tmp_path / "plugins"))
    try:
        first.wait_for(r"lastmile is up", 60)
        first.wait_for(r"noop metrics", 5)
        assert re.search(r"noop\s+nothing to see here", first.text())  # a component `up` was not told about
        assert re.search(r"acs\s+CWMP http://127\.0\.0\.1:\d+/", first.text())
        assert f"postgresql://postgres@127.0.0.1:{pg_port}/lastmile" in first.text()
        assert f"mqtt://127.0.0.1:{mqtt_port}" in first.text()
        assert "loaded demo data: 200 customers" in first.text()
        assert asyncio.run(check_serving(first, pg_port, mqtt_port)) == 200
        kill_and_see_it_come_back(first, "radiusd")
        took = stop(first)
    finally:
        first.close()
    assert first.proc.returncode == 0, first.text()
    assert took < 10, f"stopping took {took:.1f} s"
    assert "lastmile up: stopped" in first.text()
    assert running_with(datadir) == [], "PostgreSQL still running"
    assert running_with(f"--port {mqtt_port}") == [], "broker still running"

    second = Up(tmp_path, pg_port, mqtt_port)
    try:
        second.wait_for(r"lastmile is up", 60)
        assert "loaded demo data" not in second.text()
        assert asyncio.run(check_serving(second, pg_port, mqtt_port)) == 200
        children = running_with(f"--port {mqtt_port}")
        assert children
        # Killed outright, `up` takes its daemons with it (PostgreSQL stays, for the next `up`).
        second.proc.send_signal(signal.SIGKILL)
        second.proc.wait(10)
        deadline = time.monotonic() + 10
        while running_with(f"--port {mqtt_port}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert running_with(f"--port {mqtt_port}") == []
    finally:
        second.close()
        EmbeddedPostgres(tmp_path / "var" / "pg", pg_port).stop()
    assert running_with(datadir) == []
