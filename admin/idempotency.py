"""The API's ``Idempotency-Key`` header: a client that retries a request (a timeout, a dropped
connection) gets the first answer again instead of a second effect.

For an API request that changes something (POST, PATCH, PUT under ``/api/``) and carries the
header, the middleware (admin/app.py, after the auth middleware: it knows who asks) keeps, per
caller (an API key or an administrator, admin/auth/principal.py) and key:

- before the handler runs, the request's fingerprint (sha256 of its method, path with query and
  body), in a row committed on its own, so a second request with the key sees it at once;
- a repeat of the same request: the first answer again (status, content type, body), with the
  header ``Idempotent-Replayed: true``; the handler does not run;
- the same key with another request: 422, nothing done;
- a repeat while the first still runs: 409 (try again later);
- a request that failed (the handler raised, or answered 4xx or 5xx) changed nothing (a refusal
  writes nothing, DESIGN.md "Data rules"): its row is dropped and a retry runs again.

A first request whose process died before it answered leaves its row unfinished; after
:data:`LEASE_S` a retry takes it over and runs (the operations behind it are idempotent under
their own keys too: payments by their key, admin/payments/record.py). Keys are kept
:data:`KEEP_HOURS` hours at least; the worker's ``idempotency.prune`` job (admin/payments/jobs.py)
deletes older ones. As in the IETF draft "The Idempotency-Key HTTP Header Field", the value may
be sent as a quoted string.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.streams import StreamReader

from admin import idempotency_store as store
from admin import keys, schemas
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.web import Handler
from daemons import log

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
METHODS = frozenset({"POST", "PATCH", "PUT"})
MAX_LENGTH = 255
LEASE_S = 300.0
"""A first request unfinished this long is taken as abandoned (its process died)."""
KEEP_HOURS = 24

PARAMETER: dict[str, Any] = {
    "name": HEADER, "in": "header", "required": False,
    "description": "Optional: a key of yours (1 to 255 visible characters, unique per request you mean) that "
                   "makes a retry safe. The same request again with the same key answers as the first did "
                   f"(with `{REPLAYED}: true`) and does nothing again; the same key with another request is "
                   "refused (422); while the first still runs, 409. A request that failed keeps nothing: a "
                   f"retry runs again. Keys are kept {KEEP_HOURS} hours.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_LENGTH, "pattern": "^[\\x21-\\x7e]([\\x20-\\x7e]*"
               "[\\x21-\\x7e])?$"},
}
"""The header as the OpenAPI document describes it on every operation it applies to (admin/openapi.py)."""

_log = log.get("lastmile.admin")


def parse(value: str) -> str:
    """The key a header value gives (a quoted string unquoted), or Invalid."""
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not 0 < len(text) <= MAX_LENGTH or not all(" " <= ch <= "~" for ch in text) or text != text.strip():
        raise schemas.Invalid({HEADER: f"must be 1 to {MAX_LENGTH} visible ASCII characters"})
    return text


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests "the same": method, path (with its query) and body, byte for byte."""
    h = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def principal_of(who: Principal) -> str:
    """Whose keys these are: ``key:<api key id>`` or ``admin:<administrator id>``."""
    if who.api_key_id is not None:
        return f"key:{who.api_key_id}"
    return f"admin:{who.admin_id}"


@dataclass(frozen=True, slots=True)
class _Claim:
    principal: str
    key: str
    at: dt.datetime


async def _claim(conn: Connection, principal: str, key: str, digest: str) -> _Claim | web.Response:
    """The claim on the key for this request, or the answer to give instead of running it."""
    for _ in range(3):  # the first may be released between the insert and the look-up
        at = await store.claim(conn, principal, key, digest)
        if at is not None:
            return _Claim(principal, key, at)
        row = await store.find(conn, principal, key, LEASE_S)
        if row is None:
            continue
        if row["request_sha256"] != digest:
            return schemas.problem(422, "Idempotency-Key reused", f"this {HEADER} was sent with another request "
                                   "(method, path or body): use a new key for a new request", {HEADER: "reused"})
        if row["status"] is not None:
            return web.Response(status=row["status"], body=row["body"] or b"",
                                headers={"Content-Type": row["content_type"] or "application/octet-stream",
                                         REPLAYED: "true"})
        if row["stale"]:
            taken = await store.take_over(conn, principal, key, row["created_at"])
            if taken is not None:
                return _Claim(principal, key, taken)
            continue
        return schemas.problem(409, "request in progress", f"the first request with this {HEADER} is still "
                               "running: try again in a moment")
    return schemas.problem(409, "request in progress", f"requests with this {HEADER} keep colliding: try again")


def _read_again(request: web.Request, body: bytes) -> None:
    """A multipart body is parsed from the request's stream, not from what ``read()`` kept: give
    the stream the bytes again, so an upload's handler reads them as if no one had."""
    stream = StreamReader(request.protocol, 2**16, loop=asyncio.get_running_loop())
    stream.feed_data(body)
    stream.feed_eof()
    request._payload = stream


async def _release(pool: asyncpg.Pool, claim: _Claim) -> None:
    try:
        async with pool.acquire() as conn:
            await store.release(conn, claim.principal, claim.key, claim.at)
    except (OSError, asyncpg.PostgresError) as e:  # the row waits out its lease instead
        _log.warning("idempotency key not released", error=str(e))


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method not in METHODS or not request.path.startswith("/api/") or HEADER not in request.headers:
        return await handler(request)
    who = request.get(keys.PRINCIPAL)
    if who is None:  # a public operation: nobody to keep keys for
        return await handler(request)
    key = parse(request.headers[HEADER])
    body = await request.read()  # kept by the request: the handler reads it again
    if request.content_type.startswith("multipart/"):
        _read_again(request, body)
    pool = request.app[keys.POOL]
    async with pool.acquire() as conn:
        claimed = await _claim(conn, principal_of(who), key, fingerprint(request.method, request.path_qs, body))
    if isinstance(claimed, web.Response):
        return claimed
    try:
        response = await handler(request)
    except BaseException:
        await _release(pool, claimed)
        raise
    if response.status >= 400:
        await _release(pool, claimed)
        return response
    # A streamed answer (no body kept in memory) is kept as its status and type alone.
    kept = response.body if isinstance(response, web.Response) and isinstance(response.body, bytes) else b""
    async with pool.acquire() as conn:
        await store.finish(conn, claimed.principal, claimed.key, claimed.at, response.status,
                           response.headers.get("Content-Type", ""), kept)
    return response
