"""An aiohttp application on daemons.http, for the runtime tests: a slow route, a resource in
cleanup_ctx that logs when it opens and closes, and a periodic job (Runtime.every)."""

import asyncio
import sys
from collections.abc import AsyncIterator

from aiohttp import web

from daemons import config, http, log, runtime
from radiusd.settings import RadiusdSettings


async def main(rt: runtime.Runtime) -> None:
    logger = log.get("sample")

    async def resource(_: web.Application) -> AsyncIterator[None]:
        logger.info("resource opened")
        yield
        logger.info("resource closed")

    async def slow(_: web.Request) -> web.Response:
        logger.info("slow request started")
        await asyncio.sleep(1.0)
        return web.Response(text="done")

    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        ticks += 1
        if ticks == 2:
            raise OSError("the database is away")  # shrugged off: logged, tried again
        logger.info("tick", n=ticks)

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.cleanup_ctx.append(resource)
    port = int(sys.argv[1])
    await http.serve(rt, app, "127.0.0.1", port)
    rt.every("ticker", 0.1, tick)
    logger.info("serving", port=port)


if __name__ == "__main__":
    settings = config.load()
    sys.exit(runtime.run("sample", main, settings, settings.of(RadiusdSettings)))
