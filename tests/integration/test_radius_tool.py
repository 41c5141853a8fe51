"""`lastmile radius test` as the NOC runs it: a command, against a real radiusd (or a capturing
socket, to see what it sends), with a real PostgreSQL behind.

It must send what a NAS sends (its MAC, port, address, service type, any dictionary attribute),
say why the server decided, take no pool address, and behave in a pipe.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from radiusd.codec import decode_request
from radiusd.dictionaries import load
from tests.integration.radius_env import ROOT, SECRET, Radiusd, add_nas, add_service, start_radiusd
from tests.integration.test_radiusd_dictionaries import EXAMPLE, example_dir


@pytest.fixture
def daemons() -> Iterator[list[Radiusd]]:
    started: list[Radiusd] = []
    yield started
    for daemon in started:
        daemon.stop()


async def start(db_url: str, tmp_path: Path, daemons: list[Radiusd], **settings: str) -> Radiusd:
    daemon = await asyncio.to_thread(lambda: start_radiusd(db_url, tmp_path, None, **settings))
    daemons.append(daemon)
    return daemon


def environment(db_url: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    env.update(PYTHONPATH=str(ROOT), LASTMILE_DATABASE__URL=db_url,
               **{f"LASTMILE_RADIUSD__{k.upper()}": v for k, v in settings.items()})
    return env


async def radius_test(db_url: str, tmp_path: Path, daemon: Radiusd | None, *args: str,
                      **settings: str) -> tuple[int, list[str], str]:
    """Run `lastmile radius test ARGS`; its exit code, output lines and error output."""
    port = ["--port", str(daemon.auth_port)] if daemon else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemons.cli", "radius", "test", *args, *port, env=environment(db_url, **settings),
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode().splitlines(), err.decode()


async def test_it_says_why_a_login_is_rejected(conn: asyncpg.Connection, db_url: str, tmp_path: Path,
                                               daemons: list[Radiusd]) -> None:
    """"Login incorrect" is all the subscriber's router gets; the NOC gets the reason radiusd
    recorded for exactly this request."""
    await add_nas(conn)
    await add_service(conn, "ann", "secret-ann")
    daemon = await start(db_url, tmp_path, daemons)

    code, lines, err = await radius_test(db_url, tmp_path, daemon, "ann", "wrong")
    assert (code, err) == (1, "")
    assert lines == ["Access-Reject", "  Reply-Message = Login incorrect", "reason: wrong password"]
    code, lines, _ = await radius_test(db_url, tmp_path, daemon, "nobody", "wrong")
    assert lines == ["Access-Reject", "  Reply-Message = Login incorrect", "reason: unknown user"]
    code, lines, _ = await radius_test(db_url, tmp_path, daemon, "ann", "secret-ann")
    assert code == 0 and lines[0] == "Access-Accept" and lines[-1] == "reason: ok"


async def test_a_mac_bound_service_with_its_mac(conn: asyncpg.Connection, db_url: str, tmp_path: Path,
                                                daemons: list[Radiusd]) -> None:
    await add_nas(conn)
    await add_service(conn, "bob", "secret-bob", mac="02:00:00:00:00:0b")
    daemon = await start(db_url, tmp_path, daemons)

    code, lines, _ = await radius_test(db_url, tmp_path, daemon, "bob", "secret-bob", "--mac", "02:00:00:00:00:0B")
    assert code == 0 and lines[0] == "Access-Accept", lines
    code, lines, _ = await radius_test(db_url, tmp_path, daemon, "bob", "secret-bob", "--mac", "02:00:00:00:00:01")
    assert lines[-1] == "reason: MAC address does not match the service"
    code, lines, _ = await radius_test(db_url, tmp_path, daemon, "bob", "secret-bob")  # no Calling-Station-Id
    assert (code, lines[-1]) == (1, "reason: MAC address does not match the service")


async def test_a_test_takes_no_pool_address(conn: asyncpg.Connection, db_url: str, tmp_path: Path,
                                            daemons: list[Radiusd]) -> None:
    """A test login of a service on a lastmile pool is decided like a real one, but reserves no
    address: none from the stock, none from the database, none held for the service's next login."""
    await add_nas(conn)
    pool_id = await conn.fetchval("INSERT INTO ip_pools (name, network) VALUES ('dyn', '100.96.0.0/29') RETURNING id")
    service_id = await add_service(conn, "pat", "secret-pat", pool_id=pool_id)
    daemon = await start(db_url, tmp_path, daemons)
    states = "SELECT state, count(*) FROM ip_leases GROUP BY state ORDER BY state"
    before = [tuple(r) for r in await conn.fetch(states)]

    for _ in range(2):
        code, lines, err = await radius_test(db_url, tmp_path, daemon, "pat", "secret-pat")
        assert (code, err) == (0, ""), lines
        assert lines[0] == "Access-Accept"
        assert not any(line.startswith("  Framed-IP-Address") for line in lines)
        assert "  (no Framed-IP-Address: a test takes no address from pool dyn)" in lines
        assert lines[-1] == "reason: ok"
    await asyncio.sleep(0.5)  # a stock hand-out would have been recorded by now
    assert [tuple(r) for r in await conn.fetch(states)] == before
    assert await conn.fetchval("SELECT count(*) FROM ip_leases WHERE service_id = $1", service_id) == 0
    assert daemon.metric("lastmile_radiusd_pool_addresses_total") == 0


async def test_it_sends_what_a_nas_sends(conn: asyncpg.Connection, db_url: str, tmp_path: Path) -> None:
    """The request as a listening socket gets it: the NAS's attributes from the options, any
    attribute of the (site) dictionary from --attr, and the test marker."""
    directory = example_dir(tmp_path, EXAMPLE)
    await add_nas(conn)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(10)
        port = s.getsockname()[1]
        run = radius_test(db_url, tmp_path, None, "ann", "secret-ann", "--port", str(port),
                          "--timeout", "0.2", "--mac", "02:00:00:00:00:0b", "--nas-port", "7", "--nas-ip",
                          "192.0.2.7", "--service-type", "Login-User", "--attr", "Example-Vlan=Guest",
                          "--attr", "Called-Station-Id=pppoe-west", "--attr", "NAS-Port-Type=Ethernet",
                          dictionary_dir=str(directory))
        task = asyncio.create_task(run)
        data = await asyncio.to_thread(s.recv, 4096)
        code, lines, err = await task
    assert (code, lines) == (1, [f"no reply from 127.0.0.1:{port} (radiusd not running, or this "
                                 "host is not a NAS?)"]), err
    request = decode_request(data, SECRET, table=load(str(directory)).table)
    got = request.attributes()
    assert got["User-Name"] == ["ann"] and request.user_password == b"secret-ann"
    assert got["Calling-Station-Id"] == ["02:00:00:00:00:0b"]
    assert got["NAS-Port"] == [7] and got["NAS-IP-Address"] == ["192.0.2.7"]
    assert got["Service-Type"] == ["Login-User"]
    assert got["Example-Vlan"] == ["Guest"]
    assert got["Called-Station-Id"] == ["pppoe-west"]
    assert got["NAS-Port-Type"] == ["Ethernet"]  # --attr replaces the default (Virtual)
    assert "Lastmile-Test-Request" in got


@pytest.mark.parametrize(("args", "problem"), [
    (["--attr", "No-Such-Attribute=1"], "--attr No-Such-Attribute=1: unknown attribute 'No-Such-Attribute'"),
    (["--attr", "NAS-Port=seven"],
     "--attr NAS-Port=seven: NAS-Port: expected an integer or a value name, got 'seven'"),
    (["--attr", "NAS-Port"], "--attr NAS-Port: not NAME=VALUE"),
    (["--nas-port", "-1"], "--nas-port -1: NAS-Port: -1 does not fit integer"),
])
async def test_attributes_that_do_not_fit_are_refused_in_one_line(db_url: str, tmp_path: Path, args: list[str],
                                                                  problem: str) -> None:
    code, lines, err = await radius_test(db_url, tmp_path, None, "ann", "pw", "--secret", "x", *args)
    assert (code, lines) == (2, [])
    assert err.strip() == f"lastmile radius test: {problem}"


async def test_in_a_pipe_that_closes_it_exits_quietly(conn: asyncpg.Connection, db_url: str, tmp_path: Path,
                                                      daemons: list[Radiusd]) -> None:
    """`lastmile radius test ... | head -0`: the reader is gone before the first line. No
    traceback, and no "cannot reach the database ... Broken pipe" (the database is fine)."""
    await add_nas(conn)
    await add_service(conn, "ann", "secret-ann")
    daemon = await start(db_url, tmp_path, daemons)

    def run() -> subprocess.CompletedProcess[bytes]:
        read, write = os.pipe()
        os.close(read)  # the reader left
        try:
            return subprocess.run([sys.executable, "-m", "daemons.cli", "radius", "test", "ann", "secret-ann",
                                   "--port", str(daemon.auth_port)], env=environment(db_url), cwd=tmp_path,
                                  stdout=write, stderr=subprocess.PIPE, timeout=30)
        finally:
            os.close(write)

    result = await asyncio.to_thread(run)
    assert result.stderr == b""
    assert result.returncode == 0  # the test's own answer (Access-Accept), which the reader did not wait for
    shell = await asyncio.to_thread(subprocess.run, f"{sys.executable} -m daemons.cli radius test ann secret-ann "
                                    f"--port {daemon.auth_port} | head -1", shell=True, env=environment(db_url),
                                    cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert (shell.stdout, shell.stderr) == ("Access-Accept\n", "")
