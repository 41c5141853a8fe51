"""Email to ticket against a real PostgreSQL and a real IMAP server (dovecot): a customer's mail
becomes a ticket, a reply lands in its ticket by header and by subject (and a stranger's does
not), the deny-list, our own mail, unknown senders, duplicates, auto-replies and attachments."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from admin.auth.store import Connection
from admin.tickets import intake, intake_store, store
from admin.tickets.automation import Author
from daemons import db
from daemons.secrets import Keyring
from tests.db.notifications_data import at, customer, partner
from tests.integration.tickets.conftest import Dovecot, deliver

NOW = at("2026-12-01 09:00")
KEYRING = Keyring(secrets.token_bytes(32))


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(db_url, min_size=1, max_size=4, init=db.init_connection)
    try:
        yield p
    finally:
        await p.close()


async def make_inbox(conn: Connection, pid: int, user: tuple[str, str] = ("u", "p"), *, port: int = 143,
                     **columns: object) -> intake.Inbox:
    names = ["partner_id", "name", "address", "host", "port", "security", "username", "password", *columns]
    values = [pid, "Support", "support@isp.example", "127.0.0.1", port, "none", user[0],
              KEYRING.seal(user[1], intake_store.PASSWORD_PURPOSE), *columns.values()]
    marks = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    await conn.execute(f"INSERT INTO ticket_inboxes ({', '.join(names)}) VALUES ({marks})", *values)
    rows = await intake_store.inboxes(conn)
    return intake.inbox_of(rows[-1], KEYRING, timeout=5.0)


def mail(subject: str, body: str = "Hello", *, sender: str = "Anna Bauer <anna@example.at>", headers: str = "",
         mail_id: str | None = None) -> bytes:
    mid = mail_id or f"<{secrets.token_hex(6)}@example.at>"
    return (f"From: {sender}\r\nTo: support@isp.example\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n"
            f"Date: Tue, 01 Dec 2026 10:00:00 +0100\r\n{headers}\r\n{body}\r\n").encode()


async def tickets(conn: Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT t.*, (SELECT count(*) FROM ticket_messages m WHERE m.ticket_id = t.id) AS n "
                                 "FROM tickets t ORDER BY id"))


async def test_a_customers_mail_is_a_ticket_and_replies_thread_by_header_and_subject(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        pid = await partner(conn)
        cid = await customer(conn, pid, 1, email="anna@example.at")
        inbox = await make_inbox(conn, pid)

        assert await intake.take(conn, inbox, mail("No internet since today"), now=NOW) is intake.Outcome.CREATED
        [t] = await tickets(conn)
        assert (t["customer_id"], t["partner_id"], t["status"], t["source"], t["inbox_id"]) == (
            cid, pid, "new", "email", inbox.id)

        # staff answers; the customer's reply names our Message-ID
        async with conn.transaction():
            staff = await store.add_message(conn, t["id"], store.NewMessage(Author.STAFF, "Please restart it"), now=NOW)
            assert staff is not None
            await store.queue_reply(conn, t["id"], staff, domain=inbox.domain, now=NOW)
        ours = await conn.fetchval("SELECT mail_id FROM ticket_messages WHERE id = $1", staff)
        assert ours == f"<ticket-{t['id']}.{staff}@isp.example>"
        assert (await conn.fetchval("SELECT status FROM tickets")) == "waiting_customer"
        reply = mail("Re: something else", "Did not help", headers=f"In-Reply-To: {ours}\r\nReferences: {ours}\r\n")
        assert await intake.take(conn, inbox, reply, now=NOW) is intake.Outcome.REPLIED
        [t] = await tickets(conn)
        assert (t["n"], t["status"]) == (3, "waiting_agent")

        # by the subject's tag alone
        tagged = mail(f"Re: No internet since today [#{t['id']}]", "Still down")
        assert await intake.take(conn, inbox, tagged, now=NOW) is intake.Outcome.REPLIED
        assert (await tickets(conn))[0]["n"] == 4

        # a stranger writing the same tag gets a ticket of their own, not a line in Anna's
        stranger = mail(f"Re: [#{t['id']}]", "let me in", sender="mallory@evil.example")
        assert await intake.take(conn, inbox, stranger, now=NOW) is intake.Outcome.CREATED
        first, second = await tickets(conn)
        assert (first["n"], second["customer_id"], second["requester_email"]) == (4, None, "mallory@evil.example")


async def test_deny_list_own_mail_unknown_senders_duplicates_and_auto_replies(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        pid = await partner(conn)
        await customer(conn, pid, 1, email="anna@example.at")
        inbox = await make_inbox(conn, pid, accept_unknown=False)
        await conn.execute("INSERT INTO ticket_denylist (inbox_id, field, match, pattern) VALUES "
                           "($1, 'subject', 'contains', 'viagra'), (NULL, 'address', 'ends', '@spam.example')",
                           inbox.id)

        assert await intake.take(conn, inbox, mail("Cheap VIAGRA"), now=NOW) is intake.Outcome.DENIED
        assert await intake.take(conn, inbox, mail("Hi", sender="x@spam.example"), now=NOW) is intake.Outcome.DENIED
        assert await intake.take(conn, inbox, mail("Loop", sender="support@isp.example"), now=NOW) is intake.Outcome.OWN
        assert await intake.take(conn, inbox, mail("Who?", sender="nobody@else.example"), now=NOW) \
            is intake.Outcome.UNKNOWN
        assert await intake.take(conn, inbox, b"\x00\x01 not mail", now=NOW) is intake.Outcome.UNREADABLE
        assert await tickets(conn) == []

        once = mail("Router broken", mail_id="<same@example.at>")
        assert await intake.take(conn, inbox, once, now=NOW) is intake.Outcome.CREATED
        assert await intake.take(conn, inbox, once, now=NOW) is intake.Outcome.DUPLICATE
        [t] = await tickets(conn)
        assert t["n"] == 1

        # a vacation notice on the ticket is kept, marked, and leaves the status alone
        await store.set_fields(conn, t["id"], {"status": "waiting_customer"}, now=NOW)
        vacation = mail(f"Out of office: [#{t['id']}]", "I am away", headers="Auto-Submitted: auto-replied\r\n")
        assert await intake.take(conn, inbox, vacation, now=NOW) is intake.Outcome.REPLIED
        line = await conn.fetchrow("SELECT author, problems FROM ticket_messages ORDER BY id DESC LIMIT 1")
        assert line is not None
        assert line["author"] == "system" and any("auto-replied" in p for p in line["problems"])
        assert (await tickets(conn))[0]["status"] == "waiting_customer"


async def test_attachments_are_kept_safely_and_a_huge_one_is_dropped_with_a_reason(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        pid = await partner(conn)
        await customer(conn, pid, 1, email="anna@example.at")
        inbox = await make_inbox(conn, pid)
        boundary = "b0undary"
        big = "A" * (21 * 1024 * 1024)  # over inbound.Limits.max_attachment_bytes (20 MiB), as 7bit text
        raw = (
            f"From: anna@example.at\r\nTo: support@isp.example\r\nSubject: Logs\r\nMessage-ID: <att@example.at>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary={boundary}\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nSee attached\r\n"
            f"--{boundary}\r\nContent-Type: text/html\r\nContent-Disposition: attachment; filename=\"../../evil.html\""
            f"\r\n\r\n<script>alert(1)</script>\r\n"
            f"--{boundary}\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=big.txt\r\n\r\n"
            f"{big}\r\n--{boundary}--\r\n").encode()
        assert await intake.take(conn, inbox, raw, now=NOW) is intake.Outcome.CREATED
        [a] = await conn.fetch("SELECT file_name, declared_type, served_type, size, data FROM ticket_attachments")
        assert "/" not in a["file_name"] and ".." not in a["file_name"] and a["file_name"].endswith(".html")
        assert (a["declared_type"], a["served_type"]) == ("text/html", "application/octet-stream")
        problems = await conn.fetchval("SELECT problems FROM ticket_messages")
        assert any("big.txt" in p for p in problems), problems


async def test_a_mail_arriving_while_the_reader_idles_is_a_ticket_in_seconds(pool: asyncpg.Pool,
                                                                              dovecot: Dovecot) -> None:
    user = dovecot.user()
    async with pool.acquire() as conn:
        pid = await partner(conn)
        await customer(conn, pid, 1, email="anna@example.at")
        inbox = await make_inbox(conn, pid, user, port=dovecot.port)
    await deliver(dovecot, user, mail("Already there"))
    stop = asyncio.Event()
    reader = asyncio.create_task(intake.read(pool, inbox, stop=stop, seconds=30))
    try:
        async with pool.acquire() as conn:
            await _until(conn, 1)
            await asyncio.sleep(0.5)  # idling by now
            sent = time.monotonic()
            await deliver(dovecot, user, mail("Arrived later"))
            await _until(conn, 2)
            took = time.monotonic() - sent
    finally:
        stop.set()
        done = await asyncio.wait_for(reader, 10)
    assert done.error == "" and done.outcomes == {"created": 2}
    assert took < 5.0, f"{took:.2f} s from APPEND to ticket"  # the bound; IDLE makes it well under a second
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT last_uid, uidvalidity, last_error, last_checked_at FROM ticket_inboxes")
        assert row is not None
        assert row["last_uid"] == 2 and row["uidvalidity"] > 0 and row["last_error"] == ""
    # read again from where it got to: nothing new, nothing twice
    again = await intake.read(pool, intake.inbox_of(await _inbox_row(pool), KEYRING, timeout=5.0),
                              stop=asyncio.Event(), seconds=0)
    assert again.outcomes == {}


async def test_an_inbox_that_refuses_the_login_records_why(pool: asyncpg.Pool, dovecot: Dovecot) -> None:
    user = dovecot.user()
    async with pool.acquire() as conn:
        pid = await partner(conn)
        inbox = await make_inbox(conn, pid, (user[0], "wrong"), port=dovecot.port)
    done = await intake.read(pool, inbox, stop=asyncio.Event(), seconds=0)
    assert done.error
    async with pool.acquire() as conn:
        assert (await conn.fetchval("SELECT last_error FROM ticket_inboxes")) == done.error


async def _inbox_row(pool: asyncpg.Pool) -> asyncpg.Record:
    async with pool.acquire() as conn:
        return (await intake_store.inboxes(conn))[0]


async def _until(conn: Connection, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while await conn.fetchval("SELECT count(*) FROM tickets") < count:
        assert time.monotonic() < deadline, f"no ticket {count} after {timeout} s"
        await asyncio.sleep(0.05)



async def test_every_inbox_is_read_at_once_and_one_that_cannot_be_opened_says_why(pool: asyncpg.Pool,
                                                                                  dovecot: Dovecot) -> None:
    first, second = dovecot.user(), dovecot.user()
    async with pool.acquire() as conn:
        pid = await partner(conn)
        await customer(conn, pid, 1, email="anna@example.at")
        for user in (first, second):  # the same name twice: inboxes are told apart by address
            await conn.execute(
                "INSERT INTO ticket_inboxes (partner_id, name, address, host, port, security, username, password) "
                "VALUES ($1, 'Support', $2, '127.0.0.1', $3, 'none', $4, $5)", pid, f"{user[0]}@isp.example",
                dovecot.port, user[0], KEYRING.seal(user[1], intake_store.PASSWORD_PURPOSE))
        await conn.execute("INSERT INTO ticket_inboxes (partner_id, name, address, host, username, password) "
                           "VALUES ($1, 'Broken', 'broken@isp.example', '127.0.0.1', 'x', 'lm1:not-sealed')", pid)
    for user in (first, second):
        await deliver(dovecot, user, mail(f"For {user[0]}"))
    done = await intake.read_all(pool, KEYRING, stop=asyncio.Event(), seconds=0)
    assert {a: dict(r.outcomes) for a, r in done.items()} == {
        f"{first[0]}@isp.example": {"created": 1}, f"{second[0]}@isp.example": {"created": 1},
        "broken@isp.example": {}}
    assert done["broken@isp.example"].error.startswith("the password cannot be opened")
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tickets") == 2
        assert (await conn.fetchval("SELECT last_error FROM ticket_inboxes WHERE name = 'Broken'")).startswith(
            "the password cannot be opened")


async def test_the_deny_list_is_read_once_per_batch_not_per_mail(pool: asyncpg.Pool, dovecot: Dovecot,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    user = dovecot.user()
    async with pool.acquire() as conn:
        pid = await partner(conn)
        await customer(conn, pid, 1, email="anna@example.at")
        inbox = await make_inbox(conn, pid, user, port=dovecot.port)
        await conn.execute("INSERT INTO ticket_denylist (inbox_id, field, match, pattern) VALUES "
                           "($1, 'subject', 'regex', '^cheap (pills|watches)'), ($1, 'subject', 'regex', '(a+)+')",
                           inbox.id)  # the second cannot be saved through the admin: never matches, left out
    for subject in ("Cheap pills", "Router broken", "cheap WATCHES", "aaaa"):
        await deliver(dovecot, user, mail(subject))
    reads: list[int] = []
    deny_rules = intake_store.deny_rules

    async def counted(conn: Connection, inbox_id: int) -> list[asyncpg.Record]:
        reads.append(inbox_id)
        return await deny_rules(conn, inbox_id)

    monkeypatch.setattr(intake_store, "deny_rules", counted)
    done = await intake.read(pool, inbox, stop=asyncio.Event(), seconds=0)
    assert dict(done.outcomes) == {"denied": 2, "created": 2} and done.error == ""
    assert reads == [inbox.id]  # one batch of four mails: read once
    async with pool.acquire() as conn:
        assert [t["subject"] for t in await tickets(conn)] == ["Router broken", "aaaa"]
        assert [r.pattern for r in await intake.deny_list(conn, inbox.id)] == ["^cheap (pills|watches)"]
