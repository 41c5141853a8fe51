"""acs/ranges.py: a Range header against a file's size, checked against slices of bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acs import ranges
from acs.ranges import Unsatisfiable

positions = st.integers(min_value=0, max_value=300)


def served(header: str, data: bytes) -> bytes | None:
    """What a server using parse() sends: the range's bytes, None for a 416, all for a 200."""
    r = ranges.parse(header, len(data))
    if isinstance(r, Unsatisfiable):
        return None
    if r is None:
        return data
    first, last = r
    assert 0 <= first <= last < len(data)
    return data[first:last + 1]


@given(st.binary(max_size=200), positions, positions)
def test_first_and_last(data: bytes, first: int, last: int) -> None:
    expected = None if first > last or first >= len(data) else data[first:last + 1]
    assert served(f"bytes={first}-{last}", data) == expected


@given(st.binary(max_size=200), positions)
def test_open_ended(data: bytes, first: int) -> None:
    assert served(f"bytes={first}-", data) == (None if first >= len(data) else data[first:])


@given(st.binary(max_size=200), positions)
def test_suffix(data: bytes, n: int) -> None:
    assert served(f"bytes=-{n}", data) == (None if n == 0 or not data else data[-n:])


@given(st.text(max_size=30), st.integers(min_value=0, max_value=10_000))
def test_any_header_is_an_answer_within_the_file(header: str, size: int) -> None:
    r = ranges.parse(header, size)
    assert r is None or isinstance(r, Unsatisfiable) or 0 <= r[0] <= r[1] < size


@pytest.mark.parametrize("header", [
    None, "", "bytes", "bytes=", "bytes=-", "items=0-5", "bytes=0-1,3-4", "bytes=a-5", "bytes=1-b", "bytes=--5",
    "bytes=+1-5", "bytes=٣-5", "bytes=1 -5",
])
def test_what_is_ignored(header: str | None) -> None:
    assert ranges.parse(header, 100) is None


def test_spelling() -> None:
    assert ranges.parse("Bytes = 2-4", 100) == (2, 4)
    assert ranges.parse("bytes=0-0", 1) == (0, 0)
    assert ranges.parse("bytes=0-", 0) == Unsatisfiable()
