"""flowcollector's transport: one datagram in, decoded, attributed and counted; never awaits.

Datagrams from sources that are not on the allow-list are dropped before any state is made for
them. Everything else goes through the decoder (a datagram it cannot frame is dropped and
counted by reason) and every batch into the aggregator. Counts are kept per exporter as plain
integers (see metrics.ExporterStats).
"""

from __future__ import annotations

import time

import structlog

from daemons import udp
from flowcollector import metrics
from flowcollector.aggregate import Aggregator
from flowcollector.codec import CodecError, Decoder
from flowcollector.store import AllowList


class Transport:
    def __init__(self, decoder: Decoder, aggregator: Aggregator, allow: AllowList) -> None:
        self.decoder = decoder
        self.aggregator = aggregator
        self.stats: dict[str, metrics.ExporterStats] = {}
        self._allowed: dict[str, metrics.ExporterStats] = {}  # the hot path's one lookup
        self.allow = allow
        self.log = structlog.get_logger("lastmile.flowcollector")
        self._unknown_logged: dict[str, float] = {}

    @property
    def allow(self) -> AllowList:
        return self._allow

    @allow.setter
    def allow(self, allow: AllowList) -> None:
        self._allow = allow
        self._allowed = {}  # decided again against the new list

    def on_datagram(self, data: bytes, addr: udp.Address) -> None:
        exporter = addr[0]
        stats = self._allowed.get(exporter)
        if stats is None:
            if exporter not in self._allow:
                self._unknown(exporter)
                return
            stats = self._allowed[exporter] = self.stats.setdefault(exporter, metrics.ExporterStats())
        stats.datagrams += 1
        try:
            result = self.decoder.decode(data, exporter, time.time())
        except CodecError as e:
            stats.dropped[e.reason] = stats.dropped.get(e.reason, 0) + 1
            return
        add = self.aggregator.add
        for batch in result.batches:
            add(batch)
        stats.records += result.records
        stats.lost += result.lost
        if result.lost_restart:
            stats.lost_restart += result.lost_restart
        stats.data_sets += result.data_sets
        stats.sets_decoded += result.sets_decoded
        if result.dropped:
            for reason, n in result.dropped.items():
                stats.dropped[reason] = stats.dropped.get(reason, 0) + n
        if result.dropped_held:
            self._count_held(result.dropped_held)
        if result.moved:
            for reason, n in result.moved.items():
                stats.moved[reason] = stats.moved.get(reason, 0) + n
        if result.events:
            self.count_events(exporter, result.events)

    def expire(self, now: float) -> None:
        """The decoder's timer (templates and held data past their time), counted."""
        report = self.decoder.expire(now)
        if report.events:
            self.count_events("*", report.events)
        if report.dropped_held:
            self._count_held(report.dropped_held)

    def _count_held(self, dropped: dict[str, int]) -> None:
        """Held data sets dropped as no_template, charged to the exporters that sent them."""
        for exporter, n in dropped.items():
            stats = self.stats.setdefault(exporter, metrics.ExporterStats())
            stats.dropped["no_template"] = stats.dropped.get("no_template", 0) + n

    def count_events(self, exporter: str, events: dict[str, int]) -> None:
        stats = self.stats.setdefault(exporter, metrics.ExporterStats())
        for event, n in events.items():
            stats.events[event] = stats.events.get(event, 0) + n
        if "exporter_restart" in events:
            self.log.info("exporter restarted: its templates are forgotten until it sends them", exporter=exporter)

    def _unknown(self, source: str) -> None:
        metrics.UNKNOWN_EXPORTER.inc()
        now = time.monotonic()
        if now - self._unknown_logged.get(source, -60.0) >= 60.0 and len(self._unknown_logged) < 10000:
            self._unknown_logged[source] = now
            self.log.warning("flow data from an unknown exporter dropped", source=source)
