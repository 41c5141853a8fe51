"""Accounting requests → session records, and how records of one session merge.

Pure. A record carries what one Accounting-Request says about a session; the store upserts it
by Acct-Unique-Session-Id so that retransmissions, duplicates and reordering (an Interim after
its Stop, a Stop without a Start) leave one row whose counters never go backwards: counters
and times take the larger value, and the earliest Stop says when and why it ended.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from radiusd.codec import AcctStatus, Request

TERMINATE_CAUSES = {
    1: "User-Request", 2: "Lost-Carrier", 3: "Lost-Service", 4: "Idle-Timeout", 5: "Session-Timeout",
    6: "Admin-Reset", 7: "Admin-Reboot", 8: "Port-Error", 9: "NAS-Error", 10: "NAS-Request", 11: "NAS-Reboot",
    12: "Port-Unneeded", 13: "Port-Preempted", 14: "Port-Suspended", 15: "Service-Unavailable",
    16: "Callback", 17: "User-Error", 18: "Host-Request",
}  # fmt: skip


class AcctError(ValueError):
    """An Accounting-Request that cannot be recorded (no Acct-Status-Type, no session id)."""


@dataclass(slots=True)
class SessionRecord:
    """Times are Unix seconds (floats): cheaper to make, merge and send than datetimes, on a path
    that runs for every Accounting-Request; the store turns them into timestamptz."""

    unique_id: str
    status: int
    event_time: float
    started_at: float
    username: str
    acct_session_id: str
    nas_id: int
    service_id: int | None
    nas_address: str | None
    nas_port_id: str | None
    calling_station_id: str | None
    called_station_id: str | None
    framed_ip: str | None
    framed_ipv6_prefix: str | None
    delegated_ipv6_prefix: str | None
    session_time: int
    input_octets: int
    output_octets: int
    input_packets: int
    output_packets: int
    stopped_at: float | None
    terminate_cause: str | None


@dataclass(slots=True)
class NasEvent:
    """Accounting-On/Off: the NAS (re)started or is going down; its open sessions are over."""

    nas_id: int
    status: int
    event_time: float  # Unix seconds


TIME_FIELDS = ("event_time", "started_at", "stopped_at")


def event_time(request: Request, received: float) -> float:
    """When it happened, in Unix seconds: Event-Timestamp, else arrival minus Acct-Delay-Time
    (RFC 2866 5.2)."""
    stamp = request.event_timestamp
    if stamp is not None:
        return float(stamp)
    return received - (request.acct_delay_time or 0)


def record(request: Request, nas_id: int, service_id: int | None, received: float) -> SessionRecord | NasEvent:
    status = request.acct_status_type
    if status is None:
        raise AcctError("no Acct-Status-Type")
    when = event_time(request, received)
    if status in (AcctStatus.ACCOUNTING_ON, AcctStatus.ACCOUNTING_OFF):
        return NasEvent(nas_id, status, when)
    if status not in (AcctStatus.START, AcctStatus.STOP, AcctStatus.INTERIM_UPDATE):
        raise AcctError(f"Acct-Status-Type {status} is not recorded")
    unique_id = request.acct_unique_session_id
    session_id = request.acct_session_id
    if unique_id is None or session_id is None:
        raise AcctError("no Acct-Session-Id")
    session_time = request.acct_session_time or 0
    cause = request.acct_terminate_cause
    return SessionRecord(
        unique_id=unique_id,
        status=status,
        event_time=when,
        started_at=float(math.floor(when - session_time)),  # whole seconds: retransmits agree
        username=request.user_name or "",
        acct_session_id=session_id,
        nas_id=nas_id,
        service_id=service_id,
        nas_address=request.nas_ip_address or request.nas_ipv6_address,
        nas_port_id=request.nas_port_id or (str(request.nas_port) if request.nas_port is not None else None),
        calling_station_id=request.calling_station_id,
        called_station_id=request.called_station_id,
        framed_ip=request.framed_ip_address,
        framed_ipv6_prefix=request.framed_ipv6_prefix,
        delegated_ipv6_prefix=request.delegated_ipv6_prefix,
        session_time=session_time,
        input_octets=request.acct_input_bytes or 0,
        output_octets=request.acct_output_bytes or 0,
        input_packets=request.acct_input_packets or 0,
        output_packets=request.acct_output_packets or 0,
        stopped_at=when if status == AcctStatus.STOP else None,
        terminate_cause=TERMINATE_CAUSES.get(cause, str(cause)) if cause is not None else None,
    )


def merge(a: SessionRecord, b: SessionRecord) -> SessionRecord:
    """Two records of one session as the database would combine them (order does not matter):
    counters and times take the larger value, the earliest Stop decides when and why it ended."""
    stops = [r for r in (a, b) if r.stopped_at is not None]
    first_stop = min(stops, key=lambda r: r.stopped_at or r.event_time) if stops else None
    return replace(
        a,
        status=AcctStatus.STOP if AcctStatus.STOP in (a.status, b.status) else max(a.status, b.status),
        event_time=max(a.event_time, b.event_time),
        started_at=min(a.started_at, b.started_at),
        session_time=max(a.session_time, b.session_time),
        input_octets=max(a.input_octets, b.input_octets),
        output_octets=max(a.output_octets, b.output_octets),
        input_packets=max(a.input_packets, b.input_packets),
        output_packets=max(a.output_packets, b.output_packets),
        stopped_at=first_stop.stopped_at if first_stop else None,
        terminate_cause=first_stop.terminate_cause if first_stop else a.terminate_cause or b.terminate_cause,
        framed_ip=a.framed_ip or b.framed_ip,
        framed_ipv6_prefix=a.framed_ipv6_prefix or b.framed_ipv6_prefix,
        delegated_ipv6_prefix=a.delegated_ipv6_prefix or b.delegated_ipv6_prefix,
        service_id=a.service_id if a.service_id is not None else b.service_id,
    )


def merge_batch(records: list[SessionRecord]) -> list[SessionRecord]:
    """One record per session, so a batch upsert touches each row once."""
    merged: dict[str, SessionRecord] = {}
    for r in records:
        prev = merged.get(r.unique_id)
        merged[r.unique_id] = r if prev is None else merge(prev, r)
    return list(merged.values())
