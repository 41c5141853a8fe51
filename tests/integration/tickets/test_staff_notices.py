"""The helpdesk's staff notices against a real PostgreSQL (and, end to end, a real SMTP server on
127.0.0.1, tests/fakes/smtpserver.py), with fixed clocks: a new ticket of a group nobody is
assigned in tells every member once, a message on a ticket tells its assignee and watchers but
never its own author, disabled and address-less administrators are left out, a machine's mail
tells nobody; the notices and a reply with its CC as a real Cc header go out through deliver."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from admin.auth.store import Connection
from admin.notifications import deliver
from admin.notifications.mail import MailTransport
from admin.notifications.model import MailSettings, Outgoing
from admin.tickets import intake, intake_store, store
from admin.tickets.automation import Author
from daemons import db
from daemons.secrets import Keyring
from tests.db.notifications_data import at, customer, partner, settings
from tests.fakes.smtpserver import SmtpServer

NOW = at("2026-12-01 09:00")  # a Tuesday, 10:00 in Vienna
KEYRING = Keyring(secrets.token_bytes(32))
SENDER = "Main Net <support@main.example>"


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(db_url, min_size=1, max_size=4, init=db.init_connection)
    try:
        yield p
    finally:
        await p.close()


async def admin(conn: Connection, login: str, *, email: str | None = "", enabled: bool = True,
                partner_id: int | None = None) -> int:
    """An administrator (e-mail ``<login>@isp.example`` unless told; None: none)."""
    role = await conn.fetchval("SELECT id FROM admin_roles WHERE builtin = 'engineer'")
    value: int = await conn.fetchval(
        "INSERT INTO administrators (login, name, email, password_hash, role_id, enabled, partner_id) "
        "VALUES ($1, initcap($1), $2, 'x', $3, $4, $5) RETURNING id",
        login, f"{login}@isp.example" if email == "" else email, role, enabled, partner_id)
    return value


async def group(conn: Connection, mode: str, members: list[int]) -> int:
    gid: int = await conn.fetchval("INSERT INTO ticket_groups (name, assign_mode) VALUES ($1, $2) RETURNING id",
                                   f"{mode} {secrets.token_hex(3)}", mode)
    await conn.executemany("INSERT INTO ticket_group_members (group_id, administrator_id) VALUES ($1, $2)",
                           [(gid, a) for a in members])
    return gid


async def notices(conn: Connection, ticket_id: int | None = None) -> list[asyncpg.Record]:
    """The staff notices (of one ticket's messages), oldest first."""
    return list(await conn.fetch(
        "SELECT n.*, m.ticket_id FROM messages n JOIN ticket_messages m "
        "ON m.id = split_part(n.cause, ':', 2)::bigint WHERE n.kind = 'ticket_staff' "
        "AND ($1::bigint IS NULL OR m.ticket_id = $1) ORDER BY n.id", ticket_id))


def told(rows: list[asyncpg.Record]) -> list[str]:
    return sorted(r["recipient"] for r in rows)


async def test_a_new_ticket_of_a_nobody_group_tells_every_member_who_can_be_told_once(conn: Connection) -> None:
    pid, other = await partner(conn), await partner(conn, "Other")
    cid = await customer(conn, pid, 1)
    ann, bob = await admin(conn, "ann"), await admin(conn, "bob", partner_id=pid)
    cat = await admin(conn, "cat", email=None)
    dan = await admin(conn, "dan", email="  ")
    eve = await admin(conn, "eve", enabled=False)
    fay = await admin(conn, "fay", partner_id=other)  # sees only the other partner's tickets
    gid = await group(conn, "nobody", [ann, bob, cat, dan, eve, fay])
    new = store.NewTicket(subject="No internet", body="Since <b>today</b>", source="email", partner_id=pid,
                          customer_id=cid, requester_email="c1@example.com", group_id=gid, mail_id="<m1@c1.example>")
    async with conn.transaction():
        made = await store.create_ticket(conn, new, now=NOW)
    assert made is not None and made.assignee_id is None
    rows = await notices(conn)
    assert told(rows) == ["ann@isp.example", "bob@isp.example"]
    for r, who in zip(rows, (ann, bob), strict=True):
        assert r["cause"] == f"ticket_message:{made.message_id}:administrator:{who}"
        assert (r["channel"], r["partner_id"], r["customer_id"], r["status"], r["send_at"]) == (
            "email", pid, None, "scheduled", NOW)
        assert (r["body"], r["subject"], r["bcc"], r["cc"], r["created_by"]) == (
            "Since <b>today</b>", "", "", "", "tickets")
    # again: the same mail makes nothing, and queueing the same notices again neither
    assert await store.create_ticket(conn, new, now=NOW) is None
    assert await store.queue_staff_notices(conn, made.ticket_id, made.message_id, made.notify, now=NOW) == []
    assert len(await notices(conn)) == 2

    # 'shift' with nobody on shift now is 'nobody': everyone told; a staff member opening it is not
    shift_group = await group(conn, "shift", [ann, bob])
    await conn.execute("INSERT INTO ticket_shifts (group_id, administrator_id, weekdays, starts, ends) "
                       "VALUES ($1, $2, '{5,6}', '08:00', '16:00')", shift_group, ann)  # weekends only
    async with conn.transaction():
        shifted = await store.create_ticket(conn, store.NewTicket(
            subject="Slow", body="Very", source="admin", partner_id=pid, customer_id=cid, author=Author.STAFF,
            administrator_id=bob, group_id=shift_group), now=NOW)
    assert shifted is not None and shifted.assignee_id is None and set(shifted.notify) == {ann, bob}
    assert told(await notices(conn, shifted.ticket_id)) == ["ann@isp.example"]

    # 'random': the member it went to is told, the others not
    random_group = await group(conn, "random", [ann, bob])
    async with conn.transaction():
        picked = await store.create_ticket(conn, store.NewTicket(
            subject="Bill", body="Too high", source="portal", partner_id=pid, customer_id=cid,
            group_id=random_group), now=NOW)
    assert picked is not None and picked.assignee_id in (ann, bob)
    assert told(await notices(conn, picked.ticket_id)) == [f"{'ann' if picked.assignee_id == ann else 'bob'}"
                                                           "@isp.example"]


async def test_messages_tell_the_assignee_and_watchers_never_their_own_author(conn: Connection) -> None:
    pid = await partner(conn)
    cid = await customer(conn, pid, 1)
    ann, bob, cat = await admin(conn, "ann"), await admin(conn, "bob"), await admin(conn, "cat")
    off = await admin(conn, "off", enabled=False)
    made = await store.create_ticket(conn, store.NewTicket(
        subject="No internet", body="Since today", source="portal", partner_id=pid, customer_id=cid,
        assignee_id=ann), now=NOW)
    assert made is not None
    tid = made.ticket_id
    assert await notices(conn) == []  # given an assignee, no group: nobody told of the new ticket
    await conn.executemany("INSERT INTO ticket_watchers (ticket_id, administrator_id) VALUES ($1, $2)",
                           [(tid, bob), (tid, cat), (tid, off)])

    async def add(author: Author, body: str, by: int | None = None) -> list[str]:
        async with conn.transaction():
            mid = await store.add_message(conn, tid, store.NewMessage(author, body, by), now=NOW)
        assert mid is not None
        return told([r for r in await notices(conn, tid) if r["cause"].startswith(f"ticket_message:{mid}:")])

    assert await add(Author.CUSTOMER, "Still down") == ["ann@isp.example", "bob@isp.example", "cat@isp.example"]
    assert await add(Author.STAFF, "Restart it", bob) == ["ann@isp.example", "cat@isp.example"]
    assert await add(Author.NOTE, "Line looks fine", ann) == ["bob@isp.example", "cat@isp.example"]
    assert await add(Author.SYSTEM, "Rule applied") == []
    await conn.execute("UPDATE tickets SET assignee_id = NULL WHERE id = $1", tid)
    await conn.execute("DELETE FROM ticket_watchers WHERE administrator_id = $1", cat)
    assert await add(Author.CUSTOMER, "Hello?") == ["bob@isp.example"]
    # a note is staff's only: no reply to the customer was queued for it
    assert await conn.fetchval("SELECT count(*) FROM messages WHERE kind = 'ticket_reply'") == 0


def mail(subject: str, body: str = "Hello", *, headers: str = "") -> bytes:
    return (f"From: Anna Bauer <anna@example.at>\r\nTo: support@isp.example\r\nSubject: {subject}\r\n"
            f"Message-ID: <{secrets.token_hex(6)}@example.at>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0100\r\n"
            f"{headers}\r\n{body}\r\n").encode()


async def test_a_machines_mail_tells_nobody_a_persons_does(conn: Connection) -> None:
    pid = await partner(conn)
    await customer(conn, pid, 1, email="anna@example.at")
    ann = await admin(conn, "ann")
    gid = await group(conn, "nobody", [ann])
    await conn.execute(
        "INSERT INTO ticket_inboxes (partner_id, name, address, host, port, security, username, password, "
        "group_id) VALUES ($1, 'Support', 'support@isp.example', '127.0.0.1', 143, 'none', 'u', $2, $3)",
        pid, KEYRING.seal("p", intake_store.PASSWORD_PURPOSE), gid)
    inbox = intake.inbox_of((await intake_store.inboxes(conn))[-1], KEYRING)
    vacation = mail("Out of office", "I am away", headers="Auto-Submitted: auto-replied\r\n")
    assert await intake.take(conn, inbox, vacation, now=NOW) is intake.Outcome.CREATED
    assert await notices(conn) == []
    assert await intake.take(conn, inbox, mail("No internet"), now=NOW) is intake.Outcome.CREATED
    [notice] = await notices(conn)
    tid = notice["ticket_id"]
    await conn.execute("UPDATE tickets SET assignee_id = $2 WHERE id = $1", tid, ann)
    # the auto-reply on the ticket is a system line: the assignee is not told; a person's reply is
    assert await intake.take(conn, inbox, mail(f"Re: [#{tid}] No internet", "Away", headers="Auto-Submitted: "
                                               "auto-replied\r\n"), now=NOW) is intake.Outcome.REPLIED
    assert len(await notices(conn, tid)) == 1
    assert await intake.take(conn, inbox, mail(f"Re: [#{tid}] No internet", "Still down"),
                             now=NOW) is intake.Outcome.REPLIED
    assert [r["body"].strip() for r in await notices(conn, tid)] == ["Hello", "Still down"]


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    async with SmtpServer() as server:
        yield server


async def test_the_notices_and_a_reply_with_its_cc_go_out_through_smtp(pool: asyncpg.Pool, smtp: SmtpServer) -> None:
    async with pool.acquire() as conn:
        pid = await partner(conn)
        await settings(conn, None, smtp_host=smtp.host, smtp_port=smtp.port, smtp_security="none", mail_from=SENDER)
        cid = await customer(conn, pid, 1, email="anna@example.at")
        ann, bob = await admin(conn, "ann"), await admin(conn, "bob")
        await admin(conn, "cat", enabled=False)
        gid = await group(conn, "nobody", [ann, bob])
        async with conn.transaction():
            made = await store.create_ticket(conn, store.NewTicket(
                subject="Router <dead> & blinking", body="The light is <b>red</b> & blinking.\n\nAnna",
                source="email", partner_id=pid, customer_id=cid, requester_email="anna@example.at",
                requester_name="Anna Bauer", group_id=gid, cc=("boss@example.at", "Office <office@example.at>"),
                mail_id="<first@example.at>"), now=NOW)
        assert made is not None
        tid = made.ticket_id
        async with conn.transaction():
            reply = await store.add_message(conn, tid, store.NewMessage(Author.STAFF, "Please restart it.", ann),
                                            now=NOW)
            assert reply is not None
            outgoing = await store.queue_reply(conn, tid, reply, domain="helpdesk.main.example", now=NOW)
        row = await conn.fetchrow("SELECT cc, bcc FROM messages WHERE id = $1", outgoing)
        assert row is not None and (row["cc"], row["bcc"]) == ("boss@example.at, Office <office@example.at>", "")

    done = await deliver.deliver(pool, now=NOW, admin_url="https://admin.main.example/")
    assert (done.sent, done.failed, done.retried, done.cancelled) == (3, 0, 0, 0)
    by_to = {m.message["To"]: m for m in smtp.messages}
    assert set(by_to) == {"anna@example.at", "ann@isp.example", "bob@isp.example"}

    answer = by_to["anna@example.at"]
    assert answer.message["Cc"] == "boss@example.at, Office <office@example.at>"
    assert answer.rcpt_tos == ("anna@example.at", "boss@example.at", "office@example.at")
    assert "Bcc" not in answer.message and "Auto-Submitted" not in answer.message

    for who in ("ann@isp.example", "bob@isp.example"):
        notice = by_to[who]
        assert notice.rcpt_tos == (who,) and notice.mail_from == "support@main.example"
        assert "Cc" not in notice.message
        assert notice.message["Subject"] == f"[#{tid}] New ticket: Router <dead> & blinking"
        assert notice.message["Auto-Submitted"] == "auto-generated"
        html = notice.message.get_body(("html",))
        text = notice.message.get_body(("plain",))
        assert html is not None and text is not None
        page, words = html.get_content(), text.get_content()
        assert "The light is &lt;b&gt;red&lt;/b&gt; &amp; blinking." in page and "<b>red" not in page
        assert "Router &lt;dead&gt; &amp; blinking" in page
        assert f'href="https://admin.main.example/admin/tickets/{tid}"' in page
        assert "C000001 Customer 1" in words and "The light is <b>red</b> & blinking." in words
        assert f"https://admin.main.example/admin/tickets/{tid}" in words
    async with pool.acquire() as conn:
        sent = await notices(conn, tid)
    assert [r["status"] for r in sent] == ["sent", "sent"]
    assert all(r["subject"] == f"[#{tid}] New ticket: Router <dead> & blinking" for r in sent)


async def test_a_refused_cc_is_noted_and_does_not_stop_the_reply(smtp: SmtpServer) -> None:
    transport = MailTransport(MailSettings(host=smtp.host, port=smtp.port, security="none", sender=SENDER))
    smtp.refuse("gone@example.at")
    try:
        delivered = await transport.send(Outgoing(
            message_id=1, channel="email", recipient="anna@example.at", subject="Re: [#1] No internet",
            body="Restart it.", cc=("gone@example.at, boss@example.at",), bcc=("archive@main.example",)))
    finally:
        await transport.close()
    [got] = smtp.messages
    assert got.rcpt_tos == ("anna@example.at", "boss@example.at", "archive@main.example")
    assert got.message["Cc"] == "gone@example.at, boss@example.at"
    assert "CC gone@example.at refused: 550" in delivered.answer
