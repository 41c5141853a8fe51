"""radiusd.logsummary: first occurrences in full, repeats counted, bounded lines and memory."""

from __future__ import annotations

from typing import Any

from radiusd.logsummary import LogSummary


class Lines:
    """A logger method's stand-in that keeps what it was asked to write."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


def rejects(per_group: int = 3) -> tuple[LogSummary, Lines]:
    lines = Lines()
    return LogSummary(lines, "access-reject", ("nas", "reason", "user"), group=2, per_group=per_group), lines


def test_the_first_occurrence_is_logged_and_repeats_are_summarised_with_their_count() -> None:
    summary, lines = rejects()
    firsts = [summary.first(("nas-1", "wrong password", "ann")) for _ in range(1103)]
    assert firsts.count(True) == 1 and firsts[0]
    assert summary.flush(now=summary._flushed + 60) == 1
    assert lines.lines == [("access-reject repeated", {"nas": "nas-1", "reason": "wrong password", "user": "ann",
                                                       "count": 1102, "seconds": 60.0})]


def test_keys_apart_by_nas_reason_and_user() -> None:
    summary, _ = rejects()
    keys = [("nas-1", "wrong password", "ann"), ("nas-2", "wrong password", "ann"),
            ("nas-1", "unknown user", "ann"), ("nas-1", "wrong password", "bob")]
    assert [summary.first(k) for k in keys] == [True, True, True, True]
    assert [summary.first(k) for k in keys] == [False, False, False, False]


def test_a_flood_keeps_being_summarised_and_a_quiet_key_is_logged_in_full_again() -> None:
    summary, lines = rejects()
    key = ("nas-1", "wrong password", "ann")
    summary.first(key)
    t = summary._flushed
    for minute in range(1, 4):  # a flood: no full line again, one summary a minute
        assert [summary.first(key) for _ in range(10)] == [False] * 10
        assert summary.flush(now=t + 60 * minute) == 1
    assert [fields["count"] for _, fields in lines.lines] == [10, 10, 10]
    assert summary.flush(now=t + 240) == 0  # a quiet minute: forgotten
    assert len(summary) == 0
    assert summary.first(key)


def test_a_flood_of_distinct_users_costs_bounded_lines_and_memory() -> None:
    summary, lines = rejects(per_group=10)
    firsts = sum(summary.first(("nas-1", "unknown user", f"user-{i}")) for i in range(100_000))
    assert firsts == 10 and len(summary) == 10
    summary.first(("nas-1", "wrong password", "ann"))  # another group keeps its own places
    assert len(summary) == 11
    summary.flush()
    assert lines.lines == [("access-reject repeated", {"nas": "nas-1", "reason": "unknown user", "others": True,
                                                       "count": 100_000 - 10, "seconds": lines.lines[0][1]["seconds"]})]
    summary.flush()  # all quiet: every place is free again
    assert len(summary) == 0 and summary._admitted == {}
    assert summary.first(("nas-1", "unknown user", "user-99999"))


def test_one_group_for_every_source() -> None:
    lines = Lines()
    summary = LogSummary(lines, "request from unknown client dropped", ("source",), group=0, per_group=2)
    assert [summary.first((f"192.0.2.{i}",)) for i in range(5)] == [True, True, False, False, False]
    summary.first(("192.0.2.0",))
    summary.flush()
    assert [(e, f["count"], f.get("source"), f.get("others")) for e, f in lines.lines] == [
        ("request from unknown client dropped repeated", 1, "192.0.2.0", None),
        ("request from unknown client dropped repeated", 3, None, True),
    ]
