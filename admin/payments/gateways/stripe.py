"""Stripe, through the official ``stripe`` library (its StripeClient over aiohttp).

Payments are PaymentIntents: one for a payment the payer finishes with Stripe.js (its
``client_secret``; a card that wants 3-D Secure leaves it ``requires_action`` until Stripe.js
has done that step), or one confirmed at once with a saved card (off-session for autopay). A
card is saved with a SetupIntent confirmed by Stripe.js; lastmile then keeps the payment
method's id, brand, last four digits and expiry. Refunds refund the whole PaymentIntent.

Webhooks are checked with the library (``WebhookSignature.verify_header``: an HMAC-SHA256 of
``"{t}.{raw body}"`` under the endpoint's signing secret, a timestamp at most ``tolerance``
seconds old) against each signing secret in turn, so that during a rotation both the new
secret and the previous one are accepted.

Amounts go to Stripe in the currency's minor unit (29.90 EUR is 2990). The parameters sent are
those localstripe (the tests' emulator) knows too: the payment's description goes in its
metadata, for example.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import stripe

from admin.billing import money
from admin.payments.gateways import (
    Card,
    Declined,
    Event,
    GatewayError,
    PaymentRequest,
    Refunded,
    SetupStarted,
    SignatureError,
    Started,
    from_minor_units,
    minor_units,
)

DEFAULT_API_BASE = "https://api.stripe.com"
TOLERANCE_S = 300
STATUSES = {
    "requires_payment_method": "created", "requires_confirmation": "created", "requires_action": "requires_action",
    "processing": "processing", "requires_capture": "processing", "canceled": "canceled", "succeeded": "succeeded",
}
PAYMENT_EVENTS = {
    "payment_intent.created": None, "payment_intent.processing": "processing",
    "payment_intent.requires_action": "requires_action", "payment_intent.canceled": "canceled",
    "payment_intent.payment_failed": "failed", "payment_intent.succeeded": "succeeded",
    "payment_intent.amount_capturable_updated": "processing",
}


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """A field of a StripeObject or of a plain dict (webhook payloads are read as JSON)."""
    try:
        value = obj[key]
    except (KeyError, TypeError, IndexError):
        return default
    return default if value is None else value


def _id(value: Any) -> str | None:
    """A reference that may come expanded (an object) or not (its id)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    found = _get(value, "id")
    return str(found) if found is not None else None


def _translate(e: stripe.StripeError) -> GatewayError:
    """The library's error as lastmile's (HA's mikrotik coordinator does the same at its seam)."""
    text = e.user_message or str(e) or type(e).__name__
    code = str(getattr(e, "code", "") or "")
    if isinstance(e, stripe.CardError):
        return Declined(text, code=code)
    if isinstance(e, stripe.APIConnectionError | stripe.RateLimitError):
        return GatewayError(f"Stripe did not answer: {text}", retryable=True, code=code)
    if isinstance(e, stripe.AuthenticationError):
        return GatewayError("Stripe refused the secret key", code=code)
    if isinstance(e, stripe.IdempotencyError):
        return GatewayError(f"Stripe refused a reused idempotency key: {text}", code="idempotency")
    status = getattr(e, "http_status", None)
    if status is not None and status >= 500:
        return GatewayError(f"Stripe failed: {text}", retryable=True, code=code)
    return GatewayError(f"Stripe refused: {text}", code=code)


def _intent_id(metadata: Any) -> int | None:
    text = _get(metadata, "lastmile_intent")
    return int(text) if isinstance(text, str) and text.isdigit() else None


def _card(pm: Any) -> Card:
    card = _get(pm, "card", {})
    last4 = _get(card, "last4")
    return Card(token=str(_get(pm, "id")), brand=str(_get(card, "brand", "")), last4=str(last4) if last4 else None,
                exp_month=_get(card, "exp_month"), exp_year=_get(card, "exp_year"),
                customer_ref=_id(_get(pm, "customer")))


class StripeGateway:
    name = "stripe"

    def __init__(self, secret_key: str, webhook_secrets: Sequence[str], *, api_base: str = "",
                 timeout: float = 20.0, retries: int = 1, tolerance: int = TOLERANCE_S) -> None:
        self._http = stripe.AIOHTTPClient(timeout=timeout)
        self._client = stripe.StripeClient(secret_key or "sk_missing", http_client=self._http,
                                           base_addresses={"api": api_base or DEFAULT_API_BASE},
                                           max_network_retries=retries)
        self._has_key = bool(secret_key)
        self._secrets = [s for s in webhook_secrets if s]
        self._tolerance = tolerance

    def _need_key(self) -> None:
        if not self._has_key:
            raise GatewayError("Stripe has no secret key yet (Finance -> Payment gateways)")

    def _started(self, pi: Any) -> Started:
        status = STATUSES.get(str(_get(pi, "status")), "created")
        error = _get(_get(pi, "last_payment_error", {}), "message", "")
        if status == "created" and error:
            status = "failed"
        currency = str(_get(pi, "currency", "")).upper()
        amount = None
        if status == "succeeded" and currency:
            amount = from_minor_units(int(_get(pi, "amount_received", _get(pi, "amount"))), money.digits(currency))
        return Started(external_id=str(_get(pi, "id")), status=status, client_secret=_get(pi, "client_secret"),
                       payment_ref=str(_get(pi, "id")) if status == "succeeded" else None, amount=amount,
                       error=str(error))

    async def ensure_customer(self, key: str, customer_id: int, name: str, email: str) -> str | None:
        self._need_key()
        params: dict[str, Any] = {"name": name, "metadata": {"lastmile_customer": str(customer_id)}}
        if email:
            params["email"] = email
        try:
            customer = await self._client.v1.customers.create_async(params, {"idempotency_key": key})  # type: ignore[arg-type]
        except stripe.StripeError as e:
            raise _translate(e) from None
        return str(customer.id)

    async def create_payment(self, request: PaymentRequest) -> Started:
        self._need_key()
        try:
            amount = minor_units(request.amount, money.digits(request.currency))
        except (ValueError, money.MoneyError) as e:
            raise GatewayError(str(e)) from None
        metadata = dict(request.metadata)
        if request.description:
            metadata["description"] = request.description[:500]
        params: dict[str, Any] = {"amount": amount, "currency": request.currency.lower(), "metadata": metadata,
                                  "payment_method_types": ["card"]}
        if request.customer_ref:
            params["customer"] = request.customer_ref
        if request.method_token:
            params["payment_method"] = request.method_token
            params["confirm"] = True
            if request.off_session:
                params["off_session"] = True
        try:
            pi = await self._client.v1.payment_intents.create_async(params, {"idempotency_key": request.key})  # type: ignore[arg-type]
        except stripe.CardError as e:
            # Declined, or (off-session) the card wants its holder for 3-D Secure: Stripe says
            # which intent, when it made one.
            intent = _id(getattr(e.error, "payment_intent", None)) if e.error is not None else None
            if intent:
                return Started(external_id=intent, status="failed", error=e.user_message or str(e))
            raise _translate(e) from None
        except stripe.StripeError as e:
            raise _translate(e) from None
        started = self._started(pi)
        if request.off_session and started.status == "requires_action":
            # Stripe answers an off-session charge that needs 3-D Secure with an error
            # (authentication_required, above); an emulator may leave it waiting instead.
            return Started(started.external_id, "failed", error="the card needs its holder (3-D Secure) to pay")
        return started

    async def finish_payment(self, external_id: str, key: str) -> Started:
        return await self.payment(external_id)  # Stripe.js did the 3-D Secure step: nothing to do but look

    async def payment(self, external_id: str) -> Started:
        self._need_key()
        try:
            pi = await self._client.v1.payment_intents.retrieve_async(external_id)
        except stripe.StripeError as e:
            raise _translate(e) from None
        return self._started(pi)

    async def start_setup(self, key: str, customer_ref: str | None, return_url: str, cancel_url: str) -> SetupStarted:
        self._need_key()
        if not customer_ref:
            raise GatewayError("a card is saved for a Stripe customer")
        params: dict[str, Any] = {"customer": customer_ref, "usage": "off_session", "payment_method_types": ["card"]}
        try:
            si = await self._client.v1.setup_intents.create_async(params, {"idempotency_key": key})  # type: ignore[arg-type]
        except stripe.StripeError as e:
            raise _translate(e) from None
        return SetupStarted(external_id=str(si.id), customer_ref=customer_ref, client_secret=si.client_secret,
                            status=STATUSES.get(str(si.status), "created"))

    async def finish_setup(self, external_id: str, customer_ref: str | None, key: str) -> Card:
        self._need_key()
        try:
            si = await self._client.v1.setup_intents.retrieve_async(external_id)
        except stripe.StripeError as e:
            raise _translate(e) from None
        if _id(_get(si, "customer")) != customer_ref:
            raise GatewayError(f"{external_id} is not a setup of this customer's")
        if _get(si, "status") != "succeeded":
            raise Declined(f"the card is not saved yet ({_get(si, 'status')})", code=str(_get(si, "status")))
        token = _id(_get(si, "payment_method"))
        if token is None:
            raise GatewayError(f"{external_id} has no payment method")
        card = await self.card(token)
        return Card(card.token, card.brand, card.last4, card.exp_month, card.exp_year, customer_ref)

    async def card(self, token: str) -> Card:
        self._need_key()
        try:
            pm = await self._client.v1.payment_methods.retrieve_async(token)
        except stripe.StripeError as e:
            raise _translate(e) from None
        return _card(pm)

    async def remove_card(self, token: str) -> None:
        self._need_key()
        try:
            await self._client.v1.payment_methods.detach_async(token)
        except stripe.InvalidRequestError as e:
            if getattr(e, "http_status", None) == 404:
                return  # gone already
            raise _translate(e) from None
        except stripe.StripeError as e:
            raise _translate(e) from None

    async def refund(self, key: str, payment_ref: str, amount: Decimal, currency: str) -> Refunded:
        self._need_key()
        try:
            refund = await self._client.v1.refunds.create_async(
                {"payment_intent": payment_ref, "amount": minor_units(amount, money.digits(currency))},
                {"idempotency_key": key})
        except stripe.StripeError as e:
            raise _translate(e) from None
        status = str(_get(refund, "status", "succeeded"))
        return Refunded(str(refund.id), {"pending": "processing", "requires_action": "processing"}.get(status, status))

    async def verify_event(self, body: bytes, headers: Mapping[str, str]) -> Event:
        header = headers.get("Stripe-Signature")
        if not self._secrets:
            raise SignatureError("no webhook signing secret is set for Stripe")
        last = "no signature"
        for secret in self._secrets:
            try:
                stripe.WebhookSignature.verify_header(body, header, secret, self._tolerance)
                break
            except stripe.SignatureVerificationError as e:
                last = str(e)
        else:
            raise SignatureError(last)
        try:
            payload = json.loads(body)
        except ValueError:
            raise SignatureError("the body is not JSON") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), str) \
                or not isinstance(payload.get("type"), str):
            raise SignatureError("not a Stripe event")
        return parse_event(payload)

    async def check(self) -> str:
        self._need_key()
        try:
            balance = await self._client.v1.balance.retrieve_async()
        except stripe.StripeError as e:
            raise _translate(e) from None
        live = "live" if _get(balance, "livemode", False) else "test"
        return f"Stripe answered ({live} mode)"

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]


def parse_event(payload: Mapping[str, Any]) -> Event:
    """A Stripe event (already verified) in lastmile's words."""
    event_id, kind = str(payload["id"]), str(payload["type"])
    obj = _get(_get(payload, "data", {}), "object", {})
    if kind in PAYMENT_EVENTS:
        status = PAYMENT_EVENTS[kind] or STATUSES.get(str(_get(obj, "status")), "created")
        currency = str(_get(obj, "currency", "")).upper() or None
        amount = None
        if status == "succeeded" and currency:
            amount = from_minor_units(int(_get(obj, "amount_received", _get(obj, "amount", 0))), money.digits(currency))
        return Event(event_id, kind, "payment", payload, intent_ref=_id(obj),
                     intent_id=_intent_id(_get(obj, "metadata")), status=status,
                     payment_ref=_id(obj) if status == "succeeded" else None, amount=amount,
                     currency=currency, customer_ref=_id(_get(obj, "customer")),
                     error=str(_get(_get(obj, "last_payment_error", {}), "message", "")))
    if kind == "charge.refunded":
        currency = str(_get(obj, "currency", "")).upper() or None
        refunds = _get(_get(obj, "refunds", {}), "data", [])
        refunded = int(_get(obj, "amount_refunded", 0))
        return Event(event_id, kind, "refund", payload, intent_ref=_id(_get(obj, "payment_intent")),
                     payment_ref=_id(_get(obj, "payment_intent")),
                     amount=from_minor_units(refunded, money.digits(currency)) if currency else None,
                     currency=currency, refund_ref=_id(refunds[0]) if refunds else None,
                     refunded_all=bool(_get(obj, "refunded", False)) or refunded >= int(_get(obj, "amount", 0)),
                     intent_id=_intent_id(_get(obj, "metadata")))
    if kind == "setup_intent.succeeded":
        return Event(event_id, kind, "card", payload, card_token=_id(_get(obj, "payment_method")),
                     customer_ref=_id(_get(obj, "customer")))
    return Event(event_id, kind, "other", payload)
