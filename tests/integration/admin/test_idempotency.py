"""The API's Idempotency-Key (admin/idempotency.py) over real sockets and a real database: the
same request again is answered as the first and does nothing; another request under the key is
refused; a repeat while the first runs is told so; requests at once have one effect; a failure
keeps nothing; every caller has its own keys; the worker prunes old keys; and the document says so."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import asyncpg
import pytest
import structlog
from aiohttp import web

from admin import idempotency, keys
from admin import idempotency_store as store
from admin.auth.principal import Principal
from admin.web import Handler
from admin.worker import jobs
from daemons.config import Settings
from tests.conftest import free_port
from tests.integration.admin.conftest import Admin, api_key, logged_in


async def post(admin: Admin, key: str, path: str, body: Any, idem: str | None = None, *,
               raw: bytes | None = None, method: str = "POST", **headers: str) -> tuple[int, Any, dict[str, str]]:
    """(status, JSON, headers) of an API request with the API key ``key`` and Idempotency-Key ``idem``."""
    h = {"Authorization": f"Bearer {key}", **headers}
    if idem is not None:
        h["Idempotency-Key"] = idem
    data = raw if raw is not None else json.dumps(body).encode()
    async with aiohttp.ClientSession(headers=h) as s, \
            s.request(method, admin.url + "/api/v1" + path, data=data,
                      headers={"Content-Type": headers.get("Content-Type", "application/json")}) as r:
        text = await r.text()
        return r.status, json.loads(text) if text else None, dict(r.headers)


@pytest.fixture
async def partner(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("INSERT INTO partners (name) VALUES ('Idem ISP') RETURNING id"))


async def customers_named(conn: asyncpg.Connection, name: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM customers WHERE name = $1", name))


async def test_the_same_request_again_is_answered_once(admin: Admin, conn: asyncpg.Connection, partner: int) -> None:
    key = await api_key(conn)
    body = {"name": "Ada Idem", "partner_id": partner, "email": "ada@example.net"}
    status, first, headers = await post(admin, key, "/customers", body, "crm-1")
    assert status == 201, first
    assert idempotency.REPLAYED not in headers
    status, again, headers = await post(admin, key, "/customers", body, "crm-1")
    assert status == 201 and again == first
    assert headers[idempotency.REPLAYED] == "true" and headers["Content-Type"].startswith("application/json")
    assert await customers_named(conn, "Ada Idem") == 1
    # The key as the IETF draft writes it (a quoted string) is the same key.
    status, quoted, headers = await post(admin, key, "/customers", body, '"crm-1"')
    assert status == 201 and quoted == first and headers[idempotency.REPLAYED] == "true"
    # Without a key, or with another, it is another request.
    status, other, _ = await post(admin, key, "/customers", body, "crm-2")
    assert status == 201 and other["id"] != first["id"]
    status, _, _ = await post(admin, key, "/customers", body)
    assert status == 201
    assert await customers_named(conn, "Ada Idem") == 3


async def test_the_same_key_with_another_request_is_refused(admin: Admin, conn: asyncpg.Connection,
                                                            partner: int) -> None:
    key = await api_key(conn)
    status, first, _ = await post(admin, key, "/customers", {"name": "Bob Idem", "partner_id": partner}, "k-1")
    assert status == 201
    status, problem, _ = await post(admin, key, "/customers", {"name": "Bob Idem", "partner_id": partner,
                                                               "city": "Graz"}, "k-1")
    assert status == 422, problem
    assert problem["title"] == "Idempotency-Key reused" and "Idempotency-Key" in problem["errors"]
    status, problem, _ = await post(admin, key, f"/customers/{first['id']}/status", {"action": "activate"}, "k-1")
    assert status == 422
    # Byte for byte: the same JSON written otherwise is another request.
    raw = f'{{"name":  "Bob Idem", "partner_id": {partner}}}'.encode()
    status, _, _ = await post(admin, key, "/customers", None, "k-1", raw=raw)
    assert status == 422
    assert await customers_named(conn, "Bob Idem") == 1
    assert await conn.fetchval("SELECT city FROM customers WHERE name = 'Bob Idem'") is None


async def test_a_bad_key_is_refused(admin: Admin, conn: asyncpg.Connection, partner: int) -> None:
    key = await api_key(conn)
    for bad in ("x" * 256, "", "  ", "tab\there", "caf\u00e9"):
        status, problem, _ = await post(admin, key, "/customers", {"name": "Bad Key", "partner_id": partner}, bad)
        assert status == 422, (bad, problem)
        assert "Idempotency-Key" in problem["errors"]
    status, _, _ = await post(admin, key, "/customers", {"name": "Bad Key", "partner_id": partner}, "x" * 255)
    assert status == 201
    assert await customers_named(conn, "Bad Key") == 1


async def test_a_failed_request_keeps_nothing_and_a_retry_runs(admin: Admin, conn: asyncpg.Connection,
                                                               partner: int) -> None:
    key = await api_key(conn)
    body = {"name": "Cy Idem", "partner_id": 999999}
    status, problem, _ = await post(admin, key, "/customers", body, "retry-1")
    assert status == 422, problem  # no such partner: refused, nothing written
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 0
    status, problem, _ = await post(admin, key, "/customers", {"name": "Cy Idem", "partner_id": partner}, "retry-1")
    assert status == 201, problem
    assert await conn.fetchval("SELECT status FROM idempotency_keys WHERE key = 'retry-1'") == 201
    # A handler that raised (a 404 here) keeps nothing either.
    status, _, _ = await post(admin, key, "/customers/999999/status", {"action": "activate"}, "retry-2")
    assert status == 404
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = 'retry-2'") == 0


async def test_a_repeat_while_the_first_runs_is_409_and_one_effect(admin: Admin, conn: asyncpg.Connection,
                                                                   db_url: str, partner: int) -> None:
    key = await api_key(conn)
    body = {"name": "Di Idem", "partner_id": partner}
    blocker = await asyncpg.connect(db_url)
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE customers IN EXCLUSIVE MODE")  # the first insert waits here
        first = asyncio.create_task(post(admin, key, "/customers", body, "slow-1"))
        for _ in range(200):
            if await conn.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = 'slow-1'"):
                break
            await asyncio.sleep(0.02)
        status, problem, _ = await post(admin, key, "/customers", body, "slow-1")
        assert status == 409, problem
        assert "still running" in problem["detail"]
        await tx.rollback()
    finally:
        await blocker.close()
    status, created, _ = await first
    assert status == 201
    status, again, headers = await post(admin, key, "/customers", body, "slow-1")
    assert status == 201 and again == created and headers[idempotency.REPLAYED] == "true"
    assert await customers_named(conn, "Di Idem") == 1


async def test_requests_at_once_have_one_effect(admin: Admin, conn: asyncpg.Connection, partner: int) -> None:
    key = await api_key(conn)
    body = {"name": "Eve Idem", "partner_id": partner}
    answers = await asyncio.gather(*(post(admin, key, "/customers", body, "burst-1") for _ in range(12)))
    statuses = sorted(status for status, _, _ in answers)
    assert set(statuses) <= {201, 409} and statuses.count(201) >= 1, statuses
    ids = {a["id"] for status, a, _ in answers if status == 201}
    assert len(ids) == 1
    assert await customers_named(conn, "Eve Idem") == 1


async def test_keys_are_each_callers_own(admin: Admin, conn: asyncpg.Connection, partner: int) -> None:
    one, two = await api_key(conn), await api_key(conn)
    status, first, _ = await post(admin, one, "/customers", {"name": "Flo Idem", "partner_id": partner}, "shared")
    assert status == 201
    body = {"name": "Flo Idem", "partner_id": partner}
    status, second, headers = await post(admin, two, "/customers", body, "shared")
    assert status == 201 and second["id"] != first["id"] and idempotency.REPLAYED not in headers
    owners = {r["principal"] for r in await conn.fetch("SELECT principal FROM idempotency_keys")}
    ids = await conn.fetch("SELECT id FROM api_keys ORDER BY id")
    assert owners == {f"key:{r['id']}" for r in ids}


async def test_abandoned_first_requests_are_taken_over(admin: Admin, conn: asyncpg.Connection,
                                                       partner: int) -> None:
    """A first request whose process died leaves its claim: after the lease a retry runs."""
    key = await api_key(conn)
    key_id = await conn.fetchval("SELECT max(id) FROM api_keys")
    raw = f'{{"name": "Gus Idem", "partner_id": {partner}}}'.encode()
    digest = idempotency.fingerprint("POST", "/api/v1/customers", raw)
    await conn.execute("INSERT INTO idempotency_keys (principal, key, request_sha256, created_at) "
                       "VALUES ($1, 'died', $2, now() - interval '1 hour')", f"key:{key_id}", digest)
    status, _, _ = await post(admin, key, "/customers", None, "died", raw=raw)
    assert status == 201
    assert await customers_named(conn, "Gus Idem") == 1


async def test_other_methods_and_pages_are_left_alone(admin: Admin, conn: asyncpg.Connection) -> None:
    key = await api_key(conn)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "g"}) as s:
        for _ in range(2):
            async with s.get(admin.url + "/api/v1/customers") as r:
                assert r.status == 200 and idempotency.REPLAYED not in r.headers
    async with await logged_in(admin) as c:
        status, _ = await c.get("/admin/customers")
        assert status == 200
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 0


async def test_a_multipart_body_reaches_its_handler_whole(admin: Admin) -> None:
    """The middleware reads the body to fingerprint it; a handler that parses multipart (an
    upload) still gets all of it. On a bare application: the admin's own has no such route."""
    seen: list[dict[str, str]] = []

    async def upload(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        seen.append({"bank": str(form["bank"]), "file": upload.file.read().decode()})
        return web.json_response({"ok": True})

    @web.middleware
    async def who(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[keys.PRINCIPAL] = Principal("test", "super", frozenset(), api_key_id=1)
        return await handler(request)

    app = web.Application(middlewares=[who, idempotency.middleware])
    app[keys.POOL] = admin.pool
    app.router.add_post("/api/v1/upload", upload)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        for _ in range(2):
            form = aiohttp.FormData()
            form.add_field("file", b"line 1\nline 2\n", filename="statement.csv", content_type="text/csv")
            form.add_field("bank", "Erste")
            async with aiohttp.ClientSession() as s, s.post(f"http://127.0.0.1:{port}/api/v1/upload", data=form,
                                                            headers={"Idempotency-Key": "up"}) as r:
                assert r.status in (200, 422)
    finally:
        await runner.cleanup()
    assert seen == [{"bank": "Erste", "file": "line 1\nline 2\n"}]


async def test_the_worker_prunes_keys_older_than_a_day(admin: Admin, conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO idempotency_keys (principal, key, request_sha256, status, created_at) VALUES "
                       "('key:1', 'old', 'x', 201, now() - interval '25 hours'), "
                       "('key:1', 'new', 'x', 201, now() - interval '23 hours')")
    found = jobs.discover()["idempotency.prune"]
    assert found.schedule is not None
    await found.run(jobs.Context(1, found.entrypoint, {}, 1, admin.pool, Settings(), structlog.get_logger()))
    assert [r["key"] for r in await conn.fetch("SELECT key FROM idempotency_keys")] == ["new"]
    assert await store.prune(conn, idempotency.KEEP_HOURS) == 0


async def test_the_document_names_the_header(admin: Admin) -> None:
    async with aiohttp.ClientSession() as s, s.get(admin.url + "/api/v1/openapi.json") as r:
        doc = await r.json()
    post_ = doc["paths"]["/customers"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in post_["parameters"])
    assert "409" in post_["responses"] and "422" in post_["responses"]
    get_ = doc["paths"]["/customers"]["get"]
    assert not any(p["name"] == "Idempotency-Key" for p in get_.get("parameters", []))
