"""schema.sql's hash line names the schema schema.sql makes: a change without a version bump (and
a step, and the new hash) fails here, a comment does not.

The hash is of what PostgreSQL makes of the file, so it is taken on the PostgreSQL the recorded
hashes were taken on: the embedded one's major version (on a test server of another major
version, these tests start an embedded server of their own).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from daemons import db, schemafiles
from daemons.pgembed import EmbeddedPostgres, bin_dir
from tests.conftest import free_port
from tests.db.schemadb import new_database, schema_hash


@pytest.fixture(scope="module")
async def hash_server(pg_server: str) -> AsyncIterator[str]:
    """Admin URL of a server of the embedded PostgreSQL's major version: the test server when it
    is one, else an embedded server of this module's own."""
    version = subprocess.run([str(bin_dir() / "postgres"), "--version"], capture_output=True, text=True, check=True)
    embedded = int(version.stdout.split()[-1].split(".")[0])
    conn = await asyncpg.connect(pg_server)
    try:
        major = conn.get_server_version().major
    finally:
        await conn.close()
    if major == embedded:
        yield pg_server
        return
    base = Path(tempfile.mkdtemp(prefix="lastmile-hash-pg-"))
    server = EmbeddedPostgres(base / "pg", free_port(), durable=False)
    await asyncio.to_thread(server.start)
    try:
        yield server.admin_url()
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def fresh(hash_server: str) -> AsyncIterator[str]:
    """A database `lastmile db init` made from schema.sql."""
    async with new_database(hash_server, "hash") as url:
        conn = await db.connect(url)
        try:
            await db.apply_schema(conn)
        finally:
            await conn.close()
        yield url


async def hash_of(server: str, sql: str) -> str:
    async with new_database(server, "hash") as url:
        conn = await db.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
        return await schema_hash(url)


async def test_schema_sql_is_the_schema_its_hash_names(fresh: str) -> None:
    schema = db.load_schema()
    actual = await schema_hash(fresh)
    v = schema.version
    assert actual == schema.hash, (
        f"schema.sql makes another schema than the one recorded for version {v} (hash {schema.hash}); "
        f"it makes {actual}. If you changed the schema: bump '-- lastmile schema version' to {v + 1}, add "
        f"daemons/upgrades/{v + 1:03d}.sql (the step {v} -> {v + 1}) and record '-- lastmile schema hash {actual}' "
        f"(if you had bumped the version for this change already, record that hash). If you changed nothing and "
        f"a new PostgreSQL's pg_dump writes the schema differently, change the normalisation in tests/db/schemadb.py "
        f"instead: the hash of a released version never changes."
    )


async def test_comments_leave_the_hash_alone_and_a_new_index_does_not(hash_server: str, fresh: str) -> None:
    sql = db.schema_sql()
    recorded = await schema_hash(fresh)
    # A comment line at the top, and one inside a function body (PostgreSQL keeps the body's text).
    commented = "-- a note\n" + sql.replace("BEGIN\n    NEW.updated_at := now();", "BEGIN\n    -- a note\n"
                                            "    NEW.updated_at := now();")
    assert commented != sql
    assert await hash_of(hash_server, commented) == recorded
    indexed = sql + "\nCREATE INDEX customers_city_idx ON customers (city);\n"
    assert await hash_of(hash_server, indexed) != recorded


async def test_every_function_is_one_schema_sql_creates_again_after_an_upgrade(fresh: str) -> None:
    """The functions of a fresh database are exactly schema.sql's routines, so an upgrade that
    creates the routines again leaves no function of an older version behind unchanged."""
    conn = await db.connect(fresh)
    try:
        names = {r["proname"] for r in await conn.fetch(
            "SELECT proname FROM pg_proc WHERE pronamespace = current_schema()::regnamespace")}
    finally:
        await conn.close()
    assert names == {r.name for r in schemafiles.routines(db.schema_sql())}
