"""The production install of docs/operations.md: a wheel in a fresh virtualenv outside the checkout.

The wheel is built from a copy of the checkout (so the build leaves nothing in it) without build
isolation, and installed without its dependencies into a new virtualenv in a temporary
directory; a ``.pth`` line puts the development virtualenv's site-packages after the wheel's, so
asyncpg, uvloop... come from there without a download. (A directory named in a ``.pth`` is
appended to ``sys.path`` but its own ``.pth`` files are not run, so the editable install of the
checkout does not come along: the test checks that the installed wheel is what runs.) Then, with
the working directory outside the checkout: ``lastmile db init``, ``lastmile demo``, and each
daemon until it reports ready on /metrics, then SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import site
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from daemons import db
from tests.conftest import free_port
from tests.db.schemadb import RELEASES, make_release, new_database

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
NOT_SOURCES = {".git", ".venv", "var", "build", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis",
               "__pycache__", "bench", "tests"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ``bin`` directory of a fresh virtualenv with lastmile's wheel installed in it."""
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=lambda _, names: [n for n in names if n in NOT_SOURCES
                                                            or n.endswith(".egg-info")])
    dist = work / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
        "-w", str(dist), str(source), cwd=work)
    (wheel,) = dist.glob("lastmile-*.whl")
    venv = work / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=work)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
        str(wheel), cwd=work)
    purelib = Path(run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                       cwd=work).strip())
    (purelib / "_lastmile_dev_dependencies.pth").write_text("".join(p + "\n" for p in site.getsitepackages()))
    yield venv / "bin"


def run(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{argv}: {result.stdout}\n{result.stderr}"
    return result.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a shell on the server: no PYTHONPATH, no settings of this test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LASTMILE_", "PYTHON", "VIRTUAL_ENV"))}
    return {**env, "LASTMILE_LOG__FORMAT": "json", **extra}


def test_the_installed_wheel_is_what_runs(installed: Path, tmp_path: Path) -> None:
    out = run(str(installed / "python"), "-c",
              "import daemons, radiusd, flowcollector, daemons.db as db;"
              "print(daemons.__file__, radiusd.__file__, flowcollector.__file__, db.SCHEMA_PATH)",
              cwd=tmp_path, env=clean_env())
    prefix = str(installed.parent)
    for path in out.split():
        assert path.startswith(prefix), f"{path} is not from the installed wheel"
        assert not path.startswith(str(ROOT))
    for unit in ("lastmile-radiusd.service", "lastmile-admin.service", "lastmile-backup.service",
                 "lastmile-backup.timer"):
        assert (installed.parent / "share" / "lastmile" / "systemd" / unit).is_file(), unit
    assert (installed.parent / "share" / "doc" / "lastmile" / "operations.md").is_file()


def test_db_init_demo_and_every_daemon_from_the_wheel(installed: Path, db_url: str, tmp_path: Path) -> None:
    lastmile = str(installed / "lastmile")
    env = clean_env(LASTMILE_DATABASE__URL=db_url, LASTMILE_DATABASE__POOL_MIN="1")
    init = run(lastmile, "db", "init", cwd=tmp_path, env=env)
    assert init == f"lastmile db init: already at schema version {db.schema_version()}\n"
    assert "20 customers loaded" in run(lastmile, "demo", "--customers", "20", cwd=tmp_path, env=env)

    radius = {"AUTH_PORT": free_port(), "ACCT_PORT": free_port(), "BIND": "127.0.0.1",
              "SPOOL_DIR": str(tmp_path / "spool")}
    flow = {"NETFLOW_PORT": free_port(), "IPFIX_PORT": free_port(), "BIND": "127.0.0.1",
            "STATE_DIR": str(tmp_path / "flow")}
    # provisiond reads the secret key `db init` created in ./var (it reaches the demo router, which
    # no double serves here: ready all the same, the router reported unreachable).
    assert (tmp_path / "var" / "secret.key").stat().st_mode & 0o777 == 0o600
    for name, keys in (("radiusd", radius), ("flowcollector", flow), ("provisiond", {})):
        metrics_port = free_port()
        daemon_env = {**env, **{f"LASTMILE_{name.upper()}__{k}": str(v) for k, v in keys.items()},
                      f"LASTMILE_{name.upper()}__METRICS_PORT": str(metrics_port)}
        lines = run_until_ready(lastmile, name, metrics_port, tmp_path, daemon_env)
        starting = next(line for line in lines if line.get("event") == "starting")
        # The start-up line names the overrides in force (it said settings=defaults), secrets hidden.
        assert f"LASTMILE_{name.upper()}__METRICS_PORT={metrics_port}" in starting["settings"]
        assert "LASTMILE_DATABASE__URL=postgresql://" in starting["settings"]


def test_the_admin_from_the_wheel(installed: Path, db_url: str, tmp_path: Path) -> None:
    """`create-admin`, then `lastmile admin` serves its pages, templates and static files from the wheel."""
    lastmile = str(installed / "lastmile")
    env = clean_env(LASTMILE_DATABASE__URL=db_url, LASTMILE_DATABASE__POOL_MIN="1")
    run(lastmile, "db", "init", cwd=tmp_path, env=env)
    made = subprocess.run([lastmile, "create-admin", "--login", "ops", "--password-stdin"], input="a long password\n",
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0 and "created administrator 'ops'" in made.stdout, made.stderr
    port = free_port()

    def pages() -> None:
        for path, expect in (("/admin/login", "Log in"), ("/api/v1/docs", "REST API reference"),
                             ("/api/v1/openapi.json", '"openapi":"3.1.0"')):
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).read().decode()
            assert expect in body, path
        for asset in ("admin.css", "vendor/htmx-2.0.11.min.js", "vendor/uPlot-1.6.32.iife.min.js"):
            assert urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/static/{asset}", timeout=5).status == 200

    run_until_ready(lastmile, "admin", port, tmp_path, {**env, "LASTMILE_ADMIN__PORT": str(port)}, pages)


async def test_backup_and_restore_from_the_wheel(installed: Path, db_url: str, tmp_path: Path) -> None:
    """The installed lastmile finds its pg_dump, pg_restore and psql (the pgserver wheel's) by itself."""
    lastmile = str(installed / "lastmile")
    env = clean_env(LASTMILE_DATABASE__URL=db_url, LASTMILE_RADIUSD__SPOOL_DIR=str(tmp_path / "spool"),
                    LASTMILE_FLOWCOLLECTOR__STATE_DIR=str(tmp_path / "flow"))
    run(lastmile, "demo", "--customers", "20", cwd=tmp_path, env=env)
    assert "written" in run(lastmile, "backup", "--to", str(tmp_path / "backups"), cwd=tmp_path, env=env)
    (archive,) = (tmp_path / "backups").glob("lastmile-*.tar")
    name = db_url.rsplit("/", 1)[1] + "_restored"
    try:
        out = run(lastmile, "restore", str(archive), "--database", name, cwd=tmp_path, env=env)
        assert f"database {name} restored" in out
    finally:
        conn = await asyncpg.connect(db_url)
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.close()


async def test_db_init_from_the_wheel_applies_and_upgrades(installed: Path, pg_server: str, tmp_path: Path) -> None:
    """The wheel carries schema.sql and the upgrade steps: `db init` makes an empty database and
    upgrades the previous release's."""
    lastmile = str(installed / "lastmile")
    async with new_database(pg_server, "wheel") as empty, new_database(pg_server, "wheel") as release:
        conn = await asyncpg.connect(release)
        try:
            old = await make_release(conn, RELEASES[-1])
        finally:
            await conn.close()
        current = db.schema_version()
        for url, said in ((empty, f"applied schema version {current}"),
                          (release, f"upgraded schema {old} -> {current}")):
            init = await asyncio.to_thread(run, lastmile, "db", "init", cwd=tmp_path,
                                           env=clean_env(LASTMILE_DATABASE__URL=url))
            assert init.startswith(f"lastmile db init: {said}")


def run_until_ready(
    lastmile: str, name: str, metrics_port: int, cwd: Path, env: dict[str, str],
    while_up: Callable[[], None] | None = None,
) -> list[dict[str, str]]:
    """Start ``lastmile <name>``, wait for ``lastmile_ready 1`` on /metrics, (call ``while_up``,)
    SIGTERM it; its log lines."""
    proc = subprocess.Popen([lastmile, name], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}: {proc.communicate()[0]}")
            assert time.monotonic() < deadline, f"{name} did not become ready"
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).read().decode()
                if f'lastmile_ready{{daemon="{name}"}} 1.0' in body:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        if while_up is not None:
            while_up()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]
