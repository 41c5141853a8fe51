"""Webhook delivery against real HTTP receivers on 127.0.0.1 (aiohttp servers the tests run): signed
POSTs the receiver verifies, 500 then 200 retried on a fixed clock and delivered once, replay, a slow
receiver timed out, a refused connection and an unfollowed redirect, bounded concurrency per
webhook, how fast one worker delivers, and the outbox's events on MQTT (an amqtt broker)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiomqtt
import asyncpg
import pytest
import structlog
from aiohttp import web

from admin.notifications import dispatch, sign, webhooks
from admin.notifications import webhooks_store as store
from daemons import db
from daemons.config import MqttSettings, SecretsSettings, Settings
from daemons.events import EventPublisher
from daemons.metrics import REGISTRY
from daemons.secrets import Keyring
from tests.conftest import free_port
from tests.db.test_billing import customer
from tests.integration.conftest import Broker, cancel, eventually

T0 = dt.datetime(2026, 4, 2, 10, 0, tzinfo=dt.UTC)
SECRET = "whsec_test_secret"
D = Decimal


class Clock:
    """A fixed clock the test moves."""

    def __init__(self, at: dt.datetime = T0) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += dt.timedelta(**delta)


@dataclasses.dataclass
class Got:
    path: str
    headers: dict[str, str]
    body: bytes


Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Receiver:
    """An HTTP server that records every request; ``answers[path]`` says how each is answered in
    turn (the last one repeats), a status or a coroutine."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.got: list[Got] = []
        self.answers: dict[str, list[int | Behaviour]] = {}
        self.in_flight: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.got.append(Got(path, dict(request.headers), await request.read()))
        self.in_flight[path] = self.in_flight.get(path, 0) + 1
        self.most[path] = max(self.most.get(path, 0), self.in_flight[path])
        try:
            queue = self.answers.get(path, [200])
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
            if isinstance(answer, int):
                return web.Response(status=answer, text=f"answer {answer}")
            return await answer(request)
        finally:
            self.in_flight[path] -= 1

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(db_url, min_size=2, max_size=8, init=db.init_connection)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(os.urandom(32))


async def add_webhook(pool: asyncpg.Pool, keyring: Keyring, url: str, events: list[str] | None = None,
                      partner_id: int | None = None) -> int:
    async with pool.acquire() as conn:
        return await store.add(conn, {"partner_id": partner_id, "url": url, "events": events or ["*"],
                                      "secret": keyring.seal(SECRET, webhooks.SECRET_PURPOSE), "enabled": True,
                                      "description": "", "created_by": "test"})


async def invoices(pool: asyncpg.Pool, n: int) -> None:
    """``n`` invoices of one customer (the COPY a billing run makes), dispatched at T0."""
    async with pool.acquire() as conn:
        cid = await customer(conn, 1)
        partner = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", cid)
        await conn.execute("UPDATE events SET dispatched_at = now()")  # the customer's own: not these tests'
        await conn.copy_records_to_table("documents", records=[
            ("invoice", cid, partner, f"I{i:06d}", dt.date(2026, 4, 1), "EUR", D("10.00"), D("2.40"), D("12.40"),
             "recurring") for i in range(n)],
            columns=["kind", "customer_id", "partner_id", "number", "issued_on", "currency", "subtotal", "tax_total",
                     "total", "origin"])
        while await dispatch.dispatch(conn, now=T0):
            pass


def settings(keyring: Keyring, **changes: Any) -> webhooks.DeliverySettings:
    return dataclasses.replace(webhooks.DeliverySettings(keyring), **changes)


async def deliveries(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return list(await conn.fetch("SELECT * FROM webhook_deliveries ORDER BY id"))


async def attempts(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return list(await conn.fetch("SELECT * FROM webhook_attempts ORDER BY id"))


def counted(result: str) -> float:
    return REGISTRY.get_sample_value("lastmile_webhook_deliveries_total", {"result": result}) or 0.0


async def test_a_delivery_is_posted_signed_and_the_receiver_verifies_it(pool: asyncpg.Pool, keyring: Keyring,
                                                                        receiver: Receiver) -> None:
    hook = await add_webhook(pool, keyring, receiver.url + "/hook", ["invoice.*"])
    await invoices(pool, 1)
    before = counted("delivered")
    done = await webhooks.deliver(pool, settings(keyring), now=Clock())
    assert (done.delivered, done.retried, done.failed) == (1, 0, 0)
    [got] = receiver.got
    t = sign.verify(SECRET, got.body, got.headers["Lastmile-Signature"], T0.timestamp())
    assert t == int(T0.timestamp())
    with pytest.raises(sign.SignatureError):
        sign.verify("another secret", got.body, got.headers["Lastmile-Signature"], T0.timestamp())
    with pytest.raises(sign.SignatureError, match="from now"):
        sign.verify(SECRET, got.body, got.headers["Lastmile-Signature"], T0.timestamp() + 301)
    [delivery] = await deliveries(pool)
    assert got.headers["Lastmile-Event"] == "invoice.created"
    assert got.headers["Lastmile-Delivery"] == str(delivery["id"])
    assert got.headers["User-Agent"].startswith("lastmile-webhooks/")
    assert got.headers["Content-Type"] == "application/json"
    body = json.loads(got.body)
    assert set(body) == {"id", "type", "occurred_at", "data"} and body["type"] == "invoice.created"
    assert body["id"] == delivery["event_id"]
    assert body["data"]["total"] == "12.4000" and body["data"]["number"] == "I000000"  # decimals as strings
    assert (delivery["webhook_id"], delivery["status"], delivery["attempts"], delivery["delivered_at"]) == (
        hook, "delivered", 1, T0)
    [attempt] = await attempts(pool)
    assert (attempt["response_status"], attempt["response_body"], attempt["error"]) == (200, "answer 200", "")
    assert counted("delivered") == before + 1
    assert (await webhooks.deliver(pool, settings(keyring), now=Clock())).attempts == 0  # nothing twice


async def test_500_then_200_is_retried_with_backoff_and_delivered_once(pool: asyncpg.Pool, keyring: Keyring,
                                                                      receiver: Receiver) -> None:
    await add_webhook(pool, keyring, receiver.url + "/flaky")
    receiver.answers["/flaky"] = [500, 200]
    await invoices(pool, 1)
    clock = Clock()
    retried = counted("retried")
    first = await webhooks.deliver(pool, settings(keyring), now=clock)
    assert (first.delivered, first.retried) == (0, 1) and first.errors == [f"{receiver.url}/flaky: HTTP 500"]
    [d] = await deliveries(pool)
    assert (d["status"], d["attempts"], d["next_attempt_at"], d["lease_until"]) == (
        "pending", 1, T0 + dt.timedelta(seconds=30), None)
    clock.advance(seconds=29)
    assert (await webhooks.deliver(pool, settings(keyring), now=clock)).attempts == 0  # not due yet
    clock.advance(seconds=1)
    second = await webhooks.deliver(pool, settings(keyring), now=clock)
    assert second.delivered == 1
    clock.advance(hours=7)
    assert (await webhooks.deliver(pool, settings(keyring), now=clock)).attempts == 0
    assert [g.headers["Lastmile-Delivery"] for g in receiver.got] == [str(d["id"])] * 2  # the same delivery
    assert receiver.got[0].body == receiver.got[1].body
    assert [(a["response_status"], a["error"]) for a in await attempts(pool)] == [(500, "HTTP 500"), (200, "")]
    [d] = await deliveries(pool)
    assert (d["status"], d["attempts"], d["delivered_at"]) == ("delivered", 2, T0 + dt.timedelta(seconds=30))
    assert counted("retried") == retried + 1


async def test_a_delivery_out_of_attempts_fails_and_a_replay_sends_it_again(pool: asyncpg.Pool, keyring: Keyring,
                                                                          receiver: Receiver) -> None:
    await add_webhook(pool, keyring, receiver.url + "/down")
    receiver.answers["/down"] = [503]
    await invoices(pool, 1)
    clock = Clock()
    waits = []
    for n in range(1, webhooks.MAX_ATTEMPTS + 1):
        done = await webhooks.deliver(pool, settings(keyring), now=clock)
        assert done.attempts == 1, n
        [d] = await deliveries(pool)
        if n < webhooks.MAX_ATTEMPTS:
            waits.append(d["next_attempt_at"] - clock())
            clock.at = d["next_attempt_at"]
    assert [w.total_seconds() / 60 for w in waits] == [0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 360]
    [d] = await deliveries(pool)
    assert (d["status"], d["attempts"]) == ("failed", webhooks.MAX_ATTEMPTS)
    clock.advance(days=1)
    assert (await webhooks.deliver(pool, settings(keyring), now=clock)).attempts == 0
    # Replay: pending again, attempts counted afresh, the history kept
    receiver.answers["/down"] = [200]
    async with pool.acquire() as conn:
        await store.replay(conn, d["id"], clock())
    [d] = await deliveries(pool)
    assert (d["status"], d["attempts"]) == ("pending", 0)
    assert (await webhooks.deliver(pool, settings(keyring), now=clock)).delivered == 1
    [d] = await deliveries(pool)
    assert (d["status"], d["attempts"]) == ("delivered", 1)
    assert len(await attempts(pool)) == webhooks.MAX_ATTEMPTS + 1
    assert len({g.headers["Lastmile-Delivery"] for g in receiver.got}) == 1


async def test_a_slow_receiver_times_out_and_is_tried_again(pool: asyncpg.Pool, keyring: Keyring,
                                                           receiver: Receiver) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response(text="late")

    await add_webhook(pool, keyring, receiver.url + "/slow")
    receiver.answers["/slow"] = [slow]
    await invoices(pool, 1)
    started = time.monotonic()
    done = await webhooks.deliver(pool, settings(keyring, timeout=0.3), now=Clock())
    took = time.monotonic() - started
    assert done.retried == 1 and took < 2
    [a] = await attempts(pool)
    assert (a["response_status"], a["error"]) == (None, "no answer in 0.3 s") and 250 <= a["duration_ms"] < 2000
    [d] = await deliveries(pool)
    assert (d["status"], d["next_attempt_at"]) == ("pending", T0 + dt.timedelta(seconds=30))


async def test_refused_connections_and_redirects_are_failed_attempts(pool: asyncpg.Pool, keyring: Keyring,
                                                                    receiver: Receiver) -> None:
    async def moved(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(receiver.url + "/elsewhere")

    await add_webhook(pool, keyring, f"http://127.0.0.1:{free_port()}/nobody")
    await add_webhook(pool, keyring, receiver.url + "/moved")
    receiver.answers["/moved"] = [moved]
    await invoices(pool, 1)
    done = await webhooks.deliver(pool, settings(keyring), now=Clock())
    assert done.retried == 2
    by_status = {a["response_status"]: a["error"] for a in await attempts(pool)}
    assert by_status[302] == f"redirect to {receiver.url}/elsewhere not followed"
    assert "Connect" in by_status[None] or "refused" in by_status[None].lower(), by_status
    assert [g.path for g in receiver.got] == ["/moved"]  # the redirect was not followed


async def test_one_webhook_gets_a_few_at_once_and_the_others_are_not_held_up(pool: asyncpg.Pool, keyring: Keyring,
                                                                             receiver: Receiver) -> None:
    async def slowish(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.05)
        return web.Response(text="ok")

    await add_webhook(pool, keyring, receiver.url + "/busy")
    await add_webhook(pool, keyring, receiver.url + "/quick")
    receiver.answers["/busy"] = [slowish]
    await invoices(pool, 40)
    done = await webhooks.deliver(pool, settings(keyring, per_webhook=4, concurrency=8), now=Clock())
    assert done.delivered == 80
    assert receiver.most["/busy"] == 4 and receiver.most["/quick"] <= 4
    quick = [i for i, g in enumerate(receiver.got) if g.path == "/quick"]
    assert quick[-1] < len(receiver.got) - 10  # the quick one finished well before the slow one
    # first tries start in event order, per webhook: with 4 at once, none arrives more than 3 places off
    for path in ("/busy", "/quick"):
        ids = [json.loads(g.body)["id"] for g in receiver.got if g.path == path]
        assert len(ids) == 40 and max(abs(ids.index(i) - n) for n, i in enumerate(sorted(ids))) < 4


async def test_a_backlog_of_one_webhook_or_a_disabled_one_does_not_hide_another_s(
        pool: asyncpg.Pool, keyring: Keyring, receiver: Receiver) -> None:
    async def slowish(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.01)
        return web.Response(text="ok")

    await add_webhook(pool, keyring, receiver.url + "/backlog", ["invoice.*"])
    off = await add_webhook(pool, keyring, receiver.url + "/off", ["invoice.*"])
    receiver.answers["/backlog"] = [slowish]
    await invoices(pool, 100)  # 200 deliveries due, older than the next one
    async with pool.acquire() as conn:
        await store.update(conn, off, {"enabled": False})
    await add_webhook(pool, keyring, receiver.url + "/later", ["customer.*"])
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO customers (partner_id, number, name) SELECT partner_id, 'L1', 'Late' "
                           "FROM customers LIMIT 1")
        assert await dispatch.dispatch(conn, now=T0) == 1
    done = await webhooks.deliver(pool, settings(keyring, per_webhook=2, concurrency=8, scan=20), now=Clock())
    assert done.delivered == 101
    paths = [g.path for g in receiver.got]
    assert "/off" not in paths and paths.index("/later") < 10  # not after the hundred before it
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1 "
                                   "AND status = 'pending'", off) == 100  # waiting for it to be on again


async def test_one_worker_delivers_hundreds_a_second(pool: asyncpg.Pool, keyring: Keyring,
                                                     receiver: Receiver) -> None:
    await add_webhook(pool, keyring, receiver.url + "/a")
    await add_webhook(pool, keyring, receiver.url + "/b")
    n = 1000
    await invoices(pool, n // 2)
    started = time.perf_counter()
    done = await webhooks.deliver(pool, settings(keyring), now=Clock())
    seconds = time.perf_counter() - started
    assert done.delivered == n and len(receiver.got) == n
    print(f"{n} webhook deliveries in {seconds:.2f} s: {n / seconds:.0f}/s")
    assert n / seconds > 100


async def test_a_deleted_webhook_s_delivery_in_flight_is_dropped_quietly(pool: asyncpg.Pool, keyring: Keyring,
                                                                         receiver: Receiver) -> None:
    gate = asyncio.Event()

    async def held(request: web.Request) -> web.StreamResponse:
        await gate.wait()
        return web.Response(text="ok")

    hook = await add_webhook(pool, keyring, receiver.url + "/held")
    receiver.answers["/held"] = [held]
    await invoices(pool, 1)
    task = asyncio.ensure_future(webhooks.deliver(pool, settings(keyring), now=Clock()))
    await eventually(lambda: bool(receiver.got))
    async with pool.acquire() as conn:
        await store.delete(conn, hook)
    gate.set()
    assert (await task).delivered == 1
    assert await deliveries(pool) == [] and await attempts(pool) == []


async def test_the_outbox_s_events_reach_an_mqtt_subscriber(pool: asyncpg.Pool, mqtt_broker: Broker) -> None:
    got: list[tuple[str, dict[str, Any]]] = []
    ready = asyncio.Event()

    async def subscribe() -> None:
        async with aiomqtt.Client("127.0.0.1", mqtt_broker.port, identifier="webhooks-test") as client:
            await client.subscribe("lastmile/#", qos=1)
            ready.set()
            async for message in client.messages:
                got.append((str(message.topic), json.loads(bytes(message.payload))))

    sub = asyncio.create_task(subscribe())
    await asyncio.wait_for(ready.wait(), 5)
    publisher = EventPublisher(MqttSettings(url=mqtt_broker.url), "test-outbox")
    publisher.start()
    try:
        async with pool.acquire() as conn:
            cid = await customer(conn, 1)
            partner = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", cid)
            await conn.execute(
                "INSERT INTO documents (kind, customer_id, partner_id, number, issued_on, currency, subtotal, "
                "tax_total, total, origin) VALUES ('invoice', $1, $2, 'M1', '2026-04-01', 'EUR', 10, 2.4, 12.4, "
                "'recurring')", cid, partner)
            await conn.execute("INSERT INTO events (subject, name, payload) VALUES ('session', 'started', '{}')")
            assert await dispatch.dispatch(conn, now=T0, publish=publisher.publish_payload) == 4
        await eventually(lambda: len(got) >= 3)
    finally:
        await publisher.close()
        await cancel(sub)
    topics = [t for t, _ in got]
    assert topics == ["lastmile/customer/created", "lastmile/service/created", "lastmile/invoice/created"]
    invoice = got[2][1]
    assert invoice["number"] == "M1" and invoice["total"] == "12.4000" and invoice["customer_id"] == cid
    assert isinstance(invoice["event_id"], int) and invoice["occurred_at"] and invoice["time"]


async def test_the_worker_s_jobs_dispatch_deliver_and_publish(pool: asyncpg.Pool, receiver: Receiver,
                                                             mqtt_broker: Broker, tmp_path: Path) -> None:
    from admin.notifications import event_jobs
    from admin.worker import jobs

    declared = jobs.discover()
    assert {e: (declared[e].schedule, declared[e].concurrency) for e in (
        "events.dispatch", "webhooks.deliver", "events.sessions", "events.prune")} == {
        "events.dispatch": ("* * * * * */5", 1), "webhooks.deliver": ("* * * * * */10", 1),
        "events.sessions": ("* * * * *", 1), "events.prune": ("40 3 * * *", 1)}
    key_file = tmp_path / "secret.key"
    key_file.write_text(base64.b64encode(os.urandom(32)).decode())
    settings = Settings(mqtt=MqttSettings(url=mqtt_broker.url), secrets=SecretsSettings(key_file=str(key_file)))
    keyring = Keyring.load(settings.secrets)
    await add_webhook(pool, keyring, receiver.url + "/jobs", ["customer.created"])

    def context(entrypoint: str) -> jobs.Context:
        return jobs.Context(1, entrypoint, {}, 1, pool, settings, structlog.get_logger().bind(job=entrypoint))

    got: list[str] = []
    ready = asyncio.Event()

    async def subscribe() -> None:
        async with aiomqtt.Client("127.0.0.1", mqtt_broker.port, identifier="jobs-test") as client:
            await client.subscribe("lastmile/#", qos=1)
            ready.set()
            async for message in client.messages:
                got.append(str(message.topic))

    sub = asyncio.create_task(subscribe())
    await asyncio.wait_for(ready.wait(), 5)
    try:
        async with pool.acquire() as conn:
            await customer(conn, 1)
        await event_jobs.dispatch_events(context("events.dispatch"))
        await event_jobs.deliver_webhooks(context("webhooks.deliver"))
        assert [json.loads(g.body)["type"] for g in receiver.got] == ["customer.created"]
        sign.verify(SECRET, receiver.got[0].body, receiver.got[0].headers["Lastmile-Signature"], time.time())
        await eventually(lambda: len(got) >= 2)
        assert got == ["lastmile/customer/created", "lastmile/service/created"]
        await event_jobs.session_events(context("events.sessions"))
        await event_jobs.prune(context("events.prune"))
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM event_cursors WHERE name = 'sessions'") == 1
            assert await conn.fetchval("SELECT count(*) FROM events") == 2  # recent: kept
    finally:
        await cancel(sub)
        found = event_jobs.publisher(settings.mqtt)
        assert found is not None
        await found.close()
