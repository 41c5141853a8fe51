"""Flow aggregation (pure): flow batches in, per-service counters out.

``Aggregator`` attributes each record with the address map (addressmap.py: which service held
an address at a time, and the ISP's own prefixes) and folds ``codec.FlowBatch`` es into
``(service_id, bucket_start)`` counters ``[bytes_down, bytes_up, packets_down, packets_up]``.
The subscriber side of a flow decides the direction (a subscriber destination is download;
otherwise a subscriber source is upload). Traffic no service owns goes into ``unknown``
counters per exporter and, for the ISP's own addresses (``OwnPrefixes``), per subscriber-side
address (revenue leaks). A flow spanning several buckets is spread over them in proportion to
time, in integers whose sum is exactly the flow's bytes and packets (pmacct's
``nfacctd_pro_rating``). The writer takes the counters with ``drain()`` every N seconds
(STYLE.md §10).

IPv4 batches whose records can be read straight from their bytes are queued and folded many
datagrams at a time by ``bulk.Bulk4`` (NumPy), which settles what it can exactly as the
per-record loop (``_fold4``) would and hands that loop the rest; the queue is folded before
``drain()``, before any change to the ``ServiceMap`` and whenever it holds ``bulk`` records,
so results never depend on when that happens.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from .addressmap import OwnPrefixes, ServiceMap
from .bulk import Bulk4, Table, TableKey
from .codec import FlowBatch

__all__ = ["OTHER4", "OTHER6", "Aggregator", "Usage"]

HOUR_MS: Final = 3_600_000  # late traffic is booked by the hour
OTHER4: Final = "0.0.0.0/0"  # own IPv4 addresses of unknown traffic past max_unknown_addresses
OTHER6: Final = "::/0"
_NOT_OWN, _OTHER4, _OTHER6 = -1, -2, -3  # address codes of unknown counters; an IPv6 one has bit 128 set
_V6: Final = 1 << 128

def _address(code: int) -> str | None:
    """The text of an unknown counter's address code (None: outside own prefixes)."""
    if code >= _V6:
        return str(ipaddress.IPv6Address(code - _V6))
    if code >= 0:
        return str(ipaddress.IPv4Address(code))
    return {_OTHER4: OTHER4, _OTHER6: OTHER6}.get(code)


@dataclass(slots=True)
class Usage:
    """What ``Aggregator.drain`` hands to the writer.

    ``services()`` / ``rows()`` give the per-service counters, renormalised by the sampling
    rate: (service_id, bucket start in Unix seconds) -> [bytes_down, bytes_up, packets_down,
    packets_up].  ``unknown``: (exporter, bucket start, address) -> [bytes, packets] of flows
    whose addresses match no service; ``address`` is the subscriber side when it is one of
    the ISP's own (``OTHER4``/``OTHER6`` for those past ``max_unknown_addresses``), None
    otherwise.  ``records`` is the number of flow records folded;
    ``clamped`` how many were not booked at the minutes they carry (``Aggregator.moved``
    says why).
    """

    bucket_seconds: int
    groups: dict[tuple[int, int], dict[int, dict[int, list[int]]]]
    """Raw counters as the aggregator keeps them: (rate, packet rate) -> bucket index ->
    slot (service_id * 2, + 1 for upload) -> [bytes, packets] before renormalising."""
    unknown: dict[tuple[str, int, str | None], list[int]]
    records: int
    clamped: int

    def services(self) -> dict[tuple[int, int], list[int]]:
        """(service_id, bucket start) -> [bytes_down, bytes_up, packets_down, packets_up]."""
        out: dict[tuple[int, int], list[int]] = {}
        step = self.bucket_seconds
        for (rate, packet_rate), buckets in self.groups.items():
            for k, slots in buckets.items():
                start = k * step
                for slot, (b, p) in slots.items():
                    key = (slot >> 1, start)
                    c = out.get(key)
                    if c is None:
                        c = out[key] = [0, 0, 0, 0]
                    col = slot & 1
                    c[col] += b * rate
                    c[col + 2] += p * packet_rate
        return out

    def rows(self) -> Iterator[tuple[int, int, int, int, int, int]]:
        """(service_id, bucket start, bytes_down, bytes_up, packets_down, packets_up), for COPY."""
        for (service_id, start), (bd, bu, pd, pu) in self.services().items():
            yield service_id, start, bd, bu, pd, pu


class Aggregator:
    """Folds flow batches into per-service, per-bucket counters until ``drain()``.

    A flow is booked at the minutes it spans when it ended within [arrival - ``max_age``,
    arrival + ``max_lead``] (a start before that window is cut to it: ``start_cut``).  One
    that ended earlier but within ``late_window`` is late traffic (an exporter that sent it
    late, a replay): attributed at its own time and booked at the start of its hour (of its
    hours, in proportion, when it spans several), so a late burst makes one counter per
    service and hour, not per minute.  Anything else has no usable time and is booked at
    the arrival time: ``too_old`` or ``too_far_ahead``.  ``moved`` counts these records
    (``late`` too) by (exporter, reason), from the start; ``Usage.clamped`` per drain.

    Unknown traffic (no service owns either side) is counted per exporter; when a side is
    in ``own`` (destination, source, then the post-NAT ones), per that address too, for at
    most ``max_unknown_addresses`` distinct addresses between drains: the rest go to
    ``OTHER4``/``OTHER6`` and are counted in ``unknown_overflow`` (records, from the start).

    ``bulk``: IPv4 records queued for the NumPy path before it runs (0: every record takes
    the per-record loop, the reference the bulk path is tested against).
    """

    def __init__(self, services: ServiceMap, *, bucket_seconds: int = 60, max_age: float = 7200.0,
                 max_lead: float = 300.0, late_window: float = 86_400.0, own: OwnPrefixes | None = None,
                 max_unknown_addresses: int = 10_000, bulk: int = 8192) -> None:
        if bucket_seconds <= 0:
            raise ValueError("bucket_seconds must be positive")
        if not 0 <= bulk <= 1 << 14:  # Bulk4's overflow bounds assume at most 2^15 records a fold
            raise ValueError("bulk must be within 0..16384")
        self.services = services
        self.bucket_seconds = bucket_seconds
        self._bucket_ms = bucket_seconds * 1000
        self._max_age_ms = int(max_age * 1000)
        self._max_lead_ms = int(max_lead * 1000)
        self._late_ms = max(int(late_window * 1000), self._max_age_ms)
        self.moved: dict[tuple[str, str], int] = {}
        self.own = own or OwnPrefixes()
        self.max_unknown_addresses = max_unknown_addresses
        self.unknown_overflow = 0
        self._addresses: set[int] = set()  # address codes counted since the last drain
        # Counters are kept per sampling rate and multiplied once, in Usage.services(): the
        # hot loop then adds raw counts.  A slot is service_id * 2 (+ 1 for upload).
        self._groups: dict[tuple[int, int], dict[int, dict[int, list[int]]]] = {}
        self._unknown: dict[tuple[str, int, int], list[int]] = {}
        self._records = 0
        self._clamped = 0
        self._bulk_at = bulk
        self._bulk = Bulk4(self._bucket_ms, self._max_age_ms, self._max_lead_ms) if bulk else None
        self._queue: list[FlowBatch] = []
        self._queued = 0
        services.before_change(self.fold_queue)

    @property
    def pending(self) -> int:
        """Counter entries held now, for overflow control (an upper bound on rows)."""
        self._settle()
        return sum(len(d) for g in self._groups.values() for d in g.values()) + len(self._unknown)

    def drain(self) -> Usage:
        """Return the counters gathered so far and start afresh (O(1): a swap)."""
        self._settle()
        step = self.bucket_seconds
        unknown = {(exporter, k * step, _address(code)): c for (exporter, k, code), c in self._unknown.items()}
        usage = Usage(step, self._groups, unknown, self._records, self._clamped)
        self._groups = {}
        self._unknown = {}
        self._addresses = set()
        self._records = 0
        self._clamped = 0
        return usage

    def add(self, batch: FlowBatch) -> None:
        """Fold one batch of flow records (or queue it for the bulk path)."""
        self._records += batch.count
        if batch.family == 4:
            if batch.packed is not None and self._bulk is not None:
                self._queue.append(batch)
                self._queued += batch.count
                if self._queued >= self._bulk_at:
                    self.fold_queue()
                return
            self._fold4(batch, batch.rows())
        else:
            self._add6(batch)

    def fold_queue(self) -> None:
        """Fold the queued batches now (the map calls this before it changes)."""
        bulk = self._bulk
        if not self._queue or bulk is None:
            return
        batches, self._queue, self._queued = self._queue, [], 0
        index, dirty = self.services.index4()
        if bulk.index is not index:
            self._spill_tables()
            bulk.index = index
        clamped, left, moved = bulk.fold(batches, index, dirty, self._spill)
        self._clamped += clamped
        for key, n in moved.items():
            self.moved[key] = self.moved.get(key, 0) + n
        for rates in {(b.rate, b.packet_rate) for b in batches}:  # as the per-record loop makes them
            if rates not in self._groups:
                self._groups[rates] = {}
        for batch, numbers in left:
            if numbers is None:
                self._fold4(batch, batch.rows())
            else:
                rows = list(batch.rows())
                self._fold4(batch, [rows[i] for i in numbers])

    def _settle(self) -> None:
        """Everything queued or in the bulk path's tables into the counters."""
        self.fold_queue()
        self._spill_tables()

    def _spill_tables(self) -> None:
        bulk = self._bulk
        if bulk is not None and bulk.tables:
            for key, table in bulk.tables.items():
                self._spill(key, table)
            bulk.tables = {}

    def _spill(self, key: TableKey, table: Table) -> None:
        rates, k = key
        assert self._bulk is not None and self._bulk.index is not None
        group = self._groups.get(rates)
        if group is None:
            group = self._groups[rates] = {}
        d = group.get(k)
        if d is None:
            d = group[k] = {}
        for slot, b, p in table.entries(self._bulk.index):
            c = d.get(slot)
            if c is None:
                d[slot] = [b, p]
            else:
                c[0] += b
                c[1] += p

    def _fold4(self, batch: FlowBatch, rows: Iterable[tuple[int, ...]]) -> None:
        # The hot loop: locals only; a download record costs one dict lookup to attribute
        # and one to count, an upload record one more; nothing is called unless unusual.
        smap = self.services
        exact = smap.exact4.get
        # Static /32s settle a record at once unless a session could hold a covering prefix.
        static = (smap.static4 if not smap.session_prefixes4 else {}).get
        coarse = smap.coarse4
        cshift = smap.coarse4_shift
        add, mask, base = batch.clock
        arrival = batch.arrival_ms
        oldest = arrival - self._max_age_ms
        newest = arrival + self._max_lead_ms
        width = self._bucket_ms
        buckets = self._rate_group(batch)
        cur: dict[int, list[int]] = {}
        blo = bhi = 0  # bounds (ms) of the bucket `cur` counts
        clamped = 0
        for src, dst, octets, packets, rs, re, nsrc, ndst in rows:
            e = ((re + add) & mask) + base
            s = e - ((re - rs) & mask)
            if s < oldest or e > newest:
                s, e = self._retime(batch, s, e, oldest, newest)
                clamped += 1
                if e < oldest:
                    slot = self._resolve4(src, dst, nsrc, ndst, e)
                    if slot < 0:
                        self._add_unknown(batch, s, e, octets, packets, HOUR_MS, self._side4(src, dst, nsrc, ndst))
                    else:
                        self._spread(buckets, slot, s, e, (octets, packets), HOUR_MS)
                    continue
            v = exact(dst)
            if v is not None and v[0] <= e < v[1]:
                slot = v[2]
            elif v is None and (sd := static(dst)) is not None:
                slot = sd
            else:
                w = exact(src)
                if w is not None and w[0] <= e < w[1] and v is None and (dst >> cshift) not in coarse:
                    slot = w[2] + 1
                elif w is None and v is None and (dst >> cshift) not in coarse and (ss := static(src)) is not None:
                    slot = ss + 1
                else:
                    slot = self._resolve4(src, dst, nsrc, ndst, e)
                    if slot < 0:
                        self._add_unknown(batch, s, e, octets, packets, width, self._side4(src, dst, nsrc, ndst))
                        continue
            if s < blo or e >= bhi:
                k = s // width
                if e // width != k:
                    self._spread(buckets, slot, s, e, (octets, packets))
                    continue
                got = buckets.get(k)
                if got is None:
                    got = buckets[k] = {}
                cur = got
                blo = k * width
                bhi = blo + width
            c = cur.get(slot)
            if c is None:
                cur[slot] = [octets, packets]
            else:
                c[0] += octets
                c[1] += packets
        self._clamped += clamped

    def _resolve4(self, src: int, dst: int, nat_src: int, nat_dst: int, t: int) -> int:
        """The slot of a record the fast path could not place; -1 if no service owns it.
        Post-NAT addresses come last (MikroTik 225/226: a CGNAT subscriber's inside
        address may only be there)."""
        look = self.services.lookup4
        for addr, up in ((dst, 0), (src, 1), (nat_dst, 0), (nat_src, 1)):
            slot = look(addr, t)
            if slot is not None:
                return slot + up
        return -1

    def _add6(self, batch: FlowBatch) -> None:
        smap = self.services
        look = smap.lookup6
        coarse = smap.coarse6
        cshift = smap.coarse6_shift
        add, mask, base = batch.clock
        arrival = batch.arrival_ms
        oldest = arrival - self._max_age_ms
        newest = arrival + self._max_lead_ms
        width = self._bucket_ms
        buckets = self._rate_group(batch)
        for sh, sl, dh, dl, octets, packets, rs, re, nsh, nsl, ndh, ndl in batch.rows():
            e = ((re + add) & mask) + base
            s = e - ((re - rs) & mask)
            if s < oldest or e > newest:
                s, e = self._retime(batch, s, e, oldest, newest)
                self._clamped += 1
                if e < oldest:
                    owner = self._resolve6(sh, sl, dh, dl, nsh, nsl, ndh, ndl, e)
                    if owner < 0:
                        self._add_unknown(batch, s, e, octets, packets, HOUR_MS,
                                          self._side6(sh, sl, dh, dl, nsh, nsl, ndh, ndl))
                    else:
                        self._spread(buckets, owner, s, e, (octets, packets), HOUR_MS)
                    continue
            slot = look(dh, dl, e) if (dh >> cshift) in coarse else None
            if slot is None:
                slot = look(sh, sl, e) if (sh >> cshift) in coarse else None
                if slot is not None:
                    slot += 1
                else:
                    slot = self._resolve6_nat((nsh, nsl, ndh, ndl), (sh, sl, dh, dl), e)
                    if slot < 0:
                        self._add_unknown(batch, s, e, octets, packets, width,
                                          self._side6(sh, sl, dh, dl, nsh, nsl, ndh, ndl))
                        continue
            k = s // width
            if e // width != k:
                self._spread(buckets, slot, s, e, (octets, packets))
                continue
            d = buckets.get(k)
            if d is None:
                d = buckets[k] = {}
            c = d.get(slot)
            if c is None:
                d[slot] = [octets, packets]
            else:
                c[0] += octets
                c[1] += packets

    def _resolve6(self, sh: int, sl: int, dh: int, dl: int, nsh: int, nsl: int, ndh: int, ndl: int, t: int) -> int:
        """``_add6``'s attribution in one call (for the rare records that leave its loop)."""
        look = self.services.lookup6
        down = look(dh, dl, t)
        if down is not None:
            return down
        up = look(sh, sl, t)
        if up is not None:
            return up + 1
        return self._resolve6_nat((nsh, nsl, ndh, ndl), (sh, sl, dh, dl), t)

    def _resolve6_nat(self, nat: tuple[int, int, int, int], plain: tuple[int, int, int, int], t: int) -> int:
        """``_resolve4``'s post-NAT step for IPv6 rows (post-NAT destination, then source)."""
        look = self.services.lookup6
        nsh, nsl, ndh, ndl = nat
        sh, sl, dh, dl = plain
        if (ndh, ndl) != (dh, dl) and (slot := look(ndh, ndl, t)) is not None:
            return slot
        if (nsh, nsl) != (sh, sl) and (slot := look(nsh, nsl, t)) is not None:
            return slot + 1
        return -1

    def _rate_group(self, batch: FlowBatch) -> dict[int, dict[int, list[int]]]:
        rates = (batch.rate, batch.packet_rate)
        group = self._groups.get(rates)
        if group is None:
            group = self._groups[rates] = {}
        return group

    def _retime(self, batch: FlowBatch, s: int, e: int, oldest: int, newest: int) -> tuple[int, int]:
        """Usable times for a flow outside [oldest, newest], and why, counted (see the class
        docstring); an end still before ``oldest`` means late traffic, booked by the hour."""
        arrival = batch.arrival_ms
        if e > newest:
            reason = "too_far_ahead"
            s = e = arrival
        elif e >= oldest:
            reason = "start_cut"
            s = oldest
        elif e >= arrival - self._late_ms:
            reason = "late"
            s = max(s, arrival - self._late_ms)
        else:
            reason = "too_old"
            s = e = arrival
        key = (batch.exporter, reason)
        self.moved[key] = self.moved.get(key, 0) + 1
        return s, e

    def _spread(self, buckets: dict[int, dict[int, list[int]]], slot: int, s: int, e: int,
                counts: tuple[int, int], step: int = 0) -> None:
        """Count a flow that spans buckets, each getting its share of the time; with a
        ``step`` other than the bucket width (late traffic: an hour), in shares of steps, each
        booked at the bucket where its step starts."""
        width = self._bucket_ms
        if step and step != width:
            for k, b, p in _apportion(s, e, *counts, step):
                self._count(buckets, k * step // width, slot, b, p)
            return
        first = s // width
        if e // width == first + 1:  # the common case: across one boundary
            b, p = counts
            cut = (first + 1) * width - s
            span = e - s
            b1 = b * cut // span
            p1 = p * cut // span
            parts: list[tuple[int, int, int]] = [(first, b1, p1), (first + 1, b - b1, p - p1)]
        else:
            parts = _apportion(s, e, *counts, width)
        for k, b, p in parts:
            if b or p:
                self._count(buckets, k, slot, b, p)

    @staticmethod
    def _count(buckets: dict[int, dict[int, list[int]]], k: int, slot: int, b: int, p: int) -> None:
        d = buckets.get(k)
        if d is None:
            d = buckets[k] = {}
        c = d.get(slot)
        if c is None:
            c = d[slot] = [0, 0]
        c[0] += b
        c[1] += p

    def _side4(self, src: int, dst: int, nsrc: int, ndst: int) -> int:
        """The address code of an unknown IPv4 flow's subscriber side."""
        own = self.own
        if own:
            for addr in (dst, src, ndst, nsrc):
                if own.owns4(addr):
                    return self._bounded(addr, _OTHER4)
        return _NOT_OWN

    def _side6(self, sh: int, sl: int, dh: int, dl: int, nsh: int, nsl: int, ndh: int, ndl: int) -> int:
        own = self.own
        if own:
            for hi, lo in ((dh, dl), (sh, sl), (ndh, ndl), (nsh, nsl)):
                addr = hi << 64 | lo
                if own.owns6(addr):
                    return self._bounded(addr | _V6, _OTHER6)
        return _NOT_OWN

    def _bounded(self, code: int, other: int) -> int:
        seen = self._addresses
        if code in seen:
            return code
        if len(seen) < self.max_unknown_addresses:
            seen.add(code)
            return code
        self.unknown_overflow += 1
        return other

    def _add_unknown(self, batch: FlowBatch, s: int, e: int, octets: int, packets: int, step: int,
                     address: int) -> None:
        unknown = self._unknown
        exporter = batch.exporter
        width = self._bucket_ms
        for h, b, p in _apportion(s, e, octets * batch.rate, packets * batch.packet_rate, step):
            k = h if step == width else h * step // width
            key = (exporter, k, address)
            c = unknown.get(key)
            if c is None:
                c = unknown[key] = [0, 0]
            c[0] += b
            c[1] += p


def _apportion(s: int, e: int, b: int, p: int, width: int) -> list[tuple[int, int, int]]:
    """Split ``b`` bytes and ``p`` packets of a flow from ``s`` to ``e`` (ms) over buckets.

    Each bucket gets its share of the flow's duration, rounded down on the running total,
    so the parts add up to ``b`` and ``p`` exactly.  Empty shares are left out.
    """
    first = s // width
    last = e // width
    if first == last:
        return [(first, b, p)]
    span = e - s
    out = []
    b_done = p_done = 0
    for k in range(first, last + 1):
        done = min(e, (k + 1) * width) - s
        b_to = b * done // span
        p_to = p * done // span
        if b_to != b_done or p_to != p_done:
            out.append((k, b_to - b_done, p_to - p_done))
            b_done, p_done = b_to, p_to
    return out
