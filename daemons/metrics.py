"""Prometheus metrics: one registry per process, served on ``/metrics`` by a small aiohttp site.

Names follow ``lastmile_<daemon>_<thing>_<unit>`` (``lastmile_radiusd_requests_total``).
Components define their metrics at module level against :data:`REGISTRY`.
"""

from __future__ import annotations

import platform

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Info,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # type: ignore[no-untyped-call]  # `_created` series: noise here
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

BUILD = Info("lastmile_build", "Version of lastmile and Python in this process.", registry=REGISTRY)
UP_SINCE = Gauge(
    "lastmile_start_time_seconds", "Unix time this daemon started.", ["daemon"], registry=REGISTRY
)
READY = Gauge(
    "lastmile_ready", "1 while the daemon serves, 0 while it starts or drains.", ["daemon"], registry=REGISTRY
)


async def handle_metrics(_: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def app() -> web.Application:
    """The ``/metrics`` listener (daemons/http.py serves it); an application with routes of its own
    (the admin) adds ``add_route`` instead."""
    application = web.Application()
    add_route(application)
    return application


def add_route(application: web.Application) -> None:
    application.router.add_get("/metrics", handle_metrics)


def set_build_info(version: str) -> None:
    BUILD.info({"version": version, "python": platform.python_version()})
