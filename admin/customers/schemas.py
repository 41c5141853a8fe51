"""Customers' and services' request and response types (validation and the OpenAPI document)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from admin.schemas import Id, Limit

Email = Annotated[str, msgspec.Meta(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
Phone = Annotated[str, msgspec.Meta(pattern=r"^\+?[0-9 ()./-]{3,30}$")]
Country = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")]
Short = Annotated[str, msgspec.Meta(max_length=200)]
Status = Literal["new", "active", "blocked", "inactive", "deleted"]
ServiceStatus = Literal["active", "blocked", "disabled", "archived"]
Login = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._@+-]{1,64}$")]
CpeSerial = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00\s]+$", description=(
    "the serial number of the customer's router: the ACS links the device with this serial to the service"))]
Mac = Annotated[str, msgspec.Meta(pattern=r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")]
Ipv4 = Annotated[str, msgspec.Meta(pattern=r"^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$")]
Ipv6Prefix = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Fa-f:]+/\d{1,3}$")]
Language = Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2}(_[A-Z]{2})?$", description=(
    "the language of the messages sent to the customer: `de`, or with a country `de_AT`; null: the partner's default"))]


class CustomerIn(msgspec.Struct, kw_only=True):
    """A new customer (a partner's administrator creates its partner's customers only)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    partner_id: Id | None = None
    category: Literal["person", "company"] = "person"
    status: Literal["new", "active"] = "new"
    email: Email | None = None
    billing_email: Email | None = None
    other_emails: list[Email] = []
    phone: Phone | None = None
    other_phones: list[Phone] = []
    street: Short | None = None
    city: Short | None = None
    zip: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    country: Country | None = None
    notes: Annotated[str, msgspec.Meta(max_length=5000)] = ""
    custom: dict[str, Any] = {}
    language: Language | None = None
    marketing_opt_out: bool = False  # announcements (marketing) are not sent; legal notices are


class CustomerPatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The fields to change; the status changes through the status operation (its lifecycle)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | msgspec.UnsetType = msgspec.UNSET
    category: Literal["person", "company"] | msgspec.UnsetType = msgspec.UNSET
    email: Email | msgspec.UnsetType | None = msgspec.UNSET
    billing_email: Email | msgspec.UnsetType | None = msgspec.UNSET
    other_emails: list[Email] | msgspec.UnsetType = msgspec.UNSET
    phone: Phone | msgspec.UnsetType | None = msgspec.UNSET
    other_phones: list[Phone] | msgspec.UnsetType = msgspec.UNSET
    street: Short | msgspec.UnsetType | None = msgspec.UNSET
    city: Short | msgspec.UnsetType | None = msgspec.UNSET
    zip: Annotated[str, msgspec.Meta(max_length=20)] | msgspec.UnsetType | None = msgspec.UNSET
    country: Country | msgspec.UnsetType | None = msgspec.UNSET
    notes: Annotated[str, msgspec.Meta(max_length=5000)] | msgspec.UnsetType = msgspec.UNSET
    custom: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    language: Language | msgspec.UnsetType | None = msgspec.UNSET
    marketing_opt_out: bool | msgspec.UnsetType = msgspec.UNSET


class Customer(msgspec.Struct):
    id: int
    number: str
    name: str
    partner_id: int
    category: str
    status: Status
    email: str | None
    billing_email: str | None
    other_emails: list[str]
    phone: str | None
    other_phones: list[str]
    street: str | None
    city: str | None
    zip: str | None
    country: str | None
    notes: str
    custom: dict[str, Any]
    created_by: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    language: str | None
    marketing_opt_out: bool


class StatusChange(msgspec.Struct):
    action: Literal["activate", "block", "unblock", "deactivate"]


class CustomerQuery(msgspec.Struct, kw_only=True):
    status: Status | None = None
    partner_id: Id | None = None
    category: Literal["person", "company"] | None = None
    q: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    sort: Literal["id", "name", "number", "status", "city"] = "id"
    dir: Literal["asc", "desc"] = "asc"
    after: str | None = None
    limit: Limit = 50


class ServiceIn(msgspec.Struct, kw_only=True):
    tariff_id: Id
    login: Login
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    router_id: Id | None = None
    status: Literal["active", "blocked", "disabled"] = "active"
    ipv4: Ipv4 | None = None
    pool_id: Id | None = None
    ipv6_prefix: Ipv6Prefix | None = None
    delegated_ipv6_prefix: Ipv6Prefix | None = None
    mac: Mac | None = None
    simultaneous_use: Annotated[int, msgspec.Meta(ge=0, le=100)] = 1
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    custom: dict[str, Any] = {}
    cpe_serial: CpeSerial | None = None


class ServicePatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    tariff_id: Id | msgspec.UnsetType = msgspec.UNSET
    login: Login | msgspec.UnsetType = msgspec.UNSET
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | msgspec.UnsetType = msgspec.UNSET
    router_id: Id | msgspec.UnsetType | None = msgspec.UNSET
    status: ServiceStatus | msgspec.UnsetType = msgspec.UNSET
    ipv4: Ipv4 | msgspec.UnsetType | None = msgspec.UNSET
    pool_id: Id | msgspec.UnsetType | None = msgspec.UNSET
    ipv6_prefix: Ipv6Prefix | msgspec.UnsetType | None = msgspec.UNSET
    delegated_ipv6_prefix: Ipv6Prefix | msgspec.UnsetType | None = msgspec.UNSET
    mac: Mac | msgspec.UnsetType | None = msgspec.UNSET
    simultaneous_use: Annotated[int, msgspec.Meta(ge=0, le=100)] | msgspec.UnsetType = msgspec.UNSET
    start_date: dt.date | msgspec.UnsetType | None = msgspec.UNSET
    end_date: dt.date | msgspec.UnsetType | None = msgspec.UNSET
    custom: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    cpe_serial: CpeSerial | msgspec.UnsetType | None = msgspec.UNSET


class Service(msgspec.Struct):
    id: int
    customer_id: int
    tariff_id: int
    tariff: str
    login: str
    status: ServiceStatus
    router_id: int | None
    ipv4: str | None
    pool_id: int | None
    ipv6_prefix: str | None
    delegated_ipv6_prefix: str | None
    mac: str | None
    simultaneous_use: int
    start_date: dt.date | None
    end_date: dt.date | None
    custom: dict[str, Any]
    online: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    cpe_serial: str | None = None


class SearchHit(msgspec.Struct):
    """A customer the search found, and why (``match``: what matched, e.g. "IP 100.64.0.7 (session at ...)")."""

    customer_id: int
    number: str
    name: str
    status: Status
    match: str
    score: int


class SearchQuery(msgspec.Struct, kw_only=True):
    q: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    at: dt.datetime | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20


CUSTOMER_FIELDS = tuple(f for f in Customer.__struct_fields__)
SERVICE_FIELDS = tuple(f for f in Service.__struct_fields__)
