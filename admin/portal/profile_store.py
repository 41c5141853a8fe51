"""The SQL of the portal's profile (profile.py): the customer's own contact details and
preferences, and the languages its messages can be sent in. A change is written by the admin's
own statement (admin/customers/queries.py ``update_customer``), so the customer's ``updated``
event (the customers table's trigger) is the one a change in the admin emits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.customers import queries as customers

COLUMNS = ("id, number, partner_id, status, name, email, billing_email, phone, street, city, zip, language, "
           "marketing_opt_out")


async def profile(conn: Connection, customer_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    """The customer logged in, as its profile shows it (None: it is gone or deleted)."""
    return await conn.fetchrow(f"SELECT {COLUMNS} FROM customers WHERE id = $1 AND status <> 'deleted'"
                               + (" FOR UPDATE" if lock else ""), customer_id)


async def languages(conn: Connection, partner_id: int) -> list[str]:
    """The languages the partner's messages are written in: of its own templates and the default
    ones (a template of language '' is any language's, so it names none)."""
    return [r["language"] for r in await conn.fetch(
        "SELECT DISTINCT language FROM message_templates WHERE language <> '' "
        "AND (partner_id = $1 OR partner_id IS NULL) ORDER BY language", partner_id)]


async def update(conn: Connection, customer_id: int, changes: Mapping[str, Any]) -> asyncpg.Record:
    """Change the customer's ``changes`` (columns of admin/customers/queries.py EDITABLE)."""
    return await customers.update_customer(conn, customer_id, dict(changes))
