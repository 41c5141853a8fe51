"""Partners: the tree of partners and sub-partners with their figures (CSV too), a partner's page
(details, sub-partners, its mode history and schedule, the tariffs it may sell, its commission
rates), its form; and the API.

Who sees what: the ISP's administrators (no partner) see and manage every partner; a partner's
administrator sees its own partner and the sub-partners under it, read-only (no forms; a write is
403), and another partner's id is "not found" (404), on pages and in the API alike.

Modes (partner_modes): a change takes effect on the 1st of a later month, the next one at the
earliest, never the current or a past one, so what was issued stays as it was. A scheduled
(future) row may be replaced or removed; a row in force or past never. Only direct and
percentage may be scheduled: billing does not do own invoicing or aggregated invoices yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg
import msgspec
from aiohttp import web
from babel import Locale

from admin import keys, listing, oplog_store, pages, schemas
from admin.partners import partners_store as store
from admin.partners.common import AREA
from admin.partners.schemas import (
    EDITABLE,
    Amount,
    CategoryRateOut,
    ModeIn,
    Partner,
    PartnerIn,
    PartnerMode,
    PartnerModes,
    PartnerPatch,
    PartnerQuery,
    PartnerTariff,
    PartnerTariffs,
    Rates,
    RatesIn,
    TariffRateOut,
    TariffsIn,
    constraint_errors,
)
from admin.payments.direct_debit import DirectDebitError, check_iban
from admin.schemas import Page
from admin.web import path_id

MODES = (("direct", "direct"), ("percentage", "percentage"), ("own_invoicing", "own invoicing"),
         ("aggregated", "aggregated"))
Row = Mapping[str, Any] | asyncpg.Record

SCHEDULABLE = frozenset({"direct", "percentage"})
CATEGORIES = (("service", "services' recurring charges"), ("one_time", "one-time charges"), ("fee", "fees"))
CSV_COLUMNS = ("id", "name", "parent_id", "parent", "mode", "next_mode", "next_starts_on", "customers", "mrr", "debt",
               "legal_name", "vat_id", "street", "city", "zip", "country", "contact_name", "email", "phone",
               "bank_name", "iban", "bic", "commission_percent")
NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "QO", "ZZ"})
COUNTRIES = frozenset(str(c) for c in Locale("en").territories if len(str(c)) == 2 and str(c).isalpha()) - NOT_COUNTRIES
"""ISO 3166-1 alpha-2 codes (CLDR's, Kosovo's XK included; its groupings such as EU left out)."""


def today() -> dt.date:
    """Today as the admin counts days: UTC (the tests pin it)."""
    return dt.datetime.now(dt.UTC).date()


# -- the mode rules (pure) ------------------------------------------------------------------------

def earliest_change(on: dt.date) -> dt.date:
    """The first day a mode change asked for ``on`` may take effect: the 1st of the next month."""
    return dt.date(on.year + on.month // 12, on.month % 12 + 1, 1)


def schedule_error(on: dt.date, starts_on: dt.date, mode: str) -> str:
    """Why a change to ``mode`` from ``starts_on``, asked for ``on``, is refused ("": it is not)."""
    if mode not in SCHEDULABLE:
        return f"{mode.replace('_', ' ')} is not available yet: billing does not do it yet (direct or percentage)"
    if starts_on.day != 1:
        return "a mode changes on the 1st of a month"
    if starts_on < earliest_change(on):
        return (f"a mode change takes effect from the next month at the earliest ({earliest_change(on)}): "
                "the current month and past ones are never rewritten")
    return ""


def states(rows: Sequence[Row], on: dt.date) -> list[PartnerMode]:
    """The history with each row's state ``on`` that day: past, current (in force) or scheduled."""
    current = max((r["starts_on"] for r in rows if r["starts_on"] <= on), default=None)
    return [PartnerMode(r["starts_on"], r["mode"],
                        "scheduled" if r["starts_on"] > on else "current" if r["starts_on"] == current else "past",
                        r["created_by"], r["created_at"]) for r in rows]


def mode_on(rows: Sequence[Row], on: dt.date) -> str:
    return next((r["mode"] for r in sorted(rows, key=lambda r: r["starts_on"], reverse=True) if r["starts_on"] <= on),
                "direct")


# -- values ---------------------------------------------------------------------------------------

def percent(text: str, field: str = "commission_percent") -> Decimal:
    """A percentage as numeric(7, 4) holds it, 0 to 100 (schemas.Invalid on ``field`` otherwise)."""
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation:
        raise schemas.Invalid({field: "must be a number from 0 to 100, like 12.5"}) from None
    if not value.is_finite() or not 0 <= value <= 100:
        raise schemas.Invalid({field: "must be from 0 to 100"})
    if value != value.quantize(Decimal("0.0001")):
        raise schemas.Invalid({field: "must have at most 4 decimal places"})
    return value


def values_of(data: PartnerIn) -> dict[str, Any]:
    """The columns to write: the country upper case and known, the IBAN checked and compact (its
    BIC found when none is given), the percent a number; every wrong one on its field."""
    values, errors = _checked({k: getattr(data, k) for k in EDITABLE})
    if errors:
        raise schemas.Invalid(errors)
    return values


def _checked(given: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """values_of's checks over ``given`` (a form's strings too): the values and the errors."""
    values = {**msgspec.structs.asdict(PartnerIn(name="")), **given}
    errors: dict[str, str] = {}
    for k in ("name", "legal_name", "vat_id", "street", "city", "zip", "contact_name", "email", "phone", "bank_name",
              "iban", "bic", "commission_percent"):
        values[k] = str(values[k] or "").strip()
        if "\x00" in values[k]:
            errors[k] = "must not hold a NUL character"
    if not values["name"]:
        errors["name"] = "is required"
    if values["country"]:
        values["country"] = str(values["country"]).strip().upper()
        if values["country"] not in COUNTRIES:
            errors["country"] = "is not an ISO country code (two letters, like AT)"
    else:
        values["country"] = None
    values["bic"] = values["bic"].upper()
    if values["iban"] and "iban" not in errors:
        try:
            account = check_iban(values["iban"])
        except DirectDebitError as e:
            errors["iban"] = str(e)
        else:
            values["iban"] = account.iban
            values["bic"] = values["bic"] or account.bic
            values["bank_name"] = values["bank_name"] or account.bank
    if "commission_percent" not in errors:
        try:
            values["commission_percent"] = percent(values["commission_percent"])
        except schemas.Invalid as e:
            errors.update(e.errors)
    return values, errors


# -- scope ----------------------------------------------------------------------------------------

def _scope(request: web.Request) -> int | None:
    return keys.principal(request).partner_id


def _writable(request: web.Request) -> None:
    """A partner's administrator sees partners but never changes them."""
    if _scope(request) is not None:
        raise web.HTTPForbidden(text="a partner's administrator cannot change partners")


def _amounts(row: Row, name: str) -> list[Amount]:
    return [Amount(c, a) for c, a in store.amounts(row[f"{name}_currencies"], row[f"{name}_totals"])]


def _out(row: Row) -> Partner:
    fields = {k: row[k] for k in Partner.__struct_fields__ if k not in ("mrr", "debt")}
    return Partner(**fields, mrr=_amounts(row, "mrr"), debt=_amounts(row, "debt"))


async def _visible(conn: Any, request: web.Request, partner_id: int, *, lock: bool = False) -> asyncpg.Record:
    row = await store.exists(conn, _scope(request), partner_id, lock=lock)
    if row is None:
        raise web.HTTPNotFound(text="no such partner")
    return row


def _log_json(values: Mapping[str, Any]) -> dict[str, Any]:
    return schemas.jsonable(dict(values))  # type: ignore[no-any-return]


async def _save(request: web.Request, partner_id: int | None, data: PartnerIn) -> int:
    """Create (``partner_id`` None) or update a partner and log it, in one transaction; a violated
    constraint (a cycle of sub-partners: partners_no_cycle) becomes its field's error."""
    _writable(request)
    who = keys.principal(request)
    values = values_of(data)
    if partner_id is not None and values["parent_id"] == partner_id:
        raise schemas.Invalid(constraint_errors("partners_not_own_parent"))
    try:
        async with request.app[keys.POOL].acquire() as conn, conn.transaction():
            if partner_id is None:
                new_id = await store.create(conn, values)
                await oplog_store.record(conn, who, keys.client_address(request), "create", "partner", new_id,
                                         partner_id=new_id, summary=f"created partner {values['name']}",
                                         after=_log_json(values))
                return new_id
            before = await _visible(conn, request, partner_id, lock=True)
            changed = {k: v for k, v in values.items() if before[k] != v}
            if changed:
                await store.update(conn, partner_id, changed)
                await oplog_store.record(conn, who, keys.client_address(request), "update", "partner", partner_id,
                                         partner_id=partner_id,
                                         summary=f"changed partner {values['name']}: {', '.join(changed)}",
                                         before=_log_json({k: before[k] for k in changed}),
                                         after=_log_json(changed))
            return partner_id
    except asyncpg.IntegrityConstraintViolationError as e:
        raise schemas.Invalid(constraint_errors(e.constraint_name or "")) from None
    except asyncpg.DataError as e:
        raise schemas.Invalid({"": f"the database refused a value: {str(e).splitlines()[0]}"}) from None


async def _schedule(request: web.Request, partner_id: int, starts_on: dt.date, mode: str) -> None:
    _writable(request)
    who = keys.principal(request)
    on = today()
    if error := schedule_error(on, starts_on, mode):
        raise schemas.Invalid({"mode" if mode not in SCHEDULABLE else "starts_on": error})
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        p = await _visible(conn, request, partner_id, lock=True)
        before = await store.mode_row(conn, partner_id, starts_on)
        await store.put_mode(conn, partner_id, starts_on, mode, who.name)
        verb = "replaced" if before is not None else "scheduled"
        await oplog_store.record(conn, who, keys.client_address(request), "update", "partner", partner_id,
                                 partner_id=partner_id, summary=f"partner {p['name']}: {verb} mode {mode} from "
                                                                f"{starts_on}",
                                 before={"starts_on": str(starts_on), "mode": before["mode"]} if before else None,
                                 after={"starts_on": str(starts_on), "mode": mode})


class ModeFixed(Exception):
    """A mode row in force or past: never removed."""


async def _unschedule(request: web.Request, partner_id: int, starts_on: dt.date) -> None:
    _writable(request)
    who = keys.principal(request)
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        p = await _visible(conn, request, partner_id, lock=True)
        row = await store.mode_row(conn, partner_id, starts_on)
        if row is None:
            raise web.HTTPNotFound(text="no mode change from that day")
        if starts_on <= today():
            raise ModeFixed(f"the mode from {starts_on} is in force or past: it cannot be removed (schedule a change "
                            "from a later month instead)")
        await store.delete_mode(conn, partner_id, starts_on)
        await oplog_store.record(conn, who, keys.client_address(request), "update", "partner", partner_id,
                                 partner_id=partner_id,
                                 summary=f"partner {p['name']}: removed the mode {row['mode']} from {starts_on}",
                                 before={"starts_on": str(starts_on), "mode": row["mode"]}, after=None)


async def _set_tariffs(request: web.Request, partner_id: int, tariff_ids: Sequence[int]) -> None:
    _writable(request)
    who = keys.principal(request)
    chosen = sorted(set(tariff_ids))
    try:
        async with request.app[keys.POOL].acquire() as conn, conn.transaction():
            p = await _visible(conn, request, partner_id, lock=True)
            before = await store.given(conn, partner_id)
            if before == chosen:
                return
            await store.set_tariffs(conn, partner_id, chosen)
            await oplog_store.record(conn, who, keys.client_address(request), "update", "partner", partner_id,
                                     partner_id=partner_id, summary=f"partner {p['name']}: changed the tariffs it "
                                                                    "may sell",
                                     before={"tariff_ids": before}, after={"tariff_ids": chosen})
    except asyncpg.IntegrityConstraintViolationError as e:
        raise schemas.Invalid(constraint_errors(e.constraint_name or "")) from None


async def _set_rates(request: web.Request, partner_id: int, default: Decimal, by_tariff: dict[int, Decimal],
                     by_category: dict[str, Decimal]) -> None:
    _writable(request)
    who = keys.principal(request)
    try:
        async with request.app[keys.POOL].acquire() as conn, conn.transaction():
            p = await _visible(conn, request, partner_id, lock=True)
            old = await store.rates(conn, partner_id)
            before = {"commission_percent": str(p["commission_percent"]),
                      "tariffs": {str(r["tariff_id"]): str(r["percent"]) for r in old if r["tariff_id"]},
                      "categories": {r["category"]: str(r["percent"]) for r in old if r["category"]}}
            after = {"commission_percent": str(default), "tariffs": {str(k): str(v) for k, v in by_tariff.items()},
                     "categories": {k: str(v) for k, v in by_category.items()}}
            if _same_rates(before, after):
                return
            await store.set_rates(conn, partner_id, default, sorted(by_tariff.items()), sorted(by_category.items()))
            await oplog_store.record(conn, who, keys.client_address(request), "update", "partner", partner_id,
                                     partner_id=partner_id,
                                     summary=f"partner {p['name']}: changed the commission rates",
                                     before=before, after=after)
    except asyncpg.IntegrityConstraintViolationError as e:
        raise schemas.Invalid(constraint_errors(e.constraint_name or "")) from None


def _same_rates(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    def norm(x: Mapping[str, Any]) -> tuple[Decimal, dict[str, Decimal], dict[str, Decimal]]:
        return (Decimal(x["commission_percent"]), {k: Decimal(v) for k, v in x["tariffs"].items()},
                {k: Decimal(v) for k, v in x["categories"].items()})
    return norm(a) == norm(b)


def shown_percent(value: Decimal) -> str:
    """12.5000 -> "12.5", 10.0000 -> "10"."""
    return f"{Decimal(value).normalize():f}"


def grouped_iban(text: str) -> str:
    return " ".join(text[i:i + 4] for i in range(0, len(text), 4))


# -- the tree -------------------------------------------------------------------------------------

def tree(rows: Sequence[Row]) -> list[tuple[int, Row]]:
    """The partners in tree order, each with its depth: a partner whose parent is not among the
    rows is a root; sub-partners follow their parent, by name."""
    ids = {r["id"] for r in rows}
    kids: dict[int | None, list[Row]] = {}
    for r in rows:
        kids.setdefault(r["parent_id"] if r["parent_id"] in ids else None, []).append(r)
    out: list[tuple[int, Row]] = []

    def walk(parent: int | None, depth: int) -> None:
        for r in sorted(kids.get(parent, []), key=lambda r: (r["name"].lower(), r["id"])):
            out.append((depth, r))
            walk(r["id"], depth + 1)

    walk(None, 0)
    return out


def _money(amounts: Sequence[Amount]) -> str:
    return "; ".join(f"{a.amount:.2f} {a.currency}" for a in amounts)


# -- pages ----------------------------------------------------------------------------------------

@AREA.page("/partners", permission="administration.view")
async def partners_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        rows = await store.list_partners(conn, _scope(request), today())
    shown = [(depth, _out(r)) for depth, r in tree(rows)]
    if request.query.get("format") == "csv":
        names = {p.id: p.name for _, p in shown}

        async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
            return [p for _, p in shown] if after is None else []

        def cells(p: Partner) -> list[Any]:
            return [p.id, p.name, p.parent_id, names.get(p.parent_id or 0, ""), p.mode, p.next_mode, p.next_starts_on,
                    p.customers, _money(p.mrr), _money(p.debt), p.legal_name, p.vat_id, p.street, p.city, p.zip,
                    p.country, p.contact_name, p.email, p.phone, p.bank_name, p.iban, p.bic, p.commission_percent]

        return await listing.export_csv(request, "partners.csv", CSV_COLUMNS, fetch, lambda p: [p.name, p.id], cells)
    return pages.render("partners/list.html", request, {"rows": shown, "modes": dict(MODES),
                                                         "writable": _scope(request) is None})


def _form_values(form: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in form.items() if k != "_csrf"}


async def _form(request: web.Request, p: Mapping[str, Any], errors: dict[str, str], *, status: int = 200,
                editing: bool = False) -> web.Response:
    async with request.app[keys.POOL].acquire() as conn:
        choices = await store.names(conn, None)
        below = set(await store.under(conn, int(p["id"]))) if editing else set()
    parents = [(r["id"], r["name"]) for r in choices if r["id"] not in below]
    return pages.render("partners/form.html", request, {"p": p, "errors": errors, "editing": editing,
                                                         "parents": parents}, status=status)


async def _submitted(request: web.Request, partner_id: int | None) -> web.StreamResponse:
    if partner_id is not None:
        await _visible_or_404(request, partner_id)
    _writable(request)
    form = await request.post()
    values = _form_values(form)
    try:
        try:
            data = schemas.from_strings(values, PartnerIn)
        except schemas.Invalid as e:  # the checks of values_of too, so that every wrong field is shown at once
            raise schemas.Invalid({**_checked({k: v for k, v in values.items() if k in EDITABLE})[1], **e.errors}) \
                from None
        saved = await _save(request, partner_id, data)
    except schemas.Invalid as e:
        return await _form(request, {**values, "id": partner_id}, e.errors, status=422,
                           editing=partner_id is not None)
    raise web.HTTPFound(f"/admin/partners/{saved}?done={'saved' if partner_id else 'created'}")


@AREA.page("/partners/new", permission="administration.add")
async def new_partner_form(request: web.Request) -> web.StreamResponse:
    _writable(request)
    return await _form(request, {"commission_percent": "0", "parent_id": request.query.get("parent", "")}, {})


@AREA.page("/partners/new", permission="administration.add", method="POST")
async def create_partner_form(request: web.Request) -> web.StreamResponse:
    return await _submitted(request, None)


async def _detail(request: web.Request, partner_id: int, *, errors: dict[str, str] | None = None,
                  status: int = 200, mode_form: Mapping[str, Any] | None = None) -> web.Response:
    on = today()
    async with request.app[keys.POOL].acquire() as conn:
        row = await store.partner(conn, _scope(request), partner_id, on)
        if row is None:
            raise web.HTTPNotFound(text="no such partner")
        parent = await store.exists(conn, _scope(request), row["parent_id"]) if row["parent_id"] else None
        kids = await store.children(conn, partner_id)
        history = states(await store.modes(conn, partner_id), on)
        offered = await store.tariffs(conn, partner_id)
        rates = await store.rates(conn, partner_id)
    earliest = earliest_change(on)
    return pages.render("partners/detail.html", request, {
        "pct": shown_percent, "iban": grouped_iban,
        "p": _out(row), "parent": parent, "kids": kids, "history": history[::-1], "tariffs": offered,
        "tariff_rates": {r["tariff_id"]: r["percent"] for r in rates if r["tariff_id"]},
        "category_rates": {r["category"]: r["percent"] for r in rates if r["category"]},
        "modes": MODES, "mode_names": dict(MODES), "schedulable": SCHEDULABLE, "categories": CATEGORIES,
        "earliest": earliest, "months": [add_months(earliest, i) for i in range(12)],
        "mode_form": mode_form or {"starts_on": str(earliest), "mode": "percentage"},
        "errors": errors or {}, "writable": _scope(request) is None, "notice": request.query.get("done", "")},
        status=status)


def add_months(first: dt.date, n: int) -> dt.date:
    """The 1st of the month ``n`` months after ``first``'s."""
    months = first.year * 12 + first.month - 1 + n
    return dt.date(months // 12, months % 12 + 1, 1)


@AREA.page("/partners/{id}", permission="administration.view")
async def partner_page(request: web.Request) -> web.StreamResponse:
    return await _detail(request, path_id(request))


@AREA.page("/partners/{id}/edit", permission="administration.edit")
async def edit_partner_form(request: web.Request) -> web.StreamResponse:
    partner_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await _visible(conn, request, partner_id)
    _writable(request)
    return await _form(request, dict(row), {}, editing=True)


@AREA.page("/partners/{id}/edit", permission="administration.edit", method="POST")
async def edit_partner(request: web.Request) -> web.StreamResponse:
    return await _submitted(request, path_id(request))


async def _visible_or_404(request: web.Request, partner_id: int) -> None:
    async with request.app[keys.POOL].acquire() as conn:
        await _visible(conn, request, partner_id)


@AREA.page("/partners/{id}/modes", permission="administration.edit", method="POST")
async def schedule_mode_form(request: web.Request) -> web.StreamResponse:
    partner_id = path_id(request)
    await _visible_or_404(request, partner_id)
    _writable(request)
    form = await request.post()
    values = _form_values(form)
    try:
        data = schemas.from_strings(values, ModeIn)
        await _schedule(request, partner_id, data.starts_on, data.mode)
    except schemas.Invalid as e:
        return await _detail(request, partner_id, errors=e.errors, status=422, mode_form=values)
    raise web.HTTPFound(f"/admin/partners/{partner_id}?done=mode#modes")


def _day(request: web.Request) -> dt.date:
    try:
        return dt.date.fromisoformat(request.match_info["starts_on"])
    except ValueError:
        raise web.HTTPNotFound(text="no mode change from that day") from None


@AREA.page("/partners/{id}/modes/{starts_on}/delete", permission="administration.edit", method="POST")
async def unschedule_mode_form(request: web.Request) -> web.StreamResponse:
    partner_id = path_id(request)
    await _visible_or_404(request, partner_id)
    try:
        await _unschedule(request, partner_id, _day(request))
    except ModeFixed as e:
        return await _detail(request, partner_id, errors={"modes": str(e)}, status=409)
    raise web.HTTPFound(f"/admin/partners/{partner_id}?done=unscheduled#modes")


@AREA.page("/partners/{id}/tariffs", permission="administration.edit", method="POST")
async def tariffs_form(request: web.Request) -> web.StreamResponse:
    partner_id = path_id(request)
    await _visible_or_404(request, partner_id)
    form = await request.post()
    try:
        chosen = [int(str(v)) for v in form.getall("tariff_ids", []) if str(v).isdecimal() and len(str(v)) < 19]
        await _set_tariffs(request, partner_id, chosen)
    except schemas.Invalid as e:
        return await _detail(request, partner_id, errors=e.errors, status=422)
    raise web.HTTPFound(f"/admin/partners/{partner_id}?done=tariffs#tariffs")


def _form_rates(form: Mapping[str, Any]) -> tuple[Decimal, dict[int, Decimal], dict[str, Decimal]]:
    """The rates form: ``commission_percent``, ``tariff.<id>`` and ``category.<name>`` (empty: none)."""
    errors: dict[str, str] = {}
    default = Decimal(0)
    by_tariff: dict[int, Decimal] = {}
    by_category: dict[str, Decimal] = {}
    try:
        default = percent(str(form.get("commission_percent", "")), "commission_percent")
    except schemas.Invalid as e:
        errors.update(e.errors)
    for name, raw in form.items():
        text = str(raw).strip()
        if not text:
            continue
        kind, _, key = name.partition(".")
        try:
            if kind == "tariff" and key.isdecimal() and len(key) < 19:
                by_tariff[int(key)] = percent(text, name)
            elif kind == "category" and key in dict(CATEGORIES):
                by_category[key] = percent(text, name)
        except schemas.Invalid as e:
            errors.update(e.errors)
    if errors:
        raise schemas.Invalid(errors)
    return default, by_tariff, by_category


@AREA.page("/partners/{id}/commission-rates", permission="administration.edit", method="POST")
async def rates_form(request: web.Request) -> web.StreamResponse:
    partner_id = path_id(request)
    await _visible_or_404(request, partner_id)
    _writable(request)
    form = await request.post()
    try:
        await _set_rates(request, partner_id, *_form_rates(form))
    except schemas.Invalid as e:
        return await _detail(request, partner_id, errors=e.errors, status=422)
    raise web.HTTPFound(f"/admin/partners/{partner_id}?done=rates#rates")


# -- API ------------------------------------------------------------------------------------------

async def _api_partner(request: web.Request, partner_id: int) -> Partner:
    async with request.app[keys.POOL].acquire() as conn:
        row = await store.partner(conn, _scope(request), partner_id, today())
    if row is None:
        raise web.HTTPNotFound(text="no such partner")
    return _out(row)


@AREA.api("GET", "/partners", permission="administration.view", summary="List partners", query=PartnerQuery,
          response=Page[Partner])
async def list_partners(request: web.Request) -> web.StreamResponse:
    """The partners the key sees (a partner's: its own and its sub-partners), by id, with their
    mode, customers, MRR and open debt."""
    f = schemas.query(request, PartnerQuery)
    after = listing.decode_cursor(f.after)
    start = after[1] if after is not None else None
    if start is not None and not 0 < start < 2**63:
        raise web.HTTPBadRequest(text="bad page cursor (after=...)")
    async with request.app[keys.POOL].acquire() as conn:
        rows = await store.list_partners(conn, _scope(request), today(), after=start, limit=f.limit + 1)
    page = rows[:f.limit]
    nxt = listing.encode_cursor([page[-1]["id"], page[-1]["id"]]) if len(rows) > f.limit else None
    return schemas.json(Page[Partner](items=[_out(r) for r in page], next=nxt))


@AREA.api("POST", "/partners", permission="administration.add", summary="Create a partner", body=PartnerIn,
          response=Partner, status=201)
async def create_partner(request: web.Request) -> web.StreamResponse:
    _writable(request)
    data = await schemas.body(request, PartnerIn)
    return schemas.json(await _api_partner(request, await _save(request, None, data)), status=201)


@AREA.api("GET", "/partners/{id}", permission="administration.view", summary="Get a partner", response=Partner)
async def get_partner(request: web.Request) -> web.StreamResponse:
    return schemas.json(await _api_partner(request, path_id(request)))


@AREA.api("PATCH", "/partners/{id}", permission="administration.edit", summary="Change a partner",
          body=PartnerPatch, response=Partner)
async def update_partner(request: web.Request) -> web.StreamResponse:
    """Only the fields given change; a parent that is one of the partner's own sub-partners is refused."""
    partner_id = path_id(request)
    await _visible_or_404(request, partner_id)
    _writable(request)
    patch = await schemas.body(request, PartnerPatch)
    async with request.app[keys.POOL].acquire() as conn:
        row = await _visible(conn, request, partner_id)
    current = {**{k: row[k] for k in EDITABLE}, "commission_percent": str(row["commission_percent"])}
    given = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    try:
        data = msgspec.convert({**current, **given}, PartnerIn)
    except msgspec.ValidationError as e:
        raise schemas.Invalid({"": str(e)}) from None
    await _save(request, partner_id, data)
    return schemas.json(await _api_partner(request, partner_id))


async def _modes_out(request: web.Request, partner_id: int) -> PartnerModes:
    on = today()
    async with request.app[keys.POOL].acquire() as conn:
        await _visible(conn, request, partner_id)
        rows = await store.modes(conn, partner_id)
    return PartnerModes(mode_on(rows, on), states(rows, on))


@AREA.api("GET", "/partners/{id}/modes", permission="administration.view", summary="A partner's modes",
          response=PartnerModes)
async def get_modes(request: web.Request) -> web.StreamResponse:
    """Its mode today and its history: past rows, the one in force, scheduled ones."""
    return schemas.json(await _modes_out(request, path_id(request)))


@AREA.api("POST", "/partners/{id}/modes", permission="administration.edit", summary="Schedule a mode change",
          body=ModeIn, response=PartnerModes)
async def post_mode(request: web.Request) -> web.StreamResponse:
    """From the 1st of a later month (the next one at the earliest); a change scheduled for that
    day is replaced. own_invoicing and aggregated are refused (422): not available yet."""
    partner_id = path_id(request)
    await _visible_or_404(request, partner_id)
    _writable(request)
    data = await schemas.body(request, ModeIn)
    await _schedule(request, partner_id, data.starts_on, data.mode)
    return schemas.json(await _modes_out(request, partner_id))


@AREA.api("DELETE", "/partners/{id}/modes/{starts_on}", permission="administration.edit",
          summary="Remove a scheduled mode change", response=PartnerModes)
async def delete_mode(request: web.Request) -> web.StreamResponse:
    """``starts_on``: the day (YYYY-MM-DD) of a scheduled change; one in force or past is 409."""
    partner_id = path_id(request)
    await _visible_or_404(request, partner_id)
    try:
        await _unschedule(request, partner_id, _day(request))
    except ModeFixed as e:
        return schemas.problem(409, "mode in force or past", str(e))
    return schemas.json(await _modes_out(request, partner_id))


async def _tariffs_out(request: web.Request, partner_id: int) -> PartnerTariffs:
    async with request.app[keys.POOL].acquire() as conn:
        await _visible(conn, request, partner_id)
        rows = await store.tariffs(conn, partner_id)
    return PartnerTariffs([PartnerTariff(r["id"], r["name"], r["price"], r["currency"], r["allowed"],
                                         r["restricted"]) for r in rows])


@AREA.api("GET", "/partners/{id}/tariffs", permission="administration.view", summary="The tariffs a partner may sell",
          response=PartnerTariffs)
async def get_tariffs(request: web.Request) -> web.StreamResponse:
    return schemas.json(await _tariffs_out(request, path_id(request)))


@AREA.api("PUT", "/partners/{id}/tariffs", permission="administration.edit", summary="Set the tariffs a partner "
          "may sell", body=TariffsIn, response=PartnerTariffs)
async def put_tariffs(request: web.Request) -> web.StreamResponse:
    partner_id = path_id(request)
    await _visible_or_404(request, partner_id)
    _writable(request)
    data = await schemas.body(request, TariffsIn)
    await _set_tariffs(request, partner_id, data.tariff_ids)
    return schemas.json(await _tariffs_out(request, partner_id))


async def _rates_out(request: web.Request, partner_id: int) -> Rates:
    async with request.app[keys.POOL].acquire() as conn:
        p = await _visible(conn, request, partner_id)
        rows = await store.rates(conn, partner_id)
    return Rates(p["commission_percent"],
                 [TariffRateOut(r["tariff_id"], r["tariff"], r["percent"]) for r in rows if r["tariff_id"]],
                 [CategoryRateOut(r["category"], r["percent"]) for r in rows if r["category"]])


@AREA.api("GET", "/partners/{id}/commission-rates", permission="administration.view",
          summary="A partner's commission rates", response=Rates)
async def get_rates(request: web.Request) -> web.StreamResponse:
    return schemas.json(await _rates_out(request, path_id(request)))


@AREA.api("PUT", "/partners/{id}/commission-rates", permission="administration.edit",
          summary="Set a partner's commission rates", body=RatesIn, response=Rates)
async def put_rates(request: web.Request) -> web.StreamResponse:
    """Replaces them all: the default percent, the tariffs' rates and the categories' (a tariff's
    rate before its category's before the default)."""
    partner_id = path_id(request)
    await _visible_or_404(request, partner_id)
    _writable(request)
    data = await schemas.body(request, RatesIn)
    errors: dict[str, str] = {}
    by_tariff: dict[int, Decimal] = {}
    by_category: dict[str, Decimal] = {}
    default = Decimal(0)
    try:
        default = percent(data.commission_percent)
    except schemas.Invalid as e:
        errors.update(e.errors)
    for i, t in enumerate(data.tariffs):
        try:
            if t.tariff_id in by_tariff:
                raise schemas.Invalid({f"tariffs[{i}]": "the tariff is given twice"})
            by_tariff[t.tariff_id] = percent(t.percent, f"tariffs[{i}]")
        except schemas.Invalid as e:
            errors.update(e.errors)
    for i, c in enumerate(data.categories):
        try:
            if c.category in by_category:
                raise schemas.Invalid({f"categories[{i}]": "the category is given twice"})
            by_category[c.category] = percent(c.percent, f"categories[{i}]")
        except schemas.Invalid as e:
            errors.update(e.errors)
    if errors:
        raise schemas.Invalid(errors)
    await _set_rates(request, partner_id, default, by_tariff, by_category)
    return schemas.json(await _rates_out(request, partner_id))
