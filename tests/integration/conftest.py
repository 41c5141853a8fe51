"""Fixtures that run real peers: an MQTT broker (amqtt, what `lastmile up` embeds)."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.conftest import free_port


class Broker:
    """An amqtt broker on 127.0.0.1 that a test can stop and start again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"mqtt://127.0.0.1:{port}"
        self._broker: object | None = None

    async def start(self) -> None:
        from amqtt.broker import Broker as AmqttBroker

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        broker = AmqttBroker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
            }
        )
        await broker.start()
        self._broker = broker

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()  # type: ignore[attr-defined]
            self._broker = None


@pytest.fixture
async def mqtt_broker() -> AsyncIterator[Broker]:
    broker = Broker(free_port())
    await broker.start()
    yield broker
    await broker.stop()


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def cancel(task: asyncio.Task[object]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


Waiter = Callable[[], Awaitable[None]]
