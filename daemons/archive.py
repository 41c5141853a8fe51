"""The backup archive: one tar file, its members checksummed in a manifest.

Layout (a plain tar in GNU format, readable with ``tar -tvf``)::

    state/<name>/<path>   each state directory's regular files, captured first
    database.dump         pg_dump --format=custom (compressed by pg_dump itself)
    manifest.json         last: what the archive holds, with every member's size and SHA-256

The tar is not gzipped: nearly all of it is the dump, which pg_dump compresses already.

Members are streamed: a header is written with size 0, the data follows as it comes (a pipe from
pg_dump, a file that may still grow), and the header is rewritten with the size once the data has
ended. So a dump is never held in memory or in a second file. The manifest comes last, so an
archive cut short anywhere has none and is refused as a whole by :func:`Archive.open`, which
reads every member and compares it with the manifest before anything is restored from it.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Protocol

FORMAT = "lastmile-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DUMP = "database.dump"
STATE = "state"
BLOCK = 512
CHUNK = 1 << 20


class Readable(Protocol):
    def read(self, n: int, /) -> bytes: ...


class ArchiveError(Exception):
    """The archive cannot be used; ``str()`` is one line for the operator."""


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class StateDir:
    """A state directory as it was captured: ``name`` (its members are ``state/<name>/...``),
    where it was on the machine backed up, and what it held."""

    name: str
    path: str
    exists: bool
    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    """Entries not kept: anything but regular files and directories, and files that vanished while read."""


@dataclass(frozen=True, slots=True)
class Manifest:
    created_at: str
    """UTC, ISO 8601 (``2026-03-01T02:03:04Z``)."""
    lastmile_version: str
    schema_version: int
    """The schema version of the database dumped (its ``schema_version`` row)."""
    host: str
    database: dict[str, str]
    """``name``, ``server_version``, ``pg_dump_version``: no address, no credentials."""
    state: list[StateDir]
    members: list[Member]
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict) or raw.get("format") != FORMAT:
                raise ArchiveError(f"{MANIFEST} is not a lastmile backup manifest")
            if raw.get("format_version") != FORMAT_VERSION:
                raise ArchiveError(
                    f"the archive is of format {raw.get('format_version')!r}; this lastmile reads format "
                    f"{FORMAT_VERSION} (restore it with the lastmile that made it)"
                )
            return cls(
                created_at=str(raw["created_at"]),
                lastmile_version=str(raw["lastmile_version"]),
                schema_version=int(raw["schema_version"]),
                host=str(raw["host"]),
                database={str(k): str(v) for k, v in raw["database"].items()},
                state=[StateDir(**s) for s in raw["state"]],
                members=[Member(str(m["name"]), int(m["size"]), str(m["sha256"])) for m in raw["members"]],
            )
        except ArchiveError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ArchiveError(f"{MANIFEST} is damaged ({type(e).__name__}: {e})") from None

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)


def state_member(state: str, relative: PurePosixPath) -> str:
    return str(PurePosixPath(STATE, state, relative))


class Writer:
    """Writes tar members one after the other to ``out`` (a seekable binary file open for writing),
    each hashed as it goes; :meth:`close` ends the tar. Raises OSError as the file does (a full disk)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.members: list[Member] = []

    def add(
        self,
        name: str,
        source: Readable,
        *,
        mode: int = 0o600,
        mtime: float = 0,
        progress: Callable[[int], None] | None = None,
    ) -> Member:
        """Copy ``source`` to its end as member ``name``; ``progress(bytes so far)`` after each chunk."""
        info = tarfile.TarInfo(name)
        info.mode, info.mtime, info.size = mode & 0o7777, int(mtime), 0
        start = self.out.tell()
        header = info.tobuf(tarfile.GNU_FORMAT)
        self.out.write(header)
        digest, size = hashlib.sha256(), 0
        while chunk := source.read(CHUNK):
            self.out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            if progress is not None:
                progress(size)
        self.out.write(b"\0" * (-size % BLOCK))
        end = self.out.tell()
        info.size = size
        final = info.tobuf(tarfile.GNU_FORMAT)
        if len(final) != len(header):  # GNU headers encode any size in the same field
            raise AssertionError(f"tar header of {name} changed length")
        self.out.seek(start)
        self.out.write(final)
        self.out.seek(end)
        member = Member(name, size, digest.hexdigest())
        self.members.append(member)
        return member

    def add_bytes(self, name: str, data: bytes, *, mtime: float = 0) -> Member:
        return self.add(name, io.BytesIO(data), mode=0o600, mtime=mtime)

    def close(self) -> None:
        self.out.write(b"\0" * (2 * BLOCK))


class Archive:
    """An archive opened for restoring: :meth:`open` has read every member and checked it
    against the manifest, so what it yields is what was written."""

    def __init__(self, path: Path, tar: tarfile.TarFile, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest
        self._tar = tar

    @classmethod
    def open(cls, path: Path) -> Archive:
        """Verify ``path`` whole; ArchiveError (one line) if it is not a complete, intact lastmile archive."""
        try:
            tar = tarfile.open(path, "r:")  # noqa: SIM115 - held by the Archive, closed by close()
        except FileNotFoundError:
            raise ArchiveError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise ArchiveError(f"{path} is a directory, not an archive") from None
        except tarfile.TarError:
            raise ArchiveError(f"{path} is not a lastmile backup archive (not a tar file)") from None
        except OSError as e:
            raise ArchiveError(f"{path}: cannot read: {e.strerror or e}") from None
        try:
            manifest = _verify(path, tar)
        except BaseException:
            tar.close()
            raise
        return cls(path, tar, manifest)

    def read(self, name: str) -> IO[bytes]:
        """The data of a member (verified by :meth:`open`)."""
        source = self._tar.extractfile(name)
        if source is None:
            raise ArchiveError(f"{self.path}: {name} is not a file")
        return source

    def state_files(self, state: str) -> Iterator[tuple[PurePosixPath, str, int, int]]:
        """``(path relative to the state directory, member name, mode, mtime)`` of each file of ``state``."""
        prefix = PurePosixPath(STATE, state)
        for info in self._tar.getmembers():
            path = PurePosixPath(info.name)
            if info.isfile() and path.parts[:2] == prefix.parts:
                yield path.relative_to(prefix), info.name, info.mode, int(info.mtime)

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _verify(path: Path, tar: tarfile.TarFile) -> Manifest:
    found: dict[str, tuple[int, str]] = {}
    manifest_data: bytes | None = None
    try:
        for info in tar:
            _check_name(path, info)
            if info.name in found or (info.name == MANIFEST and manifest_data is not None):
                raise ArchiveError(f"{path}: {info.name} appears twice: not an archive lastmile wrote")
            source = tar.extractfile(info)
            if source is None:
                continue
            if info.name == MANIFEST:
                if info.size > 64 << 20:
                    raise ArchiveError(f"{path}: {MANIFEST} of {info.size} bytes: not an archive lastmile wrote")
                manifest_data = source.read()
                continue
            digest, size = hashlib.sha256(), 0
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
            found[info.name] = (size, digest.hexdigest())
    except tarfile.TarError as e:
        raise ArchiveError(f"{path} is damaged or cut short ({e}): nothing restored from it") from None
    except OSError as e:
        raise ArchiveError(f"{path}: cannot read: {e.strerror or e}") from None
    if manifest_data is None:
        raise ArchiveError(f"{path} has no {MANIFEST}: the archive is incomplete (cut short?) or not lastmile's")
    manifest = Manifest.from_json(manifest_data)
    listed = {m.name: m for m in manifest.members}
    for name, member in listed.items():
        if name not in found:
            raise ArchiveError(f"{path}: {name} is missing: the archive is incomplete or damaged")
        size, sha = found[name]
        if size != member.size or sha != member.sha256:
            raise ArchiveError(f"{path}: {name} does not match its checksum in the manifest: the archive is damaged")
    extra = sorted(set(found) - set(listed))
    if extra:
        raise ArchiveError(f"{path}: {extra[0]} is not in the manifest: not an archive lastmile wrote")
    if DUMP not in listed:
        raise ArchiveError(f"{path} holds no {DUMP}")
    return manifest


def _check_name(path: Path, info: tarfile.TarInfo) -> None:
    """Only regular files, at relative paths that stay inside the archive's own tree."""
    name = PurePosixPath(info.name)
    if not info.isfile():
        raise ArchiveError(f"{path}: {info.name} is not a regular file: not an archive lastmile wrote")
    if name.is_absolute() or ".." in name.parts:
        raise ArchiveError(f"{path}: member {info.name!r} points outside the archive")
    top = name.parts[0]
    if not (str(name) in (MANIFEST, DUMP) or (top == STATE and len(name.parts) >= 3)):
        raise ArchiveError(f"{path}: member {info.name!r} is not part of a lastmile archive")
