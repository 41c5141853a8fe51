"""The SQL of the administration area: administrators, roles, API keys, the operations log, the
admin settings and custom field definitions. ``partner_id`` arguments scope a query to one
partner's rows (None: every partner's)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.keys import Network
from admin.queries import keyset

Row = asyncpg.Record | Mapping[str, Any]
"""A row as the functions here return it (or a dict of the same keys)."""

# --- who is asking --------------------------------------------------------------------------------


async def is_super(conn: Connection, admin_id: int | None, api_key_id: int | None) -> bool:
    """Whether the administrator (or API key) has the built-in super role."""
    if admin_id is not None:
        sql = "SELECT r.builtin = 'super' FROM administrators a JOIN admin_roles r ON r.id = a.role_id WHERE a.id = $1"
        return bool(await conn.fetchval(sql, admin_id))
    sql = "SELECT r.builtin = 'super' FROM api_keys k JOIN admin_roles r ON r.id = k.role_id WHERE k.id = $1"
    return bool(await conn.fetchval(sql, api_key_id))


async def partners(conn: Connection, partner_id: int | None) -> list[asyncpg.Record]:
    """The partners to choose from (only its own for a partner's administrator)."""
    return await conn.fetch("SELECT id, name FROM partners WHERE $1::bigint IS NULL OR id = $1 ORDER BY name",
                            partner_id)


async def partner_exists(conn: Connection, partner_id: int) -> bool:
    return bool(await conn.fetchval("SELECT true FROM partners WHERE id = $1", partner_id))


# --- administrators -------------------------------------------------------------------------------

_ADMIN = """
SELECT a.id, a.login, a.name, a.email, a.role_id, r.name AS role, r.builtin, r.permissions AS role_permissions,
       a.partner_id, p.name AS partner, a.enabled, a.totp_secret IS NOT NULL AS two_factor,
       cardinality(a.recovery_codes) AS recovery_codes, a.grants, a.revokes, a.idle_timeout_s,
       a.absolute_timeout_s, a.last_login_at, a.created_at, a.updated_at
FROM administrators a JOIN admin_roles r ON r.id = a.role_id LEFT JOIN partners p ON p.id = a.partner_id
"""


@dataclass(frozen=True, slots=True)
class AdminFilter:
    q: str = ""                 # part of the login, name or email
    role_id: int | None = None
    enabled: bool | None = None


async def administrators(conn: Connection, partner_id: int | None, f: AdminFilter, sort_sql: str, direction: str,
                         after: Sequence[Any] | None, limit: int) -> list[asyncpg.Record]:
    cond, order, params = keyset(sort_sql, direction, after, 5, "a.id")
    return await conn.fetch(
        _ADMIN + "WHERE ($1::bigint IS NULL OR a.partner_id = $1) AND ($2 = '' OR a.login ILIKE '%' || $2 || '%' "
        "OR a.name ILIKE '%' || $2 || '%' OR a.email ILIKE '%' || $2 || '%') "
        "AND ($3::bigint IS NULL OR a.role_id = $3) AND ($4::boolean IS NULL OR a.enabled = $4) "
        f"AND {cond} {order} LIMIT {int(limit)}",
        partner_id, f.q, f.role_id, f.enabled, *params)


async def administrator(conn: Connection, admin_id: int, partner_id: int | None) -> asyncpg.Record | None:
    """One administrator, or None (also when it is another partner's)."""
    return await conn.fetchrow(_ADMIN + "WHERE a.id = $1 AND ($2::bigint IS NULL OR a.partner_id = $2)",
                               admin_id, partner_id)


async def session_count(conn: Connection, admin_id: int) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM admin_sessions WHERE admin_id = $1 AND expires_at > now()", admin_id))


@dataclass(frozen=True, slots=True)
class AdminRow:
    """The columns of an administrator an administrator sets."""

    login: str
    name: str
    email: str | None
    role_id: int
    partner_id: int | None
    idle_timeout_s: int
    absolute_timeout_s: int
    grants: list[str]
    revokes: list[str]


async def insert_administrator(conn: Connection, a: AdminRow, password_hash: str) -> int:
    return int(await conn.fetchval(
        "INSERT INTO administrators (login, name, email, role_id, partner_id, idle_timeout_s, absolute_timeout_s, "
        "grants, revokes, password_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        a.login, a.name, a.email, a.role_id, a.partner_id, a.idle_timeout_s, a.absolute_timeout_s, a.grants,
        a.revokes, password_hash))


async def update_administrator(conn: Connection, admin_id: int, a: AdminRow, password_hash: str | None) -> None:
    await conn.execute(
        "UPDATE administrators SET login = $2, name = $3, email = $4, role_id = $5, partner_id = $6, "
        "idle_timeout_s = $7, absolute_timeout_s = $8, grants = $9, revokes = $10, "
        "password_hash = coalesce($11, password_hash), updated_at = now() WHERE id = $1",
        admin_id, a.login, a.name, a.email, a.role_id, a.partner_id, a.idle_timeout_s, a.absolute_timeout_s,
        a.grants, a.revokes, password_hash)


async def set_enabled(conn: Connection, admin_id: int, enabled: bool) -> None:
    await conn.execute("UPDATE administrators SET enabled = $2, updated_at = now() WHERE id = $1", admin_id, enabled)


async def end_sessions(conn: Connection, admin_id: int, keep: bytes | None = None) -> int:
    """Log the administrator out everywhere (but the session ``keep``); how many sessions ended."""
    done = await conn.execute("DELETE FROM admin_sessions WHERE admin_id = $1 AND token_hash IS DISTINCT FROM $2",
                              admin_id, keep)
    return int(done.split()[-1])


async def reset_two_factor(conn: Connection, admin_id: int) -> None:
    await conn.execute("UPDATE administrators SET totp_secret = NULL, totp_last_step = NULL, recovery_codes = '{}', "
                       "updated_at = now() WHERE id = $1", admin_id)


# --- roles ----------------------------------------------------------------------------------------

_ROLE = "SELECT r.id, r.name, r.builtin, r.permissions, r.own_customers_only, r.require_2fa FROM admin_roles r "


async def roles(conn: Connection) -> list[asyncpg.Record]:
    """Every role with how many administrators and (unrevoked) API keys have it."""
    return await conn.fetch(
        "SELECT r.id, r.name, r.builtin, r.permissions, r.own_customers_only, r.require_2fa, "
        "       coalesce(a.n, 0) AS administrators, coalesce(k.n, 0) AS api_keys "
        "FROM admin_roles r "
        "LEFT JOIN (SELECT role_id, count(*) AS n FROM administrators GROUP BY role_id) a ON a.role_id = r.id "
        "LEFT JOIN (SELECT role_id, count(*) AS n FROM api_keys WHERE revoked_at IS NULL GROUP BY role_id) k "
        "  ON k.role_id = r.id "
        "ORDER BY r.builtin IS NULL, r.id")


async def role(conn: Connection, role_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(_ROLE + "WHERE r.id = $1", role_id)


async def role_usage(conn: Connection, role_id: int) -> tuple[int, int]:
    """(administrators, API keys, revoked ones included) that have the role."""
    row = await conn.fetchrow("SELECT (SELECT count(*) FROM administrators WHERE role_id = $1), "
                              "       (SELECT count(*) FROM api_keys WHERE role_id = $1)", role_id)
    assert row is not None
    return int(row[0]), int(row[1])


async def insert_role(conn: Connection, name: str, permissions: Sequence[str], own_customers_only: bool,
                      require_2fa: bool) -> int:
    return int(await conn.fetchval(
        "INSERT INTO admin_roles (name, permissions, own_customers_only, require_2fa) VALUES ($1, $2, $3, $4) "
        "RETURNING id", name, sorted(permissions), own_customers_only, require_2fa))


async def update_role(conn: Connection, role_id: int, name: str, permissions: Sequence[str],
                      own_customers_only: bool, require_2fa: bool) -> None:
    await conn.execute("UPDATE admin_roles SET name = $2, permissions = $3, own_customers_only = $4, "
                       "require_2fa = $5, updated_at = now() WHERE id = $1",
                       role_id, name, sorted(permissions), own_customers_only, require_2fa)


async def delete_role(conn: Connection, role_id: int) -> None:
    await conn.execute("DELETE FROM admin_roles WHERE id = $1 AND builtin IS NULL", role_id)


# --- API keys -------------------------------------------------------------------------------------

_KEY = """
SELECT k.id, k.name, k.prefix, k.role_id, r.name AS role, r.builtin, k.partner_id, p.name AS partner,
       k.allow_from, k.created_by, c.login AS created_by_login, k.created_at, k.last_used_at, k.revoked_at
FROM api_keys k JOIN admin_roles r ON r.id = k.role_id LEFT JOIN partners p ON p.id = k.partner_id
LEFT JOIN administrators c ON c.id = k.created_by
"""


async def api_keys(conn: Connection, partner_id: int | None, revoked: bool | None, after: Sequence[Any] | None,
                   limit: int) -> list[asyncpg.Record]:
    """API keys, newest first."""
    return await conn.fetch(
        _KEY + "WHERE ($1::bigint IS NULL OR k.partner_id = $1) AND ($2::bigint IS NULL OR k.id < $2) "
        "AND ($3::boolean IS NULL OR (k.revoked_at IS NOT NULL) = $3) "
        f"ORDER BY k.id DESC LIMIT {int(limit)}", partner_id, after[1] if after else None, revoked)


async def api_key(conn: Connection, key_id: int, partner_id: int | None) -> asyncpg.Record | None:
    return await conn.fetchrow(_KEY + "WHERE k.id = $1 AND ($2::bigint IS NULL OR k.partner_id = $2)",
                               key_id, partner_id)


async def insert_api_key(conn: Connection, name: str, prefix: str, key_hash: bytes, role_id: int,
                         partner_id: int | None, allow_from: Sequence[Network], created_by: int | None) -> int:
    return int(await conn.fetchval(
        "INSERT INTO api_keys (name, prefix, key_hash, role_id, partner_id, allow_from, created_by) "
        "VALUES ($1, $2, $3, $4, $5, $6::cidr[], $7) RETURNING id",
        name, prefix, key_hash, role_id, partner_id, list(allow_from), created_by))


async def revoke_api_key(conn: Connection, key_id: int) -> bytes | None:
    """Revoke the key; its hash (None when it was revoked already)."""
    key_hash = await conn.fetchval("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL "
                                   "RETURNING key_hash", key_id)
    return None if key_hash is None else bytes(key_hash)


async def api_requests(conn: Connection, key_id: int, before: dt.datetime | None, limit: int) -> list[asyncpg.Record]:
    """The key's requests, newest first, from before ``before`` (keyset on the time)."""
    return await conn.fetch(
        "SELECT at, method, path, status, address, duration_ms FROM api_requests "
        f"WHERE key_id = $1 AND ($2::timestamptz IS NULL OR at < $2) ORDER BY at DESC LIMIT {int(limit)}",
        key_id, before)


# --- the operations log ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OplogFilter:
    actor: str = ""
    customer_id: int | None = None
    object_type: str = ""
    object_id: int | None = None
    action: str = ""
    since: dt.datetime | None = None    # at >= since
    until: dt.datetime | None = None    # at < until


async def operations(conn: Connection, partner_id: int | None, f: OplogFilter, before_id: int | None,
                     limit: int) -> list[asyncpg.Record]:
    """Lines of the operations log, newest first (keyset on the id: those below ``before_id``)."""
    return await conn.fetch(
        "SELECT id, at, admin_id, api_key_id, actor, address, action, object_type, object_id, customer_id, "
        "       partner_id, summary, before, after "
        "FROM operations_log WHERE ($1::bigint IS NULL OR partner_id = $1) AND ($2 = '' OR actor = $2) "
        "AND ($3::bigint IS NULL OR customer_id = $3) AND ($4 = '' OR object_type = $4) "
        "AND ($5::bigint IS NULL OR object_id = $5) AND ($6 = '' OR action = $6) "
        "AND ($7::timestamptz IS NULL OR at >= $7) AND ($8::timestamptz IS NULL OR at < $8) "
        f"AND ($9::bigint IS NULL OR id < $9) ORDER BY id DESC LIMIT {int(limit)}",
        partner_id, f.actor, f.customer_id, f.object_type, f.object_id, f.action, f.since, f.until, before_id)


async def object_types(conn: Connection) -> list[str]:
    """The object types the log has rows of (for the filter's list): the distinct leading values of
    the object index, read by a skip scan (one index probe per type, not a scan of the log)."""
    rows = await conn.fetch(
        "WITH RECURSIVE t AS (SELECT min(object_type) AS v FROM operations_log UNION ALL "
        "SELECT (SELECT min(object_type) FROM operations_log WHERE object_type > t.v) FROM t WHERE t.v IS NOT NULL) "
        "SELECT v FROM t WHERE v IS NOT NULL")
    return [r["v"] for r in rows]


# --- settings and custom fields -------------------------------------------------------------------


async def admin_settings(conn: Connection) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT require_2fa, updated_at FROM admin_settings")
    assert row is not None
    return row


async def set_require_2fa(conn: Connection, required: bool) -> None:
    await conn.execute("UPDATE admin_settings SET require_2fa = $1, updated_at = now()", required)


_FIELD = "SELECT id, object_type, key, label, kind, choices, required, position FROM custom_fields "


async def custom_fields(conn: Connection, object_type: str | None = None) -> list[asyncpg.Record]:
    """The definitions of one object type (or all), in form order."""
    return await conn.fetch(_FIELD + "WHERE $1::text IS NULL OR object_type = $1 ORDER BY object_type, position, id",
                            object_type)


async def custom_field(conn: Connection, field_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(_FIELD + "WHERE id = $1", field_id)


async def insert_custom_field(conn: Connection, object_type: str, key: str, label: str, kind: str,
                              choices: Sequence[str], required: bool, position: int) -> int:
    return int(await conn.fetchval(
        "INSERT INTO custom_fields (object_type, key, label, kind, choices, required, position) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        object_type, key, label, kind, list(choices), required, position))


async def update_custom_field(conn: Connection, field_id: int, label: str, kind: str, choices: Sequence[str],
                              required: bool, position: int) -> None:
    await conn.execute("UPDATE custom_fields SET label = $2, kind = $3, choices = $4, required = $5, position = $6 "
                       "WHERE id = $1", field_id, label, kind, list(choices), required, position)


async def delete_custom_field(conn: Connection, field_id: int) -> None:
    await conn.execute("DELETE FROM custom_fields WHERE id = $1", field_id)
