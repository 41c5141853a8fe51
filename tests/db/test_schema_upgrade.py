"""schema.sql upgrades the previous release's database in place (DESIGN.md: a test replays the
upgrade from the previous release). ``schema_v4.sql`` is schema.sql as version 4 shipped it."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg

from daemons import db
from tests.db.test_schema import dump

V4 = Path(__file__).with_name("schema_v4.sql")


async def test_a_version_4_database_upgrades_to_what_a_fresh_one_is(pg_server: str, db_url: str) -> None:
    name = f"upgrade_{os.getpid()}"
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    url = db_url.rsplit("/", 1)[0] + f"/{name}"
    conn = await db.connect(url)
    try:
        await conn.execute(V4.read_text())
        assert await conn.fetchval("SELECT version FROM schema_version") == 4
        # Rows of version 4 stay readable through the upgrade.
        await conn.execute("INSERT INTO traffic_usage VALUES (1, now(), 10, 20, 1, 2)")
        await conn.execute("INSERT INTO traffic_unknown VALUES ('192.0.2.1', now(), 5, 1)")
        await db.apply_schema(conn)
        await db.apply_schema(conn)
        await db.check_schema(conn)
        assert await conn.fetchval("SELECT sum(bytes_down) FROM traffic_usage") == 10
        assert await conn.fetchval("SELECT sum(bytes) FROM traffic_unknown") == 5
        await conn.execute("TRUNCATE traffic_usage, traffic_unknown")
    finally:
        await conn.close()
    try:
        assert dump(url) == dump(db_url)
    finally:
        admin = await asyncpg.connect(pg_server)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()
