"""The worker's settings: the ``[worker]`` section (docs/configuration.md is generated from it)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from daemons.config import DaemonSettings, is_positive, listen_port, setting

_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def modules(value: str) -> list[str]:
    """``"site.jobs, other.jobs"`` -> the dotted names."""
    return [m for m in value.replace(",", " ").split() if m]


def _is_modules(value: str) -> str | None:
    bad = [m for m in modules(value) if not _MODULE.fullmatch(m)]
    return f"must be dotted module names separated by commas, not {bad[0]!r}" if bad else None


@dataclass(frozen=True, slots=True)
class WorkerSettings(DaemonSettings):
    metrics_port: int = listen_port(9790, "Port of `/metrics` (0: none).")
    drain_timeout: float = setting(
        60.0, "Seconds a SIGTERM drain may take: the worker takes no new job and the jobs running finish "
        "within it; a job still running then is left to run again (after `heartbeat_timeout`).",
        check=is_positive)
    concurrency: int = setting(
        8, "Jobs one worker process runs at once (2 or more; each job's own limit across every worker is "
        "its declaration's, one at a time by default).",
        check=lambda v: None if v >= 2 else "must be 2 or more")
    heartbeat_timeout: float = setting(
        30.0, "Seconds without a heartbeat (a running job beats every half of it) after which a job is taken "
        "as abandoned, by a worker killed or a machine lost, and run again by another worker.",
        check=is_positive)
    retry_delay: float = setting(
        10.0, "Seconds before the first retry of a failed job; each further retry waits twice as long, up to "
        "`retry_delay_max` (a job declares how many retries it gets).", check=is_positive)
    retry_delay_max: float = setting(3600.0, "Longest wait between two attempts of a job.", check=is_positive)
    job_log_days: int = setting(
        30, "Days the job log (when each job was queued and how it ended, with the errors) is kept; "
        "`maintenance.job-log` deletes older lines hourly, but never those of a job still queued, running "
        "or failed.", check=is_positive)
    modules: str = setting(
        "", "More modules of jobs to load, dotted names separated by commas (a site's own jobs, importable "
        "by the worker's Python). The admin's `admin/<area>/jobs.py` are always loaded.", check=_is_modules)
