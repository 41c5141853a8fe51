"""Staff's files on a ticket's message: from the ticket page's forms (multipart/form-data, the
``files`` field) and from the API (base64 in JSON), made the same :class:`~admin.tickets.inbound.Attachment`
an incoming mail's are (the name made safe, the served type sniffed from the bytes) and held to the
same limits (:data:`LIMITS`, inbound.py's: per file, the number of files, all of them together);
store.py then keeps them with their message, in its transaction.

The page's form has been read by the time the handler runs: the CSRF check
(admin/auth/middleware.py) takes the form's ``_csrf`` from ``request.post()``, whose multipart reader
streams each file into a spooled temporary file and refuses a request over the admin's request limit
(admin/app.py ``client_max_size``: 413). :func:`from_form` reads each file back from there, at most
a byte over the limit. The API's body is read here, streamed up to what the limits allow in base64
(:func:`api_body`), whatever the admin's request limit.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, TypeVar

import msgspec
from aiohttp import web

from admin import schemas
from admin.tickets import inbound
from admin.tickets.schemas import MessageIn

LIMITS = inbound.Limits()
"""What a staff message may carry: what an incoming mail may (inbound.py)."""

_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")


class FileIn(msgspec.Struct, kw_only=True):
    """A file sent with a message through the API."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255, description="its file name (made safe)")]
    content_base64: Annotated[str, msgspec.Meta(description="its bytes, base64 (RFC 4648, standard alphabet)")]
    content_type: Annotated[str, msgspec.Meta(max_length=255, description=(
        "as the sender says; what it is served as comes from its bytes"))] = "application/octet-stream"


class MessageWithFiles(MessageIn, kw_only=True):
    """A reply or note, with files (each at most 20 MiB, at most 30, 40 MiB together)."""

    attachments: Annotated[list[FileIn], msgspec.Meta(description=(
        "files kept with the message and, on a reply, sent with its e-mail"))] = msgspec.field(default_factory=list)


def attachment(name: str, declared_type: str, data: bytes) -> inbound.Attachment:
    """A file as a message keeps it: its name made safe, its served type from its bytes."""
    declared = declared_type.split(";", 1)[0].strip().lower()
    declared = declared if _TYPE.match(declared) else "application/octet-stream"
    return inbound.Attachment(filename=inbound.safe_filename(name, declared, max_chars=LIMITS.max_filename_chars),
                              declared_type=declared, sniffed_type=inbound.sniff(data), data=data)


def _too_big(name: str) -> str:
    return f"{name} is more than the {LIMITS.max_attachment_bytes:,} bytes a file may have"


def _count(n: int, field: str) -> None:
    if n > LIMITS.max_attachments:
        raise schemas.Invalid({field: f"{n} files: at most {LIMITS.max_attachments} go with a message"})


def _checked(files: Sequence[inbound.Attachment], field: str) -> tuple[inbound.Attachment, ...]:
    _count(len(files), field)
    total = sum(f.size for f in files)
    if total > LIMITS.max_message_bytes:
        raise schemas.Invalid({field: f"the files are {total:,} bytes together: more than the "
                                      f"{LIMITS.max_message_bytes:,} a message may carry"})
    return tuple(files)


def from_form(form: Mapping[str, Any], field: str = "files") -> tuple[inbound.Attachment, ...]:
    """The files of a page's form (``request.post()``); a file input left empty gives none.
    schemas.Invalid (on ``field``): a file empty or too big, too many, too much together."""
    getall = getattr(form, "getall", None)
    values = getall(field, []) if getall is not None else [form.get(field)]
    files = []
    for value in values:
        if not isinstance(value, web.FileField) or not value.filename:
            continue
        data = value.file.read(LIMITS.max_attachment_bytes + 1)
        if len(data) > LIMITS.max_attachment_bytes:
            raise schemas.Invalid({field: f"{_too_big(value.filename)}: choose it again smaller, or leave it out"})
        if not data:
            raise schemas.Invalid({field: f"{value.filename} is empty"})
        files.append(attachment(value.filename, value.content_type, data))
    return _checked(files, field)


T = TypeVar("T")


def form_and_files(form: Mapping[str, Any], type_: type[T], field: str = "files"
                   ) -> tuple[T, tuple[inbound.Attachment, ...]]:
    """A form's fields as ``type_`` and its files, every error of both at once (a file field
    cannot be filled in again by the page, so its errors say to choose the files again)."""
    errors: dict[str, str] = {}
    data: T | None = None
    files: tuple[inbound.Attachment, ...] = ()
    try:
        data = schemas.from_strings(form, type_)
    except schemas.Invalid as e:
        errors.update(e.errors)
    try:
        files = from_form(form, field)
    except schemas.Invalid as e:
        errors.update({k: f"{v} (choose the files again)" for k, v in e.errors.items()})
    if errors or data is None:
        raise schemas.Invalid(errors)
    return data, files


def from_api(given: Sequence[FileIn]) -> tuple[inbound.Attachment, ...]:
    """The API's files, decoded. schemas.Invalid (on ``attachments``): not base64, empty, too big,
    too many, too much together."""
    _count(len(given), "attachments")
    files = []
    for n, f in enumerate(given):
        where = f"attachments[{n}] ({f.name})"
        if len(f.content_base64) > (LIMITS.max_attachment_bytes + 2) // 3 * 4 + 4:
            raise schemas.Invalid({"attachments": _too_big(where)})
        try:
            data = base64.b64decode(f.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise schemas.Invalid({"attachments": f"{where}: content_base64 is not base64"}) from None
        if len(data) > LIMITS.max_attachment_bytes:
            raise schemas.Invalid({"attachments": _too_big(where)})
        if not data:
            raise schemas.Invalid({"attachments": f"{where} is empty"})
        files.append(attachment(f.name, f.content_type, data))
    return _checked(files, "attachments")


def api_limit() -> int:
    """The bytes an API message may have: its files at the limits, in base64, and its text."""
    return (LIMITS.max_message_bytes + 2) // 3 * 4 + 64 * LIMITS.max_attachments * 1024 + 1024 * 1024


async def api_body(request: web.Request) -> MessageWithFiles:
    """The API's message, its body streamed up to :func:`api_limit` (not the admin's request
    limit, which is smaller than one file at the limit in base64). A request with an
    Idempotency-Key has been read whole by then, within the admin's request limit."""
    limit = api_limit()
    too_big = schemas.Invalid({"attachments": f"the request is more than the {limit:,} bytes a message with its "
                                              "files in base64 may have"})
    if (request.content_length or 0) > limit:
        raise too_big
    if request.content.is_eof():  # read already (admin/idempotency.py keeps it, within the request limit)
        return schemas.decode_json(await request.read(), MessageWithFiles)
    chunks = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return schemas.decode_json(b"".join(chunks), MessageWithFiles)
