"""Sending the messages that are due: claimed in batches, rendered, sent, each marked as its answer comes.

One call of :func:`deliver` (the ``notifications.deliver`` job runs it for up to ~50 s):

1. puts back the messages whose lease expired (a worker died while sending them: they go again,
   with the same Message-ID, which mail.py makes from the message's id), and, when nothing else
   is due, waits for the leases that expire within its time;
2. claims up to :data:`BATCH` due messages (``sending``, a lease, an attempt counted; committed
   at once) and, for the whole batch in a few queries: drops those whose cause went away
   (cancelled, with why: the reminder's invoice paid, the document voided, the prepaid balance
   topped up, ...), loads what they are rendered from (context_store.py), the operators'
   templates and the PDFs to attach (each document's kept PDF, admin/finance/pdf.py), and the
   files staff attached to a ticket reply (its ticket message's, context_store.ticket_files);
3. sends them through one transport per (partner, channel), kept open for the whole call, each
   transport's messages one after the other (the transports of a batch side by side), at the
   partner's rate limit; portal messages are "sent" by marking them (the portal shows them);
4. marks each message the moment its answer comes: ``sent`` (what was sent, to whom, the
   provider's id and answer), or, on a :class:`~admin.notifications.model.TemporaryFailure`,
   scheduled again after a backoff of 1, 2, 4 ... minutes (at most 6 hours; failed after
   :data:`MAX_ATTEMPTS` attempts), or ``failed`` on a
   :class:`~admin.notifications.model.PermanentFailure` (a refused recipient, no address, a
   template that does not render).

A transport that cannot be reached at all (:class:`~admin.notifications.model.Unreachable`: the
mail server or the gateway is down) fails only the message in flight (retried with backoff, and
never held as failed for it); the rest of that transport's batch, and whatever else of it comes
due in the same call, goes back untouched (no attempt counted) to the same later time: an outage
neither loses messages nor hammers the server. ``stop`` (the worker's SIGTERM) ends the call
after the message in flight; the rest of the batch goes back untouched, to go at once.

So a message is sent once, with one limit: a worker killed (SIGKILL, power) between the server's
"250 OK" and the commit of its mark sends that one message again after its lease, with the
same Message-ID (a receiving server or client may recognise it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import Counter

from admin.auth.store import Connection
from admin.billing import store as billing_store
from admin.finance import pdf as finance_pdf
from admin.finance import queries as finance_queries
from admin.notifications import context_store, store, templates
from admin.notifications.context import MessageContext
from admin.notifications.model import (
    RULE_KINDS,
    Attachment,
    Channel,
    MailSettings,
    Outgoing,
    PermanentFailure,
    SmsSettings,
    TemporaryFailure,
    Thread,
    Transport,
    Unreachable,
)
from admin.notifications.ratelimit import RateLimits
from daemons import log
from daemons.config import Settings
from daemons.metrics import REGISTRY
from daemons.secrets import Keyring, SecretError

BATCH = 100
MAX_ATTEMPTS = 10
MAX_BACKOFF = dt.timedelta(hours=6)
MAX_RATE_WAIT = 1.0
"""Seconds the loop sleeps for a rate limit's next slot; a longer wait puts the rest of that
transport's batch back, due when the slot comes, rather than holding the batch."""
LEASE = 60.0

SENT = Counter("lastmile_messages_sent", "Messages sent (the server or gateway took them; portal messages shown), "
               "by channel.", ["channel"], registry=REGISTRY)
FAILED = Counter("lastmile_messages_failed", "Failed attempts to send a message, by channel and reason: temporary "
                 "(tried again after a backoff) or permanent (held as failed).", ["channel", "reason"],
                 registry=REGISTRY)
CANCELLED = Counter("lastmile_messages_cancelled", "Messages not sent because their cause went away (the invoice "
                    "was paid, the customer opted out, ...).", registry=REGISTRY)

_log = log.get("lastmile.notifications")
RATE_LIMITS = RateLimits()
"""The buckets of this process, kept between calls, so a per-minute limit holds across job runs."""

TransportFactory = Callable[[Channel, MailSettings | SmsSettings], Transport]


def open_transport(channel: Channel, settings: MailSettings | SmsSettings) -> Transport:
    """The channel's transport (mail.py or sms.py) for a partner's settings."""
    if channel == "email":
        from admin.notifications.mail import MailTransport

        assert isinstance(settings, MailSettings)
        return MailTransport(settings)
    from admin.notifications.sms import SmsTransport

    assert isinstance(settings, SmsSettings)
    return SmsTransport(settings)


def backoff(attempts: int) -> dt.timedelta:
    """The wait after the ``attempts``-th failed attempt: 1, 2, 4 ... minutes, at most 6 hours."""
    return min(dt.timedelta(minutes=2 ** min(max(attempts - 1, 0), 16)), MAX_BACKOFF)


@dataclass(slots=True)
class Summary:
    """What one call did."""

    sent: int = 0
    failed: int = 0  # held as failed
    retried: int = 0  # scheduled again after a temporary failure
    cancelled: int = 0
    deferred: int = 0  # put back untouched (an outage, the rate limit, a stop)
    batches: int = 0
    expired: int = 0  # put back after a lost worker's lease
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.failed + self.retried + self.cancelled + self.deferred

    def as_log(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": self.failed, "retried": self.retried, "cancelled": self.cancelled,
                "deferred": self.deferred, "batches": self.batches, "expired": self.expired,
                "errors": self.errors[:10]}


def _keyring(settings: Settings | None) -> Keyring | None:
    if settings is None:
        return None
    try:
        return Keyring.load(settings.secrets)
    except SecretError:
        return None  # a sealed secret then fails to open, and says why


async def deliver(pool: asyncpg.Pool, settings: Settings | None = None, *, now: dt.datetime | None = None,
                  limit: int | None = None, lease: float = LEASE, stop: asyncio.Event | None = None,
                  seconds: float | None = None, batch: int = BATCH, keyring: Keyring | None = None,
                  transport: TransportFactory = open_transport, portal_url: str = "",
                  admin_url: str = "") -> Summary:
    """Send what is due (see the module's docstring) until nothing is, ``limit`` messages were
    handled, ``seconds`` passed or ``stop`` is set. ``now``: a fixed clock (tests); by default
    the time at each step. ``settings``: where the secrets' key is (``keyring`` instead).
    ``portal_url``, ``admin_url``: the customers' portal and the admin, for the templates' links."""
    run = _Run(now, lease, stop or asyncio.Event(), keyring if keyring is not None else _keyring(settings),
               transport, portal_url, None if seconds is None else time.monotonic() + seconds, admin_url)
    try:
        async with pool.acquire() as conn:
            run.rules = await store.rule_rows(conn)
            run.settings = await store.settings_rows(conn)
            while not run.over():
                size = batch if limit is None else min(batch, limit - run.summary.handled)
                if size <= 0:
                    break
                at = run.clock()
                run.summary.expired += await store.put_back_expired(conn, at)
                rows = await store.claim(conn, at, size, at + dt.timedelta(seconds=lease))
                if not rows:
                    if not await run.wait_for_lost_leases(conn):
                        break
                    continue
                run.summary.batches += 1
                await run.batch(conn, rows)
    finally:
        await run.close()
    return run.summary


def _thread(headers: object) -> Thread | None:
    """A reply's threading headers (messages.reply_headers: {"message_id", "in_reply_to",
    "references"}; the header names "Message-ID", ... are read too); None for a notice. Values
    are checked as they are written (mail.build: one line each)."""
    if headers is None:
        return None
    if isinstance(headers, str | bytes):  # a connection without the jsonb codec
        try:
            headers = json.loads(headers)
        except ValueError:
            raise PermanentFailure("the reply's headers are not JSON") from None
    if not isinstance(headers, Mapping):
        raise PermanentFailure("the reply's headers are not an object")
    values: dict[str, str] = {}
    for key, value in headers.items():
        name = str(key).lower().replace("-", "_")
        if name not in ("message_id", "in_reply_to", "references"):
            continue
        if value is None:
            continue
        if not isinstance(value, str):
            raise PermanentFailure(f"the reply's {key} header is not a text")
        values[name] = value
    if not values.get("message_id"):
        raise PermanentFailure("the reply's headers have no message_id")
    return Thread(message_id=values["message_id"], in_reply_to=values.get("in_reply_to", ""),
                  references=values.get("references", ""))


@dataclass(slots=True)
class _Down:
    send_at: dt.datetime
    error: str


class _Run:
    """One call of deliver(): its transports, the outages seen, its summary."""

    def __init__(self, now: dt.datetime | None, lease: float, stop: asyncio.Event, keyring: Keyring | None,
                 factory: TransportFactory, portal_url: str, deadline: float | None, admin_url: str = "") -> None:
        self.fixed = now
        self.lease = lease
        self.stop = stop
        self.keyring = keyring
        self.factory = factory
        self.portal_url = portal_url
        self.admin_url = admin_url
        self.deadline = deadline
        self.summary = Summary()
        self.rules: Mapping[tuple[int | None, str], asyncpg.Record] = {}
        self.ticket_files: Mapping[int, tuple[Attachment, ...]] = {}  # the batch's ticket replies' files
        self.settings: Mapping[int | None, asyncpg.Record] = {}
        self.transports: dict[tuple[int, str], Transport] = {}
        self.down: dict[tuple[int, str], _Down] = {}
        self.db = asyncio.Lock()  # the transports of a batch share the connection: one statement at a time
        self.pending: set[int] = set()
        self.leased_at = 0.0

    def clock(self) -> dt.datetime:
        return self.fixed if self.fixed is not None else dt.datetime.now(dt.UTC)

    def over(self) -> bool:
        return self.stop.is_set() or (self.deadline is not None and time.monotonic() >= self.deadline)

    async def wait_for_lost_leases(self, conn: Connection) -> bool:
        """Nothing is due, but messages a lost worker held come free within this run's time
        (their lease expires): wait for them (True), rather than leave them to the next run."""
        if self.fixed is not None or self.deadline is None:
            return False
        expiry = await store.next_lease_expiry(conn)
        if expiry is None:
            return False
        wait = max((expiry - self.clock()).total_seconds(), 0.0) + 0.05
        if time.monotonic() + wait >= self.deadline:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), wait)
        return True

    async def close(self) -> None:
        for t in self.transports.values():
            try:
                await t.close()
            except Exception as e:  # closing is best effort
                _log.warning("transport not closed cleanly", error=str(e))
        self.transports.clear()

    # -- one batch ---------------------------------------------------------------------------

    async def batch(self, conn: Connection, rows: Sequence[asyncpg.Record]) -> None:
        now = self.clock()
        self.pending = {r["id"] for r in rows}
        self.leased_at = time.monotonic()
        gone = await store.gone(conn, [r["id"] for r in rows])
        live = [r for r in rows if r["id"] not in gone]
        loaded = await context_store.load(conn, live, now.date(), portal_url=self.portal_url,
                                          admin_url=self.admin_url)
        gone.update({i: f"cancelled: {why}" for i, why in loaded.missing.items()})
        for r in live:  # a prepaid notice whose blocking day moved (the balance was topped up)
            ctx = loaded.contexts.get(r["id"])
            if ctx is not None and ctx.prepaid is not None:
                said = r["cause"].rsplit(":", 1)[-1]
                if ctx.prepaid.blocking_on.isoformat() > said:
                    gone[r["id"]] = (f"cancelled: the balance was topped up (blocking now on "
                                     f"{ctx.prepaid.blocking_on.isoformat()}, not {said})")
        if gone:
            await store.cancel_gone(conn, gone)
            CANCELLED.inc(len(gone))
            self.summary.cancelled += len(gone)
            self.pending -= set(gone)
        live = [r for r in live if r["id"] not in gone]
        if not live:
            return
        sources = await store.templates(conn, sorted({r["partner_id"] for r in live}))
        files = await self._attachments(conn, [r for r in live if r["channel"] == "email"])
        self.ticket_files = await context_store.ticket_files(conn, [r for r in live if r["channel"] == "email"])
        groups: dict[tuple[int, str], list[asyncpg.Record]] = defaultdict(list)
        for r in live:
            groups[(r["partner_id"], r["channel"])].append(r)
        portal = [r for key, rs in groups.items() if key[1] == "portal" for r in rs]
        if portal:
            await self._portal(conn, portal, loaded.contexts, sources)
        await asyncio.gather(*(self._send_group(conn, key, rs, loaded.contexts, sources, files)
                               for key, rs in groups.items() if key[1] != "portal"))

    async def _attachments(self, conn: Connection,
                           rows: Sequence[asyncpg.Record]) -> dict[int, Attachment | str]:
        """The PDFs the batch's emails carry, by document: kept ones read at once, the others
        rendered (and kept) now; a str: why it could not be made."""
        wanted = sorted({d for r in rows for d in r["attachments"]})
        if not wanted:
            return {}
        kept = await context_store.kept_pdfs(conn, wanted)
        out: dict[int, Attachment | str] = {}
        for doc_id in wanted:
            row = kept.get(doc_id)
            if row is None:
                out[doc_id] = f"document {doc_id} is gone"
                continue
            data = bytes(row["pdf"]) if row["pdf"] is not None else None
            if data is None:
                doc = await billing_store.document(conn, doc_id)
                if doc is None:
                    out[doc_id] = f"document {doc_id} is gone"
                    continue
                try:
                    rendered = await finance_pdf.render(conn, doc)
                except web.HTTPException as e:
                    out[doc_id] = e.text or f"the PDF of document {doc_id} cannot be made"
                    continue
                data = await finance_queries.keep_document_file(conn, doc_id, hashlib.sha256(rendered).digest(),
                                                                rendered)
            name = f"{row['kind'].replace('_', '-')}-{row['number']}.pdf"
            name = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)
            out[doc_id] = Attachment(name, "application/pdf", data)
        return out

    # -- rendering ---------------------------------------------------------------------------

    def _render(self, r: asyncpg.Record, ctx: MessageContext,
                sources: store.Templates) -> templates.Rendered:
        kind, channel = r["kind"], r["channel"]
        rule = store.rule_for(self.rules, r["partner_id"], kind) if kind in RULE_KINDS else None
        body = sources.source(r["partner_id"], kind, channel, ctx.customer.language)
        rendered = templates.render(kind, channel, ctx, body=body,
                                    subject=rule["subject"] if rule is not None else "")
        if kind in context_store.ADDRESSED and r["subject"]:  # a person's reply: its subject as written
            rendered = dataclasses.replace(rendered, subject=r["subject"])
        return rendered

    def _outgoing(self, r: asyncpg.Record, ctx: MessageContext, rendered: templates.Rendered,
                  files: Mapping[int, Attachment | str]) -> Outgoing:
        channel: Channel = r["channel"]
        if r["kind"] in context_store.ADDRESSED:  # its recipient was set when it was made (a ticket's requester)
            recipient = r.get("recipient") or ""
            if not recipient.strip():
                raise PermanentFailure("the message has no recipient")
        else:
            recipient = ctx.customer.email if channel == "email" else ctx.customer.phone
            if not recipient.strip():
                what = "email address" if channel == "email" else "phone number"
                raise PermanentFailure(f"the customer has no {what}")
        attached: list[Attachment] = []
        if channel == "email":
            for doc_id in r["attachments"]:
                found = files.get(doc_id)
                if isinstance(found, str) or found is None:
                    raise TemporaryFailure(f"attachment: {found or f'document {doc_id} is gone'}")
                attached.append(found)
            attached.extend(self.ticket_files.get(r["id"], ()))  # a ticket reply's: as staff attached them
        cc = tuple(a.strip() for a in (r.get("cc") or "").split(",") if a.strip()) if channel == "email" else ()
        bcc = tuple(a.strip() for a in r["bcc"].split(",") if a.strip()) if channel == "email" else ()
        thread = _thread(r.get("reply_headers")) if channel == "email" else None
        return Outgoing(message_id=r["id"], channel=channel, recipient=recipient.strip(), subject=rendered.subject,
                        body=rendered.text, html=rendered.html, cc=cc, bcc=bcc, attachments=tuple(attached),
                        region=ctx.customer.country, thread=thread)

    # -- marking -----------------------------------------------------------------------------

    async def _marked(self, conn: Connection, action: Callable[[], Any]) -> None:
        async with self.db:
            await action()
            if self.pending and time.monotonic() - self.leased_at > self.lease / 3:
                self.leased_at = time.monotonic()
                await store.extend_lease(conn, sorted(self.pending),
                                         self.clock() + dt.timedelta(seconds=self.lease))

    async def _sent(self, conn: Connection, sent: Sequence[store.Sent], channel: str) -> None:
        await self._marked(conn, lambda: store.mark_sent(conn, sent, self.clock()))
        self.pending -= {s.id for s in sent}
        SENT.labels(channel).inc(len(sent))
        self.summary.sent += len(sent)

    async def _failed(self, conn: Connection, r: asyncpg.Record, error: str, answer: str = "") -> None:
        await self._marked(conn, lambda: store.fail(conn, r["id"], error, answer))
        self.pending.discard(r["id"])
        FAILED.labels(r["channel"], "permanent").inc()
        self.summary.failed += 1

    async def _temporary(self, conn: Connection, r: asyncpg.Record, error: TemporaryFailure) -> dt.datetime:
        """A temporary failure: again after the backoff (held as failed once out of attempts,
        unless the channel was unreachable: an outage never fails a message)."""
        text = str(error)
        if r["attempts"] >= MAX_ATTEMPTS and not isinstance(error, Unreachable):
            await self._failed(conn, r, f"{text} (gave up after {r['attempts']} attempts)", error.answer)
            return self.clock()
        FAILED.labels(r["channel"], "temporary").inc()
        at = self.clock() + backoff(r["attempts"])
        await self._marked(conn, lambda: store.retry_later(conn, r["id"], at, text, error.answer))
        self.pending.discard(r["id"])
        self.summary.retried += 1
        return at

    async def _release(self, conn: Connection, rows: Sequence[asyncpg.Record], at: dt.datetime,
                       error: str = "") -> None:
        if not rows:
            return
        ids = [r["id"] for r in rows]
        await self._marked(conn, lambda: store.release(conn, ids, at, error))
        self.pending -= set(ids)
        self.summary.deferred += len(ids)

    # -- the channels ------------------------------------------------------------------------

    async def _portal(self, conn: Connection, rows: Sequence[asyncpg.Record],
                      contexts: Mapping[int, MessageContext], sources: store.Templates) -> None:
        sent: list[store.Sent] = []
        for r in rows:
            try:
                rendered = self._render(r, contexts[r["id"]], sources)
            except templates.TemplateError as e:
                await self._failed(conn, r, f"the template does not render: {e}")
                continue
            sent.append(store.Sent(r["id"], "", rendered.subject, rendered.text,
                                   keep_text=r["kind"] in context_store.WRITTEN))
        await self._sent(conn, sent, "portal")

    def _transport(self, key: tuple[int, str]) -> Transport | None:
        """The batch's transport of (partner, channel), opened the first time; None: nothing is
        set to send through (PermanentFailure), or its secret does not open (TemporaryFailure)."""
        found = self.transports.get(key)
        if found is not None:
            return found
        partner_id, channel = key
        row = store.effective(self.settings, partner_id)
        try:
            opened = (store.mail_settings(row, self.keyring) if channel == "email"
                      else store.sms_settings(row, self.keyring))
        except SecretError as e:
            raise Unreachable(f"the {'mail server password' if channel == 'email' else 'SMS gateway header'} "
                              f"does not open: {e}") from None
        if opened is None:
            where = "mail server" if channel == "email" else "SMS gateway"
            raise PermanentFailure(f"no {where} is set (Notifications -> Settings)")
        transport = self.transports[key] = self.factory(channel, opened)  # type: ignore[arg-type]
        return transport

    async def _send_group(self, conn: Connection, key: tuple[int, str], rows: Sequence[asyncpg.Record],
                          contexts: Mapping[int, MessageContext], sources: store.Templates,
                          files: Mapping[int, Attachment | str]) -> None:
        """One transport's messages of the batch, one after the other, each marked as it goes."""
        down = self.down.get(key)
        if down is not None:  # down earlier in this call: not tried again before its backoff
            await self._release(conn, rows, down.send_at, down.error)
            return
        try:
            transport = self._transport(key)
        except Unreachable as e:
            at = self.clock() + backoff(1)
            self.down[key] = _Down(at, str(e))
            await self._release(conn, rows, at, str(e))
            return
        except PermanentFailure as e:
            for r in rows:
                await self._failed(conn, r, str(e))
            return
        assert transport is not None
        row = store.effective(self.settings, key[0])
        per_minute = (row["mail_per_minute"] if key[1] == "email" else row["sms_per_minute"]) if row else 60
        bucket = RATE_LIMITS.get(key, per_minute)
        marking: asyncio.Task[None] | None = None  # the last answer's mark, committing while the next is made
        try:
            for i, r in enumerate(rows):
                if self.over():
                    await self._release(conn, rows[i:], self.clock())
                    return
                ctx = contexts[r["id"]]
                try:
                    rendered = self._render(r, ctx, sources)
                    out = self._outgoing(r, ctx, rendered, files)
                except templates.TemplateError as e:
                    await self._failed(conn, r, f"the template does not render: {e}")
                    continue
                except PermanentFailure as e:
                    await self._failed(conn, r, str(e), e.answer)
                    continue
                except TemporaryFailure as e:
                    await self._temporary(conn, r, e)
                    continue
                pause = bucket.delay()
                if pause > MAX_RATE_WAIT:
                    await self._release(conn, rows[i:], self.clock() + dt.timedelta(seconds=pause))
                    return
                if pause > 0:
                    await asyncio.sleep(pause)
                if marking is not None:  # never a message out while the one before is not marked
                    await marking
                    marking = None
                try:
                    delivered = await transport.send(out)
                except Unreachable as e:
                    at = await self._temporary(conn, r, e)
                    self.down[key] = _Down(at, str(e))
                    await self._release(conn, rows[i + 1:], at, str(e))
                    return
                except TemporaryFailure as e:
                    await self._temporary(conn, r, e)
                    continue
                except PermanentFailure as e:
                    await self._failed(conn, r, str(e), e.answer)
                    continue
                except Exception as e:  # a transport's bug: this message waits, the others go
                    _log.exception("message not sent: unexpected error", message=r["id"])
                    self.summary.errors.append(f"message {r['id']}: {type(e).__name__}: {e}")
                    await self._temporary(conn, r, TemporaryFailure(f"unexpected error: {type(e).__name__}: {e}"))
                    continue
                body = rendered.html if rendered.html is not None else rendered.text
                marking = asyncio.ensure_future(self._sent(conn, [store.Sent(
                    r["id"], out.recipient, rendered.subject, body, delivered.provider_id, delivered.answer,
                    keep_text=r["kind"] in context_store.WRITTEN)], key[1]))
        finally:
            if marking is not None:
                await marking
