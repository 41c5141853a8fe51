"""Announcements ("Send a message to customers"), through the page and the API on the admin app
over a real database: the filter selects the customers (status, partner, category); the form
says how many it reaches and how many opted out of marketing before anything is sent; a marketing
announcement skips those who opted out, a legal one does not; the messages are made once per
customer and channel, with the subject and text as written; notifications.add is needed, and a
partner's administrator reaches its own partner's customers only."""

from __future__ import annotations

import re

import asyncpg

from tests.integration.admin.conftest import Admin, api_key, call, make_admin
from tests.integration.admin.notifications_pages import two_partners

FORM = "/admin/notifications/announcements/new"


async def setup(conn: asyncpg.Connection) -> tuple[int, int, list[int]]:
    """Six customers of Demo ISP (the first two opted out of marketing, the last blocked) and one of
    Other ISP: (demo partner, other partner, the demo's customers in order)."""
    demo_id, other = await two_partners(conn, customers=7)
    await conn.execute("UPDATE customers SET status = 'active', marketing_opt_out = false")
    ids = [r["id"] for r in await conn.fetch("SELECT id FROM customers WHERE partner_id = $1 ORDER BY id", demo_id)]
    assert len(ids) == 6
    await conn.execute("UPDATE customers SET marketing_opt_out = true WHERE id = ANY($1::bigint[])", ids[:2])
    await conn.execute("UPDATE customers SET status = 'blocked' WHERE id = $1", ids[-1])
    return demo_id, other, ids


async def announced(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT customer_id, channel, subject, body, marketing, status, created_by, "
                                 "partner_id FROM messages WHERE kind = 'announcement' ORDER BY customer_id, channel"))


async def test_a_marketing_announcement_skips_who_opted_out(admin: Admin, conn: asyncpg.Connection) -> None:
    demo_id, _, ids = await setup(conn)
    await make_admin(conn, "boss", "finance")
    async with admin.client() as c:
        await c.login("boss")
        status, body = await c.get(FORM)
        assert status == 200 and 'name="channels" value="email" checked' in body
        form = {"status": "active", "partner_id": str(demo_id), "channels": "email", "subject": "Faster fibre",
                "body": "Twice the speed, same price.\nAsk us.", "marketing": "1"}
        status, body, _ = await c.post(FORM, {**form, "action": "count"})
        assert status == 200
        reach = re.sub(r"<[^>]+>", "", re.search(r'id="reach">(.*?)</div>', body, re.S).group(1))  # type: ignore[union-attr]
        assert "5 customers match; 2 opted out of marketing and are skipped" in " ".join(reach.split())
        assert await announced(conn) == []  # counting sends nothing
        status, body, _ = await c.post(FORM, {**form, "action": "send", "channels": ""})
        assert status == 422 and "choose at least one channel" in body
        status, body, _ = await c.post(FORM, {**form, "action": "send", "subject": ""})
        assert status == 422 and 'id="e-subject"' in body
        status, body, url = await c.post(FORM, {**form, "action": "send"})
        assert status == 200 and "kind=announcement" in url, (status, url)
        assert "3 messages scheduled, 2 customers who opted out of marketing skipped" in " ".join(body.split())
    rows = await announced(conn)
    assert [r["customer_id"] for r in rows] == ids[2:5]  # active, not opted out, of Demo ISP
    assert {(r["channel"], r["subject"], r["body"], r["marketing"], r["status"], r["created_by"])
            for r in rows} == {("email", "Faster fibre", "Twice the speed, same price.\nAsk us.", True, "scheduled",
                                "boss")}
    log = await conn.fetch("SELECT action, partner_id, summary FROM operations_log WHERE object_type = 'announcement'")
    assert [(r["action"], r["partner_id"]) for r in log] == [("announce", demo_id)]
    assert "2 opted out skipped" in log[0]["summary"]


async def test_a_legal_announcement_reaches_everyone_selected_by_each_channel(admin: Admin,
                                                                            conn: asyncpg.Connection) -> None:
    demo_id, _, ids = await setup(conn)
    key = await api_key(conn, "finance")
    status, done = await call(admin, key, "POST", "/announcements", {
        "channels": ["portal", "email"], "subject": "Maintenance on Sunday", "body": "From 02:00 to 04:00.",
        "partner_id": demo_id})
    assert status == 201, done
    assert done == {"customers": 6, "opted_out": 2, "skipped": 0, "no_email": done["no_email"],
                    "no_phone": done["no_phone"], "messages": 12}
    rows = await announced(conn)
    assert len(rows) == 12 and {r["customer_id"] for r in rows} == set(ids)  # opted out or blocked: legal
    # Exactly these customers, within the principal's: an unknown one is refused, nothing made.
    status, answer = await call(admin, key, "POST", "/announcements", {
        "channels": ["sms"], "subject": "x", "body": "y", "customer_ids": [ids[0], 999999]})
    assert status == 422 and "999999" in answer["errors"]["customer_ids"]
    status, done = await call(admin, key, "POST", "/announcements", {
        "channels": ["sms"], "subject": "Offer", "body": "y", "customer_ids": ids[:3], "marketing": True})
    assert status == 201 and done["customers"] == 3 and done["skipped"] == 2 and done["messages"] == 1
    status, answer = await call(admin, key, "POST", "/announcements", {"channels": [], "subject": "x", "body": "y"})
    assert status == 422 and "channels" in answer["errors"]


async def test_who_may_announce_and_to_whom(admin: Admin, conn: asyncpg.Connection) -> None:
    demo_id, other, ids = await setup(conn)
    await make_admin(conn, "manager", "manager")
    await make_admin(conn, "other-admin", "admin", partner_id=other)
    async with admin.client() as c:
        await c.login("manager")  # notifications.view only
        status, _ = await c.get(FORM)
        assert status == 403
        status, body = await c.get("/admin/notifications/messages")
        assert status == 200 and FORM not in body
    async with admin.client() as c:
        await c.login("other-admin")
        status, body = await c.get(FORM)
        assert status == 200 and 'id="f-partner_id"' not in body
        status, body, _ = await c.post(FORM, {"action": "count", "channels": "email"})
        assert re.search(r"<strong>1</strong> customer match", body), "its own partner's one customer"
        status, body, _ = await c.post(FORM, {"action": "send", "channels": "email", "subject": "Hi", "body": "x",
                                              "partner_id": str(demo_id)})
        assert status == 422 and "no such partner" in body
    assert await announced(conn) == []
    key = await api_key(conn, "admin", partner_id=other)
    status, answer = await call(admin, key, "POST", "/announcements", {
        "channels": ["email"], "subject": "x", "body": "y", "customer_ids": ids[:1]})
    assert status == 422 and "customer_ids" in answer["errors"]  # another partner's customer: no such
    status, _ = await call(admin, await api_key(conn, "manager"), "POST", "/announcements",
                           {"channels": ["email"], "subject": "x", "body": "y"})
    assert status == 403
