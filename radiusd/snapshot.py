"""What radiusd's caches hold, on disk, so that it can start while PostgreSQL is down.

A restart during an outage would otherwise mean no authentication and no spool at all. The
snapshot holds what authentication needs: the NAS table (secrets as they are in the database),
the subscribers, the open sessions and each service's last pool address. It is written to
``<state directory>/cache.snapshot`` (mode 600: it holds the same secrets as the ``nas`` and
``services`` tables) after every full load and at most once a ``interval`` when the caches
changed, and on a clean stop; atomically (a temporary file, fsync, rename), so a crash leaves the
previous one.

The format is JSON lines: a header (format, when, the subscriber fields in order), then sections
of at most ``CHUNK`` rows each, so that writing 100,000 subscribers in a thread gives the event
loop the interpreter back between chunks instead of holding it for the whole file. A snapshot
of another format, or whose subscriber fields differ from this code's, is refused whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import operator
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemons import log
from radiusd.cache import NasTable, Subscriber

FORMAT = 1
CHUNK = 1000
NAME = "cache.snapshot"

_FIELDS = [f.name for f in dataclasses.fields(Subscriber)]
_values = operator.attrgetter(*_FIELDS)
_DECODE: dict[str, Callable[[Any], Any]] = {
    "ipv4": ipaddress.IPv4Address,
    "ipv6_prefix": ipaddress.IPv6Network,
    "delegated_ipv6_prefix": ipaddress.IPv6Network,
    "extra_reply": lambda pairs: tuple((str(name), _value(value)) for name, value in pairs),
}


def _json_default(value: object) -> object:
    """Addresses as text; octets (a reply attribute's value) as {"hex": ...}, told apart from text."""
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    return str(value)


def _value(value: Any) -> Any:
    return bytes.fromhex(value["hex"]) if isinstance(value, dict) else value


class SnapshotError(Exception):
    """The snapshot cannot be used (missing, broken, or written by another version)."""


@dataclass(slots=True)
class Snapshot:
    written_at: float
    nas: list[dict[str, Any]]
    subscribers: list[Subscriber]
    online: list[tuple[int, str]]
    previous: dict[int, tuple[int, str]]


_dumps = json.JSONEncoder(separators=(",", ":"), default=_json_default).encode


def subscriber_lines(subscribers: list[Subscriber]) -> list[str]:
    """The subscriber sections of a snapshot (the costly part: a keeper encodes them again only
    when the subscribers changed)."""
    return [_dumps({"subscribers": [_values(sub) for sub in subscribers[i:i + CHUNK]]})
            for i in range(0, len(subscribers), CHUNK)]


def write(path: Path, snapshot: Snapshot, subscribers: list[str] | None = None) -> None:
    """Write ``snapshot`` to ``path`` atomically, readable by its owner only; ``subscribers``:
    its subscriber sections, already encoded."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for line in _lines(snapshot, subscribers):
                f.write(line)
                f.write("\n")
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _lines(s: Snapshot, subscribers: list[str] | None) -> Iterator[str]:
    yield _dumps({"format": FORMAT, "written_at": s.written_at, "subscriber_fields": _FIELDS,
                  "counts": {"nas": len(s.nas), "subscribers": len(s.subscribers), "online": len(s.online)}})
    yield _dumps({"nas": s.nas})
    yield from subscriber_lines(s.subscribers) if subscribers is None else subscribers
    for i in range(0, len(s.online), CHUNK * 10):
        yield _dumps({"online": s.online[i:i + CHUNK * 10]})
    previous = [[service, pool, address] for service, (pool, address) in s.previous.items()]
    for i in range(0, len(previous), CHUNK * 10):
        yield _dumps({"previous": previous[i:i + CHUNK * 10]})


def read(path: Path) -> Snapshot:
    """The snapshot at ``path``; SnapshotError if there is none or it cannot be used."""
    try:
        f = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise SnapshotError(f"no cache snapshot at {path}") from None
    except OSError as e:
        raise SnapshotError(f"{path}: {e.strerror}") from None
    with f:
        try:
            header = json.loads(f.readline())
            if header.get("format") != FORMAT or header.get("subscriber_fields") != _FIELDS:
                raise SnapshotError(f"{path} was written by another version of lastmile")
            snap = Snapshot(float(header["written_at"]), [], [], [], {})
            for number, line in enumerate(f, start=2):
                section = json.loads(line)
                if "nas" in section:
                    snap.nas.extend(section["nas"])
                elif "subscribers" in section:
                    snap.subscribers.extend(_subscriber(values) for values in section["subscribers"])
                elif "online" in section:
                    snap.online.extend((int(service), str(uid)) for service, uid in section["online"])
                elif "previous" in section:
                    snap.previous.update((int(s), (int(p), str(a))) for s, p, a in section["previous"])
                else:
                    raise SnapshotError(f"{path}:{number}: unknown section")
        except (ValueError, KeyError, TypeError) as e:  # json.JSONDecodeError is a ValueError
            raise SnapshotError(f"{path} is damaged: {e}") from None
    counts = header.get("counts", {})
    if (len(snap.nas), len(snap.subscribers)) != (counts.get("nas"), counts.get("subscribers")):
        raise SnapshotError(f"{path} is incomplete")
    return snap


_DECODE_AT = [(_FIELDS.index(name), decode) for name, decode in _DECODE.items()]


def _subscriber(values: list[Any]) -> Subscriber:
    if len(values) != len(_FIELDS):
        raise ValueError(f"a subscriber of {len(values)} fields, not {len(_FIELDS)}")
    for i, decode in _DECODE_AT:
        if values[i] is not None:
            values[i] = decode(values[i])
    return Subscriber(*values)


class SnapshotKeeper:
    """Writes the snapshot when the caches changed, at most once an ``interval``, and not in the
    first ``interval`` after a start (a start is when a storm of logins comes), unless there is
    no snapshot yet.

    ``collect()`` takes the snapshot's contents from the caches on the event loop (shallow
    copies of immutable entries, cheap) with the subscriber cache's version; the file is
    written in a thread, and the subscribers (most of it) are encoded again only when that
    version changed: under accounting load only the open sessions change."""

    def __init__(self, path: Path, collect: Callable[[], tuple[Snapshot, int]], interval: float = 60.0) -> None:
        self.path = path
        self.collect = collect
        self.interval = interval
        self.dirty = False
        self._wake = asyncio.Event()
        self._encoded: tuple[int, list[str]] | None = None
        self.log = log.get("lastmile.radiusd.snapshot")

    def changed(self, *_: object) -> None:
        self.dirty = True

    async def run(self) -> None:
        if self.path.exists():
            await asyncio.sleep(self.interval)
        while True:
            await self.save()
            await asyncio.sleep(self.interval)

    async def save(self) -> None:
        if not self.dirty:
            return
        self.dirty = False
        started = time.monotonic()
        snap, version = self.collect()
        encoded = self._encoded[1] if self._encoded is not None and self._encoded[0] == version else None
        try:
            if encoded is None:
                encoded = await asyncio.to_thread(subscriber_lines, snap.subscribers)
                self._encoded = (version, encoded)
            await asyncio.to_thread(write, self.path, snap, encoded)
        except OSError as e:
            self.dirty = True
            self.log.warning("cache snapshot not written", path=str(self.path), error=str(e))
            return
        self.log.debug("cache snapshot written", subscribers=len(snap.subscribers),
                       seconds=round(time.monotonic() - started, 2))


def nas_rows(table: NasTable) -> list[dict[str, Any]]:
    """The NAS table as rows of the ``nas`` query (what ``NasTable.replace`` takes)."""
    return [{"id": n.id, "name": n.name, "address": str(n.network), "secret": n.secret.decode(), "type": n.type,
             "coa_port": n.coa_port, "require_message_authenticator": n.require_ma,
             "limit_proxy_state": n.limit_proxy_state} for n in table.by_id.values()]
