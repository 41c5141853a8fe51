"""The SQL of the portal's usage pages (usage.py): a service's traffic by day and by hour, its
month totals, and its RADIUS sessions.

Every statement is scoped by the customer logged in (``$1``) through the service (``$2``): another
customer's service gives no row, so its traffic and sessions read as nothing and the page is 404.

Traffic comes from schema.sql's own functions, as the admin's graph and fair-usage counting read
it: ``traffic_series`` (the hourly rollup before its mark, minute rows after it and for late
hours, so totals are exact at any time) and ``traffic_month_total`` (the calendar month in UTC).
Sessions are found by the service's login and id together (radius_sessions_username_idx, newest
first); a session of a login the service had before a rename is not listed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from admin.auth.store import Connection

Record = asyncpg.Record

OWN = "s.id = $2 AND s.customer_id = $1"


async def services(conn: Connection, customer_id: int) -> list[Record]:
    """The customer's services to choose from: ended (archived) ones last."""
    return list(await conn.fetch(
        "SELECT s.id, s.login, s.status, t.name AS tariff FROM services s JOIN tariffs t ON t.id = s.tariff_id "
        "WHERE s.customer_id = $1 ORDER BY s.status = 'archived', s.id", customer_id))


async def month_totals(conn: Connection, customer_id: int, service_id: int, this_month: datetime,
                       last_month: datetime) -> Record | None:
    """Bytes down and up of the calendar months holding ``this_month`` and ``last_month`` (None:
    not the customer's service)."""
    return await conn.fetchrow(
        "SELECT cur.bytes_down::bigint AS down, cur.bytes_up::bigint AS up, prev.bytes_down::bigint AS last_down, "
        "prev.bytes_up::bigint AS last_up FROM services s "
        "CROSS JOIN LATERAL traffic_month_total(s.id, $3) cur CROSS JOIN LATERAL traffic_month_total(s.id, $4) prev "
        f"WHERE {OWN}", customer_id, service_id, this_month, last_month)


async def series(conn: Connection, customer_id: int, service_id: int, start: datetime, end: datetime,
                 step_s: int) -> list[Record]:
    """(bucket, bytes_down, bytes_up) of the service in [start, end) by ``step_s`` (3600 or
    86400), only the buckets with traffic; none for another customer's service."""
    return list(await conn.fetch(
        "SELECT t.bucket, t.bytes_down, t.bytes_up FROM services s "
        "CROSS JOIN LATERAL traffic_series(s.id, $3, $4, $5::int * interval '1 second') t "
        f"WHERE {OWN} ORDER BY t.bucket", customer_id, service_id, start, end, step_s))


async def sessions(conn: Connection, customer_id: int, service_id: int, *, before: tuple[datetime, str] | None,
                   limit: int) -> list[Record]:
    """The service's sessions, newest first, those before the cursor (started_at, acct_unique_id)."""
    params: list[Any] = [customer_id, service_id, limit]
    after = ""
    if before is not None:
        params.extend(before)
        after = "AND (r.started_at, r.acct_unique_id) < ($4::timestamptz, $5::text) "
    return list(await conn.fetch(
        "SELECT r.acct_unique_id, r.started_at, r.stopped_at, "
        "CASE WHEN r.stopped_at IS NULL THEN greatest(extract(epoch FROM now() - r.started_at), 0)::bigint "
        "     ELSE coalesce(nullif(r.session_time_s, 0), extract(epoch FROM r.stopped_at - r.started_at)::bigint) "
        "END AS duration_s, host(r.framed_ip) AS address, r.framed_ipv6_prefix::text AS ipv6_prefix, "
        "r.delegated_ipv6_prefix::text AS delegated_ipv6_prefix, "
        # the NAS's input is what the customer sent: upload; its output is the download
        "r.output_octets AS bytes_down, r.input_octets AS bytes_up, r.terminate_cause "
        "FROM services s JOIN radius_sessions r ON r.username = s.login AND r.service_id = s.id "
        f"WHERE {OWN} {after}ORDER BY r.started_at DESC, r.acct_unique_id DESC LIMIT $3", *params))
