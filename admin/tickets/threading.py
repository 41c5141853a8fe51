"""Which ticket an incoming mail belongs to, and the headers that make our replies findable. Pure.

Two marks carry the ticket number through a customer's mail program:

- the **subject tag** ``[#1234]`` at the end of the subject (:func:`tag_subject`,
  :func:`reply_subject`). A tag is exactly ``[#`` digits ``]``: no spaces (``[# 12]`` is not a
  tag: we never write one, and the looser the match the likelier another system's tag or a
  customer's text is read as ours). The *last* tag counts, so a subject that already carries a
  foreign or older tag gets ours after it. Ids are 1 to 2**63-1 (a bigint); ``[#0]`` or a longer
  number gives None, it does not fall back to an earlier tag;
- our **Message-IDs** ``<ticket-<t>.<m>@<domain>>`` (:func:`message_id`), which mail programs
  copy into In-Reply-To and References. They are the better mark (a customer edits subjects,
  never headers), so :func:`hints` reads them first: In-Reply-To, then References newest first.

Both marks can be forged by anyone who knows a ticket number: they are hints. The store decides
(e.g. accepts a ticket found this way only when the sender is one of its parties, and opens a
new ticket otherwise). Ids that are not ours (:attr:`Hints.foreign_ids`) are for the store to
look up among the messages it received: a customer's reply to their own earlier mail, or a
colleague's mail on CC, threads by those.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from admin.tickets.inbound import InboundMail

MAX_ID = 2**63 - 1  # a PostgreSQL bigint
#: References an outgoing reply carries (the newest).
MAX_REFERENCES = 20

_TAG = re.compile(r"\[#(\d+)\]")
#: Reply prefixes mail programs write, in the languages of our customers: Re, Aw (German),
#: Antw (Dutch), Sv (Nordic), Vs (Finnish), Odp (Polish), Res (Portuguese); "Re[2]:", "RE :".
_REPLY_PREFIX = re.compile(r"^(?:(?:re|aw|antw|antwort|sv|vs|odp|res)\s*(?:\[\d+\]|\(\d+\))?\s*:\s*)+",
                           re.IGNORECASE)
_OURS = re.compile(r"<ticket-(\d{1,19})\.(\d{1,19})@([^<>\s@]+)>", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def _valid(ticket_id: int) -> bool:
    return 1 <= ticket_id <= MAX_ID


def _clean(subject: str) -> str:
    """Whitespace (and so any line break) collapsed: a subject goes into a header."""
    return " ".join(subject.split())


def ticket_in_subject(subject: str) -> int | None:
    """The ticket of the last ``[#<id>]`` tag in ``subject``, or None (no tag, or a bad id)."""
    tags = _TAG.findall(subject)
    if not tags:
        return None
    digits = tags[-1].lstrip("0")
    if not digits or len(digits) > 19:
        return None
    ticket_id = int(digits)
    return ticket_id if _valid(ticket_id) else None


def tag_subject(subject: str, ticket_id: int) -> str:
    """``subject`` with the tag of ``ticket_id`` at its end, unless its last tag already is that
    one (another ticket's tag stays, ours goes after it); whitespace and line breaks collapse to
    single spaces, and leading reply prefixes (any number, any language) to one "Re: "."""
    if not _valid(ticket_id):
        raise ValueError(f"not a ticket id: {ticket_id}")
    subject = _clean(subject)
    rest = _REPLY_PREFIX.sub("", subject)
    if rest != subject:
        subject = f"Re: {rest}" if rest else "Re:"
    if ticket_in_subject(subject) == ticket_id:
        return subject
    return f"{subject} [#{ticket_id}]" if subject else f"[#{ticket_id}]"


def reply_subject(subject: str, ticket_id: int) -> str:
    """The subject of our reply on a mail with ``subject``: "Re: ", once, and the tag."""
    rest = _REPLY_PREFIX.sub("", _clean(subject))
    return f"Re: {tag_subject(rest, ticket_id)}"


def message_id(ticket_id: int, message_id: int, domain: str) -> str:
    """The Message-ID of our mail for message ``message_id`` of ticket ``ticket_id``. Raises
    ValueError for an id out of 1..2**63-1 or a domain that is not a host name."""
    return _message_id(ticket_id, message_id, domain)


def _message_id(ticket_id: int, message_id: int, domain: str) -> str:
    if not (_valid(ticket_id) and _valid(message_id)):
        raise ValueError(f"not a ticket and message id: {ticket_id}, {message_id}")
    if not _DOMAIN.fullmatch(domain):
        raise ValueError(f"not a domain for a Message-ID: {domain!r}")
    return f"<ticket-{ticket_id}.{message_id}@{domain}>"


def _ours(one: str, domain: str) -> int | None:
    """The ticket of ``one`` when it is a Message-ID of ours for ``domain``."""
    match = _OURS.fullmatch(one.strip())
    if match is None or match.group(3).lower() != domain.lower():
        return None
    ticket_id, mid = int(match.group(1)), int(match.group(2))
    return ticket_id if _valid(ticket_id) and _valid(mid) else None


def ticket_in_ids(ids: Iterable[str], domain: str) -> int | None:
    """The ticket of the last of ``ids`` that is a Message-ID of ours for ``domain`` (any case)."""
    found = None
    for one in ids:
        ticket_id = _ours(one, domain)
        if ticket_id is not None:
            found = ticket_id
    return found


@dataclass(frozen=True, slots=True)
class Hints:
    by_header: int | None  # the ticket of our newest Message-ID in In-Reply-To or References
    by_subject: int | None  # the ticket of the subject's tag
    foreign_ids: tuple[str, ...]  # the other referenced ids, In-Reply-To first, then newest first


def hints(mail: InboundMail, domain: str) -> Hints:
    """What ``mail`` says about its ticket, for our Message-IDs under ``domain``."""
    referenced = [*reversed(mail.in_reply_to), *reversed(mail.references)]  # most telling first
    by_header = next((t for one in referenced if (t := _ours(one, domain)) is not None), None)
    foreign = tuple(dict.fromkeys(one for one in referenced if _ours(one, domain) is None))
    return Hints(by_header=by_header, by_subject=ticket_in_subject(mail.subject), foreign_ids=foreign)


def reply_headers(ticket_id: int, message_id: int, domain: str, parent_ids: Sequence[str]) -> dict[str, str]:
    """Message-ID, In-Reply-To and References of our mail for message ``message_id`` of ticket
    ``ticket_id``. ``parent_ids``: the thread's Message-IDs, oldest first (the one answered last);
    what is not an ``<id>`` is left out, a repeated id keeps its last place, and with no parents
    there is no In-Reply-To or References."""
    headers = {"Message-ID": _message_id(ticket_id, message_id, domain)}
    wellformed = [one.strip() for one in parent_ids if _MESSAGE_ID.fullmatch(one.strip())]
    parents = list(dict.fromkeys(reversed(wellformed)))[::-1]  # a repeated id stays where it was last
    if parents:
        headers["In-Reply-To"] = parents[-1]
        headers["References"] = " ".join(parents[-MAX_REFERENCES:])
    return headers
