"""Sampling (N-10): rates from the v5 header, v9/IPFIX options data and sampler tables,
configured defaults and overrides, and renormalised sums."""

from __future__ import annotations

import struct

import pytest

from flowcollector.addressmap import ServiceMap
from flowcollector.aggregate import Aggregator
from flowcollector.codec import Decoder, DecoderSettings, FlowBatch
from tests.unit.flow.flowbuild import (
    NFGEN_IPFIX,
    data_set,
    ipfix,
    options_template_set,
    record,
    template_set,
    v5,
    v9,
)
from tests.unit.flow.vectors import check

UP = 86_400_000 | 0x00FF0000
NOW = 1_790_000_000
MS = NOW * 1000
FIELDS = [(8, 4), (12, 4), (1, 4), (2, 4), (22, 4), (21, 4)]
VALUES = {8: "10.0.0.1", 12: "10.0.0.2", 1: 1000, 2: 10, 22: UP - 100, 21: UP}


def _v9_batch(dec: Decoder, options: list[bytes], exporter: str = "192.0.2.1") -> FlowBatch:
    dec.decode(v9([template_set(9, [(256, FIELDS)]), *options], uptime=UP, secs=NOW), exporter, NOW)
    result = dec.decode(v9([data_set(256, [record(FIELDS, VALUES)])], uptime=UP, secs=NOW, seq=1), exporter, NOW)
    (batch,) = result.batches
    return batch


def _sampling_options(version: int, scope: list[tuple[int, int]], fields: list[tuple[int, int]],
                      values: bytes) -> list[bytes]:
    return [options_template_set(version, 300, scope, fields), data_set(300, [values])]


def test_unknown_sampling_is_tagged_not_silently_x1() -> None:
    batch = _v9_batch(Decoder(), [])
    assert (batch.rate, batch.sampling) == (1, "unknown")


def test_v9_sampling_interval_scoped_by_system() -> None:
    check("v9_sampling_options")
    batch = _v9_batch(Decoder(), _sampling_options(9, [(1, 4)], [(34, 4), (35, 1)], struct.pack("!IIB", 0, 512, 2)))
    assert (batch.rate, batch.sampling) == (512, "exported")
    assert batch.flows()[0][2:4] == (512_000, 5120)


def test_v9_sampler_table_per_record() -> None:
    """FLOW_SAMPLER_ID (48) in the records picks the rate of that sampler (48/49/50 options)."""
    results = check("v9_sampler_table")
    batch = results[1]["batches"][0]
    assert (batch["rate"], batch["sampling"]) == (1, "exported")
    # the vector's records alternate sampler 2 (1:1000) and sampler 1 (1:10)
    assert [f[2] for f in batch["flows"]] == [40 * 1000, 137 * 10, 234 * 1000, 331 * 10]


def test_one_sampler_applies_to_records_that_name_none() -> None:
    """IOS-XR announces a sampler table but its records carry no sampler id (elastiflow#52)."""
    options = _sampling_options(9, [(2, 4)], [(48, 1), (50, 4)], struct.pack("!IBI", 1, 1, 64))
    assert _v9_batch(Decoder(), options).rate == 64


def test_ipfix_sampling_interval_scoped_by_domain() -> None:
    """The shape nfgen --sampling sends (functional.sh's renormalisation check)."""
    dec = Decoder()
    options = _sampling_options(10, [(149, 4)], [(34, 4), (35, 1)], struct.pack("!IIB", 100, 100, 1))
    dec.decode(ipfix([*options, template_set(10, [(256, NFGEN_IPFIX)])], export=NOW, domain=100), "a", NOW)
    values = {8: "10.0.0.1", 12: "10.0.0.2", 1: 40, 2: 1, 152: MS - 10, 153: MS}
    result = dec.decode(ipfix([data_set(256, [record(NFGEN_IPFIX, values)])], export=NOW, domain=100), "a", NOW)
    assert (result.batches[0].rate, result.batches[0].flows()[0].octets) == (100, 4000)


@pytest.mark.parametrize(("interval", "space", "rate"), [(1, 99, 100), (2, 98, 50), (3, 97, 33), (1, 0, 1),
                                                          (2222, 1111, 2)])
def test_psamp_interval_and_space(interval: int, space: int, rate: int) -> None:
    """samplingPacketInterval/Space (305/306, MikroTik sampling-interval/-space): the rate is
    (interval + space) / interval, rounded to an integer."""
    dec = Decoder()
    options = _sampling_options(10, [(302, 4)], [(305, 4), (306, 4)], struct.pack("!III", 1, interval, space))
    dec.decode(ipfix([*options, template_set(10, [(256, NFGEN_IPFIX)])], export=NOW), "a", NOW)
    values = {8: "10.0.0.1", 12: "10.0.0.2", 1: 40, 2: 1, 152: MS - 10, 153: MS}
    result = dec.decode(ipfix([data_set(256, [record(NFGEN_IPFIX, values)])], export=NOW), "a", NOW)
    assert result.batches[0].rate == rate


def test_random_interval_alone() -> None:
    options = _sampling_options(9, [(1, 4)], [(50, 4)], struct.pack("!II", 0, 2000))
    assert _v9_batch(Decoder(), options).rate == 2000


@pytest.mark.parametrize(("rate", "dropped"), [(0, {}), (2**20, {"sampling_too_high": 1}),
                                              (65_536, {"sampling_too_high": 1})])
def test_nonsense_rates_are_ignored(rate: int, dropped: dict[str, int]) -> None:
    """Issue 8: an announced 2^20 turned 20,000 bytes into 20,971,520,000; above
    ``max_sampling_rate`` (65,535 by default) a rate is not believed, and counted."""
    dec = Decoder()
    options = _sampling_options(9, [(1, 4)], [(34, 4)], struct.pack("!II", 0, rate))
    result = dec.decode(v9([*options], uptime=UP, secs=NOW), "192.0.2.1", NOW)
    assert result.dropped == dropped
    assert _v9_batch(dec, []).sampling == "unknown"


def test_the_cap_keeps_the_rate_known_before_and_is_a_setting() -> None:
    dec = Decoder(DecoderSettings(max_sampling_rate=1000))
    good = _sampling_options(9, [(1, 4)], [(34, 4)], struct.pack("!II", 0, 1000))
    bad = _sampling_options(9, [(1, 4)], [(34, 4)], struct.pack("!II", 0, 1001))
    dec.decode(v9([*good], uptime=UP, secs=NOW), "192.0.2.1", NOW)
    assert dec.decode(v9([*bad], uptime=UP, secs=NOW), "192.0.2.1", NOW).dropped == {"sampling_too_high": 1}
    assert _v9_batch(dec, []).rate == 1000
    rec = {"src": "198.51.100.1", "dst": "100.64.0.9", "packets": 3, "octets": 1500, "first": UP - 10, "last": UP}
    v5_dec = Decoder(DecoderSettings(max_sampling_rate=5))
    result = v5_dec.decode(v5([rec], uptime=UP, secs=NOW, sampling=0x4000 | 10), "192.0.2.1", NOW)
    assert result.dropped == {"sampling_too_high": 1} and result.batches[0].sampling == "unknown"
    with pytest.raises(ValueError, match="max_sampling_rate"):
        DecoderSettings(max_sampling_rate=0)


def test_configured_default_applies_only_without_announcement() -> None:
    """MikroTik announces no rate (akvorado #521): the operator configures it."""
    dec = Decoder()
    dec.set_sampling("192.0.2.1", 256)
    assert (_v9_batch(dec, []).rate, _v9_batch(dec, []).sampling) == (256, "configured")
    announced = _sampling_options(9, [(1, 4)], [(34, 4)], struct.pack("!II", 0, 100))
    assert _v9_batch(Decoder(), announced).rate == 100
    dec.set_sampling("192.0.2.1", None)
    assert _v9_batch(dec, []).sampling == "unknown"


def test_override_beats_the_announcement() -> None:
    """For exporters announcing a wrong rate (pmacct #431, the Huawei case)."""
    dec = Decoder()
    dec.set_sampling("192.0.2.1", 1000, override=True)
    announced = _sampling_options(9, [(1, 4)], [(34, 4)], struct.pack("!II", 0, 100))
    assert (_v9_batch(dec, announced).rate, _v9_batch(dec, []).sampling) == (1000, "configured")
    assert _v9_batch(dec, [], exporter="192.0.2.2").rate == 1


def test_set_sampling_checks_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        Decoder().set_sampling("a", 0)


def test_v5_header_rate_and_renormalised_sums() -> None:
    dec = Decoder()
    smap = ServiceMap()
    smap.replace_static([("100.64.0.0/10", 5)])
    agg = Aggregator(smap)
    rec = {"src": "198.51.100.1", "dst": "100.64.0.9", "packets": 3, "octets": 1500, "first": UP - 10, "last": UP}
    for b in dec.decode(v5([rec] * 4, uptime=UP, secs=NOW, sampling=0x8000 | 10), "192.0.2.1", NOW).batches:
        agg.add(b)
    ((key, counters),) = agg.drain().services().items()
    assert key == (5, NOW // 60 * 60) and counters == [4 * 1500 * 10, 0, 4 * 3 * 10, 0]


def test_template_without_packet_counter() -> None:
    dec = Decoder()
    fields = [(8, 4), (12, 4), (1, 4)]
    dec.decode(v9([template_set(9, [(256, fields)])], uptime=UP, secs=NOW), "a", NOW)
    result = dec.decode(v9([data_set(256, [record(fields, VALUES)])], uptime=UP, secs=NOW, seq=1), "a", NOW)
    (flow,) = result.batches[0].flows()
    assert (flow.octets, flow.packets, result.batches[0].packet_rate) == (1000, 0, 0)


def test_sampler_with_rate_one() -> None:
    dec = Decoder()
    fields = [*FIELDS, (48, 1)]
    options = _sampling_options(9, [(2, 4)], [(48, 1), (50, 4)], struct.pack("!IBI", 1, 7, 1))
    dec.decode(v9([template_set(9, [(256, fields)]), *options], uptime=UP, secs=NOW), "a", NOW)
    result = dec.decode(v9([data_set(256, [record(fields, {**VALUES, 48: 7})])], uptime=UP, secs=NOW, seq=1), "a", NOW)
    assert result.batches[0].flows()[0].octets == 1000 and result.batches[0].sampling == "exported"
