"""The `lastmile` command as a user runs it."""

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg
import pytest

from daemons import db, registry
from daemons.pgembed import EmbeddedPostgres
from tests.conftest import free_port

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


def test_the_commands_are_what_is_installed() -> None:
    """Every installed component's daemon and tools are commands; nothing else is (no placeholders)."""
    help_text = lastmile("--help").stdout
    for component in registry.components().values():
        assert f"run {component.name}: {component.summary}"[:40] in " ".join(help_text.split())
        assert all(tool.name in help_text for tool in component.tools)
    result = lastmile("tickets")
    assert result.returncode == 2 and "invalid choice: 'tickets'" in result.stderr


def test_a_bad_section_of_one_component_does_not_stop_another(tmp_path: Path) -> None:
    env = {"LASTMILE_RADIUSD__AUTH_PORT": "abc", "LASTMILE_DATABASE__URL": "postgresql://127.0.0.1:1/none",
           "LASTMILE_DATABASE__CONNECT_TIMEOUT": "1", "LASTMILE_FLOWCOLLECTOR__METRICS_PORT": "0"}
    radiusd = lastmile("radiusd", env=env, cwd=tmp_path)
    assert radiusd.returncode == 2 and "bad settings: LASTMILE_RADIUSD__AUTH_PORT" in radiusd.stderr
    flow = lastmile("flowcollector", env=env, cwd=tmp_path)  # past its settings, to the database
    assert flow.returncode == 1 and "bad settings" not in flow.stderr + flow.stdout, flow.stderr
    assert "start failed" in flow.stdout
    config = lastmile("config", env=env, cwd=tmp_path)
    assert config.returncode == 2 and "ipfix_port = 4739" in config.stdout
    assert "radiusd.auth_port = 'abc' is not an integer" in config.stderr


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
    assert init.stdout == f"lastmile db init: already at schema version {db.schema_version()}\n"
    demo = lastmile("demo", "--customers", "300", env=env, cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "300 customers loaded" in demo.stdout


def test_config_shows_the_ports_a_port_offset_gives(tmp_path: Path) -> None:
    result = lastmile("config", env={"LASTMILE_PORT_OFFSET": "100"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for line in ("auth_port = 1912", "acct_port = 1913", "netflow_port = 2155", "embedded_port = 5539",
                 "embedded_port = 1983", "metrics_port = 9912", "# port_offset = 100"):
        assert line in result.stdout, line


def test_db_start_leaves_the_embedded_server_running_and_db_stop_stops_it(tmp_path: Path) -> None:
    # Outside pytest's tmp_path (as tests/conftest.py does): another pytest session starting resets
    # /tmp/pytest-of-<user> to 0700, which locks the server's user (`pgserver` under root) out.
    base = Path(tempfile.mkdtemp(prefix="lastmile-db-start-"))
    port = free_port()
    env = {
        "LASTMILE_DATABASE__URL": "",
        "LASTMILE_DATABASE__EMBEDDED_DIR": str(base / "pg"),
        "LASTMILE_DATABASE__EMBEDDED_PORT": str(port),
    }
    url = f"postgresql://postgres@127.0.0.1:{port}/lastmile"
    server = EmbeddedPostgres(base / "pg", port)
    try:
        started = lastmile("db", "start", env=env, cwd=tmp_path)
        assert started.returncode == 0, started.stderr
        assert "PostgreSQL started" in started.stdout and url in started.stdout
        # The command has returned; the server is still there, and the psql line it printed reaches it.
        lines = started.stdout.splitlines()
        (psql_line,) = [line.split(None, 1)[1] for line in lines if line.strip().startswith("psql")]
        psql = subprocess.run([*psql_line.split(), "-XAtc", "SELECT current_database()"],
                              capture_output=True, text=True, timeout=30)
        assert psql.stdout.strip() == "lastmile", psql.stderr
        assert asyncio.run(_select_one(url)) == 1

        again = lastmile("db", "start", env=env, cwd=tmp_path)
        assert again.returncode == 0 and "was already running" in again.stdout
        init = lastmile("db", "init", env=env, cwd=tmp_path)  # uses the running server and leaves it running
        assert init.returncode == 0, init.stderr
        assert server.is_running()
        elsewhere = lastmile("db", "start", env={**env, "LASTMILE_PORT_OFFSET": "1"}, cwd=tmp_path)
        assert elsewhere.returncode == 1
        assert elsewhere.stderr.count("\n") == 1 and f"already served on port {port}" in elsewhere.stderr

        stopped = lastmile("db", "stop", env=env, cwd=tmp_path)
        assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
        assert not server.is_running()
        with pytest.raises(OSError):
            asyncio.run(_select_one(url))
        assert "is not running" in lastmile("db", "stop", env=env, cwd=tmp_path).stdout
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_db_start_refuses_when_a_database_url_is_set(tmp_path: Path) -> None:
    result = lastmile("db", "start", env={"LASTMILE_DATABASE__URL": "postgresql://lm:pw@db.example/x"}, cwd=tmp_path)
    assert result.returncode == 2 and "url is set" in result.stderr and "pw" not in result.stderr


async def _select_one(url: str) -> int:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        value: int = await conn.fetchval("SELECT 1")
        return value
    finally:
        await conn.close()
