"""The dashboard: what the network and the customers look like now; each figure opens its list."""

from __future__ import annotations

from aiohttp import web

from admin import keys, pages
from admin.dashboard import queries
from admin.web import Area

AREA = Area("dashboard", "Overview", nav=[("Dashboard", "/", "dashboard.view")], order=0)


@AREA.page("/", permission="dashboard.view")
async def dashboard(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn:
        figures = await queries.figures(conn, who.partner_id, who.creator_id)
    return pages.render("dashboard/dashboard.html", request, {"f": figures})


@AREA.page("", permission="dashboard.view")
async def root(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/admin/")
