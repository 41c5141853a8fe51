"""Finance -> Bank statements: upload a statement (CAMT.053 and MT940 known by their content, a
CSV file through its bank's column mapping, made once from the file's first rows on the mapping
screen and saved by name), a statement's lines with their status, score and explanation, the
review queue (lines new and error, across statements) where a person pairs a line with a
customer found by login, name, email, phone or document number, or ignores it with a reason,
the banks' mappings, and the statements' history; the same in the API.

Reading, matching and recording are admin/payments/statements/ and admin/payments/matching.py;
an import is one transaction (the statement, its lines, their payments and its line of the
operations log). Every change has its line in the operations log.

Bank statements are the ISP's own bank accounts: only an administrator of every partner (no
partner, no "own customers only") sees them; any other sees no statement, no line and no
mapping (their pages and objects are "not found"), and may not upload.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import asyncpg
import msgspec
from aiohttp import BodyPartReader, web

from admin import keys, listing, oplog_store, schemas
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.customers import queries as customer_queries
from admin.finance import common
from admin.finance import queries as finance_queries
from admin.finance.area import AREA
from admin.finance.statements_schemas import (
    BankMapping,
    BankMappingColumns,
    BankMappingIn,
    Candidate,
    CandidateQuery,
    IgnoreIn,
    Imported,
    LineQuery,
    PairIn,
    ReviewQuery,
    Signal,
    Statement,
    StatementLine,
    StatementQuery,
    UploadQuery,
)
from admin.payments import reference
from admin.payments.record import PaymentError
from admin.payments.statements import csvfile, model, service
from admin.payments.statements import store as statements_store
from admin.schemas import Deleted, Page
from admin.web import path_id

T = TypeVar("T", bound=msgspec.Struct)
STATUSES = ("new", "matched", "paired", "ignored", "error")
WAITING = ("new", "error")
HIDDEN_MAX = 2 * 1024 * 1024
"""The largest CSV file the mapping screen carries along (in the form, base64) to import once the
mapping is saved; a larger one is chosen again on the upload form after the mapping is saved."""
FIELD_OPTIONS = [("", "—"), *((name, csvfile.LABELS[name]) for name in csvfile.FIELDS)]


def _sees(who: Principal) -> bool:
    return who.partner_id is None and who.creator_id is None


def _may_see(request: web.Request) -> None:
    """Another principal's request for one statement, line or mapping: "not found"."""
    if not _sees(keys.principal(request)):
        raise web.HTTPNotFound()


def _may_change(request: web.Request) -> None:
    if not _sees(keys.principal(request)):
        raise web.HTTPForbidden(text="Bank statements are the ISP's own accounts: only an administrator of every "
                                     "partner imports them and decides their lines.")


# -- rows as the API shows them -------------------------------------------------------------------

def _columns(raw: Any) -> BankMappingColumns:
    return msgspec.convert(raw, BankMappingColumns)


def _mapping_out(row: common.Row, uses: int = 0) -> BankMapping:
    return common.out(BankMapping, row, columns=_columns(row["columns"]), statements=uses)


def _statement_out(row: common.Row) -> Statement:
    return common.out(Statement, row, waiting=row.get("waiting", 0), counts=row.get("counts", {}))


def _line_out(row: common.Row) -> StatementLine:
    explanation = [Signal(str(s.get("signal", "")), int(s.get("points", 0)), str(s.get("detail", "")))
                   for s in (row["explanation"] or [])]
    return common.out(StatementLine, row, explanation=explanation)


def _cursor(request_after: str | None) -> int | None:
    values = common.typed_cursor(listing.decode_cursor(request_after), "int")
    return values[0] if values else None


def _next(rows: list[Any], limit: int, key: str) -> str | None:
    return common.next_cursor(rows, limit, lambda r: (r[key], r[key]))


# -- the changes, each with its line of the operations log ---------------------------------------

def _mapping_values(data: BankMappingIn) -> tuple[dict[str, Any], csvfile.Mapping]:
    """A mapping's row values and the reader's Mapping, or Invalid naming what is wrong."""
    cols: dict[str, tuple[int, ...]] = {}
    for name in csvfile.FIELDS:
        value = getattr(data.columns, name)
        if isinstance(value, list):
            if value:
                cols[name] = tuple(value)
        elif value is not None:
            cols[name] = (value,)
    m = csvfile.Mapping(cols, data.delimiter, data.encoding, data.skip_lines, data.has_header, data.date_format,
                        data.decimal_comma, "EUR", data.name.strip())
    wrong = csvfile.problems(m)
    if wrong:
        raise schemas.Invalid({(k if k in ("delimiter", "encoding", "skip_lines", "date_format") else
                                f"columns.{k}" if k in csvfile.FIELDS else "columns"): v for k, v in wrong.items()})
    values = {"name": data.name.strip(), "delimiter": data.delimiter, "encoding": data.encoding,
              "skip_lines": data.skip_lines, "has_header": data.has_header, "columns": service.columns_json(cols),
              "date_format": data.date_format, "decimal_comma": data.decimal_comma}
    return values, m


async def _save_mapping(conn: Connection, request: web.Request, data: BankMappingIn,
                        mapping_id: int | None = None) -> asyncpg.Record:
    _may_change(request)
    values, _ = _mapping_values(data)
    who = keys.principal(request)
    async with conn.transaction():
        before = await statements_store.mapping(conn, mapping_id) if mapping_id is not None else None
        if mapping_id is not None and before is None:
            raise web.HTTPNotFound()
        try:
            async with conn.transaction():
                row = (await statements_store.update_mapping(conn, mapping_id, values) if mapping_id is not None
                       else await statements_store.insert_mapping(conn, values))
        except asyncpg.UniqueViolationError:
            raise schemas.Invalid({"name": "another mapping has this name"}) from None
        assert row is not None
        await oplog_store.record(conn, who, keys.client_address(request), "update" if before else "create",
                                 "bank_mapping", row["id"], summary=f"bank mapping {row['name']!r}",
                                 before=schemas.row_json(before) if before else None, after=schemas.row_json(row))
    return row


async def _delete_mapping(conn: Connection, request: web.Request, mapping_id: int) -> None:
    _may_change(request)
    who = keys.principal(request)
    async with conn.transaction():
        row = await statements_store.mapping(conn, mapping_id)
        if row is None:
            raise web.HTTPNotFound()
        uses = (await statements_store.mapping_uses(conn, [mapping_id])).get(mapping_id, 0)
        if uses:
            raise web.HTTPConflict(text=f"{uses} statement{'s were' if uses != 1 else ' was'} read through mapping "
                                        f"{row['name']!r}: it stays (a statement says how it was read)")
        await statements_store.delete_mapping(conn, mapping_id)
        await oplog_store.record(conn, who, keys.client_address(request), "delete", "bank_mapping", mapping_id,
                                 summary=f"bank mapping {row['name']!r}", before=schemas.row_json(row))


async def _import(conn: Connection, request: web.Request, data: bytes, file_name: str,
                  mapping: asyncpg.Record | None) -> service.Imported:
    """Import ``data`` and log it, in one transaction; StatementError when the file is refused."""
    _may_change(request)
    who = keys.principal(request)
    name = (file_name or "statement").strip()[:200] or "statement"
    async with conn.transaction():
        done = await service.import_file(conn, data, name, mapping=mapping, by=who.name, today=common.today())
        await oplog_store.record(
            conn, who, keys.client_address(request), "import", "bank_statement", done.statement_id,
            summary=f"imported {name}: {done.describe()}",
            after={"file_name": name, "lines": done.lines, "known": done.duplicates, "counts": done.counts,
                   "payments": done.payments, "dunning": done.dunning,
                   "mapping_id": mapping["id"] if mapping is not None else None})
    return done


async def _customer(conn: Connection, customer_id: int) -> asyncpg.Record:
    row = await finance_queries.customer(conn, None, None, customer_id)
    if row is None:
        raise schemas.Invalid({"customer_id": "no such customer"})
    return row


async def _line_or_404(conn: Connection, request: web.Request, line_id: int) -> asyncpg.Record:
    _may_see(request)
    row = await statements_store.line(conn, line_id)
    if row is None:
        raise web.HTTPNotFound()
    return row


async def _pair(conn: Connection, request: web.Request, line: asyncpg.Record, data: PairIn) -> service.Paired:
    _may_change(request)
    who = keys.principal(request)
    customer = await _customer(conn, data.customer_id)
    async with conn.transaction():
        try:
            paired = await service.pair(conn, line["id"], customer["id"], data.document_id, who.name,
                                        today=common.today())
        except (service.LineError, PaymentError) as e:
            raise web.HTTPConflict(text=str(e)) from None
        if paired.recorded.created:
            await oplog_store.record(
                conn, who, keys.client_address(request), "pair", "bank_statement_line", line["id"],
                customer_id=customer["id"], partner_id=customer["partner_id"],
                summary=f"paired line {line['position']} of statement {line['statement_id']} ({line['amount']} "
                        f"{line['currency']}, {line['payer_name'] or 'no name'}) with customer {customer['number']}: "
                        f"receipt {paired.recorded.receipt_number}",
                before={"status": line["status"], "customer_id": line["customer_id"]},
                after={"status": "paired", "customer_id": customer["id"], "document_id": data.document_id,
                       "payment_id": paired.recorded.id})
            if paired.recorded.dunning:
                moved = ", ".join(paired.recorded.dunning)
                await oplog_store.record(conn, who, keys.client_address(request), moved, "customer", customer["id"],
                                         customer_id=customer["id"], partner_id=customer["partner_id"],
                                         summary=f"dunning after the payment: {moved}")
    return paired


async def _ignore(conn: Connection, request: web.Request, line: asyncpg.Record, reason: str) -> None:
    _may_change(request)
    who = keys.principal(request)
    async with conn.transaction():
        try:
            await service.ignore(conn, line["id"], reason.strip(), who.name)
        except service.LineError as e:
            raise web.HTTPConflict(text=str(e)) from None
        await oplog_store.record(
            conn, who, keys.client_address(request), "ignore", "bank_statement_line", line["id"],
            summary=f"ignored line {line['position']} of statement {line['statement_id']} ({line['amount']} "
                    f"{line['currency']}): {reason.strip()}",
            before={"status": line["status"]}, after={"status": "ignored", "reason": reason.strip()})


async def _candidates(conn: Connection, q: str) -> list[Candidate]:
    """Customers a person's search names: by document number first, then as the search box finds
    them (login, customer number, name, email, phone)."""
    q = q.strip()
    if len(q) < 2:
        return []
    rows = list(await statements_store.customers_by_document(conn, q))
    documents = {r["customer_id"]: r for r in rows}
    rows += await customer_queries.search(conn, None, None, q, None, 20)
    out: list[Candidate] = []
    seen: set[int] = set()
    for r in rows:
        if r["customer_id"] in seen or r["status"] == "deleted":
            continue
        seen.add(r["customer_id"])
        doc = documents.get(r["customer_id"])
        out.append(Candidate(customer_id=r["customer_id"], number=r["number"], name=r["name"], status=r["status"],
                             match=r["match"], payment_reference=reference.printed(reference.for_customer(
                                 r["customer_id"])), document_id=doc["document_id"] if doc is not None else None))
    return out[:20]


# -- pages ----------------------------------------------------------------------------------------

async def _statements_page(request: web.Request, *, errors: dict[str, str] | None = None, status: int = 200,
                           done: str = "") -> web.Response:
    who = keys.principal(request)
    ls = common.page_listing(request, {"id": "s.id"}, {"id": "int"}, "id")
    async with request.app[keys.POOL].acquire() as conn:
        rows = await statements_store.statements(conn, ls.after[0] if ls.after else None, ls.limit) \
            if _sees(who) else []
        mappings = await statements_store.mappings(conn) if _sees(who) else []
        waiting = await statements_store.review(conn, WAITING, None, 0) if _sees(who) else []
    ls.take(rows, lambda r: (r["id"], r["id"]))
    return common.render("finance/statements.html", request, {
        "ls": ls, "statements": [_statement_out(r) for r in ls.rows], "mappings": mappings,
        "errors": errors or {}, "sees": _sees(who), "waiting": bool(waiting), "done": done}, status=status)


@AREA.page("/finance/bank-statements", permission="finance.view")
async def statements_page(request: web.Request) -> web.StreamResponse:
    """The statements imported, newest first, and the upload form."""
    return await _statements_page(request)


def _file_of(form: Mapping[str, Any], name: str = "file") -> tuple[bytes, str] | None:
    upload = form.get(name)
    if isinstance(upload, web.FileField):
        data = upload.file.read(model.MAX_BYTES + 1)
        return data, upload.filename or "statement"
    return None


@AREA.page("/finance/bank-statements", permission="finance.add", method="POST")
async def upload_form(request: web.Request) -> web.StreamResponse:
    """Upload a statement: imported at once (CAMT.053, MT940, or CSV through the mapping chosen),
    or on to the mapping screen (a CSV file with "a new mapping", or none chosen)."""
    _may_change(request)
    form = await request.post()
    got = _file_of(form)
    if got is None or not got[0]:
        return await _statements_page(request, errors={"file": "choose the statement's file"}, status=422)
    data, file_name = got
    choice = str(form.get("mapping", ""))
    async with request.app[keys.POOL].acquire() as conn:
        mapping = None
        if choice.isdigit():
            mapping = await statements_store.mapping(conn, int(choice))
            if mapping is None:
                return await _statements_page(request, errors={"mapping": "no such mapping"}, status=422)
        elif choice == "new" or model.detect(data) == "csv":
            if not keys.principal(request).can("finance.edit"):
                return await _statements_page(request, errors={"mapping": (
                    "a CSV file is read through its bank's mapping: choose it (making one needs the finance.edit "
                    "permission)")}, status=422)
            currency = await statements_store.billing_currency(conn)
            guessed = csvfile.guess(data, currency) if len(data) <= model.MAX_BYTES else None
            if guessed is None:
                return await _statements_page(request, errors={"file": "the file is too large"}, status=422)
            note = "" if choice == "new" else "This is not CAMT.053 nor MT940: a CSV file is read through its bank's " \
                                              "column mapping. Check the one guessed below and save it."
            return _mapping_screen(request, data, file_name, guessed, {}, note=note)
        try:
            done = await _import(conn, request, data, file_name, mapping)
        except service.AlreadyImported as e:
            raise web.HTTPFound(f"/admin/finance/bank-statements/{e.statement_id}?done=again") from None
        except model.StatementError as e:
            return await _statements_page(request, errors={"file": f"{file_name}: {e}"}, status=422)
    raise web.HTTPFound(f"/admin/finance/bank-statements/{done.statement_id}?done=imported")


def _mapping_screen(request: web.Request, data: bytes | None, file_name: str, m: csvfile.Mapping,
                    errors: dict[str, str], *, note: str = "", mapping_id: int | None = None,
                    status: int = 200) -> web.Response:
    """The mapping screen: the file's first rows as the mapping reads them (a select per column),
    the reading settings and the mapping's name."""
    sample = csvfile.sample(data, m) if data is not None else None
    chosen = {c: name for name, cols in m.columns.items() for c in cols}
    width = sample.width if sample is not None and sample.width else max([*chosen, 0]) + 4
    headers = sample.header if sample is not None and sample.width else [f"column {i + 1}" for i in range(width)]
    carried = data is not None and len(data) <= HIDDEN_MAX
    return common.render("finance/statement_mapping.html", request, {
        "m": m, "sample": sample, "width": width, "headers": headers, "chosen": chosen, "errors": errors,
        "note": note, "file_name": file_name, "content": base64.b64encode(data).decode() if carried and data else "",
        "too_large": data is not None and not carried, "mapping_id": mapping_id, "fields": FIELD_OPTIONS,
        "delimiters": [(_delimiter_value(d), label) for d, label in csvfile.DELIMITERS.items()],
        "delimiter": _delimiter_value(m.delimiter), "encodings": [(e, e) for e in csvfile.ENCODINGS],
        "date_formats": [(f, f"{f}  ({csvfile.human_date_format(f)})") for f in csvfile.DATE_FORMATS],
        "human_date": csvfile.human_date_format}, status=status)


def _delimiter_value(d: str) -> str:
    return "tab" if d == "\t" else d


def _mapping_in(form: Mapping[str, Any]) -> tuple[BankMappingIn | None, csvfile.Mapping, dict[str, str]]:
    """The mapping screen's form as BankMappingIn (None when it is incomplete) and as the
    reader's Mapping (the sample is shown through it, complete or not), with what is wrong."""
    errors: dict[str, str] = {}
    chosen: dict[int, str] = {}
    for key, value in form.items():
        if key.startswith("col_") and key[4:].isdigit() and str(value) in csvfile.FIELDS:
            chosen[int(key[4:])] = str(value)
    cols = csvfile.ColumnsIn(chosen).columns()
    text = str(form.get("skip_lines", "0")).strip() or "0"
    skip = int(text) if text.isdigit() else -1
    if not 0 <= skip <= 100:
        errors["skip_lines"], skip = "a number from 0 to 100", 0
    delimiter = str(form.get("delimiter", ","))
    delimiter = "\t" if delimiter == "tab" else delimiter
    encoding = str(form.get("encoding", "utf-8"))
    if encoding not in csvfile.ENCODINGS:
        errors["encoding"], encoding = "choose one of the list", "utf-8"
    name = str(form.get("name", "")).strip()
    m = csvfile.Mapping(cols, delimiter, encoding, skip, "has_header" in form,
                        str(form.get("date_format", "")).strip() or "%Y-%m-%d", "decimal_comma" in form, "EUR", name)
    if not name:
        errors["name"] = "is required: the bank's name, say"
    elif len(name) > 200:
        errors["name"] = "at most 200 characters"
    errors.update(csvfile.problems(m))
    if errors:
        return None, m, errors
    data = msgspec.convert({
        "name": name, "delimiter": delimiter, "encoding": encoding, "skip_lines": skip, "has_header": m.has_header,
        "columns": service.columns_json(cols), "date_format": m.date_format, "decimal_comma": m.decimal_comma},
        BankMappingIn)
    return data, m, errors


@AREA.page("/finance/bank-statements/mapping", permission="finance.edit", method="POST")
async def mapping_form(request: web.Request) -> web.StreamResponse:
    """The mapping screen's form: shown again with other settings ("Show"), or the mapping saved
    and the file imported with it ("Save and import")."""
    _may_change(request)
    form = await request.post()
    data: bytes | None = None
    if form.get("content"):
        try:
            data = base64.b64decode(str(form["content"]), validate=True)
        except (binascii.Error, ValueError):
            data = None
    file_name = str(form.get("file_name", "statement"))
    saved = str(form.get("mapping_id", ""))
    saved_id = int(saved) if saved.isdigit() and 0 < int(saved) < 2**63 else None
    parsed, m, errors = _mapping_in(form)
    if form.get("action") != "save":
        return _mapping_screen(request, data, file_name, m, {}, mapping_id=saved_id)
    if parsed is None:
        return _mapping_screen(request, data, file_name, m, errors, mapping_id=saved_id, status=422)
    async with request.app[keys.POOL].acquire() as conn:
        try:
            row = await _save_mapping(conn, request, parsed, saved_id)
        except schemas.Invalid as e:
            return _mapping_screen(request, data, file_name, m, e.errors, mapping_id=saved_id, status=422)
        if data is None:
            raise web.HTTPFound(f"/admin/finance/bank-statements?done=mapping&mapping={row['id']}")
        try:
            done = await _import(conn, request, data, file_name, row)
        except service.AlreadyImported as e:
            raise web.HTTPFound(f"/admin/finance/bank-statements/{e.statement_id}?done=again") from None
        except model.StatementError as e:
            return _mapping_screen(request, data, file_name, m,
                                   {"": f"The mapping {row['name']!r} is saved, but the file does not read "
                                        f"through it: {e}"}, mapping_id=row["id"], status=422)
    raise web.HTTPFound(f"/admin/finance/bank-statements/{done.statement_id}?done=imported")


@AREA.page("/finance/bank-statements/{id}", permission="finance.view")
async def statement_page(request: web.Request) -> web.StreamResponse:
    """A statement: what it is, its lines by status (each with its score and why), in the file's order."""
    _may_see(request)
    statement_id = path_id(request)
    wanted = request.query.get("status") or None
    if wanted not in STATUSES:
        wanted = None
    ls = common.page_listing(request, {"position": "l.position"}, {"position": "int"}, "position", "asc")
    async with request.app[keys.POOL].acquire() as conn:
        row = await statements_store.statement(conn, statement_id)
        if row is None:
            raise web.HTTPNotFound()
        lines = await statements_store.lines(conn, statement_id, wanted, ls.after[0] if ls.after else None, ls.limit)
    ls.take(lines, lambda r: (r["position"], r["position"]))
    return common.render("finance/statement.html", request, {
        "s": _statement_out(row), "row": row, "ls": ls, "lines": [_line_out(r) for r in ls.rows],
        "statuses": STATUSES, "status": wanted or "", "done": request.query.get("done", "")})


@AREA.page("/finance/bank-statement-lines", permission="finance.view")
async def review_page(request: web.Request) -> web.StreamResponse:
    """The review queue: lines of every statement that wait for a person (new, error), oldest first."""
    who = keys.principal(request)
    wanted = request.query.get("status") or None
    statuses = (wanted,) if wanted in WAITING else WAITING
    ls = common.page_listing(request, {"id": "l.id"}, {"id": "int"}, "id", "asc")
    async with request.app[keys.POOL].acquire() as conn:
        rows = await statements_store.review(conn, statuses, ls.after[0] if ls.after else None, ls.limit) \
            if _sees(who) else []
    ls.take(rows, lambda r: (r["id"], r["id"]))
    return common.render("finance/statement_review.html", request, {
        "ls": ls, "lines": [_line_out(r) for r in ls.rows], "rows": ls.rows, "status": wanted or "",
        "sees": _sees(who), "done": request.query.get("done", "")})


async def _line_page(request: web.Request, line_id: int, *, errors: dict[str, str] | None = None,
                     status: int = 200) -> web.Response:
    q = request.query.get("q", "").strip()
    async with request.app[keys.POOL].acquire() as conn:
        row = await _line_or_404(conn, request, line_id)
        candidates = await _candidates(conn, q) if q else []
        suggestion = await finance_queries.customer(conn, None, None, row["customer_id"]) \
            if row["customer_id"] is not None and row["status"] in WAITING else None
        documents = await statements_store.documents_of(conn, row["customer_id"]) if suggestion is not None else []
    return common.render("finance/statement_line.html", request, {
        "line": _line_out(row), "row": row, "q": q, "candidates": candidates, "suggestion": suggestion,
        "documents": documents, "errors": errors or {},
        "pairable": row["status"] in ("new", "error", "ignored") and row["amount"] > 0,
        "ignorable": row["status"] in WAITING, "done": request.query.get("done", "")}, status=status)


@AREA.page("/finance/bank-statement-lines/{id}", permission="finance.view")
async def line_page(request: web.Request) -> web.StreamResponse:
    """A line: what the bank said, why it was or was not matched, and (waiting) the search for
    its customer, pairing and ignoring."""
    return await _line_page(request, path_id(request))


async def _line_form(request: web.Request, schema: type[T], done: str,
                     act: Callable[[Connection, web.Request, asyncpg.Record, T], Awaitable[object]]) -> web.Response:
    """A line's form (pair, ignore): its values read, ``act`` done, on to the review queue; the
    line's page again, with what is wrong, when the values or the line's state refuse it."""
    line_id = path_id(request)
    form = await request.post()
    try:
        data = schemas.from_strings({k: str(v) for k, v in form.items() if k != "_csrf"}, schema)
        async with request.app[keys.POOL].acquire() as conn:
            await act(conn, request, await _line_or_404(conn, request, line_id), data)
    except schemas.Invalid as e:
        return await _line_page(request, line_id, errors=e.errors, status=422)
    except web.HTTPConflict as e:
        return await _line_page(request, line_id, errors={"": e.text or "refused"}, status=409)
    raise web.HTTPFound(f"/admin/finance/bank-statement-lines?done={done}&line={line_id}")


@AREA.page("/finance/bank-statement-lines/{id}/pair", permission="finance.add", method="POST")
async def pair_form(request: web.Request) -> web.StreamResponse:
    return await _line_form(request, PairIn, "paired", _pair)


@AREA.page("/finance/bank-statement-lines/{id}/ignore", permission="finance.add", method="POST")
async def ignore_form(request: web.Request) -> web.StreamResponse:
    async def ignore(conn: Connection, request: web.Request, line: asyncpg.Record, data: IgnoreIn) -> None:
        await _ignore(conn, request, line, data.reason)

    return await _line_form(request, IgnoreIn, "ignored", ignore)


def columns_text(columns: BankMappingColumns) -> str:
    """Which column is what, as people count them (from 1): "booking date 1, amount 5, ..."."""
    parts = []
    for name in csvfile.FIELDS:
        value = getattr(columns, name)
        cols = value if isinstance(value, list) else [] if value is None else [value]
        if cols:
            parts.append(f"{csvfile.LABELS[name]} {'+'.join(str(c + 1) for c in cols)}")
    return ", ".join(parts)


@AREA.page("/finance/bank-mappings", permission="finance.view")
async def mappings_page(request: web.Request) -> web.StreamResponse:
    """The banks' CSV mappings (each made on the mapping screen from a file of that bank)."""
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await statements_store.mappings(conn) if _sees(who) else []
        uses = await statements_store.mapping_uses(conn, [r["id"] for r in rows]) if rows else {}
    return common.render("finance/statement_mappings.html", request, {
        "mappings": [_mapping_out(r, uses.get(r["id"], 0)) for r in rows], "sees": _sees(who),
        "human_date": csvfile.human_date_format, "columns_text": columns_text, "done": request.query.get("done", "")})


@AREA.page("/finance/bank-mappings/{id}", permission="finance.view")
async def mapping_page(request: web.Request) -> web.StreamResponse:
    """A mapping, to change (without a file: the columns by number)."""
    _may_see(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await statements_store.mapping(conn, path_id(request))
        if row is None:
            raise web.HTTPNotFound()
        currency = await statements_store.billing_currency(conn)
    return _mapping_screen(request, None, "", service.mapping_of(row, currency), {}, mapping_id=row["id"])


@AREA.page("/finance/bank-mappings/{id}", permission="finance.edit", method="POST")
async def mapping_edit_form(request: web.Request) -> web.StreamResponse:
    _may_see(request)
    mapping_id = path_id(request)
    form = await request.post()
    parsed, m, errors = _mapping_in(form)
    if form.get("action") != "save":
        return _mapping_screen(request, None, "", m, {}, mapping_id=mapping_id)
    if parsed is None:
        return _mapping_screen(request, None, "", m, errors, mapping_id=mapping_id, status=422)
    async with request.app[keys.POOL].acquire() as conn:
        try:
            await _save_mapping(conn, request, parsed, mapping_id)
        except schemas.Invalid as e:
            return _mapping_screen(request, None, "", m, e.errors, mapping_id=mapping_id, status=422)
    raise web.HTTPFound("/admin/finance/bank-mappings?done=saved")


@AREA.page("/finance/bank-mappings/{id}/delete", permission="finance.edit", method="POST")
async def mapping_delete_form(request: web.Request) -> web.StreamResponse:
    _may_see(request)
    async with request.app[keys.POOL].acquire() as conn:
        await _delete_mapping(conn, request, path_id(request))
    raise web.HTTPFound("/admin/finance/bank-mappings?done=deleted")


# -- the API ------------------------------------------------------------------------------------

@AREA.api("GET", "/finance/bank-mappings", permission="finance.view", summary="List the banks' CSV mappings",
          response=list[BankMapping])
async def api_mappings(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await statements_store.mappings(conn) if _sees(who) else []
        uses = await statements_store.mapping_uses(conn, [r["id"] for r in rows]) if rows else {}
    return schemas.json([_mapping_out(r, uses.get(r["id"], 0)) for r in rows])


@AREA.api("POST", "/finance/bank-mappings", permission="finance.edit", summary="Make a bank's CSV mapping",
          body=BankMappingIn, response=BankMapping, status=201)
async def api_create_mapping(request: web.Request) -> web.StreamResponse:
    data = await schemas.body(request, BankMappingIn)
    async with request.app[keys.POOL].acquire() as conn:
        row = await _save_mapping(conn, request, data)
    return schemas.json(_mapping_out(row), status=201)


@AREA.api("GET", "/finance/bank-mappings/{id}", permission="finance.view", summary="Get a bank's CSV mapping",
          response=BankMapping)
async def api_mapping(request: web.Request) -> web.StreamResponse:
    _may_see(request)
    mapping_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await statements_store.mapping(conn, mapping_id)
        if row is None:
            raise web.HTTPNotFound()
        uses = await statements_store.mapping_uses(conn, [mapping_id])
    return schemas.json(_mapping_out(row, uses.get(mapping_id, 0)))


@AREA.api("PUT", "/finance/bank-mappings/{id}", permission="finance.edit", summary="Change a bank's CSV mapping",
          body=BankMappingIn, response=BankMapping)
async def api_update_mapping(request: web.Request) -> web.StreamResponse:
    """The statements read through it before stay as they were read."""
    _may_see(request)
    mapping_id = path_id(request)
    data = await schemas.body(request, BankMappingIn)
    async with request.app[keys.POOL].acquire() as conn:
        row = await _save_mapping(conn, request, data, mapping_id)
        uses = await statements_store.mapping_uses(conn, [mapping_id])
    return schemas.json(_mapping_out(row, uses.get(mapping_id, 0)))


@AREA.api("DELETE", "/finance/bank-mappings/{id}", permission="finance.edit", summary="Delete a bank's CSV mapping",
          response=Deleted)
async def api_delete_mapping(request: web.Request) -> web.StreamResponse:
    """409 when a statement was read through it."""
    _may_see(request)
    mapping_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        await _delete_mapping(conn, request, mapping_id)
    return schemas.json(Deleted(mapping_id))


async def _upload_body(request: web.Request) -> tuple[bytes, str, int | None]:
    """(the file, its name, the mapping id) of an API upload: multipart/form-data with a ``file``
    part (and maybe ``mapping_id``), or the file itself as the body; read up to the size limit
    whatever the app's request limit."""
    f = common.query(request, UploadQuery)
    mapping_id, file_name = f.mapping_id, f.file_name or ""
    limit = model.MAX_BYTES
    if request.content_type == "multipart/form-data":
        reader = await request.multipart()
        data = b""
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                file_name = file_name or part.filename or "statement"
                chunks = []
                size = 0
                while chunk := await part.read_chunk(1 << 16):
                    size += len(chunk)
                    if size > limit:
                        raise schemas.Invalid({"file": f"more than the {limit:,} bytes a statement may have"})
                    chunks.append(chunk)
                data = b"".join(chunks)
            elif part.name == "mapping_id":
                text = (await part.text()).strip()
                if text:
                    if not text.isdigit() or not 0 < int(text) < 2**63:
                        raise schemas.Invalid({"mapping_id": "a mapping's id"})
                    mapping_id = int(text)
        if not data:
            raise schemas.Invalid({"file": "the request has no file part (multipart/form-data, name \"file\")"})
        return data, file_name or "statement", mapping_id
    chunks = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise schemas.Invalid({"": f"the file is more than the {limit:,} bytes a statement may have"})
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data.strip():
        raise schemas.Invalid({"": "send the statement's file: as the body, or as multipart/form-data (\"file\")"})
    return data, file_name or "statement", mapping_id


@AREA.api("POST", "/finance/bank-statements", permission="finance.add", query=UploadQuery, response=Imported,
          status=201, summary="Import a bank statement")
async def api_upload(request: web.Request) -> web.StreamResponse:
    """The file as multipart/form-data (a `file` part, maybe a `mapping_id` part) or as the request
    body (`Content-Type: application/xml`, `text/csv`, `application/octet-stream`), up to 32 MiB.
    CAMT.053 and MT940 are known by their content; a CSV file names its bank's mapping
    (`mapping_id`). Read, matched and its payments recorded in one transaction: a file that does
    not read is refused whole (422, `detail` names the line or element), the same file again is
    409 ("already imported as statement N"), an overlapping statement adds its new lines only."""
    _may_change(request)
    started = time.perf_counter()
    data, file_name, mapping_id = await _upload_body(request)
    async with request.app[keys.POOL].acquire() as conn:
        mapping = None
        if mapping_id is not None:
            mapping = await statements_store.mapping(conn, mapping_id)
            if mapping is None:
                raise schemas.Invalid({"mapping_id": "no such mapping"})
        try:
            done = await _import(conn, request, data, file_name, mapping)
        except service.AlreadyImported as e:
            raise web.HTTPConflict(text=str(e)) from None
        except model.StatementError as e:
            raise schemas.Invalid({"file": str(e)}) from None
        row = await statements_store.statement(conn, done.statement_id)
    assert row is not None
    waiting = sum(n for s, n in done.counts.items() if s in WAITING)
    return schemas.json(Imported(statement=_statement_out({**row, "waiting": waiting}), counts=done.counts,
                                 payments=done.payments, seconds=round(time.perf_counter() - started, 3)), status=201)


@AREA.api("GET", "/finance/bank-statements", permission="finance.view", summary="List bank statements",
          query=StatementQuery, response=Page[Statement])
async def api_statements(request: web.Request) -> web.StreamResponse:
    """Newest first."""
    who = keys.principal(request)
    f = common.query(request, StatementQuery)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await statements_store.statements(conn, _cursor(f.after), f.limit) if _sees(who) else []
    return schemas.json(Page[Statement]([_statement_out(r) for r in rows[: f.limit]], _next(rows, f.limit, "id")))


@AREA.api("GET", "/finance/bank-statements/{id}", permission="finance.view", summary="Get a bank statement",
          response=Statement)
async def api_statement(request: web.Request) -> web.StreamResponse:
    """With its lines counted by status."""
    _may_see(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await statements_store.statement(conn, path_id(request))
    if row is None:
        raise web.HTTPNotFound()
    waiting = sum(n for s, n in row["counts"].items() if s in WAITING)
    return schemas.json(_statement_out({**row, "waiting": waiting}))


@AREA.api("GET", "/finance/bank-statements/{id}/lines", permission="finance.view", query=LineQuery,
          response=Page[StatementLine], summary="A bank statement's lines")
async def api_statement_lines(request: web.Request) -> web.StreamResponse:
    """In the file's order; each with its status, customer, score and explanation."""
    _may_see(request)
    statement_id = path_id(request)
    f = common.query(request, LineQuery)
    async with request.app[keys.POOL].acquire() as conn:
        if await statements_store.statement(conn, statement_id) is None:
            raise web.HTTPNotFound()
        rows = await statements_store.lines(conn, statement_id, f.status, _cursor(f.after), f.limit)
    return schemas.json(Page[StatementLine]([_line_out(r) for r in rows[: f.limit]],
                                            _next(rows, f.limit, "position")))


@AREA.api("GET", "/finance/bank-statement-lines", permission="finance.view", query=ReviewQuery,
          response=Page[StatementLine], summary="The review queue: lines waiting for a person")
async def api_review(request: web.Request) -> web.StreamResponse:
    """Lines of every statement that are `new` (not matched: pair or ignore them) or `error`, oldest first."""
    who = keys.principal(request)
    f = common.query(request, ReviewQuery)
    statuses = (f.status,) if f.status else WAITING
    async with request.app[keys.POOL].acquire() as conn:
        rows = await statements_store.review(conn, statuses, _cursor(f.after), f.limit) if _sees(who) else []
    return schemas.json(Page[StatementLine]([_line_out(r) for r in rows[: f.limit]], _next(rows, f.limit, "id")))


@AREA.api("GET", "/finance/bank-statement-lines/{id}", permission="finance.view", response=StatementLine,
          summary="Get a bank statement line")
async def api_line(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(_line_out(await _line_or_404(conn, request, path_id(request))))


@AREA.api("GET", "/finance/bank-statement-lines/{id}/candidates", permission="finance.view", query=CandidateQuery,
          response=list[Candidate], summary="Find the customer a bank statement line is from")
async def api_candidates(request: web.Request) -> web.StreamResponse:
    """By login, name, email, phone, customer number or document number (`q`, 2 characters or more)."""
    f = common.query(request, CandidateQuery)
    async with request.app[keys.POOL].acquire() as conn:
        await _line_or_404(conn, request, path_id(request))
        return schemas.json(await _candidates(conn, f.q))


@AREA.api("POST", "/finance/bank-statement-lines/{id}/pair", permission="finance.add", body=PairIn,
          response=StatementLine, summary="Pair a bank statement line with its customer")
async def api_pair(request: web.Request) -> web.StreamResponse:
    """Records the line's payment as the customer's (paying `document_id` first, when given):
    the line is `paired`. Pairing it again with the same customer records nothing more; a line
    matched or paired already with another is 409."""
    data = await schemas.body(request, PairIn)
    async with request.app[keys.POOL].acquire() as conn:
        line = await _line_or_404(conn, request, path_id(request))
        await _pair(conn, request, line, data)
        return schemas.json(_line_out(await _line_or_404(conn, request, line["id"])))


@AREA.api("POST", "/finance/bank-statement-lines/{id}/ignore", permission="finance.add", body=IgnoreIn,
          response=StatementLine, summary="Ignore a bank statement line")
async def api_ignore(request: web.Request) -> web.StreamResponse:
    """Nobody's payment (a refund, a transfer between own accounts): the line is `ignored`, with the reason."""
    data = await schemas.body(request, IgnoreIn)
    async with request.app[keys.POOL].acquire() as conn:
        line = await _line_or_404(conn, request, path_id(request))
        await _ignore(conn, request, line, data.reason)
        return schemas.json(_line_out(await _line_or_404(conn, request, line["id"])))
