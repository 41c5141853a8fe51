"""What an online payment gateway does for lastmile, whichever it is (stripe.py, paypal.py).

A gateway takes money from a card or a wallet without lastmile ever seeing the card: the payer
types it on the gateway's own page or element, and lastmile keeps the gateway's token of it
(a payment method, a vault id), its brand, last four digits and expiry. What lastmile asks:

- :meth:`Gateway.create_payment`: a payment of an amount (an invoice, a top-up, a saved card
  charged off-session). The answer says how the payer finishes it: Stripe's ``client_secret``
  for Stripe.js (its 3-D Secure step when the status is ``requires_action``), or PayPal's
  ``approve_url`` to send the payer to; a saved card often succeeds at once.
- :meth:`Gateway.payment`: a payment's state, read again (nothing changes).
- :meth:`Gateway.finish_payment`: after the payer came back (PayPal's capture of the approved
  order; Stripe's payment intent read again after 3-D Secure).
- :meth:`Gateway.start_setup` / :meth:`Gateway.finish_setup`: save a card for later (Stripe's
  SetupIntent, PayPal's vault setup token) and get its :class:`Card`; :meth:`Gateway.remove_card`.
- :meth:`Gateway.refund`: give a payment back, all of it.
- :meth:`Gateway.verify_event`: a webhook delivery, its signature checked (or
  :class:`SignatureError`), as an :class:`Event` that says what happened in lastmile's words.

Every call that moves money carries an idempotency key the caller stored before the call
(admin/payments/online.py): a retry after a lost answer makes the gateway answer the first
request again instead of charging twice.

Statuses are lastmile's, the same for every gateway (``payment_intents.status``); a payment's
status only moves up :data:`STATUS_RANK` (:func:`merge_status`), so events that arrive out of
order, or twice, end in the same state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

NAMES = ("stripe", "paypal")

STATUS_RANK = {"created": 0, "requires_action": 1, "processing": 2, "failed": 3, "canceled": 4, "succeeded": 5}
"""A payment attempt's statuses in the order they may follow each other: a failed attempt may
still succeed (the payer tries another card on the same intent); a success is final."""


def merge_status(old: str, new: str) -> str:
    """The status after ``new`` is reported on an attempt that was ``old``: the higher of the two."""
    return new if STATUS_RANK[new] > STATUS_RANK[old] else old


class GatewayError(Exception):
    """The gateway refused the request or could not be reached: said for the operator (or the
    payer). ``retryable``: no answer came (the request may or may not have been done), so the
    same request with the same idempotency key may be sent again."""

    def __init__(self, message: str, *, retryable: bool = False, code: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


class Declined(GatewayError):
    """The card or account was declined, or needs its holder (3-D Secure) and the holder is not there."""


class SignatureError(Exception):
    """A webhook delivery that is not the gateway's (bad or missing signature, stale timestamp)."""


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    key: str                              # the idempotency key (payment_intents.idempotency_key)
    amount: Decimal
    currency: str
    description: str = ""
    customer_ref: str | None = None       # the gateway's customer (gateway_customers.external_id)
    method_token: str | None = None       # a saved card: charge it (payment_methods.token)
    off_session: bool = False             # the payer is not there (autopay)
    return_url: str = ""                  # where the payer comes back to (PayPal's approval, 3-D Secure)
    cancel_url: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)  # lastmile_intent, lastmile_customer, ...


@dataclass(frozen=True, slots=True)
class Started:
    """A payment as the gateway answered it."""

    external_id: str                      # pi_..., a PayPal order id
    status: str                           # a key of STATUS_RANK
    client_secret: str | None = None      # Stripe: what Stripe.js finishes the payment with
    approve_url: str | None = None        # PayPal: where the payer approves it
    payment_ref: str | None = None        # the payment's id once it succeeded (the intent, a capture id)
    amount: Decimal | None = None         # what was taken, once it succeeded
    error: str = ""


@dataclass(frozen=True, slots=True)
class SetupStarted:
    external_id: str                      # seti_..., a PayPal setup token
    customer_ref: str | None = None       # the gateway's customer, when this made one
    client_secret: str | None = None
    approve_url: str | None = None
    status: str = "created"


@dataclass(frozen=True, slots=True)
class Card:
    """A saved card as lastmile keeps it: the gateway's token and what the payer is shown. Never the number."""

    token: str
    brand: str = ""
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    customer_ref: str | None = None       # the gateway's customer it is saved for


@dataclass(frozen=True, slots=True)
class Refunded:
    refund_ref: str
    status: str                           # succeeded, processing, failed


@dataclass(frozen=True, slots=True)
class Event:
    """A webhook event, verified, in lastmile's words.

    ``kind``: ``payment`` (an attempt's status changed: ``status``; ``succeeded`` carries
    ``payment_ref`` and ``amount``), ``refund`` (``payment_ref`` was given back: ``amount``
    of it, ``refunded_all``, ``refund_ref``), ``card`` (a card was saved: ``card``, or only
    ``card_token`` when its details must be asked for), or ``other`` (kept, nothing to do).
    """

    event_id: str
    type: str                             # the gateway's own name of it (payment_intent.succeeded, ...)
    kind: str
    payload: Mapping[str, Any]            # as the gateway sent it
    intent_ref: str | None = None         # payment_intents.external_id it is about
    intent_id: int | None = None          # lastmile's id of the attempt, from its metadata
    status: str | None = None
    payment_ref: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    refund_ref: str | None = None
    refunded_all: bool = False
    card: Card | None = None
    card_token: str | None = None
    customer_ref: str | None = None
    error: str = ""


class Gateway(Protocol):
    """One gateway, opened with its settings and keys (admin/payments/online.py opens them)."""

    name: str

    async def ensure_customer(self, key: str, customer_id: int, name: str, email: str) -> str | None:
        """The gateway's customer for lastmile's ``customer_id`` (made now; None: the gateway makes
        its own when a card is saved, as PayPal's vault does)."""
        ...

    async def create_payment(self, request: PaymentRequest) -> Started: ...

    async def payment(self, external_id: str) -> Started:
        """A payment's state now, changing nothing (Stripe: its client secret again)."""
        ...

    async def finish_payment(self, external_id: str, key: str) -> Started: ...

    async def start_setup(self, key: str, customer_ref: str | None, return_url: str, cancel_url: str) -> SetupStarted:
        ...

    async def finish_setup(self, external_id: str, customer_ref: str | None, key: str) -> Card: ...

    async def card(self, token: str) -> Card:
        """A saved card's details, by its token."""
        ...

    async def remove_card(self, token: str) -> None: ...

    async def refund(self, key: str, payment_ref: str, amount: Decimal, currency: str) -> Refunded: ...

    async def verify_event(self, body: bytes, headers: Mapping[str, str]) -> Event:
        """The delivery's event, once its signature holds; SignatureError otherwise."""
        ...

    async def check(self) -> str:
        """Reach the gateway with the keys (Test connection): what it said, in a line; GatewayError if not."""
        ...

    async def close(self) -> None: ...


def minor_units(amount: Decimal, digits: int) -> int:
    """``29.90`` EUR (2 digits) -> 2990: what Stripe takes. Refused when it has more decimals."""
    scaled = amount.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more than {digits} decimals")
    return int(scaled)


def from_minor_units(value: int, digits: int) -> Decimal:
    return Decimal(value).scaleb(-digits)


_CARD_NUMBER = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def has_card_number(text: str) -> bool:
    """Whether ``text`` holds what may be a card number (13 to 19 digits, spaces or dashes between
    them allowed, passing Luhn's check): such text is refused, never kept (PCI DSS: lastmile keeps no PAN)."""
    for match in _CARD_NUMBER.finditer(text):
        digits = [int(c) for c in match.group() if c.isdigit()]
        total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
        if total % 10 == 0:
            return True
    return False
