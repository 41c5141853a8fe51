"""acs/store.py against a real PostgreSQL: the Inform upsert, every effect (and its repetition),
task retries, the session view, live sessions, transfers, wakeups and dry runs."""

from __future__ import annotations

import itertools

import asyncpg

from acs import store
from acs.model import (
    ConnectionRequestCredentials,
    Device,
    Effect,
    FaultRecorded,
    Param,
    ParametersForgotten,
    ParametersKnown,
    Preset,
    PresetsApplied,
    TaskDone,
    TaskFaulted,
    TaskWaiting,
    TransferEnded,
)
from acs.store import InformRow
from daemons import db
from daemons.secrets import Keyring
from tests.conftest import one

T0 = 1_800_000_000.0
KEYRING = Keyring(bytes(range(32)))
PPP = "Device.PPP.Interface.1.Username"
_hosts = itertools.count(7)


def inform(n: int = 1, *, at: float = T0, **changes: object) -> InformRow:
    row = InformRow(f"00259E-HG8245-{n:06d}", "00259E", "HG8245", f"{n:06d}", "Huawei", "tr181", "1.0", "HW1",
                    "V1", "", "", f"http://10.0.0.{n % 250}:7547/cr", f"192.0.2.{n % 250}", "100.64.0.1", "",
                    False, False, at)
    for name, value in changes.items():
        setattr(row, name, value)
    return row


async def upsert(conn: asyncpg.Connection, *rows: InformRow) -> list[store.InformResult]:
    async with conn.transaction():
        return await store.upsert_informs(conn, rows)


async def service(conn: asyncpg.Connection, login: str, *, serial: str | None = None) -> tuple[int, int]:
    """A customer with one service of ``login`` (and CPE ``serial``): (service id, customer id)."""
    partner = await conn.fetchval("INSERT INTO partners (name) VALUES ('ISP') ON CONFLICT (name) DO UPDATE "
                                  "SET name = EXCLUDED.name RETURNING id")
    tariff = await conn.fetchval("INSERT INTO tariffs (name, download_kbps, upload_kbps) VALUES ($1, 50000, 10000) "
                                 "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id", "Fibre 50")
    customer = await conn.fetchval("INSERT INTO customers (partner_id, number, name, email, custom) "
                                   "VALUES ($1, $2, 'Ann Smith', 'ann@example.org', '{\"floor\": 2}') RETURNING id",
                                   partner, f"C-{login}")
    sid = await conn.fetchval("INSERT INTO services (customer_id, tariff_id, login, password, ipv4, cpe_serial) "
                              "VALUES ($1, $2, $3, 'pw-1', $4::inet, $5) RETURNING id",
                              customer, tariff, login, f"100.64.1.{next(_hosts)}", serial)
    return sid, customer


async def task(conn: asyncpg.Connection, device_id: int, kind: str = "get", *,
               args: dict[str, object] | None = None, not_before: float = T0 - 1, max_attempts: int = 5) -> int:
    task_id: int = await conn.fetchval(
        "INSERT INTO acs_tasks (device_id, kind, args, not_before, max_attempts) "
        "VALUES ($1, $2, $3, to_timestamp($4), $5) RETURNING id",
        device_id, kind, args or {}, not_before, max_attempts)
    return task_id


async def apply(conn: asyncpg.Connection, device_id: int, *effects: Effect, now: float = T0) -> None:
    async with conn.transaction():
        await store.apply(conn, device_id, effects, keyring=KEYRING, now=now)


async def tree(conn: asyncpg.Connection, device_id: int) -> dict[str, tuple[object, ...]]:
    rows = await conn.fetch("SELECT path, value, type, writable, extract(epoch FROM read_at)::float8 AS read_at "
                            "FROM acs_parameters WHERE device_id = $1", device_id)
    return {r["path"]: (r["value"], r["type"], r["writable"], r["read_at"]) for r in rows}


# --- Informs ---------------------------------------------------------------------------------

async def test_a_new_device_then_its_next_inform(conn: asyncpg.Connection) -> None:
    [first] = await upsert(conn, inform(boot=True))
    assert first.new and not first.tasks_due
    d = first.device
    assert (d.cwmp_id, d.oui, d.product_class, d.serial, d.data_model) == (
        "00259E-HG8245-000001", "00259E", "HG8245", "000001", "tr181")
    assert (d.software_version, d.manufacturer, d.address, d.stale, d.service_id) == (
        "V1", "Huawei", "192.0.2.1", True, None)
    [again] = await upsert(conn, inform(at=T0 + 300, address="192.0.2.99", wan_address="100.64.0.2"))
    assert not again.new and again.device.id == d.id and again.device.address == "192.0.2.99"
    r = await one(conn, "SELECT extract(epoch FROM first_inform_at) AS f, extract(epoch FROM last_inform_at) AS l, "
                        "extract(epoch FROM last_boot_at) AS b, last_bootstrap_at, wan_address FROM acs_devices")
    assert (r["f"], r["l"], r["b"], r["last_bootstrap_at"], r["wan_address"]) == (T0, T0 + 300, T0, None, "100.64.0.2")


async def test_results_follow_the_order_of_the_rows(conn: asyncpg.Connection) -> None:
    await upsert(conn, inform(5))
    results = await upsert(conn, inform(9), inform(5), inform(7))
    assert [r.device.serial for r in results] == ["000009", "000005", "000007"]
    assert [r.new for r in results] == [True, False, True]


async def test_bootstrap_wipes_the_tree_and_marks_stale(conn: asyncpg.Connection) -> None:
    [r] = await upsert(conn, inform())
    device_id = r.device.id
    await apply(conn, device_id, ParametersKnown((Param("Device.DeviceInfo.UpTime", "5", "xsd:unsignedInt"),)),
                PresetsApplied("k1"))
    [fresh] = await upsert(conn, inform(at=T0 + 10))
    assert not fresh.device.stale and len(await tree(conn, device_id)) == 1
    [boot] = await upsert(conn, inform(at=T0 + 20, bootstrap=True))
    assert boot.device.stale and await tree(conn, device_id) == {}
    assert (await one(conn, "SELECT extract(epoch FROM last_bootstrap_at) AS b FROM acs_devices"))["b"] == T0 + 20


async def test_a_new_software_version_marks_stale(conn: asyncpg.Connection) -> None:
    [r] = await upsert(conn, inform())
    await apply(conn, r.device.id, PresetsApplied("k1"))
    [same] = await upsert(conn, inform(at=T0 + 1))
    [upgraded] = await upsert(conn, inform(at=T0 + 2, software_version="V2"))
    assert not same.device.stale
    assert upgraded.device.stale and upgraded.device.software_version == "V2"


async def test_linked_by_login_case_insensitively_and_kept(conn: asyncpg.Connection) -> None:
    sid, customer = await service(conn, "ann@isp")
    [r] = await upsert(conn, inform(pppoe_username="ANN@isp"))
    assert (r.device.service_id, r.device.customer_id) == (sid, customer)
    # The link stays when an Inform carries no user name, and once made is never remade.
    other, _ = await service(conn, "bob@isp", serial="000001")
    [again] = await upsert(conn, inform(at=T0 + 1))
    assert again.device.service_id == sid
    assert (await one(conn, "SELECT pppoe_username FROM acs_devices"))[0] == "ANN@isp"
    assert other != sid


async def test_linked_by_serial_first_and_marked_stale(conn: asyncpg.Connection) -> None:
    [unlinked] = await upsert(conn, inform())
    await apply(conn, unlinked.device.id, PresetsApplied("k1"))
    await service(conn, "ann@isp")
    sid, customer = await service(conn, "bob@isp", serial="000001")
    [r] = await upsert(conn, inform(at=T0 + 1, pppoe_username="ann@isp"))
    assert (r.device.service_id, r.device.customer_id, r.device.stale) == (sid, customer, True)


async def test_tasks_due(conn: asyncpg.Connection) -> None:
    [r] = await upsert(conn, inform())
    later = await task(conn, r.device.id, not_before=T0 + 60)
    [before] = await upsert(conn, inform(at=T0 + 1))
    [after] = await upsert(conn, inform(at=T0 + 61))
    assert later and not before.tasks_due and after.tasks_due


# --- effects ---------------------------------------------------------------------------------

async def test_parameters_known_keep_what_a_field_does_not_say(conn: asyncpg.Connection) -> None:
    [r] = await upsert(conn, inform())
    device_id = r.device.id
    ssid = "Device.WiFi.SSID.1.SSID"
    await apply(conn, device_id, ParametersKnown((Param(ssid, "home", "xsd:string", read_at=T0 - 5),
                                                  Param("Device.WiFi.SSID.1.", None))))
    # A GetParameterNames says only writable: value, type and read_at stay.
    await apply(conn, device_id, ParametersKnown((Param(ssid, None, writable=True),)), now=T0 + 10)
    assert (await tree(conn, device_id))[ssid] == ("home", "xsd:string", True, T0 - 5)
    # A value read later moves read_at (0.0: now) and keeps writable; twice in one list: the later wins.
    effect = ParametersKnown((Param(ssid, "away"), Param(ssid, "office", "xsd:string")))
    await apply(conn, device_id, effect, effect, now=T0 + 20)
    t = await tree(conn, device_id)
    assert t[ssid] == ("office", "xsd:string", True, T0 + 20)
    assert t["Device.WiFi.SSID.1."] == (None, "", None, T0)


async def test_forgotten_subtrees(conn: asyncpg.Connection) -> None:
    [r] = await upsert(conn, inform())
    paths = ["Device.WiFi.SSID.1.SSID", "Device.WiFi.SSID.10.SSID", "Device.WiFi.SSID.1.", "Device.IP.x"]
    known = ParametersKnown(tuple(Param(p, "v") for p in paths))
    await apply(conn, r.device.id, known, ParametersForgotten("Device.WiFi.SSID.1."))
    assert sorted(await tree(conn, r.device.id)) == ["Device.IP.x", "Device.WiFi.SSID.10.SSID"]
    await apply(conn, r.device.id, ParametersForgotten(""), ParametersKnown((Param("Device.A", "1"),)))
    assert list(await tree(conn, r.device.id)) == ["Device.A"]


async def test_a_pppoe_user_name_read_is_kept_and_links(conn: asyncpg.Connection) -> None:
    [r] = await upsert(conn, inform())
    sid, customer = await service(conn, "carol@isp")
    await apply(conn, r.device.id, PresetsApplied("k1"), ParametersKnown((Param(PPP, "Carol@ISP"),)))
    d = await store.load_device(conn, r.device.id)
    assert d is not None and (d.service_id, d.customer_id, d.stale) == (sid, customer, True)
    tr098 = "InternetGatewayDevice.WANDevice.1.WANConnectionDevice.2.WANPPPConnection.1.Username"
    await apply(conn, r.device.id, ParametersKnown((Param(tr098, "dave@isp"),)))
    row = await one(conn, "SELECT pppoe_username, service_id FROM acs_devices")
    assert (row["pppoe_username"], row["service_id"]) == ("dave@isp", sid)


async def test_tasks_end_once(conn: asyncpg.Connection) -> None:
    [r] = await upsert(conn, inform())
    device_id = r.device.id
    get, download, reboot = (await task(conn, device_id), await task(conn, device_id, "download"),
                             await task(conn, device_id, "reboot"))
    await apply(conn, device_id, TaskDone(get, {"values": 1}), TaskWaiting(download, "dl-1"), TaskWaiting(reboot, "rb"))
    await apply(conn, device_id, TaskDone(get, {"values": 2}), TaskWaiting(download, "other"))
    await apply(conn, device_id, TransferEnded("dl-1"), TransferEnded("rb", 9002, "Internal error"), now=T0 + 5)
    await apply(conn, device_id, TransferEnded("dl-1", 9010, "late"), TransferEnded("rb"), now=T0 + 9)
    rows = {r["id"]: r for r in await conn.fetch("SELECT id, status, result, command_key, fault_code, fault_string, "
                                                   "extract(epoch FROM finished_at) AS f FROM acs_tasks")}
    assert (rows[get]["status"], rows[get]["result"]) == ("done", {"values": 1})
    assert (rows[download]["status"], rows[download]["command_key"], rows[download]["f"]) == ("done", "dl-1", T0 + 5)
    assert (rows[reboot]["status"], rows[reboot]["fault_code"], rows[reboot]["fault_string"]) == (
        "fault", 9002, "Internal error")
    faults = await conn.fetch("SELECT task_id, rpc, code, message FROM acs_faults")
    assert [tuple(f) for f in faults] == [(reboot, "TransferComplete", 9002, "Internal error")]


async def test_a_faulted_task_backs_off_then_ends(conn: asyncpg.Connection) -> None:
    [r] = await upsert(conn, inform())
    device_id = r.device.id
    task_id = await task(conn, device_id, "set", max_attempts=3)
    seen = []
    for i in range(4):  # the fourth finds the task ended already: nothing changes
        await apply(conn, device_id, TaskFaulted(task_id, 9007, "Invalid value"), now=T0 + i)
        row = await one(conn, "SELECT status, attempts, extract(epoch FROM not_before) AS nb, finished_at IS NOT NULL "
                              "AS finished FROM acs_tasks")
        seen.append((row["status"], row["attempts"], row["nb"], row["finished"]))
    assert seen == [("queued", 1, T0 + 300, False), ("queued", 2, T0 + 1 + 600, False),
                    ("fault", 3, T0 + 1 + 600, True), ("fault", 3, T0 + 1 + 600, True)]
    faults = await conn.fetch("SELECT rpc, code, message, detail FROM acs_faults ORDER BY id")
    assert [(f["rpc"], f["code"], f["detail"]["final"]) for f in faults] == [
        ("SetParameterValues", 9007, False), ("SetParameterValues", 9007, False), ("SetParameterValues", 9007, True)]


async def test_faults_presets_and_credentials(conn: asyncpg.Connection) -> None:
    [r] = await upsert(conn, inform())
    device_id = r.device.id
    await apply(conn, device_id, FaultRecorded("preset", "SetParameterValues", 9003, "Invalid arguments",
                                               detail={"preset": "default"}),
                PresetsApplied("gen-7", due_at=T0 + 3600), ConnectionRequestCredentials("acs-1", "s3cret"))
    row = await one(conn, "SELECT presets_key, stale, extract(epoch FROM due_at) AS due, connection_request_username "
                          "AS u, connection_request_password AS p FROM acs_devices")
    assert (row["presets_key"], row["stale"], row["due"], row["u"]) == ("gen-7", False, T0 + 3600, "acs-1")
    assert KEYRING.open(row["p"], store.CONNECTION_REQUEST_PURPOSE) == "s3cret"
    fault = await one(conn, "SELECT source, rpc, code, message, detail, task_id FROM acs_faults")
    assert tuple(fault) == ("preset", "SetParameterValues", 9003, "Invalid arguments", {"preset": "default"}, None)
    await apply(conn, device_id, PresetsApplied("gen-8"))
    assert (await one(conn, "SELECT due_at FROM acs_devices"))[0] is None


async def test_a_service_changed_during_the_session_keeps_its_device_stale(conn: asyncpg.Connection) -> None:
    """PresetsApplied at a session's end clears stale only if the device's service and customer
    did not change after the session read them (``since``): else the new values are still owed."""
    sid, customer = await service(conn, "ann@isp", serial="000001")
    [r] = await upsert(conn, inform())
    device_id = r.device.id
    await conn.execute("UPDATE acs_devices SET service_id = $1, customer_id = $2, stale = true", sid, customer)
    read_at = await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8")
    await conn.execute("UPDATE services SET password = 'changed' WHERE id = $1", sid)
    await apply(conn, device_id, PresetsApplied("gen-1", service_id=sid, since=read_at))
    assert await conn.fetchval("SELECT stale FROM acs_devices WHERE id = $1", device_id) is True
    await conn.execute("UPDATE customers SET name = 'Ann B' WHERE id = $1", customer)
    read_at = await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8")
    await apply(conn, device_id, PresetsApplied("gen-1", service_id=sid, since=read_at))
    assert await conn.fetchval("SELECT stale FROM acs_devices WHERE id = $1", device_id) is False


async def test_expire_transfers(conn: asyncpg.Connection) -> None:
    [r] = await upsert(conn, inform())
    device_id = r.device.id
    old, recent, rebooting = (await task(conn, device_id, "download"), await task(conn, device_id, "upload"),
                              await task(conn, device_id, "reboot"))
    await apply(conn, device_id, TaskWaiting(old, "a"), TaskWaiting(rebooting, "c"), now=T0)
    await apply(conn, device_id, TaskWaiting(recent, "b"), now=T0 + 3000)
    async with conn.transaction():
        assert await store.expire_transfers(conn, T0 + 3601) == 2
    status = {r["id"]: r["status"] for r in await conn.fetch("SELECT id, status FROM acs_tasks")}
    assert status == {old: "fault", recent: "waiting", rebooting: "fault"}
    assert (await one(conn, "SELECT message FROM acs_faults WHERE task_id = $1", old))[0].startswith("no Transfer")
    assert tuple(await one(conn, "SELECT rpc, message FROM acs_faults WHERE task_id = $1", rebooting)) == (
        "Reboot", "no Inform with M Reboot within 3600 s")
    async with conn.transaction():
        assert await store.expire_transfers(conn, T0 + 9000, success=True) == 1
    assert (await one(conn, "SELECT status FROM acs_tasks WHERE id = $1", recent))[0] == "done"


# --- what a session reads --------------------------------------------------------------------

async def test_load_view(conn: asyncpg.Connection) -> None:
    sid, customer = await service(conn, "ann@isp", serial="000001")
    await conn.execute("UPDATE services SET ipv4 = '100.64.9.7' WHERE id = $1", sid)
    [r] = await upsert(conn, inform())
    device_id = r.device.id
    await apply(conn, device_id, ParametersKnown((Param("Device.A", "1", "xsd:int", True, T0 - 9),)))
    file_id = await store.store_file(conn, "fw-2.bin", "1 Firmware Upgrade Image", b"firmware", version="V2")
    unfinished = await store.create_file(conn, "fw-3.bin", "1 Firmware Upgrade Image")
    download = await task(conn, device_id, "download", args={"file_id": file_id})
    reboot = await task(conn, device_id, "reboot")
    await task(conn, device_id, not_before=T0 + 100)
    preset = Preset(1, "p", 0, {}, [{"download": unfinished}, {"download": True}, {"set": "x", "value": "y"}])
    view = await store.load_view(conn, r.device, ["2 PERIODIC"], T0, file_url=lambda i, n: f"http://acs/{i}/{n}",
                                 upload_url="http://acs/up", presets=[preset])
    assert view.tree == {"Device.A": Param("Device.A", "1", "xsd:int", True, T0 - 9)}
    assert [t.id for t in view.tasks] == [download, reboot] and view.tasks[0].args == {"file_id": file_id}
    assert view.events == ("2 PERIODIC",) and view.now == T0
    assert list(view.files) == [file_id] and view.files[file_id].url == f"http://acs/{file_id}/fw-2.bin"
    assert (view.files[file_id].size, view.files[file_id].version) == (8, "V2")
    ctx = view.context
    assert ctx["device"]["cwmp_id"] == r.device.cwmp_id and ctx["device"]["tags"] == []
    assert ctx["service"]["id"] == sid and ctx["service"]["login"] == "ann@isp"
    assert (ctx["service"]["password"], ctx["service"]["ipv4"], ctx["service"]["tariff"]) == (
        "pw-1", "100.64.9.7", "Fibre 50")
    assert ctx["customer"]["id"] == customer and ctx["customer"]["custom"] == {"floor": 2}
    assert ctx["upload_url"] == "http://acs/up"


async def test_an_unlinked_device_has_no_service_or_customer(conn: asyncpg.Connection) -> None:
    [r] = await upsert(conn, inform())
    ctx = await store.template_context(conn, r.device.id)
    assert ctx["service"] is None and ctx["customer"] is None and ctx["device"]["serial"] == "000001"


async def test_presets_passwords_and_due_tasks(conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO acs_presets (name, weight, enabled) VALUES ('late', 10, true), "
                       "('off', -500, false), ('early', -100, true)")
    names = [p.name for p in await store.presets(conn)]
    assert names == ["default", "early", "late"]
    [a, b] = await upsert(conn, inform(1), inform(2))
    await conn.execute("UPDATE acs_devices SET cpe_password = 'lm1:x' WHERE id = $1", a.device.id)
    assert await store.cpe_passwords(conn) == {a.device.cwmp_id: "lm1:x"}
    assert await store.cpe_passwords(conn, b.device.cwmp_id) == {}
    await conn.execute("INSERT INTO acs_tasks (device_id, kind, not_before) VALUES ($1, 'get', now()), "
                       "($2, 'get', now()), ($2, 'get', now() + '1 hour'), ($2, 'get', now())",
                       a.device.id, b.device.id)
    await conn.execute("UPDATE acs_tasks SET status = 'done' WHERE id = (SELECT max(id) FROM acs_tasks)")
    assert await store.due_task_count(conn) == 2


# --- live sessions, wakeups, dry runs --------------------------------------------------------

async def test_live_sessions(conn: asyncpg.Connection) -> None:
    [r] = await upsert(conn, inform())
    sid, other = "6f1c0d1e-0000-4000-8000-000000000001", "6f1c0d1e-0000-4000-8000-000000000002"
    await store.save_live(conn, sid, r.device.id, 1, {"plan": ["gpv"]}, T0 + 30)
    await store.save_live(conn, sid, r.device.id, 2, {"plan": []}, T0 + 60)
    assert await store.load_live(conn, sid, T0) == (2, r.device.id, {"plan": []})
    assert await store.load_live(conn, sid, T0 + 61) is None
    async with conn.transaction():
        assert await store.claim_device_session(conn, r.device.id, sid, T0)
        assert not await store.claim_device_session(conn, r.device.id, other, T0)
        assert await store.claim_device_session(conn, r.device.id, other, T0 + 61)
    assert await store.purge_live(conn, T0 + 10) == []
    await store.drop_live(conn, sid)
    assert await store.load_live(conn, sid, T0) is None
    await store.save_live(conn, other, r.device.id, 1, {"id": other}, T0 + 5)
    assert await store.purge_live(conn, T0 + 10) == [{"id": other}]


async def test_wakeups_are_claimed_once(conn: asyncpg.Connection, db_url: str) -> None:
    [a, b] = await upsert(conn, inform(1), inform(2))
    await apply(conn, a.device.id, ConnectionRequestCredentials("cr", "pw"))
    await conn.execute("INSERT INTO acs_wakeups (device_id) VALUES ($1), ($2)", a.device.id, b.device.id)
    other = await db.connect(db_url)
    try:
        async with conn.transaction():
            [(wid, device_id, url, user, sealed)] = await store.claim_wakeups(conn, 1)
            assert (device_id, url, user) == (a.device.id, "http://10.0.0.1:7547/cr", "cr")
            assert sealed is not None and KEYRING.open(sealed, store.CONNECTION_REQUEST_PURPOSE) == "pw"
            async with other.transaction():  # the locked one is skipped
                assert [w[1] for w in await store.claim_wakeups(other, 5)] == [b.device.id]
            await store.finish_wakeup(conn, wid, "sent", 200)
    finally:
        await other.close()
    row = await one(conn, "SELECT status, http_status, done_at IS NOT NULL AS done FROM acs_wakeups WHERE id = $1", wid)
    assert tuple(row) == ("sent", 200, True)
    async with conn.transaction():
        assert [w[1] for w in await store.claim_wakeups(conn, 5)] == [b.device.id]


async def test_dry_runs(conn: asyncpg.Connection) -> None:
    [r] = await upsert(conn, inform())
    await conn.execute("INSERT INTO acs_dry_runs (device_id, preset) VALUES ($1, '{\"actions\": []}')", r.device.id)
    async with conn.transaction():
        [(run_id, device_id, preset)] = await store.claim_dry_runs(conn, 10)
        assert (device_id, preset) == (r.device.id, {"actions": []})
        await store.finish_dry_run(conn, run_id, "done", {"rpcs": []})
    assert tuple(await one(conn, "SELECT status, result FROM acs_dry_runs")) == ("done", {"rpcs": []})
    async with conn.transaction():
        assert await store.claim_dry_runs(conn, 10) == []


async def test_load_device(conn: asyncpg.Connection) -> None:
    [r] = await upsert(conn, inform())
    await conn.execute("UPDATE acs_devices SET tags = '{lab,fibre}' WHERE id = $1", r.device.id)
    d = await store.load_device(conn, r.device.id)
    assert isinstance(d, Device) and d.tags == ("lab", "fibre") and d.connection_request_url.endswith("/cr")
    assert await store.load_device(conn, r.device.id + 1) is None
