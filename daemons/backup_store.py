"""The SQL of ``lastmile backup`` and ``lastmile restore``: what a database holds, who uses it,
and creating or dropping a database to restore into."""

from __future__ import annotations

import asyncpg

from daemons.db import Connection

_SYSTEM = "nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_%'"


async def schema_version(conn: Connection) -> int | None:
    """The lastmile schema version the database holds, None if it has no lastmile schema."""
    try:
        version: int | None = await conn.fetchval("SELECT version FROM schema_version")
    except asyncpg.UndefinedTableError:
        return None
    return version


async def server_version(conn: Connection) -> tuple[int, str]:
    """The server's major version and its version text (``16.4``)."""
    row = await conn.fetchrow(
        "SELECT current_setting('server_version_num')::int / 10000 AS major, "
        "split_part(current_setting('server_version'), ' ', 1) AS version"
    )
    assert row is not None
    return int(row["major"]), str(row["version"])


async def table_count(conn: Connection) -> int:
    """Tables (plain and partitioned, partitions included) outside PostgreSQL's own schemas."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.relkind IN ('r', 'p') AND {_SYSTEM}"
    )
    return count


async def schemas(conn: Connection) -> list[str]:
    """The schemas outside PostgreSQL's own (``public`` and any other made in the database)."""
    return [r["nspname"] for r in await conn.fetch(f"SELECT nspname FROM pg_namespace WHERE {_SYSTEM} ORDER BY 1")]


async def other_sessions(conn: Connection, database: str) -> list[str]:
    """Who else is connected to ``database``: ``application@client`` (or the user) per session."""
    rows = await conn.fetch(
        "SELECT coalesce(nullif(application_name, ''), usename, '?') AS who, "
        "coalesce(host(client_addr), 'local') AS client FROM pg_stat_activity "
        "WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend' ORDER BY 1, 2",
        database,
    )
    return [f"{r['who']}@{r['client']}" for r in rows]


async def database_exists(conn: Connection, name: str) -> bool:
    found: bool = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name)
    return found


async def create_database(conn: Connection, name: str) -> None:
    """An empty database (from template0, as PostgreSQL advises for restores), owned by this role."""
    await conn.execute(f"CREATE DATABASE {_identifier(name)} TEMPLATE template0")


async def drop_database(conn: Connection, name: str) -> None:
    await conn.execute(f"DROP DATABASE IF EXISTS {_identifier(name)}")


def drop_schemas_sql(names: list[str]) -> str:
    """SQL that empties a database of everything in ``names`` and leaves an empty ``public``, usable
    by every role as in a new database (its owner is now the role that restores)."""
    statements = [f"DROP SCHEMA {_identifier(n)} CASCADE;" for n in names]
    return "\n".join([*statements, "CREATE SCHEMA IF NOT EXISTS public;", "GRANT USAGE ON SCHEMA public TO PUBLIC;"])


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
