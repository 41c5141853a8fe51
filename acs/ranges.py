"""HTTP byte ranges (RFC 9110 section 14): which part of a file a ``Range`` header asks for.

Pure: the file server (acs/files.py) answers 206 with the range, 416 when it is unsatisfiable,
and the whole file (200) when :func:`parse` says ``None``: no header, one that does not parse,
another unit, or several ranges (a CPE fetching a firmware asks for one range at a time; the
RFC lets a server answer a multi-range request with the whole representation).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Unsatisfiable:
    """No byte of the range is in the file (or its last position is before its first): 416."""


def parse(header: str | None, size: int) -> tuple[int, int] | Unsatisfiable | None:
    """The range ``header`` asks of a file of ``size`` bytes as (first, last), both inclusive
    and clamped to the file (the Content-Range of a 206); ``None``: serve the whole file."""
    if not header:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash or (not _digits(first_text) and not _digits(last_text)):
        return None
    if not first_text:  # a suffix: the last N bytes
        if not _digits(last_text):
            return None
        n = int(last_text)
        if n == 0 or size == 0:
            return Unsatisfiable()
        return max(size - n, 0), size - 1
    if not _digits(first_text) or (last_text and not _digits(last_text)):
        return None
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last < first or first >= size:
        return Unsatisfiable()
    return first, min(last, size - 1)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()
