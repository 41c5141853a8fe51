"""What an exporter sent while the collector was stopped (issue 8): the sequence numbers are
kept with the templates, and the first datagram after a restart counts the gap as
``lost_restart``, not as network loss and not at all when the exporter restarted too."""

from __future__ import annotations

import json

import pytest

from flowcollector.codec import CodecError, Decoder
from tests.unit.flow.flowbuild import NFGEN_IPFIX, NFGEN_V9, data_set, ipfix, record, template_set, v5, v9

NOW = 1_790_000_000
EXPORTER = "192.0.2.1"
UP = 86_400_000


def _v9_rec(j: int) -> bytes:
    return record(NFGEN_V9, {8: f"10.0.0.{j % 250}", 12: "192.0.2.99", 1: 100, 2: 1, 22: UP - 2000, 21: UP - 1000})


def _v9(seq: int, at: float, n: int = 29, *, uptime_at: float | None = None, template: bool = False) -> bytes:
    uptime = UP + int(((uptime_at if uptime_at is not None else at) - NOW) * 1000)
    sets = [template_set(9, [(256, NFGEN_V9)])] if template else []
    return v9([*sets, data_set(256, [_v9_rec(j) for j in range(n)])], uptime=uptime, secs=int(at), seq=seq)


def _run_v9(dec: Decoder, first_seq: int, count: int, start: float, per_s: int) -> tuple[int, int]:
    """Send ``count`` datagrams at ``per_s`` a second; return (records decoded, records lost)."""
    records = lost = 0
    for k in range(count):
        at = start + k / per_s
        result = dec.decode(_v9(first_seq + k, at, template=k == 0 and first_seq == 0), EXPORTER, at)
        records += result.records
        lost += result.lost + result.lost_restart
    return records, lost


def _restart(dec: Decoder, at: float) -> Decoder:
    fresh = Decoder()
    fresh.load_state(dec.dump_state(), at)
    return fresh


def test_v9_gap_while_stopped_counts_datagrams_times_records() -> None:
    """The issue's case: v9 at ~10,000 records/s (29 a datagram, 345 datagrams/s), SIGTERM at
    12 s, 768 datagrams sent during the gap: 22,272 records lost, told apart from network loss."""
    dec = Decoder()
    records, lost = _run_v9(dec, 0, 12 * 345, NOW, 345)
    assert (records, lost) == (12 * 345 * 29, 0)
    stop = NOW + 12 * 345 / 345
    fresh = _restart(dec, stop + 3)
    first = fresh.decode(_v9(12 * 345 + 768, stop + 768 / 345), EXPORTER, stop + 768 / 345)
    assert (first.lost_restart, first.lost, first.records) == (768 * 29, 0, 29)
    assert "exporter_restart" not in first.events
    # No gap afterwards, and nothing of the restart counted again as network loss later.
    _, later = _run_v9(fresh, 12 * 345 + 769, 100, stop + 769 / 345, 345)
    assert later == 0


def test_ipfix_counts_records_and_v5_counts_flows() -> None:
    dec = Decoder()
    rec = record(NFGEN_IPFIX, {8: "10.0.0.1", 12: "10.0.0.2", 1: 1, 2: 1, 152: NOW * 1000 - 2, 153: NOW * 1000 - 1})
    dec.decode(ipfix([template_set(10, [(256, NFGEN_IPFIX)]), data_set(256, [rec] * 10)], export=NOW, seq=0),
               EXPORTER, NOW)
    flow = {"src": "10.0.0.1", "dst": "10.0.0.2", "packets": 1, "octets": 1, "first": UP - 10, "last": UP - 1}
    dec.decode(v5([flow] * 5, uptime=UP, secs=NOW, seq=100), EXPORTER, NOW)
    fresh = _restart(dec, NOW + 5)
    after_ipfix = fresh.decode(ipfix([data_set(256, [rec] * 10)], export=NOW + 6, seq=10 + 70), EXPORTER, NOW + 6)
    after_v5 = fresh.decode(v5([flow] * 5, uptime=UP + 6000, secs=NOW + 6, seq=105 + 40), EXPORTER, NOW + 6)
    assert (after_ipfix.lost_restart, after_ipfix.records) == (70, 10)
    assert after_v5.lost_restart == 40 and after_v5.lost == 0


def test_no_gap_no_loss() -> None:
    dec = Decoder()
    _run_v9(dec, 0, 50, NOW, 50)
    fresh = _restart(dec, NOW + 2)
    assert fresh.decode(_v9(50, NOW + 2), EXPORTER, NOW + 2).lost_restart == 0


@pytest.mark.parametrize("case", ["sequence_reset", "uptime_back", "implausible_gap"])
def test_an_exporter_that_restarted_meanwhile_is_not_a_gap(case: str) -> None:
    """Its sequence started over, its sysUptime went back, or the gap is far more than it
    sends in that time (a new random start): an exporter restart, its templates forgotten."""
    dec = Decoder()
    _run_v9(dec, 0, 345 * 12, NOW, 345)  # seq 0..4139 over 12 s
    at = NOW + 20
    fresh = _restart(dec, at)
    if case == "sequence_reset":
        dg = _v9(3, at, uptime_at=NOW - UP / 1000 + 5)  # booted 5 s ago
    elif case == "uptime_back":
        dg = _v9(4140 + 100, at, uptime_at=at - 3600)  # sequence ahead, but uptime an hour less
    else:
        dg = _v9(4140 + 345 * 8 * 10 * 3, at)  # 30 times what 8 s at 345 datagrams/s would be
    result = fresh.decode(dg, EXPORTER, at)
    assert (result.lost_restart, result.lost) == (0, 0)
    assert result.events.get("exporter_restart") == 1 and not result.batches  # held for fresh templates


def test_a_late_datagram_from_before_the_stop_waits_for_the_next() -> None:
    dec = Decoder()
    _run_v9(dec, 0, 345 * 12, NOW, 345)
    fresh = _restart(dec, NOW + 13)
    late = fresh.decode(_v9(4139 - 3, NOW + 11.9), EXPORTER, NOW + 13)  # reordered across our restart
    assert (late.lost_restart, late.lost, late.events) == (0, 0, {})
    assert fresh.decode(_v9(4140 + 10, NOW + 13), EXPORTER, NOW + 13).lost_restart == 10 * 29


def test_gaps_open_at_the_stop_are_network_loss() -> None:
    dec = Decoder()
    _run_v9(dec, 0, 100, NOW, 100)
    dec.decode(_v9(105, NOW + 1.05), EXPORTER, NOW + 1.05)  # 100..104 missing, within the reorder window
    fresh = _restart(dec, NOW + 2)
    result = fresh.decode(_v9(106, NOW + 2), EXPORTER, NOW + 2)
    assert (result.lost, result.lost_restart) == (5 * 29, 0)


def test_state_of_version_1_still_loads_and_bad_sequences_are_refused() -> None:
    dec = Decoder()
    _run_v9(dec, 0, 10, NOW, 10)
    state = json.loads(dec.dump_state())
    old = {"format": "lastmile-flow-state/1", "domains": [{k: v for k, v in d.items() if k != "seq"}
                                                          for d in state["domains"]]}
    assert Decoder().load_state(json.dumps(old), NOW + 1) == 1
    for bad in ({"next": -1}, {"seen": "x"}, {"rate": float("inf")}, {"per_datagram": 0}):
        broken = json.loads(json.dumps(state))
        broken["domains"][0]["seq"].update(bad)
        with pytest.raises(CodecError, match="bad_state"):
            Decoder().load_state(json.dumps(broken), NOW)


def test_a_sequence_saved_too_long_ago_is_not_compared() -> None:
    dec = Decoder()
    _run_v9(dec, 0, 100, NOW, 100)
    later = NOW + 8 * 86_400
    fresh = _restart(dec, later)
    result = fresh.decode(_v9(100 + 5000, later, template=True), EXPORTER, later)  # its templates expired
    assert (result.lost_restart, result.lost, result.records) == (0, 0, 29)
    assert fresh.decode(_v9(100 + 5001, later), EXPORTER, later).lost == 0
