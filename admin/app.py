"""The admin application: typed state, its resources, the middlewares, and every area's routes.

Areas are found, not listed: each package ``admin/<area>/`` with a ``routes.py`` that defines
``AREA`` (admin/web.py) joins, with its templates in ``admin/<area>/templates/``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
import asyncpg
import jinja2
from aiohttp import web

from admin import filters, idempotency, keys, pages, schemas
from admin.auth import middleware as auth
from admin.auth.apilog import ApiLog
from admin.portal import brand_cache
from admin.portal import pages as portal_pages
from admin.settings import AdminSettings
from admin.web import PERMISSIONS, PORTAL_PUBLIC, Area, Handler
from daemons import metrics
from daemons.secrets import Keyring

HERE = Path(__file__).parent


def areas() -> list[Area]:
    """Every area of the admin, in menu order."""
    found = []
    for info in pkgutil.iter_modules([str(HERE)]):
        if info.ispkg and (HERE / info.name / "routes.py").exists():
            module = importlib.import_module(f"admin.{info.name}.routes")
            found.append(module.AREA)
    return sorted(found, key=lambda a: (a.order, a.name))


class _CompiledTemplates(jinja2.BytecodeCache):
    """The templates' compiled code, kept for the process: an application made again (each test
    makes its own) loads a template in 0.2 ms instead of compiling it in 8 ms. A template's key
    holds its source's checksum, so an edited file compiles anew."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if (code := self._code.get(bucket.key)) is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_COMPILED = _CompiledTemplates()


def _loader(found: list[Area]) -> jinja2.FileSystemLoader:
    """The shared layout (admin/templates) and each area's templates (admin/<area>/templates/<area>/)."""
    return jinja2.FileSystemLoader([str(HERE / "templates")] + [
        str(HERE / a.name / "templates") for a in found if (HERE / a.name / "templates").is_dir()])


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors as the client reads them: problem JSON for the API, a page for people."""
    api = request.path.startswith("/api/")
    try:
        return await handler(request)
    except schemas.Invalid as e:
        if api:
            return schemas.problem(422, "invalid input", str(e), e.errors)
        return web.Response(status=422, text=str(e))
    except web.HTTPException as e:
        if e.status < 400 or request.path == "/metrics":
            raise
        if api:
            return schemas.problem(e.status, e.reason, e.text or "")
        if request.headers.get("HX-Request"):
            raise
        detail = e.text if e.text and not e.text.startswith(f"{e.status}:") else ""
        if request.path.startswith("/portal/"):  # the customer's: the brand's layout, not the admin's
            return portal_pages.render("portal/error.html", request, {
                "status": e.status, "reason": e.reason, "detail": detail}, status=e.status)
        return pages.render("error.html", request, {
            "status": e.status, "reason": e.reason, "detail": detail}, status=e.status)


async def root(request: web.Request) -> web.StreamResponse:
    """``/``: the admin, or the customer portal (``[admin] default_page``). Declared a portal page,
    so a customer on the internet reaches it (the admin's allow_from guards /admin itself)."""
    raise web.HTTPFound("/portal/" if request.app[keys.SETTINGS].default_page == "portal" else "/admin/")


PERMISSIONS[root] = PORTAL_PUBLIC


def create_app(settings: AdminSettings, keyring: Keyring, *, pool: asyncpg.Pool | None = None,
               make_pool: Callable[[], Awaitable[asyncpg.Pool]] | None = None) -> web.Application:
    """The application over ``pool`` (the caller's), or over one ``make_pool`` opens in the app's
    cleanup_ctx (and the app closes)."""
    app = web.Application(middlewares=[errors, auth.middleware, idempotency.middleware],
                          client_max_size=4 * 1024 * 1024)
    app[keys.SETTINGS] = settings
    app[keys.KEYRING] = keyring
    app[keys.NETWORKS] = keys.Networks(settings)
    app[pages.STATIC_URLS] = {}
    app[auth.KEY_CACHE] = auth.KeyCache()
    app[brand_cache.CACHE] = brand_cache.BrandCache()
    found = areas()
    app[keys.AREAS] = found
    aiohttp_jinja2.setup(app, loader=_loader(found), autoescape=True, undefined=jinja2.Undefined,
                         filters=filters.FILTERS, bytecode_cache=_COMPILED)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        owned = pool is None
        if pool is not None:
            app[keys.POOL] = pool
        else:
            assert make_pool is not None
            app[keys.POOL] = await make_pool()
        api_log = ApiLog(app[keys.POOL])
        app[keys.API_LOG] = api_log
        api_log.start()
        yield
        await api_log.close()
        if owned:
            await app[keys.POOL].close()

    app.cleanup_ctx.append(resources)
    app.on_response_prepare.append(auth.secure_headers)
    for area in found:
        area.register(app)
    app.router.add_get("/", root)
    app.router.add_static("/admin/static/", HERE / "static", name="static", append_version=True)
    metrics.add_route(app)
    return app
