"""Flow times: sysUpTime arithmetic and its 49.7-day wrap, IPFIX absolute and relative
times, exporters without clocks or with wrong clocks, and the aggregator's clamping."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowcollector.addressmap import ServiceMap
from flowcollector.aggregate import Aggregator
from flowcollector.codec import Decoder, DecoderSettings, Flow
from tests.unit.flow.flowbuild import data_set, ipfix, options_template_set, record, template_set, v5, v9

NOW = 1_790_000_000
MS = NOW * 1000
WRAP = 2**32


def _v9_flow(uptime: int, first: int, last: int, secs: int = NOW, now: float = NOW) -> Flow:
    fields = [(8, 4), (12, 4), (1, 4), (2, 4), (22, 4), (21, 4)]
    dec = Decoder()
    dec.decode(v9([template_set(9, [(256, fields)])], uptime=uptime, secs=secs), "192.0.2.1", now)
    values = {8: "10.0.0.1", 12: "10.0.0.2", 1: 100, 2: 1, 22: first, 21: last}
    result = dec.decode(v9([data_set(256, [record(fields, values)])], uptime=uptime, secs=secs, seq=1),
                        "192.0.2.1", now)
    (flow,) = result.batches[0].flows()
    return flow


def test_uptime_relative_times() -> None:
    flow = _v9_flow(uptime=5_000_000, first=4_990_000, last=4_999_000)
    assert (flow.start_ms, flow.end_ms) == (MS - 10_000, MS - 1_000)


def test_flow_started_before_the_32_bit_wrap() -> None:
    """sysUpTime wrapped (49.7 days) between the flow's start and the export (pmacct #640):
    the start is still before the end, not 4.29e6 s after it."""
    flow = _v9_flow(uptime=3_000, first=WRAP - 7_000, last=1_000)
    assert (flow.start_ms, flow.end_ms) == (MS - 10_000, MS - 2_000)


def test_whole_flow_before_the_wrap() -> None:
    flow = _v9_flow(uptime=500, first=WRAP - 20_000, last=WRAP - 1_500)
    assert (flow.start_ms, flow.end_ms) == (MS - 20_500, MS - 2_000)


def test_last_switched_slightly_after_export() -> None:
    """Some exporters stamp LAST_SWITCHED a few ms after sysUpTime: read as a few ms later."""
    flow = _v9_flow(uptime=1_000_000, first=999_000, last=1_000_004)
    assert flow.end_ms == MS + 4


@settings(max_examples=100, deadline=None)
@given(uptime=st.integers(0, WRAP - 1), age=st.integers(0, 20 * 86_400_000), dur=st.integers(0, 3_600_000))
def test_wrap_property(uptime: int, age: int, dur: int) -> None:
    """For any uptime, a flow up to 24.8 days (2^31 ms) old lands where it happened, wrap or not."""
    flow = _v9_flow(uptime=uptime, first=(uptime - age - dur) % WRAP, last=(uptime - age) % WRAP)
    assert (flow.start_ms, flow.end_ms) == (MS - age - dur, MS - age)


def test_v5_uses_unix_nsecs() -> None:
    dg = v5([{"src": "10.0.0.1", "dst": "10.0.0.2", "packets": 1, "octets": 1, "first": 9_000, "last": 10_000}],
            uptime=10_000, secs=NOW, nsecs=999_999_999)
    (flow,) = Decoder().decode(dg, "192.0.2.1", NOW).batches[0].flows()
    assert (flow.start_ms, flow.end_ms) == (MS + 999 - 1_000, MS + 999)


IPFIX_CORE = [(8, 4), (12, 4), (1, 4), (2, 4)]
V = {8: "10.0.0.1", 12: "10.0.0.2", 1: 100, 2: 1}


def _ipfix_flows(time_fields: list[tuple[int, int]], values: dict[int, int], *, pre: list[bytes] | None = None,
                 export: int = NOW, now: float = NOW) -> tuple[list[Flow], str]:
    fields = IPFIX_CORE + time_fields
    dec = Decoder()
    dec.decode(ipfix([*(pre or []), template_set(10, [(256, fields)])], export=export), "192.0.2.1", now)
    result = dec.decode(ipfix([data_set(256, [record(fields, {**V, **values})])], export=export), "192.0.2.1", now)
    batch = result.batches[0]
    return batch.flows(), batch.times


@pytest.mark.parametrize(("fields", "values"), [
    ([(150, 4), (151, 4)], {150: NOW - 60, 151: NOW - 1}),                                   # seconds
    ([(152, 8), (153, 8)], {152: MS - 60_000, 153: MS - 1_000}),                             # milliseconds
    ([(154, 8), (155, 8)], {154: (NOW - 60 + 2_208_988_800) << 32 | 0x80000000,             # NTP, microseconds
                            155: (NOW - 1 + 2_208_988_800) << 32}),
    ([(156, 8), (157, 8)], {156: (NOW - 60 + 2_208_988_800) << 32, 157: (NOW - 1 + 2_208_988_800) << 32}),
    ([(152, 8), (151, 4)], {152: MS - 60_000, 151: NOW - 1}),                                # mixed kinds
])
def test_ipfix_absolute_times(fields: list[tuple[int, int]], values: dict[int, int]) -> None:
    (flow,), times = _ipfix_flows(fields, values)
    assert (flow.start_ms, flow.end_ms, times) == (MS - 60_000, MS - 1_000, "exporter")


def test_ipfix_sysuptime_with_init_time_from_options() -> None:
    init = MS - 86_400_000
    pre = [options_template_set(10, 300, [(149, 4)], [(160, 8)]), data_set(300, [struct.pack("!IQ", 0, init)])]
    (flow,), times = _ipfix_flows([(22, 4), (21, 4)], {22: 86_340_000, 21: 86_399_000}, pre=pre)
    assert (flow.start_ms, flow.end_ms, times) == (MS - 60_000, MS - 1_000, "exporter")


def test_ipfix_sysuptime_with_init_time_in_records() -> None:
    init = MS - 86_400_000
    (flow,), _ = _ipfix_flows([(22, 4), (21, 4), (160, 8)], {22: 86_340_000, 21: 86_399_000, 160: init})
    assert (flow.start_ms, flow.end_ms) == (MS - 60_000, MS - 1_000)


def test_no_time_fields_means_arrival_time() -> None:
    (flow,), times = _ipfix_flows([], {}, now=NOW + 0.25)
    assert (flow.start_ms, flow.end_ms, times) == (MS + 250, MS + 250, "arrival")


def test_wrong_exporter_clock_is_shifted_onto_ours() -> None:
    """A router without NTP (clock in 1970) still gets usable times, durations kept."""
    dec = Decoder(DecoderSettings(max_clock_skew=300))
    fields = [*IPFIX_CORE, (152, 8), (153, 8)]
    dec.decode(ipfix([template_set(10, [(256, fields)])], export=1_000), "192.0.2.1", NOW)
    values = {**V, 152: 1_000_000 - 60_000, 153: 1_000_000 - 1_000}
    result = dec.decode(ipfix([data_set(256, [record(fields, values)])], export=1_000), "192.0.2.1", NOW)
    (flow,) = result.batches[0].flows()
    assert result.events == {"clock_corrected": 1} and result.batches[0].times == "corrected"
    assert (flow.start_ms, flow.end_ms) == (MS - 60_000, MS - 1_000)


def test_aggregator_clamps_implausible_times() -> None:
    smap = ServiceMap()
    smap.replace_static([("10.0.0.0/8", 1)])
    agg = Aggregator(smap, max_age=3600, max_lead=300)
    dec = Decoder(DecoderSettings(max_clock_skew=10**9))
    fields = [*IPFIX_CORE, (152, 8), (153, 8)]
    dec.decode(ipfix([template_set(10, [(256, fields)])], export=NOW), "192.0.2.1", NOW)
    recs = [record(fields, {**V, 152: MS - 10_000, 153: MS + 3_600_000}),       # ends in the future
            record(fields, {**V, 152: MS - 7_200_000, 153: MS - 60_000}),        # started too long ago
            record(fields, {**V, 152: MS - 1_000, 153: MS - 2_000}),             # start after end
            record(fields, {**V, 152: 0, 153: 5})]                               # 1970
    for b in dec.decode(ipfix([data_set(256, recs)], export=NOW), "192.0.2.1", NOW).batches:
        agg.add(b)
    usage = agg.drain()
    assert usage.clamped == 4
    assert sum(c[0] for c in usage.services().values()) == 400
    assert min(start for _, start in usage.services()) >= NOW - 3600 - 60


def test_ipfix_uptime_start_without_reference_falls_back_to_arrival() -> None:
    (flow,), times = _ipfix_flows([(22, 4), (153, 8)], {22: 1_000, 153: MS - 1_000}, now=NOW + 0.5)
    assert (flow.start_ms, flow.end_ms, times) == (MS + 500, MS + 500, "arrival")


def test_records_not_at_their_own_times_are_counted_by_reason() -> None:
    """Issue 8: nfreplay's datagrams were all clock-corrected without a count of the records moved."""
    dec = Decoder(DecoderSettings(max_clock_skew=300))
    fields = [*IPFIX_CORE, (152, 8), (153, 8)]
    dec.decode(ipfix([template_set(10, [(256, fields), (257, IPFIX_CORE)])], export=1_000), "192.0.2.1", NOW)
    recs = [record(fields, {**V, 152: 1_000_000 - 60_000, 153: 1_000_000 - 1_000})] * 3
    result = dec.decode(ipfix([data_set(256, recs), data_set(257, [record(IPFIX_CORE, V)] * 2)], export=1_000),
                        "192.0.2.1", NOW)
    assert result.moved == {"clock_corrected": 3, "no_clock": 2}
    v5_result = Decoder().decode(v5([{"src": "10.0.0.1", "dst": "10.0.0.2", "packets": 1, "octets": 1, "first": 0,
                                      "last": 1}] * 4, uptime=10_000, secs=NOW - 3600), "192.0.2.1", NOW)
    assert v5_result.moved == {"clock_corrected": 4}
    fine = Decoder().decode(v5([{"src": "10.0.0.1", "dst": "10.0.0.2", "packets": 1, "octets": 1, "first": 0,
                                 "last": 1}], uptime=10_000, secs=NOW), "192.0.2.1", NOW)
    assert fine.moved == {}


@pytest.mark.parametrize("six", [False, True])
def test_late_traffic_is_booked_in_its_own_hour(six: bool) -> None:
    """Issue 8: an IPFIX flow from 5 h ago for 100.64.0.6 landed at the arrival minute.
    Within ``late_window`` it is booked at the start of the hour it happened in (whose rollup
    then counts it), attributed at its own time; beyond, at arrival, and counted either way."""
    smap = ServiceMap()
    smap.replace_static([("10.0.0.2/32", 1), ("2001:db8::2/128", 1)])
    smap.add_session("10.0.0.2", 7, NOW - 6 * 3600, NOW - 4 * 3600)  # held the address then
    smap.add_session("2001:db8::2/128", 7, NOW - 6 * 3600, NOW - 4 * 3600)
    fields = [(27, 16), (28, 16), (1, 4), (2, 4), (152, 8), (153, 8)] if six else [*IPFIX_CORE, (152, 8), (153, 8)]
    base = {27: "2001:db8::1", 28: "2001:db8::2", 1: 100, 2: 1} if six else V
    five_h = MS - 5 * 3_600_000
    recs = [record(fields, {**base, 152: five_h - 1000, 153: five_h}),               # 5 h ago
            record(fields, {**base, 152: five_h - 1000, 153: five_h}),
            record(fields, {**base, 152: MS - 3 * 86_400_000, 153: MS - 3 * 86_400_000}),  # 3 days ago
            record(fields, {**base, 152: MS - 1000, 153: MS + 3_600_000})]          # an hour ahead
    agg = Aggregator(smap, max_age=7200, late_window=86_400)
    dec = Decoder()
    dec.decode(ipfix([template_set(10, [(256, fields)])], export=NOW), "192.0.2.1", NOW)
    for b in dec.decode(ipfix([data_set(256, recs)], export=NOW), "192.0.2.1", NOW).batches:
        agg.add(b)
    services = agg.drain().services()
    hour = five_h // 3_600_000 * 3600
    assert services == {(7, hour): [200, 0, 2, 0], (1, NOW // 60 * 60): [200, 0, 2, 0]}
    assert agg.moved == {("192.0.2.1", "late"): 2, ("192.0.2.1", "too_old"): 1, ("192.0.2.1", "too_far_ahead"): 1}


def test_late_traffic_spanning_hours_is_shared_exactly_and_unknown_late_is_by_the_hour_too() -> None:
    start, end = MS - 5 * 3_600_000 - 1_800_000, MS - 5 * 3_600_000 + 1_800_000  # half an hour either side
    smap = ServiceMap()
    smap.replace_static([("10.0.0.2/32", 3)])
    agg = Aggregator(smap)
    dec = Decoder()
    fields = [*IPFIX_CORE, (152, 8), (153, 8)]
    dec.decode(ipfix([template_set(10, [(256, fields)])], export=NOW), "192.0.2.1", NOW)
    recs = [record(fields, {**V, 1: 1_000_001, 152: start, 153: end}),
            record(fields, {**V, 8: "192.0.2.7", 12: "192.0.2.8", 1: 999, 152: start, 153: end})]
    for b in dec.decode(ipfix([data_set(256, recs)], export=NOW), "192.0.2.1", NOW).batches:
        agg.add(b)
    usage = agg.drain()
    parts = usage.services()
    assert sum(c[0] for c in parts.values()) == 1_000_001
    assert all(minute % 3600 == 0 for _, minute in parts) and 1 <= len(parts) <= 2
    assert sum(c[0] for c in usage.unknown.values()) == 999
    assert all(minute % 3600 == 0 for _, minute, _ in usage.unknown)
