"""The worker's Prometheus metrics: jobs by entrypoint and outcome, their durations, the queue's depth."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from daemons.metrics import REGISTRY

STARTED = Counter("lastmile_worker_jobs_started", "Jobs this worker started (retries included), by entrypoint.",
                  ["entrypoint"], registry=REGISTRY)
SUCCEEDED = Counter("lastmile_worker_jobs_succeeded", "Jobs that ended without an error, by entrypoint.",
                    ["entrypoint"], registry=REGISTRY)
RETRIED = Counter("lastmile_worker_jobs_retried", "Jobs that failed and were queued again for a retry (with "
                  "backoff), by entrypoint.", ["entrypoint"], registry=REGISTRY)
FAILED = Counter("lastmile_worker_jobs_failed", "Jobs that failed with no retry left: held as failed until "
                 "retried from the admin, by entrypoint.", ["entrypoint"], registry=REGISTRY)
SECONDS = Histogram("lastmile_worker_job_seconds", "Time of one run of a job, whatever its outcome, by entrypoint.",
                    ["entrypoint"], buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600),
                    registry=REGISTRY)


class QueueDepth(Collector):
    """``lastmile_worker_queue_jobs``: the last reading of the queue (every 15 s), so a scrape costs
    no query; each declared entrypoint has its three series, 0 when it has no such job."""

    STATUSES = ("queued", "picked", "failed")

    def __init__(self, entrypoints: list[str]) -> None:
        self.entrypoints = entrypoints
        self.jobs: list[tuple[str, str, int]] = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "lastmile_worker_queue_jobs", "Jobs in the queue by entrypoint and status: queued (waiting, a retry's "
            "backoff included), picked (running) and failed (held); read every 15 s.",
            labels=["entrypoint", "status"])
        counts = {(e, s): 0 for e in self.entrypoints for s in self.STATUSES}
        counts.update({(e, s): n for e, s, n in self.jobs})
        for (entrypoint, status), n in sorted(counts.items()):
            family.add_metric([entrypoint, status], n)
        yield family
