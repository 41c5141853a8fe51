"""CSV cells a spreadsheet opens safely: text that it would run as a formula is quoted (OWASP
"CSV injection"). Pure: the admin's list exports and billing's accounting exports share it."""

from __future__ import annotations

from typing import Any


def safe(value: Any) -> Any:
    """``value`` as a CSV cell: None empty, a formula-like text (=, +, -, @, tab, CR) prefixed with '."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
