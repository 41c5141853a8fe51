"""What the finance area's modules share: the principal's scope, today, amounts, page cursors of
typed sort columns, a customer or 404, and the ledger's refusals as answers."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, listing, pages, schemas
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.billing import money
from admin.finance import queries

T = TypeVar("T", bound=msgspec.Struct)
Row = Mapping[str, Any] | asyncpg.Record
"""A row as the queries give it, or a dict of the same keys."""


def today() -> dt.date:
    """Today as the admin counts days: UTC."""
    return dt.datetime.now(dt.UTC).date()


def scope(who: Principal) -> tuple[int | None, int | None]:
    return who.partner_id, who.creator_id


def form_key() -> str:
    """A form's own idempotency key: a second submit of the same form records nothing again."""
    return secrets.token_urlsafe(16)


def amount(text: str, currency: str, field: str, *, positive: bool = True) -> Decimal:
    """A decimal string as an amount of ``currency`` (no more decimals than it has), or Invalid on ``field``."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise schemas.Invalid({field: "must be an amount, like 29.90"}) from None
    if not value.is_finite():
        raise schemas.Invalid({field: "must be an amount, like 29.90"})
    if money.quantize(value, currency) != value:
        raise schemas.Invalid({field: f"{currency} has {money.digits(currency)} decimals"})
    if positive and value <= 0:
        raise schemas.Invalid({field: "must be more than 0"})
    return value


def _date(value: Any) -> dt.date:
    if not isinstance(value, str):
        raise TypeError(value)
    return dt.date.fromisoformat(value)


def _decimal(value: Any) -> Decimal:
    result = Decimal(str(value))
    if not result.is_finite():
        raise ValueError(value)
    return result


def _text(value: Any) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError(value)
    return value


def _integer(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63:
        raise ValueError(value)
    return value


CURSOR_TYPES: dict[str, Callable[[Any], Any]] = {"date": _date, "decimal": _decimal, "text": _text, "int": _integer}


def typed_cursor(values: list[Any] | None, kind: str) -> list[Any] | None:
    """A decoded cursor whose sort value is made of its column's type again (JSON has no dates
    nor decimals); one that is not is a bad cursor (400)."""
    if values is None:
        return None
    try:
        return [CURSOR_TYPES[kind](values[0]), _integer(values[1])]
    except (ValueError, TypeError, ArithmeticError):
        raise web.HTTPBadRequest(text="bad page cursor (after=...)") from None


def page_listing(request: web.Request, sorts: Mapping[str, str], kinds: Mapping[str, str], default: str,
                 direction: str = "desc") -> listing.Listing:
    ls = listing.Listing.of(request, dict(sorts), default, default_direction=direction,
                            limit=request.app[keys.SETTINGS].page_size)
    ls.after = typed_cursor(ls.after, kinds[ls.sort])
    return ls


def next_cursor(rows: Sequence[Any], limit: int, key: Callable[[Any], Sequence[Any]]) -> str | None:
    return listing.encode_cursor(key(rows[limit - 1])) if len(rows) > limit else None


def out(type_: type[T], row: Row, **extra: Any) -> T:
    """A row as a response struct (its fields only)."""
    values = {k: row[k] for k in type_.__struct_fields__ if k in row}
    return msgspec.convert({**values, **extra}, type_)


def query(request: web.Request, type_: type[T]) -> T:
    return schemas.from_strings(request.query, type_)


async def customer_or_404(conn: Connection, request: web.Request, customer_id: int, *,
                          lock: bool = False) -> asyncpg.Record:
    who = keys.principal(request)
    row = await queries.customer(conn, *scope(who), customer_id, lock=lock)
    if row is None:
        raise web.HTTPNotFound()
    return row


def refused(e: Exception) -> web.HTTPConflict:
    """A ledger's or a run's refusal (the object's state does not allow it): 409 with its words."""
    return web.HTTPConflict(text=str(e))


def period(start: dt.date | None, end: dt.date | None) -> str:
    """A period as people read it: its first and last day (``end`` is exclusive, as stored)."""
    if start is None:
        return ""
    if end is None:
        return f"from {start.isoformat()}"
    last = end - dt.timedelta(days=1)
    return start.isoformat() if last == start else f"{start.isoformat()} – {last.isoformat()}"


def number(value: Decimal | None) -> str:
    """A quantity or a percent without trailing zeros: 1, 1.5, 100 (not 1E+2)."""
    return "" if value is None else format(value.normalize(), "f")


def render(template: str, request: web.Request, context: Mapping[str, Any], *, status: int = 200) -> web.Response:
    """pages.render with the area's helpers for its templates (``period``, ``number``)."""
    return pages.render(template, request, {"period": period, "number": number, **context}, status=status)
