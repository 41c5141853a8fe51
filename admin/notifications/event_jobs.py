"""The events outbox's and webhooks' jobs in the worker (joined through admin/notifications/jobs.py).

- ``events.dispatch`` (every 5 s, one at a time): pending events to the webhooks subscribed, the
  document notices and MQTT (dispatch.py), 1,000 a transaction, until none is left or 50 s passed.
- ``webhooks.deliver`` (every 10 s, one at a time): due deliveries POSTed (webhooks.py), until none
  is due or 50 s passed.
- ``events.sessions`` (every minute): RADIUS sessions started or stopped up to a minute ago become
  ``session.started`` / ``session.stopped`` events (read from radius_sessions: nothing is added to
  radiusd's path; the minute of lag lets accounting writes in flight commit first).
- ``events.prune`` (daily at 03:40 UTC): dispatched events older than 30 days with their deliveries
  and attempts (not those with a delivery still pending), and older attempts of finished deliveries.

MQTT: with ``[mqtt] url`` set, the worker keeps one publisher (daemons/events.py) that the dispatch
jobs share; it connects on first use.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
import weakref

from admin.notifications import dispatch, events_store, webhooks
from admin.worker.jobs import Context, job
from daemons.config import MqttSettings
from daemons.events import EventPublisher
from daemons.secrets import Keyring

BATCH = 1000
RUN_FOR = 50.0  # seconds a dispatch or delivery run keeps going while there is work
SESSIONS_LAG = dt.timedelta(minutes=1)
KEEP = dt.timedelta(days=30)
PRUNE_BATCH = 10_000

_publishers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, EventPublisher] = weakref.WeakKeyDictionary()


def publisher(settings: MqttSettings) -> EventPublisher | None:
    """The worker's MQTT publisher (started on first use in this event loop), or None without a broker."""
    if not settings.url:
        return None
    loop = asyncio.get_running_loop()
    found = _publishers.get(loop)
    if found is None:
        found = EventPublisher(settings, f"lastmile-worker-{os.getpid()}")
        found.start()
        _publishers[loop] = found
    return found


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@job("events.dispatch", schedule="* * * * * */5", retries=3, timeout=120)
async def dispatch_events(ctx: Context) -> None:
    """Fan the outbox's pending events out: webhooks, document notices, MQTT."""
    events = publisher(ctx.settings.mqtt)
    publish = events.publish_payload if events is not None else None
    deadline = time.monotonic() + RUN_FOR
    total = 0
    async with ctx.pool.acquire() as conn:
        while time.monotonic() < deadline:
            n = await dispatch.dispatch(conn, limit=BATCH, now=_now(), publish=publish)
            total += n
            if n < BATCH:
                break
    if total:
        ctx.log.info("events dispatched", events=total)


@job("webhooks.deliver", schedule="* * * * * */10", retries=3, timeout=120)
async def deliver_webhooks(ctx: Context) -> None:
    """POST the webhook deliveries that are due."""
    settings = webhooks.DeliverySettings(Keyring.load(ctx.settings.secrets))
    deadline = time.monotonic() + RUN_FOR
    done = await webhooks.deliver(ctx.pool, settings, now=_now, stop=lambda: time.monotonic() > deadline)
    if done.attempts:
        ctx.log.info("webhooks delivered", delivered=done.delivered, retried=done.retried, failed=done.failed,
                     errors=done.errors)


@job("events.sessions", schedule="* * * * *", retries=3, timeout=300)
async def session_events(ctx: Context) -> None:
    """RADIUS sessions started and stopped (up to a minute ago) as events."""
    async with ctx.pool.acquire() as conn:
        since, written = await events_store.session_events(conn, _now() - SESSIONS_LAG, SESSIONS_LAG)
    if written:
        ctx.log.info("session events", events=written, since=since.isoformat())


@job("events.prune", schedule="40 3 * * *", retries=3, timeout=3600)
async def prune(ctx: Context) -> None:
    """Delete events older than 30 days with their deliveries, and old attempts."""
    before = _now() - KEEP
    events = attempts = 0
    async with ctx.pool.acquire() as conn:
        while (n := await events_store.prune_events(conn, before, PRUNE_BATCH)) > 0:
            events += n
        while (n := await events_store.prune_attempts(conn, before, PRUNE_BATCH)) > 0:
            attempts += n
    if events or attempts:
        ctx.log.info("events pruned", events=events, attempts=attempts, before=before.isoformat())
