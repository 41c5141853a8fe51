"""MQTT events: ``lastmile/<subject>/<event>`` topics with JSON payloads.

``publish()`` never waits: it puts the event on a bounded queue (``queue_size``), and one task
keeps a connection to the broker, reconnecting with backoff, and sends the queue in order.
Publishes are pipelined: up to ``max_inflight`` events are on the wire waiting for their
acknowledgement at once, and whatever is queued when the sender wakes goes out in one write.
(One publish at a time, a round trip each, sustained only 1,800 events/s to amqtt and 3,500 to
mosquitto; see docs/benchmarks.md.) Events leave in queue order over one TCP connection, so
their order is kept, per topic and across topics. When the connection drops, events sent
but not acknowledged go again first after the reconnect, in their order (QoS 1 is at least
once: a subscriber may see such an event twice).

The MQTT packets come from :mod:`daemons.mqtt` (a sans-IO codec); this module is the thin
asyncio transport around it (why not aiomqtt here: that module's docstring).

Events are dropped, never waited for, because a daemon must not slow down or stop for its
event stream; ``lastmile_events_dropped_total{reason}`` says why:

* ``backlog``: the queue was full while connected (events come faster than the broker takes
  them: a slow or overloaded broker, or a ``queue_size`` too small for the bursts);
* ``broker_away``: the queue was full while not connected (the broker is down or unreachable,
  or the daemon has not connected yet);
* ``shutdown``: still queued or unacknowledged when the drain's time for events ran out;
* ``rejected``: the event cannot be sent at all (an invalid topic, too large a payload);
  sending it again would fail the same way.

With no broker URL configured, events are off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
import typing
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar
from urllib.parse import unquote, urlsplit

from prometheus_client import Counter, Gauge

from daemons import log, mqtt
from daemons.config import MqttSettings
from daemons.metrics import REGISTRY

PUBLISHED = Counter(
    "lastmile_events_published_total",
    "Events the MQTT broker acknowledged (sent, for QoS 0).",
    ["subject"],
    registry=REGISTRY,
)
DROPPED = Counter(
    "lastmile_events_dropped_total",
    "Events not sent: backlog (queue full while connected), broker_away (queue full while "
    "disconnected), shutdown, rejected (cannot be sent at all).",
    ["reason"],
    registry=REGISTRY,
)
DROP_REASONS = ("backlog", "broker_away", "shutdown", "rejected")
for _reason in DROP_REASONS:
    DROPPED.labels(_reason)  # every reason is exported from the start, at 0
QUEUED = Gauge(
    "lastmile_events_queued", "Events waiting for the broker: queued, or sent and not acknowledged.", registry=REGISTRY
)
CONNECTED = Gauge("lastmile_mqtt_connected", "1 while connected to the MQTT broker.", registry=REGISTRY)
_publishers: weakref.WeakSet[EventPublisher] = weakref.WeakSet()
QUEUED.set_function(lambda: sum(p.waiting for p in _publishers))  # read when scraped, not set per event

DROP_LOG_INTERVAL = 60.0  # seconds between two log lines about drops of one reason
KEEPALIVE = 30  # seconds (MQTT keep alive): a PINGREQ goes out every half of it
CONNECT_TIMEOUT = 5.0  # seconds for the TCP (and TLS) connection, and again for the CONNACK

Queued = tuple[str, bytes, bytes]  # (subject, topic, JSON body)


# -- the catalogue: every event lastmile publishes (docs/events.md is generated from it) -------------


class Event:
    """An event lastmile publishes, on ``<topic_prefix>/<subject>/<name>``: a frozen dataclass
    whose fields are its JSON payload (plus ``time``, when it was published, Unix seconds).
    Components publish only events of this catalogue, so integrators have one list to read."""

    subject: ClassVar[str]
    name: ClassVar[str]


CATALOGUE: list[type[Event]] = []
E = TypeVar("E", bound=type[Event])


def event(subject: str, name: str) -> Callable[[E], E]:
    """Class decorator: the event's topic, and its place in the catalogue."""

    def register(cls: E) -> E:
        cls.subject, cls.name = subject, name
        CATALOGUE.append(cls)
        return cls

    return register


def doc(text: str) -> Any:
    """A payload field with its documentation."""
    return field(metadata={"doc": text})


@event("session", "start")
@dataclass(frozen=True, slots=True)
class SessionStarted(Event):
    """A RADIUS session opened: radiusd committed the first record of it (its Accounting-Start, or
    an Interim-Update when the Start was lost)."""

    acct_unique_id: str = doc("the session's key (Acct-Unique-Session-Id, as FreeRADIUS derives it)")
    service_id: int | None = doc("the service whose login it is (null: an unknown login)")
    login: str = doc("User-Name")
    framed_ip: str | None = doc("the subscriber's IPv4 address (Framed-IP-Address), if any")
    started_at: str = doc("when it started, ISO 8601 UTC")
    nas_id: int | None = doc("the NAS that carries it (`lastmile/nas/restart` names it too)")


@event("session", "stop")
@dataclass(frozen=True, slots=True)
class SessionStopped(Event):
    """A RADIUS session ended: its Stop was committed, or it went stale (no update for 2 x
    interim_interval + stale_grace). Sessions closed because their NAS restarted get no event
    each: one `lastmile/nas/restart` stands for all of them."""

    acct_unique_id: str = doc("the session's key")
    service_id: int | None = doc("the service whose login it is (null: an unknown login)")
    login: str = doc("User-Name")
    framed_ip: str | None = doc("the subscriber's IPv4 address, if any")
    started_at: str = doc("when it started, ISO 8601 UTC")
    stopped_at: str = doc("when it ended, ISO 8601 UTC")
    nas_id: int | None = doc("the NAS that carried it")


@event("nas", "restart")
@dataclass(frozen=True, slots=True)
class NasRestarted(Event):
    """A NAS restarted (Accounting-On) or is going down (Accounting-Off): radiusd committed the
    record, and every session the NAS had open before `at` is closed (a BRAS reboot closes tens
    of thousands at once, which would flood the broker as one `session/stop` each)."""

    nas_id: int = doc("the NAS")
    nas: str = doc("its name")
    status: str = doc("`on` (it started again) or `off` (it is going down)")
    at: str = doc("when, ISO 8601 UTC (Event-Timestamp): sessions of this NAS that started before are over")
    sessions_closed: int = doc("how many sessions were still open and are now closed")


@event("session", "coa")
@dataclass(frozen=True, slots=True)
class CoaDone(Event):
    """radiusd carried a change to a service's live sessions (CoA-Request or Disconnect-Request)."""

    service_id: int = doc("the service")
    action: str = doc("`rate` (new speeds), `block`, `unblock` or `disconnect`")
    result: str = doc("per session `ack`, `nak:<Error-Cause>` or `timeout`, comma-separated; `no live session`")


@event("customer", "blocked")
@dataclass(frozen=True, slots=True)
class CustomerBlocked(Event):
    """A customer's status became `blocked` (billing or an operator). provisiond publishes it when
    it sees the change, as it puts the customer's addresses in the blocked address list; radiusd
    sends the live sessions a CoA or Disconnect (`session/coa`)."""

    customer_id: int = doc("the customer")
    number: str = doc("the customer's number")
    previous: str = doc("the status before (`active`, `new`, ...)")


@event("customer", "unblocked")
@dataclass(frozen=True, slots=True)
class CustomerUnblocked(Event):
    """A customer's status went from `blocked` to another (`active` after a payment, or `disabled`)."""

    customer_id: int = doc("the customer")
    number: str = doc("the customer's number")
    status: str = doc("the status now")


@event("cpe", "inform")
@dataclass(frozen=True, slots=True)
class CpeInformed(Event):
    """The ACS accepted a CPE's Inform: authenticated, its device row committed, the session open
    (PERIODIC ones too: one per device per PeriodicInformInterval)."""

    device: str = doc("the device's cwmp id (OUI-ProductClass-SerialNumber)")
    device_id: int = doc("acs_devices.id")
    events: tuple[str, ...] = doc('the Inform\'s event codes (`"2 PERIODIC"`, `"1 BOOT"`, ...)')
    address: str = doc("the address the Inform came from")
    software: str = doc("the device's software version, as the Inform says")


@event("cpe", "fault")
@dataclass(frozen=True, slots=True)
class CpeFault(Event):
    """The ACS recorded a fault of a device (a line of its faults): a CPE's SOAP Fault to a task's
    or a preset's RPC, a failed transfer, a preset value that could not be made."""

    device: str = doc("the device's cwmp id")
    code: int | None = doc("the fault code (9000-9032 from the CPE; null for one of the ACS's own)")
    message: str = doc("the fault string, or what went wrong")
    task_id: int | None = doc("the task it failed, if any")


@event("cpe", "task")
@dataclass(frozen=True, slots=True)
class CpeTaskChanged(Event):
    """A device's task moved on in a session: done, waiting for the CPE to report its end (Reboot,
    Download, Upload), an attempt faulted, or a transfer's end reported (TransferComplete)."""

    task_id: int | None = doc("the task (null: a transfer a preset started, see command_key)")
    device: str = doc("the device's cwmp id")
    status: str = doc("`done`, `waiting`, `faulted` (an attempt failed: it is retried later, or after its last "
                      "attempt ends as `fault`) or `fault` (a transfer failed)")
    command_key: str = doc("the CommandKey of a Reboot, Download or Upload (`task-<id>`, `preset-...`); else empty")


def describe() -> str:
    """Markdown reference of every event (docs/events.md is this text)."""
    lines = [
        "# Events",
        "",
        "<!-- generated from daemons/events.py; tests/unit/test_events_catalogue.py checks it -->",
        "",
        "lastmile publishes these on MQTT when `[mqtt] url` names a broker (`lastmile up` starts one),",
        "as JSON objects on `<topic_prefix>/<subject>/<name>` (`topic_prefix` is `lastmile`). Every",
        "payload also has `time`, when it was published (Unix seconds). Delivery is at least once",
        "(QoS 1 by default): an event sent just before a reconnect may arrive twice.",
        "Subscribe to all of them with `mosquitto_sub -t 'lastmile/#' -v`.",
        "",
        "The events of the outbox (customers, services, invoices and other documents, payments:",
        "`lastmile/customer/created`, `lastmile/invoice/created`, ...) go to MQTT too, as the worker",
        "dispatches them; their payloads are listed in [webhooks.md](webhooks.md).",
        "",
    ]
    for cls in CATALOGUE:
        lines += [f"## `lastmile/{cls.subject}/{cls.name}`", "", " ".join((cls.__doc__ or "").split()), "",
                  "| field | type | meaning |", "| --- | --- | --- |"]
        hints = typing.get_type_hints(cls)
        for f in fields(cls):  # type: ignore[arg-type]
            kind = str(hints[f.name]).replace("typing.", "").replace("<class '", "").replace("'>", "")
            lines.append(f"| `{f.name}` | {kind.replace(' | None', ' or null')} | {f.metadata['doc']} |")
        lines.append("")
    return "\n".join(lines)


class MqttError(Exception):
    """The broker cannot be reached, refused us, or the connection broke."""


class EventPublisher:
    """Bounded, reconnecting, pipelined MQTT publisher; ``run()`` is its task, ``close()`` its drain."""

    def __init__(self, settings: MqttSettings, client_id: str, url: str | None = None) -> None:
        self.settings = settings
        self.url = settings.url if url is None else url
        self.client_id = client_id
        self.connected = asyncio.Event()
        self.log = log.get("lastmile.events")
        self._queue: deque[Queued] = deque()
        # Sent on a connection that dropped before their acknowledgement: they go first on the next one.
        self._retry: deque[Queued] = deque()
        # Sent and not acknowledged yet, by packet id, in the order sent (dicts keep insertion order).
        self._inflight: dict[int, Queued] = {}
        self._next_id = 0
        self._wake = asyncio.Event()  # the sender has something to do: events, room, or a lost connection
        self._idle = asyncio.Event()  # set while nothing waits to be sent or acknowledged
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._drop_logged: dict[str, float] = {}
        _publishers.add(self)

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    @property
    def queued(self) -> int:
        """Events waiting in the queue (not sent yet)."""
        return len(self._queue)

    @property
    def waiting(self) -> int:
        """Events not acknowledged yet: queued, waiting to go again, or sent."""
        return len(self._queue) + len(self._retry) + len(self._inflight)

    def publish(self, event: Event) -> None:
        """Queue ``event`` for ``<prefix>/<subject>/<name>``; never blocks."""
        self.publish_payload(event.subject, event.name,
                             {f.name: getattr(event, f.name) for f in fields(event)})  # type: ignore[arg-type]

    def publish_payload(self, subject: str, name: str, payload: dict[str, Any]) -> None:
        """Queue a JSON object for ``<prefix>/<subject>/<name>``; never blocks. For the events of the
        outbox (admin/notifications/dispatch.py), whose payloads the database writes (their
        catalogue: docs/webhooks.md); a daemon's own events are catalogue classes (``publish``)."""
        if not self.enabled:
            return
        if len(self._queue) >= self.settings.queue_size:
            self._drop("backlog" if self.connected.is_set() else "broker_away")
            return
        body = json.dumps({"time": time.time(), **payload}, default=str, separators=(",", ":")).encode()
        self._queue.append((subject, f"{self.settings.topic_prefix}/{subject}/{name}".encode(), body))
        self._idle.clear()
        if not self._wake.is_set():
            self._wake.set()

    def _drop(self, reason: str, count: int = 1, **context: object) -> None:
        DROPPED.labels(reason).inc(count)
        now = time.monotonic()
        if now - self._drop_logged.get(reason, -DROP_LOG_INTERVAL) >= DROP_LOG_INTERVAL:
            self._drop_logged[reason] = now
            self.log.warning(
                "events dropped", reason=reason, count=count, queue_size=self.settings.queue_size,
                connected=self.connected.is_set(), next_log_s=DROP_LOG_INTERVAL, **context,
            )

    def start(self) -> None:
        """Run the publisher in the background until ``close()``."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name="mqtt-events")

    async def run(self) -> None:
        """Connect, send, reconnect; until cancelled."""
        if not self.enabled:
            return
        delay = 0.2
        while True:
            connection: _Connection | None = None
            try:
                connection = await self._connect()
                CONNECTED.set(1)
                self.connected.set()
                self.log.info("mqtt connected", broker=_redact(self.url), resending=len(self._retry))
                delay = 0.2
                await self._serve(connection)
            except MqttError as e:
                self.log.warning("mqtt unavailable", error=str(e), retry_s=delay)
            finally:
                CONNECTED.set(0)
                self.connected.clear()
                if connection is not None:
                    connection.close()
                # Unacknowledged events go again, first and in order, on the next connection.
                self._retry.extendleft(reversed(self._inflight.values()))
                self._inflight.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _connect(self) -> _Connection:
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, not {parts.scheme}://")
        tls = parts.scheme == "mqtts"
        host, port = parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883)
        loop = asyncio.get_running_loop()
        connection = _Connection(self)
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: connection, host, port, ssl=ssl.create_default_context() if tls else None
                ),
                CONNECT_TIMEOUT,
            )
        except TimeoutError:
            raise MqttError(f"cannot connect to {host}:{port}: timed out") from None
        except OSError as e:
            raise MqttError(f"cannot connect to {host}:{port}: {e.strerror or e}") from None
        connection.write(
            mqtt.encode_connect(
                self.client_id,
                keepalive=KEEPALIVE,
                username=unquote(parts.username) if parts.username else None,
                password=unquote(parts.password) if parts.password else None,
            )
        )
        try:
            body = await asyncio.wait_for(asyncio.shield(connection.connack), CONNECT_TIMEOUT)
        except TimeoutError:
            connection.close()
            raise MqttError(f"no CONNACK from {host}:{port} in {CONNECT_TIMEOUT:g} s") from None
        if body is None:
            raise MqttError(f"{host}:{port} closed the connection before its CONNACK: {connection.lost_reason}")
        refused = mqtt.connack_error(body)
        if refused:
            connection.close()
            raise MqttError(f"{host}:{port} refused the connection: {refused}")
        return connection

    async def _serve(self, connection: _Connection) -> None:
        """Send until the connection drops; raises MqttError then."""
        pinger = asyncio.ensure_future(self._keepalive(connection))
        try:
            await self._send(connection)
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger

    async def _send(self, connection: _Connection) -> None:
        """Write events in queue order, at most ``max_inflight`` unacknowledged, each wake-up's in one write."""
        qos = self.settings.qos
        window = self.settings.max_inflight
        queue, retry, inflight = self._queue, self._retry, self._inflight
        while True:
            if connection.lost_reason is not None:
                raise MqttError(f"connection lost: {connection.lost_reason}")
            room = window - len(inflight)  # QoS 0: nothing waits for an answer, `window` per write
            if room <= 0 or (not queue and not retry) or connection.paused:
                self._wake.clear()
                await self._wake.wait()
                continue
            packets: list[bytes] = []
            sent: dict[str, int] = {}
            while room > 0 and (retry or queue):
                event = retry.popleft() if retry else queue.popleft()
                subject, topic, body = event
                pid = self._packet_id() if qos else 0
                try:
                    packets.append(mqtt.encode_publish(topic, body, qos, pid))
                except ValueError as e:
                    self._drop("rejected", topic=topic.decode(errors="replace"), error=str(e))
                    continue
                room -= 1
                if qos:
                    inflight[pid] = event
                else:
                    sent[subject] = sent.get(subject, 0) + 1
            connection.write(b"".join(packets))
            for subject, n in sent.items():
                PUBLISHED.labels(subject).inc(n)
            self._check_idle()
            if not qos:
                await asyncio.sleep(0)  # a long queue goes out in slices, the daemon's loop runs between them

    def _packet_id(self) -> int:
        """The next packet id (1-65535) not in flight."""
        while True:
            self._next_id = self._next_id % 0xFFFF + 1
            if self._next_id not in self._inflight:
                return self._next_id

    def _acknowledged(self, ids: list[int]) -> None:
        """The broker acknowledged these packets (PUBACK, or PUBCOMP for QoS 2)."""
        done: dict[str, int] = {}
        for pid in ids:
            event = self._inflight.pop(pid, None)
            if event is not None:  # else an answer to a packet of an earlier connection
                done[event[0]] = done.get(event[0], 0) + 1
        for subject, n in done.items():
            PUBLISHED.labels(subject).inc(n)
        self._check_idle()
        if not self._wake.is_set():
            self._wake.set()

    def _check_idle(self) -> None:
        if not self._inflight and not self._retry and not self._queue:
            self._idle.set()

    async def _keepalive(self, connection: _Connection) -> None:
        """PINGREQ every half keep-alive; a broker silent for a whole keep-alive after one is gone."""
        while True:
            await asyncio.sleep(KEEPALIVE / 2)
            if time.monotonic() - connection.last_heard > KEEPALIVE:
                connection.close(f"no answer from the broker for {KEEPALIVE} s")
                return
            connection.write(mqtt.PINGREQ)

    async def close(self, timeout: float = 2.0) -> None:
        """Drain step: give queued events ``timeout`` seconds to go out, then stop."""
        if self.connected.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        left = self.waiting
        if left:
            self._drop("shutdown", left)
        self._queue.clear()
        self._retry.clear()
        self._inflight.clear()
        self._idle.set()


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection to the broker: bytes in and out, acknowledgements to the publisher."""

    def __init__(self, publisher: EventPublisher) -> None:
        self.publisher = publisher
        self.reader = mqtt.Reader()
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self.lost_reason: str | None = None
        self.paused = False
        self.last_heard = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's is no subclass of it

    def write(self, data: bytes) -> None:
        if self.transport is not None and self.lost_reason is None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.last_heard = time.monotonic()
        try:
            packets = self.reader.feed(data)
            acked: list[int] = []
            for kind, _, body in packets:
                if kind is mqtt.PacketType.PUBACK or kind is mqtt.PacketType.PUBCOMP:
                    acked.append(mqtt.packet_id(body))
                elif kind is mqtt.PacketType.PUBREC:
                    self.write(mqtt.encode_pubrel(mqtt.packet_id(body)))
                elif kind is mqtt.PacketType.CONNACK and not self.connack.done():
                    self.connack.set_result(body)
                # PINGRESP only tells that the broker is there (last_heard); nothing else is expected.
        except mqtt.ProtocolError as e:
            self.close(f"broker sent a malformed packet: {e}")
            return
        if acked:
            self.publisher._acknowledged(acked)

    def pause_writing(self) -> None:
        self.paused = True  # the broker reads slower than we write (QoS 0): the sender waits

    def resume_writing(self) -> None:
        self.paused = False
        self.publisher._wake.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost_reason is None:
            self.lost_reason = str(exc) if exc else "closed by the broker"
        if not self.connack.done():
            self.connack.set_result(None)
        self.publisher._wake.set()

    def close(self, reason: str = "closed by us") -> None:
        """Say goodbye (DISCONNECT) and close; the sender notices through ``lost_reason``."""
        if self.lost_reason is None and self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.write(mqtt.DISCONNECT)
        if self.lost_reason is None:
            self.lost_reason = reason
        if self.transport is not None:
            self.transport.close()
        self.publisher._wake.set()


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return url.replace(f":{parts.password}@", ":***@") if parts.password else url
