"""MailTransport against a real SMTP server on 127.0.0.1 (aiosmtpd, tests/fakes/smtpserver.py):
STARTTLS with AUTH, implicit TLS and plain; the server's refusals mapped to temporary and
permanent failures with its own words; an outage that ends without a new transport; one
connection for many messages, and how fast they go over it."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from admin.notifications.mail import MailTransport
from admin.notifications.model import Attachment, MailSettings, Outgoing, PermanentFailure, TemporaryFailure
from tests.conftest import free_port
from tests.fakes.smtpserver import SmtpServer

USER, PASSWORD = "mailer", "s3cret-pässword"


def outgoing(n: int = 1, **changes: object) -> Outgoing:
    fields: dict[str, object] = {"message_id": n, "channel": "email", "recipient": "Anna Bauer <anna@example.at>",
                                 "subject": f"Ihre Rechnung {n}", "body": f"Grüße, Rechnung {n}\n"}
    fields.update(changes)
    return Outgoing(**fields)  # type: ignore[arg-type]


def settings_for(server: SmtpServer, **changes: object) -> MailSettings:
    security = server.tls
    settings = MailSettings(host=server.host, port=server.port, security=security,
                            username=USER if server.auth else "", password=PASSWORD if server.auth else "",
                            sender="Lastmile Netz <billing@isp.example>", ca_file=server.ca_file, timeout=5.0)
    return replace(settings, **changes)  # type: ignore[arg-type]


@pytest.fixture
async def starttls() -> AsyncIterator[SmtpServer]:
    async with SmtpServer(tls="starttls", auth=(USER, PASSWORD)) as server:
        yield server


@pytest.fixture
async def plain() -> AsyncIterator[SmtpServer]:
    async with SmtpServer() as server:
        yield server


async def test_starttls_with_auth_delivers_and_the_server_reads_it_back(starttls: SmtpServer) -> None:
    transport = MailTransport(settings_for(starttls))
    try:
        pdf = Attachment("invoice-1.pdf", "application/pdf", b"%PDF-1.7 test\n%%EOF\n")
        delivered = await transport.send(outgoing(1, bcc=("archive@isp.example",), attachments=(pdf,)))
    finally:
        await transport.close()
    [got] = await starttls.wait_for(1)
    assert got.tls and got.login == USER
    assert got.mail_from == "billing@isp.example"
    assert got.rcpt_tos == ("anna@example.at", "archive@isp.example")
    assert got.message["Subject"] == "Ihre Rechnung 1"
    assert got.message["To"] == "Anna Bauer <anna@example.at>"
    assert "Bcc" not in got.message and b"archive@" not in got.raw
    assert delivered.provider_id == got.message["Message-ID"]
    assert re.fullmatch(r"<lastmile\.1\.[0-9a-f]{8}@isp\.example>", delivered.provider_id)
    assert re.fullmatch(r"250 2\.0\.0 Ok: queued as [0-9A-F]+", delivered.answer)
    [file] = got.message.iter_attachments()
    assert file.get_filename() == "invoice-1.pdf" and file.get_content() == pdf.data


async def test_implicit_tls_with_auth() -> None:
    async with SmtpServer(tls="tls", auth=(USER, PASSWORD)) as server:
        transport = MailTransport(settings_for(server))
        await transport.send(outgoing(7))
        await transport.close()
        [got] = server.messages
    assert got.tls and got.login == USER and got.message["Subject"] == "Ihre Rechnung 7"


async def test_plain_without_auth(plain: SmtpServer) -> None:
    transport = MailTransport(settings_for(plain))
    await transport.send(outgoing(3))
    await transport.close()
    [got] = plain.messages
    assert not got.tls and got.login == "" and got.rcpt_tos == ("anna@example.at",)


async def test_the_certificate_is_verified_unless_told_not_to(starttls: SmtpServer) -> None:
    untrusted = MailTransport(settings_for(starttls, ca_file=""))  # the system's CAs do not know the test CA
    with pytest.raises(TemporaryFailure, match=r"(?i)certificate verify failed") as caught:
        await untrusted.send(outgoing())
    assert "\n" not in str(caught.value)
    trusting = MailTransport(settings_for(starttls, ca_file="", verify=False))
    await trusting.send(outgoing())
    await trusting.close()
    assert len(starttls.messages) == 1


async def test_a_ca_file_that_cannot_be_read_is_temporary(starttls: SmtpServer) -> None:
    transport = MailTransport(settings_for(starttls, ca_file="/nonexistent/ca.pem"))
    wanted = re.escape("the CA file '/nonexistent/ca.pem' of the mail settings cannot be read")
    with pytest.raises(TemporaryFailure, match=wanted):
        await transport.send(outgoing())
    assert starttls.connections == 0


async def test_starttls_required_but_not_offered_is_temporary(plain: SmtpServer) -> None:
    transport = MailTransport(settings_for(plain, security="starttls"))
    with pytest.raises(TemporaryFailure, match=r"(?i)starttls"):
        await transport.send(outgoing())


async def test_a_4xx_is_temporary_and_the_connection_carries_the_next(starttls: SmtpServer) -> None:
    transport = MailTransport(settings_for(starttls))
    starttls.fail(451, "4.3.0 Greylisted, try again in 5 minutes", stage="rcpt")
    with pytest.raises(TemporaryFailure) as caught:
        await transport.send(outgoing(1))
    assert str(caught.value) == "RCPT TO <anna@example.at>: 451 4.3.0 Greylisted, try again in 5 minutes"
    assert caught.value.answer == "451 4.3.0 Greylisted, try again in 5 minutes"
    starttls.fail(452, "4.2.2 Mailbox full", stage="data")
    with pytest.raises(TemporaryFailure, match=r"^DATA: 452 4\.2\.2 Mailbox full$"):
        await transport.send(outgoing(2))
    await transport.send(outgoing(3))
    await transport.close()
    assert [m.message["Subject"] for m in starttls.messages] == ["Ihre Rechnung 3"]
    assert starttls.connections == 1


@pytest.mark.parametrize("code, text, stage", [
    (550, "5.1.1 <anna@example.at>: Recipient address rejected: User unknown", "rcpt"),
    (553, "5.1.3 Bad recipient address syntax", "rcpt"),
    (552, "5.3.4 Message size exceeds fixed limit", "data"),
    (554, "5.7.1 Message rejected as spam", "data"),
])
async def test_a_5xx_for_the_recipient_or_the_data_is_permanent(plain: SmtpServer, code: int, text: str,
                                                                  stage: str) -> None:
    transport = MailTransport(settings_for(plain))
    plain.fail(code, text, stage=stage)  # type: ignore[arg-type]
    with pytest.raises(PermanentFailure) as caught:
        await transport.send(outgoing(1))
    assert f"{code} {text}" in str(caught.value) and "\n" not in str(caught.value)
    await transport.send(outgoing(2))  # RSET: the connection is good for the next one
    await transport.close()
    assert len(plain.messages) == 1 and plain.connections == 1


async def test_a_refused_sender_is_temporary_it_is_the_settings(plain: SmtpServer) -> None:
    transport = MailTransport(settings_for(plain))
    plain.fail(553, "5.7.1 Sender address rejected: not owned by user", stage="mail")
    with pytest.raises(TemporaryFailure, match=r"refused the sender: MAIL FROM <billing@isp.example>: 553 5.7.1"):
        await transport.send(outgoing())
    await transport.close()


async def test_one_refused_address_of_several_and_a_refused_bcc_do_not_stop_the_message(plain: SmtpServer) -> None:
    transport = MailTransport(settings_for(plain))
    plain.fail(550, "5.1.1 User unknown", times=1, stage="rcpt")
    delivered = await transport.send(outgoing(1, recipient="gone@example.at, anna@example.at"))
    assert "gone@example.at refused: 550 5.1.1 User unknown" in delivered.answer
    plain.fail(550, "5.1.1 User unknown", times=2, stage="rcpt")
    with pytest.raises(PermanentFailure, match=r"every recipient was refused: gone@example.at refused: 550"):
        await transport.send(outgoing(2, recipient="gone@example.at, gone2@example.at"))
    plain.refuse("gone@isp.example")
    delivered = await transport.send(outgoing(3, recipient="anna@example.at", bcc=("gone@isp.example",)))
    assert delivered.answer.startswith("250 ") and "BCC gone@isp.example refused: 550" in delivered.answer
    await transport.close()
    assert [m.rcpt_tos for m in plain.messages] == [("anna@example.at",), ("anna@example.at",)]


async def test_a_wrong_password_is_temporary_and_says_the_credentials_were_refused(starttls: SmtpServer) -> None:
    transport = MailTransport(settings_for(starttls, password="wrong"))
    with pytest.raises(TemporaryFailure) as caught:
        await transport.send(outgoing())
    assert str(caught.value) == (f"the server at 127.0.0.1:{starttls.port} refused the credentials for 'mailer': "
                                 "535 5.7.8 Authentication credentials invalid")
    assert "wrong" not in str(caught.value)


async def test_no_username_where_auth_is_required_is_temporary(starttls: SmtpServer) -> None:
    transport = MailTransport(settings_for(starttls, username="", password=""))
    with pytest.raises(TemporaryFailure, match=r"wants AUTH.*530 5.7.0 Authentication required"):
        await transport.send(outgoing())
    await transport.close()


async def test_an_outage_is_temporary_and_the_same_transport_sends_after_it(starttls: SmtpServer) -> None:
    transport = MailTransport(settings_for(starttls))
    await transport.send(outgoing(1))
    await starttls.stop()
    with pytest.raises(TemporaryFailure, match=f"cannot connect to 127.0.0.1:{starttls.port}") as caught:
        await transport.send(outgoing(2))
    assert "\n" not in str(caught.value)
    await starttls.start()
    await transport.send(outgoing(3))
    await starttls.stop()  # the server drops the kept connection; it comes back on the same port
    await starttls.start()
    await transport.send(outgoing(4))
    await transport.close()
    assert [m.message["Subject"] for m in starttls.messages] == ["Ihre Rechnung 1", "Ihre Rechnung 3",
                                                                 "Ihre Rechnung 4"]
    assert starttls.connections == 3


async def test_a_refused_connection_is_temporary() -> None:
    port = free_port()
    transport = MailTransport(MailSettings(host="127.0.0.1", port=port, security="none", sender="a@isp.example"))
    with pytest.raises(TemporaryFailure, match=f"cannot connect to 127.0.0.1:{port}"):
        await transport.send(outgoing())


async def test_a_silent_server_times_out_as_temporary() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never greets
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = MailTransport(MailSettings(host="127.0.0.1", port=port, security="none", sender="a@isp.example",
                                           timeout=0.3))
    started = time.monotonic()
    try:
        with pytest.raises(TemporaryFailure, match=r"timed out after 0\.3 s|did not answer within 0\.3 s"):
            await transport.send(outgoing())
    finally:
        server.close()
        await server.wait_closed()
    assert time.monotonic() - started < 2.0


async def test_concurrent_sends_share_the_connection(plain: SmtpServer) -> None:
    transport = MailTransport(settings_for(plain))
    delivered = await asyncio.gather(*(transport.send(outgoing(n)) for n in range(1, 21)))
    await transport.close()
    assert len({d.provider_id for d in delivered}) == 20
    assert sorted(m.message["Subject"] for m in plain.messages) == sorted(f"Ihre Rechnung {n}" for n in range(1, 21))
    assert plain.connections == 1


@pytest.mark.parametrize("tls", ["none", "starttls"])
async def test_500_messages_over_one_connection(tls: str) -> None:
    async with SmtpServer(tls=tls, auth=(USER, PASSWORD)) as server:  # type: ignore[arg-type]
        transport = MailTransport(settings_for(server))
        await transport.send(outgoing(0))  # connect (and TLS, AUTH) outside the timing
        started = time.perf_counter()
        for n in range(1, 501):
            await transport.send(outgoing(n, html=f"<p>Rechnung {n}</p>"))
        elapsed = time.perf_counter() - started
        await transport.close()
        assert len(server.messages) == 501 and server.connections == 1 and transport.connections == 1
    rate = 500 / elapsed
    print(f"\n{tls}: 500 messages in {elapsed:.2f} s, {rate:.0f}/s (client and server in one process)")
    assert rate > 200  # ~500/s here, where the server shares the process; the bench measures 300/s against its own
