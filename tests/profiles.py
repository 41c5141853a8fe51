"""Hypothesis profiles: ``quick`` under `make test` (the default), ``nightly`` under `make fuzz`.

``HYPOTHESIS_PROFILE`` names the one to load; ``tests/conftest.py`` loads it before any test
module is imported. ``quick`` keeps Hypothesis's defaults (100 examples), so that every property
and fuzz test stays within a few seconds; ``nightly`` runs a hundred times as many examples
with no deadline, as a nightly job can afford.

A test that sets its own number of examples writes it as ``examples(n)``: ``n`` under quick,
scaled with the loaded profile under the others.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

QUICK_EXAMPLES = 100
# Both derive from Hypothesis's "default" profile, not from the one in force at import: under
# CI=true Hypothesis loads its own "ci" profile (no deadline, derandomized), and `make test` must
# run the same examples under the same deadline on a laptop and in CI.
_DEFAULT = settings.get_profile("default")
PROFILES = {
    "quick": settings(_DEFAULT, max_examples=QUICK_EXAMPLES, print_blob=True),
    "nightly": settings(_DEFAULT, max_examples=100 * QUICK_EXAMPLES, deadline=None, print_blob=True,
                        suppress_health_check=[HealthCheck.too_slow]),
}


def load_from_environment() -> str:
    """Register the profiles and load ``$HYPOTHESIS_PROFILE`` (default quick); its name."""
    for name, profile in PROFILES.items():
        settings.register_profile(name, profile)
    name = os.environ.get("HYPOTHESIS_PROFILE") or "quick"
    if name not in PROFILES:
        raise ValueError(f"HYPOTHESIS_PROFILE={name}: not one of {', '.join(PROFILES)}")
    settings.load_profile(name)
    return name


def examples(quick: int) -> int:
    """A test's number of examples: ``quick`` under the quick profile, as many times more under
    another as its ``max_examples`` is larger."""
    return max(1, quick * settings().max_examples // QUICK_EXAMPLES)  # settings(): the loaded profile
