"""MQTT events: ``lastmile/<subject>/<event>`` topics with JSON payloads.

``publish()`` never waits: it puts the event on a bounded queue, and one task keeps a
connection to the broker, reconnecting with backoff, and sends the queue in order. While the
broker is away the queue holds ``queue_size`` events; past that new events are dropped and
counted (``lastmile_events_dropped_total{reason="queue_full"}``), because a daemon must
not slow down or stop for its event stream. With no broker URL configured, events are off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
from prometheus_client import Counter, Gauge

from daemons import log
from daemons.config import MqttSettings
from daemons.metrics import REGISTRY

PUBLISHED = Counter(
    "lastmile_events_published_total", "Events sent to the MQTT broker.", ["subject"], registry=REGISTRY
)
DROPPED = Counter(
    "lastmile_events_dropped_total", "Events not sent, by reason.", ["reason"], registry=REGISTRY
)
QUEUED = Gauge("lastmile_events_queued", "Events waiting for the broker.", registry=REGISTRY)
CONNECTED = Gauge("lastmile_mqtt_connected", "1 while connected to the MQTT broker.", registry=REGISTRY)


class EventPublisher:
    """Bounded, reconnecting MQTT publisher; ``run()`` is its task, ``close()`` its drain."""

    def __init__(self, settings: MqttSettings, client_id: str, url: str | None = None) -> None:
        self.settings = settings
        self.url = settings.url if url is None else url
        self.client_id = client_id
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(settings.queue_size)
        self.connected = asyncio.Event()
        self.log = log.get("lastmile.events")
        self._pending: tuple[str, bytes] | None = None
        self._idle = asyncio.Event()  # set while nothing waits to be sent
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def publish(self, subject: str, event: str, payload: dict[str, Any]) -> None:
        """Queue ``payload`` for ``<prefix>/<subject>/<event>``; never blocks."""
        if not self.enabled:
            return
        body = json.dumps({"time": time.time(), **payload}, default=str, separators=(",", ":")).encode()
        try:
            self.queue.put_nowait((f"{self.settings.topic_prefix}/{subject}/{event}", body))
        except asyncio.QueueFull:
            DROPPED.labels("queue_full").inc()
            return
        self._idle.clear()
        QUEUED.set(self.queue.qsize())

    def start(self) -> None:
        """Run the publisher in the background until ``close()``."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name="mqtt-events")

    async def run(self) -> None:
        """Connect, send, reconnect; until cancelled."""
        if not self.enabled:
            return
        delay = 0.2
        while True:
            try:
                async with self._client() as client:
                    CONNECTED.set(1)
                    self.connected.set()
                    self.log.info("mqtt connected", broker=_redact(self.url))
                    delay = 0.2
                    await self._serve(client)
            except aiomqtt.MqttError as e:
                self.log.warning("mqtt unavailable", error=str(e), retry_s=delay)
            finally:
                CONNECTED.set(0)
                self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Send until the connection drops. A drop is noticed while idle too: the (empty)
        message stream raises when the connection goes, so the outage shows at once."""
        send = asyncio.ensure_future(self._send_loop(client))
        watch = asyncio.ensure_future(self._watch(client))
        try:
            done, _ = await asyncio.wait({send, watch}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in (send, watch):
                task.cancel()
            await asyncio.gather(send, watch, return_exceptions=True)

    @staticmethod
    async def _watch(client: aiomqtt.Client) -> None:
        async for _ in client.messages:
            pass
        raise aiomqtt.MqttError("disconnected")

    async def _send_loop(self, client: aiomqtt.Client) -> None:
        while True:
            if self._pending is None:
                self._pending = await self.queue.get()
            topic, body = self._pending
            await client.publish(topic, body, qos=self.settings.qos)
            self._pending = None
            QUEUED.set(self.queue.qsize())
            if self.queue.empty():
                self._idle.set()
            PUBLISHED.labels(topic.split("/")[1]).inc()

    async def close(self, timeout: float = 2.0) -> None:
        """Drain step: give queued events ``timeout`` seconds to go out, then stop."""
        if self.connected.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout)
        left = self.queue.qsize() + (1 if self._pending else 0)
        if left:
            DROPPED.labels("shutdown").inc(left)
            self.log.warning("events not sent at shutdown", count=left)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _client(self) -> aiomqtt.Client:
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, not {parts.scheme}://")
        tls = parts.scheme == "mqtts"
        return aiomqtt.Client(
            parts.hostname or "127.0.0.1",
            parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            identifier=self.client_id,
            tls_context=ssl.create_default_context() if tls else None,
            timeout=5,
        )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return url.replace(f":{parts.password}@", ":***@") if parts.password else url
