"""Tariffs' request and response types (validation and the OpenAPI document), and what each of
the table's constraints means to the person filling in the form."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

from admin.schemas import Id, Limit, Name

Kbps = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1, description="kbit/s")]
Guaranteed = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1, description="kbit/s; 0 or null: none")]
Seconds = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
Priority = Annotated[int, msgspec.Meta(ge=1, le=8, description="1 (highest) to 8 (lowest), MikroTik queue priority")]
Contention = Annotated[int, msgspec.Meta(ge=1, le=1000, description="1:N, N subscribers share the speed")]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. EUR")]
PRICE_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,4})?$"
PortalChange = Annotated[Literal["self_service", "request", "off"], msgspec.Meta(
    description="what the plan's customers may do in the portal about a plan change: self_service (change it, "
                "seeing the prorated amounts first), request (ask: a ticket is opened), off")]
Price = Annotated[str, msgspec.Meta(
    description='per billing period, a decimal string with at most 4 decimal places ("29.90"): money is never '
                "a binary floating-point number", extra_json_schema={"pattern": PRICE_PATTERN, "format": "decimal"})]


class TariffIn(msgspec.Struct, kw_only=True):
    """A tariff as a form or the API gives it. Bursts: burst download, burst upload and burst
    time go together (all or none), each burst at least its speed (MikroTik's queue semantics)."""

    name: Name
    download_kbps: Kbps
    upload_kbps: Kbps
    burst_download_kbps: Kbps | None = None
    burst_upload_kbps: Kbps | None = None
    burst_threshold_download_kbps: Kbps | None = None
    burst_threshold_upload_kbps: Kbps | None = None
    burst_time_s: Seconds | None = None
    priority: Priority = 8
    limit_at_download_kbps: Guaranteed | None = None
    limit_at_upload_kbps: Guaranteed | None = None
    contention: Contention = 1
    price: Price = "0"
    currency: Currency = "EUR"
    session_timeout_s: Seconds | None = None
    custom: dict[str, Any] = {}
    tax_group_id: Annotated[Id, msgspec.Meta(description="the tax group its lines pay (Finance settings: "
                                                         "taxes); null: outside the scope of tax")] | None = None
    price_includes_tax: Annotated[bool, msgspec.Meta(description="the price is gross: its tax is "
                                                                 "taken out of it, not added")] = False
    portal_change: PortalChange = "off"
    portal_targets: Annotated[list[Id], msgspec.Meta(
        max_length=200, description="the tariffs the plan's customers may move to in the portal")] = []
    portal_stop: Annotated[bool, msgspec.Meta(description="the plan's customers may stop (pause) a service and "
                                                          "resume it in the portal")] = False


class TariffPatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The fields to change (null clears an optional one)."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    download_kbps: Kbps | msgspec.UnsetType = msgspec.UNSET
    upload_kbps: Kbps | msgspec.UnsetType = msgspec.UNSET
    burst_download_kbps: Kbps | msgspec.UnsetType | None = msgspec.UNSET
    burst_upload_kbps: Kbps | msgspec.UnsetType | None = msgspec.UNSET
    burst_threshold_download_kbps: Kbps | msgspec.UnsetType | None = msgspec.UNSET
    burst_threshold_upload_kbps: Kbps | msgspec.UnsetType | None = msgspec.UNSET
    burst_time_s: Seconds | msgspec.UnsetType | None = msgspec.UNSET
    priority: Priority | msgspec.UnsetType = msgspec.UNSET
    limit_at_download_kbps: Guaranteed | msgspec.UnsetType | None = msgspec.UNSET
    limit_at_upload_kbps: Guaranteed | msgspec.UnsetType | None = msgspec.UNSET
    contention: Contention | msgspec.UnsetType = msgspec.UNSET
    price: Price | msgspec.UnsetType = msgspec.UNSET
    currency: Currency | msgspec.UnsetType = msgspec.UNSET
    session_timeout_s: Seconds | msgspec.UnsetType | None = msgspec.UNSET
    custom: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    tax_group_id: Id | msgspec.UnsetType | None = msgspec.UNSET
    price_includes_tax: bool | msgspec.UnsetType = msgspec.UNSET
    portal_change: PortalChange | msgspec.UnsetType = msgspec.UNSET
    portal_targets: list[Id] | msgspec.UnsetType = msgspec.UNSET
    portal_stop: bool | msgspec.UnsetType = msgspec.UNSET


class Tariff(msgspec.Struct):
    id: int
    name: str
    download_kbps: int
    upload_kbps: int
    burst_download_kbps: int | None
    burst_upload_kbps: int | None
    burst_threshold_download_kbps: int | None
    burst_threshold_upload_kbps: int | None
    burst_time_s: int | None
    priority: int
    limit_at_download_kbps: int | None
    limit_at_upload_kbps: int | None
    contention: int
    price: Decimal
    currency: str
    session_timeout_s: int | None
    custom: dict[str, Any]
    services: int
    created_at: dt.datetime
    updated_at: dt.datetime
    tax_group_id: int | None
    tax_group: str | None
    price_includes_tax: bool
    portal_change: str
    portal_targets: list[int]
    portal_stop: bool


class TariffQuery(msgspec.Struct, kw_only=True):
    q: Annotated[str, msgspec.Meta(max_length=100, pattern=r"^[^\x00]*$", description="part of the name")] | None = None
    sort: Literal["name", "price", "download"] = "name"
    dir: Literal["asc", "desc"] = "asc"
    after: str | None = None
    limit: Limit = 50


EDITABLE = tuple(f for f in TariffIn.__struct_fields__)
"""The fields a form or the API writes (``custom`` included)."""
TARGETS = "portal_targets"
"""The field kept in tariff_portal_targets, not a column of tariffs."""


def price(text: str) -> Decimal:
    """The price of a form or a request, as numeric(14, 4) holds it (ValueError says what is wrong).
    Exactly what PRICE_PATTERN, which the API's document shows, accepts."""
    whole, _, fraction = text.partition(".")
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        raise ValueError("must be a number, 0 or more, like 29.90")
    if len(fraction) > 4:
        raise ValueError("must have at most 4 decimal places")
    if len(whole) > 10:
        raise ValueError("is too large")
    return Decimal(text)


def values_of(t: TariffIn) -> dict[str, Any]:
    """The columns to write (the portal's targets apart); a bad price raises ValueError."""
    values = {k: getattr(t, k) for k in EDITABLE if k != TARGETS}
    values["price"] = price(t.price)
    return values

CONSTRAINTS: dict[str, tuple[str, str]] = {
    "tariffs_name_unique": ("name", "another tariff has this name"),
    "tariffs_download_positive": ("download_kbps", "must be more than 0"),
    "tariffs_upload_positive": ("upload_kbps", "must be more than 0"),
    "tariffs_burst_download_above": ("burst_download_kbps", "must be at least the download speed"),
    "tariffs_burst_upload_above": ("burst_upload_kbps", "must be at least the upload speed"),
    "tariffs_burst_time_positive": ("burst_time_s", "must be more than 0"),
    "tariffs_priority_range": ("priority", "must be from 1 to 8"),
    "tariffs_price_nonnegative": ("price", "must be 0 or more"),
    "tariffs_currency_iso": ("currency", "must be a three-letter currency code, like EUR"),
    "tariffs_session_timeout_positive": ("session_timeout_s", "must be more than 0"),
    "tariffs_limit_at_download_range": ("limit_at_download_kbps", "must be from 0 to the download speed"),
    "tariffs_limit_at_upload_range": ("limit_at_upload_kbps", "must be from 0 to the upload speed"),
    "tariffs_contention_range": ("contention", "must be from 1 to 1000"),
    "tariffs_tax_group_fk": ("tax_group_id", "no such tax group (deleted meanwhile?)"),
    "tariffs_portal_change_valid": ("portal_change", "must be self_service, request or off"),
    "tariff_portal_targets_target_fk": ("portal_targets", "no such tariff (deleted meanwhile?)"),
    "tariff_portal_targets_not_itself": ("portal_targets", "a plan cannot be a move from itself to itself"),
}

BURST = ("burst_download_kbps", "burst_upload_kbps", "burst_time_s")


def constraint_errors(constraint: str, values: dict[str, Any]) -> dict[str, str]:
    """The field errors of a violated constraint of ``tariffs``, given the values written."""
    if constraint == "tariffs_burst_complete":
        missing = [f for f in BURST if values.get(f) is None]
        text = "is needed too: burst download, burst upload and burst time go together (fill all three or none)"
        return {f: text for f in missing} or {"burst_time_s": text}
    field, text = CONSTRAINTS.get(constraint, ("", f"the tariff breaks the rule {constraint or 'of the database'}"))
    return {field: text}
