"""The operations log: every change an administrator or API key makes, in the same transaction
as the change (so a change and its line commit together or not at all)."""

from __future__ import annotations

from typing import Any

from admin.auth.principal import Principal
from admin.auth.store import Connection


async def record(conn: Connection, who: Principal, address: str | None, action: str, object_type: str,
                 object_id: int | None, *, customer_id: int | None = None, partner_id: int | None = None,
                 summary: str = "", before: Any = None, after: Any = None) -> None:
    await conn.execute(
        "INSERT INTO operations_log (admin_id, api_key_id, actor, address, action, object_type, object_id, "
        "customer_id, partner_id, summary, before, after) VALUES ($1, $2, $3, $4::inet, $5, $6, $7, $8, $9, $10, "
        "$11::jsonb, $12::jsonb)",
        who.admin_id, who.api_key_id, who.name, address, action, object_type, object_id, customer_id, partner_id,
        summary, before, after)
