"""Whose payment is a bank statement line: every signal scored, the best customer taken when it
is sure enough, and every decision explained.

The signals, their points (a customer's score is their sum, at most 100):

- ``reference`` 100: the customer's payment reference (admin/payments/reference.py, ISO 11649
  with check digits) in the line's reference or text; decisive, since a typo fails the check;
- ``document`` 60: the number of one of its invoices or proformas in the text (the payment then
  pays that one, when it is open);
- ``amount`` 25: the amount is what one of its open invoices (the named one first) leaves open,
  or all that its open invoices leave open (20);
- ``account`` 50: the payer's account paid for this customer before (a line matched or paired
  to it); 25 when it paid for several customers;
- ``name`` up to 45: the payer's name against the customer's, both normalised (case, accents,
  "ue" for "ü", company forms dropped): every word of the customer's name in the payer's is 45
  (30 when other customers have the same name), a part of them is a part of 30. A name alone
  finds a customer only when all of its words are there.

A line is ``matched`` when its best customer scores :data:`THRESHOLD` or more and no other
customer does; else it waits for a person (``new``, with the best customer as the suggestion).
A matched line whose currency or decimals its customer cannot take is an ``error`` that says
so; money out (a debit) and nothing moved are ``ignored``. The explanation is the list of
signals of the customer chosen (or suggested), then what the person should know (another
customer that fits as well, a reference with a wrong check digit).

What a decision needs is loaded in bulk by the caller (admin/payments/statements/importer.py,
SQL in matching_store.py) in :class:`Known`: :func:`wanted` says what to load for a whole
file, :func:`name_tokens` the words of the payers no other signal placed. Pure: no I/O.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from admin.billing import money
from admin.payments import reference

THRESHOLD = 70
REFERENCE, DOCUMENT, AMOUNT, ALL_OPEN, ACCOUNT, SHARED_ACCOUNT = 100, 60, 25, 20, 50, 25
NAME_FULL, NAME_SHARED, NAME_PART = 45, 30, 30

# Name folding: lower case, accents off, a few letters spelt out, then "ae"/"oe"/"ue" as
# "a"/"o"/"u" (Müller, Mueller and Muller are one name).
FOLD_FROM = "àáâãäåāăąçćčďèéêëēėęěìíîïīįıñńňòóôõöōőŕřśšşùúûüūůűųýÿžźżţť"
FOLD_TO = "aaaaaaaaacccdeeeeeeeeiiiiiiinnnooooooorrsssuuuuuuuuyyzzztt"
SPELT = (("ß", "ss"), ("æ", "ae"), ("ø", "o"), ("œ", "oe"), ("ł", "l"), ("đ", "d"), ("þ", "th"))
VOWEL_E = r"([aou])e+"  # all the e, so folding twice is folding once ("æe": "aee" -> "a")
WORD_SPLIT = r"[\W_]+"  # words of any script (a Cyrillic name is words too)
STOP = frozenset({
    "gmbh", "mbh", "ag", "kg", "ohg", "ug", "eg", "ev", "ltd", "llc", "inc", "plc", "corp", "co", "sa", "sas", "sarl",
    "srl", "spa", "sro", "spol", "as", "ab", "oy", "bv", "nv", "sp", "zoo", "and", "und", "the", "mr", "mrs", "ms",
    "dr", "herr", "frau", "familie", "family", "von", "van", "der", "de", "la", "le", "di", "da",
})
_TOKEN = re.compile(r"[0-9A-Za-z][0-9A-Za-z/_.\-]*")
_RF_LIKE = re.compile(r"R\s*F\s*\d\s*\d(?:\s*[0-9A-Z]){4,21}", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class LineIn:
    """What matching reads of a line."""

    amount: Decimal
    currency: str
    payer_name: str = ""
    payer_account: str = ""
    reference: str = ""
    description: str = ""

    @property
    def text(self) -> str:
        return f"{self.reference} {self.description}".strip()


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    number: str
    name: str
    currency: str
    status: str = "active"


@dataclass(frozen=True, slots=True)
class Document:
    id: int
    customer_id: int
    number: str
    kind: str                  # invoice, proforma
    open: Decimal
    void: bool = False


@dataclass(slots=True)
class Known:
    """What the store loaded for a file: the customers any signal names, the documents whose
    numbers the texts hold, the accounts seen before, the open invoices of every candidate,
    and the customers named by the words of a payer no other signal placed (their names' words
    -> the customers of that name)."""

    customers: dict[int, Customer] = field(default_factory=dict)
    documents: dict[str, list[Document]] = field(default_factory=dict)
    accounts: dict[str, dict[int, int]] = field(default_factory=dict)  # account -> {customer: times}
    open_invoices: dict[int, list[Document]] = field(default_factory=dict)
    by_words: dict[frozenset[str], list[int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Signal:
    signal: str
    points: int
    detail: str

    def as_json(self) -> dict[str, object]:
        return {"signal": self.signal, "points": self.points, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str                # matched, new, error, ignored
    customer_id: int | None
    document_id: int | None
    score: int
    explanation: tuple[Signal, ...]
    error: str = ""


@dataclass(frozen=True, slots=True)
class Wanted:
    customer_ids: frozenset[int]
    numbers: frozenset[str]
    accounts: frozenset[str]


# -- what to load --------------------------------------------------------------------------------

@functools.lru_cache(maxsize=65536)
def references(text: str) -> tuple[int, ...]:
    """The customers the valid payment references in ``text`` name (reference.find, kept: every
    line's text is asked more than once)."""
    return tuple(reference.find(text))


@functools.lru_cache(maxsize=65536)
def number_tokens(text: str) -> frozenset[str]:
    """Words of a text that may be document numbers: those with a digit, whole and split at
    ``-``, ``/``, ``_`` and ``.`` ("INV-202601000001" is also "202601000001")."""
    out: set[str] = set()
    for m in _TOKEN.finditer(text):
        word = m.group(0).strip("-_./")
        for part in (word, *re.split(r"[-/_.]", word)):
            if 3 <= len(part) <= 40 and any(ch.isdigit() for ch in part):
                out.add(part)
                out.add(part.upper())
    return frozenset(out)


def account_key(account: str) -> str:
    """An account as it is compared: no spaces, upper case; "" when too short to tell anyone apart."""
    key = re.sub(r"\s+", "", account).upper()
    return key if len(key) >= 8 else ""


def wanted(lines: Iterable[LineIn]) -> Wanted:
    ids: set[int] = set()
    numbers: set[str] = set()
    accounts: set[str] = set()
    for line in lines:
        if line.amount <= 0:
            continue
        ids.update(references(line.text))
        numbers |= number_tokens(line.text)
        if key := account_key(line.payer_account):
            accounts.add(key)
    return Wanted(frozenset(ids), frozenset(numbers), frozenset(accounts))


_FOLD_ALL = str.maketrans({**dict(zip(FOLD_FROM, FOLD_TO, strict=True)), **dict(SPELT)})
_VOWEL_E = re.compile(VOWEL_E)
_WORD_SPLIT = re.compile(WORD_SPLIT)


def fold(text: str) -> str:
    """A name as it is compared (see FOLD_FROM)."""
    return _VOWEL_E.sub(r"\1", text.lower().translate(_FOLD_ALL))


def name_words(name: str) -> frozenset[str]:
    """The words of a name that tell people apart: folded, at least two letters, no digits
    only, no company forms or titles."""
    return frozenset(w for w in _WORD_SPLIT.split(fold(name)) if len(w) >= 2 and w not in STOP and not w.isdigit())


@functools.lru_cache(maxsize=65536)
def name_tokens(name: str) -> frozenset[str]:
    """:func:`name_words`, kept (a payer's name is asked more than once)."""
    return name_words(name)


def placed(line: LineIn, known: Known) -> bool:
    """Whether a signal other than the payer's name names a customer of this line."""
    return bool(_candidates(line, known))


# -- deciding -----------------------------------------------------------------------------------

def _candidates(line: LineIn, known: Known) -> dict[int, list[Signal]]:
    out: dict[int, list[Signal]] = {}
    for cid in references(line.text):
        if cid in known.customers:
            c = known.customers[cid]
            out.setdefault(cid, []).append(Signal(
                "reference", REFERENCE, f"payment reference {reference.printed(reference.for_customer(cid))} is "
                                        f"customer {c.number}'s"))
    seen_docs: set[int] = set()
    for token in sorted(number_tokens(line.text)):
        for d in known.documents.get(token, []):
            if d.id in seen_docs or d.customer_id not in known.customers:
                continue
            seen_docs.add(d.id)
            c = known.customers[d.customer_id]
            if d.void:
                out.setdefault(d.customer_id, []).append(Signal(
                    "document", 0, f"{d.kind} {d.number} (customer {c.number}'s) is void"))
                continue
            paid = " (paid already)" if d.open <= 0 else ""
            out.setdefault(d.customer_id, []).append(Signal(
                "document", DOCUMENT, f"{d.kind} {d.number} in the text is customer {c.number}'s{paid}"))
    key = account_key(line.payer_account)
    owners = known.accounts.get(key, {}) if key else {}
    for cid, times in owners.items():
        if cid not in known.customers:
            continue
        c = known.customers[cid]
        if len(owners) == 1:
            out.setdefault(cid, []).append(Signal(
                "account", ACCOUNT, f"account {key} paid for customer {c.number} before ({times} time"
                                    f"{'s' if times != 1 else ''})"))
        else:
            out.setdefault(cid, []).append(Signal(
                "account", SHARED_ACCOUNT, f"account {key} paid for {len(owners)} customers before, "
                                           f"{c.number} among them"))
    return out


MAX_NAME_WORDS = 6
MAX_NAMESAKES = 5
"""More customers of one name than this, and the name tells nobody apart (it is not a signal)."""


def _namesakes(line: LineIn, known: Known) -> list[int]:
    """The customers all of whose name's words are in the payer's name."""
    words = sorted(name_tokens(line.payer_name))[:MAX_NAME_WORDS]
    found: set[int] = set()
    for size in range(len(words), 0, -1):
        for subset in itertools.combinations(words, size):
            found.update(known.by_words.get(frozenset(subset), ()))
    return sorted(found)


def _by_name(line: LineIn, known: Known) -> tuple[dict[int, list[Signal]], list[Signal]]:
    """Customers the payer's name names (when nothing else placed the line), and a note when too
    many have that name to tell."""
    full = [cid for cid in _namesakes(line, known) if cid in known.customers]
    if len(full) > MAX_NAMESAKES:
        return {}, [Signal("name", 0, f"the payer {line.payer_name!r} has the name of {len(full)} customers: it "
                                      "tells nobody apart")]
    out: dict[int, list[Signal]] = {}
    for cid in full:
        c = known.customers[cid]
        if len(full) == 1:
            out[cid] = [Signal("name", NAME_FULL, f"the payer {line.payer_name!r} is customer {c.number}, {c.name}")]
        else:
            out[cid] = [Signal("name", NAME_SHARED, f"the payer {line.payer_name!r} has the name of {len(full)} "
                                                    f"customers, {c.number} among them")]
    return out, []


def named_by(lines: Iterable[LineIn], known: Known) -> set[int]:
    """The customers whose names place the lines no other signal placed (by_words loaded), those
    of a name too many customers have left out."""
    out: set[int] = set()
    for line in lines:
        if line.amount <= 0 or placed(line, known):
            continue
        found = _namesakes(line, known)
        if len(found) <= MAX_NAMESAKES:
            out.update(found)
    return out


def _name_signal(line: LineIn, c: Customer) -> Signal | None:
    words, own = name_tokens(line.payer_name), name_tokens(c.name)
    if not words or not own:
        return None
    common = words & own
    if own <= words:
        return Signal("name", NAME_FULL, f"the payer {line.payer_name!r} is {c.name}")
    if common:
        points = round(NAME_PART * len(common) / len(own))
        return Signal("name", points, f"the payer {line.payer_name!r} shares {len(common)} of {len(own)} words "
                                      f"with {c.name}")
    return Signal("name", 0, f"the payer {line.payer_name!r} is not {c.name}")


def _amount_signal(line: LineIn, cid: int, named: Document | None, known: Known) -> tuple[Signal | None, int | None]:
    """The amount's signal for a customer and the invoice the payment should pay (or None)."""
    invoices = [d for d in known.open_invoices.get(cid, []) if d.open > 0]
    if named is not None and named.open > 0:
        if named.open == line.amount:
            return Signal("amount", AMOUNT, f"{line.amount} is what {named.number} leaves open"), named.id
        return Signal("amount", 0, f"{line.amount} is not what {named.number} leaves open ({named.open})"), named.id
    same = [d for d in invoices if d.open == line.amount]
    if len(same) == 1:
        return Signal("amount", AMOUNT, f"{line.amount} is what invoice {same[0].number} leaves open"), same[0].id
    if len(same) > 1:
        return Signal("amount", AMOUNT, f"{line.amount} is what {len(same)} of its invoices leave open each"), None
    total = sum((d.open for d in invoices), Decimal(0))
    if len(invoices) > 1 and total == line.amount:
        what = f"{line.amount} is all that its {len(invoices)} open invoices leave open"
        return Signal("amount", ALL_OPEN, what), None
    if invoices:
        return Signal("amount", 0, f"{line.amount} is not what its open invoices leave open"), None
    return None, None


def _notes(line: LineIn) -> list[Signal]:
    """A reference with a wrong check digit: worth saying, it is likely a typo of one."""
    out = []
    valid = set(references(line.text))
    for m in _RF_LIKE.finditer(line.text):
        compact = re.sub(r"\s+", "", m.group(0)).upper()
        if not any(reference.customer_of(compact[:end]) in valid for end in range(len(compact), 4, -1)):
            out.append(Signal("reference", 0, f"{compact} is not a valid payment reference (its check digits are "
                                              "wrong: a typo?)"))
    return out


def decide(line: LineIn, known: Known) -> Outcome:
    """Whose payment ``line`` is, from what ``known`` holds (see the module's doc)."""
    if line.amount <= 0:
        what = "money out (a debit): not a payment" if line.amount < 0 else "no money moved"
        return Outcome("ignored", None, None, 0, (Signal("debit", 0, what),))
    scored = _candidates(line, known)
    notes = _notes(line)
    if not scored:
        scored, crowd = _by_name(line, known)
        notes += crowd
    if not scored:
        return Outcome("new", None, None, 0, (*notes, Signal(
            "none", 0, "nothing in the line names a customer: no payment reference, invoice number, known account "
                       "or customer's name")))
    totals: dict[int, tuple[int, list[Signal], int | None]] = {}
    for cid, found in scored.items():
        c = known.customers[cid]
        signals = list(found)
        if not any(s.signal == "name" for s in signals):
            named_signal = _name_signal(line, c)
            if named_signal is not None:
                signals.append(named_signal)
        named = _named_document(line, cid, known)
        amount_signal, document_id = _amount_signal(line, cid, named, known)
        if amount_signal is not None:
            signals.append(amount_signal)
        totals[cid] = (min(100, sum(s.points for s in signals)), signals, document_id)
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1][0], kv[0]))
    best_id, (best, signals, document_id) = ranked[0]
    explanation = [*signals, *notes]
    rivals = [(cid, t) for cid, t in ranked[1:] if t[0] >= THRESHOLD or t[0] == best]
    c = known.customers[best_id]
    if rivals:
        others = ", ".join(known.customers[cid].number for cid, _ in rivals)
        explanation.append(Signal("ambiguous", 0, f"customer {others} fits as well ({rivals[0][1][0]} points): "
                                                  "a person decides"))
        return Outcome("new", None, None, best, tuple(explanation))
    if best < THRESHOLD:
        explanation.append(Signal("threshold", 0, f"{best} points for customer {c.number}: a match needs "
                                                  f"{THRESHOLD}, a person decides"))
        return Outcome("new", best_id, document_id, best, tuple(explanation))
    if c.status == "deleted":
        explanation.append(Signal("customer", 0, f"customer {c.number} is deleted: a person decides"))
        return Outcome("new", best_id, None, best, tuple(explanation))
    if line.currency != c.currency:
        why = f"the line is in {line.currency}, customer {c.number} is billed in {c.currency}"
        return Outcome("error", best_id, None, best, tuple(explanation), why)
    try:
        exact = money.quantize(line.amount, c.currency) == line.amount
    except money.MoneyError as e:
        return Outcome("error", best_id, None, best, tuple(explanation), str(e))
    if not exact:
        why = f"{line.amount} has more decimals than {c.currency} has ({money.digits(c.currency)})"
        return Outcome("error", best_id, None, best, tuple(explanation), why)
    return Outcome("matched", best_id, document_id, best, tuple(explanation))


def _named_document(line: LineIn, cid: int, known: Known) -> Document | None:
    """The customer's invoice or proforma whose number the text holds (an open one first)."""
    found = [d for token in number_tokens(line.text) for d in known.documents.get(token, [])
             if d.customer_id == cid and not d.void]
    found.sort(key=lambda d: (d.open <= 0, d.id))
    return found[0] if found else None


def decide_all(lines: Sequence[LineIn], known: Known) -> list[Outcome]:
    return [decide(line, known) for line in lines]
