"""A daemon built on daemons.runtime, for the runtime tests: three resources with logged drains.

Flags: --slow (a drain step that never ends, and ignores its cancellation as a query on a
hung PostgreSQL does), --crash (a background task that fails),
--fail-start (main raises before ready).
"""

import asyncio
import sys

from daemons import config, log, runtime
from radiusd.settings import RadiusdSettings


async def main(rt: runtime.Runtime) -> None:
    logger = log.get("sample")
    if "--fail-start" in sys.argv:
        raise OSError("cannot bind 127.0.0.1:1812: address in use")
    for name in ("pool", "listener", "worker"):

        async def close(name: str = name) -> None:
            await asyncio.sleep(0.05)
            logger.info("closed", resource=name)

        def abort(name: str = name) -> None:
            logger.info("aborted", resource=name)

        rt.on_drain(name, close, abort)
    if "--slow" in sys.argv:

        async def stuck() -> None:
            while True:
                try:
                    await asyncio.sleep(60)
                except asyncio.CancelledError:
                    continue

        rt.on_drain("slow", stuck)
    if "--crash" in sys.argv:

        async def crash() -> None:
            await asyncio.sleep(0.2)
            raise RuntimeError("boom")

        rt.spawn("crasher", crash())


if __name__ == "__main__":
    settings = config.load()
    sys.exit(runtime.run("sample", main, settings, settings.of(RadiusdSettings)))
