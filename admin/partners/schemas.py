"""Partners' request and response types (validation and the OpenAPI document), and what each of
the tables' constraints means to the person filling in the form."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from admin.schemas import Id, Limit, Name, Text

Percent = Annotated[str, msgspec.Meta(
    description='a decimal string from 0 to 100 with at most 4 decimal places ("12.5")',
    extra_json_schema={"pattern": r"^[0-9]{1,3}(\.[0-9]{1,4})?$", "format": "decimal"})]
Country = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2, e.g. AT")]
Mode = Literal["direct", "percentage", "own_invoicing", "aggregated"]
Category = Literal["service", "one_time", "fee"]
Email = Annotated[str, msgspec.Meta(pattern=r"^([^@\s]+@[^@\s]+\.[^@\s]+)?$", max_length=254)]
Phone = Annotated[str, msgspec.Meta(pattern=r"^(\+?[0-9 ()./-]{3,30})?$")]


class PartnerIn(msgspec.Struct, kw_only=True):
    """A partner as a form or the API gives it. ``parent_id``: the partner it is a sub-partner
    of (never one of its own sub-partners); an IBAN, when given, is checked (check digits, the
    country's format, the bank code)."""

    name: Name
    parent_id: Id | None = None
    legal_name: Text = ""
    vat_id: Text = ""
    street: Text = ""
    city: Text = ""
    zip: Annotated[str, msgspec.Meta(max_length=20)] = ""
    country: Country | None = None
    contact_name: Text = ""
    email: Email = ""
    phone: Phone = ""
    bank_name: Text = ""
    iban: Annotated[str, msgspec.Meta(max_length=50)] = ""
    bic: Annotated[str, msgspec.Meta(max_length=11, pattern=r"^([A-Za-z0-9]{8}([A-Za-z0-9]{3})?)?$")] = ""
    commission_percent: Annotated[Percent, msgspec.Meta(
        description="percentage mode: the partner's share of what its customers pay, unless a rate per tariff "
                    "or category says otherwise")] = "0"


class PartnerPatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The fields to change (null clears ``parent_id`` or ``country``)."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    parent_id: Id | msgspec.UnsetType | None = msgspec.UNSET
    legal_name: Text | msgspec.UnsetType = msgspec.UNSET
    vat_id: Text | msgspec.UnsetType = msgspec.UNSET
    street: Text | msgspec.UnsetType = msgspec.UNSET
    city: Text | msgspec.UnsetType = msgspec.UNSET
    zip: Annotated[str, msgspec.Meta(max_length=20)] | msgspec.UnsetType = msgspec.UNSET
    country: Country | msgspec.UnsetType | None = msgspec.UNSET
    contact_name: Text | msgspec.UnsetType = msgspec.UNSET
    email: Email | msgspec.UnsetType = msgspec.UNSET
    phone: Phone | msgspec.UnsetType = msgspec.UNSET
    bank_name: Text | msgspec.UnsetType = msgspec.UNSET
    iban: Annotated[str, msgspec.Meta(max_length=50)] | msgspec.UnsetType = msgspec.UNSET
    bic: Annotated[str, msgspec.Meta(max_length=11, pattern=r"^([A-Za-z0-9]{8}([A-Za-z0-9]{3})?)?$")] | \
        msgspec.UnsetType = msgspec.UNSET
    commission_percent: Percent | msgspec.UnsetType = msgspec.UNSET


class Amount(msgspec.Struct):
    currency: str
    amount: Decimal


class Partner(msgspec.Struct):
    """A partner with its figures: ``mode`` today, the next scheduled change (``next_mode`` from
    ``next_starts_on``, null when none), its customers (not deleted), MRR (the tariff prices of
    its active services, per currency) and open debt (what its customers owe on their ledgers,
    per currency)."""

    id: int
    name: str
    parent_id: int | None
    legal_name: str
    vat_id: str
    street: str
    city: str
    zip: str
    country: str | None
    contact_name: str
    email: str
    phone: str
    bank_name: str
    iban: str
    bic: str
    commission_percent: Decimal
    mode: str
    next_mode: str | None
    next_starts_on: dt.date | None
    customers: int
    mrr: list[Amount]
    debt: list[Amount]
    created_at: dt.datetime
    updated_at: dt.datetime


class PartnerQuery(msgspec.Struct, kw_only=True):
    after: str | None = None
    limit: Limit = 50


class ModeIn(msgspec.Struct, kw_only=True):
    """A mode change: from the 1st of a later month (the next month at the earliest). For now
    only direct and percentage; own_invoicing and aggregated are refused (not available yet)."""

    starts_on: Annotated[dt.date, msgspec.Meta(description="the 1st of a month after the current one")]
    mode: Mode


class PartnerMode(msgspec.Struct):
    """A row of a partner's mode history: ``state`` past (replaced by a later one), current (in
    force today) or scheduled (from a later month: it may still be replaced or removed)."""

    starts_on: dt.date
    mode: str
    state: Literal["past", "current", "scheduled"]
    created_by: str
    created_at: dt.datetime


class PartnerModes(msgspec.Struct):
    """A partner's mode today (direct before its first row) and its history, oldest first."""

    mode: str
    modes: list[PartnerMode]


class TariffsIn(msgspec.Struct, kw_only=True):
    """The tariffs the partner may sell (the rest given to other partners are refused for its
    customers' services). A tariff given to no partner is every partner's: giving it to this one
    limits it to the partners it is given to."""

    tariff_ids: Annotated[list[Id], msgspec.Meta(max_length=1000)]


class PartnerTariff(msgspec.Struct):
    id: int
    name: str
    price: Decimal
    currency: str
    allowed: bool
    restricted: bool


class PartnerTariffs(msgspec.Struct):
    """Every tariff, with whether the partner may sell it (``allowed``) and whether it is given to
    particular partners at all (``restricted``: false, every partner may)."""

    tariffs: list[PartnerTariff]


class TariffRate(msgspec.Struct):
    tariff_id: Id
    percent: Percent


class CategoryRate(msgspec.Struct):
    category: Category
    percent: Percent


class RatesIn(msgspec.Struct, kw_only=True):
    """Percentage mode's rates, all replaced: the default percent, then the tariffs' and the
    categories' rates (a tariff's rate before its category's before the default)."""

    commission_percent: Percent
    tariffs: Annotated[list[TariffRate], msgspec.Meta(max_length=1000)] = []
    categories: Annotated[list[CategoryRate], msgspec.Meta(max_length=3)] = []


class TariffRateOut(msgspec.Struct):
    tariff_id: int
    tariff: str
    percent: Decimal


class CategoryRateOut(msgspec.Struct):
    category: str
    percent: Decimal


class Rates(msgspec.Struct):
    commission_percent: Decimal
    tariffs: list[TariffRateOut]
    categories: list[CategoryRateOut]


EDITABLE = tuple(PartnerIn.__struct_fields__)

CONSTRAINTS: dict[str, tuple[str, str]] = {
    "partners_name_unique": ("name", "another partner has this name"),
    "partners_parent_fk": ("parent_id", "no such partner"),
    "partners_no_cycle": ("parent_id", "cannot be one of this partner's own sub-partners (a partner cannot be "
                                       "under itself)"),
    "partners_not_own_parent": ("parent_id", "a partner cannot be its own parent"),
    "partners_country_iso": ("country", "must be a two-letter country code, like AT"),
    "partners_commission_percent_range": ("commission_percent", "must be from 0 to 100"),
    "partner_commission_rates_tariff_fk": ("tariffs", "no such tariff (deleted meanwhile?)"),
    "partner_commission_rates_percent_range": ("percent", "must be from 0 to 100"),
    "partner_commission_rates_unique": ("tariffs", "a tariff or category is given twice"),
    "tariff_partners_tariff_fk": ("tariff_ids", "no such tariff (deleted meanwhile?)"),
}


def constraint_errors(constraint: str) -> dict[str, str]:
    field, text = CONSTRAINTS.get(constraint, ("", f"the partner breaks the rule {constraint or 'of the database'}"))
    return {field: text}
