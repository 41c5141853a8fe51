"""The helpdesk in the admin and the API: the ticket list and its filters (and CSV), a ticket's
page with every message (notes included, marked internal), staff replies (mailed, threaded: a
``messages`` row of kind ticket_reply with its reply headers; the ticket waits on the customer)
and notes (not mailed), the customer's answer (the ticket waits on an agent), field changes,
attachment downloads (never run: served as attachment, nosniff, sandboxed, the name safe), a new
ticket, the operations log; permissions and partner scoping (another partner's ticket is 404)."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from dataclasses import dataclass

import aiohttp
import asyncpg

from admin.auth.store import Connection
from admin.tickets import store
from admin.tickets.automation import Author
from admin.tickets.inbound import safe_filename
from admin.tickets.tickets import content_disposition
from tests.integration.admin.conftest import Admin, Client, api_key, call, logged_in, make_admin

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@dataclass
class World:
    partner_a: int
    partner_b: int
    customer_a: int
    customer_b: int
    group: int
    agent: int           # an administrator to assign to
    ticket_a: int        # customer_a's, a message with two attachments, high priority, in the group
    ticket_b: int        # customer_b's (partner B)
    ticket_unknown: int  # partner A's, from an unknown sender
    hostile: int         # ticket_a's attachment of the name "../../evil.html"
    unicode: int         # ticket_a's attachment with a non-ASCII name


async def add_attachment(conn: Connection, message_id: int, name: str, served: str, data: bytes) -> int:
    return int(await conn.fetchval(
        "INSERT INTO ticket_attachments (message_id, file_name, declared_type, served_type, size, sha256, data) "
        "VALUES ($1, $2, 'text/html', $3, $4, $5, $6) RETURNING id",
        message_id, name, served, len(data), hashlib.sha256(data).digest(), data))


async def world(conn: Connection) -> World:
    ids: list[int] = []
    for name in ("Alpha ISP", "Bravo ISP"):
        partner = await conn.fetchval("INSERT INTO partners (name) VALUES ($1) RETURNING id", name)
        tag = name.split()[0].lower()
        customer = await conn.fetchval(
            "INSERT INTO customers (partner_id, number, name, email) VALUES ($1, $2, $3, $4) RETURNING id",
            partner, f"C-{tag}", f"{name.split()[0]} Home", f"{tag}@example.net")
        ids += [partner, customer]
    await conn.execute("INSERT INTO notification_settings (partner_id, mail_from) VALUES ($1, $2)",
                       ids[0], "Alpha Support <support@alpha.example>")
    group = await conn.fetchval("INSERT INTO ticket_groups (name) VALUES ('Field team') RETURNING id")
    agent = await make_admin(conn, "agent", "technician")
    a = await store.create_ticket(conn, store.NewTicket(
        "No internet since the storm", "The router's light is red.", "email", partner_id=ids[0],
        customer_id=ids[1], priority="high", group_id=group, assignee_id=agent), now=NOW)
    b = await store.create_ticket(conn, store.NewTicket(
        "Bravo invoice question", "Why two invoices?", "email", partner_id=ids[2], customer_id=ids[3]),
        now=NOW + dt.timedelta(minutes=1))
    u = await store.create_ticket(conn, store.NewTicket(
        "Want to become a customer", "Hello, do you serve my street?", "email", partner_id=ids[0],
        requester_email="stranger@example.org", requester_name="Sam Stranger"), now=NOW + dt.timedelta(minutes=2))
    assert a is not None and b is not None and u is not None
    hostile = await add_attachment(conn, a.message_id, safe_filename("../../evil.html", "text/html"),
                                   "application/octet-stream", b"<script>alert(document.cookie)</script>")
    unicode = await add_attachment(conn, a.message_id, safe_filename("Résumé \"ü\".txt"), "text/plain", b"hi")
    return World(ids[0], ids[2], ids[1], ids[3], group, agent, a.ticket_id, b.ticket_id, u.ticket_id, hostile,
                 unicode)


async def partner_client(admin: Admin, login: str, partner_id: int, role: str = "super") -> Client:
    async with admin.pool.acquire() as conn:
        await make_admin(conn, login, role, partner_id=partner_id)
    c = admin.client()
    status, body, _ = await c.login(login)
    assert status == 200, body
    await c.get("/admin/profile")
    return c


async def one(conn: Connection, sql: str, *args: object) -> asyncpg.Record:
    row = await conn.fetchrow(sql, *args)
    assert row is not None, sql
    return row


def ticket_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<a href="/admin/tickets/(\d+)">', html)]


async def oplog(admin: Admin, object_type: str) -> list[asyncpg.Record]:
    async with admin.pool.acquire() as conn:
        return list(await conn.fetch("SELECT * FROM operations_log WHERE object_type = $1 ORDER BY id", object_type))


# -- the list -------------------------------------------------------------------------------------

async def test_the_ticket_list_filters_pages_and_exports_csv(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
    async with await logged_in(admin) as c:
        status, body = await c.get("/admin/tickets")
        assert status == 200
        assert ticket_ids(body) == [w.ticket_unknown, w.ticket_b, w.ticket_a]  # latest activity first
        assert "Sam Stranger" in body and "stranger@example.org" in body and "C-alpha" in body and "New" in body
        for query, expected in [
            ("q=storm", [w.ticket_a]), ("q=INVOICE", [w.ticket_b]), ("q=%25", []), ("status=new", None),
            ("status=resolved", []), ("priority=high", [w.ticket_a]), (f"assignee_id={w.agent}", [w.ticket_a]),
            (f"group_id={w.group}", [w.ticket_a]), (f"customer_id={w.customer_b}", [w.ticket_b]),
            ("priority=low", []), ("sort=created&dir=asc", [w.ticket_a, w.ticket_b, w.ticket_unknown]),
        ]:
            status, body = await c.get("/admin/tickets?" + query)
            assert status == 200, (query, body)
            assert ticket_ids(body) == (expected if expected is not None else
                                        [w.ticket_unknown, w.ticket_b, w.ticket_a]), query
        status, body = await c.get("/admin/tickets?priority=extreme")
        assert status == 422
        status, body = await c.get("/admin/tickets?limit=2")
        nxt = re.search(r'href="([^"]*after=[^"]*)" rel="next"', body)
        assert nxt is not None and len(ticket_ids(body)) == 2
        status, body = await c.get(nxt.group(1).replace("&amp;", "&"))
        assert status == 200 and ticket_ids(body) == [w.ticket_a]
        status, _ = await c.get("/admin/tickets?after=WyJub3QgYSB0aW1lIiwgMV0")
        assert status == 400
        status, body = await c.get("/admin/tickets?format=csv")
        rows = list(csv.reader(io.StringIO(body)))
        assert rows[0][:3] == ["id", "subject", "customer_number"]
        assert [int(r[0]) for r in rows[1:]] == [w.ticket_unknown, w.ticket_b, w.ticket_a]
        assert rows[3][8] == "agent"


# -- a ticket's page, replies and notes ---------------------------------------------------------

async def test_the_ticket_page_shows_every_message_and_its_attachments(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        await store.add_message(conn, w.ticket_a, store.NewMessage(Author.NOTE, "Storm damage on street 5 <b>x</b>",
                                                                   administrator_id=w.agent), now=NOW)
    async with await logged_in(admin) as c:
        status, body = await c.get(f"/admin/tickets/{w.ticket_a}")
        assert status == 200
        assert "No internet since the storm" in body and "The router&#39;s light is red." in body
        assert "Storm damage on street 5 &lt;b&gt;x&lt;/b&gt;" in body  # escaped, never markup
        assert 'class="msg msg-customer"' in body and 'class="msg msg-note"' in body
        assert body.count('class="badge-internal">internal<') == 1
        assert f'href="/admin/tickets/{w.ticket_a}/attachments/{w.hostile}"' in body and ">evil.html<" in body
        assert 'value="reply"' in body and 'value="note"' in body and 'id="fields-form"' in body
        assert "Field team" in body and "C-alpha" in body
        status, body = await c.get(f"/admin/tickets/{w.ticket_unknown}")
        assert status == 200 and "stranger@example.org" in body and "no customer" in body
        status, _ = await c.get("/admin/tickets/999999999")
        assert status == 404


async def test_a_reply_is_mailed_and_threaded_a_note_is_not_and_the_customers_answer_moves_it(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
    async with await logged_in(admin) as c:
        await c.get(f"/admin/tickets/{w.ticket_a}")
        status, body, url = await c.post(f"/admin/tickets/{w.ticket_a}/messages",
                                         {"body": "We sent a technician.", "kind": "reply"})
        assert status == 200 and "done=reply" in url, body
        assert "We sent a technician." in body and 'class="msg msg-staff"' in body
        async with admin.pool.acquire() as conn:
            t = await one(conn, "SELECT * FROM tickets WHERE id = $1", w.ticket_a)
            m = await one(conn, "SELECT * FROM ticket_messages WHERE ticket_id = $1 ORDER BY id DESC LIMIT 1",
                                    w.ticket_a)
            out = await one(conn, "SELECT * FROM messages WHERE id = $1", m["outgoing_id"])
        assert t["status"] == "waiting_customer" and t["first_response_at"] is not None
        assert m["author"] == "staff" and m["administrator_id"] is not None
        assert m["mail_id"].endswith("@alpha.example>")  # the partner's mail_from's domain
        assert out["kind"] == "ticket_reply" and out["recipient"] == "alpha@example.net"
        assert out["body"] == "We sent a technician." and f"#{w.ticket_a}" in out["subject"]
        assert out["reply_headers"]["message_id"] == m["mail_id"]
        status, body, url = await c.post(f"/admin/tickets/{w.ticket_a}/messages",
                                         {"body": "Customer sounded angry.", "kind": "note"})
        assert status == 200 and "done=note" in url
        async with admin.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM messages WHERE kind = 'ticket_reply'") == 1
            note = await one(conn, "SELECT * FROM ticket_messages WHERE ticket_id = $1 ORDER BY id DESC LIMIT 1",
                                       w.ticket_a)
            assert note["author"] == "note" and note["outgoing_id"] is None and note["mail_id"] is None
            assert await conn.fetchval("SELECT status FROM tickets WHERE id = $1", w.ticket_a) == "waiting_customer"
            async with conn.transaction():
                await store.add_message(conn, w.ticket_a, store.NewMessage(Author.CUSTOMER, "Thanks, still down."),
                                        now=dt.datetime.now(dt.UTC))
            assert await conn.fetchval("SELECT status FROM tickets WHERE id = $1", w.ticket_a) == "waiting_agent"
        status, body, _ = await c.post(f"/admin/tickets/{w.ticket_a}/messages", {"body": "  ", "kind": "reply"})
        assert status == 422 and 'id="e-body"' in body
    logged = await oplog(admin, "ticket_message")
    assert [r["action"] for r in logged] == ["reply", "note"]
    assert logged[0]["customer_id"] == w.customer_a and logged[0]["partner_id"] == w.partner_a


async def test_a_reply_from_an_inbox_ticket_is_threaded_with_the_inbox_domain(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        inbox = await conn.fetchval(
            "INSERT INTO ticket_inboxes (partner_id, name, address, host, username, password) "
            "VALUES ($1, 'Help', 'help@desk.alpha.example', 'imap.example', 'u', 'x') RETURNING id", w.partner_a)
        await conn.execute("UPDATE tickets SET inbox_id = $2 WHERE id = $1", w.ticket_unknown, inbox)
        key = await api_key(conn)
    status, m = await call(admin, key, "POST", f"/tickets/{w.ticket_unknown}/messages", {"body": "Yes we do."})
    assert status == 201 and m["author"] == "staff" and m["outgoing_id"] is not None, m
    async with admin.pool.acquire() as conn:
        mail_id = await conn.fetchval("SELECT mail_id FROM ticket_messages WHERE id = $1", m["id"])
        recipient = await conn.fetchval("SELECT recipient FROM messages WHERE id = $1", m["outgoing_id"])
    assert mail_id.endswith("@desk.alpha.example>") and recipient == "stranger@example.org"


async def test_the_fields_form_changes_a_ticket_and_logs_it(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
    async with await logged_in(admin) as c:
        await c.get(f"/admin/tickets/{w.ticket_b}")
        form = {"status": "in_progress", "priority": "urgent", "type": "incident", "group_id": str(w.group),
                "assignee_id": str(w.agent)}
        status, body, url = await c.post(f"/admin/tickets/{w.ticket_b}", form)
        assert status == 200 and "done=fields" in url, body
        status, body, _ = await c.post(f"/admin/tickets/{w.ticket_b}", {**form, "status": "resolved",
                                                                         "group_id": "", "assignee_id": ""})
        assert status == 200
        status, body, _ = await c.post(f"/admin/tickets/{w.ticket_b}", {**form, "status": "bogus"})
        assert status == 422 and "no such status" in body
        status, body, _ = await c.post(f"/admin/tickets/{w.ticket_b}", {**form, "priority": "extreme"})
        assert status == 422
    async with admin.pool.acquire() as conn:
        t = await one(conn, "SELECT * FROM tickets WHERE id = $1", w.ticket_b)
    assert (t["status"], t["priority"], t["type"], t["group_id"], t["assignee_id"]) == (
        "resolved", "urgent", "incident", None, None)
    assert t["resolved_at"] is not None
    logged = await oplog(admin, "ticket")
    assert [r["action"] for r in logged] == ["update", "update"]
    assert logged[0]["after"]["priority"] == "urgent" and logged[0]["customer_id"] == w.customer_b
    assert logged[1]["before"] == {"status": "in_progress", "group_id": w.group, "assignee_id": w.agent}


async def test_an_attachment_is_a_download_that_never_runs(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
    async with await logged_in(admin) as c:
        async with c.session.get(f"{c.url}/admin/tickets/{w.ticket_a}/attachments/{w.hostile}") as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "application/octet-stream"
            assert r.headers["Content-Disposition"] == "attachment; filename=\"evil.html\"; filename*=UTF-8''evil.html"
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["Content-Security-Policy"].startswith("sandbox")
            assert await r.read() == b"<script>alert(document.cookie)</script>"
        async with c.session.get(f"{c.url}/admin/tickets/{w.ticket_a}/attachments/{w.unicode}") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
            disposition = r.headers["Content-Disposition"]
            assert disposition.startswith('attachment; filename="R_sum_ _')
            assert "filename*=UTF-8''R%C3%A9sum%C3%A9" in disposition
        for other in (f"/admin/tickets/{w.ticket_b}/attachments/{w.hostile}",  # not that ticket's
                      f"/admin/tickets/{w.ticket_a}/attachments/999999999"):
            status, _ = await c.get(other)
            assert status == 404, other


def test_the_content_disposition_quotes_nothing_it_should_not() -> None:
    assert content_disposition("a b.pdf") == "attachment; filename=\"a b.pdf\"; filename*=UTF-8''a%20b.pdf"
    assert content_disposition('x"y\\z;.txt') == (
        "attachment; filename=\"x_y_z;.txt\"; filename*=UTF-8''x%22y%5Cz%3B.txt")
    assert content_disposition("日本.txt").startswith('attachment; filename="__.txt"; filename*=UTF-8\'\'%E6%97%A5')


async def test_a_new_ticket_from_the_admin(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
    async with await logged_in(admin) as c:
        status, body = await c.get(f"/admin/tickets/new?customer_id={w.customer_b}")
        assert status == 200 and f'value="{w.customer_b}"' in body
        status, body, url = await c.post("/admin/tickets/new", {
            "customer_id": str(w.customer_b), "subject": "Planned outage", "body": "Tomorrow 02:00-04:00.",
            "priority": "low", "type": "incident", "group_id": str(w.group)})
        assert status == 200 and "done=created" in url, body
        ticket_id = int(re.search(r"/admin/tickets/(\d+)", url).group(1))  # type: ignore[union-attr]
        assert "Planned outage" in body and 'class="msg msg-staff"' in body
        status, body, _ = await c.post("/admin/tickets/new", {"customer_id": "999999", "subject": "x", "body": "y"})
        assert status == 422 and "no such customer" in body
        status, body, _ = await c.post("/admin/tickets/new", {"customer_id": str(w.customer_b), "subject": "",
                                                              "body": ""})
        assert status == 422 and 'id="e-subject"' in body and 'id="e-body"' in body
    async with admin.pool.acquire() as conn:
        t = await one(conn, "SELECT * FROM tickets WHERE id = $1", ticket_id)
        m = await one(conn, "SELECT * FROM ticket_messages WHERE ticket_id = $1", ticket_id)
    assert (t["source"], t["status"], t["priority"], t["type"], t["partner_id"], t["customer_id"]) == (
        "admin", "new", "low", "incident", w.partner_b, w.customer_b)
    assert m["author"] == "staff" and m["body"] == "Tomorrow 02:00-04:00." and t["created_by"] == "root"
    assert [r["action"] for r in await oplog(admin, "ticket")] == ["create"]


# -- the API --------------------------------------------------------------------------------------

async def test_the_api_round_trip(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        key = await api_key(conn)
    status, page = await call(admin, key, "GET", "/tickets?priority=high")
    assert status == 200 and [t["id"] for t in page["items"]] == [w.ticket_a] and page["next"] is None
    assert page["items"][0]["status_title"] == "New" and page["items"][0]["customer_number"] == "C-alpha"
    status, page = await call(admin, key, "GET", "/tickets?limit=1")
    assert status == 200 and page["next"] is not None
    status, page = await call(admin, key, "GET", f"/tickets?limit=1&after={page['next']}")
    assert status == 200 and [t["id"] for t in page["items"]] == [w.ticket_b]
    status, t = await call(admin, key, "POST", "/tickets", {"customer_id": w.customer_a, "subject": "API ticket",
                                                            "body": "Opened by a script.", "type": "problem"})
    assert status == 201, t
    assert t["source"] == "api" and t["status"] == "new" and t["type"] == "problem" and t["partner_id"] == w.partner_a
    assert [m["author"] for m in t["messages"]] == ["staff"]
    status, m = await call(admin, key, "POST", f"/tickets/{t['id']}/messages", {"body": "Internal", "kind": "note"})
    assert status == 201 and m["author"] == "note" and m["outgoing_id"] is None and m["administrator_id"] is None
    status, m = await call(admin, key, "POST", f"/tickets/{t['id']}/messages", {"body": "Hello customer"})
    assert status == 201 and m["author"] == "staff" and m["outgoing_id"] is not None
    status, changed = await call(admin, key, "PATCH", f"/tickets/{t['id']}",
                                 {"priority": "urgent", "assignee_id": w.agent})
    assert status == 200 and changed["priority"] == "urgent" and changed["assignee_id"] == w.agent
    assert changed["status"] == "waiting_customer"
    status, got = await call(admin, key, "GET", f"/tickets/{t['id']}")
    assert status == 200 and [m["author"] for m in got["messages"]] == ["staff", "note", "staff"]
    assert got["first_response_at"] is not None
    status, got = await call(admin, key, "GET", f"/tickets/{w.ticket_a}")
    assert [a["file_name"] for a in got["messages"][0]["attachments"]] == ["evil.html", "Résumé _ü_.txt"]
    for method, path, body in (("PATCH", f"/tickets/{t['id']}", {"priority": "extreme"}),
                               ("PATCH", f"/tickets/{t['id']}", {"status": "nope"}),
                               ("PATCH", f"/tickets/{t['id']}", {"group_id": 999999}),
                               ("POST", "/tickets", {"customer_id": 999999, "subject": "x", "body": "y"}),
                               ("POST", f"/tickets/{t['id']}/messages", {"body": ""})):
        status, problem = await call(admin, key, method, path, body)
        assert status == 422, (path, body, problem)
    status, _ = await call(admin, key, "GET", "/tickets/999999999")
    assert status == 404


# -- permissions and partners ---------------------------------------------------------------------

async def test_without_support_permissions_tickets_are_forbidden(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        cashier = await api_key(conn, "cashier")
        engineer = await api_key(conn, "engineer")  # support.view and .edit, not .add
    async with await logged_in(admin, "cash", "cashier") as c:
        for path in ("/admin/tickets", f"/admin/tickets/{w.ticket_a}", "/admin/tickets/new",
                     f"/admin/tickets/{w.ticket_a}/attachments/{w.hostile}"):
            status, _ = await c.get(path, allow_redirects=False)
            assert status == 403, path
        status, body = await c.get("/admin/")
        assert 'href="/admin/tickets"' not in body
    for method, path in (("GET", "/tickets"), ("GET", f"/tickets/{w.ticket_a}"), ("PATCH", f"/tickets/{w.ticket_a}"),
                         ("POST", f"/tickets/{w.ticket_a}/messages")):
        status, _ = await call(admin, cashier, method, path, {"body": "x"} if method != "GET" else None)
        assert status == 403, path
    status, _ = await call(admin, engineer, "GET", f"/tickets/{w.ticket_a}")
    assert status == 200
    status, _ = await call(admin, engineer, "POST", "/tickets", {"customer_id": w.customer_a, "subject": "x",
                                                                 "body": "y"})
    assert status == 403
    async with await logged_in(admin, "eng", "engineer") as c:
        status, body = await c.get(f"/admin/tickets/{w.ticket_a}")
        assert status == 200 and 'id="reply-form"' in body
        status, _ = await c.get("/admin/tickets/new", allow_redirects=False)
        assert status == 403
    async with await logged_in(admin, "viewer", "manager") as c:  # support.*: the form shows
        status, body = await c.get("/admin/tickets")
        assert 'href="/admin/tickets/new"' in body


async def test_a_partners_administrator_sees_only_its_partners_tickets(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        key = await api_key(conn, partner_id=w.partner_a)
    async with await partner_client(admin, "alpha", w.partner_a) as c:
        status, body = await c.get("/admin/tickets")
        assert ticket_ids(body) == [w.ticket_unknown, w.ticket_a]
        status, _ = await c.get(f"/admin/tickets/{w.ticket_b}")
        assert status == 404
        status, _, _ = await c.post(f"/admin/tickets/{w.ticket_b}/messages", {"body": "x", "kind": "reply"})
        assert status == 404
        status, _, _ = await c.post(f"/admin/tickets/{w.ticket_b}", {"status": "resolved", "priority": "low",
                                                                      "type": "question"})
        assert status == 404
        status, body, _ = await c.post("/admin/tickets/new", {"customer_id": str(w.customer_b), "subject": "x",
                                                              "body": "y"})
        assert status == 422 and "no such customer" in body
        status, _ = await c.get(f"/admin/tickets/{w.ticket_a}")
        assert status == 200
    status, page = await call(admin, key, "GET", "/tickets")
    assert [t["id"] for t in page["items"]] == [w.ticket_unknown, w.ticket_a]
    for method, path in (("GET", f"/tickets/{w.ticket_b}"), ("PATCH", f"/tickets/{w.ticket_b}"),
                         ("POST", f"/tickets/{w.ticket_b}/messages")):
        status, _ = await call(admin, key, method, path, {"body": "x"} if method != "GET" else None)
        assert status == 404, path
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT status FROM tickets WHERE id = $1", w.ticket_b) == "new"
    async with aiohttp.ClientSession() as s, s.get(f"{admin.url}/api/v1/tickets") as r:
        assert r.status == 401
