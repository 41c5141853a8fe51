"""The ACS server (acs/server.py) over real HTTP on 127.0.0.1 and a real PostgreSQL.

Most tests run the aiohttp application in the test's own loop (conftest.py's :func:`start`),
driven by raw requests replaying the envelopes of tests/vectors/cwmp (conftest.py's
:class:`HandCpe`: digest computed by hand, with hashlib) or by the CPE double
(tests/fakes/cpe.py); the last ones run the daemon as systemd would (``lastmile acs``) to check
its wiring: NOTIFY, the dry-run loop, HTTPS, the drain.
"""

from __future__ import annotations

import asyncio
import base64
import io
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from acs import plan
from acs.model import Preset
from acs.server import CPE_PASSWORD_PURPOSE, Server
from daemons import db
from tests.conftest import free_port
from tests.fakes.cpe import Cpe
from tests.integration.acs.conftest import (
    KEY,
    KEYRING,
    PASSWORD,
    USER,
    Acs,
    Answer,
    HandCpe,
    identity,
    metric,
    vector,
    without_presets,
)
from tests.integration.daemon import Daemon, start_daemon

pytestmark = pytest.mark.timeout(60)

TR181_DEVICE = "00D09E-HGW%2D181-000002"  # tr181/inform-2-periodic.xml: OUI 00D09E, HGW-181, 000002
GPV_NAMES = ["Device.DeviceInfo.SoftwareVersion", "Device.DeviceInfo.UpTime",
             "Device.ManagementServer.PeriodicInformInterval", "Device.ManagementServer.ConnectionRequestURL"]


async def make_current(pool: asyncpg.Pool, server: Server) -> int:
    """The device of tr181/inform-2-periodic.xml, known and in its declared state (what its first
    sessions left): its next PERIODIC is fast."""
    device_id: int = await pool.fetchval(
        "INSERT INTO acs_devices (cwmp_id, oui, product_class, serial, software_version, presets_key, stale) "
        "VALUES ($1, '00D09E', 'HGW-181', '000002', '2.4.1', $2, false) RETURNING id", TR181_DEVICE,
        server.presets_key)
    return device_id


# --- sessions ------------------------------------------------------------------------------------

async def test_a_periodic_session_replayed_from_the_vectors_is_one_round_trip(
        acs: Acs, http: aiohttp.ClientSession) -> None:
    device_id = await make_current(acs.pool, acs.server)
    fast = metric("lastmile_acs_informs_total", path="fast")
    cpe = HandCpe(http)
    answer = await cpe.post(acs.url, vector("tr181/inform-2-periodic.xml"))
    assert cpe.statuses == [401, 200]
    assert answer.message() == ("InformResponse", "5hrs23bp")  # cwmp:ID echoed
    assert b"<MaxEnvelopes>1</MaxEnvelopes>" in answer.body and cpe.cookie
    assert answer.headers["Content-Type"].startswith("text/xml")
    done = await cpe.post(acs.url, b"")
    assert done.status == 204 and done.body == b""
    assert metric("lastmile_acs_informs_total", path="fast") == fast + 1
    row = await acs.pool.fetchrow("SELECT software_version, hardware_version, connection_request_url, "
                                  "host(address) AS address, last_inform_at, data_model FROM acs_devices "
                                  "WHERE id = $1", device_id)
    assert row is not None and tuple(row[k] for k in ("software_version", "hardware_version", "address",
                                                      "data_model")) == ("2.4.1", "1.0", "127.0.0.1", "tr181")
    assert row["connection_request_url"] == "http://127.0.0.1:48237/" and row["last_inform_at"] is not None
    assert await acs.pool.fetchval("SELECT count(*) FROM acs_live_sessions") == 0  # a fast session: cookie only
    await acs.server.session_log.flush()
    line = await acs.pool.fetchrow("SELECT events, rpcs, outcome, host(address) FROM acs_sessions")
    assert line is not None and tuple(line) == (["2 PERIODIC"], ["Inform"], "ok", "127.0.0.1")


async def test_the_cpe_double_bootstraps_then_informs_in_one_round_trip(acs: Acs) -> None:
    async with Cpe(acs.url, username=USER, password=PASSWORD) as cpe:
        first = await cpe.session("0 BOOTSTRAP", "1 BOOT")
        assert first.outcome == "ok", first.error
        assert first.statuses[0] == 401 and first.statuses[-1] == 204
        assert "SetParameterValues" in first.rpcs  # the default preset: PeriodicInformInterval, ...
        assert cpe.value("Device.ManagementServer.PeriodicInformInterval") == "300"
        second = await cpe.session("2 PERIODIC")
        assert (second.outcome, second.statuses, second.rpcs) == ("ok", [200, 204], [])
        third = await cpe.session("2 PERIODIC", requests=["GetRPCMethods", "TransferComplete"])
        assert third.outcome == "ok" and third.answers == ["InformResponse", "GetRPCMethodsResponse",
                                                           "TransferCompleteResponse"]
        assert third.rpcs == []
    row = await acs.pool.fetchrow("SELECT stale, presets_key, connection_request_username FROM acs_devices")
    assert row is not None and row["stale"] is False and row["presets_key"] == acs.server.presets_key
    assert row["connection_request_username"]


async def test_aiohttps_digest_client_gets_in(acs: Acs) -> None:
    middleware = aiohttp.DigestAuthMiddleware(USER, PASSWORD)
    async with aiohttp.ClientSession(middlewares=(middleware,)) as client, \
            client.post(acs.url, data=vector("tr098/inform-2-periodic.xml")) as r:
        assert r.status == 200 and b"InformResponse" in await r.read()


async def test_wrong_credentials_get_401_and_a_fresh_challenge(acs: Acs, http: aiohttp.ClientSession) -> None:
    refused = metric("lastmile_acs_refused_total", reason="credentials")
    cpe = HandCpe(http, password="guess")
    answer = await cpe.post(acs.url, vector("tr181/inform-2-periodic.xml"))
    assert cpe.statuses == [401, 401] and answer.headers["WWW-Authenticate"].startswith("Digest ")
    assert metric("lastmile_acs_refused_total", reason="credentials") == refused + 1
    basic = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    async with http.post(acs.url, data=vector("tr181/inform-2-periodic.xml"), headers=basic) as r:
        assert r.status == 401  # Basic over plain HTTP: never
    async with Cpe(acs.url, username=USER, password="guess") as double:
        assert (await double.session()).outcome == "unauthorized"
    assert await acs.pool.fetchval("SELECT count(*) FROM acs_devices") == 0


async def test_a_device_with_its_own_password(acs: Acs, http: aiohttp.ClientSession) -> None:
    async with Cpe(acs.url, serial="A1") as a, Cpe(acs.url, serial="B2", username=USER, password=PASSWORD) as b:
        await acs.pool.execute(
            "INSERT INTO acs_devices (cwmp_id, oui, product_class, serial, cpe_password) VALUES ($1, $2, $3, $4, $5)",
            identity(a), a.oui, a.product_class, "A1", KEYRING.seal("own-A", CPE_PASSWORD_PURPOSE))
        await acs.server.reload_credentials([identity(a)])
        a.nodes[a._ms("Username")].value, a.nodes[a._ms("Password")].value = identity(a), "own-A"
        assert (await a.session()).outcome == "ok"
        # A's credentials are A's: B cannot use them, and A no longer takes the global ones
        b.nodes[b._ms("Username")].value, b.nodes[b._ms("Password")].value = identity(a), "own-A"
        assert (await b.session()).outcome == "unauthorized"
        a.nodes[a._ms("Username")].value, a.nodes[a._ms("Password")].value = USER, PASSWORD
        a._digest = None
        assert (await a.session()).outcome == "unauthorized"
    assert await acs.pool.fetchval("SELECT count(*) FROM acs_devices") == 1


async def test_a_username_template_ties_each_cpe_to_its_own_name(acs_factory: Callable[..., Awaitable[Acs]]) -> None:
    acs = await acs_factory(username="cpe-{serial}", password=PASSWORD)
    async with Cpe(acs.url, serial="S1", username="cpe-S1", password=PASSWORD) as own, \
            Cpe(acs.url, serial="S2", username="cpe-S1", password=PASSWORD) as borrowed:
        assert (await own.session()).outcome == "ok"
        assert (await borrowed.session()).outcome == "unauthorized"  # S1's name does not let S2 in
    assert await acs.pool.fetchval("SELECT array_agg(serial) FROM acs_devices") == ["S1"]


async def test_addresses_outside_allow_networks_get_403(acs_factory: Callable[..., Awaitable[Acs]],
                                                        http: aiohttp.ClientSession) -> None:
    closed = await acs_factory(allow_networks=("10.0.0.0/8",))
    async with http.post(closed.url, data=vector("tr181/inform-2-periodic.xml")) as r:
        assert r.status == 403
    opened = await acs_factory(allow_networks=("10.0.0.0/8", "127.0.0.0/8"))
    async with http.post(opened.url, data=vector("tr181/inform-2-periodic.xml")) as r:
        assert r.status == 401


async def test_auth_none_lets_any_device_in(acs_factory: Callable[..., Awaitable[Acs]],
                                            http: aiohttp.ClientSession) -> None:
    acs = await acs_factory(auth="none", username="", password="")
    answer = await HandCpe(http).post(acs.url, vector("tr098/inform-2-periodic.xml"), authenticate=False)
    assert answer.status == 200 and answer.message()[0] == "InformResponse"


BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + b"".join(b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10 if i > 1 else b"&lol;" * 10)
                             for i in range(1, 10))
                  + b']><soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/">'
                  b"<soap-env:Body>&lol9;</soap-env:Body></soap-env:Envelope>")


async def test_hostile_and_malformed_bodies_get_400_never_500(acs: Acs, http: aiohttp.ClientSession) -> None:
    hostile = metric("lastmile_acs_refused_total", reason="hostile")
    started = time.monotonic()
    async with http.post(acs.url, data=BILLION_LAUGHS) as r:
        assert r.status == 400
    xxe = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
           + vector("tr181/inform-2-periodic.xml").split(b"?>", 1)[1].replace(b"<Manufacturer>ExampleVendor",
                                                                             b"<Manufacturer>&e;"))
    async with http.post(acs.url, data=xxe) as r:
        assert r.status == 400 and b"root:" not in await r.read()
    assert time.monotonic() - started < 1.0
    assert metric("lastmile_acs_refused_total", reason="hostile") == hostile + 2
    # malformed with a readable cwmp:ID: a Fault that echoes it
    broken = vector("tr181/inform-2-periodic.xml").replace(b"<MaxEnvelopes>1</MaxEnvelopes>",
                                                           b"<MaxEnvelopes>many</MaxEnvelopes>")
    async with http.post(acs.url, data=broken) as r:
        answer = Answer(r.status, r.headers, await r.read())
    assert answer.status == 400 and answer.message() == ("Fault", "5hrs23bp")
    for junk in (b"<not xml", b"\xff\xfe", b"<a>not an envelope</a>"):
        async with http.post(acs.url, data=junk) as r:
            assert r.status == 400
    async with http.post(acs.url, data=io.BytesIO(b"x" * (4 << 20 | 1))) as r:
        assert r.status == 413


async def test_a_body_that_trickles_in_is_cut_off(acs_factory: Callable[..., Awaitable[Acs]]) -> None:
    acs = await acs_factory(read_timeout=0.3)
    port = int(acs.url.split(":")[2].split("/")[0])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /cwmp HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n<soap")
    await writer.drain()
    started = time.monotonic()
    status = await asyncio.wait_for(reader.readline(), 3)
    assert status.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 1.5
    writer.close()


async def test_requests_without_a_session(acs: Acs, http: aiohttp.ClientSession) -> None:
    cpe = HandCpe(http)
    answer = await cpe.post(acs.url, vector("tr181/transfercomplete.xml"))
    assert answer.status == 200 and answer.message() == ("Fault", "1bvjizyv") and b"8003" in answer.body
    assert (await cpe.post(acs.url, b"")).status == 204
    cpe.cookie = "forged.cookie"
    assert (await cpe.post(acs.url, vector("tr181/transfercomplete.xml"))).message()[0] == "Fault"
    assert await acs.pool.fetchval("SELECT count(*) FROM acs_devices") == 0


async def test_admission_control_refuses_new_sessions_only(acs_factory: Callable[..., Awaitable[Acs]],
                                                           http: aiohttp.ClientSession) -> None:
    acs = await acs_factory(max_new_sessions=1, retry_after=10)
    await make_current(acs.pool, acs.server)
    cpe = HandCpe(http)
    assert (await cpe.post(acs.url, vector("tr181/inform-2-periodic.xml"))).status == 200
    acs.server.informing = 1  # as if one Inform were being processed
    try:
        async with http.post(acs.url, data=vector("tr098/inform-2-periodic.xml")) as r:
            assert r.status == 503 and 10 <= int(r.headers["Retry-After"]) <= 15
        assert (await cpe.post(acs.url, b"")).status == 204  # a session already open goes on
    finally:
        acs.server.informing = 0
    assert metric("lastmile_acs_busy_total", reason="admission") >= 1


async def test_one_session_per_device(acs: Acs, http: aiohttp.ClientSession) -> None:
    await make_current(acs.pool, acs.server)
    first, second = HandCpe(http), HandCpe(http)
    assert (await first.post(acs.url, vector("tr181/inform-2-periodic.xml"))).status == 200
    busy = await second.post(acs.url, vector("tr181/inform-2-periodic.xml"))
    assert busy.status == 503 and "Retry-After" in busy.headers
    # the same CPE informing again with its session's cookie gave that session up: it takes over
    again = await first.post(acs.url, vector("tr181/inform-2-periodic.xml"))
    assert again.status == 200 and (await first.post(acs.url, b"")).status == 204
    assert (await second.post(acs.url, vector("tr181/inform-2-periodic.xml"))).status == 200


async def test_two_instances_carry_one_slow_session(acs_factory: Callable[..., Awaitable[Acs]],
                                                    http: aiohttp.ClientSession) -> None:
    a, b = await acs_factory(), await acs_factory()
    for acs in (a, b):
        await without_presets(acs)
    device_id = await make_current(a.pool, a.server)
    tasks = [await a.pool.fetchval("INSERT INTO acs_tasks (device_id, kind, args) VALUES ($1, 'get', $2) "
                                   "RETURNING id", device_id, {"names": GPV_NAMES}) for _ in range(2)]
    cpe = HandCpe(http)
    assert (await cpe.post(a.url, vector("tr181/inform-2-periodic.xml"))).message()[0] == "InformResponse"
    assert await a.pool.fetchval("SELECT count(*) FROM acs_live_sessions") == 1
    rpc = await cpe.post(b.url, b"")  # B never saw the session: it loads it from acs_live_sessions
    method, cwmp_id = rpc.message()
    assert method == "GetParameterValues" and cwmp_id
    rpc = await cpe.post(a.url, vector("tr181/getparametervaluesresponse.xml", cwmp_id))  # A's copy is stale now
    method, cwmp_id = rpc.message()
    assert method == "GetParameterValues"
    done = await cpe.post(b.url, vector("tr181/getparametervaluesresponse.xml", cwmp_id))
    assert done.status == 204
    statuses = await a.pool.fetch("SELECT status FROM acs_tasks WHERE id = ANY($1::bigint[])", tasks)
    assert [r["status"] for r in statuses] == ["done", "done"]
    assert await a.pool.fetchval("SELECT value FROM acs_parameters WHERE device_id = $1 AND path = $2",
                                 device_id, "Device.ManagementServer.PeriodicInformInterval") == "300"
    assert await a.pool.fetchval("SELECT count(*) FROM acs_live_sessions") == 0
    await b.server.session_log.flush()
    assert await a.pool.fetchval("SELECT rpcs FROM acs_sessions") == ["Inform", "GetParameterValues",
                                                                      "GetParameterValues"]
    # a replayed old step is not taken for the session any more
    assert (await cpe.post(b.url, vector("tr181/getparametervaluesresponse.xml", cwmp_id))).status in (200, 204)


async def test_a_transfer_complete_in_a_fast_session_ends_its_task(acs: Acs, http: aiohttp.ClientSession) -> None:
    device_id = await make_current(acs.pool, acs.server)
    task = await acs.pool.fetchval("INSERT INTO acs_tasks (device_id, kind, args, status, command_key) "
                                   "VALUES ($1, 'download', '{\"url\": \"http://192.0.2.1/fw\"}', 'waiting', 'fw-1') "
                                   "RETURNING id", device_id)
    cpe = HandCpe(http)
    await cpe.post(acs.url, vector("tr181/inform-2-periodic.xml"))
    answer = await cpe.post(acs.url, vector("tr181/transfercomplete.xml"))
    assert answer.message() == ("TransferCompleteResponse", "1bvjizyv")
    assert await acs.pool.fetchval("SELECT status FROM acs_tasks WHERE id = $1", task) == "done"
    assert (await cpe.post(acs.url, b"")).status == 204
    await acs.server.session_log.flush()
    assert await acs.pool.fetchval("SELECT rpcs FROM acs_sessions") == ["Inform", "TransferComplete"]


async def test_the_dry_run_of_a_draft_preset(acs: Acs) -> None:
    device_id = await make_current(acs.pool, acs.server)
    draft: dict[str, Any] = {"match": {"data_model": "tr181"},
                             "actions": [{"set": "@wifi.ssid", "value": "Home {{ device.serial }}"}]}
    good = await acs.pool.fetchval("INSERT INTO acs_dry_runs (device_id, preset) VALUES ($1, $2) RETURNING id",
                                   device_id, draft)
    bad = await acs.pool.fetchval("INSERT INTO acs_dry_runs (device_id, preset) VALUES ($1, $2) RETURNING id",
                                  device_id, {"actions": [{"explode": True}]})
    assert await acs.server.dry_runs() == 2 and await acs.server.dry_runs() == 0
    row = await acs.pool.fetchrow("SELECT status, result FROM acs_dry_runs WHERE id = $1", good)
    assert row is not None and row["status"] == "done"
    assert row["result"]["matched"] == [{"id": 0, "name": "draft"}]
    assert row["result"]["values"]["Device.WiFi.SSID.1.SSID"][0] == "Home 000002"
    assert row["result"]["presets_key"] == plan.presets_key([Preset(0, "draft", 0, draft["match"], draft["actions"])])
    row = await acs.pool.fetchrow("SELECT status, result FROM acs_dry_runs WHERE id = $1", bad)
    assert row is not None and row["status"] == "failed" and row["result"]["errors"]


# --- the daemon, as systemd runs it ----------------------------------------------------------------

@dataclass
class AcsDaemon(Daemon):
    url: str = ""


def self_signed(tmp: Path) -> tuple[Path, Path] | None:
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
async def daemon(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[AcsDaemon, int]]:
    (tmp_path / "secret.key").write_text(base64.b64encode(KEY).decode() + "\n")
    (tmp_path / "acs-password").write_text(PASSWORD + "\n")
    port, tls_port = free_port(), free_port()
    env = {"LASTMILE_SECRETS__KEY_FILE": str(tmp_path / "secret.key"), "LASTMILE_ACS__BIND": "127.0.0.1",
           "LASTMILE_ACS__PORT": str(port), "LASTMILE_ACS__USERNAME": USER,
           "LASTMILE_ACS__PASSWORD_FILE": str(tmp_path / "acs-password")}
    pair = self_signed(tmp_path)
    if pair is not None:
        env.update(LASTMILE_ACS__TLS_PORT=str(tls_port), LASTMILE_ACS__TLS_CERT_FILE=str(pair[0]),
                   LASTMILE_ACS__TLS_KEY_FILE=str(pair[1]))
    d = await asyncio.to_thread(start_daemon, AcsDaemon, "acs", db_url, tmp_path, env,
                                url=f"http://127.0.0.1:{port}/")
    yield d, tls_port if pair is not None else 0
    d.stop()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_the_daemon(daemon: tuple[AcsDaemon, int], db_url: str) -> None:
    d, tls_port = daemon
    conn = await db.connect(db_url)
    try:
        async with Cpe(d.url, username=USER, password=PASSWORD) as cpe:
            assert (await cpe.session("0 BOOTSTRAP", "1 BOOT")).outcome == "ok"
            periodic = await cpe.session()
            assert (periodic.outcome, periodic.statuses, periodic.rpcs) == ("ok", [200, 204], [])
            # a device's own password, set in the database, reaches the daemon by NOTIFY
            assert await conn.fetchval("UPDATE acs_devices SET cpe_password = $2 WHERE cwmp_id = $1 RETURNING id",
                                       identity(cpe), KEYRING.seal("own", CPE_PASSWORD_PURPOSE))
            cpe.nodes[cpe._ms("Username")].value, cpe.nodes[cpe._ms("Password")].value = identity(cpe), "own"
            cpe._digest = None

            async def own_password_works() -> bool:
                return (await cpe.session()).outcome == "ok"

            await eventually(own_password_works)
        device_id = await conn.fetchval("SELECT id FROM acs_devices")
        run = await conn.fetchval("INSERT INTO acs_dry_runs (device_id, preset) VALUES ($1, $2) RETURNING id",
                                  device_id, {"actions": [{"set": "@wifi.ssid", "value": "x"}]})

        async def dry_run_done() -> bool:
            return bool(await conn.fetchval("SELECT status = 'done' FROM acs_dry_runs WHERE id = $1", run))

        await eventually(dry_run_done, 3.0)  # by NOTIFY, well before the poll
        if tls_port:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            basic = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
            async with aiohttp.ClientSession() as client, client.post(
                    f"https://127.0.0.1:{tls_port}/", data=vector("tr098/inform-2-periodic.xml"), headers=basic,
                    ssl=context) as r:
                assert r.status == 200 and b"InformResponse" in await r.read()  # Basic over HTTPS: accepted
        assert d.metric("lastmile_acs_informs_total", path="fast") >= 2
        assert d.metric("lastmile_acs_sessions_total", event="0 BOOTSTRAP") == 1
        assert d.metric("lastmile_acs_rpcs_total", method="SetParameterValues") >= 1
    finally:
        await conn.close()
    assert d.stop() == 0
    lines = d.logs()
    assert any(line.get("event") == "cwmp listening" and line.get("auth") == "digest" for line in lines)
    assert any(line.get("event") == "drained" and line.get("step") == "inform-writer" for line in lines)
    assert await asyncpg_count(db_url, "SELECT count(*) FROM acs_sessions") >= 3  # flushed on the way out


async def asyncpg_count(url: str, sql: str) -> int:
    conn = await db.connect(url)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def test_bad_settings_stop_the_daemon_with_one_line(tmp_path: Path) -> None:
    env = {"LASTMILE_ACS__TLS_PORT": "7548"}
    proc = await asyncio.create_subprocess_exec(
        str(Path(__file__).resolve().parents[3] / ".venv" / "bin" / "lastmile"), "acs", cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert err.decode().strip().splitlines() == [
        "lastmile: bad settings: acs.tls_port = 7548 needs acs.tls_cert_file and acs.tls_key_file"]
