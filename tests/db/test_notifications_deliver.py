"""Delivery against a real PostgreSQL, a real SMTP server and a real SMS gateway on 127.0.0.1
(tests/fakes), with fixed clocks: what is sent is saved, failures are retried or held, an outage
loses nothing and is not hammered, a notice whose cause went away is not sent."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import asyncpg
import pytest

from admin.auth.store import Connection
from admin.notifications import announce, deliver, scheduler, store
from admin.notifications.mail import MailTransport
from admin.notifications.model import Delivered, MailSettings, Outgoing
from daemons import db
from tests.db.notifications_data import at, customer, invoice, messages, partner, pay, rule, settings
from tests.fakes.smsgateway import SmsGateway
from tests.fakes.smtpserver import SmtpServer

NOW = at("2026-03-10 09:00")
SENDER = "Main Net <billing@main.example>"


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(db_url, min_size=1, max_size=4, init=db.init_connection)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    async with SmtpServer() as server:
        yield server


@pytest.fixture
async def gateway() -> AsyncIterator[SmsGateway]:
    async with SmsGateway() as g:
        yield g


async def _setup(conn: Connection, smtp: SmtpServer, gateway: SmsGateway | None = None) -> int:
    pid = await partner(conn)
    await settings(conn, None, smtp_host=smtp.host, smtp_port=smtp.port, smtp_security="none", mail_from=SENDER,
                   sms_url=gateway.url if gateway else "", sms_region="AT")
    return pid


async def _invoice_notices(conn: Connection, pid: int, cid: int, channels: list[str]) -> int:
    await rule(conn, "invoice", channels=channels, attach=True, subject="Invoice {{ document.number }}")
    inv, _ = await invoice(conn, cid, pid, dt.date(2026, 3, 1), dt.date(2026, 3, 15))
    ids = [r["id"] for r in await conn.fetch("SELECT id FROM events WHERE subject = 'invoice'")]
    await conn.execute("UPDATE events SET occurred_at = $1", NOW - dt.timedelta(minutes=5))
    assert await scheduler.document_notices(conn, ids, NOW) == len(channels)
    return inv


async def test_an_invoice_goes_by_email_sms_and_portal_and_what_was_sent_is_saved(
        pool: asyncpg.Pool, smtp: SmtpServer, gateway: SmsGateway) -> None:
    async with pool.acquire() as conn:
        pid = await _setup(conn, smtp, gateway)
        cid = await customer(conn, pid, 1, phone="0664 1234567", billing_email="books@c1.example")
        inv = await _invoice_notices(conn, pid, cid, ["email", "sms", "portal"])
        number = await conn.fetchval("SELECT number FROM documents WHERE id = $1", inv)
    sent_before = deliver.SENT.labels("email")._value.get()
    done = await deliver.deliver(pool, now=NOW)
    assert (done.sent, done.failed, done.retried, done.cancelled) == (3, 0, 0, 0)
    [mail] = smtp.messages
    assert mail.rcpt_tos == ("books@c1.example",)  # the billing email before the email
    assert mail.message["Subject"] == f"Invoice {number}"
    [attachment] = [p for p in mail.message.iter_attachments()]
    async with pool.acquire() as conn:
        kept = bytes(await conn.fetchval("SELECT pdf FROM document_files WHERE document_id = $1", inv))
        assert attachment.get_content() == kept and attachment.get_filename() == f"invoice-{number}.pdf"
        rows = {m["channel"]: m for m in await messages(conn)}
    [sms] = gateway.requests
    assert sms.fields["to"] == "+436641234567" and number in sms.fields["text"]
    assert rows["email"]["status"] == rows["sms"]["status"] == rows["portal"]["status"] == "sent"
    assert rows["email"]["recipient"] == "books@c1.example"
    assert rows["email"]["provider_id"] == mail.message["Message-ID"]
    assert rows["email"]["provider_answer"].startswith("250 ")
    assert rows["email"]["subject"] == f"Invoice {number}" and number in rows["email"]["body"]
    assert rows["sms"]["recipient"] == "0664 1234567" and rows["sms"]["provider_id"] == "sms-1"
    assert rows["portal"]["recipient"] == "" and number in rows["portal"]["body"]
    assert all(r["sent_at"] == NOW and r["attempts"] == 1 and r["lease_until"] is None for r in rows.values())
    assert deliver.SENT.labels("email")._value.get() == sent_before + 1
    # Sent is sent: nothing goes twice.
    assert (await deliver.deliver(pool, now=NOW + dt.timedelta(hours=1))).sent == 0
    assert len(smtp.messages) == 1 and len(gateway.requests) == 1


async def test_a_broken_template_and_a_550_fail_a_4xx_is_tried_again_later(
        pool: asyncpg.Pool, smtp: SmtpServer) -> None:
    async with pool.acquire() as conn:
        pid = await _setup(conn, smtp)
        broken = await customer(conn, pid, 1, language="de")
        refused = await customer(conn, pid, 2)
        later = await customer(conn, pid, 3)
        nobody = await customer(conn, pid, 4, email=None)
        await conn.execute("INSERT INTO message_templates (partner_id, kind, channel, language, body) "
                           "VALUES (NULL, 'announcement', 'email', 'de', '<p>{{ customer.nope }}</p>')")
        assert await announce.announce(conn, partner_id=pid, customer_ids=[broken, refused, later, nobody],
                                       channels=["email"], subject="Maintenance", body="Tonight 2-4 am.",
                                       marketing=False, created_by="ops", now=NOW) == 4
    smtp.refuse("c2@example.com")
    smtp.fail(451, "4.3.0 Try again later", stage="data")
    done = await deliver.deliver(pool, now=NOW)
    assert (done.sent, done.failed, done.retried) == (0, 3, 1)
    async with pool.acquire() as conn:
        got = {m["customer_id"]: m for m in await messages(conn)}
    assert got[broken]["status"] == "failed" and "does not render" in got[broken]["last_error"]
    assert "nope" in got[broken]["last_error"]
    assert got[refused]["status"] == "failed" and "550" in got[refused]["last_error"]
    assert got[nobody]["status"] == "failed" and got[nobody]["last_error"] == "the customer has no email address"
    assert got[later]["status"] == "scheduled" and got[later]["attempts"] == 1
    assert got[later]["send_at"] == NOW + dt.timedelta(minutes=1) and "451" in got[later]["last_error"]
    assert (await deliver.deliver(pool, now=NOW + dt.timedelta(seconds=59))).sent == 0  # not before its backoff
    assert (await deliver.deliver(pool, now=NOW + dt.timedelta(minutes=1))).sent == 1
    [mail] = smtp.messages
    text = mail.message.get_body(("plain",))
    assert mail.message["Subject"] == "Maintenance" and text is not None and "Tonight 2-4 am." in text.get_content()
    async with pool.acquire() as conn:
        [row] = await messages(conn, f"customer_id = {later}")
        assert (row["status"], row["attempts"], row["subject"], row["body"]) == (
            "sent", 2, "Maintenance", "Tonight 2-4 am.")  # an announcement keeps what was written
        # The admin's Retry: scheduled now, attempts kept; fixed, it goes.
        await conn.execute("DELETE FROM message_templates")
        assert await store.retry(conn, got[broken]["id"], NOW + dt.timedelta(minutes=2))
        assert not await store.retry(conn, row["id"], NOW)  # only a failed one
    assert (await deliver.deliver(pool, now=NOW + dt.timedelta(minutes=2))).sent == 1


async def test_out_of_attempts_a_temporary_failure_is_held_as_failed(pool: asyncpg.Pool, smtp: SmtpServer) -> None:
    async with pool.acquire() as conn:
        pid = await _setup(conn, smtp)
        cid = await customer(conn, pid, 1)
        await announce.announce(conn, partner_id=pid, customer_ids=[cid], channels=["email"], subject="S", body="B",
                                marketing=False, created_by="ops", now=NOW)
        await conn.execute("UPDATE messages SET attempts = $1", deliver.MAX_ATTEMPTS - 1)
    smtp.fail(452, "4.2.2 Mailbox full", stage="rcpt")
    assert (await deliver.deliver(pool, now=NOW)).failed == 1
    async with pool.acquire() as conn:
        [row] = await messages(conn)
    assert row["status"] == "failed" and "gave up after 10 attempts" in row["last_error"]
    assert [deliver.backoff(n).total_seconds() / 60 for n in (1, 2, 3, 9, 10, 30)] == [1, 2, 4, 256, 360, 360]


async def test_a_mail_server_outage_loses_nothing_and_is_not_hammered(pool: asyncpg.Pool, smtp: SmtpServer) -> None:
    async with pool.acquire() as conn:
        pid = await _setup(conn, smtp)
        ids = [await customer(conn, pid, n) for n in range(1, 6)]
        await announce.announce(conn, partner_id=pid, customer_ids=ids, channels=["email", "portal"], subject="S",
                                body="B", marketing=False, created_by="ops", now=NOW)
    await smtp.stop()
    done = await deliver.deliver(pool, now=NOW)
    assert (done.sent, done.retried, done.deferred, done.failed) == (5, 1, 4, 0)  # the portal's five went
    async with pool.acquire() as conn:
        mails = await messages(conn, "channel = 'email'")
    assert all(m["status"] == "scheduled" and m["send_at"] == NOW + dt.timedelta(minutes=1) for m in mails)
    assert [m["attempts"] for m in mails] == [1, 0, 0, 0, 0]  # one connection tried, the rest untouched
    assert all("cannot connect" in m["last_error"] for m in mails)
    assert (await deliver.deliver(pool, now=NOW + dt.timedelta(seconds=30))).handled == 0
    # Still down a minute later: one more try, the backoff doubles, nobody is failed.
    done = await deliver.deliver(pool, now=NOW + dt.timedelta(minutes=1))
    assert (done.retried, done.deferred) == (1, 4)
    async with pool.acquire() as conn:
        mails = await messages(conn, "channel = 'email'")
    assert {m["send_at"] for m in mails} == {NOW + dt.timedelta(minutes=3)}
    await smtp.start()
    done = await deliver.deliver(pool, now=NOW + dt.timedelta(minutes=3))
    assert done.sent == 5
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == [f"c{n}@example.com" for n in range(1, 6)]
    assert smtp.connections == 1


async def test_a_paid_invoice_cancels_its_reminder_and_an_opted_out_customer_gets_no_marketing(
        pool: asyncpg.Pool, smtp: SmtpServer) -> None:
    async with pool.acquire() as conn:
        pid = await _setup(conn, smtp)
        await rule(conn, "reminder_1", day=1, send_hour=0, channels=["email"])
        payer = await customer(conn, pid, 1)
        owes = await customer(conn, pid, 2)
        for cid in (payer, owes):
            await invoice(conn, cid, pid, dt.date(2026, 3, 1), dt.date(2026, 3, 5))
        assert (await scheduler.run_day(conn, NOW))["reminder_1"] == 2
        await pay(conn, payer, "30.00", dt.date(2026, 3, 10))  # before the reminder's hour came round
        opted = await customer(conn, pid, 3, opt_out=True)
        later = await customer(conn, pid, 4)
        assert await announce.announce(conn, partner_id=pid, customer_ids=[opted, later], channels=["email"],
                                       subject="Offer", body="Faster!", marketing=True, created_by="ops",
                                       now=NOW) == 1  # the opted-out one is skipped at once
        await conn.execute("UPDATE customers SET marketing_opt_out = true WHERE id = $1", later)
    done = await deliver.deliver(pool, now=NOW)
    assert (done.sent, done.cancelled) == (1, 2)
    assert [m.rcpt_tos for m in smtp.messages] == [("c2@example.com",)]
    async with pool.acquire() as conn:
        got = {m["customer_id"]: m for m in await messages(conn)}
    assert got[payer]["status"] == "cancelled" and got[payer]["last_error"] == "cancelled: the invoice was paid"
    assert got[later]["status"] == "cancelled" and "opted out" in got[later]["last_error"]
    assert opted not in got


async def test_a_worker_that_died_mid_batch_leaves_its_messages_to_go_again_after_the_lease(
        pool: asyncpg.Pool, smtp: SmtpServer) -> None:
    async with pool.acquire() as conn:
        pid = await _setup(conn, smtp)
        ids = [await customer(conn, pid, n) for n in range(1, 4)]
        await announce.announce(conn, partner_id=pid, customer_ids=ids, channels=["email"], subject="S", body="B",
                                marketing=False, created_by="ops", now=NOW)
        # A worker claimed them (lease 60 s) and died before any answer was recorded.
        assert len(await store.claim(conn, NOW, 10, NOW + dt.timedelta(seconds=60))) == 3
    assert (await deliver.deliver(pool, now=NOW + dt.timedelta(seconds=30))).handled == 0  # still leased
    done = await deliver.deliver(pool, now=NOW + dt.timedelta(seconds=61))
    assert (done.expired, done.sent) == (3, 3)
    async with pool.acquire() as conn:
        assert [m["attempts"] for m in await messages(conn)] == [2, 2, 2]


async def test_a_stop_ends_the_run_after_the_message_in_flight(pool: asyncpg.Pool, smtp: SmtpServer) -> None:
    async with pool.acquire() as conn:
        pid = await _setup(conn, smtp)
        ids = [await customer(conn, pid, n) for n in range(1, 6)]
        await announce.announce(conn, partner_id=pid, customer_ids=ids, channels=["email"], subject="S", body="B",
                                marketing=False, created_by="ops", now=NOW)
    stop = asyncio.Event()

    class Stopping:
        """A transport that asks the run to stop while its second message is in flight."""

        def __init__(self) -> None:
            self.inner = MailTransport(MailSettings(host=smtp.host, port=smtp.port, security="none", sender=SENDER))
            self.count = 0

        async def send(self, message: Outgoing) -> Delivered:
            self.count += 1
            if self.count == 2:
                stop.set()
            return await self.inner.send(message)

        async def close(self) -> None:
            await self.inner.close()

    done = await deliver.deliver(pool, now=NOW, stop=stop, transport=lambda channel, s: Stopping())
    assert (done.sent, done.deferred) == (2, 3)
    async with pool.acquire() as conn:
        rows = await messages(conn)
    assert [m["status"] for m in rows] == ["sent", "sent", "scheduled", "scheduled", "scheduled"]
    assert [m["attempts"] for m in rows] == [1, 1, 0, 0, 0] and all(m["send_at"] == NOW for m in rows[2:])


async def _ticket_reply(conn: Connection, pid: int, n: int, recipient: str, headers: dict[str, str], *,
                        customer_id: int | None = None, bcc: str = "") -> int:
    """A staff reply to a ticket as the helpdesk queues it: written, addressed, threaded."""
    mid: int = await conn.fetchval(
        "INSERT INTO messages (partner_id, customer_id, kind, channel, cause, recipient, bcc, subject, body, "
        "send_at, created_by, reply_headers) VALUES ($1, $2, 'ticket_reply', 'email', $3, $4, $5, $6, $7, $8, "
        "'anna', $9) RETURNING id", pid, customer_id, f"ticket_message:{n}", recipient, bcc,
        f"Re: No internet [#{n}]", f"Dear customer,\n\nreply {n}.\n\nAnna", NOW, headers)
    return mid


async def test_a_ticket_reply_goes_to_its_recipient_threaded_and_without_auto_submitted(
        pool: asyncpg.Pool, smtp: SmtpServer) -> None:
    headers = {"message_id": "<ticket-12.34@helpdesk.main.example>", "in_reply_to": "<first@mail.example>",
               "references": "<first@mail.example> <second@mail.example>"}
    async with pool.acquire() as conn:
        pid = await _setup(conn, smtp)
        cid = await customer(conn, pid, 1)  # c1@example.com
        unknown = await _ticket_reply(conn, pid, 34, "Stranger <stranger@elsewhere.example>", headers,
                                      bcc="colleague@elsewhere.example")
        known = await _ticket_reply(conn, pid, 35, "other@c1.example", {
            "message_id": "<ticket-12.35@helpdesk.main.example>"}, customer_id=cid)
        broken = await _ticket_reply(conn, pid, 36, "stranger@elsewhere.example", {
            **headers, "message_id": "<ticket-12.36@helpdesk.main.example>",
            "in_reply_to": "<first@mail.example>\r\nBcc: everyone@example.com"})
        await announce.announce(conn, partner_id=pid, customer_ids=[cid], channels=["email"], subject="Maintenance",
                                body="Tonight.", marketing=False, created_by="ops", now=NOW)
    done = await deliver.deliver(pool, now=NOW)
    assert (done.sent, done.failed, done.retried, done.cancelled) == (3, 1, 0, 0)
    got = {m.message["Message-ID"]: m for m in smtp.messages}
    reply = got["<ticket-12.34@helpdesk.main.example>"]
    assert reply.rcpt_tos == ("stranger@elsewhere.example", "colleague@elsewhere.example")
    assert reply.mail_from == "billing@main.example"
    message = reply.message
    assert message["From"] == SENDER and message["To"] == "Stranger <stranger@elsewhere.example>"
    assert message["Subject"] == "Re: No internet [#34]"
    assert message["In-Reply-To"] == "<first@mail.example>"
    assert message["References"] == "<first@mail.example> <second@mail.example>"
    assert "Auto-Submitted" not in message and "Bcc" not in message
    text = message.get_body(("plain",))
    assert text is not None and "reply 34." in text.get_content()
    # A customer's ticket: still to the address the reply was written to.
    other = got["<ticket-12.35@helpdesk.main.example>"]
    assert other.rcpt_tos == ("other@c1.example",) and "Auto-Submitted" not in other.message
    assert "In-Reply-To" not in other.message and "References" not in other.message
    # A notice beside them is unchanged.
    [notice] = [m for m in smtp.messages if m.message["Subject"] == "Maintenance"]
    assert notice.message["Auto-Submitted"] == "auto-generated"
    assert str(notice.message["Message-ID"]).startswith("<lastmile.")
    async with pool.acquire() as conn:
        rows = {m["id"]: m for m in await messages(conn)}
    assert rows[unknown]["status"] == "sent" and rows[unknown]["customer_id"] is None
    assert rows[unknown]["provider_id"] == "<ticket-12.34@helpdesk.main.example>"
    assert rows[unknown]["recipient"] == "Stranger <stranger@elsewhere.example>"
    assert (rows[unknown]["subject"], rows[unknown]["body"]) == (
        "Re: No internet [#34]", "Dear customer,\n\nreply 34.\n\nAnna")  # kept as written
    assert rows[known]["status"] == "sent" and rows[known]["provider_id"] == "<ticket-12.35@helpdesk.main.example>"
    assert rows[broken]["status"] == "failed" and rows[broken]["attempts"] == 1
    assert rows[broken]["last_error"] == "the In-Reply-To header of the reply holds a line break: refused " \
                                         "(header injection)"
    assert len(smtp.messages) == 3  # nothing of the broken one went
