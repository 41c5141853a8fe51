"""The portal's profile (/portal/profile) over the real app and database: each contact field
hidden, shown or editable as the brand says; an edit checked as the admin's customer form checks
it, written with the customer's ``updated`` event and an operations log line of the customer; a
POST naming a hidden or read-only field refused whole; the notification preferences (announcements,
the messages' language among the partner's); CSRF; an administrator looking as the customer
changes nothing."""

from __future__ import annotations

import html
import re
from typing import Any

from admin.portal import acting
from tests.integration.admin.conftest import Admin, Client
from tests.integration.portal.conftest import admin, portal_customer, portal_login  # noqa: F401
from tests.integration.portal.test_support import impersonated

FIELDS = {"name": "hidden", "email": "edit", "billing_email": "edit", "phone": "view", "street": "edit",
          "city": "view", "zip": "hidden"}


async def brand_fields(site: Admin, customer_id: int, fields: dict[str, str]) -> None:
    async with site.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO portal_brands (partner_id, published) SELECT partner_id, $2 FROM customers WHERE id = $1 "
            "ON CONFLICT (partner_id) DO UPDATE SET published = EXCLUDED.published", customer_id, {"fields": fields})


async def customer_row(site: Admin, customer_id: int) -> dict[str, Any]:
    async with site.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM customers WHERE id = $1", customer_id)
    assert row is not None
    return dict(row)


async def anna(site: Admin) -> int:
    customer_id = await portal_customer(site, login="anna", name="Anna Secretname", email="anna@example.net",
                                        phone="+43 1 555 0101", street="Hauptstraße 1", city="Wien",
                                        zip="ZIP-HIDDEN-1010")
    await brand_fields(site, customer_id, FIELDS)
    return customer_id


async def save(c: Client, values: dict[str, str], path: str = "/portal/profile") -> tuple[int, str, str]:
    """POST the form (with the page's CSRF token): (status, body, where it redirects)."""
    await c.get("/portal/profile")
    async with c.session.post(c.url + path, data={"_csrf": c.csrf, **values}, allow_redirects=False) as r:
        return r.status, await r.text(), r.headers.get("Location", "")


async def test_the_fields_show_as_the_brand_says(admin: Admin) -> None:  # noqa: F811
    await anna(admin)
    async with await portal_login(admin, "anna") as c:
        status, body = await c.get("/portal/profile")
    assert status == 200
    assert "Secretname" not in body and "ZIP-HIDDEN" not in body  # hidden
    view = re.search(r'<dl id="contact-view">(.*?)</dl>', body, re.S)
    assert view and "+43 1 555 0101" in view.group(1) and "Wien" in view.group(1)  # view: read only
    form = re.search(r'<form method="post" action="/portal/profile" id="contact-form">(.*?)</form>', body, re.S)
    assert form
    names = set(re.findall(r'<input id="f-\w+" name="(\w+)"', form.group(1)))
    assert names == {"email", "billing_email", "street"}
    assert 'value="anna@example.net"' in form.group(1) and 'value="Hauptstraße 1"' in form.group(1)


async def test_an_edit_is_checked_saved_logged_and_emitted(admin: Admin) -> None:  # noqa: F811
    customer_id = await anna(admin)
    before = await customer_row(admin, customer_id)
    async with admin.pool.acquire() as conn:
        events = await conn.fetchval("SELECT count(*) FROM events WHERE subject = 'customer' AND name = 'updated'")
    async with await portal_login(admin, "anna") as c:
        # checked as the admin's form checks it: the same sentence
        status, body, _ = await save(c, {"email": "not an address", "billing_email": "", "street": "Hauptstraße 1"})
        assert status == 422 and 'id="e-email"' in body and 'aria-invalid="true"' in body
        assert (await customer_row(admin, customer_id))["email"] == "anna@example.net"
        status, body, location = await save(c, {"email": "anna.new@example.net", "billing_email": "bills@example.net",
                                                "street": "Hauptstraße 1"})
        assert status == 302 and location == "/portal/profile?done=saved", body[:300]
        status, body = await c.get(location)
        assert "Your details are saved." in body and 'value="anna.new@example.net"' in body
    after = await customer_row(admin, customer_id)
    assert (after["email"], after["billing_email"], after["street"], after["name"], after["phone"]) == (
        "anna.new@example.net", "bills@example.net", "Hauptstraße 1", before["name"], before["phone"])
    async with admin.pool.acquire() as conn:
        log = await conn.fetchrow("SELECT * FROM operations_log WHERE object_type = 'customer' AND object_id = $1",
                                  customer_id)
        assert await conn.fetchval("SELECT count(*) FROM events WHERE subject = 'customer' "
                                   "AND name = 'updated'") == events + 1
    assert log is not None
    assert (log["actor"], log["admin_id"], log["api_key_id"], log["action"], log["customer_id"]) == (
        f"customer:{before['number']}", None, None, "update", customer_id)
    assert log["before"] == {"email": "anna@example.net", "billing_email": None}
    assert log["after"] == {"email": "anna.new@example.net", "billing_email": "bills@example.net"}


async def test_a_post_naming_a_hidden_or_read_only_field_is_refused(admin: Admin) -> None:  # noqa: F811
    customer_id = await anna(admin)
    before = await customer_row(admin, customer_id)
    async with await portal_login(admin, "anna") as c:
        for field, value in (("name", "Mallory"), ("phone", "+1 555 0000"), ("zip", "9999"), ("city", "Wien")):
            status, body, _ = await save(c, {"email": "x@example.net", "street": "S", "billing_email": "",
                                             field: value})
            assert status == 403, (field, status)
            assert "not yours to change" in html.unescape(body)
    after = await customer_row(admin, customer_id)
    assert {k: after[k] for k in FIELDS} == {k: before[k] for k in FIELDS}
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM operations_log WHERE customer_id = $1", customer_id) == 0


async def test_the_preferences_announcements_and_language(admin: Admin) -> None:  # noqa: F811
    customer_id = await anna(admin)
    async with admin.pool.acquire() as conn:
        partner = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", customer_id)
        for language, owner in (("de", partner), ("en", None), ("", None)):
            await conn.execute("INSERT INTO message_templates (partner_id, kind, channel, language, body) "
                               "VALUES ($1, 'invoice', 'email', $2, 'x')", owner, language)
    async with await portal_login(admin, "anna") as c:
        status, body = await c.get("/portal/profile")
        assert '<option value="de">Deutsch</option>' in body and '<option value="en">English</option>' in body
        assert 'name="announcements" type="checkbox" value="1" checked' in body
        status, body, location = await save(c, {"language": "de"}, "/portal/profile/preferences")
        assert status == 302 and location == "/portal/profile?done=preferences", body[:300]
        row = await customer_row(admin, customer_id)
        assert (row["marketing_opt_out"], row["language"]) == (True, "de")
        status, body, _ = await save(c, {"language": "fr", "announcements": "1"}, "/portal/profile/preferences")
        assert status == 422 and 'id="e-language"' in body
        status, _, _ = await save(c, {"language": "", "announcements": "1"}, "/portal/profile/preferences")
        assert status == 302
    row = await customer_row(admin, customer_id)
    assert (row["marketing_opt_out"], row["language"]) == (False, None)
    async with admin.pool.acquire() as conn:
        summaries = [r["summary"] for r in await conn.fetch(
            "SELECT summary FROM operations_log WHERE customer_id = $1 ORDER BY id", customer_id)]
    assert summaries == ["changed marketing_opt_out, language in the portal (preferences)",
                         "changed marketing_opt_out, language in the portal (preferences)"]


async def test_csrf_and_impersonation_are_refused(admin: Admin) -> None:  # noqa: F811
    customer_id = await anna(admin)
    before = await customer_row(admin, customer_id)
    async with await portal_login(admin, "anna") as c:
        await c.get("/portal/profile")
        status, _, _ = await c.post("/portal/profile", {"email": "csrf@example.net", "street": "S"}, csrf=False,
                                    allow_redirects=False)
        assert status == 403
        status, _, _ = await c.post("/portal/profile/preferences", {"_csrf": "forged"}, allow_redirects=False)
        assert status == 403
    async with await impersonated(admin, customer_id) as staff:
        status, body = await staff.get("/portal/profile")
        assert status == 200 and 'id="contact-form"' not in body and 'id="preferences-form"' not in body
        assert "anna@example.net" in body and 'id="read-only"' in body  # read, as the customer would
        for path in ("/portal/profile", "/portal/profile/preferences"):
            status, body, _ = await staff.post(path, {"email": "staff@example.net", "street": "S"},
                                               allow_redirects=False)
            assert status == 403 and acting.IMPERSONATING in html.unescape(body), path
    after = await customer_row(admin, customer_id)
    assert (after["email"], after["marketing_opt_out"]) == (before["email"], before["marketing_opt_out"])
