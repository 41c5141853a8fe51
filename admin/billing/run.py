"""Billing runs: what is due on a date, previewed, then issued; and the prepaid charges.

A run on date D looks at every recurring customer whose billing is on (and billing is on
globally), active or blocked, and every service of theirs that is active or blocked, and bills
each period the service has due by D (admin/billing/periods.py) that no charge covers yet, plus
the customer's items for the next invoice. The run is made in two steps:

1. :func:`preview` prices it all into ``billing_run_items`` (nothing financial is written): a
   page, a CSV, a total per currency; it can be cancelled (:func:`cancel`) and made again.
2. :func:`confirm` issues one invoice per customer from the preview, in chunks, each chunk one
   transaction (numbers, documents, lines, charges, allocations of credit the customer had).

Idempotent per (customer, service, period): a charge's key is ``charge:<service>:<period start>``
(unique in the ledger), a preview never shows a period a charge covers, and confirming skips a
line whose charge exists. A run killed anywhere is confirmed again and issues what is left, with
the same numbers the uninterrupted run gives (customers are issued in id order, numbers taken in
that order under the counter's lock). A service's billed part is that of its charges, reversed
ones too: voiding an invoice does not bill its periods again (issue a corrected invoice instead).

Services' ``end_date`` is the last day served (inclusive, as staff type it); the engines' end is
the day after.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.billing import ledger, periods, proration, store, taxes
from admin.billing.periods import Period

CHUNK = 2000  # customers per transaction when issuing
ONE_DAY = dt.timedelta(days=1)


class RunError(ValueError):
    """A run that cannot be made or confirmed, said for the person who asked."""


@dataclass(slots=True)
class RunSummary:
    run_id: int | None
    billing_date: dt.date
    status: str
    customers: int = 0
    documents: int = 0
    totals: dict[str, Decimal] = field(default_factory=dict)

    @property
    def nothing(self) -> bool:
        return self.customers == 0

    def describe(self) -> str:
        if self.nothing and self.status == "preview":
            return f"Nothing to bill on {self.billing_date.isoformat()}."
        money = ", ".join(f"{v} {k}" for k, v in sorted(self.totals.items())) or "0"
        if self.status == "issued":
            return (f"Run {self.run_id} for {self.billing_date.isoformat()}: issued {self.documents} invoices "
                    f"to {self.customers} customers, {money}.")
        return (f"Run {self.run_id} for {self.billing_date.isoformat()}: {self.status}, {self.customers} customers, "
                f"{money}.")


# -- what is due -------------------------------------------------------------------------------

def _period_json(period: Period | None) -> list[str] | None:
    return [period.start.isoformat(), period.end.isoformat()] if period is not None else None


def _period_text(period: Period) -> str:
    last = period.end - ONE_DAY
    return f"{period.start.isoformat()} to {last.isoformat()}"




def _pauses(text: Sequence[str] | None) -> list[Period]:
    out = []
    for item in text or ():
        start, end = item.split(",")
        out.append(Period(dt.date.fromisoformat(start), dt.date.fromisoformat(end)))
    return out


def _service_end(row: asyncpg.Record) -> dt.date | None:
    return row["end_date"] + ONE_DAY if row["end_date"] is not None else None


def due_lines(row: asyncpg.Record, on: dt.date, groups: dict[int, taxes.TaxGroup]) -> list[ledger.NewLine]:
    """A recurring service's lines due on ``on``: each period not billed yet, priced by days."""
    cycle = periods.Cycle(row["billing_day"], row["months_in_advance"])
    timing = periods.Timing.IN_ADVANCE if row["timing"] == "advance" else periods.Timing.IN_ARREARS
    group = groups.get(row["tax_group_id"], ledger.NO_TAX)
    lines = []
    for bp in periods.periods_to_bill(on, cycle, timing, row["start"], _service_end(row), row["billed_until"],
                                      _pauses(row["pauses"])):
        price = row["price"] * (bp.months or 1)
        amount = proration.charge(price, bp, row["currency"])
        if amount <= 0:
            continue  # a period paused throughout costs nothing, and posts nothing
        what = row["tariff"]
        if bp.billed != bp.full:
            what += f" (part, {bp.billed.days} of {bp.full.days} days)"
        if bp.paused:
            what += f", {sum(p.days for p in bp.paused)} days paused"
        lines.append(ledger.NewLine(
            f"{what}, {row['login']}", amount, group, row["price_includes_tax"],  # the period is the line's own
            period=bp.billed, service_id=row["service_id"],
            key=f"charge:{row['service_id']}:{bp.billed.start.isoformat()}"))
    return lines


def _item_line(item: asyncpg.Record, groups: dict[int, taxes.TaxGroup]) -> ledger.NewLine:
    return ledger.NewLine(item["description"], item["unit_price"], groups.get(item["tax_group_id"], ledger.NO_TAX),
                          item["price_includes_tax"], item["quantity"], service_id=item["service_id"],
                          item_id=item["id"], kind="fee")


def _line_json(line: ledger.NewLine, group_id: int | None, priced: taxes.LineAmounts) -> dict[str, Any]:
    return {"description": line.description, "unit_price": str(line.unit_price), "quantity": str(line.quantity),
            "inclusive": line.inclusive, "tax_group_id": group_id, "period": _period_json(line.period),
            "service_id": line.service_id, "item_id": line.item_id, "kind": line.kind, "key": line.key,
            "net": str(priced.net), "tax": str(priced.tax), "gross": str(priced.gross)}


def _line_from_json(item: dict[str, Any], groups: dict[int, taxes.TaxGroup]) -> ledger.NewLine:
    period = item["period"]
    return ledger.NewLine(
        item["description"], Decimal(item["unit_price"]), groups.get(item["tax_group_id"], ledger.NO_TAX),
        item["inclusive"], Decimal(item["quantity"]),
        period=Period(dt.date.fromisoformat(period[0]), dt.date.fromisoformat(period[1])) if period else None,
        service_id=item["service_id"], item_id=item["item_id"], kind=item["kind"], key=item["key"])


@dataclass(slots=True)
class _Due:
    partner_id: int
    currency: str
    due_days: int
    lines: list[tuple[ledger.NewLine, int | None]] = field(default_factory=list)  # (line, tax group id)


async def _due_in(conn: Connection, lo: int, hi: int, on: dt.date, partner_id: int | None,
                  groups: dict[int, taxes.TaxGroup]) -> dict[int, _Due]:
    """What recurring customers with ids in [lo, hi) have due on ``on``."""
    due: dict[int, _Due] = {}
    for row in await store.services_due(conn, lo, hi, ["recurring"], partner_id, on):
        lines = due_lines(row, on, groups)
        if lines:
            entry = due.setdefault(row["customer_id"], _Due(row["partner_id"], row["currency"], row["due_days"]))
            entry.lines.extend((line, row["tax_group_id"]) for line in lines)
    for item in await store.items_due(conn, lo, hi, partner_id, on):
        entry = due.setdefault(item["customer_id"], _Due(item["partner_id"], item["currency"], item["due_days"]))
        entry.lines.append((_item_line(item, groups), item["tax_group_id"]))
    return due


def _chunks(lo: int, hi: int, size: int = 5000) -> Iterable[tuple[int, int]]:
    for start in range(lo, hi, size):
        yield start, min(start + size, hi)


# -- the run -----------------------------------------------------------------------------------

async def preview(pool: asyncpg.Pool, billing_date: dt.date, partner_id: int | None = None, by: str = "",
                  confirm_after: dt.datetime | None = None) -> RunSummary:
    """Price what is due on ``billing_date`` into a new run's preview. One preview per (partner,
    date) at a time: a second is refused until the first is cancelled or issued."""
    async with pool.acquire() as conn, conn.transaction():  # a preview is all there or not at all
        settings = await store.settings(conn)
        if not settings["enabled"]:
            raise RunError("billing is switched off (Finance settings): no run bills anybody")
        groups = store.tax_groups_of(await store.tax_groups(conn))
        waiting = await store.open_run(conn, partner_id, billing_date, ("preview", "issuing"))
        if waiting is not None:
            raise RunError(f"run {waiting['id']} for {billing_date.isoformat()} is {waiting['status']} already: "
                           f"confirm it (lastmile billing run --confirm {waiting['id']}) or cancel it first")
        try:
            async with conn.transaction():
                run_id = await store.insert_run(conn, partner_id, billing_date, by, confirm_after)
        except asyncpg.UniqueViolationError:  # another preview of this date was made just now
            raise RunError(f"a run for {billing_date.isoformat()} is being made already: confirm or cancel it "
                           "before making another") from None
        summary = RunSummary(run_id, billing_date, "preview")
        lo, hi = await store.customer_id_range(conn)
        for a, b in _chunks(lo, hi):
            due = await _due_in(conn, a, b, billing_date, partner_id, groups)
            rows = []
            for customer_id, entry in due.items():
                priced = [taxes.price_line(taxes.DocumentLine(line.description, line.quantity, line.unit_price,
                                                              line.tax_group, line.inclusive, entry.currency))
                          for line, _ in entry.lines]
                total = taxes.document_totals(priced, entry.currency).gross
                lines = [_line_json(line, gid, p) for (line, gid), p in zip(entry.lines, priced, strict=True)]
                rows.append((run_id, customer_id, entry.currency, total, json.dumps(lines)))
                summary.customers += 1
                summary.totals[entry.currency] = summary.totals.get(entry.currency, Decimal(0)) + total
            await store.insert_run_items(conn, rows)
        await store.finish_preview(conn, run_id, summary.customers, summary.totals)
    return summary


async def cancel(conn: Connection, run_id: int, by: str = "") -> None:
    status = await store.run_status_for_update(conn, run_id)
    if status is None:
        raise RunError(f"run {run_id} does not exist")
    if status != "preview":
        raise RunError(f"run {run_id} is {status}: only a preview can be cancelled")
    await store.cancel_run(conn, run_id, by)


async def confirm(pool: asyncpg.Pool, run_id: int, by: str = "") -> RunSummary:
    """Issue a preview's invoices. Safe to call again after a crash: it goes on where it stopped."""
    async with pool.acquire() as conn:
        run = await store.billing_run(conn, run_id)
        if run is None:
            raise RunError(f"run {run_id} does not exist")
        if run["status"] not in ("preview", "issuing"):
            raise RunError(f"run {run_id} is {run['status']}: there is nothing to confirm")
        if not await store.lock_run(conn, run_id):
            raise RunError(f"run {run_id} is being issued by another process")
        try:
            await store.set_run_issuing(conn, run_id)
            groups = store.tax_groups_of(await store.tax_groups(conn))
            after = 0
            while True:
                items = await store.run_items_after(conn, run_id, after, CHUNK)
                if not items:
                    break
                async with conn.transaction():
                    await _issue_chunk(conn, run, items, groups, by)
                after = items[-1]["customer_id"]
            customers, documents, totals = await store.run_outcome(conn, run_id)
            summary = RunSummary(run_id, run["billing_date"], "issued", customers, documents, totals)
            await store.finish_run(conn, run_id, by, customers, documents, totals)
        finally:
            await store.unlock_run(conn, run_id)
    return summary


async def _issue_chunk(conn: Connection, run: asyncpg.Record, items: Sequence[asyncpg.Record],
                       groups: dict[int, taxes.TaxGroup], by: str) -> None:
    customer_ids = [i["customer_id"] for i in items]
    await store.lock_customers(conn, customer_ids)
    keys = [line["key"] for i in items for line in i["lines"] if line["key"]]
    charged = await store.posted_keys(conn, keys)
    taken = await store.taken_items(conn, [line["item_id"] for i in items for line in i["lines"] if line["item_id"]])
    on = run["billing_date"]
    documents = []
    for item in items:
        lines = tuple(_line_from_json(line, groups) for line in item["lines"]
                      if line["key"] not in charged and line["item_id"] not in taken)
        if not lines:
            continue
        spans = [line.period for line in lines if line.period is not None]
        period = Period(min(p.start for p in spans), max(p.end for p in spans)) if spans else None
        documents.append(ledger.NewDocument(
            kind="invoice", customer_id=item["customer_id"], partner_id=item["partner_id"], currency=item["currency"],
            issued_on=on, origin="recurring", lines=lines, due_on=on + dt.timedelta(days=item["due_days"]),
            period=period, run_id=run["id"], key=f"run:{run['id']}:{item['customer_id']}", by=by))
    await ledger.issue(conn, documents)
    await ledger.allocate(conn, customer_ids, by)


async def run(pool: asyncpg.Pool, billing_date: dt.date, partner_id: int | None = None, by: str = "") -> RunSummary:
    """Preview and confirm at once (what ``lastmile billing run`` does without --preview); a run
    of this (partner, date) that stopped while issuing is finished instead."""
    async with pool.acquire() as conn:
        stopped = await store.open_run(conn, partner_id, billing_date, ("issuing",))
    if stopped is not None:
        return await confirm(pool, stopped["id"], by)
    summary = await preview(pool, billing_date, partner_id, by)
    if summary.nothing:
        async with pool.acquire() as conn:
            assert summary.run_id is not None
            await cancel(conn, summary.run_id, by)
        return summary
    assert summary.run_id is not None
    return await confirm(pool, summary.run_id, by)


# -- prepaid -----------------------------------------------------------------------------------

@dataclass(slots=True)
class PrepaidSummary:
    on: dt.date
    customers: int = 0
    charges: int = 0
    totals: dict[str, Decimal] = field(default_factory=dict)

    def describe(self) -> str:
        if not self.charges:
            return f"No prepaid charges due on {self.on.isoformat()}."
        money = ", ".join(f"{v} {k}" for k, v in sorted(self.totals.items()))
        return f"Prepaid on {self.on.isoformat()}: {self.charges} charges to {self.customers} customers, {money}."


def prepaid_charges(row: asyncpg.Record, on: dt.date) -> list[tuple[Period, Decimal, str]]:
    """A prepaid service's charges due by ``on``: (period, amount, description)."""
    end, pauses = _service_end(row), _pauses(row["pauses"])
    if row["billing_type"] == "prepaid_daily":
        due = periods.prepaid_days_to_charge(on, row["start"], end, row["billed_until"], pauses)
    else:
        due = periods.prepaid_periods_to_charge(on, row["start"], end, row["billed_until"], row["period_days"], pauses)
    out = []
    for bp in due:
        amount = proration.charge(row["price"], bp, row["currency"])
        if amount > 0:
            out.append((bp.billed, amount, f"{row['tariff']}, {row['login']}, {_period_text(bp.billed)}"))
    return out


async def charge_prepaid(pool: asyncpg.Pool, on: dt.date, by: str = "") -> PrepaidSummary:
    """Post the prepaid customers' charges due by ``on`` (daily: each day; custom: each period,
    in advance) as transactions, and apply their credit to them. Idempotent like a run."""
    summary = PrepaidSummary(on)
    async with pool.acquire() as conn:
        if not (await store.settings(conn))["enabled"]:
            raise RunError("billing is switched off (Finance settings): nothing is charged")
        lo, hi = await store.customer_id_range(conn)
        for a, b in _chunks(lo, hi, 10000):
            rows = await store.services_due(conn, a, b, ["prepaid_daily", "prepaid_custom"], None, on)
            posts = []
            for row in rows:
                for period, amount, what in prepaid_charges(row, on):
                    posts.append((row["customer_id"], "debit", "charge", amount, row["currency"], period.start, what,
                                  row["service_id"], period.start, period.end, None, None,
                                  f"charge:{row['service_id']}:{period.start.isoformat()}", by))
            if not posts:
                continue
            customers = sorted({p[0] for p in posts})
            async with conn.transaction():
                await store.lock_customers(conn, customers)
                inserted = await store.post_new(conn, posts)
                await ledger.allocate(conn, customers, by)
            summary.charges += len(inserted)
            summary.customers += len({r["customer_id"] for r in inserted})
            for r in inserted:
                summary.totals[r["currency"]] = summary.totals.get(r["currency"], Decimal(0)) + r["amount"]
    return summary



# -- what the next invoice will say --------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PreviewLine:
    """A line of a customer's next invoice: what, why, for which days, how much."""

    description: str
    reason: str
    period: Period | None
    net: Decimal
    tax: Decimal
    gross: Decimal


async def next_invoice(conn: Connection, customer_id: int, on: dt.date) -> tuple[dt.date, list[PreviewLine]]:
    """The customer's next recurring invoice as of ``on``: its date (the next billing day, or
    ``on`` when something is due already) and its lines, each with its reason."""
    row = await store.customer(conn, customer_id)
    if row is None:
        raise RunError(f"customer {customer_id} does not exist")
    date = periods.next_billing_date(on, row["billing_day"]) if on.day != row["billing_day"] else on
    groups = store.tax_groups_of(await store.tax_groups(conn))
    entry = (await _due_in(conn, customer_id, customer_id + 1, date, None, groups)).get(customer_id)
    if entry is None and date == on:  # today's billing is done: the one after it
        date = periods.next_billing_date(on, row["billing_day"])
        entry = (await _due_in(conn, customer_id, customer_id + 1, date, None, groups)).get(customer_id)
    if entry is None:
        return date, []
    out = []
    for line, _ in entry.lines:
        priced = taxes.price_line(taxes.DocumentLine(line.description, line.quantity, line.unit_price, line.tax_group,
                                                     line.inclusive, entry.currency))
        if line.item_id is not None:
            reason = "added for the next invoice"
        elif line.period is not None and "(part," in line.description:
            reason = "part of a period, by days (the first period, or the last before the service ends)"
        elif line.period is not None:
            reason = "in advance for the period" if row["timing"] == "advance" else "for the period just ended"
        else:
            reason = ""
        out.append(PreviewLine(line.description, reason, line.period, priced.net, priced.tax, priced.gross))
    return date, out


async def issue_proforma(conn: Connection, customer_id: int, on: dt.date, by: str = "",
                         key: str | None = None) -> int | None:
    """A proforma invoice of the customer's next invoice (a request for payment in advance: no
    balance change, no tax point); paying it issues the tax invoice with these lines, which
    the run then does not bill again. None when nothing is due. ``key``: the proforma's
    idempotency key (the caller looks it up first, under the customer's lock)."""
    row = await store.customer(conn, customer_id)
    if row is None:
        raise RunError(f"customer {customer_id} does not exist")
    date = periods.next_billing_date(on, row["billing_day"]) if on.day != row["billing_day"] else on
    groups = store.tax_groups_of(await store.tax_groups(conn))
    due = (await _due_in(conn, customer_id, customer_id + 1, date, None, groups)).get(customer_id)
    if due is None and date == on:  # today's billing is done: the one after it (as next_invoice says)
        date = periods.next_billing_date(on, row["billing_day"])
        due = (await _due_in(conn, customer_id, customer_id + 1, date, None, groups)).get(customer_id)
    if due is None:
        return None
    lines = tuple(line for line, _ in due.lines if line.item_id is None)  # items stay for the tax invoice's run
    if not lines:
        return None
    spans = [line.period for line in lines if line.period is not None]
    issued = await ledger.issue(conn, [ledger.NewDocument(
        kind="proforma", customer_id=customer_id, partner_id=row["partner_id"], currency=row["currency"],
        issued_on=on, origin="recurring", lines=lines, due_on=on + dt.timedelta(days=row["due_days"]),
        period=Period(min(p.start for p in spans), max(p.end for p in spans)) if spans else None, key=key, by=by)])
    if not issued:
        raise RunError(f"a proforma with the key {key!r} was issued already")
    return issued[0].id
