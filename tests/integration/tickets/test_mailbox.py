"""Mailbox against a real dovecot on 127.0.0.1 (conftest.py): unread messages taken in UID order
and left unread until marked, the position kept across connections and reset by a new
UIDVALIDITY, SINCE, IDLE woken by another client's APPEND (timed: the issue wants mail in hand
within 5 s), polling without IDLE, STARTTLS and implicit TLS, and a reconnection after the
server restarts; what cannot work (a refused login, a missing folder) fails at once."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, date, datetime

import aioimaplib  # type: ignore[import-untyped]  # no type information shipped
import pytest

from admin.tickets.inbound import parse
from admin.tickets.mailbox import Mailbox, MailboxError, MailboxSettings, backoff, imap_date
from tests.conftest import free_port
from tests.integration.tickets.conftest import Dovecot, deliver, message


def settings_for(server: Dovecot, user: tuple[str, str], **changes: object) -> MailboxSettings:
    settings = MailboxSettings(host=server.host, port=server.port, security="none", username=user[0],
                               password=user[1], timeout=5.0, backoff=0.05, backoff_max=0.2)
    return replace(settings, **changes)  # type: ignore[arg-type]


async def take(box: Mailbox, mark: bool = True) -> list[tuple[int, str]]:
    """(UID, subject) of the new messages, each marked seen when ``mark``."""
    taken = []
    async for uid, raw in box.new_messages():
        taken.append((uid, parse(raw).subject))
        if mark:
            await box.mark_seen(uid)
    return taken


async def flags(server: Dovecot, user: tuple[str, str]) -> dict[int, bool]:
    """UID -> whether \\Seen is set, read by another client."""
    client = aioimaplib.IMAP4(host=server.host, port=server.port, timeout=5)
    await client.wait_hello_from_server()
    await client.login(*user)
    await client.select("INBOX")
    response = await client.uid("fetch", "1:*", "(UID FLAGS)")
    await client.logout()
    seen = {}
    for line in response.lines[:-1]:
        words = bytes(line).replace(b"(", b" ").replace(b")", b" ").split()
        if b"UID" in words:
            seen[int(words[words.index(b"UID") + 1])] = b"\\Seen" in words
    return seen


def test_backoff_doubles_up_to_its_cap() -> None:
    settings = MailboxSettings(host="h")
    assert [backoff(n, settings) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_imap_dates_are_english_whatever_the_locale() -> None:
    assert imap_date(date(2026, 12, 3)) == "3-Dec-2026"
    assert imap_date(date(2027, 5, 21)) == "21-May-2027"


async def test_unread_messages_are_taken_in_uid_order_and_left_unread_until_marked(dovecot: Dovecot) -> None:
    user = dovecot.user()
    await deliver(dovecot, user, message(1))
    await deliver(dovecot, user, message(2), seen=True)
    await deliver(dovecot, user, message(3))
    async with Mailbox(settings_for(dovecot, user)) as box:
        assert await take(box, mark=False) == [(1, "Frage 1"), (3, "Frage 3")]
        assert await flags(dovecot, user) == {1: False, 2: True, 3: False}  # fetched with BODY.PEEK[]
        await box.mark_seen(3)
        assert box.last_uid == 3
        assert await flags(dovecot, user) == {1: False, 2: True, 3: True}
        assert await take(box) == []  # nothing above UID 3
    async with Mailbox(settings_for(dovecot, user)) as box:  # from the start again: 1 is still unread
        assert await take(box) == [(1, "Frage 1")]
    async with Mailbox(settings_for(dovecot, user, unread_only=False)) as box:
        assert await take(box) == [(1, "Frage 1"), (2, "Frage 2"), (3, "Frage 3")]


async def test_without_mark_read_the_flags_stay_and_the_position_moves(dovecot: Dovecot) -> None:
    user = dovecot.user()
    await deliver(dovecot, user, message(1))
    async with Mailbox(settings_for(dovecot, user, mark_read=False)) as box:
        assert await take(box) == [(1, "Frage 1")]
        assert box.last_uid == 1
        assert await take(box) == []
    assert await flags(dovecot, user) == {1: False}


async def test_the_position_is_kept_and_a_new_uidvalidity_resets_it(dovecot: Dovecot) -> None:
    user = dovecot.user()
    for n in (1, 2, 3):
        await deliver(dovecot, user, message(n))
    settings = settings_for(dovecot, user, mark_read=False)
    async with Mailbox(settings) as box:
        validity = box.uidvalidity
        assert validity > 0
    async with Mailbox(settings, last_uid=2, uidvalidity=validity) as box:
        assert await take(box) == [(3, "Frage 3")]
    async with Mailbox(settings, last_uid=2, uidvalidity=validity + 1) as box:  # the folder was renumbered
        assert (box.last_uid, box.uidvalidity) == (0, validity)
        assert [uid for uid, _ in await take(box)] == [1, 2, 3]


async def test_since_takes_messages_received_on_or_after_a_day(dovecot: Dovecot) -> None:
    user = dovecot.user()
    await deliver(dovecot, user, message(1), when=datetime(2026, 1, 10, 12, 0, tzinfo=UTC))
    await deliver(dovecot, user, message(2), when=datetime(2026, 2, 1, 8, 0, tzinfo=UTC))
    await deliver(dovecot, user, message(3), when=datetime(2026, 3, 5, 8, 0, tzinfo=UTC))
    async with Mailbox(settings_for(dovecot, user, since=date(2026, 2, 1))) as box:
        assert await take(box) == [(2, "Frage 2"), (3, "Frage 3")]


async def test_idle_wakes_on_another_client_s_append_within_a_second(dovecot: Dovecot) -> None:
    user = dovecot.user()
    async with Mailbox(settings_for(dovecot, user)) as box:
        assert box.idles
        assert await take(box) == []
        waiting = asyncio.create_task(box.wait(10))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        appender = aioimaplib.IMAP4(host=dovecot.host, port=dovecot.port, timeout=5)
        await appender.wait_hello_from_server()
        await appender.login(*user)
        raw = message(1, "Störung")
        appended = time.perf_counter()
        assert (await appender.append(raw, mailbox="INBOX")).result == "OK"
        assert await asyncio.wait_for(waiting, 5) is True
        woke = time.perf_counter() - appended
        got = await take(box)
        in_hand = time.perf_counter() - appended
        await appender.logout()
    assert got == [(1, "Störung")]
    print(f"IDLE: woken {woke * 1000:.0f} ms after the APPEND, message in hand after {in_hand * 1000:.0f} ms")
    assert in_hand < 1.0


async def test_a_mail_that_arrives_while_the_last_one_is_marked_is_not_left_for_the_next_idle(
        dovecot: Dovecot) -> None:
    user = dovecot.user()
    await deliver(dovecot, user, message(1))
    async with Mailbox(settings_for(dovecot, user)) as box:
        async for uid, _ in box.new_messages():
            await deliver(dovecot, user, message(2))  # after the search, before the mark
            await asyncio.sleep(0.7)  # dovecot tells a session of changes after 0.5 s
            await box.mark_seen(uid)  # its answer carries "* 2 EXISTS", which aioimaplib alone drops
        started = time.perf_counter()
        assert await box.wait(10) is True  # at once, not at the end of an IDLE that hears nothing
        assert time.perf_counter() - started < 0.5
        assert [uid async for uid, _ in box.new_messages()] == [2]


async def test_idle_times_out_when_nothing_arrives(dovecot: Dovecot) -> None:
    user = dovecot.user()
    async with Mailbox(settings_for(dovecot, user)) as box:
        started = time.perf_counter()
        assert await box.wait(0.3) is False
        assert 0.3 <= time.perf_counter() - started < 1.5
        await deliver(dovecot, user, message(1))  # the connection still works after IDLE
        assert await take(box) == [(1, "Frage 1")]


async def test_without_idle_wait_sleeps_and_polling_finds_the_message(dovecot: Dovecot) -> None:
    user = dovecot.user()
    async with Mailbox(settings_for(dovecot, user, idle=False)) as box:
        assert not box.idles
        await deliver(dovecot, user, message(1))
        started = time.perf_counter()
        assert await box.wait(0.2) is False
        assert time.perf_counter() - started >= 0.2
        assert await take(box) == [(1, "Frage 1")]


async def test_starttls_and_implicit_tls(dovecot: Dovecot) -> None:
    user = dovecot.user()
    await deliver(dovecot, user, message(1))
    for security, port in (("starttls", dovecot.port), ("tls", dovecot.tls_port)):
        settings = settings_for(dovecot, user, security=security, port=port, ca_file=dovecot.ca_file,
                                mark_read=False)
        async with Mailbox(settings) as box:
            assert await take(box) == [(1, "Frage 1")], security


async def test_a_certificate_from_an_unknown_ca_is_refused(dovecot: Dovecot) -> None:
    user = dovecot.user()
    settings = settings_for(dovecot, user, security="tls", port=dovecot.tls_port)  # the system's CAs
    with pytest.raises(MailboxError, match=r"^the TLS handshake with 127\.0\.0\.1:\d+ failed: .*CERTIFICATE_VERIFY"):
        async with Mailbox(settings):
            pass
    async with Mailbox(replace(settings, verify=False)) as box:  # when the operator says so
        assert await take(box) == []


async def test_a_refused_login_fails_at_once(own_dovecot: Dovecot) -> None:
    # its own server: dovecot delays every later login from an address that failed one
    user = own_dovecot.user()
    started = time.perf_counter()
    with pytest.raises(MailboxError, match=r"^LOGIN on 127\.0\.0\.1:\d+: NO .*Authentication failed"):
        async with Mailbox(settings_for(own_dovecot, (user[0], "wrong"))):
            pass
    assert time.perf_counter() - started < 1  # no retries (the test server does not delay failures)


async def test_a_missing_folder_fails_at_once(dovecot: Dovecot) -> None:
    user = dovecot.user()
    with pytest.raises(MailboxError, match=r"^selecting 'Tickets' on 127\.0\.0\.1:\d+: NO Mailbox doesn't exist"):
        async with Mailbox(settings_for(dovecot, user, folder="Tickets")):
            pass


async def test_a_folder_name_with_a_line_break_is_refused_not_sent(dovecot: Dovecot) -> None:
    user = dovecot.user()
    with pytest.raises(MailboxError, match=r"^selecting 'INBOX\\r\\nA1 DELETE INBOX' on .*: NUL, CR and LF"):
        async with Mailbox(settings_for(dovecot, user, folder="INBOX\r\nA1 DELETE INBOX")):
            pass


async def test_nothing_listening_is_an_error_at_the_start() -> None:
    settings = MailboxSettings(host="127.0.0.1", port=free_port(), security="none", timeout=2.0)
    with pytest.raises(MailboxError, match=r"^cannot connect to 127\.0\.0\.1:\d+: ConnectionRefusedError"):
        async with Mailbox(settings):
            pass


async def test_a_restarted_server_is_reconnected_to(own_dovecot: Dovecot) -> None:
    user = own_dovecot.user()
    await deliver(own_dovecot, user, message(1))
    async with Mailbox(settings_for(own_dovecot, user)) as box:
        assert await take(box) == [(1, "Frage 1")]
        waiting = asyncio.create_task(box.wait(10))
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        own_dovecot.restart()
        assert await asyncio.wait_for(waiting, 5) is True  # the dropped connection ends the IDLE at once
        assert time.perf_counter() - started < 3
        await deliver(own_dovecot, user, message(2))
        assert await take(box) == [(2, "Frage 2")]
        assert box.connections == 2
        own_dovecot.restart()  # dropped between two calls: the next command reconnects
        await deliver(own_dovecot, user, message(3))
        assert await take(box) == [(3, "Frage 3")]
        assert box.connections == 3


async def test_a_server_gone_for_good_ends_in_an_error_after_the_attempts(own_dovecot: Dovecot) -> None:
    user = own_dovecot.user()
    async with Mailbox(settings_for(own_dovecot, user, attempts=3)) as box:
        own_dovecot.stop()
        started = time.perf_counter()
        with pytest.raises(MailboxError, match=r"unreachable after 3 reconnections: cannot connect to "):
            await take(box)
        assert 0.05 + 0.1 + 0.2 <= time.perf_counter() - started < 3  # backoff 0.05, 0.1, 0.2 s
        assert box.connections == 1 + 3  # the first try found the old connection dead
