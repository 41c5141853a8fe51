"""``lastmile restore ARCHIVE [--database URL|NAME] [--force] [--state]``: a backup back in place.

In this order, and each step only if the ones before it passed:

1. The archive is read whole and checked against its manifest (every member's size and SHA-256):
   a damaged or cut-short archive is refused before anything is written.
2. With ``--state``, each state directory of the archive is matched to the one a daemon uses here
   (by name: ``radiusd``, ``flowcollector``), and refused if a running process holds a lock in it
   (radiusd holds ``accounting.spool.lock`` for as long as it runs).
3. The target database: ``--database`` (a URL, or a database name on the configured server), else
   ``[database] url``. One that does not exist is created (it needs CREATEDB); one that has
   tables is live and refused, unless ``--force``, which replaces what it holds and is refused
   while other sessions use it (stop the daemons first).
4. The dump is restored in one transaction (with ``--force``, after dropping the database's
   schemas in that same transaction): any error rolls everything back, and a database this
   restore created is dropped again.
5. The state directories are written beside their targets, then swapped in; what the targets
   held is kept as ``<dir>.before-restore-<time>``.

Exit codes: 0 restored, 1 not (one line on stderr), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from daemons import archive, backup_store, db, pgclient
from daemons.backup import (
    count,
    embedded_database,
    fsync_directory,
    named_state_directories,
    reason,
    size_text,
)
from daemons.config import Settings, redact_url

DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,62}$")
PROGRESS_EVERY = 10.0


class RestoreError(Exception):
    """The restore cannot go on; ``str()`` is one line for the operator."""


def say(line: str) -> None:
    print(f"lastmile restore: {line}", flush=True)


def _database_argument(value: str) -> str:
    if "://" in value or DATABASE_NAME.match(value):
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is neither a postgresql:// URL nor a database name")


def main(settings: Settings, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="lastmile restore",
        description="Check a backup archive, restore its database dump (and with --state the daemons' state "
        "directories). Refuses a database that has tables, unless --force.",
    )
    parser.add_argument("archive", type=Path, help="a lastmile-<time>.tar written by `lastmile backup`")
    parser.add_argument("--database", type=_database_argument, metavar="URL|NAME",
                        help="restore into this database: a URL, or a name on the configured server (created if "
                        "it does not exist); default: [database] url")
    parser.add_argument("--force", action="store_true",
                        help="replace what the database holds (refused while other sessions use it)")
    parser.add_argument("--state", action="store_true",
                        help="also restore the state directories (refused while a daemon holds them)")
    args = parser.parse_args(argv)
    try:
        with embedded_database(settings):
            run(settings, args.archive, args.database, force=args.force, state=args.state)
    except (RestoreError, archive.ArchiveError, pgclient.ClientError) as e:
        print(f"lastmile restore: {e}", file=sys.stderr)
        return 1
    return 0


def target_url(settings: Settings, database: str | None) -> str:
    configured = db.url_of(settings.database)
    if not database:
        return configured
    if "://" in database:
        return database
    return pgclient.with_database(configured, database)


def run(settings: Settings, path: Path, database: str | None, *, force: bool, state: bool) -> None:
    started = time.monotonic()
    with archive.Archive.open(path) as backup:
        m = backup.manifest
        say(f"{path} is intact (checked in {time.monotonic() - started:.1f} s): made {m.created_at} on {m.host} "
            f"by lastmile {m.lastmile_version}, schema version {m.schema_version}; {_contents(m)}")
        kept = [s for s in m.state if s.exists]
        targets = _state_targets(settings, kept) if state else []
        url = target_url(settings, database)
        name = pgclient.database_name(url)
        created, before = asyncio.run(_prepare(url, name, force, settings))
        _restore_database(settings, backup, url, name, created, before)
        for state_name, target in targets:
            _restore_state(backup, state_name, target)
        if kept and not state:
            say(f"state directories not restored (add --state): {', '.join(s.name for s in kept)}")
    _advise(settings, url, m)


def _contents(m: archive.Manifest) -> str:
    dump = m.member(archive.DUMP)
    parts = [f"database {m.database.get('name', '?')} {size_text(dump.size if dump else 0)}"]
    for s in m.state:
        parts.append(f"state {s.name} {count(s.files, 'file')}, {size_text(s.bytes)}" if s.exists
                     else f"state {s.name} none (no directory)")
    return "; ".join(parts)


def _state_targets(settings: Settings, kept: list[archive.StateDir]) -> list[tuple[str, Path]]:
    """Where each state directory of the archive goes here; refused (RestoreError) before anything is
    written if one has no counterpart or a running process holds it."""
    here = dict(named_state_directories(settings))
    targets = []
    for s in kept:
        target = here.get(s.name)
        if target is None:
            raise RestoreError(
                f"the archive holds state directory {s.name!r} (from {s.path}), which no daemon here uses "
                f"({', '.join(here)}): leave out --state, or take it out by hand (tar -xf ARCHIVE state/{s.name})")
        held = _held(target)
        if held is not None:
            raise RestoreError(
                f"{target} is in use: {held} is locked by a running process (is the daemon running?): stop the "
                "daemons first (systemctl stop lastmile.target); nothing restored")
        targets.append((s.name, target))
    return targets


def _held(directory: Path) -> Path | None:
    """A file in ``directory`` that another process holds a lock on (flock), if any."""
    if not directory.is_dir():
        return None
    for root, _, names in os.walk(directory.resolve()):
        for entry in names:
            path = Path(root) / entry
            if not path.is_file() or path.is_symlink():
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return path
            finally:
                os.close(fd)  # releases the probe's lock
    return None


async def _prepare(url: str, name: str, force: bool, settings: Settings) -> tuple[bool, str]:
    """Make sure the target can take the dump: ``(created here, SQL to run first)``."""
    timeout = settings.database.connect_timeout
    try:
        conn = await db.connect(url, timeout)
    except asyncpg.InvalidCatalogNameError:
        await _create(url, name, timeout)
        say(f"database {name} created")
        return True, ""
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        raise RestoreError(f"cannot reach the database at {redact_url(url)}: {reason(e)}; nothing restored") from None
    try:
        tables = await backup_store.table_count(conn)
        if not tables:
            return False, ""
        version = await backup_store.schema_version(conn)
        holds = f"lastmile schema version {version}" if version is not None else "no lastmile schema"
        if not force:
            raise RestoreError(
                f"the database {name} has {tables} tables ({holds}): it looks live, nothing restored; to restore "
                "beside it, name a new database (--database lastmile_restored); to replace it, stop the daemons "
                "and add --force")
        others = await backup_store.other_sessions(conn, name)
        if others:
            raise RestoreError(
                f"--force: {len(others)} other sessions use the database {name} ({', '.join(others[:5])}): stop "
                "the daemons (systemctl stop lastmile.target) and close them; nothing restored")
        say(f"--force: what the database {name} holds ({tables} tables, {holds}) is replaced in the restore's "
            "transaction")
        return False, backup_store.drop_schemas_sql(await backup_store.schemas(conn))
    finally:
        await conn.close()


async def _create(url: str, name: str, timeout: float) -> None:
    conn = await _maintenance(url, timeout)
    try:
        await backup_store.create_database(conn, name)
    except asyncpg.InsufficientPrivilegeError:
        raise RestoreError(
            f"the database {name} does not exist and this role may not create it: create it empty "
            f"(createdb --owner=ROLE {name}) and run the restore again; nothing restored") from None
    finally:
        await conn.close()


async def _maintenance(url: str, timeout: float) -> asyncpg.Connection:
    """A connection to the server's maintenance database (``postgres``, else ``template1``)."""
    for maintenance in ("postgres", "template1"):
        try:
            return await db.connect(pgclient.with_database(url, maintenance), timeout)
        except asyncpg.InvalidCatalogNameError:
            continue
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise RestoreError(f"cannot reach the database server at {redact_url(url)}: {reason(e)}") from None
    raise RestoreError(f"the server at {redact_url(url)} has neither a postgres nor a template1 database")


async def _drop(url: str, name: str, timeout: float) -> None:
    conn = await _maintenance(url, timeout)
    try:
        await backup_store.drop_database(conn, name)
    finally:
        await conn.close()


def _restore_database(
    settings: Settings, backup: archive.Archive, url: str, name: str, created: bool, before: str
) -> None:
    started = time.monotonic()
    last = [started]
    dump = backup.manifest.member(archive.DUMP)
    total = dump.size if dump else 0

    def progress(done: int) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY:
            last[0] = time.monotonic()
            say(f"database {name}: {size_text(done)} of {size_text(total)} read, {time.monotonic() - started:.0f} s")

    try:
        pgclient.restore(settings.backup.pg_bin_dir, url, backup.read(archive.DUMP), settings.database.connect_timeout,
                         before=before, progress=progress)
    except pgclient.ClientError as e:
        if created:
            asyncio.run(_drop(url, name, settings.database.connect_timeout))
            raise RestoreError(f"{e}; rolled back, and the database {name} made for it dropped again") from None
        raise RestoreError(f"{e}; rolled back: the database {name} is as it was") from None
    tables = asyncio.run(_table_count(url, settings.database.connect_timeout))
    say(f"database {name} restored ({tables} tables, {size_text(total)} dump) in {time.monotonic() - started:.1f} s")


async def _table_count(url: str, timeout: float) -> int:
    conn = await db.connect(url, timeout)
    try:
        return await backup_store.table_count(conn)
    finally:
        await conn.close()


def _restore_state(backup: archive.Archive, name: str, target: Path) -> None:
    """Write the state beside ``target``, then swap it in; what ``target`` held is kept aside."""
    real = target.resolve()  # under systemd: the directory in /var/lib/private the link points to
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    staging = real.parent / f".{real.name}.restoring-{stamp}"
    aside = real.parent / f"{real.name}.before-restore-{stamp}"
    files = 0
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir(mode=0o700)
        for relative, member, mode, mtime in backup.state_files(name):
            dest = staging.joinpath(*relative.parts)
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & 0o777)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(backup.read(member), out, archive.CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.utime(dest, (mtime, mtime))
            files += 1
        kept_aside = False
        held = _held(real)  # again: the database restore may have taken a while
        if held is not None:
            shutil.rmtree(staging, ignore_errors=True)
            raise RestoreError(f"{held} was locked by a process that started meanwhile: state {name} not restored "
                               f"(the database is restored); stop the daemons and restore it with --state")
        if real.exists():
            _own_like(staging, real)
            if any(real.iterdir()):
                os.rename(real, aside)
                kept_aside = True
            else:
                real.rmdir()
        os.rename(staging, real)
        fsync_directory(real.parent)
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise RestoreError(f"cannot restore state {name} into {target}: {e.strerror or e}; the database is "
                           f"restored, {target} is as it was") from None
    where = f"; what it held is in {aside}" if kept_aside else ""
    say(f"state {name}: {count(files, 'file')} restored into {target.absolute()}{where}")


def _own_like(tree: Path, like: Path) -> None:
    """Give ``tree`` the owner of ``like`` (as root, for daemons that run as their own user)."""
    st = like.stat()
    if os.geteuid() != 0 or (st.st_uid, st.st_gid) == (0, 0):
        return
    for path in _walk(tree):
        os.lchown(path, st.st_uid, st.st_gid)


def _walk(tree: Path) -> Iterator[Path]:
    yield tree
    for root, dirs, names in os.walk(tree):
        for entry in (*dirs, *names):
            yield Path(root) / entry


def _advise(settings: Settings, url: str, m: archive.Manifest) -> None:
    expected = db.schema_version()
    if m.schema_version < expected:
        say(f"the backup has schema version {m.schema_version}, this lastmile {expected}: run `lastmile db init` "
            "against it before starting the daemons (it upgrades in place)")
    elif m.schema_version > expected:
        say(f"the backup has schema version {m.schema_version}, newer than this lastmile's {expected}: the "
            f"daemons here refuse it; install lastmile {m.lastmile_version} to use it")
    configured = db.url_of(settings.database)
    if url != configured:
        say(f"done. The daemons use {redact_url(configured)}: to switch them to this database, set [database] url "
            f"(LASTMILE_DATABASE__URL) to {redact_url(url)} and restart them")
    else:
        say("done. Start the daemons: systemctl start lastmile.target")
