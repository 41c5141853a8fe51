"""The SQL of the automatic tickets (automatic.py): the settings, the cursors in event_cursors, and
what each kind reads (a tariff's active services, CPE faults, failed collections and autopay
charges, routers out of sync)."""

from __future__ import annotations

import datetime as dt

import asyncpg

from admin.auth.store import Connection
from admin.network.queries import OUT_OF_SYNC

FAULTS_CURSOR = "tickets.cpe_faults"
AUTOPAY_CURSOR = "tickets.autopay_failures"


async def settings(conn: Connection) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT tariff_tickets, cpe_fault_tickets, payment_failure_tickets, router_drift_minutes, group_id "
        "FROM ticket_settings")


async def active_services(conn: Connection, tariff_id: int) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM services WHERE tariff_id = $1 AND status = 'active'", tariff_id))


async def advance(conn: Connection, name: str, upto: dt.datetime, first: dt.timedelta) -> dt.datetime:
    """Move the cursor ``name`` to ``upto`` (a first run starts ``first`` before it) and return where
    it was; the row stays locked until the caller's transaction ends, so runs do not overlap."""
    await conn.execute("INSERT INTO event_cursors (name, position) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                       name, upto - first)
    since: dt.datetime = await conn.fetchval(
        "SELECT position FROM event_cursors WHERE name = $1 FOR UPDATE", name)
    if since < upto:
        await conn.execute("UPDATE event_cursors SET position = $2 WHERE name = $1", name, upto)
    return since


async def faults(conn: Connection, since: dt.datetime, upto: dt.datetime) -> list[asyncpg.Record]:
    """The CPE faults recorded after ``since`` and up to ``upto``, with their device's customer."""
    return list(await conn.fetch(
        "SELECT f.id, f.device_id, f.at, f.source, f.rpc, f.code, f.message, d.cwmp_id, d.customer_id, "
        "c.partner_id FROM acs_faults f JOIN acs_devices d ON d.id = f.device_id "
        "LEFT JOIN customers c ON c.id = d.customer_id WHERE f.at > $1 AND f.at <= $2 ORDER BY f.at, f.id",
        since, upto))


async def failed_collections(conn: Connection, since: dt.date) -> list[asyncpg.Record]:
    """Failed SEPA collections of batches collected on ``since`` or later that have no ticket yet
    (dd_collections keeps no time of its failure: the ticket's rule_key says which are done)."""
    return list(await conn.fetch(
        "SELECT x.id, x.customer_id, c.partner_id, x.amount, b.currency, x.reason, x.end_to_end_id, "
        "b.collection_date, d.number AS document_number FROM dd_collections x "
        "JOIN dd_batches b ON b.id = x.batch_id JOIN customers c ON c.id = x.customer_id "
        "JOIN documents d ON d.id = x.document_id "
        "WHERE x.status = 'failed' AND b.collection_date >= $1 "
        "AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.rule_key = 'dd_collection:' || x.id) ORDER BY x.id",
        since))


async def failed_autopay(conn: Connection, since: dt.datetime, upto: dt.datetime) -> list[asyncpg.Record]:
    """Autopay charges that failed after ``since`` and up to ``upto`` (their last change)."""
    return list(await conn.fetch(
        "SELECT i.id, i.customer_id, c.partner_id, i.gateway, i.amount, i.currency, i.error, i.updated_at, "
        "d.number AS document_number FROM payment_intents i JOIN customers c ON c.id = i.customer_id "
        "LEFT JOIN documents d ON d.id = i.document_id "
        "WHERE i.purpose = 'autopay' AND i.status = 'failed' AND i.updated_at > $1 AND i.updated_at <= $2 "
        "ORDER BY i.updated_at, i.id", since, upto))


async def routers_out_of_sync(conn: Connection, before: dt.datetime) -> list[asyncpg.Record]:
    """Enabled routers out of sync (as the network pages count them) since ``before`` or earlier:
    since their last successful run, or since they were added when none succeeded yet."""
    return list(await conn.fetch(
        "SELECT r.id, r.name, r.host, coalesce(y.last_success_at, r.created_at) AS since, y.reachable, "
        "y.last_error, y.last_attempt_at FROM routers r LEFT JOIN router_sync y ON y.router_id = r.id "
        f"WHERE {OUT_OF_SYNC} AND coalesce(y.last_success_at, r.created_at) <= $1 ORDER BY r.id", before))
