"""The SLA report's buckets: bounds held by the lower bucket, a worked example, and the SQL
expression computing the same bucket as :func:`bucket` (checked by evaluating its text here)."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.tickets.sla import BUCKET_HOURS, BUCKET_SQL, LABELS, NO_RESPONSE, bounds_seconds, bucket, counts

H = 3600


def test_the_buckets() -> None:
    assert BUCKET_HOURS == (3, 6, 9, 12, 24)
    assert LABELS == ("≤ 3 h", "3–6 h", "6–9 h", "9–12 h", "12–24 h", "> 24 h", "no response yet")
    assert bounds_seconds() == [10800, 21600, 32400, 43200, 86400]
    assert NO_RESPONSE == 6


@pytest.mark.parametrize(("seconds", "label"), [
    (None, "no response yet"),
    (0, "≤ 3 h"),
    (-120.0, "≤ 3 h"),  # clocks apart
    (3 * H, "≤ 3 h"),  # the upper bound is in
    (3 * H + 0.001, "3–6 h"),
    (6 * H, "3–6 h"),
    (6 * H + 1, "6–9 h"),
    (9 * H, "6–9 h"),
    (12 * H, "9–12 h"),
    (12 * H + 1, "12–24 h"),
    (24 * H, "12–24 h"),
    (24 * H + 1, "> 24 h"),
    (400 * 24 * H, "> 24 h"),
    (math.inf, "> 24 h"),
    (10**400, "> 24 h"),  # an int too big for a float
    (-math.inf, "≤ 3 h"),
    (math.nan, "> 24 h"),  # PostgreSQL sorts NaN above every number
])
def test_bucket(seconds: float | None, label: str) -> None:
    assert LABELS[bucket(seconds)] == label


def test_a_worked_example() -> None:
    """Seven tickets: answered after 20 min, 3 h exactly, 3 h 1 s, 5 h, 11 h 59 min, 2 days, and one unanswered."""
    times = [20 * 60, 3 * H, 3 * H + 1, 5 * H, 11 * H + 59 * 60, 48 * H, None]
    assert dict(zip(LABELS, counts(times), strict=True)) == {
        "≤ 3 h": 2, "3–6 h": 2, "6–9 h": 0, "9–12 h": 1, "12–24 h": 0, "> 24 h": 1, "no response yet": 1}
    assert sum(counts(times)) == 7


def test_the_sql_expression() -> None:
    assert BUCKET_SQL == ("CASE WHEN {x} IS NULL THEN 6 WHEN {x} <= 10800 THEN 0 WHEN {x} <= 21600 THEN 1 "
                          "WHEN {x} <= 32400 THEN 2 WHEN {x} <= 43200 THEN 3 WHEN {x} <= 86400 THEN 4 ELSE 5 END")
    column = "extract(epoch FROM t.first_response_at - t.created_at)"
    assert BUCKET_SQL.format(x=column).count(column) == 6


def evaluate(sql: str, x: float | None) -> int:
    """BUCKET_SQL as PostgreSQL reads it: the first WHEN that holds (NULL compares as unknown,
    NaN above every number), else ELSE."""
    for condition, value in re.findall(r"WHEN (.+?) THEN (\d+)", sql):
        if condition == "{x} IS NULL":
            if x is None:
                return int(value)
            continue
        bound = float(condition.removeprefix("{x} <= "))
        if x is not None and not math.isnan(x) and x <= bound:
            return int(value)
    found = re.search(r"ELSE (\d+) END$", sql)
    assert found
    return int(found.group(1))


@given(st.none() | st.floats(allow_nan=True) | st.integers(-10**12, 10**12)
       | st.sampled_from([b + d for b in bounds_seconds() for d in (-1, -0.5, 0, 0.5, 1)]))
def test_the_sql_agrees_with_bucket_and_never_raises(seconds: float | None) -> None:
    assert 0 <= bucket(seconds) < len(LABELS)
    assert evaluate(BUCKET_SQL, seconds) == bucket(seconds)
