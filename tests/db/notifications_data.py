"""Rows the notification engine's tests build on: partners, customers, invoices, payments, rules
and settings, written as the admin would write them (invoices through the ledger)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.billing import ledger
from admin.payments import record

D = Decimal
UTC = dt.UTC


async def partner(conn: Connection, name: str = "Main") -> int:
    pid: int = await conn.fetchval(
        "INSERT INTO partners (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
        name)
    await conn.execute("INSERT INTO partner_branding (partner_id, company_name, email) VALUES ($1, $2, $3) "
                       "ON CONFLICT DO NOTHING", pid, f"{name} Net", f"billing@{name.lower()}.example")
    return pid


async def tariff(conn: Connection, price: str = "31.00") -> int:
    tid: int = await conn.fetchval(
        "INSERT INTO tariffs (name, download_kbps, upload_kbps, price) VALUES ($1, 10000, 2000, $2) "
        "ON CONFLICT (name) DO UPDATE SET price = excluded.price RETURNING id", f"Home {price}", D(price))
    return tid


async def customer(conn: Connection, partner_id: int, n: int, *, email: str | None = "", phone: str | None = None,
                   billing_type: str = "recurring", language: str | None = None, opt_out: bool = False,
                   service_price: str | None = None, end_date: dt.date | None = None, country: str | None = "AT",
                   billing_email: str | None = None) -> int:
    """A customer (email ``c<n>@example.com`` unless told), with a service when ``service_price``."""
    cid: int = await conn.fetchval(
        "INSERT INTO customers (partner_id, number, name, email, phone, language, marketing_opt_out, country, "
        "billing_email) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        partner_id, f"C{n:06d}", f"Customer {n}", f"c{n}@example.com" if email == "" else email, phone, language,
        opt_out, country, billing_email)
    await conn.execute("UPDATE customer_billing SET billing_type = $2 WHERE customer_id = $1", cid, billing_type)
    if service_price is not None:
        await conn.execute("INSERT INTO services (customer_id, tariff_id, login, password, start_date, end_date) "
                           "VALUES ($1, $2, $3, 'pw', '2026-01-01', $4)", cid, await tariff(conn, service_price),
                           f"user{n}", end_date)
    return cid


async def invoice(conn: Connection, cid: int, partner_id: int, issued_on: dt.date, due_on: dt.date,
                  amount: str = "30.00", kind: str = "invoice") -> tuple[int, str]:
    """An issued invoice (or proforma) of one line: its id and number."""
    async with conn.transaction():
        [issued] = await ledger.issue(conn, [ledger.NewDocument(
            kind=kind, customer_id=cid, partner_id=partner_id, currency="EUR", issued_on=issued_on,
            origin="manual" if kind == "invoice" else "proforma", due_on=due_on,
            lines=(ledger.NewLine("Internet", D(amount)),))])
    return issued.id, issued.number


async def pay(conn: Connection, cid: int, amount: str, on: dt.date) -> int:
    """A cash payment at the desk (its receipt, its credit, allocated oldest first): the payment's id."""
    done = await record.record(conn, record.NewPayment(cid, D(amount), on, "cash"), dunning=False, today=on)
    return done.id


async def rule(conn: Connection, kind: str, partner_id: int | None = None, **columns: Any) -> None:
    """Enable the rule of ``kind`` (of a partner, or the default) with these columns."""
    values = {"enabled": True, **columns}
    names = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(3, len(values) + 3))
    target = "(partner_id, kind) WHERE partner_id IS NOT NULL" if partner_id is not None \
        else "(kind) WHERE partner_id IS NULL"
    await conn.execute(f"INSERT INTO notice_rules (partner_id, kind, {names}) VALUES ($1, $2, {params}) "
                       f"ON CONFLICT {target} DO UPDATE SET " + ", ".join(f"{n} = excluded.{n}" for n in values),
                       partner_id, kind, *values.values())


async def settings(conn: Connection, partner_id: int | None = None, **columns: Any) -> None:
    """The notification settings row of a partner (or the default) with these columns."""
    names = ", ".join(columns)
    params = ", ".join(f"${i}" for i in range(2, len(columns) + 2))
    target = ("(partner_id) WHERE partner_id IS NOT NULL" if partner_id is not None
              else "((true)) WHERE partner_id IS NULL")
    sets = ", ".join(f"{n} = excluded.{n}" for n in columns) or "updated_by = excluded.updated_by"
    await conn.execute(f"INSERT INTO notification_settings (partner_id{', ' if columns else ''}{names}) "
                       f"VALUES ($1{', ' if columns else ''}{params}) ON CONFLICT {target} DO UPDATE SET {sets}",
                       partner_id, *columns.values())


async def messages(conn: Connection, *where: str) -> list[asyncpg.Record]:
    condition = " AND ".join(where) or "true"
    return await conn.fetch(f"SELECT * FROM messages WHERE {condition} ORDER BY id")


def at(text: str) -> dt.datetime:
    """``"2026-03-06 19:30"`` in UTC."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)
