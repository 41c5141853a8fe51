"""The brands' SQL: which partner a host name is, and that partner's brand."""

from __future__ import annotations

import msgspec

from admin.auth.store import Connection
from admin.portal import brand as brands


async def partner_of_host(conn: Connection, host: str) -> int | None:
    """The partner whose portal answers on ``host`` (the Host header, lower case, port kept)."""
    value = await conn.fetchval("SELECT partner_id FROM portal_hosts WHERE host = $1", host.lower())
    return int(value) if value is not None else None


async def default_partner(conn: Connection) -> int | None:
    """The partner a host nobody claims shows: the ISP's own (the first partner)."""
    value = await conn.fetchval("SELECT min(id) FROM partners")
    return int(value) if value is not None else None


async def brand_of(conn: Connection, partner_id: int, *, draft: bool = False) -> brands.Brand:
    """The partner's published brand (``draft``: with its draft instead, for a preview)."""
    row = await conn.fetchrow(
        "SELECT b.published, b.draft, pb.logo_svg, pb.company_name, pb.accent_color, p.name AS partner "
        "FROM partners p LEFT JOIN portal_brands b ON b.partner_id = p.id "
        "LEFT JOIN partner_branding pb ON pb.partner_id = p.id WHERE p.id = $1", partner_id)
    if row is None:
        return brands.Brand()
    stored = row["draft"] if draft and row["draft"] is not None else row["published"]
    stored = dict(stored or {})
    if "accent_color" not in stored and row["accent_color"]:
        stored["accent_color"] = row["accent_color"]
    brand = brands.decode(stored)
    name = brand.name or row["company_name"] or row["partner"]
    return msgspec.structs.replace(brand, name=name, logo_svg=row["logo_svg"])
