"""Notifications -> Webhooks: integrators' URLs that the events of the outbox are POSTed to, signed
(webhooks.py delivers them, event_types.py is the catalogue), and the outbox for polling.

A webhook's secret is made here (``whsec_`` and 32 random bytes), sealed (daemons/secrets.py,
purpose ``webhooks.secret``) and shown once, when the webhook is made; ``notifications.edit`` may
reveal it again or rotate it (the old one stops signing at once), each a line of the operations log.
A partner's administrator sees and makes its partner's webhooks only (another's is "not found"), and
a partner's webhook gets its partner's events only; an administrator of every partner may make one
for every partner (no partner). A role limited to its own customers is refused the area: events name
every customer. "Replay" makes a delivery pending again with its attempts counted afresh (its
history stays); "Send a test event" delivers a ``webhook.ping`` to that webhook alone.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Mapping
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, oplog_store, pages, schemas
from admin.auth.store import Connection
from admin.notifications import event_types, webhooks
from admin.notifications import events_store as events
from admin.notifications import webhooks_store as store
from admin.notifications.area import AREA
from admin.notifications.webhooks_schemas import (
    Deliveries,
    DeliveryOut,
    DeliveryQuery,
    EventOut,
    EventQuery,
    Events,
    Pinged,
    Secret,
    WebhookCreated,
    WebhookForm,
    WebhookIn,
    WebhookOut,
    WebhookPatch,
)
from admin.schemas import Deleted
from admin.web import path_id
from daemons.secrets import SecretError

BASE = "/admin/notifications/webhooks"
Row = Mapping[str, Any] | asyncpg.Record
PAGE = 50


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def scope(request: web.Request) -> int | None:
    """The principal's partner (None: every partner's); 403 for a role limited to its own customers."""
    who = keys.principal(request)
    if who.own_customers_only:
        raise web.HTTPForbidden(text="Webhooks and events name every customer: a role limited to its own "
                                     "customers does not see them.")
    return who.partner_id


async def webhook_or_404(conn: Connection, request: web.Request, *, lock: bool = False) -> asyncpg.Record:
    row = await store.webhook(conn, scope(request), path_id(request), lock=lock)
    if row is None:
        raise web.HTTPNotFound()
    return row


async def delivery_or_404(conn: Connection, request: web.Request) -> asyncpg.Record:
    row = await store.delivery(conn, scope(request), path_id(request))
    if row is None:
        raise web.HTTPNotFound()
    return row


def out(row: Row) -> WebhookOut:
    return msgspec.convert({k: row[k] for k in WebhookOut.__struct_fields__}, WebhookOut)


def delivery_out(row: Row) -> DeliveryOut:
    values = {k: row[k] for k in DeliveryOut.__struct_fields__}
    if row["status"] != "pending":
        values["next_attempt_at"] = None
    return msgspec.convert(values, DeliveryOut)


def _patterns(given: list[str]) -> list[str]:
    """The subscriptions without repeats, in their order; Invalid when one is not a pattern."""
    patterns = list(dict.fromkeys(p.strip() for p in given if p.strip()))
    problem = event_types.check_patterns(patterns)
    if problem:
        raise schemas.Invalid({"events": problem})
    return patterns


async def _partner(conn: Connection, request: web.Request, given: int | None) -> int | None:
    """Whose events the webhook gets: a partner's administrator's own partner, whatever it asked."""
    mine = scope(request)
    if mine is not None:
        return mine
    if given is not None and not await store.partner_exists(conn, given):
        raise schemas.Invalid({"partner_id": f"there is no partner {given}"})
    return given


async def _log(conn: Connection, request: web.Request, action: str, row: Row, summary: str,
               before: Any = None, after: Any = None) -> None:
    await oplog_store.record(conn, keys.principal(request), keys.client_address(request), action, "webhook",
                             row["id"], partner_id=row["partner_id"], summary=summary, before=before, after=after)


def _logged(values: Row) -> dict[str, Any]:
    return {k: values[k] for k in ("partner_id", "url", "events", "enabled", "description") if k in values}


async def create(conn: Connection, request: web.Request, data: WebhookIn) -> tuple[asyncpg.Record, str]:
    """A new webhook and its secret (shown once)."""
    keyring = request.app[keys.KEYRING]
    secret = new_secret()
    values = {"partner_id": await _partner(conn, request, data.partner_id), "url": data.url,
              "events": _patterns(data.events), "enabled": data.enabled, "description": data.description.strip(),
              "secret": keyring.seal(secret, webhooks.SECRET_PURPOSE), "created_by": keys.principal(request).name}
    async with conn.transaction():
        webhook_id = await store.add(conn, values)
        row = await store.webhook(conn, None, webhook_id)
        assert row is not None
        await _log(conn, request, "create", row, f"webhook {data.url}", after=_logged(values))
    return row, secret


async def change(conn: Connection, request: web.Request, row: asyncpg.Record, changes: dict[str, Any]) -> None:
    values: dict[str, Any] = {}
    if "url" in changes:
        values["url"] = changes["url"]
    if "events" in changes:
        values["events"] = _patterns(changes["events"])
    if "partner_id" in changes:
        values["partner_id"] = await _partner(conn, request, changes["partner_id"])
    if "description" in changes:
        values["description"] = changes["description"].strip()
    if "enabled" in changes:
        values["enabled"] = changes["enabled"]
    values = {k: v for k, v in values.items() if v != row[k]}
    if not values:
        return
    async with conn.transaction():
        await store.update(conn, row["id"], values)
        await _log(conn, request, "update", row, f"webhook {values.get('url', row['url'])}: changed "
                   + ", ".join(values), before=_logged({k: row[k] for k in values}), after=_logged(values))


async def rotate(conn: Connection, request: web.Request, row: asyncpg.Record) -> str:
    secret = new_secret()
    sealed = request.app[keys.KEYRING].seal(secret, webhooks.SECRET_PURPOSE)
    async with conn.transaction():
        await store.update(conn, row["id"], {"secret": sealed})
        await _log(conn, request, "rotate", row, f"webhook {row['url']}: a new secret")
    return secret


async def reveal(conn: Connection, request: web.Request, row: asyncpg.Record) -> str:
    try:
        secret = request.app[keys.KEYRING].open(row["secret"], webhooks.SECRET_PURPOSE)
    except SecretError:
        raise web.HTTPConflict(text="The secret is sealed under another key: rotate it to make a new one.") from None
    await _log(conn, request, "reveal", row, f"webhook {row['url']}: its secret shown")
    return secret


async def ping(conn: Connection, request: web.Request, row: asyncpg.Record) -> int:
    async with conn.transaction():
        delivery_id = await store.ping(conn, row["id"], row["partner_id"], {
            "webhook_id": row["id"], "message": f"a test event from lastmile, sent by {keys.principal(request).name}"},
            _now())
        await _log(conn, request, "test", row, f"webhook {row['url']}: a test event")
    return delivery_id


async def replay(conn: Connection, request: web.Request, delivery: asyncpg.Record) -> None:
    async with conn.transaction():
        await store.replay(conn, delivery["id"], _now())
        await oplog_store.record(conn, keys.principal(request), keys.client_address(request), "replay",
                                 "webhook_delivery", delivery["id"], partner_id=delivery["partner_id"],
                                 summary=f"{delivery['type']} to {delivery['url']} again",
                                 before={"status": delivery["status"], "attempts": delivery["attempts"]})


async def remove(conn: Connection, request: web.Request, row: asyncpg.Record) -> None:
    async with conn.transaction():
        await store.delete(conn, row["id"])
        await _log(conn, request, "delete", row, f"webhook {row['url']}", before=_logged(row))


async def _page_of_deliveries(conn: Connection, webhook_id: int, q: DeliveryQuery) -> Deliveries:
    rows = await store.deliveries(conn, webhook_id, q.status, q.before, q.limit + 1)
    shown = rows[: q.limit]
    return Deliveries(items=[delivery_out(r) for r in shown],
                      next=shown[-1]["id"] if len(rows) > q.limit else None)


def _form(form: Mapping[str, Any]) -> WebhookForm:
    data = schemas.from_strings(form, WebhookForm)
    data.events = [*data.events, *data.patterns.replace(",", " ").split()]
    return data


# -- pages ---------------------------------------------------------------------------------------

def render(template: str, request: web.Request, context: Mapping[str, Any], *, status: int = 200) -> web.Response:
    return pages.render(template, request, {"catalogue": event_types.CATALOGUE,
                                            "known": event_types.SUBSCRIBABLE, **context}, status=status)


async def _partners(conn: Connection, request: web.Request) -> list[tuple[int, str]]:
    """(id, name) of the partners the form offers: none for a partner's administrator."""
    return [(r["id"], r["name"]) for r in await store.partners(conn)] if scope(request) is None else []


@AREA.page("/notifications/webhooks", permission="notifications.view")
async def list_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        rows = await store.webhooks(conn, scope(request))
    return render("notifications/webhooks.html", request, {"webhooks": rows, "done": request.query.get("done", ""),
                                                           "examples": {e.type: event_types.to_json(e.example).decode()
                                                                        for e in event_types.CATALOGUE}})


async def _form_page(conn: Connection, request: web.Request, *, row: asyncpg.Record | None = None,
                     values: Mapping[str, Any] | None = None, errors: Mapping[str, str] | None = None,
                     status: int = 200) -> web.Response:
    if values is None:
        chosen = list(row["events"]) if row is not None else []
        values = {"url": row["url"] if row else "", "description": row["description"] if row else "",
                  "partner_id": row["partner_id"] if row else None, "enabled": row["enabled"] if row else True,
                  "events": [p for p in chosen if p in event_types.SUBSCRIBABLE],
                  "patterns": " ".join(p for p in chosen if p not in event_types.SUBSCRIBABLE)}
    return render("notifications/webhook_form.html", request, {
        "webhook": row, "values": values, "errors": errors or {}, "partners": await _partners(conn, request),
        "partner_choice": scope(request) is None},
        status=status)


def _form_values(form: Mapping[str, Any]) -> dict[str, Any]:
    return {"url": form.get("url", ""), "description": form.get("description", ""),
            "partner_id": form.get("partner_id", ""), "enabled": "enabled" in form,
            "events": form.getall("events", []) if hasattr(form, "getall") else [],
            "patterns": form.get("patterns", "")}


@AREA.page("/notifications/webhooks/new", permission="notifications.add")
async def new_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        scope(request)
        return await _form_page(conn, request)


@AREA.page("/notifications/webhooks", permission="notifications.add", method="POST")
async def add_form(request: web.Request) -> web.StreamResponse:
    """Add a webhook; the answer is the webhook's page with its secret, shown this once."""
    form = await request.post()
    async with request.app[keys.POOL].acquire() as conn:
        try:
            data = _form(form)
            row, secret = await create(conn, request, WebhookIn(
                url=data.url, events=data.events, partner_id=data.partner_id, description=data.description,
                enabled=data.enabled))
        except schemas.Invalid as e:
            return await _form_page(conn, request, values=_form_values(form), errors=e.errors, status=422)
        return await _detail(conn, request, row, secret=secret, created=True)


async def _detail(conn: Connection, request: web.Request, row: asyncpg.Record, *, secret: str = "",
                  created: bool = False) -> web.Response:
    try:
        q = schemas.from_strings(request.query, DeliveryQuery)
    except schemas.Invalid:
        q = DeliveryQuery()
    page = await _page_of_deliveries(conn, row["id"], q)
    return render("notifications/webhook.html", request, {
        "webhook": row, "deliveries": page, "status_filter": q.status or "", "before": q.before,
        "secret": secret, "created": created, "done": request.query.get("done", "")})


@AREA.page("/notifications/webhooks/{id}", permission="notifications.view")
async def detail_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        return await _detail(conn, request, await webhook_or_404(conn, request))


@AREA.page("/notifications/webhooks/{id}/edit", permission="notifications.edit")
async def edit_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        return await _form_page(conn, request, row=await webhook_or_404(conn, request))


@AREA.page("/notifications/webhooks/{id}", permission="notifications.edit", method="POST")
async def edit_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    async with request.app[keys.POOL].acquire() as conn:
        row = await webhook_or_404(conn, request)
        try:
            data = _form(form)
            await change(conn, request, row, {"url": data.url, "events": data.events, "partner_id": data.partner_id,
                                              "description": data.description, "enabled": data.enabled})
        except schemas.Invalid as e:
            return await _form_page(conn, request, row=row, values=_form_values(form), errors=e.errors, status=422)
    raise web.HTTPFound(f"{BASE}/{row['id']}?done=saved")


@AREA.page("/notifications/webhooks/{id}/secret", permission="notifications.edit", method="POST")
async def secret_form(request: web.Request) -> web.StreamResponse:
    """Reveal (``action=reveal``) or rotate (``action=rotate``) the secret; the page shows it."""
    form = await request.post()
    action = form.get("action")
    if action not in ("reveal", "rotate"):
        raise web.HTTPBadRequest(text="action is reveal or rotate")
    async with request.app[keys.POOL].acquire() as conn:
        row = await webhook_or_404(conn, request)
        secret = await (rotate(conn, request, row) if action == "rotate" else reveal(conn, request, row))
        return await _detail(conn, request, row, secret=secret)


@AREA.page("/notifications/webhooks/{id}/test", permission="notifications.edit", method="POST")
async def test_form(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await webhook_or_404(conn, request)
        delivery_id = await ping(conn, request, row)
    raise web.HTTPFound(f"{BASE}/deliveries/{delivery_id}?done=test")


@AREA.page("/notifications/webhooks/{id}/delete", permission="notifications.delete", method="POST")
async def delete_form(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        await remove(conn, request, await webhook_or_404(conn, request))
    raise web.HTTPFound(f"{BASE}?done=deleted")


@AREA.page("/notifications/webhooks/deliveries/{id}", permission="notifications.view")
async def delivery_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await delivery_or_404(conn, request)
        tried = await store.attempts(conn, row["id"])
    body = event_types.envelope(row["event_id"], row["type"], row["occurred_at"], row["payload"])
    return render("notifications/webhook_delivery.html", request, {
        "delivery": row, "attempts": tried, "body": _pretty(body), "done": request.query.get("done", "")})


def _pretty(body: bytes) -> str:
    return json.dumps(json.loads(body), indent=2, ensure_ascii=False)


@AREA.page("/notifications/webhooks/deliveries/{id}/replay", permission="notifications.edit", method="POST")
async def replay_form(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await delivery_or_404(conn, request)
        await replay(conn, request, row)
    raise web.HTTPFound(f"{BASE}/deliveries/{row['id']}?done=replayed")


# -- the API ------------------------------------------------------------------------------------

@AREA.api("GET", "/webhooks", permission="notifications.view", response=list[WebhookOut], summary="List webhooks")
async def api_list(request: web.Request) -> web.StreamResponse:
    """The webhooks the caller sees (a partner's key: its partner's), without their secrets."""
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json([out(r) for r in await store.webhooks(conn, scope(request))])


@AREA.api("POST", "/webhooks", permission="notifications.add", body=WebhookIn, response=WebhookCreated, status=201,
          summary="Add a webhook")
async def api_add(request: web.Request) -> web.StreamResponse:
    """Events matching `events` are POSTed to `url`, signed with `secret` (shown this once; see
    docs/webhooks.md for the signature). A partner's key makes its partner's webhook whatever
    `partner_id` says."""
    data = await schemas.body(request, WebhookIn)
    async with request.app[keys.POOL].acquire() as conn:
        row, secret = await create(conn, request, data)
    return schemas.json(msgspec.convert({**msgspec.structs.asdict(out(row)), "secret": secret}, WebhookCreated),
                        status=201)


@AREA.api("GET", "/webhooks/{id}", permission="notifications.view", response=WebhookOut, summary="Get a webhook")
async def api_get(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(out(await webhook_or_404(conn, request)))


@AREA.api("PATCH", "/webhooks/{id}", permission="notifications.edit", body=WebhookPatch, response=WebhookOut,
          summary="Change a webhook")
async def api_change(request: web.Request) -> web.StreamResponse:
    """What is given changes; a disabled webhook gets no new deliveries (those pending wait for it)."""
    patch = await schemas.body(request, WebhookPatch)
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    async with request.app[keys.POOL].acquire() as conn:
        row = await webhook_or_404(conn, request)
        await change(conn, request, row, changes)
        return schemas.json(out(await webhook_or_404(conn, request)))


@AREA.api("DELETE", "/webhooks/{id}", permission="notifications.delete", response=Deleted,
          summary="Delete a webhook")
async def api_delete(request: web.Request) -> web.StreamResponse:
    """With its deliveries and their attempts."""
    async with request.app[keys.POOL].acquire() as conn:
        row = await webhook_or_404(conn, request)
        await remove(conn, request, row)
    return schemas.json(Deleted(row["id"]))


@AREA.api("POST", "/webhooks/{id}/secret", permission="notifications.edit", response=Secret,
          summary="Rotate a webhook's secret")
async def api_rotate(request: web.Request) -> web.StreamResponse:
    """A new secret, shown this once; deliveries from now on are signed with it alone."""
    async with request.app[keys.POOL].acquire() as conn:
        row = await webhook_or_404(conn, request)
        secret = await rotate(conn, request, row)
    return schemas.json(Secret(webhook_id=row["id"], secret=secret))


@AREA.api("POST", "/webhooks/{id}/test", permission="notifications.edit", response=Pinged, status=201,
          summary="Send a webhook a test event")
async def api_test(request: web.Request) -> web.StreamResponse:
    """A `webhook.ping` event to this webhook alone (whatever it subscribes to)."""
    async with request.app[keys.POOL].acquire() as conn:
        delivery_id = await ping(conn, request, await webhook_or_404(conn, request))
    return schemas.json(Pinged(delivery_id=delivery_id), status=201)


@AREA.api("GET", "/webhooks/{id}/deliveries", permission="notifications.view", query=DeliveryQuery,
          response=Deliveries, summary="A webhook's deliveries")
async def api_deliveries(request: web.Request) -> web.StreamResponse:
    """Newest first, each with its last attempt's answer; `next` is the `before` of the next page."""
    q = schemas.query(request, DeliveryQuery)
    async with request.app[keys.POOL].acquire() as conn:
        row = await webhook_or_404(conn, request)
        return schemas.json(await _page_of_deliveries(conn, row["id"], q))


@AREA.api("POST", "/webhook-deliveries/{id}/replay", permission="notifications.edit", response=DeliveryOut,
          summary="Replay a webhook delivery")
async def api_replay(request: web.Request) -> web.StreamResponse:
    """Pending again, due now, its attempts counted afresh (the receiver gets the same `Lastmile-Delivery`)."""
    async with request.app[keys.POOL].acquire() as conn:
        row = await delivery_or_404(conn, request)
        await replay(conn, request, row)
        return schemas.json(delivery_out(await delivery_or_404(conn, request)))


@AREA.api("GET", "/events", permission="notifications.view", query=EventQuery, response=Events,
          summary="The events outbox")
async def api_events(request: web.Request) -> web.StreamResponse:
    """Events after the id `after`, oldest first, once dispatched (within seconds of their commit),
    as webhooks get them; pass the answer's `after` next time. A long transaction (a billing run)
    may commit events with ids below ones already seen: a webhook gets every event, polling by id
    can miss those (docs/webhooks.md)."""
    q = schemas.query(request, EventQuery)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await events.events_after(conn, scope(request), q.after, q.limit)
    items = [EventOut(id=r["id"], type=f"{r['subject']}.{r['name']}", occurred_at=r["occurred_at"],
                      partner_id=r["partner_id"], data=event_types.decode_payload(r["payload"])) for r in rows]
    return schemas.json(Events(items=items, after=items[-1].id if items else q.after))
