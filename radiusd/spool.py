"""The accounting spool: records acknowledged while PostgreSQL was away, on disk until replayed.

An append writes whole lines and fsyncs before it returns, so a record the NAS was told is saved
survives a crash of radiusd or of the machine. A torn last line (a crash during an append that
was therefore never acknowledged) is ignored on reading.

Replay reads from a read offset kept in ``accounting.spool.offset`` (written atomically after
each replayed batch commits), so a long spool is read once, not rewritten per batch; when every
line is replayed, both files are truncated. A crash between a commit and the offset
write replays that batch again, which the idempotent upserts absorb.

A running radiusd holds a lock on its spool (``accounting.spool.lock``, flock). A spool that
belongs to no process of the current layout (written by another number of ``workers``) is
adopted by whichever process locks it first: its entries are appended to that process's own
spool, then its files are removed, so every acknowledged record reaches the database whatever
layout wrote it (a crash in between appends some twice, which the upserts absorb).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from radiusd.acct import TIME_FIELDS, NasEvent, SessionRecord

Entry = SessionRecord | NasEvent
_TYPES: dict[str, type[SessionRecord] | type[NasEvent]] = {"s": SessionRecord, "n": NasEvent}


def encode(entry: Entry) -> bytes:
    tag = "s" if isinstance(entry, SessionRecord) else "n"
    return json.dumps({"t": tag, **asdict(entry)}, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> Entry:
    data: dict[str, Any] = json.loads(line)
    cls = _TYPES[data.pop("t")]
    for name in TIME_FIELDS:
        if isinstance(data.get(name), str):  # a spool written before times were Unix seconds
            data[name] = datetime.fromisoformat(data[name]).timestamp()
    return cls(**data)


NAME = "accounting.spool"
ADOPT_CHUNK = 10_000


class SpoolBusy(Exception):
    """Another process holds this spool."""


class Spool:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.path = directory / NAME
        self.offset_path = directory / f"{NAME}.offset"
        self.offset = self._load_offset()
        self.depth = sum(1 for _ in self._lines(self.offset))
        self._lock_fd: int | None = None

    def claim(self) -> None:
        """Hold this spool's lock for as long as the process lives; SpoolBusy if another has it."""
        self._lock_fd = _lock(self.directory)
        if self._lock_fd is None:
            raise SpoolBusy(f"{self.directory}: another radiusd process uses this spool")

    def adopt(self, directories: Iterable[Path]) -> int:
        """Move the entries of the spools in ``directories`` (that no running process holds)
        into this one; returns how many entries were adopted."""
        adopted = 0
        for directory in directories:
            fd = _lock(directory)
            if fd is None:
                continue  # held by a process still running, or adopted by another right now
            try:
                other = Spool(directory)
                while other.depth:
                    entries, offset = other.read(ADOPT_CHUNK)
                    if not entries:
                        break  # only a torn tail is left: never acknowledged
                    self.append(entries)
                    other.consume(offset, len(entries))
                    adopted += len(entries)
                for path in (other.path, other.offset_path):
                    path.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return adopted

    def append(self, entries: list[Entry]) -> None:
        """Write and fsync; raises OSError (a full disk) without having acknowledged anything."""
        data = b"".join(encode(e) for e in entries)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, start)  # leave no torn line behind a failed append
                raise
        finally:
            os.close(fd)
        self.depth += len(entries)

    def read(self, limit: int) -> tuple[list[Entry], int]:
        """Up to ``limit`` entries after the read offset, and the offset just past them."""
        entries: list[Entry] = []
        offset = self.offset
        for line, end in self._lines(self.offset):
            if len(entries) >= limit:
                break
            entries.append(decode(line))
            offset = end
        return entries, offset

    def consume(self, offset: int, count: int) -> None:
        """The ``count`` entries before ``offset`` are in the database now."""
        self.depth -= count
        if self.depth <= 0:  # fully drained (a torn tail, never acknowledged, goes too): start over
            os.truncate(self.path, 0)
            self.offset_path.unlink(missing_ok=True)
            self.offset = 0
            self.depth = 0
            return
        tmp = self.offset_path.with_suffix(".tmp")
        tmp.write_text(str(offset))
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.offset_path)
        self.offset = offset

    @staticmethod
    def orphans(base: Path, layout: set[Path]) -> list[Path]:
        """Spool directories under ``base`` (itself, or one level down) outside ``layout``."""
        found = [base, *(p for p in sorted(base.iterdir()) if p.is_dir())] if base.is_dir() else []
        return [d for d in found if d not in layout and (d / NAME).is_file() and (d / NAME).stat().st_size]

    def _load_offset(self) -> int:
        try:
            offset = int(self.offset_path.read_text())
        except (OSError, ValueError):
            return 0
        size = self.path.stat().st_size if self.path.exists() else 0
        return offset if 0 <= offset <= size else 0

    def _lines(self, start: int) -> Iterator[tuple[bytes, int]]:
        """(line, offset after it) for every complete line from ``start``."""
        if not self.path.exists():
            return
        offset = start
        with self.path.open("rb") as f:
            f.seek(start)
            for line in f:
                if not line.endswith(b"\n"):
                    return  # torn: never acknowledged
                offset += len(line)
                yield line, offset


def _lock(directory: Path) -> int | None:
    """An exclusive flock on the directory's spool lock file, or None if another holds it."""
    fd = os.open(directory / f"{NAME}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
