"""The helpdesk's jobs in the worker (admin/worker/jobs.py finds them here).

- ``tickets.intake`` (every minute, one at a time across the workers): every enabled inbox read
  into tickets (intake.py) for :data:`RUN_FOR` seconds, waiting on IDLE for mail as it arrives,
  so a mail is a ticket within seconds; the next minute's run goes on where this one ended.
  SIGTERM ends it after the mail in flight.
- ``tickets.rules`` (every 5 minutes, one at a time): the automation's enabled rules applied to
  the tickets they are due for (rules_store.py), each ticket in its own transaction.
- ``tickets.automatic`` (every minute, declared in automatic.py): tickets the system opens
  itself for CPE faults, failed payment collections and routers out of sync.
"""

from __future__ import annotations

import datetime as dt

from admin.tickets import automatic, intake, rules_store
from admin.worker.jobs import Context, job
from daemons.secrets import Keyring

__all__ = ["automatic"]  # automatic.py's job joins the worker's with this module

RUN_FOR = 55.0
"""Seconds one intake run reads the inboxes."""


@job("tickets.intake", schedule="* * * * *", retries=3, timeout=120, concurrency=1)
async def read_inboxes(ctx: Context) -> None:
    """Read the inboxes into tickets."""
    keyring = Keyring.load(ctx.settings.secrets)
    done = await intake.read_all(ctx.pool, keyring, stop=ctx.stopping, seconds=RUN_FOR, log=ctx.log)
    for address, reading in done.items():
        if reading.error:
            ctx.log.warning("inbox unreadable", inbox=address, error=reading.error)
        elif reading.outcomes:
            ctx.log.info("inbox read", inbox=address, **dict(reading.outcomes))


@job("tickets.rules", schedule="*/5 * * * *", retries=3, timeout=600, concurrency=1)
async def apply_rules(ctx: Context) -> None:
    """Apply the automation's rules to the tickets they are due for."""
    now = dt.datetime.now(dt.UTC)
    async with ctx.pool.acquire() as conn:
        for row in await rules_store.rule_rows(conn):
            try:
                rule = rules_store.rule_of(row)
            except (TypeError, ValueError) as e:
                ctx.log.warning("ticket rule unreadable", rule=row["id"], error=str(e))
                continue
            done = 0
            for facts in await rules_store.candidates(conn, rule, now):
                if ctx.stopping.is_set():
                    return
                if await rules_store.apply(conn, rule, facts.id, now=now) is not None:
                    done += 1
            if done:
                ctx.log.info("ticket rule applied", rule=rule.id, name=rule.name, tickets=done)
