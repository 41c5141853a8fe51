"""Templates: hardening (N-1), scoping, replacement, caps and expiry (N-3), data held for its
template, persistence across restarts, and the compiled fast path against the walker."""

from __future__ import annotations

import json
import struct
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowcollector.codec import CodecError, Decoder, DecoderSettings
from flowcollector.templates import VARLEN, Template, walk_records
from tests.unit.flow.flowbuild import NFGEN_V9, data_set, ipfix, options_template_set, record, template_set, v9
from tests.unit.flow.vectors import check, load

UP = 86_400_000 | 0x00FF0000
NOW = 1_790_000_000
V4 = [(8, 4), (12, 4), (1, 4), (2, 4)]


def _tpl(tid: int = 256, fields: list[Any] | None = None, *, seq: int = 0, source_id: int = 0) -> bytes:
    return v9([template_set(9, [(tid, fields or NFGEN_V9)])], uptime=UP, secs=NOW, seq=seq, source_id=source_id)


def _data(tid: int = 256, n: int = 2, *, fields: list[Any] | None = None, seq: int = 1, source_id: int = 0) -> bytes:
    values = {8: "10.0.0.1", 12: "10.0.0.2", 1: 1000, 2: 1, 22: UP - 100, 21: UP}
    return v9([data_set(tid, [record(fields or NFGEN_V9, values)] * n)], uptime=UP, secs=NOW, seq=seq,
              source_id=source_id)


def test_framing_vector_every_case_raises_codec_error() -> None:
    """N-1: truncations, unknown version, set length 0 / < 4 / past the end, trailing bytes."""
    results = check("hardening_framing")
    assert [r["error"] for r in results] == [
        "short_header", "version", "length", "short_header", "set_length", "set_length", "set_length",
        "set_header", "length"]


def test_template_vector_every_case_is_counted() -> None:
    """N-1: zero-length field, zero fields, field count overflowing the set, record longer than
    any datagram, template id < 256, reserved set id, missing PEN, scope count 0, a counter
    declared variable-length, a variable-length field past the end, an IPv4 address of 16
    bytes: each is counted, none raises, and no bad template is stored."""
    results = check("hardening_templates")
    assert [r["dropped"] for r in results] == [
        {"bad_template": 1}, {"bad_template": 1}, {"bad_template": 1}, {"bad_template": 1},
        {"bad_template": 1}, {"reserved_set": 1}, {"bad_template": 1}, {"bad_template": 1},
        {"bad_template": 1}, {"bad_record": 1}, {"bad_template": 1}]
    exporter, now, datagrams = load("hardening_templates")
    dec = Decoder()
    for dg in datagrams:
        t0 = time.thread_time()  # CPU time: the work done, whatever else runs on the machine
        dec.decode(dg, exporter, now)
        assert time.thread_time() - t0 < 0.001  # N-1: each case handled in <= 1 ms
    assert dec.gauges()["templates"] == 1  # only the valid one with a variable-length field


@pytest.mark.parametrize("fields", [[(8, 0)], [(8, 4), (12, 0)], [(1, 0), (2, 0)]])
def test_zero_size_fields_are_refused_when_stored(fields: list[tuple[int, int]]) -> None:
    """The goflow2 loop: a template whose records take no bytes must never be stored."""
    dec = Decoder()
    result = dec.decode(v9([template_set(9, [(256, fields)]), data_set(256, [bytes(64)])], uptime=UP, secs=NOW),
                        "192.0.2.1", NOW)
    assert result.dropped == {"bad_template": 1} and result.events == {"held": 1}
    assert dec.gauges()["templates"] == 0


def test_ipfix_withdrawal_record_is_not_a_template() -> None:
    dec = Decoder()
    result = dec.decode(ipfix([template_set(10, [(256, [])]), data_set(256, [bytes(16)])], export=NOW),
                        "192.0.2.1", NOW)
    assert result.events == {"template_withdrawn": 0, "held": 1} and dec.gauges()["templates"] == 0


def test_v9_options_template_checks() -> None:
    dec = Decoder()
    odd = v9([struct.pack("!HHHHH", 1, 12, 300, 3, 4) + bytes(2)], uptime=UP, secs=NOW)  # scope length 3
    assert dec.decode(odd, "192.0.2.1", NOW).dropped == {"bad_template": 1}
    scope_only = v9([options_template_set(9, 301, [(1, 4)], [])], uptime=UP, secs=NOW)
    assert dec.decode(scope_only, "192.0.2.1", NOW).events == {"template_added": 1}


def test_template_of_another_exporter_or_domain_is_never_used() -> None:
    """N-3: templates are scoped by (exporter, version, source id / observation domain)."""
    dec = Decoder()
    dec.decode(_tpl(source_id=1), "192.0.2.1", NOW)
    assert dec.decode(_data(source_id=1), "192.0.2.1", NOW).records == 2
    assert dec.decode(_data(source_id=1), "192.0.2.2", NOW).records == 0  # another exporter
    assert dec.decode(_data(source_id=2), "192.0.2.1", NOW).records == 0  # another domain
    ipfix_data = ipfix([data_set(256, [bytes(47)])], export=NOW, domain=1)
    assert dec.decode(ipfix_data, "192.0.2.1", NOW).records == 0  # another version


def test_same_id_new_layout_replaces_the_old_one() -> None:
    dec = Decoder()
    dec.decode(_tpl(fields=NFGEN_V9), "192.0.2.1", NOW)
    refreshed = dec.decode(_tpl(fields=NFGEN_V9, seq=1), "192.0.2.1", NOW)
    assert refreshed.events == {}
    changed = dec.decode(_tpl(fields=V4, seq=2), "192.0.2.1", NOW)
    assert changed.events == {"template_changed": 1}
    result = dec.decode(_data(fields=V4, n=3, seq=3), "192.0.2.1", NOW)
    assert [f.octets for f in result.batches[0].flows()] == [1000] * 3


def test_template_flood_is_capped_per_domain_and_in_all() -> None:
    """N-3: 100k distinct template IDs from one exporter keep memory bounded."""
    dec = Decoder(DecoderSettings(max_templates_per_domain=1000, max_templates=1500))
    evicted = 0
    for base in range(256, 65536, 100):
        sets = [template_set(9, [(tid, V4) for tid in range(base, min(base + 100, 65536))])]
        evicted += dec.decode(v9(sets, uptime=UP, secs=NOW, seq=base), "192.0.2.1", NOW).events.get(
            "template_evicted", 0)
    assert dec.gauges()["templates"] == 1000 and evicted == 65280 - 1000
    for base in range(256, 1256, 100):  # a second domain: the total cap evicts the oldest
        sets = [template_set(9, [(tid, V4) for tid in range(base, base + 100)])]
        dec.decode(v9(sets, uptime=UP, secs=NOW, source_id=9), "192.0.2.1", NOW)
    assert dec.gauges()["templates"] == 1500
    assert len(dec._domains[("192.0.2.1", 9, 9)].templates) == 1000


def test_domains_are_capped() -> None:
    dec = Decoder(DecoderSettings(max_domains=10))
    for source_id in range(50):
        dec.decode(_tpl(source_id=source_id), "192.0.2.1", NOW)
    assert dec.gauges() == {"domains": 10, "templates": 10, "held_sets": 0}


def test_templates_expire() -> None:
    dec = Decoder(DecoderSettings(template_timeout=1800, max_clock_skew=3600))
    dec.decode(_tpl(), "192.0.2.1", NOW)
    dec.decode(_tpl(257, V4), "192.0.2.1", NOW + 1000)
    assert dec.decode(_data(), "192.0.2.1", NOW + 1799).records == 2
    late = dec.decode(_data(seq=2), "192.0.2.1", NOW + 1801)  # lazily, on use
    assert late.records == 0 and late.events == {"template_expired": 1, "held": 1}
    report = dec.expire(NOW + 2801)  # on the timer: the other one, and the held data
    assert report.events == {"template_expired": 1} and report.dropped_held == {"192.0.2.1": 1}
    assert dec.gauges() == {"domains": 1, "templates": 0, "held_sets": 0}


def test_held_data_is_bounded_in_count_and_age() -> None:
    dec = Decoder(DecoderSettings(hold_max_sets=5, hold_seconds=10))
    dropped = 0
    for k in range(12):
        result = dec.decode(_data(seq=k), "192.0.2.1", NOW)
        dropped += result.dropped_held.get("192.0.2.1", 0)
    assert dropped == 7 and dec.gauges()["held_sets"] == 5
    result = dec.decode(_tpl(seq=12), "192.0.2.1", NOW + 5)
    assert result.events == {"template_added": 1, "released": 5} and result.records == 10
    for k in range(3):
        dec.decode(_data(258, seq=13 + k), "192.0.2.1", NOW + 5)
    aged = dec.decode(_data(seq=16), "192.0.2.1", NOW + 16)  # expiry runs before decoding
    assert aged.dropped_held == {"192.0.2.1": 3} and aged.records == 2


def test_held_data_of_another_exporter_is_charged_to_it() -> None:
    """The hold queue is shared: a set pushed out or expired by another exporter's datagram
    is that first exporter's drop, and a forgotten domain's held data is dropped too."""
    dec = Decoder(DecoderSettings(hold_max_sets=1, hold_seconds=10, max_domains=2))
    dec.decode(_data(), "192.0.2.1", NOW)
    pushed = dec.decode(_data(), "192.0.2.2", NOW)
    assert pushed.dropped_held == {"192.0.2.1": 1} and pushed.dropped == {}
    assert dec.decode(_tpl(source_id=7), "192.0.2.3", NOW).dropped_held == {}
    evicted = dec.decode(_tpl(source_id=8), "192.0.2.3", NOW)  # 192.0.2.2's domain is forgotten
    assert evicted.dropped_held == {"192.0.2.2": 1} and dec.gauges()["held_sets"] == 0


def test_holding_can_be_disabled() -> None:
    dec = Decoder(DecoderSettings(hold_max_sets=0))
    assert dec.decode(_data(), "192.0.2.1", NOW).dropped == {"no_template": 1}


def test_state_survives_a_restart() -> None:
    """Templates, announced sampling and init times are persisted; data decodes right after
    a restart, before the exporter re-sends anything (ipfixcol2#87, goflow2#309)."""
    dec = Decoder()
    opt = options_template_set(9, 300, [(1, 4)], [(34, 4)])
    dec.decode(v9([template_set(9, [(256, NFGEN_V9)]), opt, data_set(300, [struct.pack("!II", 0, 64)])],
                  uptime=UP, secs=NOW), "192.0.2.1", NOW)
    _, now, datagrams = load("ipfix_softflowd")
    dec.decode(datagrams[0], "192.0.2.9", now)
    state = dec.dump_state()

    fresh = Decoder()
    assert fresh.load_state(state, NOW + 60) == 4
    result = fresh.decode(_data(), "192.0.2.1", NOW + 60)
    assert result.records == 2 and result.batches[0].rate == 64
    softflowd = fresh.decode(datagrams[1], "192.0.2.9", now)
    assert softflowd.batches[0].times == "exporter" and softflowd.records == 3

    def without_sequences(text: str) -> list[dict[str, object]]:  # those moved on with the datagrams above
        return [{k: v for k, v in d.items() if k != "seq"} for d in json.loads(text)["domains"]]

    assert without_sequences(fresh.dump_state()) == without_sequences(state)


def test_loading_skips_expired_templates() -> None:
    dec = Decoder()
    dec.decode(_tpl(), "192.0.2.1", NOW)
    assert Decoder().load_state(dec.dump_state(), NOW + 1801) == 0


@pytest.mark.parametrize("state", [
    "", "not json", "[]", '{"format": "other"}', '{"format": "lastmile-flow-state/1"}',
    '{"format": "lastmile-flow-state/1", "domains": [{"exporter": 1}]}',
    '{"format": "lastmile-flow-state/1", "domains": [{"exporter": "a", "version": 9, "domain": 0, "rate": null, '
    '"samplers": [], "init_ms": null, "templates": [{"id": 256, "options": false, "scope": 0, '
    '"fields": [[8, 0, 0]], "seen": 1}]}]}',
    '{"format": "lastmile-flow-state/1", "domains": [{"exporter": "a", "version": 9, "domain": 0, "rate": 0, '
    '"samplers": [], "init_ms": null, "templates": []}]}',
    '{"format": "lastmile-flow-state/1", "domains": [{"exporter": "a", "version": 9, "domain": true, "rate": null, '
    '"samplers": [], "init_ms": null, "templates": []}]}',
    b"\xff\xfe",
])
def test_bad_state_is_refused_and_changes_nothing(state: str | bytes) -> None:
    dec = Decoder()
    dec.decode(_tpl(), "192.0.2.1", NOW)
    before = dec.dump_state()
    with pytest.raises(CodecError, match="bad_state"):
        dec.load_state(state, NOW)
    assert dec.dump_state() == before


FIXED_LENGTHS = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 16])


@st.composite
def template_and_data(draw: Any) -> tuple[list[tuple[int, int, int]], bytes]:
    extra = draw(st.lists(st.tuples(st.sampled_from([4, 5, 6, 7, 10, 11, 56, 94, 300]), FIXED_LENGTHS,
                                    st.sampled_from([0, 0, 9])), max_size=6))
    core = [(8, 4, 0), (12, 4, 0), (1, draw(st.sampled_from([1, 2, 4, 8])), 0), (152, 8, 0), (153, 8, 0)]
    fields = draw(st.permutations(core + extra))
    reclen = sum(length for _, length, _ in fields)
    data = draw(st.binary(min_size=reclen * draw(st.integers(0, 5)), max_size=reclen * 5 + reclen - 1))
    return list(fields), data


@settings(max_examples=150, deadline=None)
@given(case=template_and_data())
def test_fast_path_equals_walker(case: tuple[list[tuple[int, int, int]], bytes]) -> None:
    """The compiled struct and the field walker read the same kept values, for any bytes."""
    fields, data = case
    t = Template.build(300, tuple(fields), 0, False, 10)
    assert t.plan is not None and t.plan.unpack is not None
    n = len(data) // t.reclen
    fast = [t.plan.getter(k) for k in t.plan.unpack.iter_unpack(data[:n * t.reclen])]
    slow = walk_records(t.plan.walk, t.minlen, data)
    assert slow is not None and [t.plan.getter(k) for k in slow] == fast


def test_variable_length_walker_rejects_overruns() -> None:
    walk = ((4, 1), (VARLEN, 0))
    assert walk_records(walk, 5, bytes(4) + b"\x03abc" + bytes(4) + b"\xff\x00\x02xy") == [(0,), (0,)]
    assert walk_records(walk, 5, bytes(4) + b"\x05abc") is None
    assert walk_records(walk, 5, bytes(4) + b"\xff\x00") is None


def test_expire_keeps_fresh_templates() -> None:
    dec = Decoder(DecoderSettings(template_timeout=100))
    dec.decode(_tpl(256), "192.0.2.1", NOW)
    dec.decode(_tpl(257, V4, seq=1), "192.0.2.1", NOW + 50)
    assert dec.expire(NOW + 120).events == {"template_expired": 1}
    assert dec.gauges()["templates"] == 1


def test_dump_skips_domains_without_state() -> None:
    """A v5 domain has no templates: only its sequence is kept; a domain that never sent a
    datagram with a usable sequence (here: forgotten after its exporter restarted) nothing."""
    dec = Decoder()
    rec = {"src": "10.0.0.1", "dst": "10.0.0.2", "packets": 1, "octets": 1, "first": 0, "last": 0}
    from tests.unit.flow.flowbuild import v5

    dec.decode(v5([rec], uptime=UP, secs=NOW, seq=41), "192.0.2.1", NOW)
    (domain,) = json.loads(dec.dump_state())["domains"]
    assert (domain["version"], domain["templates"], domain["seq"]["next"]) == (5, [], 42)
    assert json.loads(Decoder().dump_state())["domains"] == []


def test_zero_padding_after_templates_is_not_a_template() -> None:
    body = struct.pack("!HH", 256, 4) + b"".join(struct.pack("!HH", ie, n) for ie, n in V4) + bytes(8)
    dg = v9([struct.pack("!HH", 0, 4 + len(body)) + body], uptime=UP, secs=NOW)
    result = Decoder().decode(dg, "192.0.2.1", NOW)
    assert result.events == {"template_added": 1} and result.dropped == {}


def test_truncated_ipfix_options_template_header() -> None:
    dg = ipfix([struct.pack("!HHHH", 3, 9, 300, 1) + b"\x01"], export=NOW)
    assert Decoder().decode(dg, "192.0.2.1", NOW).dropped == {"bad_template": 1}


def test_options_records_overrunning_their_set() -> None:
    dec = Decoder()
    opt = options_template_set(10, 300, [(149, 4)], [(34, 4), (82, 0xFFFF)])
    result = dec.decode(ipfix([opt, data_set(300, [bytes(8) + b"\x09abc"], pad=False)], export=NOW), "a", NOW)
    assert result.dropped == {"bad_record": 1}


def test_templates_without_flow_fields_are_skipped_and_counted() -> None:
    """Data of a template with no octets (or no addresses) is counted as not_flow, and its
    records still count for the IPFIX sequence (fixed and variable length)."""
    dec = Decoder()
    fixed = [(8, 4), (12, 4)]
    var = [(8, 4), (82, 0xFFFF)]
    dec.decode(ipfix([template_set(10, [(256, fixed), (257, var)])], export=NOW), "a", NOW)
    total = 0
    for k in range(40):
        sets = [data_set(256, [bytes(8)] * 2), data_set(257, [bytes(4) + b"\x02ab"] * 3)]
        result = dec.decode(ipfix(sets, export=NOW, seq=5 * k), "a", NOW)
        assert result.dropped == {"not_flow": 2} and not result.batches
        total += result.lost
    assert total == 0
    bad = dec.decode(ipfix([data_set(257, [bytes(4) + b"\x09"])], export=NOW, seq=200), "a", NOW)
    assert bad.dropped == {"not_flow": 1}


def test_bad_state_template_options_flag() -> None:
    dec = Decoder()
    dec.decode(_tpl(), "192.0.2.1", NOW)
    state = json.loads(dec.dump_state())
    state["domains"][0]["templates"][0]["options"] = 1
    with pytest.raises(CodecError, match="bad_state"):
        Decoder().load_state(json.dumps(state), NOW)


def test_walker_needs_the_length_octet() -> None:
    assert walk_records(((VARLEN, 0), (VARLEN, 0)), 2, b"\x01a") is None  # no room for the second
