"""List pages: the sort, the filters and the keyset cursor of the query string (its sort value
given its column's type: a cursor made up by hand is a 400), links to the next page and to
another sort, and the CSV export of the whole list (by pages, never OFFSET)."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from admin import csvcells, keys

MAX_LIMIT = 500
EXPORT_PAGE = 5000


def encode_cursor(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values), default=str).encode()).decode().rstrip("=")


def decode_cursor(text: str | None) -> list[Any] | None:
    if not text:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError):
        raise web.HTTPBadRequest(text="bad page cursor (after=...)") from None
    if not isinstance(values, list) or len(values) != 2 or not isinstance(values[1], int):
        raise web.HTTPBadRequest(text="bad page cursor (after=...)")
    return values


@dataclass
class Listing:
    """What a list page was asked for: ``sorts`` maps a sort key to its column."""

    path: str
    params: dict[str, str]
    sorts: dict[str, str]
    sort: str
    direction: str
    after: list[Any] | None
    limit: int
    rows: list[Any] = field(default_factory=list)
    next: str | None = None

    @classmethod
    def of(cls, request: web.Request, sorts: dict[str, str], default: str, *, default_direction: str = "asc",
           limit: int = 50) -> Listing:
        q = request.query
        sort = q.get("sort", default)
        if sort not in sorts:
            sort = default
        direction = q.get("dir", default_direction)
        if direction not in ("asc", "desc"):
            direction = default_direction
        try:
            wanted = int(q.get("limit", limit))
        except ValueError:
            wanted = limit
        params = {k: v for k, v in q.items() if k not in ("after",) and v != ""}
        return cls(request.path, params, sorts, sort, direction, decode_cursor(q.get("after")),
                   max(1, min(MAX_LIMIT, wanted)))

    @property
    def column(self) -> str:
        return self.sorts[self.sort]

    def take(self, rows: list[Any], key: Callable[[Any], Sequence[Any]]) -> list[Any]:
        """Keep a page of ``rows`` (fetched with limit + 1) and the cursor of the next page."""
        self.rows = rows[: self.limit]
        self.next = encode_cursor(key(self.rows[-1])) if len(rows) > self.limit else None
        return self.rows

    @property
    def shown(self) -> int:
        return len(self.rows)

    def _url(self, **changes: str | None) -> str:
        params = {**self.params, **changes}
        return self.path + "?" + urlencode({k: v for k, v in params.items() if v is not None})

    def sort_url(self, key: str) -> str:
        direction = "desc" if self.sort == key and self.direction == "asc" else "asc"
        return self._url(sort=key, dir=direction)

    def next_url(self) -> str:
        return self._url(after=self.next)

    def first_url(self) -> str:
        return self._url()

    def csv_url(self) -> str:
        return self._url(format="csv")

    @property
    def wants_csv(self) -> bool:
        return self.params.get("format") == "csv"


def as_time(value: Any) -> dt.datetime:
    """A cursor's time (as encode_cursor wrote it) back as a time."""
    if not isinstance(value, str):
        raise ValueError(value)
    return dt.datetime.fromisoformat(value)


def _text(value: Any) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError(value)
    return value


def check_cursor(ls: Listing, types: Mapping[str, Callable[[Any], Any]]) -> None:
    """Give the cursor's sort value the type of its column (``types`` by sort key, else text): a
    cursor made up by hand is a 400, never a database error."""
    if ls.after is None:
        return
    convert: Callable[[Any], Any] = types.get(ls.sort, _text)
    try:
        ls.after[0] = convert(ls.after[0])
    except (ValueError, TypeError, OverflowError):
        raise web.HTTPBadRequest(text="bad page cursor (after=...)") from None
    if not 0 < ls.after[1] < 2**63:
        raise web.HTTPBadRequest(text="bad page cursor (after=...)")


def listing_of(request: web.Request, sorts: dict[str, str], default: str, *, direction: str,
               types: Mapping[str, Callable[[Any], Any]]) -> Listing:
    """The list's :class:`Listing` (the settings' page size), its cursor checked (check_cursor)."""
    ls = Listing.of(request, sorts, default, default_direction=direction,
                    limit=request.app[keys.SETTINGS].page_size)
    check_cursor(ls, types)
    return ls


Fetch = Callable[[list[Any] | None, int], Awaitable[list[Any]]]


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> web.Response:
    """A small table (a report, a statement) as a CSV download, its cells made safe (csvcells)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([csvcells.safe(v) for v in row] for row in rows)
    return web.Response(text=buffer.getvalue(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def export_csv(request: web.Request, filename: str, header: Sequence[str], fetch: Fetch,
                     key: Callable[[Any], Sequence[Any]], row: Callable[[Any], Sequence[Any]]) -> web.StreamResponse:
    """Stream the whole list as CSV, ``EXPORT_PAGE`` rows per query (keyset, from the start)."""
    response = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                           "Content-Disposition": f'attachment; filename="{filename}"'})
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    after: list[Any] | None = None
    while True:
        rows = await fetch(after, EXPORT_PAGE)
        for r in rows:
            writer.writerow([csvcells.safe(v) for v in row(r)])
        await response.write(buffer.getvalue().encode())
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < EXPORT_PAGE:
            break
        after = list(key(rows[-1]))
    await response.write_eof()
    return response
