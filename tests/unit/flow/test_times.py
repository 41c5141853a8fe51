"""Flow times: sysUpTime arithmetic and its 49.7-day wrap, IPFIX absolute and relative
times, exporters without clocks or with wrong clocks, and the aggregator's clamping."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowcollector.aggregate import Aggregator, ServiceMap
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
