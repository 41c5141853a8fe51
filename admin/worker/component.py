"""The worker joins lastmile here (daemons/registry.py): its command and settings."""

from __future__ import annotations

from admin.worker.settings import WorkerSettings
from daemons.config import Settings
from daemons.registry import Component


def _addresses(settings: Settings) -> list[tuple[str, str]]:
    s = settings.of(WorkerSettings)
    admin = settings.section("admin")
    jobs = f"{admin.public_url or f'http://{admin.bind}:{admin.port}'}/admin/jobs"
    return [("worker", f"jobs from PostgreSQL's queue, {s.concurrency} at once; they show at {jobs}")]


COMPONENT = Component(
    name="worker",
    summary="scheduled and background jobs (billing runs, dunning, sending) on a PostgreSQL queue",
    settings=WorkerSettings,
    main="admin.worker.__main__:main",
    addresses=_addresses,
    order=70,
)
