"""flowcollector's Prometheus metrics.

Per-datagram counting is plain integer arithmetic on ``ExporterStats`` (a prometheus_client
``inc()`` per datagram would cost more than decoding a record); a collector turns the
integers into samples when Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from daemons.metrics import REGISTRY

if TYPE_CHECKING:
    from flowcollector.aggregate import Aggregator


@dataclass
class ExporterStats:
    datagrams: int = 0
    records: int = 0
    lost: int = 0
    lost_restart: int = 0
    data_sets: int = 0
    sets_decoded: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    moved: dict[str, int] = field(default_factory=dict)


class FlowCollector(Collector):
    """Samples from the per-exporter integers and the decoder's state sizes."""

    def __init__(self, stats: dict[str, ExporterStats], gauges: Callable[[], dict[str, int]],
                 kernel_drops: Callable[[], int], aggregator: Aggregator | None = None) -> None:
        self.stats = stats
        self.gauges = gauges
        self.kernel_drops = kernel_drops
        self.aggregator = aggregator  # its counts since the start: moved records, unknown overflow

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        datagrams = CounterMetricFamily("lastmile_flow_datagrams", "Datagrams received, by exporter.",
                                        labels=["exporter"])
        records = CounterMetricFamily("lastmile_flow_records", "Flow records decoded, by exporter.",
                                      labels=["exporter"])
        lost = CounterMetricFamily("lastmile_flow_records_lost", "Records the exporter sent that never arrived "
                                   "(from sequence numbers), by exporter and reason: network (between exporter "
                                   "and collector), restart (sent while the collector was stopped).",
                                   labels=["exporter", "reason"])
        dropped = CounterMetricFamily("lastmile_flow_dropped", "Datagrams, sets or records skipped, by exporter "
                                      "and reason.", labels=["exporter", "reason"])
        sets = CounterMetricFamily("lastmile_flow_data_sets", "Data sets received (a v5 datagram with records is "
                                   "one), by exporter.", labels=["exporter"])
        sets_decoded = CounterMetricFamily("lastmile_flow_data_sets_decoded", "Data sets decoded (on arrival or "
                                           "released from the hold queue), by exporter.", labels=["exporter"])
        events = CounterMetricFamily("lastmile_flow_template_events", "Template and exporter events, by exporter.",
                                     labels=["exporter", "event"])
        moved = CounterMetricFamily("lastmile_flow_records_moved", "Records not booked at the times they carry, "
                                    "by exporter and reason.", labels=["exporter", "reason"])
        moves: dict[tuple[str, str], int] = dict(self.aggregator.moved) if self.aggregator else {}
        for exporter, s in self.stats.items():
            datagrams.add_metric([exporter], s.datagrams)
            records.add_metric([exporter], s.records)
            lost.add_metric([exporter, "network"], s.lost)
            lost.add_metric([exporter, "restart"], s.lost_restart)
            sets.add_metric([exporter], s.data_sets)
            sets_decoded.add_metric([exporter], s.sets_decoded)
            for reason, n in s.dropped.items():
                dropped.add_metric([exporter, reason], n)
            for event, n in s.events.items():
                events.add_metric([exporter, event], n)
            for reason, n in s.moved.items():
                moves[exporter, reason] = moves.get((exporter, reason), 0) + n
        for (exporter, reason), n in moves.items():
            moved.add_metric([exporter, reason], n)
        state = GaugeMetricFamily("lastmile_flow_decoder_state", "Decoder state sizes.", labels=["kind"])
        for kind, n in self.gauges().items():
            state.add_metric([kind], n)
        kernel = CounterMetricFamily("lastmile_flow_kernel_drops", "Datagrams the kernel dropped on our sockets "
                                     "(receive buffer full), from /proc/net/udp.")
        kernel.add_metric([], self.kernel_drops())
        overflow = CounterMetricFamily("lastmile_flow_unknown_overflow_records", "Unknown-traffic records of own "
                                       "addresses folded into 0.0.0.0/0 or ::/0 (over max_unknown_addresses).")
        overflow.add_metric([], self.aggregator.unknown_overflow if self.aggregator else 0)
        yield from (datagrams, records, lost, sets, sets_decoded, dropped, events, moved, state, kernel, overflow)


UNKNOWN_EXPORTER = Counter("lastmile_flow_unknown_exporter_datagrams_total",
                           "Datagrams from addresses that are no exporter, router or NAS (dropped).", registry=REGISTRY)
ROWS_WRITTEN = Counter("lastmile_flow_rows_written_total", "Counter rows written to PostgreSQL, by table.",
                       ["table"], registry=REGISTRY)
BYTES_ATTRIBUTED = Counter("lastmile_flow_bytes_total", "Bytes written, by attribution (service or unknown).",
                           ["attribution"], registry=REGISTRY)
BACKLOG = Gauge("lastmile_flow_backlog_rows", "Counter rows waiting for PostgreSQL.", registry=REGISTRY)
BACKLOG_DROPPED = Counter("lastmile_flow_backlog_dropped_rows_total",
                          "Counter rows dropped because PostgreSQL was away longer than the backlog lasts.",
                          registry=REGISTRY)
FLUSH_SECONDS = Histogram("lastmile_flow_flush_seconds", "Time to write one flush to PostgreSQL.",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0), registry=REGISTRY)
SERVICE_MAP = Gauge("lastmile_flow_service_map_entries", "Addresses and prefixes known, by kind.", ["kind"],
                    registry=REGISTRY)
RCVBUF = Gauge("lastmile_flow_socket_rcvbuf_bytes", "Receive buffer the kernel granted each socket.",
               registry=REGISTRY)
