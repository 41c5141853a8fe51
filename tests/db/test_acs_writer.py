"""acs/writer.py against a real PostgreSQL: group-committed Informs under concurrency, one device
twice in a batch, a bad row among good ones, and the access log's COPY and counted drops."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import asyncpg
import pytest

from acs.store import InformRow, SessionLine
from acs.writer import InformWriter, SessionLog
from daemons import db
from tests.db.test_acs_store import T0, inform


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(db_url, min_size=1, max_size=4, init=db.init_connection)
    try:
        yield p
    finally:
        await p.close()


async def row_of(pool: asyncpg.Pool, sql: str, *args: object) -> asyncpg.Record:
    row = await pool.fetchrow(sql, *args)
    assert row is not None, sql
    return row


async def test_concurrent_informs_share_commits(pool: asyncpg.Pool) -> None:
    writer = InformWriter(pool)
    gate = asyncio.Semaphore(1000)

    async def one_inform(row: InformRow) -> bool:
        async with gate:
            return (await writer.inform(row)).new

    created = await asyncio.gather(*(one_inform(inform(n)) for n in range(10_000)))
    again = await asyncio.gather(*(one_inform(inform(n, at=T0 + 300)) for n in range(0, 10_000, 7)))
    await writer.close()
    assert all(created) and not any(again)
    assert writer.rows == 10_000 + len(again) and writer.batches * 20 < writer.rows  # batches of 20+ on average
    row = await row_of(pool, "SELECT count(*) AS n, count(*) FILTER (WHERE last_inform_at > first_inform_at) "
                             "AS again FROM acs_devices")
    assert (row["n"], row["again"]) == (10_000, len(again))


async def test_one_device_twice_in_a_batch(pool: asyncpg.Pool) -> None:
    writer = InformWriter(pool, max_wait=0.05)
    first, second, other = await asyncio.gather(writer.inform(inform(1, boot=True)),
                                                writer.inform(inform(1, at=T0 + 1, software_version="V2")),
                                                writer.inform(inform(2)))
    await writer.close()
    assert writer.batches == 1 and writer.rows == 3
    assert first.new and not second.new and other.new and first.device.id == second.device.id
    assert (first.device.software_version, second.device.software_version) == ("V1", "V2")
    row = await row_of(pool, "SELECT extract(epoch FROM last_inform_at) AS l, extract(epoch FROM last_boot_at) AS b "
                             "FROM acs_devices WHERE serial = '000001'")
    assert (row["l"], row["b"]) == (T0 + 1, T0)


async def test_a_bad_row_fails_alone(pool: asyncpg.Pool) -> None:
    writer = InformWriter(pool, max_wait=0.05)
    bad = dataclasses.replace(inform(2), data_model="tr999")  # type: ignore[arg-type]
    results = await asyncio.gather(writer.inform(inform(1)), writer.inform(bad), writer.inform(inform(3)),
                                   return_exceptions=True)
    await writer.close()
    assert isinstance(results[1], asyncpg.CheckViolationError)
    assert [r.device.serial for r in results if not isinstance(r, BaseException)] == ["000001", "000003"]


async def test_close_writes_what_is_queued_and_a_database_away_fails_the_inform(pool: asyncpg.Pool) -> None:
    writer = InformWriter(pool, max_wait=0.05)
    pending = [asyncio.ensure_future(writer.inform(inform(n))) for n in range(5)]
    await asyncio.sleep(0)
    await writer.close()
    assert all(p.done() and p.result().new for p in pending)
    with pytest.raises(RuntimeError):
        await writer.inform(inform(9))
    away = InformWriter(pool)
    await pool.close()
    with pytest.raises(asyncpg.InterfaceError):
        await away.inform(inform(9))
    await away.close()


def line(device_id: int, n: int = 0) -> SessionLine:
    return SessionLine(T0 + n, device_id, "192.0.2.1", ("2 PERIODIC",), ("Inform",), (), 3, "ok", "acs-a")


async def test_session_log_copies_in_batches(pool: asyncpg.Pool) -> None:
    log = SessionLog(pool, max_wait=0.02, batch=100)
    for n in range(250):
        log.add(line(7, n))
    await asyncio.sleep(0.1)
    assert log.written == 250  # the first 100 at once, the rest within max_wait
    log.add(SessionLine(T0, 8, None, ("0 BOOTSTRAP", "1 BOOT"), ("Inform", "GetParameterValues"), ("9005",), 40,
                        "fault"))
    await log.close()
    assert await pool.fetchval("SELECT count(*) FROM acs_sessions WHERE device_id = 7") == 250
    row = await row_of(pool, "SELECT extract(epoch FROM started_at) AS at, address, events, rpcs, faults, "
                             "duration_ms, outcome, instance FROM acs_sessions WHERE device_id = 8")
    assert tuple(row) == (T0, None, ["0 BOOTSTRAP", "1 BOOT"], ["Inform", "GetParameterValues"], ["9005"], 40,
                          "fault", "")
    assert log.dropped == 0


async def test_session_log_buffers_then_drops_while_the_database_is_away(pool: asyncpg.Pool) -> None:
    log = SessionLog(pool, max_wait=0.01, batch=10, limit=30)
    await pool.close()
    for n in range(45):
        log.add(line(1, n))
    await asyncio.sleep(0.05)
    assert (log.written, log.dropped) == (0, 15)  # kept up to the limit, the rest counted
    await log.close(timeout=0.5)
    assert (log.written, log.dropped) == (0, 45)


async def test_session_log_drops_a_batch_the_table_refuses(pool: asyncpg.Pool) -> None:
    log = SessionLog(pool, max_wait=0.01)
    log.add(dataclasses.replace(line(1), outcome="weird"))  # type: ignore[arg-type]
    log.add(line(2))
    assert await log.flush()
    await log.close()
    assert (log.written, log.dropped) == (0, 2)
