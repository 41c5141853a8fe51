"""Customer status changes as events: ``customer/blocked`` and ``customer/unblocked``.

A NOTIFY names the customers that changed, not their old status, so the statuses are kept here
(a few bytes per customer) and each change is compared with them. Run by every provisiond, so
with several instances each publishes (subscribers de-duplicate by customer and time).
"""

from __future__ import annotations

from daemons import db
from daemons.events import CustomerBlocked, CustomerUnblocked, Event
from daemons.provisiond import store


class CustomerStatuses:
    def __init__(self) -> None:
        self.known: dict[int, tuple[str, str]] = {}

    async def load(self, conn: db.Connection) -> None:
        self.known = await store.customer_statuses(conn)

    async def changed(self, conn: db.Connection, ids: set[int] | None) -> list[Event]:
        """The events of what changed among ``ids`` (None: all customers) since last seen."""
        now = await store.customer_statuses(conn, ids)
        out: list[Event] = []
        for cid, (status, number) in now.items():
            before = self.known.get(cid)
            previous = before[0] if before is not None else None
            if status == "blocked" and previous not in (None, "blocked"):
                out.append(CustomerBlocked(customer_id=cid, number=number, previous=str(previous)))
            elif previous == "blocked" and status != "blocked":
                out.append(CustomerUnblocked(customer_id=cid, number=number, status=status))
        if ids is None:
            self.known = now
        else:
            for cid in ids:
                if cid in now:
                    self.known[cid] = now[cid]
                else:
                    self.known.pop(cid, None)
        return out
