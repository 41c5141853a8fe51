"""The SQL of announcements (announcements.py): the customers a filter selects, per partner, with
how many opted out of marketing and how many lack an address for a channel. Scoped as every
customer query is (admin/queries.py CUSTOMER_SCOPE: ``$1`` partner, ``$2`` creator); deleted
customers are never selected. The messages themselves are made by announce.py."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from admin.auth.store import Connection
from admin.queries import CUSTOMER_SCOPE

_WHERE = (
    f"{CUSTOMER_SCOPE} AND c.status <> 'deleted' AND ($3::text IS NULL OR c.status = $3) "
    "AND ($4::bigint IS NULL OR c.partner_id = $4) AND ($5::text IS NULL OR c.category = $5) "
    "AND ($6::bigint[] IS NULL OR c.id = ANY($6::bigint[]))")


async def targets(conn: Connection, partner: int | None, creator: int | None, *, status: str | None,
                  partner_id: int | None, category: str | None, customer_ids: Sequence[int] | None,
                  ids: bool) -> list[asyncpg.Record]:
    """Per partner: ``customers``, ``opted_out`` (marketing), ``no_email`` (neither a billing email
    nor an email), ``no_phone``; and with ``ids`` the customers' ids (``customer_ids``), in order."""
    return await conn.fetch(
        "SELECT c.partner_id, p.name AS partner, count(*) AS customers, "
        "count(*) FILTER (WHERE c.marketing_opt_out) AS opted_out, "
        "count(*) FILTER (WHERE coalesce(nullif(c.billing_email, ''), nullif(c.email, '')) IS NULL) AS no_email, "
        "count(*) FILTER (WHERE coalesce(c.phone, '') = '') AS no_phone, "
        + ("array_agg(c.id ORDER BY c.id) AS customer_ids " if ids else "NULL::bigint[] AS customer_ids ")
        + f"FROM customers c JOIN partners p ON p.id = c.partner_id WHERE {_WHERE} "
        "GROUP BY c.partner_id, p.name ORDER BY p.name, c.partner_id",
        partner, creator, status, partner_id, category, list(customer_ids) if customer_ids is not None else None)
