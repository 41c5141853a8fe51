"""Shared fixtures: a real PostgreSQL with a fresh database per test, free ports, and CI rules.

The server is ``LASTMILE_TEST_DATABASE_URL`` (a role that may CREATE DATABASE) when set, else
one embedded PostgreSQL per test process (fsync off: it is thrown away; `make test` runs the tests
in pytest-xdist workers, one per core, each with its own server, template and ports). The schema
is applied to a template database as `lastmile db init` applies it to an empty one, and each test
gets a database copied from that template, which takes milliseconds. (What a second `db init` and an
upgrade do is tests/db/test_schema.py's and test_schema_upgrade.py's.) Hypothesis runs the profile
``HYPOTHESIS_PROFILE`` names (tests/profiles.py: quick by default, nightly under `make fuzz`).
"""

from __future__ import annotations

import itertools
import os
import random
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from daemons import db
from daemons.pgembed import EmbeddedPostgres
from tests import profiles

profiles.load_from_environment()  # before any test module builds its Hypothesis settings

TEMPLATE = f"lastmile_template_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"  # one per worker on a shared server
_counter = itertools.count()


_given_ports: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _port_range() -> tuple[int, int]:
    """The ports this test process draws from: below the kernel's ephemeral range, and under
    pytest-xdist a slice of its own per worker, so that two workers never pick the same port."""
    low, high = 20000, _ephemeral_low() - 1
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if worker.startswith("gw") and count.isdigit() and int(count) > 1:
        width = (high - low + 1) // int(count)
        low += int(worker[2:]) * width
        high = low + width - 1
    return low, high


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nobody listens on right now, on 127.0.0.1 (TCP or UDP), for a daemon to bind.

    Drawn below the kernel's ephemeral range and never the same twice in a session: a port the
    kernel picked for ``bind(0)`` could go to another socket bound to port 0 (a client, the
    daemon's own CoA socket, the next ``free_port``) before the daemon binds it ("Address
    already in use", now and then)."""
    low, high = _port_range()
    rnd = random.Random()
    for _ in range(1000):
        port = rnd.randint(low, high)
        if port in _given_ports:
            continue
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given_ports.add(port)
        return port
    raise RuntimeError(f"no free port in {low}-{high}")


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _memory_dir() -> str | None:
    """/dev/shm (memory) where the machine has it: the test server copies a template of 1,200
    files for every test, which on a disk shared with the other worker waits for the disk
    (0.05 s from memory, up to 1 s from a busy disk). None: the temporary directory."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """Admin URL (database ``postgres``) of the server the tests use."""
    url = os.environ.get("LASTMILE_TEST_DATABASE_URL")
    if url:
        yield _with_database(url, "postgres")
        return
    datadir = Path(tempfile.mkdtemp(prefix="lastmile-test-pg-", dir=_memory_dir()))
    server = EmbeddedPostgres(datadir / "pg", free_port(), durable=False)
    try:
        server.start()
        yield server.admin_url()
    finally:
        server.stop()
        import shutil

        shutil.rmtree(datadir, ignore_errors=True)


@pytest.fixture(scope="session")
async def pg_template(pg_server: str) -> str:
    conn = await asyncpg.connect(pg_server)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await conn.close()
    tconn = await db.connect(_with_database(pg_server, TEMPLATE))
    try:
        change = await db.apply_schema(tconn)
        assert change.action == "applied", change
    finally:
        await tconn.close()
    return TEMPLATE


@pytest.fixture
async def db_url(pg_server: str, pg_template: str) -> AsyncIterator[str]:
    """URL of a fresh database with the schema, dropped after the test."""
    name = f"test_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(pg_server)
    try:
        # FILE_COPY: a copy of the template's files, 50 ms; PostgreSQL 15's default WAL_LOG
        # writes the whole template through the WAL, 140 ms (times ~2,000 tests)
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {pg_template} STRATEGY FILE_COPY")
    finally:
        await admin.close()
    yield _with_database(pg_server, name)
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await db.connect(db_url)
    yield c
    await c.close()


async def one(conn: asyncpg.Connection, sql: str, *args: object) -> asyncpg.Record:
    """The one row ``sql`` returns (a test that expects a row fails here when there is none)."""
    row = await conn.fetchrow(sql, *args)
    assert row is not None, sql
    return row


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI every test must run: a skip (a missing tool, say) fails the run."""
    if os.environ.get("CI") != "true":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = len(reporter.stats.get("skipped", []))
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"CI: {skipped} test(s) skipped; under CI every test must run", red=True)
        session.exitstatus = 1
