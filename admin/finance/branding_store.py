"""The SQL of partners' branding (partner_branding: what a partner's documents show of it). A
partner without a row prints its name alone; the editor's first save makes the row."""

from __future__ import annotations

from typing import Any

import asyncpg

from admin.auth.store import Connection

#: The columns the editor writes (partner_branding's, partner_id and updated_at apart).
EDITABLE = ("company_name", "address", "tax_id", "bank", "email", "phone", "website", "logo_svg", "accent_color",
            "footer")

_SELECT = ("SELECT p.id AS partner_id, p.name AS partner, b.partner_id IS NOT NULL AS branded, "
           + ", ".join(f"b.{c}" for c in EDITABLE) + ", b.updated_at "
           "FROM partners p LEFT JOIN partner_branding b ON b.partner_id = p.id")


async def partners(conn: Connection, partner: int | None) -> list[asyncpg.Record]:
    """The partners ``partner`` sees (all, for None) with their branding (NULL columns while none)."""
    return await conn.fetch(f"{_SELECT} WHERE $1::bigint IS NULL OR p.id = $1 ORDER BY p.name, p.id", partner)


async def branding(conn: Connection, partner_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    """A partner with its branding, or None when there is no such partner."""
    return await conn.fetchrow(f"{_SELECT} WHERE p.id = $1" + (" FOR UPDATE OF p" if lock else ""), partner_id)


async def save(conn: Connection, partner_id: int, values: dict[str, Any]) -> None:
    """Write the partner's branding (every EDITABLE column), making its row the first time."""
    columns = list(EDITABLE)
    await conn.execute(
        f"INSERT INTO partner_branding (partner_id, {', '.join(columns)}) "
        f"VALUES ($1, {', '.join(f'${i}' for i in range(2, len(columns) + 2))}) "
        f"ON CONFLICT (partner_id) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in columns)}",
        partner_id, *(values[c] for c in columns))
