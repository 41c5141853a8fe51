"""A customer's payment reference: an ISO 11649 creditor reference ("RF" + two check digits +
the customer's id), printed on invoices, so a bank transfer names whom it is from and a typo in
it is caught by the check digits instead of paying the wrong customer.

The check digits are ISO 7064 MOD 97-10, as in an IBAN: the body, then "RF00", letters as
numbers (A = 10 ... Z = 35), mod 97; the check is 98 less that. A reference is written in groups
of four ("RF18 0000 1234") and read back whatever the spaces and the case.
"""

from __future__ import annotations

import re

BODY_DIGITS = 8  # the customer's id, padded (the body may be up to 21 characters)
_SHAPE = re.compile(r"RF(\d{2})([0-9A-Z]{1,21})")
_FIND = re.compile(r"R\s*F\s*\d\s*\d(?:\s*[0-9A-Z]){1,21}", re.IGNORECASE)


def _numeric(text: str) -> int:
    return int("".join(str(int(ch, 36)) for ch in text))


def check_digits(body: str) -> str:
    return f"{98 - _numeric(body + 'RF00') % 97:02d}"


def valid(reference: str) -> bool:
    compact = re.sub(r"\s+", "", reference).upper()
    m = _SHAPE.fullmatch(compact)
    return m is not None and _numeric(m.group(2) + "RF" + m.group(1)) % 97 == 1


def for_customer(customer_id: int) -> str:
    """The reference, compact (``RF18000012345``)."""
    if customer_id <= 0:
        raise ValueError("a customer's id is positive")
    body = f"{customer_id:0{BODY_DIGITS}d}"
    return f"RF{check_digits(body)}{body}"


def printed(reference: str) -> str:
    """In groups of four, as on paper."""
    return " ".join(reference[i:i + 4] for i in range(0, len(reference), 4))


def customer_of(reference: str) -> int | None:
    """The customer id a valid reference names, else None (a wrong check digit is None)."""
    compact = re.sub(r"\s+", "", reference).upper()
    if not valid(compact):
        return None
    body = compact[4:]
    return int(body) if body.isdigit() and int(body) > 0 else None


def find(text: str) -> list[int]:
    """The customers that the valid references in free text (a transfer's remittance line) name,
    in the order written. Spaces inside a reference are allowed; where it runs into the next
    word, the longest valid prefix is the reference."""
    found: list[int] = []
    pos = 0
    while (m := _FIND.search(text, pos)) is not None:
        compact = re.sub(r"\s+", "", m.group(0)).upper()
        for end in range(len(compact), 4, -1):
            cid = customer_of(compact[:end])
            if cid is not None:
                if cid not in found:
                    found.append(cid)
                pos = _end_of(text, m.start(), end)
                break
        else:
            pos = m.start() + 1
    return found


def _end_of(text: str, start: int, characters: int) -> int:
    """Where in ``text`` the ``characters``-th non-space character from ``start`` ends."""
    seen = 0
    for i in range(start, len(text)):
        if not text[i].isspace():
            seen += 1
            if seen == characters:
                return i + 1
    return len(text)
