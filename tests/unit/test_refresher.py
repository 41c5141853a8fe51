"""db.Refresher: notifications coalesce into one refresh, and nothing asked for is lost to an outage."""

from __future__ import annotations

import asyncio
import contextlib

from daemons import db


async def test_bursts_coalesce_and_an_outage_loses_nothing() -> None:
    calls: list[db.Pending] = []
    fail = [True]

    async def refresh(pending: db.Pending) -> None:
        calls.append({k: (set(v) if v is not None else None) for k, v in pending.items()})
        if fail[0]:
            fail[0] = False
            raise OSError("connection refused")

    refresher = db.Refresher(refresh, ("services", "nas"), settle=0.05)
    task = asyncio.create_task(refresher.run())
    try:
        for row in (1, 2, 3):
            refresher.want("services", row)
        refresher.want("nas")
        await asyncio.sleep(0.1)  # the first refresh, which fails
        refresher.want("services", 4)  # comes during the outage
        await asyncio.wait_for(refresher.applied.wait(), 3)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert calls[0] == {"services": {1, 2, 3}, "nas": None}  # one refresh for the burst
    assert calls[1] == {"services": {1, 2, 3, 4}, "nas": None}  # asked again, with what came meanwhile


async def test_a_reload_asks_for_everything_and_a_whole_key_absorbs_rows() -> None:
    calls: list[db.Pending] = []

    async def refresh(pending: db.Pending) -> None:
        calls.append(dict(pending))

    refresher = db.Refresher(refresh, ("services", "nas"))
    refresher.want("services", 1)
    refresher.want("services")  # a bulk change: the whole table
    refresher.want("services", 2)
    refresher.reload()
    applied = asyncio.ensure_future(refresher.applied.wait())
    await asyncio.sleep(0)  # waiting before the refresh can happen
    task = asyncio.create_task(refresher.run())
    try:
        await asyncio.wait_for(applied, 3)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert calls == [{"services": None, "nas": None}]
