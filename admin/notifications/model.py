"""What the notification modules share: the kinds of notice, the channels, a message on its way
out, and how a channel says it went (or why not).

A transport (mail.py, sms.py) takes an :class:`Outgoing` and returns a :class:`Delivered`, or
raises :class:`TemporaryFailure` (try again later: the server is down, a 4xx SMTP answer, a
gateway's 5xx or timeout) or :class:`PermanentFailure` (trying again gives the same answer: no
address, a refused recipient, an invalid number, a 4xx from the gateway). The delivery loop
(deliver.py) retries the first with backoff and holds the second as failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args

Channel = Literal["email", "sms", "portal"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)

DocumentKind = Literal["invoice", "proforma", "payment", "credit_note"]
"""Notices of a document, sent when it is made (after the rule's delay, in the send window)."""
DOCUMENT_KINDS: tuple[DocumentKind, ...] = get_args(DocumentKind)

ScheduledKind = Literal["reminder_1", "reminder_2", "reminder_3", "prepaid_1", "prepaid_2", "prepaid_3",
                        "blocking", "inactive", "card_expiry", "contract_end"]
"""Notices the daily schedule finds (at the rule's hour), from the state of the customer."""
SCHEDULED_KINDS: tuple[ScheduledKind, ...] = get_args(ScheduledKind)

RuleKind = DocumentKind | ScheduledKind
RULE_KINDS: tuple[str, ...] = (*DOCUMENT_KINDS, *SCHEDULED_KINDS)
"""The kinds a notice rule (table notice_rules) is kept for."""

TemplateKind = Literal[DocumentKind, ScheduledKind, "ticket_reply", "ticket_staff", "portal_code", "announcement"]
TEMPLATE_KINDS: tuple[str, ...] = (*RULE_KINDS, "ticket_reply", "ticket_staff", "portal_code", "announcement")
"""The kinds a message template (table message_templates) is kept for. ``ticket_staff``: an
agent told of a new ticket or a message on one (admin/tickets/store.py), by e-mail only.
``portal_code``: a customer's code to set a new portal password (admin/portal/login.py), by
e-mail or SMS, to the address or number it was asked for."""

KIND_TITLES: dict[str, str] = {
    "invoice": "Invoice", "proforma": "Proforma invoice", "payment": "Payment receipt", "credit_note": "Credit note",
    "reminder_1": "Payment reminder 1", "reminder_2": "Payment reminder 2", "reminder_3": "Payment reminder 3",
    "prepaid_1": "Prepaid notice 1", "prepaid_2": "Prepaid notice 2", "prepaid_3": "Prepaid notice 3",
    "blocking": "Blocking wave", "inactive": "Inactive wave", "card_expiry": "Card expiry",
    "contract_end": "Contract end", "ticket_reply": "Ticket reply", "ticket_staff": "Ticket notice to staff",
    "portal_code": "Portal password code", "announcement": "Announcement",
}

Status = Literal["scheduled", "sending", "sent", "failed", "cancelled"]
STATUSES: tuple[Status, ...] = get_args(Status)


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str  # "invoice-2026000123.pdf"
    content_type: str  # "application/pdf"
    data: bytes


@dataclass(frozen=True, slots=True)
class Thread:
    """The threading headers of a person's reply (a helpdesk ticket's: messages.reply_headers):
    the mail goes out with this Message-ID exactly, In-Reply-To and References (when given) and
    without Auto-Submitted (RFC 3834: it is not an automatic message)."""

    message_id: str  # "<ticket-12.34@example.net>"
    in_reply_to: str = ""  # "<parent@example.net>"; '' : none
    references: str = ""  # "<a@x> <b@y>", oldest first; '' : none


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message ready for its channel: rendered, addressed, with its files."""

    message_id: int  # messages.id; mail's Message-ID is made from it, so a resend is the same message
    channel: Channel
    recipient: str  # an email address, or a phone number as the customer's record has it (sms.py normalises)
    subject: str
    body: str  # plain text
    html: str | None = None  # email only: the HTML part beside the text
    cc: tuple[str, ...] = ()  # email only: in the Cc header (a ticket's CC), and in the envelope
    bcc: tuple[str, ...] = ()  # email only: in the envelope only
    attachments: tuple[Attachment, ...] = ()
    region: str = ""  # sms: the ISO country a national number is read in ('' : the transport's default)
    thread: Thread | None = None  # email only: a reply's own Message-ID and threading headers (None: a notice)


@dataclass(frozen=True, slots=True)
class Delivered:
    """The channel took the message: its id there (the Message-ID, the gateway's message id) and
    the answer as the provider wrote it (for the messages log)."""

    provider_id: str
    answer: str = ""


class DeliveryError(Exception):
    """A message that did not go: ``str()`` is one line for the messages log."""

    def __init__(self, message: str, answer: str = "") -> None:
        super().__init__(message)
        self.answer = answer


class TemporaryFailure(DeliveryError):
    """Try again later (with backoff): nothing about the message itself is wrong."""


class PermanentFailure(DeliveryError):
    """Trying again would get the same answer: the message is held as failed."""


class Unreachable(TemporaryFailure):
    """The channel cannot be reached at all (connection refused or timed out, TLS handshake or
    credentials refused): nothing about this message, and the next ones would fail the same way.
    The delivery loop puts the rest of that transport's batch back untouched (no attempt counted)
    and never holds a message as failed for it: an outage loses nothing."""


class Transport(Protocol):
    """A channel's connection out (one per partner's settings, kept open between messages)."""

    async def send(self, message: Outgoing) -> Delivered: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class MailSettings:
    """A partner's mail server (notification_settings, its password opened)."""

    host: str
    port: int = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    password: str = ""
    sender: str = ""  # "Name <address>" or an address: the From header and the envelope sender
    reply_to: str = ""
    per_minute: int = 6000
    timeout: float = 30.0
    ca_file: str = ""  # a CA bundle to verify the server with ('' : the system's); tests pass their own
    verify: bool = True


@dataclass(frozen=True, slots=True)
class SmsSettings:
    """A partner's SMS gateway (notification_settings, its Authorization header opened)."""

    url: str
    format: Literal["json", "form"] = "json"
    to_field: str = "to"
    text_field: str = "text"
    from_field: str = "from"
    sender: str = ""
    auth_header: str = ""
    id_field: str = "id"
    region: str = ""  # ISO country for national numbers
    per_minute: int = 60
    timeout: float = 15.0
    extra: dict[str, str] = field(default_factory=dict)
