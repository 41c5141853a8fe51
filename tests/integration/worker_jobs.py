"""Jobs for tests/integration/test_worker.py, loaded by the worker under test through
``[worker] modules``. Each writes what it did into ``worker_test_runs`` (the test creates it)."""

from __future__ import annotations

import asyncio
import os

from admin.worker.jobs import Context, job

TABLE = """
CREATE TABLE worker_test_runs (
    entrypoint text NOT NULL,
    job_id bigint NOT NULL,
    attempt integer NOT NULL,
    pid integer NOT NULL,
    started timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended timestamptz
)"""


async def _start(ctx: Context) -> None:
    async with ctx.pool.acquire() as conn:
        await conn.execute("INSERT INTO worker_test_runs (entrypoint, job_id, attempt, pid) VALUES ($1, $2, $3, $4)",
                           ctx.entrypoint, ctx.job_id, ctx.attempt, os.getpid())


async def _end(ctx: Context) -> None:
    async with ctx.pool.acquire() as conn:
        await conn.execute("UPDATE worker_test_runs SET ended = clock_timestamp() WHERE job_id = $1 AND attempt = $2 "
                           "AND pid = $3 AND ended IS NULL", ctx.job_id, ctx.attempt, os.getpid())


@job("test.tick", schedule="* * * * * *")
async def tick(ctx: Context) -> None:
    """Every second."""
    await _start(ctx)
    await _end(ctx)


@job("test.fail", retries=2)
async def fail(ctx: Context) -> None:
    """Fails every time."""
    await _start(ctx)
    raise RuntimeError(f"the test job fails (attempt {ctx.attempt})")


@job("test.flaky", retries=3)
async def flaky(ctx: Context) -> None:
    """Fails until its attempt ``payload["succeed_at"]``."""
    await _start(ctx)
    if ctx.attempt < int(ctx.payload["succeed_at"]):
        raise ConnectionError("the peer is away")
    await _end(ctx)


@job("test.slow", timeout=30)
async def slow(ctx: Context) -> None:
    """Takes ``payload["seconds"]``; one at a time across every worker."""
    await _start(ctx)
    await asyncio.sleep(float(ctx.payload.get("seconds", 1)))
    await _end(ctx)


@job("test.many", concurrency=8)
async def many(ctx: Context) -> None:
    """Short, several at once."""
    await _start(ctx)
    await asyncio.sleep(0.05)
    await _end(ctx)


@job("test.hang", retries=0, timeout=0.5)
async def hang(ctx: Context) -> None:
    """Runs past its timeout."""
    await _start(ctx)
    await asyncio.sleep(60)
