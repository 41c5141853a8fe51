"""What the schema tests share: a normalised pg_dump, the schema hash, databases of their own, a
database of a previous release, and `lastmile db init` run as an operator runs it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from daemons import db, schemafiles
from daemons.pgembed import bin_dir

ROOT = Path(__file__).resolve().parents[2]
RELEASES = sorted(Path(__file__).parent.glob("schema_v*.sql"), key=lambda p: int(p.stem.removeprefix("schema_v")))
"""schema.sql as each release still upgraded from shipped it, oldest first: the databases the
upgrade test starts from. At a release, add that release's schema.sql as schema_v<N>.sql
(``git show <tag>:schema.sql > tests/db/schema_v<N>.sql``); drop a file only with the steps that
upgrade from it."""

DATED_PARTITIONS = ("*_p" + "[0-9]" * 6, "*_p" + "[0-9]" * 8)
"""pg_dump patterns of the partitions lastmile_maintain_partitions() makes (<table>_pYYYYMM[DD])."""

_NOISE = ("SET ", "SELECT pg_catalog.set_config(", "\\restrict", "\\unrestrict")


def dump(url: str, *, dated: bool = True) -> str:
    """``pg_dump --schema-only`` of the database, without comment lines, blank lines and session
    settings (what pg_dump writes differently from run to run); ``dated=False``: without the
    dated partitions either (what changes from day to day)."""
    exclude = [] if dated else [arg for pattern in DATED_PARTITIONS for arg in ("-T", pattern)]
    out = subprocess.run(
        [str(bin_dir() / "pg_dump"), "--schema-only", "--no-owner", *exclude, url],
        capture_output=True, text=True, check=True,
    ).stdout
    lines = (line.rstrip() for line in out.splitlines())
    kept = (line for line in lines if line and not line.startswith(_NOISE))  # pg_dump's own, never indented
    return "\n".join(line for line in kept if not line.lstrip().startswith("--"))


async def registrations(conn: asyncpg.Connection) -> list[tuple[object, ...]]:
    """partitioned_tables: rows of the schema itself (they decide the partitions made)."""
    rows = await conn.fetch("SELECT parent::text, unit, ahead, fillfactor FROM partitioned_tables ORDER BY 1")
    return [tuple(r) for r in rows]


async def schema_hash(url: str) -> str:
    """The hash schema.sql records: sha256 of the dump without dated partitions, and the rows of
    partitioned_tables. It must not change for a released version: should pg_dump write the same
    schema differently one day, change the normalisation here, never a recorded hash."""
    conn = await db.connect(url)
    try:
        rows = await registrations(conn)
    finally:
        await conn.close()
    text = dump(url, dated=False) + "\n-- partitioned_tables\n" + "\n".join("|".join(map(str, r)) for r in rows)
    return hashlib.sha256(text.encode()).hexdigest()


def database_url(server_url: str, name: str) -> str:
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


_made = 0


@asynccontextmanager
async def new_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """An empty database of its own on the server, dropped after."""
    global _made
    _made += 1
    name = f"{prefix}_{os.getpid()}_{_made}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    try:
        yield database_url(server_url, name)
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


async def make_release(conn: asyncpg.Connection, release: Path) -> int:
    """Make the database that release's `lastmile db init` made of an empty one; its version.
    Up to version 4 schema.sql recorded its version itself; from 5 on `db init` records the
    version and hash of the file's header."""
    sql = release.read_text()
    await conn.execute(sql)
    if await conn.fetchval("SELECT count(*) FROM schema_version") == 0:
        version, hash_ = schemafiles.header(sql, release.name)
        await conn.execute("INSERT INTO schema_version (version, hash) VALUES ($1, $2)", version, hash_)
    found: int = await conn.fetchval("SELECT version FROM schema_version")
    return found


def lastmile_db_init(url: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """`lastmile db init` against ``url``; ``settings``: more of [database], as environment."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LASTMILE_DATABASE__URL": url,
           **{f"LASTMILE_DATABASE__{k.upper()}": v for k, v in settings.items()}}
    return subprocess.run([sys.executable, "-m", "daemons.cli", "db", "init"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
