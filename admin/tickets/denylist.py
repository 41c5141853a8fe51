"""The inboxes' deny list: rules that refuse an incoming mail by its sender's address, its subject
or its text. Pure.

A rule compares one field (:class:`Field`) in one way (:class:`Match`), ignoring case: the
sender's address (lower case, as :mod:`admin.tickets.inbound` gives it), the subject, the text.
:func:`check` gives the first rule that matches; :func:`problems` says why a rule cannot be saved.

A regular expression cannot hang the intake, whatever an operator types or a sender sends:

- the pattern is at most :data:`MAX_PATTERN` characters and compiles;
- it holds no backreference, and no repeated group that holds a repeat or an alternation
  (``(a+)+``, ``(a|ab)*``: what backtracks exponentially);
- its repeats multiply to at most :data:`BUDGET` choices, an unbounded one (``*``, ``+``, ``{2,}``)
  counting :data:`CHUNK` (``x{2,5}`` counts 4, ``x?`` 2, ``x{3}`` 1): so one ``.*`` with at most
  an ``x?`` beside it, or ``[0-9]{1,3}`` four times (81), not ``.*a.*b``;
- it is matched piece by piece over the field's first :data:`REGEX_TEXT` characters: line by line,
  every line cut in pieces of :data:`CHUNK` characters (a match across a cut is missed).

A search then does at most about CHUNK x BUDGET steps per piece (500,000), and the pieces of a
field hold REGEX_TEXT characters together: a few milliseconds per rule and mail at worst
(tests/unit/tickets/test_denylist.py times the worst patterns allowed on the worst texts). The
plain comparisons (exact, contains, starts, ends) read the whole field: they are linear.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from admin.tickets.inbound import InboundMail


class Field(StrEnum):
    ADDRESS = "address"
    SUBJECT = "subject"
    BODY = "body"


class Match(StrEnum):
    EXACT = "exact"
    CONTAINS = "contains"
    STARTS = "starts"
    ENDS = "ends"
    REGEX = "regex"


@dataclass(frozen=True, slots=True)
class Rule:
    field: Field
    match: Match
    pattern: str


R = TypeVar("R", bound=Rule)

MAX_PATTERN = 200  # characters of a regular expression
MAX_TEXT_PATTERN = 1000  # characters of the other kinds
CHUNK = 500  # characters a regular expression sees at once
BUDGET = 1000  # the product of a regular expression's repeats
REGEX_TEXT = 5000  # characters of a field regular expressions read


def problems(rule: Rule) -> list[str]:
    """Why ``rule`` cannot be saved (empty when it can)."""
    pattern = rule.pattern
    if not pattern.strip():
        return ["the pattern is empty"]
    if rule.match is not Match.REGEX:
        return [f"the pattern is longer than {MAX_TEXT_PATTERN} characters"] if len(pattern) > MAX_TEXT_PATTERN else []
    if len(pattern) > MAX_PATTERN:
        return [f"the regular expression is longer than {MAX_PATTERN} characters"]
    try:
        re.compile(pattern)
    except re.error as error:
        return [f"not a regular expression: {error}"]
    return _shape(pattern)


def check(rules: Iterable[R], mail: InboundMail) -> R | None:
    """The first rule of ``rules`` that matches ``mail``; rules with :func:`problems` never match."""
    for rule in rules:
        if _matches(rule, mail):
            return rule
    return None


def _field(rule: Rule, mail: InboundMail) -> str:
    if rule.field is Field.ADDRESS:
        return mail.sender.address if mail.sender else ""
    if rule.field is Field.SUBJECT:
        return mail.subject
    return mail.text


def _matches(rule: Rule, mail: InboundMail) -> bool:
    value = _field(rule, mail)
    if rule.match is Match.REGEX:
        compiled = _compiled(rule.pattern)
        if compiled is None:
            return False
        return any(compiled.search(piece) for piece in _pieces(value[:REGEX_TEXT]))
    if problems(rule):
        return False
    value, pattern = value.casefold(), rule.pattern.casefold()
    if rule.field is Field.BODY:
        value, pattern = value.strip(), pattern.strip()
    if rule.match is Match.EXACT:
        return value == pattern
    if rule.match is Match.CONTAINS:
        return pattern in value
    if rule.match is Match.STARTS:
        return value.startswith(pattern)
    return value.endswith(pattern)


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    if problems(Rule(Field.BODY, Match.REGEX, pattern)):
        return None
    return re.compile(pattern, re.IGNORECASE)


def _pieces(text: str) -> Iterator[str]:
    for line in text.split("\n"):
        for start in range(0, max(len(line), 1), CHUNK):
            yield line[start:start + CHUNK]


# -- the shape of a regular expression -------------------------------------------------------------

_COUNTED = re.compile(r"\{(\d*)(,?)(\d*)\}")


@dataclass
class _Group:
    repeats: bool = False  # holds a repeat of more than one
    branches: bool = False  # holds an alternation


def _shape(pattern: str) -> list[str]:
    """What makes ``pattern`` (which compiles) slow to match: a backreference, a repeated group
    holding a repeat or alternation, repeats over the budget. Read left to right, tracking groups."""
    found: list[str] = []
    stack = [_Group()]
    last: _Group | None = None  # the group just closed, when the next token may repeat it
    product = 1
    i = 0
    while i < len(pattern):
        c = pattern[i]
        repeat: tuple[int, int | None] | None = None
        if c == "\\":
            if pattern[i + 1:i + 2].isdigit() and pattern[i + 1] != "0":
                found.append("a backreference (\\1) is not allowed")
            i += 2
            last = None
            continue
        if c == "[":
            i = _class_end(pattern, i)
            last = None
            continue
        if c == "(":
            if pattern.startswith("(?P=", i):
                found.append("a backreference ((?P=name)) is not allowed")
            stack.append(_Group())
            last = None
        elif c == ")" and len(stack) > 1:
            last = stack.pop()
            stack[-1].repeats |= last.repeats
            stack[-1].branches |= last.branches
            i += 1
            continue
        elif c == "|":
            stack[-1].branches = True
        elif c in "*+" and pattern[i - 1:i] != "(":
            repeat = (0 if c == "*" else 1, None)
        elif c == "?" and pattern[i - 1:i] != "(":
            repeat = (0, 1)
        elif c == "{" and (counted := _COUNTED.match(pattern, i)):
            low, comma, high = counted.groups()
            repeat = (int(low or 0), None if comma and not high else int(high or low or 0))
            i = counted.end() - 1
        if repeat is not None:
            low, high = repeat
            if last is not None and (last.repeats or last.branches) and (high is None or high > 1):
                found.append("a repeated group holds a repeat or an alternation (it backtracks exponentially)")
            if high is None or high > 1:
                stack[-1].repeats = True
            product *= CHUNK if high is None else high - low + 1
            if pattern[i + 1:i + 2] in ("?", "+"):  # lazy or possessive
                i += 1
            last = None
        elif c != "(":
            last = None
        i += 1
    if product > BUDGET:
        found.append(f"too many repeats: they multiply to {product} choices (at most {BUDGET}; "
                     f"'*' and '+' count {CHUNK})")
    return list(dict.fromkeys(found))


def _class_end(pattern: str, start: int) -> int:
    """The index after the character class that starts at ``start`` (``[``)."""
    i = start + 1
    if pattern[i:i + 1] == "^":
        i += 1
    if pattern[i:i + 1] == "]":
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i + 1
