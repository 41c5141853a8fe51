"""IPFIX (RFC 7011): golden vectors, differential decoding, enterprise and variable-length
fields, withdrawals, sequence numbers counting data records."""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowcollector.codec import CodecError, Decoder
from tests.unit.flow.flowbuild import (
    NFGEN_IPFIX,
    FieldSpec,
    data_set,
    ipfix,
    options_template_set,
    record,
    template_set,
)
from tests.unit.flow.references import via_netflow, via_scapy
from tests.unit.flow.vectors import check, flows, load

NOW = 1_790_000_000
MS = NOW * 1000


def test_mikrotik_golden_and_scapy() -> None:
    """RouterOS 7 IPFIX: 22/21 relative to the systemInitTimeMilliseconds in each record.
    (``netflow`` cannot read the 3-byte IPv6 flow label, so only scapy is compared.)"""
    results = check("ipfix_mikrotik")
    _, _, datagrams = load("ipfix_mikrotik")
    assert flows(results) == via_scapy(datagrams)
    assert [b["times"] for r in results for b in r["batches"]] == ["exporter", "exporter"]


def test_mikrotik_without_init_time_is_estimated() -> None:
    results = check("ipfix_mikrotik_noinit")
    _, _, datagrams = load("ipfix_mikrotik_noinit")
    ours = flows(results)
    assert [f[:4] for f in ours] == [f[:4] for f in via_scapy(datagrams)] == [f[:4] for f in via_netflow(datagrams)]
    batch = results[1]["batches"][0]
    assert batch["times"] == "estimated"
    assert max(f[5] for f in batch["flows"]) == MS  # the newest end is taken as the export time
    assert [f[5] - f[4] for f in batch["flows"]] == [4000, 4100, 4200]  # durations are kept


def test_softflowd_options_enterprise_and_variable_length() -> None:
    results = check("ipfix_softflowd")
    assert results[0]["events"] == {"template_added": 2}
    flows_ = results[1]["batches"][0]["flows"]
    init = MS - (86_400_000 | 0x00FF0000)
    assert flows_ == [
        [f"100.64.1.{j + 1}", "192.0.2.200", 1000 * (j + 1), j + 1,
         init + (86_400_000 | 0x00FF0000) - 3000, init + (86_400_000 | 0x00FF0000) - 500, None, None]
        for j in range(3)]


def test_withdrawal_vector() -> None:
    results = check("ipfix_withdrawal")
    assert [r["events"] for r in results] == [
        {"template_added": 1}, {}, {"template_withdrawn": 1}, {"held": 1},
        {"template_added": 1, "released": 1}, {"template_withdrawn": 1}]
    _, _, datagrams = load("ipfix_withdrawal")
    assert flows(results) == via_scapy(datagrams[:2]) * 2


def test_psamp_vector() -> None:
    results = check("ipfix_psamp")
    batch = results[1]["batches"][0]
    assert (batch["rate"], batch["sampling"]) == (100, "exported")
    _, _, datagrams = load("ipfix_psamp")
    raw = [(f[0], f[1], f[2] // 100, f[3] // 100, f[4], f[5]) for f in batch["flows"]]
    assert raw == via_netflow(datagrams)


@pytest.mark.parametrize("cut", range(16))
def test_every_header_truncation_is_refused(cut: int) -> None:
    dg = ipfix([template_set(10, [(256, NFGEN_IPFIX)])], export=NOW)
    with pytest.raises(CodecError) as err:
        Decoder().decode(dg[:cut], "192.0.2.1", NOW)
    assert err.value.reason in {"short_header", "length"}


@pytest.mark.parametrize("delta", [-4, 4])
def test_message_length_must_match(delta: int) -> None:
    dg = ipfix([template_set(10, [(256, NFGEN_IPFIX)])], export=NOW)
    dg = dg[:2] + struct.pack("!H", len(dg) + delta) + dg[4:]
    with pytest.raises(CodecError, match="length"):
        Decoder().decode(dg, "192.0.2.1", NOW)


def test_v9_set_ids_are_reserved_in_ipfix() -> None:
    dg = ipfix([struct.pack("!HH", 0, 8) + bytes(4), struct.pack("!HH", 1, 8) + bytes(4),
                struct.pack("!HH", 255, 4)], export=NOW)
    assert Decoder().decode(dg, "192.0.2.1", NOW).dropped == {"reserved_set": 3}


def _rec(j: int) -> bytes:
    return record(NFGEN_IPFIX, {8: "10.0.0.1", 12: "10.0.0.2", 1: j, 2: 1, 152: MS - 10, 153: MS})


def test_sequence_counts_data_records_including_options() -> None:
    """RFC 7011 §3.1: the sequence counts data records (options data too), not templates."""
    dec = Decoder()
    opt = options_template_set(10, 400, [(149, 4)], [(34, 4)])
    dec.decode(ipfix([template_set(10, [(256, NFGEN_IPFIX)]), opt], export=NOW, seq=0), "192.0.2.1", NOW)
    seq = 0
    lost = 0
    for k in range(60):
        sets = [data_set(256, [_rec(j) for j in range(5)])]
        if k % 7 == 0:
            sets.append(data_set(400, [struct.pack("!II", 0, 1)]))
        if k == 20:
            seq += 13  # 13 records never arrive
        result = dec.decode(ipfix(sets, export=NOW, seq=seq), "192.0.2.1", NOW)
        lost += result.lost
        seq += 5 + (k % 7 == 0)
    assert lost == 13


def test_held_data_resynchronises_the_sequence() -> None:
    """Records of a set without its template cannot be counted: no false loss follows."""
    dec = Decoder()
    total = dec.decode(ipfix([data_set(256, [_rec(1)] * 3)], export=NOW, seq=100), "192.0.2.1", NOW).lost
    total += dec.decode(ipfix([template_set(10, [(256, NFGEN_IPFIX)])], export=NOW, seq=103), "192.0.2.1", NOW).lost
    for k in range(40):
        total += dec.decode(ipfix([data_set(256, [_rec(1)] * 2)], export=NOW, seq=103 + 2 * k), "192.0.2.1", NOW).lost
    assert total == 0


def test_all_options_templates_withdrawal() -> None:
    dec = Decoder()
    opt = options_template_set(10, 400, [(149, 4)], [(34, 4)])
    dec.decode(ipfix([template_set(10, [(256, NFGEN_IPFIX)]), opt], export=NOW), "192.0.2.1", NOW)
    result = dec.decode(ipfix([struct.pack("!HHHH", 3, 8, 3, 0)], export=NOW), "192.0.2.1", NOW)
    assert result.events == {"template_withdrawn": 1}
    assert dec.gauges()["templates"] == 1


# Random templates: the decoded values must be the ones the (independent) builder wrote.
SKIPPED: list[FieldSpec] = [(4, 1), (7, 2), (11, 2), (10, 4), (56, 6), (82, 0xFFFF), (94, 0xFFFF),
                            (100, 4, 29305), (7, 0xFFFF, 9), (300, 8, 2636)]


@st.composite
def ipfix_case(draw: Any) -> tuple[list[FieldSpec], list[dict[int, Any]]]:
    six = draw(st.booleans())
    octets_len = draw(st.sampled_from([1, 2, 3, 4, 5, 8]))  # 3 and 5 need the walker
    core: list[FieldSpec] = [(27, 16), (28, 16)] if six else [(8, 4), (12, 4)]
    times = draw(st.sampled_from([[(152, 8), (153, 8)], [(150, 4), (151, 4)], [(154, 8), (155, 8)], [(153, 8)]]))
    core += [(1, octets_len), (2, 4), *times]
    fields = draw(st.permutations(core + draw(st.lists(st.sampled_from(SKIPPED), max_size=5, unique=True))))
    bits = 128 if six else 32
    records = []
    for _ in range(draw(st.integers(1, 8))):
        end = draw(st.integers(MS - 3_600_000, MS)) // 1000 * 1000
        values: dict[int, Any] = {
            27 if six else 8: draw(st.integers(0, 2**bits - 1)), 28 if six else 12: draw(st.integers(0, 2**bits - 1)),
            1: draw(st.integers(0, 2 ** (8 * octets_len) - 1)), 2: draw(st.integers(0, 2**32 - 1)),
            82: draw(st.binary(max_size=300)), 94: draw(st.binary(max_size=20)),
        }
        start = end - draw(st.integers(0, 600)) * 1000
        values.update({152: start, 153: end, 150: start // 1000, 151: end // 1000,
                       154: (start // 1000 + 2_208_988_800) << 32, 155: (end // 1000 + 2_208_988_800) << 32})
        records.append(values)
    return list(fields), records


@settings(max_examples=80, deadline=None)
@given(case=ipfix_case())
def test_random_templates_round_trip(case: tuple[list[FieldSpec], list[dict[int, Any]]]) -> None:
    fields, records = case
    dec = Decoder()
    dec.decode(ipfix([template_set(10, [(300, fields)])], export=NOW), "192.0.2.1", NOW)
    result = dec.decode(ipfix([data_set(300, [record(fields, r) for r in records])], export=NOW), "192.0.2.1", NOW)
    six = any(f[0] == 27 for f in fields)
    only_end = not any(f[0] in (150, 152, 154) for f in fields)
    address = ipaddress.IPv6Address if six else ipaddress.IPv4Address
    expected = [(str(address(r[27 if six else 8])), str(address(r[28 if six else 12])),
                 r[1], r[2], r[153] if only_end else r[152], r[153]) for r in records]
    got = [tuple(f[:6]) for b in result.batches for f in b.flows()]
    assert got == expected
    assert result.records == len(records) and not result.dropped
