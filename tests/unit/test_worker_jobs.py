"""The worker's job registry (admin/worker/jobs.py): what a declaration accepts, and discovery."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from admin.worker import jobs, queue
from admin.worker.jobs import Context, JobError, job


@pytest.fixture
def declared() -> Iterator[None]:
    """Declarations made by a test are forgotten after it."""
    before = dict(jobs.DECLARED)
    yield
    jobs.DECLARED.clear()
    jobs.DECLARED.update(before)


def test_a_job_is_declared_with_its_schedule_normalised(declared: None) -> None:
    @job("unit.one", schedule="0   2 * * *", retries=2, timeout=5, concurrency=3)
    async def one(ctx: Context) -> None:
        """Does one thing.

        At length."""

    spec = jobs.DECLARED["unit.one"]
    assert (spec.schedule, spec.retries, spec.timeout, spec.concurrency) == ("0 2 * * *", 2, 5.0, 3)
    assert spec.summary == "Does one thing." and spec.run is one and spec.module == __name__


@pytest.mark.parametrize(("entrypoint", "kw", "error"), [
    ("nodot", {}, "area.name"),
    ("Unit.Upper", {}, "area.name"),
    ("unit.cron", {"schedule": "every day"}, "not a cron expression"),
    ("unit.retries", {"retries": -1}, "retries must be 0 or more"),
    ("unit.limit", {"concurrency": 0}, "concurrency 1 or more"),
])
def test_a_wrong_declaration_is_refused(entrypoint: str, kw: dict[str, object], error: str) -> None:
    with pytest.raises(JobError, match=error):
        job(entrypoint, **kw)  # type: ignore[arg-type]


def test_a_sync_function_and_a_name_taken_twice_are_refused(declared: None) -> None:
    def sync(ctx: Context) -> None: ...

    with pytest.raises(JobError, match="coroutine function"):
        job("unit.sync")(sync)  # type: ignore[arg-type]

    @job("unit.twice")
    async def first(ctx: Context) -> None: ...

    async def second(ctx: Context) -> None: ...

    with pytest.raises(JobError, match="declared twice"):
        job("unit.twice")(second)


def test_discovery_finds_the_worker_s_own_jobs_and_the_areas() -> None:
    found = jobs.discover()
    assert found["maintenance.job-log"].schedule == "17 * * * *"
    assert "admin.billing.jobs" in jobs.area_modules() and "admin.worker.jobs" not in jobs.area_modules()
    assert {"billing.daily", "billing.dunning"} <= set(found)
    with pytest.raises(JobError, match="cannot be imported"):
        jobs.discover(["no_such_module_of_jobs"])


def test_payloads_are_json_objects() -> None:
    assert queue.decode(queue.encode({"a": [1, "b"]})) == {"a": [1, "b"]}
    assert queue.decode(None) == {} and queue.encode(None) is None
    with pytest.raises(ValueError, match="JSON object"):
        queue.decode(b"[1]")
    assert queue.schedule_key("billing.daily") == "schedule:billing.daily"
