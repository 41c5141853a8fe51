"""Fixtures that run real peers: an MQTT broker (amqtt, what `lastmile up` embeds), and a PostgreSQL
of a module's own that its tests may crash and stop."""

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from daemons import db
from daemons.pgembed import EmbeddedPostgres
from tests.conftest import free_port
from tests.fakes.nas import FakeNas
from tests.integration.radius_env import SECRET, Radiusd, add_nas

_databases = itertools.count()


class Broker:
    """An amqtt broker on 127.0.0.1 that a test can stop and start again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"mqtt://127.0.0.1:{port}"
        self._broker: object | None = None

    async def start(self) -> None:
        from amqtt.broker import Broker as AmqttBroker

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        broker = AmqttBroker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
            }
        )
        await broker.start()
        self._broker = broker

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()  # type: ignore[attr-defined]
            self._broker = None


@pytest.fixture
def radiusds() -> Iterator[list[Radiusd]]:
    """The radiusd processes a test starts (radius_env.start), stopped after it."""
    started: list[Radiusd] = []
    yield started
    for daemon in started:
        daemon.stop()


@pytest.fixture
def nas() -> Iterator[FakeNas]:
    """A NAS double answering CoA and Disconnect-Requests (tests/fakes/nas.py) with the test secret."""
    with FakeNas(SECRET) as double:
        yield double


@pytest.fixture
async def mqtt_broker() -> AsyncIterator[Broker]:
    broker = Broker(free_port())
    await broker.start()
    yield broker
    await broker.stop()


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def cancel(task: asyncio.Task[object]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task



# -- a PostgreSQL of our own -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_pg() -> Iterator[EmbeddedPostgres]:
    """A durable embedded PostgreSQL these tests may crash and stop.

    Outside pytest's tmp_path on purpose (as tests/conftest.py does): pytest resets
    /tmp/pytest-of-<user> to 0700 at every session start, which would lock the server's own
    user (``pgserver`` under root) out of its data directory.
    """
    base = Path(tempfile.mkdtemp(prefix="lastmile-resilience-pg-"))
    server = EmbeddedPostgres(base / "pg", free_port(), durable=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def own_db(own_pg: EmbeddedPostgres) -> AsyncIterator[str]:
    """A fresh database with the schema and a NAS on 127.0.0.1, on the module's own server."""
    if not own_pg.is_running():
        await asyncio.to_thread(own_pg.start)
    name = f"resilience_{os.getpid()}_{next(_databases)}"
    admin = await asyncpg.connect(own_pg.admin_url())
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    url = f"postgresql://postgres@127.0.0.1:{own_pg.port}/{name}"
    conn = await db.connect(url)
    try:
        await db.apply_schema(conn)
        await add_nas(conn)
    finally:
        await conn.close()
    yield url
    if not own_pg.is_running():
        await asyncio.to_thread(own_pg.start)
    admin = await asyncpg.connect(own_pg.admin_url())
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


def _server_pids(server: EmbeddedPostgres) -> list[int]:
    postmaster = int((server.datadir / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False)
    return [postmaster, *(int(pid) for pid in children.stdout.split())]


def freeze(server: EmbeddedPostgres) -> None:
    """Hang PostgreSQL: SIGSTOP the postmaster and every backend. Connections stay open and
    new ones are accepted by the kernel, but nothing answers (a stuck disk, a swap storm)."""
    for pid in _server_pids(server):
        os.kill(pid, signal.SIGSTOP)


def thaw(server: EmbeddedPostgres) -> None:
    for pid in _server_pids(server):
        os.kill(pid, signal.SIGCONT)


def crash(server: EmbeddedPostgres) -> None:
    """Stop PostgreSQL the way a crash does: no checkpoint, connections cut, recovery at next start."""
    server._pg_ctl("stop", "-m", "immediate", "-w", "-t", "30")


