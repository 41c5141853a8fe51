"""SEPA direct-debit mandates in the portal (/portal/finance/direct-debit): the customer's
mandates, a new one signed online, an active one revoked.

admin/payments/direct_debit_service.py does the work, as it does for the admin and the API
(``add_mandate``, ``revoke_mandate``: the IBAN checked, the reference ``LM-<number>-<n>``, one
active mandate per customer, each change with its line of the operations log). What the portal
adds: the creditor's name and identifier and the SEPA mandate text shown before signing, the
consent ticked, the BIC asked for where the EPC needs it (an account outside the EEA whose bank
schwifty does not know), the mandate signed today by ``customer:<number>`` (``created_by``: "online
in the customer portal"), its IBAN masked on the page and in the log.

**Offered** when the creditor is set up (direct_debit_service.complete: its identifier, name and
IBAN given, as a batch needs) and the customer is billed in euro (mandates_store.offers): then
Finance has the tab "Direct debit"; otherwise the page says so and signing answers 409.
Revoking works either way: a customer can always stop its collections.

**Scope.** A mandate is looked up with the session's customer (mandates_store.py): another
customer's id is 404, as one that does not exist. Writes are refused to staff looking as the
customer (acting.py: 403, and the pages show no forms).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from aiohttp import web
from schwifty import exceptions, registry

from admin import keys, schemas
from admin.auth.store import Connection
from admin.finance import common as finance
from admin.payments import direct_debit as dd
from admin.payments import direct_debit_service as service
from admin.portal import acting, balance, mandates_store, pages, pay_store
from admin.portal import finance as portal_finance
from admin.portal.common import AREA, Customer, customer
from admin.web import PORTAL_CUSTOMER, path_id

BASE = "/portal/finance/direct-debit"
SIGNED_ONLINE = "online in the customer portal"
UNAVAILABLE = "Paying by direct debit is not available. Pay by bank transfer, or ask us how else you can pay."
NOTICES = {"signed": "Your mandate is signed: your invoices are collected from this account from now on.",
           "revoked": "The mandate is revoked: nothing more is collected from that account."}
EEA = frozenset({"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IS", "IT",
                 "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK"})
"""The EEA's countries: within it a direct debit needs no BIC (EPC rulebook, "IBAN-only"); an
account in another SEPA country (CH, GB, MC, SM, ...) needs its bank's BIC."""
ACTIVE = "You have an active mandate already: revoke it first to sign another."
LABELS = {"holder": "Account holder", "iban": "IBAN", "bic": "BIC", "consent": "Your consent"}
STATUS_TEXT = {"pending": "to be collected", "paid": "collected"}


def said(name: str, error: str, typed: str = "") -> str:
    """A field's refusal as the customer reads it (the service's "is required" gets the label; an
    IBAN of the wrong length says how long it must be)."""
    if name == "iban" and "another length" in error and (length := iban_length(typed)):
        got = len(dd.compact(typed))
        return (f"An IBAN of {dd.compact(typed)[:2]} has {length} characters, and this one has {got}: check it on "
                "your bank statement.")
    if error.startswith(("is ", "must ")):
        return f"{LABELS.get(name, name)} {error}."
    text = error[:1].upper() + error[1:]
    return text if text.endswith(".") else text + "."


def iban_length(typed: str) -> int:
    """How many characters an IBAN of the country ``typed`` starts with has (0: not a country with IBANs)."""
    try:
        return int(registry.get_iban_spec(dd.compact(typed)[:2]).iban_length)
    except exceptions.SchwiftyException:
        return 0


def bic_needed(iban: str, bic: str) -> str:
    """Why the BIC must be given, or "" (an EEA account, or a bank schwifty knows, or one given)."""
    try:
        account = dd.check_iban(iban)
    except dd.DirectDebitError:
        return ""  # add_mandate says what is wrong with it
    if account.bic or dd.compact(bic) or account.iban[:2] in EEA:
        return ""
    return (f"is needed for an account in {account.iban[:2]}, outside the EEA: your bank's BIC "
            "(8 or 11 letters and digits) is on your bank statement.")


def signed_online(row: asyncpg.Record | Mapping[str, Any]) -> bool:
    return str(row["created_by"]).startswith("customer:")


async def _page(request: web.Request, conn: Connection, *, values: Mapping[str, str] | None = None,
                errors: Mapping[str, str] | None = None, error: str = "", confirm: asyncpg.Record | None = None,
                status: int = 200) -> web.Response:
    me = customer(request)
    row = await mandates_store.creditor(conn, me.customer_id)
    rows = await mandates_store.mandates(conn, me.customer_id)
    pay_online = await pay_store.portal_gateway(conn) is not None
    offered = mandates_store.offers(row)
    why = ""
    if not offered:
        why = UNAVAILABLE if not service.complete(row) else \
            f"Direct debit collects in euro only, and your account is billed in {row['currency']}."
    notice = "" if error or errors else NOTICES.get(request.query.get("done", ""), "")
    return pages.render("portal/mandates.html", request, {
        "c": row, "mandates": rows, "active": next((m for m in rows if m["status"] == "active"), None),
        "offered": offered, "why": why, "form": {"holder": row["name"], **(values or {})}, "errors": errors or {},
        "error": error, "notice": notice, "confirm": confirm, "masked": service.masked_iban,
        "signed_online": signed_online, "signed_online_text": SIGNED_ONLINE, "labels": LABELS,
        "status_text": STATUS_TEXT, "impersonating": me.impersonator_id is not None,
        "impersonating_text": acting.IMPERSONATING, "day": balance.day, "lists": portal_finance.LISTS,
        "section": "direct-debit", "pay_online": pay_online, "direct_debit": offered}, status=status)


async def _mandate_or_404(conn: Connection, me: Customer, mandate_id: int) -> asyncpg.Record:
    row = await mandates_store.mandate(conn, me.customer_id, mandate_id)
    if row is None:
        raise web.HTTPNotFound(text="no such mandate")
    return row


@AREA.portal("/finance/direct-debit", access=PORTAL_CUSTOMER)
async def mandates_page(request: web.Request) -> web.StreamResponse:
    """The customer's mandates (the IBAN masked), and the form to sign one when none is active."""
    async with request.app[keys.POOL].acquire() as conn:
        return await _page(request, conn)


@AREA.portal("/finance/direct-debit", access=PORTAL_CUSTOMER, method="POST")
async def sign(request: web.Request) -> web.StreamResponse:
    """Sign a mandate: ``holder``, ``iban``, ``bic`` (where needed), ``consent=1``; signed today."""
    me = acting.refuse_impersonator(request)
    form = await request.post()
    values = {k: str(form.get(k, "")).strip() for k in ("holder", "iban", "bic")}
    async with request.app[keys.POOL].acquire() as conn:
        row = await mandates_store.creditor(conn, me.customer_id)
        if not mandates_store.offers(row):
            return await _page(request, conn, values=values, error=UNAVAILABLE, status=409)
        errors: dict[str, str] = {}
        if form.get("consent") != "1":
            errors["consent"] = ("Tick the box to authorise the direct debit: without your consent there is no "
                                 "mandate.")
        if why := bic_needed(values["iban"], values["bic"]):
            errors["bic"] = said("bic", why)
        data = service.MandateIn(values["iban"], values["holder"], finance.today(), values["bic"])
        who = acting.actor(row["number"])
        try:
            if errors:  # the service's own checks too, so every wrong field is said at once
                for name, text in _checked(data).items():
                    errors.setdefault(name, text)
                raise schemas.Invalid(errors)
            await service.add_mandate(conn, row, data, who, keys.client_address(request), today=data.signed_on,
                                      online=True)
        except schemas.Invalid as e:
            fields = {k: v if k in errors else said(k, v, values.get(k, "")) for k, v in e.errors.items()
                      if k in LABELS}
            other = " ".join(ACTIVE if "active mandate" in v else said(k, v) for k, v in e.errors.items()
                             if k not in LABELS)
            return await _page(request, conn, values=values, errors=fields, error=other,
                               status=422 if fields else 409)
    raise web.HTTPSeeOther(f"{BASE}?done=signed")


def _checked(data: service.MandateIn) -> dict[str, str]:
    """The IBAN's, BIC's and holder's refusals (add_mandate's own checks, without the database)."""
    out: dict[str, str] = {}
    for name, check in (("iban", dd.check_iban), ("bic", dd.check_bic)):
        try:
            check(getattr(data, name))
        except dd.DirectDebitError as e:
            out[name] = said(name, str(e), getattr(data, name))
    if not " ".join(data.holder.split()):
        out["holder"] = said("holder", "is required")
    return out


@AREA.portal("/finance/direct-debit/{id}/revoke", access=PORTAL_CUSTOMER)
async def revoke_page(request: web.Request) -> web.StreamResponse:
    """Asks first: revoking stops every future collection from that account."""
    me = customer(request)
    async with request.app[keys.POOL].acquire() as conn:
        mandate = await _mandate_or_404(conn, me, path_id(request))
        return await _page(request, conn, confirm=mandate)


@AREA.portal("/finance/direct-debit/{id}/revoke", access=PORTAL_CUSTOMER, method="POST")
async def revoke(request: web.Request) -> web.StreamResponse:
    """Revoke one of the customer's active mandates: no collection from now on."""
    me = acting.refuse_impersonator(request)
    async with request.app[keys.POOL].acquire() as conn:
        mandate = await _mandate_or_404(conn, me, path_id(request))
        number = await pay_store.customer_number(conn, me.customer_id)
        try:
            await service.revoke_mandate(conn, mandate, acting.actor(number), keys.client_address(request))
        except service.Refused as e:
            return await _page(request, conn, error=said("", str(e)), status=409)
    raise web.HTTPSeeOther(f"{BASE}?done=revoked")
