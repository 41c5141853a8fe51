"""Portal → Brands: each partner's white label for the customer portal (admin/portal/brand.py
Brand): its name, colours, custom CSS, header and footer texts, the menu and dashboard items shown,
what a customer may see or change of its own details; and the host names its portal answers on.

**Draft, preview, publish.** Saving writes the brand's draft (``portal_brands.draft``): the portal
goes on showing what is published until "Publish" copies the draft over it (``published_at``,
``updated_by``). The preview is a sample portal page with the draft's colours, texts, menu and CSS
(a page of its own, not the portal: it needs no customer), marked "Preview".

**Custom CSS** is appended to the portal's stylesheet (/portal/brand.css, a file: the CSP forbids
inline styles), at most 20 KB; refused (saying why): ``</style``, an ``@import`` or ``url()`` of
another host (only ``data:`` URLs and paths of the portal's own host), after comments and CSS
escapes are read as the browser reads them. The logo is the partner's document logo (Finance →
Branding), not kept here.

**Host names** are lower case, without a scheme or path (a port may follow), each one partner's:
another partner's host name is refused, by name for the operator's administrators, as "another
partner's" for a partner's own (which sees nothing of other partners).

config.view sees, config.edit changes; a partner's administrator sees and changes only its own
partner's brand (another's is 404). Every change is a line in the operations log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from typing import Annotated, Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, oplog_store, pages, schemas
from admin.auth.store import Connection
from admin.billing.render import model
from admin.portal import brand as brands
from admin.portal import brand_cache, brands_store, manifest
from admin.portal.brand import DASHBOARD, FIELDS, MENU, Access, Brand, Color
from admin.portal.common import AREA
from admin.portal.pages import MENU_URLS
from admin.web import path_id

CSS_MAX = 20 * 1024
Row = Mapping[str, Any] | asyncpg.Record
HOST_RULE = ("must be a host name in lower case letters, digits, dots and hyphens (no scheme, no path), "
             "a port after a colon if any: portal.example.net")
_HOST = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?")
_TEXT = r"^[^\x00]*$"
Name = Annotated[str, msgspec.Meta(max_length=100, pattern=_TEXT)]
Texts = Annotated[str, msgspec.Meta(max_length=500, pattern=_TEXT)]
Css = Annotated[str, msgspec.Meta(description=(
    "appended to the portal's stylesheet, at most 20 KB: no </style, no @import or url() of another host "
    "(data: URLs and the portal's own paths only)"))]
Host = Annotated[str, msgspec.Meta(min_length=1, max_length=260, description=HOST_RULE)]
LABELS = {"dashboard": "Overview", "finance": "Finance", "services": "Services", "usage": "Usage",
          "equipment": "Equipment", "support": "Support", "profile": "Profile",
          "balance": "Balance", "invoices": "Open invoices", "next_invoice": "Next invoice", "online": "Online now",
          "traffic": "Traffic", "messages": "Messages", "tickets": "Tickets",
          "name": "Name", "email": "Email", "billing_email": "Billing email", "phone": "Phone", "street": "Street",
          "city": "City", "zip": "Postcode"}


class BrandFields(msgspec.Struct, kw_only=True):
    """A brand as stored (the logo apart: the partner's document logo). ``name`` empty: the
    partner's company name. ``menu``/``dashboard``: the items shown, of the portal's
    (the overview always shows); ``fields``: per contact field, hidden, view or edit."""

    name: Name = ""
    accent_color: Color = "#1f6feb"
    background_color: Color = "#f5f6f8"
    text_color: Color = "#1b1f24"
    custom_css: Css = ""
    header_text: Texts = ""
    footer_text: Texts = ""
    menu: list[str] = msgspec.field(default_factory=lambda: list(MENU))
    dashboard: list[str] = msgspec.field(default_factory=lambda: list(DASHBOARD))
    fields: dict[str, Access] = msgspec.field(default_factory=lambda: dict(brands.DEFAULT_ACCESS))


class PortalBrand(msgspec.Struct, kw_only=True):
    """A partner's portal brand: what is published, the draft (``unpublished``: it differs), its host names."""

    partner_id: int
    partner: str
    published: BrandFields
    draft: BrandFields
    unpublished: bool
    published_at: dt.datetime | None
    updated_by: str
    updated_at: dt.datetime | None
    hosts: list[str]


class HostIn(msgspec.Struct, kw_only=True):
    host: Host


class PortalHost(msgspec.Struct, kw_only=True):
    host: str
    partner_id: int


# -- checks -----------------------------------------------------------------------------------------

_COMMENT = re.compile(r"/\*.*?(\*/|\Z)", re.S)
_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})[ \t\n\r\f]?|\\(.)", re.S)
_IMPORT = re.compile(r"@import\s*(?:url\(\s*)?([\"']?)([^\"')\s;]*)", re.I)
_URL = re.compile(r"\burl\(\s*([\"']?)([^\"')\s]*)", re.I)
_IMAGE_SET = re.compile(r"image-set\(([^)]*)", re.I)
_STRING = re.compile(r"[\"']([^\"']*)[\"']")
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):", re.I)


def _unescaped(css: str) -> str:
    """``css`` as the browser reads it: comments gone, escapes (``\\69mport``) as their characters."""
    def char(m: re.Match[str]) -> str:
        if m.group(1):
            code = int(m.group(1), 16)
            return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"
        return m.group(2)
    return _ESCAPE.sub(char, _COMMENT.sub(" ", css))


def _foreign(target: str) -> bool:
    """Whether a URL points out of the portal's own host (``data:`` and paths stay in)."""
    target = target.strip()
    if target.startswith(("//", "\\\\")):
        return True
    scheme = _SCHEME.match(target)
    return scheme is not None and scheme.group(1).lower() != "data"


def css_problem(css: str) -> str | None:
    """Why ``css`` is refused as a brand's custom CSS, or None."""
    size = len(css.encode())
    if size > CSS_MAX:
        return f"is {size / 1024:.1f} KB: at most {CSS_MAX // 1024} KB"
    if "\x00" in css:
        return "has a NUL character"
    plain = _unescaped(css)
    if "</style" in plain.lower() or "<style" in plain.lower():
        return "must not contain </style or <style: it is CSS, not HTML (it would end the portal's stylesheet)"
    for m in _IMPORT.finditer(plain):
        if _foreign(m.group(2)) or not m.group(2):
            return (f"@import of {m.group(2) or 'an address'} is refused: the portal loads nothing from another host "
                    "(its CSP forbids it, and the brand's CSS would depend on a site you do not control); "
                    "put the rules here instead")
    for m in _URL.finditer(plain):
        if _foreign(m.group(2)):
            return (f"url({m.group(2)}) is refused: only data: URLs and the portal's own paths are allowed "
                    "(a picture from another host would be blocked by the portal's CSP and tell that host who "
                    "looks at the portal)")
    for m in _IMAGE_SET.finditer(plain):
        for s in _STRING.finditer(m.group(1)):
            if _foreign(s.group(1)):
                return f"image-set(\"{s.group(1)}\") is refused: only data: URLs and the portal's own paths"
    return None


def checked(fields: BrandFields) -> Brand:
    """``fields`` as a Brand, or schemas.Invalid with every wrong field (by its form name)."""
    errors: dict[str, str] = {}
    if why := css_problem(fields.custom_css):
        errors["custom_css"] = why
    for name in ("accent_color", "background_color", "text_color"):
        if not brands.is_color(getattr(fields, name)):
            errors[name] = "must be a colour as #rrggbb"
    if bad := [m for m in fields.menu if m not in MENU]:
        errors["menu"] = f"no such section: {', '.join(bad)} (the sections are {', '.join(MENU)})"
    if bad := [d for d in fields.dashboard if d not in DASHBOARD]:
        errors["dashboard"] = f"no such item: {', '.join(bad)} (the items are {', '.join(DASHBOARD)})"
    if bad := [f for f in fields.fields if f not in FIELDS]:
        errors["fields"] = f"no such field: {', '.join(bad)} (the fields are {', '.join(FIELDS)})"
    if errors:
        raise schemas.Invalid(errors)
    return brands.decode({**msgspec.to_builtins(fields), "name": fields.name.strip(),
                          "header_text": fields.header_text.strip(), "footer_text": fields.footer_text.strip()})


def _fields(brand: Brand) -> BrandFields:
    stored = brands.encode(brand)
    return msgspec.convert(stored, BrandFields)


def host_of(text: str) -> str:
    """A host name as portal_hosts keeps it (lower case, no trailing dot); schemas.Invalid if it is none."""
    host = text.strip().lower().rstrip(".")
    if not _HOST.fullmatch(host) or ".." in host:
        raise schemas.Invalid({"host": HOST_RULE})
    return host


# -- the brand's rows -------------------------------------------------------------------------------

async def _partner(conn: Connection, request: web.Request, partner_id: int, *, lock: bool = False) -> asyncpg.Record:
    """The partner (404 when there is none, or it is another partner's administrator asking)."""
    who = keys.principal(request)
    if who.partner_id is not None and who.partner_id != partner_id:
        raise web.HTTPNotFound()
    row = await brands_store.partner(conn, partner_id, lock=lock)
    if row is None:
        raise web.HTTPNotFound()
    return row


def _states(row: Row) -> tuple[Brand, Brand]:
    """(published, draft) as stored (no logo; the name empty stays empty), the accent colour the
    documents' while the brand has none of its own (as brands_store.brand_of shows it)."""
    def decoded(stored: Any) -> Brand:
        stored = dict(stored or {})
        if "accent_color" not in stored and row["doc_accent"]:
            stored["accent_color"] = row["doc_accent"]
        return brands.decode(stored)
    published = decoded(row["published"])
    draft = decoded(row["draft"]) if row["draft"] is not None else published
    return published, draft


def _out(row: Row) -> PortalBrand:
    published, draft = _states(row)
    return PortalBrand(partner_id=row["partner_id"], partner=row["partner"], published=_fields(published),
                       draft=_fields(draft), unpublished=brands.encode(published) != brands.encode(draft),
                       published_at=row["published_at"], updated_by=row["updated_by"] or "",
                       updated_at=row["updated_at"], hosts=list(row["hosts"]))


def _logged(values: Mapping[str, Any]) -> dict[str, Any]:
    """The operations log's view of brand fields: custom CSS as its size and digest."""
    out = dict(values)
    if out.get("custom_css"):
        data = str(out["custom_css"]).encode()
        out["custom_css"] = f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}"
    return out


async def _log(conn: Connection, request: web.Request, action: str, partner_id: int, summary: str, *,
               before: Any = None, after: Any = None) -> None:
    await oplog_store.record(conn, keys.principal(request), keys.client_address(request), action, "portal_brand",
                             partner_id, partner_id=partner_id, summary=summary, before=before, after=after)


async def save_draft(conn: Connection, request: web.Request, partner_id: int, fields: BrandFields) -> asyncpg.Record:
    """The draft is ``fields`` (checked); the portal shows it once published."""
    brand = checked(fields)
    async with conn.transaction():
        row = await _partner(conn, request, partner_id, lock=True)
        _, old = _states(row)
        before, after = brands.encode(old), brands.encode(brand)
        changed = [k for k in after if after[k] != before.get(k)]
        if changed or row["draft"] is None:
            await brands_store.save_draft(conn, partner_id, after, keys.principal(request).name)
            await _log(conn, request, "update", partner_id,
                       f"portal brand of {row['partner']}: draft saved (changed {', '.join(changed) or 'nothing'})",
                       before=_logged({k: before.get(k) for k in changed}),
                       after=_logged({k: after[k] for k in changed}))
        found = await brands_store.partner(conn, partner_id)
        assert found is not None
        return found


async def publish(conn: Connection, request: web.Request, partner_id: int) -> asyncpg.Record:
    """The draft becomes what the portal shows; 409 when there is no draft to publish."""
    async with conn.transaction():
        row = await _partner(conn, request, partner_id, lock=True)
        if row["draft"] is None:
            raise web.HTTPConflict(text="There is no draft to publish: save the brand first.")
        published, draft = _states(row)
        before, after = brands.encode(published), brands.encode(draft)
        changed = [k for k in after if after[k] != before.get(k)]
        await brands_store.publish(conn, partner_id, keys.principal(request).name)
        await _log(conn, request, "publish", partner_id,
                   f"portal brand of {row['partner']}: published (changed {', '.join(changed) or 'nothing'})",
                   before=_logged({k: before.get(k) for k in changed}), after=_logged({k: after[k] for k in changed}))
        await brand_cache.notify(conn)
        found = await brands_store.partner(conn, partner_id)
    brand_cache.changed(request)
    assert found is not None
    return found


async def add_host(conn: Connection, request: web.Request, partner_id: int, text: str) -> str:
    """``text`` (made a host name) for the partner's portal; schemas.Invalid when it is not one or
    another partner has it (named only to the operator's administrators)."""
    host = host_of(text)
    async with conn.transaction():
        row = await _partner(conn, request, partner_id, lock=True)
        owner = await brands_store.host_owner(conn, host)
        if owner is not None and owner["id"] == partner_id:
            return host
        if owner is not None or not await brands_store.add_host(conn, host, partner_id):
            whose = "another partner's" if owner is None or keys.principal(request).partner_id is not None else \
                f"{owner['name']}'s"
            raise schemas.Invalid({"host": f"{host} is {whose} portal already: a host name shows one partner's "
                                           "portal (remove it there first)"})
        await _log(conn, request, "create", partner_id, f"portal host {host} added for {row['partner']}",
                   after={"host": host})
        await brand_cache.notify(conn)
    brand_cache.changed(request)
    return host


async def remove_host(conn: Connection, request: web.Request, partner_id: int, host: str) -> None:
    """Remove the partner's host name (404 when it has no such one)."""
    async with conn.transaction():
        row = await _partner(conn, request, partner_id, lock=True)
        if not await brands_store.remove_host(conn, host.strip().lower(), partner_id):
            raise web.HTTPNotFound(text=f"{row['partner']} has no host name {host}")
        await _log(conn, request, "delete", partner_id, f"portal host {host} removed from {row['partner']}",
                   before={"host": host})
        await brand_cache.notify(conn)
    brand_cache.changed(request)


# -- pages ------------------------------------------------------------------------------------------

@AREA.page("/portal/brands", permission="config.view")
async def brands_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        rows = await brands_store.partners(conn, keys.principal(request).partner_id)
    return pages.render("portal/admin_brands.html", request, {"rows": [_out(r) for r in rows],
                                                              "logos": {r["partner_id"]: r["has_logo"] for r in rows}})


def _form_fields(form: Mapping[str, Any]) -> tuple[dict[str, Any], BrandFields | None, dict[str, str]]:
    """The editor's values (as typed, to show again), them as BrandFields, and the form's errors."""
    getall = getattr(form, "getall", lambda name, default: [form[name]] if name in form else default)
    values: dict[str, Any] = {k: str(form.get(k, "")) for k in ("name", "accent_color", "background_color",
                                                               "text_color", "custom_css", "header_text",
                                                               "footer_text")}
    values["custom_css"] = values["custom_css"].replace("\r\n", "\n")
    values["menu"] = ["dashboard", *(m for m in getall("menu", []) if m != "dashboard")]
    values["dashboard"] = list(getall("dashboard", []))
    values["fields"] = {f: str(form.get(f"field_{f}", brands.DEFAULT_ACCESS[f])) for f in FIELDS}
    errors: dict[str, str] = {}
    for name, value in values.items():
        try:
            msgspec.convert({name: value}, BrandFields)
        except msgspec.ValidationError as e:
            errors[name] = str(e).split(" - at ")[0]
    for name in ("accent_color", "background_color", "text_color"):
        if name in errors:
            errors[name] = "must be a colour as #rrggbb"
    if errors:
        return values, None, errors
    return values, msgspec.convert(values, BrandFields), {}


def _editor(request: web.Request, row: Row, *, values: Mapping[str, Any] | None = None,
            errors: Mapping[str, str] | None = None, status: int = 200) -> web.Response:
    out = _out(row)
    shown = dict(values) if values is not None else msgspec.to_builtins(out.draft)
    return pages.render("portal/admin_brand.html", request, {
        "p": out, "b": shown, "errors": errors or {}, "done": request.query.get("done", ""),
        "has_logo": row["has_logo"], "menu_items": MENU, "dashboard_items": DASHBOARD, "field_items": FIELDS,
        "labels": LABELS, "css_kib": CSS_MAX // 1024,
        "may_edit": keys.principal(request).can("config.edit")}, status=status)


@AREA.page("/portal/brands/{partner_id}", permission="config.view")
async def brand_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await _partner(conn, request, path_id(request, "partner_id"))
    return _editor(request, row)


@AREA.page("/portal/brands/{partner_id}", permission="config.edit", method="POST")
async def brand_save(request: web.Request) -> web.StreamResponse:
    """Save the editor's values as the draft (the portal is unchanged until published)."""
    partner_id = path_id(request, "partner_id")
    values, fields, errors = _form_fields(await request.post())
    async with request.app[keys.POOL].acquire() as conn:
        row = await _partner(conn, request, partner_id)
        try:
            if fields is None:
                raise schemas.Invalid(errors)
            await save_draft(conn, request, partner_id, fields)
        except schemas.Invalid as e:
            return _editor(request, row, values=values, errors=e.errors, status=422)
    raise web.HTTPFound(f"/admin/portal/brands/{partner_id}?done=saved")


@AREA.page("/portal/brands/{partner_id}/publish", permission="config.edit", method="POST")
async def brand_publish(request: web.Request) -> web.StreamResponse:
    partner_id = path_id(request, "partner_id")
    async with request.app[keys.POOL].acquire() as conn:
        try:
            await publish(conn, request, partner_id)
        except web.HTTPConflict as e:
            return _editor(request, await _partner(conn, request, partner_id), errors={"": e.text or ""},
                           status=409)
    raise web.HTTPFound(f"/admin/portal/brands/{partner_id}?done=published")


@AREA.page("/portal/brands/{partner_id}/hosts", permission="config.edit", method="POST")
async def host_add_form(request: web.Request) -> web.StreamResponse:
    partner_id = path_id(request, "partner_id")
    form = await request.post()
    async with request.app[keys.POOL].acquire() as conn:
        try:
            await add_host(conn, request, partner_id, str(form.get("host", "")))
        except schemas.Invalid as e:
            return _editor(request, await _partner(conn, request, partner_id), errors=e.errors, status=422)
    raise web.HTTPFound(f"/admin/portal/brands/{partner_id}?done=host_added#hosts")


@AREA.page("/portal/brands/{partner_id}/hosts/delete", permission="config.edit", method="POST")
async def host_remove_form(request: web.Request) -> web.StreamResponse:
    partner_id = path_id(request, "partner_id")
    form = await request.post()
    async with request.app[keys.POOL].acquire() as conn:
        await remove_host(conn, request, partner_id, str(form.get("host", "")))
    raise web.HTTPFound(f"/admin/portal/brands/{partner_id}?done=host_removed#hosts")


async def _preview_brand(request: web.Request) -> tuple[asyncpg.Record, Brand, bool]:
    """The partner, the brand to preview (the draft; ``?published=1``: what is published), as the
    portal resolves it (the partner's name and logo where the brand has none), and which it is."""
    partner_id = path_id(request, "partner_id")
    published = request.query.get("published") == "1"
    async with request.app[keys.POOL].acquire() as conn:
        row = await _partner(conn, request, partner_id)
        brand = await brands_store.brand_of(conn, partner_id, draft=not published)
    return row, brand, published


@AREA.page("/portal/brands/{partner_id}/preview", permission="config.view")
async def brand_preview(request: web.Request) -> web.StreamResponse:
    """A sample portal page with the draft brand (its colours through preview.css: the CSP forbids inline styles)."""
    row, brand, published = await _preview_brand(request)
    logo = model.Branding(company_name="x", logo_svg=brand.logo_svg).logo_uri if brand.logo_svg else None
    menu = [(key, MENU_URLS[key][0], i == 0) for i, key in enumerate(brand.menu)]
    return pages.render("portal/admin_preview.html", request, {
        "partner": row, "brand": brand, "logo": logo, "menu": menu, "labels": LABELS, "published": published,
        "css": f"/admin/portal/brands/{row['partner_id']}/preview.css" + ("?published=1" if published else "")})


@AREA.page("/portal/brands/{partner_id}/preview.css", permission="config.view")
async def brand_preview_css(request: web.Request) -> web.StreamResponse:
    """The preview's stylesheet: the brand's colours and custom CSS, as /portal/brand.css serves them."""
    _, brand, _ = await _preview_brand(request)
    return web.Response(text=manifest.stylesheet(brand), content_type="text/css")


# -- the API ----------------------------------------------------------------------------------------

@AREA.api("GET", "/portal/brands", permission="config.view", response=list[PortalBrand],
          summary="Partners' portal brands")
async def api_brands(request: web.Request) -> web.StreamResponse:
    """Every partner the key sees (a partner's key: its own) with its brand, published and draft."""
    async with request.app[keys.POOL].acquire() as conn:
        rows = await brands_store.partners(conn, keys.principal(request).partner_id)
    return schemas.json([_out(r) for r in rows])


@AREA.api("GET", "/portal/brands/{partner_id}", permission="config.view", response=PortalBrand,
          summary="A partner's portal brand")
async def api_brand(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(_out(await _partner(conn, request, path_id(request, "partner_id"))))


@AREA.api("PUT", "/portal/brands/{partner_id}", permission="config.edit", body=BrandFields, response=PortalBrand,
          summary="Save a partner's portal brand as its draft")
async def api_save(request: web.Request) -> web.StreamResponse:
    """The draft becomes the body (a field left out: its default). The portal shows it once
    published (``POST .../publish``). Custom CSS with ``</style``, or an ``@import`` or ``url()`` of
    another host, is refused (422, ``errors.custom_css`` says why)."""
    partner_id = path_id(request, "partner_id")
    fields = await schemas.body(request, BrandFields)
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(_out(await save_draft(conn, request, partner_id, fields)))


@AREA.api("POST", "/portal/brands/{partner_id}/publish", permission="config.edit", response=PortalBrand,
          summary="Publish a partner's portal brand")
async def api_publish(request: web.Request) -> web.StreamResponse:
    """The draft becomes what the partner's portal shows (409 when there is no draft)."""
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(_out(await publish(conn, request, path_id(request, "partner_id"))))


@AREA.api("GET", "/portal/brands/{partner_id}/hosts", permission="config.view", response=list[PortalHost],
          summary="The host names of a partner's portal")
async def api_hosts(request: web.Request) -> web.StreamResponse:
    partner_id = path_id(request, "partner_id")
    async with request.app[keys.POOL].acquire() as conn:
        row = await _partner(conn, request, partner_id)
    return schemas.json([PortalHost(host=h, partner_id=partner_id) for h in row["hosts"]])


@AREA.api("POST", "/portal/brands/{partner_id}/hosts", permission="config.edit", body=HostIn, response=PortalHost,
          status=201, summary="Add a host name to a partner's portal")
async def api_add_host(request: web.Request) -> web.StreamResponse:
    """The portal answers on it with this partner's brand and customers. Another partner's host name
    is refused (422, ``errors.host``)."""
    partner_id = path_id(request, "partner_id")
    data = await schemas.body(request, HostIn)
    async with request.app[keys.POOL].acquire() as conn:
        host = await add_host(conn, request, partner_id, data.host)
    return schemas.json(PortalHost(host=host, partner_id=partner_id), status=201)


@AREA.api("DELETE", "/portal/brands/{partner_id}/hosts/{host}", permission="config.edit", response=PortalHost,
          summary="Remove a host name from a partner's portal")
async def api_remove_host(request: web.Request) -> web.StreamResponse:
    partner_id = path_id(request, "partner_id")
    host = request.match_info["host"]
    async with request.app[keys.POOL].acquire() as conn:
        await remove_host(conn, request, partner_id, host)
    return schemas.json(PortalHost(host=host.strip().lower(), partner_id=partner_id))
