"""Operators' document templates (Finance → Settings → Document templates): the HTML of invoices,
proforma invoices, credit notes, receipts and statements, per partner or for every partner, in
Jinja2's sandbox (admin/billing/render/templates.py says what a template sees and may do).

A document is rendered with its partner's template, else the operator-wide one (partner_id NULL),
else the file lastmile ships (admin/finance/pdf.py). Saving checks the template the way the
renderer will run it: compiled, rendered against every sample of its kind, and a trial PDF of the
sample (admin/billing/render/pdf.py ``check``); a template that fails is refused with its errors,
each with its line. The preview is the sample rendered with the text in the editor, saved or not.
"Back to the default" deletes the row (templates are not financial). A document whose PDF was
already made keeps it (document_files): a template changes the documents rendered after it.

An administrator of one partner edits its partner's templates only and reads the operator-wide
ones; the operator-wide ones are changed by an administrator of every partner.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, oplog_store, schemas
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.billing.render import pdf as renderer
from admin.billing.render import samples, templates
from admin.billing.render.templates import TEMPLATE_KINDS, TemplateKind
from admin.finance import branding_store, common, doc_templates_store, pdf, queries
from admin.finance.area import AREA
from admin.schemas import Id

MAX_BODY = 200_000
"""The largest template, in characters (the shipped ones are under 3,000)."""
KIND_NAMES: dict[str, str] = {"invoice": "Invoice", "proforma": "Proforma invoice", "credit_note": "Credit note",
                              "receipt": "Receipt", "statement": "Statement"}
Source = Literal["partner", "operator", "built-in"]
Body = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_BODY, description=(
    "the template: Jinja2 (sandboxed) HTML; `{% extends \"invoice.html\" %}` and overriding blocks is the easy way"))]


class TemplateScope(msgspec.Struct, kw_only=True):
    """Whose templates: a partner's (a partner's key: its own, always), or none for the operator-wide ones."""

    partner_id: Id | None = None


class EditorQuery(TemplateScope, kw_only=True):
    kind: TemplateKind = "invoice"


class DocumentTemplateIn(msgspec.Struct, kw_only=True):
    body: Body


class DocumentTemplate(msgspec.Struct, kw_only=True):
    """The template documents of ``kind`` are rendered with for ``partner_id`` (null: every partner):
    ``source`` says whose it is: the partner's own, the operator-wide one, or the shipped file."""

    kind: str
    partner_id: int | None
    source: Source
    body: str
    updated_by: str
    updated_at: dt.datetime | None


class Refused(Exception):
    """A template not taken: ``errors``, one line each (with the template's line where it has one)."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


def _scope(who: Principal, partner_id: int | None) -> int | None:
    """Whose templates are asked for: a partner's administrator always its own (another's: 404)."""
    if who.partner_id is not None:
        if partner_id is not None and partner_id != who.partner_id:
            raise web.HTTPNotFound()
        return who.partner_id
    return partner_id


def _may_edit(who: Principal, partner_id: int | None) -> bool:
    if not who.can("finance.edit") or who.creator_id is not None:
        return False
    return partner_id is not None or who.partner_id is None


def _editor(who: Principal, partner_id: int | None) -> None:
    if not _may_edit(who, partner_id):
        raise web.HTTPForbidden(text="The operator-wide templates are every partner's: only an administrator of "
                                     "every partner changes them." if partner_id is None else
                                "An administrator limited to the customers it created changes no template.")


def _kind(text: str) -> TemplateKind:
    for kind in TEMPLATE_KINDS:
        if kind == text:
            return kind
    raise web.HTTPNotFound(text=f"no template kind {text!r} (one of {', '.join(TEMPLATE_KINDS)})")


async def _partner(conn: Connection, partner_id: int | None) -> str:
    """The partner's name ('' for the operator-wide templates); 404 when there is no such partner."""
    if partner_id is None:
        return ""
    name = await doc_templates_store.partner_name(conn, partner_id)
    if name is None:
        raise web.HTTPNotFound()
    return name


def _layers(rows: Sequence[common.Row], partner_id: int | None,
            kind: str) -> tuple[common.Row | None, common.Row | None]:
    """(the scope's own row, the operator-wide row) of ``kind``."""
    own = next((r for r in rows if r["kind"] == kind and r["partner_id"] == partner_id), None)
    operator = next((r for r in rows if r["kind"] == kind and r["partner_id"] is None), None)
    return own, (operator if partner_id is not None else None)


def _effective(rows: Sequence[common.Row], partner_id: int | None, kind: TemplateKind) -> DocumentTemplate:
    own, operator = _layers(rows, partner_id, kind)
    source: Source = "partner" if own is not None and partner_id is not None else "operator"
    row = own if own is not None else operator
    if row is None:
        return DocumentTemplate(kind=kind, partner_id=partner_id, source="built-in",
                                body=templates.shipped_source(kind), updated_by="", updated_at=None)
    return DocumentTemplate(kind=kind, partner_id=partner_id, source=source, body=row["body"],
                            updated_by=row["updated_by"], updated_at=row["updated_at"])


def _default(rows: Sequence[common.Row], partner_id: int | None, kind: TemplateKind) -> tuple[str, str]:
    """What "back to the default" gives: (its text, what it is)."""
    _, operator = _layers(rows, partner_id, kind)
    if operator is not None:
        return operator["body"], "the operator-wide template"
    return templates.shipped_source(kind), "the built-in template"


async def _branding(conn: Connection, partner_id: int | None) -> Any:
    """The branding a preview shows: the partner's, or the sample's for the operator-wide templates."""
    if partner_id is None:
        return samples.branding()
    row = await branding_store.branding(conn, partner_id)
    assert row is not None
    return pdf.branding(row if row["branded"] else {"partner": row["partner"], "company_name": None})


def _checked_body(body: str) -> str:
    if not body.strip():
        raise Refused(["the template is empty: to use the default, go back to the default"])
    if len(body) > MAX_BODY:
        raise Refused([f"the template has {len(body)} characters: {MAX_BODY} at most"])
    if "\x00" in body:
        raise Refused(["the template has a NUL character"])
    return body.replace("\r\n", "\n")


async def _save(conn: Connection, request: web.Request, partner_id: int | None, kind: TemplateKind,
                body: str) -> asyncpg.Record:
    """Check ``body`` (compile, every sample, a trial PDF: Refused with the errors), then keep it."""
    who = keys.principal(request)
    _editor(who, partner_id)
    name = await _partner(conn, partner_id)
    body = _checked_body(body)
    errors = await asyncio.to_thread(renderer.check, body, kind)
    if errors:
        raise Refused(errors)
    whose = f"{name}'s" if partner_id is not None else "the operator-wide"
    async with conn.transaction():
        before = next((r for r in await doc_templates_store.templates(conn, partner_id)
                       if r["kind"] == kind and r["partner_id"] == partner_id), None)
        if before is not None and before["body"] == body:
            return before
        row = await doc_templates_store.save(conn, partner_id, kind, body, who.name)
        await oplog_store.record(conn, who, keys.client_address(request), "update" if before else "create",
                                 "document_template", row["id"], partner_id=partner_id,
                                 summary=f"{whose} {KIND_NAMES[kind].lower()} template "
                                         f"{'changed' if before else 'made'}",
                                 before={"kind": kind, "body": before["body"]} if before else None,
                                 after={"kind": kind, "body": body})
    return row


async def _reset(conn: Connection, request: web.Request, partner_id: int | None, kind: TemplateKind) -> None:
    who = keys.principal(request)
    _editor(who, partner_id)
    name = await _partner(conn, partner_id)
    async with conn.transaction():
        row = await doc_templates_store.delete(conn, partner_id, kind)
        if row is not None:
            whose = f"{name}'s" if partner_id is not None else "the operator-wide"
            await oplog_store.record(conn, who, keys.client_address(request), "delete", "document_template",
                                     row["id"], partner_id=partner_id,
                                     summary=f"{whose} {KIND_NAMES[kind].lower()} template: back to the default",
                                     before={"kind": kind, "body": row["body"]})


async def _preview(conn: Connection, partner_id: int | None, kind: TemplateKind, body: str) -> bytes:
    """The sample of ``kind`` rendered with ``body`` (unsaved) as PDF; Refused with the error's line."""
    await _partner(conn, partner_id)
    body = _checked_body(body)
    brand = await _branding(conn, partner_id)
    try:
        return await asyncio.to_thread(renderer.render_pdf, samples.sample(kind), brand, body)
    except (templates.TemplateError, renderer.RenderError) as e:
        raise Refused([str(e)]) from None


def _pdf(body: bytes, kind: str) -> web.Response:
    return web.Response(body=body, content_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="{kind.replace("_", "-")}-preview.pdf"'})


# -- the editor -------------------------------------------------------------------------------------

async def _render(request: web.Request, conn: Connection, partner_id: int | None, kind: TemplateKind, *,
                  body: str | None = None, errors: Sequence[str] = (), status: int = 200) -> web.Response:
    who = keys.principal(request)
    name = await _partner(conn, partner_id)
    rows = await doc_templates_store.templates(conn, partner_id)
    current = _effective(rows, partner_id, kind)
    default_body, default_label = _default(rows, partner_id, kind)
    own, _ = _layers(rows, partner_id, kind)
    tabs = [(k, KIND_NAMES[k], _effective(rows, partner_id, k).source) for k in TEMPLATE_KINDS]
    partners = [] if who.partner_id is not None else await queries.partners(conn, None)
    return common.render("finance/doc_templates.html", request, {
        "kind": kind, "kind_name": KIND_NAMES[kind], "partner_id": partner_id, "partner": name, "tabs": tabs,
        "partners": [(p["id"], p["name"]) for p in partners], "current": current, "own": own,
        "body": current.body if body is None else body, "default_body": default_body,
        "default_label": default_label, "errors": list(errors), "done": request.query.get("done", ""),
        "variables": templates.variables(), "may_edit": _may_edit(who, partner_id)}, status=status)


def _scope_of(who: Principal, values: Mapping[str, Any]) -> tuple[int | None, TemplateKind]:
    try:
        asked = schemas.from_strings(values, EditorQuery)
    except schemas.Invalid:
        raise web.HTTPNotFound() from None
    return _scope(who, asked.partner_id), asked.kind


def _editor_url(partner_id: int | None, kind: str, done: str) -> str:
    partner = f"partner_id={partner_id}&" if partner_id is not None else ""
    return f"/admin/finance/document-templates?{partner}kind={kind}&done={done}"


@AREA.page("/finance/document-templates", permission="finance.view")
async def editor_page(request: web.Request) -> web.StreamResponse:
    partner_id, kind = _scope_of(keys.principal(request), request.query)
    async with request.app[keys.POOL].acquire() as conn:
        return await _render(request, conn, partner_id, kind)


async def _submitted(request: web.Request, act: Callable[[Connection, int | None, TemplateKind, str],
                                                        Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """The editor's form posted: ``act(conn, partner, kind, body)`` answers; a template refused
    shows the editor again (422) with the text as it was and the errors."""
    form = await request.post()
    partner_id, kind = _scope_of(keys.principal(request), form)
    body = str(form.get("body", ""))
    async with request.app[keys.POOL].acquire() as conn:
        try:
            return await act(conn, partner_id, kind, body)
        except Refused as e:
            return await _render(request, conn, partner_id, kind, body=body, errors=e.errors, status=422)


@AREA.page("/finance/document-templates", permission="finance.edit", method="POST")
async def save_form(request: web.Request) -> web.StreamResponse:
    async def save(conn: Connection, partner_id: int | None, kind: TemplateKind, body: str) -> web.StreamResponse:
        await _save(conn, request, partner_id, kind, body)
        raise web.HTTPFound(_editor_url(partner_id, kind, "saved"))
    return await _submitted(request, save)


@AREA.page("/finance/document-templates/preview", permission="finance.view", method="POST")
async def preview_form(request: web.Request) -> web.StreamResponse:
    """The sample rendered with the editor's text, saved or not, as PDF (a new tab)."""
    async def preview(conn: Connection, partner_id: int | None, kind: TemplateKind, body: str) -> web.StreamResponse:
        return _pdf(await _preview(conn, partner_id, kind, body), kind)
    return await _submitted(request, preview)


@AREA.page("/finance/document-templates/reset", permission="finance.edit", method="POST")
async def reset_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    partner_id, kind = _scope_of(keys.principal(request), form)
    async with request.app[keys.POOL].acquire() as conn:
        await _reset(conn, request, partner_id, kind)
    raise web.HTTPFound(_editor_url(partner_id, kind, "reset"))


# -- the API ----------------------------------------------------------------------------------------

async def _api_scope(request: web.Request, conn: Connection) -> int | None:
    """The query's partner; one the key may not see, or that does not exist, is invalid (422)."""
    try:
        partner_id = _scope(keys.principal(request), schemas.query(request, TemplateScope).partner_id)
        await _partner(conn, partner_id)
    except web.HTTPNotFound:
        raise schemas.Invalid({"partner_id": "no such partner"}) from None
    return partner_id


@AREA.api("GET", "/finance/document-templates", permission="finance.view", query=TemplateScope,
          response=list[DocumentTemplate], summary="Document templates")
async def api_templates(request: web.Request) -> web.StreamResponse:
    """The template of each kind for the partner (or every partner's), and whose it is."""
    async with request.app[keys.POOL].acquire() as conn:
        partner_id = await _api_scope(request, conn)
        rows = await doc_templates_store.templates(conn, partner_id)
    return schemas.json([_effective(rows, partner_id, k) for k in TEMPLATE_KINDS])


def _refused(e: Refused) -> web.Response:
    return schemas.problem(422, "template refused", "\n".join(e.errors), {"body": "; ".join(e.errors)})


@AREA.api("PUT", "/finance/document-templates/{kind}", permission="finance.edit", query=TemplateScope,
          body=DocumentTemplateIn, response=DocumentTemplate, summary="Save a document template")
async def api_save(request: web.Request) -> web.StreamResponse:
    """Checked first (compiled, rendered against the samples of its kind and to a trial PDF): a
    template that fails is refused (422) with each error and its line."""
    kind = _kind(request.match_info["kind"])
    data = await schemas.body(request, DocumentTemplateIn)
    async with request.app[keys.POOL].acquire() as conn:
        partner_id = await _api_scope(request, conn)
        try:
            await _save(conn, request, partner_id, kind, data.body)
        except Refused as e:
            return _refused(e)
        return schemas.json(_effective(await doc_templates_store.templates(conn, partner_id), partner_id, kind))


@AREA.api("DELETE", "/finance/document-templates/{kind}", permission="finance.edit", query=TemplateScope,
          response=DocumentTemplate, summary="Back to the default template")
async def api_reset(request: web.Request) -> web.StreamResponse:
    """Deletes the partner's (or the operator-wide) template of ``kind``; the answer is the one used now."""
    kind = _kind(request.match_info["kind"])
    async with request.app[keys.POOL].acquire() as conn:
        partner_id = await _api_scope(request, conn)
        await _reset(conn, request, partner_id, kind)
        return schemas.json(_effective(await doc_templates_store.templates(conn, partner_id), partner_id, kind))


@AREA.api("POST", "/finance/document-templates/{kind}/preview", permission="finance.view", query=TemplateScope,
          body=DocumentTemplateIn, summary="Preview a document template (PDF)")
async def api_preview(request: web.Request) -> web.StreamResponse:
    """`application/pdf`: the sample document of ``kind`` rendered with ``body`` (nothing is saved), with
    the partner's branding; a template that fails is 422 with the error and its line."""
    kind = _kind(request.match_info["kind"])
    data = await schemas.body(request, DocumentTemplateIn)
    async with request.app[keys.POOL].acquire() as conn:
        partner_id = await _api_scope(request, conn)
        try:
            return _pdf(await _preview(conn, partner_id, kind, data.body), kind)
        except Refused as e:
            return _refused(e)
