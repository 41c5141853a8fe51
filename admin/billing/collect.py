"""Dunning, applied: who is blocked, deactivated or let back in today (admin/billing/dunning.py decides).

Candidates are the customers that owe (an unpaid invoice, or a balance under their minimum) and
those dunning blocked or deactivated itself (a payment may have lifted their debt). Status changes
are written with ``lastmile.status_reason = 'dunning'``, so customer_status_changes records them
as dunning's: a block staff set by hand is never lifted by a payment. radiusd and provisiond see
the change through the customers table's notifications, and provisiond publishes it on MQTT.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg

from admin.auth.store import Connection
from admin.billing import dunning, store

TARGET = {dunning.Action.BLOCK: "blocked", dunning.Action.DEACTIVATE: "inactive",
          dunning.Action.UNBLOCK: "active", dunning.Action.ACTIVATE: "active"}


@dataclass(slots=True)
class DunningSummary:
    on: dt.date
    looked_at: int = 0
    actions: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        done = ", ".join(f"{n} {action}" for action, n in sorted(self.actions.items())) or "nobody changed"
        return f"Dunning on {self.on.isoformat()}: {self.looked_at} customers looked at, {done}."


async def calendar(conn: Connection) -> tuple[asyncpg.Record, frozenset[dt.date]]:
    settings = await store.settings(conn)
    days = await store.holidays(conn)
    return settings, days


def customer_settings(row: asyncpg.Record, settings: asyncpg.Record, days: frozenset[dt.date]) -> dunning.Settings:
    return dunning.Settings(
        due_days=row["due_days"], block_after_due_days=row["block_after_due_days"],
        deactivate_after_block_days=row["deactivate_after_block_days"], min_balance=Decimal(row["min_balance"]),
        prepaid=row["billing_type"] != "recurring",
        block_on_non_working_days=settings["block_on_non_working_days"],
        holiday_country=settings["holiday_country"], holiday_subdivision=settings["holiday_subdivision"],
        isp_days=days)


async def run(conn: Connection, on: dt.date, customer_ids: list[int] | None = None) -> DunningSummary:
    """Decide and apply today's dunning (for ``customer_ids`` only, when given: after a payment)."""
    summary = DunningSummary(on)
    settings, days = await calendar(conn)
    rows = await store.dunning_candidates(conn, customer_ids)
    summary.looked_at = len(rows)
    unpaid: dict[int, list[dunning.Unpaid]] = defaultdict(list)
    for r in await store.unpaid_invoices(conn, [r["id"] for r in rows if r["billing_type"] == "recurring"]):
        unpaid[r["customer_id"]].append(dunning.Unpaid(r["issued_on"], r["due_on"]))
    moves: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        if not r["enabled"]:
            continue
        action = dunning.decide(on, r["status"], unpaid.get(r["id"], ()), Decimal(r["balance"]),
                                customer_settings(r, settings, days), blocked_on=r["blocked_on"],
                                by_dunning=r["reason"] == "dunning")
        if action is not dunning.Action.NONE:
            moves[action.value].append(r["id"])
    async with conn.transaction():
        for name, ids in moves.items():
            await store.set_status_by_dunning(conn, ids, TARGET[dunning.Action(name)])
            summary.actions[name] = len(ids)
    return summary
