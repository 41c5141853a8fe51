"""An incoming e-mail read into an :class:`InboundMail`: who, to whom, subject, threading headers,
the text, the attachments and what went wrong on the way. Pure: bytes in, a frozen value out.

Made with the standard library's parser (``email.policy.default``), which tolerates broken mail
and lists what it found wrong as defects; each defect, and each thing dropped, is a line in
:attr:`InboundMail.problems`, so a store can show why a message looks as it does. Only bytes that
are not mail at all (nothing that reads as a header) raise :class:`InboundError`.

Limits (:class:`Limits`): a message over ``max_message_bytes`` keeps its headers only; an
attachment over ``max_attachment_bytes``, or past ``max_attachments``, is dropped; the text is cut
at ``max_text_chars``. Each is a problem line, never an exception.

The text is the ``text/plain`` body, else the HTML body turned into text
(:func:`admin.notifications.plaintext.html_to_text`: scripts and styles left out, nothing
fetched). :attr:`InboundMail.reply` is that text with the quoted history cut off where it is
reliably marked (see :func:`trim_quoted`).

Attachments keep the declared type, but what they are served as comes from their first bytes
(:func:`sniff`) and a short list of types a browser shows without running anything
(:attr:`Attachment.served_type`); their names are made safe to store and to offer for download
(:func:`safe_filename`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser

from admin.notifications.plaintext import html_to_text


class InboundError(ValueError):
    """The bytes are not an e-mail at all (empty, or nothing in them reads as a header)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one message may bring in; past these, parts are dropped with a reason."""

    max_message_bytes: int = 40 * 1024 * 1024
    max_attachment_bytes: int = 20 * 1024 * 1024
    max_attachments: int = 30
    max_text_chars: int = 200_000
    #: a file name's length in characters, the extension included
    max_filename_chars: int = 120


@dataclass(frozen=True, slots=True)
class Party:
    """One address of a From, To or Cc header: the address in lower case, the name decoded."""

    address: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str  # safe (safe_filename): no path, no control characters, not a reserved name
    declared_type: str  # as the sender's Content-Type says, lower case
    sniffed_type: str  # from the first bytes (sniff)
    data: bytes
    inline: bool = False  # Content-Disposition inline (an image the HTML shows by its Content-ID)
    content_id: str = ""

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def served_type(self) -> str:
        """The Content-Type to serve it with: the sniffed type when it is one a browser shows
        without running anything, else ``application/octet-stream`` (a download). Serve it with
        ``Content-Disposition: attachment`` unless :attr:`viewable`, and ``nosniff`` always."""
        return self.sniffed_type if self.sniffed_type in _SERVABLE else "application/octet-stream"

    @property
    def viewable(self) -> bool:
        """Whether it may be shown inline (a raster image: never HTML, SVG or a PDF)."""
        return self.served_type.startswith("image/")


#: Loop and list headers kept for loops.py, by lower-case name.
LOOP_HEADERS = ("auto-submitted", "precedence", "x-auto-response-suppress", "x-autoreply", "x-autorespond",
                "list-id", "list-unsubscribe", "return-path")


@dataclass(frozen=True, slots=True)
class InboundMail:
    sender: Party | None  # From (the first address); None when missing or unreadable
    to: tuple[Party, ...]
    cc: tuple[Party, ...]
    reply_to: tuple[Party, ...]
    subject: str
    date: datetime | None  # aware (UTC when the header gave no zone)
    message_id: str  # "<id@host>", or "" when missing
    in_reply_to: tuple[str, ...]  # message ids, "<...>"
    references: tuple[str, ...]
    text: str  # the whole text body
    reply: str  # the text without the quoted history
    from_html: bool  # the text was made from an HTML body
    attachments: tuple[Attachment, ...]
    content_type: str  # of the whole message, e.g. "multipart/report" for a delivery report
    headers: tuple[tuple[str, str], ...]  # (lower-case name, value) of LOOP_HEADERS present
    size: int  # bytes as received
    problems: tuple[str, ...]  # what was malformed or dropped, one line each

    def header(self, name: str) -> str:
        """The first value of one of :data:`LOOP_HEADERS` ('' when absent)."""
        name = name.lower()
        return next((value for key, value in self.headers if key == name), "")


_ID = re.compile(r"<[^<>\s]{1,250}>")
_MAX_IDS = 100  # References kept (the newest: the end of the list)
_MAX_HEADER_BYTES = 256 * 1024  # of a message over the size limit, what is read as its header
_MAIL_HEADERS = ("from", "sender", "to", "cc", "subject", "date", "message-id", "received", "return-path",
                 "mime-version", "content-type", "reply-to", "delivered-to")


def parse(raw: bytes, limits: Limits = Limits()) -> InboundMail:
    """The message in ``raw`` (RFC 5322 bytes, any line ends). Raises only :class:`InboundError`."""
    problems: list[str] = []
    size = len(raw)
    if not raw.strip():
        raise InboundError("empty message")
    too_big = size > limits.max_message_bytes
    if too_big:
        end = re.search(rb"\r?\n\r?\n", raw[:_MAX_HEADER_BYTES])
        raw = raw[:end.start()] + b"\n\n" if end else raw[:_MAX_HEADER_BYTES]
        problems.append(f"message of {size} bytes is over the limit of {limits.max_message_bytes}: "
                        "its text and attachments were dropped")
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)  # policy.default makes EmailMessage
    if not any(name.lower() in _MAIL_HEADERS for name in message):
        raise InboundError("not an e-mail: no header such as From, To, Subject or Date")

    senders = _parties(message, "from", problems)
    if not senders:
        problems.append("no sender: the From header is missing or holds no address")
    to, cc = _parties(message, "to", problems), _parties(message, "cc", problems)
    reply_to = _parties(message, "reply-to", problems)
    when, message_id = _date(message, problems), _message_id(message, problems)
    text, from_html = ("", False) if too_big else _body(message, problems)
    if len(text) > limits.max_text_chars:
        problems.append(f"text of {len(text)} characters cut at {limits.max_text_chars}")
        text = text[:limits.max_text_chars]
    attachments = () if too_big else tuple(_attachments(message, limits, problems))
    for part in () if too_big else message.walk():  # a body cut off is malformed by design
        for defect in part.defects:
            problems.append(f"malformed: {type(defect).__name__}")
    return InboundMail(
        sender=senders[0] if senders else None,
        to=to, cc=cc, reply_to=reply_to,
        subject=" ".join(_header(message, "subject").split()), date=when, message_id=message_id,
        in_reply_to=_ids(_header(message, "in-reply-to")),
        references=_ids(_header(message, "references"))[-_MAX_IDS:],
        text=text, reply=trim_quoted(text), from_html=from_html, attachments=attachments,
        content_type=_content_type(message),
        headers=tuple((name, value) for name in LOOP_HEADERS if (value := _header(message, name))),
        size=size, problems=tuple(dict.fromkeys(problems)),
    )


# -- headers ---------------------------------------------------------------------------------------

def _header(message: Message, name: str) -> str:
    """One header's value, decoded (RFC 2047); the raw value decoded leniently when the
    parser's header classes fail on it (they raise on some broken input)."""
    try:
        value = message.get(name)
        return "" if value is None else str(value)
    except Exception:  # the header classes' IndexError, HeaderParseError, ... on broken input
        raw = next((v for k, v in message.raw_items() if k.lower() == name), "")
        return _lenient(str(raw))


def _lenient(raw: str) -> str:
    try:
        return str(make_header(decode_header(raw)))
    except (UnicodeError, LookupError, ValueError):
        return raw.encode("ascii", "replace").decode("ascii")


def _parties(message: Message, name: str, problems: list[str]) -> tuple[Party, ...]:
    try:
        value = message.get(name)
        addresses = getattr(value, "addresses", ()) if value is not None else ()
        parties = tuple(Party(a.addr_spec.lower(), a.display_name) for a in addresses if a.username)
    except Exception:  # as in _header
        problems.append(f"the {name} header cannot be read as addresses")
        return ()
    if value is not None and not parties:
        problems.append(f"the {name} header holds no address")
    return parties


def _message_id(message: Message, problems: list[str]) -> str:
    value = _header(message, "message-id")
    ids = _ids(value)
    if value.strip() and not ids:
        problems.append("the Message-ID header holds no <id>")
    return ids[0] if ids else ""


def _ids(value: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_ID.findall(value)))


def _date(message: Message, problems: list[str]) -> datetime | None:
    try:
        value = message.get("date")
        when = getattr(value, "datetime", None) if value is not None else None
    except Exception:  # as in _header
        when = None
        value = "?"
    if not isinstance(when, datetime):
        if value is not None:
            problems.append("the Date header cannot be read")
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:  # as in _header
        return "text/plain"


# -- body ------------------------------------------------------------------------------------------

def _body(message: EmailMessage, problems: list[str]) -> tuple[str, bool]:
    try:
        part = message.get_body(preferencelist=("plain", "html"))
    except Exception:  # as in _header
        part = None
    if part is None:
        return "", False
    text = _decoded(part, problems)
    if part.get_content_subtype() == "html":
        return html_to_text(text), True
    return text.replace("\r\n", "\n"), False


def _decoded(part: Message, problems: list[str]) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset() or "us-ascii"
    try:
        return data.decode(charset)
    except LookupError:
        problems.append(f"unknown charset {charset!r}: read as UTF-8")
    except UnicodeDecodeError:
        problems.append(f"text not valid in its charset {charset!r}: read as UTF-8")
    return data.decode("utf-8", "replace")


_QUOTE_MARKS = (
    # "On <date>, <name> wrote:", "Am <date> schrieb <name>:", "Le <date>, <name> a écrit :"
    re.compile(r"^(on|am|le|el|il|op)\s.{0,300}\s(wrote|schrieb|a écrit|escribió|ha scritto|schreef)(\s.{0,200})?\s?:$",
               re.I),
    re.compile(r"^-{2,}\s*(original message|ursprüngliche nachricht|message d'origine)\s*-{2,}$", re.I),
    re.compile(r"^_{20,}$"),  # Outlook's line above the quoted message's From/Sent/To block
)


def trim_quoted(text: str) -> str:
    """``text`` up to the quoted history: an attribution line ("On … wrote:", "Am … schrieb:", also
    when wrapped over two lines), an "-----Original Message-----" line, Outlook's underscore line,
    or a trailing run of ">" lines. The whole text when that would leave nothing."""
    lines = text.split("\n")
    cut = len(lines)
    for i, line in enumerate(lines):
        stripped = line.strip()
        if len(stripped) > 600:  # no attribution line is that long: skipped, which bounds the work
            continue
        joined = f"{stripped} {lines[i + 1].strip()}" if i + 1 < len(lines) else stripped
        if any(mark.match(stripped) or mark.match(joined) for mark in _QUOTE_MARKS):
            cut = i
            break
    while cut > 0 and (lines[cut - 1].startswith(">") or not lines[cut - 1].strip()):
        cut -= 1
    trimmed = "\n".join(lines[:cut]).rstrip()
    return trimmed + "\n" if trimmed else text


# -- attachments -----------------------------------------------------------------------------------

def _leaves(part: Message) -> Iterator[Message]:
    """The parts that are not containers; a forwarded message (message/rfc822) is one leaf."""
    if part.is_multipart() and _content_type(part).startswith("multipart/"):
        for sub in part.get_payload():
            if isinstance(sub, Message):
                yield from _leaves(sub)
    else:
        yield part


def _attachments(message: EmailMessage, limits: Limits, problems: list[str]) -> Iterator[Attachment]:
    try:
        bodies = {id(message.get_body(preferencelist=(kind,))) for kind in ("plain", "html")}
    except Exception:  # as in _header
        bodies = set()
    count = 0
    for part in _leaves(message):
        if id(part) in bodies or (_content_type(part).startswith("text/") and not _is_attachment(part)):
            continue
        name = _filename(part)
        declared = _content_type(part)
        filename = safe_filename(name, declared, max_chars=limits.max_filename_chars)
        data = _part_bytes(part)
        if len(data) > limits.max_attachment_bytes:
            problems.append(f"attachment {filename!r} of {len(data)} bytes dropped: over the limit of "
                            f"{limits.max_attachment_bytes}")
            continue
        if count >= limits.max_attachments:
            problems.append(f"attachment {filename!r} dropped: more than {limits.max_attachments} attachments")
            continue
        count += 1
        yield Attachment(filename=filename, declared_type=declared, sniffed_type=sniff(data), data=data,
                         inline=_disposition(part) == "inline",
                         content_id=next(iter(_ids(_header(part, "content-id"))), ""))


def _disposition(part: Message) -> str:
    try:
        return part.get_content_disposition() or ""
    except Exception:  # as in _header
        return ""


def _is_attachment(part: Message) -> bool:
    return _disposition(part) == "attachment" or bool(_filename(part))


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or ""
    except Exception:  # as in _header
        name = ""
    return _lenient(name) if "=?" in name else name


def _part_bytes(part: Message) -> bytes:
    if _content_type(part).startswith("message/"):
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            try:
                return inner[0].as_bytes(policy=policy.default)
            except Exception:  # the generator on a broken inner message
                return b""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³])(\..*)?", re.I)  # Windows device names
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_EXTENSIONS = {"application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif",
               "image/webp": ".webp", "text/plain": ".txt", "text/html": ".html", "message/rfc822": ".eml",
               "application/zip": ".zip", "text/calendar": ".ics"}


def safe_filename(name: str, content_type: str = "application/octet-stream", *, max_chars: int = 120) -> str:
    """A name to store and offer a file under: the last path segment only (``/`` and ``\\``), no
    control or format characters (bidirectional overrides), none of ``<>:"/\\|?*``, no leading or
    trailing dots and spaces, not a Windows device name (``CON``, ``COM1.txt``: prefixed ``_``),
    at most ``max_chars`` characters with the extension kept. Empty becomes ``attachment`` with
    an extension for ``content_type``."""
    name = unicodedata.normalize("NFC", name)
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))
    name = " ".join(_UNSAFE.sub("_", name).split()).strip(". ")
    if not name:
        name = "attachment" + _EXTENSIONS.get(content_type, "")
    if _RESERVED.fullmatch(name):
        name = "_" + name
    if len(name) > max_chars:
        stem, dot, extension = name.rpartition(".")
        if dot and stem and 0 < len(extension) <= 10:
            name = stem[:max_chars - len(extension) - 1].rstrip(". ") + "." + extension
        else:
            name = name[:max_chars].rstrip(". ")
    return name


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"), (b"%PDF-", "application/pdf"), (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"), (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"Rar!\x1a\x07", "application/vnd.rar"), (b"MZ", "application/x-msdownload"),
    (b"\x7fELF", "application/x-executable"), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),
)
_MARKUP = re.compile(rb"\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body|script|iframe|svg)\b",
                     re.I | re.S)
#: What a browser shows without running anything; everything else is served as a download.
_SERVABLE = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"})


def sniff(data: bytes) -> str:
    """What the bytes are by their start: a few image, document, archive and executable
    signatures, HTML and SVG (markup a browser would run), text (valid UTF-8 without NULs),
    else ``application/octet-stream``."""
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    head = data[:1024]
    markup = _MARKUP.match(head)
    if markup:
        return "image/svg+xml" if markup.group(3).lower() == b"svg" else "text/html"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as error:
            if error.start < len(head) - 3:  # not only a character cut at the 1024th byte
                return "application/octet-stream"
        return "text/plain"
    return "application/octet-stream"
