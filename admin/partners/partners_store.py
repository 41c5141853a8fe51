"""The SQL of partners, their modes, the tariffs they may sell and their commission rates.

Scoped by ``scope``: the partner of the administrator asking (None: the ISP's, every partner);
a partner's administrator sees its own partner and the sub-partners under it, at any depth."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg

from admin.auth.store import Connection

SCOPE = ("($1::bigint IS NULL OR p.id IN (WITH RECURSIVE down(id) AS (SELECT $1::bigint UNION "
         "SELECT s.id FROM partners s JOIN down ON s.parent_id = down.id) SELECT id FROM down))")
"""The partners ``$1`` sees: every one (NULL), else it and its sub-partners."""

COLUMNS = ("p.id, p.name, p.parent_id, p.legal_name, p.vat_id, p.street, p.city, p.zip, p.country, p.contact_name, "
           "p.email, p.phone, p.bank_name, p.iban, p.bic, p.commission_percent, p.created_at, p.updated_at")

# The figures, one statement for any number of partners: grouped per partner once, then joined.
# MRR: the tariff prices of active services; debt: per customer and currency, the ledger's balance
# (credits less debits, as admin/billing/store.py balance() counts it) where it is below zero.
_FIGURES = (
    "cust AS (SELECT partner_id, count(*) AS n FROM customers WHERE status <> 'deleted' GROUP BY partner_id), "
    "mrr AS (SELECT partner_id, array_agg(currency ORDER BY currency) AS currencies, "
    "array_agg(total::text ORDER BY currency) AS totals FROM (SELECT c.partner_id, t.currency, sum(t.price) AS total "
    "FROM services s JOIN customers c ON c.id = s.customer_id JOIN tariffs t ON t.id = s.tariff_id "
    "WHERE s.status = 'active' GROUP BY c.partner_id, t.currency) x GROUP BY partner_id), "
    "debt AS (SELECT partner_id, array_agg(currency ORDER BY currency) AS currencies, "
    "array_agg(total::text ORDER BY currency) AS totals FROM (SELECT c.partner_id, b.currency, "
    "-sum(b.balance) AS total "
    "FROM (SELECT customer_id, currency, sum(CASE direction WHEN 'credit' THEN amount ELSE -amount END) AS balance "
    "FROM transactions GROUP BY customer_id, currency) b JOIN customers c ON c.id = b.customer_id "
    "WHERE b.balance < 0 GROUP BY c.partner_id, b.currency) y GROUP BY partner_id)")
_MODE = ("coalesce((SELECT m.mode FROM partner_modes m WHERE m.partner_id = p.id AND m.starts_on <= $2 "
         "ORDER BY m.starts_on DESC LIMIT 1), 'direct') AS mode, "
         "(SELECT m.mode FROM partner_modes m WHERE m.partner_id = p.id AND m.starts_on > $2 "
         "ORDER BY m.starts_on LIMIT 1) AS next_mode, "
         "(SELECT m.starts_on FROM partner_modes m WHERE m.partner_id = p.id AND m.starts_on > $2 "
         "ORDER BY m.starts_on LIMIT 1) AS next_starts_on")
_SELECT = (f"WITH {_FIGURES} SELECT {COLUMNS}, {_MODE}, coalesce(cust.n, 0) AS customers, "
           "mrr.currencies AS mrr_currencies, mrr.totals AS mrr_totals, debt.currencies AS debt_currencies, "
           "debt.totals AS debt_totals FROM partners p LEFT JOIN cust ON cust.partner_id = p.id "
           "LEFT JOIN mrr ON mrr.partner_id = p.id LEFT JOIN debt ON debt.partner_id = p.id ")


def amounts(currencies: Sequence[str] | None, totals: Sequence[str] | None) -> list[tuple[str, Decimal]]:
    """The figure's (currency, amount) pairs, as the query gives them (text, so never a float)."""
    return [(c, Decimal(t)) for c, t in zip(currencies or [], totals or [], strict=True)]


async def list_partners(conn: Connection, scope: int | None, today: dt.date, *, after: int | None = None,
                        limit: int | None = None) -> list[asyncpg.Record]:
    """The partners ``scope`` sees, by id (after ``after``; ``limit`` of them), with their figures."""
    return await conn.fetch(
        _SELECT + f"WHERE {SCOPE} AND ($3::bigint IS NULL OR p.id > $3) ORDER BY p.id LIMIT $4",
        scope, today, after, limit)


async def partner(conn: Connection, scope: int | None, partner_id: int, today: dt.date) -> asyncpg.Record | None:
    return await conn.fetchrow(_SELECT + f"WHERE {SCOPE} AND p.id = $3", scope, today, partner_id)


async def exists(conn: Connection, scope: int | None, partner_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    """The partner's own columns, if ``scope`` sees it (``lock``: FOR UPDATE)."""
    return await conn.fetchrow(f"SELECT {COLUMNS} FROM partners p WHERE {SCOPE} AND p.id = $2"
                               + (" FOR UPDATE" if lock else ""), scope, partner_id)


async def names(conn: Connection, scope: int | None) -> list[asyncpg.Record]:
    """Every partner ``scope`` sees (id, name, parent_id), by name: a form's parent choices."""
    return await conn.fetch(f"SELECT p.id, p.name, p.parent_id FROM partners p WHERE {SCOPE} ORDER BY p.name, p.id",
                            scope)


async def under(conn: Connection, partner_id: int) -> list[int]:
    """The partner and every partner under it, at any depth."""
    return [r["id"] for r in await conn.fetch(
        "WITH RECURSIVE down(id) AS (SELECT $1::bigint UNION SELECT s.id FROM partners s JOIN down "
        "ON s.parent_id = down.id) SELECT id FROM down", partner_id)]


async def children(conn: Connection, partner_id: int) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT id, name, city FROM partners WHERE parent_id = $1 ORDER BY name, id", partner_id)


async def create(conn: Connection, values: dict[str, Any]) -> int:
    columns = list(values)
    places = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    return int(await conn.fetchval(f"INSERT INTO partners ({', '.join(columns)}) VALUES ({places}) RETURNING id",
                                   *values.values()))


async def update(conn: Connection, partner_id: int, values: dict[str, Any]) -> None:
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(values, start=2))
    await conn.execute(f"UPDATE partners SET {sets}, updated_at = now() WHERE id = $1", partner_id, *values.values())


# -- modes ----------------------------------------------------------------------------------------

async def modes(conn: Connection, partner_id: int) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT starts_on, mode, created_by, created_at FROM partner_modes WHERE partner_id = $1 "
                            "ORDER BY starts_on", partner_id)


async def mode_row(conn: Connection, partner_id: int, starts_on: dt.date) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT starts_on, mode, created_by, created_at FROM partner_modes "
                               "WHERE partner_id = $1 AND starts_on = $2 FOR UPDATE", partner_id, starts_on)


async def put_mode(conn: Connection, partner_id: int, starts_on: dt.date, mode: str, who: str) -> None:
    """The mode from ``starts_on`` (a row there already is replaced)."""
    await conn.execute(
        "INSERT INTO partner_modes (partner_id, starts_on, mode, created_by) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (partner_id, starts_on) DO UPDATE SET mode = EXCLUDED.mode, created_by = EXCLUDED.created_by, "
        "created_at = now()", partner_id, starts_on, mode, who)


async def delete_mode(conn: Connection, partner_id: int, starts_on: dt.date) -> None:
    await conn.execute("DELETE FROM partner_modes WHERE partner_id = $1 AND starts_on = $2", partner_id, starts_on)


# -- tariffs it may sell --------------------------------------------------------------------------

async def tariffs(conn: Connection, partner_id: int) -> list[asyncpg.Record]:
    """Every tariff by name: whether the partner may sell it (``allowed``), whether it is given to
    particular partners at all (``restricted``), and to which others (``others``, their names)."""
    return await conn.fetch(
        "SELECT t.id, t.name, t.price, t.currency, "
        "EXISTS (SELECT 1 FROM tariff_partners x WHERE x.tariff_id = t.id) AS restricted, "
        "(NOT EXISTS (SELECT 1 FROM tariff_partners x WHERE x.tariff_id = t.id) OR EXISTS (SELECT 1 FROM "
        "tariff_partners x WHERE x.tariff_id = t.id AND x.partner_id = $1)) AS allowed, "
        "ARRAY(SELECT p.name FROM tariff_partners x JOIN partners p ON p.id = x.partner_id WHERE x.tariff_id = t.id "
        "AND x.partner_id <> $1 ORDER BY p.name) AS others FROM tariffs t ORDER BY t.name, t.id", partner_id)


async def given(conn: Connection, partner_id: int) -> list[int]:
    """The tariffs given to the partner (its rows of tariff_partners)."""
    return [r["tariff_id"] for r in await conn.fetch(
        "SELECT tariff_id FROM tariff_partners WHERE partner_id = $1 ORDER BY tariff_id", partner_id)]


async def set_tariffs(conn: Connection, partner_id: int, tariff_ids: Sequence[int]) -> None:
    await conn.execute("DELETE FROM tariff_partners WHERE partner_id = $1 AND NOT tariff_id = ANY($2::bigint[])",
                       partner_id, list(tariff_ids))
    await conn.execute("INSERT INTO tariff_partners (tariff_id, partner_id) SELECT unnest($2::bigint[]), $1 "
                       "ON CONFLICT DO NOTHING", partner_id, list(tariff_ids))


async def may_sell(conn: Connection, partner_id: int, tariff_id: int) -> bool:
    """Whether a customer of the partner may have a service on the tariff: the tariff is given to
    no partner (every partner's), or to this one."""
    return bool(await conn.fetchval(
        "SELECT NOT EXISTS (SELECT 1 FROM tariff_partners WHERE tariff_id = $2) OR EXISTS (SELECT 1 FROM "
        "tariff_partners WHERE tariff_id = $2 AND partner_id = $1)", partner_id, tariff_id))


# -- commission rates -----------------------------------------------------------------------------

async def rates(conn: Connection, partner_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT r.tariff_id, t.name AS tariff, r.category, r.percent FROM partner_commission_rates r "
        "LEFT JOIN tariffs t ON t.id = r.tariff_id WHERE r.partner_id = $1 ORDER BY r.category NULLS FIRST, t.name",
        partner_id)


async def set_rates(conn: Connection, partner_id: int, percent: Decimal, tariff_rates: Sequence[tuple[int, Decimal]],
                    category_rates: Sequence[tuple[str, Decimal]]) -> None:
    await conn.execute("UPDATE partners SET commission_percent = $2, updated_at = now() WHERE id = $1",
                       partner_id, percent)
    await conn.execute("DELETE FROM partner_commission_rates WHERE partner_id = $1", partner_id)
    await conn.executemany("INSERT INTO partner_commission_rates (partner_id, tariff_id, percent) VALUES ($1, $2, $3)",
                           [(partner_id, t, p) for t, p in tariff_rates])
    await conn.executemany("INSERT INTO partner_commission_rates (partner_id, category, percent) VALUES ($1, $2, $3)",
                           [(partner_id, c, p) for c, p in category_rates])


async def tariff_names(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT id, name FROM tariffs ORDER BY name, id")
