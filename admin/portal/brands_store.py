"""The brands' SQL: which partner a host name is, and that partner's brand."""

from __future__ import annotations

import asyncpg
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


# -- the brand editor's (admin/portal/brands.py) ------------------------------------------------

_PARTNER = ("SELECT p.id AS partner_id, p.name AS partner, b.partner_id IS NOT NULL AS stored, b.published, b.draft, "
            "b.published_at, b.updated_by, b.updated_at, "
            "coalesce((SELECT array_agg(h.host ORDER BY h.host) FROM portal_hosts h WHERE h.partner_id = p.id), "
            "'{}') AS hosts, pb.logo_svg IS NOT NULL AS has_logo, pb.company_name, pb.accent_color AS doc_accent "
            "FROM partners p LEFT JOIN portal_brands b ON b.partner_id = p.id "
            "LEFT JOIN partner_branding pb ON pb.partner_id = p.id")


async def partners(conn: Connection, partner: int | None) -> list[asyncpg.Record]:
    """The partners ``partner`` sees (all, for None) with their brand's state and host names."""
    return list(await conn.fetch(f"{_PARTNER} WHERE $1::bigint IS NULL OR p.id = $1 ORDER BY p.name, p.id",
                                 partner))


async def partner(conn: Connection, partner_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    """One partner with its brand's state (``lock``: the partner's row, to change its brand)."""
    return await conn.fetchrow(f"{_PARTNER} WHERE p.id = $1" + (" FOR UPDATE OF p" if lock else ""), partner_id)


async def save_draft(conn: Connection, partner_id: int, draft: dict[str, object], by: str) -> None:
    """The partner's draft (its row made the first time, with nothing published yet)."""
    await conn.execute(
        "INSERT INTO portal_brands (partner_id, draft, updated_by) VALUES ($1, $2::jsonb, $3) "
        "ON CONFLICT (partner_id) DO UPDATE SET draft = EXCLUDED.draft, updated_by = EXCLUDED.updated_by, "
        "updated_at = now()", partner_id, draft, by)


async def publish(conn: Connection, partner_id: int, by: str) -> bool:
    """The draft becomes what the portal shows (the draft stays, equal to it); False without one."""
    done = await conn.fetchval(
        "UPDATE portal_brands SET published = draft, published_at = now(), updated_by = $2, updated_at = now() "
        "WHERE partner_id = $1 AND draft IS NOT NULL RETURNING true", partner_id, by)
    return bool(done)


async def hosts(conn: Connection, partner_id: int) -> list[str]:
    """The host names the partner's portal answers on."""
    return [r["host"] for r in await conn.fetch("SELECT host FROM portal_hosts WHERE partner_id = $1 ORDER BY host",
                                                partner_id)]


async def host_owner(conn: Connection, host: str) -> asyncpg.Record | None:
    """The partner (id, name) that has ``host``, or None."""
    return await conn.fetchrow("SELECT p.id, p.name FROM portal_hosts h JOIN partners p ON p.id = h.partner_id "
                               "WHERE h.host = $1", host)


async def add_host(conn: Connection, host: str, partner_id: int) -> bool:
    """``host`` for the partner; False when some partner has it already."""
    done = await conn.fetchval("INSERT INTO portal_hosts (host, partner_id) VALUES ($1, $2) "
                               "ON CONFLICT (host) DO NOTHING RETURNING true", host, partner_id)
    return bool(done)


async def remove_host(conn: Connection, host: str, partner_id: int) -> bool:
    """Remove the partner's ``host``; False when it is not the partner's."""
    done = await conn.fetchval("DELETE FROM portal_hosts WHERE host = $1 AND partner_id = $2 RETURNING true",
                               host, partner_id)
    return bool(done)


async def all_hosts(conn: Connection) -> dict[str, int]:
    """Every portal host name -> its partner."""
    return {r["host"]: int(r["partner_id"]) for r in await conn.fetch("SELECT host, partner_id FROM portal_hosts")}


async def notify(conn: Connection, channel: str) -> None:
    """A NOTIFY on ``channel`` (sent when the caller's transaction commits)."""
    await conn.execute("SELECT pg_notify($1, '')", channel)
