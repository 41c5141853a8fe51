"""Attribution (ServiceMap) and aggregation (Aggregator): longest prefix, sessions by time,
direction, post-NAT fallback, spreading over buckets, unknown traffic, exact sums."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowcollector.addressmap import OwnPrefixes, ServiceMap
from flowcollector.aggregate import OTHER4, OTHER6, Aggregator
from flowcollector.codec import Decoder
from tests.unit.flow.flowbuild import FieldSpec, data_set, ipfix, record, template_set

NOW = 1_790_000_020  # 40 s into a minute
MS = NOW * 1000
MINUTE = NOW // 60 * 60
V4: list[FieldSpec] = [(8, 4), (12, 4), (1, 8), (2, 8), (152, 8), (153, 8), (225, 4), (226, 4)]
V6: list[FieldSpec] = [(27, 16), (28, 16), (1, 8), (2, 8), (152, 8), (153, 8)]


def _batches(flows: list[dict[int, Any]], *, six: bool = False, rate: int = 1,
             exporter: str = "192.0.2.1") -> list[Any]:
    """Decode IPFIX flows ({element: value}) into batches."""
    fields = V6 if six else V4
    dec = Decoder()
    if rate != 1:
        dec.set_sampling(exporter, rate)
    dec.decode(ipfix([template_set(10, [(256, fields)])], export=NOW), exporter, NOW)
    out = []
    for i in range(0, len(flows), 20):
        dg = ipfix([data_set(256, [record(fields, f) for f in flows[i:i + 20]])], export=NOW, seq=i)
        out += dec.decode(dg, exporter, NOW).batches
    return out


def fold(smap: ServiceMap, flows: list[dict[int, Any]], *, six: bool = False, rate: int = 1,
         exporter: str = "192.0.2.1", keep: bool = False, **kwargs: Any) -> Any:
    """Decode IPFIX flows ({element: value}) and aggregate them; return the drained usage
    (and the aggregator, with ``keep``)."""
    agg = Aggregator(smap, **kwargs)
    for batch in _batches(flows, six=six, rate=rate, exporter=exporter):
        agg.add(batch)
    return (agg.drain(), agg) if keep else agg.drain()


def flow(src: str, dst: str, octets: int = 1000, packets: int = 10, start: int = MS - 5000, end: int = MS - 1000,
         nat: tuple[str, str] | None = None) -> dict[int, Any]:
    key = 27 if ":" in src else 8
    values = {key: src, key + 4 if key == 8 else 28: dst, 1: octets, 2: packets, 152: start, 153: end}
    if nat:
        values[225], values[226] = nat
    return values


def test_longest_static_prefix_wins() -> None:
    smap = ServiceMap()
    smap.replace_static([("10.0.0.0/8", 1), ("10.1.0.0/16", 2), ("10.1.2.0/24", 3), ("10.1.2.4/30", 4)])
    assert [smap.lookup(a, NOW) for a in ("10.9.9.9", "10.1.9.9", "10.1.2.9", "10.1.2.6", "11.0.0.1")] == [
        1, 2, 3, 4, None]


def test_sessions_before_static_prefixes() -> None:
    smap = ServiceMap()
    smap.replace_static([("100.64.0.0/10", 9)])
    smap.add_session("100.64.0.5", 42, NOW - 3600)
    smap.add_session("192.0.2.8/29", 43, NOW - 3600)  # a Framed-Route
    assert smap.lookup("100.64.0.5", NOW) == 42
    assert smap.lookup("100.64.0.6", NOW) == 9
    assert smap.lookup("192.0.2.13", NOW) == 43
    assert smap.lookup("100.64.0.5", NOW - 7200) == 9  # before the session: the static owner


def test_address_reused_by_another_subscriber_attributes_by_flow_time() -> None:
    smap = ServiceMap()
    smap.add_session("100.64.0.5", 1, NOW - 3600)
    assert smap.end_session("100.64.0.5", NOW - 1800)
    smap.add_session("100.64.0.5", 2, NOW - 1200)
    assert [smap.lookup("100.64.0.5", t) for t in (NOW - 3601, NOW - 3000, NOW - 1500, NOW - 600)] == [
        None, 1, None, 2]
    usage = fold(smap, [flow("198.51.100.1", "100.64.0.5", start=MS - 3_000_000, end=MS - 2_990_000),
                        flow("198.51.100.1", "100.64.0.5", start=MS - 10_000, end=MS - 5_000)])
    assert {k[0] for k in usage.services()} == {1, 2}


def test_a_new_session_ends_the_previous_one() -> None:
    """A missed Stop: the next Start on the address closes the earlier session there."""
    smap = ServiceMap()
    smap.add_session("100.64.0.5", 1, NOW - 3600)
    smap.add_session("100.64.0.5", 2, NOW - 60)
    assert (smap.lookup("100.64.0.5", NOW - 61), smap.lookup("100.64.0.5", NOW)) == (1, 2)
    smap.add_session("100.64.0.5", 3, NOW - 60)  # same start again: replaced, not duplicated
    assert smap.lookup("100.64.0.5", NOW) == 3
    assert not smap.end_session("100.64.0.6", NOW)


def test_prune_forgets_ended_sessions() -> None:
    smap = ServiceMap()
    for i in range(10):
        smap.add_session(f"100.64.0.{i}", i, NOW - 3600, NOW - 1800 if i % 2 else None)
    smap.add_session("2001:db8:1:100::/56", 99, NOW - 3600, NOW - 1800)
    assert smap.prune(NOW - 600) == 6
    assert smap.lookup("100.64.0.1", NOW - 2000) is None and smap.lookup("100.64.0.2", NOW) == 2


def test_ipv6_prefixes_and_sessions() -> None:
    smap = ServiceMap()
    smap.replace_static([("2001:db8::/32", 1), ("2001:db8:aaaa::/48", 2)])
    smap.add_session("2001:db8:1:100::/56", 3, NOW - 60)   # Delegated-IPv6-Prefix
    smap.add_session("2001:db8:1:200::/64", 4, NOW - 60)   # Framed-IPv6-Prefix
    smap.add_session("2001:db8:1:200::99", 5, NOW - 60)    # a /128
    got = [smap.lookup(a, NOW) for a in ("2001:db8:1:1ff::1", "2001:db8:1:200::1", "2001:db8:1:200::99",
                                         "2001:db8:aaaa:1::1", "2001:db8:ffff::1", "2001:db9::1")]
    assert got == [3, 4, 5, 2, 1, None]


def test_host_bits_are_an_error() -> None:
    with pytest.raises(ValueError, match="host bits"):
        ServiceMap().replace_static([("10.0.0.1/8", 1)])


def test_direction_from_the_subscriber_side() -> None:
    smap = ServiceMap()
    smap.add_session("100.64.0.1", 1, NOW - 60)
    smap.add_session("100.64.0.2", 2, NOW - 60)
    usage = fold(smap, [flow("198.51.100.1", "100.64.0.1", 1000, 1),   # download for 1
                        flow("100.64.0.1", "198.51.100.1", 300, 3),    # upload for 1
                        flow("100.64.0.2", "100.64.0.1", 50, 5)])      # on-net: the destination's download
    assert usage.services() == {(1, MINUTE): [1050, 300, 6, 3]}
    assert list(usage.rows()) == [(1, MINUTE, 1050, 300, 6, 3)]


def test_static_destination_beats_a_session_source() -> None:
    smap = ServiceMap()
    smap.replace_static([("192.0.2.0/24", 7)])
    smap.add_session("100.64.0.1", 1, NOW - 60)
    usage = fold(smap, [flow("100.64.0.1", "192.0.2.9", 10, 1)])
    assert usage.services() == {(7, MINUTE): [10, 0, 1, 0]}


def test_post_nat_addresses_are_tried_last() -> None:
    """MikroTik 225/226: a CGNAT subscriber may only appear in the post-NAT fields."""
    smap = ServiceMap()
    smap.add_session("100.64.0.9", 1, NOW - 60)
    usage = fold(smap, [flow("203.0.113.77", "198.51.100.1", 500, 5, nat=("100.64.0.9", "198.51.100.1")),
                        flow("198.51.100.1", "203.0.113.77", 900, 9, nat=("198.51.100.1", "100.64.0.9"))])
    assert usage.services() == {(1, MINUTE): [900, 500, 9, 5]}


def test_unknown_traffic_per_exporter_and_minute() -> None:
    usage = fold(ServiceMap(), [flow("198.51.100.1", "198.51.100.2", 700, 7)], exporter="10.9.9.9")
    assert usage.unknown == {("10.9.9.9", MINUTE, None): [700, 7]} and usage.services() == {}
    usage6 = fold(ServiceMap(), [flow("2001:db8::1", "2001:db8::2", 70, 1)], six=True)
    assert usage6.unknown == {("192.0.2.1", MINUTE, None): [70, 1]}


def test_unknown_traffic_of_own_addresses_is_per_address() -> None:
    """Issue 8: nobody could see which address passes traffic without a service.  The
    subscriber side (destination, source, post-NAT) in the own prefixes is kept; the rest
    stays per exporter."""
    smap = ServiceMap()
    smap.add_session("100.64.0.1", 1, NOW - 60)
    own = OwnPrefixes(["100.64.0.0/24", "2001:db8:1::/48", "192.0.2.7/32"])
    usage = fold(smap, [flow("198.51.100.1", "100.64.0.9", 100, 1),          # download of .9
                        flow("100.64.0.9", "198.51.100.1", 10, 1),           # its upload
                        flow("100.64.0.1", "100.64.0.9", 5, 1),              # on-net: .9's download, attributed to 1
                        flow("198.51.100.1", "203.0.113.5", 70, 1,           # post-NAT destination .8
                             nat=("198.51.100.1", "100.64.0.8")),
                        flow("198.51.100.1", "198.51.100.2", 3, 1)],         # not ours
                 own=own)
    assert usage.unknown == {("192.0.2.1", MINUTE, "100.64.0.9"): [110, 2],
                             ("192.0.2.1", MINUTE, "100.64.0.8"): [70, 1],
                             ("192.0.2.1", MINUTE, None): [3, 1]}
    six = fold(ServiceMap(), [flow("2001:db8:ffff::1", "2001:db8:1:5::9", 40, 1)], six=True, own=own)
    assert six.unknown == {("192.0.2.1", MINUTE, "2001:db8:1:5::9"): [40, 1]}
    assert own.count == 3 and own.owns4(int(ipaddress.ip_address("192.0.2.7")))
    assert not own.owns4(int(ipaddress.ip_address("192.0.2.8"))) and not OwnPrefixes()


def test_unknown_addresses_are_bounded_and_the_rest_folded_and_counted() -> None:
    own = OwnPrefixes(["100.64.0.0/16", "2001:db8::/32"])
    agg_flows = [flow("198.51.100.1", f"100.64.1.{i}", 10, 1) for i in range(10)]
    usage, agg = fold(ServiceMap(), agg_flows, own=own, max_unknown_addresses=4, keep=True)
    addresses = {k[2]: c for k, c in usage.unknown.items()}
    assert len(addresses) == 5 and addresses[OTHER4] == [60, 6]
    assert sum(c[0] for c in addresses.values()) == 100 and agg.unknown_overflow == 6
    # Bounded per drain: the next interval starts afresh.
    for batch in _batches(agg_flows[:2]):
        agg.add(batch)
    assert {k[2] for k in agg.drain().unknown} == {"100.64.1.0", "100.64.1.1"}
    six, agg6 = fold(ServiceMap(), [flow("2001:db9::1", f"2001:db8::{i}", 1, 1) for i in range(3)], six=True,
                     own=own, max_unknown_addresses=1, keep=True)
    assert {k[2] for k in six.unknown} == {"2001:db8::", OTHER6} and agg6.unknown_overflow == 2


def test_long_flow_is_spread_in_proportion_exactly() -> None:
    """A 30-minute MikroTik active-timeout record is spread over the minutes it spans
    (akvorado #521's spikes); the parts add up to the record."""
    smap = ServiceMap()
    smap.add_session("100.64.0.1", 1, NOW - 7200)
    start = MINUTE * 1000 - 30 * 60_000 + 20_000  # 29:40 before the current minute
    usage = fold(smap, [flow("198.51.100.1", "100.64.0.1", 1_000_003, 7, start=start, end=MS - 1)])
    parts = usage.services()
    assert len(parts) == 31
    assert sum(c[0] for c in parts.values()) == 1_000_003 and sum(c[2] for c in parts.values()) == 7
    full = parts[(1, MINUTE - 60 * 20)][0]
    assert abs(full - 1_000_003 * 60_000 / (MS - 1 - start)) <= 1


def test_bucket_width_and_pending_and_drain() -> None:
    smap = ServiceMap()
    smap.add_session("100.64.0.1", 1, NOW - 60)
    dec = Decoder()
    dec.decode(ipfix([template_set(10, [(256, V4)])], export=NOW), "a", NOW)
    agg = Aggregator(smap, bucket_seconds=300)
    for batch in dec.decode(ipfix([data_set(256, [record(V4, flow("1.1.1.1", "100.64.0.1"))])], export=NOW),
                            "a", NOW).batches:
        agg.add(batch)
    assert agg.pending == 1
    usage = agg.drain()
    assert list(usage.services()) == [(1, NOW // 300 * 300)] and usage.records == 1
    assert agg.pending == 0 and agg.drain().services() == {}
    with pytest.raises(ValueError, match="positive"):
        Aggregator(smap, bucket_seconds=0)


SUBSCRIBERS4 = [f"100.64.{i // 200}.{i % 200}" for i in range(40)]
SUBSCRIBERS6 = [f"2001:db8:1:{i:x}::/64" for i in range(40)]


@st.composite
def flows_case(draw: Any) -> tuple[bool, list[dict[int, Any]], int]:
    six = draw(st.booleans())
    subs = [str(ipaddress.ip_network(s)[7]) for s in SUBSCRIBERS6] if six else SUBSCRIBERS4
    remote = st.sampled_from(["2001:db8:ffff::1", "2001:db9::5"] if six else ["198.51.100.1", "203.0.113.5"])
    addr = st.one_of(st.sampled_from(subs), remote)
    out = []
    for _ in range(draw(st.integers(1, 60))):
        end = draw(st.integers(MS - 4 * 3_600_000, MS + 400_000))  # some beyond the clamp window
        start = end - draw(st.integers(0, 3 * 3_600_000))
        out.append(flow(draw(addr), draw(addr), draw(st.integers(0, 2**40)), draw(st.integers(0, 2**20)),
                        start=max(start, 0), end=end))
    return six, out, draw(st.sampled_from([1, 1, 7, 1000]))


@settings(max_examples=120, deadline=None)
@given(case=flows_case())
def test_exact_sum_property(case: tuple[bool, list[dict[int, Any]], int]) -> None:
    """Sum over services and unknown == sum of the records' bytes (and packets) x sampling,
    exactly, whatever the times, directions and spreading."""
    six, flows_, rate = case
    smap = ServiceMap()
    for i, sub in enumerate(SUBSCRIBERS6 if six else SUBSCRIBERS4):
        smap.add_session(sub, i, NOW - 6 * 3600)
    usage = fold(smap, flows_, six=six, rate=rate)
    services = usage.services()
    total_bytes = sum(c[0] + c[1] for c in services.values()) + sum(c[0] for c in usage.unknown.values())
    total_packets = sum(c[2] + c[3] for c in services.values()) + sum(c[1] for c in usage.unknown.values())
    assert total_bytes == sum(f[1] for f in flows_) * rate
    assert total_packets == sum(f[2] for f in flows_) * rate
    assert usage.records == len(flows_)
    assert all(c[0] >= 0 and c[1] >= 0 for c in services.values())


def test_session_edge_cases() -> None:
    smap = ServiceMap()
    smap.add_session("100.64.0.1", 1, NOW, NOW - 10)  # ends before it starts: nothing
    assert smap.lookup("100.64.0.1", NOW) is None and not smap.exact4
    smap.add_session("100.64.0.2", 2, NOW - 100)
    assert smap.end_session("100.64.0.2", NOW - 100)  # ended at its start: gone
    assert not smap.exact4
    smap.add_session("100.64.0.3", 3, NOW - 300, NOW - 200)
    smap.add_session("100.64.0.3", 4, NOW - 100)
    assert smap.prune(NOW - 150) == 1 and smap.lookup("100.64.0.3", NOW) == 4
    smap.replace_static([("10.1.2.0/24", 5)])
    assert smap.lookup("10.1.3.1", NOW) is None  # passes the coarse filter, matches nothing


def test_sessions_added_one_by_one_pass_the_coarse_filter() -> None:
    smap = ServiceMap()
    smap.add_session("10.0.0.0/29", 1, NOW - 60)
    smap.add_session("10.7.0.8/29", 2, NOW - 60)       # same length, another /16
    smap.add_session("2001:db8:1:100::/64", 3, NOW - 60)
    smap.add_session("2001:db8:2:200::/64", 4, NOW - 60)  # same length, another /48
    assert [smap.lookup(a, NOW) for a in ("10.7.0.9", "2001:db8:2:200::1", "2001:db8:3::1", "10.8.0.1")] == [
        2, 4, None, None]


def test_counts_follow_every_change() -> None:
    """Issue 8: the sessions gauge changed only on a full reload; the map's own counts follow
    every add, end, replacement and prune."""
    smap = ServiceMap()
    smap.add_session("100.64.0.1", 1, NOW - 3600)
    smap.add_session("100.64.0.2", 2, NOW - 3600)
    smap.add_session("2001:db8:1::/64", 3, NOW - 3600)
    assert smap.sessions == 3
    smap.add_session("100.64.0.1", 4, NOW - 60)  # the address changes hands: both kept
    assert smap.sessions == 4
    smap.add_session("100.64.0.1", 5, NOW - 60)  # same start again: replaced
    assert smap.sessions == 4
    assert smap.end_session("100.64.0.2", NOW - 1800)
    assert smap.sessions == 4
    smap.add_session("100.64.0.3", 6, NOW, NOW - 10)  # ends before it starts: nothing
    assert smap.sessions == 4
    assert smap.prune(NOW - 600) == 1 and smap.sessions == 3
    assert smap.end_session("2001:db8:1::/64", NOW - 3600)  # ended at its start: gone
    assert smap.sessions == 2
    smap.replace_static([("10.0.0.0/8", 1), ("10.1.0.0/16", 2), ("2001:db8::/32", 3)])
    assert smap.static == 3
    smap.replace_static([])
    assert smap.static == 0


@settings(max_examples=150, deadline=None)
@given(prefixes=st.lists(st.tuples(st.booleans(), st.integers(0, 2**128 - 1), st.integers(0, 128)), max_size=8),
       probes=st.lists(st.integers(0, 2**128 - 1), max_size=20))
def test_own_prefixes_match_like_ipaddress(prefixes: list[tuple[bool, int, int]], probes: list[int]) -> None:
    """The coarse filter never hides an address a prefix contains (any length, /0 included)."""
    nets = [ipaddress.ip_network((a, n), strict=False) if six else
            ipaddress.ip_network((a >> 96, min(n, 32)), strict=False) for six, a, n in prefixes]
    own = OwnPrefixes(nets)
    inside = [int(n.network_address) + p % n.num_addresses for n in nets for p in probes[:3]]
    for addr in [*inside, *probes, *(p >> 96 for p in probes)]:
        v4, v6 = ipaddress.IPv4Address(addr % 2**32), ipaddress.IPv6Address(addr)
        assert own.owns4(int(v4)) == any(n.version == 4 and v4 in n for n in nets)
        assert own.owns6(int(v6)) == any(n.version == 6 and v6 in n for n in nets)
