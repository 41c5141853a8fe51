"""schema.sql holds pgqueuer's objects as the pinned pgqueuer (1.6) declares them: its own checks
pass on a fresh database, and its upgrade planner finds nothing to change. A pgqueuer release that
wants other objects (a column, an index, an enum value) fails here, before a worker refuses to
start in production; schema.sql (and an upgrade step) then takes what ``pgq sql upgrade`` prints."""

from __future__ import annotations

import json

import asyncpg
from pgqueuer import AsyncpgDriver, Queries, QueueManager

from admin.worker import queue, store


async def test_pgqueuer_verifies_the_schema(conn: asyncpg.Connection) -> None:
    queries = Queries(AsyncpgDriver(conn))
    settings = queries.qbe.settings
    # `pgq verify --expect present`: its tables, its notify function and trigger.
    for table in (settings.queue_table, settings.statistics_table, settings.schedules_table,
                  settings.queue_table_log):
        assert await queries.has_table(table), table
    assert await queries.has_function(settings.function), settings.function
    assert await queries.has_trigger(settings.trigger), settings.trigger
    # What the queue manager checks before it runs (columns, enum values, indexes).
    await QueueManager(queries).verify_structure()
    # And nothing for `pgq upgrade` to do: schema.sql is exactly what this pgqueuer declares.
    plan = await queries.plan_upgrade()
    assert list(plan.statements) == [], "\n".join(plan.statements)
    assert list(plan.notes) == []


async def test_the_queue_notifies_on_its_channel(conn: asyncpg.Connection) -> None:
    """The trigger the workers wake on (LISTEN ch_pgqueuer) fires on an enqueue."""
    got: list[str] = []
    await conn.add_listener("ch_pgqueuer", lambda _c, _p, _ch, payload: got.append(payload))
    queries = Queries(AsyncpgDriver(conn))
    await queries.enqueue("test.notify", None)
    for _ in range(50):
        if got:
            break
        await conn.execute("SELECT 1")
    assert got and json.loads(got[0])["operation"] == "insert"


async def test_the_job_log_is_pruned_except_for_jobs_still_in_the_queue(conn: asyncpg.Connection) -> None:
    ended = await queue.enqueue(conn, "test.ended")
    held = await queue.enqueue(conn, "test.held")
    await conn.execute("DELETE FROM pgqueuer WHERE id = $1", ended)  # as pgqueuer does once a job succeeded
    await conn.execute("UPDATE pgqueuer SET status = 'failed' WHERE id = $1", held)
    await conn.execute("UPDATE pgqueuer_log SET created = now() - interval '40 days'")
    recent = await queue.enqueue(conn, "test.recent")
    await conn.execute("DELETE FROM pgqueuer WHERE id = $1", recent)
    await conn.execute("INSERT INTO pgqueuer_statistics (created, count, priority, status, entrypoint) VALUES "
                       "(now() - interval '40 days', 1, 0, 'successful', 'test.ended'), "
                       "(now(), 1, 0, 'successful', 'test.recent')")
    assert await store.prune_log(conn, 30) == 1
    left = await conn.fetch("SELECT job_id FROM pgqueuer_log ORDER BY job_id")
    assert [r["job_id"] for r in left] == [held, recent]
    assert await conn.fetchval("SELECT array_agg(entrypoint) FROM pgqueuer_statistics") == ["test.recent"]
