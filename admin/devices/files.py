"""CPE files: the firmware and configuration files the ACS serves to devices (Download): the
list, the upload, delete; and the API's list.

Files are global (acs_files has no partner), as presets are: the ``networking`` permissions
alone decide. An upload is read as it arrives (multipart, never the whole file in memory) into
acs_file_chunks, 1 MiB a row numbered from 0, with its size and SHA-256 counted on the way, all
in one transaction: a broken upload leaves nothing behind, and the row is complete when it
commits. The upload form posts through htmx, which sends the CSRF token as a header (so the
body is not read as a form first); its size is bounded by :data:`MAX_FILE_BYTES`, not by the
admin's request limit. A file may not be deleted while a queued or waiting download task or a
preset names it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import unquote

import asyncpg
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from admin import keys, listing, pages, schemas
from admin.devices import queries
from admin.devices.common import AREA, Row, actor, log, out, refused, scope
from admin.devices.schemas import FILE_TYPES, CpeFile, FileQuery
from admin.listing import as_time, listing_of
from admin.schemas import Page
from admin.web import path_id

CHUNK = 1024 * 1024
"""The bytes of one acs_file_chunks row (the ACS serves ranges by these)."""
MAX_FILE_BYTES = 512 * CHUNK
"""The largest file an upload takes (a home router's firmware is a few tens of MiB)."""
MAX_FIELD = 1000
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
FIELDS = ("name", "file_type", "oui", "product_class", "version")
TYPES = {"created_at": as_time}


def safe_name(filename: str) -> str:
    """An uploaded file's name as acs_files takes it: its last part (percent-decoded, as some
    clients send it), other characters as "_"."""
    base = unquote(filename).rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._-]", "_", base)[:200].strip(".")


def _checked(fields: dict[str, str], filename: str) -> dict[str, str]:
    """The text fields of the upload (sent before the file), checked."""
    values = {k: fields.get(k, "").strip() for k in FIELDS}
    values["name"] = values["name"] or safe_name(filename)
    errors: dict[str, str] = {}
    if not _NAME.fullmatch(values["name"]):
        errors["name"] = "letters, digits and . _ - only, at most 200"
    if values["file_type"] not in FILE_TYPES:
        errors["file_type"] = "choose the file's type"
    for k in ("oui", "product_class", "version"):
        if len(values[k]) > 64 or "\x00" in values[k]:
            errors[k] = "at most 64 characters"
    if errors:
        raise schemas.Invalid(errors)
    return values


async def _field(part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(MAX_FIELD + 1):
        data += chunk
        if len(data) > MAX_FIELD:
            raise schemas.Invalid({part.name or "": "is too long"})
    return data.decode("utf-8", errors="replace")


async def _upload(request: web.Request) -> Row:
    """Read the multipart upload into a new file (see the module's docstring)."""
    if not request.content_type.startswith("multipart/form-data"):
        raise schemas.Invalid({"file": "send the form as multipart/form-data"})
    fields: dict[str, str] = {}
    try:
        reader = await request.multipart()
        async with request.app[keys.POOL].acquire() as conn, conn.transaction():
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    raise schemas.Invalid({"": "a nested multipart body is not an upload"})
                if part.name != "file":
                    fields[part.name or ""] = await _field(part)
                    continue
                values = _checked(fields, part.filename or "")
                file_id = await queries.create_file(conn, values, actor(request))
                size, n, digest, buffer = 0, 0, hashlib.sha256(), bytearray()
                while chunk := await part.read_chunk(CHUNK):
                    size += len(chunk)
                    if size > MAX_FILE_BYTES:
                        raise schemas.Invalid({"file": f"is larger than {MAX_FILE_BYTES // CHUNK} MiB"})
                    digest.update(chunk)
                    buffer += chunk
                    while len(buffer) >= CHUNK:
                        await queries.add_chunk(conn, file_id, n, bytes(buffer[:CHUNK]))
                        del buffer[:CHUNK]
                        n += 1
                if buffer:
                    await queries.add_chunk(conn, file_id, n, bytes(buffer))
                if size == 0:
                    raise schemas.Invalid({"file": "is empty"})
                row = await queries.finish_file(conn, file_id, size, digest.hexdigest())
                await log(conn, request, "create", "cpe_file", file_id,
                          f"uploaded CPE file {row['name']} ({size} bytes)",
                          after=schemas.row_json(row, ("name", "file_type", "oui", "product_class", "version", "size",
                                                       "sha256")))
                return row
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise refused(e) from None
    except (HttpProcessingError, ValueError):  # aiohttp's reader on a body that is not multipart
        raise schemas.Invalid({"file": "the upload is not a well-formed multipart body"}) from None
    raise schemas.Invalid({"file": "choose a file"})


async def _delete(request: web.Request, file_id: int) -> Row:
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        row = await queries.file(conn, file_id, lock=True)
        if row is None:
            raise web.HTTPNotFound(text="no such file")
        users = await queries.file_users(conn, file_id)
        parts = []
        if users["tasks"]:
            parts.append(f"{users['tasks']} queued or waiting download task{'s' if users['tasks'] != 1 else ''} "
                         f"(CPE {', '.join(users['devices'])})")
        if users["presets"]:
            parts.append(f"the preset{'s' if len(users['presets']) != 1 else ''} {', '.join(users['presets'])}")
        if parts:
            raise web.HTTPConflict(text=f"{row['name']} is named by {' and '.join(parts)}: cancel those tasks or "
                                        "change those presets first.")
        await queries.delete_file(conn, file_id)
        await log(conn, request, "delete", "cpe_file", file_id, f"deleted CPE file {row['name']}",
                  before=schemas.row_json(row, ("name", "file_type", "version", "size", "sha256")))
    return row


# -- pages ------------------------------------------------------------------------------------

async def _list(request: web.Request, *, error: str = "", status: int = 200) -> web.StreamResponse:
    f = schemas.query(request, FileQuery)
    ls = listing_of(request, queries.FILE_SORTS, "name", direction="asc", types=TYPES)
    pool = request.app[keys.POOL]

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with pool.acquire() as conn:
            return await queries.list_files(conn, q=f.q, file_type=f.file_type, sort=ls.sort, direction=ls.direction,
                                            after=after, limit=limit)

    def key(r: Any) -> tuple[Any, int]:
        return (r["sort_value"], r["id"])

    columns = ("id", "name", "file_type", "oui", "product_class", "version", "size", "sha256", "complete",
               "created_by", "created_at")
    if ls.wants_csv:
        return await listing.export_csv(request, "cpe-files.csv", columns, fetch, key,
                                        lambda r: [r[c] for c in columns])
    rows = ls.take(await fetch(ls.after, ls.limit + 1), key)
    return pages.render("devices/files_list.html", request, {
        "rows": rows, "ls": ls, "f": f, "file_types": FILE_TYPES, "error": error,
        "notice": request.query.get("done", ""), "name": request.query.get("name", "")}, status=status)


@AREA.page("/cpe/files", permission="networking.view")
async def files_list(request: web.Request) -> web.StreamResponse:
    return await _list(request)


@AREA.page("/cpe/files/new", permission="networking.add")
async def upload_form(request: web.Request) -> web.StreamResponse:
    return pages.render("devices/file_upload.html", request, {"file_types": FILE_TYPES, "errors": {},
                                                               "max_mib": MAX_FILE_BYTES // CHUNK})


@AREA.page("/cpe/files/new", permission="networking.add", method="POST")
async def upload(request: web.Request) -> web.StreamResponse:
    """The upload (htmx): on success htmx goes to the list (HX-Redirect), else the form's errors."""
    htmx = bool(request.headers.get("HX-Request"))
    try:
        row = await _upload(request)
    except schemas.Invalid as e:
        return pages.render("devices/_upload_errors.html", request, {"errors": e.errors},
                            status=200 if htmx else 422)
    target = f"/admin/cpe/files?done=uploaded&name={row['name']}"
    if htmx:
        return web.Response(status=204, headers={"HX-Redirect": target})
    raise web.HTTPFound(target)


async def _content(request: web.Request) -> web.StreamResponse:
    """A file's bytes, as an attachment (never shown inline, whatever it holds), read a chunk at
    a time."""
    pool = request.app[keys.POOL]
    async with pool.acquire() as conn:
        row = await queries.file_to_read(conn, *scope(request), path_id(request))
    if row is None:
        raise web.HTTPNotFound(text="no such file")
    response = web.StreamResponse(headers={
        "Content-Type": "application/octet-stream", "Content-Length": str(row["size"]),
        "Content-Disposition": f'attachment; filename="{safe_name(row["name"]) or "file"}"',
        "X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"})
    await response.prepare(request)
    n = sent = 0
    async with pool.acquire() as conn:
        # up to its size: no query for a chunk past the end (which would run after the client
        # has had every byte, and be counted or not by a test as the timing falls)
        while sent < row["size"] and (data := await queries.file_chunk(conn, row["id"], n)) is not None:
            await response.write(data)
            sent += len(data)
            n += 1
    await response.write_eof()
    return response


@AREA.page("/cpe/files/{id}/content", permission="networking.view")
async def content_page(request: web.Request) -> web.StreamResponse:
    return await _content(request)


@AREA.page("/cpe/files/{id}/delete", permission="networking.delete", method="POST")
async def delete_form(request: web.Request) -> web.StreamResponse:
    try:
        row = await _delete(request, path_id(request))
    except web.HTTPConflict as e:
        return await _list(request, error=e.text or "", status=409)
    raise web.HTTPFound(f"/admin/cpe/files?done=deleted&name={row['name']}")


# -- API --------------------------------------------------------------------------------------

@AREA.api("GET", "/cpe/files", permission="networking.view", summary="List CPE files", query=FileQuery,
          response=Page[CpeFile])
async def api_files(request: web.Request) -> web.StreamResponse:
    """The files the ACS serves for Download tasks and presets (``download``: the file's id)."""
    f = schemas.query(request, FileQuery)
    ls = listing_of(request, queries.FILE_SORTS, "name", direction="asc", types=TYPES)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.list_files(conn, q=f.q, file_type=f.file_type, sort=ls.sort, direction=ls.direction,
                                        after=ls.after, limit=ls.limit + 1)
    page = ls.take(rows, lambda r: (r["sort_value"], r["id"]))
    return schemas.json(Page[CpeFile](items=[out(r, CpeFile) for r in page], next=ls.next))


@AREA.api("GET", "/cpe/files/{id}/content", permission="networking.view", summary="Download a CPE file",
          description="The bytes of a file of the ACS, or of one a device uploaded (an upload task's result "
                      "`file_id`), as application/octet-stream.")
async def api_content(request: web.Request) -> web.StreamResponse:
    return await _content(request)
