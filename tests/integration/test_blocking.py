"""The blocking pipeline end to end: a customer's status goes to blocked and back.

Real processes (radiusd, provisiond), a NAS double that answers CoA/Disconnect (tests/fakes/nas.py),
a RouterOS API double (tests/fakes/routeros.py) and an MQTT broker: within a second of the
commit, the customer's address is in the router's blocked address list (provisiond), the live
session got a Disconnect-Request or a CoA with the address list (radiusd), and
`lastmile/customer/blocked` was published; unblocking takes the address out again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from decimal import Decimal
from pathlib import Path

import aiomqtt
import asyncpg
import pytest
from pyrad.packet import AccountingResponse

from admin.billing import collect, ledger
from admin.payments import record
from daemons.config import SecretsSettings
from daemons.secrets import ROUTER_PURPOSE, Keyring
from radiusd.codec import Code
from tests.fakes.nas import FakeNas
from tests.fakes.routeros import FakeRouter
from tests.integration.conftest import Broker
from tests.integration.daemon import Daemon, start_daemon
from tests.integration.radius_env import (
    Radiusd,
    accounting_request,
    add_nas,
    add_service,
    client,
    send,
    start,
)

ADDRESS = "100.64.7.9"
LISTS = "/ip/firewall/address-list"



def listed(router: FakeRouter) -> list[str]:
    return [e["address"] for e in router.table(LISTS) if e.get("list") == "blocked"]


async def within(check: object, budget: float) -> float:
    """Seconds until ``check()`` holds; fails past ``budget``."""
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - started < budget, "not within the budget"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


@pytest.mark.parametrize(("block_method", "code"), [("disconnect", Code.DISCONNECT_REQUEST),
                                                    ("coa", Code.COA_REQUEST)])
async def test_a_blocked_customer_is_blocked_everywhere_within_a_second(
        block_method: str, code: int, conn: asyncpg.Connection, db_url: str, tmp_path: Path, nas: FakeNas,
        radiusds: list[Radiusd], mqtt_broker: Broker) -> None:
    keyring = Keyring.load(SecretsSettings(key_file=str(tmp_path / "secret.key")), create=True)
    async with FakeRouter(user="lastmile", password="pw") as router:
        router_id = await conn.fetchval(
            "INSERT INTO routers (name, host, api_port, username, password) VALUES ('edge', '127.0.0.1', $1, "
            "'lastmile', $2) RETURNING id", router.port, keyring.seal("pw", ROUTER_PURPOSE))
        nas_id = await add_nas(conn, coa_port=nas.port)
        await conn.execute("UPDATE nas SET router_id = $1 WHERE id = $2", router_id, nas_id)
        service_id = await add_service(conn, "dora", "pw", ipv4=ADDRESS, router_id=router_id)
        customer_id = await conn.fetchval("SELECT customer_id FROM services WHERE id = $1", service_id)

        radiusd = await start(db_url, tmp_path, radiusds, block_method=block_method)
        c = client(radiusd)
        reply = await send(c, accounting_request(c, "dora", "Start", "s-1", Framed_IP_Address=ADDRESS))
        assert reply.code == AccountingResponse
        env = {"LASTMILE_SECRETS__KEY_FILE": str(tmp_path / "secret.key"),
               "LASTMILE_MQTT__URL": f"mqtt://127.0.0.1:{mqtt_broker.port}"}
        provisiond = await asyncio.to_thread(start_daemon, Daemon, "provisiond", db_url, tmp_path, env)
        try:
            await within(lambda: any(q["name"] == "dora" for q in router.table("/queue/simple")), 5.0)
            assert listed(router) == []
            async with aiomqtt.Client("127.0.0.1", mqtt_broker.port, identifier="blocking-test") as mqtt:
                await mqtt.subscribe("lastmile/customer/#", qos=1)
                events: list[tuple[str, dict[str, object]]] = []

                async def collect() -> None:
                    async for message in mqtt.messages:
                        events.append((str(message.topic), json.loads(bytes(message.payload))))

                reader = asyncio.create_task(collect())
                await conn.execute("UPDATE customers SET status = 'blocked' WHERE id = $1", customer_id)
                took = await within(lambda: listed(router) == [ADDRESS], 1.0)
                await within(lambda: any(p.code == code for p in nas.received), 1.0)
                await within(lambda: ("lastmile/customer/blocked", customer_id) in [
                    (t, e["customer_id"]) for t, e in events], 1.0)
                assert took < 1.0

                await conn.execute("UPDATE customers SET status = 'active' WHERE id = $1", customer_id)
                await within(lambda: listed(router) == [], 1.0)
                await within(lambda: any(t == "lastmile/customer/unblocked" for t, _ in events), 1.0)
                reader.cancel()
            blocked = next(e for t, e in events if t == "lastmile/customer/blocked")
            assert blocked["previous"] == "active" and blocked["number"] == "N-dora"
            assert provisiond.metric("lastmile_provisiond_router_reachable", router="edge") == 1
            assert provisiond.metric("lastmile_provisiond_changes_total", router="edge", op="add") >= 2
        finally:
            assert provisiond.stop() == 0
        lines = [e for e in provisiond.logs() if e.get("level") in ("error", "warning")]
        assert lines == [], lines


async def test_dunning_blocks_and_a_payment_lets_the_customer_back_everywhere(
        conn: asyncpg.Connection, db_url: str, tmp_path: Path, nas: FakeNas, radiusds: list[Radiusd],
        mqtt_broker: Broker) -> None:
    """Issue 13: a blocked customer who pays is active again, and radiusd and provisiond see it:
    dunning blocks for an unpaid invoice, the payment (admin/payments/record.py) commits the
    unblock with it, the router's blocked list empties and the session is disconnected to log in
    again unblocked."""
    keyring = Keyring.load(SecretsSettings(key_file=str(tmp_path / "secret.key")), create=True)
    async with FakeRouter(user="lastmile", password="pw") as router:
        router_id = await conn.fetchval(
            "INSERT INTO routers (name, host, api_port, username, password) VALUES ('edge', '127.0.0.1', $1, "
            "'lastmile', $2) RETURNING id", router.port, keyring.seal("pw", ROUTER_PURPOSE))
        nas_id = await add_nas(conn, coa_port=nas.port)
        await conn.execute("UPDATE nas SET router_id = $1 WHERE id = $2", router_id, nas_id)
        service_id = await add_service(conn, "dora", "pw", ipv4=ADDRESS, router_id=router_id)
        customer_id = await conn.fetchval("SELECT customer_id FROM services WHERE id = $1", service_id)
        partner_id = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", customer_id)
        today = dt.datetime.now(dt.UTC).date()
        async with conn.transaction():
            await ledger.issue(conn, [ledger.NewDocument(
                kind="invoice", customer_id=customer_id, partner_id=partner_id, currency="EUR",
                issued_on=today - dt.timedelta(days=20), due_on=today - dt.timedelta(days=5), origin="manual",
                lines=(ledger.NewLine("Internet, October", Decimal("31.00")),))])

        radiusd = await start(db_url, tmp_path, radiusds, block_method="coa")
        c = client(radiusd)
        reply = await send(c, accounting_request(c, "dora", "Start", "s-1", Framed_IP_Address=ADDRESS))
        assert reply.code == AccountingResponse
        env = {"LASTMILE_SECRETS__KEY_FILE": str(tmp_path / "secret.key"),
               "LASTMILE_MQTT__URL": f"mqtt://127.0.0.1:{mqtt_broker.port}"}
        provisiond = await asyncio.to_thread(start_daemon, Daemon, "provisiond", db_url, tmp_path, env)
        try:
            await within(lambda: any(q["name"] == "dora" for q in router.table("/queue/simple")), 5.0)
            async with aiomqtt.Client("127.0.0.1", mqtt_broker.port, identifier="payment-test") as mqtt:
                await mqtt.subscribe("lastmile/customer/#", qos=1)
                topics: list[str] = []

                async def collect_topics() -> None:
                    async for message in mqtt.messages:
                        topics.append(str(message.topic))

                reader = asyncio.create_task(collect_topics())
                assert (await collect.run(conn, today)).actions == {"block": 1}
                await within(lambda: listed(router) == [ADDRESS], 1.0)
                await within(lambda: any(p.code == Code.COA_REQUEST for p in nas.received), 1.0)
                paid = await record.record(conn, record.NewPayment(customer_id, Decimal("31.00"), today, "cash"))
                assert paid.dunning == ("unblock",)
                assert await conn.fetchval("SELECT status FROM customers WHERE id = $1", customer_id) == "active"
                await within(lambda: listed(router) == [], 1.0)
                # an unblock disconnects (radiusd/coa.py): the new login gets the unblocked attributes
                await within(lambda: any(p.code == Code.DISCONNECT_REQUEST for p in nas.received), 1.0)
                await within(lambda: "lastmile/customer/unblocked" in topics, 1.0)
                reader.cancel()
        finally:
            assert provisiond.stop() == 0
