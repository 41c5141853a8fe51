"""The transport's counting (Transport): what the decoder reports reaches the per-exporter stats."""

from __future__ import annotations

import time
from typing import Any

from flowcollector.addressmap import ServiceMap
from flowcollector.aggregate import Aggregator
from flowcollector.codec import Decoder, DecoderSettings
from flowcollector.store import AllowList
from flowcollector.transport import Transport
from tests.unit.flow.flowbuild import data_set, record, template_set, v9

FIELDS = [(8, 4), (12, 4), (1, 4), (2, 4)]
EXPORTER = ("192.0.2.1", 2055)


def _collector(**settings: Any) -> Transport:
    return Transport(Decoder(DecoderSettings(**settings)), Aggregator(ServiceMap()),
                     AllowList([EXPORTER[0]]))


def _orphan(seq: int = 0) -> bytes:
    """Data whose template never comes."""
    rec = record(FIELDS, {8: "10.0.0.1", 12: "10.0.0.2", 1: 100, 2: 1})
    return v9([data_set(300, [rec])], uptime=10_000_000, secs=int(time.time()), seq=seq)


def test_held_data_expired_on_the_timer_is_a_no_template_drop() -> None:
    """Held sets that expire while no datagram comes are counted (they vanished before)."""
    collector = _collector(hold_seconds=60)
    collector.on_datagram(_orphan(), EXPORTER)
    stats = collector.stats[EXPORTER[0]]
    assert (stats.data_sets, stats.sets_decoded, stats.dropped) == (1, 0, {})
    collector.expire(time.time() + 61)
    assert stats.dropped == {"no_template": 1}
    assert collector.decoder.gauges()["held_sets"] == 0


def test_moved_records_reach_the_stats_and_the_metric() -> None:
    from prometheus_client import CollectorRegistry

    from flowcollector import metrics

    collector = _collector()
    rec = record(FIELDS, {8: "10.0.0.1", 12: "10.0.0.2", 1: 100, 2: 1})
    tpl = v9([template_set(9, [(300, FIELDS)]), data_set(300, [rec] * 2)], uptime=10_000_000, secs=1000, seq=0)
    collector.on_datagram(tpl, EXPORTER)  # no time fields, and a clock in 1970
    assert collector.stats[EXPORTER[0]].moved == {"no_clock": 2}
    collector.aggregator.moved.update({(EXPORTER[0], "late"): 3, (EXPORTER[0], "no_clock"): 1})
    registry = CollectorRegistry()
    registry.register(metrics.FlowCollector(collector.stats, dict, lambda: 0, collector.aggregator))
    value = registry.get_sample_value
    assert value("lastmile_flow_records_moved_total", {"exporter": EXPORTER[0], "reason": "no_clock"}) == 3
    assert value("lastmile_flow_records_moved_total", {"exporter": EXPORTER[0], "reason": "late"}) == 3
