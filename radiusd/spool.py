"""The accounting spool: records acknowledged while PostgreSQL was away, on disk until replayed.

An append writes whole lines and fsyncs before it returns, so a record the NAS was told is saved
survives a crash of radiusd or of the machine. A torn last line (a crash during an append that
was therefore never acknowledged) is ignored on reading. ``consume(offset)`` drops what was
replayed and keeps anything appended since, atomically (new file, fsync, rename).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from radiusd.acct import NasEvent, SessionRecord

Entry = SessionRecord | NasEvent
_TYPES: dict[str, type[SessionRecord] | type[NasEvent]] = {"s": SessionRecord, "n": NasEvent}
_TIME_FIELDS = {cls: {f.name for f in fields(cls) if "datetime" in str(f.type)} for cls in _TYPES.values()}


def encode(entry: Entry) -> bytes:
    tag = "s" if isinstance(entry, SessionRecord) else "n"
    data: dict[str, Any] = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(entry).items()}
    return json.dumps({"t": tag, **data}, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> Entry:
    data = json.loads(line)
    cls = _TYPES[data.pop("t")]
    for name in _TIME_FIELDS[cls]:
        if data.get(name) is not None:
            data[name] = datetime.fromisoformat(data[name])
    return cls(**data)


class Spool:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "accounting.spool"
        self.depth = sum(1 for _ in self._lines()) if self.path.exists() else 0

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
        """Up to ``limit`` entries from the start, and the offset just past them."""
        entries: list[Entry] = []
        offset = 0
        for line, end in self._lines():
            if len(entries) >= limit:
                break
            entries.append(decode(line))
            offset = end
        return entries, offset

    def consume(self, offset: int) -> None:
        """Forget everything before ``offset`` (it is in the database now)."""
        with self.path.open("rb") as f:
            f.seek(offset)
            tail = f.read()
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            f.write(tail)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self.depth = sum(1 for _ in self._lines())

    def _lines(self) -> Any:
        """(line, offset after it) for every complete line."""
        if not self.path.exists():
            return
        offset = 0
        with self.path.open("rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    return  # torn: never acknowledged
                offset += len(line)
                yield line, offset
