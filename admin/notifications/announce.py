"""Announcements: a message an operator writes once to many customers (an outage, new prices,
an offer), through email, SMS and/or the portal.

Each customer gets one message per channel, cause ``announcement:<uuid>:<customer>`` (the uuid
names the announcement), due at once. Its subject and body are kept as written; when it is sent
they are rendered through the announcement template (the operator's, else the built-in) as
``extra.subject`` and ``extra.body``, with the customer and the brand around them. A marketing
announcement skips the customers who opted out of marketing (and one of theirs still waiting
when they opt out is cancelled); a legal one (marketing False) goes to everybody.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from admin.auth.store import Connection
from admin.notifications import scheduler, store
from admin.notifications.model import CHANNELS


class AnnouncementError(ValueError):
    """An announcement that cannot be made: ``str()`` says why, for the form."""


async def announce(conn: Connection, *, partner_id: int | None, customer_ids: Sequence[int], channels: Sequence[str],
                   subject: str, body: str, marketing: bool, created_by: str, now: dt.datetime | None = None) -> int:
    """Make the announcement's messages (to the customers of ``partner_id`` among ``customer_ids``;
    None: whoever's they are) and wake the delivery; how many messages were made."""
    wrong = [c for c in channels if c not in CHANNELS]
    if wrong or not channels:
        raise AnnouncementError(f"channels are {', '.join(CHANNELS)}; not {', '.join(wrong) or 'none'}")
    if not body.strip():
        raise AnnouncementError("an announcement needs a text")
    if "email" in channels and not subject.strip():
        raise AnnouncementError("an email announcement needs a subject")
    if "\n" in subject or "\r" in subject or len(subject) > 250:
        raise AnnouncementError("the subject is one line of at most 250 characters")
    at = now or dt.datetime.now(dt.UTC)
    made = await store.insert_announcement(
        conn, partner_id=partner_id, customer_ids=customer_ids, channels=sorted(set(channels)),
        cause=f"announcement:{uuid.uuid4()}", marketing=marketing, subject=subject.strip(), body=body,
        send_at=at, created_by=created_by)
    if made:
        await scheduler.wake(conn)
    return made
