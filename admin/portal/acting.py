"""What a customer's own change in the portal shares (support.py, profile.py): refused to an
administrator looking as the customer, and its line in the operations log.

**Impersonation.** An administrator's "log in as" (``Customer.impersonator_id``) sees what the
customer sees and changes nothing: every portal form answers 403 to it (:func:`refuse_impersonator`),
so staff cannot put words in a customer's mouth (a reply, a new ticket) nor change its details as
if it had. Staff write as staff, in the admin.

**The operations log.** Its lines name an administrator or an API key; a customer's own change is
the actor ``customer:<number>`` (no administrator, no key), in the customer's history like a change
staff make (admin/oplog_store.py, same transaction as the change).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin import keys, oplog_store
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.portal.common import Customer, customer

IMPERSONATING = ("You are looking at the portal as this customer: you may read, not write as the customer. "
                 "Reply, open a ticket or change the customer's details in the admin instead.")


def refuse_impersonator(request: web.Request) -> Customer:
    """The customer logged in, if it is the customer itself; 403 to an administrator looking as it."""
    me = customer(request)
    if me.impersonator_id is not None:
        raise web.HTTPForbidden(text=IMPERSONATING)
    return me


def actor(number: str) -> Principal:
    """The customer as the operations log names it (no administrator, no key, no permission)."""
    return Principal(name=f"customer:{number}", role="customer", permissions=frozenset())


async def log(conn: Connection, request: web.Request, number: str, action: str, object_type: str,
              object_id: int | None, *, summary: str, before: Any = None, after: Any = None) -> None:
    """The operations log's line of the customer's own change (of its own customer and partner)."""
    me = customer(request)
    await oplog_store.record(conn, actor(number), keys.client_address(request), action, object_type, object_id,
                             customer_id=me.customer_id, partner_id=me.partner_id, summary=summary,
                             before=before, after=after)
