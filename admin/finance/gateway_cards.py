"""A customer's saved cards (``/admin/customers/{id}/cards``: autopay on or off, remove), its
online payment attempts (refund one through its gateway), and the API the portal pays and
saves cards with (admin/payments/online.py does the work).

Cards are saved by the payer on the gateway's own form (Stripe.js, PayPal's pages): an
operator never types a card number into lastmile, so the pages only show and change what the
customer saved. A partner's administrator sees its partner's customers only (404 otherwise).
``POST /api/v1/customers/{id}/online-payments`` takes an ``Idempotency-Key``: the same key again
answers with the same attempt (and asks the gateway nothing new), the same key for another
payment is refused (409).
"""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

import asyncpg
from aiohttp import web

from admin import keys, schemas
from admin.auth.store import Connection
from admin.finance import common
from admin.finance.area import AREA
from admin.finance.gateways import gateways_of
from admin.finance.gateways_schemas import (
    CardIn,
    CardOut,
    CardPatch,
    ExpiringCard,
    ExpiringQuery,
    OnlinePaymentIn,
    OnlinePaymentOut,
    RefundIn,
    RefundOut,
    SetupIn,
    SetupOut,
)
from admin.payments import online
from admin.payments import online_store as store
from admin.payments.gateways import GatewayError
from admin.web import path_id

IDEMPOTENCY_KEY = "Idempotency-Key"


def _gateways(request: web.Request) -> online.Gateways:
    return gateways_of(request)


def card_out(row: asyncpg.Record) -> CardOut:
    return common.out(CardOut, row)


def attempt_out(attempt: online.Attempt, publishable_key: str | None = None) -> OnlinePaymentOut:
    return OnlinePaymentOut(
        id=attempt.intent_id, gateway=attempt.gateway, purpose=attempt.purpose,  # type: ignore[arg-type]
        status=attempt.status, amount=str(attempt.amount), currency=attempt.currency,
        document_id=attempt.document_id, client_secret=attempt.client_secret, approve_url=attempt.approve_url,
        publishable_key=publishable_key if attempt.client_secret else None, error=attempt.error,
        payment_id=attempt.payment_id, receipt_number=attempt.receipt_number)


def refused(e: Exception) -> web.HTTPException:
    if isinstance(e, online.KeyReused):
        return web.HTTPConflict(text=str(e))
    if isinstance(e, GatewayError):
        return web.HTTPServiceUnavailable(text=str(e)) if e.retryable else web.HTTPBadGateway(text=str(e))
    return web.HTTPConflict(text=str(e))


async def _method_or_404(conn: Connection, request: web.Request) -> tuple[asyncpg.Record, asyncpg.Record]:
    """The saved card of the path and its customer, when the principal sees that customer (404 otherwise)."""
    method = await store.method(conn, path_id(request))
    if method is None:
        raise web.HTTPNotFound()
    return method, await common.customer_or_404(conn, request, method["customer_id"])


async def _publishable_key(conn: Connection, gateway: str) -> str | None:
    row = await store.gateway(conn, gateway)
    return str((row["settings"] or {}).get("publishable_key") or "") or None if row is not None else None


# -- pages ---------------------------------------------------------------------------------------

@AREA.page("/customers/{id}/cards", permission="finance.view")
async def cards_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        customer = await common.customer_or_404(conn, request, path_id(request))
        cards = await store.methods(conn, customer["id"], removed=True)
        attempts = await store.intents(conn, customer["id"])
        reversed_ = await store.reversed_of([a["payment_id"] for a in attempts if a["payment_id"] is not None], conn)
    who = keys.principal(request)
    return common.render("finance/gateway_cards.html", request, {
        "customer": customer, "cards": cards, "attempts": attempts, "describe": online.describe,
        "reversed": reversed_, "may_edit": who.can("finance.edit"), "may_refund": who.can("finance.delete"),
        "done": request.query.get("done", ""), "error": request.query.get("error", "")})


def _back(customer_id: int, **query: str) -> web.HTTPFound:
    return web.HTTPFound(f"/admin/customers/{customer_id}/cards?{urlencode(query)}")


@AREA.page("/finance/cards/{id}/autopay", permission="finance.edit", method="POST")
async def autopay_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    async with request.app[keys.POOL].acquire() as conn:
        method, customer = await _method_or_404(conn, request)
        try:
            await online.set_autopay(conn, method, form.get("on") == "1", keys.principal(request),
                                     keys.client_address(request))
        except online.OnlineError as e:
            raise _back(customer["id"], error=str(e)) from None
    raise _back(customer["id"], done="autopay")


@AREA.page("/finance/cards/{id}/remove", permission="finance.edit", method="POST")
async def remove_form(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        method, customer = await _method_or_404(conn, request)
        try:
            gateway = await _gateways(request).get(conn, method["gateway"], enabled=False)
            await online.remove_card(conn, gateway, method, keys.principal(request), keys.client_address(request))
        except (online.OnlineError, GatewayError) as e:
            raise _back(customer["id"], error=str(e)) from None
    raise _back(customer["id"], done="removed")


async def _refund(conn: Connection, request: web.Request, payment_id: int, reason: str) -> tuple[int, str]:
    payment = await store.payment(conn, payment_id)
    if payment is None:
        raise web.HTTPNotFound()
    customer = await common.customer_or_404(conn, request, payment["customer_id"])
    if payment["gateway"] is None:
        raise web.HTTPConflict(text=f"payment {payment['receipt_no']} did not come through a gateway")
    gateway = await _gateways(request).get(conn, payment["gateway"], enabled=False)
    ref = await online.refund(conn, gateway, payment_id, reason, keys.principal(request), keys.client_address(request),
                              today=common.today())
    return customer["id"], ref


@AREA.page("/finance/online-payments/{id}/refund", permission="finance.delete", method="POST")
async def refund_form(request: web.Request) -> web.StreamResponse:
    """Give an online payment back through its gateway (all of it) and take it back in the ledger."""
    form = await request.post()
    reason = str(form.get("reason", "")).strip()
    async with request.app[keys.POOL].acquire() as conn:
        payment = await store.payment(conn, path_id(request))
        if payment is None:
            raise web.HTTPNotFound()
        customer = await common.customer_or_404(conn, request, payment["customer_id"])
        try:
            await _refund(conn, request, payment["id"], reason)
        except (online.OnlineError, GatewayError) as e:
            raise _back(customer["id"], error=str(e)) from None
    raise _back(customer["id"], done="refunded")


# -- the API ------------------------------------------------------------------------------------

@AREA.api("GET", "/customers/{id}/payment-methods", permission="finance.view", response=list[CardOut],
          summary="A customer's saved cards")
async def api_cards(request: web.Request) -> web.StreamResponse:
    """Brand, last four digits and expiry only: lastmile never has the card's number."""
    async with request.app[keys.POOL].acquire() as conn:
        customer = await common.customer_or_404(conn, request, path_id(request))
        return schemas.json([card_out(r) for r in await store.methods(conn, customer["id"])])


@AREA.api("POST", "/customers/{id}/payment-methods/setups", permission="finance.add", body=SetupIn,
          response=SetupOut, status=201, summary="Begin saving a card")
async def api_setup(request: web.Request) -> web.StreamResponse:
    """What the payer saves the card with: Stripe.js `confirmCardSetup(client_secret)` (with
    `publishable_key`), or PayPal's `approve_url`; then POST its `setup_ref` to the customer's payment methods."""
    data = await schemas.body(request, SetupIn)
    async with request.app[keys.POOL].acquire() as conn:
        customer = await common.customer_or_404(conn, request, path_id(request))
        try:
            gateway = await _gateways(request).get(conn, data.gateway)
            setup = await online.start_setup(conn, gateway, customer["id"], return_url=data.return_url,
                                             cancel_url=data.cancel_url)
        except (online.OnlineError, GatewayError) as e:
            raise refused(e) from None
        key = await _publishable_key(conn, data.gateway) if setup.client_secret else None
    return schemas.json(SetupOut(gateway=data.gateway, setup_ref=setup.external_id, client_secret=setup.client_secret,
                                 approve_url=setup.approve_url, publishable_key=key), 201)


@AREA.api("POST", "/customers/{id}/payment-methods", permission="finance.add", body=CardIn, response=CardOut,
          status=201, summary="Keep the card a setup saved")
async def api_add_card(request: web.Request) -> web.StreamResponse:
    """Asks the gateway for the setup's card (it must be this customer's, and finished) and keeps its
    token, brand, last four digits and expiry. A card kept before answers 200."""
    data = await schemas.body(request, CardIn)
    async with request.app[keys.POOL].acquire() as conn:
        customer = await common.customer_or_404(conn, request, path_id(request))
        try:
            gateway = await _gateways(request).get(conn, data.gateway)
            row, created = await online.finish_setup(conn, gateway, customer["id"], data.setup_ref,
                                                     keys.principal(request), keys.client_address(request))
        except (online.OnlineError, GatewayError) as e:
            raise refused(e) from None
    return schemas.json(card_out(row), 201 if created else 200)


@AREA.api("PATCH", "/payment-methods/{id}", permission="finance.edit", body=CardPatch, response=CardOut,
          summary="Turn autopay on or off for a saved card")
async def api_card_autopay(request: web.Request) -> web.StreamResponse:
    """Autopay on: the worker charges this card for the customer's invoices on their due date."""
    data = await schemas.body(request, CardPatch)
    async with request.app[keys.POOL].acquire() as conn:
        method, _ = await _method_or_404(conn, request)
        try:
            await online.set_autopay(conn, method, data.autopay, keys.principal(request), keys.client_address(request))
        except online.OnlineError as e:
            raise refused(e) from None
        row = await store.method(conn, method["id"])
        assert row is not None
    return schemas.json(card_out(row))


@AREA.api("DELETE", "/payment-methods/{id}", permission="finance.edit", response=schemas.Deleted,
          summary="Remove a saved card")
async def api_remove_card(request: web.Request) -> web.StreamResponse:
    """Removes it at the gateway too; autopay ends with it."""
    async with request.app[keys.POOL].acquire() as conn:
        method, _ = await _method_or_404(conn, request)
        try:
            gateway = await _gateways(request).get(conn, method["gateway"], enabled=False)
            await online.remove_card(conn, gateway, method, keys.principal(request), keys.client_address(request))
        except (online.OnlineError, GatewayError) as e:
            raise refused(e) from None
    return schemas.json(schemas.Deleted(method["id"]))


def _idempotency_key(request: web.Request) -> str:
    """The caller's key under its own name (two callers' keys never meet), or a new one."""
    given = request.headers.get(IDEMPOTENCY_KEY)
    if given is None:
        return f"online:{secrets.token_urlsafe(18)}"
    if not 1 <= len(given) <= 200 or not given.isprintable():
        raise schemas.Invalid({IDEMPOTENCY_KEY: "at most 200 printable characters"})
    who = keys.principal(request)
    caller = f"key:{who.api_key_id}" if who.api_key_id is not None else f"admin:{who.admin_id}"
    return f"online:{caller}:{given}"


@AREA.api("POST", "/customers/{id}/online-payments", permission="finance.add", body=OnlinePaymentIn,
          response=OnlinePaymentOut, status=201, summary="Pay an invoice or top up online")
async def api_pay(request: web.Request) -> web.StreamResponse:
    """Starts a payment through a gateway: with a saved card (`method_id`) it is often `succeeded` at once
    (or `requires_action`: 3-D Secure, finished by Stripe.js with `client_secret`); otherwise the payer
    finishes it (Stripe.js, or PayPal's `approve_url`), and the gateway's webhook records it. Send an
    `Idempotency-Key`: the same key again answers with the same attempt (200), never a second charge;
    the same key for another payment is 409."""
    data = await schemas.body(request, OnlinePaymentIn)
    key = _idempotency_key(request)
    async with request.app[keys.POOL].acquire() as conn:
        customer = await common.customer_or_404(conn, request, path_id(request))
        amount = common.amount(data.amount, customer["currency"], "amount") if data.amount is not None else None
        try:
            gateway = await _gateways(request).get(conn, data.gateway)
            attempt = await online.start(
                conn, gateway, customer_id=customer["id"], purpose=data.purpose, key=key, amount=amount,
                document_id=data.document_id, method_id=data.method_id, return_url=data.return_url,
                cancel_url=data.cancel_url, by=keys.principal(request).name, today=common.today())
        except (online.OnlineError, GatewayError) as e:
            raise refused(e) from None
        publishable = await _publishable_key(conn, data.gateway)
    return schemas.json(attempt_out(attempt, publishable), 201 if attempt.created else 200)


@AREA.api("POST", "/online-payments/{id}/finish", permission="finance.add", response=OnlinePaymentOut,
          summary="Finish an online payment after the payer came back")
async def api_finish(request: web.Request) -> web.StreamResponse:
    """PayPal: captures the order the payer approved. Stripe: reads the payment again after 3-D Secure.
    Recorded once, whether this or the gateway's webhook comes first."""
    async with request.app[keys.POOL].acquire() as conn:
        row = await store.intent(conn, path_id(request))
        if row is None:
            raise web.HTTPNotFound()
        await common.customer_or_404(conn, request, row["customer_id"])
        try:
            gateway = await _gateways(request).get(conn, row["gateway"])
            attempt = await online.finish(conn, gateway, row["id"], by=keys.principal(request).name,
                                          today=common.today())
        except (online.OnlineError, GatewayError) as e:
            raise refused(e) from None
    return schemas.json(attempt_out(attempt))


@AREA.api("POST", "/payments/{id}/gateway-refund", permission="finance.delete", body=RefundIn, response=RefundOut,
          summary="Refund an online payment through its gateway")
async def api_refund(request: web.Request) -> web.StreamResponse:
    """All of it: the gateway gives the money back and the payment is taken back in the ledger (its
    receipt void, what it paid open again). A second refund of it is refused (409)."""
    data = await schemas.body(request, RefundIn)
    async with request.app[keys.POOL].acquire() as conn:
        try:
            _, ref = await _refund(conn, request, path_id(request), data.reason)
        except (online.OnlineError, GatewayError) as e:
            raise refused(e) from None
    return schemas.json(RefundOut(payment_id=path_id(request), refund_ref=ref))


@AREA.api("GET", "/payment-methods/expiring", permission="finance.view", query=ExpiringQuery,
          response=list[ExpiringCard], summary="Saved cards that expire next month")
async def api_expiring(request: web.Request) -> web.StreamResponse:
    """For telling their owners (the notifications issue sends these): every saved card whose expiry is
    next month, with its customer. A partner's key: its partner's customers only."""
    query = common.query(request, ExpiringQuery)
    who = keys.principal(request)
    partner = who.partner_id if who.partner_id is not None else query.partner_id
    async with request.app[keys.POOL].acquire() as conn:
        rows = await online.expiring_next_month(conn, common.today(), partner)
    if who.creator_id is not None:
        rows = []  # a creator-limited principal's customers are not scoped here: none rather than all
    return schemas.json([common.out(ExpiringCard, r) for r in rows])
