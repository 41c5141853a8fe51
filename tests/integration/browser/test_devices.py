"""CPE devices through the pages in Chromium: the list searched by a parameter's value, a device's
page with its tree opened, a connection request polled from pending to sent (the ACS's answer
faked by updating its row), a reboot queued after its confirmation, a preset's dry run polled to
its answer, a firmware uploaded through the form, and the access log; screenshots of each."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from playwright.async_api import Dialog

from tests.integration.admin.conftest import make_admin
from tests.integration.admin.test_devices import add_tree, world
from tests.integration.browser.conftest import Tab

TR181 = [
    ("Device.DeviceInfo.Manufacturer", "Huawei", "xsd:string", False),
    ("Device.DeviceInfo.SoftwareVersion", "V2.0", "xsd:string", False),
    ("Device.ManagementServer.PeriodicInformInterval", "300", "xsd:unsignedInt", True),
    ("Device.ManagementServer.ConnectionRequestPassword", "cr-secret", "xsd:string", True),
    ("Device.PPP.Interface.1.Username", "bravo-1", "xsd:string", True),
    ("Device.WiFi.SSID.", None, "", True),
    ("Device.WiFi.SSID.1.SSID", "Bravo Home", "xsd:string", True),
    ("Device.WiFi.SSID.2.SSID", "Bravo Guest", "xsd:string", True),
    ("Device.WiFi.AccessPoint.1.Security.KeyPassphrase", "wpa-secret", "xsd:string", True),
]


async def test_a_device_is_found_woken_rebooted_and_its_preset_dry_run(conn: asyncpg.Connection, tab: Tab,
                                                                         tmp_path: Path) -> None:
    await make_admin(conn, "root")
    w = await world(conn)
    await add_tree(conn, w.device_b, TR181)
    await conn.execute("UPDATE acs_devices SET last_inform_at = now() - interval '3 minutes' WHERE id = $1",
                       w.device_b)
    await conn.executemany(
        "INSERT INTO acs_sessions (started_at, device_id, address, events, rpcs, faults, duration_ms, outcome) "
        "VALUES (now() - make_interval(mins => $1), $2, '198.51.100.9', $3, $4, $5, $6, $7)",
        [(3, w.device_b, ["2 PERIODIC"], ["Inform"], [], 9, "ok"),
         (20, w.device_b, ["1 BOOT", "4 VALUE CHANGE"], ["Inform", "SetParameterValues"], [], 140, "ok"),
         (41, w.device_a, ["6 CONNECTION REQUEST"], ["Inform", "Reboot"], ["9001 Reboot"], 300, "fault")])
    page = tab.page
    await tab.login("root")
    await page.click("nav.side a:text-is('CPE devices')")
    await page.wait_for_url("**/admin/cpe/devices")
    assert await page.locator("main tbody tr").count() == 3
    # (a screenshot marks the inputs, which htmx's swap then copies: the list's is taken after the filter)
    await page.fill("#f-param", "SSID")
    await page.fill("#f-value", "Bravo Guest")
    async with page.expect_navigation():
        await page.click("main form.toolbar button")
    assert await page.locator("main tbody tr").count() == 1
    await tab.shot("devices-by-ssid")
    await tab.goto("/admin/cpe/devices")
    await tab.shot("devices")
    await tab.goto("/admin/cpe/devices?param=SSID&value=Bravo+Guest")
    async with page.expect_navigation():
        await page.click("main tbody a:text('00D09E-HG8245-SNB1')")
    assert "SNB1" in await tab.h1()
    text = await page.inner_text("main")
    assert "wpa-secret" not in text and "cr-secret" not in text and "Bravo Home" in text

    # connection request: pending, then sent once an acs instance has written its answer
    await page.click("#wakeup-button")
    await page.locator("#wakeup .status:text('pending')").wait_for()
    await tab.shot("device-wakeup-pending", full_page=False)
    await conn.execute("UPDATE acs_wakeups SET status = 'sent', http_status = 200, done_at = now()")
    await page.locator("#wakeup .status:text('sent')").wait_for(timeout=5000)

    # a reboot, after the confirmation
    dialogs: list[str] = []

    async def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)
    async with page.expect_navigation():
        await page.click("button:text-is('Reboot')")
    assert dialogs == ["Reboot 00D09E-HG8245-SNB1?"]
    assert await conn.fetchval("SELECT kind FROM acs_tasks WHERE device_id = $1", w.device_b) == "reboot"
    assert "Task queued" in await page.inner_text("main .notice")
    await page.locator("details.node summary:has-text('WiFi.')").first.click()
    await page.locator("details.node summary:has-text('SSID.')").first.click()
    await page.evaluate("window.scrollTo(0, 0)")  # (the sticky menu bar is drawn where the page is scrolled to)
    await tab.shot("device")

    # a preset's dry run against this device, answered by a (faked) acs instance
    await tab.goto("/admin/cpe/presets/new")
    await page.fill("#f-name", "wifi")
    await page.fill("#f-actions", '[{"set": "@wifi.ssid", "value": "{{ customer.name }}"}]')
    await page.fill("#f-device", "SNB1")
    await page.click("#dry-run-button")
    await page.locator("#dry-run .status:text('pending')").wait_for()
    run_id = await conn.fetchval("SELECT max(id) FROM acs_dry_runs")
    await conn.execute(
        "UPDATE acs_dry_runs SET status = 'done', done_at = now(), result = $2 WHERE id = $1", run_id,
        {"matched": [{"id": 0, "name": "draft"}], "values": {"Device.WiFi.SSID.1.SSID": ["Bravo Home", "xsd:string"]},
         "objects": {}, "refreshes": {}, "downloads": [], "reboot": False, "rpcs": [], "faults": []})
    await page.locator("#dry-run h3:text('Values declared')").wait_for(timeout=5000)
    assert "None: the device is in the state the presets declare" in await page.inner_text("#dry-run")
    await page.evaluate("window.scrollTo(0, 0)")
    await tab.shot("preset-dry-run")
    async with page.expect_navigation():
        await page.click("button:text-is('Create preset')")
    assert "Preset created" in await page.inner_text("main .notice")
    await tab.goto("/admin/cpe/presets")
    await tab.shot("presets")

    # a firmware through the upload form (htmx, multipart), then the list
    firmware = tmp_path / "fw-2.1.bin"
    firmware.write_bytes(b"\x7fFW" * 100_000)
    await tab.goto("/admin/cpe/files/new")
    await page.fill("#f-version", "V2.1")
    await page.set_input_files("#f-file", str(firmware))
    await tab.shot("file-upload")
    async with page.expect_navigation(url="**/admin/cpe/files?done=uploaded*"):
        await page.click("main button[type=submit]")
    assert "fw-2.1.bin" in await page.inner_text("main table")
    assert await conn.fetchval("SELECT size FROM acs_files") == 300_000
    await tab.shot("files")

    await tab.goto("/admin/cpe/sessions")
    assert await page.locator("main tbody tr").count() == 3
    await tab.shot("sessions")
    await tab.goto(f"/admin/customers/{w.customer_b}")
    assert "00D09E-HG8245-SNB1" in await page.inner_text("#customer-devices")
    await tab.shot("customer-devices")
