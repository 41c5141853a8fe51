"""The ACS's Prometheus metrics: counters the server bumps, and what is read at scrape time
(sessions held in memory, the writers' counts)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from daemons.metrics import REGISTRY

EVENTS = frozenset({"0 BOOTSTRAP", "1 BOOT", "2 PERIODIC", "3 SCHEDULED", "4 VALUE CHANGE", "5 KICKED",
                    "6 CONNECTION REQUEST", "7 TRANSFER COMPLETE", "8 DIAGNOSTICS COMPLETE", "9 REQUEST DOWNLOAD",
                    "10 AUTONOMOUS TRANSFER COMPLETE", "11 DU STATE CHANGE COMPLETE",
                    "12 AUTONOMOUS DU STATE CHANGE COMPLETE", "13 WAKEUP", "14 HEARTBEAT", "M Reboot",
                    "M ScheduleInform", "M Download", "M ScheduleDownload", "M Upload", "M ChangeDUState"})
"""The event codes TR-069 defines: any other (a vendor's "X ...") is counted as ``other``."""

SESSIONS = Counter("lastmile_acs_sessions", "Sessions opened (Informs accepted), by event code of the Inform "
                   "(one Inform with several events counts under each; vendor events as `other`).",
                   ["event"], registry=REGISTRY)
INFORMS = Counter("lastmile_acs_informs", "Informs accepted, by path: `fast` (nothing to do: the session lives in "
                  "its cookie and ends after one round trip) or `slow` (the device's state loaded and planned).",
                  ["path"], registry=REGISTRY)
RPCS = Counter("lastmile_acs_rpcs", "CWMP messages, by method: the ACS's requests to CPEs (GetParameterValues, "
               "...) and the CPEs' own requests (Inform, TransferComplete, ...).", ["method"], registry=REGISTRY)
FAULTS = Counter("lastmile_acs_faults", "Faults, by code: a CPE's SOAP fault to an RPC (9000-9032), the ACS's "
                 "to a CPE (8000-8006), `session` for a session broken off.", ["code"], registry=REGISTRY)
SESSION_SECONDS = Histogram(
    "lastmile_acs_session_seconds", "Time of a whole session, Inform to the ACS's empty answer.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=REGISTRY)
REFUSED = Counter("lastmile_acs_refused", "Requests refused, by reason: `address` (not in allow_networks), "
                  "`credentials` (wrong or unknown), `basic_without_tls`, `hostile` (XML with a document type), "
                  "`malformed`, `too_large`, `slow_body`, `no_session` (a request without a live session), "
                  "`database` (PostgreSQL away: 503).", ["reason"], registry=REGISTRY)
BUSY = Counter("lastmile_acs_busy", "503 answers with Retry-After, by reason: `admission` (max_new_sessions Informs "
               "in progress), `device` (the device's previous session is still live).", ["reason"],
               registry=REGISTRY)
CHALLENGES = Counter("lastmile_acs_challenges", "401 digest challenges sent, by kind: `new` (no or unusable "
                     "credentials) or `stale` (right credentials, old nonce).", ["kind"], registry=REGISTRY)
TASKS_QUEUED = Gauge("lastmile_acs_tasks_due", "Queued tasks whose time has come, over all devices (counted every "
                     "few seconds).", registry=REGISTRY)


class _Children:
    """A metric's children by label value, so the hot path skips ``labels()``' lock and checks."""

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self.children: dict[str, Any] = {}

    def inc(self, label: str, amount: float = 1.0) -> None:
        child = self.children.get(label)
        if child is None:
            child = self.children[label] = self.metric.labels(label)
        child.inc(amount)


sessions, informs, rpcs, faults, refused, busy, challenges = (
    _Children(m) for m in (SESSIONS, INFORMS, RPCS, FAULTS, REFUSED, BUSY, CHALLENGES))


def session_opened(events: tuple[str, ...]) -> None:
    for code in events:
        sessions.inc(code if code in EVENTS else "other")


class Live(Collector):
    """At scrape: sessions this instance holds, and the writers' counts (``counts()`` gives
    {name: value} for the names below)."""

    def __init__(self, counts: Callable[[], dict[str, float]]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        c = self.counts()
        yield GaugeMetricFamily("lastmile_acs_live_sessions", "Sessions open in this instance (Inform answered, "
                                "not ended nor timed out).", value=c["live"])
        yield CounterMetricFamily("lastmile_acs_inform_batches", "Statements the Inform writer committed (group "
                                  "commit: the mean batch is inform_rows / inform_batches).", value=c["batches"])
        yield CounterMetricFamily("lastmile_acs_inform_rows", "Informs the Inform writer committed.", value=c["rows"])
        yield CounterMetricFamily("lastmile_acs_session_log_lines", "Lines written to the access log "
                                  "(acs_sessions).", value=c["log_written"])
        yield CounterMetricFamily("lastmile_acs_session_log_dropped", "Access log lines lost (the database was "
                                  "away too long, or refused them).", value=c["log_dropped"])
