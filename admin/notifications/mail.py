"""Email out through SMTP: :func:`build` turns an :class:`Outgoing` into the message (pure), and
:class:`MailTransport` sends it over one connection kept open between messages (aiosmtplib).

The Message-ID is made from the message's id and the sender (``<lastmile.{id}.{sha8}@{domain}>``),
so a message sent again (a retry after a lost answer) carries the same id and the receiving side
can tell it is the same message. A person's reply (``Outgoing.thread``: a helpdesk ticket's)
carries its own Message-ID instead, exactly as given, with In-Reply-To and References, and no
``Auto-Submitted`` header (RFC 3834). CC addresses (a ticket's) go in the ``Cc`` header and the
envelope, BCC addresses in the envelope only.

Header injection is impossible by construction: a subject, address, threading header or file name holding a line
break (CR, LF or any character ``str.splitlines`` breaks at) is refused with
:class:`PermanentFailure` before anything is sent.

How a failure is classed (the delivery loop retries a :class:`TemporaryFailure`, holds a
:class:`PermanentFailure` as failed):

- temporary: connection refused, reset or timed out; a failed TLS handshake (an unknown CA, a
  wrong name); the credentials refused (535) or AUTH wanted (530): the operator fixes the
  settings, then the waiting mail goes; any 4xx answer; a 5xx to MAIL FROM other than 552 (the
  sender refused: a settings matter too); no valid sender in the settings.
- permanent: a 5xx to RCPT TO (550, 553 ...) or to the data (552, 554); a recipient address that
  cannot be written (a non-ASCII local part would need SMTPUTF8, which lastmile does not use).

Every failure's text is one line with the stage, the server's code and its words, e.g.
``RCPT TO <anna@example.at>: 550 5.1.1 User unknown``.

A recipient field may list several addresses separated by commas (as a customer's record may);
each goes in To. A 5xx to one of several To addresses drops that address (noted in the answer);
all refused is permanent. A refused CC or BCC address never stops the message (it is noted).
"""

from __future__ import annotations

import asyncio
import email.policy
import functools
import hashlib
import re
import socket
import ssl
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.encoders import encode_base64
from email.header import Header
from email.headerregistry import Address
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import format_datetime, formataddr
from typing import cast

import aiosmtplib

from admin.notifications.model import (
    Attachment,
    Delivered,
    MailSettings,
    Outgoing,
    PermanentFailure,
    TemporaryFailure,
    Unreachable,
)

# CRLF line ends and folding at 78; the text parts quoted-printable, files base64, so that the
# message is ASCII and no server needs 8BITMIME.
_POLICY = email.policy.compat32.clone(linesep="\r\n")
_UTF8 = Charset("utf-8")
_UTF8.header_encoding = _UTF8.body_encoding = QP
_PARSE = email.policy.default
_TOKEN = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")  # RFC 6838 type and subtype names


def _one_line(value: str, what: str, failure: type[PermanentFailure | TemporaryFailure] = PermanentFailure) -> str:
    if "\r" in value or "\n" in value or "\x00" in value or len(value.splitlines()) > 1:
        raise failure(f"the {what} holds a line break: refused (header injection)")
    return value


def _addresses(text: str, what: str, failure: type[PermanentFailure | TemporaryFailure] = PermanentFailure,
               ) -> tuple[Address, ...]:
    """The addresses of ``text`` ("a@x.at", "Name <a@x.at>", "a@x.at, b@y.de"), each checked
    (no defect, a local part and a domain, ASCII local part; IDNA domains are encoded)."""
    _one_line(text, what, failure)
    parsed = _parse(text)
    if isinstance(parsed, str):
        raise failure(f"the {what} is not an email address: {text!r}{parsed}")
    return parsed


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> tuple[Address, ...] | str:
    """The addresses, or why not (" (reason)" or ''). Cached: the email package's header parser
    is most of the cost of a message, and the sender, the reply-to and many recipients repeat."""
    try:
        header = _PARSE.header_factory("to", text)
        parsed = list(getattr(header, "addresses", ()))
        defects = list(header.defects)
    except Exception as error:  # the parser's IndexError/HeaderParseError on some inputs
        return f" ({error})"
    if defects or not parsed:
        return f" ({defects[0]})" if defects else ""
    result = []
    for address in parsed:
        if not address.username or not address.domain:
            return ""
        domain = address.domain
        if not domain.isascii():
            try:
                domain = domain.encode("idna").decode("ascii")
            except UnicodeError:
                return f" (a domain that cannot be written: {address.domain!r})"
        result.append(Address(display_name=address.display_name, username=address.username, domain=domain))
    return tuple(result)


def _sender(settings: MailSettings) -> Address:
    if not settings.sender:
        raise TemporaryFailure("the mail settings have no sender (From) address")
    addresses = _addresses(settings.sender, "sender in the mail settings", TemporaryFailure)
    if len(addresses) != 1:
        raise TemporaryFailure(f"the sender in the mail settings is more than one address: {settings.sender!r}")
    return addresses[0]


def message_id(message_id: int, sender: Address) -> str:
    """``<lastmile.{id}.{sha8}@{domain}>``: the same for the same message and sender."""
    digest = hashlib.sha256(f"{message_id}\x00{sender.addr_spec.lower()}".encode()).hexdigest()[:8]
    return f"<lastmile.{message_id}.{digest}@{sender.domain.lower()}>"


def build(message: Outgoing, settings: MailSettings, *, now: datetime | None = None) -> Message:
    """The message as it goes out (no I/O). ``now`` is the Date header (the current time unless told).

    Made with the email package's MIME classes and written by its compat32 generator: the newer
    ``EmailMessage`` API parses and refolds every header it is given, which made building a
    reminder 1.4 ms, the largest part of sending one; this way it is 0.5 ms. The headers are
    encoded here (RFC 2047 words, RFC 2231 file names), so the generator only writes them."""
    sender = _sender(settings)
    to = _addresses(message.recipient, "recipient")
    subject = _one_line(message.subject, "subject")
    body = _text(message.body, "plain")
    if message.html:
        body = _multipart("alternative", body, _text(message.html, "html"))
    if message.attachments:
        body = _multipart("mixed", body, *(_attachment(a) for a in message.attachments))
    # MIME-Version is on it already. Typed to take a Header too: compat32 keeps one as it is and
    # folds it when writing (typeshed's Message takes only str).
    mail = cast("Message[str, str | Header]", body)
    mail["From"] = _written(sender)
    mail["To"] = ", ".join(_written(a) for a in to)
    if cc := _cc(message, to):
        mail["Cc"] = ", ".join(_written(a) for a in cc)
    if settings.reply_to:
        reply_to = _addresses(settings.reply_to, "reply-to in the mail settings", TemporaryFailure)
        mail["Reply-To"] = ", ".join(_written(a) for a in reply_to)
    mail["Subject"] = _header(subject, "Subject")
    mail["Date"] = format_datetime(now or datetime.now(UTC))
    if message.thread is None:
        mail["Message-ID"] = message_id(message.message_id, sender)
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to invoices
        return mail
    # A person's reply (a ticket's): its own Message-ID, threaded, and no Auto-Submitted (RFC 3834).
    thread = message.thread
    mail["Message-ID"] = _thread_header(thread.message_id, "Message-ID", required=True)
    if in_reply_to := _thread_header(thread.in_reply_to, "In-Reply-To"):
        mail["In-Reply-To"] = in_reply_to
    if references := _thread_header(thread.references, "References"):
        mail["References"] = references
    return mail


def _thread_header(value: str, name: str, *, required: bool = False) -> str:
    """A threading header's value as it is: one line of ASCII (no encoded words in an id);
    empty only when not ``required``."""
    _one_line(value, f"{name} header of the reply")
    if not value.isascii():
        raise PermanentFailure(f"the {name} header of the reply is not ASCII: refused")
    if required and not value.strip():
        raise PermanentFailure(f"the reply has no {name}")
    return value


def _written(address: Address) -> str:
    """An address as a header holds it: a non-ASCII display name as an RFC 2047 word."""
    return formataddr((address.display_name, address.addr_spec), charset="utf-8")


def _header(text: str, name: str) -> str | Header:
    """An unstructured header's value: as it is when plain ASCII, encoded words otherwise, and
    when it holds what a reader would take for one (``=?``) or a word too long to fold."""
    if text.isascii() and "=?" not in text and max(map(len, text.split()), default=0) <= 70:
        return text
    return Header(text, _UTF8, header_name=name)


def _text(text: str, subtype: str) -> Message:
    part = MIMENonMultipart("text", subtype, policy=_POLICY)
    part.set_payload(text, _UTF8)
    return part


def _multipart(subtype: str, *parts: Message) -> Message:
    container = MIMEMultipart(subtype, policy=_POLICY)
    for part in parts:
        del part["MIME-Version"]  # on top only
        container.attach(part)
    return container


def _attachment(attachment: Attachment) -> Message:
    filename = _one_line(attachment.filename, "attachment's file name")
    maintype, _, subtype = attachment.content_type.strip().lower().partition("/")
    if not (_TOKEN.fullmatch(maintype) and _TOKEN.fullmatch(subtype)):
        maintype, subtype = "application", "octet-stream"
    part = MIMEBase(maintype, subtype, policy=_POLICY)
    part.set_payload(attachment.data)
    encode_base64(part)
    name: str | tuple[str, str, str] = filename if filename.isascii() else ("utf-8", "", filename)
    part.add_header("Content-Disposition", "attachment", filename=name)
    return part


def _cc(message: Outgoing, to: tuple[Address, ...]) -> list[Address]:
    """The CC addresses, each once, without those the To header names already."""
    seen = {a.addr_spec.lower() for a in to}
    cc: list[Address] = []
    for entry in message.cc:
        for address in _addresses(entry, "CC address"):
            if address.addr_spec.lower() not in seen:
                seen.add(address.addr_spec.lower())
                cc.append(address)
    return cc


def envelope(message: Outgoing, settings: MailSettings) -> tuple[str, list[str], list[str]]:
    """(envelope sender, To addresses, the copies' addresses: CC, then BCC), as the SMTP commands
    carry them; each address once."""
    sender = _sender(settings).addr_spec
    to = _addresses(message.recipient, "recipient")
    copies = [a.addr_spec for a in _cc(message, to)]
    for entry in message.bcc:
        copies.extend(a.addr_spec for a in _addresses(entry, "BCC address"))
    addresses = [a.addr_spec for a in to]
    return sender, addresses, [c for c in dict.fromkeys(copies) if c not in addresses]


def _line(text: str) -> str:
    return " ".join(text.split())


def _answer(error: aiosmtplib.SMTPResponseException) -> str:
    return _line(f"{error.code} {error.message}")


class _Stale(Exception):
    """A kept connection turned out closed before anything of this message was sent."""


class MailTransport:
    """One SMTP connection (per partner's settings), opened at the first message, kept open,
    opened again when the server closed it or after an error. One message at a time on it:
    concurrent ``send`` calls wait for each other (make several transports for parallel
    connections)."""

    def __init__(self, settings: MailSettings, *, local_hostname: str | None = None) -> None:
        self.settings = settings
        self.connections = 0  # connections opened so far
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()
        self._local_hostname = local_hostname or socket.gethostname() or "localhost"  # no DNS (getfqdn would)
        self._tls: ssl.SSLContext | None = None
        self._broken = ""  # why the settings cannot work (a CA file that cannot be read)
        if settings.security != "none":  # made once: a context per message would cost ~10 ms each
            try:
                self._tls = ssl.create_default_context(cafile=settings.ca_file or None)
            except (OSError, ssl.SSLError) as error:
                self._broken = f"the CA file {settings.ca_file!r} of the mail settings cannot be read: {error}"
            else:
                if not settings.verify:
                    self._tls.check_hostname = False
                    self._tls.verify_mode = ssl.CERT_NONE

    @property
    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    async def send(self, message: Outgoing) -> Delivered:
        mail = build(message, self.settings)
        sender, to, copies = envelope(message, self.settings)
        cc = {a.addr_spec for a in _cc(message, _addresses(message.recipient, "recipient"))}
        data = mail.as_bytes()
        mid = str(mail["Message-ID"])
        async with self._lock:
            for _ in range(2):
                reused = self._client is not None and self._client.is_connected
                client = await self._connected()
                try:
                    return await self._transaction(client, sender, to, copies, cc, data, mid, reused)
                except _Stale:
                    self._drop()
            raise TemporaryFailure(f"the server at {self._where} closed the connection at MAIL FROM twice")

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit(timeout=min(self.settings.timeout, 5.0))
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()

    # -- connection --------------------------------------------------------------------------------

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        self._drop()
        if self._broken:
            raise Unreachable(_line(self._broken))
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.host, port=s.port, timeout=s.timeout, local_hostname=self._local_hostname,
            use_tls=s.security == "tls", start_tls=s.security == "starttls", tls_context=self._tls,
            username=s.username or None, password=s.password if s.username else None)
        self.connections += 1
        try:
            await client.connect()
        except aiosmtplib.SMTPAuthenticationError as error:
            raise Unreachable(f"the server at {self._where} refused the credentials for {s.username!r}: "
                                   f"{_answer(error)}", _answer(error)) from None
        except aiosmtplib.SMTPConnectTimeoutError:
            raise Unreachable(f"connecting to {self._where} timed out after {s.timeout:g} s") from None
        except aiosmtplib.SMTPTimeoutError:
            raise Unreachable(f"the server at {self._where} did not answer within {s.timeout:g} s") from None
        except aiosmtplib.SMTPResponseException as error:
            raise Unreachable(f"the server at {self._where} answered {_answer(error)}", _answer(error)) from None
        except ssl.SSLError as error:
            raise Unreachable(f"the TLS handshake with {self._where} failed: {_line(str(error))}") from None
        except (aiosmtplib.SMTPException, OSError) as error:  # refused, reset, STARTTLS/AUTH not offered
            raise Unreachable(f"cannot connect to {self._where}: {_line(str(error))}") from None
        except BaseException:
            client.close()
            raise
        self._client = client
        return client

    # -- one message -------------------------------------------------------------------------------

    async def _transaction(self, client: aiosmtplib.SMTP, sender: str, to: list[str], copies: list[str],
                           cc: set[str], data: bytes, mid: str, reused: bool) -> Delivered:
        stage = f"MAIL FROM <{sender}>"
        try:
            try:
                await client.mail(sender)
            except aiosmtplib.SMTPServerDisconnected:
                if reused:
                    raise _Stale from None
                raise
            except aiosmtplib.SMTPResponseException as error:
                if reused and error.code == 421:  # "closing transmission channel": it timed us out
                    raise _Stale from None
                raise
            notes: list[str] = []
            accepted = 0
            for address in to:
                stage = f"RCPT TO <{address}>"
                try:
                    await client.rcpt(address)
                    accepted += 1
                except aiosmtplib.SMTPRecipientRefused as error:
                    if error.code < 500 or len(to) == 1:
                        raise
                    notes.append(f"{address} refused: {_answer(error)}")
            if not accepted:
                raise PermanentFailure(f"every recipient was refused: {'; '.join(notes)}", "; ".join(notes))
            for address in copies:
                what = "CC" if address in cc else "BCC"
                stage = f"RCPT TO <{address}> ({what})"
                try:
                    await client.rcpt(address)
                except aiosmtplib.SMTPRecipientRefused as error:
                    notes.append(f"{what} {address} refused: {_answer(error)}")
            stage = "DATA"
            response = await client.data(data)
        except aiosmtplib.SMTPResponseException as error:
            await self._reset(client)
            raise self._classify(stage, error) from None
        except PermanentFailure:
            await self._reset(client)
            raise
        except aiosmtplib.SMTPTimeoutError:
            self._drop()
            raise TemporaryFailure(f"{stage}: the server at {self._where} did not answer within "
                                   f"{self.settings.timeout:g} s") from None
        except (aiosmtplib.SMTPException, OSError) as error:
            self._drop()
            raise TemporaryFailure(f"{stage}: the connection to {self._where} failed: {_line(str(error))}") from None
        except BaseException:  # cancelled mid-transaction: the connection's state is unknown
            self._drop()
            raise
        answer = _line(f"{response.code} {response.message}")
        if notes:
            answer += " (" + "; ".join(notes) + ")"
        return Delivered(provider_id=mid, answer=answer)

    def _classify(self, stage: str, error: aiosmtplib.SMTPResponseException) -> TemporaryFailure | PermanentFailure:
        text = f"{stage}: {_answer(error)}"
        if error.code < 500:
            return TemporaryFailure(text, _answer(error))
        if stage.startswith("MAIL FROM") and error.code != 552:
            what = "wants AUTH (set a username)" if error.code == 530 else "refused the sender"
            return TemporaryFailure(f"the server {what}: {text}", _answer(error))
        return PermanentFailure(text, _answer(error))

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
        """RSET after a refused transaction, so the connection can carry the next message."""
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            self._drop()

