"""Custom fields: the definitions of one object type, and checking a form's ``custom.<key>`` inputs
against them. Other areas' forms use this module (their templates render the inputs with the
``custom_inputs`` and ``custom_values`` macros of macros.html)::

    defs = await custom.definitions(conn, "customer")
    values, errors = custom.validate(defs, await request.post())
    # values go into the row's `custom` jsonb; errors are keyed "custom.<key>", as the inputs are

Values are kept as text: a number as its Decimal string ("12.50"), a date as ISO ("2025-03-01"),
a URL (http or https only), a choice (one of the definition's choices). An optional field left
empty is left out of the values, so saving them clears it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from admin.administration import queries
from admin.administration.queries import Row
from admin.auth.store import Connection

OBJECT_TYPES: dict[str, str] = {"customer": "Customers", "service": "Services", "tariff": "Tariffs",
                                "router": "Routers"}
KINDS: dict[str, str] = {"text": "Text", "number": "Number", "date": "Date", "choice": "Choice",
                         "url": "Link (URL)"}
KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
PREFIX = "custom."
MAX_TEXT = 1000


@dataclass(frozen=True, slots=True)
class Field:
    """One custom field definition (a row of custom_fields)."""

    id: int
    object_type: str
    key: str
    label: str
    kind: str
    choices: tuple[str, ...] = ()
    required: bool = False
    position: int = 0

    @classmethod
    def of(cls, row: Row) -> Field:
        return cls(id=row["id"], object_type=row["object_type"], key=row["key"], label=row["label"],
                   kind=row["kind"], choices=tuple(row["choices"]), required=row["required"],
                   position=row["position"])


async def definitions(conn: Connection, object_type: str) -> list[Field]:
    """The custom fields of ``object_type`` (customer, service, tariff, router), in form order."""
    return [Field.of(r) for r in await queries.custom_fields(conn, object_type)]


def _number(text: str) -> str:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError("must be a number, like 12.5") from None
    if not value.is_finite():
        raise ValueError("must be a number, like 12.5")
    return str(value)


def _date(text: str) -> str:
    try:
        if len(text) != 10:
            raise ValueError
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError("must be a date, YYYY-MM-DD") from None


def _url(text: str) -> str:
    try:
        parts = urlsplit(text)
    except ValueError:
        raise ValueError("must be a web address (http:// or https://)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in text):
        raise ValueError("must be a web address (http:// or https://)")
    return text


def _one(field: Field, text: str) -> str:
    if field.kind == "number":
        return _number(text)
    if field.kind == "date":
        return _date(text)
    if field.kind == "url":
        return _url(text)
    if field.kind == "choice" and text not in field.choices:
        raise ValueError("must be one of: " + ", ".join(field.choices))
    if len(text) > MAX_TEXT:
        raise ValueError(f"must be at most {MAX_TEXT} characters")
    return text


def validate(defs: Sequence[Field], form_values: Mapping[str, object]) -> tuple[dict[str, object], dict[str, str]]:
    """``(values by key, errors by "custom.<key>")`` of the inputs named ``custom.<key>``; inputs of
    no definition are ignored. ``form_values`` is a form (``await request.post()``, whose uploads
    count as empty) or any mapping of strings."""
    values: dict[str, object] = {}
    errors: dict[str, str] = {}
    for field in defs:
        raw = form_values.get(PREFIX + field.key, "")
        text = raw.strip() if isinstance(raw, str) else ""
        if text == "":
            if field.required:
                errors[PREFIX + field.key] = "is required"
            continue
        try:
            values[field.key] = _one(field, text)
        except ValueError as e:
            errors[PREFIX + field.key] = str(e)
    return values, errors
