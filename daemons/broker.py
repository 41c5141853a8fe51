"""The embedded MQTT broker `lastmile up` starts when no broker is configured (amqtt).

For a laptop and the tests: anonymous, on 127.0.0.1 only. Production uses a real broker
(mosquitto, EMQX) named by ``[mqtt] url``.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from daemons import log


async def serve(port: int, bind: str = "127.0.0.1") -> None:
    """Run the broker until SIGTERM or SIGINT."""
    from amqtt.broker import Broker

    # amqtt and its state machine log every transition and connection at INFO.
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"{bind}:{port}", "max_connections": 200}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await broker.start()
    log.get("lastmile.broker").info("mqtt broker listening", url=f"mqtt://{bind}:{port}")
    await stop.wait()
    await broker.shutdown()
