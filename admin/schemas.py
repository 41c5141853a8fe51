"""What every area's schemas share: the list envelope, the error body, and turning requests into
typed values with msgspec (JSON bodies, query strings, HTML forms) with every error on its field.

msgspec, not pydantic: its structs validate while they decode (several times faster than
pydantic 2 here, one small dependency with no plugins), and ``msgspec.json.schema_components``
gives JSON Schema 2020-12, which is what OpenAPI 3.1 uses: the document is made from the very
types that decode the requests (admin/openapi.py), so the two cannot drift.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
import types
import typing
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from aiohttp import web

T = TypeVar("T")


class Page(msgspec.Struct, Generic[T]):
    """One page of a list: ``next`` is the cursor of the following page (``?after=...``), null at the end."""

    items: list[T]
    next: str | None = None


class Problem(msgspec.Struct, omit_defaults=True):
    """An error (RFC 9457 problem details): ``errors`` maps each wrong field to what is wrong."""

    title: str
    status: int
    detail: str = ""
    errors: dict[str, str] = {}


class Deleted(msgspec.Struct):
    id: int


Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=500)]
Text = Annotated[str, msgspec.Meta(max_length=200)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]

_ENCODER = msgspec.json.Encoder()


def json(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(value), status=status, content_type="application/json")


def problem(status: int, title: str, detail: str = "", errors: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=_ENCODER.encode(Problem(title, status, detail, dict(errors or {}))), status=status,
                        content_type="application/problem+json")


class Invalid(Exception):
    """Input that does not fit its schema: ``errors`` by field (``""``: the whole)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" if k else v for k, v in errors.items()))
        self.errors = errors


_AT = re.compile(r"\s*- at `\$(?:\.(\w+))?[^`]*`$")


def _split(error: msgspec.ValidationError) -> dict[str, str]:
    """msgspec's "Expected `int`, got `str` - at `$.speed`" -> {"speed": "Expected `int`, got `str`"}."""
    text = str(error)
    match = _AT.search(text)
    return {(match.group(1) or "") if match else "": _AT.sub("", text)}


def decode_json(body: bytes, type_: type[T]) -> T:
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as e:
        raise Invalid(_split(e)) from None
    except msgspec.DecodeError as e:
        raise Invalid({"": f"not JSON: {e}"}) from None


async def body(request: web.Request, type_: type[T]) -> T:
    return decode_json(await request.read(), type_)


@functools.cache
def _hints(type_: type) -> dict[str, Any]:
    return typing.get_type_hints(type_, include_extras=True)


@functools.cache
def _plan(type_: type) -> tuple[tuple[Any, Any, Any, bool], ...]:
    """Per field of a struct: (field, its hint, its base type, whether it may be null); read once per type."""
    hints = _hints(type_)
    return tuple((f, hints[f.name], _base(hints[f.name]), _optional(hints[f.name]))
                 for f in msgspec.structs.fields(type_))


def _base(hint: Any) -> Any:
    """The type under Annotated and Optional: ``Annotated[int, ...] | None`` -> int."""
    if typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return _base(args[0])
    return hint


def _optional(hint: Any) -> bool:
    if typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def from_strings(values: Mapping[str, Any], type_: type[T], *, lists: frozenset[str] = frozenset()) -> T:
    """A struct from a query string or an HTML form: every field converted on its own, so every
    wrong field gets its message (msgspec stops at the first). An empty field is null (or the
    default); a checkbox is true when present; a list field takes every value of its name."""
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f, hint, base, optional in _plan(type_):  # type: ignore[arg-type]  # a struct type is hashable
        if base is bool:
            out[f.name] = f.name in values and values[f.name] not in ("", "0", "false", "off")
            continue
        if f.name in lists or typing.get_origin(base) is list:
            raw = values.getall(f.name, []) if hasattr(values, "getall") else values.get(f.name, [])
            raw = [v for v in ([raw] if isinstance(raw, str) else raw) if v != ""]
            value: Any = raw
        else:
            value = values.get(f.name, "")
            if isinstance(value, str):
                value = value.strip()
            if value == "":
                if f.required and not optional:
                    errors[f.name] = "is required"
                elif optional and f.required:
                    out[f.name] = None
                continue
        try:
            out[f.name] = msgspec.convert(value, hint, strict=False, dec_hook=_dec_hook)
        except msgspec.ValidationError as e:
            errors[f.name] = _split(e)[""]
    if errors:
        raise Invalid(errors)
    try:
        return msgspec.convert(out, type_, strict=False, dec_hook=_dec_hook)
    except msgspec.ValidationError as e:
        raise Invalid(_split(e)) from None


def _dec_hook(type_: type, value: Any) -> Any:
    if type_ is dt.date and isinstance(value, str):
        return dt.date.fromisoformat(value)
    raise NotImplementedError


def query(request: web.Request, type_: type[T]) -> T:
    return from_strings(request.query, type_)


def to_builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)


_AS_TEXT = (dt.date, Decimal, ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network,
            ipaddress.IPv6Network, ipaddress.IPv4Interface, ipaddress.IPv6Interface)


def jsonable(value: Any) -> Any:
    """A value as JSON keeps it (the operations log's before/after, API responses): times, money
    and addresses as text, bytes (hashes) left out."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, _AS_TEXT):
        return str(value)
    if isinstance(value, bytes):
        return None
    return value


def row_json(record: Any, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """A database row (only ``fields``, when given) as :func:`jsonable` values."""
    row = dict(record)
    return {k: jsonable(row[k]) for k in (fields if fields is not None else row)}
