"""Notifications -> Webhooks over HTTP: the API (CRUD, the secret shown once and rotated, deliveries,
replay, a test event, the events outbox), partner scoping (another partner's webhook is not found,
its events are not listed), the permissions, and the pages (add, the secret once, reveal, rotate,
test, replay, delete) with their operations log."""

from __future__ import annotations

import datetime as dt
import re

from admin.notifications import dispatch, webhooks
from tests.integration.admin.conftest import Admin, api_key, call, logged_in, make_admin

NOW = dt.datetime(2026, 4, 2, 10, 0, tzinfo=dt.UTC)


async def partners(admin: Admin) -> tuple[int, int]:
    async with admin.pool.acquire() as conn:
        a = await conn.fetchval("INSERT INTO partners (name) VALUES ('Alpha') RETURNING id")
        b = await conn.fetchval("INSERT INTO partners (name) VALUES ('Beta') RETURNING id")
    return a, b


async def customers_of(admin: Admin, *partner_ids: int) -> None:
    async with admin.pool.acquire() as conn:
        for n, p in enumerate(partner_ids):
            await conn.execute("INSERT INTO customers (partner_id, number, name) VALUES ($1, $2, $3)",
                               p, f"N{n}", f"Customer {n}")
        while await dispatch.dispatch(conn, now=NOW):
            pass


async def test_the_api_makes_a_webhook_shows_its_secret_once_and_rotates_it(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        key = await api_key(conn)
    status, made = await call(admin, key, "POST", "/webhooks", {
        "url": "https://example.com/hooks/lastmile", "events": ["invoice.*", "customer.created", "invoice.*"],
        "description": "ERP"})
    assert status == 201, made
    assert made["secret"].startswith("whsec_") and made["events"] == ["invoice.*", "customer.created"]
    assert made["partner_id"] is None and made["enabled"] and made["pending"] == 0
    async with admin.pool.acquire() as conn:
        sealed = await conn.fetchval("SELECT secret FROM webhooks WHERE id = $1", made["id"])
    assert sealed.startswith("lm1:") and made["secret"] not in sealed
    assert admin.keyring.open(sealed, webhooks.SECRET_PURPOSE) == made["secret"]
    status, listed = await call(admin, key, "GET", "/webhooks")
    assert status == 200 and [w["id"] for w in listed] == [made["id"]] and "secret" not in listed[0]
    status, got = await call(admin, key, "GET", f"/webhooks/{made['id']}")
    assert status == 200 and "secret" not in got and got["description"] == "ERP"
    status, rotated = await call(admin, key, "POST", f"/webhooks/{made['id']}/secret")
    assert status == 200 and rotated["secret"] != made["secret"] and rotated["secret"].startswith("whsec_")
    status, changed = await call(admin, key, "PATCH", f"/webhooks/{made['id']}", {"enabled": False, "events": ["*"]})
    assert status == 200 and (changed["enabled"], changed["events"]) == (False, ["*"])
    for bad in ({"url": "ftp://example.com"}, {"url": "https://x", "events": ["invoice"]},
                {"url": "https://x", "events": []}, {"url": "https://x", "partner_id": 999}):
        status, problem = await call(admin, key, "POST", "/webhooks", bad)
        assert status == 422, (bad, problem)
    status, _ = await call(admin, key, "DELETE", f"/webhooks/{made['id']}")
    assert status == 200
    assert (await call(admin, key, "GET", f"/webhooks/{made['id']}"))[0] == 404
    assert (await call(admin, key, "GET", "/webhooks/nope"))[0] == 404
    async with admin.pool.acquire() as conn:
        actions = [r["action"] for r in await conn.fetch(
            "SELECT action FROM operations_log WHERE object_type = 'webhook' ORDER BY id")]
    assert actions == ["create", "rotate", "update", "delete"]


async def test_a_partner_sees_and_gets_its_own_webhooks_and_events_only(admin: Admin) -> None:
    a, b = await partners(admin)
    async with admin.pool.acquire() as conn:
        key_a, key_b, key_all = await api_key(conn, partner_id=a), await api_key(conn, partner_id=b), \
            await api_key(conn)
    status, hook_a = await call(admin, key_a, "POST", "/webhooks", {"url": "https://a.example/h", "partner_id": b})
    assert status == 201 and hook_a["partner_id"] == a  # its own partner's, whatever it asked
    status, hook_b = await call(admin, key_b, "POST", "/webhooks", {"url": "https://b.example/h"})
    assert status == 201 and hook_b["partner_id"] == b
    status, hook_all = await call(admin, key_all, "POST", "/webhooks", {"url": "https://all.example/h"})
    assert status == 201 and hook_all["partner_id"] is None
    assert [w["id"] for w in (await call(admin, key_a, "GET", "/webhooks"))[1]] == [hook_a["id"]]
    assert len((await call(admin, key_all, "GET", "/webhooks"))[1]) == 3
    for method, path in (("GET", f"/webhooks/{hook_b['id']}"), ("PATCH", f"/webhooks/{hook_b['id']}"),
                         ("DELETE", f"/webhooks/{hook_b['id']}"), ("GET", f"/webhooks/{hook_b['id']}/deliveries"),
                         ("POST", f"/webhooks/{hook_b['id']}/secret"), ("POST", f"/webhooks/{hook_b['id']}/test"),
                         ("GET", f"/webhooks/{hook_all['id']}")):
        status, _ = await call(admin, key_a, method, path, {} if method == "PATCH" else None)
        assert status == 404, (method, path, status)
    await customers_of(admin, a, b, b)
    status, deliveries_b = await call(admin, key_b, "GET", f"/webhooks/{hook_b['id']}/deliveries")
    assert status == 200 and len(deliveries_b["items"]) == 2
    status, deliveries_a = await call(admin, key_a, "GET", f"/webhooks/{hook_a['id']}/deliveries")
    assert [d["type"] for d in deliveries_a["items"]] == ["customer.created"]
    a_delivery = deliveries_a["items"][0]["id"]
    assert (await call(admin, key_b, "POST", f"/webhook-deliveries/{a_delivery}/replay"))[0] == 404
    assert len((await call(admin, key_all, "GET", f"/webhooks/{hook_all['id']}/deliveries"))[1]["items"]) == 3
    # the outbox: a partner's key lists its partner's events only
    status, events_a = await call(admin, key_a, "GET", "/events")
    assert status == 200 and [(e["type"], e["partner_id"]) for e in events_a["items"]] == [("customer.created", a)]
    status, events_all = await call(admin, key_all, "GET", "/events?limit=2")
    assert len(events_all["items"]) == 2 and events_all["after"] == events_all["items"][-1]["id"]
    status, rest = await call(admin, key_all, "GET", f"/events?after={events_all['after']}")
    assert [e["partner_id"] for e in rest["items"]] == [b]
    status, empty = await call(admin, key_all, "GET", f"/events?after={rest['after']}")
    assert empty == {"items": [], "after": rest["after"]}
    assert (await call(admin, key_all, "GET", "/events?after=-1"))[0] == 422


async def test_deliveries_replay_and_a_test_event_through_the_api(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        key = await api_key(conn)
        viewer = await api_key(conn, "manager")  # notifications.view only
    status, hook = await call(admin, key, "POST", "/webhooks", {"url": "https://example.com/h", "events": ["*"]})
    assert status == 201
    a, _ = await partners(admin)
    await customers_of(admin, a)
    status, page = await call(admin, key, "GET", f"/webhooks/{hook['id']}/deliveries")
    [delivery] = page["items"]
    assert (delivery["status"], delivery["attempts"], delivery["type"], delivery["last_status"]) == (
        "pending", 0, "customer.created", None)
    async with admin.pool.acquire() as conn:
        await conn.execute("UPDATE webhook_deliveries SET status = 'failed', attempts = 12")
    status, failed = await call(admin, key, "GET", f"/webhooks/{hook['id']}/deliveries?status=failed")
    assert [d["id"] for d in failed["items"]] == [delivery["id"]] and failed["items"][0]["next_attempt_at"] is None
    assert (await call(admin, viewer, "POST", f"/webhook-deliveries/{delivery['id']}/replay"))[0] == 403
    status, replayed = await call(admin, key, "POST", f"/webhook-deliveries/{delivery['id']}/replay")
    assert status == 200 and (replayed["status"], replayed["attempts"]) == ("pending", 0)
    status, pinged = await call(admin, key, "POST", f"/webhooks/{hook['id']}/test")
    assert status == 201
    status, page = await call(admin, key, "GET", f"/webhooks/{hook['id']}/deliveries?limit=1")
    assert [d["type"] for d in page["items"]] == ["webhook.ping"] and page["next"] == pinged["delivery_id"]
    status, older = await call(admin, key, "GET", f"/webhooks/{hook['id']}/deliveries?limit=1&before={page['next']}")
    assert [d["id"] for d in older["items"]] == [delivery["id"]] and older["next"] is None
    # the ping went to that webhook alone and is not in the outbox's list
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM webhook_deliveries d JOIN events e ON e.id = d.event_id "
                                   "WHERE e.subject = 'webhook'") == 1
    assert all(e["type"] != "webhook.ping" for e in (await call(admin, key, "GET", "/events"))[1]["items"])
    assert (await call(admin, viewer, "POST", "/webhooks", {"url": "https://x.example/"}))[0] == 403
    assert (await call(admin, viewer, "GET", "/webhooks"))[0] == 200


async def test_the_pages_add_a_webhook_show_its_secret_once_and_replay(admin: Admin) -> None:
    async with await logged_in(admin) as c:
        status, page = await c.get("/admin/notifications/webhooks")
        assert status == 200 and "No webhooks yet." in page and 'id="type-invoice-created"' in page
        status, page = await c.get("/admin/notifications/webhooks/new")
        assert status == 200 and 'name="events" value="invoice.created"' in page
        status, page, _ = await c.post("/admin/notifications/webhooks",
                                       {"url": "not a url", "events": "invoice.created"})
        assert status == 422 and 'aria-invalid="true"' in page
        status, page, _ = await c.post("/admin/notifications/webhooks", {"url": "https://ok.example/h",
                                                                         "patterns": "invoice", "enabled": "1"})
        assert status == 422 and "is not an event type" in page
        status, page, url = await c.post("/admin/notifications/webhooks", {
            "url": "https://erp.example/hooks", "events": ["invoice.created", "payment.recorded"],
            "patterns": "customer.*", "description": "the ERP", "enabled": "1"})
        assert status == 200, page
        secret = re.search(r'id="secret-value">(whsec_[^<]+)<', page)
        assert secret is not None and "shown this once" in page
        async with admin.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM webhooks")
        assert row is not None and list(row["events"]) == ["invoice.created", "payment.recorded", "customer.*"]
        assert admin.keyring.open(row["secret"], webhooks.SECRET_PURPOSE) == secret.group(1)
        base = f"/admin/notifications/webhooks/{row['id']}"
        status, page = await c.get(base)
        assert status == 200 and secret.group(1) not in page and "the ERP" in page
        status, page, _ = await c.post(base + "/secret", {"action": "reveal"})
        assert status == 200 and secret.group(1) in page
        status, page, _ = await c.post(base + "/secret", {"action": "rotate"})
        rotated = re.search(r'id="secret-value">(whsec_[^<]+)<', page)
        assert status == 200 and rotated is not None and rotated.group(1) != secret.group(1)
        status, page, url = await c.post(base + "/test")
        assert status == 200 and "/deliveries/" in url and "Test event made" in page and "webhook.ping" in page
        delivery = url.rsplit("/", 1)[1].split("?")[0]
        async with admin.pool.acquire() as conn:
            await conn.execute("UPDATE webhook_deliveries SET status = 'failed', attempts = 12")
            await conn.execute("INSERT INTO webhook_attempts (delivery_id, response_status, response_body, error, "
                               "duration_ms) VALUES ($1, 500, 'oops <b>', 'HTTP 500', 12)", int(delivery))
        status, page = await c.get(base)
        assert status == 200 and f'id="delivery-{delivery}"' in page and "HTTP 500" in page
        status, page = await c.get(f"/admin/notifications/webhooks/deliveries/{delivery}")
        assert status == 200 and "oops &lt;b&gt;" in page and "12 ms" in page and "&#34;webhook.ping&#34;" in page
        status, page, _ = await c.post(f"/admin/notifications/webhooks/deliveries/{delivery}/replay")
        assert status == 200 and "Pending again" in page
        async with admin.pool.acquire() as conn:
            assert await conn.fetchval("SELECT status || ':' || attempts FROM webhook_deliveries") == "pending:0"
        status, page = await c.get(base + "/edit")
        assert status == 200 and 'value="customer.*"' in page
        status, page, url = await c.post(base, {"url": "https://erp.example/v2", "events": "invoice.created"})
        assert status == 200 and url.endswith("?done=saved") and "off: no new deliveries" in page
        status, page, url = await c.post(base + "/delete")
        assert status == 200 and "Webhook deleted" in page
        async with admin.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM webhooks") == 0
            actions = [r["action"] for r in await conn.fetch("SELECT action FROM operations_log WHERE object_type "
                                                             "IN ('webhook', 'webhook_delivery') ORDER BY id")]
        assert actions == ["create", "reveal", "rotate", "test", "replay", "update", "delete"]


async def test_a_partner_s_administrator_and_the_permissions_on_the_pages(admin: Admin) -> None:
    a, b = await partners(admin)
    async with admin.pool.acquire() as conn:
        theirs = await conn.fetchval("INSERT INTO webhooks (partner_id, url, secret) VALUES ($1, 'https://b/', "
                                     "'lm1:x') RETURNING id", b)
        await make_admin(conn, "alpha", "admin", partner_id=a)
        await make_admin(conn, "viewer", "manager")
    async with admin.client() as c:
        await c.login("alpha")
        status, page = await c.get("/admin/notifications/webhooks")
        assert status == 200 and "https://b/" not in page
        assert (await c.get(f"/admin/notifications/webhooks/{theirs}"))[0] == 404
        status, page = await c.get("/admin/notifications/webhooks/new")
        assert status == 200 and 'name="partner_id"' not in page
        status, page, _ = await c.post("/admin/notifications/webhooks", {"url": "https://a.example/", "events": "*",
                                                                         "partner_id": str(b), "enabled": "1"})
        assert status == 200
        async with admin.pool.acquire() as conn:
            assert await conn.fetchval("SELECT partner_id FROM webhooks WHERE url = 'https://a.example/'") == a
        assert (await c.post(f"/admin/notifications/webhooks/{theirs}/delete"))[0] == 404
    async with admin.client() as c:
        await c.login("viewer")
        status, page = await c.get(f"/admin/notifications/webhooks/{theirs}")
        assert status == 200 and "Rotate secret" not in page and "Delete" not in page
        assert (await c.get("/admin/notifications/webhooks/new"))[0] == 403
        assert (await c.post(f"/admin/notifications/webhooks/{theirs}/secret", {"action": "reveal"}))[0] == 403
