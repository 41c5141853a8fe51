"""Whole CWMP sessions end to end: the real Server (aiohttp on 127.0.0.1, conftest.py's
:func:`start`), a real PostgreSQL, and the CPE double of tests/fakes/cpe.py (or the recorded
envelopes of tests/vectors/cwmp, posted by hand).

Each test queues work as the admin does (a row of acs_tasks, a row of acs_wakeups), lets the
CPE inform, and checks both sides: what the CPE was asked and now holds, and what PostgreSQL
holds afterwards (acs_devices, acs_parameters, acs_tasks, acs_faults, the acs_sessions log).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest

from acs import datamodel, store, tasks, wakeup
from acs.model import DataModel
from daemons.config import MqttSettings
from daemons.events import EventPublisher
from tests.fakes.cpe import CWMP_1_4, TR098, TR181, Cpe, SessionRecord
from tests.integration.acs.conftest import (
    KEYRING,
    PASSWORD,
    USER,
    Acs,
    HandCpe,
    identity,
    vector,
    without_presets,
)
from tests.integration.conftest import Broker, cancel, eventually
from tests.integration.test_events import subscribe

pytestmark = pytest.mark.timeout(30)

FIRMWARE = bytes(range(256)) * 40  # 10 KiB


# --- helpers ------------------------------------------------------------------------------------

@pytest.fixture
async def cpe(acs: Acs) -> AsyncIterator[Cpe]:
    """A TR-181 CPE that has bootstrapped against ``acs`` (the default preset applied)."""
    async with Cpe(acs.url, username=USER, password=PASSWORD) as cpe:
        first = await cpe.session("0 BOOTSTRAP", "1 BOOT")
        assert first.outcome == "ok", first.error
        yield cpe


async def device_of(acs: Acs, cpe: Cpe) -> int:
    device_id: int = await acs.pool.fetchval("SELECT id FROM acs_devices WHERE cwmp_id = $1", identity(cpe))
    return device_id


async def queue(acs: Acs, device_id: int, kind: str, args: dict[str, Any], max_attempts: int = 5) -> int:
    """A task as the admin queues one (admin/devices/queries.py create_task, args checked first)."""
    assert tasks.check_args(kind, args) == []
    task_id: int = await acs.pool.fetchval(
        "INSERT INTO acs_tasks (device_id, kind, args, max_attempts, created_by) VALUES ($1, $2, $3, $4, 'test') "
        "RETURNING id", device_id, kind, args, max_attempts)
    return task_id


async def task_row(acs: Acs, task_id: int) -> asyncpg.Record:
    row = await acs.pool.fetchrow(
        "SELECT status, attempts, command_key, result, fault_code, fault_string, finished_at, "
        "extract(epoch FROM not_before - updated_at)::float8 AS backoff FROM acs_tasks WHERE id = $1", task_id)
    assert row is not None
    return row


async def tree(acs: Acs, device_id: int, prefix: str = "") -> dict[str, str | None]:
    rows = await acs.pool.fetch("SELECT path, value FROM acs_parameters WHERE device_id = $1 "
                                "AND left(path, length($2)) = $2", device_id, prefix)
    return {r["path"]: r["value"] for r in rows}


async def last_log(acs: Acs) -> tuple[list[str], list[str], list[str], str]:
    """(events, rpcs, faults, outcome) of the newest line of the access log."""
    await acs.server.session_log.flush()
    row = await acs.pool.fetchrow("SELECT events, rpcs, faults, outcome FROM acs_sessions "
                                  "ORDER BY started_at DESC LIMIT 1")
    assert row is not None
    return row["events"], row["rpcs"], row["faults"], row["outcome"]


def ok(record: SessionRecord) -> SessionRecord:
    assert record.outcome == "ok", record.error
    assert record.statuses[-1] == 204
    return record


async def run_task(acs: Acs, cpe: Cpe, kind: str, args: dict[str, Any]) -> tuple[int, SessionRecord]:
    """Queue a task on the bootstrapped ``cpe`` and let it inform (2 PERIODIC)."""
    task_id = await queue(acs, await device_of(acs, cpe), kind, args)
    return task_id, ok(await cpe.session("2 PERIODIC"))


# --- 1. tasks of every kind ---------------------------------------------------------------------

async def test_a_get_task_reads_values_into_the_tree(acs: Acs, cpe: Cpe) -> None:
    task_id, record = await run_task(acs, cpe, "get", {"names": ["@wifi.ssid", "Device.DeviceInfo."]})
    assert record.rpcs == ["GetParameterValues"]
    assert record.calls[0].args["names"] == ["Device.WiFi.SSID.1.SSID", "Device.DeviceInfo."]
    row = await task_row(acs, task_id)
    assert row["status"] == "done" and row["finished_at"] is not None
    assert row["result"]["values"]["Device.WiFi.SSID.1.SSID"] == "home-wifi"
    known = await tree(acs, await device_of(acs, cpe))
    assert known["Device.WiFi.SSID.1.SSID"] == "home-wifi" and known["Device.DeviceInfo.UpTime"] == "3600"
    assert (await last_log(acs))[:2] == (["2 PERIODIC"], ["Inform", "GetParameterValues"])


async def test_a_set_task_sets_values_and_the_parameter_key(acs: Acs, cpe: Cpe) -> None:
    task_id, record = await run_task(acs, cpe, "set", {"values": [
        ["@wifi.ssid", "Guest"], ["@management.periodic_inform_interval", 600, "xsd:unsignedInt"]]})
    assert record.rpcs == ["SetParameterValues"]
    assert record.calls[0].args == {"parameter_key": f"task-{task_id}", "params": [
        ("Device.WiFi.SSID.1.SSID", "Guest", "xsd:string"),
        ("Device.ManagementServer.PeriodicInformInterval", "600", "xsd:unsignedInt")]}
    assert cpe.value("Device.WiFi.SSID.1.SSID") == "Guest"
    assert cpe.value("Device.ManagementServer.ParameterKey") == f"task-{task_id}"
    row = await task_row(acs, task_id)
    assert (row["status"], row["result"]) == ("done", {"status": 0})
    known = await tree(acs, await device_of(acs, cpe))
    assert known["Device.WiFi.SSID.1.SSID"] == "Guest"
    assert known["Device.ManagementServer.PeriodicInformInterval"] == "600"


async def test_attribute_tasks_set_then_read_notification(acs: Acs, cpe: Cpe) -> None:
    device_id = await device_of(acs, cpe)
    setter = await queue(acs, device_id, "set_attributes", {"attributes": [["@wifi.ssid", 2]]})
    getter = await queue(acs, device_id, "get_attributes", {"names": ["Device.WiFi.SSID.1."]})
    record = ok(await cpe.session())
    assert record.rpcs == ["SetParameterAttributes", "GetParameterAttributes"]  # in id order
    assert cpe.nodes["Device.WiFi.SSID.1.SSID"].notification == 2
    assert (await task_row(acs, setter))["status"] == "done"
    row = await task_row(acs, getter)
    assert row["status"] == "done" and row["result"]["attributes"] == {
        "Device.WiFi.SSID.1.Enable": 0, "Device.WiFi.SSID.1.SSID": 2, "Device.WiFi.SSID.1.BSSID": 0}


async def test_add_object_then_delete_object(acs: Acs, cpe: Cpe) -> None:
    added, record = await run_task(acs, cpe, "add_object", {"path": "@wifi.ssids"})
    assert record.rpcs == ["AddObject"] and record.calls[0].args["path"] == "Device.WiFi.SSID."
    assert "Device.WiFi.SSID.2.SSID" in cpe.nodes
    assert (await task_row(acs, added))["result"] == {"instance": 2, "status": 0}
    device_id = await device_of(acs, cpe)
    assert "Device.WiFi.SSID.2." in await tree(acs, device_id)
    deleted, record = await run_task(acs, cpe, "delete_object", {"path": "Device.WiFi.SSID.2."})
    assert record.rpcs == ["DeleteObject"]
    assert not any(p.startswith("Device.WiFi.SSID.2.") for p in cpe.nodes)
    assert cpe.value("Device.ManagementServer.ParameterKey") == f"task-{deleted}"
    assert (await task_row(acs, deleted))["status"] == "done"
    assert await tree(acs, device_id, "Device.WiFi.SSID.2.") == {}


async def test_a_refresh_reads_names_then_values_and_forgets_what_is_gone(acs: Acs, cpe: Cpe) -> None:
    device_id = await device_of(acs, cpe)
    await acs.pool.execute("INSERT INTO acs_parameters (device_id, path, value, read_at) "
                           "VALUES ($1, 'Device.WiFi.SSID.7.SSID', 'deleted on the CPE', now())", device_id)
    task_id, record = await run_task(acs, cpe, "refresh", {"path": "Device.WiFi."})
    assert record.rpcs == ["GetParameterNames", "GetParameterValues"]
    assert record.calls[0].args == {"path": "Device.WiFi.", "next_level": False}
    assert record.calls[1].args == {"names": ["Device.WiFi."]}
    assert (await task_row(acs, task_id))["status"] == "done"
    rows = {r["path"]: (r["value"], r["writable"]) for r in await acs.pool.fetch(
        "SELECT path, value, writable FROM acs_parameters WHERE device_id = $1 AND path LIKE 'Device.WiFi.%'",
        device_id)}
    assert rows["Device.WiFi.SSID.1.SSID"] == ("home-wifi", True)
    assert rows["Device.WiFi.SSID.1.BSSID"] == ("00:d0:9e:00:00:01", False)
    assert rows["Device.WiFi.SSID.1."] == (None, True)
    assert "Device.WiFi.SSID.7.SSID" not in rows
    assert "Device.WiFi.AccessPoint.1.Security.KeyPassphrase" not in rows  # read back as "": not a value


async def test_a_reboot_ends_when_the_cpe_comes_back_with_m_reboot(acs: Acs, cpe: Cpe) -> None:
    task_id, record = await run_task(acs, cpe, "reboot", {})
    assert record.rpcs == ["Reboot"] and record.calls[0].args == {"command_key": f"task-{task_id}"}
    row = await task_row(acs, task_id)
    assert (row["status"], row["command_key"]) == ("waiting", f"task-{task_id}")
    back = ok(await cpe.session())
    assert back.events == [("1 BOOT", ""), ("M Reboot", f"task-{task_id}")]
    assert back.rpcs == []  # in its declared state: nothing to redo after a boot
    row = await task_row(acs, task_id)
    assert row["status"] == "done" and row["finished_at"] is not None
    assert (await last_log(acs))[:2] == (["1 BOOT", "M Reboot"], ["Inform"])


async def test_a_factory_reset_makes_the_next_session_a_bootstrap(acs: Acs, cpe: Cpe) -> None:
    device_id = await device_of(acs, cpe)
    await run_task(acs, cpe, "set", {"values": [["@wifi.ssid", "Guest"]]})
    boot_before = await acs.pool.fetchval("SELECT last_bootstrap_at FROM acs_devices WHERE id = $1", device_id)
    task_id, record = await run_task(acs, cpe, "factory_reset", {})
    assert record.rpcs == ["FactoryReset"] and (await task_row(acs, task_id))["status"] == "done"
    assert cpe.value("Device.WiFi.SSID.1.SSID") == "home-wifi"  # the factory's again
    assert cpe.value("Device.ManagementServer.ConnectionRequestUsername") == "cr"
    again = ok(await cpe.session())
    assert again.events == [("0 BOOTSTRAP", ""), ("1 BOOT", "")]
    assert again.rpcs == ["SetParameterValues"]  # the default preset once more: nothing is known
    assert cpe.value("Device.ManagementServer.ConnectionRequestUsername") == identity(cpe)
    known = await tree(acs, device_id)
    assert "Device.WiFi.SSID.1.SSID" not in known  # the tree was wiped, then learnt what was set
    assert known["Device.ManagementServer.PeriodicInformInterval"] == "300"
    row = await acs.pool.fetchrow("SELECT last_bootstrap_at, stale FROM acs_devices WHERE id = $1", device_id)
    assert row is not None and row["last_bootstrap_at"] > boot_before and row["stale"] is False


async def test_a_download_of_a_firmware_file_from_the_acs(acs: Acs, cpe: Cpe) -> None:
    async with acs.pool.acquire() as conn, conn.transaction():
        file_id = await store.store_file(conn, "fw-2.0.bin", "1 Firmware Upgrade Image", FIRMWARE, version="2.0")
    task_id, record = await run_task(acs, cpe, "download", {"file_id": file_id})
    assert record.rpcs == ["Download"]
    args = record.calls[0].args
    assert args["url"].startswith(acs.url.removesuffix("/cwmp") + "/files/") and args["url"].endswith("/fw-2.0.bin")
    assert (args["file_type"], args["file_size"], args["command_key"]) == (
        "1 Firmware Upgrade Image", len(FIRMWARE), f"task-{task_id}")
    assert (await task_row(acs, task_id))["status"] == "waiting"
    assert [(f.status, f.data == FIRMWARE) for f in cpe.fetched] == [(200, True)]  # fetched from the ACS
    done = ok(await cpe.session())
    assert done.events == [("7 TRANSFER COMPLETE", ""), ("M Download", f"task-{task_id}")]
    assert done.answers == ["InformResponse", "TransferCompleteResponse"] and done.rpcs == []
    row = await task_row(acs, task_id)
    assert row["status"] == "done" and row["fault_code"] is None
    assert (await last_log(acs))[:2] == (["7 TRANSFER COMPLETE", "M Download"], ["Inform", "TransferComplete"])


async def test_an_upload_lands_in_acs_files(acs: Acs, cpe: Cpe) -> None:
    task_id, record = await run_task(acs, cpe, "upload", {"file_type": "1 Vendor Configuration File"})
    assert record.rpcs == ["Upload"]
    assert record.calls[0].args["url"].startswith(acs.url.removesuffix("/cwmp") + "/uploads/")
    assert [u.status for u in cpe.uploaded] == [200]
    device_id = await device_of(acs, cpe)
    row = await acs.pool.fetchrow("SELECT id, file_type, size, complete FROM acs_files WHERE device_id = $1",
                                  device_id)
    assert row is not None and (row["file_type"], row["complete"]) == ("1 Vendor Configuration File", True)
    data = await store.read_chunk(acs.pool, row["id"], 0)
    assert data == cpe.uploaded[0].data and b"Device.WiFi.SSID.1.SSID=home-wifi\n" in data
    assert b"Password=" not in data  # the CPE keeps its secrets out
    assert (await task_row(acs, task_id))["result"] == {"file_id": row["id"]}
    done = ok(await cpe.session())
    assert ("M Upload", f"task-{task_id}") in done.events
    assert (await task_row(acs, task_id))["status"] == "done"


# --- 2. the CPE's own requests --------------------------------------------------------------------

async def test_the_cpes_own_requests_are_answered_before_the_acs_asks(acs: Acs, cpe: Cpe) -> None:
    task_id = await queue(acs, await device_of(acs, cpe), "get", {"names": ["@uptime"]})
    record = ok(await cpe.session(requests=["GetRPCMethods", "AutonomousTransferComplete", ("TransferComplete", "x")]))
    assert record.answers == ["InformResponse", "GetRPCMethodsResponse", "AutonomousTransferCompleteResponse",
                              "TransferCompleteResponse"]
    assert record.rpcs == ["GetParameterValues"] and (await task_row(acs, task_id))["status"] == "done"
    _, rpcs, faults, outcome = await last_log(acs)
    assert rpcs == ["Inform", "GetRPCMethods", "AutonomousTransferComplete", "TransferComplete",
                    "GetParameterValues"]
    assert (faults, outcome) == ([], "ok")


# --- 3. events ------------------------------------------------------------------------------------

async def test_bootstrap_of_a_new_device(acs: Acs, cpe: Cpe) -> None:
    record = cpe.sessions[0]
    assert record.statuses[0] == 401 and record.rpcs == ["SetParameterValues"]
    row = await acs.pool.fetchrow("SELECT * FROM acs_devices WHERE cwmp_id = $1", identity(cpe))
    assert row is not None
    assert (row["data_model"], row["cwmp_version"], row["software_version"], row["stale"]) == (
        "tr181", "1.0", "2.4.1", False)
    assert row["last_bootstrap_at"] is not None and row["last_boot_at"] is not None
    assert row["connection_request_url"] == cpe.cr_url and row["connection_request_username"] == identity(cpe)
    sealed = row["connection_request_password"]
    assert KEYRING.open(sealed, store.CONNECTION_REQUEST_PURPOSE) == cpe.value(
        "Device.ManagementServer.ConnectionRequestPassword")  # what the wakeup loop will answer with
    assert (await last_log(acs))[:2] == (["0 BOOTSTRAP", "1 BOOT"], ["Inform", "SetParameterValues"])


async def test_a_value_change_is_stored(acs: Acs, cpe: Cpe) -> None:
    await run_task(acs, cpe, "set_attributes", {"attributes": [["@wifi.ssid", 1]]})
    cpe.set_local("Device.WiFi.SSID.1.SSID", "renamed by the user")
    record = ok(await cpe.session())
    assert record.events == [("4 VALUE CHANGE", "")] and record.rpcs == []
    known = await tree(acs, await device_of(acs, cpe))
    assert known["Device.WiFi.SSID.1.SSID"] == "renamed by the user"


# --- 4. presets on both data models ----------------------------------------------------------------

HOME_PRESET = [
    {"set": "@pppoe.username", "value": "{{ service.login }}"},
    {"set": "@pppoe.password", "value": "{{ service.password }}"},
    {"set": "@wifi.ssid", "value": "{{ customer.custom.ssid }}"},
    {"set": "@wifi.key", "value": "{{ customer.custom.wifi_key }}"},
]


async def subscriber(acs: Acs, login: str, *, cpe_serial: str | None = None) -> int:
    """A customer (with its Wi-Fi in custom fields) and a service: the service's id."""
    async with acs.pool.acquire() as conn:
        partner = await conn.fetchval("INSERT INTO partners (name) VALUES ('P') RETURNING id")
        tariff = await conn.fetchval("INSERT INTO tariffs (name, download_kbps, upload_kbps) VALUES ('T', 1, 1) "
                                     "RETURNING id")
        customer = await conn.fetchval("INSERT INTO customers (partner_id, number, name, custom) "
                                       "VALUES ($1, 'C-1', 'Alice', $2) RETURNING id", partner,
                                       {"ssid": "Alice-Home", "wifi_key": "alice-wpa-key"})
        service_id: int = await conn.fetchval(
            "INSERT INTO services (customer_id, tariff_id, login, password, cpe_serial) "
            "VALUES ($1, $2, $3, 'pppoe-pw-1', $4) RETURNING id", customer, tariff, login, cpe_serial)
    return service_id


async def add_preset(acs: Acs, actions: list[dict[str, Any]], match: dict[str, Any] | None = None) -> None:
    await acs.pool.execute("INSERT INTO acs_presets (name, match, actions) VALUES ('home', $1, $2)",
                           match or {}, actions)
    await acs.server.load()  # what the daemon does on the NOTIFY


PATHS = {
    "tr098": {"ppp": "InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1.",
              "ssid": "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID",
              "key": "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.PreSharedKey.1.KeyPassphrase"},
    "tr181": {"ppp": "Device.PPP.Interface.1.", "ssid": "Device.WiFi.SSID.1.SSID",
              "key": "Device.WiFi.AccessPoint.1.Security.KeyPassphrase"},
}


@pytest.mark.parametrize("model", ["tr098", "tr181"])
async def test_a_linked_device_gets_its_service_in_one_set_then_stays(acs: Acs, model: str) -> None:
    service_id = await subscriber(acs, "alice@isp", cpe_serial="SN-ALICE")
    await add_preset(acs, HOME_PRESET)
    paths = PATHS[model]
    async with Cpe(acs.url, TR098 if model == "tr098" else TR181, serial="SN-ALICE", username=USER,
                   password=PASSWORD) as cpe:
        first = ok(await cpe.session("0 BOOTSTRAP", "1 BOOT"))
        assert first.rpcs == ["SetParameterValues"]  # the default preset's and this one's together
        assert len(first.call("SetParameterValues").args["params"]) == 8
        assert (cpe.value(paths["ppp"] + "Username"), cpe.value(paths["ppp"] + "Password")) == (
            "alice@isp", "pppoe-pw-1")
        assert (cpe.value(paths["ssid"]), cpe.value(paths["key"])) == ("Alice-Home", "alice-wpa-key")
        device_id = await device_of(acs, cpe)
        row = await acs.pool.fetchrow("SELECT service_id, customer_id IS NOT NULL AS linked, pppoe_username, stale, "
                                      "presets_key, data_model FROM acs_devices WHERE id = $1", device_id)
        assert row is not None and (row["service_id"], row["linked"], row["pppoe_username"], row["stale"]) == (
            service_id, True, "alice@isp", False)
        assert (row["presets_key"], row["data_model"]) == (acs.server.presets_key, model)

        periodic = ok(await cpe.session("2 PERIODIC"))
        assert (periodic.statuses, periodic.rpcs) == ([200, 204], [])  # declared state: one round trip

        await acs.pool.execute("UPDATE services SET password = 'pppoe-pw-2' WHERE id = $1", service_id)
        assert await acs.pool.fetchval("SELECT stale FROM acs_devices WHERE id = $1", device_id) is True
        changed = ok(await cpe.session("2 PERIODIC"))
        assert changed.rpcs == ["SetParameterValues"]
        assert changed.calls[0].args["params"] == [(paths["ppp"] + "Password", "pppoe-pw-2", "xsd:string")]
        assert cpe.value(paths["ppp"] + "Password") == "pppoe-pw-2"
        assert (await tree(acs, device_id))[paths["ppp"] + "Password"] == "pppoe-pw-2"  # what the ACS set
        assert ok(await cpe.session("2 PERIODIC")).rpcs == []


async def test_a_device_is_linked_by_its_pppoe_user_name_once_read(acs: Acs) -> None:
    service_id = await subscriber(acs, "subscriber@isp")  # the CSV's Device.PPP.Interface.1.Username
    await add_preset(acs, [{"refresh": "@pppoe.username", "max_age": 86400}, *HOME_PRESET[1:]])
    async with Cpe(acs.url, username=USER, password=PASSWORD) as cpe:
        first = ok(await cpe.session("0 BOOTSTRAP", "1 BOOT"))
        assert first.rpcs == ["SetParameterValues", "GetParameterValues"]  # no service yet: its templates wait
        device_id = await device_of(acs, cpe)
        row = await acs.pool.fetchrow("SELECT service_id, stale FROM acs_devices WHERE id = $1", device_id)
        assert row is not None and tuple(row) == (service_id, True)  # linked now, its presets owed
        faults = await acs.pool.fetch("SELECT source, message FROM acs_faults WHERE device_id = $1", device_id)
        assert len(faults) == 3 and all(f["source"] == "preset" and "failed" in f["message"] for f in faults)
        second = ok(await cpe.session("2 PERIODIC"))
        assert second.rpcs == ["SetParameterValues"]
        assert (cpe.value("Device.PPP.Interface.1.Password"), cpe.value("Device.WiFi.SSID.1.SSID")) == (
            "pppoe-pw-1", "Alice-Home")
        assert ok(await cpe.session("2 PERIODIC")).rpcs == []
        assert await acs.pool.fetchval("SELECT stale FROM acs_devices WHERE id = $1", device_id) is False


# --- 5. faults: recorded, retried with backoff, given up --------------------------------------------

async def test_a_faulted_task_is_retried_with_backoff_then_given_up(acs: Acs, cpe: Cpe) -> None:
    device_id = await device_of(acs, cpe)
    task_id = await queue(acs, device_id, "set", {"values": [["Device.DeviceInfo.UpTime", "1", "xsd:unsignedInt"]]},
                          max_attempts=3)
    first = ok(await cpe.session())
    assert first.rpcs == ["SetParameterValues"] and first.faults == [("SetParameterValues", 9003)]
    row = await task_row(acs, task_id)
    assert (row["status"], row["attempts"], row["fault_code"], row["fault_string"]) == (
        "queued", 1, 9003, "Invalid arguments")
    assert row["backoff"] == pytest.approx(store.RETRY_DELAY)
    fault = await acs.pool.fetchrow("SELECT source, rpc, code, message, detail FROM acs_faults WHERE task_id = $1",
                                    task_id)
    assert fault is not None and (fault["source"], fault["rpc"], fault["code"], fault["message"]) == (
        "task", "SetParameterValues", 9003, "Invalid arguments")
    assert fault["detail"] == {"attempts": 1, "final": False, "parameters": [
        ["Device.DeviceInfo.UpTime", 9008, "Attempt to set a non-writable parameter"]]}
    _, rpcs, faults, outcome = await last_log(acs)
    assert (rpcs, outcome) == (["Inform", "SetParameterValues"], "fault")
    assert faults == ["9003 Invalid arguments (SetParameterValues)"]

    assert ok(await cpe.session()).rpcs == []  # not before its backoff
    for attempt, backoff in ((2, 2 * store.RETRY_DELAY), (3, None)):
        await acs.pool.execute("UPDATE acs_tasks SET not_before = now() - interval '1 second' WHERE id = $1", task_id)
        assert ok(await cpe.session()).rpcs == ["SetParameterValues"]
        row = await task_row(acs, task_id)
        assert row["attempts"] == attempt
        if backoff is not None:
            assert row["status"] == "queued" and row["backoff"] == pytest.approx(backoff)
    assert row["status"] == "fault" and row["finished_at"] is not None
    finals = await acs.pool.fetch("SELECT detail->'final' AS final FROM acs_faults WHERE task_id = $1 ORDER BY id",
                                  task_id)
    assert [f["final"] for f in finals] == [False, False, True]
    await acs.pool.execute("UPDATE acs_tasks SET not_before = now() - interval '1 second' WHERE id = $1", task_id)
    assert ok(await cpe.session()).rpcs == []  # given up: never sent again
    assert cpe.value("Device.DeviceInfo.UpTime") == "3600"


# --- 6. a connection request, end to end -------------------------------------------------------------

async def test_a_connection_request_runs_a_task_at_once(acs_factory: Callable[..., Awaitable[Acs]]) -> None:
    acs = await acs_factory(connection_request_networks=("127.0.0.0/8",))
    async with Cpe(acs.url, username=USER, password=PASSWORD) as cpe:
        ok(await cpe.session("0 BOOTSTRAP", "1 BOOT"))  # the default preset sets the credentials
        device_id = await device_of(acs, cpe)
        task_id = await queue(acs, device_id, "get", {"names": ["@software_version"]})
        wakeup_id = await acs.pool.fetchval("INSERT INTO acs_wakeups (device_id, requested_by) VALUES ($1, 'test') "
                                            "RETURNING id", device_id)
        wake = asyncio.Event()
        loop = asyncio.create_task(wakeup.run(acs.pool, KEYRING, acs.server.settings, wake, poll=30.0))
        try:
            record = ok(await cpe.next_connection_request_session(timeout=5.0))
        finally:
            loop.cancel()
            with pytest.raises(asyncio.CancelledError):
                await loop
    assert [(c.status, c.username) for c in cpe.connection_requests] == [(401, None), (200, identity(cpe))]
    assert record.events == [("6 CONNECTION REQUEST", "")] and record.rpcs == ["GetParameterValues"]
    row = await task_row(acs, task_id)
    assert row["status"] == "done" and row["result"] == {"values": {"Device.DeviceInfo.SoftwareVersion": "2.4.1"}}
    status = await acs.pool.fetchrow("SELECT status, http_status FROM acs_wakeups WHERE id = $1", wakeup_id)
    assert status is not None and tuple(status) == ("sent", 200)
    assert (await last_log(acs))[:2] == (["6 CONNECTION REQUEST"], ["Inform", "GetParameterValues"])


# --- 7. HoldRequests ----------------------------------------------------------------------------------

HOLD = b'<cwmp:HoldRequests soap-env:mustUnderstand="1">1</cwmp:HoldRequests></soap-env:Header>'


def held(name: str, cwmp_id: str | None = None) -> bytes:
    """A recorded envelope with cwmp:HoldRequests true in its Header."""
    data = vector(name, cwmp_id).replace(b"</soap-env:Header>", HOLD, 1)
    assert HOLD in data
    return data


async def test_hold_requests_from_a_cpe(acs: Acs, http: aiohttp.ClientSession) -> None:
    """TR-069 gives the HoldRequests header to the ACS (to hold the CPE's requests back): a CPE's is
    understood (it is mustUnderstand) and changes nothing. The ACS's requests wait for the CPE's
    empty POST as always, the ACS never holds the CPE (no HoldRequests in its answers), and the
    session ends on 204 after the last response."""
    await without_presets(acs)
    device_id = await acs.pool.fetchval(
        "INSERT INTO acs_devices (cwmp_id, oui, product_class, serial) VALUES ('00D09E-HGW%2D181-000002', "
        "'00D09E', 'HGW-181', '000002') RETURNING id")
    task_id = await queue(acs, device_id, "get", {"names": ["Device.DeviceInfo.SoftwareVersion"]})
    cpe = HandCpe(http)
    answers = [await cpe.post(acs.url, held("tr181/inform-2-periodic.xml")),
               await cpe.post(acs.url, held("tr181/transfercomplete.xml"))]
    assert [a.message()[0] for a in answers] == ["InformResponse", "TransferCompleteResponse"]
    assert all(b"HoldRequests" not in a.body for a in answers)
    assert (await task_row(acs, task_id))["status"] == "queued"  # nothing asked of the CPE yet
    rpc = await cpe.post(acs.url, b"")
    method, cwmp_id = rpc.message()
    assert method == "GetParameterValues" and b"HoldRequests" not in rpc.body
    done = await cpe.post(acs.url, held("tr181/getparametervaluesresponse.xml", cwmp_id))
    assert done.status == 204 and done.body == b""
    assert (await task_row(acs, task_id))["status"] == "done"
    assert (await last_log(acs))[1:] == (["Inform", "TransferComplete", "GetParameterValues"], [], "ok")


# --- 8. cwmp-1-4 --------------------------------------------------------------------------------------

async def test_a_cwmp_1_4_device_is_answered_in_its_namespace(acs: Acs) -> None:
    async with Cpe(acs.url, username=USER, password=PASSWORD, namespace=CWMP_1_4) as cpe:
        first = ok(await cpe.session("0 BOOTSTRAP", "1 BOOT", requests=["GetRPCMethods"]))
        assert first.answers == ["InformResponse", "GetRPCMethodsResponse"]
        assert first.rpcs == ["SetParameterValues"] and {c.namespace for c in first.calls} == {CWMP_1_4}
        device_id = await device_of(acs, cpe)
        task_id = await queue(acs, device_id, "get", {"names": ["@uptime"]})
        record = ok(await cpe.session())
        assert [(c.method, c.namespace) for c in record.calls] == [("GetParameterValues", CWMP_1_4)]
    assert await acs.pool.fetchval("SELECT cwmp_version FROM acs_devices WHERE id = $1", device_id) == "1.4"
    assert (await task_row(acs, task_id))["status"] == "done"


# --- the recorded envelopes: every RPC answered as a real CPE answered it ------------------------------

ANSWERS = {
    "GetParameterNames": "getparameternamesresponse-managementserver-nextlevel-false.xml",
    "GetParameterValues": "getparametervaluesresponse.xml", "SetParameterValues": "setparametervaluesresponse.xml",
    "AddObject": "addobjectresponse.xml", "DeleteObject": "deleteobjectresponse.xml",
    "Download": "downloadresponse.xml", "Reboot": "fault-9000-reply-to-reboot.xml",
}
"""The recorded answer of genieacs-sim to each RPC the ACS sends it (tests/vectors/cwmp/README.md)."""


@pytest.mark.parametrize("model", ["tr098", "tr181"])
async def test_every_rpc_answered_with_the_recorded_envelopes(acs: Acs, http: aiohttp.ClientSession,
                                                              model: DataModel) -> None:
    await without_presets(acs)
    root = "InternetGatewayDevice." if model == "tr098" else "Device."
    cpe = HandCpe(http)
    assert (await cpe.post(acs.url, vector(f"{model}/inform-2-periodic-first-contact.xml"))).status == 200
    assert (await cpe.post(acs.url, b"")).status == 204
    device_id = await acs.pool.fetchval("SELECT id FROM acs_devices")
    work: list[tuple[str, dict[str, Any]]] = [
        ("refresh", {"path": f"{root}ManagementServer."}),
        ("set", {"values": [["@management.periodic_inform_interval", "2", "xsd:unsignedInt"]]}),
        ("add_object", {"path": "@wifi.ssids"}),
        ("delete_object", {"path": datamodel.resolve("@wifi.ssids", model) + "2."}),
        ("download", {"url": "http://192.0.2.1/fw.bin", "file_type": "1 Firmware Upgrade Image"}),
        ("reboot", {}),
    ]
    queued = {kind: await queue(acs, device_id, kind, args) for kind, args in work}
    cpe = HandCpe(http)
    answer = await cpe.post(acs.url, vector(f"{model}/inform-6-connection-request.xml"))
    assert answer.message()[0] == "InformResponse"
    asked: list[str] = []
    answer = await cpe.post(acs.url, b"")
    while answer.status == 200:
        method, cwmp_id = answer.message()
        asked.append(method)
        answer = await cpe.post(acs.url, vector(f"{model}/{ANSWERS[method]}", cwmp_id))
    assert answer.status == 204
    assert asked == ["GetParameterNames", "GetParameterValues", "SetParameterValues", "AddObject", "DeleteObject",
                     "Download", "Reboot"]
    status = {kind: await task_row(acs, task_id) for kind, task_id in queued.items()}
    assert {k: r["status"] for k, r in status.items()} == {
        "refresh": "done", "set": "done", "add_object": "done", "delete_object": "done", "download": "waiting",
        "reboot": "queued"}
    assert status["add_object"]["result"] == {"instance": 2, "status": 0}
    assert (status["reboot"]["attempts"], status["reboot"]["fault_code"]) == (1, 9000)
    writable = {r["path"]: r["writable"] for r in await acs.pool.fetch(
        "SELECT path, writable FROM acs_parameters WHERE device_id = $1", device_id)}
    assert writable[f"{root}ManagementServer."] is False  # the names said so
    assert writable[f"{root}ManagementServer.PeriodicInformInterval"] is True  # the names, with the values
    assert await acs.pool.fetchval("SELECT rpc FROM acs_faults WHERE task_id = $1", queued["reboot"]) == "Reboot"

    cpe = HandCpe(http)
    await cpe.post(acs.url, vector(f"{model}/inform-2-periodic.xml"))
    transfer = re.sub(rb"<CommandKey>[^<]*", b"<CommandKey>task-%d" % queued["download"],
                      vector(f"{model}/transfercomplete.xml"))
    assert (await cpe.post(acs.url, transfer)).message()[0] == "TransferCompleteResponse"
    assert (await cpe.post(acs.url, b"")).status == 204  # the Reboot waits for its backoff
    assert (await task_row(acs, queued["download"]))["status"] == "done"
    assert (await last_log(acs))[:2] == (["2 PERIODIC"], ["Inform", "TransferComplete"])


# --- 9. what integrators and the access log see --------------------------------------------------

async def test_informs_tasks_and_faults_are_published_on_mqtt(acs: Acs, mqtt_broker: Broker) -> None:
    got: list[tuple[str, dict[str, object]]] = []
    sub = await subscribe(mqtt_broker, got)
    publisher = EventPublisher(MqttSettings(url=mqtt_broker.url), "test-acs")
    publisher.start()
    acs.server.events = publisher
    try:
        async with Cpe(acs.url, username=USER, password=PASSWORD) as cpe:
            ok(await cpe.session("0 BOOTSTRAP", "1 BOOT"))
            device_id = await device_of(acs, cpe)
            reboot, _ = await run_task(acs, cpe, "reboot", {})
            ok(await cpe.session())  # 1 BOOT + M Reboot: the reboot is done
            broken = await queue(acs, device_id, "set", {"values": [["Device.DeviceInfo.UpTime", "1",
                                                                      "xsd:unsignedInt"]]})
            ok(await cpe.session())
        await eventually(lambda: len([t for t, _ in got if t == "lastmile/cpe/inform"]) == 4
                         and any(t == "lastmile/cpe/fault" for t, _ in got))
    finally:
        await publisher.close()
        await cancel(sub)
    informs = [p for t, p in got if t == "lastmile/cpe/inform"]
    assert [p["events"] for p in informs] == [["0 BOOTSTRAP", "1 BOOT"], ["2 PERIODIC"], ["1 BOOT", "M Reboot"],
                                              ["2 PERIODIC"]]
    assert {p["device"] for p in informs} == {identity(cpe)} and informs[0]["device_id"] == device_id
    assert isinstance(informs[0]["time"], float) and informs[0]["address"] == "127.0.0.1"
    changes = [(p["task_id"], p["status"], p["command_key"]) for t, p in got if t == "lastmile/cpe/task"]
    assert changes == [(reboot, "waiting", f"task-{reboot}"), (reboot, "done", f"task-{reboot}"),
                       (broken, "faulted", "")]
    [fault] = [p for t, p in got if t == "lastmile/cpe/fault"]
    assert (fault["task_id"], fault["code"], fault["message"]) == (broken, 9003, "Invalid arguments")


async def test_a_session_the_cpe_walks_away_from_is_logged_as_a_timeout(acs: Acs,
                                                                        http: aiohttp.ClientSession) -> None:
    """A slow session whose CPE goes quiet after the ACS's first RPC: its live row expires, and
    the chore that purges it (acs/__main__.py) writes its line, whichever instance held it."""
    hand = HandCpe(http)
    assert (await hand.post(acs.url, vector("tr181/inform-2-periodic.xml"))).message()[0] == "InformResponse"
    asked, _ = (await hand.post(acs.url)).message()  # a new device: the default preset's RPC ...
    assert asked in ("SetParameterValues", "GetParameterValues", "GetParameterNames")  # ... and no answer comes
    assert "00D09E-HGW%2D181-000002" in acs.server.opened
    later = time.time() + acs.server.settings.session_timeout + 1
    async with acs.pool.acquire() as conn:
        for state in await store.purge_live(conn, later):
            acs.server.abandoned(state, later)
    await acs.server.session_log.flush()
    events, rpcs, _, outcome = await last_log(acs)
    assert (events, rpcs, outcome) == (["2 PERIODIC"], ["Inform", asked], "timeout")
    assert "00D09E-HGW%2D181-000002" not in acs.server.opened
