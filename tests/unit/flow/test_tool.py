"""`lastmile flows leaks`'s formatting: durations, sizes, the table and billing's words."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from flowcollector import tool


@pytest.mark.parametrize(("text", "seconds"), [("90m", 5400), ("24h", 86400), ("7d", 604800), ("1h30m", 5400),
                                               ("2w", 1209600), ("45s", 45)])
def test_durations(text: str, seconds: int) -> None:
    assert tool.duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "h", "1", "1x", "1h 30m", "-1h", "1.5h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        tool.duration(text)


def test_table_and_words() -> None:
    at = datetime(2026, 3, 1, 12, 5, tzinfo=UTC)
    rows = [{"address": "100.64.0.9", "login": None, "customer": None, "bytes": 1_234_567_890, "packets": 12345,
             "last_seen": at, "billing": "no_service"},
            {"address": None, "login": "bob", "customer": "Bob Ltd", "bytes": 999, "packets": 3, "last_seen": at,
             "billing": "customer_inactive"}]
    header, first, second = tool.table(rows)
    assert header.startswith("ADDRESS ") and header.endswith("BILLING")
    assert first.split()[:5] == ["100.64.0.9", "-", "-", "1.2", "GB"] and first.endswith("no service")
    assert "999 B" in second and second.endswith("customer inactive") and second.startswith("-")
    assert tool.billing_text("other_addresses").startswith("other addresses")
    assert tool.size(1_500_000_000_000_000) == "1500.0 TB"
