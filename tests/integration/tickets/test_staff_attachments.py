"""Staff's files on a ticket, through the admin (multipart forms, behind the CSRF check) and the
API (base64 in JSON), against a real PostgreSQL and a mail server (tests/fakes/smtpserver.py):
a reply's files are kept with it, listed on its message, downloadable (as a download, the name
made safe, the served type from the bytes) and go with its e-mail; a note's are kept and never
mailed; a file over the limit, an empty one, one that is not base64, are refused with a clear
message and nothing is written; a new ticket's first message takes files too."""

from __future__ import annotations

import base64
import datetime as dt
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage

import aiohttp
import pytest

from admin.auth.store import Connection
from admin.notifications import deliver
from admin.tickets import inbound, store, uploads
from admin.tickets.tickets import content_disposition
from tests.db.notifications_data import settings
from tests.fakes.smtpserver import SmtpServer
from tests.integration.admin.conftest import Admin, Client, admin, api_key, call, logged_in  # noqa: F401

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
HTML = b"<html><script>alert(document.cookie)</script></html>"


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    async with SmtpServer() as server:
        yield server


@dataclass
class World:
    partner: int
    customer: int
    ticket: int


async def world(conn: Connection, smtp: SmtpServer | None = None) -> World:
    partner = await conn.fetchval("INSERT INTO partners (name) VALUES ('Alpha ISP') RETURNING id")
    customer = await conn.fetchval("INSERT INTO customers (partner_id, number, name, email) "
                                   "VALUES ($1, 'C-1', 'Anna Bauer', 'anna@example.net') RETURNING id", partner)
    columns = {"smtp_host": smtp.host, "smtp_port": smtp.port, "smtp_security": "none"} if smtp else {}
    await settings(conn, partner, mail_from="Alpha Support <support@alpha.example>", **columns)
    created = await store.create_ticket(conn, store.NewTicket(
        "No internet since the storm", "The router's light is red.", "email", partner_id=partner,
        customer_id=customer), now=NOW)
    assert created is not None
    return World(partner, customer, created.ticket_id)


async def post_files(c: Client, path: str, fields: dict[str, str], files: list[tuple[str, bytes, str]],
                     *, csrf: bool = True) -> tuple[int, str, str]:
    """POST a multipart form as a browser does (the CSRF token first, then the fields and files)."""
    form = aiohttp.FormData(quote_fields=False)  # names as UTF-8, as browsers send them
    if csrf:
        form.add_field("_csrf", c.csrf)
    for name, value in fields.items():
        form.add_field(name, value)
    for name, data, content_type in files:
        form.add_field("files", io.BytesIO(data), filename=name, content_type=content_type)
    if not files:  # a file input left empty
        form.add_field("files", b"", filename="", content_type="application/octet-stream")
    async with c.session.post(c.url + path, data=form) as r:
        return r.status, await r.text(), str(r.url)


async def stored(site: Admin, ticket_id: int) -> list[dict[str, object]]:
    async with site.pool.acquire() as conn:
        return [dict(r) for r in await conn.fetch(
            "SELECT f.id, m.author, m.outgoing_id, f.file_name, f.declared_type, f.served_type, f.size, f.data "
            "FROM ticket_attachments f JOIN ticket_messages m ON m.id = f.message_id "
            "WHERE m.ticket_id = $1 ORDER BY f.id", ticket_id)]


def files_of(message: EmailMessage) -> dict[str, tuple[str, bytes]]:
    return {str(p.get_filename()): (p.get_content_type(), bytes(p.get_payload(decode=True)))
            for p in message.iter_attachments()}


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


async def test_a_replys_files_are_kept_listed_downloaded_and_mailed_a_notes_are_not_mailed(
        admin: Admin, smtp: SmtpServer) -> None:  # noqa: F811
    async with admin.pool.acquire() as conn:
        w = await world(conn, smtp)
    async with await logged_in(admin) as c:
        await c.get(f"/admin/tickets/{w.ticket}")
        status, body, url = await post_files(c, f"/admin/tickets/{w.ticket}/messages",
                                             {"body": "The technician's report is attached.", "kind": "reply"},
                                             [("report.pdf", PDF, "application/pdf"),
                                              ("../../Befund ü.html", HTML, "text/html")])
        assert status == 200 and "done=reply" in url, body
        files = await stored(admin, w.ticket)
        assert [(f["author"], f["file_name"], f["declared_type"], f["served_type"], f["data"]) for f in files] == [
            ("staff", "report.pdf", "application/pdf", "application/pdf", PDF),
            ("staff", "Befund ü.html", "text/html", "application/octet-stream", HTML)]  # the name made safe
        for f in files:  # listed on the message, as downloads
            assert f'href="/admin/tickets/{w.ticket}/attachments/{f["id"]}" download' in body
        assert "report.pdf" in body and "Befund ü.html" in body
        for f in files:
            async with c.session.get(f"{c.url}/admin/tickets/{w.ticket}/attachments/{f['id']}") as r:
                assert r.status == 200 and await r.read() == f["data"]
                assert r.headers["Content-Type"].split(";")[0] == f["served_type"]
                assert r.headers["Content-Disposition"] == content_disposition(str(f["file_name"]))
                assert r.headers["Content-Disposition"].startswith('attachment; filename="Befund _.html"') or \
                    f["file_name"] == "report.pdf"
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert r.headers["Content-Security-Policy"].startswith("sandbox")

        # an internal note's file: kept, never mailed
        status, body, url = await post_files(c, f"/admin/tickets/{w.ticket}/messages",
                                             {"body": "Photo of the cabinet, for us.", "kind": "note"},
                                             [("cabinet.txt", b"internal only", "text/plain")])
        assert status == 200 and "done=note" in url, body
        # a reply without files: the empty file input gives none
        status, body, url = await post_files(c, f"/admin/tickets/{w.ticket}/messages",
                                             {"body": "Anything else?", "kind": "reply"}, [])
        assert status == 200 and "done=reply" in url, body
    files = await stored(admin, w.ticket)
    assert [(f["author"], f["file_name"], f["outgoing_id"]) for f in files[2:]] == [("note", "cabinet.txt", None)]

    done = await deliver.deliver(admin.pool, keyring=admin.keyring)
    assert done.sent == 2 and done.failed == 0
    assert len(smtp.messages) == 2
    [with_files] = [m.message for m in smtp.messages if "report is attached" in text_of(m.message)]
    [without] = [m.message for m in smtp.messages if "Anything else?" in text_of(m.message)]
    assert files_of(with_files) == {"report.pdf": ("application/pdf", PDF), "Befund ü.html": ("text/html", HTML)}
    assert files_of(without) == {}
    assert all(b"internal only" not in m.raw for m in smtp.messages)


async def test_a_file_over_the_limit_or_empty_is_refused_with_a_clear_message_and_nothing_is_written(
        admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        before = await conn.fetchval("SELECT count(*) FROM ticket_messages")
    monkeypatch.setattr(uploads, "LIMITS", inbound.Limits(max_attachment_bytes=1000, max_attachments=2))
    async with await logged_in(admin) as c:
        await c.get(f"/admin/tickets/{w.ticket}")
        path = f"/admin/tickets/{w.ticket}/messages"
        status, body, _ = await post_files(c, path, {"body": "Here.", "kind": "reply"},
                                           [("big.bin", b"x" * 1001, "application/octet-stream")])
        assert status == 422 and 'id="e-files"' in body
        assert "big.bin is more than the 1,000 bytes a file may have" in body
        assert "Here." in body  # the text kept, to send again
        status, body, _ = await post_files(c, path, {"body": "Here.", "kind": "reply"},
                                           [("empty.txt", b"", "text/plain")])
        assert status == 422 and "empty.txt is empty" in body
        status, body, _ = await post_files(c, path, {"body": "Here.", "kind": "reply"},
                                           [(f"{n}.txt", b"x", "text/plain") for n in range(3)])
        assert status == 422 and "3 files: at most 2 go with a message" in body
        status, body, _ = await post_files(c, path, {"body": " ", "kind": "reply"},
                                           [("big.bin", b"x" * 1001, "application/octet-stream")])
        assert status == 422 and 'id="e-files"' in body and 'id="e-body"' in body  # both at once
        # over the admin's request limit: refused while it is read, before the handler
        status, body, _ = await post_files(c, path, {"body": "Here.", "kind": "reply"},
                                           [("huge.bin", b"x" * (5 * 1024 * 1024), "application/octet-stream")])
        assert status == 413 and "Maximum request body size" in body
        # the CSRF check holds for a multipart form
        status, body, _ = await post_files(c, path, {"body": "Here.", "kind": "reply"},
                                           [("a.txt", b"x", "text/plain")], csrf=False)
        assert status == 403 and "CSRF" in body
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ticket_messages") == before
        assert await conn.fetchval("SELECT count(*) FROM ticket_attachments") == 0


async def test_a_new_tickets_first_message_takes_files(admin: Admin) -> None:  # noqa: F811
    async with admin.pool.acquire() as conn:
        w = await world(conn)
    async with await logged_in(admin) as c:
        await c.get("/admin/tickets/new")
        status, body, url = await post_files(c, "/admin/tickets/new", {
            "customer_id": str(w.customer), "subject": "Contract scan", "body": "Signed contract attached."},
            [("contract.pdf", PDF, "application/pdf")])
        assert status == 200 and "done=created" in url, body
        assert "contract.pdf" in body
    ticket_id = int(url.split("/admin/tickets/")[1].split("?")[0])
    [f] = await stored(admin, ticket_id)
    assert (f["author"], f["file_name"], f["served_type"], f["data"]) == ("staff", "contract.pdf", "application/pdf",
                                                                         PDF)


async def test_the_api_takes_files_in_base64_and_refuses_bad_ones_with_422(
        admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        key = await api_key(conn)
    path = f"/tickets/{w.ticket}/messages"
    status, got = await call(admin, key, "POST", path, {"body": "Report attached.", "kind": "reply", "attachments": [
        {"name": "report.pdf", "content_type": "application/pdf", "content_base64": base64.b64encode(PDF).decode()},
        {"name": "notes.txt", "content_base64": base64.b64encode(b"plain words").decode()}]})
    assert status == 201, got
    assert [(a["file_name"], a["served_type"], a["size"]) for a in got["attachments"]] == [
        ("report.pdf", "application/pdf", len(PDF)), ("notes.txt", "text/plain", 11)]
    assert got["outgoing_id"] is not None
    files = await stored(admin, w.ticket)
    assert [(f["file_name"], f["declared_type"], f["data"]) for f in files] == [
        ("report.pdf", "application/pdf", PDF), ("notes.txt", "application/octet-stream", b"plain words")]
    status, got = await call(admin, key, "GET", f"/tickets/{w.ticket}")
    assert status == 200 and [a["file_name"] for a in got["messages"][-1]["attachments"]] == ["report.pdf",
                                                                                              "notes.txt"]

    # with an Idempotency-Key the body is read before the handler (admin/idempotency.py): the same
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "k-1"}) as s:
        for _ in range(2):
            async with s.post(f"{admin.url}/api/v1{path}", json={"body": "Once.", "kind": "note", "attachments": [
                    {"name": "once.txt", "content_base64": base64.b64encode(b"once").decode()}]}) as r:
                assert r.status == 201, await r.text()
                assert [a["file_name"] for a in (await r.json())["attachments"]] == ["once.txt"]
    assert [f["file_name"] for f in await stored(admin, w.ticket)][-1:] == ["once.txt"]

    monkeypatch.setattr(uploads, "LIMITS", inbound.Limits(max_attachment_bytes=1000))
    for attachments, said in [
        ([{"name": "a.bin", "content_base64": "not base64!"}], "attachments[0] (a.bin): content_base64 is not base64"),
        ([{"name": "big.bin", "content_base64": base64.b64encode(b"x" * 1001).decode()}],
         "attachments[0] (big.bin) is more than the 1,000 bytes a file may have"),
        ([{"name": "e.txt", "content_base64": ""}], "attachments[0] (e.txt) is empty"),
    ]:
        status, got = await call(admin, key, "POST", path, {"body": "x", "kind": "note", "attachments": attachments})
        assert status == 422, got
        assert said in got["detail"], got
    status, got = await call(admin, key, "POST", path, {"body": "x", "attachments": [{"content_base64": "eA=="}]})
    assert status == 422 and "name" in got["detail"], got
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ticket_messages WHERE ticket_id = $1", w.ticket) == 3
