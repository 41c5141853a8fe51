import io
import json

import pytest
import structlog

from daemons import log
from daemons.config import LogSettings


def capture(fmt: str = "json", level: str = "info") -> io.StringIO:
    stream = io.StringIO()
    log.setup(LogSettings(level=level, format=fmt), "radiusd", stream)  # type: ignore[arg-type]
    return stream


def test_json_lines_with_bound_context_and_redaction() -> None:
    stream = capture()
    structlog.contextvars.bind_contextvars(nas="10.0.0.1")
    log.get("x").info("access-reject", user="ann", password="hunter2", secret="s3", reason="bad password")
    record = json.loads(stream.getvalue())
    assert record["event"] == "access-reject" and record["level"] == "info"
    assert record["daemon"] == "radiusd" and record["nas"] == "10.0.0.1"
    assert record["password"] == "***" and record["secret"] == "***"
    assert "hunter2" not in stream.getvalue()
    assert record["timestamp"].endswith("Z")


def test_levels_below_the_setting_are_dropped() -> None:
    stream = capture(level="warning")
    log.get("x").info("quiet")
    log.get("x").warning("loud")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["loud"]


def test_journald_priority_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    stream = capture()
    log.get("x").error("down")
    assert stream.getvalue().startswith("<3>{")


def test_standard_library_loggers_use_the_same_pipeline() -> None:
    import logging

    stream = capture()
    logging.getLogger("asyncpg.pool").warning("connection lost")
    record = json.loads(stream.getvalue())
    assert record["event"] == "connection lost" and record["logger"] == "asyncpg.pool"
    assert record["daemon"] == "radiusd"
