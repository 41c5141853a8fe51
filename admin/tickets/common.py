"""What the helpdesk pages and operations share: the area, the principal's ticket scope, rows as
API structs, and the operations log's line of a ticket's change (in its customer's history)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, TypeVar

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, oplog_store
from admin.auth.store import Connection
from admin.tickets.schemas import TicketAttachment, TicketMessage
from admin.web import Area

AREA = Area("tickets", "Support", order=15, nav=[
    ("Tickets", "/tickets", "support.view"),
    ("Ticket reports", "/tickets/reports", "support.view"),
    ("Ticket inboxes", "/tickets/inboxes", "support.view"),
    ("Deny list", "/tickets/denylist", "support.view"),
    ("Ticket groups", "/tickets/groups", "support.view"),
    ("Canned replies", "/tickets/canned-replies", "support.view"),
    ("Ticket rules", "/tickets/rules", "support.view"),
    ("Ticket statuses", "/tickets/statuses", "support.view"),
    ("Ticket settings", "/tickets/settings", "support.view"),
])
"""Right after the customers (order 10), before the tariffs (20)."""

T = TypeVar("T")
Row = Mapping[str, Any] | asyncpg.Record
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def scope(request: web.Request) -> tuple[int | None, int | None]:
    """The principal's (partner, creator): the tickets it sees (queries.py TICKET_SCOPE)."""
    who = keys.principal(request)
    return who.partner_id, who.creator_id


def out(record: Row, type_: type[T], **more: Any) -> T:
    """A row (and ``more``) as an API response struct."""
    fields = type_.__struct_fields__  # type: ignore[attr-defined]
    return msgspec.convert({**{f: record[f] for f in fields if f in record}, **more}, type_)


def attachments_of(record: Row) -> list[dict[str, Any]]:
    """A message row's attachments (queries.messages: JSON text)."""
    found: list[dict[str, Any]] = json.loads(record["attachments"] or "[]")
    return found


def message_out(record: Row) -> TicketMessage:
    return out(record, TicketMessage, attachments=[msgspec.convert(a, TicketAttachment)
                                                   for a in attachments_of(record)])


async def log(conn: Connection, request: web.Request, action: str, ticket: Row, summary: str, *,
              object_type: str = "ticket", object_id: int | None = None, before: Any = None,
              after: Any = None) -> None:
    """The operations log's line of a change of ``ticket`` (of its customer and partner)."""
    await oplog_store.record(conn, keys.principal(request), keys.client_address(request), action, object_type,
                             object_id if object_id is not None else ticket["id"],
                             customer_id=ticket["customer_id"], partner_id=ticket["partner_id"], summary=summary,
                             before=before, after=after)
