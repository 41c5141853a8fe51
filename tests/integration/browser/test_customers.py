"""Customers through the pages: found by IP from the search box; made in the forms, then blocked,
with provisiond (a real process) putting the address in the RouterOS double's blocked list and
the operations log showing the block."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from playwright.async_api import Dialog

from daemons import demo
from daemons.config import SecretsSettings
from daemons.secrets import ROUTER_PURPOSE, Keyring
from tests.fakes.routeros import FakeRouter
from tests.integration.admin.conftest import make_admin
from tests.integration.browser.conftest import Tab
from tests.integration.conftest import eventually
from tests.integration.daemon import Daemon, start_daemon

LISTS = "/ip/firewall/address-list"
ROUTER_PASSWORD = "router-pass"
ADDRESS = "100.64.20.7"


async def test_a_customer_is_found_by_ip_from_the_search_box(conn: asyncpg.Connection, tab: Tab) -> None:
    await make_admin(conn, "root")
    await demo.load(conn, 30, seed=1)
    row = await conn.fetchrow(
        "SELECT host(s.ipv4) AS ip, c.id, c.name FROM services s JOIN customers c ON c.id = s.customer_id "
        "WHERE s.ipv4 IS NOT NULL ORDER BY s.id LIMIT 1 OFFSET 11")
    assert row is not None
    await tab.login("root")
    await tab.page.keyboard.press("/")
    await tab.page.keyboard.type(row["ip"])
    async with tab.page.expect_navigation(url=f"**/admin/customers/{row['id']}"):
        await tab.page.keyboard.press("Enter")
    assert row["name"] in await tab.h1()
    assert row["ip"] in await tab.page.inner_text("main table")  # the service with that address
    await tab.shot("customer")


def blocked(router: FakeRouter) -> list[str]:
    return [e["address"] for e in router.table(LISTS) if e.get("list") == "blocked"]


async def test_a_customer_made_in_the_forms_is_blocked_on_the_router_and_in_the_log(
        conn: asyncpg.Connection, tab: Tab, db_url: str, tmp_path: Path) -> None:
    keyring = Keyring.load(SecretsSettings(key_file=str(tmp_path / "secret.key")), create=True)
    async with FakeRouter(user="lastmile", password=ROUTER_PASSWORD) as router:
        await make_admin(conn, "root")
        await conn.execute("INSERT INTO partners (name) VALUES ('Test ISP')")
        await conn.execute("INSERT INTO tariffs (name, download_kbps, upload_kbps, price) "
                           "VALUES ('Home 50', 50000, 10000, 29.90)")
        await conn.execute("INSERT INTO routers (name, host, api_port, username, password) VALUES "
                           "('edge', '127.0.0.1', $1, 'lastmile', $2)", router.port,
                           keyring.seal(ROUTER_PASSWORD, ROUTER_PURPOSE))
        env = {"LASTMILE_SECRETS__KEY_FILE": str(tmp_path / "secret.key")}
        provisiond = await asyncio.to_thread(start_daemon, Daemon, "provisiond", db_url, tmp_path, env)
        try:
            await _make_and_block(tab, router)
        finally:
            assert provisiond.stop() == 0
    problems = [e for e in provisiond.logs() if e.get("level") in ("error", "warning")]
    assert problems == [], problems


async def _make_and_block(tab: Tab, router: FakeRouter) -> None:
    page = tab.page
    await tab.login("root")
    await page.click("nav.side a:text-is('New customer')")
    await page.wait_for_url("**/admin/customers/new")
    await page.fill("#f-name", "Dora Brown")
    await page.select_option("#f-status", "active")
    await page.fill("#f-email", "dora@example.net")
    await page.fill("#f-phone", "+43 660 1234567")
    await page.fill("#f-street", "Hauptstraße 1")
    await page.fill("#f-zip", "1010")
    await page.fill("#f-city", "Wien")
    await page.fill("#f-country", "at")
    await tab.shot("1-new-customer")
    await tab.submit()
    await page.wait_for_url("**/admin/customers/*")
    customer_id = int(page.url.rsplit("/", 1)[1])
    assert "Dora Brown" in await tab.h1()
    await tab.shot("2-customer")

    await page.click("main a:text-is('Add service')")
    await page.wait_for_url(f"**/admin/customers/{customer_id}/services/new")
    await page.select_option("#f-tariff_id", label="Home 50")
    await page.fill("#f-login", "dora")
    await page.fill("#f-password", "s3cret-pw")
    await page.select_option("#f-router_id", label="edge")
    await page.fill("#f-ipv4", ADDRESS)
    await tab.shot("3-new-service")
    await tab.submit()
    await page.wait_for_url("**/admin/services/*")
    assert "dora" in await tab.h1()
    await tab.shot("4-service")
    # provisiond writes the new service's queue: it is looking at this router.
    await eventually(lambda: any(q.get("name") == "dora" for q in router.table("/queue/simple")), 10.0)
    assert blocked(router) == []

    await page.click("main a:text-is('Dora Brown')")
    await page.wait_for_url(f"**/admin/customers/{customer_id}")
    asked: list[str] = []

    async def confirm(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.once("dialog", confirm)
    await tab.submit("main button[value=block]")
    assert asked == ["Block Dora Brown?"]
    await page.wait_for_url(f"**/admin/customers/{customer_id}?done=block")
    assert "blocked" in await page.inner_text("h1 .status")
    await tab.shot("5-blocked")
    await eventually(lambda: blocked(router) == [ADDRESS], 10.0)

    await tab.goto(f"/admin/operations-log?customer_id={customer_id}")
    rows = page.locator("table.oplog tbody tr")
    await rows.first.wait_for()
    texts = await rows.all_inner_texts()
    assert any("block" in t and "active -> blocked" in t and "root" in t for t in texts), texts
    assert any("created customer" in t for t in texts) and any("created service dora" in t for t in texts), texts
    await tab.shot("6-operations-log")
