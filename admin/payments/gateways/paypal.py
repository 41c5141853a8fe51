"""PayPal, over its REST API with aiohttp: OAuth 2.0 client credentials, Orders v2, refunds of
captures, the vault (Payment Method Tokens v3) and webhook signature verification.

- A payment is an order (``intent: CAPTURE``). Without a saved method the answer holds the
  ``payer-action`` link: the payer approves at PayPal and comes back to ``return_url``, then
  :meth:`PayPalGateway.finish_payment` captures it (a webhook ``CHECKOUT.ORDER.APPROVED`` does
  the same, for a payer who closed the window). With a saved method (``vault_id``) the order
  is captured as it is made. The payment's id in lastmile is the capture's id.
- Saving: a setup token for the PayPal wallet (``usage_type: MERCHANT``), approved by the
  payer at PayPal, turned into a payment token; lastmile keeps ``<source>/<vault id>``
  (``paypal/8kk8451t``, ``card/...``) so that a charge names its payment source.
- Refunds refund a capture (``POST /v2/payments/captures/{id}/refund``).
- Webhooks are verified by PayPal itself (``POST /v1/notifications/verify-webhook-signature``
  with the ``PAYPAL-*`` transmission headers, the webhook's id and the event as received);
  anything but ``SUCCESS`` is refused.

Every request that changes something carries ``PayPal-Request-Id`` (PayPal's idempotency key:
the same id again gets the first answer back). The access token is cached until shortly before
it expires, and fetched again once when PayPal says it is no longer valid.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp

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
)

LIVE_API = "https://api-m.paypal.com"
SANDBOX_API = "https://api-m.sandbox.paypal.com"
ORDER_STATUSES = {"CREATED": "created", "SAVED": "created", "PAYER_ACTION_REQUIRED": "requires_action",
                  "APPROVED": "processing", "VOIDED": "canceled", "COMPLETED": "succeeded"}
CAPTURE_STATUSES = {"COMPLETED": "succeeded", "PENDING": "processing", "DECLINED": "failed", "FAILED": "failed",
                    "REFUNDED": "succeeded", "PARTIALLY_REFUNDED": "succeeded"}
DECLINES = {"INSTRUMENT_DECLINED", "PAYER_ACTION_REQUIRED", "TRANSACTION_REFUSED", "PAYER_CANNOT_PAY",
            "CARD_EXPIRED", "ORDER_NOT_APPROVED", "PAYMENT_DENIED"}
HEADERS = ("PAYPAL-AUTH-ALGO", "PAYPAL-CERT-URL", "PAYPAL-TRANSMISSION-ID", "PAYPAL-TRANSMISSION-SIG",
           "PAYPAL-TRANSMISSION-TIME")
TOKEN_MARGIN_S = 60


def _money(value: Decimal, currency: str) -> dict[str, str]:
    return {"currency_code": currency, "value": str(money.quantize(value, currency))}


def _amount(obj: Any) -> tuple[Decimal | None, str | None]:
    if not isinstance(obj, Mapping):
        return None, None
    try:
        return Decimal(str(obj["value"])), str(obj["currency_code"])
    except (KeyError, InvalidOperation):
        return None, None


def _link(obj: Mapping[str, Any], *rels: str) -> str | None:
    for link in obj.get("links", []) or []:
        if isinstance(link, Mapping) and link.get("rel") in rels:
            return str(link.get("href"))
    return None


def _captures(order: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for unit in order.get("purchase_units", []) or []:
        out.extend((unit.get("payments") or {}).get("captures", []) or [])
    return out


def _intent_id(text: Any) -> int | None:
    return int(text) if isinstance(text, str) and text.isdigit() else None


def _card(token: Mapping[str, Any]) -> Card:
    """A payment token (the vault's) as lastmile keeps it."""
    source = token.get("payment_source") or {}
    customer = (token.get("customer") or {}).get("id")
    if "card" in source:
        card = source["card"] or {}
        month = year = None
        expiry = str(card.get("expiry", ""))
        if len(expiry) == 7 and expiry[4] == "-" and expiry[:4].isdigit() and expiry[5:].isdigit():
            year, month = int(expiry[:4]), int(expiry[5:])
        last = str(card.get("last_digits", ""))
        return Card(f"card/{token['id']}", str(card.get("brand", "")).title(),
                    last if len(last) == 4 and last.isdigit() else None, month, year, customer)
    kind = next(iter(source), "paypal")
    return Card(f"{kind}/{token['id']}", "PayPal" if kind == "paypal" else kind.title(), None, None, None, customer)


def _vault(token: str) -> tuple[str, str]:
    source, _, vault_id = token.partition("/")
    if not vault_id or source not in ("card", "paypal", "venmo"):
        raise GatewayError(f"{token!r} is not a PayPal vault token")
    return source, vault_id


class PayPalGateway:
    name = "paypal"

    def __init__(self, client_id: str, client_secret: str, webhook_id: str, *, api_base: str = "",
                 timeout: float = 20.0) -> None:
        self._client_id = client_id
        self._secret = client_secret
        self._webhook_id = webhook_id
        self._base = (api_base or LIVE_API).rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._token: tuple[str, float] | None = None
        self._token_lock = asyncio.Lock()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _access_token(self, *, fresh: bool = False) -> str:
        if not self._client_id or not self._secret:
            raise GatewayError("PayPal has no client id and secret yet (Finance -> Payment gateways)")
        async with self._token_lock:
            if not fresh and self._token is not None and self._token[1] > time.monotonic():
                return self._token[0]
            try:
                basic = base64.b64encode(f"{self._client_id}:{self._secret}".encode()).decode()
                async with self._http().post(self._base + "/v1/oauth2/token",
                                             data={"grant_type": "client_credentials"},
                                             headers={"Authorization": f"Basic {basic}"}) as r:
                    body = await r.json(content_type=None)
                    status = r.status
            except (aiohttp.ClientError, TimeoutError, ValueError) as e:
                raise GatewayError(f"PayPal did not answer: {type(e).__name__}", retryable=True) from None
            if status != 200 or not isinstance(body, dict) or "access_token" not in body:
                if status >= 500:
                    raise GatewayError(f"PayPal failed ({status})", retryable=True)
                raise GatewayError("PayPal refused the client id and secret")
            lifetime = float(body.get("expires_in", 300))
            self._token = (str(body["access_token"]), time.monotonic() + max(lifetime - TOKEN_MARGIN_S, 1.0))
            return self._token[0]

    async def _call(self, method: str, path: str, *, body: Any = None, key: str | None = None) -> Any:
        """One API request; its JSON answer, or GatewayError (Declined for a payer's refusal)."""
        for attempt in range(2):
            token = await self._access_token(fresh=attempt > 0)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                       "Prefer": "return=representation"}
            if key is not None:
                headers["PayPal-Request-Id"] = key[:108]
            try:
                async with self._http().request(method, self._base + path, headers=headers,
                                                data=None if body is None else json.dumps(body)) as r:
                    text = await r.text()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError) as e:
                raise GatewayError(f"PayPal did not answer: {type(e).__name__}", retryable=True) from None
            if status == 401 and attempt == 0:
                continue  # the token expired early: fetch a new one, once
            try:
                answer = json.loads(text) if text else {}
            except ValueError:
                answer = {}
            if status < 300:
                return answer
            raise self._error(status, answer)
        raise GatewayError("PayPal refused the access token")

    @staticmethod
    def _error(status: int, answer: Any) -> GatewayError:
        answer = answer if isinstance(answer, dict) else {}
        details = answer.get("details") or [{}]
        issue = str(details[0].get("issue", "") if isinstance(details[0], dict) else "")
        text = str(details[0].get("description", "") if isinstance(details[0], dict) else "") \
            or str(answer.get("message", "")) or f"HTTP {status}"
        if status >= 500 or status == 429:
            return GatewayError(f"PayPal failed: {text}", retryable=True, code=issue)
        if issue in DECLINES:
            return Declined(text, code=issue)
        return GatewayError(f"PayPal refused: {text}" + (f" ({issue})" if issue else ""), code=issue)

    def _started(self, order: Mapping[str, Any]) -> Started:
        status = ORDER_STATUSES.get(str(order.get("status")), "created")
        payment_ref = amount = None
        captures = _captures(order)
        if captures:
            capture = captures[-1]
            status = CAPTURE_STATUSES.get(str(capture.get("status")), status)
            if status == "succeeded":
                payment_ref = str(capture["id"])
                amount, _ = _amount(capture.get("amount"))
        return Started(external_id=str(order["id"]), status=status, payment_ref=payment_ref, amount=amount,
                       approve_url=_link(order, "payer-action", "approve") if status == "requires_action" else None,
                       error="the payment was declined" if status == "failed" else "")

    async def ensure_customer(self, key: str, customer_id: int, name: str, email: str) -> str | None:
        return None  # the vault makes its customer with the first saved method

    async def create_payment(self, request: PaymentRequest) -> Started:
        unit: dict[str, Any] = {"reference_id": "default", "amount": _money(request.amount, request.currency)}
        if request.metadata.get("lastmile_intent"):
            unit["custom_id"] = request.metadata["lastmile_intent"]
        if request.description:
            unit["description"] = request.description[:127]
        body: dict[str, Any] = {"intent": "CAPTURE", "purchase_units": [unit]}
        if request.method_token:
            source, vault_id = _vault(request.method_token)
            body["payment_source"] = {source: {"vault_id": vault_id}}
        else:
            body["payment_source"] = {"paypal": {"experience_context": {
                "return_url": request.return_url, "cancel_url": request.cancel_url or request.return_url,
                "user_action": "PAY_NOW", "shipping_preference": "NO_SHIPPING"}}}
        order = await self._call("POST", "/v2/checkout/orders", body=body, key=request.key)
        return self._started(order)

    async def payment(self, external_id: str) -> Started:
        return self._started(await self._call("GET", f"/v2/checkout/orders/{external_id}"))

    async def finish_payment(self, external_id: str, key: str) -> Started:
        order = await self._call("GET", f"/v2/checkout/orders/{external_id}")
        if order.get("status") == "APPROVED":
            order = await self._call("POST", f"/v2/checkout/orders/{external_id}/capture", body={}, key=key)
        return self._started(order)

    async def start_setup(self, key: str, customer_ref: str | None, return_url: str, cancel_url: str) -> SetupStarted:
        body: dict[str, Any] = {"payment_source": {"paypal": {
            "usage_type": "MERCHANT", "customer_type": "CONSUMER", "permit_multiple_payment_tokens": True,
            "experience_context": {"return_url": return_url, "cancel_url": cancel_url or return_url}}}}
        if customer_ref:
            body["customer"] = {"id": customer_ref}
        token = await self._call("POST", "/v3/vault/setup-tokens", body=body, key=key)
        return SetupStarted(external_id=str(token["id"]), customer_ref=(token.get("customer") or {}).get("id"),
                            approve_url=_link(token, "approve"),
                            status="requires_action" if token.get("status") == "PAYER_ACTION_REQUIRED" else "created")

    async def finish_setup(self, external_id: str, customer_ref: str | None, key: str) -> Card:
        setup = await self._call("GET", f"/v3/vault/setup-tokens/{external_id}")
        theirs = (setup.get("customer") or {}).get("id")
        if customer_ref and theirs and theirs != customer_ref:
            raise GatewayError(f"{external_id} is not a setup of this customer's")
        if setup.get("status") not in ("APPROVED", "VAULTED"):
            raise Declined(f"the payer has not approved saving it yet ({setup.get('status')})",
                           code=str(setup.get("status")))
        token = await self._call("POST", "/v3/vault/payment-tokens", key=key,
                                 body={"payment_source": {"token": {"id": external_id, "type": "SETUP_TOKEN"}}})
        return _card(token)

    async def card(self, token: str) -> Card:
        _, vault_id = _vault(token)
        return _card(await self._call("GET", f"/v3/vault/payment-tokens/{vault_id}"))

    async def remove_card(self, token: str) -> None:
        _, vault_id = _vault(token)
        try:
            await self._call("DELETE", f"/v3/vault/payment-tokens/{vault_id}")
        except GatewayError as e:
            if e.code != "RESOURCE_NOT_FOUND" and "not found" not in str(e).lower():
                raise

    async def refund(self, key: str, payment_ref: str, amount: Decimal, currency: str) -> Refunded:
        refund = await self._call("POST", f"/v2/payments/captures/{payment_ref}/refund", key=key,
                                  body={"amount": _money(amount, currency)})
        status = {"COMPLETED": "succeeded", "PENDING": "processing"}.get(str(refund.get("status")), "failed")
        return Refunded(str(refund["id"]), status)

    async def verify_event(self, body: bytes, headers: Mapping[str, str]) -> Event:
        if not self._webhook_id:
            raise SignatureError("no webhook id is set for PayPal")
        missing = [h for h in HEADERS if not headers.get(h)]
        if missing:
            raise SignatureError(f"missing {', '.join(missing)}")
        try:
            event = json.loads(body)
        except ValueError:
            raise SignatureError("the body is not JSON") from None
        if not isinstance(event, dict) or not isinstance(event.get("id"), str) \
                or not isinstance(event.get("event_type"), str):
            raise SignatureError("not a PayPal event")
        answer = await self._call("POST", "/v1/notifications/verify-webhook-signature", body={
            "auth_algo": headers["PAYPAL-AUTH-ALGO"], "cert_url": headers["PAYPAL-CERT-URL"],
            "transmission_id": headers["PAYPAL-TRANSMISSION-ID"],
            "transmission_sig": headers["PAYPAL-TRANSMISSION-SIG"],
            "transmission_time": headers["PAYPAL-TRANSMISSION-TIME"], "webhook_id": self._webhook_id,
            "webhook_event": event})
        if answer.get("verification_status") != "SUCCESS":
            raise SignatureError(f"PayPal says the signature is {answer.get('verification_status', 'not valid')}")
        return parse_event(event)

    async def check(self) -> str:
        await self._access_token(fresh=True)
        return "PayPal answered (an access token was issued)"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def parse_event(event: Mapping[str, Any]) -> Event:
    """A PayPal event (already verified) in lastmile's words."""
    event_id, kind = str(event["id"]), str(event["event_type"])
    resource = event.get("resource") or {}
    if not isinstance(resource, Mapping):
        return Event(event_id, kind, "other", event)
    if kind.startswith("PAYMENT.CAPTURE.") and kind != "PAYMENT.CAPTURE.REFUNDED":
        status = {"PAYMENT.CAPTURE.COMPLETED": "succeeded", "PAYMENT.CAPTURE.PENDING": "processing",
                  "PAYMENT.CAPTURE.DENIED": "failed", "PAYMENT.CAPTURE.DECLINED": "failed"}.get(kind)
        if status is None:
            return Event(event_id, kind, "other", event)
        amount, currency = _amount(resource.get("amount"))
        order = ((resource.get("supplementary_data") or {}).get("related_ids") or {}).get("order_id")
        return Event(event_id, kind, "payment", event, intent_ref=order,
                     intent_id=_intent_id(resource.get("custom_id")), status=status,
                     payment_ref=str(resource.get("id")) if status == "succeeded" else None,
                     amount=amount if status == "succeeded" else None, currency=currency,
                     error="PayPal declined the payment" if status == "failed" else "")
    if kind == "CHECKOUT.ORDER.APPROVED":
        units = resource.get("purchase_units") or [{}]
        return Event(event_id, kind, "payment", event, intent_ref=str(resource.get("id")),
                     intent_id=_intent_id(units[0].get("custom_id") if isinstance(units[0], Mapping) else None),
                     status="processing")
    if kind == "PAYMENT.CAPTURE.REFUNDED":
        amount, currency = _amount(resource.get("amount"))
        up = _link(resource, "up") or ""
        capture = up.rstrip("/").rsplit("/", 1)[-1] if "/captures/" in up else None
        return Event(event_id, kind, "refund", event, payment_ref=capture, amount=amount, currency=currency,
                     refund_ref=str(resource.get("id")), intent_id=_intent_id(resource.get("custom_id")))
    if kind == "VAULT.PAYMENT-TOKEN.CREATED" and "id" in resource:
        card = _card(resource)
        return Event(event_id, kind, "card", event, card=card, card_token=card.token, customer_ref=card.customer_ref)
    return Event(event_id, kind, "other", event)
