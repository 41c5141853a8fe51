"""What crosses component boundaries through PostgreSQL NOTIFY: the channels and their payloads.

Components may not import each other (docs/architecture.md), so a payload one writes and
another reads is defined here, once, with the functions that make and read it.

* ``lastmile_<table>`` (:func:`table_channel`), sent by schema.sql's statement triggers on
  every table daemons cache: ``{"table", "op", "id"}``, where ``"id": null`` (a statement of more
  than 100 rows) means "reload the table" (:class:`TableChange`).
* ``lastmile_sessions`` (:data:`SESSIONS`), sent by radiusd after the commit that opened or
  closed sessions, for other radiusd instances (Simultaneous-Use) and flowcollector (address →
  service): ``{"by": <sending instance>, "sessions": [{"uid", "service", "ip", "start",
  "stop"}]}`` (:class:`SessionNotice`), split to stay under PostgreSQL's 8,000-byte payload limit.
* ``lastmile_coa_requests``: a row of ``coa_requests`` was queued (a :class:`TableChange`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

SESSIONS = "lastmile_sessions"
COA_REQUESTS = "lastmile_coa_requests"
PAYLOAD_LIMIT = 7000  # bytes of sessions per notification; PostgreSQL refuses payloads of 8,000


def table_channel(table: str) -> str:
    return f"lastmile_{table}"


@dataclass(frozen=True, slots=True)
class TableChange:
    table: str
    op: str
    id: int | None  # None: many rows changed, reload the table


def table_change(payload: Any) -> TableChange | None:
    """The change a ``lastmile_<table>`` payload (parsed JSON) names; None if it is no such payload."""
    if not isinstance(payload, dict) or not isinstance(payload.get("table"), str):
        return None
    row = payload.get("id")
    return TableChange(payload["table"], str(payload.get("op", "")), row if isinstance(row, int) else None)


@dataclass(frozen=True, slots=True)
class SessionNotice:
    """A session that opened (``stop`` None) or closed. Times are Unix seconds."""

    uid: str
    service: int | None
    ip: str | None
    start: float
    stop: float | None


_dumps = json.JSONEncoder(separators=(",", ":")).encode


def session_payloads(origin: str, sessions: Iterable[SessionNotice]) -> Iterator[str]:
    """The ``lastmile_sessions`` payloads that announce ``sessions``, each under the size limit."""
    head = '{"by":' + _dumps(origin) + ',"sessions":['
    chunk: list[str] = []
    size = 0
    for s in sessions:
        text = _dumps({"uid": s.uid, "service": s.service, "ip": s.ip, "start": s.start, "stop": s.stop})
        if chunk and size + len(text) > PAYLOAD_LIMIT:
            yield head + ",".join(chunk) + "]}"
            chunk, size = [], 0
        chunk.append(text)
        size += len(text) + 1
    if chunk:
        yield head + ",".join(chunk) + "]}"


def session_notices(payload: Any) -> list[SessionNotice]:
    """The sessions a ``lastmile_sessions`` payload (parsed JSON) announces; malformed entries skipped."""
    out = []
    for s in payload.get("sessions", ()) if isinstance(payload, dict) else ():
        try:
            out.append(SessionNotice(str(s["uid"]), s["service"], s["ip"], float(s["start"]),
                                     None if s["stop"] is None else float(s["stop"])))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def own_sessions(origin: str) -> Callable[[str, str], bool]:
    """For ``db.Listener(skip=...)``: True for the ``lastmile_sessions`` payloads ``origin`` sent
    itself (it applied them when it committed), decided before their JSON is even parsed."""
    head = '{"by":' + _dumps(origin) + ","
    return lambda channel, payload: channel == SESSIONS and payload.startswith(head)
