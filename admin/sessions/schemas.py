"""The sessions area's request and response types (msgspec: they decode the query strings and
make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from admin.schemas import Id, Limit, Text

Cursor = Annotated[str, msgspec.Meta(max_length=2000, description="the `next` of the previous page")]
Direction = Literal["asc", "desc"]

# The reasons radiusd writes into radius_postauth.reason (radiusd/policy.py; the admin does not
# import radiusd: tests/integration/admin/test_sessions.py holds the two equal).
REASONS: tuple[str, ...] = (
    "ok", "ok, blocked: address list", "unknown user", "no password, CHAP or MS-CHAPv2 in the request",
    "wrong password", "service not active", "customer not active", "MAC address does not match the service",
    "simultaneous use exceeded", "customer blocked", "service blocked", "address pool exhausted",
)


class SessionFilter(msgspec.Struct, kw_only=True):
    """Live sessions: ``login`` a prefix of the login, ``nas`` a NAS id, ``ip`` an address or a network."""

    login: Text | None = None
    nas: Id | None = None
    ip: Text | None = None


class SessionQuery(SessionFilter, kw_only=True):
    sort: Literal["started", "login", "ip", "bytes"] = "started"
    dir: Direction = "desc"
    after: Cursor | None = None
    limit: Limit = 50


class HistoryFilter(msgspec.Struct, kw_only=True):
    """Every session, newest first: ``login`` exactly; ``ip`` (an address or network) and ``at``
    (ISO 8601, UTC when it has no offset) together find who had the address at that time."""

    login: Text | None = None
    ip: Text | None = None
    at: Text | None = None


class HistoryQuery(HistoryFilter, kw_only=True):
    after: Cursor | None = None
    limit: Limit = 50


class AuthLogFilter(msgspec.Struct, kw_only=True):
    """Access-Accepts and -Rejects, newest first: ``login`` exactly, ``reason`` as radiusd writes it."""

    login: Text | None = None
    result: Literal["accept", "reject"] | None = None
    reason: Text | None = None


class AuthLogQuery(AuthLogFilter, kw_only=True):
    after: Cursor | None = None
    limit: Limit = 50


class TrafficQuery(msgspec.Struct, kw_only=True):
    """``minutes``: the last 6 hours by minute; ``hours``: the last 7 days by hour; ``days``: the last 90 days."""

    range: Literal["minutes", "hours", "days"] = "minutes"


class LeaksQuery(msgspec.Struct, kw_only=True):
    since: Literal["1h", "24h", "7d"] = "24h"
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class Session(msgspec.Struct, kw_only=True):
    """A RADIUS accounting session. Octets as the NAS counts them: ``input`` from the subscriber
    (upload), ``output`` to it (download). ``duration_s``: until now while it is live."""

    acct_unique_id: str
    acct_session_id: str
    login: str
    service_id: int | None
    customer_id: int | None
    customer: str | None
    nas_id: int | None
    nas: str | None
    nas_address: str | None
    nas_port_id: str | None
    framed_ip: str | None
    framed_ipv6_prefix: str | None
    calling_station_id: str | None
    started_at: datetime
    updated_at: datetime
    stopped_at: datetime | None
    duration_s: int
    input_octets: int
    output_octets: int
    terminate_cause: str | None
    last_coa_at: datetime | None
    last_coa_result: str | None


class AuthAttempt(msgspec.Struct, kw_only=True):
    at: datetime
    login: str
    result: Literal["accept", "reject"]
    reason: str
    service_id: int | None
    customer_id: int | None
    customer: str | None
    nas_id: int | None
    nas: str | None
    calling_station_id: str | None
    framed_ip: str | None


class CoaQueued(msgspec.Struct, kw_only=True):
    """A Disconnect-Request queued for radiusd (coa_requests): it goes to every live session of the service."""

    id: int
    service_id: int
    action: str
    state: str
    created_at: datetime


class TrafficSeries(msgspec.Struct, kw_only=True):
    """Bytes per bucket of ``step_s`` seconds from ``start`` (UTC, unix seconds in ``t``), every
    bucket present (zero when nothing passed): down is to the subscriber, up from it."""

    service_id: int
    range: Literal["minutes", "hours", "days"]
    step_s: int
    start: datetime
    end: datetime
    t: list[int]
    bytes_down: list[int]
    bytes_up: list[int]
    total_down: int
    total_up: int


class Leak(msgspec.Struct, kw_only=True):
    """Traffic billing gets nothing for (schema.sql, traffic_leaks): ``billing`` says why."""

    address: str | None
    service_id: int | None
    login: str | None
    customer_id: int | None
    customer: str | None
    billing: str
    bytes: int
    packets: int
    first_seen: datetime
    last_seen: datetime


class LeakReport(msgspec.Struct, kw_only=True):
    since: datetime
    items: list[Leak]
