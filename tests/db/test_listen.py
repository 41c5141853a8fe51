"""db.Listener: notifications arrive, and LISTEN comes back after the server kills the connection."""

import asyncio
import contextlib
from typing import Any

import asyncpg

from daemons import db


async def test_delivery_and_reconnect_after_server_kills_connection(
    db_url: str, conn: asyncpg.Connection
) -> None:
    got: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    reconnects: list[int] = []
    listener = db.Listener(
        db_url,
        ["lastmile_partners", "lastmile_tariffs"],
        lambda channel, payload: got.put_nowait((channel, payload)),
        on_reconnect=lambda: reconnects.append(1),
        keepalive=0.5,
    )
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.connected.wait(), 5)
        pid = await conn.fetchval("INSERT INTO partners (name) VALUES ('a') RETURNING id")
        assert await asyncio.wait_for(got.get(), 5) == (
            "lastmile_partners",
            {"table": "partners", "op": "INSERT", "id": pid},
        )

        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert killed == 1
        # The listener sees the drop, reconnects, re-subscribes and asks for a full reload.
        for _ in range(100):
            if reconnects and listener.connected.is_set():
                break
            await asyncio.sleep(0.05)
        assert reconnects == [1]
        tid = await conn.fetchval(
            "INSERT INTO tariffs (name, download_kbps, upload_kbps) VALUES ('t', 1, 1) RETURNING id"
        )
        assert await asyncio.wait_for(got.get(), 5) == (
            "lastmile_tariffs",
            {"table": "tariffs", "op": "INSERT", "id": tid},
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_listener_waits_for_an_unreachable_server() -> None:
    from tests.conftest import free_port

    listener = db.Listener(f"postgresql://postgres@127.0.0.1:{free_port()}/x", ["c"], lambda *_: None)
    task = asyncio.create_task(listener.run())
    await asyncio.sleep(0.5)
    assert not task.done() and not listener.connected.is_set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_an_instance_skips_its_own_session_notifications(db_url: str, conn: asyncpg.Connection) -> None:
    from datetime import UTC, datetime

    from daemons import channels
    from radiusd.store import SessionChange
    from radiusd.writer import notify_changes

    got: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    listener = db.Listener(db_url, ["lastmile_sessions"], lambda channel, payload: got.put_nowait((channel, payload)),
                           skip=channels.own_sessions("radiusd-a"))
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.connected.wait(), 5)
        start = datetime(2026, 11, 1, tzinfo=UTC)
        change = SessionChange("u1", 7, "ann", "100.64.0.9", start, None, True, False)
        await notify_changes(conn, [change], "radiusd-a")  # its own: skipped
        await notify_changes(conn, [change], "radiusd-b")  # another instance's: delivered
        channel, payload = await asyncio.wait_for(got.get(), 5)
        assert channel == "lastmile_sessions"
        assert payload == {"by": "radiusd-b", "sessions": [
            {"uid": "u1", "service": 7, "ip": "100.64.0.9", "start": start.timestamp(), "stop": None}]}
        await asyncio.sleep(0.2)
        assert got.empty()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
