"""The SQL of the portal's plan change and stop/resume (plan.py): a service with what its tariff
allows in the portal, the tariffs it may move to, the documents a change issued (or would issue),
a customer's plan-change requests, and the customer's own stops (``service_pauses.by_customer``)
with the worker's job that stops and starts the services over them.

Every statement a customer's request runs is scoped by the customer logged in (``$1``): another
customer's service is not found, whatever its id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import asyncpg

from admin.auth.store import Connection

Record = asyncpg.Record

SERVICE = """
SELECT s.id, s.login, s.status, s.tariff_id, s.customer_id, c.number AS customer_number, c.partner_id,
       t.name AS tariff, t.download_kbps, t.upload_kbps, t.price, t.currency, t.price_includes_tax,
       t.portal_change, t.portal_stop, b.billing_type
FROM services s JOIN tariffs t ON t.id = s.tariff_id JOIN customers c ON c.id = s.customer_id
JOIN customer_billing b ON b.customer_id = c.id
WHERE s.id = $2 AND s.customer_id = $1
"""


async def service(conn: Connection, customer_id: int, service_id: int, *, lock: bool = False) -> Record | None:
    """One of the customer's services with its tariff's portal settings (None: not its own)."""
    return await conn.fetchrow(SERVICE + (" FOR UPDATE OF s" if lock else ""), customer_id, service_id)


TARGET_COLUMNS = "t.id, t.name, t.download_kbps, t.upload_kbps, t.price, t.currency, t.price_includes_tax"
SAME_CURRENCY = "t.currency = (SELECT f.currency FROM tariffs f WHERE f.id = x.tariff_id)"
"""A plan is changed only to one priced in the same currency."""
SOLD_BY = ("(NOT EXISTS (SELECT 1 FROM tariff_partners p WHERE p.tariff_id = t.id) OR EXISTS (SELECT 1 FROM "
           "tariff_partners p WHERE p.tariff_id = t.id AND p.partner_id = {partner}))")
"""...and only to one the customer's partner may sell (admin/partners/: a tariff given to no partner
is every partner's)."""


async def targets(conn: Connection, tariff_id: int, partner_id: int) -> list[Record]:
    """The tariffs a service on ``tariff_id`` of a customer of ``partner_id`` may move to in the
    portal, cheapest first."""
    return list(await conn.fetch(
        f"SELECT {TARGET_COLUMNS} FROM tariff_portal_targets x JOIN tariffs t ON t.id = x.target_id "
        f"WHERE x.tariff_id = $1 AND {SAME_CURRENCY} AND {SOLD_BY.format(partner='$2')} "
        "ORDER BY t.price, t.name, t.id", tariff_id, partner_id))


async def target(conn: Connection, tariff_id: int, target_id: int, partner_id: int) -> Record | None:
    """``target_id`` if a service on ``tariff_id`` of a customer of ``partner_id`` may move to it in
    the portal, else None."""
    return await conn.fetchrow(
        f"SELECT {TARGET_COLUMNS} FROM tariff_portal_targets x JOIN tariffs t ON t.id = x.target_id "
        f"WHERE x.tariff_id = $1 AND x.target_id = $2 AND {SAME_CURRENCY} AND {SOLD_BY.format(partner='$3')}",
        tariff_id, target_id, partner_id)


async def documents(conn: Connection, customer_id: int, ids: Sequence[int]) -> list[Record]:
    """The customer's documents ``ids`` in the order given, each with its lines (``lines``: a
    JSON array of description, net, tax, gross, the amounts as strings)."""
    return list(await conn.fetch(
        "SELECT d.id, d.kind, d.number, d.issued_on, d.due_on, d.currency, d.subtotal, d.tax_total, d.total, "
        "d.note, (SELECT coalesce(jsonb_agg(jsonb_build_object('description', l.description, "
        "'net', l.net::text, 'tax', l.tax::text, 'gross', l.gross::text, 'taxes', l.taxes) ORDER BY l.position), "
        "'[]') FROM document_lines l WHERE l.document_id = d.id) AS lines "
        "FROM unnest($2::bigint[]) WITH ORDINALITY AS i(id, n) JOIN documents d ON d.id = i.id "
        "WHERE d.customer_id = $1 ORDER BY i.n", customer_id, list(ids)))


async def changes_of(conn: Connection, customer_id: int, service_id: int, limit: int = 6) -> list[Record]:
    """The service's latest plan-change and stop documents (credit notes and invoices), newest first."""
    return list(await conn.fetch(
        "SELECT d.id, d.kind, d.number, d.issued_on, d.total, d.currency, d.origin FROM documents d "
        "WHERE d.customer_id = $1 AND d.origin IN ('plan_change', 'pause') AND EXISTS (SELECT 1 FROM document_lines l "
        "WHERE l.document_id = d.id AND l.service_id = $2) ORDER BY d.id DESC LIMIT $3",
        customer_id, service_id, limit))


async def requests(conn: Connection, customer_id: int, service_id: int) -> list[Record]:
    """The customer's open plan-change requests of the service (tickets by rule_key), newest first."""
    return list(await conn.fetch(
        "SELECT k.id, k.subject, k.created_at FROM tickets k WHERE k.customer_id = $1 AND k.rule_key LIKE $2 "
        "AND NOT EXISTS (SELECT 1 FROM ticket_statuses st WHERE st.code = k.status AND st.closed) "
        "ORDER BY k.id DESC LIMIT 5", customer_id, f"portal-plan:{service_id}:%"))


# -- stops ----------------------------------------------------------------------------------------

async def stop_of(conn: Connection, service_id: int, today: dt.date) -> Record | None:
    """The service's stop by the customer in force or to come (not resumed, not over), if any."""
    return await conn.fetchrow(
        "SELECT id, starts_on, ends_on, stopped_at FROM service_pauses WHERE service_id = $1 AND by_customer "
        "AND resumed_at IS NULL AND ends_on > $2 ORDER BY starts_on LIMIT 1", service_id, today)


async def overlapping(conn: Connection, service_id: int, starts_on: dt.date, ends_on: dt.date) -> Record | None:
    """A pause of the service (anyone's) over any day of [starts_on, ends_on)."""
    return await conn.fetchrow(
        "SELECT id, starts_on, ends_on, by_customer FROM service_pauses WHERE service_id = $1 "
        "AND starts_on < $3 AND ends_on > $2 ORDER BY starts_on LIMIT 1", service_id, starts_on, ends_on)


async def mark_by_customer(conn: Connection, service_id: int, starts_on: dt.date, ends_on: dt.date) -> int:
    """Mark the pause billing just inserted (changes.pause) as the customer's own stop; its id."""
    return int(await conn.fetchval(
        "UPDATE service_pauses SET by_customer = true WHERE id = (SELECT max(id) FROM service_pauses "
        "WHERE service_id = $1 AND starts_on = $2 AND ends_on = $3) RETURNING id", service_id, starts_on, ends_on))


async def due(conn: Connection, today: dt.date, service_id: int | None = None) -> tuple[list[int], list[int]]:
    """Stop the services whose customer's stop has begun, start again those whose stop is over
    (``today`` in UTC; one service, or every one): the services stopped and started. A service
    is stopped (``disabled``) only if it is active, and started only if its stop stopped it and it
    is still ``disabled`` (not blocked or ended meanwhile)."""
    started = await conn.fetch(
        "WITH over AS (UPDATE service_pauses SET resumed_at = now() WHERE by_customer AND resumed_at IS NULL "
        "AND ends_on <= $1 AND ($2::bigint IS NULL OR service_id = $2) RETURNING service_id, stopped_at) "
        "UPDATE services s SET status = 'active' FROM over WHERE s.id = over.service_id "
        "AND over.stopped_at IS NOT NULL AND s.status = 'disabled' RETURNING s.id", today, service_id)
    stopped = await conn.fetch(
        "WITH begun AS (UPDATE service_pauses SET stopped_at = now() WHERE by_customer AND stopped_at IS NULL "
        "AND resumed_at IS NULL AND starts_on <= $1 AND ends_on > $1 AND ($2::bigint IS NULL OR service_id = $2) "
        "RETURNING service_id) "
        "UPDATE services s SET status = 'disabled' FROM begun WHERE s.id = begun.service_id AND s.status = 'active' "
        "RETURNING s.id", today, service_id)
    return [r["id"] for r in stopped], [r["id"] for r in started]


async def start_again(conn: Connection, service_id: int, pause_stopped: bool) -> bool:
    """A resumed stop's service active again (if the stop had stopped it and it is still disabled)."""
    if not pause_stopped:
        return False
    result = await conn.execute("UPDATE services SET status = 'active' WHERE id = $1 AND status = 'disabled'",
                                service_id)
    return bool(result.split()[-1] != "0")
