"""Email to ticket: every enabled inbox read over IMAP (mailbox.py), each mail made a ticket or a
message on one (store.py), then marked read.

What a mail becomes (:func:`take`, in one transaction):

1. Bytes that are no mail at all, mail from one of our own inboxes (our reply come back), and
   mail the deny-list refuses (denylist.py) are dropped, counted by reason, and marked read.
2. A reply: the ticket its In-Reply-To/References name (our Message-IDs carry the ticket, and
   the sender's earlier mail is known by its own), else the ``[#id]`` in its subject
   (threading.py); taken only if the sender is one of that ticket's parties (thread_ticket).
   A machine's mail on a ticket (an auto-reply, loops.py) is kept as a system line, so a
   vacation notice does not move the ticket to "waiting on agent".
3. Else a new ticket of the customer whose address it is (of the inbox's partner), or of the
   unknown sender when the inbox accepts them (else dropped, counted), with the inbox's group,
   priority and type.

A mail read twice (a crash before it was marked read, another worker) lands once: its
Message-ID is unique among the messages. Nothing is answered automatically here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, cast

import asyncpg
from prometheus_client import Counter as Metric
from prometheus_client import Histogram

from admin.auth.store import Connection
from admin.tickets import denylist, inbound, intake_store, loops, store, threading
from admin.tickets.automation import Author
from admin.tickets.mailbox import Mailbox, MailboxError, MailboxSettings
from daemons.metrics import REGISTRY
from daemons.secrets import Keyring, SecretError


class Outcome(StrEnum):
    CREATED = "created"  # a new ticket
    REPLIED = "replied"  # a message on a ticket
    DUPLICATE = "duplicate"  # its Message-ID is a message already
    UNREADABLE = "unreadable"  # not mail
    OWN = "own"  # from one of our inboxes
    DENIED = "denied"  # the deny-list
    UNKNOWN = "unknown"  # an unknown sender, refused by the inbox


MAILS = Metric("lastmile_tickets_mails", "Mails read from the inboxes, by what they became.", ["outcome"],
               registry=REGISTRY)
LATENCY = Histogram("lastmile_tickets_mail_seconds", "Seconds from a mail's Date header to its ticket message "
                    "(mail that says it is from the future counts 0).", buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
                    registry=REGISTRY)
ERRORS = Metric("lastmile_tickets_inbox_errors", "Times an inbox could not be read (the reason is its last_error).",
                registry=REGISTRY)


@dataclass(frozen=True, slots=True)
class Inbox:
    id: int
    partner_id: int
    name: str
    address: str
    mailbox: MailboxSettings
    accept_unknown: bool
    group_id: int | None
    priority: str
    type: str
    uidvalidity: int
    last_uid: int

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()


def inbox_of(row: Any, keyring: Keyring, *, timeout: float = 10.0, verify: bool = True, ca_file: str = "") -> Inbox:
    """An inbox row as the intake reads it (its password opened)."""
    security = cast("Literal['none', 'starttls', 'tls']", row["security"])
    return Inbox(
        id=row["id"], partner_id=row["partner_id"], name=row["name"], address=row["address"].lower(),
        mailbox=MailboxSettings(
            host=row["host"], port=row["port"], security=security, username=row["username"],
            password=keyring.open(row["password"], intake_store.PASSWORD_PURPOSE), folder=row["folder"],
            unread_only=row["read_mode"] == "unread", since=row["since"], mark_read=row["mark_read"],
            timeout=timeout, verify=verify, ca_file=ca_file),
        accept_unknown=row["accept_unknown"], group_id=row["group_id"], priority=row["priority"], type=row["type"],
        uidvalidity=row["uidvalidity"], last_uid=row["last_uid"])


async def deny_list(conn: Connection, inbox_id: int) -> list[denylist.Rule]:
    """The inbox's deny-list (its own rules and everyone's), read once per batch of mail; a rule
    that cannot match (denylist.problems) is left out here rather than checked at every mail. A
    regular expression is compiled once per pattern (denylist's cache)."""
    rules = [denylist.Rule(denylist.Field(r["field"]), denylist.Match(r["match"]), r["pattern"])
             for r in await intake_store.deny_rules(conn, inbox_id)]
    return [rule for rule in rules if not denylist.problems(rule)]


async def take(conn: Connection, inbox: Inbox, raw: bytes, *, now: dt.datetime,
               own: frozenset[str] = frozenset(), rules: Sequence[denylist.Rule] | None = None) -> Outcome:
    """What one mail becomes (see the module); writes it in one transaction. ``rules``: the
    inbox's deny-list as :func:`deny_list` read it (read here when not given)."""
    try:
        mail = inbound.parse(raw)
    except inbound.InboundError:
        return Outcome.UNREADABLE
    sender = mail.sender.address if mail.sender else ""
    machine = loops.no_reply(mail, own | {inbox.address})
    if machine is not None and machine.reason is loops.Reason.OWN_ADDRESS:
        return Outcome.OWN
    if rules is None:
        rules = await deny_list(conn, inbox.id)
    if denylist.check(rules, mail) is not None:
        return Outcome.DENIED
    problems = list(mail.problems)
    if machine is not None:
        problems.append(f"sent by a machine ({machine.detail}): not answered")
    async with conn.transaction():
        ticket = await _thread(conn, inbox, mail, sender) if sender else None
        try:
            if ticket is not None:
                author = Author.SYSTEM if machine is not None else Author.CUSTOMER
                added = await store.add_message(conn, ticket, store.NewMessage(
                    author, mail.reply or mail.text, from_address=sender, from_name=mail.sender.name if mail.sender
                    else "", mail_id=mail.message_id or None, problems=tuple(problems),
                    attachments=mail.attachments), now=now)
                return Outcome.REPLIED if added is not None else Outcome.DUPLICATE
            customer = await intake_store.customer_of(conn, inbox.partner_id, sender) if sender else None
            if customer is None and (not inbox.accept_unknown or not sender):
                return Outcome.UNKNOWN
            created = await store.create_ticket(conn, store.NewTicket(
                subject=mail.subject.strip() or "(no subject)", body=mail.text, source="email",
                partner_id=inbox.partner_id, customer_id=customer["id"] if customer else None,
                requester_email=sender, requester_name=mail.sender.name if mail.sender else "",
                priority=inbox.priority, type=inbox.type, group_id=inbox.group_id, inbox_id=inbox.id,
                cc=tuple(p.address for p in mail.cc if p.address != inbox.address), created_by=f"inbox:{inbox.name}",
                mail_id=mail.message_id or None, problems=tuple(problems), attachments=mail.attachments,
                machine=machine is not None), now=now)
        except store.Duplicate:
            return Outcome.DUPLICATE
    if created is None:
        return Outcome.DUPLICATE
    if mail.date is not None:
        LATENCY.observe(max((now - mail.date).total_seconds(), 0.0))
    return Outcome.CREATED


async def _thread(conn: Connection, inbox: Inbox, mail: inbound.InboundMail, sender: str) -> int | None:
    """The ticket the mail answers, if its sender may write into it."""
    hints = threading.hints(mail, inbox.domain)
    candidates = [hints.by_header, await intake_store.ticket_by_mail_ids(conn, hints.foreign_ids), hints.by_subject]
    for ticket_id in candidates:
        if ticket_id is not None:
            found = await intake_store.thread_ticket(conn, ticket_id, inbox.partner_id, sender)
            if found is not None:
                return int(found["id"])
    return None


@dataclass
class Reading:
    """What one run of one inbox did."""

    outcomes: Counter[str]
    error: str = ""


async def read(pool: asyncpg.Pool, inbox: Inbox, *, stop: asyncio.Event, seconds: float,
               log: Any = None) -> Reading:
    """Read ``inbox`` for ``seconds`` (or until ``stop``): what is there, then each mail as it
    arrives (IDLE; else a poll every 30 s). The deny-list is read once per batch (what one look at
    the mailbox finds), so a rule changed meanwhile counts from the next batch. Each mail is
    marked read after its transaction committed, and the position saved after each; an inbox
    that cannot be read has the reason in its ``last_error``."""
    done = Reading(Counter())
    deadline = time.monotonic() + seconds
    async with pool.acquire() as conn:
        own = frozenset(await intake_store.own_addresses(conn))
    box = Mailbox(inbox.mailbox, last_uid=inbox.last_uid, uidvalidity=inbox.uidvalidity)
    try:
        async with box:
            while not stop.is_set():
                rules: list[denylist.Rule] | None = None
                async for uid, raw in box.new_messages():
                    async with pool.acquire() as conn:
                        if rules is None:  # once the batch has a mail: an idle poll reads nothing
                            rules = await deny_list(conn, inbox.id)
                        outcome = await take(conn, inbox, raw, now=dt.datetime.now(dt.UTC), own=own, rules=rules)
                    await box.mark_seen(uid)
                    MAILS.labels(outcome.value).inc()
                    done.outcomes[outcome.value] += 1
                    if log is not None:
                        log.info("mail taken", inbox=inbox.name, uid=uid, outcome=outcome.value)
                    async with pool.acquire() as conn:
                        await intake_store.save_position(conn, inbox.id, box.uidvalidity, box.last_uid,
                                                         now=dt.datetime.now(dt.UTC))
                    if stop.is_set():
                        break
                left = deadline - time.monotonic()
                if left <= 0 or stop.is_set():
                    break
                waiting = asyncio.ensure_future(box.wait(min(left, 30.0)))
                stopped = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiting, stopped}, return_when=asyncio.FIRST_COMPLETED)
                for pending in (waiting, stopped):
                    if not pending.done():
                        pending.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await pending
    except MailboxError as e:
        done.error = str(e)
        ERRORS.inc()
    async with pool.acquire() as conn:
        await intake_store.save_position(conn, inbox.id, box.uidvalidity, box.last_uid, now=dt.datetime.now(dt.UTC),
                                         error=done.error)
    return done


async def read_all(pool: asyncpg.Pool, keyring: Keyring, *, stop: asyncio.Event, seconds: float,
                   log: Any = None) -> dict[str, Reading]:
    """Read every enabled inbox at once for ``seconds``: each inbox's reading, by its address
    (unique; two inboxes may share a name)."""
    async with pool.acquire() as conn:
        rows = await intake_store.inboxes(conn)
    readers: dict[str, Any] = {}
    results: dict[str, Reading] = {}
    for row in rows:
        try:
            inbox = inbox_of(row, keyring)
        except SecretError as e:
            failed = results[row["address"]] = Reading(Counter(), f"the password cannot be opened: {e}")
            async with pool.acquire() as conn:
                await intake_store.save_position(conn, row["id"], row["uidvalidity"], row["last_uid"],
                                                 now=dt.datetime.now(dt.UTC), error=failed.error)
            continue
        readers[inbox.address] = read(pool, inbox, stop=stop, seconds=seconds, log=log)
    results.update(zip(readers, await asyncio.gather(*readers.values()), strict=True))
    return results
