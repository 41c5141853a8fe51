"""Support → Rules in Chromium: a rule without a condition refused with each of its sentences, then
made through the form, its page showing the dry run's count; a screenshot of the rule's page
(var/screenshots/, and /tmp/shots/tickets-rule.png)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import asyncpg

from tests.integration.admin.conftest import make_admin
from tests.integration.browser.conftest import Tab

SHOTS = Path("/tmp/shots")


async def test_a_rule_is_refused_then_made_and_dry_run(conn: asyncpg.Connection, tab: Tab) -> None:
    await make_admin(conn, "root")
    await conn.execute("INSERT INTO ticket_groups (name) VALUES ('Field team')")
    await conn.execute("INSERT INTO ticket_canned_replies (name, body) VALUES ('Closing', "
                       "'Dear {{ customer.name }}, we close ticket {{ ticket.id }}.')")
    now = dt.datetime.now(dt.UTC)
    for status, idle in (("waiting_customer", 100), ("waiting_customer", 80), ("waiting_customer", 10), ("new", 100)):
        await conn.execute("INSERT INTO tickets (subject, requester_email, source, status, last_activity_at) "
                           "VALUES ('Test', 'a@b.example', 'admin', $1, $2)", status, now - dt.timedelta(hours=idle))
    page = tab.page
    await tab.login("root")
    await tab.goto("/admin/tickets/rules/new")
    await page.fill("#f-name", "Close idle tickets")
    tab.expect_error(r"status of 422 .*/admin/tickets/rules/new")  # refused on purpose
    await tab.submit()
    problems = page.locator("#problems li")
    assert await problems.all_inner_texts() == ["the rule has no condition: it would act on every ticket",
                                                "the rule has no action: it would do nothing"]
    await page.select_option("#f-status", "waiting_customer")
    await page.fill("#f-idle_hours", "72")
    await page.select_option("#f-set_status", "resolved")
    await page.select_option("#f-canned_reply_id", label="Closing")
    await tab.submit()
    assert await tab.h1() == "Rule Close idle tickets"
    assert (await page.inner_text("#dry-run-count")) == "2"
    await tab.shot("rule")
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / "tickets-rule.png"), full_page=True)
    await tab.goto("/admin/tickets/rules")
    assert await page.locator("main tbody tr").count() == 1
