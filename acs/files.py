"""The ACS's file server: the files CPEs download (firmware, configuration) and the ones they upload.

Mounted by acs/server.py (:meth:`FileServer.add_routes`):

- ``GET|HEAD /files/{token}/{name}``: a complete row of acs_files, streamed from its 1 MiB chunks
  one at a time (a firmware is never whole in memory), with ``ETag`` (its sha256),
  ``Last-Modified``, ``Accept-Ranges: bytes``; ``If-None-Match`` (304), one byte range (206 with
  ``Content-Range``; 416 when unsatisfiable; ``If-Range`` honoured; several ranges get the whole
  file, 200). ``name`` is the file's name, for the CPEs that want one in the URL; the token alone
  names the file.
- ``PUT|POST /uploads/{token}``: the body (streamed, at most ``max_upload`` bytes: 413 past that)
  becomes an acs_files row of the device the token names, and the upload task it names (or,
  for a token that names none, the device's newest upload task not ended yet) gets
  ``{"file_id": N}`` in its result.

Tokens are signed (HMAC-SHA256 under a key the server passes) and expire: a file token names a
file id, an upload token a device and a task (0: none). A token that does not verify or has
expired is answered 403. The chunk layout is acs/store.py's (its module docstring).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from email.utils import formatdate, parsedate_to_datetime
from typing import Literal

import asyncpg
from aiohttp import web

from acs import ranges, store
from acs.store import CHUNK, StoredFile
from daemons import log

UPLOAD_LIMIT = 64 << 20
"""The largest upload accepted by default (a configuration backup or a log is far smaller)."""
READ_SIZE = 64 << 10


class Tokens:
    """Signs and checks the tokens of file and upload links."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a token key has 16 bytes at least")
        self._key = key

    def _sign(self, text: str) -> str:
        digest = hmac.new(self._key, text.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    def make(self, kind: Literal["f", "u"], a: int, b: int, expires: float) -> str:
        text = f"{kind}.{a}.{b}.{int(expires)}"
        return f"{text}.{self._sign(text)}"

    def open(self, token: str, kind: Literal["f", "u"], now: float) -> tuple[int, int] | None:
        """The two numbers a valid, unexpired token of ``kind`` names, else None."""
        text, _, signature = token.rpartition(".")
        parts = text.split(".")
        if len(parts) != 4 or parts[0] != kind or not all(p.isascii() and p.isdigit() for p in parts[1:]):
            return None
        if not hmac.compare_digest(signature, self._sign(text)) or int(parts[3]) < now:
            return None
        return int(parts[1]), int(parts[2])

    def file_url(self, base: str, file_id: int, name: str, expires: float) -> str:
        """Where a CPE downloads file ``file_id`` until ``expires`` (``base``: the ACS's URL)."""
        return f"{base.rstrip('/')}/files/{self.make('f', file_id, 0, expires)}/{name}"

    def upload_url(self, base: str, device_id: int, expires: float, task_id: int = 0) -> str:
        """Where device ``device_id`` uploads a file (for task ``task_id``) until ``expires``."""
        return f"{base.rstrip('/')}/uploads/{self.make('u', device_id, task_id, expires)}"


def _etag_matches(header: str, etag: str) -> bool:
    """If-None-Match's weak comparison: any listed tag (W/ or not) that is ours, or "*"."""
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


def _not_modified_since(request: web.Request, f: StoredFile) -> bool:
    header = request.headers.get("If-Modified-Since")
    if not header or "If-None-Match" in request.headers:
        return False
    try:
        return int(f.created_at) <= parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return False


class FileServer:
    """The /files/ and /uploads/ handlers over ``pool`` (a statement takes a connection for its
    own time only, so a slow CPE holds none)."""

    def __init__(self, pool: asyncpg.Pool, tokens: Tokens, *, max_upload: int = UPLOAD_LIMIT) -> None:
        self.pool = pool
        self.tokens = tokens
        self.max_upload = max_upload
        self.log = log.get("lastmile.acs.files")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/files/{token}/{name}", self.download, allow_head=True)
        app.router.add_put("/uploads/{token}", self.upload)
        app.router.add_post("/uploads/{token}", self.upload)

    async def download(self, request: web.Request) -> web.StreamResponse:
        named = self.tokens.open(request.match_info["token"], "f", time.time())
        if named is None:
            raise web.HTTPForbidden(text="bad or expired link\n")
        f = await store.stored_file(self.pool, named[0])
        if f is None:
            raise web.HTTPNotFound(text="no such file\n")
        etag = f'"{f.sha256}"'
        headers = {"ETag": etag, "Accept-Ranges": "bytes", "Last-Modified": formatdate(f.created_at, usegmt=True),
                   "Content-Type": "application/octet-stream", "Cache-Control": "private, no-transform"}
        if _etag_matches(request.headers.get("If-None-Match", ""), etag) or _not_modified_since(request, f):
            return web.Response(status=304, headers=headers)
        wanted: tuple[int, int] | ranges.Unsatisfiable | None = None
        if request.headers.get("If-Range", etag) == etag:
            wanted = ranges.parse(request.headers.get("Range"), f.size)
        if isinstance(wanted, ranges.Unsatisfiable):
            headers["Content-Range"] = f"bytes */{f.size}"
            return web.Response(status=416, headers=headers)
        first, last = wanted if wanted is not None else (0, f.size - 1)
        if wanted is not None:
            headers["Content-Range"] = f"bytes {first}-{last}/{f.size}"
        response = web.StreamResponse(status=206 if wanted is not None else 200, headers=headers)
        response.content_length = last - first + 1
        await response.prepare(request)
        if request.method != "HEAD":
            await self._stream(response, f, first, last)
        await response.write_eof()
        return response

    async def _stream(self, response: web.StreamResponse, f: StoredFile, first: int, last: int) -> None:
        position = first
        while position <= last:
            n, offset = divmod(position, CHUNK)
            length = min(CHUNK - offset, last - position + 1)
            data = await store.read_chunk(self.pool, f.id, n, offset, length)
            if len(data) != length:  # a damaged file: end the connection rather than send a short body
                self.log.error("file chunk missing or short", file_id=f.id, chunk=n)
                raise ConnectionResetError(f"acs_files {f.id}: chunk {n} is missing or short")
            await response.write(data)
            position += length

    async def upload(self, request: web.Request) -> web.Response:
        named = self.tokens.open(request.match_info["token"], "u", time.time())
        if named is None:
            raise web.HTTPForbidden(text="bad or expired link\n")
        device_id, task_id = named
        if request.content_length is not None and request.content_length > self.max_upload:
            raise web.HTTPRequestEntityTooLarge(max_size=self.max_upload, actual_size=request.content_length)
        task = await store.upload_task(self.pool, device_id, task_id)
        if task is None and task_id:
            raise web.HTTPNotFound(text="no such upload task\n")
        task_id, file_type = task if task is not None else (0, "")
        file_type = file_type or "1 Vendor Configuration File"
        name = f"upload-{device_id}-{task_id}-{int(time.time())}"
        try:
            file_id = await store.create_file(self.pool, name, file_type, device_id=device_id)
        except asyncpg.ForeignKeyViolationError:
            raise web.HTTPNotFound(text="no such device\n") from None
        try:
            writer = store.ChunkWriter(self.pool, file_id)
            async for piece in request.content.iter_chunked(READ_SIZE):
                if writer.size + len(piece) > self.max_upload:
                    raise web.HTTPRequestEntityTooLarge(max_size=self.max_upload, actual_size=writer.size + len(piece))
                await writer.write(piece)
            await writer.finish()
            if task_id:
                await store.attach_upload(self.pool, task_id, file_id)
        except BaseException:
            await store.delete_file(self.pool, file_id)
            raise
        self.log.info("file uploaded", device_id=device_id, task_id=task_id, file_id=file_id, size=writer.size)
        return web.Response(status=200)
