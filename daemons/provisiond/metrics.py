"""provisiond's Prometheus metrics: per router, its state (from memory, at scrape) and counters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from daemons.metrics import REGISTRY

RUNS = Counter("lastmile_provisiond_runs", "Reconciles by router, result (ok, failed: some changes refused, "
               "unreachable, error: lost mid-run, stopped: safety valve, busy: another writer held the router) and "
               "scope (full: the whole router; targeted: the objects of changed services only).",
               ["router", "result", "scope"], registry=REGISTRY)
CHANGES = Counter("lastmile_provisiond_changes", "Objects written to routers, by router and op (add, set, remove).",
                  ["router", "op"], registry=REGISTRY)
ERRORS = Counter("lastmile_provisiond_errors", "Failures talking to routers, by router and stage (connect, "
                 "login, read, write, timeout).", ["router", "stage"], registry=REGISTRY)
COMMAND_SECONDS = Histogram(
    "lastmile_provisiond_command_seconds", "Time of one read of a router's menu (a RouterOS API print).",
    ["router"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY)
RUN_SECONDS = Histogram(
    "lastmile_provisiond_run_seconds", "Time of a whole reconcile of one router (read, plan, write).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120), registry=REGISTRY)


@dataclass(slots=True)
class RouterState:
    name: str
    reachable: bool = False
    drift: int = 0  # objects that differed from billing when the last successful run read the router
    last_success: float | None = None  # time.time()
    failures: int = 0  # in a row


class RouterStates(Collector):
    def __init__(self, states: dict[int, RouterState]) -> None:
        self.states = states

    def collect(self) -> Iterator[GaugeMetricFamily]:
        reachable = GaugeMetricFamily("lastmile_provisiond_router_reachable",
                                      "1 if the last attempt reached the router and logged in.", labels=["router"])
        drift = GaugeMetricFamily("lastmile_provisiond_router_drift_objects",
                                  "Objects that differed from billing when the last run read the router.",
                                  labels=["router"])
        age = GaugeMetricFamily("lastmile_provisiond_router_sync_age_seconds",
                                "Seconds since the router was last in step with billing (absent: never).",
                                labels=["router"])
        failures = GaugeMetricFamily("lastmile_provisiond_router_failures",
                                     "Failed attempts on the router in a row (0: the last one succeeded).",
                                     labels=["router"])
        now = time.time()
        for s in self.states.values():
            reachable.add_metric([s.name], 1.0 if s.reachable else 0.0)
            drift.add_metric([s.name], s.drift)
            failures.add_metric([s.name], s.failures)
            if s.last_success is not None:
                age.add_metric([s.name], now - s.last_success)
        yield from (reachable, drift, age, failures)
