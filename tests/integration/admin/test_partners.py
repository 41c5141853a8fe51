"""Partners (issue 18, part 1) through the forms and the API: create and edit with their checks
(IBAN, country, percent, a cycle of sub-partners), the tree with its figures and its CSV, the
mode schedule's rules on a pinned today, the tariffs a partner may sell (and a service refused a
tariff its customer's partner may not sell), commission rates, the operations log, and a partner
administrator's scope (its own partner and sub-partners read-only, any other 404) over every
route of the area."""

from __future__ import annotations

import csv
import datetime as dt
import html as htmllib
import io
import re
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from admin.auth.store import Connection
from admin.partners import partners
from admin.web import PERMISSIONS
from tests.integration.admin.conftest import Admin, api_key, call, logged_in, make_admin

IBAN = "DE89 3704 0044 0532 0130 00"
FORM = {"name": "Northwind Net", "legal_name": "Northwind Net GmbH", "vat_id": "ATU12345678", "street": "Hauptplatz 1",
        "zip": "8010", "city": "Graz", "country": "at", "contact_name": "Nora North", "email": "nora@northwind.example",
        "phone": "+43 316 1234", "iban": IBAN, "bic": "", "bank_name": "", "commission_percent": "12,5"}


def field_error(html: str, name: str) -> str:
    m = re.search(rf'<p class="error" id="e-{re.escape(name)}">([^<]*)</p>', html)
    return htmllib.unescape(m.group(1)) if m else ""


@pytest.fixture
def on(monkeypatch: pytest.MonkeyPatch) -> list[dt.date]:
    """Today as the partner pages see it, pinned (change ``on[0]`` to move it)."""
    day = [dt.date(2026, 3, 15)]
    monkeypatch.setattr(partners, "today", lambda: day[0])
    return day


async def partner(conn: Connection, name: str, parent: int | None = None) -> int:
    return int(await conn.fetchval("INSERT INTO partners (name, parent_id) VALUES ($1, $2) RETURNING id", name, parent))


async def tariff(conn: Connection, name: str, price: str = "30", currency: str = "EUR") -> int:
    return int(await conn.fetchval("INSERT INTO tariffs (name, download_kbps, upload_kbps, price, currency) "
                                   "VALUES ($1, 10000, 2000, $2, $3) RETURNING id", name, Decimal(price), currency))


async def customer(conn: Connection, partner_id: int, number: str) -> int:
    return int(await conn.fetchval("INSERT INTO customers (partner_id, number, name) VALUES ($1, $2, $2) RETURNING id",
                                   partner_id, number))


async def oplog(conn: Connection, partner_id: int) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT * FROM operations_log WHERE object_type = 'partner' AND object_id = $1 "
                                 "ORDER BY id", partner_id))


# -- pure rules -----------------------------------------------------------------------------------

def test_the_earliest_change_is_the_first_of_the_next_month() -> None:
    assert partners.earliest_change(dt.date(2026, 3, 1)) == dt.date(2026, 4, 1)
    assert partners.earliest_change(dt.date(2026, 3, 31)) == dt.date(2026, 4, 1)
    assert partners.earliest_change(dt.date(2026, 12, 5)) == dt.date(2027, 1, 1)
    on = dt.date(2026, 3, 15)
    assert partners.schedule_error(on, dt.date(2026, 4, 1), "percentage") == ""
    assert partners.schedule_error(on, dt.date(2027, 1, 1), "direct") == ""
    assert "next month at the earliest (2026-04-01)" in partners.schedule_error(on, dt.date(2026, 3, 1), "percentage")
    assert "next month" in partners.schedule_error(on, dt.date(2025, 1, 1), "direct")
    assert "1st of a month" in partners.schedule_error(on, dt.date(2026, 5, 2), "percentage")
    assert "not available yet" in partners.schedule_error(on, dt.date(2026, 4, 1), "own_invoicing")
    assert "not available yet" in partners.schedule_error(on, dt.date(2026, 4, 1), "aggregated")
    rows = [{"starts_on": dt.date(2026, 1, 1), "mode": "percentage", "created_by": "", "created_at": None},
            {"starts_on": dt.date(2026, 3, 1), "mode": "direct", "created_by": "", "created_at": None},
            {"starts_on": dt.date(2026, 5, 1), "mode": "percentage", "created_by": "", "created_at": None}]
    assert [m.state for m in partners.states(rows, on)] == ["past", "current", "scheduled"]
    assert partners.mode_on(rows, on) == "direct" and partners.mode_on(rows, dt.date(2025, 12, 31)) == "direct"
    assert partners.mode_on(rows, dt.date(2026, 2, 1)) == "percentage"
    assert partners.add_months(dt.date(2026, 11, 1), 3) == dt.date(2027, 2, 1)


# -- forms ----------------------------------------------------------------------------------------

async def test_a_partner_is_created_and_edited_through_the_forms_and_logged(admin: Admin) -> None:
    async with await logged_in(admin) as c:
        status, body = await c.get("/admin/partners/new")
        assert status == 200 and 'name="iban"' in body
        status, body, url = await c.post("/admin/partners/new", FORM)
        assert status == 200 and re.search(r"/admin/partners/\d+\?done=created$", url), (status, url, body)
        pid = int(url.split("/")[-1].split("?")[0])
        assert "Partner created." in body and "Northwind Net GmbH" in body and "DE89 3704 0044 0532 0130 00" in body
        async with admin.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM partners WHERE id = $1", pid)
        assert row is not None
        assert row["country"] == "AT" and row["iban"] == "DE89370400440532013000" and row["bic"] == "COBADEFFXXX"
        assert row["bank_name"] == "Commerzbank" and row["commission_percent"] == Decimal("12.5")

        status, body = await c.get(f"/admin/partners/{pid}/edit")
        assert status == 200 and 'value="Northwind Net"' in body
        status, body, url = await c.post(f"/admin/partners/{pid}/edit", {**FORM, "city": "Wien", "zip": "1010",
                                                                         "iban": "DE89370400440532013000"})
        assert status == 200 and url.endswith("?done=saved"), body
        assert "1010 Wien" in body
        async with admin.pool.acquire() as conn:
            log = await oplog(conn, pid)
    assert [r["action"] for r in log] == ["create", "update"]
    assert log[0]["after"]["name"] == "Northwind Net" and log[0]["partner_id"] == pid and log[0]["actor"] == "root"
    assert log[1]["before"] == {"city": "Graz", "zip": "8010"} and log[1]["after"] == {"city": "Wien", "zip": "1010"}


async def test_wrong_fields_are_shown_next_to_them(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        await partner(conn, "Taken")
    async with await logged_in(admin) as c:
        await c.get("/admin/partners/new")
        status, body, _ = await c.post("/admin/partners/new", {**FORM, "iban": "DE89370400440532013001",
                                                               "country": "XY", "commission_percent": "120",
                                                               "email": "not mail"})
        assert status == 422
        assert "check digits" in field_error(body, "iban")
        assert "ISO country code" in field_error(body, "country")
        assert field_error(body, "commission_percent") == "must be from 0 to 100"
        assert field_error(body, "email")
        status, body, _ = await c.post("/admin/partners/new", {**FORM, "name": "Taken"})
        assert status == 422 and field_error(body, "name") == "another partner has this name"
        status, body, _ = await c.post("/admin/partners/new", {**FORM, "name": ""})
        assert status == 422 and field_error(body, "name") == "is required"
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM partners") == 1


async def test_sub_partners_make_a_tree_and_a_cycle_is_refused(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        isp = await partner(conn, "Alpha ISP")
        north = await partner(conn, "North", isp)
        sub = await partner(conn, "North Valley", north)
        await partner(conn, "Beta Reseller")
        key = await api_key(conn)
    async with await logged_in(admin) as c:
        status, body = await c.get("/admin/partners")
        assert status == 200
        names = re.findall(r'<a href="/admin/partners/\d+">([^<]+)</a>', body)
        assert names == ["Alpha ISP", "North", "North Valley", "Beta Reseller"]
        assert re.findall(r'data-depth="(\d)"', body) == ["0", "1", "2", "0"]
        status, body = await c.get(f"/admin/partners/{north}")
        assert "North Valley" in body.split('id="sub-partners"')[1].split("</ul>")[0]
        status, body = await c.get(f"/admin/partners/{north}/edit")
        parents = re.findall(r'<option value="(\d+)"', body.split('id="f-parent_id"')[1].split("</select>")[0])
        assert str(isp) in parents and str(north) not in parents and str(sub) not in parents  # not under itself
        status, body, _ = await c.post(f"/admin/partners/{north}/edit", {"name": "North", "parent_id": str(sub),
                                                                         "commission_percent": "0"})
        assert status == 422 and "cannot be one of this partner's own sub-partners" in field_error(body, "parent_id")
        status, body, _ = await c.post(f"/admin/partners/{north}/edit", {"name": "North", "parent_id": str(north),
                                                                         "commission_percent": "0"})
        assert status == 422 and "own parent" in field_error(body, "parent_id")
        status, text = await c.get("/admin/partners?format=csv")
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [r["name"] for r in rows] == ["Alpha ISP", "North", "North Valley", "Beta Reseller"]
        assert rows[2]["parent"] == "North" and rows[0]["mode"] == "direct"
    status, problem = await call(admin, key, "PATCH", f"/partners/{isp}", {"parent_id": sub})
    assert status == 422 and "own sub-partners" in problem["errors"]["parent_id"], problem
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT parent_id FROM partners WHERE id = $1", isp) is None


async def test_the_list_shows_customers_mrr_and_open_debt(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        p = await partner(conn, "Figures")
        eur, usd = await tariff(conn, "Fibre", "29.90"), await tariff(conn, "Fibre US", "40", "USD")
        c1, c2 = await customer(conn, p, "F1"), await customer(conn, p, "F2")
        await customer(conn, p, "F3")
        for cid, t, login, state in ((c1, eur, "f1", "active"), (c2, eur, "f2", "active"), (c2, usd, "f3", "active"),
                                     (c1, eur, "f4", "blocked")):
            await conn.execute("INSERT INTO services (customer_id, tariff_id, login, password, status) "
                               "VALUES ($1, $2, $3, 'pw', $4)", cid, t, login, state)
        for cid, direction, amount in ((c1, "debit", "50"), (c1, "credit", "20"), (c2, "credit", "10")):
            await conn.execute("INSERT INTO transactions (customer_id, direction, kind, amount, currency, posted_on, "
                               "description) VALUES ($1, $2, $3, $4, 'EUR', '2026-03-01', 'x')", cid, direction,
                               "charge" if direction == "debit" else "payment", Decimal(amount))
        key = await api_key(conn)
    status, body = await call(admin, key, "GET", f"/partners/{p}")
    assert status == 200, body
    assert body["customers"] == 3 and body["mode"] == "direct" and body["next_mode"] is None
    assert body["mrr"] == [{"currency": "EUR", "amount": "59.8000"}, {"currency": "USD", "amount": "40.0000"}]
    assert body["debt"] == [{"currency": "EUR", "amount": "30.0000"}]  # c2's credit is no debt and offsets nothing
    async with await logged_in(admin) as c:
        status, html = await c.get("/admin/partners")
        assert "59.80" in html and "30.00" in html


# -- modes ----------------------------------------------------------------------------------------

async def test_mode_changes_take_effect_from_a_later_month_only(admin: Admin, on: list[dt.date]) -> None:
    async with admin.pool.acquire() as conn:
        p = await partner(conn, "Moder")
        key = await api_key(conn)
    path = f"/partners/{p}/modes"
    status, body = await call(admin, key, "GET", path)
    assert status == 200 and body == {"mode": "direct", "modes": []}
    for starts_on, mode, where, text in (("2026-03-01", "percentage", "starts_on", "next month at the earliest"),
                                         ("2026-02-01", "percentage", "starts_on", "never rewritten"),
                                         ("2026-04-02", "percentage", "starts_on", "1st of a month"),
                                         ("2026-04-01", "own_invoicing", "mode", "not available yet"),
                                         ("2026-04-01", "aggregated", "mode", "not available yet")):
        status, body = await call(admin, key, "POST", path, {"starts_on": starts_on, "mode": mode})
        assert status == 422 and text in body["errors"][where], (starts_on, mode, body)
    status, body = await call(admin, key, "POST", path, {"starts_on": "2026-04-01", "mode": "percentage"})
    assert status == 200, body
    assert body["mode"] == "direct" and [(m["starts_on"], m["mode"], m["state"]) for m in body["modes"]] == [
        ("2026-04-01", "percentage", "scheduled")]
    status, body = await call(admin, key, "GET", f"/partners/{p}")
    assert body["next_mode"] == "percentage" and body["next_starts_on"] == "2026-04-01"
    status, body = await call(admin, key, "POST", path, {"starts_on": "2026-04-01", "mode": "direct"})  # replaced
    assert status == 200 and [m["mode"] for m in body["modes"]] == ["direct"]
    status, body = await call(admin, key, "POST", path, {"starts_on": "2026-06-01", "mode": "percentage"})
    status, body = await call(admin, key, "DELETE", f"{path}/2026-06-01")
    assert status == 200 and [m["starts_on"] for m in body["modes"]] == ["2026-04-01"]
    status, body = await call(admin, key, "DELETE", f"{path}/2026-06-01")
    assert status == 404
    status, body = await call(admin, key, "DELETE", f"{path}/not-a-day")
    assert status == 404

    on[0] = dt.date(2026, 4, 10)  # the row is in force now: fixed
    status, body = await call(admin, key, "DELETE", f"{path}/2026-04-01")
    assert status == 409 and "in force or past" in body["detail"]
    status, body = await call(admin, key, "POST", path, {"starts_on": "2026-04-01", "mode": "percentage"})
    assert status == 422
    status, body = await call(admin, key, "GET", path)
    assert body["mode"] == "direct" and body["modes"][0]["state"] == "current"

    async with await logged_in(admin) as c:  # the page's form: same rules, the error next to the field
        status, html = await c.get(f"/admin/partners/{p}")
        assert 'id="schedule-mode"' in html and '<option value="2026-05-01"' in html
        assert '<option value="2026-04-01"' not in html.split('id="schedule-mode"')[1]
        status, html, url = await c.post(f"/admin/partners/{p}/modes", {"starts_on": "2026-05-01",
                                                                       "mode": "percentage"})
        assert status == 200 and "done=mode" in url and "Mode change scheduled." in html
        status, html, _ = await c.post(f"/admin/partners/{p}/modes", {"starts_on": "2026-04-01", "mode": "direct"})
        assert status == 422 and "next month at the earliest (2026-05-01)" in field_error(html, "starts_on")
        status, html, _ = await c.post(f"/admin/partners/{p}/modes", {"starts_on": "2026-05-01",
                                                                     "mode": "aggregated"})
        assert status == 422 and "not available yet" in field_error(html, "mode")
        status, html, _ = await c.post(f"/admin/partners/{p}/modes/2026-04-01/delete", {})
        assert status == 409 and "cannot be removed" in html
        status, html, url = await c.post(f"/admin/partners/{p}/modes/2026-05-01/delete", {})
        assert status == 200 and "done=unscheduled" in url
    async with admin.pool.acquire() as conn:
        rows = await conn.fetch("SELECT starts_on, mode FROM partner_modes WHERE partner_id = $1", p)
        log = await oplog(conn, p)
    assert [(r["starts_on"], r["mode"]) for r in rows] == [(dt.date(2026, 4, 1), "direct")]
    summaries = [r["summary"] for r in log]
    assert summaries == ["partner Moder: scheduled mode percentage from 2026-04-01",
                         "partner Moder: replaced mode direct from 2026-04-01",
                         "partner Moder: scheduled mode percentage from 2026-06-01",
                         "partner Moder: removed the mode percentage from 2026-06-01",
                         "partner Moder: scheduled mode percentage from 2026-05-01",
                         "partner Moder: removed the mode percentage from 2026-05-01"]


# -- tariffs it may sell, and the services ---------------------------------------------------------

async def test_a_service_is_refused_a_tariff_its_partner_may_not_sell(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        a, b = await partner(conn, "Seller A"), await partner(conn, "Seller B")
        open_, only_a = await tariff(conn, "Open"), await tariff(conn, "Only A")
        ca, cb = await customer(conn, a, "CA1"), await customer(conn, b, "CB1")
        key = await api_key(conn)
    status, body = await call(admin, key, "PUT", f"/partners/{a}/tariffs", {"tariff_ids": [only_a]})
    assert status == 200
    assert {t["name"]: (t["allowed"], t["restricted"]) for t in body["tariffs"]} == {
        "Open": (True, False), "Only A": (True, True)}
    status, body = await call(admin, key, "GET", f"/partners/{b}/tariffs")
    assert {t["name"]: t["allowed"] for t in body["tariffs"]} == {"Open": True, "Only A": False}
    status, body = await call(admin, key, "PUT", f"/partners/{a}/tariffs", {"tariff_ids": [999999]})
    assert status == 422 and "no such tariff" in body["errors"]["tariff_ids"]

    service = {"tariff_id": only_a, "login": "b-one", "password": "pw-123456"}
    status, body = await call(admin, key, "POST", f"/customers/{cb}/services", service)
    assert status == 422 and "may not sell this tariff" in body["errors"]["tariff_id"], body
    status, body = await call(admin, key, "POST", f"/customers/{ca}/services", {**service, "login": "a-one"})
    assert status == 201, body
    status, body = await call(admin, key, "POST", f"/customers/{cb}/services", {**service, "tariff_id": open_})
    assert status == 201, body
    sid = body["id"]
    status, body = await call(admin, key, "PATCH", f"/services/{sid}", {"tariff_id": only_a})
    assert status == 422 and "may not sell" in body["errors"]["tariff_id"]
    status, body = await call(admin, key, "PATCH", f"/services/{sid}", {"login": "b-renamed"})  # the rest still edits
    assert status == 200 and body["tariff_id"] == open_

    async with await logged_in(admin) as c:
        await c.get(f"/admin/customers/{cb}/services/new")
        status, html, _ = await c.post(f"/admin/customers/{cb}/services/new", {
            "tariff_id": str(only_a), "login": "b-two", "password": "pw-123456", "status": "active",
            "simultaneous_use": "1"})
        assert status == 422 and "may not sell this tariff" in html
        status, html = await c.get(f"/admin/partners/{b}")
        assert 'name="tariff_ids"' in html
        status, html, url = await c.post(f"/admin/partners/{b}/tariffs", {"tariff_ids": str(only_a)})
        assert status == 200 and "done=tariffs" in url
    async with admin.pool.acquire() as conn:
        given = await conn.fetch("SELECT partner_id FROM tariff_partners WHERE tariff_id = $1 ORDER BY 1", only_a)
        log = await oplog(conn, b)
    assert [r["partner_id"] for r in given] == sorted([a, b])
    assert log[-1]["before"] == {"tariff_ids": []} and log[-1]["after"] == {"tariff_ids": [only_a]}


# -- commission rates -----------------------------------------------------------------------------

async def test_commission_rates_are_set_through_the_api_and_the_page(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        p = await partner(conn, "Rated")
        t = await tariff(conn, "Rated plan")
        key = await api_key(conn)
    rates = {"commission_percent": "10", "tariffs": [{"tariff_id": t, "percent": "15.5"}],
             "categories": [{"category": "fee", "percent": "0"}]}
    status, body = await call(admin, key, "PUT", f"/partners/{p}/commission-rates", rates)
    assert status == 200, body
    assert body == {"commission_percent": "10.0000", "tariffs": [{"tariff_id": t, "tariff": "Rated plan",
                                                                  "percent": "15.5000"}],
                    "categories": [{"category": "fee", "percent": "0.0000"}]}
    for bad, where in (({**rates, "commission_percent": "101"}, "commission_percent"),
                       ({**rates, "tariffs": [{"tariff_id": t, "percent": "1"}] * 2}, "tariffs[1]"),
                       ({**rates, "categories": [{"category": "fee", "percent": "0.00001"}]}, "categories[0]")):
        status, body = await call(admin, key, "PUT", f"/partners/{p}/commission-rates", bad)
        assert status == 422 and where in body["errors"], body
    status, body = await call(admin, key, "PUT", f"/partners/{p}/commission-rates", {"commission_percent": "abc"})
    assert status == 422
    async with await logged_in(admin) as c:
        status, html = await c.get(f"/admin/partners/{p}")
        assert 'name="tariff.' + str(t) + '" value="15.5"' in html
        status, html, _ = await c.post(f"/admin/partners/{p}/commission-rates", {
            "commission_percent": "8", f"tariff.{t}": "", "category.service": "12", "category.fee": "x"})
        assert status == 422 and field_error(html, "category.fee")
        status, html, url = await c.post(f"/admin/partners/{p}/commission-rates", {
            "commission_percent": "8", f"tariff.{t}": "", "category.service": "12"})
        assert status == 200 and "done=rates" in url
    status, body = await call(admin, key, "GET", f"/partners/{p}/commission-rates")
    assert body == {"commission_percent": "8.0000", "tariffs": [],
                    "categories": [{"category": "service", "percent": "12.0000"}]}
    async with admin.pool.acquire() as conn:
        log = await oplog(conn, p)
    assert [r["summary"] for r in log] == ["partner Rated: changed the commission rates"] * 2


# -- API ------------------------------------------------------------------------------------------

async def test_partners_through_the_api(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        key = await api_key(conn)
    status, body = await call(admin, key, "POST", "/partners", {"name": "API One", "country": "de", "iban": IBAN})
    assert status == 201, body
    one = body["id"]
    assert body["country"] == "DE" and body["iban"] == "DE89370400440532013000" and body["mode"] == "direct"
    status, body = await call(admin, key, "POST", "/partners", {"name": "API Two", "parent_id": one})
    assert status == 201 and body["parent_id"] == one
    two = body["id"]
    status, body = await call(admin, key, "POST", "/partners", {"name": "Bad", "iban": "XX00"})
    assert status == 422 and "iban" in body["errors"]
    status, body = await call(admin, key, "POST", "/partners", {"name": "Bad", "parent_id": 999999})
    assert status == 422 and body["errors"] == {"parent_id": "no such partner"}
    status, body = await call(admin, key, "PATCH", f"/partners/{two}", {"parent_id": None, "city": "Linz"})
    assert status == 200 and body["parent_id"] is None and body["city"] == "Linz" and body["name"] == "API Two"
    status, body = await call(admin, key, "GET", "/partners?limit=1")
    assert status == 200 and [p["name"] for p in body["items"]] == ["API One"] and body["next"]
    status, body = await call(admin, key, "GET", f"/partners?limit=1&after={body['next']}")
    assert [p["name"] for p in body["items"]] == ["API Two"] and body["next"] is None
    status, body = await call(admin, key, "GET", "/partners/999999")
    assert status == 404
    async with admin.pool.acquire() as conn:
        log = await oplog(conn, two)
    assert [r["action"] for r in log] == ["create", "update"] and log[0]["actor"].startswith("key:")


# -- scope ----------------------------------------------------------------------------------------

def area_routes(admin: Admin) -> list[tuple[str, str]]:
    """Every route of the partners page module (admin/partners/partners.py), from the app."""
    out = []
    for route in admin.app.router.routes():
        if route.method != "HEAD" and route.handler in PERMISSIONS and route.resource is not None \
                and route.handler.__module__ == "admin.partners.partners":
            out.append((route.method, route.resource.canonical))
    return sorted(out)


def url_of(path: str, partner_id: int) -> str:
    return path.replace("{id}", str(partner_id)).replace("{starts_on}", "2030-01-01")


async def test_a_partners_administrator_sees_its_own_and_its_sub_partners_read_only(admin: Admin, on: Any) -> None:
    """The matrix: every route of the area, for the partner's administrator (a login and an API
    key) over its own partner, its sub-partner and another partner; and the ISP's over all."""
    async with admin.pool.acquire() as conn:
        own = await partner(conn, "Own")
        sub = await partner(conn, "Own Sub", own)
        other = await partner(conn, "Other")
        await conn.execute("INSERT INTO partner_modes (partner_id, starts_on, mode) VALUES ($1, '2030-01-01', "
                           "'percentage'), ($2, '2030-01-01', 'percentage'), ($3, '2030-01-01', 'percentage')",
                           own, sub, other)
        await make_admin(conn, "scoped", "admin", partner_id=own)
        key = await api_key(conn, "admin", partner_id=own)
    routes = area_routes(admin)
    assert len(routes) >= 20, routes
    c = admin.client()
    try:
        status, _, _ = await c.login("scoped")
        assert status == 200
        status, html = await c.get("/admin/partners")
        assert status == 200 and "Own Sub" in html and "Other" not in html and "New partner" not in html
        status, html = await c.get(f"/admin/partners/{own}")
        assert status == 200 and f'action="/admin/partners/{own}/' not in html and "Edit</a>" not in html
        for method, path in routes:
            for pid, visible in ((own, True), (sub, True), (other, False)):
                url = url_of(path, pid)
                if path.startswith("/api/"):
                    status, _ = await call(admin, key, method, url[len("/api/v1"):], {} if method != "GET" else None)
                else:
                    await c.get("/admin/partners")
                    if method == "GET":
                        status, _ = await c.get(url, allow_redirects=False)
                    else:
                        status, _, _ = await c.post(url, {}, allow_redirects=False)
                if "{id}" not in path:
                    expected = {200} if method == "GET" else {403}
                    if path == "/admin/partners/new":
                        expected = {403}
                else:
                    writing = method != "GET" or path.endswith("/edit")
                    expected = {404} if not visible else {403} if writing else {200}
                assert status in expected, (method, url, visible, status)
    finally:
        await c.__aexit__()
    status, body = await call(admin, key, "GET", "/partners")
    assert sorted(p["name"] for p in body["items"]) == ["Own", "Own Sub"]
    async with admin.pool.acquire() as conn:
        root_key = await api_key(conn)
    for pid in (own, sub, other):
        status, body = await call(admin, root_key, "GET", f"/partners/{pid}/modes")
        assert status == 200
    status, body = await call(admin, root_key, "GET", "/partners")
    assert len(body["items"]) == 3


async def test_the_pages_are_refused_without_the_permission(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        p = await partner(conn, "Hidden")
    async with await logged_in(admin, "tech", "technician") as c:
        for path in ("/admin/partners", f"/admin/partners/{p}"):
            status, _ = await c.get(path)
            assert status == 403, path
    async with admin.pool.acquire() as conn:
        key = await api_key(conn, "manager")
    status, _ = await call(admin, key, "GET", "/partners")
    assert status == 403
