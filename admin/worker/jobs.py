"""The jobs the worker runs, each declared beside the code it belongs to.

An area of the admin declares its jobs in ``admin/<area>/jobs.py`` (the worker finds them as the
admin finds ``routes.py``), a site its own in the modules ``[worker] modules`` names::

    from admin.worker.jobs import Context, job

    @job("billing.run", schedule="0 2 * * *", retries=5, timeout=1800)
    async def run(ctx: Context) -> None:
        \"\"\"The day's billing run.\"\"\"
        async with ctx.pool.acquire() as conn:
            ...

The entrypoint (``area.what``) is the job's name in the queue: other code enqueues it by that
name (admin/worker/queue.py), with a payload (a JSON object) the job reads as ``ctx.payload``.
``schedule`` is a cron expression in UTC (minute hour day month weekday, and optionally a sixth
field of seconds): the worker enqueues the job then, once across all workers. A failure (an
exception, or running past ``timeout`` seconds) is retried ``retries`` times with exponential
backoff (``[worker] retry_delay``, doubling, up to ``retry_delay_max``), then the job is held as
failed, with its traceback, until an administrator retries it (the admin's Jobs page).
``concurrency`` is how many jobs of this entrypoint run at once across every worker (1: one at a
time, so a billing run never overlaps the next).

A job may run more than once (a worker killed mid-job leaves it to be run again), so each is
written to be idempotent: billing runs by (customer, period), sending by a key it records.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import pkgutil
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from croniter import croniter  # type: ignore[import-untyped]  # what pgqueuer's schedules are read with

if TYPE_CHECKING:
    import asyncpg

    from daemons.config import Settings

ADMIN = Path(__file__).resolve().parent.parent
BUILTIN = ("admin.worker.maintenance",)
"""The worker's own jobs (its housekeeping), loaded with the areas'."""
ENTRYPOINT = re.compile(r"[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+")


class JobError(Exception):
    """A job declared wrongly (a bad name or schedule, a name taken twice)."""


@dataclass(frozen=True, slots=True)
class Context:
    """What a job is given when it runs."""

    job_id: int
    entrypoint: str
    payload: dict[str, Any]
    attempt: int  # 1 the first time, 2 on the first retry, ...
    pool: asyncpg.Pool
    settings: Settings
    log: Any  # a structlog logger bound to the job's entrypoint and id
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the worker is asked to stop (SIGTERM): a long job ends at its next safe point."""


Run = Callable[[Context], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Job:
    entrypoint: str
    run: Run
    schedule: str | None
    retries: int
    timeout: float
    concurrency: int
    summary: str
    module: str


DECLARED: dict[str, Job] = {}
"""Every job declared so far (by the modules imported), by entrypoint."""


def job(entrypoint: str, *, schedule: str | None = None, retries: int = 3, timeout: float = 600.0,
        concurrency: int = 1) -> Callable[[Run], Run]:
    """Declare the coroutine function below as the job ``entrypoint`` (see the module's docstring)."""
    if not ENTRYPOINT.fullmatch(entrypoint):
        raise JobError(f"job {entrypoint!r}: an entrypoint is `area.name` in lower case (letters, digits, - and _)")
    if schedule is not None:
        if not croniter.is_valid(schedule):
            raise JobError(f"job {entrypoint}: schedule {schedule!r} is not a cron expression")
        schedule = " ".join(croniter(schedule).expressions)  # as pgqueuer_schedules keeps it
    if retries < 0 or timeout <= 0 or concurrency < 1:
        raise JobError(f"job {entrypoint}: retries must be 0 or more, timeout above 0 and concurrency 1 or more")

    def declare(run: Run) -> Run:
        if not inspect.iscoroutinefunction(run):
            raise JobError(f"job {entrypoint}: {run.__qualname__} must be a coroutine function (async def)")
        found = DECLARED.get(entrypoint)
        if found is not None and (found.module, found.run.__qualname__) != (run.__module__, run.__qualname__):
            raise JobError(f"job {entrypoint} is declared twice: in {found.module} and in {run.__module__}")
        doc = (run.__doc__ or "").strip()
        DECLARED[entrypoint] = Job(entrypoint, run, schedule, retries, float(timeout), concurrency,
                                   doc.splitlines()[0] if doc else "", run.__module__)
        return run
    return declare


def area_modules() -> list[str]:
    """``admin.<area>.jobs`` of every area that has one (the worker's own package aside)."""
    return [f"admin.{info.name}.jobs" for info in pkgutil.iter_modules([str(ADMIN)])
            if info.ispkg and info.name != "worker" and (ADMIN / info.name / "jobs.py").exists()]


@functools.cache
def _imported(module: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as e:
        raise JobError(f"job module {module} cannot be imported: {e}") from e


def discover(extra: Iterable[str] = ()) -> dict[str, Job]:
    """Import the worker's own jobs, the areas' and ``extra`` modules; every job they declare."""
    for module in (*BUILTIN, *area_modules(), *extra):
        _imported(module)
    return dict(sorted(DECLARED.items()))
