"""HYPOTHESIS_PROFILE picks the profile before the test modules build their settings (tests/profiles.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = ("import tests.conftest; from hypothesis import settings; from tests.profiles import examples; "
         "s = settings(); print(s.max_examples, s.deadline, examples(400))")


def probe(profile: str | None, ci: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYPOTHESIS_PROFILE", "CI")}
    if ci:
        env["CI"] = "true"  # Hypothesis then loads its own "ci" profile unless we load ours
    if profile is not None:
        env["HYPOTHESIS_PROFILE"] = profile
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(("profile", "expected"), [
    (None, "100 0:00:00.200000 400"),  # make test: Hypothesis's defaults, each test's own budget
    ("quick", "100 0:00:00.200000 400"),
    ("nightly", "10000 None 40000"),  # make fuzz: a hundred times as many, no deadline
])
@pytest.mark.parametrize("ci", [False, True], ids=["laptop", "ci"])
def test_the_profile_in_force(profile: str | None, expected: str, ci: bool) -> None:
    result = probe(profile, ci)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_an_unknown_profile_is_refused() -> None:
    result = probe("weekly")
    assert result.returncode != 0
    assert "HYPOTHESIS_PROFILE=weekly: not one of quick, nightly" in result.stderr
