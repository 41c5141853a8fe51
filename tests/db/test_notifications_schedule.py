"""The notification engine's scheduling against a real PostgreSQL, with fixed clocks: document
notices after their delay in the send window, each scheduled kind on its day and hour, once
however often the schedule runs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg

from admin.auth.store import Connection
from admin.notifications import schedule, scheduler
from tests.db.notifications_data import at, customer, invoice, messages, partner, pay, rule, settings

VIENNA = ZoneInfo("Europe/Vienna")


async def _events(conn: Connection) -> list[int]:
    return [r["id"] for r in await conn.fetch("SELECT id FROM events ORDER BY id")]


async def _queued_deliveries(conn: Connection) -> int:
    value: int = await conn.fetchval("SELECT count(*) FROM pgqueuer WHERE entrypoint = 'notifications.deliver'")
    return value


async def test_a_document_notice_waits_for_its_delay_then_the_send_window(conn: asyncpg.Connection) -> None:
    pid = await partner(conn)
    await settings(conn, None, timezone="Europe/Vienna", send_days=[1, 2, 3, 4, 5], send_from=8, send_until=20)
    await rule(conn, "invoice", channels=["email", "sms"], delay_hours=24, bcc="books@isp.example")
    await rule(conn, "payment", channels=["email"], delay_hours=0, attach=True)
    await rule(conn, "proforma", enabled=False)
    cid = await customer(conn, pid, 1, phone="+43 664 1234567")
    inv, _ = await invoice(conn, cid, pid, dt.date(2026, 3, 6), dt.date(2026, 3, 20))
    await invoice(conn, cid, pid, dt.date(2026, 3, 6), dt.date(2026, 3, 20), kind="proforma")
    # Friday 19:30 in Vienna (18:30 UTC): + 24 h is Saturday evening, so Monday 08:00 (07:00 UTC).
    await conn.execute("UPDATE events SET occurred_at = $1", at("2026-03-06 18:30"))
    now = at("2026-03-06 18:31")
    assert await scheduler.document_notices(conn, await _events(conn), now) == 2
    made = await messages(conn)
    assert [(m["kind"], m["channel"], m["cause"], m["document_id"]) for m in made] == [
        ("invoice", "email", f"document:{inv}", inv), ("invoice", "sms", f"document:{inv}", inv)]
    assert {m["send_at"] for m in made} == {at("2026-03-09 07:00")}
    assert all(m["attachments"] == [inv] and m["bcc"] == "books@isp.example" and m["status"] == "scheduled"
               and m["customer_id"] == cid for m in made)
    assert await _queued_deliveries(conn) == 0  # nothing due now: nothing to wake
    # The dispatcher handing the same events over again makes nothing twice.
    assert await scheduler.document_notices(conn, await _events(conn), now) == 0

    # A payment: its receipt is the document, the cause names the payment; due at once, so the
    # delivery job is woken.
    seen = set(await _events(conn))
    payment_id = await pay(conn, cid, "30.00", dt.date(2026, 3, 9))
    receipt = await conn.fetchval("SELECT receipt_id FROM payments")
    fresh = [e for e in await _events(conn) if e not in seen]
    await conn.execute("UPDATE events SET occurred_at = $1 WHERE id = ANY($2::bigint[])", at("2026-03-09 09:00"),
                       fresh)
    assert await scheduler.document_notices(conn, fresh, at("2026-03-09 09:01")) == 1
    [paid] = await messages(conn, "kind = 'payment'")
    assert (paid["cause"], paid["document_id"], paid["attachments"]) == (f"payment:{payment_id}", receipt, [receipt])
    assert paid["send_at"] == at("2026-03-09 09:00")  # Monday 10:00 in Vienna: inside the window
    assert await _queued_deliveries(conn) == 1


def test_the_send_window_s_arithmetic_is_the_schedule_module_s() -> None:
    window = schedule.Window(frozenset({1, 2, 3, 4, 5}), 8, 20, VIENNA)
    assert schedule.document_send_at(at("2026-03-06 18:30"), 24, window) == at("2026-03-09 07:00")


async def _reminder_setup(conn: Connection, mode: str) -> int:
    pid = await partner(conn)
    await settings(conn, None, timezone="Europe/Vienna", reminder_days=mode)
    return pid


async def test_static_reminders_fall_on_the_month_s_last_day_and_each_goes_once(conn: asyncpg.Connection) -> None:
    pid = await _reminder_setup(conn, "static")
    await rule(conn, "reminder_1", day=31, send_hour=9, channels=["email"], attach=True)
    await rule(conn, "reminder_2", day=15, send_hour=9, channels=["email", "sms"])
    await rule(conn, "reminder_3", day=31, send_hour=10, channels=["email"])
    cid = await customer(conn, pid, 1)
    first, _ = await invoice(conn, cid, pid, dt.date(2026, 1, 17), dt.date(2026, 1, 31))
    second, _ = await invoice(conn, cid, pid, dt.date(2026, 2, 17), dt.date(2026, 3, 3))
    # due 31 January: #1 on "the 31st" of February = 28 February; #2 on 15 March; #3 on 31 March.
    assert schedule.reminder_dates(dt.date(2026, 1, 31), (31, 15, 31), "static") == (
        dt.date(2026, 2, 28), dt.date(2026, 3, 15), dt.date(2026, 3, 31))
    assert not any((await scheduler.run_day(conn, at("2026-02-27 12:00"))).values())
    assert not any((await scheduler.run_day(conn, at("2026-02-28 07:30"))).values())  # 08:30 in Vienna: not 9 yet
    made = await scheduler.run_day(conn, at("2026-02-28 08:05"))  # 09:05 in Vienna
    assert made["reminder_1"] == 1 and sum(made.values()) == 1
    [r1] = await messages(conn)
    assert (r1["kind"], r1["cause"], r1["document_id"]) == ("reminder_1", f"invoice:{first}", first)
    assert r1["send_at"] == at("2026-02-28 08:00")
    assert r1["attachments"] == [first, second]  # the unpaid invoices, oldest first
    for hour in ("2026-02-28 09:05", "2026-03-01 09:05", "2026-03-14 09:05"):
        assert not any((await scheduler.run_day(conn, at(hour))).values())  # run again: once
    made = await scheduler.run_day(conn, at("2026-03-15 09:05"))
    assert made["reminder_2"] == 2  # email and SMS
    assert [m["channel"] for m in await messages(conn, "kind = 'reminder_2'")] == ["email", "sms"]
    # Summer time since 29 March: 07:05 UTC is 09:05 in Vienna, and #3's hour is 10.
    assert not any((await scheduler.run_day(conn, at("2026-03-31 07:05"))).values())
    assert (await scheduler.run_day(conn, at("2026-03-31 08:05")))["reminder_3"] == 1
    [r3] = await messages(conn, "kind = 'reminder_3'")
    assert r3["send_at"] == at("2026-03-31 08:00")


async def test_relative_reminders_only_the_latest_due_and_not_to_the_paid(conn: asyncpg.Connection) -> None:
    pid = await _reminder_setup(conn, "relative")
    for n, day in ((1, 3), (2, 7), (3, 7)):
        await rule(conn, f"reminder_{n}", day=day, send_hour=9, channels=["email"])
    late = await customer(conn, pid, 1)
    fresh = await customer(conn, pid, 2)
    paid = await customer(conn, pid, 3)
    old, _ = await invoice(conn, late, pid, dt.date(2026, 1, 1), dt.date(2026, 1, 15))  # #3 due on 1 Feb
    new, _ = await invoice(conn, fresh, pid, dt.date(2026, 3, 1), dt.date(2026, 3, 15))  # #1 on 18 Mar
    await invoice(conn, paid, pid, dt.date(2026, 3, 1), dt.date(2026, 3, 15))
    await pay(conn, paid, "30.00", dt.date(2026, 3, 16))
    made = await scheduler.run_day(conn, at("2026-03-18 09:00"))
    assert (made["reminder_1"], made["reminder_2"], made["reminder_3"]) == (1, 0, 1)
    assert {(m["customer_id"], m["kind"], m["cause"]) for m in await messages(conn)} == {
        (late, "reminder_3", f"invoice:{old}"), (fresh, "reminder_1", f"invoice:{new}")}
    assert not any((await scheduler.run_day(conn, at("2026-03-18 10:00"))).values())


async def test_reminders_are_restricted_to_the_rule_s_payment_methods(conn: asyncpg.Connection) -> None:
    pid = await _reminder_setup(conn, "relative")
    await rule(conn, "reminder_1", day=1, send_hour=0, channels=["email"], payment_methods=["direct_debit", "card"])
    await conn.execute("INSERT INTO payment_gateways (name) VALUES ('stripe') ON CONFLICT DO NOTHING")
    manual, dd, card, revoked = [await customer(conn, pid, n) for n in range(1, 5)]
    for cid in (manual, dd, card, revoked):
        await invoice(conn, cid, pid, dt.date(2026, 3, 1), dt.date(2026, 3, 10))
    await conn.execute("INSERT INTO sepa_mandates (customer_id, reference, iban, holder, signed_on) "
                       "VALUES ($1, 'M-1', 'AT611904300234573201', 'Holder', '2026-01-01')", dd)
    await conn.execute("INSERT INTO sepa_mandates (customer_id, reference, iban, holder, signed_on, revoked_at) "
                       "VALUES ($1, 'M-2', 'AT611904300234573201', 'Holder', '2026-01-01', now())", revoked)
    await conn.execute("INSERT INTO payment_methods (customer_id, gateway, token, autopay) "
                       "VALUES ($1, 'stripe', 'pm_1', true)", card)
    await scheduler.run_day(conn, at("2026-03-12 12:00"))
    assert {m["customer_id"] for m in await messages(conn)} == {dd, card}
    await rule(conn, "reminder_1", day=1, send_hour=0, channels=["sms"], payment_methods=["manual"])
    await scheduler.run_day(conn, at("2026-03-12 13:00"))
    assert {m["customer_id"] for m in await messages(conn, "channel = 'sms'")} == {manual, revoked}


async def test_prepaid_notices_the_most_urgent_one_by_days_left(conn: asyncpg.Connection) -> None:
    pid = await partner(conn)
    for n, day in ((1, 7), (2, 3), (3, 1)):
        await rule(conn, f"prepaid_{n}", day=day, send_hour=8, channels=["email"])
    # 31.00 a month in March: 1.00 a day.
    plenty, soon, sooner, none_left = [await customer(conn, pid, n, billing_type="prepaid_daily",
                                                      service_price="31.00") for n in range(1, 5)]
    for cid, amount in ((plenty, "10.00"), (soon, "5.50"), (sooner, "2.00")):
        await pay(conn, cid, amount, dt.date(2026, 3, 1))
    recurring = await customer(conn, pid, 5, service_price="31.00")
    del recurring
    made = await scheduler.run_day(conn, at("2026-03-10 08:30"))
    assert (made["prepaid_1"], made["prepaid_2"], made["prepaid_3"]) == (1, 1, 1)
    got = {m["customer_id"]: (m["kind"], m["cause"]) for m in await messages(conn)}
    assert got == {
        soon: ("prepaid_1", f"prepaid:{soon}:2026-03-16"),  # 5.50 lasts 5 whole days, the 6th day's charge blocks
        sooner: ("prepaid_2", f"prepaid:{sooner}:2026-03-12"),
        none_left: ("prepaid_3", f"prepaid:{none_left}:2026-03-10"),
    }
    assert schedule.prepaid_outlook(dt.date(2026, 3, 10), Decimal("5.50"), Decimal(1), Decimal(0)) == (
        5, dt.date(2026, 3, 16))
    assert not any((await scheduler.run_day(conn, at("2026-03-10 09:30"))).values())
    # Three days on (the balance as it was: no charges ran), the blocking day moved with today:
    # a new cause, and again the notice its days left call for.
    made = await scheduler.run_day(conn, at("2026-03-13 08:30"))
    assert (made["prepaid_1"], made["prepaid_2"], made["prepaid_3"]) == (1, 1, 1)


async def test_blocking_and_inactive_waves_at_the_hour_after_the_change(conn: asyncpg.Connection) -> None:
    pid = await partner(conn)
    await settings(conn, None, timezone="UTC")
    await rule(conn, "blocking", send_hour=9, channels=["email", "portal"])
    await rule(conn, "inactive", send_hour=9, channels=["sms"])
    yesterday, this_morning, long_ago, lifted, gone = [await customer(conn, pid, n) for n in range(1, 6)]
    await conn.execute("UPDATE customers SET status = 'blocked' WHERE id = ANY($1::bigint[])",
                       [yesterday, this_morning, long_ago, lifted])
    await conn.execute("UPDATE customers SET status = 'inactive' WHERE id = $1", gone)
    changes = {}
    for cid, when, to in ((yesterday, "2026-03-09 15:00", "blocked"), (this_morning, "2026-03-10 09:30", "blocked"),
                          (long_ago, "2026-03-01 09:00", "blocked"), (lifted, "2026-03-09 15:00", "blocked"),
                          (gone, "2026-03-10 01:00", "inactive")):
        changes[cid] = await conn.fetchval(
            "INSERT INTO customer_status_changes (customer_id, at, from_status, to_status, reason) "
            "VALUES ($1, $2, 'active', $3, 'dunning') RETURNING id", cid, at(when), to)
    await conn.execute("UPDATE customers SET status = 'active' WHERE id = $1", lifted)
    made = await scheduler.run_day(conn, at("2026-03-10 10:00"))
    assert (made["blocking"], made["inactive"]) == (4, 1)
    got = {(m["customer_id"], m["channel"]): (m["cause"], m["send_at"]) for m in await messages(conn)}
    assert got == {
        (yesterday, "email"): (f"status:{changes[yesterday]}", at("2026-03-10 09:00")),
        (yesterday, "portal"): (f"status:{changes[yesterday]}", at("2026-03-10 09:00")),
        (this_morning, "email"): (f"status:{changes[this_morning]}", at("2026-03-11 09:00")),
        (this_morning, "portal"): (f"status:{changes[this_morning]}", at("2026-03-11 09:00")),
        (gone, "sms"): (f"status:{changes[gone]}", at("2026-03-10 09:00")),
    }
    assert not any((await scheduler.run_day(conn, at("2026-03-11 10:00"))).values())


async def test_card_expiry_and_contract_end_days_before(conn: asyncpg.Connection) -> None:
    pid = await partner(conn)
    await rule(conn, "card_expiry", day=14, send_hour=7, channels=["email"])
    await rule(conn, "contract_end", day=7, send_hour=7, channels=["email"])
    await conn.execute("INSERT INTO payment_gateways (name) VALUES ('stripe') ON CONFLICT DO NOTHING")
    a = await customer(conn, pid, 1, service_price="31.00", end_date=dt.date(2026, 3, 25))
    b = await customer(conn, pid, 2, service_price="31.00", end_date=dt.date(2026, 4, 30))
    card = await conn.fetchval("INSERT INTO payment_methods (customer_id, gateway, token, brand, last4, exp_month, "
                               "exp_year) VALUES ($1, 'stripe', 'pm_a', 'visa', '4242', 3, 2026) RETURNING id", a)
    await conn.execute("INSERT INTO payment_methods (customer_id, gateway, token, exp_month, exp_year) "
                       "VALUES ($1, 'stripe', 'pm_b', 5, 2026)", b)
    service = await conn.fetchval("SELECT id FROM services WHERE customer_id = $1", a)
    assert not any((await scheduler.run_day(conn, at("2026-03-16 08:00"))).values())  # 15 days before 31 Mar
    made = await scheduler.run_day(conn, at("2026-03-18 08:00"))
    assert (made["card_expiry"], made["contract_end"]) == (1, 1)
    assert {m["cause"] for m in await messages(conn)} == {f"card:{card}:2026-03", f"service:{service}:2026-03-25"}
    assert not any((await scheduler.run_day(conn, at("2026-03-19 08:00"))).values())
