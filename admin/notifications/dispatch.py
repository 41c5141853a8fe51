"""The outbox's dispatcher: each event, once, to the webhooks subscribed, to the document notices, and
to MQTT.

Events are written in the transaction that did what they tell (schema.sql's triggers), so an event
exists if and only if its change committed. :func:`dispatch` takes pending ones oldest first
(``FOR UPDATE SKIP LOCKED``: two dispatchers never take the same event) and, in one transaction,
makes a pending delivery for every enabled webhook whose patterns match and whose partner is the
event's (or every partner's), schedules the document notices (admin/notifications/scheduler.py) and
marks them dispatched: either all of it happens or none, so a dispatcher killed half-way leaves the
events to the next one and nothing twice. After the commit each event goes to MQTT
(``lastmile/<subject>/<name>``), best effort as the daemons' events: the publisher's queue never
blocks and counts what it drops (``lastmile_events_dropped_total``); a worker that dies between the
commit and the broker loses those MQTT messages, never a webhook's delivery.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable, Sequence
from typing import Any

from admin.auth.store import Connection
from admin.notifications import event_types
from admin.notifications import events_store as store
from daemons import log

Publish = Callable[[str, str, dict[str, Any]], None]
"""``EventPublisher.publish_payload``: (subject, name, payload); never blocks."""

SCHEDULER = "admin.notifications.scheduler"
_log = log.get("lastmile.notifications.dispatch")
_missing_logged: set[str] = set()


def _scheduler() -> Any | None:
    """The document notices' scheduler, or None (logged once) while that module does not exist."""
    try:
        return importlib.import_module(SCHEDULER)
    except ModuleNotFoundError as e:
        if e.name != SCHEDULER:
            raise
        if SCHEDULER not in _missing_logged:
            _missing_logged.add(SCHEDULER)
            _log.warning("document notices not scheduled: no scheduler module", module=SCHEDULER)
        return None


async def dispatch(conn: Connection, *, limit: int = 1000, now: dt.datetime, publish: Publish | None = None) -> int:
    """Dispatch up to ``limit`` pending events (see the module's docstring); how many. ``publish``:
    where they go on MQTT after the commit (None: nowhere)."""
    scheduler = _scheduler()
    async with conn.transaction():
        events = await store.take_pending(conn, limit)
        if not events:
            return 0
        ids = [e["id"] for e in events]
        deliveries = await store.fan_out(conn, ids, now)
        notices = 0
        if scheduler is not None:
            notices = await scheduler.document_notices(conn, ids, now)
        await store.mark_dispatched(conn, ids, now)
    if publish is not None:
        _publish(publish, events)
    _log.debug("events dispatched", events=len(ids), first=ids[0], last=ids[-1], deliveries=deliveries,
              notices=notices)
    return len(ids)


def _publish(publish: Publish, events: Sequence[Any]) -> None:
    for e in events:
        kind = event_types.BY_TYPE.get(f"{e['subject']}.{e['name']}")
        if kind is not None and not kind.mqtt:
            continue  # sessions: radiusd publishes them as they happen
        try:
            payload = event_types.decode_payload(e["payload"])
        except ValueError:
            continue  # the payload CHECK makes it an object: cannot happen
        publish(e["subject"], e["name"], {**payload, "event_id": e["id"], "occurred_at": e["occurred_at"].isoformat()})
