"""What the helpdesk's configuration editors share (inboxes, groups, canned replies, rules): a
:class:`Kind` holds one kind of row's load-or-404, save and editor page, and declares its four
pages (``/new`` and ``/{id}``, each shown and posted: a refusal shown again in the editor with the
form as it was typed, the redirect when it is saved); :func:`as_form` turns an API body into the
form the same save checks, so a page and the API refuse the same values with the same sentences;
:func:`partner_of` and :func:`owner` are a new row's partner and a row as the operations log's
subject.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from aiohttp import web

from admin import keys, schemas
from admin.auth.store import Connection
from admin.tickets.common import Row
from admin.web import Area, Handler, parse_id, path_id

Load = Callable[[web.Request, Connection, int], Awaitable[Row]]
"""The row ``id`` when the principal sees it, else 404."""
Save = Callable[[web.Request, "int | None", Mapping[str, Any]], Awaitable[Row]]
"""Create (None) or change the row from a form's values: schemas.Invalid by field."""
Render = Callable[[web.Request, Mapping[str, Any], "schemas.Invalid | None"], Awaitable[web.Response]]
"""The editor page with ``values`` (and the refusal, when there is one: its errors, 422)."""
Intercept = Callable[[web.Request, "int | None"], Awaitable["web.Response | None"]]
"""A posted form's answer before it is saved (a preview), or None: save it."""


class Editor(Protocol):
    """A module's editor page: ``_editor(request, values, errors, status=...)``."""

    def __call__(self, request: web.Request, values: Mapping[str, Any], errors: Mapping[str, str], /, *,
                 status: int = 200) -> Awaitable[web.Response]: ...


def rendering(editor: Editor) -> Render:
    """An editor page as a :data:`Render`: a refusal's errors shown, 422."""
    def render(request: web.Request, values: Mapping[str, Any],
               refusal: schemas.Invalid | None) -> Awaitable[web.Response]:
        return editor(request, values, refusal.errors if refusal else {}, status=422 if refusal else 200)
    return render


def _nothing(_: web.Request) -> None:
    return None


def _posted(form: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in form.items() if k != "_csrf"}


@dataclass(frozen=True)
class Kind:
    path: str
    """Its pages' path under /admin: ``/tickets/groups`` (``/new``, ``/{id}``)."""
    load: Load
    save: Save
    render: Render
    defaults: Mapping[str, Any]
    """A new row's form."""
    form_of: Callable[[Row], dict[str, Any]] = dict
    """A stored row as the editor's values (a refused change is shown over it)."""
    shown: Callable[[Mapping[str, Any]], dict[str, Any]] = _posted
    """A posted form as it is shown again (never a password; an unticked box unticked)."""
    guard: Callable[[web.Request], None] = field(default=_nothing)
    """Run first by every page (the operator's only kinds: 404 for a partner's administrator)."""
    intercept: Intercept | None = None

    async def row(self, request: web.Request, object_id: int) -> Row:
        async with request.app[keys.POOL].acquire() as conn:
            return await self.load(request, conn, object_id)

    async def new_page(self, request: web.Request) -> web.StreamResponse:
        self.guard(request)
        return await self.render(request, dict(self.defaults), None)

    async def page(self, request: web.Request) -> web.StreamResponse:
        self.guard(request)
        return await self.render(request, self.form_of(await self.row(request, path_id(request))), None)

    async def again(self, request: web.Request, object_id: int | None, form: Mapping[str, Any],
                    refusal: schemas.Invalid) -> web.Response:
        """The editor once more with the form as it was posted, and why it was refused."""
        base = dict(self.defaults) if object_id is None else self.form_of(await self.row(request, object_id))
        return await self.render(request, {**base, **self.shown(form)}, refusal)

    async def posted(self, request: web.Request, object_id: int | None) -> web.StreamResponse:
        """The posted form saved (a new row when ``object_id`` is None), then its page; refused: the editor again."""
        self.guard(request)
        if self.intercept is not None and (answer := await self.intercept(request, object_id)) is not None:
            return answer
        form = await request.post()
        try:
            row = await self.save(request, object_id, form)
        except schemas.Invalid as e:
            return await self.again(request, object_id, form, e)
        done = "created" if object_id is None else "saved"
        raise web.HTTPFound(f"/admin{self.path}/{row['id']}?done={done}")

    def declare(self, area: Area, name: str, *, view: str = "support.view", edit: str = "support.edit") -> None:
        """Its pages on ``area``: ``/new`` (shown and posted: ``edit``), ``/{id}`` (shown: ``view``;
        posted: ``edit``), named ``<name>_new``, ``_create``, ``_page`` and ``_edit``."""

        async def new(request: web.Request) -> web.StreamResponse:
            return await self.new_page(request)

        async def create(request: web.Request) -> web.StreamResponse:
            return await self.posted(request, None)

        async def show(request: web.Request) -> web.StreamResponse:
            return await self.page(request)

        async def change(request: web.Request) -> web.StreamResponse:
            return await self.posted(request, path_id(request))

        handlers: tuple[tuple[str, str, str, str, Handler], ...] = (
            ("/new", "GET", edit, "new", new), ("/new", "POST", edit, "create", create),
            ("/{id}", "GET", view, "page", show), ("/{id}", "POST", edit, "edit", change))
        for suffix, method, permission, what, handler in handlers:
            handler.__name__ = handler.__qualname__ = f"{name}_{what}"
            area.page(self.path + suffix, permission=permission, method=method)(handler)


def partner_of(request: web.Request, form: Mapping[str, Any], *, required: str | None = None) -> int | None:
    """A new row's partner: the principal's own, or the one an administrator of every partner
    picked in the form's ``partner_id`` (none: every partner's, unless ``required`` says why not)."""
    who = keys.principal(request)
    if who.partner_id is not None:
        return who.partner_id
    text = str(form.get("partner_id", "")).strip()
    if not text and required is None:
        return None
    found = parse_id(text)
    if found is None:
        raise schemas.Invalid({"partner_id": required or "no such partner"})
    return found


def owner(row: Row) -> dict[str, Any]:
    """A row of the configuration as common.log's subject: its partner's (or nobody's), no customer's."""
    return {"id": row["id"], "partner_id": row["partner_id"], "customer_id": None}


def _as_text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else ""
    if isinstance(value, list | tuple):
        return [_as_text(v) for v in value]
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    return str(value)


def as_form(values: Any, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An API body (a struct or mapping; unset fields left out) over ``base`` as the posted form
    the pages' save checks: text, a box ticked as ``"1"`` and unticked as ``""``, null empty, a
    list a list of texts."""
    given = values if isinstance(values, Mapping) else {
        f: getattr(values, f) for f in values.__struct_fields__ if getattr(values, f) is not msgspec.UNSET}
    return {**(base or {}), **{k: _as_text(v) for k, v in given.items()}}
