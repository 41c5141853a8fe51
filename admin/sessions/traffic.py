"""Traffic graphs: the ranges a service's graph offers, and every bucket of one (zero where
nothing passed), so the chart has no holes. Pure: the clock and the rows come in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

Range = Literal["minutes", "hours", "days"]


@dataclass(frozen=True, slots=True)
class Window:
    step_s: int
    buckets: int


WINDOWS: dict[str, Window] = {
    "minutes": Window(60, 6 * 60),      # the last 6 hours, from traffic_usage
    "hours": Window(3600, 7 * 24),      # the last 7 days, from the hourly rollup
    "days": Window(86400, 90),          # the last 90 days, from the daily rollup
}


def window(range_: str, now: datetime) -> tuple[datetime, datetime]:
    """``(start, end)``: from the first bucket's start to ``now``; the last bucket is ``now``'s
    (buckets are aligned to UTC, as traffic_series bins them)."""
    w = WINDOWS[range_]
    last = int(now.timestamp()) // w.step_s * w.step_s
    start = datetime.fromtimestamp(last - (w.buckets - 1) * w.step_s, UTC)
    return start, now


def fill(range_: str, start: datetime, rows: Iterable[tuple[datetime, int | Decimal, int | Decimal]]
         ) -> tuple[list[int], list[int], list[int]]:
    """Unix times of every bucket from ``start``, bytes down and up in each (rows summed by bucket)."""
    w = WINDOWS[range_]
    first = int(start.timestamp())
    t = [first + i * w.step_s for i in range(w.buckets)]
    down, up = [0] * w.buckets, [0] * w.buckets
    for bucket, d, u in rows:
        i = (int(bucket.timestamp()) - first) // w.step_s
        if 0 <= i < w.buckets:
            down[i] += int(d)
            up[i] += int(u)
    return t, down, up


def since(text: str, now: datetime) -> datetime:
    """The leak report's ``1h``, ``24h``, ``7d`` as a time."""
    hours = {"1h": 1, "24h": 24, "7d": 7 * 24}[text]
    return now - timedelta(hours=hours)
