"""NetFlow v5: golden vectors, differential decoding, header checks, flow_sequence loss."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.netflow import NetflowHeader, NetflowHeaderV5, NetflowRecordV5

from flowcollector.codec import CodecError, Decoder
from tests.unit.flow.flowbuild import v5
from tests.unit.flow.references import via_netflow, via_scapy
from tests.unit.flow.vectors import check, flows, load, run

UP = 86_400_000
NOW = 1_790_000_000


def raw(results: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Our flows with renormalisation undone, to compare with decoders that do not apply it."""
    return [(f[0], f[1], f[2] // b["rate"], f[3] // b["rate"], f[4], f[5])
            for r in results for b in r["batches"] for f in b["flows"]]


@pytest.mark.parametrize("name", ["v5_basic", "v5_sampled"])
def test_golden_and_differential(name: str) -> None:
    results = check(name)
    _, _, datagrams = load(name)
    assert raw(results) == via_netflow(datagrams) == via_scapy(datagrams)


def test_basic_vector_content() -> None:
    first, second = run("v5_basic")
    assert first["records"] == 3 and second["records"] == 2
    src, dst, octets, packets, start, end, nat_src, nat_dst = first["batches"][0]["flows"][0]
    assert (src, dst, octets, packets) == ("198.51.100.7", "100.64.0.1", 14000, 10)
    # unix_secs + unix_nsecs - (sysUptime - First/Last)
    assert (start, end) == (1_790_000_000_250 - 9000, 1_790_000_000_250 - 1000)
    assert nat_src is None and nat_dst is None
    assert first["batches"][0]["sampling"] == "unknown"


def test_sampling_mode_bits_are_not_the_interval() -> None:
    (result,) = run("v5_sampled")
    batch = result["batches"][0]
    assert (batch["rate"], batch["sampling"]) == (100, "exported")  # 0x4064: mode 1, interval 100


@pytest.mark.parametrize("cut", range(24))
def test_every_header_truncation_is_refused(cut: int) -> None:
    dg = v5([{"src": "10.0.0.1", "dst": "10.0.0.2", "packets": 1, "octets": 1, "first": 0, "last": 0}],
            uptime=UP, secs=NOW)
    with pytest.raises(CodecError) as err:
        Decoder().decode(dg[:cut], "192.0.2.1", NOW)
    assert err.value.reason in {"short_header", "length"}


@pytest.mark.parametrize("delta", [-1, 1, 47])
def test_count_must_match_length(delta: int) -> None:
    rec = {"src": "10.0.0.1", "dst": "10.0.0.2", "packets": 1, "octets": 1, "first": 0, "last": 0}
    dg = v5([rec, rec], uptime=UP, secs=NOW)
    dg = dg + bytes(delta) if delta > 0 else dg[:delta]
    with pytest.raises(CodecError, match="length"):
        Decoder().decode(dg, "192.0.2.1", NOW)


def test_empty_datagram_is_fine() -> None:
    result = Decoder().decode(v5([], uptime=UP, secs=NOW), "192.0.2.1", NOW)
    assert result.batches == [] and result.records == 0


def _rec(i: int) -> dict[str, int | str]:
    return {"src": f"10.0.0.{i}", "dst": "10.1.0.1", "packets": 1, "octets": 100, "first": UP - 10, "last": UP - 5}


def test_flow_sequence_counts_flows() -> None:
    """N-7 for v5: flow_sequence counts flows; a gap becomes loss once the reorder window passed."""
    dec = Decoder()
    recs = [_rec(i) for i in range(30)]
    seq = 0
    lost = 0
    for k in range(40):
        if k == 3:
            seq += 60  # two datagrams of 30 flows lost
        lost += dec.decode(v5(recs, uptime=UP, secs=NOW, seq=seq), "192.0.2.1", NOW).lost
        seq += 30
    assert lost == 60


def test_reordered_datagram_is_not_loss() -> None:
    dec = Decoder()
    recs = [_rec(i) for i in range(10)]
    order = [0, 10, 30, 20, 40, *range(50, 600, 10)]  # 20 arrives late
    lost = sum(dec.decode(v5(recs, uptime=UP, secs=NOW, seq=s), "192.0.2.1", NOW).lost for s in order)
    assert lost == 0


def test_engines_are_separate_streams() -> None:
    dec = Decoder()
    recs = [_rec(1)]
    total = 0
    for k in range(50):
        for engine in ((0, 1), (0, 2)):
            total += dec.decode(v5(recs, uptime=UP, secs=NOW, seq=k, engine=engine), "192.0.2.1", NOW).lost
    assert total == 0
    assert dec.decode(v5(recs, uptime=UP, secs=NOW, seq=50, engine=(0, 1)), "192.0.2.1", NOW).domain == 1


v5_records = st.lists(st.fixed_dictionaries({
    "src": st.integers(0, 2**32 - 1), "dst": st.integers(0, 2**32 - 1), "dpkts": st.integers(0, 2**32 - 1),
    "dOctets": st.integers(0, 2**32 - 1), "age": st.integers(0, 3_000_000), "dur": st.integers(0, 1_800_000),
}), max_size=30)


@settings(max_examples=40, deadline=None)
@given(records=v5_records, uptime=st.integers(5_000_000, 2**32 - 1), nsecs=st.integers(0, 999_999_999))  # > age + dur
def test_differential_scapy_built(records: list[dict[str, int]], uptime: int, nsecs: int) -> None:
    """Datagrams built by scapy decode to the same flows in lastmile, scapy and ``netflow``."""
    pkt = NetflowHeader() / NetflowHeaderV5(count=len(records), sysUptime=uptime, unixSecs=NOW,
                                            unixNanoSeconds=nsecs)
    for r in records:
        pkt = pkt / NetflowRecordV5(src=r["src"], dst=r["dst"], dpkts=r["dpkts"], dOctets=r["dOctets"],
                                    first=uptime - r["age"] - r["dur"], last=uptime - r["age"])
    dg = bytes(pkt)
    result = Decoder().decode(dg, "192.0.2.1", NOW + 1)
    ours = [(f.src, f.dst, f.octets, f.packets, f.start_ms, f.end_ms) for b in result.batches for f in b.flows()]
    assert ours == via_scapy([dg]) == via_netflow([dg])
    assert struct.unpack_from("!H", dg, 2)[0] == result.records


def test_flows_helper_matches_vector_file() -> None:
    assert len(flows(run("v5_basic"))) == 5


def test_exporter_restart_is_not_loss() -> None:
    dec = Decoder()
    recs = [_rec(i) for i in range(30)]
    for k in range(10):
        dec.decode(v5(recs, uptime=UP, secs=NOW, seq=10_000 + 30 * k), "192.0.2.1", NOW)
    dec.decode(v5(recs, uptime=UP, secs=NOW, seq=10_400), "192.0.2.1", NOW)  # 90 flows missing so far
    result = dec.decode(v5(recs, uptime=UP, secs=NOW, seq=0), "192.0.2.1", NOW)
    assert result.events == {"exporter_restart": 1}
    assert result.lost == 100  # the gap before the reboot is declared; the reset itself is not loss
