"""The portal's profile (``/portal/profile``): the customer's contact details and its
notification preferences.

**Contact details** (admin/portal/brand.py FIELDS: name, email, billing_email, phone, street,
city, zip) show as the brand says, field by field (``Brand.fields``): ``hidden`` not at all,
``view`` read only, ``edit`` in the form, checked as the admin's customer form checks it (its
CustomerIn types through schemas.from_strings: the same sentences). A POST naming a field that is
not ``edit`` is refused whole (403), never applied nor dropped without a word.

**Preferences**: the announcements (marketing) the customer gets or not
(``customers.marketing_opt_out``: legal notices, invoices and reminders go anyway) and the
language of its messages, one of the languages the partner's message templates are written in,
or the partner's default (NULL); the choice shows only when there is one to make.

A change is written by the admin's own statement (profile_store.py: the customer's ``updated``
event, as an edit in the admin) with its operations log line (acting.py: the actor
``customer:<number>``, the fields before and after). An administrator looking as the customer
reads and changes nothing (403).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from aiohttp import web

from admin import keys, schemas
from admin.customers.schemas import CustomerIn
from admin.portal import acting, auth, pages, profile_store
from admin.portal.brand import FIELDS, Brand
from admin.portal.common import AREA, customer
from admin.web import PORTAL_CUSTOMER

LABELS = {"name": "Name", "email": "E-mail", "billing_email": "E-mail for invoices", "phone": "Phone",
          "street": "Street", "city": "City", "zip": "Postal code"}
INPUTS = {"email": "email", "billing_email": "email", "phone": "tel"}
AUTOCOMPLETE = {"name": "name", "email": "email", "phone": "tel", "street": "street-address",
                "city": "address-level2", "zip": "postal-code"}
LANGUAGE_NAMES = {"bg": "Български", "cs": "Čeština", "da": "Dansk", "de": "Deutsch", "el": "Ελληνικά",
                  "en": "English", "es": "Español", "fi": "Suomi", "fr": "Français", "hr": "Hrvatski",
                  "hu": "Magyar", "it": "Italiano", "nb": "Norsk", "nl": "Nederlands", "pl": "Polski",
                  "pt": "Português", "ro": "Română", "ru": "Русский", "sk": "Slovenčina", "sl": "Slovenščina",
                  "sr": "Српски", "sv": "Svenska", "tr": "Türkçe", "uk": "Українська"}
"""A language code's name in its own language (a code not here shows as the code)."""
NOTICES = {"saved": "Your details are saved.", "preferences": "Your preferences are saved."}


def language_name(code: str) -> str:
    lang, _, region = code.partition("_")
    name = LANGUAGE_NAMES.get(lang, code)
    return f"{name} ({region})" if region and name != code else name


def access(brand: Brand) -> dict[str, str]:
    """Each contact field's access on this brand's portal (hidden, view, edit)."""
    return {f: brand.fields.get(f, "hidden") for f in FIELDS}


def refused(form: Mapping[str, Any], fields: Mapping[str, str]) -> list[str]:
    """The contact fields a POST names that are not the customer's to change here."""
    return [f for f in FIELDS if f in form and fields[f] != "edit"]


def validated(form: Mapping[str, Any], current: Any, editable: list[str]) -> dict[str, Any]:
    """The editable fields' new values, checked as the admin's customer form checks them (the
    others as they are). schemas.Invalid: by field."""
    values = {"name": current["name"], **{f: form.get(f, "") for f in editable}}
    data = schemas.from_strings(values, CustomerIn)
    return {f: getattr(data, f) for f in editable}


async def _choices(conn: Any, partner_id: int, current: str | None) -> list[tuple[str, str]]:
    codes = await profile_store.languages(conn, partner_id)
    if current and current not in codes:
        codes.append(current)
    return [(c, language_name(c)) for c in sorted(codes)]


async def _page(request: web.Request, *, form: Mapping[str, Any] | None = None,
                errors: Mapping[str, str] | None = None, status: int = 200) -> web.Response:
    me = customer(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await profile_store.profile(conn, me.customer_id)
        if row is None:
            raise web.HTTPNotFound(text="no such customer")
        languages = await _choices(conn, me.partner_id, row["language"])
    fields = access(auth.brand(request))
    return pages.render("portal/profile.html", request, {
        "c": row, "form": form if form is not None else {f: row[f] or "" for f in FIELDS}, "errors": errors or {},
        "fields": fields, "shown": [f for f in FIELDS if fields[f] != "hidden"],
        "editable": [f for f in FIELDS if fields[f] == "edit"], "labels": LABELS, "inputs": INPUTS,
        "autocomplete": AUTOCOMPLETE, "languages": languages,
        "language_name": language_name(row["language"]) if row["language"] else "",
        "notice": NOTICES.get(request.query.get("done", ""), ""),
        "writable": me.impersonator_id is None, "impersonating": acting.IMPERSONATING}, status=status)


@AREA.portal("/profile", access=PORTAL_CUSTOMER)
async def profile_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


async def _save(request: web.Request, changes: Mapping[str, Any], what: str) -> None:
    """Write the changed ones of ``changes`` with their operations log line (one transaction)."""
    me = customer(request)
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        before = await profile_store.profile(conn, me.customer_id, lock=True)
        if before is None:
            raise web.HTTPNotFound(text="no such customer")
        changed = {k: v for k, v in changes.items() if before[k] != v}
        if not changed:
            return
        try:
            after = await profile_store.update(conn, me.customer_id, changed)
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
            raise schemas.Invalid({"": f"the database refused a value: {str(e).splitlines()[0]}"}) from None
        old, new = schemas.row_json(before), schemas.row_json(after)
        await acting.log(conn, request, before["number"], "update", "customer", me.customer_id,
                         summary=f"changed {', '.join(changed)} in the portal ({what})",
                         before={k: old[k] for k in changed}, after={k: new[k] for k in changed})


@AREA.portal("/profile", access=PORTAL_CUSTOMER, method="POST")
async def profile_form(request: web.Request) -> web.StreamResponse:
    """The contact details the brand lets the customer change."""
    acting.refuse_impersonator(request)
    form = await request.post()
    fields = access(auth.brand(request))
    if bad := refused(form, fields):
        raise web.HTTPForbidden(text=f"{', '.join(LABELS[f] for f in bad)}: not yours to change in the portal. "
                                     "Ask us to change it (Support).")
    editable = [f for f in FIELDS if fields[f] == "edit"]
    try:
        async with request.app[keys.POOL].acquire() as conn:
            current = await profile_store.profile(conn, customer(request).customer_id)
        if current is None:
            raise web.HTTPNotFound(text="no such customer")
        await _save(request, validated(form, current, editable), "contact details")
    except schemas.Invalid as e:
        return await _page(request, form=form, errors=e.errors, status=422)
    raise web.HTTPFound("/portal/profile?done=saved")


@AREA.portal("/profile/preferences", access=PORTAL_CUSTOMER, method="POST")
async def preferences_form(request: web.Request) -> web.StreamResponse:
    """Announcements yes or no (``announcements`` checked: yes), and the messages' language."""
    me = acting.refuse_impersonator(request)
    form = await request.post()
    language = str(form.get("language", "")).strip() or None
    changes: dict[str, Any] = {"marketing_opt_out": "announcements" not in form}
    try:
        if "language" in form:
            async with request.app[keys.POOL].acquire() as conn:
                current = await profile_store.profile(conn, me.customer_id)
                offered = [c for c, _ in await _choices(conn, me.partner_id, current["language"] if current else None)]
            if language is not None and language not in offered:
                raise schemas.Invalid({"language": "is not a language we write in"})
            changes["language"] = language
        await _save(request, changes, "preferences")
    except schemas.Invalid as e:
        return await _page(request, errors=e.errors, status=422)
    raise web.HTTPFound("/portal/profile?done=preferences")
