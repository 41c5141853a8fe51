"""Notifications -> Messages, through its pages and its API on the admin app over a real database:
the log's filters (channel, status, kind, partner, customer, dates, a search), its counts per
status, keyset pages and the CSV export; a message's page (the body never raw in the page: an
email's HTML only in a sandboxed frame's srcdoc, escaped); Retry of a failed message and Cancel
of a scheduled one, each once, with its line of the operations log; a partner's administrator
sees its own partner's messages only (404 for another's), a role without notifications.* is
refused (403), one with notifications.view only retries nothing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import asyncpg

from tests.integration.admin.conftest import Admin, api_key, call, make_admin
from tests.integration.admin.notifications_pages import NOW, add_message, customer_of, invoice, two_partners


async def test_the_log_filters_counts_pages_and_exports(admin: Admin, conn: asyncpg.Connection) -> None:
    demo_id, other = await two_partners(conn)
    ann, bob = await customer_of(conn, demo_id), await customer_of(conn, demo_id, 1)
    theirs = await customer_of(conn, other)
    week_ago = NOW - dt.timedelta(days=7)
    sent = await add_message(conn, ann, created_at=week_ago, send_at=week_ago)
    failed = await add_message(conn, bob, kind="reminder_1", status="failed")
    sms = await add_message(conn, ann, kind="reminder_1", channel="sms")
    scheduled = await add_message(conn, bob, kind="payment", status="scheduled", send_at=NOW + dt.timedelta(hours=3))
    portal = await add_message(conn, ann, kind="announcement", channel="portal", marketing=True)
    other_one = await add_message(conn, theirs, subject="=HYPERLINK(\"http://evil\")")
    await make_admin(conn, "root")
    async with admin.client() as c:
        await c.login("root")
        status, body = await c.get("/admin/notifications/messages")
        assert status == 200
        ids = [int(i) for i in re.findall(r'href="/admin/notifications/messages/(\d+)"', body)]
        assert list(dict.fromkeys(ids)) == [other_one, portal, scheduled, sms, failed, sent]  # newest first
        counts = re.search(r'<nav class="counts".*?</nav>', body, re.S)
        assert counts is not None
        assert re.search(r'<span class="n">6</span> all', counts.group(0))
        assert re.search(r'class="count-failed alarm"[^>]*><span class="n">1</span> failed', counts.group(0))
        assert re.search(r'<span class="n">4</span> sent', counts.group(0))
        assert "550 5.1.1 mailbox unavailable" in body  # a failed one says why in the list

        async def listed(query: str) -> list[int]:
            status, body = await c.get(f"/admin/notifications/messages?{query}")
            assert status == 200, body
            return list(dict.fromkeys(int(i) for i in re.findall(r'href="/admin/notifications/messages/(\d+)"', body)))

        assert await listed("status=failed") == [failed]
        assert await listed("channel=sms") == [sms]
        assert await listed("kind=reminder_1") == [sms, failed]
        assert await listed(f"partner_id={other}") == [other_one]
        assert await listed(f"customer_id={ann['id']}") == [portal, sms, sent]
        assert await listed(f"until={(NOW - dt.timedelta(days=1)).date()}") == [sent]
        assert await listed(f"since={NOW.date()}&channel=email&status=sent") == [other_one]
        assert await listed("q=" + (bob["email"] or "").upper()) == [failed]  # the recipient, case aside
        assert await listed("q=payment") == []  # the scheduled one has no subject yet
        assert await listed("q=HYPERLINK") == [other_one]
        assert await listed("q=%25") == []  # a % is itself, not "anything"
        status, body = await c.get("/admin/notifications/messages?status=failed")
        assert re.search(r'<span class="n">6</span> all', body)  # the counts ignore the status filter
        status, body = await c.get("/admin/notifications/messages?since=yesterday&customer_id=x")
        assert status == 422 and "since" in body and "customer id" in body
        # Keyset pages of two, newest first, then the rest; the CSV is the whole filtered list.
        status, body = await c.get("/admin/notifications/messages?limit=2")
        assert list(dict.fromkeys(int(i) for i in re.findall(r'messages/(\d+)"', body))) == [other_one, portal]
        nxt = re.search(r'href="([^"]*after=[^"]*)" rel="next"', body)
        assert nxt is not None
        status, body = await c.get(nxt.group(1).replace("&amp;", "&"))
        assert list(dict.fromkeys(int(i) for i in re.findall(r'messages/(\d+)"', body))) == [scheduled, sms]
        status, text = await c.get("/admin/notifications/messages?format=csv&channel=email")
        assert status == 200
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [int(r["id"]) for r in rows] == [other_one, scheduled, failed, sent]
        assert rows[0]["subject"].startswith("'=HYPERLINK")  # a formula is quoted, not run
        assert rows[2]["last_error"] == "550 5.1.1 mailbox unavailable"

    key = await api_key(conn)
    status, page = await call(admin, key, "GET", "/messages?limit=2&status=sent")
    assert status == 200 and [m["id"] for m in page["items"]] == [other_one, portal] and page["next"]
    status, page2 = await call(admin, key, "GET", f"/messages?limit=2&status=sent&after={page['next']}")
    assert [m["id"] for m in page2["items"]] == [sms, sent] and page2["next"] is None
    status, page = await call(admin, key, "GET", "/messages?sort=send_at&dir=asc&limit=1")
    assert [m["id"] for m in page["items"]] == [sent]
    status, page = await call(admin, key, "GET", f"/messages?sort=send_at&dir=asc&limit=10&after={page['next']}")
    assert page["items"][-1]["id"] == scheduled  # due in 3 hours: the last
    status, answer = await call(admin, key, "GET", "/messages?channel=fax")
    assert status == 422 and "channel" in answer["errors"]
    status, answer = await call(admin, key, "GET", "/messages?after=garbage")
    assert status == 400


async def test_a_message_page_shows_what_was_sent_and_never_its_html_raw(admin: Admin,
                                                                         conn: asyncpg.Connection) -> None:
    demo_id, _ = await two_partners(conn)
    ann = await customer_of(conn, demo_id)
    doc = await invoice(conn, ann["id"])
    html = ('<html><body><p>Dear customer, "your" invoice</p><script>alert("owned")</script>'
            '<img src="https://tracker.example/p.gif"></body></html>')
    sent = await add_message(conn, ann, body=html, bcc="books@isp.example", document_id=doc["id"],
                             attachments=[doc["id"]], subject=f"Invoice {doc['number']}")
    sms = await add_message(conn, ann, channel="sms", kind="reminder_2", body="Pay <b>now</b> & smile")
    await make_admin(conn, "root")
    async with admin.client() as c:
        await c.login("root")
        status, body = await c.get(f"/admin/notifications/messages/{sent}")
        assert status == 200
        assert "<script>" not in body and "alert(" not in body.replace("alert(&#34;", "")
        frame = re.search(r'<iframe class="body" sandbox="" [^>]*srcdoc="([^"]*)"', body)
        assert frame is not None, body
        assert "&lt;script&gt;" in frame.group(1) and "&#34;your&#34;" in frame.group(1)
        assert f'href="/admin/finance/documents/{doc["id"]}/pdf"' in body and f"{doc['number']}.pdf" in body
        assert "books@isp.example" in body and ann["email"] in body
        assert "250 2.0.0 Ok" in body and "test:" in body  # the provider's answer, the cause
        assert "Retry" not in body and "Cancel" not in body  # a sent message is neither
        status, body = await c.get(f"/admin/notifications/messages/{sms}")
        assert "Pay &lt;b&gt;now&lt;/b&gt; &amp; smile" in body and "<iframe" not in body
        assert "22 characters" in body
        status, _ = await c.get("/admin/notifications/messages/999999")
        assert status == 404
        status, _ = await c.get("/admin/notifications/messages/x1")
        assert status == 404
    key = await api_key(conn)
    status, m = await call(admin, key, "GET", f"/messages/{sent}")
    assert status == 200 and m["body"] == html and m["bcc"] == "books@isp.example"
    assert m["attachments"] == [{"document_id": doc["id"], "kind": "invoice", "number": doc["number"]}]
    assert m["provider_answer"] == "250 2.0.0 Ok" and m["customer_number"] == ann["number"]


async def test_retry_and_cancel_move_a_message_once_with_the_log(admin: Admin, conn: asyncpg.Connection) -> None:
    demo_id, _ = await two_partners(conn)
    ann = await customer_of(conn, demo_id)
    failed = await add_message(conn, ann, status="failed", attempts=3)
    scheduled = await add_message(conn, ann, kind="reminder_1", status="scheduled",
                                  send_at=NOW + dt.timedelta(days=1))
    await make_admin(conn, "boss", "finance")
    async with admin.client() as c:
        await c.login("boss")
        status, body = await c.get(f"/admin/notifications/messages/{failed}")
        assert 'id="retry"' in body and 'id="cancel"' not in body
        status, body, url = await c.post(f"/admin/notifications/messages/{failed}/retry")
        assert status == 200 and url.endswith("done=retried"), (status, url)
        assert "Scheduled again" in body
        row = await conn.fetchrow("SELECT status, attempts, send_at, last_error FROM messages WHERE id = $1", failed)
        assert row is not None and row["status"] == "scheduled" and row["attempts"] == 3
        assert row["send_at"] <= dt.datetime.now(dt.UTC) and row["last_error"]  # kept until the next try
        status, body, _ = await c.post(f"/admin/notifications/messages/{failed}/retry")
        assert status == 409 and "Only a failed message" in body
        status, body = await c.get(f"/admin/notifications/messages/{scheduled}")
        assert 'id="cancel"' in body and 'id="retry"' not in body
        status, body, url = await c.post(f"/admin/notifications/messages/{scheduled}/cancel")
        assert status == 200 and url.endswith("done=cancelled")
        assert await conn.fetchval("SELECT status FROM messages WHERE id = $1", scheduled) == "cancelled"
        status, body, _ = await c.post(f"/admin/notifications/messages/{scheduled}/cancel")
        assert status == 409
    log = await conn.fetch("SELECT action, object_id, actor, customer_id FROM operations_log "
                           "WHERE object_type = 'message' ORDER BY id")
    assert [(r["action"], r["object_id"], r["actor"], r["customer_id"]) for r in log] == [
        ("retry", failed, "boss", ann["id"]), ("cancel", scheduled, "boss", ann["id"])]
    # The API: the same moves, 409 when the state does not allow it.
    again = await add_message(conn, ann, status="failed")
    key = await api_key(conn, "finance")
    status, m = await call(admin, key, "POST", f"/messages/{again}/retry")
    assert status == 200 and m["status"] == "scheduled"
    status, answer = await call(admin, key, "POST", f"/messages/{again}/retry")
    assert status == 409 and "failed" in answer["detail"]
    status, m = await call(admin, key, "POST", f"/messages/{again}/cancel")
    assert status == 200 and m["status"] == "cancelled"
    status, _ = await call(admin, key, "POST", f"/messages/{again}/cancel")
    assert status == 409
    assert await conn.fetchval("SELECT count(*) FROM pgqueuer WHERE entrypoint = 'notifications.deliver'") >= 1


async def test_a_partner_sees_its_own_messages_and_roles_are_held(admin: Admin, conn: asyncpg.Connection) -> None:
    demo_id, other = await two_partners(conn)
    ours = await add_message(conn, await customer_of(conn, demo_id), status="failed")
    theirs = await add_message(conn, await customer_of(conn, other), status="failed")
    await make_admin(conn, "other-admin", "admin", partner_id=other)
    await make_admin(conn, "engineer", "engineer")
    await make_admin(conn, "manager", "manager")
    async with admin.client() as c:
        await c.login("other-admin")
        status, body = await c.get("/admin/notifications/messages")
        assert status == 200 and f"messages/{theirs}" in body and f"messages/{ours}" not in body
        assert 'id="f-partner_id"' not in body  # one partner: no partner filter
        status, _ = await c.get(f"/admin/notifications/messages/{ours}")
        assert status == 404
        status, _, _ = await c.post(f"/admin/notifications/messages/{ours}/retry")
        assert status == 404
        status, _ = await c.get(f"/admin/notifications/messages?partner_id={demo_id}")
        assert status == 200
    async with admin.client() as c:
        await c.login("engineer")
        status, _ = await c.get("/admin/notifications/messages")
        assert status == 403
    async with admin.client() as c:
        await c.login("manager")
        status, body = await c.get(f"/admin/notifications/messages/{ours}")
        assert status == 200 and 'id="retry"' not in body  # it may look, not retry
        status, _, _ = await c.post(f"/admin/notifications/messages/{ours}/retry")
        assert status == 403
    assert await conn.fetchval("SELECT status FROM messages WHERE id = $1", ours) == "failed"
    key = await api_key(conn, "admin", partner_id=other)
    status, page = await call(admin, key, "GET", "/messages")
    assert [m["id"] for m in page["items"]] == [theirs]
    status, _ = await call(admin, key, "GET", f"/messages/{ours}")
    assert status == 404
    status, _ = await call(admin, key, "POST", f"/messages/{ours}/retry")
    assert status == 404
    status, _ = await call(admin, await api_key(conn, "engineer"), "GET", "/messages")
    assert status == 403


async def test_the_customer_page_links_to_its_messages(admin: Admin, conn: asyncpg.Connection) -> None:
    demo_id, _ = await two_partners(conn)
    ann = await customer_of(conn, demo_id)
    await make_admin(conn, "root")
    async with admin.client() as c:
        await c.login("root")
        status, body = await c.get(f"/admin/customers/{ann['id']}")
        assert status == 200 and f'href="/admin/notifications/messages?customer_id={ann["id"]}"' in body
