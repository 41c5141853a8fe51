"""The SQL of the helpdesk's reports (reports.py): the SLA report (first response of the tickets
opened in a period, in sla.py's buckets, per agent or group) and agent performance.

Both read ``tickets`` alone (the columns store.py keeps: first_response_at/by, responses and
response_seconds, resolved_at, reopened) over the tickets created in ``[since, until)``
(``tickets_created_idx`` for a short period, a scan for a long one), one aggregate each: no
per-ticket subquery or join, so a year of a million tickets is one pass (bench/tickets: 1.4 s
for the SLA report before these were written as they are, see docs/benchmarks.md).
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from admin.auth.store import Connection
from admin.tickets import sla

_PERIOD = "t.created_at >= $1 AND t.created_at < $2 AND t.merged_into IS NULL"
_BUCKET = sla.BUCKET_SQL.format(x="f.x")
# the first response's seconds, once per ticket, as double precision (extract() is numeric: slower)
_SECONDS = "CROSS JOIN LATERAL (SELECT date_part('epoch', t.first_response_at - t.created_at) AS x) f"

SLA = """
SELECT CASE WHEN $3 = 'group' THEN t.group_id ELSE coalesce(t.first_response_by, t.assignee_id) END AS key,
       {bucket} AS bucket, count(*) AS n
FROM tickets t {seconds} WHERE {period}{scope}
GROUP BY 1, 2
"""

AGENTS = """
SELECT coalesce(t.assignee_id, t.first_response_by) AS key, count(*) AS assigned,
       count(*) FILTER (WHERE t.resolved_at IS NOT NULL) AS resolved,
       count(*) FILTER (WHERE t.reopened > 0) AS reopened,
       count(*) FILTER (WHERE t.resolved_at IS NOT NULL AND t.responses = 1 AND t.reopened = 0) AS first_contact,
       avg(date_part('epoch', t.first_response_at - t.created_at)) AS first_response_s,
       sum(t.response_seconds) / nullif(sum(t.responses), 0) AS response_s,
       avg(date_part('epoch', t.resolved_at - t.created_at)) AS resolution_s
FROM tickets t WHERE {period}{scope} AND coalesce(t.assignee_id, t.first_response_by) IS NOT NULL
GROUP BY 1
"""


def _scope(partner: int | None, creator: int | None, first: int) -> tuple[str, list[int]]:
    """The principal's condition, only what applies (a condition that is always true would still
    cost each row its test, in the generic plan of a prepared statement), and its arguments."""
    where, args = "", []
    if partner is not None:
        args.append(partner)
        where += f" AND t.partner_id = ${first + len(args) - 1}"
    if creator is not None:
        args.append(creator)
        where += (f" AND EXISTS (SELECT 1 FROM customers c WHERE c.id = t.customer_id "
                  f"AND c.created_by = ${first + len(args) - 1})")
    return where, args


async def sla_counts(conn: Connection, partner: int | None, creator: int | None, since: dt.datetime,
                     until: dt.datetime, by: str) -> list[asyncpg.Record]:
    """(key, bucket, n): tickets per agent (who answered first, else the assignee) or group
    (``by``), and bucket (sla.LABELS; key NULL: nobody)."""
    scope, args = _scope(partner, creator, 4)
    sql = SLA.format(bucket=_BUCKET, seconds=_SECONDS, period=_PERIOD, scope=scope)
    return list(await conn.fetch(sql, since, until, by, *args))


async def agent_rows(conn: Connection, partner: int | None, creator: int | None, since: dt.datetime,
                     until: dt.datetime) -> list[asyncpg.Record]:
    scope, args = _scope(partner, creator, 3)
    return list(await conn.fetch(AGENTS.format(period=_PERIOD, scope=scope), since, until, *args))


async def names(conn: Connection, by: str, ids: list[int]) -> dict[int, str]:
    """The agents' (or groups') names by id."""
    if not ids:
        return {}
    sql = ("SELECT id, name FROM ticket_groups WHERE id = ANY($1::bigint[])" if by == "group" else
           "SELECT id, coalesce(nullif(name, ''), login) AS name FROM administrators WHERE id = ANY($1::bigint[])")
    return {r["id"]: r["name"] for r in await conn.fetch(sql, ids)}
