"""Partners' branding (Finance → Settings → Branding): what a partner's documents show of it (its
company name, address, tax id, bank, contacts, logo, accent colour and footer), one page per
partner, with a preview: the sample invoice (admin/billing/render/samples.py) with the branding as
it is in the form, saved or not, as PDF, through the partner's own invoice template.

An administrator of one partner sees and edits only its partner's branding (another partner's is
"not found"); one limited to the customers it created edits none. The logo is an uploaded SVG,
taken only when it is a plain picture (admin/billing/render/logo.py says what is refused and why).
A change reaches the documents rendered from then on; a PDF already kept stays as it was.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, oplog_store, schemas
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.billing.render import logo, model, samples, templates
from admin.billing.render import pdf as renderer
from admin.finance import branding_store, common, doc_templates_store, pdf
from admin.finance.area import AREA
from admin.portal import brand_cache
from admin.web import path_id

_TEXT = r"^[^\x00]*$"
OneLine = Annotated[str, msgspec.Meta(max_length=200, pattern=_TEXT)]
Short = Annotated[str, msgspec.Meta(max_length=60, pattern=_TEXT)]
Lines = Annotated[str, msgspec.Meta(max_length=1000, pattern=_TEXT, description="lines as written, one a line")]
Footer = Annotated[str, msgspec.Meta(max_length=500, pattern=_TEXT)]
Color = Annotated[str, msgspec.Meta(pattern=r"^#[0-9a-fA-F]{6}$", description="#rrggbb")]
LogoSvg = Annotated[str, msgspec.Meta(max_length=logo.MAX_BYTES, description=(
    "the logo as SVG text: a plain picture (no script, event attribute, foreignObject, link, animation, "
    "reference out of the file, DTD or entity), at most 256 KiB"))]

DEFAULTS: dict[str, Any] = {"company_name": "", "address": "", "tax_id": "", "bank": "", "email": "", "phone": "",
                            "website": "", "logo_svg": None, "accent_color": "#1f6feb", "footer": ""}
TEXTS = ("company_name", "address", "tax_id", "bank", "email", "phone", "website", "footer")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class PartnerBrandingPatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The fields to change; ``logo_svg`` null removes the logo."""

    company_name: OneLine | msgspec.UnsetType = msgspec.UNSET
    address: Lines | msgspec.UnsetType = msgspec.UNSET
    tax_id: Short | msgspec.UnsetType = msgspec.UNSET
    bank: Lines | msgspec.UnsetType = msgspec.UNSET
    email: OneLine | msgspec.UnsetType = msgspec.UNSET
    phone: Short | msgspec.UnsetType = msgspec.UNSET
    website: OneLine | msgspec.UnsetType = msgspec.UNSET
    logo_svg: LogoSvg | msgspec.UnsetType | None = msgspec.UNSET
    accent_color: Color | msgspec.UnsetType = msgspec.UNSET
    footer: Footer | msgspec.UnsetType = msgspec.UNSET


class PartnerBranding(msgspec.Struct, kw_only=True):
    """A partner's branding; ``branded`` false: it has none yet (its documents show its name)."""

    partner_id: int
    partner: str
    branded: bool
    company_name: str
    address: str
    tax_id: str
    bank: str
    email: str
    phone: str
    website: str
    logo_svg: str | None
    accent_color: str
    footer: str
    updated_at: dt.datetime | None


def _values(row: common.Row) -> dict[str, Any]:
    """The branding's columns, the defaults where the partner has no row yet."""
    return {c: (row[c] if row["branded"] else DEFAULTS[c]) for c in branding_store.EDITABLE}


def _out(row: common.Row) -> PartnerBranding:
    return common.out(PartnerBranding, {**row, **_values(row)})


def _checked(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` as the row keeps them (texts trimmed, the logo checked); Invalid with every wrong field."""
    out = dict(values)
    errors: dict[str, str] = {}
    for name in TEXTS:
        out[name] = str(out[name]).strip().replace("\r\n", "\n")
        if "\x00" in out[name]:
            errors[name] = "has a NUL character"
    if out["email"] and not _EMAIL.fullmatch(out["email"]):
        errors["email"] = "is not an email address"
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", str(out["accent_color"])):
        errors["accent_color"] = "must be a colour as #rrggbb"
    if out["logo_svg"] is not None:
        try:
            out["logo_svg"] = logo.check(out["logo_svg"])
        except logo.LogoError as e:
            errors["logo"] = str(e)
    if errors:
        raise schemas.Invalid(errors)
    return out


def _logged(values: Mapping[str, Any]) -> dict[str, Any]:
    """The operations log's view of the columns: the logo as its size and digest, not its text."""
    out = dict(values)
    if "logo_svg" in out and out["logo_svg"] is not None:
        data = str(out["logo_svg"]).encode()
        out["logo_svg"] = f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}"
    return out


def _scoped(who: Principal, partner_id: int) -> None:
    if who.partner_id is not None and who.partner_id != partner_id:
        raise web.HTTPNotFound()


def _may_edit(who: Principal) -> bool:
    return who.can("finance.edit") and who.creator_id is None


async def _partner(conn: Connection, request: web.Request, partner_id: int, *, lock: bool = False) -> asyncpg.Record:
    _scoped(keys.principal(request), partner_id)
    row = await branding_store.branding(conn, partner_id, lock=lock)
    if row is None:
        raise web.HTTPNotFound()
    return row


async def _save(conn: Connection, request: web.Request, partner_id: int, changes: Mapping[str, Any]) -> None:
    who = keys.principal(request)
    if not _may_edit(who):
        raise web.HTTPForbidden(text="An administrator limited to the customers it created changes no branding.")
    try:
        async with conn.transaction():
            before = await _partner(conn, request, partner_id, lock=True)
            old = _values(before)
            new = _checked({**old, **changes})
            changed = [c for c in branding_store.EDITABLE if new[c] != old[c]]
            if not changed and before["branded"]:
                return
            await branding_store.save(conn, partner_id, new)
            await oplog_store.record(conn, who, keys.client_address(request), "update", "partner_branding",
                                     partner_id, partner_id=partner_id,
                                     summary=f"branding of {before['partner']}: changed "
                                             f"{', '.join(changed) or 'nothing'}",
                                     before=_logged({c: old[c] for c in changed}),
                                     after=_logged({c: new[c] for c in changed}))
            await brand_cache.notify(conn)  # the portal shows the logo, company name and accent
    except asyncpg.CheckViolationError:  # partner_branding_color_hex: _checked says it first
        raise schemas.Invalid({"accent_color": "must be a colour as #rrggbb"}) from None
    brand_cache.changed(request)


async def _preview(conn: Connection, row: common.Row, values: Mapping[str, Any]) -> bytes:
    """The sample invoice with the branding ``values`` and the partner's invoice template, as PDF."""
    brand = pdf.branding({"partner": row["partner"], **values})
    source = await doc_templates_store.effective(conn, row["partner_id"], "invoice")
    try:
        return await asyncio.to_thread(renderer.render_pdf, samples.document("invoice"), brand, source)
    except (renderer.RenderError, templates.TemplateError, model.ModelError) as e:
        raise schemas.Invalid({"": f"The preview cannot be made: {e}"}) from None


def _pdf(body: bytes, name: str) -> web.Response:
    return web.Response(body=body, content_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="{name}"'})


# -- pages ------------------------------------------------------------------------------------------

@AREA.page("/finance/branding", permission="finance.view")
async def branding_list(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await branding_store.partners(conn, who.partner_id)
    return common.render("finance/branding_list.html", request, {
        "rows": [{**r, "logo": model.Branding(company_name="x", logo_svg=r["logo_svg"]).logo_uri} for r in rows]})


def _render(request: web.Request, row: common.Row, *, values: Mapping[str, Any] | None = None,
            errors: Mapping[str, str] | None = None, status: int = 200) -> web.Response:
    shown = {**_values(row), **(values or {})}
    saved_logo = _values(row)["logo_svg"]
    return common.render("finance/branding.html", request, {
        "p": row, "b": shown, "errors": errors or {}, "done": request.query.get("done", ""),
        "logo": model.Branding(company_name="x", logo_svg=saved_logo).logo_uri if saved_logo else None,
        "max_kib": logo.MAX_BYTES // 1024, "may_edit": _may_edit(keys.principal(request))}, status=status)


@AREA.page("/finance/partners/{id}/branding", permission="finance.view")
async def branding_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await _partner(conn, request, path_id(request))
    return _render(request, row)


async def _form_changes(request: web.Request) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's values (an uploaded logo read, at most a byte over the limit), and the form's own errors."""
    form = await request.post()
    changes: dict[str, Any] = {name: str(form[name]) for name in (*TEXTS, "accent_color") if name in form}
    errors: dict[str, str] = {}
    upload = form.get("logo")
    if form.get("remove_logo"):
        changes["logo_svg"] = None
    elif isinstance(upload, web.FileField):
        data = upload.file.read(logo.MAX_BYTES + 1)
        if data:
            try:
                changes["logo_svg"] = logo.check(data)
            except logo.LogoError as e:
                errors["logo"] = f"{upload.filename}: {e}"
    return changes, errors


async def _submitted(request: web.Request, act: Callable[[Connection, asyncpg.Record, dict[str, Any]],
                                                        Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """The branding form posted: ``act(conn, partner, changes)`` answers; a refusal shows the form
    again (422) as it was filled in, with the errors."""
    partner_id = path_id(request)
    changes, errors = await _form_changes(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await _partner(conn, request, partner_id)
        try:
            if errors:
                raise schemas.Invalid(errors)
            return await act(conn, row, changes)
        except schemas.Invalid as e:
            return _render(request, row, values=changes, errors=e.errors, status=422)


@AREA.page("/finance/partners/{id}/branding", permission="finance.edit", method="POST")
async def save_form(request: web.Request) -> web.StreamResponse:
    async def save(conn: Connection, row: asyncpg.Record, changes: dict[str, Any]) -> web.StreamResponse:
        await _save(conn, request, row["partner_id"], changes)
        raise web.HTTPFound(f"/admin/finance/partners/{row['partner_id']}/branding?done=saved")
    return await _submitted(request, save)


@AREA.page("/finance/partners/{id}/branding/preview", permission="finance.view", method="POST")
async def preview_form(request: web.Request) -> web.StreamResponse:
    """The sample invoice with the form's branding, saved or not (a logo just chosen included)."""
    async def preview(conn: Connection, row: asyncpg.Record, changes: dict[str, Any]) -> web.StreamResponse:
        body = await _preview(conn, row, _checked({**_values(row), **changes}))
        return _pdf(body, f"branding-preview-{row['partner_id']}.pdf")
    return await _submitted(request, preview)


@AREA.page("/finance/partners/{id}/branding/preview", permission="finance.view")
async def preview_saved(request: web.Request) -> web.StreamResponse:
    """The sample invoice with the branding as saved."""
    partner_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await _partner(conn, request, partner_id)
        try:
            body = await _preview(conn, row, _values(row))
        except schemas.Invalid as e:
            raise web.HTTPServiceUnavailable(text=e.errors[""]) from None
    return _pdf(body, f"branding-preview-{partner_id}.pdf")


# -- the API ----------------------------------------------------------------------------------------

@AREA.api("GET", "/finance/branding", permission="finance.view", response=list[PartnerBranding],
          summary="Partners' branding")
async def api_list(request: web.Request) -> web.StreamResponse:
    """Every partner the key sees, with its branding (a partner's key: its own)."""
    async with request.app[keys.POOL].acquire() as conn:
        rows = await branding_store.partners(conn, keys.principal(request).partner_id)
    return schemas.json([_out(r) for r in rows])


@AREA.api("GET", "/finance/partners/{id}/branding", permission="finance.view", response=PartnerBranding,
          summary="A partner's branding")
async def api_get(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(_out(await _partner(conn, request, path_id(request))))


@AREA.api("PATCH", "/finance/partners/{id}/branding", permission="finance.edit", body=PartnerBrandingPatch,
          response=PartnerBranding, summary="Change a partner's branding")
async def api_update(request: web.Request) -> web.StreamResponse:
    """Only the fields given change. A logo that is not a plain SVG picture is refused (422, ``errors.logo``
    says why). The documents rendered from then on show it; the PDFs kept stay as they were."""
    partner_id = path_id(request)
    patch = await schemas.body(request, PartnerBrandingPatch)
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    async with request.app[keys.POOL].acquire() as conn:
        await _save(conn, request, partner_id, changes)
        return schemas.json(_out(await _partner(conn, request, partner_id)))


@AREA.api("GET", "/finance/partners/{id}/branding/preview", permission="finance.view",
          summary="A partner's branding on the sample invoice (PDF)")
async def api_preview(request: web.Request) -> web.StreamResponse:
    """`application/pdf`: the sample invoice with the partner's saved branding and its invoice template."""
    return await preview_saved(request)
