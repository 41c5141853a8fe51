"""The SQL of the portal's services pages (services.py): the customer's services with their plan,
what billing charged them until and whether they are online; a service's PPPoE password.

Every statement is scoped by the customer logged in (``$1``): another customer's service is not
found, whatever its id. The password is stored as the admin stores it (``services.password``, in
clear: CHAP and MS-CHAPv2 need the password itself); radiusd's subscriber cache reads the row
again on the NOTIFY the services table sends (schema.sql ``lastmile_watch``), so the next login
uses the new password.
"""

from __future__ import annotations

import asyncpg

from admin.auth.store import Connection

Record = asyncpg.Record

COLUMNS = """
s.id, s.login, s.status, host(s.ipv4) AS ipv4, s.ipv6_prefix::text AS ipv6_prefix,
s.delegated_ipv6_prefix::text AS delegated_ipv6_prefix, s.start_date, s.end_date,
t.name AS tariff, t.download_kbps, t.upload_kbps, t.price, t.currency, t.price_includes_tax,
(SELECT max(x.period_end) FROM transactions x WHERE x.service_id = s.id AND x.kind = 'charge'
 AND x.period_start >= coalesce(s.billing_since, '-infinity')) AS billed_until,
(SELECT host(r.framed_ip) FROM radius_sessions r WHERE r.service_id = s.id AND r.stopped_at IS NULL
 ORDER BY r.started_at DESC LIMIT 1) AS session_address,
EXISTS (SELECT 1 FROM radius_sessions r WHERE r.service_id = s.id AND r.stopped_at IS NULL) AS online
"""
"""A service as the portal shows it. ``billed_until``: the end (exclusive) of the last period
charged, as billing's run counts it (admin/billing/store.py SERVICES_DUE)."""


async def services(conn: Connection, customer_id: int) -> list[Record]:
    """The customer's services: ended (archived) ones last, each part by id."""
    return list(await conn.fetch(
        f"SELECT {COLUMNS} FROM services s JOIN tariffs t ON t.id = s.tariff_id WHERE s.customer_id = $1 "
        "ORDER BY s.status = 'archived', s.id", customer_id))


async def service(conn: Connection, customer_id: int, service_id: int, *, lock: bool = False) -> Record | None:
    """One of the customer's services (None: not its own), with the customer's number (the
    operations log names the customer by it)."""
    return await conn.fetchrow(
        f"SELECT {COLUMNS}, c.number AS customer_number FROM services s JOIN tariffs t ON t.id = s.tariff_id "
        "JOIN customers c ON c.id = s.customer_id WHERE s.id = $2 AND s.customer_id = $1"
        + (" FOR UPDATE OF s" if lock else ""), customer_id, service_id)


async def set_password(conn: Connection, customer_id: int, service_id: int, password: str) -> bool:
    """Set the service's PPPoE password (not an ended service's); False: no such service of the customer's."""
    result = await conn.execute(
        "UPDATE services SET password = $3 WHERE id = $2 AND customer_id = $1 AND status <> 'archived'",
        customer_id, service_id, password)
    return bool(result.split()[-1] != "0")
