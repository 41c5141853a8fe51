"""Notifications -> Webhooks in a real browser: add a webhook, see its secret once, a delivery that a
real receiver on 127.0.0.1 answered 500 with its attempt, replay it and see it delivered; the
event catalogue; the pages on a phone. Screenshots in var/screenshots/<test>-<page>.png."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import asyncpg

from admin.notifications import dispatch, sign, webhooks
from tests.integration.admin.conftest import Admin, make_admin
from tests.integration.browser.conftest import PHONE, Browse
from tests.integration.notifications.test_webhooks import Receiver


async def deliver(admin: Admin) -> webhooks.Result:
    settings = dataclasses.replace(webhooks.DeliverySettings(admin.keyring), timeout=5)
    return await webhooks.deliver(admin.pool, settings, now=lambda: dt.datetime.now(dt.UTC))


async def test_add_a_webhook_see_its_secret_once_a_delivery_and_replay_it(conn: asyncpg.Connection, admin: Admin,
                                                                          browse: Browse) -> None:
    await make_admin(conn, "root", "super")
    tab = await browse()
    page = tab.page
    await tab.login("root")
    await tab.goto("/admin/notifications/webhooks")
    assert await tab.h1() == "Webhooks" and "No webhooks yet." in await page.inner_text("#webhooks")
    await page.click("#type-invoice-created summary")
    assert '"total":"37.2000"' in await page.inner_text("#type-invoice-created pre")
    await tab.shot("list-empty")
    async with Receiver() as receiver:
        receiver.answers["/hook"] = [500, 200]
        async with page.expect_navigation(url="**/admin/notifications/webhooks/new"):
            await page.click("#add-webhook")
        await page.fill("#f-url", receiver.url + "/hook")
        await page.check("input[name=events][value='customer.created']")
        await page.check("input[name=events][value='invoice.created']")
        await page.fill("#f-description", "the CRM")
        await tab.shot("form")
        await tab.submit("#webhook-form button[type=submit]")
        assert "Webhook added." in await page.inner_text("#created")
        secret = (await page.inner_text("#secret-value")).strip()
        assert secret.startswith("whsec_") and "shown this once" in await page.inner_text("#secret")
        await tab.shot("created")
        hook = await conn.fetchval("SELECT id FROM webhooks")
        await tab.goto(f"/admin/notifications/webhooks/{hook}")
        assert await page.locator("#secret").count() == 0 and secret not in await page.content()

        # an event: a new customer; the worker's dispatch and delivery (the receiver answers 500)
        partner = await conn.fetchval("INSERT INTO partners (name) VALUES ('Main') RETURNING id")
        await conn.execute("INSERT INTO customers (partner_id, number, name) VALUES ($1, 'C1', 'Ann')", partner)
        assert await dispatch.dispatch(conn, now=dt.datetime.now(dt.UTC)) == 1
        assert (await deliver(admin)).retried == 1
        got = receiver.got[0]
        sign.verify(secret, got.body, got.headers["Lastmile-Signature"], time.time())  # the secret shown signs it
        await tab.goto(f"/admin/notifications/webhooks/{hook}")
        row = await page.inner_text("#deliveries tbody tr")
        assert "customer.created" in row and "pending" in row and "HTTP 500" in row
        await tab.shot("delivery-failed")
        delivery = await conn.fetchval("SELECT id FROM webhook_deliveries")
        async with page.expect_navigation(url=f"**/admin/notifications/webhooks/deliveries/{delivery}"):
            await page.click(f"#delivery-{delivery} a")
        attempts = await page.inner_text("#attempts")
        assert "HTTP 500" in attempts and "answer 500" in attempts
        assert '"type": "customer.created"' in await page.inner_text("#body")
        await tab.shot("attempts")
        await tab.submit("#replay button[type=submit]")
        assert "Pending again" in await page.inner_text("#replayed")
        assert (await deliver(admin)).delivered == 1
        await page.reload()
        assert "delivered" in await page.inner_text("#facts")
        answers = await page.locator("#attempts tbody tr td:nth-child(2)").all_inner_texts()
        assert [a.strip() for a in answers] == ["HTTP 500", "HTTP 200"]
        await tab.shot("replayed")
        assert len({g.headers["Lastmile-Delivery"] for g in receiver.got}) == 1 and len(receiver.got) == 2

        phone = await browse(viewport=PHONE, is_mobile=True)
        await phone.login("root")
        await phone.goto("/admin/notifications/webhooks")
        await phone.shot("phone-list")
        await phone.goto(f"/admin/notifications/webhooks/deliveries/{delivery}")
        await phone.shot("phone-delivery")
        width = await phone.page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], width  # nothing widens the page past the phone's screen
