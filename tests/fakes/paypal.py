"""PayPal's REST API, for tests: an aiohttp server on 127.0.0.1 that keeps orders, captures,
refunds, vault tokens and webhook deliveries, written from PayPal's published reference (the
Orders v2, Payments v2, Payment Method Tokens v3, Webhooks v1 and OAuth 2.0 pages of
developer.paypal.com, and its "Integrate webhooks" and "Idempotency" guides) for the endpoints
lastmile calls (admin/payments/gateways/paypal.py):

- ``POST /v1/oauth2/token``: client credentials over HTTP Basic, ``grant_type=client_credentials``
  (form); ``{"access_token", "token_type": "Bearer", "expires_in", "app_id", "nonce", "scope"}``;
  a bad client is 401 ``invalid_client``. Every other call needs ``Authorization: Bearer`` with a
  token it issued (``AUTHENTICATION_FAILURE`` otherwise); :meth:`FakePayPal.expire_tokens` voids them.
- ``POST /v2/checkout/orders`` (``intent: CAPTURE``, one purchase unit, ``amount.value`` with the
  currency's decimals): with ``payment_source.paypal.experience_context`` the order is
  ``PAYER_ACTION_REQUIRED`` with a ``payer-action`` link; with a vault id (``payment_source.paypal``
  or ``.card`` ``vault_id``) it is captured at once (``COMPLETED``, the capture under
  ``purchase_units[0].payments.captures``), or refused 422 ``INSTRUMENT_DECLINED`` for a token
  marked to decline. ``GET /v2/checkout/orders/{id}``. ``POST .../{id}/capture``: an approved
  order becomes ``COMPLETED`` with its capture (422 ``ORDER_NOT_APPROVED`` before the payer
  approved, ``ORDER_ALREADY_CAPTURED`` after).
- The payer: ``GET /checkoutnow?token=<order>`` approves the order (``APPROVED``, event
  ``CHECKOUT.ORDER.APPROVED``) and redirects to its ``return_url`` with ``token`` and ``PayerID``;
  ``GET /agreements/approve?approval_session_id=<setup token>`` approves a vault setup token.
  (:meth:`approve` and :meth:`approve_setup` do the same for a test.)
- ``POST /v2/payments/captures/{id}/refund`` (``amount`` optional: what is left), 422
  ``REFUND_AMOUNT_EXCEEDED`` beyond it; the capture becomes ``PARTIALLY_REFUNDED`` or ``REFUNDED``;
  the refund's ``up`` link names the capture. ``GET /v2/payments/captures/{id}``.
- ``POST /v3/vault/setup-tokens`` (``payment_source.paypal`` with ``experience_context``:
  ``PAYER_ACTION_REQUIRED`` and an ``approve`` link; ``payment_source.card``: ``APPROVED`` at once,
  as the card fields leave it, keeping only brand, last digits and expiry), ``GET`` of one,
  ``POST /v3/vault/payment-tokens`` from an approved setup token (422 otherwise), ``GET`` and
  ``DELETE /v3/vault/payment-tokens/{id}``. A vault customer is made with the first setup token
  of a request naming none.
- ``PayPal-Request-Id``: a request id seen before (on the same path) gets the first answer again,
  status and body, and does nothing.
- Webhooks: every event (``CHECKOUT.ORDER.APPROVED``, ``PAYMENT.CAPTURE.COMPLETED``,
  ``PAYMENT.CAPTURE.REFUNDED``, ``VAULT.PAYMENT-TOKEN.CREATED``) is POSTed to the listener of
  :meth:`listen` with ``PAYPAL-TRANSMISSION-ID``, ``-TIME``, ``-SIG``, ``PAYPAL-AUTH-ALGO:
  SHA256withRSA`` and ``PAYPAL-CERT-URL``; the signature is RSA (a key made at start) over
  ``<transmission id>|<transmission time>|<webhook id>|<CRC32 of the body>``, as PayPal's guide
  describes for self-verification. ``POST /v1/notifications/verify-webhook-signature`` answers
  ``SUCCESS`` when the signature holds for the given headers, ``webhook_id`` and
  ``webhook_event``, ``FAILURE`` otherwise. :meth:`deliveries` lists what was sent,
  :meth:`redeliver` sends one again (PayPal retries for 3 days), :meth:`send` sends any event.
- :attr:`lose_responses`: the next N answers to a POST are dropped after the work is done (the
  connection closes), as a network that loses an answer would.

What it leaves out (lastmile calls none of it): ``intent: AUTHORIZE`` and authorizations, order
PATCH, several purchase units, shipping, payer details and risk checks (any approval succeeds),
currencies' own rules beyond their decimals, the certificate behind ``PAYPAL-CERT-URL`` (it is not
served: lastmile verifies through the API, not locally), PayPal's exact comparison of
``webhook_event`` in the verification (the double serialises the event one way, compact JSON,
for both the delivery's CRC and the check), retries of failed deliveries on PayPal's schedule
(:meth:`redeliver` is by hand), rate limits, the vault's customers API, Venmo and Pay Later, and
every endpoint not listed above (404 ``RESOURCE_NOT_FOUND``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
from aiohttp import web
from Crypto.Hash import SHA256
from Crypto.PublicKey import RSA
from Crypto.Signature import pkcs1_15

DIGITS = {"JPY": 0, "HUF": 0, "TWD": 0}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _id(n: int = 17) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _error(status: int, name: str, issue: str = "", description: str = "") -> web.Response:
    messages = {400: "Request is not well-formed, syntactically incorrect, or violates schema.",
                401: "Authentication failed due to invalid authentication credentials or a missing Authorization "
                     "header.",
                404: "The specified resource does not exist.",
                422: "The requested action could not be performed, semantically incorrect, or failed business "
                     "validation."}
    body: dict[str, Any] = {"name": name, "message": messages.get(status, name), "debug_id": _id(13).lower()}
    if issue:
        body["details"] = [{"issue": issue, "description": description or issue}]
    return web.json_response(body, status=status)


def canonical(event: Mapping[str, Any]) -> bytes:
    """How the double writes an event: the delivery's body, and what its CRC32 is taken of."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class Delivery:
    event: dict[str, Any]
    headers: dict[str, str]
    body: bytes
    status: int | None = None


@dataclass
class FakePayPal:
    client_id: str = "client-test"
    client_secret: str = "secret-test"
    webhook_id: str = "WH0TEST0000001"
    host: str = "127.0.0.1"
    port: int = 0
    lose_responses: int = 0
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    captures: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    setup_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    declining: set[str] = field(default_factory=set)       # payment tokens whose charges are declined
    requests: list[tuple[str, str]] = field(default_factory=list)
    _tokens: set[str] = field(default_factory=set)
    _seen: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    _deliveries: list[Delivery] = field(default_factory=list)
    _listener: str | None = None
    _runner: web.AppRunner | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._key = RSA.generate(2048)
        self._lock = asyncio.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> FakePayPal:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_post("/v1/oauth2/token", self._token)
        r.add_post("/v2/checkout/orders", self._create_order)
        r.add_get("/v2/checkout/orders/{id}", self._get_order)
        r.add_post("/v2/checkout/orders/{id}/capture", self._capture)
        r.add_get("/v2/payments/captures/{id}", self._get_capture)
        r.add_post("/v2/payments/captures/{id}/refund", self._refund)
        r.add_post("/v3/vault/setup-tokens", self._create_setup)
        r.add_get("/v3/vault/setup-tokens/{id}", self._get_setup)
        r.add_post("/v3/vault/payment-tokens", self._create_payment_token)
        r.add_get("/v3/vault/payment-tokens/{id}", self._get_payment_token)
        r.add_delete("/v3/vault/payment-tokens/{id}", self._delete_payment_token)
        r.add_post("/v1/notifications/verify-webhook-signature", self._verify)
        r.add_get("/checkoutnow", self._payer_approves_order)
        r.add_get("/agreements/approve", self._payer_approves_setup)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]  # an asyncio Server
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            await task
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakePayPal:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # -- plumbing ---------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if request.path != "/v1/oauth2/token" and not request.path.startswith(("/checkoutnow", "/agreements")):
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme != "Bearer" or token not in self._tokens:
                return _error(401, "AUTHENTICATION_FAILURE")
        key = request.headers.get("PayPal-Request-Id")
        if request.method == "POST" and key:
            async with self._lock:  # one request id at a time: a second waits for the first's answer
                seen = self._seen.get((request.path, key))
                if seen is not None:
                    response: web.StreamResponse = web.json_response(seen[1], status=seen[0])
                else:
                    response = await handler(request)
                    if isinstance(response, web.Response) and response.body is not None:
                        body = response.body
                        assert isinstance(body, bytes)  # json_response's
                        self._seen[(request.path, key)] = (response.status, json.loads(body))
        else:
            response = await handler(request)
        if request.method == "POST" and self.lose_responses > 0 and request.path != "/v1/oauth2/token":
            self.lose_responses -= 1
            if request.transport is not None:
                request.transport.close()  # the work is done; the answer never arrives
        return response

    async def _json(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            return None

    def _links(self, path: str, *more: tuple[str, str, str]) -> list[dict[str, str]]:
        links = [{"href": self.url + path, "rel": "self", "method": "GET"}]
        links += [{"href": href, "rel": rel, "method": method} for href, rel, method in more]
        return links

    # -- OAuth ------------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        try:
            client, _, secret = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client = secret = ""
        form = await request.post()
        if scheme != "Basic" or (client, secret) != (self.client_id, self.client_secret):
            return web.json_response({"error": "invalid_client", "error_description": "Client Authentication failed"},
                                     status=401)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type",
                                      "error_description": "unsupported grant_type"}, status=400)
        token = "A21AA" + secrets.token_urlsafe(40)
        self._tokens.add(token)
        return web.json_response({"scope": "https://uri.paypal.com/services/payments/payment",
                                  "access_token": token, "token_type": "Bearer", "app_id": "APP-80W284485P519543T",
                                  "expires_in": 32400, "nonce": f"{_now()}{secrets.token_hex(8)}"})

    def expire_tokens(self) -> None:
        self._tokens.clear()

    # -- orders -----------------------------------------------------------------------------------

    @staticmethod
    def _money(value: Any) -> tuple[Decimal, str] | str:
        """(amount, currency) of a money object, or the issue that is wrong with it."""
        if not isinstance(value, Mapping) or not isinstance(value.get("value"), str) \
                or not isinstance(value.get("currency_code"), str) or len(value["currency_code"]) != 3:
            return "MISSING_REQUIRED_PARAMETER"
        try:
            amount = Decimal(value["value"])
        except InvalidOperation:
            return "INVALID_PARAMETER_VALUE"
        digits = DIGITS.get(value["currency_code"], 2)
        if not amount.is_finite() or amount.as_tuple().exponent < -digits:  # type: ignore[operator]
            return "DECIMAL_PRECISION"
        if amount <= 0:
            return "AMOUNT_MUST_BE_POSITIVE" if amount < 0 else "CANNOT_BE_ZERO_OR_NEGATIVE"
        return amount, value["currency_code"]

    def _capture_of(self, order: dict[str, Any]) -> dict[str, Any]:
        unit = order["purchase_units"][0]
        capture_id = _id()
        capture = {"id": capture_id, "status": "COMPLETED", "amount": dict(unit["amount"]), "final_capture": True,
                   "create_time": _now(), "update_time": _now(),
                   "supplementary_data": {"related_ids": {"order_id": order["id"]}},
                   "seller_receivable_breakdown": {"gross_amount": dict(unit["amount"])},
                   "links": self._links(f"/v2/payments/captures/{capture_id}",
                                        (self.url + f"/v2/payments/captures/{capture_id}/refund", "refund", "POST"),
                                        (self.url + f"/v2/checkout/orders/{order['id']}", "up", "GET"))}
        if "custom_id" in unit:
            capture["custom_id"] = unit["custom_id"]
        self.captures[capture_id] = capture
        unit["payments"] = {"captures": [capture]}
        order["status"] = "COMPLETED"
        order["update_time"] = _now()
        self._event("PAYMENT.CAPTURE.COMPLETED", "capture", capture,
                    f"Payment completed for {unit['amount']['value']} {unit['amount']['currency_code']}")
        return capture

    async def _create_order(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if not isinstance(body, dict) or body.get("intent") not in ("CAPTURE", "AUTHORIZE"):
            return _error(400, "INVALID_REQUEST", "MISSING_REQUIRED_PARAMETER", "intent is required")
        if body["intent"] != "CAPTURE":
            return _error(422, "UNPROCESSABLE_ENTITY", "NOT_SUPPORTED", "the double captures only")
        units = body.get("purchase_units")
        if not isinstance(units, list) or len(units) != 1 or not isinstance(units[0], dict):
            return _error(400, "INVALID_REQUEST", "INVALID_ARRAY_MAX_ITEMS", "one purchase unit")
        money = self._money(units[0].get("amount"))
        if isinstance(money, str):
            return _error(422 if money == "DECIMAL_PRECISION" else 400, "UNPROCESSABLE_ENTITY", money)
        source = body.get("payment_source") or {}
        order_id = _id()
        unit = {k: v for k, v in units[0].items() if k in ("reference_id", "custom_id", "description", "amount",
                                                           "invoice_id")}
        order: dict[str, Any] = {"id": order_id, "intent": "CAPTURE", "status": "CREATED", "purchase_units": [unit],
                                 "create_time": _now(), "update_time": _now()}
        vault = next(((kind, s["vault_id"]) for kind, s in source.items()
                      if isinstance(s, Mapping) and "vault_id" in s), None)
        if vault is not None:
            token = self.payment_tokens.get(vault[1])
            if token is None:
                return _error(422, "UNPROCESSABLE_ENTITY", "INVALID_VAULT_ID", "no such vault id")
            if vault[1] in self.declining:
                return _error(422, "UNPROCESSABLE_ENTITY", "INSTRUMENT_DECLINED",
                              "The instrument presented was either declined by the processor or bank, or it can't "
                              "be used for this payment.")
            order["payment_source"] = {vault[0]: {"attributes": {"vault": {"id": vault[1], "status": "VAULTED"}}}}
            self.orders[order_id] = order
            self._capture_of(order)
        else:
            context = (source.get("paypal") or {}).get("experience_context") or {}
            order["status"] = "PAYER_ACTION_REQUIRED"
            order["payment_source"] = {"paypal": {}}
            order["_return_url"] = context.get("return_url", "")
            order["_cancel_url"] = context.get("cancel_url", "")
            self.orders[order_id] = order
        return web.json_response(self._order_view(order), status=201)

    def _order_view(self, order: dict[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in order.items() if not k.startswith("_")}
        more = []
        if order["status"] == "PAYER_ACTION_REQUIRED":
            more.append((f"{self.url}/checkoutnow?token={order['id']}", "payer-action", "GET"))
        if order["status"] == "APPROVED":
            more.append((f"{self.url}/v2/checkout/orders/{order['id']}/capture", "capture", "POST"))
        view["links"] = self._links(f"/v2/checkout/orders/{order['id']}", *more)
        return view

    async def _get_order(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.match_info["id"])
        if order is None:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "Specified resource ID does not exist.")
        return web.json_response(self._order_view(order))

    async def _capture(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.match_info["id"])
        if order is None:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "Specified resource ID does not exist.")
        if order["status"] == "COMPLETED":
            return _error(422, "UNPROCESSABLE_ENTITY", "ORDER_ALREADY_CAPTURED", "Order already captured.")
        if order["status"] != "APPROVED":
            return _error(422, "UNPROCESSABLE_ENTITY", "ORDER_NOT_APPROVED",
                          "Payer has not yet approved the Order for payment.")
        self._capture_of(order)
        return web.json_response(self._order_view(order), status=201)

    def approve(self, order_id: str) -> str:
        """The payer approves ``order_id`` at PayPal; where the browser goes back to."""
        order = self.orders[order_id]
        if order["status"] == "PAYER_ACTION_REQUIRED":
            order["status"] = "APPROVED"
            order["payer"] = {"payer_id": _id(13)}
            order["update_time"] = _now()
            self._event("CHECKOUT.ORDER.APPROVED", "checkout-order", self._order_view(order),
                        "An order has been approved by buyer")
        return f"{order['_return_url']}{'&' if '?' in order['_return_url'] else '?'}token={order_id}" \
               f"&PayerID={order.get('payer', {}).get('payer_id', '')}"

    async def _payer_approves_order(self, request: web.Request) -> web.StreamResponse:
        order_id = request.query.get("token", "")
        if order_id not in self.orders:
            return web.Response(status=404, text="no such order")
        raise web.HTTPFound(self.approve(order_id))

    # -- captures and refunds ---------------------------------------------------------------------

    async def _get_capture(self, request: web.Request) -> web.Response:
        capture = self.captures.get(request.match_info["id"])
        if capture is None:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "Specified resource ID does not exist.")
        return web.json_response(capture)

    async def _refund(self, request: web.Request) -> web.Response:
        capture = self.captures.get(request.match_info["id"])
        if capture is None:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "Specified resource ID does not exist.")
        body = await self._json(request) or {}
        currency = capture["amount"]["currency_code"]
        done = sum((Decimal(r["amount"]["value"]) for r in self.refunds.values()
                    if r["_capture"] == capture["id"]), Decimal(0))
        left = Decimal(capture["amount"]["value"]) - done
        if "amount" in body:
            money = self._money(body["amount"])
            if isinstance(money, str):
                return _error(422, "UNPROCESSABLE_ENTITY", money)
            amount = money[0]
        else:
            amount = left
        if capture["status"] == "REFUNDED" or amount > left:
            return _error(422, "UNPROCESSABLE_ENTITY", "REFUND_AMOUNT_EXCEEDED",
                          "The refund amount must be less than or equal to the capture amount that has not yet "
                          "been refunded.")
        refund_id = _id()
        refund: dict[str, Any] = {
            "id": refund_id, "status": "COMPLETED", "amount": {"currency_code": currency, "value": str(amount)},
            "create_time": _now(), "update_time": _now(), "_capture": capture["id"],
            "links": self._links(f"/v2/payments/refunds/{refund_id}",
                                 (self.url + f"/v2/payments/captures/{capture['id']}", "up", "GET"))}
        if "custom_id" in capture:
            refund["custom_id"] = capture["custom_id"]
        self.refunds[refund_id] = refund
        capture["status"] = "REFUNDED" if amount == left else "PARTIALLY_REFUNDED"
        view = {k: v for k, v in refund.items() if not k.startswith("_")}
        self._event("PAYMENT.CAPTURE.REFUNDED", "refund", view, f"A {amount} {currency} capture payment was refunded")
        return web.json_response(view, status=201)

    # -- the vault --------------------------------------------------------------------------------

    async def _create_setup(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        source = body.get("payment_source") if isinstance(body, dict) else None
        if not isinstance(source, dict) or len(source) != 1 or next(iter(source)) not in ("paypal", "card"):
            return _error(400, "INVALID_REQUEST", "MISSING_REQUIRED_PARAMETER", "payment_source")
        customer = (body.get("customer") or {}).get("id") or _id(10).lower()
        setup_id = _id(10)
        kind = next(iter(source))
        setup: dict[str, Any] = {"id": setup_id, "customer": {"id": customer}, "status": "PAYER_ACTION_REQUIRED",
                                 "_kind": kind}
        if kind == "card":
            card = source["card"] or {}
            number = str(card.get("number", ""))
            if not number.isdigit() or len(number) < 13:
                return _error(422, "UNPROCESSABLE_ENTITY", "INVALID_PARAMETER_VALUE", "card number")
            # As the card fields leave it: approved; the double keeps no more of the card than PayPal shows.
            setup["payment_source"] = {"card": {"brand": "VISA" if number[0] == "4" else "MASTERCARD",
                                                "last_digits": number[-4:], "expiry": str(card.get("expiry", ""))}}
            setup["status"] = "APPROVED"
        else:
            context = source["paypal"].get("experience_context") or {}
            setup["payment_source"] = {"paypal": {"usage_type": source["paypal"].get("usage_type", "MERCHANT")}}
            setup["_return_url"] = context.get("return_url", "")
        self.setup_tokens[setup_id] = setup
        return web.json_response(self._setup_view(setup), status=201)

    def _setup_view(self, setup: dict[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in setup.items() if not k.startswith("_")}
        more = []
        if setup["status"] == "PAYER_ACTION_REQUIRED":
            more.append((f"{self.url}/agreements/approve?approval_session_id={setup['id']}", "approve", "GET"))
        view["links"] = self._links(f"/v3/vault/setup-tokens/{setup['id']}", *more)
        return view

    async def _get_setup(self, request: web.Request) -> web.Response:
        setup = self.setup_tokens.get(request.match_info["id"])
        if setup is None:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "Specified resource ID does not exist.")
        return web.json_response(self._setup_view(setup))

    def approve_setup(self, setup_id: str, email: str = "payer@example.net") -> str:
        setup = self.setup_tokens[setup_id]
        if setup["status"] == "PAYER_ACTION_REQUIRED":
            setup["status"] = "APPROVED"
            setup["payment_source"]["paypal"]["email_address"] = email
        return str(setup.get("_return_url", ""))

    async def _payer_approves_setup(self, request: web.Request) -> web.StreamResponse:
        setup_id = request.query.get("approval_session_id", "")
        if setup_id not in self.setup_tokens:
            return web.Response(status=404, text="no such setup token")
        raise web.HTTPFound(self.approve_setup(setup_id) or "/")

    async def _create_payment_token(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        token = ((body or {}).get("payment_source") or {}).get("token") or {}
        if token.get("type") != "SETUP_TOKEN":
            return _error(400, "INVALID_REQUEST", "MISSING_REQUIRED_PARAMETER", "payment_source.token")
        setup = self.setup_tokens.get(str(token.get("id")))
        if setup is None:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "Specified resource ID does not exist.")
        if setup["status"] != "APPROVED":
            return _error(422, "UNPROCESSABLE_ENTITY", "SETUP_TOKEN_NOT_APPROVED" if setup["status"] != "VAULTED"
                          else "SETUP_TOKEN_ALREADY_USED", "the setup token is not approved")
        setup["status"] = "VAULTED"
        payment_token = {"id": _id(8).lower(), "customer": dict(setup["customer"]),
                         "payment_source": json.loads(json.dumps(setup["payment_source"]))}
        self.payment_tokens[payment_token["id"]] = payment_token
        view = self._token_view(payment_token)
        self._event("VAULT.PAYMENT-TOKEN.CREATED", "payment_token", view, "A payment token has been created.")
        return web.json_response(view, status=201)

    def _token_view(self, token: dict[str, Any]) -> dict[str, Any]:
        return {**token, "links": self._links(f"/v3/vault/payment-tokens/{token['id']}")}

    async def _get_payment_token(self, request: web.Request) -> web.Response:
        token = self.payment_tokens.get(request.match_info["id"])
        if token is None:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "Specified resource ID does not exist.")
        return web.json_response(self._token_view(token))

    async def _delete_payment_token(self, request: web.Request) -> web.Response:
        if self.payment_tokens.pop(request.match_info["id"], None) is None:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "Specified resource ID does not exist.")
        return web.Response(status=204)

    # -- webhooks ---------------------------------------------------------------------------------

    def listen(self, url: str) -> None:
        """Deliver every event from now on to ``url`` (the webhook whose id is ``webhook_id``)."""
        self._listener = url

    def _sign(self, transmission_id: str, when: str, webhook_id: str, body: bytes) -> str:
        message = f"{transmission_id}|{when}|{webhook_id}|{binascii.crc32(body)}".encode()
        return base64.b64encode(pkcs1_15.new(self._key).sign(SHA256.new(message))).decode()

    def _event(self, event_type: str, resource_type: str, resource: Mapping[str, Any], summary: str) -> None:
        event = {"id": f"WH-{_id(17)}", "create_time": _now(), "resource_type": resource_type,
                 "event_type": event_type, "summary": summary, "resource_version": "2.0",
                 "resource": json.loads(json.dumps(resource)),
                 "links": [{"href": f"{self.url}/v1/notifications/webhooks-events/x", "rel": "self", "method": "GET"}]}
        self.send(event)

    def send(self, event: Mapping[str, Any], *, sign_with: str | None = None) -> Delivery:
        """Sign and deliver ``event`` to the listener (when there is one), in the background."""
        body = canonical(event)
        transmission_id, when = str(uuid.uuid4()), _now()
        headers = {"Content-Type": "application/json", "PAYPAL-AUTH-ALGO": "SHA256withRSA",
                   "PAYPAL-CERT-URL": f"{self.url}/v1/notifications/certs/CERT-360caa42-fca2a594-test",
                   "PAYPAL-TRANSMISSION-ID": transmission_id, "PAYPAL-TRANSMISSION-TIME": when,
                   "PAYPAL-TRANSMISSION-SIG": self._sign(transmission_id, when, sign_with or self.webhook_id, body)}
        delivery = Delivery(dict(event), headers, body)
        self._deliveries.append(delivery)
        if self._listener is not None:
            task = asyncio.get_running_loop().create_task(self._post(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return delivery

    async def _post(self, delivery: Delivery) -> None:
        assert self._listener is not None
        try:
            async with aiohttp.ClientSession() as s, s.post(self._listener, data=delivery.body,
                                                            headers=delivery.headers) as r:
                await r.read()
                delivery.status = r.status
        except aiohttp.ClientError:
            delivery.status = 0

    async def redeliver(self, delivery: Delivery) -> None:
        """Send ``delivery`` again as it was (PayPal retries a delivery that got no 2xx)."""
        await self._post(delivery)

    async def settle(self) -> None:
        """Wait for the deliveries under way."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    def deliveries(self, event_type: str | None = None) -> list[Delivery]:
        return [d for d in self._deliveries if event_type is None or d.event["event_type"] == event_type]

    async def _verify(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        fields = ("auth_algo", "cert_url", "transmission_id", "transmission_sig", "transmission_time", "webhook_id")
        if not isinstance(body, dict) or any(not isinstance(body.get(f), str) for f in fields) \
                or not isinstance(body.get("webhook_event"), dict):
            return _error(400, "VALIDATION_ERROR", "MISSING_REQUIRED_PARAMETER", "a field is missing")
        if body["auth_algo"] != "SHA256withRSA" or not body["cert_url"].startswith(self.url):
            return web.json_response({"verification_status": "FAILURE"})
        message = (f"{body['transmission_id']}|{body['transmission_time']}|{body['webhook_id']}|"
                   f"{binascii.crc32(canonical(body['webhook_event']))}").encode()
        try:
            public = self._key.publickey()  # type: ignore[no-untyped-call]
            pkcs1_15.new(public).verify(SHA256.new(message), base64.b64decode(body["transmission_sig"]))
        except (ValueError, binascii.Error):
            return web.json_response({"verification_status": "FAILURE"})
        return web.json_response({"verification_status": "SUCCESS"})
