"""daemons.events against a real MQTT broker: delivery, outage, overflow, reconnect."""

import asyncio
import json

import aiomqtt

from daemons import events
from daemons.config import MqttSettings
from tests.integration.conftest import Broker, cancel, eventually


async def subscribe(broker: Broker, got: list[tuple[str, dict[str, object]]]) -> asyncio.Task[None]:
    ready = asyncio.Event()

    async def run() -> None:
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="test-subscriber") as client:
            await client.subscribe("lastmile/#", qos=1)
            ready.set()
            async for message in client.messages:
                got.append((str(message.topic), json.loads(bytes(message.payload))))  # type: ignore[arg-type]

    task = asyncio.create_task(run())
    await asyncio.wait_for(ready.wait(), 5)
    return task


async def test_events_reach_a_subscriber(mqtt_broker: Broker) -> None:
    got: list[tuple[str, dict[str, object]]] = []
    sub = await subscribe(mqtt_broker, got)
    publisher = events.EventPublisher(MqttSettings(url=mqtt_broker.url), "test")
    publisher.start()
    try:
        publisher.publish("session", "start", {"login": "ann", "framed_ip": "100.64.0.9"})
        publisher.publish("customer", "blocked", {"customer_id": 7})
        await eventually(lambda: len(got) == 2)
        assert got[0][0] == "lastmile/session/start" and got[0][1]["login"] == "ann"
        assert got[1][0] == "lastmile/customer/blocked" and got[1][1]["customer_id"] == 7
        assert isinstance(got[0][1]["time"], float)
    finally:
        await publisher.close()
        await cancel(sub)


async def test_outage_queues_overflow_drops_and_reconnect_delivers(mqtt_broker: Broker) -> None:
    publisher = events.EventPublisher(MqttSettings(url=mqtt_broker.url, queue_size=5), "test")
    publisher.start()
    await asyncio.wait_for(publisher.connected.wait(), 5)
    await mqtt_broker.stop()
    await eventually(lambda: not publisher.connected.is_set())
    dropped_before = events.DROPPED.labels("queue_full")._value.get()
    for i in range(8):  # 5 fit, 3 are dropped and counted; publish never blocks
        publisher.publish("cpe", "inform", {"n": i})
    assert events.DROPPED.labels("queue_full")._value.get() - dropped_before == 3
    await mqtt_broker.start()
    got: list[tuple[str, dict[str, object]]] = []
    sub = await subscribe(mqtt_broker, got)
    try:
        await eventually(lambda: len(got) == 5, timeout=15)
        assert [m[1]["n"] for m in got] == [0, 1, 2, 3, 4]  # in order, none lost
    finally:
        await publisher.close()
        await cancel(sub)


async def test_disabled_without_a_broker_url() -> None:
    publisher = events.EventPublisher(MqttSettings(url=""), "test")
    assert not publisher.enabled
    publisher.publish("session", "start", {})
    assert publisher.queue.empty()
    await publisher.run()  # returns at once
