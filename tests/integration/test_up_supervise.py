"""`lastmile up`'s supervision of its children: restart with backoff, giving up, stopping during a
backoff; with real processes (the restart of a real daemon is in test_up.py)."""

import asyncio
import os
import sys
import time

import pytest

from daemons import config, up


def test_backoff_doubles_to_its_maximum_and_gives_up_after_rapid_failures() -> None:
    b = up.Backoff(first=1, maximum=30, stable=60, limit=8)
    assert [b.failed(2.0) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert b.failed(2.0) is None  # the 8th failure in a row, each soon after its start


def test_backoff_starts_afresh_after_a_stable_run() -> None:
    b = up.Backoff(first=1, maximum=30, stable=60, limit=3)
    assert [b.failed(1.0), b.failed(1.0)] == [1, 2]
    assert b.failed(61.0) == 1  # it had stayed up a minute: a failure afresh
    assert b.failed(1.0) == 2
    assert b.failed(1.0) is None


def child(code: int, backoff: up.Backoff) -> up.Child:
    argv = [sys.executable, "-c", f"print('pid', __import__('os').getpid()); raise SystemExit({code})"]
    return up.Child("flaky", argv, backoff=backoff)


async def test_a_failing_child_is_restarted_then_given_up(capsys: pytest.CaptureFixture[str]) -> None:
    c = child(3, up.Backoff(first=0.05, maximum=0.1, stable=10, limit=3))
    stop = asyncio.Event()
    await up._start(c, dict(os.environ))
    await asyncio.wait_for(up.supervise(c, dict(os.environ), stop, config.Settings()), 20)
    if c.pump:
        await c.pump
    out = capsys.readouterr().out
    assert out.count("flaky exited with code 3") == 3
    assert "restarting it in 0.05 s" in out and "restarting it in 0.1 s" in out
    assert "it failed 3 times in a row, each within 10 s of its start; not restarting it" in out
    assert len({line for line in out.splitlines() if " | pid " in line}) == 3  # three processes ran


async def test_stop_during_a_backoff_returns_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    c = child(1, up.Backoff(first=30, stable=60))
    stop = asyncio.Event()
    await up._start(c, dict(os.environ))
    task = asyncio.ensure_future(up.supervise(c, dict(os.environ), stop, config.Settings()))
    deadline = time.monotonic() + 10
    while "restarting it in 30 s" not in capsys.readouterr().out:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    t = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - t < 1


async def test_a_child_that_exits_cleanly_is_not_restarted(capsys: pytest.CaptureFixture[str]) -> None:
    c = child(0, up.Backoff(first=0.01))
    await up._start(c, dict(os.environ))
    await asyncio.wait_for(up.supervise(c, dict(os.environ), asyncio.Event(), config.Settings()), 10)
    if c.pump:
        await c.pump
    out = capsys.readouterr().out
    assert "flaky exited with code 0" in out and "not restarted" in out
    assert len([line for line in out.splitlines() if " | pid " in line]) == 1
