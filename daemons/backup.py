"""``lastmile backup [--to DIR]``: the database and the daemons' state in one dated archive.

The archive (``daemons/archive.py``) is ``lastmile-<UTC time>.tar`` in ``[backup] directory``:
the state directories first, then ``pg_dump --format=custom`` of the database, then the
manifest. It is written as ``.lastmile-<time>.tar.partial``, fsync'ed and renamed, so the final
name only ever holds a complete archive; a crash leaves a partial file that the next backup
removes. Then the oldest archives beyond ``[backup] keep`` are deleted.

State is captured before the database on purpose. What radiusd has spooled (accounting
acknowledged while PostgreSQL was away) and replays meanwhile is then in the archive twice at
worst, in the spool and in the dump, and the replay after a restore is a no-op for it
(accounting upserts are idempotent); in the other order, records replayed between the dump and
the copy of the spool would be in neither.

Exit codes: 0 written, 1 not (one line on stderr: the database unreachable or without a lastmile
schema, a directory not writable, a full disk, another backup running), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import re
import socket
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO

import asyncpg

from daemons import __version__, archive, backup_store, db, pgclient, registry
from daemons.config import Settings, redact_url

ARCHIVE_NAME = re.compile(r"^lastmile-(\d{8}T\d{6}Z)\.tar$")
PARTIAL_NAME = re.compile(r"^\.lastmile-\d{8}T\d{6}Z\.tar\.partial$")
LOCK_NAME = ".lastmile-backup.lock"
PROGRESS_EVERY = 10.0


class BackupError(Exception):
    """The backup cannot be made; ``str()`` is one line for the operator."""


def state_directories(settings: Settings) -> list[Path]:
    """The state directories of the components installed here (each one's ``state_dirs``,
    daemons/registry.py): radiusd's spool, lock and cache snapshot, flowcollector's templates and
    sequence numbers."""
    return [path for _, path in named_state_directories(settings)]


def named_state_directories(settings: Settings) -> list[tuple[str, Path]]:
    """Each state directory with its name in an archive (``state/<name>/``): its component's name
    (``radiusd``), then ``radiusd-2``... for a component's further ones. Archives made on a machine
    whose directories are elsewhere restore here by these names.

    A component resolves an empty setting as its daemon does: ``$STATE_DIRECTORY`` under systemd,
    else ``var/<daemon>``. Under systemd ``$STATE_DIRECTORY`` here is the backup unit's own
    (``/var/lib/lastmile/backup``), so each component is asked with it set to its own daemon's,
    the sibling ``/var/lib/lastmile/<name>`` (every unit has ``StateDirectory=lastmile/<name>``).
    """
    own = os.environ.get("STATE_DIRECTORY")
    named: list[tuple[str, Path]] = []
    for name, component in registry.components().items():
        if component.state_dirs is None:
            continue
        with _state_directory(str(Path(own.split(":")[0]).parent / name) if own else None):
            paths = component.state_dirs(settings)
        named += [(name if i == 0 else f"{name}-{i + 1}", Path(path)) for i, path in enumerate(paths)]
    return named


@contextlib.contextmanager
def _state_directory(value: str | None) -> Iterator[None]:
    """``$STATE_DIRECTORY`` set to ``value`` for the block (unchanged if None)."""
    if value is None:
        yield
        return
    before = os.environ.get("STATE_DIRECTORY")
    os.environ["STATE_DIRECTORY"] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("STATE_DIRECTORY", None)
        else:
            os.environ["STATE_DIRECTORY"] = before


def backup_directory(settings: Settings, to: str | None = None) -> Path:
    """``--to``, else ``[backup] directory``, else ``$STATE_DIRECTORY`` (systemd), else ``var/backups``."""
    if to:
        return Path(to)
    if settings.backup.directory:
        return Path(settings.backup.directory)
    own = os.environ.get("STATE_DIRECTORY")
    return Path(own.split(":")[0]) if own else Path("var") / "backups"


def main(settings: Settings, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="lastmile backup",
        description="Write the database (pg_dump) and the daemons' state directories into one archive, "
        "lastmile-<UTC time>.tar, then delete the oldest beyond [backup] keep.",
    )
    parser.add_argument("--to", metavar="DIR", help="write the archive here instead of [backup] directory")
    args = parser.parse_args(argv)
    try:
        with embedded_database(settings):
            run(settings, backup_directory(settings, args.to))
    except (BackupError, pgclient.ClientError, archive.ArchiveError) as e:
        print(f"lastmile backup: {e}", file=sys.stderr)
        return 1
    return 0


@dataclass
class _Timer:
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = time.monotonic()

    def seconds(self) -> str:
        return f"{time.monotonic() - self.started:.1f} s"


def say(line: str) -> None:
    print(f"lastmile backup: {line}", flush=True)


def run(settings: Settings, directory: Path) -> Path:
    """Write one archive into ``directory``, apply the retention; return the archive's path."""
    total = _Timer()
    url = db.url_of(settings.database)
    info = asyncio.run(_database_info(url, settings))
    pg_dump = pgclient.program(settings.backup.pg_bin_dir, "pg_dump")
    info["pg_dump_version"] = pgclient.check_dump_version(pg_dump, int(info.pop("major")), info["server_version"])
    _make_directory(directory, state_directories(settings))
    with _locked(directory):
        _remove_partials(directory)
        now = datetime.now(UTC)
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        final = directory / f"lastmile-{stamp}.tar"
        if final.exists():
            raise BackupError(f"{final} exists already (a backup in the same second?): try again")
        partial = directory / f".lastmile-{stamp}.tar.partial"
        try:
            manifest = _write(settings, url, info, partial, now)
            os.rename(partial, final)
            fsync_directory(directory)
        except BaseException as e:
            with contextlib.suppress(OSError):
                partial.unlink()
            if isinstance(e, OSError):
                raise BackupError(f"cannot write {partial}: {e.strerror or e}: no archive written") from None
            raise
        written = final.stat().st_size
        say(f"{final} written: {size_text(written)} in {total.seconds()} (schema version {manifest.schema_version})")
        removed = retain(directory, settings.backup.keep, final)
        kept = sum(1 for p in directory.iterdir() if ARCHIVE_NAME.match(p.name))
        if removed:
            say(f"retention (keep {settings.backup.keep}): removed {', '.join(p.name for p in removed)}; "
                f"{kept} kept")
        else:
            say(f"retention (keep {settings.backup.keep or 'all'}): {kept} archive(s), none removed")
    return final


async def _database_info(url: str, settings: Settings) -> dict[str, str]:
    where = redact_url(url)
    try:
        conn = await db.connect(url, settings.database.connect_timeout)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        raise BackupError(f"cannot reach the database at {where}: {reason(e)}: no archive written") from None
    try:
        version = await backup_store.schema_version(conn)
        major, server = await backup_store.server_version(conn)
    finally:
        await conn.close()
    if version is None:
        raise BackupError(
            f"the database at {where} has no lastmile schema (a wrong [database] url?): nothing to back up")
    return {
        "name": pgclient.database_name(url),
        "server_version": server,
        "major": str(major),
        "schema_version": str(version),
    }


def reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _make_directory(directory: Path, state: list[Path]) -> None:
    inside = next((s for s in state if directory.resolve().is_relative_to(s.resolve())), None)
    if inside is not None:
        raise BackupError(f"the backup directory {directory} is in the state directory {inside}, which the "
                          "archive holds: choose another ([backup] directory, --to)")
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise BackupError(f"cannot create the backup directory {directory}: {e.strerror or e}") from None
    if not directory.is_dir():
        raise BackupError(f"{directory} is not a directory")


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One backup at a time per directory (a timer's and one by hand)."""
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise BackupError(f"the backup directory {directory} is not writable: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"another backup is being written into {directory} now") from None
        yield
    finally:
        os.close(fd)


def _remove_partials(directory: Path) -> None:
    """Partial archives of backups that crashed (none runs now: the lock is ours)."""
    for path in directory.iterdir():
        if PARTIAL_NAME.match(path.name):
            path.unlink(missing_ok=True)
            say(f"removed {path.name}, left by a backup that did not finish")


def _write(settings: Settings, url: str, info: dict[str, str], partial: Path, now: datetime) -> archive.Manifest:
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        writer = archive.Writer(out)
        captured = [_add_state(writer, name, path) for name, path in named_state_directories(settings)]
        _add_dump(writer, settings, url, info)
        manifest = archive.Manifest(
            created_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            lastmile_version=__version__,
            schema_version=int(info["schema_version"]),
            host=socket.gethostname(),
            database={k: info[k] for k in ("name", "server_version", "pg_dump_version")},
            state=captured,
            members=[*writer.members],
        )
        writer.add_bytes(archive.MANIFEST, manifest.to_json(), mtime=now.timestamp())
        writer.close()
        out.flush()
        os.fsync(out.fileno())
    return manifest


def _add_state(writer: archive.Writer, name: str, path: Path) -> archive.StateDir:
    timer = _Timer()
    top = path.resolve()  # under systemd a daemon's state directory is a link into /var/lib/private
    if not top.is_dir():
        say(f"state {name}: {path} does not exist (the daemon has not run here): nothing to keep")
        return archive.StateDir(name, str(path), exists=False)
    files, size, skipped = 0, 0, []

    def unreadable(error: OSError) -> None:
        raise BackupError(f"cannot read {error.filename}: {error.strerror} (run the backup as root or as the "
                          "daemons' user): no archive written")

    for root, dirs, names in os.walk(top, onerror=unreadable):
        base = Path(root)
        dirs.sort()
        for d in [d for d in dirs if (base / d).is_symlink()]:
            dirs.remove(d)
            skipped.append((base / d).relative_to(top).as_posix())
        for entry in sorted(names):
            file = base / entry
            relative = PurePosixPath(file.relative_to(top).as_posix())
            try:
                st = file.lstat()
                if not stat.S_ISREG(st.st_mode):
                    skipped.append(str(relative))
                    continue
                source = open(file, "rb")  # noqa: SIM115 - closed below, after the copy
            except FileNotFoundError:
                skipped.append(str(relative))  # gone since listed: a temporary file renamed
                continue
            except OSError as e:
                unreadable(e)
            with source:
                member = writer.add(archive.state_member(name, relative), _Source(source, file),
                                    mode=st.st_mode, mtime=st.st_mtime)
            files += 1
            size += member.size
    extra = f", {len(skipped)} skipped (not regular files, or gone while read)" if skipped else ""
    say(f"state {name} ({path}): {count(files, 'file')}, {size_text(size)}{extra} in {timer.seconds()}")
    return archive.StateDir(name, str(path), exists=True, files=files, bytes=size, skipped=skipped)


def _add_dump(writer: archive.Writer, settings: Settings, url: str, info: dict[str, str]) -> archive.Member:
    timer = _Timer()
    last = [time.monotonic()]

    def progress(done: int) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY:
            last[0] = time.monotonic()
            say(f"database {info['name']}: {size_text(done)} so far, {timer.seconds()}")

    with pgclient.dump(settings.backup.pg_bin_dir, url, settings.database.connect_timeout) as stream:
        member = writer.add(archive.DUMP, stream, progress=progress, mtime=time.time())
    say(f"database {info['name']} (PostgreSQL {info['server_version']}, schema version {info['schema_version']}, "
        f"pg_dump {info['pg_dump_version']}): {size_text(member.size)} in {timer.seconds()}")
    return member


class _Source:
    """A state file being copied; a read error names the file (a write error is the archive's)."""

    def __init__(self, source: IO[bytes], path: Path) -> None:
        self.source, self.path = source, path

    def read(self, n: int) -> bytes:
        try:
            return self.source.read(n)
        except OSError as e:
            raise BackupError(f"cannot read {self.path}: {e.strerror or e}: no archive written") from None


def retain(directory: Path, keep: int, newest: Path) -> list[Path]:
    """Delete the archives beyond the newest ``keep`` (by the time in their names); ``newest``,
    the one just written, is kept whatever the names of the others say (a clock set back).
    Files not named like an archive are never touched. Returns what was deleted."""
    if keep <= 0:
        return []
    others = sorted(
        (p for p in directory.iterdir() if ARCHIVE_NAME.match(p.name) and p.name != newest.name),
        key=lambda p: p.name,
        reverse=True,
    )
    removed = others[keep - 1 :]
    for path in removed:
        path.unlink(missing_ok=True)
    if removed:
        fsync_directory(directory)
    return removed


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def size_text(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


@contextlib.contextmanager
def embedded_database(settings: Settings) -> Iterator[None]:
    """With no ``[database] url``, the embedded server: started for the command unless it runs
    already (under ``lastmile up``), and stopped after it if it was started here."""
    if settings.database.url:
        yield
        return
    from daemons.pgembed import EmbeddedPostgres

    server = EmbeddedPostgres(settings.database.embedded_dir, settings.database.embedded_port)
    started = not server.is_running()
    server.start()
    try:
        yield
    finally:
        if started:
            server.stop()
