"""The worker as systemd runs it (``lastmile worker``, a real process) on a test database, with the
jobs of tests/integration/worker_jobs.py: schedules run, failures are retried with backoff and
then held with their traceback, jobs survive a kill -9, two workers never run one job twice, and
SIGTERM lets the running jobs finish while taking no new one."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from admin.worker import queue
from tests.integration.daemon import Daemon, start_daemon
from tests.integration.worker_jobs import TABLE

pytestmark = pytest.mark.slow

ENV = {
    "LASTMILE_WORKER__MODULES": "tests.integration.worker_jobs",
    "LASTMILE_WORKER__RETRY_DELAY": "0.4",
    "LASTMILE_WORKER__HEARTBEAT_TIMEOUT": "2",
    "LASTMILE_WORKER__DRAIN_TIMEOUT": "10",
}


class Workers:
    """The worker processes a test starts, stopped after it."""

    def __init__(self, db_url: str, tmp: Path) -> None:
        self.db_url = db_url
        self.tmp = tmp
        self.started: list[Daemon] = []

    async def start(self, **env: str) -> Daemon:
        worker = await asyncio.to_thread(start_daemon, Daemon, "worker", self.db_url, self.tmp, {**ENV, **env})
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        for w in self.started:
            w.stop(signal.SIGKILL if w.proc.poll() is None else signal.SIGTERM, timeout=5)


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(db_url)
    await c.execute(TABLE)
    yield c
    await c.close()


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(db_url, tmp_path)
    yield w
    w.stop_all()


async def until(check: Any, timeout: float = 15.0, every: float = 0.1) -> Any:
    """``await check()`` until it is truthy; its value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not met in {timeout} s (last: {value!r})")
        await asyncio.sleep(every)


async def runs(conn: asyncpg.Connection, entrypoint: str) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM worker_test_runs WHERE entrypoint = $1 ORDER BY started", entrypoint)


async def statuses(conn: asyncpg.Connection, job_id: int) -> list[str]:
    rows = await conn.fetch("SELECT status::text FROM pgqueuer_log WHERE job_id = $1 ORDER BY id", job_id)
    return [r["status"] for r in rows]


async def test_a_scheduled_job_runs_and_its_schedule_is_recorded(conn: asyncpg.Connection, workers: Workers) -> None:
    worker = await workers.start()
    ticks = await until(lambda: _at_least(conn, "test.tick", 2))
    assert all(t["ended"] is not None for t in ticks[:1])
    schedule = await conn.fetchrow("SELECT * FROM pgqueuer_schedules WHERE entrypoint = 'test.tick'")
    assert schedule is not None and schedule["expression"] == "* * * * * *" and schedule["last_run"] is not None
    # Every declared job with a schedule has its row; the worker's own housekeeping among them.
    assert await conn.fetchval("SELECT expression FROM pgqueuer_schedules WHERE entrypoint = 'maintenance.job-log'") \
        == "17 * * * *"
    # A run is a job like any other: logged queued, picked, then successful.
    job_id = ticks[0]["job_id"]
    assert await until(lambda: _ended_as(conn, job_id)) == ["queued", "picked", "successful"]
    assert worker.metric("lastmile_worker_jobs_succeeded_total", entrypoint="test.tick") >= 1
    assert 'lastmile_worker_queue_jobs{entrypoint="test.tick",status="queued"}' in worker.metrics()
    assert worker.stop() == 0


async def _at_least(conn: asyncpg.Connection, entrypoint: str, n: int) -> list[asyncpg.Record] | None:
    found = await runs(conn, entrypoint)
    return found if len(found) >= n else None


async def _ended_as(conn: asyncpg.Connection, job_id: int) -> list[str] | None:
    found = await statuses(conn, job_id)
    return found if found and found[-1] in ("successful", "exception", "failed") else None


async def test_a_failing_job_is_retried_with_backoff_then_held_as_failed_with_its_traceback(
        conn: asyncpg.Connection, workers: Workers) -> None:
    worker = await workers.start()
    job_id = await queue.enqueue(conn, "test.fail", {"customer": 7})
    row = await until(lambda: conn.fetchrow("SELECT * FROM pgqueuer WHERE id = $1 AND status = 'failed'", job_id))
    assert row["attempts"] == 2 and queue.decode(row["payload"]) == {"customer": 7}
    attempts = await runs(conn, "test.fail")
    assert [a["attempt"] for a in attempts] == [1, 2, 3]  # the first run and its two retries
    gaps = [(b["started"] - a["started"]).total_seconds() for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.4 and gaps[1] >= 0.8, gaps  # retry_delay, then twice it
    log = await conn.fetch("SELECT status::text, traceback FROM pgqueuer_log WHERE job_id = $1 ORDER BY id", job_id)
    assert [r["status"] for r in log] == ["queued", "picked", "queued", "picked", "queued", "picked", "failed"]
    final = json.loads(log[-1]["traceback"])  # a JSON object (a plain connection reads it as text)
    assert final["exception_type"] == "RuntimeError" and "attempt 3" in final["exception_message"]
    assert "Traceback (most recent call last)" in final["traceback"] and "worker_jobs.py" in final["traceback"]
    assert worker.metric("lastmile_worker_jobs_retried_total", entrypoint="test.fail") == 2
    assert worker.metric("lastmile_worker_jobs_failed_total", entrypoint="test.fail") == 1
    lines = [e for e in worker.logs() if e.get("job") == "test.fail"]
    assert [e["event"] for e in lines] == ["job failed: will retry"] * 2 + ["job failed: no retry left, held as failed"]
    assert lines[0]["retry_in_s"] == 0.4 and lines[1]["retry_in_s"] == 0.8
    assert "RuntimeError: the test job fails (attempt 3)" in lines[-1]["exception"]
    # Retried by hand (the admin's "Retry now"): it runs again, from attempt 1.
    await queue.requeue(conn, job_id)
    await until(lambda: _at_least(conn, "test.fail", 4))
    assert (await runs(conn, "test.fail"))[3]["attempt"] == 1


async def test_a_flaky_job_succeeds_on_a_retry_and_a_hung_one_times_out(
        conn: asyncpg.Connection, workers: Workers) -> None:
    worker = await workers.start()
    flaky = await queue.enqueue(conn, "test.flaky", {"succeed_at": 2})
    hang = await queue.enqueue(conn, "test.hang")
    assert await until(lambda: _ended_as(conn, flaky)) == ["queued", "picked", "queued", "picked", "successful"]
    assert await until(lambda: _ended_as(conn, hang)) == ["queued", "picked", "failed"]
    tb = await conn.fetchval("SELECT traceback FROM pgqueuer_log WHERE job_id = $1 AND status = 'failed'", hang)
    tb = json.loads(tb)
    assert tb["exception_type"] == "JobTimeout" and "timeout of 0.5 s" in tb["exception_message"]
    assert worker.metric("lastmile_worker_jobs_succeeded_total", entrypoint="test.flaky") == 1


async def test_a_job_survives_a_kill_and_runs_after_the_restart(conn: asyncpg.Connection, workers: Workers) -> None:
    first = await workers.start()
    running = await queue.enqueue(conn, "test.slow", {"seconds": 30})
    await until(lambda: _at_least(conn, "test.slow", 1))
    first.stop(signal.SIGKILL)
    assert first.proc.returncode == -signal.SIGKILL
    # Queued while no worker runs: it waits in the table.
    waiting = await queue.enqueue(conn, "test.many", {"n": 1})
    await asyncio.sleep(0.5)
    assert await conn.fetchval("SELECT status::text FROM pgqueuer WHERE id = $1", waiting) == "queued"
    assert await conn.fetchval("SELECT status::text FROM pgqueuer WHERE id = $1", running) == "picked"
    await conn.execute("UPDATE pgqueuer SET payload = $2 WHERE id = $1", running, queue.encode({"seconds": 0.2}))
    await workers.start()
    assert await until(lambda: _ended_as(conn, waiting)) == ["queued", "picked", "successful"]
    # The killed worker's job: taken again once its heartbeat is older than heartbeat_timeout (2 s).
    assert await until(lambda: _ended_as(conn, running)) == ["queued", "picked", "picked", "successful"]
    slow = await runs(conn, "test.slow")
    assert len(slow) == 2 and slow[0]["ended"] is None and slow[1]["ended"] is not None
    assert slow[0]["pid"] != slow[1]["pid"]


async def test_two_workers_never_run_one_job_twice_nor_a_serial_entrypoint_twice_at_once(
        conn: asyncpg.Connection, workers: Workers) -> None:
    await workers.start()
    await workers.start()
    many = [await queue.enqueue(conn, "test.many", {"i": i}) for i in range(60)]
    slow = [await queue.enqueue(conn, "test.slow", {"seconds": 0.2}) for _ in range(6)]
    await until(lambda: _all_ended(conn, many + slow), timeout=30)
    done = await runs(conn, "test.many")
    assert sorted(r["job_id"] for r in done) == sorted(many)  # each once
    assert len({r["pid"] for r in done}) == 2  # and both workers took some
    serial = await runs(conn, "test.slow")
    assert sorted(r["job_id"] for r in serial) == sorted(slow)
    for a, b in itertools.pairwise(serial):  # concurrency 1: one ends before the next starts
        assert a["ended"] <= b["started"], (a, b)


async def _all_ended(conn: asyncpg.Connection, ids: list[int]) -> bool:
    return not await conn.fetchval("SELECT count(*) FROM pgqueuer WHERE id = ANY($1::bigint[])", ids) and \
        await conn.fetchval("SELECT count(DISTINCT job_id) FROM pgqueuer_log WHERE job_id = ANY($1::bigint[]) "
                            "AND status = 'successful'", ids) == len(ids)


async def test_sigterm_lets_the_running_job_finish_and_takes_no_new_one(
        conn: asyncpg.Connection, workers: Workers) -> None:
    worker = await workers.start()
    running = await queue.enqueue(conn, "test.slow", {"seconds": 2})
    await until(lambda: _at_least(conn, "test.slow", 1))
    worker.proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    later = await queue.enqueue(conn, "test.many", {"late": True})
    code = await asyncio.to_thread(worker.stop)
    assert code == 0
    (run,) = await runs(conn, "test.slow")
    assert run["ended"] is not None
    assert await statuses(conn, running) == ["queued", "picked", "successful"]
    assert await conn.fetchval("SELECT status::text FROM pgqueuer WHERE id = $1", later) == "queued"
    assert not await runs(conn, "test.many")
    drained = [e for e in worker.logs() if e.get("event") == "drained"]
    assert any(e["step"] == "jobs" for e in drained)


async def test_a_job_still_running_when_the_drain_runs_out_is_left_to_run_again(
        conn: asyncpg.Connection, workers: Workers) -> None:
    worker = await workers.start(LASTMILE_WORKER__DRAIN_TIMEOUT="1")
    job_id = await queue.enqueue(conn, "test.slow", {"seconds": 30})
    await until(lambda: _at_least(conn, "test.slow", 1))
    code = await asyncio.to_thread(worker.stop)
    assert code == 1  # the drain did not finish: said so, and systemd's Restart=on-failure applies
    assert any(e.get("event") == "drain step timed out" and e.get("step") == "jobs" for e in worker.logs())
    # Not cancelled, not logged as ended: still picked, so another worker takes it once its heartbeat is stale.
    assert await statuses(conn, job_id) == ["queued", "picked"]
    await conn.execute("UPDATE pgqueuer SET payload = $2 WHERE id = $1", job_id, queue.encode({"seconds": 0.1}))
    await workers.start()
    assert await until(lambda: _ended_as(conn, job_id)) == ["queued", "picked", "picked", "successful"]
