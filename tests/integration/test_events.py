"""daemons.events against a real MQTT broker (amqtt, what `lastmile up` embeds) and a wire-level
fake one: delivery, a burst, outage, overflow by reason, reconnect, the in-flight window."""

import asyncio
import json
import struct
from dataclasses import dataclass

import aiomqtt
import pytest

from daemons import events, mqtt
from daemons.config import MqttSettings
from daemons.metrics import REGISTRY
from tests.conftest import free_port
from tests.integration.conftest import Broker, cancel, eventually


@dataclass(frozen=True, slots=True)
class Numbered(events.Event):
    """A test event of its own topic (not in the catalogue): the transport does not care."""

    n: int
    subject = "cpe"
    name = "inform"


@dataclass(frozen=True, slots=True)
class Wildcard(Numbered):
    name = "inform+"  # '+' is a wildcard: no topic name may hold it


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("lastmile_events_dropped_total", {"reason": reason}) or 0.0


async def subscribe(
    broker: Broker, got: list[tuple[str, dict[str, object]]], qos: int = 1
) -> asyncio.Task[None]:
    ready = asyncio.Event()

    async def run() -> None:
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="test-subscriber") as client:
            await client.subscribe("lastmile/#", qos=qos)
            ready.set()
            async for message in client.messages:
                got.append((str(message.topic), json.loads(bytes(message.payload))))

    task = asyncio.create_task(run())
    await asyncio.wait_for(ready.wait(), 5)
    return task


async def test_events_reach_a_subscriber(mqtt_broker: Broker) -> None:
    got: list[tuple[str, dict[str, object]]] = []
    sub = await subscribe(mqtt_broker, got)
    publisher = events.EventPublisher(MqttSettings(url=mqtt_broker.url), "test")
    publisher.start()
    try:
        publisher.publish(events.SessionStarted("u1", 7, "ann", "100.64.0.9", "2026-12-01T10:00:00+00:00", 3))
        publisher.publish(events.CoaDone(7, "block", "ack"))
        await eventually(lambda: len(got) == 2)
        assert got[0][0] == "lastmile/session/start" and got[0][1]["login"] == "ann"
        assert got[0][1]["framed_ip"] == "100.64.0.9" and got[0][1]["service_id"] == 7
        assert got[1][0] == "lastmile/session/coa" and got[1][1]["action"] == "block"
        assert isinstance(got[0][1]["time"], float)
    finally:
        await publisher.close()
        await cancel(sub)


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_every_qos_delivers_in_order_and_settles(mqtt_broker: Broker, qos: int) -> None:
    """QoS 0 (nothing acknowledged), 1 (PUBACK), 2 (PUBREC, PUBREL, PUBCOMP)."""
    got: list[tuple[str, dict[str, object]]] = []
    sub = await subscribe(mqtt_broker, got)
    publisher = events.EventPublisher(MqttSettings(url=mqtt_broker.url, qos=qos, max_inflight=8), "test-qos")
    publisher.start()
    try:
        await asyncio.wait_for(publisher.connected.wait(), 5)
        for n in range(50):
            publisher.publish(Numbered(n))
        await eventually(lambda: len(got) == 50, timeout=15)
        assert [m[1]["n"] for m in got] == list(range(50))
        await eventually(lambda: publisher.waiting == 0)
    finally:
        await publisher.close()
        await cancel(sub)


async def test_a_burst_with_the_default_queue_reaches_the_broker_without_drops(mqtt_broker: Broker) -> None:
    """20,000 events at once, as a radiusd at its peak makes in a second or two: none dropped while
    connected, every one acknowledged and delivered, in order."""
    got: list[tuple[str, dict[str, object]]] = []
    sub = await subscribe(mqtt_broker, got, qos=0)
    publisher = events.EventPublisher(MqttSettings(url=mqtt_broker.url), "test-burst")
    publisher.start()
    before = {reason: dropped(reason) for reason in events.DROP_REASONS}
    published = events.PUBLISHED.labels("cpe")._value.get()
    try:
        await asyncio.wait_for(publisher.connected.wait(), 5)
        for n in range(20_000):
            publisher.publish(Numbered(n))
        assert {reason: dropped(reason) - before[reason] for reason in events.DROP_REASONS} == dict.fromkeys(
            events.DROP_REASONS, 0
        )
        await eventually(lambda: len(got) == 20_000, timeout=90)
        assert [m[1]["n"] for m in got] == list(range(20_000))
        assert events.PUBLISHED.labels("cpe")._value.get() - published == 20_000
        assert publisher.connected.is_set()
    finally:
        await publisher.close()
        await cancel(sub)


async def test_a_full_queue_while_connected_is_backlog(mqtt_broker: Broker) -> None:
    publisher = events.EventPublisher(MqttSettings(url=mqtt_broker.url, queue_size=5), "test")
    publisher.start()
    try:
        await asyncio.wait_for(publisher.connected.wait(), 5)
        before = dropped("backlog"), dropped("broker_away")
        for i in range(8):  # no await in between: the sender has no chance to take any
            publisher.publish(Numbered(i))
        assert (dropped("backlog") - before[0], dropped("broker_away") - before[1]) == (3, 0)
    finally:
        await publisher.close()


async def test_outage_queues_overflow_drops_and_reconnect_delivers(mqtt_broker: Broker) -> None:
    publisher = events.EventPublisher(MqttSettings(url=mqtt_broker.url, queue_size=5), "test")
    publisher.start()
    await asyncio.wait_for(publisher.connected.wait(), 5)
    await mqtt_broker.stop()
    await eventually(lambda: not publisher.connected.is_set())
    before = dropped("broker_away"), dropped("backlog")
    for i in range(8):  # 5 fit, 3 are dropped and counted; publish never blocks
        publisher.publish(Numbered(i))
    assert (dropped("broker_away") - before[0], dropped("backlog") - before[1]) == (3, 0)
    await mqtt_broker.start()
    got: list[tuple[str, dict[str, object]]] = []
    sub = await subscribe(mqtt_broker, got)
    try:
        await eventually(lambda: len(got) == 5, timeout=15)
        assert [m[1]["n"] for m in got] == [0, 1, 2, 3, 4]  # in order, none lost
    finally:
        await publisher.close()
        await cancel(sub)


async def test_events_left_at_shutdown_are_counted(mqtt_broker: Broker) -> None:
    publisher = events.EventPublisher(MqttSettings(url=mqtt_broker.url), "test")
    publisher.start()
    await asyncio.wait_for(publisher.connected.wait(), 5)
    await mqtt_broker.stop()
    await eventually(lambda: not publisher.connected.is_set())
    before = dropped("shutdown")
    for i in range(4):
        publisher.publish(Numbered(i))
    await publisher.close(timeout=0.1)
    assert dropped("shutdown") - before == 4
    assert publisher.waiting == 0


async def test_an_event_that_cannot_be_sent_is_rejected_and_the_rest_go_on(mqtt_broker: Broker) -> None:
    got: list[tuple[str, dict[str, object]]] = []
    sub = await subscribe(mqtt_broker, got)
    publisher = events.EventPublisher(MqttSettings(url=mqtt_broker.url), "test")
    publisher.start()
    before = dropped("rejected")
    try:
        publisher.publish(Wildcard(1))  # '+' is a wildcard: no topic name may hold it
        publisher.publish(Numbered(2))
        await eventually(lambda: len(got) == 1)
        assert got[0][1]["n"] == 2
        assert dropped("rejected") - before == 1
        assert publisher.connected.is_set()
    finally:
        await publisher.close()
        await cancel(sub)


async def test_disabled_without_a_broker_url() -> None:
    publisher = events.EventPublisher(MqttSettings(url=""), "test")
    assert not publisher.enabled
    publisher.publish(Numbered(0))
    assert publisher.queued == 0
    await publisher.run()  # returns at once


class SilentBroker:
    """A wire-level broker: accepts the CONNECT, records every PUBLISH; acknowledges nothing on
    the first connection (and closes it when told), everything on later ones."""

    def __init__(self) -> None:
        self.port = free_port()
        self.connections: list[list[tuple[str, int]]] = []  # per connection: (topic, n) of each PUBLISH
        self.drop_first = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.connections)
        got: list[tuple[str, int]] = []
        self.connections.append(got)
        parser = mqtt.Reader()
        closer = asyncio.ensure_future(self.drop_first.wait()) if index == 0 else None
        try:
            while True:
                read = asyncio.ensure_future(reader.read(65536))
                waiting = {read} | ({closer} if closer else set())
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if closer in done:
                    read.cancel()
                    return
                data = read.result()
                if not data:
                    return
                for kind, flags, body in parser.feed(data):
                    if kind is mqtt.PacketType.CONNECT:
                        writer.write(b"\x20\x02\x00\x00")
                    elif kind is mqtt.PacketType.PUBLISH:
                        (size,) = struct.unpack("!H", body[:2])
                        topic = body[2 : 2 + size].decode()
                        pid = struct.unpack("!H", body[2 + size : 4 + size])[0] if flags & 0x06 else 0
                        got.append((topic, int(json.loads(body[4 + size :])["n"])))
                        if index > 0 and pid:
                            writer.write(b"\x40\x02" + struct.pack("!H", pid))
                    elif kind is mqtt.PacketType.PINGREQ:
                        writer.write(b"\xd0\x00")
        finally:
            if closer:
                closer.cancel()
            writer.close()


async def test_window_bounds_unacknowledged_events_and_they_go_again_in_order_after_a_drop() -> None:
    broker = SilentBroker()
    await broker.start()
    publisher = events.EventPublisher(MqttSettings(url=f"mqtt://127.0.0.1:{broker.port}", max_inflight=4), "test")
    publisher.start()
    try:
        await asyncio.wait_for(publisher.connected.wait(), 5)
        for n in range(10):
            publisher.publish(Numbered(n))
        await eventually(lambda: len(broker.connections[0]) == 4)
        await asyncio.sleep(0.3)  # no acknowledgement: nothing more may come
        assert [n for _, n in broker.connections[0]] == [0, 1, 2, 3]
        assert publisher.waiting == 10
        broker.drop_first.set()  # the connection breaks with 4 events unacknowledged
        await eventually(lambda: len(broker.connections) == 2 and len(broker.connections[1]) == 10, timeout=10)
        assert [n for _, n in broker.connections[1]] == list(range(10))  # the 4 first, then the rest, in order
        await eventually(lambda: publisher.waiting == 0)
    finally:
        await publisher.close()
        await broker.stop()
