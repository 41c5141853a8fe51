"""The mutation campaign (tests/fuzz/campaign.py) on a smoke budget, and each of its checks failing.

The real targets must pass a short run (R-2 and N-2 at smoke size, as `make test` runs); targets
broken on purpose (an exception of another class, a slow input, a leak) must fail it, so that
the million-mutation run of `make fuzz` can be trusted when it passes.
"""

from __future__ import annotations

import dataclasses
import json
import mmap
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fuzz import campaign, targets
from tests.fuzz.targets import TARGETS, Target


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_a_smoke_run_of_each_codec_passes(name: str, tmp_path: Path) -> None:
    target = TARGETS[name]
    report = campaign.run_campaign(target, 3000, seed=7)
    assert report.passed, report.lines()
    assert sum(report.exceptions.values()) == report.exceptions.get(target.error.__name__, 0)
    # The mutations reach both sides: some inputs are refused by the codec, some decode.
    assert 0 < report.exceptions[target.error.__name__] < report.mutations
    assert report.per_second > 0 and 0 < report.p50_us <= report.p99_us <= report.p999_us
    assert len(report.slowest) == campaign.SLOWEST_KEPT
    saved = json.loads(campaign.save(report, tmp_path).read_text())
    assert saved["passed"] is True and saved["mutations"] == 3000
    assert (tmp_path / f"{name}-slowest.hex").read_text().strip() == report.slowest[0]["input"]


def test_a_run_is_reproducible() -> None:
    first = campaign.run_campaign(targets.MQTT, 2000, seed=11)
    second = campaign.run_campaign(targets.MQTT, 2000, seed=11)
    assert first.exceptions == second.exceptions and first.reasons == second.reasons


def broken(target: Target, run: Callable[[bytes], object]) -> Target:
    """``target`` with its decode replaced by ``run``."""
    return dataclasses.replace(target, make=lambda: run)


def test_another_exception_fails_the_run_and_is_kept(tmp_path: Path) -> None:
    def decode(data: bytes) -> object:
        if len(data) > 2 and data[2] == 0x00:
            raise KeyError("a bug that only some inputs reach")
        return targets.mqtt_read(data)

    report = campaign.run_campaign(broken(targets.MQTT, decode), 2000, seed=3)
    assert not report.passed
    assert report.exceptions["KeyError"] > 0
    assert "exceptions other than ProtocolError: KeyError" in report.failures[0]
    campaign.save(report, tmp_path)
    kept = bytes.fromhex((tmp_path / "mqtt-unexpected-0.hex").read_text())
    with pytest.raises(KeyError):
        decode(kept)  # the kept input reproduces it
    assert "KeyError" in report.unexpected[0]["traceback"]


def test_a_slow_input_fails_the_run() -> None:
    def decode(data: bytes) -> object:
        if data.count(b"\xff") >= 3:
            end = time.thread_time() + 0.008  # 8 ms of CPU: over the 5 ms limit
            while time.thread_time() < end:
                pass
        return targets.mqtt_read(data)

    report = campaign.run_campaign(broken(targets.MQTT, decode), 1500, seed=5)
    assert not report.passed
    assert report.slowest[0]["best_us"] >= 8000
    assert any("an input took" in f for f in report.failures)


def test_the_slowest_inputs_are_timed_again_and_a_slow_first_run_is_forgiven() -> None:
    """An input slow once (a busy machine, a first call) but fast when run again is no hang."""
    slow_once: set[bytes] = set()

    def decode(data: bytes) -> object:
        if data not in slow_once and random.Random(data).random() < 0.01:
            slow_once.add(data)
            end = time.thread_time() + 0.008
            while time.thread_time() < end:
                pass
        return targets.mqtt_read(data)

    report = campaign.run_campaign(broken(targets.MQTT, decode), 1500, seed=5)
    assert slow_once, "no input was made slow: the test proves nothing"
    assert any(s["first_us"] >= 8000 for s in report.slowest)
    assert report.passed, report.failures


def test_a_leak_fails_the_run() -> None:
    kept: list[mmap.mmap] = []

    def decode(data: bytes) -> object:
        # 20 kB written an input, 40 MB over the run, in pages of its own: memory from malloc
        # could be what earlier tests freed in this process (a pytest-xdist worker's), already counted
        page = mmap.mmap(-1, 20_000)
        page.write(b"x" * 20_000)
        kept.append(page)
        return targets.mqtt_read(data)

    report = campaign.run_campaign(broken(targets.MQTT, decode), 2000, seed=1, rss_limit_mb=10)
    assert not report.passed
    assert report.rss_growth_mb > 10
    assert any("RSS grew" in f for f in report.failures)


def test_the_cli_runs_one_codec_and_says_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert campaign.main(["--codec", "netflow", "--mutations", "1000", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "netflow (N-2): 1,000 mutations" in out and "PASS" in out
    assert (tmp_path / "campaign-netflow.json").exists()
