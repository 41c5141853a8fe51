"""API keys: a role's permissions (and optionally a partner's scope and an address allow-list)
for a program. A key is shown once, when it is made; only its sha256 is kept. Revoking stops it
here at once and in every other admin process within its key cache's 5 seconds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import asyncpg
from aiohttp import web

from admin import keys, listing, oplog_store, pages
from admin import schemas as common
from admin.administration import guard, queries
from admin.administration import schemas as s
from admin.administration.area import AREA
from admin.administration.queries import Row
from admin.auth import middleware, tokens
from admin.settings import networks
from admin.web import path_id

REQUESTS_PAGE = 100
CSV_HEADER = ["id", "name", "prefix", "role", "partner", "allow_from", "created_at", "last_used_at", "revoked_at"]


def public(row: Row) -> dict[str, Any]:
    """What the operations log keeps of a key (never its hash)."""
    return guard.snapshot(row, ("id", "name", "prefix", "role_id", "role", "partner_id",
                                               "allow_from", "revoked_at"))


def to_api(row: Row) -> s.ApiKey:
    return s.ApiKey(id=row["id"], name=row["name"], prefix=row["prefix"], role_id=row["role_id"], role=row["role"],
                    partner_id=row["partner_id"], partner=row["partner"],
                    allow_from=[str(n) for n in row["allow_from"]], created_by=row["created_by"],
                    created_at=row["created_at"], last_used_at=row["last_used_at"], revoked_at=row["revoked_at"])


async def create_key(request: web.Request, name: str, role_id: int, partner_id: int | None,
                     allow_from: str) -> tuple[asyncpg.Record, str]:
    """A new key (its row, and the key itself, to show once); :class:`common.Invalid` by field."""
    who = keys.principal(request)
    errors: dict[str, str] = {}
    try:
        nets = networks(allow_from)
    except ValueError as e:
        errors["allow_from"] = f"must be addresses or networks separated by commas: {e}"
        nets = []
    async with request.app[keys.POOL].acquire() as conn:
        a = await guard.actor(conn, who)
        if why := guard.give_role(a, await queries.role(conn, role_id)):
            errors["role_id"] = why
        partner_id, why = guard.partner(who, partner_id)
        if why:
            errors["partner_id"] = why
        elif partner_id is not None and not await queries.partner_exists(conn, partner_id):
            errors["partner_id"] = "no such partner"
        if errors:
            raise common.Invalid(errors)
        key, prefix = tokens.new_api_key()
        async with conn.transaction():
            key_id = await queries.insert_api_key(conn, name, prefix, tokens.digest(key), role_id, partner_id, nets,
                                                  who.admin_id)
            row = await queries.api_key(conn, key_id, None)
            assert row is not None
            await oplog_store.record(conn, who, keys.client_address(request), "create", "api_key", key_id,
                                     partner_id=partner_id, summary=f"created API key {name} ({prefix})",
                                     after=public(row))
    return row, key


async def revoke_key(request: web.Request) -> asyncpg.Record:
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.api_key(conn, path_id(request), who.partner_id)
        if row is None:
            raise web.HTTPNotFound(text="No such API key.")
        if row["revoked_at"] is None:
            async with conn.transaction():
                key_hash = await queries.revoke_api_key(conn, row["id"])
                after = await queries.api_key(conn, row["id"], None)
                assert after is not None
                await oplog_store.record(conn, who, keys.client_address(request), "revoke", "api_key", row["id"],
                                         partner_id=row["partner_id"], summary=f"revoked API key {row['name']}",
                                         before=public(row), after=public(after))
            if key_hash is not None:  # this process stops it now (the others within KEY_CACHE_S)
                request.app[middleware.KEY_CACHE].entries.pop(key_hash, None)
            row = after
    return row


# --- pages ----------------------------------------------------------------------------------------

@AREA.page("/api-keys", permission="administration.view")
async def api_keys(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    lst = listing.Listing.of(request, {"id": "k.id"}, "id", default_direction="desc",
                             limit=request.app[keys.SETTINGS].page_size)
    revoked = {"yes": True, "no": False}.get(request.query.get("revoked", ""))
    pool = request.app[keys.POOL]

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with pool.acquire() as conn:
            return await queries.api_keys(conn, who.partner_id, revoked, after, limit)

    def key(r: Any) -> list[Any]:
        return [r["id"], r["id"]]

    if lst.wants_csv:
        return await listing.export_csv(request, "api-keys.csv", CSV_HEADER, fetch, key, lambda r: [
            r["id"], r["name"], r["prefix"], r["role"], r["partner"], " ".join(str(n) for n in r["allow_from"]),
            r["created_at"], r["last_used_at"], r["revoked_at"]])
    rows = lst.take(await fetch(lst.after, lst.limit + 1), key)
    return pages.render("administration/api_keys.html", request, {
        "listing": lst, "rows": rows, "revoked": request.query.get("revoked", "")})


async def _render_new(request: web.Request, values: Mapping[str, Any] | None = None,
                      errors: Mapping[str, str] | None = None) -> web.Response:
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn:
        a = await guard.actor(conn, who)
        roles = [(r["id"], r["name"]) for r in await queries.roles(conn) if guard.give_role(a, r) is None]
        partners = [(p["id"], p["name"]) for p in await queries.partners(conn, who.partner_id)]
    return pages.render("administration/api_key_new.html", request, {
        "values": values or {"name": "", "role_id": "", "partner_id": who.partner_id or "", "allow_from": ""},
        "errors": errors or {}, "roles": roles, "partners": partners, "any_partner": who.partner_id is None},
        status=422 if errors else 200)


@AREA.page("/api-keys/new", permission="administration.add")
async def new_form(request: web.Request) -> web.StreamResponse:
    return await _render_new(request)


@AREA.page("/api-keys", permission="administration.add", method="POST")
async def create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        f = common.from_strings(form, s.ApiKeyForm)
        row, key = await create_key(request, f.name, f.role_id, f.partner_id, f.allow_from)
    except common.Invalid as e:
        values = {k: str(form.get(k, "")) for k in ("name", "role_id", "partner_id", "allow_from")}
        return await _render_new(request, values, e.errors)
    return pages.render("administration/api_key_created.html", request, {"k": row, "key": key}, status=201)


@AREA.page("/api-keys/{id}", permission="administration.view")
async def detail(request: web.Request) -> web.StreamResponse:
    """The key and its request log, newest first (``?before=<time>``: the older ones)."""
    who = keys.principal(request)
    before = None
    if text := request.query.get("before"):
        try:
            before = dt.datetime.fromisoformat(text)
        except ValueError:
            raise web.HTTPBadRequest(text="before= must be a time (ISO 8601)") from None
        if before.tzinfo is None:
            before = before.replace(tzinfo=dt.UTC)
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.api_key(conn, path_id(request), who.partner_id)
        if row is None:
            raise web.HTTPNotFound(text="No such API key.")
        requests = await queries.api_requests(conn, row["id"], before, REQUESTS_PAGE + 1)
    more = len(requests) > REQUESTS_PAGE
    requests = requests[:REQUESTS_PAGE]
    return pages.render("administration/api_key.html", request, {
        "k": row, "requests": requests, "before": before, "done": request.query.get("done", ""),
        "older": requests[-1]["at"].isoformat() if more else None})


@AREA.page("/api-keys/{id}/revoke", permission="administration.edit", method="POST")
async def revoke(request: web.Request) -> web.StreamResponse:
    row = await revoke_key(request)
    raise web.HTTPFound(f"/admin/api-keys/{row['id']}?done=revoked")


# --- the API --------------------------------------------------------------------------------------

@AREA.api("GET", "/api-keys", permission="administration.view", summary="List API keys",
          query=s.ApiKeyQuery, response=common.Page[s.ApiKey])
async def api_list(request: web.Request) -> web.StreamResponse:
    """API keys, newest first (never their secrets)."""
    who = keys.principal(request)
    q = common.query(request, s.ApiKeyQuery)
    lst = listing.Listing.of(request, {"id": "k.id"}, "id", default_direction="desc",
                             limit=request.app[keys.SETTINGS].page_size)
    revoked = None if q.revoked is None else q.revoked == "yes"
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.api_keys(conn, who.partner_id, revoked, lst.after, lst.limit + 1)
    rows = lst.take(rows, lambda r: [r["id"], r["id"]])
    return common.json(common.Page(items=[to_api(r) for r in rows], next=lst.next))


@AREA.api("POST", "/api-keys", permission="administration.add", summary="Create an API key",
          body=s.ApiKeyCreate, response=s.ApiKeyCreated, status=201)
async def api_create(request: web.Request) -> web.StreamResponse:
    """The answer carries the key (``key``) this once: only its hash is kept."""
    b = await common.body(request, s.ApiKeyCreate)
    row, key = await create_key(request, b.name, b.role_id, b.partner_id, ",".join(b.allow_from))
    made = to_api(row)
    return common.json(s.ApiKeyCreated(**{f: getattr(made, f) for f in made.__struct_fields__}, key=key), 201)


@AREA.api("POST", "/api-keys/{id}/revoke", permission="administration.edit", summary="Revoke an API key",
          response=s.ApiKey)
async def api_revoke(request: web.Request) -> web.StreamResponse:
    """The key stops working (within 5 seconds everywhere); revoking it again changes nothing."""
    return common.json(to_api(await revoke_key(request)))
