"""Customers and services through the pages and the API: lists, forms with errors on their
fields, the lifecycle, deletion, the search box, the operations log."""

from __future__ import annotations

import re

import asyncpg

from daemons import demo
from tests.integration.admin.conftest import Admin, api_key, call, make_admin


async def test_create_a_customer_with_a_service_block_it_and_see_the_log(admin: Admin,
                                                                       conn: asyncpg.Connection) -> None:
    await demo.load(conn, 5, seed=1)
    await make_admin(conn, "ops", "manager")
    tariff = await conn.fetchval("SELECT id FROM tariffs ORDER BY id LIMIT 1")
    async with admin.client() as c:
        await c.login("ops")
        status, body = await c.get("/admin/customers/new")
        assert status == 200
        status, body, _ = await c.post("/admin/customers/new", {"name": "", "email": "not-an-email"})
        assert status == 422 and "is required" in body and 'id="e-email"' in body
        status, body, url = await c.post("/admin/customers/new", {
            "name": "Ada Lovelace", "email": "ada@example.net", "phone": "+43 660 1234567", "city": "Wien",
            "other_emails": "ada2@example.net, ada3@example.net", "status": "active"})
        assert status == 200 and "/admin/customers/" in url, body
        customer_id = int(url.rsplit("/", 1)[1])
        status, body, url = await c.post(f"/admin/customers/{customer_id}/services/new", {
            "tariff_id": tariff, "login": "ada", "password": "s3cret", "ipv4": "100.127.0.9"})
        assert status == 200 and "/admin/services/" in url, body
        status, body, _ = await c.post(f"/admin/customers/{customer_id}/services/new", {
            "tariff_id": tariff, "login": "ada", "password": "x"})
        assert status == 422 and "is taken by another service" in body
        status, body, _ = await c.post(f"/admin/customers/{customer_id}/status", {"action": "block"})
        assert status == 200 and "Blocked" in body
        status, body, _ = await c.post(f"/admin/customers/{customer_id}/status", {"action": "block"})
        assert status == 409
        status, body = await c.get("/admin/search?q=100.127.0.9")
        assert status == 200 and "Ada Lovelace" in body  # one hit: the customer page
        status, body = await c.get("/admin/search?q=1234567&go=1")
        assert "Ada Lovelace" in body
    log = await conn.fetch("SELECT action, object_type, actor, before, after FROM operations_log "
                           "WHERE customer_id = $1 ORDER BY id", customer_id)
    assert [(r["action"], r["object_type"]) for r in log] == [
        ("create", "customer"), ("create", "service"), ("block", "customer")]
    assert log[2]["before"] == {"status": "active"} and log[2]["after"] == {"status": "blocked"}
    assert all(r["actor"] == "ops" for r in log)


async def test_the_api_lists_pages_and_changes_customers(admin: Admin, conn: asyncpg.Connection) -> None:
    await demo.load(conn, 12, seed=2)
    key = await api_key(conn)
    status, page = await call(admin, key, "GET", "/customers?limit=5&sort=name")
    assert status == 200 and len(page["items"]) == 5 and page["next"]
    names = [c["name"] for c in page["items"]]
    status, page2 = await call(admin, key, "GET", f"/customers?limit=5&sort=name&after={page['next']}")
    assert status == 200 and page2["items"][0]["name"] >= names[-1]
    assert not {c["id"] for c in page["items"]} & {c["id"] for c in page2["items"]}
    status, made = await call(admin, key, "POST", "/customers", {"name": "API Person", "status": "active"})
    assert status == 201 and made["number"].startswith("C")
    status, err = await call(admin, key, "POST", "/customers", {"name": "X", "email": "nope"})
    assert status == 422 and "email" in err["errors"]
    status, changed = await call(admin, key, "PATCH", f"/customers/{made['id']}", {"city": "Graz"})
    assert status == 200 and changed["city"] == "Graz"
    status, _ = await call(admin, key, "DELETE", f"/customers/{made['id']}")
    assert status == 409  # active: make it inactive first
    status, moved = await call(admin, key, "POST", f"/customers/{made['id']}/status", {"action": "deactivate"})
    assert status == 200 and moved["status"] == "inactive"
    status, _ = await call(admin, key, "DELETE", f"/customers/{made['id']}")
    assert status == 200
    status, _ = await call(admin, key, "GET", "/customers/999999")
    assert status == 404
    status, hits = await call(admin, key, "GET", "/search?q=API%20Person")
    assert status == 200 and hits == []  # deleted customers are not found


async def test_a_customers_language_and_marketing_opt_out(admin: Admin, conn: asyncpg.Connection) -> None:
    """The language of its messages (a template's) and whether it takes announcements: on the form,
    the page and the API."""
    await demo.load(conn, 1, seed=1)
    await make_admin(conn, "ops", "manager")
    async with admin.client() as c:
        await c.login("ops")
        status, body, url = await c.post("/admin/customers/new", {"name": "Ute Berg", "language": "DE-at",
                                                                  "marketing_opt_out": "1"})
        assert status == 200 and "/admin/customers/" in url, body
        customer_id = int(url.rsplit("/", 1)[1])
        assert "de_AT" in body and "no announcements (opted out)" in body
        row = await conn.fetchrow("SELECT language, marketing_opt_out FROM customers WHERE id = $1", customer_id)
        assert row is not None and (row["language"], row["marketing_opt_out"]) == ("de_AT", True)
        status, body = await c.get(f"/admin/customers/{customer_id}/edit")
        assert 'value="de_AT"' in body and re.search(r'name="marketing_opt_out" value="1" checked', body)
        status, body, _ = await c.post(f"/admin/customers/{customer_id}/edit", {"name": "Ute Berg",
                                                                                "language": "deutsch"})
        assert status == 422 and 'id="e-language"' in body
        status, body, _ = await c.post(f"/admin/customers/{customer_id}/edit", {"name": "Ute Berg", "language": ""})
        assert status == 200 and "in the partner&#39;s language" in body
        row = await conn.fetchrow("SELECT language, marketing_opt_out FROM customers WHERE id = $1", customer_id)
        assert row is not None and (row["language"], row["marketing_opt_out"]) == (None, False)  # unticked: off
    key = await api_key(conn)
    status, made = await call(admin, key, "GET", f"/customers/{customer_id}")
    assert status == 200 and made["language"] is None and made["marketing_opt_out"] is False
    status, changed = await call(admin, key, "PATCH", f"/customers/{customer_id}",
                                 {"language": "fr", "marketing_opt_out": True})
    assert status == 200 and changed["language"] == "fr" and changed["marketing_opt_out"] is True
    status, err = await call(admin, key, "PATCH", f"/customers/{customer_id}", {"language": "FR"})
    assert status == 422 and "language" in err["errors"]
    status, made = await call(admin, key, "POST", "/customers", {"name": "Jean Dupont", "language": "fr_BE"})
    assert status == 201 and made["language"] == "fr_BE" and made["marketing_opt_out"] is False
