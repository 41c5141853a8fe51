"""The dashboard's figures, each one query (scoped to the principal's partner)."""

from __future__ import annotations

from admin.auth.store import Connection
from admin.network.queries import OUT_OF_SYNC
from admin.queries import CUSTOMER_SCOPE


async def figures(conn: Connection, partner_id: int | None, creator_id: int | None) -> dict[str, int]:
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE c.status = 'new') AS new, "
        "       count(*) FILTER (WHERE c.status = 'active') AS active, "
        "       count(*) FILTER (WHERE c.status = 'blocked') AS blocked, "
        "       count(*) FILTER (WHERE c.status = 'inactive') AS inactive "
        f"FROM customers c WHERE {CUSTOMER_SCOPE} AND c.status <> 'deleted'", partner_id, creator_id)
    online = await conn.fetchval(
        "SELECT count(*) FROM radius_sessions r JOIN services s ON s.id = r.service_id "
        f"JOIN customers c ON c.id = s.customer_id WHERE r.stopped_at IS NULL AND {CUSTOMER_SCOPE}",
        partner_id, creator_id) if partner_id is not None or creator_id is not None else await conn.fetchval(
        "SELECT count(*) FROM radius_sessions WHERE stopped_at IS NULL")
    traffic = await conn.fetchval(
        "SELECT coalesce(sum(u.bytes_down + u.bytes_up), 0) FROM traffic_usage u "
        "WHERE u.minute >= date_trunc('minute', now()) - interval '5 minutes' "
        "AND (($1::bigint IS NULL AND $2::bigint IS NULL) OR u.service_id IN (SELECT s.id FROM services s "
        f"JOIN customers c ON c.id = s.customer_id WHERE {CUSTOMER_SCOPE}))", partner_id, creator_id)
    out_of_sync = await conn.fetchval(
        "SELECT count(*) FROM routers r LEFT JOIN router_sync y ON y.router_id = r.id "
        f"WHERE {OUT_OF_SYNC}")
    rejects = await conn.fetchval(
        "SELECT count(*) FROM radius_postauth WHERE result = 'reject' AND at > now() - interval '1 hour'")
    assert row is not None
    return {**dict(row), "online": int(online), "traffic_5min": int(traffic), "routers_out_of_sync": int(out_of_sync),
            "rejects_hour": int(rejects)}
