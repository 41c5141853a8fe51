"""NetFlow v5, v9 (RFC 3954) and IPFIX (RFC 7011) decoding, sans-IO.

``Decoder.decode(datagram, exporter, now)`` turns one UDP payload into a ``Decoded``: a list
of ``FlowBatch`` (the records of one data set, still packed), the export loss seen in the
sequence numbers, and per-reason counts of what was skipped.  The decoder keeps the state
the protocols need (templates, options-announced sampling, sequence numbers, data waiting
for its template) per exporting domain, bounded by ``DecoderSettings``.

Design, for speed: a data set is not turned into objects.  Its template was compiled when
it arrived (``templates.Template``), so a batch is the set's bytes plus that plan; the
aggregator walks ``FlowBatch.rows()`` — one tuple per record from ``struct.iter_unpack``
— and converts times with the batch's integer constants.  Only ``FlowBatch.flows()``
(tests, debugging) builds one object per record.

Errors: ``CodecError`` is raised only when a datagram cannot be framed (short or
inconsistent header, a set that does not fit), before any state changes.  Problems inside
a well-framed datagram (a malformed template, a record that overruns its set, data without
a template) are counted in ``Decoded.dropped`` and the rest of the datagram is used.
"""

from __future__ import annotations

import ipaddress
import json
import struct
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Final, NamedTuple

from .templates import (
    INIT_MS,
    MAX_RATE,
    PACKET_INTERVAL,
    PACKET_SPACE,
    SAMPLER_ID,
    SAMPLER_RANDOM_INTERVAL,
    SAMPLING_INTERVAL,
    SELECTOR_ID,
    STATE_FORMAT,
    T_MILLIS,
    T_NONE,
    T_SECONDS,
    T_UPTIME,
    CodecError,
    FlowPlan,
    Template,
    parse_state,
    read_fields,
    read_options,
    walk_records,
)

__all__ = ["CodecError", "Decoded", "Decoder", "DecoderSettings", "Flow", "FlowBatch", "Report"]

M32: Final = 0xFFFFFFFF
HALF: Final = 1 << 31
M64: Final = (1 << 64) - 1
NTP_EPOCH_MS: Final = 2_208_988_800_000  # 1900-01-01 to 1970-01-01: the NTP epoch (RFC 7011 §6.1)
MAX_SAMPLERS: Final = 256  # sampler table entries kept per domain
MAX_GAPS: Final = 64  # pending sequence gaps kept per domain
RATE_WINDOW: Final = 10.0  # seconds over which an exporter's sequence rate is measured
MAX_DOWNTIME: Final = 7 * 86_400.0  # a sequence saved longer ago than this is not compared (a new start)
MOVED: Final = {"corrected": "clock_corrected", "arrival": "no_clock", "estimated": "estimated"}

V5_HDR = struct.Struct("!HHIIIIBBH")
V9_HDR = struct.Struct("!HHIIII")
IPFIX_HDR = struct.Struct("!HHIII")
SET_HDR = struct.Struct("!HH")
HALFWORD = struct.Struct("!H")

# v5 record (Cisco "NetFlow Export Datagram Format"): srcaddr, dstaddr, [nexthop, input, output],
# dPkts, dOctets, First, Last, [ports, flags, proto, tos, AS, masks, pad].
_V5_PLAN: Final = FlowPlan(
    family=4, unpack=struct.Struct("!II8xIIII16x"), walk=(), getter=itemgetter(0, 1, 3, 2, 4, 5, 0, 1),
    order=(0, 1, 3, 2, 4, 5, 0, 1),
    has_packets=True, nat=False, start_kind=T_UPTIME, end_kind=T_UPTIME, end_at=5, init_at=-1, sampler_at=-1,
)

Clock = tuple[int, int, int]
"""(add, mask, base): Unix ms = ((raw + add) & mask) + base, for every record of a batch."""


@dataclass(frozen=True, slots=True)
class DecoderSettings:
    """Bounds and timers of the decoder's state.  Defaults suit a few hundred exporters."""

    template_timeout: float = 1800.0
    """Seconds a template lives after it was last (re)announced (RFC 7011 §8.4; N-3)."""
    max_templates: int = 10_000
    """Templates kept in all; the least recently announced is evicted first."""
    max_templates_per_domain: int = 1_000
    """Templates kept per (exporter, observation domain / source id) (N-3)."""
    max_domains: int = 4_096
    """Exporting domains tracked; the least recently heard is forgotten first."""
    hold_seconds: float = 60.0
    """How long a data set waits for its template before it is dropped as ``no_template``."""
    hold_max_sets: int = 1_024
    """Data sets waiting for templates, in all (0 disables holding)."""
    reorder_window: int = 32
    """Datagrams a sequence gap may stay open for a late datagram before it counts as loss."""
    max_clock_skew: float = 300.0
    """Seconds an exporter's clock may differ from ``now`` before its times are shifted onto
    the collector's clock (a router without NTP still gets usable flow times)."""
    max_sampling_rate: int = 65_535
    """Highest sampling rate an exporter may announce (v5 header, options data) and be
    believed; a higher one is dropped as ``sampling_too_high`` and the rate known before
    stays.  Rates configured with ``set_sampling`` may go up to ``MAX_RATE``."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_sampling_rate <= MAX_RATE:
            raise ValueError(f"max_sampling_rate must be within 1..{MAX_RATE}")


class Flow(NamedTuple):
    """One record, decoded in full (for tests, debugging and raw-flow storage).

    ``octets`` and ``packets`` are renormalised (multiplied by the sampling rate);
    ``packets`` is 0 when the template has no packet counter.  Times are Unix ms.
    """

    src: str
    dst: str
    octets: int
    packets: int
    start_ms: int
    end_ms: int
    nat_src: str | None
    nat_dst: str | None


class FlowBatch:
    """The flow records of one data set, decoded with one template.

    ``rows()`` yields one tuple of ints per record: for ``family`` 4 ``(src, dst, octets,
    packets, start, end, nat_src, nat_dst)``, for 6 ``(src_hi, src_lo, dst_hi, dst_lo, octets,
    packets, start, end, nat_src_hi, nat_src_lo, nat_dst_hi, nat_dst_lo)`` (IPv6 addresses as
    two 64-bit halves, so a /64 or shorter prefix is a shift of the high half).  Without
    post-NAT fields the nat_* values repeat src/dst.  Times are raw; with ``add, mask, base =
    clock`` the end
    is ``((end + add) & mask) + base`` Unix ms and the start is that minus
    ``(end - start) & mask`` (so a start never follows its end; an inverted pair reads as
    a huge duration that the aggregator clamps).  ``octets`` / ``packets`` are as sent;
    multiply by ``rate`` / ``packet_rate`` (``packet_rate`` is 0 when the template has no
    packet counter, whose slot then repeats the octets).  When records name their sampler
    (field 48 or 302), each row comes already multiplied by its sampler's rate and ``rate``
    is 1.

    ``sampling`` says where ``rate`` came from: ``"exported"`` (v5 header or options data),
    ``"configured"`` (``Decoder.set_sampling``) or ``"unknown"`` (rate 1 assumed; N-10).
    ``times`` says where flow times came from: ``"exporter"``, ``"corrected"`` (exporter
    clock off by more than ``max_clock_skew``; shifted onto ours), ``"estimated"`` (IPFIX
    sysUpTime without systemInitTime: the newest flow end is taken as export time) or
    ``"arrival"`` (no time fields: ``now``).

    ``packed`` is the records' bytes when ``rows()`` reads them straight from the set
    (``plan.unpack`` describes one record, nothing was adjusted per record), else None: a
    bulk reader may then take ``plan.order``'s columns from those bytes itself.
    """

    __slots__ = ("_data", "_rows", "arrival_ms", "clock", "count", "exporter", "family",
                 "packed", "packet_rate", "plan", "rate", "sampling", "times")

    def __init__(self, exporter: str, plan: FlowPlan, data: bytes, *, rows: list[tuple[int, ...]] | None,
                 count: int, rate: int, sampling: str, clock: Clock, times: str, arrival_ms: int) -> None:
        self.exporter = exporter
        self.family = plan.family
        self.count = count
        self.rate = rate
        self.packet_rate = rate if plan.has_packets else 0
        self.sampling = sampling
        self.clock = clock
        self.times = times
        self.arrival_ms = arrival_ms
        self.plan = plan
        self.packed = data if rows is None else None
        self._data = data
        self._rows = rows

    def rows(self) -> Iterator[tuple[int, ...]]:
        """A fresh iterator over the records' rows (cheap: nothing is decoded ahead)."""
        if self._rows is not None:
            return iter(self._rows)
        unpack = self.plan.unpack
        assert unpack is not None
        return map(self.plan.getter, unpack.iter_unpack(self._data))

    def flows(self) -> list[Flow]:
        """Every record as a ``Flow`` (slow: objects per record; not for the hot path)."""
        add, mask, base = self.clock
        nat = self.plan.nat
        out = []
        for row in self.rows():
            if self.family == 4:
                src, dst, nsrc, ndst = (str(ipaddress.IPv4Address(a)) for a in (row[0], row[1], row[6], row[7]))
                rest = row[2:6]
            else:
                src, dst, nsrc, ndst = (str(ipaddress.IPv6Address(row[i] << 64 | row[i + 1])) for i in (0, 2, 8, 10))
                rest = row[4:8]
            octets, packets, rs, re = rest
            end = ((re + add) & mask) + base
            out.append(Flow(src, dst, octets * self.rate, packets * self.packet_rate,
                            end - ((re - rs) & mask), end, nsrc if nat else None, ndst if nat else None))
        return out


@dataclass(slots=True)
class Report:
    """What happened besides decoding: counts by fixed label, for metrics.

    ``dropped`` counts what was skipped, by reason: data sets as ``no_template`` (no
    template and holding disabled; held ones are in ``dropped_held``), ``bad_record``
    (records overrun their set), ``not_flow`` (a template without addresses and octets)
    and ``reserved_set`` (set IDs the RFCs reserve); a ``bad_template`` is a template
    record refused (zero-length field, zero fields, record longer than any datagram,
    fields overflowing the set, …; the rest of its set is skipped too) and
    ``sampling_too_high`` an announced sampling rate (options record, v5 header) above
    ``max_sampling_rate``, not believed.
    ``events`` counts ``template_added``, ``template_changed`` (same ID, new layout: the
    old one is replaced), ``template_withdrawn``, ``template_expired``,
    ``template_evicted``, ``held`` / ``released`` (data waiting for its template),
    ``exporter_restart`` (sequence number went back: the exporter rebooted, its
    templates are forgotten) and ``clock_corrected``.

    ``dropped_held`` counts data sets that waited for a template and were dropped as
    ``no_template`` (held past ``hold_seconds``, pushed out of the full hold queue, or
    their domain forgotten), by the exporter that sent them: any exporter's, since the
    hold queue is shared, and found by ``expire()`` as well as by ``decode()``.
    """

    dropped: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    dropped_held: dict[str, int] = field(default_factory=dict)

    def _drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + n

    def _drop_held(self, exporter: str) -> None:
        self.dropped_held[exporter] = self.dropped_held.get(exporter, 0) + 1

    def _event(self, name: str, n: int = 1) -> None:
        self.events[name] = self.events.get(name, 0) + n


@dataclass(slots=True)
class Decoded(Report):
    """The result of one datagram.

    ``domain`` is the v9 source id, the IPFIX observation domain id, or for v5
    ``engine_type << 8 | engine_id``.  ``batches`` may include data held from earlier
    datagrams, released by a template in this one.  ``records`` is the number of flow
    records in ``batches``.  ``lost`` is the number of records the exporter sent that never
    arrived, from sequence numbers: exact for v5 (flows) and IPFIX (data records), an
    estimate for v9, whose sequence counts datagrams (lost datagrams x data records in the
    last datagram).  Loss is counted once a gap has stayed open for ``reorder_window``
    datagrams, so a late datagram is not loss; an exporter restart is not loss.
    ``lost_restart`` is, in the same units, what the exporter sent while this collector was
    away: the gap between the sequence saved in the state (``dump_state``) and the first
    datagram of the domain after ``load_state``; it is not loss when the exporter itself
    restarted meanwhile (sysUptime or sequence went back, or an implausibly large gap).

    ``moved`` counts records whose times are not the exporter's, by reason (and so does every
    batch's ``times``): ``clock_corrected`` (its clock was off by more than
    ``max_clock_skew``: shifted onto ours), ``no_clock`` (no time fields: the arrival
    time), ``estimated`` (IPFIX sysUpTime without systemInitTime: the newest end in the
    set taken as the export time).

    Accounting of data sets (a v5 datagram with records is one): ``data_sets`` arrived in
    this datagram, ``sets_decoded`` were decoded now (this datagram's, or held ones its
    templates released).  Every data set is decoded, dropped (``no_template``,
    ``bad_record``, ``not_flow`` in ``dropped``, or later in some ``dropped_held``), or still
    held (``gauges()["held_sets"]``): over a decoder's life, data_sets = sets_decoded +
    those drops + held.
    """

    version: int = 0
    domain: int = 0
    batches: list[FlowBatch] = field(default_factory=list)
    moved: dict[str, int] = field(default_factory=dict)
    records: int = 0
    lost: int = 0
    lost_restart: int = 0
    data_sets: int = 0
    sets_decoded: int = 0


class _Sequence:
    """Export loss from sequence numbers of one domain (N-7), modulo 2^32.

    Also what a restart of the collector needs to tell the datagrams it missed while it was
    away from an exporter that restarted meanwhile (``dump``/``load``, ``resumed``): when the
    last datagram came, the exporter's sysUptime then, and how many units a second it sends.
    """

    __slots__ = ("count", "datagrams", "gaps", "last_units", "next", "pending", "per_datagram", "rate", "resume",
                 "seen", "since", "uptime")

    def __init__(self) -> None:
        self.next: int | None = None
        self.gaps: list[list[int]] = []  # [first missing, count, datagram when seen]
        self.datagrams = 0
        self.last_units = 1
        self.per_datagram = 1  # v9: data records per datagram, to turn lost datagrams into records
        self.seen = 0.0  # `now` of the last datagram
        self.uptime = -1  # its sysUptime (v5/v9)
        self.since = 0.0  # start of the current rate window
        self.count = 0  # units since then
        self.rate = 0.0  # units a second in the last full window (0: not known)
        self.resume: tuple[float, int] | None = None  # loaded: (seen, uptime) before the collector stopped
        self.pending = 0  # loaded: units of gaps still open when it stopped

    def dump(self) -> dict[str, int | float] | None:
        if self.next is None:
            return None
        span = self.seen - self.since
        rate = max(self.rate, self.count / span if span >= 1.0 else 0.0)
        return {"next": self.next, "seen": self.seen, "uptime": self.uptime, "rate": round(rate, 3),
                "last_units": self.last_units, "per_datagram": self.per_datagram,
                "pending": sum(g[1] for g in self.gaps)}

    def load(self, saved: dict[str, int | float]) -> None:
        self.next = int(saved["next"])
        self.seen = float(saved["seen"])
        self.uptime = int(saved["uptime"])
        self.rate = float(saved["rate"])
        self.last_units = int(saved["last_units"])
        self.per_datagram = int(saved["per_datagram"])
        self.pending = int(saved["pending"])
        self.resume = (self.seen, self.uptime)
        self.gaps = []

    def resumed(self, seq: int, uptime: int, now: float, window: int) -> tuple[int, int, bool]:
        """The first datagram of the domain since the state was loaded: (units the exporter
        sent while the collector was away, units of gaps open when it stopped, whether the
        exporter itself restarted meanwhile).

        The exporter restarted when its sysUptime (v5/v9) grew less than the time that passed,
        or when the gap is more than it could have sent: beyond 2^31 (the sequence went
        back, which ``restarted`` handles) or ten times its rate over the downtime.  A
        datagram a little behind the saved sequence is one from before the stop, late: the
        next one is asked again.  After more than ``MAX_DOWNTIME`` nothing is compared.
        """
        assert self.resume is not None and self.next is not None
        seen, saved_uptime = self.resume
        ahead = (seq - self.next) & M32
        if ahead >= HALF and (self.next - seq) & M32 <= window * self.last_units:
            return 0, 0, False
        self.resume = None
        pending, self.pending = self.pending, 0
        if ahead >= HALF:
            return 0, pending, False  # far behind: ``restarted`` says so
        elapsed = max(now - seen, 0.0)
        if elapsed > MAX_DOWNTIME:
            self.next = None  # resynchronise on this datagram
            return 0, 0, False
        if uptime >= 0 and saved_uptime >= 0 and (uptime - saved_uptime) & M32 > elapsed * 1010 + 60_000:
            return 0, pending, True
        limit = max(window * self.last_units, 10 * self.rate * (elapsed + 10)) if self.rate else HALF
        if ahead > limit:
            return 0, pending, True
        self.next = seq
        return ahead, pending, False

    def restarted(self, seq: int, window: int) -> bool:
        """Did the exporter start over?  A jump back further than a reorder could explain."""
        nxt = self.next
        if nxt is None:
            return False
        back = (nxt - seq) & M32
        if back == 0 or back >= HALF or back <= window * self.last_units:
            return False
        return not any((seq - lo) & M32 < n for lo, n, _ in self.gaps)

    def reset(self) -> int:
        """Forget the stream; pending gaps become loss (they will not be filled now)."""
        lost = sum(g[1] for g in self.gaps)
        self.next = None
        self.gaps = []
        return lost

    def advance(self, seq: int, units: int | None, window: int, now: float, uptime: int) -> int:
        """Account one datagram carrying ``units`` (None: unknown, resync on the next one)."""
        self.datagrams += 1
        self.seen = now
        self.uptime = uptime
        if units:
            self.count += units
        span = now - self.since
        if span >= RATE_WINDOW:
            self.rate = self.count / span if self.since else 0.0
            self.since, self.count = now, 0
        nxt = self.next
        if nxt is not None:
            ahead = (seq - nxt) & M32
            if ahead >= HALF:  # behind: a late datagram filling a gap, or a duplicate
                self._fill(seq, units)
                return self._declare(window)
            if ahead:
                self.gaps.append([nxt, ahead, self.datagrams])
        if units is None:
            self.next = None
        else:
            self.next = (seq + units) & M32
            self.last_units = max(units, 1)
        return self._declare(window)

    def _fill(self, seq: int, units: int | None) -> None:
        for i, (lo, n, born) in enumerate(self.gaps):
            off = (seq - lo) & M32
            if off < n:
                used = n - off if units is None else min(units, n - off)
                parts = [[lo, off, born], [(seq + used) & M32, n - off - used, born]]
                self.gaps[i:i + 1] = [p for p in parts if p[1] > 0]
                return

    def _declare(self, window: int) -> int:
        lost = 0
        gaps = self.gaps
        while gaps and (gaps[0][2] <= self.datagrams - window or len(gaps) > MAX_GAPS):
            lost += gaps.pop(0)[1]
        return lost


class _Slot:
    __slots__ = ("seen", "template")

    def __init__(self, template: Template, seen: float) -> None:
        self.template = template
        self.seen = seen


class _Held:
    __slots__ = ("ctx", "data", "dom", "live", "tid")

    def __init__(self, dom: _Domain, tid: int, data: bytes, ctx: _Ctx) -> None:
        self.dom = dom
        self.tid = tid
        self.data = data
        self.ctx = ctx
        self.live = True


class _Ctx(NamedTuple):
    """Per-datagram facts needed to decode a data set, now or when its template arrives."""

    exporter: str
    version: int
    export_ms: int
    uptime: int  # v5/v9 header sysUptime; -1 for IPFIX
    now_ms: int
    shift: int  # added to exporter times when its clock is off (max_clock_skew)
    now: float


class _Domain:
    """Everything kept per (exporter, version, source id / observation domain id)."""

    __slots__ = ("held", "init_ms", "key", "rate", "samplers", "seq", "templates")

    def __init__(self, key: tuple[str, int, int]) -> None:
        self.key = key
        self.templates: dict[int, _Slot] = {}
        self.held: dict[int, list[_Held]] = {}
        self.rate: int | None = None  # options data without a sampler id
        self.samplers: dict[int, int] = {}  # sampler / selector id -> rate
        self.init_ms: int | None = None  # IPFIX systemInitTimeMilliseconds
        self.seq = _Sequence()

    def exported_rate(self) -> int | None:
        """The rate for records that name no sampler."""
        if self.rate is not None or not self.samplers:
            return self.rate
        rates = set(self.samplers.values())
        return rates.pop() if len(rates) == 1 else None


class Decoder:
    """Stateful NetFlow v5 / v9 / IPFIX decoder: one per collector process.

    ``exporter`` arguments are the exporter's address as text (the UDP source address); all
    state is scoped by it, so a template from one exporter or domain never decodes
    another's data (N-3).  ``now`` arguments are Unix seconds.  The daemon's loop::

        try:
            result = decoder.decode(datagram, addr[0], time.time())
        except CodecError as exc:
            ...  # count exc.reason
        for batch in result.batches:
            aggregator.add(batch)
        ...  # count result.records, result.lost, result.dropped, result.events

    plus ``expire(now)`` on a timer, ``dump_state()`` at shutdown (and now and then) and
    ``load_state()`` at start, ``set_sampling()`` from the database.
    """

    def __init__(self, settings: DecoderSettings | None = None) -> None:
        self.settings = settings or DecoderSettings()
        self._domains: dict[tuple[str, int, int], _Domain] = {}
        self._order: dict[tuple[tuple[str, int, int], int], _Domain] = {}  # templates, oldest first
        self._held: deque[_Held] = deque()
        self._held_live = 0
        self._default_rate: dict[str, int] = {}
        self._forced_rate: dict[str, int] = {}

    # ------------------------------------------------------------------ public API

    def decode(self, datagram: bytes, exporter: str, now: float) -> Decoded:
        """Decode one datagram; raise ``CodecError`` if it cannot be framed."""
        if len(datagram) < 2:
            raise CodecError("short_header", f"{len(datagram)} bytes")
        version = datagram[0] << 8 | datagram[1]
        out = Decoded(version=version)
        if version in {9, 10}:
            self._templated(datagram, exporter, now, version, out)
        elif version == 5:
            self._v5(datagram, exporter, now, out)
        else:
            raise CodecError("version", str(version))
        if self._held and self._held[0].ctx.now < now - self.settings.hold_seconds:
            self._expire_held(now, out)
        return out

    def expire(self, now: float) -> Report:
        """Drop templates past ``template_timeout`` and data held past ``hold_seconds``.

        Decoding does this lazily; call it on a timer so idle exporters are cleaned too.
        """
        out = Report()
        self._expire_held(now, out)
        cutoff = now - self.settings.template_timeout
        for (_, tid), dom in list(self._order.items()):
            if dom.templates[tid].seen >= cutoff:
                break
            self._forget(dom, tid)
            out._event("template_expired")
        return out

    def set_sampling(self, exporter: str, rate: int | None, *, override: bool = False) -> None:
        """Configure the sampling rate of an exporter (None removes it).

        Without ``override`` the rate applies only to data whose exporter announces none
        (MikroTik never does); with it, it replaces whatever the exporter announces (for
        exporters that announce a wrong rate).
        """
        table = self._forced_rate if override else self._default_rate
        if rate is None:
            table.pop(exporter, None)
        elif 1 <= rate <= MAX_RATE:
            table[exporter] = rate
        else:
            raise ValueError(f"sampling rate {rate} out of range 1..{MAX_RATE}")

    def gauges(self) -> dict[str, int]:
        """Sizes of the bounded state, for metrics: domains, templates, held_sets."""
        return {"domains": len(self._domains), "templates": len(self._order), "held_sets": self._held_live}

    def dump_state(self) -> str:
        """Templates, announced sampling/clock facts and sequence numbers as JSON, to survive
        a restart.

        With the sequence numbers, the first datagram of each domain after ``load_state``
        tells what was sent while the collector was away (``Decoded.lost_restart``).  Held
        data is not kept.
        """
        domains = []
        for dom in self._domains.values():
            seq = dom.seq.dump()
            if not dom.templates and dom.rate is None and not dom.samplers and dom.init_ms is None and seq is None:
                continue
            exporter, version, domain_id = dom.key
            domains.append({
                "exporter": exporter, "version": version, "domain": domain_id, "rate": dom.rate,
                "samplers": sorted(dom.samplers.items()), "init_ms": dom.init_ms,
                "templates": [{"id": s.template.tid, "options": s.template.options, "scope": s.template.scope,
                               "fields": [list(f) for f in s.template.fields], "seen": s.seen}
                              for s in dom.templates.values()],
                "seq": seq,
            })
        return json.dumps({"format": STATE_FORMAT, "domains": domains}, separators=(",", ":"))

    def load_state(self, state: str | bytes, now: float) -> int:
        """Load what ``dump_state`` wrote; return the number of templates loaded.

        Every template goes through the same validation as one from the wire; templates
        older than ``template_timeout`` are skipped.  All or nothing: a malformed state
        raises ``CodecError("bad_state")`` and changes nothing.
        """
        try:
            parsed = parse_state(json.loads(state))
        except CodecError as exc:
            raise CodecError("bad_state", str(exc)) from exc
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            raise CodecError("bad_state", repr(exc)) from exc
        cutoff = now - self.settings.template_timeout
        loaded = []
        for key, rate, samplers, init_ms, templates, seq in parsed:
            dom = self._domain(key, Report())  # nothing is held yet: nothing to drop
            cap = self.settings.max_sampling_rate  # it may have been lowered since
            dom.rate, dom.init_ms = (rate if rate is None or rate <= cap else None), init_ms
            dom.samplers.update((k, v) for k, v in samplers.items() if v <= cap)
            if seq is not None:
                dom.seq.load(seq)
            loaded += [(seen, dom, t) for t, seen in templates if seen >= cutoff]
        loaded.sort(key=itemgetter(0))
        for seen, dom, t in loaded:
            self._put(dom, t, seen, Report())
        return len(loaded)

    # ------------------------------------------------------------------ v5

    def _v5(self, dg: bytes, exporter: str, now: float, out: Decoded) -> None:
        n = len(dg)
        if n < V5_HDR.size:
            raise CodecError("short_header", f"{n} bytes")
        _, count, uptime, secs, nsecs, seq, engine_type, engine_id, sampling = V5_HDR.unpack_from(dg)
        if n != V5_HDR.size + 48 * count:
            raise CodecError("length", f"{n} bytes for {count} records")
        dom = self._domain((exporter, 5, engine_type << 8 | engine_id), out)
        out.domain = engine_type << 8 | engine_id
        ctx = self._ctx(dom, secs * 1000 + nsecs // 1_000_000, uptime, now, out)
        window = self.settings.reorder_window
        lost = 0
        restarted = False
        if dom.seq.resume is not None:
            out.lost_restart, lost, restarted = dom.seq.resumed(seq, uptime, now, window)
        if restarted or dom.seq.restarted(seq, window):
            out._event("exporter_restart")
            lost += dom.seq.reset()
        if count:
            # Low 14 bits: the interval; top two bits: the sampling mode (Cisco v5 format).
            interval = sampling & 0x3FFF
            if interval > self.settings.max_sampling_rate:
                out._drop("sampling_too_high")
                interval = 0
            rate, source = self._rate(exporter, interval or None)
            out.batches.append(FlowBatch(
                exporter, _V5_PLAN, dg[V5_HDR.size:], rows=None, count=count, rate=rate, sampling=source,
                clock=_clock(_time_params(T_UPTIME, ctx, uptime)), times="corrected" if ctx.shift else "exporter",
                arrival_ms=ctx.now_ms))
            out.records = count
            out.data_sets = out.sets_decoded = 1
            if ctx.shift:
                out.moved["clock_corrected"] = count
        # v5 flow_sequence counts flows (Cisco format: "sequence counter of total flows seen").
        out.lost = lost + dom.seq.advance(seq, count, window, now, uptime)

    # ------------------------------------------------------------------ v9 / IPFIX

    def _templated(self, dg: bytes, exporter: str, now: float, version: int, out: Decoded) -> None:
        n = len(dg)
        if version == 9:
            if n < V9_HDR.size:
                raise CodecError("short_header", f"{n} bytes")
            # RFC 3954 §5.1: version, count, sysUpTime, UNIX secs, sequence, source id.
            _, _, uptime, secs, seq, domain_id = V9_HDR.unpack_from(dg)
            off = V9_HDR.size
            template_set, options_set = 0, 1
        else:
            if n < IPFIX_HDR.size:
                raise CodecError("short_header", f"{n} bytes")
            # RFC 7011 §3.1: version, length, export time, sequence, observation domain id.
            _, length, secs, seq, domain_id = IPFIX_HDR.unpack_from(dg)
            if length != n:
                raise CodecError("length", f"header says {length}, datagram has {n}")
            off = IPFIX_HDR.size
            uptime = -1
            template_set, options_set = 2, 3
        # Frame every set before changing any state (RFC 3954 §5.3, RFC 7011 §3.3.2).
        sets = []
        while off < n:
            if n - off < 4:
                raise CodecError("set_header", f"{n - off} trailing bytes")
            set_id, set_len = SET_HDR.unpack_from(dg, off)
            if set_len < 4 or set_len > n - off:
                raise CodecError("set_length", f"set {set_id} of {set_len} bytes at {off}")
            sets.append((set_id, off + 4, off + set_len))
            off += set_len

        out.domain = domain_id
        dom = self._domain((exporter, version, domain_id), out)
        window = self.settings.reorder_window
        seq_state = dom.seq
        lost = restart_lost = 0
        restarted = False
        if seq_state.resume is not None:
            restart_lost, lost, restarted = seq_state.resumed(seq, uptime, now, window)
        if restarted or seq_state.restarted(seq, window):
            # Template IDs are only meaningful within one exporter run: after a reboot the same
            # ID may describe another layout (pmacct #439/#726), so wait for fresh templates.
            out._event("exporter_restart")
            lost += seq_state.reset()
            for tid in list(dom.templates):
                self._forget(dom, tid)
        ctx = self._ctx(dom, secs * 1000, uptime, now, out)
        units: int | None = 0  # IPFIX: data records (RFC 7011 §3.1); None when some are held
        timeout = now - self.settings.template_timeout
        for set_id, start, end in sets:
            if set_id >= 256:
                out.data_sets += 1
                slot = dom.templates.get(set_id)
                if slot is not None and slot.seen < timeout:
                    self._forget(dom, set_id)
                    out._event("template_expired")
                    slot = None
                if slot is None:
                    self._hold(dom, set_id, dg[start:end], ctx, out)
                    units = None
                    continue
                got = self._data(dom, slot.template, dg[start:end], ctx, out)
                if got is None:
                    units = None
                elif units is not None:
                    units += got
            elif set_id in {template_set, options_set}:
                self._template_set(dom, dg, start, end, options=set_id == options_set, now=now, out=out)
            else:
                out._drop("reserved_set")
        if version == 9:
            # RFC 3954 §5.1: the v9 sequence counts export packets, not records.
            out.lost_restart = restart_lost * seq_state.per_datagram  # as many as the last ones had
            if units:
                seq_state.per_datagram = units
            out.lost = (lost + seq_state.advance(seq, 1, window, now, uptime)) * seq_state.per_datagram
        else:
            out.lost_restart = restart_lost
            out.lost = lost + seq_state.advance(seq, units, window, now, uptime)

    def _template_set(self, dom: _Domain, dg: bytes, pos: int, end: int, *, options: bool, now: float,
                      out: Decoded) -> None:
        """Store the templates of one (options) template set; stop at the first bad one."""
        version = dom.key[1]
        while end - pos >= 4:
            if not any(dg[pos:end]):
                break  # zero padding to the set's end (RFC 3954 §5.3, RFC 7011 §3.3.1)
            tid, count = SET_HDR.unpack_from(dg, pos)
            pos += 4
            scope = 0
            try:
                if version == 10 and count == 0:
                    self._withdraw(dom, tid, out)  # RFC 7011 §8.1
                    continue
                if options:
                    if end - pos < 2:
                        raise CodecError("bad_template", "options template header truncated")
                    (extra,) = HALFWORD.unpack_from(dg, pos)
                    pos += 2
                    if version == 9:
                        # RFC 3954 §6.1: option scope length and option length, in bytes.
                        if count % 4 or extra % 4:
                            raise CodecError("bad_template", "scope/option length not a multiple of 4")
                        scope, count = count // 4, count // 4 + extra // 4
                    else:
                        scope = extra  # RFC 7011 §3.4.2.2: scope field count
                fields, pos = read_fields(dg, pos, end, count, version)
                slot = dom.templates.get(tid)
                if slot is not None and slot.template.fields == fields and slot.template.scope == scope \
                        and slot.template.options == options:
                    t = slot.template  # a refresh: no recompile
                else:
                    t = Template.build(tid, fields, scope, options, version)
            except CodecError as exc:
                out._drop(exc.reason)
                return
            self._put(dom, t, now, out)
            if t.tid in dom.held:
                self._release(dom, t, out)

    def _withdraw(self, dom: _Domain, tid: int, out: Report) -> None:
        if tid in (2, 3):  # all data templates / all options templates of the domain
            victims = [t for t, s in dom.templates.items() if s.template.options == (tid == 3)]
        elif tid >= 256:
            victims = [tid] if tid in dom.templates else []
        else:
            raise CodecError("bad_template", f"withdrawal of template id {tid}")
        for t in victims:
            self._forget(dom, t)
        out._event("template_withdrawn", len(victims))

    def _data(self, dom: _Domain, t: Template, data: bytes, ctx: _Ctx, out: Decoded) -> int | None:
        """Decode one data set; return its record count (None if unusable)."""
        if t.options:
            recs = read_options(t, data)
            if recs is None:
                out._drop("bad_record")
                return None
            self._apply_options(dom, recs, out)
            out.sets_decoded += 1
            return len(recs)
        plan = t.plan
        if plan is None:
            out._drop("not_flow")
            if t.reclen:
                return len(data) // t.reclen
            skipped = walk_records(t.walk, t.minlen, data)
            return None if skipped is None else len(skipped)
        batch = self._batch(dom, t, plan, data, ctx)
        if batch is None:
            out._drop("bad_record")
            return None
        out.sets_decoded += 1
        if batch.count:
            out.batches.append(batch)
            out.records += batch.count
            if batch.times != "exporter":
                reason = MOVED[batch.times]
                out.moved[reason] = out.moved.get(reason, 0) + batch.count
        return batch.count

    def _batch(self, dom: _Domain, t: Template, plan: FlowPlan, data: bytes, ctx: _Ctx) -> FlowBatch | None:
        rows: list[tuple[int, ...]] | None = None
        unpack = plan.unpack
        if unpack is None:
            kept = walk_records(plan.walk, t.minlen, data)
            if kept is None:
                return None
            count = len(kept)
            rows = [plan.getter(k) for k in kept]
        else:
            kept = None
            count = len(data) // unpack.size  # the remainder is padding (RFC 7011 §3.3.1)
            if len(data) != count * unpack.size:
                data = data[:count * unpack.size]
        exporter = ctx.exporter
        rate, source = self._rate(exporter, dom.exported_rate())
        if count and plan.sampler_at >= 0 and dom.samplers and exporter not in self._forced_rate:
            # Records name their sampler (v9 FLOW_SAMPLER_ID 48, IPFIX selectorId 302): apply
            # each one's rate now, so the batch reads as unsampled.
            kept = kept or _unpack_all(plan, data)
            rows = [_scaled(plan, k, dom.samplers.get(k[plan.sampler_at], rate)) for k in kept]
            rate, source = 1, "exported"
        times = "corrected" if ctx.shift else "exporter"
        start_kind, end_kind = plan.start_kind, plan.end_kind
        uptime = ctx.uptime
        if ctx.version == 10 and T_UPTIME in (start_kind, end_kind) and count:
            # IPFIX flowStart/EndSysUpTime (22/21) count from systemInitTimeMilliseconds (160),
            # found in the records themselves (MikroTik) or in options data (softflowd).
            if plan.init_at >= 0:
                first = kept[0] if kept else _unpack_first(plan, data)
                dom.init_ms = first[plan.init_at]
            if dom.init_ms is not None:
                uptime = ctx.export_ms - dom.init_ms
            elif end_kind == T_UPTIME:
                # Neither: take the newest flow end in the set as the export time, which keeps
                # durations (a 30-minute flow still spreads over 30 minutes).
                uptime = max(k[plan.end_at] for k in (kept or _unpack_all(plan, data)))
                times = "estimated"
            else:
                start_kind = T_NONE
        if T_NONE in {start_kind, end_kind}:
            clock: Clock = (0, 0, ctx.now_ms)
            times = "arrival"
        elif start_kind == end_kind and start_kind in {T_UPTIME, T_MILLIS}:
            clock = _clock(_time_params(start_kind, ctx, uptime))
        else:
            # Seconds, NTP or mixed kinds (rare exporters): convert to Unix ms now, so the
            # aggregator has a single formula for everything.
            if rows is None:
                rows = [plan.getter(k) for k in kept or _unpack_all(plan, data)]
            rows = _in_millis(rows, plan.family, _time_params(start_kind, ctx, uptime),
                              _time_params(end_kind, ctx, uptime))
            clock = (0, M64, 0)
        return FlowBatch(exporter, plan, data, rows=rows, count=count, rate=rate, sampling=source,
                         clock=clock, times=times, arrival_ms=ctx.now_ms)

    def _apply_options(self, dom: _Domain, recs: list[dict[int, int]], out: Report) -> None:
        """Sampling and clock facts from options data (RFC 3954 §6.2, RFC 7011 §3.4.2).

        The scope is not looked at: a rate scoped to an interface or line card applies to the
        whole domain (the last one announced wins), a sampler or selector id fills the table
        that records naming one are looked up in.
        """
        for values in recs:
            if INIT_MS in values:
                dom.init_ms = values[INIT_MS]
            if PACKET_INTERVAL in values:
                # PSAMP systematic count-based sampling (RFC 5477): select `interval`
                # packets, then skip `space`; renormalise by (interval + space) / interval,
                # rounded to an integer so sums stay exact.
                interval, space = values[PACKET_INTERVAL], values.get(PACKET_SPACE, 0)
                rate = (interval + space + interval // 2) // interval if interval else 0
            else:
                rate = values.get(SAMPLING_INTERVAL, values.get(SAMPLER_RANDOM_INTERVAL, 0))
            if not rate:
                continue
            if rate > self.settings.max_sampling_rate:
                out._drop("sampling_too_high")
                continue
            sampler = values.get(SAMPLER_ID, values.get(SELECTOR_ID))
            if sampler is None:
                dom.rate = rate
            elif sampler in dom.samplers or len(dom.samplers) < MAX_SAMPLERS:
                dom.samplers[sampler] = rate

    # ------------------------------------------------------------------ state keeping

    def _domain(self, key: tuple[str, int, int], out: Report) -> _Domain:
        domains = self._domains
        dom = domains.pop(key, None)  # re-inserted at the end: least recently heard first
        if dom is None:
            if len(domains) >= self.settings.max_domains:
                old = next(iter(domains.values()))
                for tid in list(old.templates):
                    self._forget(old, tid)
                for waiting in list(old.held.values()):
                    for h in list(waiting):
                        self._unhold(h)
                        out._drop_held(h.ctx.exporter)
                del domains[old.key]
            dom = _Domain(key)
        domains[key] = dom
        return dom

    def _ctx(self, dom: _Domain, export_ms: int, uptime: int, now: float, out: Report) -> _Ctx:
        now_ms = int(now * 1000)
        shift = 0
        if abs(export_ms - now_ms) > self.settings.max_clock_skew * 1000:
            shift = now_ms - export_ms
            out._event("clock_corrected")
        return _Ctx(dom.key[0], dom.key[1], export_ms, uptime, now_ms, shift, now)

    def _rate(self, exporter: str, exported: int | None) -> tuple[int, str]:
        forced = self._forced_rate.get(exporter)
        if forced is not None:
            return forced, "configured"
        if exported is not None:
            return exported, "exported"
        default = self._default_rate.get(exporter)
        if default is not None:
            return default, "configured"
        return 1, "unknown"

    def _put(self, dom: _Domain, t: Template, seen: float, out: Report) -> None:
        """Store (or refresh) a template, within the caps."""
        settings = self.settings
        okey = (dom.key, t.tid)
        slot = dom.templates.pop(t.tid, None)
        if slot is None:
            if len(dom.templates) >= settings.max_templates_per_domain:
                self._forget(dom, next(iter(dom.templates)))
                out._event("template_evicted")
            if len(self._order) >= settings.max_templates:
                (okey_old, victim) = next(iter(self._order.items()))
                self._forget(victim, okey_old[1])
                out._event("template_evicted")
            out._event("template_added")
        elif slot.template is not t:
            out._event("template_changed")
        self._order.pop(okey, None)
        self._order[okey] = dom
        dom.templates[t.tid] = _Slot(t, seen)

    def _release(self, dom: _Domain, t: Template, out: Decoded) -> None:
        """Decode the data sets that waited for template ``t``, in arrival order."""
        for h in dom.held.pop(t.tid, ()):
            if h.live:
                h.live = False
                self._held_live -= 1
                out._event("released")
                self._data(dom, t, h.data, h.ctx, out)

    def _forget(self, dom: _Domain, tid: int) -> None:
        del dom.templates[tid]
        del self._order[(dom.key, tid)]

    def _hold(self, dom: _Domain, tid: int, data: bytes, ctx: _Ctx, out: Report) -> None:
        """Keep a data set until its template arrives (N-3), within the hold bounds."""
        limit = self.settings.hold_max_sets
        if limit <= 0:
            out._drop("no_template")
            return
        while self._held_live >= limit:
            old = self._held.popleft()
            if old.live:
                self._unhold(old)
                out._drop_held(old.ctx.exporter)
        if len(self._held) > 2 * limit:  # forget entries already released
            self._held = deque(h for h in self._held if h.live)
        h = _Held(dom, tid, data, ctx)
        self._held.append(h)
        dom.held.setdefault(tid, []).append(h)
        self._held_live += 1
        out._event("held")

    def _unhold(self, h: _Held) -> None:
        """Forget one held data set."""
        h.live = False
        self._held_live -= 1
        waiting = h.dom.held[h.tid]
        waiting.remove(h)
        if not waiting:
            del h.dom.held[h.tid]

    def _expire_held(self, now: float, out: Report) -> None:
        cutoff = now - self.settings.hold_seconds
        held = self._held
        while held and (not held[0].live or held[0].ctx.now < cutoff):
            h = held.popleft()
            if h.live:
                self._unhold(h)
                out._drop_held(h.ctx.exporter)


def _time_params(kind: int, ctx: _Ctx, uptime: int) -> tuple[int, int, int, int]:
    """(mul, add, mask, base) turning raw times of one kind into Unix ms for one data set:
    ``((raw * mul + add) & mask) + base``.

    ``uptime`` is the exporter's sysUpTime (ms) at ``ctx.export_ms``.  Uptime-relative times
    (v5 First/Last, v9 FIRST/LAST_SWITCHED, IPFIX 22/21) wrap at 2^32 ms, every 49.7 days
    (RFC 3954 §5.1 sysUpTime, §8 FIRST/LAST_SWITCHED; pmacct #640): ``(raw - uptime)`` is read as a signed
    32-bit offset from the export time, so a flow that started before the wrap still lands
    before the export.
    """
    if kind == T_UPTIME:
        return 1, HALF - uptime, M32, ctx.export_ms + ctx.shift - HALF
    if kind == T_MILLIS:
        return 1, 0, M64, ctx.shift
    if kind == T_SECONDS:
        return 1000, 0, M64, ctx.shift
    # T_NTP: seconds since 1900 (dateTimeMicro/Nanoseconds, RFC 7011 §6.1); T_NONE never gets here.
    return 1000, 0, M64, ctx.shift - NTP_EPOCH_MS


def _clock(params: tuple[int, int, int, int]) -> Clock:
    _, add, mask, base = params  # uptime and millisecond kinds: mul is 1
    return add, mask, base


def _in_millis(rows: list[tuple[int, ...]], family: int, start: tuple[int, int, int, int],
               end: tuple[int, int, int, int]) -> list[tuple[int, ...]]:
    """Rows with their raw times replaced by Unix ms."""
    i = 4 if family == 4 else 6
    sm, sa, sk, sb = start
    em, ea, ek, eb = end
    return [(*r[:i], ((r[i] * sm + sa) & sk) + sb, ((r[i + 1] * em + ea) & ek) + eb, *r[i + 2:]) for r in rows]


def _unpack_all(plan: FlowPlan, data: bytes) -> list[tuple[int, ...]]:
    assert plan.unpack is not None
    return list(plan.unpack.iter_unpack(data))


def _unpack_first(plan: FlowPlan, data: bytes) -> tuple[int, ...]:
    assert plan.unpack is not None
    first: tuple[int, ...] = plan.unpack.unpack_from(data)
    return first


def _scaled(plan: FlowPlan, kept: tuple[int, ...], rate: int) -> tuple[int, ...]:
    row: tuple[int, ...] = plan.getter(kept)
    if rate == 1:
        return row
    i = 2 if plan.family == 4 else 4
    return (*row[:i], row[i] * rate, row[i + 1] * rate, *row[i + 2:])
