"""NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) templates: parse, validate, compile.

A template is compiled once, when it arrives, into the cheapest way of reading its
records: a ``struct.Struct`` that keeps only the fields lastmile uses and skips every
other byte with pad bytes (``x``), so ``iter_unpack`` makes exactly one tuple per record,
plus an ``operator.itemgetter`` that puts the kept values into the fixed row layout the
aggregator reads (see ``codec.FlowBatch``).  Templates that ``struct`` cannot describe
(IPFIX variable-length fields, 3/5/6/7-byte counters) get a slower walker with the same
output, so callers never see the difference.

Also here: reading the field specifiers of a template record (``read_fields``), options
data (``read_options``) and the persisted template state (``parse_state``).  Nothing here
keeps state; :mod:`flowcollector.codec` owns the template cache.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final

__all__ = [
    "MAX_RATE",
    "STATE_FORMAT",
    "STATE_FORMATS",
    "VARLEN",
    "CodecError",
    "Field",
    "FlowPlan",
    "Template",
    "parse_state",
    "read_fields",
    "read_options",
    "walk_records",
]


class CodecError(Exception):
    """The one exception the codec raises, whatever the input bytes.

    ``reason`` is a short, fixed label (``"short_header"``, ``"set_length"``, …) fit for a
    metric label; the message adds detail for logs.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


Field = tuple[int, int, int]
"""A field specifier: (information element id, length, enterprise number; 0 = IANA)."""

VARLEN: Final = 0xFFFF
"""IPFIX field length meaning "variable length" (RFC 7011 §7)."""

MAX_FIELDS: Final = 512
"""Most fields a template may have.  Real templates have < 100; the cap bounds the memory
one template can hold (a 64 KiB set could otherwise declare 16,000 fields)."""

MAX_RECORD: Final = 0xFFFF - 16 - 4
"""Longest record any datagram can carry: a 65,535-byte message minus the IPFIX message
header and one set header (v9's header is larger).  A template with longer records can
never be used (a record must fit in a message, whose Length is 16 bits: RFC 7011 §3.1), so
it is refused."""

MAX_RATE: Final = 1 << 20
"""Highest sampling rate believed; a larger announced rate is taken as garbage."""

STATE_FORMAT: Final = "lastmile-flow-state/2"
"""Marks the JSON ``Decoder.dump_state`` writes (``/1``, without sequence numbers, is read too)."""
STATE_FORMATS: Final = frozenset({"lastmile-flow-state/1", STATE_FORMAT})

_V9_FIELD = struct.Struct("!HH")
_PEN = struct.Struct("!I")
_M32 = 0xFFFFFFFF
_M64 = (1 << 64) - 1

# Information elements used by lastmile (v9 field types 1-127 are the same numbers,
# RFC 3954 §8 / RFC 7012 and the IANA IPFIX registry).
OCTETS, PACKETS, OUT_OCTETS, OUT_PACKETS = 1, 2, 23, 24
SRC4, DST4, NAT_SRC4, NAT_DST4 = 8, 12, 225, 226
SRC6, DST6, NAT_SRC6, NAT_DST6 = 27, 28, 281, 282
END_UPTIME, START_UPTIME = 21, 22
START_S, END_S, START_MS, END_MS = 150, 151, 152, 153
START_US, END_US, START_NS, END_NS = 154, 155, 156, 157
INIT_MS = 160  # systemInitTimeMilliseconds
SAMPLING_INTERVAL, SAMPLER_ID, SAMPLER_RANDOM_INTERVAL = 34, 48, 50
SELECTOR_ID, PACKET_INTERVAL, PACKET_SPACE = 302, 305, 306

# Time kinds: how a raw time field becomes Unix milliseconds (see codec.time_params).
T_NONE, T_UPTIME, T_SECONDS, T_MILLIS, T_NTP = 0, 1, 2, 3, 4

# How the walker reads one field.
_SKIP, _INT, _ADDR6, _NTP = 0, 1, 2, 3

_ADDR4_IES = (SRC4, DST4, NAT_SRC4, NAT_DST4)
_ADDR6_IES = (SRC6, DST6, NAT_SRC6, NAT_DST6)
_START_IES = ((START_MS, T_MILLIS), (START_S, T_SECONDS), (START_US, T_NTP), (START_NS, T_NTP),
              (START_UPTIME, T_UPTIME))
_END_IES = ((END_MS, T_MILLIS), (END_S, T_SECONDS), (END_US, T_NTP), (END_NS, T_NTP),
            (END_UPTIME, T_UPTIME))
_INT_ANY = frozenset(range(1, 9))
# Lengths lastmile accepts for the elements it reads.  Unsigned integers may use reduced-size
# encoding (RFC 7011 §6.2), so counters take any length 1-8; addresses and dateTime types
# have exactly one encoding (RFC 7011 §6.1).  Anything else is a malformed template.
_LENGTHS: Final[dict[int, frozenset[int]]] = {
    **{ie: frozenset({4}) for ie in _ADDR4_IES},
    **{ie: frozenset({16}) for ie in _ADDR6_IES},
    **{ie: _INT_ANY for ie in (OCTETS, PACKETS, OUT_OCTETS, OUT_PACKETS, START_UPTIME, END_UPTIME,
                               SAMPLING_INTERVAL, SAMPLER_ID, SAMPLER_RANDOM_INTERVAL, SELECTOR_ID,
                               PACKET_INTERVAL, PACKET_SPACE)},
    START_S: frozenset({4, 8}), END_S: frozenset({4, 8}),
    **{ie: frozenset({8}) for ie in (START_MS, END_MS, START_US, END_US, START_NS, END_NS, INIT_MS)},
}
OPTION_IES: Final = frozenset({SAMPLING_INTERVAL, SAMPLER_ID, SAMPLER_RANDOM_INTERVAL, SELECTOR_ID,
                               PACKET_INTERVAL, PACKET_SPACE, INIT_MS})
_STRUCT_INT = {1: "B", 2: "H", 4: "I", 8: "Q"}

Walk = tuple[tuple[int, int], ...]
"""Per field: (length or VARLEN, how to read it: _SKIP/_INT/_ADDR6/_NTP)."""


@dataclass(frozen=True, slots=True)
class FlowPlan:
    """How to turn a data set of one template into rows.

    ``unpack`` is the fast path (None when the template needs the walker); either way the
    kept values of a record are one tuple that ``getter`` maps to a row.  The ``*_at``
    attributes index that kept-values tuple (-1 when absent); ``order`` is what ``getter``
    picks, so a bulk reader (``aggregate``'s NumPy path) can find a row's columns in the bytes.
    """

    family: int
    unpack: struct.Struct | None
    walk: Walk
    getter: itemgetter[tuple[int, ...]]
    order: tuple[int, ...]
    has_packets: bool
    nat: bool
    start_kind: int
    end_kind: int
    end_at: int
    init_at: int
    sampler_at: int


@dataclass(frozen=True, slots=True, eq=False)
class Template:
    """One template or options template, validated and compiled.

    ``reclen`` is the record length for fixed-length templates, 0 when any field is
    variable-length; ``minlen`` is the shortest possible record (> 0 always, which is what
    guarantees progress when walking a data set: the goflow2 zero-size template loop).
    ``plan`` is None for options templates and for data templates without flow fields.
    """

    tid: int
    fields: tuple[Field, ...]
    scope: int
    options: bool
    reclen: int
    minlen: int
    walk: Walk
    plan: FlowPlan | None

    @classmethod
    def build(cls, tid: int, fields: tuple[Field, ...], scope: int, options: bool, version: int) -> Template:
        """Validate and compile; raise ``CodecError("bad_template")`` on anything malformed.

        ``scope`` is the number of leading scope fields of an options template.  In v9 their
        types are scope types (1 = System, 2 = Interface, …; RFC 3954 §6.1), not field types,
        so they are never read as elements.
        """
        if tid < 256:
            raise CodecError("bad_template", f"template id {tid} < 256")
        if not fields or len(fields) > MAX_FIELDS:
            raise CodecError("bad_template", f"{len(fields)} fields")
        if options and (scope > len(fields) or (version == 10 and scope == 0)):
            # RFC 7011 §3.4.2.2: the Scope Field Count MUST NOT be zero.
            raise CodecError("bad_template", f"scope count {scope} of {len(fields)} fields")
        walk: list[tuple[int, int]] = []
        minlen = 0
        fixed = True
        for i, (ie, length, pen) in enumerate(fields):
            if length == 0:
                raise CodecError("bad_template", f"field {ie} has length 0")
            if length == VARLEN:
                if version != 10:
                    raise CodecError("bad_template", f"field {ie} longer than any datagram")
                fixed = False
                minlen += 1  # a variable-length field takes at least its length octet
            else:
                minlen += length
            read = _SKIP
            if pen == 0 and not (options and version == 9 and i < scope):
                allowed = _LENGTHS.get(ie)
                if allowed is not None:
                    if length not in allowed:
                        raise CodecError("bad_template", f"element {ie} with length {length}")
                    read = _ADDR6 if length == 16 else _NTP if ie in (START_US, END_US, START_NS,
                                                                       END_NS) else _INT
            walk.append((length, read))
        if minlen > MAX_RECORD:
            raise CodecError("bad_template", f"record of {minlen} bytes")
        plan = None if options else _plan(fields, tuple(walk), fixed)
        return cls(tid, fields, scope, options, minlen if fixed else 0, minlen, tuple(walk), plan)


def _plan(fields: tuple[Field, ...], walk: Walk, fixed: bool) -> FlowPlan | None:
    """Compile a data template; None if it carries no flow (addresses and octets)."""
    at: dict[int, int] = {}  # element -> index in the kept values
    codes: list[str] = []
    own_walk: list[tuple[int, int]] = []  # the walk with repeated elements skipped
    pad = 0
    kept = 0
    structable = fixed
    for (ie, length, _), (_, read) in zip(fields, walk, strict=True):
        if read == _SKIP or ie in at:
            own_walk.append((length, _SKIP))
            pad += length
            continue
        own_walk.append((length, read))
        if pad:
            codes.append(f"{pad}x")
            pad = 0
        at[ie] = kept
        if read == _ADDR6:
            codes.append("QQ")
            kept += 2
        elif read == _NTP:
            codes.append("I4x")  # NTP seconds; the fraction is below lastmile's resolution
            kept += 1
        else:
            code = _STRUCT_INT.get(length)
            structable = structable and code is not None
            codes.append(code or "")
            kept += 1
    if SRC4 in at and DST4 in at:
        family, addrs = 4, (SRC4, DST4, NAT_SRC4, NAT_DST4)
    elif SRC6 in at and DST6 in at:
        family, addrs = 6, (SRC6, DST6, NAT_SRC6, NAT_DST6)
    else:
        return None
    octets = at.get(OCTETS, at.get(OUT_OCTETS, -1))
    if octets < 0:
        return None
    packets = at.get(PACKETS, at.get(OUT_PACKETS, -1))
    start_ie, start_kind = next(((ie, k) for ie, k in _START_IES if ie in at), (0, T_NONE))
    end_ie, end_kind = next(((ie, k) for ie, k in _END_IES if ie in at), (0, T_NONE))
    if start_kind == T_NONE:
        start_ie, start_kind = end_ie, end_kind
    elif end_kind == T_NONE:
        end_ie, end_kind = start_ie, start_kind
    # Absent values point at the octets slot; codec.time_params / the packet rate zero them.
    start = at.get(start_ie, octets)
    end = at.get(end_ie, octets)
    src, dst, nat_src, nat_dst = (at[addrs[0]], at[addrs[1]], at.get(addrs[2], -1), at.get(addrs[3], -1))
    nat_src = src if nat_src < 0 else nat_src
    nat_dst = dst if nat_dst < 0 else nat_dst
    pkt = octets if packets < 0 else packets
    order: tuple[int, ...]
    if family == 4:
        order = (src, dst, octets, pkt, start, end, nat_src, nat_dst)
    else:
        order = (src, src + 1, dst, dst + 1, octets, pkt, start, end,
                 nat_src, nat_src + 1, nat_dst, nat_dst + 1)
    unpack = struct.Struct("!" + "".join(codes) + (f"{pad}x" if pad else "")) if structable else None
    return FlowPlan(
        family=family, unpack=unpack, walk=tuple(own_walk), getter=itemgetter(*order), order=order,
        has_packets=packets >= 0,
        nat=nat_src != src or nat_dst != dst,
        start_kind=start_kind, end_kind=end_kind, end_at=end if end_kind != T_NONE else -1,
        init_at=at.get(INIT_MS, -1), sampler_at=at.get(SAMPLER_ID, at.get(SELECTOR_ID, -1)),
    )


def walk_records(walk: Walk, minlen: int, data: bytes) -> list[tuple[int, ...]] | None:
    """Read every record of a data set field by field; None if a record overruns the set.

    The slow path for templates ``struct`` cannot describe.  Returns the kept values of each
    record in template order (an IPv6 address as two halves, an NTP time as its seconds), the
    same tuples the fast path's ``iter_unpack`` gives.  Trailing bytes shorter than the
    shortest record are padding (RFC 7011 §3.3.1).
    """
    out: list[tuple[int, ...]] = []
    pos = 0
    end = len(data)
    while end - pos >= minlen:
        vals: list[int] = []
        for declared, read in walk:
            length = declared
            if length == VARLEN:
                # RFC 7011 §7: one length octet, or 255 and a two-octet length.
                if pos >= end:
                    return None
                length = data[pos]
                pos += 1
                if length == 255:
                    if end - pos < 2:
                        return None
                    length = data[pos] << 8 | data[pos + 1]
                    pos += 2
            if end - pos < length:
                return None
            if read == _INT:
                vals.append(int.from_bytes(data[pos:pos + length], "big"))
            elif read == _ADDR6:
                vals.append(int.from_bytes(data[pos:pos + 8], "big"))
                vals.append(int.from_bytes(data[pos + 8:pos + 16], "big"))
            elif read == _NTP:
                vals.append(int.from_bytes(data[pos:pos + 4], "big"))
            pos += length
        out.append(tuple(vals))
    return out


def read_options(template: Template, data: bytes) -> list[dict[int, int]] | None:
    """Options data records as {element: value} for the elements lastmile uses.

    Options sets are rare (one per template refresh), so clarity beats speed here.
    None if a record overruns the set.
    """
    records = walk_records(template.walk, template.minlen, data)
    if records is None:
        return None
    # Kept values per read field: an IPv6 address gives two, everything else one.
    layout = [(ie, 2 if read == _ADDR6 else 1)
              for (ie, _, _), (_, read) in zip(template.fields, template.walk, strict=True) if read != _SKIP]
    out = []
    for rec in records:
        values: dict[int, int] = {}
        i = 0
        for ie, n in layout:
            if ie in OPTION_IES:
                values[ie] = rec[i]
            i += n
        out.append(values)
    return out


def read_fields(dg: bytes, pos: int, end: int, count: int, version: int) -> tuple[tuple[Field, ...], int]:
    """The field specifiers of one template record at ``pos``, and the position after them;
    raise ``CodecError("bad_template")`` if they overflow the set ending at ``end``."""
    if count * 4 > end - pos:
        raise CodecError("bad_template", f"{count} fields overflow the set")
    if version == 9:
        # RFC 3954 §5.2: (type, length) pairs; no enterprise bit in v9.
        fields = tuple((ie, length, 0) for ie, length in _V9_FIELD.iter_unpack(dg[pos:pos + 4 * count]))
        return fields, pos + 4 * count
    out = []
    for _ in range(count):
        if end - pos < 4:
            raise CodecError("bad_template", "fields overflow the set")
        ie, length = _V9_FIELD.unpack_from(dg, pos)
        pos += 4
        pen = 0
        if ie & 0x8000:  # RFC 7011 §3.2: enterprise bit, a 4-byte Private Enterprise Number follows
            if end - pos < 4:
                raise CodecError("bad_template", "enterprise number missing")
            (pen,) = _PEN.unpack_from(dg, pos)
            pos += 4
            ie &= 0x7FFF
        out.append((ie, length, pen))
    return tuple(out), pos


SavedState = list[tuple[tuple[str, int, int], int | None, dict[int, int], int | None, list[tuple["Template", float]],
                        dict[str, int | float] | None]]


def parse_state(obj: Any) -> SavedState:
    """Validate a ``Decoder.dump_state`` document and build its templates: a list of
    ((exporter, version, domain), rate, samplers, init_ms, [(template, seen)], sequence or
    None).  Raises ``CodecError`` (or a ``ValueError``/``TypeError``/``KeyError`` from a
    shape the checks do not name) on anything unexpected; the caller turns all of them into
    ``bad_state``."""
    if not isinstance(obj, dict) or obj.get("format") not in STATE_FORMATS:
        raise CodecError("bad_state", "not a lastmile flow state")
    out: SavedState = []
    for d in obj["domains"]:
        exporter = d["exporter"]
        if not isinstance(exporter, str):
            raise CodecError("bad_state", "exporter")
        version = d["version"]
        if version not in (5, 9, 10) or isinstance(version, bool):
            raise CodecError("bad_state", f"version {version!r}")
        key = (exporter, version, _int(d["domain"], 0, _M32))
        rate = None if d["rate"] is None else _int(d["rate"], 1, MAX_RATE)
        samplers = {_int(k, 0, _M64): _int(v, 1, MAX_RATE) for k, v in d["samplers"]}
        init_ms = None if d["init_ms"] is None else _int(d["init_ms"], 0, _M64)
        templates = []
        for t in d["templates"]:
            fields = tuple((_int(ie, 0, 0x7FFF), _int(length, 0, VARLEN), _int(pen, 0, _M32))
                           for ie, length, pen in t["fields"])
            options = t["options"]
            seen = t["seen"]
            if not isinstance(options, bool) or not isinstance(seen, int | float):
                raise CodecError("bad_state", "template")
            if version == 5:
                raise CodecError("bad_state", "v5 has no templates")
            templates.append((Template.build(_int(t["id"], 0, 0xFFFF), fields, _int(t["scope"], 0, 0xFFFF),
                                             options, version), float(seen)))
        out.append((key, rate, samplers, init_ms, templates, _sequence(d.get("seq"))))
    return out


def _sequence(seq: Any) -> dict[str, int | float] | None:
    """A domain's saved sequence state (``codec._Sequence.dump``), checked."""
    if seq is None:
        return None
    if not isinstance(seq, dict):
        raise CodecError("bad_state", "seq")
    return {"next": _int(seq["next"], 0, _M32), "seen": _number(seq["seen"]), "uptime": _int(seq["uptime"], -1, _M32),
            "rate": _number(seq["rate"]), "last_units": _int(seq["last_units"], 1, _M32),
            "per_datagram": _int(seq["per_datagram"], 1, _M32), "pending": _int(seq["pending"], 0, _M64)}


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1e12:
        raise CodecError("bad_state", f"{v!r} not a number in 0..1e12")
    return float(v)


def _int(v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise CodecError("bad_state", f"{v!r} not an integer in {lo}..{hi}")
    return v
