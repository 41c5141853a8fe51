"""`lastmile backup` and `lastmile restore` as an operator runs them: real pg_dump, pg_restore and
psql against the test PostgreSQL, real state directories (radiusd's own spool code writes and
locks the spool)."""

from __future__ import annotations

import dataclasses
import fcntl
import itertools
import os
import resource
import shutil
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from daemons import archive, db, demo, pgembed
from radiusd.acct import SessionRecord
from radiusd.spool import Spool
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
_names = itertools.count()


def lastmile(*args: str, env: dict[str, str], cwd: Path, limit_file_size: int | None = None
             ) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if limit_file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    return subprocess.run(
        [sys.executable, "-m", "daemons.cli", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120, preexec_fn=limit,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


def with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


async def snapshot(url: str) -> dict[str, tuple[int, str]]:
    """Every table's row count and a digest of its rows, and every sequence's position."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = 'public'")
        out = {}
        for t in tables:
            row = await conn.fetchrow(
                f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS digest "
                f"FROM {t['name']} t")
            assert row is not None
            out[t["name"]] = (row["n"], row["digest"])
        for s in await conn.fetch("SELECT sequencename, last_value FROM pg_sequences"):
            out[f"sequence {s['sequencename']}"] = (s["last_value"] or 0, "")
        return out
    finally:
        await conn.close()


async def databases(admin_url: str) -> set[str]:
    conn = await asyncpg.connect(admin_url)
    try:
        return {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
    finally:
        await conn.close()


def files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def one_line(result: subprocess.CompletedProcess[str], command: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"lastmile {command}: ") and "Traceback" not in result.stderr
    return lines[0]


@dataclass
class Demo:
    url: str
    admin_url: str
    work: Path
    env: dict[str, str]
    archive: Path
    tables: dict[str, tuple[int, str]]
    state: dict[str, dict[str, bytes]]


def state_env(base: Path) -> dict[str, str]:
    return {"LASTMILE_RADIUSD__SPOOL_DIR": str(base / "radiusd"),
            "LASTMILE_FLOWCOLLECTOR__STATE_DIR": str(base / "flowcollector")}


@pytest.fixture(scope="module")
async def backed_up(pg_server: str, pg_template: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    """The demo (200 customers) in a database of its own, radiusd's and flowcollector's state,
    and one archive of both made by `lastmile backup`."""
    work = tmp_path_factory.mktemp("backup")
    name = f"backup_demo_{os.getpid()}"
    admin = await asyncpg.connect(pg_server)
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    await admin.close()
    url = with_database(pg_server, name)
    conn = await db.connect(url)
    await demo.load(conn, 200, seed=7)
    await conn.close()

    live = work / "live"
    spool = Spool(live / "radiusd")
    spool.append([SessionRecord(
        unique_id="uid-1", status=3, event_time=1.7e9, started_at=1.7e9 - 60, username="ann", acct_session_id="s1",
        nas_id=1, service_id=None, nas_address="10.0.0.1", nas_port_id=None, calling_station_id=None,
        called_station_id=None, framed_ip="100.64.0.9", framed_ipv6_prefix=None, delegated_ipv6_prefix=None,
        session_time=60, input_octets=1000, output_octets=2000, input_packets=10, output_packets=20,
        stopped_at=None, terminate_cause=None)])
    (live / "radiusd" / "worker-1").mkdir()
    (live / "radiusd" / "worker-1" / "cache.snapshot").write_bytes(bytes(range(256)) * 40)
    (live / "flowcollector").mkdir()
    (live / "flowcollector" / "templates.json").write_text('{"format": 1, "templates": []}\n')
    env = {"LASTMILE_DATABASE__URL": url, **state_env(live)}

    made = lastmile("backup", "--to", str(work / "backups"), env=env, cwd=work)
    assert made.returncode == 0, made.stderr
    (path,) = (work / "backups").glob("lastmile-*.tar")
    yield Demo(url, pg_server, work, env, path, await snapshot(url),
               {n: files(live / n) for n in ("radiusd", "flowcollector")})
    admin = await asyncpg.connect(pg_server)
    for datname in await databases(pg_server):
        if datname == name or datname.startswith(f"restored_{os.getpid()}_"):
            await admin.execute(f"DROP DATABASE IF EXISTS {datname} WITH (FORCE)")
    await admin.close()


def new_name() -> str:
    return f"restored_{os.getpid()}_{next(_names)}"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """Where a restore with --state writes: another machine's state directories (none yet)."""
    return tmp_path / "elsewhere"


def test_the_archive_holds_the_dump_the_state_and_a_manifest(backed_up: Demo) -> None:
    assert backed_up.archive.stat().st_mode & 0o777 == 0o600
    with tarfile.open(backed_up.archive) as tar:  # a plain tar: `tar -tvf` reads it
        names = tar.getnames()
    assert names[-2:] == ["database.dump", "manifest.json"]
    assert set(names[:-2]) == {f"state/{n}/{f}" for n, fs in backed_up.state.items() for f in fs}
    with archive.Archive.open(backed_up.archive) as a:
        m = a.manifest
    assert m.schema_version == db.schema_version()
    assert m.database["name"] == backed_up.url.rsplit("/", 1)[1]
    assert {s.name: (s.files, s.bytes) for s in m.state} == {
        n: (len(fs), sum(len(b) for b in fs.values())) for n, fs in backed_up.state.items()}


async def test_restore_into_a_new_database_gives_every_row_and_state_file_back(
        backed_up: Demo, elsewhere: Path) -> None:
    name = new_name()
    env = {"LASTMILE_DATABASE__URL": backed_up.url, **state_env(elsewhere)}
    result = lastmile("restore", str(backed_up.archive), "--database", name, "--state", env=env, cwd=backed_up.work)
    assert result.returncode == 0, result.stderr
    assert f"database {name} created" in result.stdout
    assert "LASTMILE_DATABASE__URL" in result.stdout  # says how to switch the daemons to it
    restored = await snapshot(with_database(backed_up.url, name))
    assert restored == backed_up.tables
    assert restored["public.customers"][0] == 200
    for state, content in backed_up.state.items():
        assert files(elsewhere / state) == content, state
    assert Spool(elsewhere / "radiusd").depth == 1  # radiusd replays it after the restore


async def test_a_live_database_is_refused_without_force(backed_up: Demo) -> None:
    result = lastmile("restore", str(backed_up.archive), env=backed_up.env, cwd=backed_up.work)
    assert result.returncode == 1
    assert "looks live" in one_line(result, "restore") and "--force" in result.stderr
    assert await snapshot(backed_up.url) == backed_up.tables


async def test_force_replaces_what_the_database_holds_in_one_transaction(backed_up: Demo) -> None:
    name = new_name()
    url = with_database(backed_up.url, name)
    env = {"LASTMILE_DATABASE__URL": url}
    assert lastmile("restore", str(backed_up.archive), env=env, cwd=backed_up.work).returncode == 0
    conn = await asyncpg.connect(url)
    await conn.execute("UPDATE customers SET name = 'changed' WHERE id <= 10")
    await conn.execute("DELETE FROM radius_postauth")
    await conn.execute("CREATE TABLE made_after_the_backup (x int)")
    await conn.execute("CREATE SCHEMA extra")
    try:
        # While another session uses it (a daemon still running), even --force is refused.
        busy = lastmile("restore", str(backed_up.archive), "--force", env=env, cwd=backed_up.work)
        assert busy.returncode == 1
        assert "other sessions" in one_line(busy, "restore")
    finally:
        await conn.close()
    changed = await snapshot(url)
    assert changed != backed_up.tables

    forced = lastmile("restore", str(backed_up.archive), "--force", env=env, cwd=backed_up.work)
    assert forced.returncode == 0, forced.stderr
    assert await snapshot(url) == backed_up.tables
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT to_regclass('made_after_the_backup')") is None
        assert await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = 'extra'") == 0
    finally:
        await conn.close()


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "no manifest"])
async def test_a_damaged_archive_is_refused_with_one_line_and_nothing_written(
        backed_up: Demo, elsewhere: Path, tmp_path: Path, damage: str) -> None:
    data = backed_up.archive.read_bytes()
    with tarfile.open(backed_up.archive) as tar:
        dump = tar.getmember("database.dump")
        manifest = tar.getmember("manifest.json")
    if damage == "truncated":
        data = data[: dump.offset_data + dump.size // 2]
    elif damage == "flipped byte":
        at = dump.offset_data + dump.size // 3
        data = data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1:]
    else:
        data = data[: manifest.offset]
    bad = tmp_path / "lastmile-20260301T020000Z.tar"
    bad.write_bytes(data)
    name = new_name()
    env = {"LASTMILE_DATABASE__URL": backed_up.url, **state_env(elsewhere)}
    result = lastmile("restore", str(bad), "--database", name, "--state", env=env, cwd=backed_up.work)
    assert result.returncode == 1
    line = one_line(result, "restore")
    assert {"truncated": "cut short", "flipped byte": "checksum", "no manifest": "no manifest.json"}[damage] in line
    assert name not in await databases(backed_up.admin_url)
    assert not elsewhere.exists()


async def test_state_a_running_radiusd_holds_is_refused(backed_up: Demo, elsewhere: Path) -> None:
    holder = Spool(elsewhere / "radiusd")
    holder.claim()  # what a running radiusd holds for as long as it runs
    before = files(elsewhere / "radiusd")
    name = new_name()
    env = {"LASTMILE_DATABASE__URL": backed_up.url, **state_env(elsewhere)}
    result = lastmile("restore", str(backed_up.archive), "--database", name, "--state", env=env, cwd=backed_up.work)
    assert result.returncode == 1
    assert "accounting.spool.lock is locked" in one_line(result, "restore")
    assert name not in await databases(backed_up.admin_url)
    assert files(elsewhere / "radiusd") == before
    assert holder._lock_fd is not None
    os.close(holder._lock_fd)  # radiusd stopped: now it goes through
    result = lastmile("restore", str(backed_up.archive), "--database", name, "--state", env=env, cwd=backed_up.work)
    assert result.returncode == 0, result.stderr
    assert files(elsewhere / "radiusd") == backed_up.state["radiusd"]
    (aside,) = elsewhere.glob("radiusd.before-restore-*")  # what was there is kept
    assert files(aside) == before


def test_retention_keeps_the_newest_and_touches_nothing_else(backed_up: Demo, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    old = [f"lastmile-2026010{d}T030000Z.tar" for d in range(1, 5)]
    for name in old:
        shutil.copy(backed_up.archive, backups / name)
    for other in ("notes.txt", "lastmile-manual.tar"):
        (backups / other).write_text("mine")
    (backups / ".lastmile-20260101T000000Z.tar.partial").write_bytes(b"left by a crash")
    result = lastmile("backup", "--to", str(backups), env={**backed_up.env, "LASTMILE_BACKUP__KEEP": "3"},
                      cwd=backed_up.work)
    assert result.returncode == 0, result.stderr
    (new,) = [p.name for p in backups.glob("lastmile-*Z.tar") if p.name not in old]
    assert sorted(p.name for p in backups.iterdir() if not p.name.startswith(".")) == sorted(
        [new, old[3], old[2], "notes.txt", "lastmile-manual.tar"])
    assert "removed lastmile-20260102T030000Z.tar, lastmile-20260101T030000Z.tar" in result.stdout
    assert not list(backups.glob("*.partial"))


def test_backup_of_an_unreachable_database_says_so_and_writes_nothing(backed_up: Demo, tmp_path: Path) -> None:
    url = f"postgresql://lastmile:secret@127.0.0.1:{free_port()}/lastmile"
    result = lastmile("backup", "--to", str(tmp_path / "b"), env={**backed_up.env, "LASTMILE_DATABASE__URL": url},
                      cwd=tmp_path)
    assert result.returncode == 1
    line = one_line(result, "backup")
    assert "cannot reach the database" in line and "secret" not in line
    assert not (tmp_path / "b").exists()


def test_a_full_disk_leaves_no_archive(backed_up: Demo, tmp_path: Path) -> None:
    """The file-size limit stands in for a full disk: the same write error, midway through the dump."""
    backups = tmp_path / "b"
    result = lastmile("backup", "--to", str(backups), env=backed_up.env, cwd=tmp_path,
                      limit_file_size=backed_up.archive.stat().st_size // 2)
    assert result.returncode == 1
    assert "no archive written" in one_line(result, "backup")
    assert [p.name for p in backups.iterdir()] == [".lastmile-backup.lock"]


def test_a_backup_directory_that_cannot_be_made_is_one_line(backed_up: Demo, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = lastmile("backup", "--to", str(tmp_path / "file" / "b"), env=backed_up.env, cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot create the backup directory" in one_line(result, "backup")


async def test_a_dump_that_fails_halfway_leaves_the_database_as_it_was(backed_up: Demo, tmp_path: Path) -> None:
    """An archive intact by its manifest whose dump pg_restore cannot read to the end (made by a
    broken pg_dump, say): the restore's one transaction is rolled back, not committed half done."""
    with archive.Archive.open(backed_up.archive) as a:
        m = a.manifest
        dump = a.read(archive.DUMP).read()
    half = tmp_path / "lastmile-20260301T020000Z.tar"
    with half.open("wb") as out:
        writer = archive.Writer(out)
        writer.add_bytes(archive.DUMP, dump[: len(dump) * 2 // 3])
        writer.add_bytes(archive.MANIFEST, dataclasses.replace(m, state=[], members=writer.members).to_json())
        writer.close()
    name = new_name()
    url = with_database(backed_up.url, name)
    env = {"LASTMILE_DATABASE__URL": url}
    assert lastmile("restore", str(backed_up.archive), env=env, cwd=tmp_path).returncode == 0
    conn = await asyncpg.connect(url)
    await conn.execute("UPDATE customers SET name = 'changed since' WHERE id <= 10")
    await conn.close()
    before = await snapshot(url)

    result = lastmile("restore", str(half), "--force", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "rolled back" in one_line(result, "restore")
    assert await snapshot(url) == before

    fresh = new_name()
    result = lastmile("restore", str(half), "--database", fresh, env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "dropped again" in one_line(result, "restore")
    assert fresh not in await databases(backed_up.admin_url)


async def test_nothing_is_committed_unless_pg_restore_ended_well(backed_up: Demo, tmp_path: Path) -> None:
    """pg_restore that writes its whole script and then fails (as it does on a dump cut at a block
    boundary): psql has run every statement by then, and only the missing COMMIT keeps them out.
    The real pg_restore and psql, through [backup] pg_bin_dir; the wrapper only turns the exit code."""
    real = pgembed.bin_dir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "psql").symlink_to(real / "psql")
    wrapper = bin_dir / "pg_restore"
    wrapper.write_text(f'#!/bin/sh\n"{real / "pg_restore"}" "$@"\necho "pg_restore: error: failed at the end" >&2\n'
                       "exit 1\n")
    wrapper.chmod(0o755)
    name = new_name()
    url = with_database(backed_up.url, name)
    result = lastmile("restore", str(backed_up.archive), env={"LASTMILE_DATABASE__URL": url,
                                                             "LASTMILE_BACKUP__PG_BIN_DIR": str(bin_dir)},
                      cwd=tmp_path)
    assert result.returncode == 1
    assert "failed at the end" in one_line(result, "restore")
    assert name not in await databases(backed_up.admin_url)


OLDER_CLIENT = Path("/usr/lib/postgresql/15/bin")


@pytest.mark.skipif(not (OLDER_CLIENT / "pg_dump").exists(), reason="no PostgreSQL 15 client installed")
def test_a_pg_dump_older_than_the_server_is_refused_before_anything_is_written(
        backed_up: Demo, tmp_path: Path) -> None:
    result = lastmile("backup", "--to", str(tmp_path / "b"),
                      env={**backed_up.env, "LASTMILE_BACKUP__PG_BIN_DIR": str(OLDER_CLIENT)}, cwd=tmp_path)
    assert result.returncode == 1
    line = one_line(result, "backup")
    assert "pg_dump must be of the server's major version or newer" in line and "pg_bin_dir" in line
    assert not (tmp_path / "b").exists()


def test_one_backup_at_a_time_per_directory(backed_up: Demo, tmp_path: Path) -> None:
    backups = tmp_path / "b"
    backups.mkdir()
    with (backups / ".lastmile-backup.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a backup the timer started is writing
        result = lastmile("backup", "--to", str(backups), env=backed_up.env, cwd=tmp_path)
    assert result.returncode == 1
    assert "another backup is being written" in one_line(result, "backup")
    assert [p.name for p in backups.iterdir()] == [".lastmile-backup.lock"]
