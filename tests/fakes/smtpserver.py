"""A mail server for tests: aiosmtpd's SMTP protocol on 127.0.0.1 (a free port unless told), in
the test's own event loop, that keeps every message it accepted.

    async with SmtpServer(tls="starttls", auth=("mailer", "s3cret")) as smtp:
        settings = MailSettings(host=smtp.host, port=smtp.port, security="starttls",
                                username="mailer", password="s3cret", sender="ISP <billing@isp.example>",
                                ca_file=smtp.ca_file)
        ...
        [got] = await smtp.wait_for(1)
        got.message["Subject"], got.rcpt_tos, got.raw

- ``tls``: ``"none"`` (plain), ``"starttls"`` (STARTTLS offered and required before MAIL) or
  ``"tls"`` (implicit TLS from the first byte, as on port 465). The certificate is for 127.0.0.1
  and localhost, signed by a test CA (made once per process with Debian's ``openssl``, through
  :func:`tests.fakes.routeros.make_certificates`); :attr:`ca_file` is that CA's PEM, for
  ``MailSettings.ca_file``.
- ``auth``: ``(user, password)``: AUTH PLAIN and LOGIN are offered (after STARTTLS in that mode) and
  MAIL without a successful AUTH is answered ``530 5.7.0 Authentication required``; a wrong
  password gets aiosmtpd's ``535 5.7.8 Authentication credentials invalid``.
- :meth:`fail` scripts the next answers of a stage: ``fail(451, "4.3.0 Try later", times=2,
  stage="rcpt")``; stages ``"mail"``, ``"rcpt"`` and ``"data"`` (the answer to the end of DATA).
  :meth:`refuse` answers every RCPT TO one address with a 5xx (an unknown mailbox) until told
  otherwise (``refuse(address, None)``).
- :meth:`stop` closes the listener and every open connection (an outage: the client's kept
  connection dies too); :meth:`start` listens again on the same port (same certificate).
- :attr:`connections` counts the connections accepted since the server was made, :attr:`messages`
  lists what was accepted (:class:`Received`), :meth:`wait_for` waits until there are ``n``.

What it leaves out: SMTPUTF8, PIPELINING, CHUNKING (aiosmtpd offers none of them), DSN parameters
(accepted and ignored), size limits beyond aiosmtpd's default 32 MiB.
"""

from __future__ import annotations

import asyncio
import email.policy
import functools
import logging
import ssl
import tempfile
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.fakes.routeros import Certificates, make_certificates

Stage = Literal["mail", "rcpt", "data"]
_PARSER = BytesParser(policy=email.policy.default)
_certificates: Certificates | None = None


class _QuietLoginData(logging.Filter):
    """aiosmtpd warns through its log at every AUTH that ``Session.login_data`` is deprecated
    (it sets it itself); that line says nothing about the test."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_QuietLoginData())


def certificates() -> Certificates:
    """The test CA and server certificate, made once per process."""
    global _certificates
    if _certificates is None:
        _certificates = make_certificates(Path(tempfile.mkdtemp(prefix="fake-smtp-tls-")), name="lastmile smtp test")
    return _certificates


@dataclass(frozen=True)
class Received:
    """One accepted message: the envelope, the parsed message and the bytes as they came."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    login: str = ""  # the AUTH user of the session ('' without AUTH)
    tls: bool = False  # the session was encrypted (STARTTLS or implicit TLS)
    connection: int = 0  # which connection (1, 2, ...) carried it

    @functools.cached_property
    def message(self) -> EmailMessage:
        """The message parsed (email.policy.default), at first use: parsing each as it comes would
        slow a throughput test down more than the client it measures."""
        message = _PARSER.parsebytes(self.raw)
        assert isinstance(message, EmailMessage)
        return message


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_MAIL(self, smtp: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if self.server.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        scripted = self.server._scripted("mail")
        if scripted:
            return scripted
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, smtp: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        scripted = self.server._scripted("rcpt") or self.server._refused.get(address.lower())
        if scripted:
            return scripted
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        scripted = self.server._scripted("data")
        if scripted:
            return scripted
        raw = envelope.original_content or b""
        auth: Any = session.auth_data  # aiosmtpd types it as None: it is the LoginPassword of a good AUTH
        login = auth.login.decode() if isinstance(auth, LoginPassword) else ""
        self.server.messages.append(Received(
            mail_from=envelope.mail_from or "", rcpt_tos=tuple(envelope.rcpt_tos), raw=raw,
            login=login, tls=smtp.transport is not None and smtp.transport.get_extra_info("ssl_object") is not None,
            connection=getattr(smtp, "_lastmile_connection", 0)))
        self.server._arrived.set()
        return f"250 2.0.0 Ok: queued as {len(self.server.messages):08X}"


class _Protocol(SMTP):
    """aiosmtpd's protocol, counting connections and known to the server so that stop() can
    close them."""

    def __init__(self, server: SmtpServer, **kwargs: Any) -> None:
        super().__init__(_Handler(server), **kwargs)
        self._lastmile_server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # not the second call after STARTTLS
            server = self._lastmile_server
            server.connections += 1
            self._lastmile_connection = server.connections
            server._open.add(transport)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        first = self._original_transport or self.transport
        if first is not None:
            self._lastmile_server._open.discard(first)
        super().connection_lost(error)


class SmtpServer:
    def __init__(self, tls: Literal["none", "starttls", "tls"] = "none", auth: tuple[str, str] | None = None,
                 *, host: str = "127.0.0.1", port: int = 0) -> None:
        if tls not in ("none", "starttls", "tls"):
            raise ValueError(f"tls must be none, starttls or tls, not {tls!r}")
        self.tls = tls
        self.auth = auth
        self.host = host
        self.port = port
        self.messages: list[Received] = []
        self.connections = 0
        self.ca_file = str(certificates().ca) if tls != "none" else ""
        self._context: ssl.SSLContext | None = certificates().server_context() if tls != "none" else None
        self._failures: dict[str, deque[str]] = {"mail": deque(), "rcpt": deque(), "data": deque()}
        self._refused: dict[str, str] = {}
        self._open: set[asyncio.BaseTransport] = set()  # each connection's socket transport
        self._server: asyncio.Server | None = None
        self._arrived = asyncio.Event()

    # -- scripting ---------------------------------------------------------------------------------

    def fail(self, code: int, text: str, times: int = 1, stage: Stage = "rcpt") -> None:
        """Answer the next ``times`` commands of ``stage`` with ``code text`` (4xx or 5xx)."""
        if not 400 <= code <= 599:
            raise ValueError(f"a failure is a 4xx or 5xx code, not {code}")
        if stage not in self._failures:
            raise ValueError(f"stage must be mail, rcpt or data, not {stage!r}")
        self._failures[stage].extend([f"{code} {text}"] * times)

    def refuse(self, address: str, code: int | None = 550, text: str = "5.1.1 User unknown") -> None:
        """Answer every RCPT TO ``address`` with ``code text`` (``code=None``: accept it again)."""
        if code is None:
            self._refused.pop(address.lower(), None)
        else:
            self._refused[address.lower()] = f"{code} {text}"

    def _scripted(self, stage: str) -> str | None:
        queue = self._failures[stage]
        return queue.popleft() if queue else None

    async def wait_for(self, n: int, timeout: float = 5.0) -> list[Received]:
        """The first ``n`` messages, once they are there (TimeoutError after ``timeout`` s)."""
        async with asyncio.timeout(timeout):
            while len(self.messages) < n:
                self._arrived.clear()
                await self._arrived.wait()
        return self.messages[:n]

    # -- life --------------------------------------------------------------------------------------

    def _protocol(self) -> _Protocol:
        authenticating = self.auth is not None
        return _Protocol(
            self, hostname="mx.test", ident="lastmile fake smtp",
            tls_context=self._context if self.tls == "starttls" else None,
            require_starttls=self.tls == "starttls",
            auth_require_tls=self.tls == "starttls",  # implicit TLS is encrypted from the start
            authenticator=self._authenticate if authenticating else None,
            auth_exclude_mechanism=() if authenticating else ("LOGIN", "PLAIN"),
            loop=asyncio.get_running_loop())

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        assert self.auth is not None
        good = (isinstance(auth_data, LoginPassword)
                and auth_data.login == self.auth[0].encode() and auth_data.password == self.auth[1].encode())
        return AuthResult(success=good, handled=False, auth_data=auth_data if good else None)

    async def start(self) -> SmtpServer:
        if self._server is not None:
            return self
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, self.host, self.port, ssl=self._context if self.tls == "tls" else None,
            reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and drop every open connection (start() listens again on the same port)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for transport in list(self._open):
            assert isinstance(transport, asyncio.Transport)
            transport.abort()
        self._open.clear()
        await server.wait_closed()

    async def __aenter__(self) -> SmtpServer:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
