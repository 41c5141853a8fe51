"""A customer's balance explained in plain words, from its ledger: "You owe 24.00 EUR: invoice
2026-0012 of 1 Nov 2026 (29.00 EUR) less a payment of 5.00 EUR on 3 Nov 2026".

Pure: the ledger's entries (admin/billing/store.py ``ledger``, in posting order) come in. The
explanation starts where the balance last stood on the other side of zero (or at zero): what
came after made it what it is. An invoice's lines are one part, a void is netted into the part
of what it voids (an invoice voided in the window drops out), prepaid charges (no document) are
one part per month; past ``most`` parts the oldest are folded into an amount "from before".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from admin.billing import money
from admin.filters import money as shown

State = Literal["owed", "credit", "settled"]
MOST = 6
NAMES = {"invoice": "invoice", "credit_note": "credit note", "receipt": "receipt"}


@dataclass(frozen=True, slots=True)
class Entry:
    """A ledger transaction: ``debit`` lowers the balance, ``credit`` raises it."""

    id: int
    on: dt.date
    kind: str  # charge, fee, payment, credit_note, refund, correction, reversal
    debit: Decimal
    credit: Decimal
    document: str = ""  # its document's number ("" : none, as prepaid charges and reversals)
    document_kind: str = ""  # invoice, credit_note, receipt
    reverses_id: int | None = None


@dataclass(frozen=True, slots=True)
class Part:
    """One thing the balance is made of: ``amount`` is what it did to the balance (+ credit)."""

    text: str
    on: dt.date
    amount: Decimal
    document: str = ""


@dataclass(frozen=True, slots=True)
class Explanation:
    balance: Decimal
    currency: str
    parts: tuple[Part, ...] = ()
    before: Decimal = Decimal(0)  # the balance the parts start from ("from before")

    @property
    def state(self) -> State:
        return "owed" if self.balance < 0 else "credit" if self.balance > 0 else "settled"

    @property
    def owed(self) -> Decimal:
        """What the customer owes (0 when in credit)."""
        return max(-self.balance, Decimal(0))

    def sentence(self) -> str:
        cur = self.currency
        if self.state == "settled":
            return f"You owe nothing: your balance is {shown(self.balance, cur)}."
        sign = -1 if self.state == "owed" else 1
        head = (f"You owe {shown(-self.balance, cur)}" if sign < 0
                else f"You have {shown(self.balance, cur)} in credit")
        pieces = [(p.amount, p.text) for p in self.parts]
        if self.before:
            earlier = (f"{shown(-self.before, cur)} owed from before" if self.before < 0
                       else f"a credit of {shown(self.before, cur)} from before")
            if (self.before > 0) == (sign > 0):
                pieces.insert(0, (self.before, earlier))
            else:
                pieces.append((self.before, earlier))
        said = []
        for i, (amount, text) in enumerate(pieces):
            if i == 0:
                said.append(text)
            else:
                said.append(("plus " if (amount > 0) == (sign > 0) else "less ") + text)
        return f"{head}: {' '.join(said)}." if said else f"{head}."


def entries(rows: Iterable[Any]) -> list[Entry]:
    """The entries of a customer's ledger rows (admin/billing/store.py ``ledger``)."""
    return [Entry(r["id"], r["posted_on"], r["kind"], r["amount"] if r["direction"] == "debit" else Decimal(0),
                  r["amount"] if r["direction"] == "credit" else Decimal(0), r["document_number"] or "",
                  r["document_kind"] or "", r["reverses_id"]) for r in rows]


def day(on: dt.date) -> str:
    """A day as the portal writes it: 1 Nov 2026."""
    return f"{on.day} {on:%b %Y}"


def days(start: dt.date, end: dt.date | None) -> str:
    """A period as the portal writes it, ``end`` exclusive (as stored): 1 Nov 2026 – 30 Nov 2026."""
    if end is None:
        return f"from {day(start)}"
    last = end - dt.timedelta(days=1)
    return day(start) if last == start else f"{day(start)} – {day(last)}"


def _window(entries: Sequence[Entry], currency: str) -> tuple[Decimal, int, Decimal]:
    """(the balance, where the entries that explain it start, the balance before them)."""
    running = money.quantize(Decimal(0), currency)
    after: list[Decimal] = []
    for e in entries:
        running += e.credit - e.debit
        after.append(running)
    start, before = 0, Decimal(0)
    if running != 0:
        for i in range(len(after) - 1, -1, -1):
            other_side = after[i] >= 0 if running < 0 else after[i] <= 0
            if other_side:
                start, before = i + 1, after[i]
                break
    return running, start, before


def _text(kind: str, document_kind: str, number: str, on: dt.date, last: dt.date, amount: Decimal,
          currency: str) -> str:
    size = shown(abs(amount), currency)
    if document_kind == "invoice":
        return f"invoice {number} of {day(on)} ({size})"
    if document_kind == "receipt" or kind == "payment":
        return f"a payment of {size} on {day(on)}"
    if document_kind == "credit_note":
        return f"credit note {number} of {day(on)} ({size})"
    if kind == "charge":
        return (f"charges of {size} from {day(on)} to {day(last)}" if last != on
                else f"a charge of {size} on {day(on)}")
    if kind == "reversal":
        return f"a reversal of {size} on {day(on)}"
    what = {"refund": "a refund", "correction": "a correction", "fee": "a fee"}.get(kind, "an entry")
    return f"{what} of {size} on {day(on)}"


def parts_of(entries: Iterable[Entry], currency: str, *, origin: dict[int, Entry] | None = None) -> list[Part]:
    """``entries`` grouped into parts, oldest first: per document, prepaid charges per month, a
    reversal with what it reverses (``origin``: entries by id, the window's and earlier ones)."""
    by_id = dict(origin or {})
    groups: dict[tuple[str, ...], list[Entry]] = {}
    for e in entries:
        by_id.setdefault(e.id, e)
        target = by_id.get(e.reverses_id) if e.reverses_id is not None else None
        if target is not None and target.document:
            key: tuple[str, ...] = ("doc", target.document_kind, target.document)
        elif e.document:
            key = ("doc", e.document_kind, e.document)
        elif e.kind == "charge":
            key = ("charges", f"{e.on:%Y-%m}")
        else:
            key = ("one", str(e.id))
        groups.setdefault(key, []).append(e)
    out = []
    for key, group in groups.items():
        amount = sum((e.credit - e.debit for e in group), Decimal(0))
        if amount == 0 and len(group) > 1:
            continue  # voided in the window: it no longer counts
        first = group[0]
        if key[0] != "doc":
            out.append(Part(_text(first.kind, "", "", first.on, group[-1].on, amount, currency), first.on, amount))
            continue
        number = key[2]
        own = next((e for e in group if e.document == number), None)
        if own is not None:
            text = _text(own.kind, own.document_kind, number, own.on, own.on, amount, currency)
            if any(e.kind == "reversal" for e in group):
                text += ", in part void"
            out.append(Part(text, own.on, amount, number))
        else:  # the void of a document from before the window
            size = shown(abs(amount), currency)
            what = "the payment" if key[1] == "receipt" else NAMES.get(key[1], "document")
            done = "taken back" if key[1] == "receipt" else "made void"
            out.append(Part(f"{what} {number} {done} on {day(first.on)} ({size})", first.on, amount, number))
    return sorted(out, key=lambda p: p.on)


def explain(entries: Sequence[Entry], currency: str, *, most: int = MOST) -> Explanation:
    """What the balance is and what it is made of (at most ``most`` parts, the rest "from before")."""
    balance, start, before = _window(entries, currency)
    if balance == 0:
        return Explanation(balance, currency)
    earlier = {e.id: e for e in entries[:start]}
    parts = parts_of(entries[start:], currency, origin=earlier)
    if len(parts) > most:
        folded, parts = parts[:-most], parts[-most:]
        before += sum((p.amount for p in folded), Decimal(0))
    return Explanation(balance, currency, tuple(parts), money.quantize(before, currency))
