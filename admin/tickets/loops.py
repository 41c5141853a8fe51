"""Whether an incoming mail may be answered automatically (an acknowledgement, an auto-reply):
never a machine's mail, so that two systems cannot answer each other for ever. Pure.

:func:`no_reply` gives the reason not to answer, or None; the mail still becomes a ticket (or a
message on one): only the automatic answer is left out. Machine mail is recognised by (RFC 3834
and the headers mail systems actually send):

- ``Auto-Submitted`` other than ``no`` (auto-replied, auto-generated, auto-notified);
- ``Precedence: bulk``, ``junk``, ``list`` or ``auto_reply``;
- ``X-Auto-Response-Suppress`` naming ``All`` or ``AutoReply`` (Exchange asks not to be answered);
- ``X-Autoreply`` / ``X-Autorespond`` (vacation programs; any value but "no");
- ``List-Id`` or ``List-Unsubscribe`` (a mailing list);
- a null ``Return-Path`` (``<>``: bounces and other notifications, RFC 3834 section 2);
- a sender such as ``MAILER-DAEMON``, ``postmaster``, ``noreply``, ``owner-…``, ``…-request``;
- a report (``multipart/report``: delivery status notifications, read receipts, feedback);
- a sender that is one of our own inbox addresses.

:func:`may_reply` limits answers to one address per hour, which stops a loop with another
helpdesk that passes all of the above.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from admin.tickets.inbound import InboundMail


class Reason(StrEnum):
    AUTO_SUBMITTED = "auto-submitted"
    PRECEDENCE = "precedence"
    SUPPRESSED = "auto-response-suppress"
    AUTOREPLY = "autoreply"
    MAILING_LIST = "mailing-list"
    NULL_SENDER = "null-sender"
    SYSTEM_SENDER = "system-sender"
    REPORT = "report"
    OWN_ADDRESS = "own-address"


@dataclass(frozen=True, slots=True)
class NoReply:
    reason: Reason
    detail: str  # for the ticket's history: "Auto-Submitted: auto-replied"


#: Replies per address and hour past which we stop answering (:func:`may_reply`).
REPLY_LIMIT = 5

_SYSTEM = frozenset({"mailer-daemon", "postmaster", "noreply", "no-reply", "no_reply", "donotreply",
                     "do-not-reply", "do_not_reply", "bounce", "bounces", "listserv", "majordomo", "daemon"})
_SYSTEM_PREFIXES = ("noreply", "no-reply", "no_reply", "donotreply", "do-not-reply", "bounce+", "bounces+",
                    "bounce-", "bounces-", "owner-", "mailer-daemon")
_SYSTEM_SUFFIXES = ("-request", "-bounces", "-owner")


def no_reply(mail: InboundMail, own_addresses: Collection[str] = ()) -> NoReply | None:
    """Why ``mail`` must not be answered automatically, or None when it may be.
    ``own_addresses``: our inboxes' addresses (any case)."""
    auto = mail.header("auto-submitted").strip()
    if auto and auto.split(";")[0].strip().lower() != "no":
        return NoReply(Reason.AUTO_SUBMITTED, f"Auto-Submitted: {auto}")
    precedence = mail.header("precedence").strip()
    if precedence.lower() in ("bulk", "junk", "list", "auto_reply"):
        return NoReply(Reason.PRECEDENCE, f"Precedence: {precedence}")
    suppress = mail.header("x-auto-response-suppress")
    if {token.strip().lower() for token in suppress.split(",")} & {"all", "autoreply"}:
        return NoReply(Reason.SUPPRESSED, f"X-Auto-Response-Suppress: {suppress}")
    for name in ("X-Autoreply", "X-Autorespond"):
        value = mail.header(name).strip()
        if value and value.lower() not in ("no", "false", "0"):
            return NoReply(Reason.AUTOREPLY, f"{name}: {value}")
    for name in ("List-Id", "List-Unsubscribe"):
        if mail.header(name).strip():
            return NoReply(Reason.MAILING_LIST, f"{name}: {mail.header(name).strip()}")
    if mail.header("return-path").replace(" ", "") == "<>":
        return NoReply(Reason.NULL_SENDER, "Return-Path: <>")
    address = mail.sender.address if mail.sender else ""
    local = address.rpartition("@")[0].lower()
    if not address:
        return NoReply(Reason.SYSTEM_SENDER, "no sender address")
    if local in _SYSTEM or local.startswith(_SYSTEM_PREFIXES) or local.endswith(_SYSTEM_SUFFIXES):
        return NoReply(Reason.SYSTEM_SENDER, f"sender {address}")
    if mail.content_type == "multipart/report":
        return NoReply(Reason.REPORT, "Content-Type: multipart/report")
    if address in {a.strip().lower() for a in own_addresses}:
        return NoReply(Reason.OWN_ADDRESS, f"sender {address} is one of our inboxes")
    return None


def may_reply(replies_last_hour: int, limit: int = REPLY_LIMIT) -> bool:
    """Whether one more automatic answer may go to an address that got ``replies_last_hour``
    from us in the last hour (the store counts them)."""
    return replies_last_hour < limit
