"""Notifications' jobs in the worker (admin/worker/jobs.py finds them here).

- ``notifications.schedule`` (hourly at :02): the day's scheduled notices whose hour has come
  in each partner's zone (scheduler.run_day): reminders, prepaid notices, blocking and inactive
  waves, card expiry, contract end. Made once each (messages_once), so a rerun, or the next
  hour's run, makes nothing twice.
- ``notifications.deliver`` (every minute): the messages due, sent (deliver.py), until none is
  due or :data:`RUN_FOR` seconds passed; SIGTERM ends it after the message in flight. Code that
  makes a message due now calls :func:`wake`, which queues it at once (once: under the
  schedule's dedupe key, so a run queued or running takes it).

The events outbox's and webhooks' jobs (``events.dispatch``, ``webhooks.deliver``,
``events.sessions``, ``events.prune``) are declared in event_jobs.py and join the worker with this
module.
"""

from __future__ import annotations

import datetime as dt

from admin.auth.store import Connection
from admin.notifications import deliver, event_jobs, scheduler
from admin.worker import queue
from admin.worker.jobs import Context, job
from admin.worker.settings import WorkerSettings
from daemons.config import SettingsError

__all__ = ["event_jobs", "wake"]  # event_jobs' jobs join the worker's with this module

DELIVER = "notifications.deliver"
RUN_FOR = 50.0
"""Seconds one delivery run keeps going while messages are due (the next minute's run goes on)."""


async def wake(conn: Connection) -> None:
    """Queue the delivery job now (in the caller's transaction: queued if it commits)."""
    await queue.enqueue(conn, DELIVER, dedupe_key=queue.schedule_key(DELIVER))


def lease(ctx: Context) -> float:
    """How long a claimed message stays leased to this worker: twice the worker's heartbeat
    timeout (60 s by default), the time after which a lost worker's jobs are taken again too."""
    try:
        return 2 * ctx.settings.of(WorkerSettings).heartbeat_timeout
    except SettingsError:
        return deliver.LEASE


@job("notifications.schedule", schedule="2 * * * *", retries=3, timeout=1800)
async def schedule_notices(ctx: Context) -> None:
    """Schedule the notices whose hour has come today (reminders, prepaid, waves, cards, contracts)."""
    async with ctx.pool.acquire() as conn:
        made = await scheduler.run_day(conn, dt.datetime.now(dt.UTC))
    ctx.log.info("notices scheduled", **{k: n for k, n in made.items() if n})


@job(DELIVER, schedule="* * * * *", retries=3, timeout=300)
async def deliver_messages(ctx: Context) -> None:
    """Send the messages that are due."""
    done = await deliver.deliver(ctx.pool, ctx.settings, lease=lease(ctx), stop=ctx.stopping, seconds=RUN_FOR,
                                 portal_url=_portal_url(ctx), admin_url=_admin_url(ctx))
    if done.handled or done.expired:
        ctx.log.info("messages delivered", **done.as_log())


def _portal_url(ctx: Context) -> str:
    """The customers' portal, for the templates' ``customer.portal_url`` ('' : unknown)."""
    try:
        base = str(getattr(ctx.settings.section("admin"), "public_url", "") or "")
    except SettingsError:
        return ""
    return f"{base.rstrip('/')}/portal/" if base else ""


def _admin_url(ctx: Context) -> str:
    """The admin as browsers reach it, for the links of staff notices (its public_url, else
    http://bind:port; '' : unknown)."""
    try:
        admin = ctx.settings.section("admin")
    except SettingsError:
        return ""
    base = str(getattr(admin, "public_url", "") or "")
    bind, port = getattr(admin, "bind", None), getattr(admin, "port", None)
    if not base and bind and port:
        base = f"http://{bind}:{port}"
    return base.rstrip("/")
