"""Delivering webhooks: each pending delivery POSTed to its URL, signed, retried with backoff, every
attempt written down.

:func:`deliver` claims due deliveries (``FOR UPDATE SKIP LOCKED``, then a lease: a claimed delivery
is due again when its lease ends, so a worker that dies leaves it to the next), oldest first and at
most ``per_webhook`` of one webhook in flight at once (one URL never gets more than a few requests
at a time; the others' are not held up behind a slow one), ``concurrency`` in all. Each POST carries
the event as JSON (``{"id", "type", "occurred_at", "data"}``) and the headers ``Lastmile-Signature``
(admin/notifications/sign.py), ``Lastmile-Event`` (the type), ``Lastmile-Delivery`` (the delivery's
id, the same on every retry and replay: receivers dedupe by it) and ``User-Agent``. A 2xx answer
delivers it; anything else (another status, a redirect, which is not followed, a timeout, a refused
connection, a TLS error) is an attempt that failed: tried again after :func:`backoff` (30 s, then 1,
2, 4, ... minutes up to 6 hours), and after :data:`MAX_ATTEMPTS` the delivery is failed (the admin's
"Replay" makes it pending again). Every attempt is a row of webhook_attempts: the status, the first
2 KiB of the answer, the error, how long it took.

Delivery is at least once: a worker killed after the POST and before its write, or a replay while
one is in flight, sends again, under the same ``Lastmile-Delivery``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.metadata
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
from prometheus_client import Counter

from admin.notifications import event_types, sign
from admin.notifications import webhooks_store as store
from daemons import log
from daemons.metrics import REGISTRY
from daemons.secrets import Keyring, SecretError

SECRET_PURPOSE = "webhooks.secret"  # noqa: S105  # what the secrets are sealed for, no secret
MAX_ATTEMPTS = 12
BODY_KEPT = 2048  # bytes of an answer kept with its attempt
RESULTS = ("delivered", "retried", "failed")

DELIVERIES = Counter(
    "lastmile_webhook_deliveries_total",
    "Webhook delivery attempts by result: delivered (2xx), retried (failed, tried again later), failed (out "
    "of attempts).", ["result"], registry=REGISTRY)
for _result in RESULTS:
    DELIVERIES.labels(_result)

_log = log.get("lastmile.notifications.webhooks")


def _version() -> str:
    try:
        return importlib.metadata.version("lastmile")
    except importlib.metadata.PackageNotFoundError:
        return "0"


USER_AGENT = f"lastmile-webhooks/{_version()}"


def backoff(attempts: int) -> dt.timedelta:
    """The wait after the ``attempts``-th failed attempt: 30 s, then 1, 2, 4, ... minutes, at most 6 hours."""
    if attempts <= 1:
        return dt.timedelta(seconds=30)
    return min(dt.timedelta(minutes=2 ** min(attempts - 2, 20)), dt.timedelta(hours=6))


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    keyring: Keyring
    timeout: float = 10.0  # seconds for one POST: connecting, sending and the answer's first 2 KiB
    concurrency: int = 16  # POSTs in flight at once, in all
    per_webhook: int = 4  # POSTs in flight at once to one webhook
    lease: float = 60.0  # seconds a claimed delivery is ours (longer than timeout)
    scan: int = 500  # due deliveries a claim looks at (the oldest), per look
    user_agent: str = USER_AGENT


@dataclass
class Result:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)  # the first few, for the job's log line

    @property
    def attempts(self) -> int:
        return self.delivered + self.retried + self.failed


@dataclass(frozen=True, slots=True)
class Answer:
    status: int | None
    body: str
    error: str
    ms: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def body_of(row: Any) -> bytes:
    """The JSON body of a delivery's event (the same on every attempt)."""
    return event_types.envelope(row["event_id"], row["type"], row["occurred_at"], row["payload"])


def headers(row: Any, body: bytes, secret: str, t: int, user_agent: str = USER_AGENT) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": user_agent, "Lastmile-Event": row["type"],
            "Lastmile-Delivery": str(row["id"]), sign.HEADER: sign.sign(secret, body, t)}


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").replace("\x00", "")


async def post(session: aiohttp.ClientSession, url: str, body: bytes, hdrs: dict[str, str], timeout: float) -> Answer:
    """One POST, never raising: what came back, or why nothing did."""
    started = time.monotonic()
    status: int | None = None
    kept = b""
    error = ""
    try:
        async with asyncio.timeout(timeout):
            async with session.post(url, data=body, headers=hdrs, allow_redirects=False) as response:
                status = response.status
                while len(kept) < BODY_KEPT:
                    chunk = await response.content.read(BODY_KEPT - len(kept))
                    if not chunk:
                        break
                    kept += chunk
                if 300 <= status < 400:
                    error = f"redirect to {response.headers.get('Location', '?')[:200]} not followed"
                elif not 200 <= status < 300:
                    error = f"HTTP {status}"
    except TimeoutError:
        error = (f"no answer in {timeout:g} s" if status is None
                 else f"HTTP {status}, its body not read in {timeout:g} s")
    except aiohttp.InvalidURL as e:
        error = f"invalid URL: {e}"
    except (aiohttp.ClientError, OSError) as e:
        error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return Answer(status, _text(kept), error[:1000], round((time.monotonic() - started) * 1000))


async def attempt(session: aiohttp.ClientSession, settings: DeliverySettings, row: Any, t: int) -> Answer:
    """Send one claimed delivery (its secret opened here; one that does not open fails the attempt)."""
    try:
        secret = settings.keyring.open(row["secret"], SECRET_PURPOSE)
    except SecretError as e:
        return Answer(None, "", f"the webhook's secret does not open: {e}", 0)
    body = body_of(row)
    return await post(session, row["url"], body, headers(row, body, secret, t, settings.user_agent), settings.timeout)


def outcome(row: Any, answer: Answer, at: dt.datetime) -> tuple[str, tuple[Any, ...]]:
    """(result, the settle row) of one attempt of a claimed delivery."""
    tried = row["attempts"] + 1
    if answer.ok:
        result, status, retry_at = "delivered", "delivered", None
    elif tried >= MAX_ATTEMPTS:
        result, status, retry_at = "failed", "failed", None
    else:
        result, status, retry_at = "retried", "pending", at + backoff(tried)
    return result, (row["id"], at, answer.status, answer.body, answer.error, answer.ms, status, retry_at,
                    row["lease_until"])


Clock = Callable[[], dt.datetime]


async def deliver(pool: asyncpg.Pool, settings: DeliverySettings, *, now: Clock, limit: int = 10_000,
                  stop: Callable[[], bool] = lambda: False, session: aiohttp.ClientSession | None = None) -> Result:
    """Deliver what is due, until nothing is, ``limit`` deliveries are claimed, or ``stop()`` says so
    (then the ones in flight finish); the counts. ``now`` is the clock (tests pass a fixed one)."""
    own = session is None
    http = session or aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=settings.concurrency))
    result = Result()
    busy: dict[int, int] = defaultdict(int)
    tasks: dict[asyncio.Task[tuple[str, Answer]], Any] = {}
    claimed = 0
    more = True
    failure: BaseException | None = None

    async def one(row: Any) -> tuple[str, Answer]:
        answer = await attempt(http, settings, row, int(now().timestamp()))
        kind, values = outcome(row, answer, now())
        async with pool.acquire() as conn:
            await store.settle(conn, values)
        return kind, answer

    try:
        while True:
            room = settings.concurrency - len(tasks)
            if (more and failure is None and not stop() and claimed < limit
                    and (not tasks or room >= max(1, settings.concurrency // 2))):
                wanted = min(room, limit - claimed)
                at = now()
                async with pool.acquire() as conn:
                    rows = await store.claim(conn, at, wanted, settings.per_webhook, busy,
                                             at + dt.timedelta(seconds=settings.lease), settings.scan)
                for row in rows:
                    busy[row["webhook_id"]] += 1
                    tasks[asyncio.ensure_future(one(row))] = row
                claimed += len(rows)
                # Fewer than asked: nothing more is due, unless a webhook's limit held some back.
                more = len(rows) == wanted or any(n >= settings.per_webhook for n in busy.values())
            if not tasks:
                break
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                row = tasks.pop(task)
                busy[row["webhook_id"]] -= 1
                if task.exception() is not None:
                    failure = failure or task.exception()
                    continue
                kind, answer = task.result()
                DELIVERIES.labels(kind).inc()
                setattr(result, kind, getattr(result, kind) + 1)
                if not answer.ok and len(result.errors) < 5:
                    result.errors.append(f"{row['url'][:100]}: {answer.error}")
                more = more or bool(done)
    finally:
        if tasks:  # cancelled (the job's timeout): the leases bring them back
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if own:
            await http.close()
    if failure is not None:
        raise failure
    return result
