"""acs/files.py over a real aiohttp server on 127.0.0.1 and a real PostgreSQL: a file of 2.5 MiB
across three chunks served whole and by ranges, conditional requests, tokens, and uploads."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from acs import store
from acs.files import FileServer, Tokens
from daemons import db
from tests.conftest import free_port

DATA = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(5 * (1 << 20) // 64))  # 2.5 MiB
SIZE = len(DATA)
TOKENS = Tokens(b"k" * 32)


@dataclass
class Acs:
    base: str
    pool: asyncpg.Pool
    http: aiohttp.ClientSession
    file_id: int
    device_id: int

    def url(self, file_id: int | None = None, expires: float | None = None) -> str:
        return TOKENS.file_url(self.base, self.file_id if file_id is None else file_id, "fw.bin",
                               time.time() + 60 if expires is None else expires)


@pytest.fixture
async def acs(db_url: str) -> AsyncIterator[Acs]:
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=3, init=db.init_connection)
    async with pool.acquire() as conn, conn.transaction():
        file_id = await store.store_file(conn, "fw.bin", "1 Firmware Upgrade Image", DATA, version="2.0")
        device_id = await conn.fetchval("INSERT INTO acs_devices (cwmp_id, oui, serial) VALUES ('A-B-1', 'A', '1') "
                                        "RETURNING id")
    app = web.Application()
    FileServer(pool, TOKENS, max_upload=3 << 20).add_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession() as http:
        yield Acs(f"http://127.0.0.1:{port}", pool, http, file_id, device_id)
    await runner.cleanup()
    await pool.close()


async def row_of(pool: asyncpg.Pool, sql: str, *args: object) -> asyncpg.Record:
    row = await pool.fetchrow(sql, *args)
    assert row is not None, sql
    return row


async def test_the_chunk_layout(acs: Acs) -> None:
    async with acs.pool.acquire() as conn:
        chunks = await conn.fetch("SELECT n, length(data) AS size FROM acs_file_chunks ORDER BY n")
        row = await row_of(acs.pool, "SELECT size, sha256, complete FROM acs_files")
    assert [(c["n"], c["size"]) for c in chunks] == [(0, 1 << 20), (1, 1 << 20), (2, 1 << 19)]
    assert tuple(row) == (SIZE, hashlib.sha256(DATA).hexdigest(), True)


async def test_whole_file(acs: Acs) -> None:
    async with acs.http.get(acs.url()) as r:
        assert r.status == 200 and await r.read() == DATA
        assert r.headers["ETag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
        assert r.headers["Accept-Ranges"] == "bytes" and r.headers["Content-Length"] == str(SIZE)
        assert "Last-Modified" in r.headers
    async with acs.http.head(acs.url()) as r:
        assert r.status == 200 and r.headers["Content-Length"] == str(SIZE) and await r.read() == b""


@pytest.mark.parametrize(("header", "first", "last"), [
    ("bytes=10-99", 10, 99),                       # inside the first chunk
    ("bytes=1048000-2097200", 1048000, 2097200),   # across all three
    ("bytes=1048576-1048576", 1048576, 1048576),   # the first byte of the second
    ("bytes=-100", SIZE - 100, SIZE - 1),          # a suffix
    ("bytes=-9999999", 0, SIZE - 1),               # a suffix longer than the file
    ("bytes=2621000-", 2621000, SIZE - 1),         # open-ended
    ("bytes=2621000-99999999", 2621000, SIZE - 1),  # past the end: clamped
])
async def test_ranges(acs: Acs, header: str, first: int, last: int) -> None:
    async with acs.http.get(acs.url(), headers={"Range": header}) as r:
        assert r.status == 206 and await r.read() == DATA[first:last + 1]
        assert r.headers["Content-Range"] == f"bytes {first}-{last}/{SIZE}"


async def test_unsatisfiable_multiple_and_conditional(acs: Acs) -> None:
    async with acs.http.get(acs.url(), headers={"Range": f"bytes={SIZE}-"}) as r:
        assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{SIZE}"
    async with acs.http.get(acs.url(), headers={"Range": "bytes=0-1,5-6"}) as r:
        assert r.status == 200 and len(await r.read()) == SIZE
    async with acs.http.get(acs.url()) as r:
        etag = r.headers["ETag"]
    async with acs.http.get(acs.url(), headers={"If-None-Match": f'"x", W/{etag}'}) as r:
        assert r.status == 304 and r.headers["ETag"] == etag and await r.read() == b""
    async with acs.http.get(acs.url(), headers={"Range": "bytes=0-9", "If-Range": '"older"'}) as r:
        assert r.status == 200 and len(await r.read()) == SIZE  # the file changed: all of it
    async with acs.http.get(acs.url(), headers={"Range": "bytes=0-9", "If-Range": etag}) as r:
        assert r.status == 206 and await r.read() == DATA[:10]


async def test_links_that_do_not_open(acs: Acs) -> None:
    good = acs.url()
    token = good.split("/")[-2]
    forged = good.replace(token, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    upload_token = TOKENS.make("u", acs.file_id, 0, time.time() + 60)
    for url, status in [(forged, 403), (acs.url(expires=time.time() - 1), 403),
                        (f"{acs.base}/files/{upload_token}/fw.bin", 403), (acs.url(file_id=acs.file_id + 99), 404)]:
        async with acs.http.get(url) as r:
            assert r.status == status, url
    async with acs.pool.acquire() as conn:
        unfinished = await store.create_file(conn, "fw-3.bin", "1 Firmware Upgrade Image")
    async with acs.http.get(acs.url(file_id=unfinished)) as r:
        assert r.status == 404


async def test_upload_for_a_task(acs: Acs) -> None:
    async with acs.pool.acquire() as conn:
        task_id = await conn.fetchval("INSERT INTO acs_tasks (device_id, kind, args) VALUES ($1, 'upload', $2) "
                                      "RETURNING id", acs.device_id, {"file_type": "2 Vendor Log File"})
    body = DATA[:(1 << 20) + 5]

    async def pieces() -> AsyncIterator[bytes]:  # chunked: no Content-Length
        for i in range(0, len(body), 100_000):
            yield body[i:i + 100_000]

    url = TOKENS.upload_url(acs.base, acs.device_id, time.time() + 60, task_id)
    async with acs.http.put(url, data=pieces()) as r:
        assert r.status == 200
    async with acs.pool.acquire() as conn:
        row = await row_of(acs.pool, "SELECT id, device_id, file_type, size, sha256, complete FROM acs_files "
                                     "WHERE device_id = $1", acs.device_id)
        result = await conn.fetchval("SELECT result FROM acs_tasks WHERE id = $1", task_id)
        assert await conn.fetchval("SELECT count(*) FROM acs_file_chunks WHERE file_id = $1", row["id"]) == 2
    assert tuple(row)[1:] == (acs.device_id, "2 Vendor Log File", len(body), hashlib.sha256(body).hexdigest(), True)
    assert result == {"file_id": row["id"]}
    async with acs.http.get(acs.url(file_id=row["id"])) as r:
        assert await r.read() == body


async def test_upload_for_the_pending_task(acs: Acs) -> None:
    """The Upload's URL (the device's, in the template context) names no task: the device's
    newest upload task not ended yet gets the file; with none, the file is the device's alone."""
    url = TOKENS.upload_url(acs.base, acs.device_id, time.time() + 60)
    async with acs.http.post(url, data=b"cfg-0") as r:
        assert r.status == 200
    async with acs.pool.acquire() as conn:
        older, newer, done = [await conn.fetchval(
            "INSERT INTO acs_tasks (device_id, kind, args, status) VALUES ($1, 'upload', $2, $3) RETURNING id",
            acs.device_id, {"file_type": t}, status) for t, status in [
                ("1 Vendor Configuration File", "queued"), ("2 Vendor Log File", "waiting"), ("x", "done")]]
    async with acs.http.post(url, data=b"log-1") as r:
        assert r.status == 200
    rows = await acs.pool.fetch("SELECT id, file_type FROM acs_files WHERE device_id = $1 ORDER BY id", acs.device_id)
    assert [r["file_type"] for r in rows] == ["1 Vendor Configuration File", "2 Vendor Log File"]
    results = {r["id"]: r["result"] for r in await acs.pool.fetch("SELECT id, result FROM acs_tasks")}
    assert results == {older: None, newer: {"file_id": rows[1]["id"]}, done: None}


async def test_uploads_refused(acs: Acs) -> None:
    expires = time.time() + 60
    too_big = b"x" * ((3 << 20) + 1)

    async def streamed() -> AsyncIterator[bytes]:
        for i in range(0, len(too_big), 1 << 20):
            yield too_big[i:i + (1 << 20)]

    for url, data, status in [
        (TOKENS.upload_url(acs.base, acs.device_id, expires), io.BytesIO(too_big), 413),  # by its Content-Length
        (TOKENS.upload_url(acs.base, acs.device_id, expires), streamed(), 413),    # as it streams
        (TOKENS.upload_url(acs.base, acs.device_id, expires, task_id=999), b"x", 404),
        (TOKENS.upload_url(acs.base, acs.device_id + 1, expires), b"x", 404),
        (TOKENS.upload_url(acs.base, acs.device_id, time.time() - 1), b"x", 403),
        (f"{acs.base}/uploads/{TOKENS.make('f', acs.device_id, 0, expires)}", b"x", 403),
    ]:
        try:
            async with acs.http.put(url, data=data) as r:
                assert r.status == status, url
        except aiohttp.ClientOSError:  # the server may close before the whole body is sent
            assert status == 413
    async with acs.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM acs_files WHERE device_id IS NOT NULL") == 0
