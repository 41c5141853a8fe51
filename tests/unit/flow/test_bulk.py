"""The bulk (NumPy) path of the aggregator against the per-record loop it stands in for:
random datagrams of every version and layout, random maps (static /32s, sessions with
several holders, prefixes, changes between datagrams), times that wrap, clamp and span
buckets, huge counters and sampling; both must give the same counters, to the entry."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowcollector.addressmap import ServiceMap
from flowcollector.aggregate import Aggregator, Usage
from flowcollector.codec import Decoder
from tests.unit.flow.flowbuild import (
    MIKROTIK_V4,
    NFGEN_IPFIX,
    NFGEN_V9,
    FieldSpec,
    data_set,
    ipfix,
    record,
    template_set,
    v5,
    v9,
)

NOW = 1_790_000_020
MS = NOW * 1000
UPTIME = 0xFFFF_0000  # the exporter's uptime wraps 2^32 ms a minute after export
SUBS = [f"100.64.0.{i}" for i in range(12)]
OTHERS = ["198.51.100.1", "203.0.113.5", "100.64.0.200", "10.9.0.7", "10.9.1.7"]
MS_V4: list[FieldSpec] = [(8, 4), (12, 4), (1, 8), (2, 8), (152, 8), (153, 8), (225, 4), (226, 4)]
NO_TIME: list[FieldSpec] = [(8, 4), (12, 4), (1, 4)]
LAYOUTS: dict[int, list[FieldSpec]] = {256: NFGEN_V9, 257: MIKROTIK_V4, 258: NFGEN_IPFIX, 259: MS_V4, 260: NO_TIME}

addresses = st.sampled_from(SUBS + OTHERS)


@st.composite
def flows(draw: Any, wide: bool) -> dict[str, int | str]:
    """One flow: addresses, counters (up to 2^64 - 1 where the layout allows) and times as
    ms offsets from the export (some outside the clamp window, some inverted)."""
    top = 2**64 - 1 if wide else 2**32 - 1
    counter = st.one_of(st.integers(0, 3000), st.integers(0, top), st.sampled_from([0, top, 2**47, 2**47 - 1]))
    end = draw(st.one_of(st.integers(-90_000, 1000), st.integers(-9_000_000, 400_000)))
    start = end - draw(st.one_of(st.integers(0, 70_000), st.integers(-5000, 4 * 3_600_000)))
    return {"src": draw(addresses), "dst": draw(addresses), "nat_src": draw(addresses), "nat_dst": draw(addresses),
            "octets": draw(counter), "packets": draw(counter), "start": start, "end": end}


def datagram(version: int, tid: int, recs: list[dict[str, Any]], seq: int) -> bytes:
    if version == 5:
        return v5([{"src": r["src"], "dst": r["dst"], "octets": r["octets"] % 2**32, "packets": r["packets"] % 2**32,
                    "first": (UPTIME + r["start"]) % 2**32, "last": (UPTIME + r["end"]) % 2**32} for r in recs],
                  uptime=UPTIME, secs=NOW, seq=seq)
    fields = LAYOUTS[tid]
    values = [{8: r["src"], 12: r["dst"], 225: r.get("nat_src", r["src"]), 226: r.get("nat_dst", r["dst"]),
               1: r["octets"], 2: r["packets"],
               22: (UPTIME + r["start"]) % 2**32, 21: (UPTIME + r["end"]) % 2**32,
               152: max(MS + r["start"], 0), 153: max(MS + r["end"], 0)} for r in recs]
    for v in values:  # the narrower fields of a layout keep only what fits
        for ie, length, *_ in fields:
            if ie in v and isinstance(v[ie], int):
                v[ie] %= 1 << (8 * length)
    sets = [data_set(tid, [record(fields, v) for v in values])]
    if version == 9:
        return v9([template_set(9, [(tid, fields)]), *sets], uptime=UPTIME, secs=NOW, seq=seq)
    return ipfix([template_set(10, [(tid, fields)]), *sets], export=NOW, seq=seq)


@st.composite
def cases(draw: Any) -> dict[str, Any]:
    static = draw(st.lists(st.tuples(st.sampled_from([*SUBS, "10.9.0.0/24", "100.64.0.0/28"]),
                                     st.integers(1, 5)), max_size=6))
    sessions = draw(st.lists(st.tuples(st.sampled_from([*SUBS, "10.9.0.0/29"]), st.integers(6, 9),
                                       st.integers(-7200, 100), st.one_of(st.none(), st.integers(0, 3000))),
                             max_size=10))
    steps = []
    for i in range(draw(st.integers(1, 8))):
        version = draw(st.sampled_from([5, 9, 10]))
        tid = 0 if version == 5 else draw(st.sampled_from([256, 257] if version == 9 else [256, 257, 258, 259, 260]))
        wide = version == 10 and tid in (258, 259)
        recs = draw(st.lists(flows(wide), min_size=1, max_size=30))
        change = draw(st.one_of(st.none(), st.tuples(st.sampled_from(SUBS), st.integers(10, 12),
                                                     st.integers(-600, 10), st.booleans())))
        steps.append((version, tid, recs, i, change, draw(st.booleans())))
    return {"static": static, "sessions": sessions, "steps": steps, "rate": draw(st.sampled_from([1, 3, 1000])),
            "bulk": draw(st.sampled_from([1, 20, 64, 8192])), "bucket": draw(st.sampled_from([60, 60, 1, 300]))}


def snapshot(usage: Usage) -> tuple[Any, ...]:
    return usage.groups, usage.services(), usage.unknown, usage.records, usage.clamped


@settings(max_examples=200, deadline=None)
@given(case=cases())
def test_bulk_path_equals_per_record_loop(case: dict[str, Any]) -> None:
    smap = ServiceMap()
    smap.replace_static((p, sid) for p, sid in case["static"])
    for prefix, sid, start, length in case["sessions"]:
        smap.add_session(prefix, sid, NOW + start, None if length is None else NOW + start + length)
    reference = Aggregator(smap, bulk=0, bucket_seconds=case["bucket"])
    bulk = Aggregator(smap, bulk=case["bulk"], bucket_seconds=case["bucket"])
    decoder = Decoder()
    decoder.set_sampling("192.0.2.1", case["rate"])
    drained: list[tuple[Any, ...]] = []
    for version, tid, recs, seq, change, drain in case["steps"]:
        for batch in decoder.decode(datagram(version, tid, recs, seq), "192.0.2.1", NOW + 0.5).batches:
            reference.add(batch)
            bulk.add(batch)
        if change is not None:  # a session starts or stops between datagrams
            address, sid, at, stop = change
            if stop:
                smap.end_session(address, NOW + at)
            else:
                smap.add_session(address, sid, NOW + at)
        if drain:
            drained.append((snapshot(reference.drain()), snapshot(bulk.drain())))
    drained.append((snapshot(reference.drain()), snapshot(bulk.drain())))
    for want, got in drained:
        assert got == want
    assert bulk.moved == reference.moved


def test_bulk_path_takes_the_common_records() -> None:
    """The records it is for (static /32s and current sessions, one or two buckets) are
    counted in its tables, not handed back to the per-record loop."""
    smap = ServiceMap()
    smap.replace_static([("100.64.0.1", 1)])
    smap.add_session("100.64.0.2", 2, NOW - 60)
    agg = Aggregator(smap, bulk=16384)
    decoder = Decoder()
    recs = [{"src": "198.51.100.1", "dst": "100.64.0.1", "octets": 10, "packets": 1, "start": -30_000, "end": -1},
            {"src": "100.64.0.2", "dst": "198.51.100.1", "octets": 20, "packets": 2, "start": -50_000, "end": -19_000}]
    for batch in decoder.decode(datagram(9, 256, recs, 0), "192.0.2.1", NOW + 0.5).batches:
        agg.add(batch)
    assert agg._bulk is not None and agg._queue
    agg.fold_queue()
    assert agg._groups == {(1, 1): {}} and agg._bulk.tables  # nothing went through the per-record loop
    services = agg.drain().services()
    assert sum(c[0] for c in services.values()) == 10 and sum(c[1] for c in services.values()) == 20
    with pytest.raises(ValueError, match="bulk"):
        Aggregator(smap, bulk=1 << 15)


def test_empty_record_across_a_boundary_makes_the_same_counters() -> None:
    """Nothing to count in either minute: no counter, but the rate group the per-record loop
    opens for the batch is there all the same."""
    smap = ServiceMap()
    smap.replace_static([("100.64.0.1", 1)])
    recs = [{"src": "198.51.100.1", "dst": "100.64.0.1", "octets": 0, "packets": 0, "start": -50_000, "end": -1}]
    usages = []
    for size in (0, 64):
        agg = Aggregator(smap, bulk=size)
        for batch in Decoder().decode(datagram(9, 256, recs, 0), "192.0.2.1", NOW + 0.5).batches:
            agg.add(batch)
        usages.append(snapshot(agg.drain()))
    assert usages[0] == usages[1] and usages[0][0] == {(1, 1): {}}
