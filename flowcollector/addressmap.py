"""Which service an address belongs to at a given time (pure): the aggregator's lookups.

``ServiceMap`` holds RADIUS session addresses and prefixes (Framed-IP-Address, Framed-Route,
Framed-IPv6-Prefix, Delegated-IPv6-Prefix), each valid from its start to its end, and static
prefixes (business customers with fixed addresses).  Sessions are looked up before static
prefixes; within each, the longest prefix wins.  ``OwnPrefixes`` is the ISP's own address
space: unknown traffic of an address in it is counted per address (revenue leaks).
"""

from __future__ import annotations

import ipaddress
import weakref
from collections.abc import Callable, Iterable
from typing import Final

import numpy as np

from .bulk import Index4, Ints

__all__ = ["FOREVER", "OwnPrefixes", "ServiceMap"]

FOREVER: Final = 1 << 62  # the end of a session not ended yet
MAX_DIRTY: Final = 256  # /32 sessions changed before the bulk path's snapshot is taken anew

Entry = tuple[int, int, int, "Entry | None"]
"""A session: (start_ms, end_ms, slot, the previous session on the same prefix); the slot is
service_id * 2, the aggregator's counter key for download (+ 1: upload).  Chains are newest
first and never overlap: a new session on a prefix ends the previous one."""

Network = str | ipaddress.IPv4Network | ipaddress.IPv6Network


def _at(chain: Entry | None, t: int) -> int | None:
    """The slot of the session holding the prefix at ``t`` (ms), if any."""
    while chain is not None:
        if t >= chain[0]:
            return chain[2] if t < chain[1] else None
        chain = chain[3]
    return None


def _length(chain: Entry | None) -> int:
    n = 0
    while chain is not None:
        n += 1
        chain = chain[3]
    return n


def _unchain(chain: Entry | None) -> list[tuple[int, int, int]]:
    out = []
    while chain is not None:
        out.append((chain[0], chain[1], chain[2]))
        chain = chain[3]
    return out


def _chain(items: list[tuple[int, int, int]]) -> Entry | None:
    """Build a chain from sessions sorted newest first, ending each at its successor's start."""
    chain: Entry | None = None
    for i in range(len(items) - 1, -1, -1):
        start, end, service = items[i]
        if i:
            end = min(end, items[i - 1][0])
        if start < end:
            chain = (start, end, service, chain)
    return chain


class ServiceMap:
    """Address -> service id, by time.  Mutated by the daemon from RADIUS and the database.

    Times given to methods are Unix seconds; internally everything is integer ms.  Lookups
    are built for the aggregator's hot loop: IPv4 /32 sessions in one ``dict`` keyed by the
    address as an int (``exact4``), then one ``dict`` per prefix length in use, keyed by the
    masked address, longest first; a set of the top bits of every prefix (``coarse4`` /
    ``coarse6``) rejects the many remote addresses with one lookup.
    """

    def __init__(self) -> None:
        self.exact4: dict[int, Entry] = {}
        #: Static IPv4 /32s (fixed addresses of services) -> slot, for the aggregator's fast path;
        #: usable there only while no session holds a shorter prefix (``session_prefixes4``).
        self.static4: dict[int, int] = {}
        self.session_prefixes4 = False
        self._sessions: dict[tuple[int, int], dict[int, Entry]] = {}  # (family, length) -> table
        self._static: dict[tuple[int, int], dict[int, int]] = {}
        self._sess4: list[tuple[int, dict[int, Entry]]] = []  # (shift, table), longest first
        self._stat4: list[tuple[int, dict[int, int]]] = []
        # IPv6: (shift, wide, table); a /64 or shorter keys on the high half (hi >> shift),
        # a longer prefix ("wide") on the whole address.
        self._sess6: list[tuple[int, bool, dict[int, Entry]]] = []
        self._stat6: list[tuple[int, bool, dict[int, int]]] = []
        self.coarse4: set[int] = set()
        self.coarse4_shift = 16
        self.coarse6: set[int] = set()
        self.coarse6_shift = 16
        self._watchers: list[weakref.WeakMethod[Callable[[], None]]] = []
        self._index4: Index4 | None = None  # the bulk path's snapshot, taken when first asked for
        self._dirty4: set[int] = set()  # /32 session keys changed since that snapshot
        #: Sessions held (open, and ended but kept for late flows) and static prefixes, for metrics:
        #: kept by every change, so a gauge reading them is never stale.
        self.sessions = 0
        self.static = 0

    def before_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (a bound method, held weakly) before every change: an aggregator
        folds what it has queued while the map still says what it said when that arrived."""
        self._watchers.append(weakref.WeakMethod(callback))

    def _notify(self) -> None:
        for ref in list(self._watchers):
            callback = ref()
            if callback is None:
                self._watchers.remove(ref)
            else:
                callback()

    def _changing(self, exact_key: int | None) -> None:
        self._notify()
        if exact_key is None:
            self._index4 = None
        else:
            self._dirty4.add(exact_key)

    def index4(self) -> tuple[Index4, Ints]:
        """The bulk path's snapshot of the IPv4 /32 lookups, and the sorted keys of /32 sessions
        changed since it was taken (their records must take the per-record loop)."""
        if self._index4 is None or len(self._dirty4) > MAX_DIRTY:
            self._index4 = Index4(self.exact4, {} if self.session_prefixes4 else self.static4, self.coarse4,
                                  self.coarse4_shift)
            self._dirty4 = set()
        return self._index4, np.array(sorted(self._dirty4), dtype=np.int64)

    # ------------------------------------------------------------------ mutations

    def add_session(self, prefix: Network, service_id: int, start: float, end: float | None = None) -> None:
        """A session holds ``prefix`` (an address is a /32 or /128) from ``start`` to ``end``.

        Re-adding a session with the same start replaces it (idempotent reloads).  A session
        on a prefix ends any earlier one there at its start: an address reused by another
        subscriber attributes by flow time.  NAS and flow clocks differ by seconds; pass a
        ``start`` a little early if first packets matter.
        """
        family, length, key = _parse(prefix)
        self._changing(key if family == 4 and length == 32 else None)
        known = (family == 4 and length == 32) or (family, length) in self._sessions
        table = self._session_table(family, length)
        begin = int(start * 1000)
        old = table.get(key)
        items = [i for i in _unchain(old) if i[0] != begin]
        items.append((begin, FOREVER if end is None else int(end * 1000), service_id << 1))
        items.sort(reverse=True)
        chain = _chain(items)
        self.sessions += _length(chain) - _length(old)
        if chain is None:
            table.pop(key, None)
        else:
            table[key] = chain
        if not known:
            self._rebuild()  # a prefix length not in use yet
        elif table is not self.exact4:
            self._cover(family, length, key)

    def end_session(self, prefix: Network, end: float) -> bool:
        """End the session holding ``prefix`` at ``end`` (RADIUS Stop); False if none did."""
        family, length, key = _parse(prefix)
        self._changing(key if family == 4 and length == 32 else None)
        table = self._session_table(family, length)
        end_ms = int(end * 1000)
        items = _unchain(table.get(key))
        for i, (start, old_end, service) in enumerate(items):
            if start <= end_ms < old_end:
                items[i] = (start, end_ms, service)
                chain = _chain(items)
                self.sessions += _length(chain) - len(items)
                if chain is None:
                    del table[key]
                else:
                    table[key] = chain
                return True
        return False

    def prune(self, before: float) -> int:
        """Forget sessions that ended before ``before``; return how many.  Call it on a timer,
        keeping sessions as long as their flows may still arrive (active timeout + hold)."""
        cutoff = int(before * 1000)
        removed = 0
        self._notify()
        for table in (self.exact4, *self._sessions.values()):
            for key, chain in list(table.items()):
                items = _unchain(chain)
                kept = [i for i in items if i[1] > cutoff]
                removed += len(items) - len(kept)
                if len(kept) != len(items):
                    pruned = _chain(kept)
                    self.sessions += _length(pruned) - len(items)
                    if pruned is None:
                        del table[key]
                    else:
                        table[key] = pruned
        if removed:
            self._index4 = None
        # Nothing removed: the snapshot still holds, its coarse filter passing at most more.
        self._rebuild()
        return removed

    def replace_static(self, prefixes: Iterable[tuple[Network, int]]) -> None:
        """Replace all static prefixes with ``(prefix, service_id)`` pairs."""
        self._changing(None)
        static: dict[tuple[int, int], dict[int, int]] = {}
        for prefix, service_id in prefixes:
            family, length, key = _parse(prefix)
            static.setdefault((family, length), {})[key] = service_id << 1
        self._static = static
        self.static = sum(len(t) for t in static.values())
        self._rebuild()

    def _session_table(self, family: int, length: int) -> dict[int, Entry]:
        if family == 4 and length == 32:
            return self.exact4
        return self._sessions.setdefault((family, length), {})

    def _cover(self, family: int, length: int, key: int) -> None:
        """Let the coarse filter pass a new prefix of a length in use (so ``length`` is at
        least the filter's width).  O(1); entries of removed prefixes stay until the next
        ``_rebuild``: a filter that passes too much is only slower."""
        coarse, shift = (self.coarse4, self.coarse4_shift) if family == 4 else (self.coarse6, self.coarse6_shift)
        coarse.add(key >> (length - (32 if family == 4 else 64) + shift))

    def _rebuild(self) -> None:
        """Refresh the per-length lists and coarse filters (O(prefixes): bulk changes only)."""
        for k in [k for k, t in self._sessions.items() if not t]:
            del self._sessions[k]
        sessions = sorted(self._sessions.items(), reverse=True)
        static = sorted(self._static.items(), reverse=True)
        self._sess4 = [(32 - ln, t) for (f, ln), t in sessions if f == 4]
        self._stat4 = [(32 - ln, t) for (f, ln), t in static if f == 4]
        self.static4 = self._static.get((4, 32), {})
        self.session_prefixes4 = bool(self._sess4)
        self._sess6 = [((64 if ln <= 64 else 128) - ln, ln > 64, t) for (f, ln), t in sessions if f == 6]
        self._stat6 = [((64 if ln <= 64 else 128) - ln, ln > 64, t) for (f, ln), t in static if f == 6]
        for family, top in ((4, 16), (6, 48)):
            tables: list[tuple[int, Iterable[int]]] = [(ln, t.keys()) for (f, ln), t in sessions if f == family]
            tables += [(ln, st.keys()) for (f, ln), st in static if f == family]
            coarse = min([top, *(ln for ln, _ in tables)])
            # The first `coarse` bits of every prefix (of the high 64 bits, for IPv6).
            values = {key >> (ln - coarse) for ln, keys in tables for key in keys}
            shift = (32 if family == 4 else 64) - coarse
            if family == 4:
                self.coarse4, self.coarse4_shift = values, shift
            else:
                self.coarse6, self.coarse6_shift = values, shift

    # ------------------------------------------------------------------ lookups

    def lookup(self, address: str, at: float) -> int | None:
        """The service owning ``address`` at Unix time ``at`` (for tests and the admin)."""
        ip = ipaddress.ip_address(address)
        t = int(at * 1000)
        if ip.version == 4:
            slot = self.lookup4(int(ip), t)
        else:
            slot = self.lookup6(int(ip) >> 64, int(ip) & 0xFFFFFFFFFFFFFFFF, t)
        return None if slot is None else slot >> 1

    def lookup4(self, addr: int, t: int) -> int | None:
        """IPv4 lookup: address as an int, time in Unix ms; returns the slot (service_id * 2)."""
        chain = self.exact4.get(addr)
        if chain is not None:
            found = _at(chain, t)
            if found is not None:
                return found
        if (addr >> self.coarse4_shift) not in self.coarse4:
            return None
        for shift, sessions in self._sess4:
            chain = sessions.get(addr >> shift)
            if chain is not None:
                found = _at(chain, t)
                if found is not None:
                    return found
        for shift, table in self._stat4:
            found = table.get(addr >> shift)
            if found is not None:
                return found
        return None

    def lookup6(self, hi: int, lo: int, t: int) -> int | None:
        """IPv6 lookup: address as its high and low 64 bits, time in Unix ms; returns the slot."""
        if (hi >> self.coarse6_shift) not in self.coarse6:
            return None
        for shift, wide, sessions in self._sess6:
            chain = sessions.get((hi << 64 | lo) >> shift if wide else hi >> shift)
            if chain is not None:
                if chain[0] <= t < chain[1]:  # the current session: no call
                    return chain[2]
                found = _at(chain[3], t)
                if found is not None:
                    return found
        for shift, wide, table in self._stat6:
            found = table.get((hi << 64 | lo) >> shift if wide else hi >> shift)
            if found is not None:
                return found
        return None


def _parse(prefix: Network) -> tuple[int, int, int]:
    """(family, prefix length, network as int >> host bits); ValueError if host bits are set."""
    net = ipaddress.ip_network(prefix)
    return net.version, net.prefixlen, int(net.network_address) >> (net.max_prefixlen - net.prefixlen)


class OwnPrefixes:
    """The ISP's own address space (pools, services' addresses and prefixes, or a setting):
    unknown traffic whose subscriber side is in it is counted per address.  Any prefix that
    contains an address will do (no longest match): a lookup is one probe of a coarse filter
    (the first 16 / 48 bits of every prefix, fewer if a prefix is shorter), which settles
    foreign addresses, then one set probe per prefix length in use."""

    def __init__(self, prefixes: Iterable[Network] = ()) -> None:
        by_length: dict[tuple[int, int], set[int]] = {}
        for prefix in prefixes:
            family, length, key = _parse(prefix)
            by_length.setdefault((family, length), set()).add(key)
        self.count = sum(len(keys) for keys in by_length.values())
        self._v4 = [(32 - ln, keys) for (f, ln), keys in sorted(by_length.items()) if f == 4]
        self._v6 = [(128 - ln, keys) for (f, ln), keys in sorted(by_length.items()) if f == 6]
        self._coarse4, self._cshift4 = self._coarse(self._v4, 32, 16)
        self._coarse6, self._cshift6 = self._coarse(self._v6, 128, 48)

    @staticmethod
    def _coarse(tables: list[tuple[int, set[int]]], bits: int, top: int) -> tuple[set[int], int]:
        width = min([top, *(bits - shift for shift, _ in tables)])
        cshift = bits - width
        return {key >> (cshift - shift) for shift, keys in tables for key in keys}, cshift

    def __bool__(self) -> bool:
        return self.count > 0

    def owns4(self, addr: int) -> bool:
        if addr >> self._cshift4 not in self._coarse4:
            return False
        return any(addr >> shift in keys for shift, keys in self._v4)

    def owns6(self, addr: int) -> bool:
        if addr >> self._cshift6 not in self._coarse6:
            return False
        return any(addr >> shift in keys for shift, keys in self._v6)
