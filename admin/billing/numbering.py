"""Document numbers from a series' pattern, like Splynx's ``{year}{partner_id|2}{next|6}``.

A pattern is literal text and fields in braces, ``{name}`` or ``{name|width}``:

- ``{next}``: the series' counter (1, 2, 3, ...), exactly once in every pattern;
- ``{year}``, ``{month}``, ``{day}``: of the document's date (4, 2 and 2 digits);
- ``{partner_id}``: the partner (reseller) the document belongs to.

``|width`` zero-pads the value to at least that many digits and never cuts it (``{next|6}`` of 42
is ``000042``, of 1234567 is ``1234567``); a date field's width cannot be below its own (a two-digit
month is always two digits). ``{{`` and ``}}`` write a literal brace.

The counter restarts when the date fields of the pattern change: a pattern with ``{year}`` counts
from 1 each year, with ``{year}`` and ``{month}`` each month, with all three each day; a pattern
with ``{partner_id}`` counts per partner. :func:`counter_key` names the counter a document takes
its ``next`` from; giving out the values without gaps under concurrency is the database's (a row
lock on the counter), not this module's.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from dataclasses import dataclass

#: the fields a pattern may use, with the digits each is written with at least
FIELDS: dict[str, int] = {"year": 4, "month": 2, "day": 2, "partner_id": 1, "next": 1}
#: the widest ``|width`` accepted (numeric(20) and beyond is not a document number)
MAX_WIDTH = 20


class NumberingError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Text:
    """Literal text of a pattern (braces unescaped)."""

    text: str


@dataclass(frozen=True, slots=True)
class Field:
    """``{name}`` or ``{name|width}``; ``width`` None when the pattern gives none."""

    name: str
    width: int | None = None


Segment = Text | Field


class Reset(enum.StrEnum):
    """When a series' counter starts again from 1 (derived from the pattern's date fields)."""

    NEVER = "never"
    YEARLY = "yearly"
    MONTHLY = "monthly"
    DAILY = "daily"


@dataclass(frozen=True, slots=True)
class Pattern:
    """A parsed pattern: its segments in order. ``str()`` writes it back as text."""

    segments: tuple[Segment, ...]

    def __str__(self) -> str:
        return "".join(_unparse(s) for s in self.segments)

    def fields(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.segments if isinstance(s, Field))

    @property
    def reset(self) -> Reset:
        """Year, month, day: the counter resets at the finest of these that the pattern carries
        with all the coarser ones (``{month}`` without ``{year}`` does not reset: March 2027 would
        repeat March 2026's numbers)."""
        names = set(self.fields())
        if "year" not in names:
            return Reset.NEVER
        if "month" not in names:
            return Reset.YEARLY
        return Reset.DAILY if "day" in names else Reset.MONTHLY

    @property
    def per_partner(self) -> bool:
        """True when each partner has its own counter (the pattern writes the partner)."""
        return "partner_id" in self.fields()


def _unparse(segment: Segment) -> str:
    if isinstance(segment, Text):
        return segment.text.replace("{", "{{").replace("}", "}}")
    return f"{{{segment.name}}}" if segment.width is None else f"{{{segment.name}|{segment.width}}}"


@functools.lru_cache(maxsize=256)
def parse(pattern: str) -> Pattern:
    """The segments of ``pattern``; NumberingError naming the fault and where it is.

    Checks syntax, field names and widths only; :func:`validate` also requires ``{next}``.
    Cached: a run numbers thousands of documents from one pattern (a Pattern is immutable)."""
    segments: list[Segment] = []
    text: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "{" and pattern.startswith("{{", i):
            text.append("{")
            i += 2
        elif ch == "}" and pattern.startswith("}}", i):
            text.append("}")
            i += 2
        elif ch == "}":
            raise NumberingError(f"pattern {pattern!r}: '}}' at {i} closes nothing (write '}}}}' for a brace)")
        elif ch == "{":
            end = pattern.find("}", i + 1)
            inner_end = pattern.find("{", i + 1)
            if end == -1 or (inner_end != -1 and inner_end < end):
                raise NumberingError(f"pattern {pattern!r}: '{{' at {i} is not closed (write '{{{{' for a brace)")
            if text:
                segments.append(Text("".join(text)))
                text = []
            segments.append(_field(pattern, i, pattern[i + 1:end]))
            i = end + 1
        else:
            text.append(ch)
            i += 1
    if text:
        segments.append(Text("".join(text)))
    return Pattern(tuple(segments))


def _field(pattern: str, at: int, inner: str) -> Field:
    name, bar, width_text = inner.partition("|")
    if name not in FIELDS:
        known = ", ".join(sorted(FIELDS))
        shown = f"{{{inner}}}"
        raise NumberingError(f"pattern {pattern!r}: unknown field {shown} at {at} (known: {known})")
    if not bar:
        return Field(name)
    if not (width_text.isascii() and width_text.isdigit()) or width_text.startswith("0"):
        raise NumberingError(f"pattern {pattern!r}: the width of {{{inner}}} at {at} must be a whole number "
                             f"from 1 to {MAX_WIDTH}")
    width = int(width_text)
    if width > MAX_WIDTH:
        raise NumberingError(f"pattern {pattern!r}: the width of {{{inner}}} at {at} is over {MAX_WIDTH}")
    if width < FIELDS[name]:
        raise NumberingError(f"pattern {pattern!r}: {{{inner}}} at {at}: {name} is written with at least "
                             f"{FIELDS[name]} digits")
    return Field(name, width)


def validate(pattern: str | Pattern) -> Pattern:
    """``pattern`` parsed, when it can number documents: ``{next}`` exactly once."""
    parsed = parse(pattern) if isinstance(pattern, str) else pattern
    count = parsed.fields().count("next")
    if count != 1:
        said = "has no {next}" if count == 0 else f"has {{next}} {count} times"
        raise NumberingError(f"pattern {str(parsed)!r} {said}: a number series needs it exactly once")
    return parsed


def format_number(pattern: str | Pattern, date: dt.date, partner_id: int | None, next_value: int) -> str:
    """The document number ``pattern`` gives the ``next_value``-th document dated ``date``.

    ``partner_id`` may be None only when the pattern does not write it."""
    parsed = validate(pattern)
    if next_value < 1:
        raise NumberingError(f"the counter starts at 1, not {next_value}")
    values = {"year": date.year, "month": date.month, "day": date.day, "next": next_value}
    if parsed.per_partner:
        if partner_id is None or partner_id < 0:
            raise NumberingError(f"pattern {str(parsed)!r} writes the partner: a partner id (0 or more) is "
                                 f"needed, not {partner_id}")
        values["partner_id"] = partner_id
    out: list[str] = []
    for segment in parsed.segments:
        if isinstance(segment, Text):
            out.append(segment.text)
        else:
            width = max(segment.width or 0, FIELDS[segment.name])
            out.append(str(values[segment.name]).zfill(width))
    return "".join(out)


def counter_key(pattern: str | Pattern, date: dt.date, partner_id: int | None) -> str:
    """The name of the counter (within its series) that numbers a document of ``date`` and
    ``partner_id``: ``"all"``, ``"2026"``, ``"2026-03"`` or ``"2026-03-15"`` by the pattern's
    :attr:`Pattern.reset`, followed by ``"/partner=7"`` when the pattern counts per partner.

    Two documents take numbers from the same counter exactly when their keys are equal."""
    parsed = validate(pattern)
    reset = parsed.reset
    scope = {
        Reset.NEVER: "all",
        Reset.YEARLY: f"{date.year:04d}",
        Reset.MONTHLY: f"{date.year:04d}-{date.month:02d}",
        Reset.DAILY: date.isoformat(),
    }[reset]
    if parsed.per_partner:
        if partner_id is None or partner_id < 0:
            raise NumberingError(f"pattern {str(parsed)!r} counts per partner: a partner id (0 or more) is "
                                 f"needed, not {partner_id}")
        return f"{scope}/partner={partner_id}"
    return scope
