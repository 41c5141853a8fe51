"""acs/wakeup.py against the CPE double's connection request server (tests/fakes/cpe.py) and a real
PostgreSQL: digest, Basic, wrong credentials, refused URLs never contacted, timeouts, the rate
limit, and the NOTIFY-driven loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import asyncpg
import pytest

from acs import store, wakeup
from daemons import db
from daemons.secrets import Keyring
from tests.fakes.cpe import Cpe

pytestmark = pytest.mark.timeout(30)

KEYRING = Keyring(b"w" * 32)
DEAD_ACS = "http://127.0.0.1:9/acs"  # nothing listens: the session a request starts goes nowhere


@dataclass
class Settings:
    connection_request_networks: list[str] = field(default_factory=lambda: ["127.0.0.0/8"])
    connection_request_basic: bool = False
    connection_request_timeout: float = 2.0
    connection_request_interval: float = 10.0


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=4, init=db.init_connection)
    yield pool
    await pool.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def device(pool: asyncpg.Pool, url: str, username: str | None = "cr", password: str | None = "crpass",
                 address: str = "127.0.0.1", serial: str = "1") -> int:
    sealed = None if password is None else KEYRING.seal(password, store.CONNECTION_REQUEST_PURPOSE)
    device_id: int = await pool.fetchval(
        "INSERT INTO acs_devices (cwmp_id, oui, serial, connection_request_url, connection_request_username, "
        "connection_request_password, address) VALUES ($1, 'OUI', $2, $3, $4, $5, $6::inet) RETURNING id",
        f"OUI-X-{serial}", serial, url, username, sealed, address)
    return device_id


async def ask(pool: asyncpg.Pool, device_id: int) -> int:
    wakeup_id: int = await pool.fetchval("INSERT INTO acs_wakeups (device_id, requested_by) VALUES ($1, 'test') "
                                         "RETURNING id", device_id)
    return wakeup_id


async def round_(pool: asyncpg.Pool, sender: wakeup.Sender, http: aiohttp.ClientSession) -> float | None:
    async with pool.acquire() as conn, conn.transaction():
        return await sender.round(conn, http)


async def row(pool: asyncpg.Pool, wakeup_id: int) -> tuple[str, int | None, str]:
    r = await pool.fetchrow("SELECT status, http_status, error FROM acs_wakeups WHERE id = $1", wakeup_id)
    assert r is not None
    return r[0], r[1], r[2]


async def test_digest_starts_a_session(pool: asyncpg.Pool, http: aiohttp.ClientSession) -> None:
    async with Cpe(DEAD_ACS) as cpe:
        wakeup_id = await ask(pool, await device(pool, cpe.cr_url))
        assert await round_(pool, wakeup.Sender(KEYRING, Settings()), http) is None
        assert await row(pool, wakeup_id) == ("sent", 200, "")
        assert [(c.status, c.username) for c in cpe.connection_requests] == [(401, None), (200, "cr")]
        record = await cpe.next_connection_request_session()
        assert record.events == [("6 CONNECTION REQUEST", "")]
    assert await pool.fetchval("SELECT done_at IS NOT NULL FROM acs_wakeups WHERE id = $1", wakeup_id)


async def test_wrong_password_and_no_credentials(pool: asyncpg.Pool, http: aiohttp.ClientSession) -> None:
    sender = wakeup.Sender(KEYRING, Settings())
    async with Cpe(DEAD_ACS) as cpe:
        wrong = await ask(pool, await device(pool, cpe.cr_url, password="not-it", serial="1"))
        none = await ask(pool, await device(pool, cpe.cr_url, username=None, password=None, serial="2"))
        await round_(pool, sender, http)
        assert await row(pool, wrong) == ("failed", 401, "the CPE refused the credentials")
        assert await row(pool, none) == ("failed", 401, "the CPE wants credentials and the ACS has set none yet")
        assert sorted(c.status for c in cpe.connection_requests) == [401, 401, 401]


async def test_basic_only_when_allowed(pool: asyncpg.Pool, http: aiohttp.ClientSession) -> None:
    async with Cpe(DEAD_ACS, cr_auth="basic") as cpe:
        refused = await ask(pool, await device(pool, cpe.cr_url, serial="1"))
        await round_(pool, wakeup.Sender(KEYRING, Settings()), http)
        status, code, error = await row(pool, refused)
        assert (status, code) == ("failed", 401) and "connection_request_basic" in error
        allowed = await ask(pool, await device(pool, cpe.cr_url, serial="2"))
        await round_(pool, wakeup.Sender(KEYRING, Settings(connection_request_basic=True)), http)
        assert await row(pool, allowed) == ("sent", 200, "")
        await cpe.next_connection_request_session()


async def test_refused_url_is_never_contacted(pool: asyncpg.Pool, http: aiohttp.ClientSession) -> None:
    async with Cpe(DEAD_ACS) as cpe:
        port = cpe.cr_url.split(":")[2].split("/")[0]
        # the device informed from 127.0.0.1, the ACS has no networks configured: loopback refused
        loopback = await ask(pool, await device(pool, cpe.cr_url, serial="1"))
        by_name = await ask(pool, await device(pool, f"http://localhost:{port}/cr", serial="2"))
        userinfo = await ask(pool, await device(pool, f"http://x@127.0.0.1:{port}/cr", serial="3"))
        await round_(pool, wakeup.Sender(KEYRING, Settings(connection_request_networks=[])), http)
        for wakeup_id, why in ((loopback, "loopback"), (by_name, "not an IP address"), (userinfo, "user information")):
            status, code, error = await row(pool, wakeup_id)
            assert (status, code) == ("failed", None) and error.startswith("URL refused: ") and why in error
        assert cpe.connection_requests == []


async def test_timeout(pool: asyncpg.Pool, http: aiohttp.ClientSession) -> None:
    async with Cpe(DEAD_ACS, cr_delay=0.6) as cpe:
        wakeup_id = await ask(pool, await device(pool, cpe.cr_url))
        loop = asyncio.get_running_loop()
        started = loop.time()
        await round_(pool, wakeup.Sender(KEYRING, Settings(connection_request_timeout=0.2)), http)
        assert loop.time() - started < 0.5
        assert await row(pool, wakeup_id) == ("failed", None, "no answer within 0.2 s")


async def test_unreachable_and_damaged_password(pool: asyncpg.Pool, http: aiohttp.ClientSession) -> None:
    closed = await ask(pool, await device(pool, "http://127.0.0.1:9/cr", serial="1"))
    damaged_device = await device(pool, "http://127.0.0.1:9/cr", serial="2")
    await pool.execute("UPDATE acs_devices SET connection_request_password = $2 WHERE id = $1", damaged_device,
                       Keyring(b"o" * 32).seal("x", store.CONNECTION_REQUEST_PURPOSE))
    damaged = await ask(pool, damaged_device)
    await round_(pool, wakeup.Sender(KEYRING, Settings()), http)
    status, code, error = await row(pool, closed)
    assert (status, code) == ("failed", None) and "ClientConnectorError" in error
    assert await row(pool, damaged) == ("failed", None, "acs-connection-request: the sealed value does not open "
                                                        "with this key")


async def test_rate_limit_per_device(pool: asyncpg.Pool, http: aiohttp.ClientSession) -> None:
    sender = wakeup.Sender(KEYRING, Settings(connection_request_interval=0.5))
    async with Cpe(DEAD_ACS) as cpe:
        device_id = await device(pool, cpe.cr_url)
        first, second = await ask(pool, device_id), await ask(pool, device_id)
        assert await round_(pool, sender, http) is None
        assert await row(pool, first) == await row(pool, second) == ("sent", 200, "")  # one request for both
        await cpe.next_connection_request_session()
        later = await ask(pool, device_id)
        wait = await round_(pool, sender, http)
        assert wait is not None and 0 < wait <= 0.5
        assert (await row(pool, later))[0] == "pending"
        await asyncio.sleep(wait)
        assert await round_(pool, sender, http) is None
        assert await row(pool, later) == ("sent", 200, "")
        assert [c.status for c in cpe.connection_requests] == [401, 200, 401, 200]


async def test_run_is_woken(pool: asyncpg.Pool) -> None:
    wake = asyncio.Event()
    async with Cpe(DEAD_ACS) as cpe:
        device_id = await device(pool, cpe.cr_url)
        task = asyncio.create_task(wakeup.run(pool, KEYRING, Settings(), wake, poll=30.0))
        try:
            await asyncio.sleep(0.1)  # the first round finds nothing, then waits 30 s or a wake
            wakeup_id = await ask(pool, device_id)
            wake.set()
            record = await cpe.next_connection_request_session(timeout=3.0)
            assert record.events == [("6 CONNECTION REQUEST", "")]
            for _ in range(50):
                if (await row(pool, wakeup_id))[0] != "pending":
                    break
                await asyncio.sleep(0.02)
            assert await row(pool, wakeup_id) == ("sent", 200, "")
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
