"""The systemd units: hardened, notify-type, longer stop timeout than the drain, and verified."""

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from daemons import registry
from daemons.config import DaemonSettings

UNITS = Path(__file__).resolve().parents[2] / "systemd"
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
             "DynamicUser": "yes", "CapabilityBoundingSet": ""}


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / f"lastmile-{name}.service")
    return parser


DAEMONS = [c.name for c in registry.components().values() if c.main is not None]


def test_a_unit_for_every_daemon_and_no_other() -> None:
    """Every installed component's daemon has its unit, and every daemon unit belongs to one."""
    units = {p.name for p in UNITS.glob("lastmile-*.service")}
    assert {registry.components()[n].unit for n in DAEMONS} <= units
    daemon_units = {u for u in units if "Type=notify" in (UNITS / u).read_text()}
    assert daemon_units == {registry.components()[n].unit for n in DAEMONS}


@pytest.mark.parametrize("name", DAEMONS)
def test_unit_is_hardened_and_outlasts_the_drain(name: str) -> None:
    service = unit(name)["Service"]
    assert service["Type"] == "notify"
    assert service["Restart"] == "on-failure"
    assert service["ExecStart"].endswith(f"lastmile {name}")
    assert service["EnvironmentFile"].startswith("-/etc/lastmile/")
    for key, value in HARDENING.items():
        assert service[key] == value, key
    assert int(service["TimeoutStopSec"].rstrip("s")) > DaemonSettings().drain_timeout
    assert f"lastmile-{name}.service" in (UNITS / "lastmile.target").read_text()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """Verified with ExecStart pointed at this checkout's `lastmile` (the units name /opt/lastmile)."""
    lastmile = shutil.which("lastmile") or str(Path(__file__).resolve().parents[2] / ".venv/bin/lastmile")
    for path in UNITS.iterdir():
        (tmp_path / path.name).write_text(path.read_text().replace("/opt/lastmile/bin/lastmile", lastmile))
    files = sorted(str(p) for p in tmp_path.iterdir())
    result = subprocess.run(["systemd-analyze", "verify", *files], capture_output=True, text=True, timeout=60)
    problems = [line for line in result.stderr.splitlines() if "lastmile" in line]
    assert result.returncode == 0 and problems == [], result.stderr


def test_backup_runs_daily_as_a_oneshot_that_can_only_read_the_daemons_state() -> None:
    service = unit("backup")["Service"]
    assert service["Type"] == "oneshot"
    assert service["ExecStart"].endswith("lastmile backup")
    assert service["EnvironmentFile"].startswith("-/etc/lastmile/")
    # The daemons' state belongs to their dynamic users: read as root, with that one capability.
    for key, value in HARDENING.items():
        if key not in ("DynamicUser", "CapabilityBoundingSet"):
            assert service[key] == value, key
    assert (service["User"], service["CapabilityBoundingSet"]) == ("root", "CAP_DAC_READ_SEARCH")
    assert service["StateDirectory"] == "lastmile/backup"
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.optionxform = str  # type: ignore[assignment,method-assign]
    timer.read(UNITS / "lastmile-backup.timer")
    assert timer["Timer"]["Unit"] == "lastmile-backup.service"
    assert timer["Timer"]["Persistent"] == "true" and timer["Timer"]["RandomizedDelaySec"]
    assert timer["Timer"]["OnCalendar"].endswith("03:00:00")
    assert "lastmile-backup.timer" in (UNITS / "lastmile.target").read_text()
