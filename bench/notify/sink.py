#!/usr/bin/env python3
"""The receiving end of bench/notify, in a process of its own so that it does not share the
measured side's event loop or core: an SMTP server (aiosmtpd) that counts what it accepts, and an
HTTP server (aiohttp) that answers every webhook POST with 204 and counts it.

    sink.py smtp PORT    |    sink.py http PORT

It prints ``ready`` once listening and, on SIGTERM, the count it accepted (``accepted N``).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session


class Counter:
    def __init__(self) -> None:
        self.accepted = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.accepted += 1
        return "250 2.0.0 Ok: queued"


async def serve(kind: str, port: int) -> int:
    counter = Counter()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if kind == "smtp":
        server: Any = await loop.create_server(lambda: SMTP(counter, hostname="sink", ident="bench sink"),
                                               "127.0.0.1", port)
    else:
        async def hook(request: web.Request) -> web.Response:
            await request.read()
            counter.accepted += 1
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        server = runner
    print("ready", flush=True)
    await stop.wait()
    if kind == "smtp":
        server.close()
    else:
        await server.cleanup()
    return counter.accepted


def main() -> int:
    kind, port = sys.argv[1], int(sys.argv[2])
    accepted = asyncio.run(serve(kind, port))
    print(f"accepted {accepted}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
