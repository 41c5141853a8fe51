"""The SQL of the sessions area: live sessions and their history, the post-auth log, CoA requests,
traffic per service and the revenue-leak report.

Scope: sessions, post-auth lines and leaks name a service (or none); they are joined LEFT to
services and customers and filtered with CUSTOMER_SCOPE ($1 partner, $2 creator). A row without
a service then has NULL customer columns, which the scope's ``c.partner_id = $1`` makes NULL
(not true): such a row is seen only by a principal with neither a partner nor a creator limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.queries import CUSTOMER_SCOPE

Record = asyncpg.Record


@dataclass
class Where:
    """Conditions and their parameters, after the scope's $1 and $2; ``?`` in a condition is its parameter."""

    params: list[Any]
    parts: list[str] = field(default_factory=lambda: [CUSTOMER_SCOPE])

    def add(self, condition: str, *values: Any) -> None:
        for value in values:
            self.params.append(value)
            condition = condition.replace("?", f"${len(self.params)}", 1)
        self.parts.append(condition)

    def sql(self) -> str:
        return " AND ".join(self.parts)


def scope(partner_id: int | None, creator_id: int | None) -> Where:
    return Where([partner_id, creator_id])


def like_prefix(text: str) -> str:
    """A LIKE pattern for the lower-cased ``text`` as a prefix (its own % and _ taken literally)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


_SESSION = """
SELECT r.acct_unique_id, r.acct_session_id, r.username AS login, r.service_id, c.id AS customer_id,
       c.name AS customer, r.nas_id, n.name AS nas, host(r.nas_address) AS nas_address, r.nas_port_id,
       host(r.framed_ip) AS framed_ip, r.framed_ipv6_prefix::text AS framed_ipv6_prefix, r.calling_station_id,
       r.started_at, r.updated_at, r.stopped_at,
       CASE WHEN r.stopped_at IS NULL THEN greatest(extract(epoch FROM now() - r.started_at), 0)::bigint
            ELSE coalesce(nullif(r.session_time_s, 0), extract(epoch FROM r.stopped_at - r.started_at)::bigint)
       END AS duration_s,
       r.input_octets, r.output_octets, r.terminate_cause, r.last_coa_at, r.last_coa_result,
       ({sort})::text AS sort_key
FROM radius_sessions r
LEFT JOIN services s ON s.id = r.service_id
LEFT JOIN customers c ON c.id = s.customer_id
LEFT JOIN nas n ON n.id = r.nas_id
"""

#: Sorts of the live list: key -> (SQL, its type). The cursor carries the value as text.
LIVE_SORTS: dict[str, tuple[str, str]] = {
    "started": ("r.started_at", "timestamptz"),
    "login": ("r.username", "text"),
    "ip": ("coalesce(r.framed_ip, '0.0.0.0'::inet)", "inet"),
    "bytes": ("(r.input_octets + r.output_octets)", "bigint"),
}


def _keyset(where: Where, sort_sql: str, sort_type: str, tie_sql: str, direction: str,
            after: list[Any] | None) -> str:
    """The cursor's condition (rows after (sort value, tie)) and the ORDER BY; the tie is text."""
    op, order = (">", "ASC") if direction == "asc" else ("<", "DESC")
    if after:
        where.add(f"({sort_sql}, {tie_sql}) {op} (?::text::{sort_type}, ?::text)", str(after[0]), str(after[1]))
    return f"ORDER BY {sort_sql} {order}, {tie_sql} {order}"


async def live(conn: Connection, partner_id: int | None, creator_id: int | None, *, login: str | None,
               nas_id: int | None, network: str | None, sort: str, direction: str, after: list[Any] | None,
               limit: int) -> list[Record]:
    """Open sessions (stopped_at IS NULL); ``limit`` + 1 rows are asked for by the caller."""
    where = scope(partner_id, creator_id)
    where.add("r.stopped_at IS NULL")
    if login:
        where.add("lower(r.username) LIKE ?::text", like_prefix(login))
    if nas_id is not None:
        where.add("r.nas_id = ?::bigint", nas_id)
    if network:
        where.add("r.framed_ip <<= ?::text::inet", network)
    sort_sql, sort_type = LIVE_SORTS[sort]
    order = _keyset(where, sort_sql, sort_type, "r.acct_unique_id", direction, after)
    where.params.append(limit)
    return list(await conn.fetch(_SESSION.format(sort=sort_sql) + f"WHERE {where.sql()} {order} "
                                 f"LIMIT ${len(where.params)}", *where.params))


async def history(conn: Connection, partner_id: int | None, creator_id: int | None, *, login: str | None,
                  network: str | None, at: datetime | None, after: list[Any] | None, limit: int) -> list[Record]:
    """Every session, newest first; with ``at`` only those open at that time (who had ``network`` then)."""
    where = scope(partner_id, creator_id)
    if login:
        where.add("r.username = ?::text", login)
    if network:
        where.add("r.framed_ip <<= ?::text::inet", network)
    if at is not None:
        where.add("r.started_at <= ?::timestamptz AND (r.stopped_at IS NULL OR r.stopped_at >= ?::timestamptz)",
                  at, at)
    order = _keyset(where, "r.started_at", "timestamptz", "r.acct_unique_id", "desc", after)
    where.params.append(limit)
    return list(await conn.fetch(_SESSION.format(sort="r.started_at") + f"WHERE {where.sql()} {order} "
                                 f"LIMIT ${len(where.params)}", *where.params))


async def session(conn: Connection, partner_id: int | None, creator_id: int | None,
                  acct_unique_id: str) -> Record | None:
    """One session the principal sees (the newest of that id), with its customer's partner."""
    return await conn.fetchrow(
        "SELECT r.acct_unique_id, r.username AS login, r.service_id, r.stopped_at, host(r.framed_ip) AS framed_ip, "
        "c.id AS customer_id, c.partner_id FROM radius_sessions r "
        "LEFT JOIN services s ON s.id = r.service_id LEFT JOIN customers c ON c.id = s.customer_id "
        f"WHERE r.acct_unique_id = $3 AND {CUSTOMER_SCOPE} ORDER BY r.started_at DESC LIMIT 1",
        partner_id, creator_id, acct_unique_id)


async def queue_disconnect(conn: Connection, service_id: int) -> Record:
    """A Disconnect-Request for every live session of the service (radiusd/coa.py sends it)."""
    row = await conn.fetchrow(
        "INSERT INTO coa_requests (service_id, action) VALUES ($1, 'disconnect') "
        "RETURNING id, service_id, action, state, created_at", service_id)
    assert row is not None
    return row


async def open_requests(conn: Connection, partner_id: int | None, creator_id: int | None,
                        limit: int = 50) -> list[Record]:
    """CoA requests radiusd has not answered yet (pending or being sent), oldest first."""
    return list(await conn.fetch(
        "SELECT q.id, q.service_id, s.login, c.id AS customer_id, q.action, q.state, q.attempts, q.created_at "
        "FROM coa_requests q LEFT JOIN services s ON s.id = q.service_id "
        "LEFT JOIN customers c ON c.id = s.customer_id "
        f"WHERE q.state IN ('pending', 'sending') AND {CUSTOMER_SCOPE} ORDER BY q.id LIMIT $3",
        partner_id, creator_id, limit))


async def nas_options(conn: Connection) -> list[tuple[int, str]]:
    return [(r["id"], r["name"]) for r in await conn.fetch("SELECT id, name FROM nas ORDER BY name, id")]


_POSTAUTH = """
SELECT p.at, p.username AS login, p.result, p.reason, p.service_id, c.id AS customer_id, c.name AS customer,
       p.nas_id, n.name AS nas, p.calling_station_id, host(p.framed_ip) AS framed_ip, p.at::text AS sort_key
FROM radius_postauth p
LEFT JOIN services s ON s.id = p.service_id
LEFT JOIN customers c ON c.id = s.customer_id
LEFT JOIN nas n ON n.id = p.nas_id
"""


async def auth_log(conn: Connection, partner_id: int | None, creator_id: int | None, *, login: str | None,
                   result: str | None, reason: str | None, after: list[Any] | None, limit: int) -> list[Record]:
    """Post-auth lines, newest first, paged by (at, login)."""
    where = scope(partner_id, creator_id)
    if login:
        where.add("p.username = ?::text", login)
    if result:
        where.add("p.result = ?::text", result)
    if reason:
        where.add("p.reason = ?::text", reason)
    order = _keyset(where, "p.at", "timestamptz", "p.username", "desc", after)
    where.params.append(limit)
    return list(await conn.fetch(_POSTAUTH + f"WHERE {where.sql()} {order} LIMIT ${len(where.params)}",
                                 *where.params))


async def login_facts(conn: Connection, partner_id: int | None, creator_id: int | None, login: str) -> Record | None:
    """What radiusd decides a login by: the service, its customer and tariff, sessions open now."""
    return await conn.fetchrow(
        "SELECT s.id AS service_id, s.login, s.status, s.mac::text AS mac, s.simultaneous_use, "
        "host(s.ipv4) AS ipv4, s.pool_id, s.start_date, s.end_date, t.id AS tariff_id, t.name AS tariff, "
        "c.id AS customer_id, c.name AS customer, c.status AS customer_status, "
        "(SELECT count(*) FROM radius_sessions r WHERE r.service_id = s.id AND r.stopped_at IS NULL) AS online "
        "FROM services s JOIN customers c ON c.id = s.customer_id JOIN tariffs t ON t.id = s.tariff_id "
        f"WHERE s.login = $3 AND {CUSTOMER_SCOPE}", partner_id, creator_id, login)


async def service(conn: Connection, partner_id: int | None, creator_id: int | None, service_id: int) -> Record | None:
    return await conn.fetchrow(
        "SELECT s.id, s.login, s.status, c.id AS customer_id, c.name AS customer "
        f"FROM services s JOIN customers c ON c.id = s.customer_id WHERE s.id = $3 AND {CUSTOMER_SCOPE}",
        partner_id, creator_id, service_id)


#: By range: minutes and hours from traffic_series (schema.sql: minute rows, or the hourly rollup
#: before its mark); days from the daily rollup before the mark's day and traffic_series after it.
_TRAFFIC = {
    "minutes": "SELECT bucket, bytes_down, bytes_up FROM traffic_series($1, $2, $3, interval '1 minute')",
    "hours": "SELECT bucket, bytes_down, bytes_up FROM traffic_series($1, $2, $3, interval '1 hour')",
    "days": """
        WITH mark AS (SELECT date_trunc('day', rolled_until, 'UTC') AS t FROM traffic_rollup_state)
        SELECT d.day::timestamp AT TIME ZONE 'UTC' AS bucket, d.bytes_down::numeric AS bytes_down,
               d.bytes_up::numeric AS bytes_up
        FROM traffic_usage_daily d, mark
        WHERE d.service_id = $1 AND d.day >= ($2::timestamptz AT TIME ZONE 'UTC')::date
          AND d.day::timestamp AT TIME ZONE 'UTC' < mark.t
        UNION ALL
        SELECT t.bucket, t.bytes_down, t.bytes_up
        FROM mark, traffic_series($1, GREATEST($2::timestamptz, mark.t), $3, interval '1 day') t""",
}


async def traffic(conn: Connection, service_id: int, range_: str, start: datetime, end: datetime) -> list[Record]:
    """(bucket, bytes_down, bytes_up) of the service in [start, end), only the buckets with rows."""
    return list(await conn.fetch(_TRAFFIC[range_], service_id, start, end))


async def leaks(conn: Connection, partner_id: int | None, creator_id: int | None, since: datetime,
                limit: int) -> list[Record]:
    """traffic_leaks over every row (top NULL: no limit inside), scoped, most bytes first."""
    return list(await conn.fetch(
        "SELECT abbrev(l.address) AS address, l.service_id, l.login, c.id AS customer_id, l.customer, l.billing, "
        "l.bytes::bigint AS bytes, l.packets::bigint AS packets, l.first_seen, l.last_seen "
        "FROM traffic_leaks($3, NULL) l LEFT JOIN services s ON s.id = l.service_id "
        "LEFT JOIN customers c ON c.id = s.customer_id "
        f"WHERE {CUSTOMER_SCOPE} ORDER BY l.bytes DESC, l.address LIMIT $4",
        partner_id, creator_id, since, limit))
