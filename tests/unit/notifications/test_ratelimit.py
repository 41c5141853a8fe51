"""The token bucket of a (partner, channel) against a hand-driven clock."""

from __future__ import annotations

import asyncio
import time

import pytest

from admin.notifications.ratelimit import RateLimit, RateLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_a_second_at_sixty_a_minute() -> None:
    clock = Clock()
    limit = RateLimit(60, clock)
    assert limit.delay() == 0.0
    assert limit.delay() == pytest.approx(1.0)
    assert limit.delay() == pytest.approx(2.0)  # reservations queue
    clock.now += 3.0
    assert limit.delay() == 0.0


def test_a_burst_of_one_seconds_worth_then_the_rate() -> None:
    clock = Clock()
    limit = RateLimit(6000, clock)  # 100 a second
    assert [limit.delay() for _ in range(100)] == [0.0] * 100
    assert limit.delay() == pytest.approx(0.01)
    clock.now += 0.5
    delays = [limit.delay() for _ in range(50)]
    assert delays[:49] == [0.0] * 49 and delays[49] == pytest.approx(0.01)


def test_idle_time_does_not_save_up_beyond_the_burst() -> None:
    clock = Clock()
    limit = RateLimit(120, clock, burst=5)
    clock.now += 3600
    assert [limit.delay() for _ in range(6)] == [0.0] * 5 + [pytest.approx(0.5)]


def test_a_minute_carries_at_most_per_minute_plus_the_burst() -> None:
    clock = Clock()
    limit = RateLimit(600, clock)  # burst 10
    sent, t = 0, 0.0
    start = clock.now
    while t < 60.0:
        pause = limit.delay()
        t += pause
        clock.now = start + t
        if t < 60.0:
            sent += 1
    assert 600 <= sent <= 610


def test_a_clock_that_steps_back_gives_no_tokens() -> None:
    clock = Clock()
    limit = RateLimit(60, clock)
    limit.delay()
    clock.now -= 100
    assert limit.delay() == pytest.approx(1.0)


@pytest.mark.parametrize("per_minute, burst", [(0, None), (-5, None), (60, 0)])
def test_nonsense_is_refused(per_minute: int, burst: int | None) -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimit(per_minute, Clock(), burst=burst)


def test_buckets_per_key_and_a_new_one_when_the_rate_changes() -> None:
    limits = RateLimits(Clock())
    a = limits.get((1, "email"), 60)
    assert limits.get((1, "email"), 60) is a
    assert limits.get((1, "sms"), 60) is not a
    b = limits.get((1, "email"), 120)
    assert b is not a and b.per_minute == 120


async def test_wait_sleeps_for_the_slot() -> None:
    limit = RateLimit(600)  # the real clock: 10 a second, burst 10
    for _ in range(10):
        await limit.wait()
    started = time.monotonic()
    await asyncio.gather(limit.wait(), limit.wait())
    assert 0.15 <= time.monotonic() - started < 0.5
