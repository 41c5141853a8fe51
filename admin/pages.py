"""Rendering a page: the template with what every page shows (who is logged in, the menu it may
see, the CSRF token), autoescaped (aiohttp-jinja2's environment, admin/app.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from admin import keys

LOGIN_CSRF = web.RequestKey("login_csrf", str)
STATIC_URLS = web.AppKey("static_urls", dict)
"""A static file's URL with its version (a hash of the file): made once per file, not per page."""


def static_url(app: web.Application, name: str) -> str:
    urls: dict[str, str] = app[STATIC_URLS]
    if name not in urls:
        urls[name] = str(app.router["static"].url_for(filename=name))
    return urls[name]


def render(template: str, request: web.Request, context: Mapping[str, Any], *, status: int = 200) -> web.Response:
    who = request.get(keys.PRINCIPAL)
    nav = []
    if who is not None:
        for area in request.app[keys.AREAS]:
            items = [i for i in area.nav_items if who.can(i.permission)]
            if items:
                nav.append((area, items))
    common = {"me": who, "nav": nav, "csrf": who.csrf_token if who is not None else request.get(LOGIN_CSRF, ""),
              "path": request.path, "request": request,
              "static": lambda name: static_url(request.app, name)}
    return aiohttp_jinja2.render_template(template, request, {**common, **context}, status=status)
