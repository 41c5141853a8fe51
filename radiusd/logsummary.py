"""Log lines that repeat, summarised: the first occurrence in full, then a count once a period.

A NAS's address sending spoofed packets, or a subscriber's router retrying a wrong password
every second, would otherwise write one line per packet (1,103 lines for 1,103 packets), and
flood journald. :class:`LogSummary` lets the caller log the first occurrence of a key, e.g.
(NAS, reason, user), in full, counts the repeats, and writes one ``"<event> repeated"`` line
per key with the count every ``period`` seconds while they go on.

Bounded, whatever the traffic: keys are grouped by their first ``group`` parts (e.g. (NAS,
reason)), and a group admits at most ``per_group`` keys at a time; occurrences of further keys
of a full group are only counted, and summarised in one line for the group (``others``). So a
flood costs at most ``2 x per_group + 1`` lines a period per group, and memory for
``per_group`` keys per group. A key whose period passed without a repeat is forgotten (its
next occurrence is logged in full again), which frees its place in the group.

The per-occurrence work, :meth:`LogSummary.first`, is a dict lookup and an increment; the
lines are written by :meth:`LogSummary.flush`, which a task calls every ``period`` (``_summarise``
in radiusd/__main__.py: this module does no I/O of its own).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

Key = tuple[Hashable, ...]

#: Keys a group admits at a time, by default (e.g. users logged one by one per NAS and reason).
PER_GROUP = 10
#: Seconds between summaries, by default.
PERIOD = 60.0


class LogSummary:
    """Repeats of one log event, counted per key.

    ``emit(event, **fields)`` writes a summary line (a bound logger's ``info`` or ``warning``);
    ``fields`` names the parts of a key, in order, for those lines.
    """

    def __init__(self, emit: Callable[..., Any], event: str, fields: tuple[str, ...], *, group: int | None = None,
                 per_group: int = PER_GROUP, period: float = PERIOD) -> None:
        self.emit = emit
        self.event = event
        self.fields = fields
        #: how many leading parts of a key make its group (all of them by default: no limit but one key)
        self.group = len(fields) if group is None else group
        self.per_group = per_group
        self.period = period
        #: key -> [repeats since the last flush]; a list, so that counting needs no second lookup
        self._repeats: dict[Key, list[int]] = {}
        #: group -> keys of it in ``_repeats``
        self._admitted: dict[Key, int] = {}
        #: group -> occurrences of keys the full group did not admit, since the last flush
        self._others: dict[Key, int] = {}
        self._flushed = time.monotonic()

    def first(self, key: Key) -> bool:
        """Count one occurrence of ``key``; True when the caller should log it in full."""
        repeats = self._repeats.get(key)
        if repeats is not None:
            repeats[0] += 1
            return False
        return self._admit(key)

    def _admit(self, key: Key) -> bool:
        group = key[: self.group]
        admitted = self._admitted.get(group, 0)
        if admitted >= self.per_group:
            self._others[group] = self._others.get(group, 0) + 1
            return False
        self._admitted[group] = admitted + 1
        self._repeats[key] = [0]
        return True

    def flush(self, now: float | None = None) -> int:
        """Write the summary lines of the period that ends ``now``; returns how many."""
        now = time.monotonic() if now is None else now
        seconds = round(now - self._flushed, 1)
        self._flushed = now
        lines = 0
        for key, repeats in list(self._repeats.items()):
            if repeats[0]:
                self.emit(f"{self.event} repeated", **dict(zip(self.fields, key, strict=True)), count=repeats[0],
                          seconds=seconds)
                repeats[0] = 0
                lines += 1
            else:  # quiet for a period: forgotten, and its place in the group is free again
                del self._repeats[key]
                group = key[: self.group]
                self._admitted[group] -= 1
                if not self._admitted[group]:
                    del self._admitted[group]
        for group, count in self._others.items():
            self.emit(f"{self.event} repeated", **dict(zip(self.fields, group, strict=False)), others=True,
                      count=count, seconds=seconds)
            lines += 1
        self._others.clear()
        return lines

    def __len__(self) -> int:
        """Keys held (at most ``per_group`` per group)."""
        return len(self._repeats)

