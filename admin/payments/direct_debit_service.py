"""SEPA direct debit's changes, each in its transaction with its line of the operations log, for
the admin's pages and API (admin/finance/direct_debit.py) and the worker (admin/payments/jobs.py):

- the creditor's settings, a customer's mandate added or revoked;
- a batch made: the unpaid invoices due by a date of customers with an active mandate, each
  invoice's open amount one collection (FRST for a mandate's first, RCUR after), its pain.008
  file kept with it; two batches are never made at once (the settings row is locked) and an
  invoice is in one open collection at most (the dd_collections_document_open index);
- settlement: on its date a pending collection becomes a payment (admin/payments/record.py,
  named by the collection, so settling twice records once) and is paid;
- the bank's answer (pain.002, camt.054/053) read: a collection rejected is failed with its
  reason, one paid already has its payment taken back (record.reverse: the invoice is open
  again) and is failed. The whole file is applied in one transaction, or nothing of it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg

from admin import oplog_store, schemas
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.billing import collect, money
from admin.payments import direct_debit as dd
from admin.payments import direct_debit_store as store
from admin.payments import record

WORKER = Principal("worker", "system", frozenset())
"""Who the worker's settlement is logged as."""

Values = Mapping[str, Any] | asyncpg.Record


def _error(field_name: str, e: Exception) -> schemas.Invalid:
    return schemas.Invalid({field_name: str(e)})


# -- the creditor's settings ------------------------------------------------------------------------

def checked_settings(before: Values, changes: Values) -> dict[str, Any]:
    """The settings row's new values (only the changed ones); Invalid with every wrong field. A
    BIC left empty is derived from the IBAN where schwifty knows the bank."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    for name in ("creditor_id", "creditor_name", "iban"):
        if name in changes and not str(changes[name]).strip():
            errors[name] = "is required"
    if "creditor_id" in changes and "creditor_id" not in errors:
        try:
            out["creditor_id"] = dd.check_creditor_id(str(changes["creditor_id"]))
        except dd.DirectDebitError as e:
            errors["creditor_id"] = str(e)
    if "creditor_name" in changes and "creditor_name" not in errors:
        name = " ".join(str(changes["creditor_name"]).split())
        if not dd.latin(name, 70):
            errors["creditor_name"] = "must have letters or digits a bank can print"
        out["creditor_name"] = name
    iban = str(changes.get("iban", before["iban"]))
    bic = str(changes.get("bic", "" if "iban" in changes else before["bic"]))
    if ("iban" in changes or "bic" in changes) and "iban" not in errors and iban.strip():
        try:
            found = dd.check_iban(iban)
        except dd.DirectDebitError as e:
            errors["iban"] = str(e)
        else:
            try:
                out["bic"] = dd.check_bic(bic) or found.bic
            except dd.DirectDebitError as e:
                errors["bic"] = str(e)
            out["iban"] = found.iban
    for name in ("scheme", "lead_days"):
        if name in changes:
            out[name] = changes[name]
    if errors:
        raise schemas.Invalid(errors)
    return {k: v for k, v in out.items() if before[k] != v}


def complete(row: Values) -> bool:
    """Whether a batch can be made: the creditor named, its identifier and account given."""
    return bool(row["creditor_id"] and row["creditor_name"] and row["iban"])


async def save_settings(conn: Connection, changes: Values, who: Principal, address: str | None) -> asyncpg.Record:
    async with conn.transaction():
        before = await store.settings(conn, lock=True)
        values = checked_settings(before, changes)
        if not values:
            return before
        after = await store.update_settings(conn, values)
        old, new = schemas.row_json(before), schemas.row_json(after)
        await oplog_store.record(conn, who, address, "update", "sepa_settings", None,
                                 summary=f"direct-debit settings: changed {', '.join(values)}",
                                 before={k: old[k] for k in values}, after={k: new[k] for k in values})
        return after


# -- mandates ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MandateIn:
    iban: str
    holder: str
    signed_on: dt.date
    bic: str = ""
    reference: str = ""


async def _reference(conn: Connection, customer: Values, given: str) -> str:
    if given.strip():
        reference = dd.check_reference(given)
        if await store.reference_taken(conn, reference):
            raise schemas.Invalid({"reference": f"another mandate has the reference {reference}"})
        return reference
    n = await store.mandates_of(conn, customer["id"])
    while True:  # the customer's number, and how many mandates it had
        n += 1
        reference = dd.check_reference(dd.latin(f"LM-{customer['number']}-{n}", 35).replace(" ", "-"))
        if not await store.reference_taken(conn, reference):
            return reference


def masked_iban(iban: str) -> str:
    """An IBAN as the portal shows and logs it: its country code and last four (``DE •••• 3000``)."""
    return f"{iban[:2]} •••• {iban[-4:]}"


async def add_mandate(conn: Connection, customer: Values, data: MandateIn, who: Principal, address: str | None, *,
                      today: dt.date, online: bool = False) -> int:
    """A mandate of ``customer`` (a row the principal sees, with its currency); its id. ``online``:
    the customer signed it itself in the portal (admin/portal/mandates.py): its log line says so
    and shows the IBAN masked."""
    errors: dict[str, str] = {}
    found: dd.Account | None = None
    bic = ""
    try:
        found = dd.check_iban(data.iban)
    except dd.DirectDebitError as e:
        errors["iban"] = str(e)
    try:
        bic = dd.check_bic(data.bic)
    except dd.DirectDebitError as e:
        errors["bic"] = str(e)
    holder = " ".join(data.holder.split())
    if not holder:
        errors["holder"] = "is required"
    elif not dd.latin(holder, 70):
        errors["holder"] = "must have letters or digits a bank can print"
    if data.signed_on > today:
        errors["signed_on"] = "is after today: a mandate is taken once it is signed"
    if customer["currency"] != dd.CURRENCY:
        errors["customer_id"] = f"this customer is billed in {customer['currency']}: SEPA direct debits are in euro"
    try:
        reference = await _reference(conn, customer, data.reference)
    except dd.DirectDebitError as e:
        errors["reference"] = str(e)
    except schemas.Invalid as e:
        errors.update(e.errors)
    if errors:
        raise schemas.Invalid(errors)
    assert found is not None
    found = dd.Account(found.iban, bic or found.bic, found.bank)
    active = await store.active_mandate(conn, customer["id"])
    if active is not None:
        raise schemas.Invalid({"customer_id": f"the customer has the active mandate {active['reference']}: revoke it "
                                              "before adding another"})
    shown, how = (masked_iban(found.iban), " online in the customer portal on") if online else (found.iban, "")
    try:
        async with conn.transaction():
            mandate_id = await store.insert_mandate(conn, customer["id"], reference, found.iban, found.bic, holder,
                                                    data.signed_on, who.name)
            await oplog_store.record(
                conn, who, address, "create", "sepa_mandate", mandate_id, customer_id=customer["id"],
                partner_id=customer["partner_id"],
                summary=f"SEPA mandate {reference} of {holder}, {shown} signed{how} {data.signed_on.isoformat()}",
                after={"reference": reference, "iban": shown, "bic": found.bic, "holder": holder,
                       "signed_on": data.signed_on.isoformat(),
                       **({"signed": "online in the customer portal"} if online else {})})
    except asyncpg.UniqueViolationError as e:  # one added meanwhile
        if e.constraint_name == "sepa_mandates_one_active":
            raise schemas.Invalid({"customer_id": "the customer has an active mandate already (added meanwhile)"}) \
                from None
        raise schemas.Invalid({"reference": f"another mandate has the reference {reference}"}) from None
    return mandate_id


class Refused(Exception):
    """A change the object's state does not allow (409)."""


async def revoke_mandate(conn: Connection, mandate: Values, who: Principal, address: str | None) -> None:
    async with conn.transaction():
        if not await store.revoke_mandate(conn, mandate["id"]):
            raise Refused(f"the mandate {mandate['reference']} is revoked already")
        await oplog_store.record(conn, who, address, "revoke", "sepa_mandate", mandate["id"],
                                 customer_id=mandate["customer_id"], partner_id=mandate["partner_id"],
                                 summary=f"SEPA mandate {mandate['reference']} revoked: no collection from now on",
                                 before={"status": "active"}, after={"status": "revoked"})


# -- batches ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Preview:
    collection_date: dt.date
    due_by: dt.date
    earliest: dt.date
    count: int
    total: Decimal
    problem: str = ""              # why no batch can be made for the date (settings, the date)


@dataclass(frozen=True, slots=True)
class Made:
    batch_id: int
    message_id: str
    collection_date: dt.date
    count: int
    total: Decimal
    first: int                     # collections FRST
    recurring: int                 # collections RCUR


def _check_date(settings: Values, collection_date: dt.date, today: dt.date) -> None:
    """Refused for settings not complete, DirectDebitError for a date a bank does not take."""
    if not complete(settings):
        raise Refused("the creditor's settings are not complete: give the creditor identifier, name "
                                  "and IBAN (Direct debit → Settings) first")
    dd.check_collection_date(collection_date, today, settings["lead_days"])


async def preview(conn: Connection, collection_date: dt.date, today: dt.date,
                  due_by: dt.date | None = None) -> Preview:
    settings = await store.settings(conn)
    due_by = due_by or collection_date
    problem = ""
    try:
        _check_date(settings, collection_date, today)
    except (Refused, dd.DirectDebitError) as e:
        problem = str(e)
    summary = await store.due_summary(conn, collection_date, due_by)
    return Preview(collection_date, due_by, dd.earliest_collection(today, settings["lead_days"]), summary["count"],
                   Decimal(summary["total"]), problem)


def message_id(batch_id: int, created: dt.datetime) -> str:
    return f"LMDD{created.astimezone(dt.UTC):%Y%m%d%H%M%S}-{batch_id}"


def end_to_end_id(batch_id: int, document_id: int) -> str:
    return f"LMDD{batch_id}-{document_id}"


def debits_of(batch_id: int, rows: Sequence[Values]) -> list[tuple[Values, dd.Debit]]:
    """The collections of the due invoices ``rows`` (store.due): each invoice's open amount in
    cents, FRST when its mandate was never collected (every invoice of it in this batch then)."""
    out = []
    for r in rows:
        amount = money.quantize(Decimal(r["amount"]), dd.CURRENCY)
        if amount <= 0:
            continue
        out.append((r, dd.Debit(
            end_to_end_id=end_to_end_id(batch_id, r["document_id"]), amount=amount,
            sequence=dd.sequence(r["collected_before"]), mandate_reference=r["reference"], signed_on=r["signed_on"],
            debtor=r["holder"], iban=r["iban"], bic=r["bic"], remittance=f"Invoice {r['document_number']}")))
    return out


async def make_batch(conn: Connection, collection_date: dt.date, who: Principal, address: str | None, *,
                     today: dt.date, due_by: dt.date | None = None, now: dt.datetime | None = None) -> Made:
    """A batch of what is due by ``due_by`` (the collection date unless said), collected on
    ``collection_date``. DirectDebitError for a date a bank does not take; Refused when the
    settings are not complete or nothing is due."""
    due_by = due_by or collection_date
    created = now or dt.datetime.now(dt.UTC)
    async with conn.transaction():
        settings = await store.settings(conn, lock=True)
        _check_date(settings, collection_date, today)
        rows = await store.due(conn, collection_date, due_by)
        batch_id = await store.new_batch_id(conn)
        debits = debits_of(batch_id, rows)
        if not debits:
            raise Refused(f"nothing to collect on {collection_date.isoformat()}: no unpaid invoice due by "
                                      f"{due_by.isoformat()} of a customer with an active mandate (and not in a "
                                      "batch already)")
        creditor = dd.Creditor(settings["creditor_id"], settings["creditor_name"], settings["iban"], settings["bic"],
                               settings["scheme"])
        msg = message_id(batch_id, created)
        xml = dd.pain008(creditor, msg, created, collection_date, [d for _, d in debits])
        total = sum((d.amount for _, d in debits), Decimal(0))
        await store.insert_batch(conn, batch_id, msg, collection_date, dd.CURRENCY, len(debits), total, xml.decode(),
                                 who.name)
        await store.insert_collections(conn, batch_id, [
            (r["mandate_id"], r["customer_id"], r["document_id"], d.amount, d.sequence, d.end_to_end_id)
            for r, d in debits])
        first = sum(d.sequence == "FRST" for _, d in debits)
        made = Made(batch_id, msg, collection_date, len(debits), total, first, len(debits) - first)
        await oplog_store.record(
            conn, who, address, "create", "dd_batch", batch_id,
            summary=f"direct-debit batch #{batch_id} for {collection_date.isoformat()}: {made.count} collection"
                    f"{'s' if made.count != 1 else ''}, {total} {dd.CURRENCY} ({first} FRST, {made.recurring} RCUR)",
            after={"message_id": msg, "collection_date": collection_date.isoformat(), "due_by": due_by.isoformat(),
                   "count": made.count, "total": str(total), "frst": first, "rcur": made.recurring})
    return made


# -- settlement -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Settled:
    count: int
    total: Decimal
    unpinned: tuple[str, ...] = ()   # collections whose invoice could not be named (void meanwhile): paid to the
    #                                   customer's balance instead
    dunning: tuple[tuple[str, int], ...] = ()  # what dunning did after them ("unblock", how many)


SETTLE_CHUNK = 200
"""Collections settled per transaction: dunning looks at their customers once, at its end (its
query reads every open invoice, so once per payment would cost 0.2 s each at 100,000 customers)."""


async def settle(conn: Connection, today: dt.date, who: Principal, address: str | None, *,
                 batch_id: int | None = None) -> Settled:
    """Every pending collection whose date has come (of ``batch_id``, or of every batch) made a
    payment and paid, ``SETTLE_CHUNK`` to a transaction, with dunning for their customers in the
    same transaction (a blocked customer whose debt is paid is active when they commit); one
    settled meanwhile is skipped."""
    due = await store.due_collections(conn, today, batch_id)
    count, total = 0, Decimal(0)
    unpinned: list[str] = []
    moved: dict[str, int] = {}
    for i in range(0, len(due), SETTLE_CHUNK):
        async with conn.transaction():
            customers: list[int] = []
            for collection_id in due[i:i + SETTLE_CHUNK]:
                row = await _settle_one(conn, collection_id, today, who, address, unpinned)
                if row is not None:
                    customers.append(row["customer_id"])
                    count += 1
                    total += Decimal(row["amount"])
            if customers:
                summary = await collect.run(conn, today, sorted(set(customers)))
                for action, n in summary.actions.items():
                    moved[action] = moved.get(action, 0) + n
                if summary.actions:
                    done = ", ".join(f"{n} {a}" for a, n in sorted(summary.actions.items()))
                    await oplog_store.record(conn, who, address, "dunning", "dd_batch", batch_id,
                                             summary=f"dunning after {len(customers)} direct debits collected: {done}",
                                             after={"actions": summary.actions, "customers": sorted(set(customers))})
    return Settled(count, total, tuple(unpinned), tuple(sorted(moved.items())))


async def _settle_one(conn: Connection, collection_id: int, today: dt.date, who: Principal, address: str | None,
                      unpinned: list[str]) -> asyncpg.Record | None:
    """One collection paid (in the caller's transaction), or None when it is not pending any more."""
    row = await store.collection_for_update(conn, collection_id)
    if row is None or row["status"] != "pending":
        return None
    payment = record.NewPayment(
        row["customer_id"], Decimal(row["amount"]), row["collection_date"], "direct_debit",
        source="direct_debit", receipt_number=row["end_to_end_id"], payer=row["holder"],
        comment=f"SEPA direct debit of {row['document_number']}, mandate {row['mandate_reference']}",
        document_id=row["document_id"], collection_id=collection_id, by=who.name)
    try:
        done = await record.record(conn, payment, dunning=False)
    except record.PaymentError:
        # the invoice was voided meanwhile: the bank collected all the same, so it is the customer's credit
        done = await record.record(conn, dataclasses.replace(payment, document_id=None), dunning=False)
        unpinned.append(row["end_to_end_id"])
    await store.set_paid(conn, collection_id)
    await oplog_store.record(
        conn, who, address, "payment", "dd_collection", collection_id, customer_id=row["customer_id"],
        partner_id=row["partner_id"],
        summary=f"direct debit {row['end_to_end_id']} of {row['amount']} {dd.CURRENCY} collected for "
                f"{row['document_number']} (batch #{row['batch_id']}): receipt {done.receipt_number}",
        after={"status": "paid", "payment_id": done.id, "receipt_id": done.receipt_id})
    return row


# -- the bank's answers -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Line:
    end_to_end_id: str
    customer_id: int
    document_number: str
    reason: str
    result: str                    # "failed" (was pending), "reversed" (was paid: its payment taken back), "already"


@dataclass(frozen=True, slots=True)
class Applied:
    kind: str
    message_id: str
    lines: tuple[Line, ...] = ()
    unknown: tuple[str, ...] = ()  # what the file names that is none of our collections or batches
    ignored: int = 0               # entries that reject or return nothing
    dunning: tuple[tuple[str, int], ...] = ()  # what dunning did after the payments taken back ("block", 2)

    def count(self, result: str) -> int:
        return sum(line.result == result for line in self.lines)

    def describe(self) -> str:
        parts = [f"{self.count('failed')} rejected", f"{self.count('reversed')} returned (payments taken back)"]
        if self.count("already"):
            parts.append(f"{self.count('already')} known already")
        if self.unknown:
            parts.append(f"{len(self.unknown)} not ours ({', '.join(self.unknown[:3])}"
                         f"{', ...' if len(self.unknown) > 3 else ''})")
        if self.ignored:
            parts.append(f"{self.ignored} accepted or other entries left alone")
        if self.dunning:
            parts.append("then dunning: " + ", ".join(f"{n} {a}" for a, n in self.dunning))
        return ", ".join(parts)


@dataclass
class _Targets:
    rows: dict[int, asyncpg.Record] = field(default_factory=dict)
    outcome: dict[int, dd.Outcome] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)


async def _targets(conn: Connection, report: dd.Report) -> _Targets:
    """The collections each outcome names, locked (one named twice keeps its first outcome)."""
    t = _Targets()
    named = [o.end_to_end_id for o in report.outcomes if o.end_to_end_id]
    by_id = {r["end_to_end_id"]: r for r in await store.collections_named(conn, named)} if named else {}
    whole: dict[str, list[asyncpg.Record]] = {}
    for o in report.outcomes:
        if o.end_to_end_id:
            found = [by_id[o.end_to_end_id]] if o.end_to_end_id in by_id else []
            what = o.end_to_end_id
        else:
            if o.message_id not in whole:
                whole[o.message_id] = await store.collections_of_message(conn, o.message_id)
            part = o.payment_info_id.rsplit("/", 1)[-1] if o.payment_info_id else None
            found = [r for r in whole[o.message_id] if part is None or r["sequence"] == part]
            what = o.payment_info_id or o.message_id or "(a message not named)"
        if not found:
            t.unknown.append(what)
        for r in found:
            t.rows.setdefault(r["id"], r)
            t.outcome.setdefault(r["id"], o)
    return t


async def apply_report(conn: Connection, data: bytes, file_name: str, who: Principal, address: str | None, *,
                       today: dt.date) -> Applied:
    """Read a pain.002 / camt.054 / camt.053 and apply its rejects and returns (see the module's
    doc); DirectDebitError, with nothing written, for a file that is broken, hostile, of another
    kind, or that names none of our collections."""
    report = dd.read_report(data)
    lines: list[Line] = []
    async with conn.transaction():
        t = await _targets(conn, report)
        if report.outcomes and not t.rows:
            raise dd.DirectDebitError(f"none of what the {report.kind} rejects or returns is one of our collections "
                                      f"({', '.join(t.unknown[:3])}): is it another creditor's file?")
        for collection_id, row in sorted(t.rows.items()):
            lines.append(await _apply(conn, row, t.outcome[collection_id], who, address))
        reopened = sorted({x.customer_id for x in lines if x.result == "reversed"})
        moved = (await collect.run(conn, today, reopened)).actions if reopened else {}
        applied = Applied(report.kind, report.message_id, tuple(lines), tuple(t.unknown), report.ignored,
                          tuple(sorted(moved.items())))
        await oplog_store.record(
            conn, who, address, "import", "dd_return_file", None,
            summary=f"{report.kind} {file_name or 'uploaded'}: {applied.describe()}",
            after={"kind": report.kind, "message_id": report.message_id, "file_name": file_name,
                   "failed": applied.count("failed"), "reversed": applied.count("reversed"),
                   "already": applied.count("already"), "unknown": list(t.unknown), "ignored": report.ignored,
                   "dunning": moved})
    return applied


async def _apply(conn: Connection, row: asyncpg.Record, o: dd.Outcome, who: Principal, address: str | None) -> Line:
    reason = o.reason_text or o.status
    if row["status"] == "failed":
        return Line(row["end_to_end_id"], row["customer_id"], row["document_number"], row["reason"], "already")
    result = "failed"
    if row["status"] == "paid":
        result = "reversed"
        if row["payment_id"] is not None and row["reversed_at"] is None:
            await record.reverse(conn, row["payment_id"], f"direct debit {o.status} by the bank: {reason}", who.name,
                                 dunning=False)  # dunning once for the whole file (apply_report)
    await store.set_failed(conn, row["id"], reason)
    await oplog_store.record(
        conn, who, address, "return" if result == "reversed" else "reject", "dd_collection", row["id"],
        customer_id=row["customer_id"], partner_id=row["partner_id"],
        summary=f"direct debit {row['end_to_end_id']} of {row['amount']} {dd.CURRENCY} for {row['document_number']} "
                f"{o.status} by the bank: {reason}" + ("; its payment taken back, the invoice open again"
                                                      if result == "reversed" else ""),
        before={"status": row["status"]}, after={"status": "failed", "reason": reason})
    return Line(row["end_to_end_id"], row["customer_id"], row["document_number"], reason, result)
