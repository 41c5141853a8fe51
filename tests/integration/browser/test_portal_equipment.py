"""The portal's equipment page in a real Chromium, at desktop and phone width (390 px: nothing wider
than the screen), with no console error nor CSP violation: the customer changes a Wi-Fi network's
name and sees the task queued under the router ("Waiting for your router"), restarts it through the
confirm step, and staff see the queued change on the admin's device page, the key masked.
Screenshots in var/screenshots/ and /tmp/shots/portal-equipment-*.png."""

from __future__ import annotations

from tests.integration.admin.conftest import Admin, make_admin
from tests.integration.browser.conftest import PHONE, Browse, Tab, admin, browse, browser  # noqa: F401
from tests.integration.browser.test_portal_usage import shot
from tests.integration.portal.conftest import PASSWORD, portal_customer
from tests.integration.portal.test_equipment import TR181_WIFI, device
from tests.integration.portal.test_services import service

KEY = "a-long-wifi-key-42"


async def setup(app: Admin) -> tuple[int, int]:
    """Anna's two routers: a TR-181 one with two radios (online), a TR-098 one offline."""
    anna = await portal_customer(app, login="anna", name="Anna Berger")
    async with app.pool.acquire() as conn:
        sid = await service(conn, anna, "anna-fibre")
        first = await device(conn, customer_id=anna, service_id=sid, serial="48575443A1B2C3D4", params=TR181_WIFI)
        second = await device(conn, customer_id=anna, serial="ZTEGC8A90F01", data_model="tr098",
                              seen="now() - interval '2 days'",
                              params={"InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID": "Berger-Office"})
        await make_admin(conn, "noc")
    return first, second


async def change_wifi(tab: Tab, device_id: int, ssid: str) -> None:
    where = f"{device_id}-1"
    await tab.page.fill(f"#ssid-{where}", ssid)
    await tab.page.fill(f"#key-{where}", KEY)
    await tab.submit(f"#device-{device_id} form.wifi:has(#ssid-{where}) button[type=submit]")


async def test_the_wifi_name_changed_and_the_task_queued(admin: Admin, browse: Browse) -> None:  # noqa: F811
    first, second = await setup(admin)
    for size, options in (("desktop", {}), ("phone", {"viewport": PHONE, "is_mobile": True})):
        tab = await browse(**options)
        tab.expect_error(r"/favicon\.ico")  # base.html links no icon while the brand has no logo
        await tab.portal_login("anna", PASSWORD)
        await tab.page.click("nav.menu a[data-section=equipment]")
        await tab.page.wait_for_selector(f"#device-{first}")
        assert await tab.h1() == "Equipment"
        main = await tab.page.inner_text("main")
        assert "Anna-Home-5G" in main and "Berger-Office" in main and "old-key" not in main
        await tab.fits()
        await shot(tab, f"equipment-{size}")
        ssid = f"Anna {size}"
        await change_wifi(tab, first, ssid)
        assert "Your Wi-Fi change is on its way" in await tab.page.inner_text("main")
        tasks = await tab.page.inner_text(f"#device-{first} .tasks")
        assert f"new name “{ssid}” and new key" in tasks and "Waiting for your router" in tasks, tasks
        assert KEY not in await tab.page.content()
        await tab.fits()
        await shot(tab, f"equipment-queued-{size}")
    # the restart, through its confirm step
    tab = await browse()
    tab.expect_error(r"/favicon\.ico")
    await tab.portal_login("anna", PASSWORD)
    await tab.goto("/portal/equipment")
    async with tab.page.expect_navigation():
        await tab.page.click(f"#device-{second} a.button")
    assert await tab.h1() == "Restart the router?"
    await shot(tab, "equipment-reboot-confirm")
    await tab.submit("form.confirm button[type=submit]")
    assert "Your router is asked to restart" in await tab.page.inner_text("main")
    assert "Restart the router" in await tab.page.inner_text(f"#device-{second} .tasks")
    # a name too long: said at the field, nothing queued
    tab.expect_error(r"status of 422 .*/portal/equipment/\d+/wifi")
    await tab.page.fill(f"#ssid-{second}-1", "é" * 20)  # 20 characters (within maxlength), 40 bytes
    await tab.submit(f"#device-{second} form.wifi button[type=submit]")
    assert "at most 32 bytes" in await tab.page.inner_text(f"#device-{second}")
    await shot(tab, "equipment-invalid")
    # staff see the portal's task on the admin's device page, the key masked
    staff = await browse()
    await staff.login("noc")
    await staff.goto(f"/admin/cpe/devices/{first}")
    body = await staff.page.inner_text("main")
    assert "Anna phone" in body and KEY not in body and "customer:" in body
    await staff.shot("admin-device")
