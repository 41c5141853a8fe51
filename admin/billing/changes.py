"""Changes to a billed service: a plan change mid-period, a pause (vacation), another billing type.

Both look at what was charged already (charges are billed in advance): the part of a charged
period after the change is credited at the old price by a credit note against the invoice that
charged it, and, for a plan change, charged at the new price by an invoice of its own, with the
fee for moving up or down (proration.plan_change: Splynx's example, 200 -> 100 on the 16th of a
30-day month, credits 100.00 and charges 50.00). Periods not charged yet need nothing: the next
run bills them at the new plan, without the paused days.

Recurring billing in arrears charges a period after it ends, at the plan in force at the run:
a plan change there is not split by days (said in docs/operations.md).
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from admin.auth.store import Connection
from admin.billing import ledger, periods, proration, store, taxes
from admin.billing.periods import Period


async def _groups(conn: Connection) -> dict[int, taxes.TaxGroup]:
    return store.tax_groups_of(await store.tax_groups(conn))


def _billing_period(charge: asyncpg.Record, cycle: periods.Cycle, pauses: list[Period]) -> periods.BillingPeriod:
    """The period a charge billed, as the run priced it (its full period from its start)."""
    billed = Period(charge["period_start"], charge["period_end"])
    first = periods.first_period(billed.start, cycle)
    return periods.BillingPeriod(billed, first.full, first.months, periods.clip(pauses, billed))


async def change_plan(conn: Connection, service_id: int, tariff_id: int, on: dt.date, by: str = "") -> list[int]:
    """Move a service to another tariff from ``on`` (its first day on the new plan). Returns the
    documents issued (a credit note and an invoice per charged period the change falls in)."""
    service = await store.service_billing(conn, service_id)
    new = await store.tariff(conn, tariff_id)
    if service is None or new is None:
        raise ledger.LedgerError("no such service or tariff")
    if service["tariff_id"] == tariff_id:
        raise ledger.LedgerError(f"{service['login']} is on {new['name']} already")
    await store.lock_customers(conn, [service["customer_id"]])
    groups = await _groups(conn)
    settings = await store.settings(conn)
    cycle = periods.Cycle(service["billing_day"], service["months_in_advance"])
    pauses = [Period(p["starts_on"], p["ends_on"]) for p in await store.pauses_of(conn, service_id)]
    currency = service["currency"]
    issued: list[int] = []
    if service["billing_type"] == "recurring":
        for charge in await store.charges_over(conn, service_id, on, dt.date.max):
            bp = _billing_period(charge, cycle, pauses)
            start = max(on, bp.billed.start)
            months = bp.months or 1
            change = proration.plan_change(service["price"] * months, new["price"] * months, bp, start, currency,
                                           proration.ChangeFees(settings["upgrade_fee"], settings["downgrade_fee"]))
            issued += await _credit_and_charge(conn, service, new, charge, change, groups, by)
    await store.set_tariff(conn, service_id, tariff_id)
    await ledger.allocate(conn, [service["customer_id"]], by)
    return issued


async def _credit_and_charge(conn: Connection, service: asyncpg.Record, new: asyncpg.Record,
                             charge: asyncpg.Record, change: proration.PlanChange,
                             groups: dict[int, taxes.TaxGroup], by: str) -> list[int]:
    rest = change.remaining
    text = f"{rest.start.isoformat()} to {(rest.end - dt.timedelta(days=1)).isoformat()}"
    old_group = groups.get(service["tax_group_id"], ledger.NO_TAX)
    new_group = groups.get(new["tax_group_id"], ledger.NO_TAX)
    base = {"customer_id": service["customer_id"], "partner_id": service["partner_id"],
            "currency": service["currency"], "issued_on": rest.start, "origin": "plan_change", "by": by}
    documents = []
    if change.credit > 0:
        documents.append(ledger.NewDocument(kind="credit_note", lines=(ledger.NewLine(
            f"{service['tariff']} unused, {service['login']}, {text}", change.credit, old_group,
            service["price_includes_tax"], period=rest, service_id=service["id"]),),
            related_id=charge["document_id"], note=f"Plan change to {new['name']}", period=rest,
            key=f"change-credit:{service['id']}:{rest.start.isoformat()}:{new['id']}", **base))
    lines = []
    if change.charge > 0:
        lines.append(ledger.NewLine(f"{new['name']}, {service['login']}, {text}", change.charge, new_group,
                                    new["price_includes_tax"], period=rest, service_id=service["id"],
                                    key=f"change:{service['id']}:{rest.start.isoformat()}:{new['id']}"))
    if change.fee > 0:
        lines.append(ledger.NewLine(f"Plan change fee ({service['tariff']} to {new['name']})", change.fee, new_group,
                                    new["price_includes_tax"], service_id=service["id"], kind="fee"))
    if lines:
        documents.append(ledger.NewDocument(
            kind="invoice", lines=tuple(lines), period=rest,
            due_on=rest.start + dt.timedelta(days=service["due_days"]),
            key=f"change-invoice:{service['id']}:{rest.start.isoformat()}:{new['id']}", **base))
    return [d.id for d in await ledger.issue(conn, documents)]


async def pause(conn: Connection, service_id: int, starts_on: dt.date, ends_on: dt.date, reason: str = "",
                by: str = "", by_admin: int | None = None) -> list[int]:
    """Pause a service over [starts_on, ends_on): the days already charged come back as credit
    notes (what charging them cost, proration.pause_credit); later periods leave them out."""
    if ends_on <= starts_on:
        raise ledger.LedgerError("a pause ends after it starts")
    service = await store.service_billing(conn, service_id)
    if service is None:
        raise ledger.LedgerError(f"service {service_id} does not exist")
    await store.lock_customers(conn, [service["customer_id"]])
    groups = await _groups(conn)
    cycle = periods.Cycle(service["billing_day"], service["months_in_advance"])
    before = [Period(p["starts_on"], p["ends_on"]) for p in await store.pauses_of(conn, service_id)]
    await store.insert_pause(conn, service_id, starts_on, ends_on, reason, by_admin)
    paused = Period(starts_on, ends_on)
    documents = []
    for charge in await store.charges_over(conn, service_id, starts_on, ends_on):
        if charge["document_id"] is None:
            continue  # prepaid charges are posted day by day (or period by period): none ahead of the pause
        bp = _billing_period(charge, cycle, before)
        credit = proration.pause_credit(service["price"] * (bp.months or 1), bp, [paused], service["currency"])
        if credit <= 0:
            continue
        documents.append(ledger.NewDocument(
            kind="credit_note", customer_id=service["customer_id"], partner_id=service["partner_id"],
            currency=service["currency"], issued_on=starts_on, origin="pause", related_id=charge["document_id"],
            lines=(ledger.NewLine(f"{service['tariff']} paused, {service['login']}, {starts_on.isoformat()} to "
                                  f"{(ends_on - dt.timedelta(days=1)).isoformat()}", credit,
                                  groups.get(service["tax_group_id"], ledger.NO_TAX), service["price_includes_tax"],
                                  period=paused.intersection(bp.billed), service_id=service_id),),
            period=paused.intersection(bp.billed), note=reason,
            key=f"pause:{service_id}:{charge['id']}:{starts_on.isoformat()}", by=by))
    issued = [d.id for d in await ledger.issue(conn, documents)]
    await ledger.allocate(conn, [service["customer_id"]], by)
    return issued


async def end_pause(conn: Connection, service_id: int, pause: asyncpg.Record, on: dt.date, by: str = "") -> list[int]:
    """End the pause ``pause`` (its ``service_pauses`` row) before ``on`` (remove it if it starts on
    or after ``on``) and invoice again the days of it from ``on`` that its credit gave back: per charged
    period, proration.pause_credit of those days (with the service's other pauses), the exact
    charge the credit had reversed. Returns the invoices issued."""
    service = await store.service_billing(conn, service_id)
    assert service is not None
    await store.lock_customers(conn, [service["customer_id"]])
    rest = Period(max(on, pause["starts_on"]), pause["ends_on"])
    others = [Period(p["starts_on"], p["ends_on"]) for p in await store.pauses_of(conn, service_id, but=pause["id"])]
    groups = store.tax_groups_of(await store.tax_groups(conn))
    cycle = periods.Cycle(service["billing_day"], service["months_in_advance"])
    documents = []
    for charge in await store.charges_over(conn, service_id, rest.start, rest.end):
        if charge["document_id"] is None:
            continue  # prepaid: the days to come are charged as they come
        bp = _billing_period(charge, cycle, others)
        amount = proration.pause_credit(service["price"] * (bp.months or 1), bp, [rest], service["currency"])
        part = rest.intersection(bp.billed)
        if amount <= 0 or part is None:
            continue
        text = f"{part.start.isoformat()} to {(part.end - dt.timedelta(days=1)).isoformat()}"
        documents.append(ledger.NewDocument(
            kind="invoice", customer_id=service["customer_id"], partner_id=service["partner_id"],
            currency=service["currency"], issued_on=on, origin="pause", period=part,
            due_on=on + dt.timedelta(days=service["due_days"]),
            lines=(ledger.NewLine(f"{service['tariff']} resumed, {service['login']}, {text}", amount,
                                  groups.get(service["tax_group_id"], ledger.NO_TAX), service["price_includes_tax"],
                                  period=part, service_id=service_id,
                                  key=f"resume:{pause['id']}:{charge['id']}:{on.isoformat()}"),),
            note="Resumed before the end of the pause",
            key=f"resume-invoice:{pause['id']}:{charge['id']}:{on.isoformat()}", by=by))
    issued = [d.id for d in await ledger.issue(conn, documents)]
    await store.end_pause(conn, pause["id"], on)
    await ledger.allocate(conn, [service["customer_id"]], by)
    return issued


TYPES = ("recurring", "prepaid_daily", "prepaid_custom")


async def change_billing_type(conn: Connection, customer_id: int, billing_type: str, on: dt.date,
                              by: str = "") -> list[int]:
    """A customer's billing type from ``on``: what was charged for ``on`` and after is credited
    (a credit note per charge, against its invoice when it has one), and each active or blocked
    service's billing starts over that day under the new type (``services.billing_since``). The
    services themselves stay: their logins, addresses and sessions are the network's, and
    starting their billing over is what ending them and starting new ones would do to billing.
    Returns the credit notes issued."""
    if billing_type not in TYPES:
        raise ledger.LedgerError(f"billing type {billing_type!r} is not one of {', '.join(TYPES)}")
    row = await store.customer(conn, customer_id)
    if row is None:
        raise ledger.LedgerError(f"customer {customer_id} does not exist")
    if row["billing_type"] == billing_type:
        raise ledger.LedgerError(f"the customer is billed {billing_type.replace('_', ' ')} already")
    await store.lock_customers(conn, [customer_id])
    groups = await _groups(conn)
    cycle = periods.Cycle(row["billing_day"], row["months_in_advance"])
    rest = Period(on, dt.date.max)
    documents = []
    for service_id in await store.billing_restarts(conn, customer_id, on, billing_type):
        service = await store.service_billing(conn, service_id)
        assert service is not None
        pauses = [Period(p["starts_on"], p["ends_on"]) for p in await store.pauses_of(conn, service_id)]
        for charge in await store.charges_over(conn, service_id, on, dt.date.max):
            billed = Period(charge["period_start"], charge["period_end"])
            if row["billing_type"] == "recurring":
                bp = _billing_period(charge, cycle, pauses)
            elif row["billing_type"] == "prepaid_daily":
                bp = periods.BillingPeriod(billed, periods.calendar_month(billed.start), 1)
            else:
                bp = periods.BillingPeriod(billed, billed, None)
            credit = proration.pause_credit(service["price"] * (bp.months or 1), bp, [rest], row["currency"])
            if credit <= 0:
                continue
            part = rest.intersection(billed)
            documents.append(ledger.NewDocument(
                kind="credit_note", customer_id=customer_id, partner_id=row["partner_id"], currency=row["currency"],
                issued_on=on, origin="manual", related_id=charge["document_id"], period=part,
                lines=(ledger.NewLine(f"{service['tariff']}, {service['login']}, billed "
                                      f"{billing_type.replace('_', ' ')} from {on.isoformat()}", credit,
                                      groups.get(service["tax_group_id"], ledger.NO_TAX),
                                      service["price_includes_tax"], period=part, service_id=service_id),),
                note=f"Billing type changed to {billing_type.replace('_', ' ')}",
                key=f"billing-type:{service_id}:{charge['id']}:{on.isoformat()}", by=by))
    issued = [d.id for d in await ledger.issue(conn, documents)]
    await ledger.allocate(conn, [customer_id], by)
    return issued
