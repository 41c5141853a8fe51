"""An aiohttp application served under the runtime: ready once bound, drained in order.

``await serve(rt, app, bind, port)`` sets the application up (its ``on_startup`` and the first
half of every ``cleanup_ctx``: the pool it owns is opened there), binds the site, and registers
the drain. The daemon is ready (``READY=1``) when its ``main`` returns, so after the port is
bound. On SIGTERM, in this order and within the runtime's one ``drain_timeout``:

1. the listening socket closes: no new connection is accepted;
2. requests in flight finish (keep-alive connections close after their current request);
   whatever is still running at ``shutdown`` seconds (most of the drain's time) is cancelled;
3. the application's cleanup runs: the second half of each ``cleanup_ctx`` in reverse order
   (the pool opened first is closed last).

The admin app (with its portal and API) and the ACS run on this; the ``/metrics`` listener of
every daemon is one too (:func:`daemons.metrics.app`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from daemons.runtime import Runtime

SHUTDOWN_SHARE = 0.7
"""Of the drain's time, what requests in flight get before they are cancelled: the rest is
for the application's cleanup (closing its pool) and the steps after it."""


async def serve(rt: Runtime, app: web.Application, bind: str, port: int, *, name: str = "http",
                access_log: logging.Logger | None = None) -> web.AppRunner:
    """Serve ``app`` on (bind, port) until the drain; returns the runner (its ``addresses``).
    ``access_log``: a logger for one line per request (none by default)."""
    runner = web.AppRunner(app, handle_signals=False, access_log=access_log,
                           shutdown_timeout=rt.drain_timeout * SHUTDOWN_SHARE)
    await runner.setup()
    try:
        site = web.TCPSite(runner, bind, port, reuse_address=True)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    rt.on_drain(name, runner.cleanup)
    return runner
