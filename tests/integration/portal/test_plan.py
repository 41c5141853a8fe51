"""The portal's plan change and stop/resume (/portal/services/{id}/plan) over the real app and
database: the preview is the documents billing then issues, to the cent (Splynx's worked example
mid-period, with a tax and a fee); only the tariff's targets; the modes (self-service, a request
that becomes one ticket, off); stopping and resuming with their credit note and invoice; staff
looking as the customer and another customer's service refused."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import pytest

from admin.auth.store import Connection
from admin.billing import ledger, periods
from admin.portal import plan, plan_store
from tests.integration.admin.conftest import Admin, make_admin
from tests.integration.portal.conftest import admin, portal_customer, portal_login  # noqa: F401

MID = dt.date(2026, 11, 16)
"""The worked example's day: the 16th of a 30-day month charged in advance."""
NOVEMBER = periods.Period(dt.date(2026, 11, 1), dt.date(2026, 12, 1))


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture
def on_mid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan, "today", lambda: MID)


async def tariff(conn: Connection, name: str, price: str, *, mode: str = "self_service", stop: bool = False,
                 group: int | None = None) -> int:
    return int(await conn.fetchval(
        "INSERT INTO tariffs (name, download_kbps, upload_kbps, price, tax_group_id, portal_change, portal_stop) "
        "VALUES ($1, $2, $2 / 5, $3, $4, $5, $6) RETURNING id", name, int(Decimal(price)) * 1000, Decimal(price),
        group, mode, stop))


async def vat(conn: Connection) -> int:
    group = await conn.fetchval("INSERT INTO tax_groups (name) VALUES ('VAT 20') RETURNING id")
    rate = await conn.fetchval("INSERT INTO tax_rates (name, percent) VALUES ('VAT', 20) RETURNING id")
    await conn.execute("INSERT INTO tax_group_rates (group_id, rate_id) VALUES ($1, $2)", group, rate)
    return int(group)


async def setup(app: Admin, login: str = "anna", *, mode: str = "self_service", stop: bool = False,
                charged: bool = True) -> dict[str, Any]:
    """A customer on Big (200.00 plus 20% VAT a month) charged for November by an invoice,
    allowed to move to Small (100.00); a downgrade costs 5.00."""
    cid = await portal_customer(app, login=login)
    async with app.pool.acquire() as conn:
        group = await conn.fetchval("SELECT id FROM tax_groups WHERE name = 'VAT 20'") or await vat(conn)
        big = await tariff(conn, f"Big {login}", "200", mode=mode, stop=stop, group=group)
        small = await tariff(conn, f"Small {login}", "100", group=group)
        other = await tariff(conn, f"Other {login}", "150", group=group)
        await conn.execute("INSERT INTO tariff_portal_targets (tariff_id, target_id) VALUES ($1, $2)", big, small)
        await conn.execute("UPDATE billing_settings SET downgrade_fee = 5")
        await conn.execute("UPDATE customer_billing SET billing_day = 1, months_in_advance = 1, "
                           "billing_type = 'recurring', currency = 'EUR' WHERE customer_id = $1", cid)
        sid = int(await conn.fetchval("INSERT INTO services (customer_id, tariff_id, login, password, start_date) "
                                      "VALUES ($1, $2, $3, 'pw-123456', '2026-10-01') RETURNING id", cid, big,
                                      f"{login}-fibre"))
        partner = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", cid)
        if charged:
            async with conn.transaction():
                vat_group = ledger.group_of([{"name": "VAT", "percent": "20"}], "VAT 20")
                await ledger.issue(conn, [ledger.NewDocument(
                    kind="invoice", customer_id=cid, partner_id=partner, currency="EUR", issued_on=NOVEMBER.start,
                    origin="recurring", period=NOVEMBER, due_on=NOVEMBER.start + dt.timedelta(days=15),
                    lines=(ledger.NewLine(f"Big {login}, November", Decimal(200), vat_group, period=NOVEMBER,
                                          service_id=sid, key=f"test:{sid}:nov"),))])
    return {"customer": cid, "service": sid, "big": big, "small": small, "other": other}


def summary(rows: list[Any]) -> list[tuple[Any, ...]]:
    """What a document says to the cent: its kind, totals and lines."""
    return [(d["kind"], d["subtotal"], d["tax_total"], d["total"],
             tuple((line["description"], line["net"], line["tax"], line["gross"]) for line in d["lines"]))
            for d in rows]


async def test_the_preview_is_what_billing_issues_to_the_cent(admin: Admin, on_mid: None) -> None:  # noqa: F811
    ids = await setup(admin)
    sid = ids["service"]
    async with await portal_login(admin, "anna") as c:
        status, body = await c.get(f"/portal/services/{sid}/plan")
        assert status == 200, body[:500]
        words = text(body)
        assert "Small anna" in words and "100.00 EUR a month" in words and "Other anna" not in words
        status, body = await c.get(f"/portal/services/{sid}/plan?to={ids['small']}")
        assert status == 200, body[:500]
        shown = text(body)
        async with admin.pool.acquire() as conn:
            previewed = await plan.preview(conn, ids["customer"], sid, ids["small"], MID, "test")
            # nothing of the preview is kept
            assert await conn.fetchval("SELECT tariff_id FROM services WHERE id = $1", sid) == ids["big"]
            assert await conn.fetchval("SELECT count(*) FROM documents WHERE origin = 'plan_change'") == 0
        # Splynx's example: 15 of 30 days credited at 200 (100.00), charged at 100 (50.00), a 5.00 fee; 20% VAT
        assert summary(previewed) == [
            ("credit_note", Decimal("100.0000"), Decimal("20.0000"), Decimal("120.0000"),
             (("Big anna unused, anna-fibre, 2026-11-16 to 2026-11-30", Decimal("100.0000"), Decimal("20.0000"),
               Decimal("120.0000")),)),
            ("invoice", Decimal("55.0000"), Decimal("11.0000"), Decimal("66.0000"),
             (("Small anna, anna-fibre, 2026-11-16 to 2026-11-30", Decimal("50.0000"), Decimal("10.0000"),
               Decimal("60.0000")),
              ("Plan change fee (Big anna to Small anna)", Decimal("5.0000"), Decimal("1.0000"), Decimal("6.0000"))))]
        for amount in ("120.00 EUR", "20.00 EUR", "66.00 EUR", "11.00 EUR", "6.00 EUR", "50.00 EUR"):
            assert amount in shown, amount
        assert "You get 54.00 EUR back" in shown

        form = {"from": str(ids["big"]), "to": str(ids["small"]), "on": MID.isoformat()}
        status, body, url = await c.post(f"/portal/services/{sid}/plan", form)
        assert status == 200 and url.endswith("?done=changed"), (status, url, body[:500])
        assert "Your plan: Small anna" in text(body) and "Credit note" in body
        status, body, url = await c.post(f"/portal/services/{sid}/plan", form)  # sent again: nothing more
        assert status == 200 and url.endswith("?done=changed")
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT tariff_id FROM services WHERE id = $1", sid) == ids["small"]
        issued = await conn.fetch("SELECT id FROM documents WHERE origin = 'plan_change' ORDER BY id")
        documents = await plan_store.documents(conn, ids["customer"], [r["id"] for r in issued])
        log = await conn.fetch("SELECT * FROM operations_log WHERE object_type = 'service' AND object_id = $1", sid)
    assert summary([plan._document(d) for d in documents]) == summary(previewed)
    assert len(log) == 1 and log[0]["actor"].startswith("customer:") and log[0]["admin_id"] is None
    assert log[0]["after"]["tariff_id"] == ids["small"]


async def test_a_form_previewed_another_day_shows_the_new_days_amounts_first(admin: Admin,  # noqa: F811
                                                                              on_mid: None) -> None:
    ids = await setup(admin)
    async with await portal_login(admin, "anna") as c:
        await c.get(f"/portal/services/{ids['service']}/plan?to={ids['small']}")
        status, body, _ = await c.post(f"/portal/services/{ids['service']}/plan", {
            "from": str(ids["big"]), "to": str(ids["small"]), "on": "2026-11-15"})
        assert status == 409 and "A new day has begun" in body
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT tariff_id FROM services WHERE id = $1", ids["service"]) == ids["big"]


async def test_a_plan_not_among_the_targets_is_refused(admin: Admin, on_mid: None) -> None:  # noqa: F811
    ids = await setup(admin)
    sid = ids["service"]
    async with await portal_login(admin, "anna") as c:
        status, _ = await c.get(f"/portal/services/{sid}/plan?to={ids['other']}")
        assert status == 404
        status, _ = await c.get(f"/portal/services/{sid}/plan?to=x")
        assert status == 404
        status, _, _ = await c.post(f"/portal/services/{sid}/plan", {
            "from": str(ids["big"]), "to": str(ids["other"]), "on": MID.isoformat()})
        assert status == 422
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT tariff_id FROM services WHERE id = $1", sid) == ids["big"]


async def test_a_target_the_partner_may_not_sell_is_not_offered(admin: Admin, on_mid: None) -> None:  # noqa: F811
    ids = await setup(admin)
    sid = ids["service"]
    async with admin.pool.acquire() as conn:  # Small is given to another partner only (admin/partners/)
        other = await conn.fetchval("INSERT INTO partners (name) VALUES ('Elsewhere Net') RETURNING id")
        await conn.execute("INSERT INTO tariff_partners (tariff_id, partner_id) VALUES ($1, $2)", ids["small"], other)
    async with await portal_login(admin, "anna") as c:
        status, body = await c.get(f"/portal/services/{sid}/plan")
        assert status == 200 and "Small anna" not in body
        status, _ = await c.get(f"/portal/services/{sid}/plan?to={ids['small']}")
        assert status == 404
        status, _, _ = await c.post(f"/portal/services/{sid}/plan", {
            "from": str(ids["big"]), "to": str(ids["small"]), "on": MID.isoformat()})
        assert status == 422
    async with admin.pool.acquire() as conn:
        partner = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", ids["customer"])
        await conn.execute("INSERT INTO tariff_partners (tariff_id, partner_id) VALUES ($1, $2)", ids["small"],
                           partner)
    async with await portal_login(admin, "anna") as c:  # given to the customer's partner too: offered
        status, body = await c.get(f"/portal/services/{sid}/plan")
        assert status == 200 and "Small anna" in body


async def test_mode_off_shows_no_form_and_refuses_a_post(admin: Admin, on_mid: None) -> None:  # noqa: F811
    ids = await setup(admin, mode="off")
    sid = ids["service"]
    async with await portal_login(admin, "anna") as c:
        status, body = await c.get(f"/portal/services/{sid}/plan")
        assert status == 200 and "is not changed here" in body and "Small anna" not in body
        assert "<form" not in body.split("<main", 1)[-1]
        status, _ = await c.get(f"/portal/services/{sid}/plan?to={ids['small']}")
        assert status == 404
        status, _, _ = await c.post(f"/portal/services/{sid}/plan", {
            "from": str(ids["big"]), "to": str(ids["small"]), "on": MID.isoformat()})
        assert status == 403


async def test_request_mode_opens_one_ticket_even_when_sent_twice(admin: Admin, on_mid: None) -> None:  # noqa: F811
    ids = await setup(admin, mode="request")
    sid = ids["service"]
    form = {"from": str(ids["big"]), "to": str(ids["small"]), "on": MID.isoformat()}
    async with await portal_login(admin, "anna") as c:
        status, body = await c.get(f"/portal/services/{sid}/plan")
        assert status == 200 and "Ask for Small anna" in body and "See the amounts" not in body
        status, _ = await c.get(f"/portal/services/{sid}/plan?to={ids['small']}")
        assert status == 404  # no preview: staff make the change
        for _ in range(2):
            status, body, url = await c.post(f"/portal/services/{sid}/plan", form)
            assert status == 200 and url.endswith("?done=requested"), (status, body[:500])
        assert "We have your request" in body and "Plan change: anna-fibre from Big anna to Small anna" in body
        status, body = await c.get("/portal/tickets")
        assert "Plan change: anna-fibre" in body
    async with admin.pool.acquire() as conn:
        tickets = await conn.fetch("SELECT * FROM tickets WHERE customer_id = $1", ids["customer"])
        assert await conn.fetchval("SELECT tariff_id FROM services WHERE id = $1", sid) == ids["big"]
        assert await conn.fetchval("SELECT count(*) FROM documents WHERE origin = 'plan_change'") == 0
    assert len(tickets) == 1 and tickets[0]["source"] == "portal"
    assert tickets[0]["rule_key"] == f"portal-plan:{sid}:{ids['big']}:{ids['small']}:{MID.isoformat()}"


async def test_a_stop_credits_the_days_stops_the_service_and_resuming_charges_them_again(
        admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr(plan, "today", lambda: MID)
    ids = await setup(admin, stop=True)
    sid = ids["service"]
    async with await portal_login(admin, "anna") as c:
        status, body = await c.get(f"/portal/services/{sid}/plan")
        assert status == 200 and "Stop the service" in body
        status, body, _ = await c.post(f"/portal/services/{sid}/stop", {"starts_on": "2026-11-16",
                                                                         "ends_on": "2026-11-15"})
        assert status == 422 and "back after the stop starts" in body
        stop = {"starts_on": "2026-11-16", "ends_on": "2026-11-26"}
        status, body, url = await c.post(f"/portal/services/{sid}/stop", stop)
        assert status == 200 and url.endswith("?done=stopped"), body[:500]
        assert "stopped from 16 Nov 2026 and back on 26 Nov 2026" in text(body)
        status, _, url = await c.post(f"/portal/services/{sid}/stop", stop)  # sent again: one stop
        assert status == 200 and url.endswith("?done=stopped")
        async with admin.pool.acquire() as conn:
            assert await conn.fetchval("SELECT status FROM services WHERE id = $1", sid) == "disabled"
            assert await conn.fetchval("SELECT count(*) FROM service_pauses WHERE service_id = $1 AND by_customer",
                                       sid) == 1
            credit = await conn.fetchrow("SELECT subtotal, total FROM documents WHERE origin = 'pause' "
                                         "AND kind = 'credit_note'")
        assert credit is not None and credit["subtotal"] == Decimal("66.6700")  # 10 of 30 days of 200

        monkeypatch.setattr(plan, "today", lambda: dt.date(2026, 11, 20))
        status, body, url = await c.post(f"/portal/services/{sid}/resume", {})
        assert status == 200 and url.endswith("?done=resumed"), body[:500]
        status, _, _ = await c.post(f"/portal/services/{sid}/resume", {})  # sent again: nothing more
        assert status == 200
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT status FROM services WHERE id = $1", sid) == "active"
        pause = await conn.fetchrow("SELECT starts_on, ends_on, resumed_at FROM service_pauses WHERE service_id = $1",
                                    sid)
        invoices = await conn.fetch("SELECT subtotal FROM documents WHERE origin = 'pause' AND kind = 'invoice'")
    assert pause is not None and (pause["starts_on"], pause["ends_on"]) == (MID, dt.date(2026, 11, 20))
    assert pause["resumed_at"] is not None
    # [20, 26) invoiced again: q(200 * 25/30) - q(200 * 19/30) = 166.67 - 126.67; the 4 days kept
    # stopped cost what the credit less it says: 66.67 - 40.00 = 26.67 = q(200 * 19/30) - q(200 * 15/30)
    assert [r["subtotal"] for r in invoices] == [Decimal("40.0000")]


async def test_a_stop_to_come_is_started_and_ended_by_the_job(admin: Admin, on_mid: None) -> None:  # noqa: F811
    ids = await setup(admin, stop=True)
    sid = ids["service"]
    async with await portal_login(admin, "anna") as c:
        status, _, _ = await c.post(f"/portal/services/{sid}/stop", {"starts_on": "2026-11-20",
                                                                      "ends_on": "2026-12-05"})
        assert status == 200
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT status FROM services WHERE id = $1", sid) == "active"
        assert await plan_store.due(conn, dt.date(2026, 11, 19)) == ([], [])
        assert await plan_store.due(conn, dt.date(2026, 11, 20)) == ([sid], [])
        assert await conn.fetchval("SELECT status FROM services WHERE id = $1", sid) == "disabled"
        assert await plan_store.due(conn, dt.date(2026, 11, 21)) == ([], [])
        assert await plan_store.due(conn, dt.date(2026, 12, 5)) == ([], [sid])
        assert await conn.fetchval("SELECT status FROM services WHERE id = $1", sid) == "active"


async def test_a_plan_without_stop_refuses_it(admin: Admin, on_mid: None) -> None:  # noqa: F811
    ids = await setup(admin)
    async with await portal_login(admin, "anna") as c:
        status, body = await c.get(f"/portal/services/{ids['service']}/plan")
        assert "Stop the service" not in body
        status, _, _ = await c.post(f"/portal/services/{ids['service']}/stop", {"starts_on": "2026-11-16",
                                                                                 "ends_on": "2026-11-26"})
        assert status == 403


async def test_staff_looking_as_the_customer_change_nothing(admin: Admin, on_mid: None) -> None:  # noqa: F811
    ids = await setup(admin, stop=True)
    sid = ids["service"]
    async with admin.pool.acquire() as conn:
        staff = await make_admin(conn, "helpdesk")
    async with await portal_login(admin, "anna") as c:
        async with admin.pool.acquire() as conn:
            await conn.execute("UPDATE portal_sessions SET impersonator_id = $1 WHERE customer_id = $2", staff,
                               ids["customer"])
        status, body = await c.get(f"/portal/services/{sid}/plan?to={ids['small']}")
        assert status == 200 and "you may read, not write" in body and "Change to Small" not in body
        status, body = await c.get(f"/portal/services/{sid}/plan")
        assert status == 200 and "Stop the service" not in body
        for path, form in ((f"/portal/services/{sid}/plan", {"from": str(ids["big"]), "to": str(ids["small"]),
                                                             "on": MID.isoformat()}),
                           (f"/portal/services/{sid}/stop", {"starts_on": "2026-11-16", "ends_on": "2026-11-26"}),
                           (f"/portal/services/{sid}/resume", {})):
            status, _, _ = await c.post(path, form)
            assert status == 403, path
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT tariff_id FROM services WHERE id = $1", sid) == ids["big"]
        assert await conn.fetchval("SELECT count(*) FROM service_pauses") == 0


async def test_another_customers_service_is_404_and_csrf_is_needed(admin: Admin, on_mid: None) -> None:  # noqa: F811
    ours = await setup(admin, stop=True)
    theirs = await setup(admin, "bob", stop=True)
    sid = theirs["service"]
    async with await portal_login(admin, "anna") as c:
        for path in (f"/portal/services/{sid}/plan", f"/portal/services/{sid}/plan?to={theirs['small']}"):
            status, _ = await c.get(path)
            assert status == 404, path
        for path, form in ((f"/portal/services/{sid}/plan", {"from": str(theirs["big"]),
                                                             "to": str(theirs["small"]), "on": MID.isoformat()}),
                           (f"/portal/services/{sid}/stop", {"starts_on": "2026-11-16", "ends_on": "2026-11-26"}),
                           (f"/portal/services/{sid}/resume", {})):
            status, _, _ = await c.post(path, form)
            assert status == 404, path
        status, _, _ = await c.post(f"/portal/services/{ours['service']}/plan", {
            "from": str(ours["big"]), "to": str(ours["small"]), "on": MID.isoformat()}, csrf=False)
        assert status == 403
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM documents WHERE origin IN ('plan_change', 'pause')") == 0
        assert await conn.fetchval("SELECT count(*) FROM service_pauses") == 0
