"""radiusd's CoA and Disconnect (RFC 5176) end to end, against a NAS double on the wire.

A real radiusd process gets a live session through an Accounting-Start; a change in the
database (a tariff, a customer's status) must reach the NAS as a CoA-Request or
Disconnect-Request built from that session, and the NAS's answer (ACK, NAK, silence) must end
up on the coa_requests row, on the session and in the metrics. The `lastmile radius` tools are
run as the NOC runs them: as a command.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pyrad.packet import AccountingResponse

from radiusd.codec import Code
from tests.fakes.nas import FakeNas, Policy
from tests.integration.radius_env import (
    ROOT,
    SECRET,
    Radiusd,
    accounting_request,
    add_nas,
    add_service,
    client,
    eventually,
    send,
    start_radiusd,
    unique_id,
)

LOGIN = "alice"
PASSWORD = "correct horse"
SESSION_ID = "81a00001"
FRAMED_IP = "100.64.0.10"
# add_service's tariff: 50/10 Mbit/s, bursts 100/20 above 40/8 for 16 s, priority 8.
OLD_RATE = "10M/50M 20M/100M 8M/40M 16/16 8"
# The tariff the service moves to (rx/tx is the router's view: the subscriber's upload first).
NEW_RATE = "20M/100M 40M/200M 16M/80M 8/8 5"



@pytest.fixture
def daemons() -> Iterator[list[Radiusd]]:
    """The radiusd processes a test started; stopped after it whatever happens."""
    started: list[Radiusd] = []
    yield started
    for daemon in started:
        daemon.stop()


async def start(db_url: str, tmp_path: Path, daemons: list[Radiusd], **settings: str) -> Radiusd:
    # Short CoA timers so that a silent NAS costs a second, not six.
    settings = {"coa_timeout": "0.3", "coa_retries": "3", **settings}
    daemon = await asyncio.to_thread(lambda: start_radiusd(db_url, tmp_path, None, **settings))
    daemons.append(daemon)
    return daemon


async def online(conn: asyncpg.Connection, db_url: str, tmp_path: Path, nas: FakeNas, daemons: list[Radiusd],
                 **settings: str) -> tuple[Radiusd, int]:
    """A NAS whose CoA port is the double, a service, radiusd, and the service's live session."""
    await add_nas(conn, coa_port=nas.port)
    service_id = await add_service(conn, LOGIN, PASSWORD)
    daemon = await start(db_url, tmp_path, daemons, **settings)
    c = client(daemon)
    reply = await send(c, accounting_request(c, LOGIN, "Start", SESSION_ID, Framed_IP_Address=FRAMED_IP))
    assert reply.code == AccountingResponse
    # An Accounting-Response follows the COMMIT: the session is there now.
    row = await conn.fetchrow("SELECT service_id, nas_id, stopped_at FROM radius_sessions WHERE acct_unique_id = $1",
                              unique_id(LOGIN, SESSION_ID))
    assert row is not None and row["service_id"] == service_id and row["nas_id"] is not None
    assert row["stopped_at"] is None
    return daemon, service_id


async def add_fast_tariff(conn: asyncpg.Connection) -> int:
    tariff_id: int = await conn.fetchval(
        "INSERT INTO tariffs (name, download_kbps, upload_kbps, burst_download_kbps, burst_upload_kbps, "
        "burst_threshold_download_kbps, burst_threshold_upload_kbps, burst_time_s, priority) "
        "VALUES ('Fast 100', 100000, 20000, 200000, 40000, 80000, 16000, 8, 5) RETURNING id")
    return tariff_id


async def finished(conn: asyncpg.Connection, service_id: int, timeout: float = 6.0) -> Any:
    """The service's one coa_requests row, once radiusd has answered it."""
    row = await eventually(lambda: conn.fetchrow(
        "SELECT action, state, result, attempts FROM coa_requests "
        "WHERE service_id = $1 AND state IN ('done', 'failed')",
        service_id), timeout)
    assert await conn.fetchval("SELECT count(*) FROM coa_requests WHERE service_id = $1", service_id) == 1
    return row


async def session_coa(conn: asyncpg.Connection) -> Any:
    return await conn.fetchrow("SELECT last_coa_at, last_coa_result FROM radius_sessions WHERE acct_unique_id = $1",
                               unique_id(LOGIN, SESSION_ID))


def assert_identifies_the_session(got: Any) -> None:
    assert got.get("User-Name") == LOGIN
    assert got.get("Acct-Session-Id") == SESSION_ID
    assert got.get("Framed-IP-Address") == FRAMED_IP
    assert got.has_message_authenticator
    stamp = got.get("Event-Timestamp")
    assert isinstance(stamp, int) and abs(stamp - time.time()) < 60


async def test_tariff_change_sends_a_coa_with_the_new_rate(conn: asyncpg.Connection, db_url: str, tmp_path: Path,
                                                          nas: FakeNas, daemons: list[Radiusd]) -> None:
    daemon, service_id = await online(conn, db_url, tmp_path, nas, daemons)
    await conn.execute("UPDATE services SET tariff_id = $1 WHERE id = $2", await add_fast_tariff(conn), service_id)

    request = await finished(conn, service_id)
    assert dict(request) == {"action": "rate", "state": "done", "result": "ack", "attempts": 1}
    [got] = nas.received
    assert got.code == Code.COA_REQUEST
    assert got.get("Mikrotik-Rate-Limit") == NEW_RATE != OLD_RATE
    assert_identifies_the_session(got)
    assert got.reply is not None and got.reply[0] == Code.COA_ACK
    assert nas.invalid == []
    session = await session_coa(conn)
    assert session["last_coa_result"] == "ack" and session["last_coa_at"] is not None
    assert daemon.metric("lastmile_radiusd_coa_total", action="rate", result="ack") == 1


async def test_a_nak_is_recorded_with_its_error_cause(conn: asyncpg.Connection, db_url: str, tmp_path: Path,
                                                      nas: FakeNas, daemons: list[Radiusd]) -> None:
    nas.policy = Policy.nak(503)
    daemon, service_id = await online(conn, db_url, tmp_path, nas, daemons)
    await conn.execute("UPDATE services SET tariff_id = $1 WHERE id = $2", await add_fast_tariff(conn), service_id)

    request = await finished(conn, service_id)
    assert (request["state"], request["result"]) == ("failed", "nak:Session-Context-Not-Found")
    [got] = nas.received
    assert got.reply is not None and got.reply[0] == Code.COA_NAK
    assert (await session_coa(conn))["last_coa_result"] == "nak:Session-Context-Not-Found"
    assert daemon.metric("lastmile_radiusd_coa_total", action="rate", result="nak") == 1


async def test_a_silent_nas_gets_the_same_bytes_again_then_a_timeout(
        conn: asyncpg.Connection, db_url: str, tmp_path: Path, nas: FakeNas, daemons: list[Radiusd]) -> None:
    nas.policy = Policy.silent()
    daemon, service_id = await online(conn, db_url, tmp_path, nas, daemons, coa_timeout="0.3", coa_retries="3")
    await conn.execute("UPDATE services SET tariff_id = $1 WHERE id = $2", await add_fast_tariff(conn), service_id)

    request = await finished(conn, service_id)
    assert (request["state"], request["result"]) == ("failed", "timeout")
    copies = nas.received
    assert len(copies) == 3  # coa_retries attempts in all
    assert request["attempts"] == 3  # every send counts, retransmissions included
    # RFC 5176 section 3.4: a retransmission keeps the Identifier and the Event-Timestamp, so the
    # very same octets (and the same Request Authenticator) go out again.
    assert len({c.data for c in copies}) == 1
    assert len({c.identifier for c in copies}) == 1
    assert [c.copy for c in copies] == [1, 2, 3]
    gaps = [b.at - a.at for a, b in itertools.pairwise(copies)]
    assert all(0.2 <= gap < 2.0 for gap in gaps), gaps  # a coa_timeout (0.3 s) apart
    assert (await session_coa(conn))["last_coa_result"] == "timeout"
    assert daemon.metric("lastmile_radiusd_coa_total", action="rate", result="timeout") == 1


async def test_an_answer_to_a_retransmission_counts(conn: asyncpg.Connection, db_url: str, tmp_path: Path,
                                                    nas: FakeNas, daemons: list[Radiusd]) -> None:
    nas.policy = Policy.ack_after(2)
    _, service_id = await online(conn, db_url, tmp_path, nas, daemons)
    await conn.execute("UPDATE services SET tariff_id = $1 WHERE id = $2", await add_fast_tariff(conn), service_id)

    request = await finished(conn, service_id)
    assert (request["state"], request["result"], request["attempts"]) == ("done", "ack", 3)
    copies = nas.received
    assert [c.copy for c in copies] == [1, 2, 3] and len({c.data for c in copies}) == 1
    assert [c.reply is not None for c in copies] == [False, False, True]


@pytest.mark.parametrize(("block_method", "code", "attribute"), [
    ("disconnect", Code.DISCONNECT_REQUEST, None),
    ("coa", Code.COA_REQUEST, ("Mikrotik-Address-List", "blocked")),
], ids=["disconnect", "coa"])
async def test_blocking_the_customer_reaches_the_live_session(
        conn: asyncpg.Connection, db_url: str, tmp_path: Path, nas: FakeNas, daemons: list[Radiusd],
        block_method: str, code: int, attribute: tuple[str, str] | None) -> None:
    daemon, service_id = await online(conn, db_url, tmp_path, nas, daemons, block_method=block_method)
    await conn.execute("UPDATE customers SET status = 'blocked' "
                       "WHERE id = (SELECT customer_id FROM services WHERE id = $1)", service_id)

    request = await finished(conn, service_id)
    assert dict(request) == {"action": "block", "state": "done", "result": "ack", "attempts": 1}
    [got] = nas.received
    assert got.code == code
    assert_identifies_the_session(got)
    assert got.get("Mikrotik-Rate-Limit") is None
    if attribute is None:
        assert got.get("Mikrotik-Address-List") is None
    else:
        assert got.get(attribute[0]) == attribute[1]
    assert daemon.metric("lastmile_radiusd_coa_total", action="block", result="ack") == 1


async def test_a_service_without_a_live_session_sends_nothing(conn: asyncpg.Connection, db_url: str, tmp_path: Path,
                                                              nas: FakeNas, daemons: list[Radiusd]) -> None:
    daemon, service_id = await online(conn, db_url, tmp_path, nas, daemons)
    c = client(daemon)
    reply = await send(c, accounting_request(c, LOGIN, "Stop", SESSION_ID, Framed_IP_Address=FRAMED_IP,
                                             Acct_Session_Time=60))
    assert reply.code == AccountingResponse
    await conn.execute("UPDATE services SET tariff_id = $1 WHERE id = $2", await add_fast_tariff(conn), service_id)

    request = await finished(conn, service_id)
    assert dict(request) == {"action": "rate", "state": "done", "result": "no live session", "attempts": 0}
    await asyncio.sleep(0.3)
    assert nas.received == []


async def test_a_forged_answer_does_not_decide_the_result(conn: asyncpg.Connection, db_url: str, tmp_path: Path,
                                                          nas: FakeNas, daemons: list[Radiusd]) -> None:
    """A reply whose Response Authenticator does not verify cannot be attributed to the NAS: it
    must be discarded silently, as RADIUS does with every packet that fails authentication, and
    the real answer awaited, not taken as the result. Otherwise anyone who can put a datagram
    with the NAS's source address and the right Identifier on the wire decides the outcome of
    a CoA (and a garbled datagram alone turns an ACK into a failure)."""
    nas.policy = Policy(spoof_first=True)
    _, service_id = await online(conn, db_url, tmp_path, nas, daemons)
    await conn.execute("UPDATE services SET tariff_id = $1 WHERE id = $2", await add_fast_tariff(conn), service_id)

    request = await finished(conn, service_id)
    assert (request["state"], request["result"]) == ("done", "ack")


async def test_a_nas_entered_as_a_prefix_gets_the_coa_at_its_own_address(
        conn: asyncpg.Connection, db_url: str, tmp_path: Path, nas: FakeNas, daemons: list[Radiusd]) -> None:
    """A NAS row may name a prefix (several BRAS sharing one secret: schema.sql, table nas). The
    CoA must go to the address the session's NAS has (its NAS-IP-Address / the source of its
    accounting), not to the prefix's network address."""
    await add_nas(conn, address="127.0.0.0/8", coa_port=nas.port)
    service_id = await add_service(conn, LOGIN, PASSWORD)
    daemon = await start(db_url, tmp_path, daemons)
    c = client(daemon)
    reply = await send(c, accounting_request(c, LOGIN, "Start", SESSION_ID, Framed_IP_Address=FRAMED_IP))
    assert reply.code == AccountingResponse
    await conn.execute("UPDATE services SET tariff_id = $1 WHERE id = $2", await add_fast_tariff(conn), service_id)

    request = await finished(conn, service_id)
    assert (request["state"], request["result"]) == ("done", "ack")
    [got] = nas.received
    assert got.get("Mikrotik-Rate-Limit") == NEW_RATE


# -- the `lastmile radius` tools ---------------------------------------------------------------------


async def lastmile(db_url: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    """Run `lastmile ARGS` as a command; its exit code and output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    env.update(PYTHONPATH=str(ROOT), LASTMILE_DATABASE__URL=db_url, LASTMILE_RADIUSD__COA_TIMEOUT="0.3",
               LASTMILE_RADIUSD__COA_RETRIES="2")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "daemons.cli", *args, env=env, cwd=tmp_path,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def insert_live_session(conn: asyncpg.Connection, service_id: int, nas_id: int) -> None:
    await conn.execute(
        "INSERT INTO radius_sessions (acct_unique_id, started_at, service_id, nas_id, username, acct_session_id, "
        "framed_ip, updated_at) VALUES ($1, now() - interval '5 minutes', $2, $3, $4, $5, $6, now())",
        unique_id(LOGIN, SESSION_ID), service_id, nas_id, LOGIN, SESSION_ID, FRAMED_IP)


@pytest.mark.parametrize(("policy", "result", "exit_code"), [
    (Policy.ack(), "ack", 0),
    (Policy.nak(503), "nak:Session-Context-Not-Found", 1),
], ids=["ack", "nak"])
async def test_radius_disconnect_command(conn: asyncpg.Connection, db_url: str, tmp_path: Path, nas: FakeNas,
                                         policy: Policy, result: str, exit_code: int) -> None:
    nas.policy = policy
    nas_id = await add_nas(conn, coa_port=nas.port)
    service_id = await add_service(conn, LOGIN, PASSWORD)
    await insert_live_session(conn, service_id, nas_id)

    code, out = await lastmile(db_url, tmp_path, "radius", "disconnect", LOGIN)

    assert code == exit_code, out
    assert f"{LOGIN}: session {SESSION_ID} on nas-1 ({FRAMED_IP}): {result}" in out
    [got] = nas.received
    assert got.code == Code.DISCONNECT_REQUEST
    assert_identifies_the_session(got)
    assert (await session_coa(conn))["last_coa_result"] == result


async def test_radius_disconnect_command_without_a_session(conn: asyncpg.Connection, db_url: str, tmp_path: Path,
                                                           nas: FakeNas) -> None:
    await add_nas(conn, coa_port=nas.port)
    await add_service(conn, LOGIN, PASSWORD)
    code, out = await lastmile(db_url, tmp_path, "radius", "disconnect", LOGIN)
    assert (code, out.strip()) == (1, f"{LOGIN}: no live session")
    code, out = await lastmile(db_url, tmp_path, "radius", "disconnect", "nobody")
    assert (code, out.strip()) == (2, "no service with login 'nobody'")
    assert nas.received == []


@pytest.mark.parametrize("with_secret", [True, False], ids=["--secret", "secret-from-database"])
async def test_radius_test_command(conn: asyncpg.Connection, db_url: str, tmp_path: Path, daemons: list[Radiusd],
                                   with_secret: bool) -> None:
    await add_nas(conn)
    await add_service(conn, LOGIN, PASSWORD)
    daemon = await start(db_url, tmp_path, daemons)
    options = ["--port", str(daemon.auth_port)] + (["--secret", SECRET.decode()] if with_secret else [])

    code, out = await lastmile(db_url, tmp_path, "radius", "test", LOGIN, PASSWORD, *options)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "Access-Accept"
    assert f"  Mikrotik-Rate-Limit = {OLD_RATE}" in lines
    assert "  Service-Type = Framed-User" in lines
    assert "  Acct-Interim-Interval = 300" in lines

    code, out = await lastmile(db_url, tmp_path, "radius", "test", LOGIN, "wrong password", *options)
    assert code == 1, out
    assert out.splitlines() == ["Access-Reject", "  Reply-Message = Login incorrect", "reason: wrong password"]

