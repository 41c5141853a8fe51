"""The aggregator's bulk path: many IPv4 flow batches attributed and counted at once with NumPy.

Per record, CPython costs about half a microsecond to unpack, attribute and count a flow;
NumPy does the same arithmetic over thousands of records for a few nanoseconds each, but
costs about a microsecond per call, so ``Aggregator`` queues the batches of many datagrams
and hands them here together (``Bulk4.fold``).

This path only takes what it can settle exactly as ``Aggregator``'s per-record loop would:
a record whose addresses are a /32 session's current holder or a static /32 (read from an
``Index4``, a sorted-array snapshot of ``ServiceMap``), whose flow lies in one bucket or
straddles one boundary, and whose counters and times are small enough that int64 arithmetic
cannot overflow.  Every other record (prefixes, an older session of a reused address, unknown
traffic, post-NAT fallbacks, flows over several buckets, huge values) is handed back to the
per-record loop, which stays the reference: the two paths give identical ``Usage`` by
construction, and ``tests/unit/flow/test_bulk.py`` checks it.

Counts go into dense ``Table`` s, one per (sampling rates, bucket), indexed by the snapshot's
slot numbering; ``Aggregator`` spills them into its dicts when it drains, when the snapshot
changes, or before a table could overflow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .codec import FlowBatch
    from .templates import FlowPlan

__all__ = ["Bulk4", "Index4", "Table"]

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

T62: Final = 1 << 62  # raw times and session times stay below this: no int64 overflow anywhere
M32: Final = 0xFFFFFFFF
MASKS: Final = {M32: M32, (1 << 64) - 1: -1, 0: 0}  # clock masks as int64 bit patterns
TABLE_CAP: Final = 1 << 62  # bytes or packets a table may hold before it is spilled
_TOKEN = re.compile(r"(\d*)([xBHIQ])")
_SIZES: Final = {"x": 1, "B": 1, "H": 2, "I": 4, "Q": 8}


class Index4:
    """``ServiceMap``'s IPv4 /32 lookups at one moment, as sorted arrays.

    ``exact*``: /32 session keys and the current (newest) session of each: start, end (ms)
    and its slot's dense number; ``static*``: static /32s (empty while sessions hold
    prefixes, as in the per-record loop).  ``slots`` maps a dense number back to a slot:
    ``slots[d >> 1] + (d & 1)``.  ``odd``: keys whose session times do not fit int64 (left
    to the per-record loop).
    """

    __slots__ = ("coarse", "cshift", "exact_end", "exact_keys", "exact_slot", "exact_start", "odd",
                 "slots", "static_keys", "static_slot")

    def __init__(self, exact4: Mapping[int, tuple[int, int, int, object]], static4: Mapping[int, int],
                 coarse: Iterable[int], cshift: int) -> None:
        # Each table starts with key -1, which no address has: lookups then never meet an empty array.
        heads = [(-1, 0, 0, 0)]
        heads += [(k, v[0], v[1], v[2]) for k, v in exact4.items() if _sane(v[0], v[1])]
        self.odd = np.array(sorted(k for k, v in exact4.items() if not _sane(v[0], v[1])), dtype=np.int64)
        ex = np.array(heads, dtype=np.int64).reshape(-1, 4)
        ex = ex[np.argsort(ex[:, 0], kind="stable")]
        st = np.array([(-1, 0), *static4.items()], dtype=np.int64).reshape(-1, 2)
        st = st[np.argsort(st[:, 0], kind="stable")]
        self.slots = np.unique(np.concatenate([ex[:, 3], st[:, 1]]))
        self.exact_keys = np.ascontiguousarray(ex[:, 0])
        self.exact_start = np.ascontiguousarray(ex[:, 1])
        self.exact_end = np.ascontiguousarray(ex[:, 2])
        self.exact_slot = np.searchsorted(self.slots, ex[:, 3]).astype(np.int64) * 2
        self.static_keys = np.ascontiguousarray(st[:, 0])
        self.static_slot = np.searchsorted(self.slots, st[:, 1]).astype(np.int64) * 2
        self.cshift = cshift
        self.coarse = np.zeros(1 << (32 - cshift), dtype=np.bool_)
        marks = np.fromiter(coarse, dtype=np.int64)
        self.coarse[marks[(marks >= 0) & (marks < len(self.coarse))]] = True

    @property
    def width(self) -> int:
        """Dense counter slots a ``Table`` needs."""
        return 2 * len(self.slots)


class Table:
    """Counters of one (rates, bucket): bytes and packets per dense slot, and which slots the
    per-record loop would have created (it creates a counter even for a zero record)."""

    __slots__ = ("bytes", "packets", "present", "total_bytes", "total_packets")

    def __init__(self, width: int) -> None:
        self.bytes = np.zeros(width, dtype=np.int64)
        self.packets = np.zeros(width, dtype=np.int64)
        self.present = np.zeros(width, dtype=np.bool_)
        self.total_bytes = 0
        self.total_packets = 0

    def entries(self, index: Index4) -> Iterable[tuple[int, int, int]]:
        """(slot, bytes, packets) of every counter present."""
        at = np.flatnonzero(self.present)
        slots = index.slots[at >> 1] + (at & 1)
        return zip(slots.tolist(), self.bytes[at].tolist(), self.packets[at].tolist(), strict=True)


TableKey = tuple[tuple[int, int], int]  # ((rate, packet rate), bucket index)


class Bulk4:
    """Folds queued IPv4 batches into ``tables``; see the module docstring."""

    def __init__(self, width_ms: int, max_age_ms: int, max_lead_ms: int, max_tables: int = 16) -> None:
        self.width = width_ms
        self.max_age = max_age_ms
        self.max_lead = max_lead_ms
        self.max_tables = max_tables
        # Octets and packets below this: value * (ms into a bucket) fits int64, and so does
        # the sum of a fold's records (at most 2^15 of them).
        self.limit = min(1 << 47, (2**63 - 1) // width_ms)
        self.index: Index4 | None = None
        self.tables: dict[TableKey, Table] = {}
        self._dtypes: dict[tuple[str, tuple[int, ...]], np.dtype[np.void]] = {}

    def fold(self, batches: list[FlowBatch], index: Index4, dirty: Ints,
             spill: Callable[[TableKey, Table], None]
             ) -> tuple[int, list[tuple[FlowBatch, list[int] | None]], dict[tuple[str, str], int]]:
        """Count what this path settles; return (records clamped here, records left over as
        (batch, row numbers, None for all), records clamped by (exporter, reason)).
        ``dirty``: sorted /32 keys changed since ``index`` was taken (their records are left
        over); ``spill`` takes a table out."""
        assert index is self.index
        left: list[tuple[FlowBatch, list[int] | None]] = []
        moved: dict[tuple[str, str], int] = {}
        by_plan: dict[int, list[FlowBatch]] = {}
        params: list[tuple[int, int, int, int, int, tuple[int, int]]] = []
        order: list[FlowBatch] = []
        for b in batches:
            add, mask, base = b.clock
            m = MASKS.get(mask)
            if m is None or not (-T62 < add < T62 and -T62 < base < T62 and 0 <= b.arrival_ms < T62):
                left.append((b, None))
                continue
            by_plan.setdefault(id(b.plan), []).append(b)
        cols: list[list[Ints]] = [[] for _ in range(6)]
        wild: list[Bools] = []
        for group in by_plan.values():
            got, bad = self._columns(group)
            for i in range(6):
                cols[i].append(got[i])
            wild.append(bad)
            for b in group:
                add, mask, base = b.clock
                params.append((b.count, add, MASKS[mask], base, b.arrival_ms, (b.rate, b.packet_rate)))
                order.append(b)
        if not order:
            return 0, left, moved
        src, dst, octets, packets, rs, re_ = (c[0] if len(c) == 1 else np.concatenate(c) for c in cols)
        fb = wild[0] if len(wild) == 1 else np.concatenate(wild)
        counts = np.array([p[0] for p in params], dtype=np.int64)
        rep = np.repeat
        groups: dict[tuple[int, int], int] = {}
        gids = [groups.setdefault(p[5], len(groups)) for p in params]
        per = np.array([p[1:5] for p in params], dtype=np.int64)
        add_r, mask_r, base_r, arrival = (rep(per[:, i], counts) for i in range(4))

        # Flow times, as Aggregator._fold4 computes them.
        fb |= (octets >= self.limit) | (packets >= self.limit)
        end = ((re_ + add_r) & mask_r) + base_r
        dur = (re_ - rs) & mask_r
        fb |= dur < 0  # a 64-bit start after its end: the per-record loop's clamp handles it
        start = end - dur
        oldest = arrival - self.max_age
        newest = arrival + self.max_lead
        fb |= end < oldest  # late or too old: the per-record loop books it by the hour, or at arrival
        garbage = end > newest
        cut = (start < oldest) & ~garbage
        start = np.where(garbage, arrival, np.where(cut, oldest, start))
        end = np.where(garbage, arrival, end)

        # Attribution: the per-record loop's fast path, record by record the same decisions.
        v_at, v_hit = _find(index.exact_keys, dst)
        v_ok = v_hit & (index.exact_start[v_at] <= end) & (end < index.exact_end[v_at])
        sd_at, sd_hit = _find(index.static_keys, dst)
        sd_ok = sd_hit & ~v_hit
        dst_coarse = index.coarse[dst >> index.cshift]
        w_at, w_hit = _find(index.exact_keys, src)
        w_ok = w_hit & (index.exact_start[w_at] <= end) & (end < index.exact_end[w_at])
        ss_at, ss_hit = _find(index.static_keys, src)
        rest = ~(v_ok | sd_ok) & ~v_hit & ~dst_coarse
        up1 = rest & w_ok
        up2 = rest & ~w_hit & ss_hit
        fb |= ~(v_ok | sd_ok | up1 | up2)
        if len(dirty):
            fb |= _find(dirty, dst)[1] | _find(dirty, src)[1]
        if len(index.odd):  # sessions with absurd times: the per-record loop's business
            fb |= _find(index.odd, dst)[1] | _find(index.odd, src)[1]
        dense = np.where(v_ok, index.exact_slot[v_at],
                         np.where(sd_ok, index.static_slot[sd_at],
                                  np.where(up1, index.exact_slot[w_at], index.static_slot[ss_at]) + 1))

        # Buckets: one, or two (a flow across one boundary); more go to the per-record loop.
        width = self.width
        k = start // width
        k_end = end // width
        one = k_end == k
        two = k_end == k + 1
        fb |= ~(one | two)
        ok = ~fb
        clamped = int(np.count_nonzero((garbage | cut) & ok))
        offsets = np.cumsum(counts) - counts
        if clamped:  # rare: which batches (exporters) they came from
            for reason, which in (("too_far_ahead", garbage & ok), ("start_cut", cut & ok)):
                owners, n = np.unique(np.searchsorted(offsets, np.flatnonzero(which), side="right") - 1,
                                      return_counts=True)
                for o, m in zip(owners.tolist(), n.tolist(), strict=True):
                    key = (order[o].exporter, reason)
                    moved[key] = moved.get(key, 0) + m

        gid = rep(np.array(gids, dtype=np.int64), counts)
        pairs = list(groups)
        sel_one = np.flatnonzero(ok & one)
        sel_two = np.flatnonzero(ok & two)
        # (rate group, bucket, dense slot, bytes, packets) of every count to make.
        parts: list[tuple[Ints, Ints, Ints, Ints, Ints]] = []
        if len(sel_one):
            parts.append((gid[sel_one], k[sel_one], dense[sel_one], octets[sel_one], packets[sel_one]))
        if len(sel_two):
            # Aggregator._spread's two-bucket case; a part with nothing in it makes no counter.
            s2, e2, b2, p2, k2 = start[sel_two], end[sel_two], octets[sel_two], packets[sel_two], k[sel_two]
            span = e2 - s2
            cut2 = (k2 + 1) * width - s2
            first_b = b2 * cut2 // span
            first_p = p2 * cut2 // span
            for kk, bb, pp in ((k2, first_b, first_p), (k2 + 1, b2 - first_b, p2 - first_p)):
                some = (bb != 0) | (pp != 0)
                parts.append((gid[sel_two][some], kk[some], dense[sel_two][some], bb[some], pp[some]))
        for g, kk, d, bb, pp in parts:
            if not len(g):
                continue
            kmin = int(kk.min())
            code = g * (1 << 40) + (kk - kmin)
            lo = int(code.min())
            if lo == int(code.max()):  # the usual case: one sampling rate, one minute
                self._add(spill, (pairs[lo >> 40], kmin + (lo & ((1 << 40) - 1))), index.width, d, bb, pp)
                continue
            for c in np.unique(code).tolist():
                m = code == c
                self._add(spill, (pairs[c >> 40], kmin + (c & ((1 << 40) - 1))), index.width, d[m], bb[m], pp[m])

        if fb.any():
            where = np.flatnonzero(fb)
            owner = np.searchsorted(offsets, where, side="right") - 1
            rows: dict[int, list[int]] = {}
            for i, o in zip(where.tolist(), owner.tolist(), strict=True):
                rows.setdefault(o, []).append(i - int(offsets[o]))
            left += [(order[o], r) for o, r in rows.items()]
        return clamped, left, moved

    def _add(self, spill: Callable[[TableKey, Table], None], key: TableKey, width: int, dense: Ints,
             octets: Ints, packets: Ints) -> None:
        table = self.tables.get(key)
        tb, tp = int(octets.sum()), int(packets.sum())
        if table is not None and (table.total_bytes + tb >= TABLE_CAP or table.total_packets + tp >= TABLE_CAP):
            spill(key, self.tables.pop(key))
            table = None
        if table is None:
            if len(self.tables) >= self.max_tables:
                oldest = min(self.tables, key=lambda t: t[1])
                spill(oldest, self.tables.pop(oldest))
            table = self.tables[key] = Table(width)
        np.add.at(table.bytes, dense, octets)
        np.add.at(table.packets, dense, packets)
        table.present[dense] = True
        table.total_bytes += tb
        table.total_packets += tp

    def _columns(self, group: list[FlowBatch]) -> tuple[list[Ints], Bools]:
        """src, dst, octets, packets, start, end of every record of batches sharing a plan, as
        int64, and which records hold a 64-bit value too large for this path."""
        plan = group[0].plan
        dtype = self._dtype(plan)
        recs = np.frombuffer(b"".join(b.packed or b"" for b in group), dtype=dtype)
        bad = np.zeros(len(recs), dtype=np.bool_)
        out: list[Ints] = []
        seen: dict[int, Ints] = {}
        for kept in plan.order[:6]:
            col = seen.get(kept)
            if col is None:
                raw = recs[f"k{kept}"]
                if raw.dtype.itemsize == 8:
                    big = raw >= T62
                    bad |= big
                    raw = np.where(big, 0, raw)
                col = seen[kept] = raw.astype(np.int64)
            out.append(col)
        return out, bad

    def _dtype(self, plan: FlowPlan) -> np.dtype[np.void]:
        assert plan.unpack is not None
        fmt = plan.unpack.format
        key = (fmt, plan.order)
        dtype = self._dtypes.get(key)
        if dtype is None:
            names: list[str] = []
            formats: list[str] = []
            offsets: list[int] = []
            pos = 0
            kept = 0
            for count, code in _TOKEN.findall(fmt.lstrip("!>")):
                n = int(count) if count else 1
                if code == "x":
                    pos += n
                    continue
                for _ in range(n):
                    if kept in plan.order[:6]:
                        names.append(f"k{kept}")
                        formats.append(f">u{_SIZES[code]}")
                        offsets.append(pos)
                    pos += _SIZES[code]
                    kept += 1
            assert pos == plan.unpack.size
            dtype = self._dtypes[key] = np.dtype({"names": names, "formats": formats, "offsets": offsets,
                                                  "itemsize": pos})
        return dtype


def _sane(start: int, end: int) -> bool:
    return start >= -T62 and end <= T62


def _find(keys: Ints, values: Ints) -> tuple[Ints, Bools]:
    """Where each value is in the sorted, non-empty ``keys`` (clipped) and whether it is there."""
    at = np.minimum(np.searchsorted(keys, values), len(keys) - 1)
    return at, keys[at] == values
