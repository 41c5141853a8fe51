"""The SQL of the notification settings (notification_settings: a partner's mail server, SMS
gateway and send window; partner_id NULL: the default of every partner without a row). A
partner's row is used whole, never merged with the default one; "use the default" deletes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from admin.auth.store import Connection

#: The columns the settings page writes (the sealed ones among them: SECRETS).
EDITABLE = ("timezone", "send_days", "send_from", "send_until", "skip_holidays", "reminder_days",
            "mail_from", "mail_reply_to", "smtp_host", "smtp_port", "smtp_security", "smtp_username",
            "smtp_password", "mail_per_minute", "sms_url", "sms_format", "sms_to_field", "sms_text_field",
            "sms_from_field", "sms_sender", "sms_auth_header", "sms_id_field", "sms_region", "sms_per_minute")
SECRETS = ("smtp_password", "sms_auth_header")

_COLUMNS = "id, partner_id, " + ", ".join(EDITABLE) + ", updated_by, updated_at"


async def partner_name(conn: Connection, partner_id: int) -> str | None:
    name: str | None = await conn.fetchval("SELECT name FROM partners WHERE id = $1", partner_id)
    return name


async def partners(conn: Connection, partner: int | None) -> list[asyncpg.Record]:
    """The partners ``partner`` sees (all, for None), each with whether it has settings of its own."""
    return await conn.fetch(
        "SELECT p.id, p.name, EXISTS (SELECT 1 FROM notification_settings s WHERE s.partner_id = p.id) AS own "
        "FROM partners p WHERE $1::bigint IS NULL OR p.id = $1 ORDER BY p.name, p.id", partner)


async def row(conn: Connection, partner_id: int | None, *, lock: bool = False) -> asyncpg.Record | None:
    """The row of ``partner_id`` (None: the default row), or None when it has none."""
    return await conn.fetchrow(f"SELECT {_COLUMNS} FROM notification_settings "
                               "WHERE partner_id IS NOT DISTINCT FROM $1" + (" FOR UPDATE" if lock else ""),
                               partner_id)


async def rows(conn: Connection, partner_id: int | None) -> list[asyncpg.Record]:
    """The default row and, for a partner, its own (the default first): what the page shows."""
    return await conn.fetch(f"SELECT {_COLUMNS} FROM notification_settings "
                            "WHERE partner_id IS NULL OR partner_id = $1 ORDER BY partner_id NULLS FIRST", partner_id)


async def save(conn: Connection, partner_id: int | None, values: Mapping[str, Any], by: str) -> asyncpg.Record:
    """Write every EDITABLE column of ``partner_id``'s row (None: the default), making it the first time."""
    columns = list(EDITABLE)
    target = ("(partner_id) WHERE partner_id IS NOT NULL" if partner_id is not None
              else "((true)) WHERE partner_id IS NULL")
    found = await conn.fetchrow(
        f"INSERT INTO notification_settings (partner_id, {', '.join(columns)}, updated_by) "
        f"VALUES ($1, {', '.join(f'${i}' for i in range(2, len(columns) + 2))}, ${len(columns) + 2}) "
        f"ON CONFLICT {target} DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in (*columns, "updated_by"))
        + f" RETURNING {_COLUMNS}",
        partner_id, *(values[c] for c in columns), by)
    assert found is not None
    return found


async def delete(conn: Connection, partner_id: int) -> asyncpg.Record | None:
    """Delete a partner's own row (it follows the default again); the row it was, or None."""
    return await conn.fetchrow(f"DELETE FROM notification_settings WHERE partner_id = $1 RETURNING {_COLUMNS}",
                               partner_id)
