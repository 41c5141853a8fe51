"""The API's shapes for online payments (gateways.py, gateway_cards.py): the gateways' settings
(never their keys), saved cards, payment attempts, refunds."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from admin.schemas import Id

GatewayName = Literal["stripe", "paypal"]
Amount = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,10}(\.[0-9]{1,4})?$",
                                     description="A decimal amount, like 29.90")]
Url = Annotated[str, msgspec.Meta(max_length=500, pattern=r"^(https?://[^\s]*)?$")]
Secret = Annotated[str, msgspec.Meta(max_length=500, pattern=r"^[^\s]*$")]
Setting = Annotated[str, msgspec.Meta(max_length=200, pattern=r"^[^\s]*$")]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"^[^\x00]*\S[^\x00]*$")]


class GatewayOut(msgspec.Struct, kw_only=True):
    """A gateway's settings. Its keys are never given back: only whether one is set and a hint
    (its kind and last four characters)."""

    name: GatewayName
    enabled: bool
    mode: str                             # PayPal: live or sandbox; Stripe: its key's (test or live)
    publishable_key: str                  # Stripe's, for Stripe.js
    client_id: str                        # PayPal's
    api_base: str                         # empty: the gateway's own address
    secret_key_set: bool
    secret_key_hint: str
    webhook_secret_set: bool
    previous_webhook_secret_set: bool     # Stripe: a second signing secret accepted during a rotation
    webhook_url: str                      # what to give the gateway as the webhook endpoint
    updated_by: str
    updated_at: dt.datetime


class GatewayPatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What to change; a key left out (or empty, for a secret) stays as it is."""

    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    mode: Literal["live", "sandbox"] | msgspec.UnsetType = msgspec.UNSET
    publishable_key: Setting | msgspec.UnsetType = msgspec.UNSET
    client_id: Setting | msgspec.UnsetType = msgspec.UNSET
    api_base: Url | msgspec.UnsetType = msgspec.UNSET
    secret_key: Secret | msgspec.UnsetType = msgspec.UNSET
    webhook_secret: Secret | msgspec.UnsetType = msgspec.UNSET
    previous_webhook_secret: Secret | msgspec.UnsetType = msgspec.UNSET
    forget_previous_webhook_secret: bool | msgspec.UnsetType = msgspec.UNSET


class GatewayForm(msgspec.Struct, kw_only=True):
    """The settings form (a secret left empty stays as it is)."""

    enabled: bool = False
    mode: Literal["live", "sandbox"] = "live"
    publishable_key: Setting = ""
    client_id: Setting = ""
    api_base: Url = ""
    secret_key: Secret = ""
    webhook_secret: Secret = ""
    previous_webhook_secret: Secret = ""
    forget_previous_webhook_secret: bool = False


class Checked(msgspec.Struct):
    ok: bool
    message: str


class CardOut(msgspec.Struct, kw_only=True):
    """A saved card: the gateway's token of it is not given out, nor is any number but its last four digits."""

    id: int
    gateway: GatewayName
    brand: str
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    autopay: bool
    created_at: dt.datetime
    removed_at: dt.datetime | None = None


class ExpiringCard(CardOut, kw_only=True):
    customer_id: int
    customer_number: str
    customer_name: str
    email: str


class CardPatch(msgspec.Struct, kw_only=True):
    autopay: bool


class SetupIn(msgspec.Struct, kw_only=True):
    gateway: GatewayName
    return_url: Url = ""
    cancel_url: Url = ""


class SetupOut(msgspec.Struct, kw_only=True):
    """How the payer saves the card: Stripe.js confirms ``client_secret`` with ``publishable_key``;
    PayPal's payer approves at ``approve_url``. Then POST ``setup_ref`` to the customer's cards."""

    gateway: GatewayName
    setup_ref: str
    client_secret: str | None = None
    approve_url: str | None = None
    publishable_key: str | None = None


class CardIn(msgspec.Struct, kw_only=True):
    gateway: GatewayName
    setup_ref: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")]


class OnlinePaymentIn(msgspec.Struct, kw_only=True):
    """An invoice to pay (what is left of it, or ``amount`` of it) or a top-up of ``amount``; with a
    saved card (``method_id``) or finished by the payer (the answer's ``client_secret`` or ``approve_url``)."""

    gateway: GatewayName
    purpose: Literal["invoice", "top_up"] = "invoice"
    document_id: Id | None = None
    amount: Amount | None = None
    method_id: Id | None = None
    return_url: Url = ""
    cancel_url: Url = ""


class OnlinePaymentOut(msgspec.Struct, kw_only=True):
    """A payment attempt. ``status``: created, requires_action (the payer's step: Stripe.js with
    ``client_secret``, or PayPal's ``approve_url``), processing, succeeded (``payment_id``,
    ``receipt_number``), failed (``error``), canceled."""

    id: int
    gateway: GatewayName
    purpose: str
    status: str
    amount: str
    currency: str
    document_id: int | None = None
    client_secret: str | None = None
    approve_url: str | None = None
    publishable_key: str | None = None
    error: str = ""
    payment_id: int | None = None
    receipt_number: str | None = None


class RefundIn(msgspec.Struct, kw_only=True):
    reason: Reason


class RefundOut(msgspec.Struct, kw_only=True):
    payment_id: int
    refund_ref: str


class ExpiringQuery(msgspec.Struct, kw_only=True):
    partner_id: Id | None = None
