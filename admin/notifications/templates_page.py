"""Notifications -> Templates: the operators' message templates, per partner (or the default of
every partner), kind (model.TEMPLATE_KINDS), channel (email, SMS, portal) and language ('' for
any, or ``de`` / ``de_AT``), in Jinja2's sandbox (admin/notifications/templates.py).

The overview shows, for a partner or the default and a language, which of the kinds x channels
are the operator's and which built-in. The editor has the template's variables beside it;
"Check" compiles the text and renders it against every sample of its kind (each error with its
line); "Preview" renders it with the newest real entity of the kind (the last invoice, ...:
context_store.latest), or the first sample when there is none: an email's HTML in a sandboxed
frame, an SMS with its characters and segments. Save checks first and refuses a broken template
with its errors: a template is refused when it is saved, never when a message is sent. "Back to
the built-in" deletes the row (the message then uses the next template of the chain:
templates_store.py).

A partner's administrator edits its partner's templates only (another partner's, and the
default's page: 404); the default ones are seen and changed by an administrator of every partner.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, oplog_store, pages, schemas
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.billing.render.templates import TemplateError
from admin.customers import queries as customer_queries
from admin.notifications import context_store, messages, samples, sms, templates
from admin.notifications import templates_store as db
from admin.notifications.area import AREA
from admin.notifications.model import CHANNELS, KIND_TITLES, TEMPLATE_KINDS, Channel

MAX_BODY = 100_000
"""The largest template, in characters (the built-in ones are under 2,000)."""
LANGUAGE = r"^([a-z]{2}(_[A-Z]{2})?)?$"
Language = Annotated[str, msgspec.Meta(pattern=LANGUAGE, description=(
    "the customers' language the template is for: `de`, `de_AT`; '' : any language"))]
Body = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_BODY, description=(
    "the template: Jinja2 (sandboxed); an email's is HTML (autoescaped), an SMS's and a portal message's text"))]
Source = Literal["partner", "default", "built-in"]
CHANNEL_TITLES = {"email": "Email", "sms": "SMS", "portal": "Portal"}


class TemplateLanguageQuery(msgspec.Struct, kw_only=True):
    language: Language = ""


class MessageTemplateIn(msgspec.Struct, kw_only=True):
    body: Body


class MessageTemplate(msgspec.Struct, kw_only=True):
    """The template messages of ``kind`` by ``channel`` use for ``partner_id`` (null: the default of
    every partner) and customers of ``language``: ``source`` says whose it is (the partner's own,
    the default, the built-in) and ``used_language`` which language's row it is ('' : any);
    ``own`` whether the row asked for exists (what DELETE removes)."""

    kind: str
    channel: Channel
    language: str
    partner_id: int | None
    source: Source
    used_language: str
    own: bool
    body: str
    updated_by: str
    updated_at: dt.datetime | None


class Refused(Exception):
    """A template not taken: ``errors``, one line each (with the template's line where it has one)."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


# -- whose templates ---------------------------------------------------------------------------------

def _scope(who: Principal, partner_id: int | None) -> int | None:
    """The scope a principal may open: a partner's administrator its own partner's only (another's,
    and the default's: 404); an administrator of every partner any."""
    if who.partner_id is not None and partner_id != who.partner_id:
        raise web.HTTPNotFound()
    return partner_id


def _may_edit(who: Principal) -> bool:
    return who.can("notifications.edit") and who.creator_id is None


def _editor(who: Principal) -> None:
    if not _may_edit(who):
        raise web.HTTPForbidden(text="An administrator limited to the customers it created changes no template.")


def _kind(text: str) -> str:
    if text not in TEMPLATE_KINDS:
        raise web.HTTPNotFound(text=f"no template kind {text!r} (one of {', '.join(TEMPLATE_KINDS)})")
    return text


def _channel(text: str) -> Channel:
    for c in CHANNELS:
        if c == text:
            return c
    raise web.HTTPNotFound(text=f"no channel {text!r} (one of {', '.join(CHANNELS)})")


async def _partner(conn: Connection, partner_id: int | None) -> str:
    """The partner's name ('' for the default); 404 when there is no such partner."""
    if partner_id is None:
        return ""
    name = await db.partner_name(conn, partner_id)
    if name is None:
        raise web.HTTPNotFound()
    return name


# -- which template is used ----------------------------------------------------------------------------

def _chain(partner_id: int | None, language: str) -> list[tuple[int | None, str]]:
    """The (partner, language) rows a message looks for, first found used."""
    languages = [language, ""] if language else [""]
    owners: list[int | None] = [partner_id, None] if partner_id is not None else [None]
    return [(p, lang) for p in owners for lang in languages]


def _own(rows: Sequence[asyncpg.Record], partner_id: int | None, kind: str, channel: str,
         language: str) -> asyncpg.Record | None:
    return next((r for r in rows if r["partner_id"] == partner_id and r["kind"] == kind and r["channel"] == channel
                 and r["language"] == language), None)


def _used(rows: Sequence[asyncpg.Record], partner_id: int | None, kind: str, channel: str,
          language: str) -> asyncpg.Record | None:
    for p, lang in _chain(partner_id, language):
        row = _own(rows, p, kind, channel, lang)
        if row is not None:
            return row
    return None


def _effective(rows: Sequence[asyncpg.Record], partner_id: int | None, kind: str, channel: Channel,
               language: str) -> MessageTemplate:
    own = _own(rows, partner_id, kind, channel, language)
    row = _used(rows, partner_id, kind, channel, language)
    if row is None:
        return MessageTemplate(kind=kind, channel=channel, language=language, partner_id=partner_id,
                               source="built-in", used_language="", own=False,
                               body=templates.builtin_source(kind, channel), updated_by="", updated_at=None)
    return MessageTemplate(kind=kind, channel=channel, language=language, partner_id=partner_id,
                           source="partner" if row["partner_id"] is not None else "default",
                           used_language=row["language"], own=own is not None, body=row["body"],
                           updated_by=row["updated_by"], updated_at=row["updated_at"])


def _fallback(rows: Sequence[asyncpg.Record], partner_id: int | None, kind: str, channel: Channel,
              language: str) -> tuple[str, str]:
    """What "back to the built-in" leaves in use: (its text, what it is)."""
    for p, lang in _chain(partner_id, language)[1:]:
        row = _own(rows, p, kind, channel, lang)
        if row is not None:
            whose = "the partner's" if p is not None else "the default"
            return row["body"], f"{whose} template for {'language ' + lang if lang else 'any language'}"
    return templates.builtin_source(kind, channel), "the built-in template"


# -- check, preview, save --------------------------------------------------------------------------------

def _checked_body(body: str) -> str:
    if not body.strip():
        raise Refused(["the template is empty: to use the built-in one, go back to the built-in"])
    if len(body) > MAX_BODY:
        raise Refused([f"the template has {len(body)} characters: {MAX_BODY} at most"])
    if "\x00" in body:
        raise Refused(["the template has a NUL character"])
    return body.replace("\r\n", "\n")


def check(kind: str, channel: Channel, body: str) -> list[str]:
    """The template's errors (compiled, rendered against every sample of its kind), one line each."""
    try:
        return list(templates.check(kind, channel, _checked_body(body)))
    except Refused as e:
        return e.errors


class Preview(msgspec.Struct, kw_only=True):
    """A template rendered: the subject, the text and an email's HTML; what it was rendered with."""

    subject: str
    text: str
    html: str | None
    entity: str  # "the last invoice" or "a sample"
    characters: int = 0  # an SMS: its characters and how many SMS it takes (sms.segments)
    segments: int = 0


async def preview(conn: Connection, partner_id: int | None, kind: str, channel: Channel, body: str) -> Preview:
    """``body`` (unsaved) rendered with the newest entity of ``kind`` (a sample when there is none)."""
    body = _checked_body(body)
    context = await context_store.latest(conn, partner_id, kind)
    entity = f"the last {KIND_TITLES[kind].lower()}"
    if context is None:
        context, entity = samples.variants(kind)[0], "a sample (there is none yet)"
    subject = await db.rule_subject(conn, partner_id, kind)
    try:
        rendered = templates.render(kind, channel, context, body=body, subject=subject)
    except TemplateError as e:
        raise Refused([str(e)]) from None
    out = Preview(subject=rendered.subject, text=rendered.text, html=rendered.html, entity=entity)
    if channel == "sms":
        out.characters, out.segments = len(rendered.text), sms.segments(rendered.text)
    return out


async def _save(conn: Connection, request: web.Request, partner_id: int | None, kind: str, channel: Channel,
                language: str, body: str) -> asyncpg.Record:
    """Check ``body`` (Refused with its errors), then keep it, with its line of the operations log."""
    who = keys.principal(request)
    _editor(who)
    name = await _partner(conn, partner_id)
    body = _checked_body(body)
    errors = check(kind, channel, body)
    if errors:
        raise Refused(errors)
    what = _what(name, partner_id, kind, channel, language)
    async with conn.transaction():
        before = _own(await db.templates(conn, partner_id), partner_id, kind, channel, language)
        if before is not None and before["body"] == body:
            return before
        row = await db.save(conn, partner_id, kind, channel, language, body, who.name)
        await oplog_store.record(conn, who, keys.client_address(request), "update" if before else "create",
                                 "message_template", row["id"], partner_id=partner_id,
                                 summary=f"{what} {'changed' if before else 'made'}",
                                 before={"body": before["body"]} if before else None,
                                 after={"kind": kind, "channel": channel, "language": language, "body": body})
    return row


async def _reset(conn: Connection, request: web.Request, partner_id: int | None, kind: str, channel: Channel,
                 language: str) -> None:
    who = keys.principal(request)
    _editor(who)
    name = await _partner(conn, partner_id)
    async with conn.transaction():
        row = await db.delete(conn, partner_id, kind, channel, language)
        if row is not None:
            await oplog_store.record(conn, who, keys.client_address(request), "delete", "message_template",
                                     row["id"], partner_id=partner_id,
                                     summary=f"{_what(name, partner_id, kind, channel, language)}: back to the "
                                             "built-in", before={"kind": kind, "channel": channel,
                                                                 "language": language, "body": row["body"]})


def _what(name: str, partner_id: int | None, kind: str, channel: str, language: str) -> str:
    whose = f"{name}'s" if partner_id is not None else "the default"
    return (f"{whose} {KIND_TITLES[kind].lower()} {CHANNEL_TITLES[channel]} template"
            f"{' (' + language + ')' if language else ''}")


# -- the pages ------------------------------------------------------------------------------------------

class EditorQuery(msgspec.Struct, kw_only=True):
    partner_id: schemas.Id | None = None
    kind: str = "invoice"
    channel: str = "email"
    language: Language = ""


def _asked(who: Principal, values: Mapping[str, Any]) -> tuple[int | None, str, Channel, str]:
    """(partner, kind, channel, language) of a page's query or form; what is not one is 404. A
    partner's administrator asking for no partner gets its own."""
    try:
        q = schemas.from_strings(values, EditorQuery)
    except schemas.Invalid:
        raise web.HTTPNotFound() from None
    partner_id = q.partner_id if q.partner_id is not None or who.partner_id is None else who.partner_id
    return _scope(who, partner_id), _kind(q.kind), _channel(q.channel), q.language


def _url(path: str, partner_id: int | None, kind: str | None = None, channel: str | None = None,
         language: str = "", done: str = "") -> str:
    params = [f"partner_id={partner_id}"] if partner_id is not None else []
    params += [f"kind={kind}"] if kind else []
    params += [f"channel={channel}"] if channel else []
    params += [f"language={language}"] if language else []
    params += [f"done={done}"] if done else []
    return path + ("?" + "&".join(params) if params else "")


async def _partners(conn: Connection, who: Principal) -> list[tuple[int, str]]:
    return [] if who.partner_id is not None else [(p["id"], p["name"]) for p in
                                                  await customer_queries.partners(conn, None)]


@AREA.page("/notifications/templates", permission="notifications.view")
async def overview_page(request: web.Request) -> web.StreamResponse:
    """Each kind x channel for the scope and language: whose template it uses."""
    who = keys.principal(request)
    partner_id, _, _, language = _asked(who, {k: v for k, v in request.query.items() if k in ("partner_id",
                                                                                             "language")})
    async with request.app[keys.POOL].acquire() as conn:
        name = await _partner(conn, partner_id)
        rows = await db.templates(conn, partner_id)
        partners = await _partners(conn, who)
    matrix = [(k, KIND_TITLES[k], [(c, _effective(rows, partner_id, k, c, language)) for c in CHANNELS])
              for k in TEMPLATE_KINDS]
    languages = sorted({r["language"] for r in rows if r["language"]})
    return pages.render("notifications/templates.html", request, {
        "partner_id": partner_id, "partner": name, "language": language, "matrix": matrix, "partners": partners,
        "languages": languages, "channel_titles": CHANNEL_TITLES, "own_count": sum(
            1 for r in rows if r["partner_id"] == partner_id), "url": _url})


async def _render_editor(request: web.Request, conn: Connection, partner_id: int | None, kind: str, channel: Channel,
                         language: str, *, body: str | None = None, errors: Sequence[str] = (),
                         checked: bool = False, shown: Preview | None = None, status: int = 200) -> web.Response:
    who = keys.principal(request)
    name = await _partner(conn, partner_id)
    rows = await db.templates(conn, partner_id)
    current = _effective(rows, partner_id, kind, channel, language)
    fallback_body, fallback_label = _fallback(rows, partner_id, kind, channel, language)
    tabs = [(k, KIND_TITLES[k], _own(rows, partner_id, k, channel, language) is not None) for k in TEMPLATE_KINDS]
    return messages.framing(pages.render("notifications/templates_edit.html", request, {
        "partner_id": partner_id, "partner": name, "kind": kind, "kind_title": KIND_TITLES[kind], "channel": channel,
        "channel_title": CHANNEL_TITLES[channel], "channels": CHANNELS, "channel_titles": CHANNEL_TITLES,
        "language": language, "tabs": tabs, "current": current, "body": current.body if body is None else body,
        "fallback_body": fallback_body, "fallback_label": fallback_label, "errors": list(errors),
        "checked": checked, "preview": shown, "framed": messages.framed(shown.html) if shown and shown.html else "",
        "variables": templates.variables(kind),
        "default_subject": templates.default_subject(kind), "rule_subject": await db.rule_subject(conn, partner_id,
                                                                                                  kind),
        "may_edit": _may_edit(who), "done": request.query.get("done", ""), "url": _url,
        "partners": await _partners(conn, who)}, status=status))


@AREA.page("/notifications/templates/edit", permission="notifications.view")
async def editor_page(request: web.Request) -> web.StreamResponse:
    partner_id, kind, channel, language = _asked(keys.principal(request), request.query)
    async with request.app[keys.POOL].acquire() as conn:
        return await _render_editor(request, conn, partner_id, kind, channel, language)


async def _form(request: web.Request) -> tuple[int | None, str, Channel, str, str]:
    form = await request.post()
    partner_id, kind, channel, language = _asked(keys.principal(request), form)
    return partner_id, kind, channel, language, str(form.get("body", ""))


@AREA.page("/notifications/templates/edit", permission="notifications.edit", method="POST")
async def save_form(request: web.Request) -> web.StreamResponse:
    partner_id, kind, channel, language, body = await _form(request)
    async with request.app[keys.POOL].acquire() as conn:
        try:
            await _save(conn, request, partner_id, kind, channel, language, body)
        except Refused as e:
            return await _render_editor(request, conn, partner_id, kind, channel, language, body=body,
                                        errors=e.errors, status=422)
    raise web.HTTPFound(_url("/admin/notifications/templates/edit", partner_id, kind, channel, language, "saved"))


@AREA.page("/notifications/templates/check", permission="notifications.view", method="POST")
async def check_form(request: web.Request) -> web.StreamResponse:
    """The editor's text checked (nothing saved): its errors, or that it has none."""
    partner_id, kind, channel, language, body = await _form(request)
    async with request.app[keys.POOL].acquire() as conn:
        await _partner(conn, partner_id)
        return await _render_editor(request, conn, partner_id, kind, channel, language, body=body,
                                    errors=check(kind, channel, body), checked=True)


@AREA.page("/notifications/templates/preview", permission="notifications.view", method="POST")
async def preview_form(request: web.Request) -> web.StreamResponse:
    """The editor's text rendered with the last entity of its kind (nothing saved)."""
    partner_id, kind, channel, language, body = await _form(request)
    async with request.app[keys.POOL].acquire() as conn:
        await _partner(conn, partner_id)
        try:
            shown = await preview(conn, partner_id, kind, channel, body)
        except Refused as e:
            return await _render_editor(request, conn, partner_id, kind, channel, language, body=body,
                                        errors=e.errors, checked=True)
        return await _render_editor(request, conn, partner_id, kind, channel, language, body=body, shown=shown)


@AREA.page("/notifications/templates/reset", permission="notifications.edit", method="POST")
async def reset_form(request: web.Request) -> web.StreamResponse:
    partner_id, kind, channel, language, _ = await _form(request)
    async with request.app[keys.POOL].acquire() as conn:
        await _reset(conn, request, partner_id, kind, channel, language)
    raise web.HTTPFound(_url("/admin/notifications/templates/edit", partner_id, kind, channel, language, "reset"))


# -- the API --------------------------------------------------------------------------------------------

async def _api_target(request: web.Request, conn: Connection) -> tuple[int | None, str, Channel, str]:
    """The path's partner (``default`` or a partner's id), kind and channel, and the query's language."""
    text = request.match_info["partner"]
    if text == "default":
        partner_id = None
    elif text.isdigit() and 0 < int(text) < 2**63:
        partner_id = int(text)
    else:
        raise web.HTTPNotFound(text="the partner is `default` or a partner's id")
    partner_id = _scope(keys.principal(request), partner_id)
    await _partner(conn, partner_id)
    kind, channel = _kind(request.match_info["kind"]), _channel(request.match_info["channel"])
    return partner_id, kind, channel, schemas.query(request, TemplateLanguageQuery).language


PATH = "/notifications/templates/{partner}/{kind}/{channel}"


@AREA.api("GET", PATH, permission="notifications.view", query=TemplateLanguageQuery, response=MessageTemplate,
          summary="Get a message template")
async def api_template(request: web.Request) -> web.StreamResponse:
    """The template messages of `kind` by `channel` use for `partner` (`default`: every partner's
    default, or a partner's id) and `language`, and whose it is."""
    async with request.app[keys.POOL].acquire() as conn:
        partner_id, kind, channel, language = await _api_target(request, conn)
        rows = await db.templates(conn, partner_id)
    return schemas.json(_effective(rows, partner_id, kind, channel, language))


def _refused(e: Refused) -> web.Response:
    return schemas.problem(422, "template refused", "\n".join(e.errors), {"body": "; ".join(e.errors)})


@AREA.api("PUT", PATH, permission="notifications.edit", query=TemplateLanguageQuery, body=MessageTemplateIn,
          response=MessageTemplate, summary="Save a message template")
async def api_save(request: web.Request) -> web.StreamResponse:
    """Checked first (compiled, rendered against every sample of its kind): a template that fails is
    refused (422) with each error and its line."""
    data = await schemas.body(request, MessageTemplateIn)
    async with request.app[keys.POOL].acquire() as conn:
        partner_id, kind, channel, language = await _api_target(request, conn)
        try:
            await _save(conn, request, partner_id, kind, channel, language, data.body)
        except Refused as e:
            return _refused(e)
        rows = await db.templates(conn, partner_id)
    return schemas.json(_effective(rows, partner_id, kind, channel, language))


@AREA.api("DELETE", PATH, permission="notifications.edit", query=TemplateLanguageQuery, response=MessageTemplate,
          summary="Back to the built-in message template")
async def api_reset(request: web.Request) -> web.StreamResponse:
    """Deletes the scope's template of `kind`, `channel` and `language`; the answer is the one used now."""
    async with request.app[keys.POOL].acquire() as conn:
        partner_id, kind, channel, language = await _api_target(request, conn)
        await _reset(conn, request, partner_id, kind, channel, language)
        rows = await db.templates(conn, partner_id)
    return schemas.json(_effective(rows, partner_id, kind, channel, language))
