"""The brand's files: the web app manifest (``/portal/manifest.webmanifest``: a phone's "add to
home screen" shows the brand's name, colours and logo), the brand's stylesheet
(``/portal/brand.css``: its colours and custom CSS, a file because the CSP forbids inline styles),
its logo (``/portal/logo.svg``) and the portal's static files (``/portal/static/portal*.css``:
served here, not under /admin/static, which the admin's allow_from guards).

Each URL carries a hash of what it serves (``?v=``), so it is cached for a year and a change is
fetched anew; the brand is the host's, so two partners' portals never share a cached copy.
"""

from __future__ import annotations

import re

import msgspec
from aiohttp import web

from admin.portal import auth, pages
from admin.portal.brand import Brand
from admin.portal.common import AREA
from admin.web import PORTAL_PUBLIC

_STATIC_NAME = re.compile(r"portal[a-z0-9-]*\.(css|js|svg)")
_TYPES = {"css": "text/css", "js": "text/javascript", "svg": "image/svg+xml"}
YEAR = "public, max-age=31536000, immutable"
LOGO_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def _cache(request: web.Request, response: web.StreamResponse, version: str) -> None:
    """Cached for a year when asked for by its version, else revalidated (a stale link)."""
    if request.query.get("v") == version:
        response.headers["Cache-Control"] = YEAR
    else:
        response.headers["Cache-Control"] = "no-cache"
    response.headers["Vary"] = "Host"


def stylesheet(brand: Brand) -> str:
    """The brand's colours as the portal stylesheet's custom properties, then its own CSS."""
    css = (":root {\n"
           f"  --accent: {brand.accent_color};\n"
           f"  --bg: {brand.background_color};\n"
           f"  --text: {brand.text_color};\n"
           "}\n")
    if brand.custom_css.strip():
        css += "\n/* the brand's own CSS */\n" + brand.custom_css.strip() + "\n"
    return css


def manifest(brand: Brand, version: str) -> dict[str, object]:
    """The web app manifest of ``brand`` (W3C Web Application Manifest)."""
    name = brand.name or "Customer portal"
    doc: dict[str, object] = {
        "name": name, "short_name": name[:12], "start_url": "/portal/", "scope": "/portal/",
        "display": "standalone", "theme_color": brand.accent_color, "background_color": brand.background_color,
    }
    doc["icons"] = [{"src": f"/portal/logo.svg?v={version}", "sizes": "any", "type": "image/svg+xml"}] \
        if brand.logo_svg else []
    return doc


@AREA.portal("/brand.css", access=PORTAL_PUBLIC)
async def brand_css(request: web.Request) -> web.StreamResponse:
    brand = auth.brand(request)
    response = web.Response(text=stylesheet(brand), content_type="text/css")
    _cache(request, response, pages.brand_version(brand))
    return response


@AREA.portal("/manifest.webmanifest", access=PORTAL_PUBLIC)
async def web_manifest(request: web.Request) -> web.StreamResponse:
    brand = auth.brand(request)
    version = pages.brand_version(brand)
    response = web.Response(body=msgspec.json.encode(manifest(brand, version)),
                            content_type="application/manifest+json")
    _cache(request, response, version)
    return response


@AREA.portal("/logo.svg", access=PORTAL_PUBLIC)
async def logo(request: web.Request) -> web.StreamResponse:
    """The partner's logo (made safe when it was saved: admin/billing/render/svg_logo.py); served
    under a CSP of its own all the same, so a script in it would never run."""
    brand = auth.brand(request)
    if not brand.logo_svg:
        raise web.HTTPNotFound()
    response = web.Response(text=brand.logo_svg, content_type="image/svg+xml")
    response.headers["Content-Security-Policy"] = LOGO_CSP
    _cache(request, response, pages.brand_version(brand))
    return response


@AREA.portal("/static/{name}", access=PORTAL_PUBLIC)
async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if not _STATIC_NAME.fullmatch(name) or not (pages.STATIC / name).is_file():
        raise web.HTTPNotFound()
    response = web.Response(body=(pages.STATIC / name).read_bytes(), content_type=_TYPES[name.rsplit(".", 1)[1]])
    if response.content_type.startswith("text/"):
        response.charset = "utf-8"
    _cache(request, response, pages.static_version(name))
    return response
