"""The built-in roles schema.sql inserts are admin/auth/permissions.py's BUILTIN, exactly."""

from __future__ import annotations

import asyncpg

from admin.auth import permissions


async def test_the_schema_inserts_exactly_the_builtin_roles(conn: asyncpg.Connection) -> None:
    rows = await conn.fetch("SELECT builtin, name, permissions, own_customers_only, require_2fa FROM admin_roles "
                            "ORDER BY id")
    in_db = [(r["builtin"], r["name"], frozenset(r["permissions"]), r["own_customers_only"]) for r in rows]
    in_code = [(b.key, b.name, b.permissions, b.own_customers_only) for b in permissions.BUILTIN]
    assert in_db == in_code, "schema.sql's INSERT INTO admin_roles differs: permissions.sql_rows() gives the rows"
    assert not any(r["require_2fa"] for r in rows)
    # Stored sorted and without duplicates, as sql_rows() writes them.
    assert all(list(r["permissions"]) == sorted(set(r["permissions"])) for r in rows)


async def test_the_builtin_roles_are_not_duplicated_by_a_second_insert(conn: asyncpg.Connection) -> None:
    """schema.sql's INSERT is ON CONFLICT (builtin) DO NOTHING: applying it again adds nothing and
    keeps a role's edited permissions."""
    await conn.execute("UPDATE admin_roles SET permissions = '{dashboard.view}' WHERE builtin = 'manager'")
    await conn.execute("INSERT INTO admin_roles (name, builtin, permissions) VALUES ('Manager 2', 'manager', '{}') "
                       "ON CONFLICT (builtin) DO NOTHING")
    assert await conn.fetchval("SELECT count(*) FROM admin_roles") == len(permissions.BUILTIN)
    assert await conn.fetchval("SELECT permissions FROM admin_roles WHERE builtin = 'manager'") == ["dashboard.view"]
