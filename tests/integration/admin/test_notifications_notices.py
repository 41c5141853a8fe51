"""Notifications → Notices through its page and its API on the admin app over a real database:
each group's form saves its kinds' rules (a partner's own, made from the default ones); wrong
rules are refused with their messages (static reminder days ascend, prepaid days descend, BCC an
address, a day while on); a partner's administrator reaches its own partner only (404) and does
not change the default (403); "Run today's notices now" queues the schedule and the delivery
once; and the reminders' calendar counts, day by day, the reminders that the invoices unpaid now
would get, against invoices made here (relative and static days, a payment-method restriction,
a paid invoice, a customer with two unpaid invoices, a partner with rules of its own)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import asyncpg

from admin.billing import ledger
from admin.notifications import notices
from admin.worker import queue
from tests.conftest import one
from tests.integration.admin.conftest import Admin, api_key, call
from tests.integration.admin.test_finance import logged
from tests.integration.admin.test_notifications_settings import partners, post

TODAY = dt.datetime.now(dt.UTC).date()
MONTH = (TODAY.replace(day=1) + dt.timedelta(days=62)).replace(day=1)  # wholly in the future
"""The calendar's month in these tests: the month after next."""


def reminders(days: tuple[int | None, int | None, int | None] = (3, 7, 10), **extra: object) -> dict[str, object]:
    """The reminders group's form: all three on, by email, at 09:00, 10:00, 11:00."""
    out: dict[str, object] = {"group": "reminders"}
    for n, day in enumerate(days, start=1):
        kind = f"reminder_{n}"
        out.update({f"{kind}.enabled": "1", f"{kind}.channels": ["email"], f"{kind}.send_hour": str(8 + n),
                    f"{kind}.day": "" if day is None else str(day), f"{kind}.subject": f"Reminder {n}",
                    f"{kind}.attach": "1"})
    return {**out, **extra}


async def customer(conn: asyncpg.Connection, partner_id: int, number: str) -> int:
    return int(await conn.fetchval("INSERT INTO customers (partner_id, number, name, email) "
                                   "VALUES ($1, $2, $3, $4) RETURNING id",
                                   partner_id, number, f"Customer {number}", f"{number.lower()}@example.net"))


async def invoice(conn: asyncpg.Connection, customer_id: int, due_on: dt.date, amount: str = "30.00") -> int:
    row = await one(conn, "SELECT c.partner_id, b.currency FROM customers c JOIN customer_billing b "
                          "ON b.customer_id = c.id WHERE c.id = $1", customer_id)
    partner_id, currency = row["partner_id"], row["currency"]
    async with conn.transaction():
        [doc] = await ledger.issue(conn, [ledger.NewDocument(
            "invoice", customer_id, partner_id, currency, due_on - dt.timedelta(days=14), "manual",
            (ledger.NewLine("Fibre 100", Decimal(amount)),), due_on=due_on)])
    return doc.id


def calendar_counts(body: str) -> dict[str, dict[int, int]]:
    """The calendar's cells as {day: {reminder: count}} (the days with any)."""
    out: dict[str, dict[int, int]] = {}
    for day, cell in re.findall(r'data-day="([0-9-]+)"[^>]*>(.*?)</div>', body, re.S):
        found = {int(n): int(c) for n, c in re.findall(r'data-reminder="(\d)"[^>]*>#\d&nbsp;<b>(\d+)</b>', cell)}
        if found:
            out[day] = found
    return out


def on(day: int) -> str:
    return MONTH.replace(day=day).isoformat()


async def test_groups_are_saved_and_wrong_rules_refused(admin: Admin, conn: asyncpg.Connection) -> None:
    async with await logged(admin, "root", "super") as c:
        status, body = await c.get("/admin/notifications/notices")
        assert status == 200 and "there is nothing to apply" in body and "Run today&#39;s notices now" not in body
        assert "Run today's notices now" in body and 'id="calendar"' in body
        status, body, url = await post(c, "/admin/notifications/notices", {
            "partner": "default", "group": "documents", "invoice.enabled": "1", "invoice.channels": ["email", "sms"],
            "invoice.subject": "Your invoice", "invoice.delay_hours": "3", "invoice.attach": "1",
            "invoice.bcc": "archive@acme.example", "payment.enabled": "1", "payment.channels": ["portal"],
            "payment.delay_hours": "0", "proforma.channels": ["email"], "proforma.delay_hours": "0",
            "credit_note.channels": ["email"], "credit_note.delay_hours": "0"})
        assert status == 200 and "done=saved-documents" in url and "Document notices saved" in body
        rows = {r["kind"]: r for r in await conn.fetch("SELECT * FROM notice_rules WHERE partner_id IS NULL")}
        assert set(rows) == {"invoice", "proforma", "payment", "credit_note"}
        inv = rows["invoice"]
        assert (inv["enabled"], list(inv["channels"]), inv["subject"], inv["delay_hours"], inv["bcc"]) == (
            True, ["email", "sms"], "Your invoice", 3, "archive@acme.example")
        assert not rows["payment"]["attach"] and list(rows["payment"]["channels"]) == ["portal"]

        status, body, _ = await post(c, "/admin/notifications/notices", {
            "partner": "default", "group": "documents", "invoice.enabled": "1", "invoice.channels": [],
            "invoice.delay_hours": "5", "invoice.bcc": "not-an-address", "payment.channels": ["email"],
            "payment.delay_hours": "0", "proforma.channels": ["email"], "proforma.delay_hours": "0",
            "credit_note.channels": ["email"], "credit_note.delay_hours": "0", "credit_note.subject": "two\nlines"})
        assert status == 422 and "Not saved: please correct the fields marked below" in body
        for text in ("choose email, SMS or the portal", "one of 0, 1, 3, 6, 12, 24, 48, 72 hours",
                     "must be an email address (or several", "must be one line"):
            assert text in body, text
        assert 'value="not-an-address"' in body
        status, body, _ = await post(c, "/admin/notifications/notices", {
            "partner": "default", "group": "documents", "invoice.enabled": "1", "invoice.channels": ["email"],
            "invoice.delay_hours": "0", "invoice.subject": "Invoice {{ document.number }} {% if %}",
            "payment.channels": ["email"], "payment.delay_hours": "0", "payment.subject": "{{ nope.x }}",
            "proforma.channels": ["email"], "proforma.delay_hours": "0", "credit_note.channels": ["email"],
            "credit_note.delay_hours": "0", "credit_note.subject": "{{ ''.__class__.__mro__ }}"})
        assert status == 422
        for text in ("in the subject: Expected an expression", "in the subject: &#39;nope&#39; is undefined",
                     "in the subject: refused by the sandbox"):
            assert text in body, text
        assert await conn.fetchval("SELECT bcc FROM notice_rules WHERE kind = 'invoice'") == "archive@acme.example"

        # Reminders: a day while on; relative 1-366; static days ascend (the settings' mode).
        status, body, _ = await post(c, "/admin/notifications/notices", reminders((None, 0, 5), partner="default"))
        assert status == 422 and "is required while the notice is on" in body and "1 to 366 days after" in body
        await conn.execute("INSERT INTO notification_settings (partner_id, reminder_days) VALUES (NULL, 'static')")
        status, body, _ = await post(c, "/admin/notifications/notices", reminders((10, 5, 40), partner="default"))
        assert status == 422 and "must come after payment reminder 1 (day 10): static days ascend" in body
        assert "a day of the month, 1 to 31" in body
        status, body, _ = await post(c, "/admin/notifications/notices", reminders((5, 15, 25), partner="default"))
        assert status == 200 and "Payment reminders saved" in body
        days = await conn.fetch("SELECT kind, day, send_hour FROM notice_rules WHERE kind LIKE 'reminder%' "
                                "ORDER BY kind")
        assert [(r["day"], r["send_hour"]) for r in days] == [(5, 9), (15, 10), (25, 11)]

        # Prepaid: the days before blocking descend.
        prepaid: dict[str, object] = {"partner": "default", "group": "prepaid"}
        for n, day in enumerate((3, 7, 1), start=1):
            prepaid.update({f"prepaid_{n}.enabled": "1", f"prepaid_{n}.channels": ["sms"], f"prepaid_{n}.day": str(day),
                            f"prepaid_{n}.send_hour": "10"})
        status, body, _ = await post(c, "/admin/notifications/notices", prepaid)
        assert status == 422 and "must come closer to blocking than prepaid notice 1 (3 days)" in body
        status, _, _ = await post(c, "/admin/notifications/notices", {**prepaid, "prepaid_1.day": "10"})
        assert status == 200
        assert [r["day"] for r in await conn.fetch("SELECT day FROM notice_rules WHERE kind LIKE 'prepaid%' "
                                                   "ORDER BY kind")] == [10, 7, 1]
        log = await conn.fetch("SELECT summary FROM operations_log WHERE object_type = 'notice_rules' ORDER BY id")
        assert [r["summary"] for r in log] == [
            "the default notices: document notices changed (invoice, proforma invoice, payment receipt, credit note)",
            "the default notices: payment reminders changed (payment reminder 1, payment reminder 2, "
            "payment reminder 3)",
            "the default notices: prepaid notices changed (prepaid notice 1, prepaid notice 2, prepaid notice 3)"]

    key = await api_key(conn)
    status, got = await call(admin, key, "GET", "/notifications/rules/default/reminder_2")
    assert status == 200 and got["source"] == "default" and got["day"] == 15 and got["send_hour"] == 10, got
    status, got = await call(admin, key, "PUT", "/notifications/rules/default/reminder_2", {"day": 3})
    assert status == 422 and "static days ascend" in got["errors"]["day"], got
    status, got = await call(admin, key, "PUT", "/notifications/rules/default/reminder_2",
                             {"day": 20, "channels": ["sms", "email"], "payment_methods": ["card"]})
    assert status == 200 and got["day"] == 20 and got["channels"] == ["email", "sms"], got
    assert got["payment_methods"] == ["card"]
    status, got = await call(admin, key, "GET", "/notifications/rules/default/card_expiry")
    assert status == 200 and got["source"] == "built-in" and got["enabled"] is False
    for bad in ("/notifications/rules/default/birthday", "/notifications/rules/x/invoice"):
        assert (await call(admin, key, "GET", bad))[0] == 404, bad
    status, got = await call(admin, key, "PUT", "/notifications/rules/default/invoice", {"delay_hours": 2})
    assert status == 422 and "delay_hours" in got["errors"]


async def test_a_partners_administrator_reaches_its_own_rules_only(admin: Admin, conn: asyncpg.Connection) -> None:
    mine, other = await partners(conn, "Alpha Net", "Beta Fibre")
    await conn.execute("INSERT INTO notice_rules (partner_id, kind, enabled, subject) VALUES (NULL, 'blocking', true, "
                       "'Blocked'), ($1, 'blocking', true, 'Beta blocked')", other)
    async with await logged(admin, "alpha", "admin", partner_id=mine) as c:
        status, body = await c.get("/admin/notifications/notices")
        assert status == 200 and "Alpha Net follows the default notices" in body and 'value="Blocked"' in body
        assert "Beta Fibre" not in body
        assert (await c.get(f"/admin/notifications/notices?partner={other}"))[0] == 404
        status, body = await c.get("/admin/notifications/notices?partner=default")
        assert status == 200 and "Only an administrator of every partner changes the default notices" in body
        others = {"group": "others", "blocking.enabled": "1", "blocking.channels": ["email"], "blocking.send_hour": "8",
                  "blocking.subject": "Alpha: you are blocked", "inactive.channels": ["email"],
                  "inactive.send_hour": "9", "card_expiry.channels": ["email"], "card_expiry.send_hour": "9",
                  "contract_end.channels": ["email"], "contract_end.send_hour": "9"}
        assert (await post(c, "/admin/notifications/notices", {**others, "partner": "default"}))[0] == 403
        assert (await post(c, "/admin/notifications/notices", {**others, "partner": str(other)}))[0] == 404
        status, body, _ = await post(c, "/admin/notifications/notices", {**others, "partner": str(mine)})
        assert status == 200 and "has rules of its own" in body
        assert await conn.fetchval("SELECT subject FROM notice_rules WHERE partner_id = $1 AND kind = 'blocking'",
                                   mine) == "Alpha: you are blocked"
        assert await conn.fetchval("SELECT subject FROM notice_rules WHERE partner_id IS NULL AND kind = 'blocking'") \
            == "Blocked"
        status, body, _ = await post(c, "/admin/notifications/notices/reset", {"partner": str(mine)})
        assert status == 200 and "follows the default notices again" in body
        assert await conn.fetchval("SELECT count(*) FROM notice_rules WHERE partner_id = $1", mine) == 0
        assert (await post(c, "/admin/notifications/notices/reset", {"partner": "default"}))[0] == 409

    key = await api_key(conn, "admin", partner_id=mine)
    assert (await call(admin, key, "GET", f"/notifications/rules/{other}/blocking"))[0] == 404
    assert (await call(admin, key, "PUT", f"/notifications/rules/{other}/blocking", {"enabled": False}))[0] == 404
    assert (await call(admin, key, "PUT", "/notifications/rules/default/blocking", {"enabled": False}))[0] == 403
    status, got = await call(admin, key, "PUT", f"/notifications/rules/{mine}/blocking", {"send_hour": 7})
    assert status == 200 and got["source"] == "partner" and got["subject"] == "Blocked" and got["send_hour"] == 7
    status, got = await call(admin, key, "DELETE", f"/notifications/rules/{mine}/blocking")
    assert status == 200 and got["source"] == "default" and got["send_hour"] == 9

    async with await logged(admin, "boss", "manager") as c:  # notifications.view only
        status, body = await c.get("/admin/notifications/notices")
        assert status == 200 and "changing them needs notifications.edit" in body
        assert "Run today's notices now" not in body
        assert (await post(c, "/admin/notifications/notices", {**others, "partner": "default"}))[0] == 403
        assert (await post(c, "/admin/notifications/notices/run", {"partner": "default"}))[0] == 403
    viewer = await api_key(conn, "manager")
    assert (await call(admin, viewer, "PUT", "/notifications/rules/default/blocking", {"enabled": False}))[0] == 403


async def test_run_todays_notices_queues_the_schedule_then_the_delivery_once(admin: Admin,
                                                                           conn: asyncpg.Connection) -> None:
    async with await logged(admin, "root", "super") as c:
        await c.get("/admin/notifications/notices")
        status, body, url = await post(c, "/admin/notifications/notices/run", {"partner": "default"})
        assert status == 200 and "done=run" in url and "Today&#39;s notices are queued" not in body
        assert "Today's notices are queued" in body
        jobs = await conn.fetch("SELECT id, entrypoint, dedupe_key, priority FROM pgqueuer ORDER BY id")
        assert [(j["entrypoint"], j["dedupe_key"]) for j in jobs] == [
            ("notifications.schedule", queue.schedule_key("notifications.schedule")),
            ("notifications.deliver", queue.schedule_key("notifications.deliver"))]
        assert jobs[0]["priority"] > jobs[1]["priority"]  # the day's schedule first
        status, _, url = await post(c, "/admin/notifications/notices/run", {"partner": "default"})
        assert status == 200 and url.endswith(f"jobs={jobs[0]['id']},{jobs[1]['id']}")  # pressed again: the same jobs
        assert await conn.fetchval("SELECT count(*) FROM pgqueuer") == 2
        assert "ran today's notices now" in await conn.fetchval(
            "SELECT summary FROM operations_log WHERE action = 'run' ORDER BY id LIMIT 1")


async def test_the_calendar_counts_the_reminders_of_the_unpaid_invoices(admin: Admin, conn: asyncpg.Connection) -> None:
    alpha, beta = await partners(conn, "Alpha Net", "Beta Fibre")
    a1, a2, a3, a4, a5 = [await customer(conn, alpha, f"A{i}") for i in range(1, 6)]
    b1 = await customer(conn, beta, "B1")
    await invoice(conn, a1, MONTH.replace(day=1))
    await invoice(conn, a2, MONTH.replace(day=1))
    await invoice(conn, a2, MONTH.replace(day=9))  # a2's second unpaid invoice: its reminders follow the oldest
    await invoice(conn, a3, MONTH.replace(day=5))
    paid = await invoice(conn, a4, MONTH.replace(day=1))
    await ledger.record_payment(conn, a4, Decimal("30.00"), TODAY, method="cash", document_id=paid)
    await invoice(conn, a5, MONTH.replace(day=1))
    await conn.execute("UPDATE customer_billing SET billing_type = 'prepaid_daily' WHERE customer_id = $1", a5)
    await invoice(conn, b1, MONTH.replace(day=1))
    await conn.execute("INSERT INTO payment_methods (customer_id, gateway, token, autopay) "
                       "VALUES ($1, 'stripe', 'pm_card_a3', true)", a3)

    async with await logged(admin, "root", "super") as c:
        await c.get("/admin/notifications/notices")
        status, _, _ = await post(c, "/admin/notifications/notices", reminders(
            (3, 7, 10), partner="default", **{"reminder_3.payment_methods": ["card"]}))
        assert status == 200
        status, body = await c.get(f"/admin/notifications/notices?partner=default&month={MONTH:%Y-%m}")
        assert status == 200 and MONTH.strftime("%B %Y") in body
        # Due on the 1st: #1 on the 4th, #2 on the 11th, #3 (card payers only) on the 21st; due on the
        # 5th: the 8th, 15th and 25th. a2 once (its oldest); a4 paid; a5 prepaid; b1 of Beta, counted too.
        assert calendar_counts(body) == {on(4): {1: 3}, on(11): {2: 3}, on(8): {1: 1}, on(15): {2: 1},
                                         on(25): {3: 1}}, calendar_counts(body)
        assert "#1 at 09:00" in body and "#3 at 11:00" in body and "#1: 4 this month" in body

        # Alpha's own page: its customers alone. Beta's own rule for #1 takes Beta out of the default's #1.
        status, body = await c.get(f"/admin/notifications/notices?partner={alpha}&month={MONTH:%Y-%m}")
        assert calendar_counts(body) == {on(4): {1: 2}, on(11): {2: 2}, on(8): {1: 1}, on(15): {2: 1}, on(25): {3: 1}}
        await conn.execute("INSERT INTO notice_rules (partner_id, kind, enabled, day, send_hour) "
                           "VALUES ($1, 'reminder_1', true, 2, 7)", beta)
        status, body = await c.get(f"/admin/notifications/notices?partner=default&month={MONTH:%Y-%m}")
        # (Beta's #2 comes 7 days after its own #1: on the 10th.)
        assert calendar_counts(body) == {on(4): {1: 2}, on(11): {2: 2}, on(10): {2: 1}, on(8): {1: 1},
                                         on(15): {2: 1}, on(25): {3: 1}}, calendar_counts(body)
        status, body = await c.get(f"/admin/notifications/notices?partner={beta}&month={MONTH:%Y-%m}")
        assert calendar_counts(body) == {on(3): {1: 1}, on(10): {2: 1}}, calendar_counts(body)
        assert "#1 at 07:00" in body

        # Static days (the settings' mode): due on the 1st -> the 5th, 15th, 25th of the month.
        await conn.execute("INSERT INTO notification_settings (partner_id, reminder_days) VALUES ($1, 'static')", alpha)
        await conn.execute("UPDATE notice_rules SET day = 5 * (right(kind, 1)::int * 2 - 1), payment_methods = '{}' "
                           "WHERE partner_id IS NULL AND kind LIKE 'reminder%'")  # 5, 15, 25
        status, body = await c.get(f"/admin/notifications/notices?partner={alpha}&month={MONTH:%Y-%m}")
        assert "Days are static" in body
        assert calendar_counts(body) == {on(5): {1: 2}, on(15): {2: 2}, on(25): {3: 2}}, calendar_counts(body)
        # a3's invoice is due on the 5th itself: its #1 comes on the next 5th, a month later.
        status, body = await c.get(f"/admin/notifications/notices?partner={alpha}&month="
                                   f"{(MONTH + dt.timedelta(days=31)):%Y-%m}")
        assert calendar_counts(body)[(MONTH + dt.timedelta(days=31)).replace(day=5).isoformat()] == {1: 1}

        # This month: days before today are greyed; a wrong month is not found.
        status, body = await c.get("/admin/notifications/notices")
        assert f'data-day="{TODAY.isoformat()}" aria-current="date"' in body
        if TODAY.day > 1:
            assert re.search(rf'class="cal-day past[^"]*" data-day="{TODAY.replace(day=1).isoformat()}"', body)
        assert (await c.get("/admin/notifications/notices?month=2026-13"))[0] == 404


def test_reminder_counts_follow_each_partners_rules_and_mode() -> None:
    """The pure step of the calendar: groups of unpaid invoices through each partner's rules."""
    rule = {"enabled": True, "payment_methods": [], "day": 2}
    groups = [{"partner_id": 1, "due_on": dt.date(2027, 1, 31), "dd": False, "card": False, "invoices": 4},
              {"partner_id": 2, "due_on": dt.date(2027, 1, 31), "dd": True, "card": True, "invoices": 1}]
    rules = {1: [rule, {**rule, "enabled": False}, {**rule, "day": 28, "payment_methods": ["card"]}],
             2: [{**rule, "day": 30}, {**rule, "day": 31}, {**rule, "day": 31}]}
    counts, problems = notices.count_reminders(groups, rules, {1: "relative", 2: "static"}, dt.date(2027, 1, 1),
                                               dt.date(2027, 12, 31))
    assert problems == []
    assert counts == {(dt.date(2027, 2, 2), 1): 4, (dt.date(2027, 2, 28), 1): 1, (dt.date(2027, 3, 31), 2): 1,
                      (dt.date(2027, 4, 30), 3): 1}
