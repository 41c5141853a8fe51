"""One inbox over IMAP (aioimaplib): the new messages in it, marked read once they are stored,
and a wait for the next one (IDLE where the server has it, a sleep otherwise).

::

    async with Mailbox(settings, last_uid=stored_uid, uidvalidity=stored_validity) as box:
        while True:
            async for uid, raw in box.new_messages():
                ...  # parse and store it (admin.tickets.inbound), then
                await box.mark_seen(uid)
            ...  # save box.last_uid and box.uidvalidity
            await box.wait(300)

Which messages: those with a UID above :attr:`Mailbox.last_uid` (the highest one marked so far),
unread only (``UNSEEN``) unless ``unread_only`` is off, and received on or after ``since`` when
set (``SINCE``: IMAP compares dates, not times). They are fetched with ``BODY.PEEK[]``, which
leaves them unread: :meth:`Mailbox.mark_seen` sets ``\\Seen`` (when ``mark_read``) after the
caller stored one, so a crash in between fetches it again rather than losing it. When the
folder's UIDVALIDITY is not the one the caller saved, its UIDs were renumbered and
:attr:`Mailbox.last_uid` starts again from 0.

Connections: plain, STARTTLS (refused when the server does not offer it) or implicit TLS, each
command bounded by ``timeout``. A dropped connection (the server restarted, a network outage, a
command timing out) is opened again at the next call, after ``1, 2, 4 … 60`` seconds of backoff
(``backoff``, ``backoff_max``), up to ``attempts`` times in a row; then, and at once for what
retrying cannot mend (credentials or a folder refused, no STARTTLS), :class:`MailboxError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from types import TracebackType
from typing import Any, Literal, TypeVar

import aioimaplib  # type: ignore[import-untyped]  # no type information shipped

T = TypeVar("T")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EXISTS = re.compile(rb"\*\s+\d+\s+EXISTS\s*$", re.IGNORECASE)
_IDLE_MAX = 29 * 60.0  # servers end an IDLE after 30 minutes (RFC 2177): renewed before


@dataclass(frozen=True, slots=True)
class MailboxSettings:
    host: str
    port: int = 0  # 0: 143, or 993 with implicit TLS
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str = ""
    password: str = ""
    folder: str = "INBOX"
    unread_only: bool = True
    since: date | None = None
    mark_read: bool = True  # mark_seen sets \Seen (else it only moves last_uid)
    idle: bool = True  # use IDLE when the server offers it
    verify: bool = True  # check the server's certificate and name
    ca_file: str = ""  # a CA to check it against instead of the system's
    timeout: float = 10.0  # seconds, per command and for connecting
    backoff: float = 1.0  # seconds before the first reconnection, doubled each time
    backoff_max: float = 60.0
    attempts: int = 8  # reconnections in a row before MailboxError


class MailboxError(Exception):
    """The inbox cannot be read: one line saying why (retrying did not help, or cannot)."""


class _Dropped(Exception):
    """The connection is gone or did not answer: open it again."""


def backoff(attempt: int, settings: MailboxSettings) -> float:
    """Seconds to wait before reconnection number ``attempt`` (0, 1, …): 1, 2, 4 … at most 60."""
    return float(min(settings.backoff * 2 ** attempt, settings.backoff_max))


def imap_date(day: date) -> str:
    """``day`` as IMAP's SEARCH writes dates (RFC 3501 date-text): ``3-Dec-2026``."""
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}"


class Mailbox:
    def __init__(self, settings: MailboxSettings, *, last_uid: int = 0, uidvalidity: int = 0) -> None:
        self.settings = settings
        self.last_uid = last_uid
        self.uidvalidity = uidvalidity
        self.connections = 0  # connections opened, the first included
        self._client: aioimaplib.IMAP4 | None = None
        self._lost = False
        self._arrived = False  # the server said EXISTS since the last search
        self._tls: ssl.SSLContext | None = None
        if settings.security != "none":
            try:
                self._tls = ssl.create_default_context(cafile=settings.ca_file or None)
            except (OSError, ssl.SSLError) as error:
                raise MailboxError(f"the CA file {settings.ca_file!r} cannot be read: {error}") from None
            if not settings.verify:
                self._tls.check_hostname = False
                self._tls.verify_mode = ssl.CERT_NONE

    @property
    def where(self) -> str:
        s = self.settings
        return f"{s.host}:{s.port or (993 if s.security == 'tls' else 143)}"

    @property
    def idles(self) -> bool:
        """Whether :meth:`wait` uses IDLE (connected, the server offers it, the settings allow it)."""
        return self.settings.idle and self._client is not None and self._client.has_capability("IDLE")

    async def __aenter__(self) -> Mailbox:
        try:
            await self._connect()
        except _Dropped as error:
            self._drop()
            raise MailboxError(str(error)) from None
        except BaseException:
            self._drop()
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        client = self._client
        if client is not None and not self._lost:
            with contextlib.suppress(Exception):  # a goodbye only: the connection goes anyway
                await asyncio.wait_for(client.logout(), min(self.settings.timeout, 2.0))
        self._drop()

    # -- the messages ------------------------------------------------------------------------------

    async def new_messages(self) -> AsyncIterator[tuple[int, bytes]]:
        """(UID, the message's bytes) of each message to take, in UID order."""
        for uid in await self._retrying(self._search):
            raw = await self._retrying(functools.partial(self._fetch, uid))
            if raw is not None:  # None: deleted meanwhile
                yield uid, raw

    async def mark_seen(self, uid: int) -> None:
        """The message ``uid`` is stored: mark it read (``mark_read``) and never take it again."""
        if self.settings.mark_read:
            await self._retrying(functools.partial(self._store_seen, uid))
        self.last_uid = max(self.last_uid, uid)

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a new message: True at once when the server said
        one arrived (EXISTS) since the last search; else, with IDLE, until it says so or the
        connection dropped (True), False at the timeout; without, sleep ``timeout`` s (False)."""
        if self._client is None or self._lost:
            await self._retrying(self._noop)  # connected again
        if self._arrived:  # a mail came while the last ones were searched, fetched or marked
            return True
        if not self.idles:
            await asyncio.sleep(timeout)
            return False
        try:
            return await self._idle(timeout)
        except _Dropped:
            self._drop()
            return True

    # -- commands ----------------------------------------------------------------------------------

    def _heard(self) -> None:
        self._arrived = True

    async def _search(self) -> list[int]:
        await self._noop()  # the server shows the session what arrived since (SEARCH alone may not)
        self._arrived = False  # what the NOOP heard of, the search finds; an EXISTS from now on is news
        criteria = ["UID", f"{self.last_uid + 1}:*"]
        if self.settings.unread_only:
            criteria.append("UNSEEN")
        if self.settings.since is not None:
            criteria += ["SINCE", imap_date(self.settings.since)]
        response = await self._command(self._client_now().uid_search(*criteria, charset=None), "UID SEARCH")
        uids = {int(word) for line in response.lines[:-1] for word in bytes(line).split() if word.isdigit()}
        return sorted(uid for uid in uids if uid > self.last_uid)  # "n:*" holds the last UID even if below n

    async def _fetch(self, uid: int) -> bytes | None:
        response = await self._command(self._client_now().uid("fetch", str(uid), "(UID BODY.PEEK[])"), "UID FETCH")
        lines = response.lines  # b"1 FETCH (UID 5 BODY[] {123}", bytearray(the literal), b")", ...
        mine = re.compile(rb"\bUID %d\b" % uid)
        for line, following in itertools.pairwise(lines):
            if not isinstance(line, bytearray) and mine.search(line) and isinstance(following, bytearray):
                return bytes(following)
        return None

    async def _store_seen(self, uid: int) -> None:
        await self._command(self._client_now().uid("store", str(uid), "+FLAGS.SILENT", "(\\Seen)"), "UID STORE")

    async def _noop(self) -> None:
        await self._command(self._client_now().noop(), "NOOP")

    async def _idle(self, timeout: float) -> bool:
        client = self._client_now()
        queue = client.protocol.idle_queue
        while not queue.empty():  # pushes left over from the last IDLE
            queue.get_nowait()
        try:
            idle = await asyncio.wait_for(client.idle_start(timeout=min(timeout, _IDLE_MAX)), self.settings.timeout)
        except (aioimaplib.AioImapException, OSError, TimeoutError) as error:
            raise _Dropped(f"IDLE on {self.where} failed: {error!r}") from None
        arrived = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while not arrived and not self._lost and (left := deadline - loop.time()) > 0:
                try:
                    pushed = await client.wait_server_push(timeout=left)
                except TimeoutError:
                    break
                if pushed == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    break
                arrived = any(b"EXISTS" in bytes(line) for line in pushed)
        finally:
            if self._lost:
                idle.cancel()
            else:
                client.idle_done()
                try:
                    await asyncio.wait_for(idle, self.settings.timeout)
                except (aioimaplib.AioImapException, OSError, TimeoutError):
                    self._drop()
        return arrived or self._lost

    def _client_now(self) -> aioimaplib.IMAP4:
        if self._client is None or self._lost:
            raise _Dropped(f"the connection to {self.where} is closed")
        return self._client

    async def _command(self, call: Awaitable[aioimaplib.Response], name: str) -> aioimaplib.Response:
        try:
            response = await asyncio.wait_for(call, self.settings.timeout)
        except (aioimaplib.AioImapException, OSError, TimeoutError) as error:
            raise _Dropped(f"{name} on {self.where} failed: {error!r}") from None
        except ValueError as error:  # aioimaplib refuses a line break in an argument (a folder's name)
            raise MailboxError(f"{name} on {self.where}: {error}") from None
        if self._lost:
            raise _Dropped(f"the connection to {self.where} was lost during {name}")
        if response.result != "OK":
            raise MailboxError(f"{name} on {self.where}: {_text(response)}")
        return response

    async def _retrying(self, operation: Callable[[], Awaitable[T]]) -> T:
        """``operation`` on a live connection: (re)connected first, again after a drop."""
        failure = ""
        for attempt in range(self.settings.attempts + 1):
            if attempt:
                await asyncio.sleep(backoff(attempt - 1, self.settings))
            try:
                if self._client is None or self._lost:
                    await self._connect()
                return await operation()
            except _Dropped as error:
                self._drop()
                failure = str(error)
        raise MailboxError(f"{self.where} unreachable after {self.settings.attempts} reconnections: {failure}")

    # -- the connection ----------------------------------------------------------------------------

    async def _connect(self) -> None:
        self._drop()
        s = self.settings
        host, port = s.host, s.port or (993 if s.security == "tls" else 143)
        self._lost = False
        client: aioimaplib.IMAP4 | None = None

        def lost(error: Exception | None) -> None:
            if client is not None and client is self._client:  # not an old connection closing late
                self._lost = True
                _abort(client)

        client = aioimaplib.IMAP4(host=host, port=port, timeout=s.timeout, conn_lost_cb=lost,
                                  ssl_context=self._tls if s.security == "tls" else None)
        _hear_exists(client, self._heard)
        self._client = client
        self.connections += 1
        try:
            await client.wait_hello_from_server()
        except ssl.SSLError as error:
            raise _Dropped(f"the TLS handshake with {self.where} failed: {error}") from None
        except (OSError, TimeoutError, aioimaplib.AioImapException) as error:
            raise _Dropped(f"cannot connect to {self.where}: {error!r}") from None
        if s.security == "starttls":
            await self._starttls(client)
        if s.username:
            await self._command(client.login(s.username, s.password), "LOGIN")
        response = await self._command(client.select(aioimaplib.quoted(s.folder)), f"selecting {s.folder!r}")
        validity = next((int(line.split(b"[UIDVALIDITY ")[1].split(b"]")[0]) for line in response.lines
                         if b"[UIDVALIDITY " in bytes(line)), 0)
        if validity != self.uidvalidity:
            if self.uidvalidity:
                self.last_uid = 0  # renumbered: the saved UID means nothing now
            self.uidvalidity = validity
        # SELECT tells EXISTS: the caller searches first anyway; after a reconnection, mail may
        # have come while the connection was down, so the next wait returns at once
        self._arrived = self.connections > 1

    async def _starttls(self, client: aioimaplib.IMAP4) -> None:
        """STARTTLS (RFC 3501 6.2.1), which aioimaplib lacks: the command, the TLS handshake on
        the same transport, then CAPABILITY again (what the server offered before is void)."""
        assert self._tls is not None
        protocol = client.protocol
        if not client.has_capability("STARTTLS"):
            raise MailboxError(f"the server at {self.where} does not offer STARTTLS")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        await self._command(protocol.execute(command), "STARTTLS")
        try:
            protocol.transport = await asyncio.wait_for(
                protocol.loop.start_tls(protocol.transport, protocol, self._tls, server_hostname=self.settings.host),
                self.settings.timeout)
        except ssl.SSLError as error:
            raise _Dropped(f"the TLS handshake with {self.where} failed: {error}") from None
        except (OSError, TimeoutError, ConnectionError) as error:
            raise _Dropped(f"the TLS handshake with {self.where} failed: {error!r}") from None
        try:
            await asyncio.wait_for(protocol.capability(), self.settings.timeout)
        except (aioimaplib.AioImapException, OSError, TimeoutError) as error:
            raise _Dropped(f"CAPABILITY on {self.where} failed: {error!r}") from None

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        self._lost = True
        for task in list(client.tasks):
            task.cancel()
        _abort(client)
        transport = client.protocol.transport
        if transport is not None:
            transport.close()


def _hear_exists(client: aioimaplib.IMAP4, heard: Callable[[], None]) -> None:
    """Call ``heard`` at every untagged EXISTS the server sends the client. aioimaplib hands an
    untagged answer only to a command waiting for its name (or to a NOOP) and drops the rest:
    the "* 12 EXISTS" a server adds to its answer to a SEARCH, FETCH or STORE (a mail that came
    meanwhile) would be lost, and the IDLE after it would hear nothing, the server having told
    already. tests/integration/tickets/test_mailbox.py holds this to aioimaplib's behaviour."""
    protocol = client.protocol
    handle = protocol._untagged_response

    def untagged(line: bytes) -> Any:
        if _EXISTS.match(line):
            heard()
        return handle(line)

    protocol._untagged_response = untagged


def _abort(client: aioimaplib.IMAP4) -> None:
    """End the commands waiting on ``client``'s lost connection (their answer: KO) and an IDLE
    wait, so that nothing waits for its timeout."""
    protocol = client.protocol
    waiting = [protocol.pending_sync_command, *protocol.pending_async_commands.values()]
    protocol.pending_sync_command = None
    protocol.pending_async_commands.clear()
    for command in waiting:
        if command is not None:
            command.close(b"connection lost", "KO")
    protocol.idle_queue.put_nowait(aioimaplib.STOP_WAIT_SERVER_PUSH)


def _text(response: aioimaplib.Response) -> str:
    last = response.lines[-1] if response.lines else b""
    return f"{response.result} {bytes(last).decode('utf-8', 'replace')}".strip()
