"""What the CPE pages and operations share: the area, the principal's device scope, rows as API
structs, database refusals in words, and the operations log's line of a change.

A device's log line carries the partner and customer of the customer it is linked to (so it is
in that customer's history); presets and files are the operator's and carry neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, oplog_store, schemas
from admin.auth.store import Connection
from admin.devices.schemas import constraint_error
from admin.web import Area

AREA = Area("devices", "Network", order=31, nav=[
    ("CPE devices", "/cpe/devices", "networking.view"),
    ("CPE presets", "/cpe/presets", "networking.view"),
    ("CPE files", "/cpe/files", "networking.view"),
    ("CPE sessions", "/cpe/sessions", "networking.view"),
])
"""Titled as the network area and ordered right after it: its entries join the Network heading."""

T = TypeVar("T")
Row = Mapping[str, Any] | asyncpg.Record


def scope(request: web.Request) -> tuple[int | None, int | None]:
    """The principal's (partner, creator): the devices it sees (queries.py DEVICE_SCOPE)."""
    who = keys.principal(request)
    return who.partner_id, who.creator_id


def out(record: Row, type_: type[T], **more: Any) -> T:
    """A row (and ``more``) as an API response struct."""
    fields = type_.__struct_fields__  # type: ignore[attr-defined]
    return msgspec.convert({**{f: record[f] for f in fields if f in record}, **more}, type_)


def refused(e: asyncpg.PostgresError) -> schemas.Invalid:
    """A write the database refused, as field errors."""
    if isinstance(e, asyncpg.IntegrityConstraintViolationError):
        return schemas.Invalid(constraint_error(e.constraint_name or ""))
    return schemas.Invalid({"": f"the database refused a value: {str(e).splitlines()[0]}"})


async def log(conn: Connection, request: web.Request, action: str, object_type: str, object_id: int | None,
              summary: str, *, device: Row | None = None, before: Any = None, after: Any = None) -> None:
    """The operations log's line of a change (of ``device``'s customer and partner, when given)."""
    customer_id = device["customer_id"] if device is not None else None
    partner_id = device["partner_id"] if device is not None else None
    await oplog_store.record(conn, keys.principal(request), keys.client_address(request), action, object_type,
                             object_id, customer_id=customer_id, partner_id=partner_id, summary=summary,
                             before=before, after=after)


def actor(request: web.Request) -> str:
    """Who asks, as acs_tasks.created_by and acs_wakeups.requested_by keep it."""
    return keys.principal(request).name
