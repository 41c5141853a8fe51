"""Structured logging: one JSON object per line for journald, readable lines on a terminal.

Every line carries ``daemon`` and whatever the code bound with
``structlog.contextvars.bind_contextvars`` (nas, user, exporter, ...). Keys that name a
secret are replaced by ``***`` before anything is written, wherever they were bound. Under
systemd (``JOURNAL_STREAM`` set) each JSON line starts with the syslog priority prefix
(``<6>``), so journald files it at the right level. Library loggers (asyncpg, aiohttp) go
through the same pipeline.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from daemons.config import LogSettings

SECRET_KEYS = frozenset(
    {
        "secret",
        "shared_secret",
        "password",
        "passwd",
        "api_key",
        "token",
        "user_password",
        "chap_password",
        "authorization",
    }
)
PRIORITY = {"critical": 2, "error": 3, "warning": 4, "info": 6, "debug": 7}


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace the value of any key that names a secret, at the top level of the event."""
    for key in event.keys() & SECRET_KEYS:
        event[key] = "***"
    return event


class _JournalPrefix:
    """Prefix rendered lines with ``<N>`` so journald takes the syslog priority from it."""

    def __init__(self, renderer: Any) -> None:
        self.renderer = renderer

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        level = str(event.get("level", "info"))
        return f"<{PRIORITY.get(level, 6)}>{self.renderer(logger, name, event)}"


def setup(settings: LogSettings, daemon: str, stream: TextIO | None = None) -> None:
    """Configure structlog and the standard logging module for one process."""
    stream = stream or sys.stdout
    fmt = settings.format
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
        if os.environ.get("JOURNAL_STREAM"):
            renderer = _JournalPrefix(renderer)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    level = logging.getLevelNamesMapping()[settings.level.upper()]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(daemon=daemon)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.INFO))


def get(name: str | None = None) -> Any:
    """A bound structlog logger."""
    return structlog.get_logger(name)


class Outage:
    """One warning when something starts failing, a reminder every ``every`` seconds while it
    goes on (with how many attempts failed), and one line when it works again: a task that
    retries every 25 ms while PostgreSQL is away writes three lines, not forty a second."""

    def __init__(self, logger: Any, event: str, every: float = 60.0) -> None:
        self.logger = logger
        self.event = event
        self.every = every
        self.since: float | None = None
        self._said = 0.0
        self._failures = 0

    def failed(self, error: BaseException, now: float | None = None, **fields: Any) -> None:
        now = time.monotonic() if now is None else now
        self._failures += 1
        if self.since is None:
            self.since = self._said = now
            self.logger.warning(self.event, error=str(error) or type(error).__name__, **fields)
        elif now - self._said >= self.every:
            self._said = now
            self.logger.warning(f"{self.event} (still)", error=str(error) or type(error).__name__,
                                failures=self._failures, seconds=round(now - self.since), **fields)

    def ok(self, now: float | None = None) -> None:
        if self.since is None:
            return
        now = time.monotonic() if now is None else now
        self.logger.info(f"{self.event}: works again", failures=self._failures, seconds=round(now - self.since, 1))
        self.since = None
        self._failures = 0
