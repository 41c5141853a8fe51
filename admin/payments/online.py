"""Online payments: pay an invoice or top up through a gateway, save cards, charge them on the
due date (autopay), refunds, and the gateways' webhooks, each event processed once.

**An attempt is kept before the gateway is asked.** :func:`start` writes the
``payment_intents`` row under its idempotency key and commits it, then takes that row's lock and
calls the gateway with the same key (W-17): a retry after a lost answer, a worker run again, or
a double-clicked Pay (two requests at once: the second waits on the lock, then finds the
gateway's answer on the row) never makes a second charge, and the same key for another payment
is refused (:class:`KeyReused`). Keys: the API's ``Idempotency-Key`` (under its caller), autopay's
``autopay:<invoice>:<attempt>``; a refund is named by its payment.

**Every event is kept, and processed once, with its effect.** :func:`handle_event` inserts the
event into ``gateway_events`` (primary key: gateway and event id) in the transaction that
records its effect (admin/payments/record.py: a payment is known by its gateway's id of it, so
a payment reported by the API's answer and again by its event is recorded once). A delivery
seen before finds the row and does nothing. Statuses only move up
(admin/payments/gateways/__init__.py ``merge_status``), a refund that arrives before the success
records the payment and takes it back, so events in any order end in the same state.

The key sent to the gateway is a digest of the attempt's row (its id, when it was made, its
lastmile key: :func:`gateway_key`), the same on every retry of that row, and never the same for
two databases that share one gateway account (a staging copy, a restored backup beside the
original).

Nothing here knows a card number: the payer gives it to the gateway, lastmile keeps the
gateway's token, the brand, the last four digits and the expiry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import asyncpg

from admin import oplog_store
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.billing import money
from admin.payments import online_store as store
from admin.payments import record
from admin.payments.gateways import (
    NAMES,
    Card,
    Declined,
    Event,
    Gateway,
    GatewayError,
    PaymentRequest,
    SetupStarted,
    Started,
    has_card_number,
    merge_status,
)
from daemons.secrets import Keyring, SecretError

PURPOSES = ("invoice", "top_up", "autopay")
MAX_AUTOPAY_ATTEMPTS = 3
TERMINAL = frozenset({"succeeded", "failed", "canceled"})
PAYMENT_TYPE = "online"


class OnlineError(ValueError):
    """A payment, card or refund refused: said for the operator or the payer."""


class KeyReused(OnlineError):
    """The idempotency key was used before for another payment."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """A payment attempt as the portal and the API see it."""

    intent_id: int
    gateway: str
    purpose: str
    status: str
    amount: Decimal
    currency: str
    document_id: int | None
    external_id: str | None = None
    client_secret: str | None = None
    approve_url: str | None = None
    error: str = ""
    payment_id: int | None = None
    receipt_number: str | None = None
    created: bool = True                  # False: the key named an attempt made before


def secret_purpose(gateway: str, column: str) -> str:
    """What a gateway's sealed key is bound to (daemons/secrets.py: a value sealed for one column
    does not open in another)."""
    return f"payment_gateways.{gateway}.{column}"


def secrets_of(row: asyncpg.Record | dict[str, Any], keyring: Keyring) -> tuple[str, list[str]]:
    """The gateway's secret key and its webhook secrets (Stripe: the signing secret, then the
    previous one during a rotation; PayPal: the webhook id), opened."""
    name = row["name"]
    try:
        key = keyring.open(row["secret_key"], secret_purpose(name, "secret_key")) if row["secret_key"] else ""
        hook = keyring.open(row["webhook_secret"], secret_purpose(name, "webhook_secret")) \
            if row["webhook_secret"] else ""
    except SecretError as e:
        raise OnlineError(f"{name}'s keys do not open: {e}") from None
    return key, [s for s in hook.split("\n") if s]


def open_gateway(row: asyncpg.Record | dict[str, Any], keyring: Keyring) -> Gateway:
    """The gateway of a ``payment_gateways`` row, with its keys opened."""
    from admin.payments.gateways.paypal import LIVE_API, SANDBOX_API, PayPalGateway
    from admin.payments.gateways.stripe import StripeGateway

    settings = row["settings"] or {}
    key, hooks = secrets_of(row, keyring)
    if row["name"] == "stripe":
        return StripeGateway(key, hooks, api_base=str(settings.get("api_base") or ""))
    if row["name"] == "paypal":
        base = settings.get("api_base") or (SANDBOX_API if settings.get("mode") == "sandbox" else LIVE_API)
        return PayPalGateway(str(settings.get("client_id") or ""), key, hooks[0] if hooks else "", api_base=str(base))
    raise OnlineError(f"no gateway {row['name']!r}")


class Gateways:
    """The gateways opened once and kept while their row is unchanged (a burst of webhooks shares
    one HTTP session); a changed row (new keys, another API base) opens them again."""

    def __init__(self, keyring: Keyring, opener: Callable[[Any, Keyring], Gateway] = open_gateway) -> None:
        self._keyring = keyring
        self._opener = opener
        self._open: dict[str, tuple[Any, Gateway]] = {}
        self._old: list[Gateway] = []

    async def get(self, conn: Connection, name: str, *, enabled: bool = True) -> Gateway:
        """The gateway ``name``; OnlineError when there is none or (``enabled``) it is off."""
        if name not in NAMES:
            raise OnlineError(f"no gateway {name!r}")
        row = await store.gateway(conn, name)
        if row is None:
            raise OnlineError(f"no gateway {name!r}")
        if enabled and not row["enabled"]:
            raise OnlineError(f"{name} is not enabled (Finance -> Payment gateways)")
        return self.of_row(row)

    def of_row(self, row: asyncpg.Record) -> Gateway:
        version = (row["updated_at"], row["secret_key"], row["webhook_secret"], str(row["settings"]))
        kept = self._open.get(row["name"])
        if kept is not None and kept[0] == version:
            return kept[1]
        if kept is not None:
            self._old.append(kept[1])
        gateway = self._opener(row, self._keyring)
        self._open[row["name"]] = (version, gateway)
        return gateway

    async def close(self) -> None:
        for gateway in [*self._old, *(g for _, g in self._open.values())]:
            await gateway.close()
        self._old.clear()
        self._open.clear()


def gateway_key(*parts: object) -> str:
    """The idempotency key a gateway is sent for what ``parts`` name (rows' ids and creation times):
    short enough for every gateway (PayPal-Request-Id: 108 characters)."""
    return "lm_" + hashlib.sha256("\0".join(str(p) for p in parts).encode()).hexdigest()[:48]


def intent_key(row: asyncpg.Record) -> str:
    return gateway_key("intent", row["id"], row["created_at"].isoformat(), row["idempotency_key"])


def gateway_principal(name: str) -> Principal:
    """Who the operations log says did what a gateway's event did."""
    return Principal(name=f"gateway:{name}", role="gateway", permissions=frozenset())


def _today(today: dt.date | None) -> dt.date:
    return today or dt.datetime.now(dt.UTC).date()


def _attempt(row: asyncpg.Record, started: Started | None = None, done: record.Recorded | None = None,
             *, created: bool = True) -> Attempt:
    return Attempt(
        intent_id=row["id"], gateway=row["gateway"], purpose=row["purpose"], status=row["status"],
        amount=row["amount"], currency=row["currency"], document_id=row["document_id"],
        external_id=row["external_id"], client_secret=started.client_secret if started else None,
        approve_url=started.approve_url if started else None, error=row["error"],
        payment_id=done.id if done else None, receipt_number=done.receipt_number if done else None, created=created)


async def _customer_ref(conn: Connection, gateway: Gateway, customer: asyncpg.Record) -> str | None:
    """The gateway's customer of ``customer``: kept, or made now (under a key of its own, so two
    makings at once are one)."""
    ref = await store.gateway_customer(conn, customer["id"], gateway.name)
    if ref is not None:
        return ref
    made = await gateway.ensure_customer(
        gateway_key("customer", gateway.name, customer["id"], customer["created_at"].isoformat()), customer["id"],
        customer["name"], customer["email"])
    if made is None:
        return None
    return await store.add_gateway_customer(conn, customer["id"], gateway.name, made)


async def _record(conn: Connection, gateway: str, intent: asyncpg.Record, payment_ref: str, amount: Decimal | None,
                  currency: str | None, by: str, today: dt.date) -> record.Recorded:
    """The payment of a succeeded attempt, recorded once (by its gateway's id of it)."""
    if currency is not None and currency != intent["currency"]:
        raise OnlineError(f"paid in {currency}, but the attempt was in {intent['currency']}")
    value = amount if amount is not None else intent["amount"]
    document_id = intent["document_id"] if intent["purpose"] != "top_up" else None
    payment = record.NewPayment(
        intent["customer_id"], money.quantize(value, intent["currency"]), today, PAYMENT_TYPE, source="online",
        comment=f"{gateway} {payment_ref}", document_id=document_id, gateway=gateway, gateway_ref=payment_ref,
        intent_id=intent["id"], by=by)
    try:
        done = await record.record(conn, payment, today=today)
    except record.PaymentError:
        if document_id is None:
            raise
        # The invoice was voided meanwhile: the money is the customer's credit all the same.
        done = await record.record(conn, replace(payment, document_id=None), today=today)
    if done.created:
        customer = await store.customer(conn, intent["customer_id"])
        assert customer is not None
        await oplog_store.record(
            conn, gateway_principal(gateway), None, "payment", "document", done.receipt_id,
            customer_id=intent["customer_id"], partner_id=customer["partner_id"],
            summary=f"online payment of {payment.amount} {intent['currency']} through {gateway} ({payment_ref}): "
                    f"receipt {done.receipt_number}",
            after={"payment_id": done.id, "intent_id": intent["id"], "gateway_ref": payment_ref,
                   "amount": str(payment.amount)})
    return done


def _check_amount(value: Decimal, currency: str) -> Decimal:
    if not value.is_finite() or value <= 0:
        raise OnlineError("the amount must be more than 0")
    if money.quantize(value, currency) != value:
        raise OnlineError(f"{currency} has {money.digits(currency)} decimals")
    return value


async def start(conn: Connection, gateway: Gateway, *, customer_id: int, purpose: str, key: str,
                amount: Decimal | None = None, document_id: int | None = None, method_id: int | None = None,
                off_session: bool = False, return_url: str = "", cancel_url: str = "", by: str = "",
                today: dt.date | None = None) -> Attempt:
    """Pay ``document_id`` (an invoice or proforma: what is left of it, or ``amount`` of it) or top
    up by ``amount``, through ``gateway``, with the saved card ``method_id`` or as the payer
    finishes it (the answer's client secret or approval URL). Called outside a transaction: the
    attempt is committed before the gateway is asked. The same ``key`` again answers with the
    same attempt (asking the gateway again only when it never answered)."""
    if purpose not in PURPOSES:
        raise OnlineError(f"no purpose {purpose!r}")
    customer = await store.customer(conn, customer_id)
    if customer is None:
        raise OnlineError(f"no customer {customer_id}")
    currency = customer["currency"]
    if purpose == "top_up":
        if document_id is not None:
            raise OnlineError("a top-up pays no invoice")
        if amount is None:
            raise OnlineError("a top-up needs its amount")
    else:
        if document_id is None:
            raise OnlineError("name the invoice to pay")
        doc = await store.open_document(conn, customer_id, document_id)
        if doc is None or doc["kind"] not in ("invoice", "proforma"):
            raise OnlineError(f"document {document_id} is not an invoice of this customer's")
        if doc["status"] == "void":
            raise OnlineError(f"{doc['number']} is void")
        left = Decimal(doc["open"])
        if amount is None:
            amount = left
        if left <= 0:
            raise OnlineError(f"{doc['number']} is paid")
        if amount > left:
            raise OnlineError(f"{doc['number']} has {left} {currency} left to pay")
    amount = _check_amount(amount, currency)
    token: str | None = None
    if method_id is not None:
        method = await store.method(conn, method_id)
        if method is None or method["customer_id"] != customer_id or method["removed_at"] is not None:
            raise OnlineError(f"card {method_id} is not a saved card of this customer's")
        if method["gateway"] != gateway.name:
            raise OnlineError(f"card {method_id} is saved with {method['gateway']}, not {gateway.name}")
        token = method["token"]
    elif purpose == "autopay":
        raise OnlineError("autopay charges a saved card")
    wanted = {"customer_id": customer_id, "gateway": gateway.name, "purpose": purpose, "document_id": document_id,
              "payment_method_id": method_id, "amount": amount, "currency": currency, "idempotency_key": key}
    async with conn.transaction():
        row, created = await store.add_intent(conn, wanted)
    if not created and any(row[k] != v for k, v in wanted.items()):
        raise KeyReused("this idempotency key was used for another payment")
    unanswered: GatewayError | None = None
    async with conn.transaction():  # the row's lock: a second request for it waits here for this one's answer
        locked = await store.intent(conn, row["id"], lock=True)
        assert locked is not None
        row = locked
        if row["status"] in TERMINAL:
            return await _known(conn, row, created=created)
        if row["external_id"] is not None:
            started = await gateway.payment(row["external_id"])  # asked before: its state now
            return await _settle(conn, gateway.name, row, started, by, _today(today), created=created)
        customer_ref = await _customer_ref(conn, gateway, customer)
        try:
            started = await gateway.create_payment(PaymentRequest(
                key=intent_key(row), amount=amount, currency=currency,
                description=f"{customer['number']} {customer['name']}"[:200], customer_ref=customer_ref,
                method_token=token, off_session=off_session, return_url=return_url, cancel_url=cancel_url,
                metadata={"lastmile_intent": str(row["id"]), "lastmile_customer": str(customer_id)}))
        except Declined as e:
            row = await store.update_intent(conn, row["id"], status="failed", error=str(e))
            return _attempt(row, created=created)
        except GatewayError as e:
            await store.update_intent(conn, row["id"], status=row["status"], error=str(e))
            unanswered = e  # raised once the row says so (committed): a retry asks again under the same key
        else:
            return await _settle(conn, gateway.name, row, started, by, _today(today), created=created)
    raise unanswered


async def _known(conn: Connection, row: asyncpg.Record, *, created: bool) -> Attempt:
    """An attempt that ended before, as it ended (with its payment, when it succeeded)."""
    paid = await store.payment_of_intent(conn, row["id"])
    attempt = _attempt(row, created=created)
    if paid is None:
        return attempt
    return replace(attempt, payment_id=paid["id"], receipt_number=paid["receipt_no"])


async def _settle(conn: Connection, gateway: str, row: asyncpg.Record, started: Started | None, by: str,
                  today: dt.date, *, created: bool = True) -> Attempt:
    """The gateway's answer on the attempt (its status only moves up), and its payment recorded
    when it succeeded."""
    if started is None:
        return _attempt(row, created=created)
    status = merge_status(row["status"], started.status)
    row = await store.update_intent(conn, row["id"], status=status, external_id=started.external_id,
                                    error=started.error if started.status == "failed" else None)
    done = None
    if started.status == "succeeded" and started.payment_ref is not None:
        done = await _record(conn, gateway, row, started.payment_ref, started.amount, None, by, today)
    return _attempt(row, started, done, created=created)


async def finish(conn: Connection, gateway: Gateway, intent_id: int, *, by: str = "",
                 today: dt.date | None = None) -> Attempt:
    """After the payer came back (PayPal: capture the approved order; Stripe: read the intent
    after 3-D Secure): the attempt's state, its payment recorded once it succeeded."""
    async with conn.transaction():
        row = await store.intent(conn, intent_id, lock=True)
        if row is None or row["gateway"] != gateway.name:
            raise OnlineError(f"no payment attempt {intent_id} with {gateway.name}")
        if row["external_id"] is None:
            raise OnlineError(f"attempt {intent_id} has no answer of {gateway.name}'s yet: start it again")
        if row["status"] == "succeeded":
            return _attempt(row)
        started = await gateway.finish_payment(row["external_id"], gateway_key(intent_key(row), "finish"))
        return await _settle(conn, gateway.name, row, started, by, _today(today))


# -- saved cards ---------------------------------------------------------------------------------

async def start_setup(conn: Connection, gateway: Gateway, customer_id: int, *, return_url: str = "",
                      cancel_url: str = "") -> SetupStarted:
    """Begin saving a card for ``customer_id``: what the payer finishes it with."""
    customer = await store.customer(conn, customer_id)
    if customer is None:
        raise OnlineError(f"no customer {customer_id}")
    customer_ref = await _customer_ref(conn, gateway, customer)
    setup = await gateway.start_setup(f"setup:{customer_id}:{secrets.token_urlsafe(12)}", customer_ref,
                                      return_url, cancel_url)
    if customer_ref is None and setup.customer_ref is not None:
        await store.add_gateway_customer(conn, customer_id, gateway.name, setup.customer_ref)
    return setup


async def finish_setup(conn: Connection, gateway: Gateway, customer_id: int, setup_ref: str,
                       who: Principal | None = None, address: str | None = None) -> tuple[asyncpg.Record, bool]:
    """The card the payer saved (its setup finished at the gateway): kept; (its row, whether it is new)."""
    customer = await store.customer(conn, customer_id)
    if customer is None:
        raise OnlineError(f"no customer {customer_id}")
    customer_ref = await store.gateway_customer(conn, customer_id, gateway.name)
    if customer_ref is None and gateway.name == "stripe":
        raise OnlineError("this customer has no Stripe customer: start saving a card first")
    try:
        card = await gateway.finish_setup(setup_ref, customer_ref, gateway_key("vault", gateway.name, setup_ref))
    except Declined as e:
        raise OnlineError(str(e)) from None
    if card.customer_ref is not None and customer_ref is None:
        await store.add_gateway_customer(conn, customer_id, gateway.name, card.customer_ref)
    return await _keep_card(conn, gateway.name, customer, card, who or gateway_principal(gateway.name), address)


async def _keep_card(conn: Connection, gateway: str, customer: asyncpg.Record, card: Card, who: Principal,
                     address: str | None) -> tuple[asyncpg.Record, bool]:
    async with conn.transaction():
        row, created = await store.add_method(conn, customer["id"], gateway, card.token, card.brand[:40], card.last4,
                                              card.exp_month, card.exp_year)
        if created:
            await oplog_store.record(conn, who, address, "create", "payment_method", row["id"],
                                     customer_id=customer["id"], partner_id=customer["partner_id"],
                                     summary=f"card saved with {gateway}: {describe(row)}",
                                     after={"gateway": gateway, "brand": row["brand"], "last4": row["last4"],
                                            "exp_month": row["exp_month"], "exp_year": row["exp_year"]})
    return row, created


def describe(method: Any) -> str:
    """A saved card as people are shown it: "Visa •••• 4242, 12/2030"."""
    parts = [str(method["brand"] or "Card")]
    if method["last4"]:
        parts.append(f"•••• {method['last4']}")
    text = " ".join(parts)
    if method["exp_month"] and method["exp_year"]:
        text += f", {method['exp_month']:02d}/{method['exp_year']}"
    return text


async def remove_card(conn: Connection, gateway: Gateway, method: asyncpg.Record, who: Principal,
                      address: str | None) -> None:
    """Forget a saved card here and at the gateway (autopay off with it)."""
    if method["removed_at"] is not None:
        return
    await gateway.remove_card(method["token"])
    customer = await store.customer(conn, method["customer_id"])
    assert customer is not None
    async with conn.transaction():
        await store.remove_method(conn, method["id"])
        await oplog_store.record(conn, who, address, "delete", "payment_method", method["id"],
                                 customer_id=method["customer_id"], partner_id=customer["partner_id"],
                                 summary=f"card removed: {describe(method)}")


async def set_autopay(conn: Connection, method: asyncpg.Record, on: bool, who: Principal, address: str | None) -> None:
    """The customer's opt-in (or out) for charging this card on invoices' due dates."""
    if method["removed_at"] is not None:
        raise OnlineError("the card was removed")
    if method["autopay"] == on:
        return
    customer = await store.customer(conn, method["customer_id"])
    assert customer is not None
    async with conn.transaction():
        await store.set_autopay(conn, method["id"], on)
        await oplog_store.record(conn, who, address, "update", "payment_method", method["id"],
                                 customer_id=method["customer_id"], partner_id=customer["partner_id"],
                                 summary=f"autopay {'on' if on else 'off'} for {describe(method)}",
                                 before={"autopay": method["autopay"]}, after={"autopay": on})


def next_month(today: dt.date) -> tuple[int, int]:
    return (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)


async def expiring_next_month(conn: Connection, today: dt.date | None = None,
                              partner_id: int | None = None) -> list[asyncpg.Record]:
    """The saved cards that expire next month (for the notifications issue to tell their owners):
    each with its customer's number, name, e-mail and partner."""
    year, month = next_month(_today(today))
    return await store.expiring(conn, year, month, partner_id)


# -- refunds -------------------------------------------------------------------------------------

async def refund(conn: Connection, gateway: Gateway, payment_id: int, reason: str, who: Principal,
                 address: str | None, *, today: dt.date | None = None) -> str:
    """Give an online payment back through its gateway, all of it, and take it back in the ledger
    (admin/payments/record.py ``reverse``, naming the gateway's refund); the refund's id. The
    gateway's call carries a key of the payment's, so a second refund of it is the first again."""
    if not reason.strip():
        raise OnlineError("say why it is refunded")
    if has_card_number(reason):
        raise OnlineError("the reason looks like it holds a card number: lastmile keeps none, write it without")
    payment = await store.payment(conn, payment_id)
    if payment is None:
        raise OnlineError(f"no payment {payment_id}")
    if payment["gateway"] != gateway.name or payment["gateway_ref"] is None:
        raise OnlineError(f"payment {payment['receipt_no']} did not come through {gateway.name}")
    if payment["reversed_at"] is not None:
        raise OnlineError(f"payment {payment['receipt_no']} was taken back already")
    try:
        done = await gateway.refund(gateway_key("refund", payment_id, payment["created_at"].isoformat()),
                                    payment["gateway_ref"], payment["amount"], payment["currency"])
    except Declined as e:
        raise OnlineError(f"{gateway.name} refused the refund: {e}") from None
    if done.status == "failed":
        raise OnlineError(f"{gateway.name} could not refund it")
    customer = await store.customer(conn, payment["customer_id"])
    assert customer is not None
    async with conn.transaction():
        again = await store.payment(conn, payment_id)
        if again is not None and again["reversed_at"] is None:  # its refund event may have come first
            await record.reverse(conn, payment_id, f"refunded through {gateway.name}: {reason.strip()}", who.name,
                                 refund_ref=done.refund_ref, today=_today(today))
            await oplog_store.record(conn, who, address, "refund", "payment", payment_id,
                                     customer_id=payment["customer_id"], partner_id=customer["partner_id"],
                                     summary=f"refunded {payment['amount']} {payment['currency']} through "
                                             f"{gateway.name} ({done.refund_ref}): {reason.strip()}",
                                     after={"refund_ref": done.refund_ref, "reason": reason.strip()})
    return done.refund_ref


# -- webhooks ------------------------------------------------------------------------------------

async def handle_event(conn: Connection, gateway: Gateway, event: Event, *, today: dt.date | None = None) -> str:
    """Keep ``event`` and make its effect, once, in one transaction; what was done, in a line
    (``duplicate``: it came before). What needs the gateway (a saved card's details, the capture
    of an approved order) is asked first, outside the transaction."""
    day = _today(today)
    if await store.event_seen(conn, gateway.name, event.event_id):
        return "duplicate"  # (the insert below is what holds it: two at once both get here)
    if event.kind == "card" and event.card is None and event.card_token:
        event = replace(event, card=await gateway.card(event.card_token))
    finished: Started | None = None
    if event.kind == "payment" and event.type == "CHECKOUT.ORDER.APPROVED" and event.intent_ref:
        intent = await store.intent_of_ref(conn, gateway.name, event.intent_ref)
        if intent is not None and intent["status"] != "succeeded":
            finished = await gateway.finish_payment(event.intent_ref, gateway_key(intent_key(intent), "finish"))
    async with conn.transaction():
        if not await store.add_event(conn, gateway.name, event.event_id, event.type, event.payload):
            return "duplicate"
        try:
            async with conn.transaction():
                outcome = await _apply(conn, gateway.name, event, finished, day)
        except (OnlineError, record.PaymentError) as e:
            outcome = f"refused: {e}"
        await store.processed(conn, gateway.name, event.event_id, outcome)
    return outcome


async def _intent_of(conn: Connection, gateway: str, event: Event) -> asyncpg.Record | None:
    row = None
    if event.intent_ref:
        row = await store.intent_of_ref(conn, gateway, event.intent_ref, lock=True)
    if row is None and event.intent_id is not None:
        row = await store.intent(conn, event.intent_id, lock=True)
        if row is not None and (row["gateway"] != gateway or (
                row["external_id"] is not None and event.intent_ref and row["external_id"] != event.intent_ref)):
            row = None
    return row


async def _apply(conn: Connection, gateway: str, event: Event, finished: Started | None, today: dt.date) -> str:
    by = f"gateway:{gateway}"
    if event.kind == "payment":
        intent = await _intent_of(conn, gateway, event)
        if intent is None:
            return "ignored: no payment attempt of lastmile's"
        status, payment_ref, amount = event.status or intent["status"], event.payment_ref, event.amount
        if finished is not None:
            status = merge_status(status, finished.status)
            payment_ref, amount = payment_ref or finished.payment_ref, amount or finished.amount
        new = merge_status(intent["status"], status)
        intent = await store.update_intent(conn, intent["id"], status=new, external_id=event.intent_ref,
                                           error=event.error or None if status == "failed" else None)
        if status == "succeeded" and payment_ref:
            done = await _record(conn, gateway, intent, payment_ref, amount, event.currency, by, today)
            return (f"payment recorded: receipt {done.receipt_number}" if done.created
                    else f"payment recorded before: receipt {done.receipt_number}")
        return f"attempt {intent['id']}: {new}"
    if event.kind == "refund":
        if not event.payment_ref:
            return "ignored: the refund names no payment"
        payment = await store.payment_of_ref(conn, gateway, event.payment_ref)
        if payment is None:
            intent = await _intent_of(conn, gateway, replace(event, intent_ref=event.intent_ref or event.payment_ref))
            if intent is None:
                return "ignored: no payment of lastmile's"
            # The refund came before the success: the payment was made all the same.
            intent = await store.update_intent(conn, intent["id"], status="succeeded", external_id=event.intent_ref)
            await _record(conn, gateway, intent, event.payment_ref, None, None, by, today)
            payment = await store.payment_of_ref(conn, gateway, event.payment_ref)
            assert payment is not None
        if payment["reversed_at"] is not None:
            return "payment taken back before"
        whole = event.refunded_all or (event.amount is not None and event.amount >= payment["amount"])
        if not whole:
            return (f"partial refund of {event.amount} {event.currency}: not taken back (lastmile takes back whole "
                    "payments: take it back by hand and record what stays paid)")
        await record.reverse(conn, payment["id"], f"refunded through {gateway}", by, refund_ref=event.refund_ref,
                             today=today)
        customer = await store.customer(conn, payment["customer_id"])
        assert customer is not None
        await oplog_store.record(conn, gateway_principal(gateway), None, "refund", "payment", payment["id"],
                                 customer_id=payment["customer_id"], partner_id=customer["partner_id"],
                                 summary=f"refunded through {gateway} ({event.refund_ref}): payment taken back",
                                 after={"refund_ref": event.refund_ref})
        return "payment taken back"
    if event.kind == "card":
        if event.card is None:
            return "ignored: no card"
        ref = event.customer_ref or event.card.customer_ref
        customer_id = await store.customer_of_ref(conn, gateway, ref) if ref else None
        if customer_id is None:
            return "ignored: no customer of lastmile's"
        customer = await store.customer(conn, customer_id)
        assert customer is not None
        _, created = await _keep_card(conn, gateway, customer, event.card, gateway_principal(gateway), None)
        return "card saved" if created else "card saved before"
    return "nothing to do"


# -- autopay -------------------------------------------------------------------------------------

@dataclass
class AutopaySummary:
    charged: int = 0
    failed: int = 0
    waiting: int = 0                     # asked, no answer (retried with the same key next time)
    errors: list[str] | None = None


async def autopay(conn: Connection, gateways: Gateways, today: dt.date | None = None) -> AutopaySummary:
    """Charge the autopay card of every customer whose invoice is due (by today), at most once a day
    (the nth attempt from the (n-1)th day after the due date, 20 hours after the one before) and
    MAX_AUTOPAY_ATTEMPTS times per invoice; an attempt the gateway never answered is asked again
    under its own key first."""
    day = _today(today)
    summary = AutopaySummary(errors=[])
    stuck = await store.autopay_unanswered(conn)
    due = await store.autopay_due(conn, day, MAX_AUTOPAY_ATTEMPTS)
    for row in [*stuck, *due]:
        key = row["key"] or f"autopay:{row['document_id']}:{row['attempt']}"
        try:
            gateway = await gateways.get(conn, row["gateway"])
            attempt = await start(conn, gateway, customer_id=row["customer_id"], purpose="autopay",
                                  key=key, amount=Decimal(row["amount"]),
                                  document_id=row["document_id"], method_id=row["method_id"], off_session=True,
                                  by="worker (autopay)", today=day)
        except GatewayError as e:
            summary.waiting += 1
            assert summary.errors is not None
            summary.errors.append(f"{row['number']}: {e}")
            continue
        except OnlineError as e:
            summary.failed += 1
            assert summary.errors is not None
            summary.errors.append(f"{row['number']}: {e}")
            continue
        if attempt.status == "succeeded":
            summary.charged += 1
        elif attempt.status == "failed":
            summary.failed += 1
        else:
            summary.waiting += 1
    return summary
