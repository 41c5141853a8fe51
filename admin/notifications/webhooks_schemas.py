"""Notifications -> Webhooks' request and response types (webhooks_page.py): one struct decodes a
form or a JSON body and describes it in the OpenAPI document."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from admin.schemas import Id, Limit

Url = Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s\x00]+$", max_length=2000,
                                  description="where the events are POSTed: http:// or https://")]
Pattern = Annotated[str, msgspec.Meta(pattern=r"^(\*|[a-z][a-z_]*\.(\*|[a-z][a-z_]*))$", max_length=100,
                                      description="an event type (`invoice.created`), `<subject>.*` or `*`")]
Patterns = Annotated[list[Pattern], msgspec.Meta(min_length=1, max_length=100)]
Description = Annotated[str, msgspec.Meta(max_length=500, pattern=r"^[^\x00]*$")]
DeliveryStatus = Literal["pending", "delivered", "failed"]


class WebhookIn(msgspec.Struct, kw_only=True):
    """A new webhook: its URL, what it subscribes to, whose events (``partner_id``; null: every
    partner's; a partner's administrator: its own, whatever it says), and whether it is on."""

    url: Url
    events: Patterns = msgspec.field(default_factory=lambda: ["*"])
    partner_id: Id | None = None
    description: Description = ""
    enabled: bool = True


class WebhookPatch(msgspec.Struct, kw_only=True):
    """What changes (what is left out stays)."""

    url: Url | msgspec.UnsetType = msgspec.UNSET
    events: Patterns | msgspec.UnsetType = msgspec.UNSET
    partner_id: Id | msgspec.UnsetType | None = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class WebhookForm(msgspec.Struct, kw_only=True):
    """The add and edit form: the known types as checkboxes (``events``), more patterns as text."""

    url: Url
    events: list[Pattern] = []
    patterns: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    partner_id: Id | None = None
    description: Description = ""
    enabled: bool = False


class WebhookOut(msgspec.Struct, kw_only=True):
    """A webhook (its secret is never shown here: POST ``/webhooks/{id}/secret`` makes a new one), with
    how many of its deliveries are pending and failed, and when one last got through."""

    id: int
    partner_id: int | None
    partner: str | None
    url: str
    events: list[str]
    enabled: bool
    description: str
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    pending: int
    failed: int
    last_delivered_at: dt.datetime | None


class WebhookCreated(WebhookOut, kw_only=True):
    """A new webhook with its signing secret: shown this once."""

    secret: str


class Secret(msgspec.Struct, kw_only=True):
    """A webhook's new signing secret (the old one stops signing at once)."""

    webhook_id: int
    secret: str


class DeliveryOut(msgspec.Struct, kw_only=True):
    """One event to one webhook: ``pending`` (tried again at ``next_attempt_at``), ``delivered`` or
    ``failed`` (out of attempts: replay it), with the last attempt's answer."""

    id: int
    webhook_id: int
    event_id: int
    type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime
    occurred_at: dt.datetime
    last_status: int | None
    last_error: str | None
    last_attempt_at: dt.datetime | None


class DeliveryQuery(msgspec.Struct, kw_only=True):
    """A webhook's deliveries, newest first; ``before``: the id from ``next`` of the page before."""

    status: DeliveryStatus | None = None
    before: Id | None = None
    limit: Limit = 50


class Deliveries(msgspec.Struct, kw_only=True):
    items: list[DeliveryOut]
    next: int | None = None  # pass as ?before= for the next (older) page; null: the last page


class Pinged(msgspec.Struct, kw_only=True):
    """The test event's delivery, due now (the worker sends it within seconds)."""

    delivery_id: int


class EventQuery(msgspec.Struct, kw_only=True):
    after: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] = 0
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class EventOut(msgspec.Struct, kw_only=True):
    """An event of the outbox as a webhook gets it (its ``data`` as the catalogue says), and whose."""

    id: int
    type: str
    occurred_at: dt.datetime
    partner_id: int | None
    data: dict[str, Any]


class Events(msgspec.Struct, kw_only=True):
    """Events after ``?after=``, oldest first; ``after``: what to pass next time (the last id here)."""

    items: list[EventOut]
    after: int
