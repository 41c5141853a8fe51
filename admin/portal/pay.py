"""Paying online from the portal (/portal/finance/...): an invoice or proforma's open amount, a
top-up of the balance, the customer's saved cards (add one, remove one, autopay on or off).

admin/payments/online.py does the work; these pages are its portal face. The gateway is Stripe
(pay_store.py ``portal_gateway``: enabled, with its keys): without it there is no Pay button and
the pages say that payments online are not available. The card never reaches lastmile: the
payer types it into Stripe.js (admin/static/portal-pay.js), which saves it through a SetupIntent
(``confirmCardSetup``, 3-D Secure included); the pay form then names that setup and lastmile
charges the card it saved (``online.start`` with the card), Stripe.js finishing a 3-D Secure step
(``confirmCardPayment``) on the result page. A card the payer did not ask to keep is removed once
its payment ended. A saved card pays without JavaScript.

**Idempotency.** Each pay page carries a key made when the page was rendered; the attempt is
``online.start``'s under ``portal:<customer>:<key>``: a double-click, a reload of the POST or a
retry after a lost answer finds the attempt made first (one charge), and the key of one page
used for another payment is refused (409).

**Scope.** Every document, card and attempt is looked up with the session's customer
(pay_store.py, online_store.open_document): another customer's id is 404, as one that does not
exist. Writes are refused to staff looking as the customer (acting.py) and written to the
operations log as ``customer:<number>``.

**CSP.** The pay and card pages send a Content-Security-Policy of their own that adds Stripe.js's
origins (production js.stripe.com and api.stripe.com, or the gateway's ``api_base`` under
tests) to script-src, frame-src and connect-src; nothing inline is allowed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from aiohttp import web

from admin import keys
from admin.auth.store import Connection
from admin.billing import money
from admin.finance import common as finance
from admin.finance.gateways import gateways_of
from admin.payments import online
from admin.payments import online_store as store
from admin.payments.gateways import Gateway, GatewayError
from admin.portal import acting, dashboard, mandates_store, pages, pay_store
from admin.portal import finance as portal_finance
from admin.portal.common import AREA, Customer, customer
from admin.web import PORTAL_CUSTOMER, parse_id, path_id

KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
TOP_UP_MIN = Decimal("1")
TOP_UP_MAX = Decimal("5000")
"""A top-up's bounds, in the customer's currency."""
STRIPE_JS = "https://js.stripe.com/v3/"
STRIPE_ORIGINS = {"script": ("https://js.stripe.com", "https://*.js.stripe.com"),
                  "frame": ("https://js.stripe.com", "https://*.js.stripe.com", "https://hooks.stripe.com"),
                  "connect": ("https://api.stripe.com",)}
"""What Stripe.js needs (docs.stripe.com/security/guide, Content Security Policy)."""
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?")
UNAVAILABLE = "Payments online are not available. Pay by bank transfer, or ask us how else you can pay."
NOTICES = {"saved": "Your card is saved.", "removed": "The card is removed.", "autopay-on":
           "Autopay is on: this card pays your invoices on their due date.", "autopay-off": "Autopay is off."}
STATUS_TEXT = {
    "succeeded": "Paid",
    "processing": "Your payment is being processed: it is recorded as soon as your bank confirms it.",
    "requires_action": "Your bank asks you to confirm this payment.",
    "created": "This payment was not finished.",
    "failed": "The payment did not go through.",
    "canceled": "The payment was canceled.",
}


# -- what every page of paying shares ------------------------------------------------------------

def stripe_js(row: asyncpg.Record | Mapping[str, Any]) -> tuple[str, dict[str, tuple[str, ...]]]:
    """Stripe.js's URL and the origins the page lets it load from, frame and talk to: Stripe's, or
    under tests the emulator's at the gateway's ``api_base`` (which serves its own Stripe.js)."""
    base = str((row["settings"] or {}).get("api_base") or "")
    if base:
        parts = urlsplit(base)
        origin = f"{parts.scheme}://{parts.netloc}"
        if _ORIGIN.fullmatch(origin):
            return f"{origin}/js.stripe.com/v3/", {"script": (origin,), "frame": (origin,), "connect": (origin,)}
    return STRIPE_JS, STRIPE_ORIGINS


def csp(row: asyncpg.Record | Mapping[str, Any]) -> str:
    """The pay pages' Content-Security-Policy: admin/auth/middleware.py's with Stripe.js's origins."""
    _, o = stripe_js(row)
    return ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
            f"script-src 'self' {' '.join(o['script'])}; frame-src {' '.join(o['frame'])}; "
            f"connect-src 'self' {' '.join(o['connect'])}; frame-ancestors 'none'; form-action 'self'")


def render(template: str, request: web.Request, context: Mapping[str, Any], row: asyncpg.Record | None,
           status: int = 200) -> web.Response:
    """A pay page; with the gateway, Stripe.js's URL and key in the context and its CSP."""
    me = customer(request)
    extra: dict[str, Any] = {"available": row is not None, "unavailable": UNAVAILABLE,
                             "impersonating": me.impersonator_id is not None,
                             "impersonating_text": acting.IMPERSONATING,
                             "section": "cards" if template.startswith("portal/cards") else ""}
    if row is not None:
        extra["stripe_js"], _ = stripe_js(row)
        extra["publishable_key"] = str((row["settings"] or {}).get("publishable_key") or "")
    response = pages.render(template, request, {**extra, **context}, status=status)
    if row is not None:
        response.headers["Content-Security-Policy"] = csp(row)
    return response


def new_key() -> str:
    """A pay page's idempotency key (made when the page is rendered)."""
    return secrets.token_urlsafe(24)


def stored_key(me: Customer, given: str) -> str:
    """The attempt's key: the page's, under the customer's id (two customers' keys never meet)."""
    if not KEY.fullmatch(given):
        raise web.HTTPBadRequest(text="This form has no valid payment key: open the page again.")
    return f"portal:{me.customer_id}:{given}"


def forget_token(me: Customer, intent_id: int) -> str:
    """What the result page's URL carries to remove, once the payment ended, the card the payer
    did not ask to keep (bound to the session: no other page can make it remove a card)."""
    return hmac.new(me.csrf_token.encode(), f"forget:{intent_id}".encode(), hashlib.sha256).hexdigest()[:24]


def top_up_amount(text: str, currency: str) -> Decimal:
    """A top-up's amount as typed, or Invalid with the reason."""
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation:
        raise ValueError("Type an amount, like 20.00.") from None
    if not value.is_finite():
        raise ValueError("Type an amount, like 20.00.")
    if value <= 0:
        raise ValueError("The amount must be more than 0.")
    if money.quantize(value, currency) != value:
        digits = money.digits(currency)
        raise ValueError(f"{currency} has {digits} decimal{'' if digits == 1 else 's'}: "
                         f"type at most {digits} after the point.")
    if not TOP_UP_MIN <= value <= TOP_UP_MAX:
        raise ValueError(f"Top up between {TOP_UP_MIN} and {TOP_UP_MAX} {currency}.")
    return value


async def _gateway(request: web.Request, conn: Connection) -> tuple[asyncpg.Record | None, Gateway | None]:
    row = await pay_store.portal_gateway(conn)
    if row is None:
        return None, None
    try:
        return row, gateways_of(request).of_row(row)
    except online.OnlineError:
        return None, None  # its keys do not open: as if it were off


async def _document_or_404(conn: Connection, me: Customer, document_id: int) -> asyncpg.Record:
    doc = await store.open_document(conn, me.customer_id, document_id)
    if doc is None or doc["kind"] not in ("invoice", "proforma"):
        raise web.HTTPNotFound(text="no such invoice")
    return doc


def payable(doc: asyncpg.Record) -> bool:
    return doc["status"] != "void" and Decimal(doc["open"]) > 0


async def _card_or_404(conn: Connection, me: Customer, method_id: int) -> asyncpg.Record:
    row = await pay_store.card(conn, me.customer_id, method_id)
    if row is None:
        raise web.HTTPNotFound(text="no such card")
    return row


# -- paying an invoice, topping up ---------------------------------------------------------------

async def _pay_page(request: web.Request, *, doc: asyncpg.Record | None, error: str = "",
                    amount: str = "", status: int = 200, key: str | None = None) -> web.Response:
    """The pay (or top-up) page; ``key``: the form's again (the gateway did not answer: a retry
    must ask under the same key), else a new one."""
    me = customer(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await pay_store.portal_gateway(conn)
        cards = await pay_store.cards(conn, me.customer_id, pay_store.PORTAL_GATEWAY) if row is not None else []
        b = await store.customer(conn, me.customer_id)
    assert b is not None
    context = {"doc": doc, "cards": cards, "key": key or new_key(), "error": error, "currency": b["currency"],
               "kinds": dashboard.KINDS, "amount": amount, "top_up_min": TOP_UP_MIN, "top_up_max": TOP_UP_MAX,
               "payable": doc is None or payable(doc), "amount_invalid": status == 422,
               "action": f"/portal/finance/documents/{doc['id']}/pay" if doc is not None else "/portal/finance/top-up"}
    return render("portal/pay.html", request, context, row, status)


@AREA.portal("/finance/documents/{id}/pay", access=PORTAL_CUSTOMER)
async def pay_page(request: web.Request) -> web.StreamResponse:
    """What is left to pay of an invoice or proforma, and how to pay it: a saved card or a new one."""
    me = customer(request)
    async with request.app[keys.POOL].acquire() as conn:
        doc = await _document_or_404(conn, me, path_id(request))
    return await _pay_page(request, doc=doc)


@AREA.portal("/finance/top-up", access=PORTAL_CUSTOMER)
async def top_up_page(request: web.Request) -> web.StreamResponse:
    """Add money to the balance (a prepaid customer's days, or credit for the next invoice)."""
    return await _pay_page(request, doc=None)


async def _start(request: web.Request, conn: Connection, me: Customer, gateway: Gateway, *, purpose: str,
                 amount: Decimal, document_id: int | None) -> web.StreamResponse:
    """The attempt of the pay form (its key, its card: saved, or saved now by Stripe.js), then the
    result page."""
    form = await request.post()
    key = stored_key(me, str(form.get("key", "")))
    number = await pay_store.customer_number(conn, me.customer_id)
    who, address = acting.actor(number), keys.client_address(request)
    made = await pay_store.attempt_of_key(conn, me.customer_id, key)
    if made is not None and (made["purpose"] != purpose or made["document_id"] != document_id):
        raise web.HTTPConflict(text="This form was used for another payment: open the page again.")
    if made is not None and (made["external_id"] is not None or made["status"] in online.TERMINAL):
        # this page's payment was asked for, and answered, before: its result, nothing charged again
        # (one the gateway never answered goes on below: online.start asks again under its key)
        raise web.HTTPSeeOther(f"/portal/finance/online/{made['id']}")
    chosen = str(form.get("card", ""))
    new = chosen == "new"
    if new:
        setup_ref = str(form.get("setup_ref", ""))
        if not setup_ref:
            raise web.HTTPBadRequest(text="The new card was not saved by the payment page: try again.")
        card, _ = await online.finish_setup(conn, gateway, me.customer_id, setup_ref, who, address)
    else:
        method_id = parse_id(chosen) if chosen else None
        if method_id is None:
            raise web.HTTPBadRequest(text="Choose a card.")
        card = await _card_or_404(conn, me, method_id)
    attempt = await online.start(conn, gateway, customer_id=me.customer_id, purpose=purpose, key=key, amount=amount,
                                 document_id=document_id, method_id=card["id"], by=who.name, today=finance.today())
    url = f"/portal/finance/online/{attempt.intent_id}"
    if new and form.get("save") != "1":
        if attempt.status in online.TERMINAL:
            await online.remove_card(conn, gateway, card, who, address)
        else:
            url += f"?forget={forget_token(me, attempt.intent_id)}"
    raise web.HTTPSeeOther(url)


@AREA.portal("/finance/documents/{id}/pay", access=PORTAL_CUSTOMER, method="POST")
async def pay_form(request: web.Request) -> web.StreamResponse:
    """Pay the document's open amount (``amount``: what the page showed) with the chosen card."""
    me = acting.refuse_impersonator(request)
    form = await request.post()
    async with request.app[keys.POOL].acquire() as conn:
        doc = await _document_or_404(conn, me, path_id(request))
        _, gateway = await _gateway(request, conn)
        if gateway is None:
            return await _pay_page(request, doc=doc, error=UNAVAILABLE, status=409)
        try:
            amount = Decimal(str(form.get("amount", "")))
        except InvalidOperation:
            amount = Decimal(doc["open"])
        if not amount.is_finite():
            amount = Decimal(doc["open"])
        try:
            return await _start(request, conn, me, gateway, purpose="invoice", amount=amount, document_id=doc["id"])
        except (online.OnlineError, GatewayError) as e:
            error, again = str(e), _retry_key(form, e)
    return await _pay_page(request, doc=doc, error=_plain(error), status=409, key=again)


@AREA.portal("/finance/top-up", access=PORTAL_CUSTOMER, method="POST")
async def top_up_form(request: web.Request) -> web.StreamResponse:
    me = acting.refuse_impersonator(request)
    form = await request.post()
    typed = str(form.get("amount", ""))
    again: str | None = None
    async with request.app[keys.POOL].acquire() as conn:
        _, gateway = await _gateway(request, conn)
        if gateway is None:
            return await _pay_page(request, doc=None, error=UNAVAILABLE, amount=typed, status=409)
        b = await store.customer(conn, me.customer_id)
        assert b is not None
        try:
            amount = top_up_amount(typed, b["currency"])
        except ValueError as e:
            error, status = str(e), 422
        else:
            try:
                return await _start(request, conn, me, gateway, purpose="top_up", amount=amount, document_id=None)
            except (online.OnlineError, GatewayError) as e:
                error, status, again = _plain(str(e)), 409, _retry_key(form, e)
    return await _pay_page(request, doc=None, error=error, amount=typed, status=status, key=again)


def _retry_key(form: Any, e: Exception) -> str | None:
    """The form's key again when the gateway did not answer (the charge may have been made: a retry
    under the same key finds it), else None (a new key)."""
    given = str(form.get("key", ""))
    return given if isinstance(e, GatewayError) and KEY.fullmatch(given) else None


def _plain(error: str) -> str:
    """A refusal as the payer reads it."""
    if "idempotency key" in error:
        return "This form was used for another payment: open the page again."
    return error[:1].upper() + error[1:] if error else "The payment did not go through."


@AREA.portal("/finance/online/{id}", access=PORTAL_CUSTOMER)
async def result_page(request: web.Request) -> web.StreamResponse:
    """A payment attempt after the payer is back: asks the gateway how it ended (``online.finish``,
    recorded once), lets Stripe.js finish a 3-D Secure step, says how it went."""
    me = customer(request)
    intent_id = path_id(request)
    note = ""
    client_secret = None
    async with request.app[keys.POOL].acquire() as conn:
        attempt = await pay_store.attempt(conn, me.customer_id, intent_id)
        if attempt is None:
            raise web.HTTPNotFound(text="no such payment")
        row, gateway = await _gateway(request, conn)
        if gateway is not None and gateway.name == attempt["gateway"] and attempt["external_id"] is not None:
            try:
                if attempt["status"] not in online.TERMINAL and me.impersonator_id is None:
                    number = await pay_store.customer_number(conn, me.customer_id)
                    await online.finish(conn, gateway, intent_id, by=acting.actor(number).name, today=finance.today())
                    again = await pay_store.attempt(conn, me.customer_id, intent_id)
                    assert again is not None
                    attempt = again
                if attempt["status"] == "requires_action" and me.impersonator_id is None:
                    client_secret = (await gateway.payment(attempt["external_id"])).client_secret
            except (online.OnlineError, GatewayError) as e:
                note = str(e)
        forget = request.query.get("forget", "")
        if (forget and gateway is not None and me.impersonator_id is None and attempt["status"] in online.TERMINAL
                and attempt["payment_method_id"] is not None
                and hmac.compare_digest(forget, forget_token(me, intent_id))):
            card = await pay_store.card(conn, me.customer_id, attempt["payment_method_id"])
            if card is not None and not card["autopay"]:
                number = await pay_store.customer_number(conn, me.customer_id)
                try:
                    await online.remove_card(conn, gateway, card, acting.actor(number), keys.client_address(request))
                except GatewayError as e:
                    note = str(e)
        b = await dashboard.money_facts(conn, me.customer_id)
    return render("portal/pay_result.html", request, {
        "a": attempt, "status_text": STATUS_TEXT, "client_secret": client_secret, "note": note,
        "kinds": dashboard.KINDS, "billing": b[0], "explained": b[1], "error": _reason(attempt["error"])},
        row if client_secret else None)


def _reason(error: str) -> str:
    if not error:
        return ""
    return error if error.endswith(".") else error + "."


# -- saved cards ---------------------------------------------------------------------------------

@AREA.portal("/finance/cards", access=PORTAL_CUSTOMER)
async def cards_page(request: web.Request) -> web.StreamResponse:
    """The customer's saved cards (brand, last four, expiry, autopay), add one, remove one."""
    return await _cards_page(request)


async def _cards_page(request: web.Request, *, error: str = "", status: int = 200) -> web.Response:
    me = customer(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await pay_store.portal_gateway(conn)
        cards = await pay_store.cards(conn, me.customer_id, pay_store.PORTAL_GATEWAY) if row is not None else []
        direct_debit = await mandates_store.offered(conn, me.customer_id)
    notice = "" if error else NOTICES.get(request.query.get("done", ""), "")
    return render("portal/cards.html", request, {"cards": cards, "notice": notice, "error": error,
                                                 "lists": portal_finance.LISTS, "pay_online": row is not None,
                                                 "direct_debit": direct_debit},
                  row, status)


@AREA.portal("/finance/cards/setup", access=PORTAL_CUSTOMER, method="POST")
async def card_setup(request: web.Request) -> web.StreamResponse:
    """Begin saving a card (JSON for Stripe.js): the SetupIntent's client secret and its id."""
    me = acting.refuse_impersonator(request)
    async with request.app[keys.POOL].acquire() as conn:
        _, gateway = await _gateway(request, conn)
        if gateway is None:
            return web.json_response({"error": UNAVAILABLE}, status=409)
        try:
            setup = await online.start_setup(conn, gateway, me.customer_id)
        except (online.OnlineError, GatewayError) as e:
            return web.json_response({"error": _plain(str(e))}, status=409)
    return web.json_response({"client_secret": setup.client_secret, "setup_ref": setup.external_id})


@AREA.portal("/finance/cards", access=PORTAL_CUSTOMER, method="POST")
async def card_add(request: web.Request) -> web.StreamResponse:
    """Keep the card Stripe.js saved (``setup_ref``), autopay on if asked."""
    me = acting.refuse_impersonator(request)
    form = await request.post()
    async with request.app[keys.POOL].acquire() as conn:
        _, gateway = await _gateway(request, conn)
        if gateway is None:
            raise web.HTTPConflict(text=UNAVAILABLE)
        number = await pay_store.customer_number(conn, me.customer_id)
        who, address = acting.actor(number), keys.client_address(request)
        try:
            card, _ = await online.finish_setup(conn, gateway, me.customer_id, str(form.get("setup_ref", "")),
                                                who, address)
            if form.get("autopay") == "1":
                await online.set_autopay(conn, card, True, who, address)
        except (online.OnlineError, GatewayError) as e:
            error = _plain(str(e))
        else:
            error = ""
    if error:
        return await _cards_page(request, error=error, status=409)
    raise web.HTTPSeeOther("/portal/finance/cards?done=saved")


@AREA.portal("/finance/cards/{id}/autopay", access=PORTAL_CUSTOMER, method="POST")
async def card_autopay(request: web.Request) -> web.StreamResponse:
    """Autopay on (``on=1``) or off for one of the customer's cards."""
    me = acting.refuse_impersonator(request)
    form = await request.post()
    on = form.get("on") == "1"
    async with request.app[keys.POOL].acquire() as conn:
        card = await _card_or_404(conn, me, path_id(request))
        number = await pay_store.customer_number(conn, me.customer_id)
        try:
            await online.set_autopay(conn, card, on, acting.actor(number), keys.client_address(request))
        except online.OnlineError as e:
            error = _plain(str(e))
        else:
            error = ""
    if error:
        return await _cards_page(request, error=error, status=409)
    raise web.HTTPSeeOther(f"/portal/finance/cards?done=autopay-{'on' if on else 'off'}")


@AREA.portal("/finance/cards/{id}/remove", access=PORTAL_CUSTOMER, method="POST")
async def card_remove(request: web.Request) -> web.StreamResponse:
    """Forget a card here and at the gateway (autopay ends with it)."""
    me = acting.refuse_impersonator(request)
    async with request.app[keys.POOL].acquire() as conn:
        card = await _card_or_404(conn, me, path_id(request))
        number = await pay_store.customer_number(conn, me.customer_id)
        try:
            gateway = await gateways_of(request).get(conn, card["gateway"], enabled=False)
            await online.remove_card(conn, gateway, card, acting.actor(number), keys.client_address(request))
        except (online.OnlineError, GatewayError) as e:
            error = _plain(str(e))
        else:
            error = ""
    if error:
        return await _cards_page(request, error=error, status=409)
    raise web.HTTPSeeOther("/portal/finance/cards?done=removed")
