"""The SQL of customers, services and the search box (scoped: $1 partner, $2 creator)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.queries import CUSTOMER_SCOPE, keyset

CUSTOMER_COLUMNS = ("c.id, c.number, c.name, c.partner_id, c.category, c.status, c.email, c.billing_email, "
                    "c.other_emails, c.phone, c.other_phones, c.street, c.city, c.zip, c.country, c.notes, c.custom, "
                    "c.created_by, c.created_at, c.updated_at, c.language, c.marketing_opt_out")
SORTS = {"id": "c.id", "name": "lower(c.name)", "number": "c.number", "status": "c.status",
         "city": "coalesce(c.city, '')"}
EDITABLE = ("name", "category", "email", "billing_email", "other_emails", "phone", "other_phones", "street", "city",
            "zip", "country", "notes", "custom", "language", "marketing_opt_out")


def _words(text: str) -> str | None:
    """A prefix tsquery of the words of ``text``: "ann wal" -> "ann:* & wal:*"."""
    words = [w for w in re.split(r"[^\w]+", text.lower()) if w]
    return " & ".join(f"{w}:*" for w in words[:6]) or None


async def list_customers(conn: Connection, partner: int | None, creator: int | None, *, status: str | None,
                         partner_id: int | None, category: str | None, q: str | None, sort: str, direction: str,
                         after: list[Any] | None, limit: int) -> list[asyncpg.Record]:
    condition, order, params = keyset(SORTS[sort], direction, after, 7, "c.id")
    return await conn.fetch(
        f"SELECT {CUSTOMER_COLUMNS}, p.name AS partner, {SORTS[sort]} AS sort_value, "
        "(SELECT count(*) FROM services s WHERE s.customer_id = c.id AND s.status <> 'archived') AS services "
        f"FROM customers c JOIN partners p ON p.id = c.partner_id WHERE {CUSTOMER_SCOPE} "
        "AND (c.status = $3 OR ($3 IS NULL AND c.status <> 'deleted')) "
        "AND ($4::bigint IS NULL OR c.partner_id = $4) AND ($5::text IS NULL OR c.category = $5) "
        "AND ($6::text IS NULL OR c.search_words @@ to_tsquery('simple', $6)) "
        f"AND {condition} {order} LIMIT {int(limit) + 1}",
        partner, creator, status, partner_id, category, _words(q) if q else None, *params)


async def customer(conn: Connection, partner: int | None, creator: int | None, customer_id: int,
                   *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {CUSTOMER_COLUMNS}, p.name AS partner FROM customers c JOIN partners p ON p.id = c.partner_id "
        f"WHERE c.id = $3 AND {CUSTOMER_SCOPE}" + (" FOR UPDATE OF c" if lock else ""), partner, creator, customer_id)


async def partners(conn: Connection, partner: int | None) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT id, name FROM partners WHERE $1::bigint IS NULL OR id = $1 ORDER BY name", partner)


async def next_number(conn: Connection) -> str:
    """The next customer number, C0000001 style, after the highest one of that shape."""
    top = await conn.fetchval("SELECT max(number) FROM customers WHERE number ~ '^C[0-9]{7}$'")
    return f"C{(int(top[1:]) if top else 0) + 1:07d}"


async def create_customer(conn: Connection, values: dict[str, Any], created_by: int | None) -> asyncpg.Record:
    columns = ["number", "created_by", *values]
    number = await next_number(conn)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    row = await conn.fetchrow(
        f"INSERT INTO customers AS c ({', '.join(columns)}) VALUES ({placeholders}) RETURNING {CUSTOMER_COLUMNS}",
        number, created_by, *values.values())
    assert row is not None
    return row


async def update_customer(conn: Connection, customer_id: int, values: dict[str, Any]) -> asyncpg.Record:
    assert set(values) <= set(EDITABLE) | {"status"}, values
    sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(values, start=2))
    row = await conn.fetchrow(f"UPDATE customers AS c SET {sets} WHERE c.id = $1 RETURNING {CUSTOMER_COLUMNS}",
                              customer_id, *values.values())
    assert row is not None
    return row


SERVICE_COLUMNS = ("s.id, s.customer_id, s.tariff_id, t.name AS tariff, s.login, s.status, s.router_id, "
                   "host(s.ipv4) AS ipv4, s.pool_id, s.ipv6_prefix::text AS ipv6_prefix, "
                   "s.delegated_ipv6_prefix::text AS delegated_ipv6_prefix, s.mac::text AS mac, s.simultaneous_use, "
                   "s.start_date, s.end_date, s.custom, s.created_at, s.updated_at, s.cpe_serial, "
                   "EXISTS (SELECT 1 FROM radius_sessions r WHERE r.service_id = s.id AND r.stopped_at IS NULL) "
                   "AS online")


async def services_of(conn: Connection, customer_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {SERVICE_COLUMNS}, ro.name AS router, po.name AS pool, t.download_kbps, t.upload_kbps, "
        "(SELECT host(r.framed_ip) FROM radius_sessions r WHERE r.service_id = s.id AND r.stopped_at IS NULL "
        " ORDER BY r.started_at DESC LIMIT 1) AS session_ip "
        "FROM services s JOIN tariffs t ON t.id = s.tariff_id LEFT JOIN routers ro ON ro.id = s.router_id "
        "LEFT JOIN ip_pools po ON po.id = s.pool_id WHERE s.customer_id = $1 ORDER BY s.status = 'archived', s.id",
        customer_id)


async def service(conn: Connection, partner: int | None, creator: int | None, service_id: int,
                  *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {SERVICE_COLUMNS}, s.password, c.name AS customer, c.partner_id, c.status AS customer_status, "
        "ro.name AS router, po.name AS pool, t.download_kbps, t.upload_kbps "
        "FROM services s JOIN customers c ON c.id = s.customer_id JOIN tariffs t ON t.id = s.tariff_id "
        "LEFT JOIN routers ro ON ro.id = s.router_id LEFT JOIN ip_pools po ON po.id = s.pool_id "
        f"WHERE s.id = $3 AND {CUSTOMER_SCOPE}" + (" FOR UPDATE OF s" if lock else ""), partner, creator, service_id)


SERVICE_EDITABLE = ("tariff_id", "login", "password", "router_id", "status", "ipv4", "pool_id", "ipv6_prefix",
                    "delegated_ipv6_prefix", "mac", "simultaneous_use", "start_date", "end_date", "custom",
                    "cpe_serial")
_CASTS = {"ipv4": "::inet", "ipv6_prefix": "::cidr", "delegated_ipv6_prefix": "::cidr", "mac": "::macaddr"}


async def create_service(conn: Connection, customer_id: int, values: dict[str, Any]) -> int:
    assert set(values) <= set(SERVICE_EDITABLE), values
    columns = ["customer_id", *values]
    placeholders = ", ".join(f"${i}{_CASTS.get(c, '')}" for i, c in enumerate(columns, start=1))
    return int(await conn.fetchval(f"INSERT INTO services ({', '.join(columns)}) VALUES ({placeholders}) RETURNING id",
                                   customer_id, *values.values()))


async def update_service(conn: Connection, service_id: int, values: dict[str, Any]) -> None:
    assert set(values) <= set(SERVICE_EDITABLE), values
    sets = ", ".join(f"{k} = ${i}{_CASTS.get(k, '')}" for i, k in enumerate(values, start=2))
    await conn.execute(f"UPDATE services SET {sets} WHERE id = $1", service_id, *values.values())


async def stop_services(conn: Connection, customer_id: int) -> int:
    """An inactive customer's services stop (disabled): sessions are disconnected by the CoA trigger."""
    result = await conn.execute("UPDATE services SET status = 'disabled' WHERE customer_id = $1 "
                                "AND status IN ('active', 'blocked')", customer_id)
    return int(result.split()[-1])


async def choices(conn: Connection) -> dict[str, list[tuple[int, str]]]:
    """What a service form offers: tariffs, routers, pools (one round trip)."""
    rows = await conn.fetch(
        "SELECT 'tariffs' AS kind, id, name FROM tariffs UNION ALL SELECT 'routers', id, name FROM routers "
        "UNION ALL SELECT 'pools', id, name || ' (' || network::text || ')' FROM ip_pools ORDER BY 1, 3")
    out: dict[str, list[tuple[int, str]]] = {"tariffs": [], "routers": [], "pools": []}
    for r in rows:
        out[r["kind"]].append((r["id"], r["name"]))
    return out


async def devices_of(conn: Connection, customer_id: int) -> list[asyncpg.Record]:
    """The customer's CPE devices (those the ACS linked to it, or an operator did), for its page."""
    return await conn.fetch(
        "SELECT d.id, d.cwmp_id, d.manufacturer, d.product_class, d.software_version, d.last_inform_at, "
        "s.login AS service_login FROM acs_devices d LEFT JOIN services s ON s.id = d.service_id "
        "WHERE d.customer_id = $1 ORDER BY d.id LIMIT 50", customer_id)


async def recent_changes(conn: Connection, customer_id: int, limit: int = 10) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT at, actor, action, object_type, object_id, summary FROM operations_log "
                            "WHERE customer_id = $1 ORDER BY id DESC LIMIT $2", customer_id, limit)


# -- the search box -------------------------------------------------------------------------------

def _kind(q: str) -> str:
    try:
        ipaddress.ip_address(q)
        return "ip"
    except ValueError:
        pass
    if re.fullmatch(r"([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}", q):
        return "mac"
    if "@" in q:
        return "email"
    if re.fullmatch(r"\+?[0-9 ()./-]{5,}", q) and sum(ch.isdigit() for ch in q) >= 5:
        return "phone"
    return "text"


async def search(conn: Connection, partner: int | None, creator: int | None, q: str, at: datetime | None,
                 limit: int) -> list[asyncpg.Record]:
    """Customers matching ``q``, best first: (customer_id, number, name, status, match, score).

    What ``q`` looks like decides where to look: an address (a service's static address, a live
    session's, or at ``at`` / most recently a past session's), a MAC, an email, a phone (by its last
    digits), else a login, a customer number, and the words of names and addresses."""
    kind = _kind(q)
    branches: list[str] = []
    args: list[Any] = [partner, creator]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if kind == "ip":
        ip = arg(q)
        branches.append(f"SELECT s.customer_id, 'IP ' || host(s.ipv4) || ' (static, ' || s.login || ')', 100 "
                        f"FROM services s WHERE s.ipv4 = {ip}::inet")
        branches.append(f"SELECT s.customer_id, 'IP ' || host(r.framed_ip) || ' (online now, ' || r.username "
                        "|| ')', 95 "
                        f"FROM radius_sessions r JOIN services s ON s.id = r.service_id "
                        f"WHERE r.framed_ip = {ip}::inet AND r.stopped_at IS NULL")
        when = arg(at)
        branches.append(
            "SELECT x.customer_id, x.match, 80 FROM (SELECT s.customer_id, 'IP ' || host(r.framed_ip) || ' (' || "
            "r.username || ', ' || to_char(r.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' to ' || "
            "coalesce(to_char(r.stopped_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), 'now') || ' UTC)' AS match "
            f"FROM radius_sessions r JOIN services s ON s.id = r.service_id WHERE r.framed_ip = {ip}::inet "
            f"AND ({when}::timestamptz IS NULL OR (r.started_at <= {when} AND (r.stopped_at IS NULL "
            f"OR r.stopped_at >= {when}))) ORDER BY r.started_at DESC LIMIT 20) x")
    elif kind == "mac":
        mac, text_mac = arg(q), arg(q.upper().replace("-", ":"))
        branches.append(f"SELECT s.customer_id, 'MAC ' || s.mac::text || ' (' || s.login || ')', 100 FROM services s "
                        f"WHERE s.mac = {mac}::macaddr")
        branches.append("SELECT s.customer_id, 'MAC ' || r.calling_station_id || ' (session of ' || r.username || ')', "
                        "90 FROM radius_sessions r JOIN services s ON s.id = r.service_id "
                        f"WHERE r.stopped_at IS NULL AND upper(r.calling_station_id) = {text_mac}")
    elif kind == "email":
        email = arg(q.lower())
        branches.append(f"SELECT c.id, 'email ' || c.email, 90 FROM customers c WHERE lower(c.email) = {email}")
        branches.append(f"SELECT c.id, 'email ' || c.email, 60 FROM customers c WHERE lower(c.email) LIKE "
                        f"replace(replace({email}, '%', ''), '_', '\\_') || '%'")
        branches.append(f"SELECT c.id, 'email ' || {email}, 85 FROM customers c WHERE c.other_emails @> ARRAY[{email}] "
                        f"OR lower(c.billing_email) = {email}")
    elif kind == "phone":
        digits = arg("".join(ch for ch in q if ch.isdigit())[::-1])
        branches.append(f"SELECT c.id, 'phone ' || c.phone, 85 FROM customers c "
                        f"WHERE reverse(c.phone_digits) LIKE {digits} || '%'")
    if kind in ("text", "phone"):
        text = arg(q.lower())
        branches.append(f"SELECT s.customer_id, 'login ' || s.login, 100 FROM services s WHERE lower(s.login) = {text}")
        branches.append(f"SELECT s.customer_id, 'login ' || s.login, 70 FROM services s WHERE lower(s.login) LIKE "
                        f"replace(replace({text}, '%', ''), '_', '\\_') || '%' AND lower(s.login) <> {text}")
        branches.append(f"SELECT c.id, 'number ' || c.number, 100 FROM customers c WHERE c.number = upper({text})")
        words = _words(q)
        if words:
            tsq = arg(words)
            branches.append(
                f"SELECT c.id, CASE WHEN to_tsvector('simple', c.name) @@ to_tsquery('simple', {tsq}) THEN 'name' "
                "ELSE 'address ' || concat_ws(', ', c.street, concat_ws(' ', c.zip, c.city)) END, "
                f"CASE WHEN lower(c.name) = {text} THEN 90 ELSE 50 END "
                f"FROM customers c WHERE c.search_words @@ to_tsquery('simple', {tsq})")
    lim = arg(limit)
    union = " UNION ALL ".join(f"({b} LIMIT 200)" for b in branches)
    return await conn.fetch(
        f"SELECT c.id AS customer_id, c.number, c.name, c.status, m.match, m.score "
        f"FROM (SELECT DISTINCT ON (customer_id) customer_id, match, score "
        f"FROM ({union}) AS h(customer_id, match, score) "
        f"ORDER BY customer_id, score DESC) m JOIN customers c ON c.id = m.customer_id "
        f"WHERE {CUSTOMER_SCOPE} AND c.status <> 'deleted' ORDER BY m.score DESC, c.id LIMIT {lim}", *args)


def references(services: Sequence[asyncpg.Record]) -> list[str]:
    """What keeps a customer from being deleted (its services still running)."""
    live = [s["login"] for s in services if s["status"] in ("active", "blocked")]
    return [f"service {login} is still running" for login in live]
