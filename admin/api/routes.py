"""``/api/v1/openapi.json`` (the document) and ``/api/v1/docs`` (the same, for people)."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from markupsafe import Markup, escape

from admin import keys, openapi, pages, schemas
from admin.web import PUBLIC, Area
from daemons import __version__

AREA = Area("api", "API", order=98)


DOCUMENT = web.AppKey("openapi_document", dict)


async def _make_document(app: web.Application) -> None:
    app[DOCUMENT] = openapi.document(app[keys.AREAS], __version__)


AREA.startup.append(_make_document)


def document_of(app: web.Application) -> dict[str, Any]:
    """The application's document, made at its start (the areas do not change while it runs)."""
    return app[DOCUMENT]


@AREA.api("GET", "/openapi.json", permission=PUBLIC, summary="This document (OpenAPI 3.1)")
async def openapi_json(request: web.Request) -> web.StreamResponse:
    return schemas.json(document_of(request.app))


def _type_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[1]
    if "anyOf" in schema:
        return " | ".join(_type_name(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_type_name(schema.get('items', {}))}"
    if "enum" in schema:
        return " | ".join(map(str, schema["enum"]))
    return str(schema.get("type", "any"))


def _code(text: str) -> Markup:
    """Prose of the document, escaped, with its `code` spans as <code>."""
    return Markup("").join(Markup("<code>{}</code>").format(p) if i % 2 else escape(p)
                           for i, p in enumerate(text.split("`")))


@AREA.api("GET", "/docs", permission=PUBLIC, summary="The API reference, as a page")
async def docs(request: web.Request) -> web.StreamResponse:
    """The reference for people: every operation with its permission, parameters and types."""
    doc = document_of(request.app)
    groups: dict[str, list[dict[str, Any]]] = {area.title: [] for area in request.app[keys.AREAS]}  # menu order
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            groups.setdefault(op["tags"][0], []).append({"method": method.upper(), "path": path, **op})
    return aiohttp_jinja2.render_template("api/docs.html", request, {
        "doc": doc, "groups": {tag: ops for tag, ops in groups.items() if ops}, "type_name": _type_name,
        "code": _code,
        "static": lambda name: pages.static_url(request.app, name)})
