"""The portal's services pages (``/portal/services``): each of the customer's services with its
plan, speeds, status, price, what it is invoiced until and its fixed addresses; a service's page
changes its PPPoE password.

Every read and write is scoped by the customer logged in (services_store.py): another customer's
service is 404, on its page and on its form.

**The PPPoE password.** Stored as the admin stores it (``services.password``, readable: CHAP and
MS-CHAPv2 need the password itself), so radiusd authenticates the new one at the next login (its
subscriber cache follows the services table's NOTIFY); a session online now stays up. The rules
(:func:`password_problems`): 8 to 64 printable ASCII characters without spaces (what every router's
PPPoE client can type and every NAS passes unchanged), not the login, typed twice. The page never
shows the password. The change is the customer's own (acting.py): refused to an administrator
looking as the customer, and in the operations log as ``customer:<number>``, without the password.
An ended (archived) service's password is not changed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from admin import keys
from admin.auth.store import Connection
from admin.portal import acting, pages, services_store
from admin.portal.common import AREA, customer
from admin.web import PORTAL_CUSTOMER, path_id

PASSWORD_MIN = 8
PASSWORD_MAX = 64
STATUSES: dict[str, tuple[str, str]] = {
    "active": ("Active", "on"), "blocked": ("Blocked", "warn"), "disabled": ("Stopped", "off"),
    "archived": ("Ended", "off")}
"""A service's status -> its label and CSS class on the page."""
NOTICES = {"password": "Your PPPoE password is changed: use it the next time your router connects."}


def password_problems(password: str, repeated: str, login: str) -> dict[str, str]:
    """What is wrong with a new PPPoE password, by field (empty: nothing)."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        return {"password": f"Use {PASSWORD_MIN} to {PASSWORD_MAX} characters."}
    if not all("!" <= ch <= "~" for ch in password):
        return {"password": "Use letters, digits and punctuation only (no spaces, no accented letters)."}
    if password.casefold() == login.casefold():
        return {"password": "The password must not be your login."}
    if repeated != password:
        return {"repeat": "The two passwords differ."}
    return {}


def invoiced_through(billed_until: dt.date | None) -> dt.date | None:
    """The last day invoiced (billing's ``billed_until`` is the first day not yet charged)."""
    return None if billed_until is None else billed_until - dt.timedelta(days=1)


def day(value: dt.date | None) -> str:
    return "" if value is None else f"{value.day} {value:%b %Y}"


def shown(row: Any) -> dict[str, Any]:
    """A service row with what its page says of it."""
    label, css = STATUSES.get(row["status"], (row["status"].capitalize(), "off"))
    return {**row, "status_label": label, "status_class": css,
            "invoiced_until": day(invoiced_through(row["billed_until"])),
            "ends": day(row["end_date"]), "starts": day(row["start_date"])}


async def _service_or_404(conn: Connection, customer_id: int, service_id: int, *, lock: bool = False) -> Any:
    row = await services_store.service(conn, customer_id, service_id, lock=lock)
    if row is None:
        raise web.HTTPNotFound(text="no such service")
    return row


@AREA.portal("/services", access=PORTAL_CUSTOMER)
async def services_page(request: web.Request) -> web.StreamResponse:
    me = customer(request)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await services_store.services(conn, me.customer_id)
    return pages.render("portal/services.html", request, {"services": [shown(r) for r in rows]})


async def _service_page(request: web.Request, service_id: int, *, errors: Mapping[str, str] | None = None,
                        status: int = 200) -> web.Response:
    me = customer(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await _service_or_404(conn, me.customer_id, service_id)
    return pages.render("portal/services_one.html", request, {
        "s": shown(row), "errors": errors or {}, "notice": NOTICES.get(request.query.get("done", ""), ""),
        "writable": me.impersonator_id is None and row["status"] != "archived",
        "impersonating": me.impersonator_id is not None, "impersonating_text": acting.IMPERSONATING,
        "password_min": PASSWORD_MIN, "password_max": PASSWORD_MAX}, status=status)


@AREA.portal("/services/{id}", access=PORTAL_CUSTOMER)
async def service_page(request: web.Request) -> web.StreamResponse:
    return await _service_page(request, path_id(request))


@AREA.portal("/services/{id}/password", access=PORTAL_CUSTOMER, method="POST")
async def password_form(request: web.Request) -> web.StreamResponse:
    """A new PPPoE password for the service (the session's CSRF token checked by admin/portal/auth.py)."""
    service_id = path_id(request)
    me = acting.refuse_impersonator(request)
    form = await request.post()
    password, repeated = str(form.get("password", "")), str(form.get("repeat", ""))
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        row = await _service_or_404(conn, me.customer_id, service_id, lock=True)
        if row["status"] == "archived":
            raise web.HTTPConflict(text="this service has ended: its password is not changed")
        problems = password_problems(password, repeated, row["login"])
        if not problems:
            assert await services_store.set_password(conn, me.customer_id, service_id, password)
            await acting.log(conn, request, row["customer_number"], "update", "service", service_id,
                             summary=f"service {row['login']}: changed the PPPoE password in the portal",
                             after={"changed": ["password"]})
    if problems:
        return await _service_page(request, service_id, errors=problems, status=422)
    raise web.HTTPFound(f"/portal/services/{service_id}?done=password")
