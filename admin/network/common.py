"""What the network area's pages and operations share: the area itself, ids from the path, rows
as the operations log keeps them, database refusals in words, and the log line of a change.

Network objects have no partner (their tables have no partner column): they are the operator's,
and their log lines carry no partner or customer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlencode

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, listing, oplog_store, schemas
from admin.administration import custom
from admin.auth.store import Connection
from admin.network.schemas import constraint_error
from admin.web import Area

AREA = Area("network", "Network", order=30, nav=[
    ("NAS", "/nas", "networking.view"),
    ("Routers", "/routers", "networking.view"),
    ("IP pools", "/ip-pools", "networking.view"),
    ("Flow exporters", "/flow-exporters", "networking.view"),
])

T = TypeVar("T")
Row = Mapping[str, Any] | asyncpg.Record
"""A row: asyncpg's Record, or a dict made of one."""
REQUIRED = "is required"
TOO_LONG = "must be at most 128 characters"
class InUse(Exception):
    """An object others still refer to: ``str()`` names them."""


def out(record: Row, type_: type[T]) -> T:
    """A row as an API response struct (addresses as text)."""
    return msgspec.convert(schemas.row_json(record, type_.__struct_fields__), type_)  # type: ignore[attr-defined]


def form_values(form: Mapping[str, Any]) -> dict[str, Any]:
    """A form's inputs, without the CSRF token and the custom fields."""
    return {k: v for k, v in form.items() if k != "_csrf" and not k.startswith(custom.PREFIX)}


def refused(e: asyncpg.PostgresError) -> schemas.Invalid:
    """A write the database refused, as field errors: a violated constraint in words, or bad data
    (a NUL character, which PostgreSQL text cannot hold)."""
    if isinstance(e, asyncpg.IntegrityConstraintViolationError):
        return schemas.Invalid(constraint_error(e.constraint_name or ""))
    return schemas.Invalid({"": f"the database refused a value: {str(e).splitlines()[0]}"})


def text(value: Any) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError(value)
    return value


def address_text(value: Any) -> str:
    return str(ipaddress.ip_network(value, strict=False)) if "/" in str(value) else str(ipaddress.ip_address(value))


def check_cursor(ls: listing.Listing, types: Mapping[str, Callable[[Any], Any]]) -> None:
    """Give the cursor's sort value the type of its column (``types`` by sort key, else text): a
    cursor made up by hand is a 400, never a database error."""
    if ls.after is None:
        return
    convert: Callable[[Any], Any] = types.get(ls.sort, text)
    try:
        ls.after[0] = convert(ls.after[0])
    except (ValueError, TypeError, ArithmeticError):
        raise web.HTTPBadRequest(text="bad page cursor (after=...)") from None


def checked(errors: dict[str, str], field: str, check: Callable[[], str]) -> str:
    """``check()``'s value, or "" with its ValueError's words in ``errors[field]``."""
    try:
        return check()
    except ValueError as e:
        errors[field] = str(e)
        return ""


def changed(before: Row, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values that differ from the row ``before`` (compared as the row's own text, for addresses)."""
    return {k: v for k, v in values.items() if k not in before or schemas.row_json(before, [k])[k] != v}


async def log(conn: Connection, request: web.Request, action: str, object_type: str, object_id: int, summary: str,
              *, before: Any = None, after: Any = None) -> None:
    await oplog_store.record(conn, keys.principal(request), keys.client_address(request), action, object_type,
                             object_id, summary=summary, before=before, after=after)


def names(items: list[str], count: int | None = None) -> str:
    """"a, b, c and 4 more"."""
    count = len(items) if count is None else count
    more = f" and {count - len(items)} more" if count > len(items) else ""
    return ", ".join(items) + more


def back(path: str, done: str, name: str) -> web.HTTPFound:
    """Back to the list, which says what was ``done`` ("created", "deleted") to ``name``."""
    return web.HTTPFound(path + "?" + urlencode({"done": done, "name": name}))


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"


def api_custom(given: Mapping[str, Any], defs: list[custom.Field],
               kept: Mapping[str, Any]) -> dict[str, Any]:
    """The API's ``custom`` object checked as the form's ``custom.<key>`` inputs are (unknown keys
    refused); values of fields no longer defined are kept."""
    known = {d.key for d in defs}
    errors = {custom.PREFIX + k: "no such custom field" for k in given if k not in known}
    errors.update({custom.PREFIX + k: "must be text or a number" for k, v in given.items()
                   if k in known and isinstance(v, dict | list | bool)})
    values, more = custom.validate(defs, {custom.PREFIX + k: "" if v is None else str(v) for k, v in given.items()
                                          if k in known and not isinstance(v, dict | list | bool)})
    errors.update(more)
    if errors:
        raise schemas.Invalid(errors)
    return {**{k: v for k, v in kept.items() if k not in known}, **values}
