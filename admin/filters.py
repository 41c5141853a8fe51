"""Jinja filters of the admin's templates: how times, sizes, money and speeds read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from admin.payments import reference


def when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(value: datetime | None) -> str:
    if value is None:
        return "never"
    seconds = (datetime.now(UTC) - value).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def size(value: int | Decimal | None) -> str:
    n = float(value or 0)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def speed(kbps: int | None) -> str:
    if kbps is None:
        return ""
    return f"{kbps / 1000:g} Mbit/s" if kbps >= 1000 else f"{kbps} kbit/s"


def money(value: Decimal | None, currency: str = "") -> str:
    if value is None:
        return ""
    return f"{value.quantize(Decimal('0.01')):,} {currency}".strip()


def duration(seconds: int | None) -> str:
    s = int(seconds or 0)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + f"{h:02}:{m:02}:{s:02}"


def pair(value: Any) -> tuple[Any, Any]:
    return (value, value)


def payment_reference(customer_id: int) -> str:
    """The customer's payment reference as printed on its invoices ("RF18 0000 1234")."""
    return reference.printed(reference.for_customer(customer_id))


FILTERS: dict[str, Callable[..., Any]] = {
    "when": when, "ago": ago, "size": size, "speed": speed, "money": money, "duration": duration, "pair": pair,
    "payment_reference": payment_reference}
