"""Finance -> Payment gateways: Stripe's and PayPal's settings (on or off, keys, the webhook URL to
give them, a connection test), the events they sent, and their webhooks (``/hooks/stripe``,
``/hooks/paypal``). Customers' saved cards and the online-payment API are gateway_cards.py's.

Keys are sealed (daemons/secrets.py) as they are saved, never shown again (a hint: their kind
and last four characters) and never given out by the API. The settings are every partner's:
only an administrator of every partner changes them, or sees the events (whose outcomes name
every partner's receipts).

A webhook is answered 400 with nothing written unless its signature holds (Stripe: the
library's check under the signing secret or, during a rotation, the previous one; PayPal:
PayPal's verification API); 200 once its event is kept and its effect made (or it came
before); 503 when the gateway must be asked first and cannot be reached (the gateway delivers
again later).
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlencode

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, oplog_store, schemas
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.finance import common, queries
from admin.finance.area import AREA
from admin.finance.gateways_schemas import Checked, GatewayForm, GatewayOut, GatewayPatch
from admin.payments import online
from admin.payments import online_store as store
from admin.payments.gateways import NAMES, GatewayError, SignatureError
from admin.web import parse_id
from daemons import log

GATEWAYS = web.AppKey("payment_gateways", online.Gateways)
TITLES = {"stripe": "Stripe", "paypal": "PayPal"}
SETTINGS = {"stripe": ("publishable_key", "api_base"), "paypal": ("client_id", "mode", "api_base")}

_log = log.get("lastmile.admin.payments")


async def _open(app: web.Application) -> None:
    app[GATEWAYS] = online.Gateways(app[keys.KEYRING])


async def _close(app: web.Application) -> None:
    if GATEWAYS in app:
        await app[GATEWAYS].close()


AREA.startup.append(_open)
AREA.cleanup.append(_close)


def gateways_of(request: web.Request) -> online.Gateways:
    return request.app[GATEWAYS]


def hint(secret: str) -> str:
    """A key as it is shown: its kind (``sk_live_``) and its last four characters."""
    if not secret:
        return ""
    head = "_".join(secret.split("_")[:2]) + "_" if secret.count("_") >= 2 else ""
    return f"{head}…{secret[-4:]}" if len(secret) > 8 else "…"


def webhook_url(request: web.Request, name: str) -> str:
    base = request.app[keys.SETTINGS].public_url or f"{request.scheme}://{request.host}"
    return f"{base.rstrip('/')}/hooks/{name}"


def _global(who: Principal) -> bool:
    return who.partner_id is None and who.creator_id is None


def _refuse_partner(who: Principal) -> None:
    if not _global(who):
        raise web.HTTPForbidden(text="The payment gateways are every partner's: only an administrator of every "
                                     "partner changes them.")


def out(request: web.Request, row: asyncpg.Record) -> GatewayOut:
    settings = row["settings"] or {}
    try:
        key, hooks = online.secrets_of(row, request.app[keys.KEYRING])
        key_hint = hint(key)
    except online.OnlineError:
        key, hooks, key_hint = "", [], "(sealed under another key: enter it again)"
    if row["name"] == "stripe":
        mode = "test" if "_test_" in key else ("live" if key else "")
    else:
        mode = str(settings.get("mode") or "live")
    return GatewayOut(
        name=row["name"], enabled=row["enabled"], mode=mode, publishable_key=str(settings.get("publishable_key", "")),
        client_id=str(settings.get("client_id", "")), api_base=str(settings.get("api_base", "")),
        secret_key_set=row["secret_key"] is not None, secret_key_hint=key_hint,
        webhook_secret_set=row["webhook_secret"] is not None, previous_webhook_secret_set=len(hooks) > 1,
        webhook_url=webhook_url(request, row["name"]), updated_by=row["updated_by"], updated_at=row["updated_at"])


async def _row(conn: Connection, name: str, *, lock: bool = False) -> asyncpg.Record:
    if name not in NAMES:
        raise web.HTTPNotFound()
    row = await store.gateway(conn, name, lock=lock)
    if row is None:
        raise web.HTTPNotFound()
    return row


def _checked(name: str, values: dict[str, Any]) -> None:
    errors: dict[str, str] = {}
    if name == "stripe":
        if values.get("secret_key") and not values["secret_key"].startswith(("sk_", "rk_")):
            errors["secret_key"] = "a Stripe secret key starts with sk_ (or rk_ for a restricted key)"  # noqa: S105
        if values.get("publishable_key") and not values["publishable_key"].startswith("pk_"):
            errors["publishable_key"] = "a Stripe publishable key starts with pk_"
        for field in ("webhook_secret", "previous_webhook_secret"):
            if values.get(field) and not values[field].startswith("whsec_"):
                errors[field] = "a Stripe signing secret starts with whsec_"
    if errors:
        raise schemas.Invalid(errors)


async def save(conn: Connection, request: web.Request, name: str, changes: dict[str, Any]) -> asyncpg.Record:
    """Apply ``changes`` (GatewayPatch's fields) to gateway ``name``, sealing keys, with its line in the
    operations log (what changed; keys by a keyed fingerprint, never themselves)."""
    who = keys.principal(request)
    _refuse_partner(who)
    _checked(name, changes)
    keyring = request.app[keys.KEYRING]
    async with conn.transaction():
        row = await _row(conn, name, lock=True)
        key, hooks = "", list[str]()
        with contextlib.suppress(online.OnlineError):  # sealed under another key: what is entered now replaces it
            key, hooks = online.secrets_of(row, keyring)
        settings = dict(row["settings"] or {})
        values: dict[str, Any] = {}
        changed: list[str] = []
        if "enabled" in changes and changes["enabled"] != row["enabled"]:
            values["enabled"] = changes["enabled"]
            changed.append("enabled" if changes["enabled"] else "disabled")
        for field in SETTINGS[name]:
            if field in changes and changes[field] != settings.get(field, ""):
                settings[field] = changes[field]
                changed.append(field)
        if settings != (row["settings"] or {}):
            values["settings"] = settings
        if changes.get("secret_key") and changes["secret_key"] != key:
            values["secret_key"] = keyring.seal(changes["secret_key"], online.secret_purpose(name, "secret_key"))
            changed.append("secret key")
        new_hooks = list(hooks)
        if changes.get("webhook_secret") and (not hooks or changes["webhook_secret"] != hooks[0]):
            # A new signing secret: the one it replaces stays accepted (Stripe's rotation) until forgotten.
            new_hooks = [changes["webhook_secret"], *hooks[:1]] if name == "stripe" else [changes["webhook_secret"]]
        if name == "stripe" and changes.get("previous_webhook_secret"):
            new_hooks = [new_hooks[0] if new_hooks else "", changes["previous_webhook_secret"]]
        if name == "stripe" and changes.get("forget_previous_webhook_secret"):
            new_hooks = new_hooks[:1]
        new_hooks = [h for h in new_hooks if h]
        if new_hooks != hooks:
            purpose = online.secret_purpose(name, "webhook_secret")
            values["webhook_secret"] = keyring.seal("\n".join(new_hooks), purpose) if new_hooks else None
            changed.append("webhook secret" if name == "stripe" else "webhook id")
        if not values:
            return row
        values["updated_by"] = who.name
        after = await store.update_gateway(conn, name, values)
        fingerprint = keyring.fingerprint
        await oplog_store.record(
            conn, who, keys.client_address(request), "update", "payment_gateway", None,
            summary=f"{TITLES[name]}: changed {', '.join(changed)}",
            before={"enabled": row["enabled"], "settings": row["settings"],
                    "secret_key": fingerprint(key, "gateway") if key else None},
            after={"enabled": after["enabled"], "settings": after["settings"],
                   "secret_key": fingerprint(changes["secret_key"], "gateway") if "secret_key" in values
                   else (fingerprint(key, "gateway") if key else None)})
    return after


async def check(request: web.Request, row: asyncpg.Record) -> Checked:
    try:
        message = await gateways_of(request).of_row(row).check()
    except (GatewayError, online.OnlineError) as e:
        return Checked(False, str(e))
    return Checked(True, message)


# -- pages ---------------------------------------------------------------------------------------

def _render(request: web.Request, rows: list[asyncpg.Record], events: dict[str, list[asyncpg.Record]], *,
            errors: dict[str, dict[str, str]] | None = None, values: dict[str, dict[str, Any]] | None = None,
            status: int = 200) -> web.Response:
    who = keys.principal(request)
    shown = [out(request, r) for r in rows]
    return common.render("finance/gateways.html", request, {
        "gateways": shown, "titles": TITLES, "events": events, "errors": errors or {}, "values": values or {},
        "done": request.query.get("done", ""), "which": request.query.get("gateway", ""),
        "message": request.query.get("message", ""), "ok": request.query.get("ok", ""),
        "may_edit": who.can("finance.edit") and _global(who), "may_see_events": _global(who),
        "not_found": request.query.get("customer_missing", "")}, status=status)


async def _page_data(conn: Connection, request: web.Request) -> tuple[list[asyncpg.Record], dict[str, list[Any]]]:
    rows = await store.gateways(conn)
    who = keys.principal(request)
    events = {r["name"]: await store.events(conn, r["name"]) for r in rows} if _global(who) else {}
    return rows, events


@AREA.page("/finance/gateways", permission="finance.view")
async def gateways_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        rows, events = await _page_data(conn, request)
    return _render(request, rows, events)


@AREA.page("/finance/gateways/{name}", permission="finance.edit", method="POST")
async def save_form(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    form = await request.post()
    values = {k: str(v) for k, v in form.items() if k != "_csrf"}
    async with request.app[keys.POOL].acquire() as conn:
        await _row(conn, name)
        try:
            data = schemas.from_strings(values, GatewayForm)
            changes = {k: v for k, v in msgspec.structs.asdict(data).items()
                       if k in ("enabled", "secret_key", "webhook_secret", "previous_webhook_secret",
                                "forget_previous_webhook_secret") or k in SETTINGS[name]}
            await save(conn, request, name, changes)
        except schemas.Invalid as e:
            rows, events = await _page_data(conn, request)
            safe = {k: v for k, v in values.items() if "secret" not in k}  # keys are not written back into the page
            return _render(request, rows, events, errors={name: e.errors}, values={name: safe}, status=422)
    raise web.HTTPFound(f"/admin/finance/gateways?done=saved&gateway={name}")


@AREA.page("/finance/gateways/{name}/test", permission="finance.edit", method="POST")
async def test_form(request: web.Request) -> web.StreamResponse:
    """Test connection: reach the gateway with its keys as saved."""
    name = request.match_info["name"]
    _refuse_partner(keys.principal(request))
    async with request.app[keys.POOL].acquire() as conn:
        row = await _row(conn, name)
    result = await check(request, row)
    query = {"done": "tested", "gateway": name, "ok": "1" if result.ok else "", "message": result.message[:300]}
    raise web.HTTPFound("/admin/finance/gateways?" + urlencode(query))


@AREA.page("/finance/gateways/cards", permission="finance.view")
async def find_customer(request: web.Request) -> web.StreamResponse:
    """The saved cards of the customer named by its number (or id): the gateway page's search box."""
    text = request.query.get("customer", "").strip()
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn:
        found = await store.customer_by_number(conn, *common.scope(who), text) if text else None
        if found is None and (typed := parse_id(text)) is not None:
            match = await queries.customer(conn, *common.scope(who), typed)
            found = match["id"] if match is not None else None
    if found is None:
        raise web.HTTPFound("/admin/finance/gateways?customer_missing=1")
    raise web.HTTPFound(f"/admin/customers/{found}/cards")


# -- the API ------------------------------------------------------------------------------------

@AREA.api("GET", "/payment-gateways", permission="finance.view", response=list[GatewayOut],
          summary="The payment gateways' settings")
async def api_gateways(request: web.Request) -> web.StreamResponse:
    """Stripe's and PayPal's settings; keys are never given back (`secret_key_hint`: their kind and last four)."""
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json([out(request, r) for r in await store.gateways(conn)])


@AREA.api("PATCH", "/payment-gateways/{name}", permission="finance.edit", body=GatewayPatch, response=GatewayOut,
          summary="Change a payment gateway's settings")
async def api_update(request: web.Request) -> web.StreamResponse:
    """Keys are sealed as they are saved; an empty key changes nothing. A new Stripe signing secret keeps the
    one before accepted (a rotation) until `forget_previous_webhook_secret`. A key of one partner may not (403)."""
    name = request.match_info["name"]
    _refuse_partner(keys.principal(request))
    patch = await schemas.body(request, GatewayPatch)
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    async with request.app[keys.POOL].acquire() as conn:
        await _row(conn, name)
        row = await save(conn, request, name, changes)
        return schemas.json(out(request, row))


@AREA.api("POST", "/payment-gateways/{name}/test", permission="finance.edit", response=Checked,
          summary="Test a payment gateway's connection")
async def api_test(request: web.Request) -> web.StreamResponse:
    """Reaches the gateway with its saved keys; `ok` and what it said."""
    name = request.match_info["name"]
    _refuse_partner(keys.principal(request))
    async with request.app[keys.POOL].acquire() as conn:
        row = await _row(conn, name)
    return schemas.json(await check(request, row))


# -- webhooks ------------------------------------------------------------------------------------

def _answer(status: int, **body: Any) -> web.Response:
    return web.json_response(body, status=status)


async def _hook(request: web.Request, name: str) -> web.StreamResponse:
    body = await request.read()
    async with request.app[keys.POOL].acquire() as conn:
        try:
            gateway = await gateways_of(request).get(conn, name)
        except online.OnlineError as e:
            return _answer(404, error=str(e))
        try:
            event = await gateway.verify_event(body, request.headers)
        except SignatureError as e:
            _log.warning("webhook_refused", gateway=name, reason=str(e), address=request.remote)
            return _answer(400, error=f"signature: {e}")
        except GatewayError as e:
            _log.warning("webhook_unverified", gateway=name, reason=str(e))
            return _answer(503, error=str(e))
        try:
            outcome = await online.handle_event(conn, gateway, event)
        except GatewayError as e:
            _log.warning("webhook_deferred", gateway=name, event_id=event.event_id, reason=str(e))
            return _answer(503, error=str(e))
    _log.info("webhook", gateway=name, event_id=event.event_id, type=event.type, outcome=outcome)
    return _answer(200, received=True, outcome=outcome)


@AREA.hook("/stripe")
async def stripe_hook(request: web.Request) -> web.StreamResponse:
    return await _hook(request, "stripe")


@AREA.hook("/paypal")
async def paypal_hook(request: web.Request) -> web.StreamResponse:
    return await _hook(request, "paypal")


from admin.finance import gateway_cards  # noqa: E402,F401  # the cards' and online payments' routes join the area
