"""A token bucket per (partner, channel): at most ``per_minute`` messages a minute on average,
with a burst of one second's worth (at least one), so that a provider's per-minute limit is
kept without sending a whole minute's allowance in the first second.

Pure: the clock is injected (``time.monotonic`` unless told) and :meth:`RateLimit.delay` only
reserves a slot and says how long to wait for it; :meth:`RateLimit.wait` is the asyncio sleep on
that. Reservations queue: ten callers at once get delays 0, 1/r, 2/r, ... beyond the burst.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable


class RateLimit:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic, *,
                 burst: int | None = None) -> None:
        if per_minute <= 0:
            raise ValueError(f"a rate limit is a positive number of messages a minute, not {per_minute}")
        if burst is not None and burst <= 0:
            raise ValueError(f"a burst is a positive number of messages, not {burst}")
        self.per_minute = per_minute
        self.capacity = float(burst if burst is not None else max(1, per_minute // 60))
        self._rate = per_minute / 60.0  # tokens a second
        self._clock = clock
        self._tokens = self.capacity
        self._last = clock()

    def delay(self) -> float:
        """Take the next slot: the seconds to wait before sending (0.0: now)."""
        now = self._clock()
        elapsed = max(0.0, now - self._last)  # a clock that steps back adds nothing
        self._last = now
        self._tokens = min(self.capacity, self._tokens + elapsed * self._rate) - 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate

    async def wait(self) -> None:
        """Sleep until the next slot is ours."""
        pause = self.delay()
        if pause > 0:
            await asyncio.sleep(pause)


class RateLimits:
    """The buckets of a delivery loop, one per key (``(partner_id, channel)``); a key whose
    ``per_minute`` changed (the settings were edited) gets a new bucket."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[Hashable, RateLimit] = {}

    def get(self, key: Hashable, per_minute: int) -> RateLimit:
        bucket = self._buckets.get(key)
        if bucket is None or bucket.per_minute != per_minute:
            bucket = self._buckets[key] = RateLimit(per_minute, self._clock)
        return bucket
