"""The portal's support pages (/portal/tickets) over the real app and database: a ticket opened
with a file (source portal, the partner's inbox's group), staff's reply, the customer's reply
(waiting on an agent), the customer's close and the reopen by a reply, through the helpdesk's
store (its automation); internal notes, their files and the system lines never in the portal;
the list (open first, a system ticket hidden until staff writes); another customer's ticket and
attachment 404 on every route; an administrator looking as the customer reads but writes
nothing (403); CSRF; the operations log's customer actor."""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from dataclasses import dataclass

import aiohttp
from yarl import URL

from admin.auth.store import Connection
from admin.portal import acting, sessions
from admin.portal.support import CLOSED_BY_CUSTOMER
from admin.tickets import store, uploads
from admin.tickets.automation import Author
from admin.tickets.inbound import Attachment
from tests.integration.admin.conftest import Admin, Client, make_admin
from tests.integration.portal.conftest import admin, portal_customer, portal_login  # noqa: F401

NOW = dt.datetime.now(dt.UTC)
NOTE = "INTERNAL: customer is a pain, do not refund"
NOTE_FILE = "internal-credit-check.txt"
SYSTEM = "Merged into #12345 by rule"


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def post_files(c: Client, path: str, fields: dict[str, str], files: list[tuple[str, bytes, str]] = (),  # type: ignore[assignment]
                     *, csrf: bool = True) -> tuple[int, str, str]:
    """POST a multipart form as a browser does (the CSRF token first, then the fields and files)."""
    form = aiohttp.FormData(quote_fields=False)
    if csrf:
        form.add_field("_csrf", c.csrf)
    for name, value in fields.items():
        form.add_field(name, value)
    for name, data, content_type in files:
        form.add_field("files", io.BytesIO(data), filename=name, content_type=content_type)
    if not files:  # a file input left empty
        form.add_field("files", b"", filename="", content_type="application/octet-stream")
    async with c.session.post(c.url + path, data=form, allow_redirects=False) as r:
        return r.status, await r.text(), r.headers.get("Location", "")


async def fetch(c: Client, path: str) -> tuple[int, bytes, dict[str, str]]:
    async with c.session.get(c.url + path, allow_redirects=False) as r:
        return r.status, await r.read(), dict(r.headers)


def file(name: str, data: bytes, content_type: str = "text/plain") -> Attachment:
    return uploads.attachment(name, content_type, data)


async def staff_reply(conn: Connection, ticket_id: int, body: str, *files: Attachment) -> int:
    agent = await conn.fetchval("SELECT min(id) FROM administrators") or await make_admin(conn, "agent", "technician")
    message_id = await store.add_message(conn, ticket_id, store.NewMessage(
        Author.STAFF, body, administrator_id=agent, attachments=files), now=dt.datetime.now(dt.UTC))
    assert message_id is not None
    return message_id


async def ticket_row(site: Admin, ticket_id: int) -> dict[str, object]:
    async with site.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM tickets WHERE id = $1", ticket_id)
    assert row is not None
    return dict(row)


async def impersonated(site: Admin, customer_id: int, login: str = "helpdesk") -> Client:
    """A client holding an administrator's "log in as" session of the customer (and its CSRF token)."""
    async with site.pool.acquire() as conn:
        administrator = await make_admin(conn, login, "super")
        token = await sessions.open_session(conn, customer_id, impersonator_id=administrator, address=None,
                                            user_agent="test", verified=True)
    c = Client(site.url)
    c.session.cookie_jar.update_cookies({sessions.COOKIE: token}, URL(site.url + "/portal/"))
    status, body = await c.get("/portal/tickets")
    assert status == 200, body[:300]
    return c


@dataclass
class Opened:
    ticket_id: int
    attachment_id: int


async def open_ticket(c: Client, subject: str = "Internet drops every evening") -> Opened:
    status, body = await c.get("/portal/tickets/new")
    assert status == 200 and 'id="new-ticket"' in body, body[:300]
    status, body, location = await post_files(
        c, "/portal/tickets/new", {"subject": subject, "type": "incident", "priority": "high",
                                   "body": "Every evening at 8 the light goes red."},
        [("router photo.jpg", b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg")])
    assert status == 302, body[:500]
    m = re.fullmatch(r"/portal/tickets/(\d+)\?done=created", location)
    assert m, location
    ticket_id = int(m.group(1))
    status, body = await c.get(location)
    assert status == 200
    found = re.search(rf'href="/portal/tickets/{ticket_id}/attachments/(\d+)"', body)
    assert found, body
    return Opened(ticket_id, int(found.group(1)))


async def test_a_ticket_opened_with_a_file_replied_closed_and_reopened_by_a_reply(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna", email="anna@example.net")
    async with admin.pool.acquire() as conn:
        partner = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", anna)
        number = await conn.fetchval("SELECT number FROM customers WHERE id = $1", anna)
        group = await conn.fetchval("INSERT INTO ticket_groups (name) VALUES ('Helpdesk') RETURNING id")
        await conn.execute(
            "INSERT INTO ticket_inboxes (partner_id, name, address, host, username, password, group_id) "
            "VALUES ($1, 'Support', 'support@isp.example', 'imap.isp.example', 'support', 'x', $2)", partner, group)
    async with await portal_login(admin, "anna") as c:
        opened = await open_ticket(c)
        t = await ticket_row(admin, opened.ticket_id)
        assert (t["source"], t["status"], t["priority"], t["type"], t["customer_id"], t["partner_id"],
                t["group_id"], t["requester_email"], t["created_by"]) == (
            "portal", "new", "high", "incident", anna, partner, group, "anna@example.net", f"customer:{number}")
        async with admin.pool.acquire() as conn:
            first = await conn.fetchrow("SELECT m.author, f.file_name, f.served_type, f.data FROM ticket_messages m "
                                        "JOIN ticket_attachments f ON f.message_id = m.id WHERE m.ticket_id = $1",
                                        opened.ticket_id)
            assert first is not None and first["author"] == "customer" and first["file_name"] == "router photo.jpg"
            log = await conn.fetchrow("SELECT * FROM operations_log WHERE object_type = 'ticket' AND object_id = $1",
                                      opened.ticket_id)
            assert log is not None and (log["actor"], log["admin_id"], log["api_key_id"], log["customer_id"],
                                        log["action"]) == (f"customer:{number}", None, None, anna, "create")
            assert await conn.fetchval("SELECT count(*) FROM events WHERE subject = 'ticket' AND name = 'created' "
                                       "AND (payload->>'id')::bigint = $1", opened.ticket_id) == 1
        # the file downloads as staff's do: an attachment, never run
        status, data, headers = await fetch(c, f"/portal/tickets/{opened.ticket_id}/attachments/{opened.attachment_id}")
        assert status == 200 and data == first["data"]
        assert headers["Content-Disposition"].startswith('attachment; filename="router photo.jpg"')
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Content-Security-Policy"].startswith("sandbox")

        # staff answer with a file, and write an internal note with a file, and a system line
        async with admin.pool.acquire() as conn:
            await staff_reply(conn, opened.ticket_id, "Please restart the router.", file("howto.txt", b"1. unplug"))
            note = await store.add_message(conn, opened.ticket_id, store.NewMessage(
                Author.NOTE, NOTE, attachments=(file(NOTE_FILE, b"secret"),)), now=dt.datetime.now(dt.UTC))
            await store.add_message(conn, opened.ticket_id, store.NewMessage(Author.SYSTEM, SYSTEM),
                                    now=dt.datetime.now(dt.UTC))
            note_file = await conn.fetchval("SELECT id FROM ticket_attachments WHERE message_id = $1", note)
        assert (await ticket_row(admin, opened.ticket_id))["status"] == "waiting_customer"
        status, body = await c.get(f"/portal/tickets/{opened.ticket_id}")
        assert status == 200
        assert "Please restart the router." in body and "howto.txt" in body and "Waiting on customer" in body
        assert NOTE not in body and NOTE_FILE not in body and SYSTEM not in body and "INTERNAL" not in body
        status, _, _ = await fetch(c, f"/portal/tickets/{opened.ticket_id}/attachments/{note_file}")
        assert status == 404

        # the customer's reply, with a file: waiting on an agent
        status, body, location = await post_files(c, f"/portal/tickets/{opened.ticket_id}/messages",
                                                  {"body": "Restarted, still red."},
                                                  [("log.txt", b"red", "text/plain")])
        assert status == 302 and location.endswith("?done=reply#messages-end"), body[:300]
        assert (await ticket_row(admin, opened.ticket_id))["status"] == "waiting_agent"

        # the customer closes it: resolved, a line for staff the customer does not see
        await c.get(f"/portal/tickets/{opened.ticket_id}")
        status, body, _ = await c.post(f"/portal/tickets/{opened.ticket_id}/close", allow_redirects=False)
        assert status == 302, body
        t = await ticket_row(admin, opened.ticket_id)
        assert t["status"] == "resolved" and t["resolved_at"] is not None
        status, body = await c.get(f"/portal/tickets/{opened.ticket_id}?done=closed")
        assert "Resolved" in body and 'id="close-form"' not in body and "Write to open the ticket again" in body
        assert CLOSED_BY_CUSTOMER not in body
        async with admin.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM ticket_messages WHERE ticket_id = $1 "
                                       "AND author = 'system' AND body = $2", opened.ticket_id, CLOSED_BY_CUSTOMER) == 1

        # a reply reopens it
        status, body, _ = await post_files(c, f"/portal/tickets/{opened.ticket_id}/messages",
                                           {"body": "It is back again."})
        assert status == 302, body[:300]
        t = await ticket_row(admin, opened.ticket_id)
        assert (t["status"], t["reopened"], t["resolved_at"]) == ("waiting_agent", 1, None)
        async with admin.pool.acquire() as conn:
            actions = [r["action"] for r in await conn.fetch(
                "SELECT action FROM operations_log WHERE customer_id = $1 AND actor = $2 ORDER BY id",
                anna, f"customer:{number}")]
        assert actions == ["create", "reply", "update", "reply"]


async def test_a_reply_or_ticket_is_checked_as_staffs_are(admin: Admin) -> None:  # noqa: F811
    await portal_customer(admin, login="anna")
    async with await portal_login(admin, "anna") as c:
        await c.get("/portal/tickets/new")
        # urgent is staff's call; an empty subject and message are refused, every error at once
        status, body, _ = await post_files(c, "/portal/tickets/new", {"subject": " ", "body": "", "priority": "urgent"})
        assert status == 422
        assert 'id="e-subject"' in body and 'id="e-body"' in body and 'id="e-priority"' in body
        # a file over the staff limit
        big = b"x" * (uploads.LIMITS.max_attachment_bytes + 1)
        status, body, _ = await post_files(c, "/portal/tickets/new", {"subject": "Hi", "body": "Hello"},
                                           [("big.bin", big, "application/octet-stream")])
        assert status in (413, 422), status  # the app's request limit may answer first
        opened = await open_ticket(c)
        status, body, _ = await post_files(c, f"/portal/tickets/{opened.ticket_id}/messages", {"body": "  "})
        assert status == 422 and 'id="e-body"' in body
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tickets") == 1


async def test_the_list_shows_the_customers_tickets_open_first(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    bob = await portal_customer(admin, login="bob")
    async with admin.pool.acquire() as conn:
        partner = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", anna)

        async def new(customer: int, subject: str, minutes: int, source: str = "email",
                      author: Author = Author.CUSTOMER) -> int:
            created = await store.create_ticket(conn, store.NewTicket(
                subject, "text", source, partner_id=partner, customer_id=customer, author=author),
                now=NOW - dt.timedelta(minutes=minutes))
            assert created is not None
            return created.ticket_id

        old_closed = await new(anna, "Old closed question", 90)
        await store.set_fields(conn, old_closed, {"status": "resolved"}, now=NOW)
        await new(anna, "Older open one", 60)
        await new(anna, "Newest open one", 5)
        await new(bob, "Bob's private matter", 1)
        silent = await new(anna, "CPE fault detected: serial ABC", 2, "rule", Author.SYSTEM)
        spoken = await new(anna, "Payment failed", 3, "rule", Author.SYSTEM)
        await staff_reply(conn, spoken, "Your card was declined, please update it.")
    async with await portal_login(admin, "anna") as c:
        status, body = await c.get("/portal/tickets")
    assert status == 200
    words = text(body)
    assert "Bob's private matter" not in words and "Bob&#39;s" not in body
    assert "CPE fault" not in words  # the system's own ticket, nobody wrote to the customer on it
    order = [words.index(s) for s in ("Payment failed", "Newest open one", "Older open one", "Old closed question")]
    assert order == sorted(order), words
    assert words.index("Open tickets") < order[0] and words.index("Closed tickets") < order[-1]
    async with await portal_login(admin, "anna") as c:
        assert (await c.get(f"/portal/tickets/{silent}"))[0] == 404


async def test_another_customers_ticket_and_attachment_are_404_on_every_route(admin: Admin) -> None:  # noqa: F811
    await portal_customer(admin, login="anna")
    await portal_customer(admin, login="bob")
    async with await portal_login(admin, "bob") as bob:
        theirs = await open_ticket(bob, "Bob's ticket")
    async with await portal_login(admin, "anna") as c:
        mine = await open_ticket(c, "Anna's ticket")
        before = await ticket_row(admin, theirs.ticket_id)
        t, a = theirs.ticket_id, theirs.attachment_id
        for path in (f"/portal/tickets/{t}", f"/portal/tickets/{t}/attachments/{a}",
                     f"/portal/tickets/{mine.ticket_id}/attachments/{a}",  # bob's file through anna's ticket
                     f"/portal/tickets/{t}/attachments/{mine.attachment_id}",
                     "/portal/tickets/99999999", "/portal/tickets/x", "/portal/tickets/0",
                     f"/portal/tickets/{t}/attachments/¹"):
            status, body, _ = await fetch(c, path)
            assert status == 404, (path, status)
            assert b"Bob" not in body
        await c.get(f"/portal/tickets/{mine.ticket_id}")
        status, _, _ = await post_files(c, f"/portal/tickets/{t}/messages", {"body": "Words in Bob's mouth"})
        assert status == 404
        status, _, _ = await c.post(f"/portal/tickets/{t}/close", allow_redirects=False)
        assert status == 404
    after = await ticket_row(admin, t)
    assert (after["status"], after["updated_at"]) == (before["status"], before["updated_at"])
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ticket_messages WHERE ticket_id = $1", t) == 1


async def test_an_administrator_looking_as_the_customer_reads_but_writes_nothing(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    async with await portal_login(admin, "anna") as c:
        opened = await open_ticket(c)
    async with await impersonated(admin, anna) as staff:
        status, body = await staff.get(f"/portal/tickets/{opened.ticket_id}")
        assert status == 200 and "Internet drops every evening" in body
        assert 'id="reply-form"' not in body and 'id="close-form"' not in body and 'id="read-only"' in body
        status, body = await staff.get("/portal/tickets")
        assert 'href="/portal/tickets/new"' not in body
        status, _, _ = await fetch(staff, f"/portal/tickets/{opened.ticket_id}/attachments/{opened.attachment_id}")
        assert status == 200
        for path, fields in ((f"/portal/tickets/{opened.ticket_id}/messages", {"body": "Put in her mouth"}),
                             ("/portal/tickets/new", {"subject": "Fake", "body": "Fake"})):
            status, body, _ = await post_files(staff, path, fields)
            assert status == 403 and acting.IMPERSONATING in html.unescape(body), (path, status, body[:200])
        status, body, _ = await staff.post(f"/portal/tickets/{opened.ticket_id}/close", allow_redirects=False)
        assert status == 403 and acting.IMPERSONATING in html.unescape(body)
    t = await ticket_row(admin, opened.ticket_id)
    assert t["status"] == "new"
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ticket_messages WHERE ticket_id = $1", opened.ticket_id) == 1
        assert await conn.fetchval("SELECT count(*) FROM tickets") == 1


async def test_a_post_without_the_csrf_token_is_refused(admin: Admin) -> None:  # noqa: F811
    await portal_customer(admin, login="anna")
    async with await portal_login(admin, "anna") as c:
        opened = await open_ticket(c)
        status, _, _ = await post_files(c, f"/portal/tickets/{opened.ticket_id}/messages", {"body": "x"}, csrf=False)
        assert status == 403
        status, _, _ = await post_files(c, "/portal/tickets/new", {"subject": "s", "body": "b"}, csrf=False)
        assert status == 403
        status, _, _ = await c.post(f"/portal/tickets/{opened.ticket_id}/close", {"_csrf": "forged"},
                                    allow_redirects=False)
        assert status == 403
    t = await ticket_row(admin, opened.ticket_id)
    assert t["status"] == "new"
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ticket_messages") == 1


async def test_the_pages_need_a_login(admin: Admin) -> None:  # noqa: F811
    async with Client(admin.url) as c:
        for path in ("/portal/tickets", "/portal/tickets/new", "/portal/tickets/1", "/portal/tickets/1/attachments/1"):
            status, _, headers = await fetch(c, path)
            assert status == 302 and headers["Location"].startswith("/portal/login"), path
