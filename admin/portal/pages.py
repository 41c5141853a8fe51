"""Rendering a portal page: the template (extending ``portal/base.html``) with what every portal
page shows: the brand of the host, the customer logged in (or None), the CSRF token, the menu of
the brand's sections that exist, the static files' versioned URLs.

A page of another module::

    from admin.portal import pages

    @AREA.portal("/finance")
    async def finance(request: web.Request) -> web.StreamResponse:
        return pages.render("portal/finance.html", request, {"invoices": ...})

``portal/base.html`` has the blocks ``title``, ``head`` (extra stylesheets:
``<link rel="stylesheet" href="{{ static('portal-finance.css') }}">``, a file
``admin/static/portal-*.css``) and ``content``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import msgspec
from aiohttp import web

from admin.portal import auth
from admin.portal.brand import Brand
from admin.portal.common import CUSTOMER

STATIC = Path(__file__).resolve().parents[1] / "static"
MENU_URLS: dict[str, tuple[str, str]] = {
    "dashboard": ("Overview", "/portal/"),
    "finance": ("Finance", "/portal/finance"),
    "services": ("Services", "/portal/services"),
    "usage": ("Usage", "/portal/usage"),
    "equipment": ("Equipment", "/portal/equipment"),
    "support": ("Support", "/portal/tickets"),
    "profile": ("Profile", "/portal/profile"),
}
"""The brand's sections (admin/portal/brand.py MENU) -> their label and page."""

LOGIN_CSRF = web.RequestKey("portal_login_csrf", str)
"""The login forms' CSRF token (before there is a session), set by the page that shows them."""

_versions: dict[str, tuple[float, str]] = {}


def static_version(name: str) -> str:
    """A hash of ``admin/static/<name>`` (made again when the file changes)."""
    path = STATIC / name
    mtime = path.stat().st_mtime
    found = _versions.get(name)
    if found is None or found[0] != mtime:
        found = (mtime, hashlib.sha256(path.read_bytes()).hexdigest()[:12])
        _versions[name] = found
    return found[1]


def static_url(name: str) -> str:
    """The URL of a portal static file (``admin/static/portal*.css``, served by the portal itself:
    not under /admin/static, which the admin's allow_from guards)."""
    return f"/portal/static/{name}?v={static_version(name)}"


def brand_version(brand: Brand) -> str:
    """A hash of the brand: in the URLs of its stylesheet and manifest, so a change is fetched anew."""
    return hashlib.sha256(msgspec.json.encode(brand)).hexdigest()[:12]


def _routes(app: web.Application) -> set[str]:
    return {r.canonical for r in app.router.resources()}


def menu(request: web.Request, brand: Brand) -> list[tuple[str, str, str, bool]]:
    """(key, label, url, active) of the brand's sections whose page exists (another module's, not
    built yet: left out). Active: the page is this one or under it."""
    routes = _routes(request.app)
    out = []
    for key in brand.menu:
        label, url = MENU_URLS[key]
        if url not in routes:
            continue
        active = request.path == url or (url != "/portal/" and request.path.startswith(url + "/"))
        out.append((key, label, url, active))
    return out


def render(template: str, request: web.Request, context: Mapping[str, Any], status: int = 200) -> web.Response:
    me = request.get(CUSTOMER)
    pending = request.get(auth.PENDING)
    brand = request.get(auth.BRAND) or Brand()
    csrf = me.csrf_token if me is not None else pending.csrf_token if pending is not None else \
        request.get(LOGIN_CSRF, "")
    version = brand_version(brand)
    common = {"brand": brand, "me": me, "csrf": csrf, "menu": menu(request, brand) if me is not None else [],
              "path": request.path, "request": request, "static": static_url,
              "brand_css": f"/portal/brand.css?v={version}", "manifest": f"/portal/manifest.webmanifest?v={version}",
              "logo": f"/portal/logo.svg?v={version}" if brand.logo_svg else ""}
    return aiohttp_jinja2.render_template(template, request, {**common, **context}, status=status)
