"""Several processes of one daemon on the same UDP ports, and where a daemon keeps its state.

With ``workers = N > 1`` the process started by systemd supervises N workers (``lastmile
<daemon>`` again, with ``LASTMILE_WORKER=i``) that bind the same ports with SO_REUSEPORT; the
kernel keeps each source (a NAS, an exporter) on one socket, so per-source state (duplicate
cache, templates) stays in one process. Worker i serves its metrics on ``metrics_port + i``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from daemons.config import DaemonSettings
from daemons.runtime import Runtime

WORKER_ENV = "LASTMILE_WORKER"
S = TypeVar("S", bound=DaemonSettings)


def index() -> int:
    """This worker's number (1..N), or 0 for a daemon that runs alone."""
    return int(os.environ.get(WORKER_ENV, "0"))


def supervising(workers: int) -> bool:
    return workers > 1 and not index()


def for_worker(settings: S) -> S:
    """The settings of this worker: its own metrics port."""
    i = index()
    if not i or not settings.metrics_port:
        return settings
    return replace(settings, metrics_port=settings.metrics_port + i)


def state_base(configured: str, daemon: str) -> Path:
    """``configured``, else systemd's ``$STATE_DIRECTORY``, else ``var/<daemon>``: the daemon's
    state directory, which its workers share."""
    if configured:
        return Path(configured)
    state = os.environ.get("STATE_DIRECTORY")
    return Path(state.split(":")[0]) if state else Path("var") / daemon


def state_dir(configured: str, daemon: str) -> Path:
    """This process's own part of the state directory: the base, or ``worker-<i>`` under it."""
    base = state_base(configured, daemon)
    i = index()
    return base / f"worker-{i}" if i else base


def layout(base: Path, workers: int) -> set[Path]:
    """The state directories of every process of a daemon run with ``workers`` processes
    (what another worker count left elsewhere under ``base`` belongs to nobody now)."""
    if workers <= 1:
        return {base}
    return {base / f"worker-{i}" for i in range(1, workers + 1)}


async def supervise(rt: Runtime, daemon: str, workers: int) -> None:
    """Start the workers; stop them on drain. A worker that exits stops the set (systemd restarts it)."""
    procs = []
    for i in range(1, workers + 1):
        env = dict(os.environ, **{WORKER_ENV: str(i)})
        env.pop("NOTIFY_SOCKET", None)  # only the supervisor talks to systemd
        procs.append(await asyncio.create_subprocess_exec(sys.executable, "-m", "daemons.cli", daemon, env=env))

    async def watch() -> None:
        await asyncio.wait([asyncio.ensure_future(p.wait()) for p in procs], return_when=asyncio.FIRST_COMPLETED)
        raise RuntimeError(f"a {daemon} worker exited")

    async def stop() -> None:
        for p in procs:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        for p in procs:
            await p.wait()

    rt.on_drain("workers", stop)
    rt.spawn("workers-watch", watch())
