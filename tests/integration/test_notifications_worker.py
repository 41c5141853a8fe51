"""Exactly-once delivery with a real worker process (``lastmile worker``, as systemd runs it)
sending to a real SMTP server: 300 messages, the worker killed mid-batch (SIGKILL) and started
again: every message arrives, each Message-ID once but at most the one in flight; stopped with
SIGTERM instead: each exactly once."""

from __future__ import annotations

import asyncio
import collections
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from admin.notifications import announce, jobs
from daemons import db
from tests.db.notifications_data import customer, partner, settings
from tests.fakes.smtpserver import SmtpServer
from tests.integration.daemon import Daemon, start_daemon

pytestmark = pytest.mark.slow

COUNT = 300
ENV = {
    # A lost worker's job is taken again after 1 s; its messages' lease is 2 s.
    "LASTMILE_WORKER__HEARTBEAT_TIMEOUT": "1",
    "LASTMILE_WORKER__DRAIN_TIMEOUT": "10",
}


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await db.connect(db_url)
    yield c
    await c.close()


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    async with SmtpServer() as server:
        yield server


class Workers:
    def __init__(self, db_url: str, tmp: Path) -> None:
        self.db_url, self.tmp, self.started = db_url, tmp, list[Daemon]()

    async def start(self) -> Daemon:
        worker = await asyncio.to_thread(start_daemon, Daemon, "worker", self.db_url, self.tmp, ENV)
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        for w in self.started:
            w.stop(signal.SIGKILL if w.proc.poll() is None else signal.SIGTERM, timeout=5)


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(db_url, tmp_path)
    yield w
    w.stop_all()


async def _schedule(conn: asyncpg.Connection, smtp: SmtpServer) -> None:
    pid = await partner(conn)
    # 3,000 a minute: 50 a second after a burst of 50, so that the run is caught mid-batch.
    await settings(conn, None, smtp_host=smtp.host, smtp_port=smtp.port, smtp_security="none",
                   mail_from="Main Net <billing@main.example>", mail_per_minute=3000)
    ids = [await customer(conn, pid, n) for n in range(1, COUNT + 1)]
    assert await announce.announce(conn, partner_id=pid, customer_ids=ids, channels=["email"], subject="Maintenance",
                                   body="Tonight.", marketing=False, created_by="test") == COUNT


async def _until(check: object, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not met in {timeout} s")
        await asyncio.sleep(0.02)


async def _eventually(conn: asyncpg.Connection, sql: str, *args: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await conn.fetchval(sql, *args):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not met in {timeout} s: {sql}")
        await asyncio.sleep(0.05)


def _ids(smtp: SmtpServer) -> collections.Counter[str]:
    return collections.Counter(str(m.message["Message-ID"]) for m in smtp.messages)


async def test_killed_mid_batch_and_started_again_every_message_arrives_at_most_one_twice(
        conn: asyncpg.Connection, smtp: SmtpServer, workers: Workers) -> None:
    await _schedule(conn, smtp)
    first = await workers.start()
    await _until(lambda: len(smtp.messages) >= 80)
    first.stop(signal.SIGKILL)
    before = len(smtp.messages)
    assert before < COUNT, "the run ended before the kill: nothing was tested"
    assert await conn.fetchval("SELECT count(*) FROM messages WHERE status = 'sending'") > 0  # its batch, leased
    await workers.start()
    await jobs.wake(conn)  # queued already (the killed run's job, taken again once its heartbeat is stale)
    await _until(lambda: len(_ids(smtp)) == COUNT)
    counts = _ids(smtp)
    twice = [mid for mid, n in counts.items() if n > 1]
    assert len(twice) <= 1 and all(counts[m] == 2 for m in twice), twice  # at most the one in flight
    await _eventually(conn, "SELECT count(*) = $1 FROM messages WHERE status = 'sent'", COUNT)
    resent = await conn.fetchval("SELECT count(*) FROM messages WHERE attempts > 1")
    assert resent >= 1  # the killed batch's rest went again after its lease


async def test_sigterm_ends_after_the_message_in_flight_and_each_goes_exactly_once(
        conn: asyncpg.Connection, smtp: SmtpServer, workers: Workers) -> None:
    await _schedule(conn, smtp)
    first = await workers.start()
    await _until(lambda: len(smtp.messages) >= 80)
    code = await asyncio.to_thread(first.stop, signal.SIGTERM)
    assert code == 0
    sent = await conn.fetchval("SELECT count(*) FROM messages WHERE status = 'sent'")
    assert sent == len(smtp.messages) < COUNT  # every answer recorded, and nothing more sent
    assert await conn.fetchval("SELECT count(*) FROM messages WHERE status = 'sending'") == 0
    assert await conn.fetchval("SELECT count(*) FROM messages WHERE status = 'scheduled' AND attempts = 0") \
        == COUNT - sent  # the rest put back untouched
    await workers.start()
    await jobs.wake(conn)
    await _until(lambda: len(smtp.messages) >= COUNT)
    await _eventually(conn, "SELECT count(*) = $1 FROM messages WHERE status = 'sent'", COUNT)
    counts = _ids(smtp)
    assert len(counts) == COUNT and set(counts.values()) == {1}
