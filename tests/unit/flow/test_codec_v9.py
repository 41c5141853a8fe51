"""NetFlow v9 (RFC 3954): golden vectors, differential decoding, framing, sequence numbers."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.netflow import (
    NetflowDataflowsetV9,
    NetflowFlowsetV9,
    NetflowHeader,
    NetflowHeaderV9,
    NetflowRecordV9,
    NetflowTemplateFieldV9,
    NetflowTemplateV9,
)

from flowcollector.codec import CodecError, Decoder
from tests.unit.flow.flowbuild import MIKROTIK_V4, NFGEN_V9, FieldSpec, data_set, record, template_set, v9
from tests.unit.flow.references import via_netflow, via_scapy
from tests.unit.flow.vectors import check, flows, load, run

UP = 86_400_000 | 0x00FF0000
NOW = 1_790_000_000


@pytest.mark.parametrize("name", ["v9_nfgen", "v9_mikrotik"])
def test_golden_and_differential(name: str) -> None:
    ours = flows(check(name))
    _, _, datagrams = load(name)
    assert ours == via_netflow(datagrams) == via_scapy(datagrams)


def test_late_template_vector() -> None:
    """Data held until its template arrives decodes like data sent after it (the reference
    decoders cannot hold: they get the template first)."""
    results = check("v9_late_template")
    assert [r["events"] for r in results] == [{"held": 1}, {"held": 1}, {"template_added": 1, "released": 2}]
    _, _, (d1, d2, tpl) = load("v9_late_template")
    assert flows(results) == via_netflow([tpl, d1, d2]) == via_scapy([tpl, d1, d2])


def test_mikrotik_nat_fields() -> None:
    results = run("v9_mikrotik")
    v4 = results[1]["batches"][0]["flows"]
    assert [f[6:] for f in v4] == [
        ["198.18.0.0", "203.0.113.77"], ["203.0.113.77", "198.18.0.1"],
        ["198.18.0.2", "203.0.113.77"], ["203.0.113.77", "198.18.0.3"]]
    v6 = results[2]["batches"][0]
    assert v6["family"] == 6 and v6["flows"][0][1] == "2001:db8:1::1" and v6["flows"][0][6] is None


@pytest.mark.parametrize("cut", range(20))
def test_every_header_truncation_is_refused(cut: int) -> None:
    dg = v9([template_set(9, [(256, NFGEN_V9)])], uptime=UP, secs=NOW)
    with pytest.raises(CodecError, match="short_header"):
        Decoder().decode(dg[:cut], "192.0.2.1", NOW)


def _flow(j: int) -> dict[int, int | str]:
    return {8: f"10.0.{j // 250}.{j % 250}", 12: "192.0.2.99", 1: 100 + j, 2: 1, 22: UP - 2000, 21: UP - 1000}


def _data(n: int, seq: int, tid: int = 256, source_id: int = 0) -> bytes:
    return v9([data_set(tid, [record(NFGEN_V9, _flow(j)) for j in range(n)])],
              uptime=UP, secs=NOW, seq=seq, source_id=source_id)


def _template(seq: int, source_id: int = 0) -> bytes:
    return v9([template_set(9, [(256, NFGEN_V9)])], uptime=UP, secs=NOW, seq=seq, source_id=source_id)


def test_sequence_counts_packets_and_estimates_records() -> None:
    """N-7 for v9: the sequence counts export packets; lost records = lost packets x records
    in the last datagram (an estimate, as documented)."""
    dec = Decoder()
    lost = dec.decode(_template(0), "192.0.2.1", NOW).lost
    seq = 1
    for k in range(60):
        if k == 10:
            seq += 3  # three data datagrams lost
        lost += dec.decode(_data(20, seq), "192.0.2.1", NOW).lost
        seq += 1
    assert lost == 3 * 20


def test_wrap_of_sequence_is_not_loss() -> None:
    dec = Decoder()
    dec.decode(_template(2**32 - 5), "192.0.2.1", NOW)
    lost = sum(dec.decode(_data(5, (2**32 - 4 + k) % 2**32), "192.0.2.1", NOW).lost for k in range(60))
    assert lost == 0


def test_restart_forgets_templates_and_is_not_loss() -> None:
    """A reboot resets the sequence: not 4 billion lost; the old template IDs may now mean
    another layout, so data waits for a fresh template (pmacct #439/#726)."""
    dec = Decoder()
    dec.decode(_template(1000), "192.0.2.1", NOW)
    for seq in range(1001, 1100):
        assert dec.decode(_data(3, seq), "192.0.2.1", NOW).lost == 0
    after = dec.decode(_data(3, 0), "192.0.2.1", NOW)
    assert after.events == {"exporter_restart": 1, "held": 1} and after.lost == 0 and not after.batches
    again = dec.decode(_template(1), "192.0.2.1", NOW)
    assert again.events == {"template_added": 1, "released": 1} and again.records == 3


def test_data_before_template_in_one_datagram_and_padding() -> None:
    recs = [record(NFGEN_V9, _flow(j)) for j in range(3)]
    dg = v9([data_set(256, recs), template_set(9, [(256, NFGEN_V9)]), data_set(256, recs[:1])],
            uptime=UP, secs=NOW)
    result = Decoder().decode(dg, "192.0.2.1", NOW)
    assert result.records == 4 and result.events == {"held": 1, "template_added": 1, "released": 1}
    assert len(dg) % 4 == 0  # 47-byte records: the data sets carry padding, which is not a record


def test_source_ids_are_separate_domains() -> None:
    dec = Decoder()
    dec.decode(_template(0, source_id=1), "192.0.2.1", NOW)
    assert dec.decode(_data(2, 1, source_id=1), "192.0.2.1", NOW).records == 2
    other = dec.decode(_data(2, 1, source_id=2), "192.0.2.1", NOW)
    assert other.records == 0 and other.events == {"held": 1}


# Elements the reference decoders know, with the lengths scapy expects (its SRC_AS/DST_AS
# reader takes 2 bytes only at the end of a record), that lastmile skips.
EXTRA: list[FieldSpec] = [(4, 1), (5, 1), (6, 1), (7, 2), (11, 2), (9, 1), (13, 1), (10, 4), (14, 2), (15, 4),
                          (16, 4), (17, 4), (58, 2), (61, 1), (56, 6)]
COUNTER_LENGTHS = st.sampled_from([1, 2, 4, 8])


@st.composite
def v9_case(draw: Any) -> tuple[list[FieldSpec], list[dict[int, int | str]], int]:
    six = draw(st.booleans())
    core: list[FieldSpec] = [(27, 16), (28, 16)] if six else [(8, 4), (12, 4)]
    octets_len, packets_len = draw(COUNTER_LENGTHS), draw(COUNTER_LENGTHS)
    core += [(1, octets_len), (2, packets_len), (22, 4), (21, 4)]
    fields = draw(st.permutations(core + draw(st.lists(st.sampled_from(EXTRA), max_size=6, unique=True))))
    uptime = draw(st.integers(10_000_000, 2**32 - 1))
    addr = st.integers(0, 2**128 - 1 if six else 2**32 - 1).map(
        lambda a: str(ipaddress.IPv6Address(a) if six else ipaddress.IPv4Address(a)))
    records = draw(st.lists(st.fixed_dictionaries({
        27 if six else 8: addr, 28 if six else 12: addr,
        1: st.integers(0, 2 ** (8 * octets_len) - 1), 2: st.integers(0, 2 ** (8 * packets_len) - 1),
        22: st.integers(uptime - 9_000_000, uptime), 21: st.integers(uptime - 9_000_000, uptime),
    }), min_size=1, max_size=12))
    for r in records:
        r[22], r[21] = sorted((r[22], r[21]))
    return list(fields), records, uptime


@settings(max_examples=60, deadline=None)
@given(case=v9_case())
def test_differential_random_templates(case: tuple[list[FieldSpec], list[dict[int, int | str]], int]) -> None:
    """Random field order, reduced-size counters and skipped fields: lastmile, scapy and
    ``netflow`` read the same addresses, counters and times."""
    fields, records, uptime = case
    tpl = v9([template_set(9, [(300, fields)])], uptime=uptime, secs=NOW, seq=0)
    data = v9([data_set(300, [record(fields, r) for r in records])], uptime=uptime, secs=NOW, seq=1)
    dec = Decoder()
    dec.decode(tpl, "192.0.2.1", NOW)
    ours = [(f.src, f.dst, f.octets, f.packets, f.start_ms, f.end_ms)
            for b in dec.decode(data, "192.0.2.1", NOW).batches for f in b.flows()]
    assert ours == via_scapy([tpl, data]) == via_netflow([tpl, data])
    assert len(ours) == len(records)


@settings(max_examples=25, deadline=None)
@given(octets=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20))
def test_scapy_built_datagrams(octets: list[int]) -> None:
    """Template and data built with scapy's own layers."""
    fields = [(8, 4), (12, 4), (1, 4), (2, 4), (22, 4), (21, 4)]
    tpl = bytes(NetflowHeader() / NetflowHeaderV9(sysUptime=UP, unixSecs=NOW, packageSequence=0) / NetflowFlowsetV9(
        templates=[NetflowTemplateV9(templateID=256, template_fields=[
            NetflowTemplateFieldV9(fieldType=t, fieldLength=n) for t, n in fields])]))
    recs = [NetflowRecordV9(fieldValue=record(fields, {8: "10.0.0.1", 12: "10.0.0.2", 1: o, 2: 1,
                                                      22: UP - 5000, 21: UP - 10}))
            for o in octets]
    data = bytes(NetflowHeader() / NetflowHeaderV9(sysUptime=UP, unixSecs=NOW, packageSequence=1)
                 / NetflowDataflowsetV9(templateID=256, records=recs))
    dec = Decoder()
    dec.decode(tpl, "192.0.2.1", NOW)
    result = dec.decode(data, "192.0.2.1", NOW)
    assert [f.octets for b in result.batches for f in b.flows()] == octets
    assert flows([{"batches": [{"flows": [list(f) for f in b.flows()]} for b in result.batches]}]) == via_scapy(
        [tpl, data])


def test_mikrotik_template_compiles_to_fast_path() -> None:
    dec = Decoder()
    dec.decode(v9([template_set(9, [(256, MIKROTIK_V4)])], uptime=UP, secs=NOW), "192.0.2.1", NOW)
    slot = dec._domains[("192.0.2.1", 9, 0)].templates[256]
    assert slot.template.reclen == 57
    assert slot.template.plan is not None and slot.template.plan.unpack is not None
    # src, dst, [ports, proto], octets, packets, first, last, [ifindexes … masks], post-NAT src, dst, [ports]
    assert slot.template.plan.unpack.format == "!II5xIIII16xII4x"
