"""The `lastmile` command as a user runs it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemons import db
from daemons.cli import DAEMONS, built

ROOT = Path(__file__).resolve().parents[2]


def lastmile(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemons.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=cwd or ROOT,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"LASTMILE_RADIUSD__AUTH_PORT": "abc"}, "radiusd.auth_port"),
        ({"LASTMILE_CONFIG": "/nonexistent/lastmile.toml"}, "LASTMILE_CONFIG"),
        ({"LASTMILE_RADIUSD__NO_SUCH_KEY": "1"}, "radiusd.no_such_key"),
    ],
)
def test_bad_settings_stop_with_one_line_and_exit_2(env: dict[str, str], key: str, tmp_path: Path) -> None:
    result = lastmile("radiusd", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and lines[0].startswith("lastmile: bad settings: ")


def test_unbuilt_daemons_say_so() -> None:
    for name in [n for n in DAEMONS if not built(n)] + ["create-admin"]:
        result = lastmile(name)
        assert result.returncode == 2
        assert "not built yet" in result.stderr


def test_config_markdown_is_the_docs() -> None:
    result = lastmile("config", "--markdown")
    assert result.returncode == 0
    assert result.stdout == (ROOT / "docs" / "configuration.md").read_text()  # `> docs/configuration.md` makes it


def test_config_shows_settings_in_force(tmp_path: Path) -> None:
    result = lastmile("config", env={"LASTMILE_RADIUSD__AUTH_PORT": "11812"}, cwd=tmp_path)
    assert "auth_port = 11812" in result.stdout


def test_no_command_prints_help() -> None:
    result = lastmile()
    assert result.returncode == 2 and "usage: lastmile" in result.stdout


def test_db_init_and_demo_against_a_database(db_url: str, tmp_path: Path) -> None:
    env = {"LASTMILE_DATABASE__URL": db_url}
    init = lastmile("db", "init", env=env, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert f"schema version {db.schema_version()} applied" in init.stdout
    demo = lastmile("demo", "--customers", "300", env=env, cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "300 customers loaded" in demo.stdout


def test_config_shows_the_ports_a_port_offset_gives(tmp_path: Path) -> None:
    result = lastmile("config", env={"LASTMILE_PORT_OFFSET": "100"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for line in ("auth_port = 1912", "acct_port = 1913", "netflow_port = 2155", "embedded_port = 5539",
                 "embedded_port = 1983", "metrics_port = 9912", "# port_offset = 100"):
        assert line in result.stdout, line
