"""The NOTIFY payloads components exchange (daemons/channels.py): written once, read the same."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from daemons import channels

notices = st.builds(
    channels.SessionNotice,
    uid=st.text(min_size=1, max_size=40),
    service=st.none() | st.integers(1, 2**62),
    ip=st.none() | st.ip_addresses(v=4).map(str),
    start=st.floats(0, 2e9, allow_nan=False),
    stop=st.none() | st.floats(0, 2e9, allow_nan=False),
)


@given(st.text(max_size=30), st.lists(notices, max_size=400))
def test_sessions_round_trip_in_payloads_under_the_limit(origin: str, sessions: list[channels.SessionNotice]) -> None:
    payloads = list(channels.session_payloads(origin, sessions))
    assert all(len(p.encode()) < 8000 for p in payloads)  # PostgreSQL's NOTIFY limit
    back = [n for p in payloads for n in channels.session_notices(json.loads(p))]
    assert back == sessions
    own = channels.own_sessions(origin)
    assert all(own(channels.SESSIONS, p) for p in payloads)
    assert not any(own(channels.SESSIONS, p) for p in channels.session_payloads(origin + "x", sessions[:1]))


def test_table_changes_and_malformed_payloads() -> None:
    assert channels.table_change({"table": "services", "op": "UPDATE", "id": 7}) == \
        channels.TableChange("services", "UPDATE", 7)
    assert channels.table_change({"table": "services", "op": "INSERT", "id": None}).id is None  # type: ignore[union-attr]
    assert channels.table_change("garbage") is None and channels.table_change({"id": 3}) is None
    assert channels.session_notices({"sessions": [{"uid": "x"}, "y"]}) == []  # malformed entries skipped
