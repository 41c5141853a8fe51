"""The dashboard's SQL (/portal/): a customer's open invoices, sessions online, this month's
traffic, portal messages and open tickets. Every query is scoped by the customer's id (``$1``):
another customer's row is never read. The balance, the ledger, the next invoice and a prepaid
customer's daily cost come from billing's and the notices' own queries (dashboard.py calls them).
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from admin.auth.store import Connection
from admin.finance.queries import DOCUMENT_COLUMNS
from admin.notifications.context_store import PREPAID_COST
from admin.portal import support_store

OPEN_DOCUMENTS = 20
MESSAGES_SHOWN = 5


async def open_documents(conn: Connection, customer_id: int) -> list[asyncpg.Record]:
    """The customer's invoices and proforma invoices still asking for money, oldest due first."""
    return await conn.fetch(
        f"SELECT {DOCUMENT_COLUMNS} FROM documents d JOIN billing_documents_state s ON s.id = d.id "
        "JOIN customers c ON c.id = d.customer_id WHERE d.customer_id = $1 AND d.kind IN ('invoice', 'proforma') "
        "AND s.status IN ('unpaid', 'partially_paid', 'overdue') "
        "ORDER BY coalesce(d.due_on, d.issued_on), d.id LIMIT $2", customer_id, OPEN_DOCUMENTS)


async def prepaid_cost(conn: Connection, customer_id: int, on: dt.date) -> asyncpg.Record | None:
    """A prepaid customer's balance, minimum and daily cost as the prepaid notices count them
    (admin/notifications/context_store.py PREPAID_COST); None: the customer is not prepaid."""
    return await conn.fetchrow(PREPAID_COST, [customer_id], on)


async def online(conn: Connection, customer_id: int) -> list[asyncpg.Record]:
    """The customer's open sessions: its services' logins online now, their address and uptime."""
    return await conn.fetch(
        "SELECT s.login, host(r.framed_ip) AS address, r.framed_ipv6_prefix::text AS ipv6_prefix, r.started_at, "
        "greatest(extract(epoch FROM now() - r.started_at), 0)::bigint AS uptime_s "
        "FROM services s JOIN radius_sessions r ON r.service_id = s.id AND r.stopped_at IS NULL "
        "WHERE s.customer_id = $1 ORDER BY s.login, r.started_at", customer_id)


async def traffic(conn: Connection, customer_id: int) -> list[asyncpg.Record]:
    """This calendar month's bytes (UTC) of each of the customer's services (traffic_month_total,
    what a fair-usage cap would count) with its plan."""
    return await conn.fetch(
        "SELECT s.id, s.login, t.name AS tariff, m.bytes_down, m.bytes_up FROM services s "
        "JOIN tariffs t ON t.id = s.tariff_id CROSS JOIN LATERAL traffic_month_total(s.id) m "
        "WHERE s.customer_id = $1 AND s.status <> 'archived' ORDER BY s.login", customer_id)


async def messages(conn: Connection, customer_id: int, limit: int = MESSAGES_SHOWN) -> list[asyncpg.Record]:
    """The customer's latest portal messages, unread first."""
    return await conn.fetch(
        "SELECT id, subject, created_at, coalesce(sent_at, created_at) AS at, read_at FROM messages "
        "WHERE customer_id = $1 AND channel = 'portal' AND status = 'sent' "
        "ORDER BY read_at IS NOT NULL, coalesce(sent_at, created_at) DESC, id DESC LIMIT $2", customer_id, limit)


async def unread(conn: Connection, customer_id: int) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM messages WHERE customer_id = $1 AND channel = 'portal' AND status = 'sent' "
        "AND read_at IS NULL", customer_id))


async def message(conn: Connection, customer_id: int, message_id: int, *, mark: bool = True) -> asyncpg.Record | None:
    """One of the customer's portal messages, marked read the first time (``mark``: false for
    staff looking as the customer); None: not its own."""
    return await conn.fetchrow(
        "WITH opened AS (UPDATE messages SET read_at = now() WHERE id = $2 AND customer_id = $1 "
        "AND channel = 'portal' AND status = 'sent' AND read_at IS NULL AND $3 RETURNING id, read_at) "
        "SELECT m.id, m.subject, m.body, coalesce(m.sent_at, m.created_at) AS at, "
        "coalesce(m.read_at, o.read_at) AS read_at FROM messages m LEFT JOIN opened o ON o.id = m.id "
        "WHERE m.id = $2 AND m.customer_id = $1 AND m.channel = 'portal' AND m.status = 'sent'",
        customer_id, message_id, mark)


async def open_tickets(conn: Connection, customer_id: int) -> int:
    """The customer's tickets not closed (nor merged into another), of those it sees (the support
    pages' :data:`support_store.VISIBLE`)."""
    return int(await conn.fetchval(
        "SELECT count(*) FROM tickets t JOIN ticket_statuses st ON st.code = t.status "
        f"WHERE {support_store.VISIBLE} AND NOT st.closed AND t.merged_into IS NULL", customer_id))
