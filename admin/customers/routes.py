"""Customers and services: lists, pages, forms, the lifecycle, the search box; and their API."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from admin import keys, listing, oplog_store, pages, schemas
from admin.administration import custom
from admin.customers import lifecycle, queries
from admin.customers.schemas import (
    Customer,
    CustomerIn,
    CustomerPatch,
    CustomerQuery,
    SearchHit,
    SearchQuery,
    Service,
    ServiceIn,
    ServicePatch,
    StatusChange,
)
from admin.partners import partners_store
from admin.portal import accounts_admin_store as portal_accounts
from admin.schemas import Page
from admin.web import Area, path_id

AREA = Area("customers", "Customers", nav=[("Customers", "/customers", "customers.view"),
                                             ("New customer", "/customers/new", "customers.add")], order=10)

FIELD_OF_CONSTRAINT = {
    "services_login_unique": ("login", "is taken by another service"),
    "services_ipv4_unique": ("ipv4", "is the static address of another service"),
    "services_ipv4_host": ("ipv4", "must be one IPv4 address"),
    "services_dates_ordered": ("end_date", "must not be before the start date"),
    "services_tariff_fk": ("tariff_id", "no such tariff"),
    "services_router_fk": ("router_id", "no such router"),
    "services_pool_fk": ("pool_id", "no such pool"),
    "services_ipv6_prefix_family": ("ipv6_prefix", "must be an IPv6 prefix"),
    "services_delegated_prefix_family": ("delegated_ipv6_prefix", "must be an IPv6 prefix"),
    "customers_country_iso": ("country", "must be a two-letter country code"),
    "customers_language_valid": ("language", "must be a language code: de, or de_AT"),
    "customers_partner_fk": ("partner_id", "no such partner"),
}


def _db_error(e: asyncpg.PostgresError) -> schemas.Invalid:
    name = getattr(e, "constraint_name", None) or ""
    field, message = FIELD_OF_CONSTRAINT.get(name, ("", str(e).split("\n")[0]))
    return schemas.Invalid({field: message})


async def _customer_or_404(conn: Any, request: web.Request, customer_id: int, *, lock: bool = False) -> Any:
    who = keys.principal(request)
    row = await queries.customer(conn, who.partner_id, who.creator_id, customer_id, lock=lock)
    if row is None:
        raise web.HTTPNotFound()
    return row


def _customer_out(row: Any) -> Customer:
    return msgspec.convert({k: row[k] for k in Customer.__struct_fields__}, Customer)


def _service_out(row: Any) -> Service:
    return msgspec.convert({k: row[k] for k in Service.__struct_fields__}, Service)


def _strings(form: Any) -> dict[str, str]:
    return {k: str(v) for k, v in form.items()}


def _form_lists(form: Any, *names: str) -> dict[str, list[str]]:
    """Several emails or phones typed in one field, separated by commas or new lines."""
    return {n: [p.strip() for p in str(form.get(n, "")).replace("\n", ",").split(",") if p.strip()] for n in names}


# -- customers: pages ---------------------------------------------------------------------------

@AREA.page("/customers", permission="customers.view")
async def customers_page(request: web.Request) -> web.StreamResponse:
    who = keys.principal(request)
    settings = request.app[keys.SETTINGS]
    ls = listing.Listing.of(request, queries.SORTS, "id", limit=settings.page_size)
    f = schemas.query(request, CustomerQuery)
    pool = request.app[keys.POOL]

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with pool.acquire() as conn:
            return await queries.list_customers(
                conn, who.partner_id, who.creator_id, status=f.status, partner_id=f.partner_id, category=f.category,
                q=f.q, sort=ls.sort, direction=ls.direction, after=after, limit=limit)

    if ls.wants_csv:
        return await listing.export_csv(
            request, "customers.csv", ["id", "number", "name", "status", "category", "email", "phone", "street", "city",
                                       "zip", "country", "partner", "services"],
            lambda after, limit: fetch(after, limit - 1), lambda r: (r["sort_value"], r["id"]),
            lambda r: [r["id"], r["number"], r["name"], r["status"], r["category"], r["email"], r["phone"],
                       r["street"], r["city"], r["zip"], r["country"], r["partner"], r["services"]])
    rows = ls.take(await fetch(ls.after, ls.limit), lambda r: (r["sort_value"], r["id"]))
    async with pool.acquire() as conn:
        partners = await queries.partners(conn, who.partner_id)
    return pages.render("customers/list.html", request, {"rows": rows, "ls": ls, "f": f, "partners": partners,
                                                          "statuses": lifecycle.STATUSES})


async def _form_context(conn: Any, request: web.Request) -> dict[str, Any]:
    who = keys.principal(request)
    partners = await queries.partners(conn, who.partner_id)
    return {"partners": [(p["id"], p["name"]) for p in partners],
            "fields": await custom.definitions(conn, "customer")}


@AREA.page("/customers/new", permission="customers.add")
async def new_customer_form(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        ctx = await _form_context(conn, request)
    return pages.render("customers/form.html", request, {**ctx, "c": {"status": "new", "category": "person",
                                                                       "country": "", "custom": {}},
                                                          "errors": {}, "editing": False})


def _customer_values(form: Any) -> dict[str, Any]:
    values: dict[str, Any] = {k: v for k, v in form.items() if not k.startswith("custom.") and k != "_csrf"}
    values.update(_form_lists(form, "other_emails", "other_phones"))
    if values.get("country"):
        values["country"] = str(values["country"]).upper()
    if values.get("language"):  # "DE-at" as the form may be typed -> "de_AT"
        lang, _, region = str(values["language"]).strip().replace("-", "_").partition("_")
        values["language"] = lang.lower() + (f"_{region.upper()}" if region else "")
    return values


@AREA.page("/customers/new", permission="customers.add", method="POST")
async def create_customer_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = _customer_values(form)
    async with request.app[keys.POOL].acquire() as conn:
        ctx = await _form_context(conn, request)
        try:
            data = schemas.from_strings(values, CustomerIn)
            data.custom, errors = custom.validate(ctx["fields"], _strings(form))
            if errors:
                raise schemas.Invalid(errors)
            row = await _create_customer(conn, request, data)
        except schemas.Invalid as e:
            return pages.render("customers/form.html", request, {**ctx, "c": {**values, "custom": {}},
                                                                  "errors": e.errors, "editing": False}, status=422)
    raise web.HTTPFound(f"/admin/customers/{row['id']}")


async def _create_customer(conn: Any, request: web.Request, data: CustomerIn) -> Any:
    who = keys.principal(request)
    values = msgspec.structs.asdict(data)
    if who.partner_id is not None:
        values["partner_id"] = who.partner_id
    elif values["partner_id"] is None:
        only = await queries.partners(conn, None)
        if len(only) != 1:
            raise schemas.Invalid({"partner_id": "is required (there are several partners)"})
        values["partner_id"] = only[0]["id"]
    try:
        async with conn.transaction():
            row = await queries.create_customer(conn, values, who.admin_id)
            await oplog_store.record(conn, who, keys.client_address(request), "create", "customer", row["id"],
                                     customer_id=row["id"], partner_id=row["partner_id"],
                                     summary=f"created customer {row['number']} {row['name']}",
                                     after=schemas.row_json(row))
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise _db_error(e) from None
    return row


@AREA.page("/customers/{id}", permission="customers.view")
async def customer_page(request: web.Request) -> web.StreamResponse:
    customer_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await _customer_or_404(conn, request, customer_id)
        services = await queries.services_of(conn, customer_id)
        changes = await queries.recent_changes(conn, customer_id)
        fields = await custom.definitions(conn, "customer")
        devices = await queries.devices_of(conn, customer_id) if keys.principal(request).can("networking.view") else []
        portal = await portal_accounts.account(conn, customer_id)
    return pages.render("customers/detail.html", request, {
        "c": row, "services": services, "changes": changes, "fields": fields, "devices": devices, "portal": portal,
        "actions": lifecycle.actions(row["status"]), "deletable": lifecycle.deletable(row["status"]),
        "blockers": queries.references(services), "notice": request.query.get("done", "")})


@AREA.page("/customers/{id}/edit", permission="customers.edit")
async def edit_customer_form(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await _customer_or_404(conn, request, path_id(request))
        ctx = await _form_context(conn, request)
    c = dict(row)
    c["other_emails"], c["other_phones"] = ", ".join(row["other_emails"]), ", ".join(row["other_phones"])
    return pages.render("customers/form.html", request, {**ctx, "c": c, "errors": {}, "editing": True})


@AREA.page("/customers/{id}/edit", permission="customers.edit", method="POST")
async def edit_customer(request: web.Request) -> web.StreamResponse:
    customer_id = path_id(request)
    form = await request.post()
    values = _customer_values(form)
    values.pop("partner_id", None)
    values.pop("status", None)
    async with request.app[keys.POOL].acquire() as conn:
        ctx = await _form_context(conn, request)
        try:
            data = schemas.from_strings({**values}, CustomerIn)
            data.custom, errors = custom.validate(ctx["fields"], _strings(form))
            if errors:
                raise schemas.Invalid(errors)
            changes = {k: getattr(data, k) for k in queries.EDITABLE}
            await _update_customer(conn, request, customer_id, changes)
        except schemas.Invalid as e:
            return pages.render("customers/form.html", request, {**ctx, "c": {**values, "id": customer_id,
                                                                               "custom": {}},
                                                                  "errors": e.errors, "editing": True}, status=422)
    raise web.HTTPFound(f"/admin/customers/{customer_id}?done=saved")


async def _update_customer(conn: Any, request: web.Request, customer_id: int, changes: dict[str, Any],
                           action: str = "update", summary: str = "") -> Any:
    who = keys.principal(request)
    try:
        async with conn.transaction():
            before = await _customer_or_404(conn, request, customer_id, lock=True)
            if before["status"] == "deleted":
                raise web.HTTPNotFound()
            changed = {k: v for k, v in changes.items() if before[k] != v}
            if not changed:
                return before
            after = await queries.update_customer(conn, customer_id, changed)
            stopped = 0
            if changed.get("status") == "inactive":
                stopped = await queries.stop_services(conn, customer_id)
            old = schemas.row_json(before)
            await oplog_store.record(
                conn, who, keys.client_address(request), action, "customer", customer_id, customer_id=customer_id,
                partner_id=before["partner_id"],
                summary=summary or f"changed {', '.join(changed)}"
                + (f"; stopped {stopped} services" if stopped else ""),
                before={k: old[k] for k in changed}, after={k: schemas.row_json(after)[k] for k in changed})
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise _db_error(e) from None
    return after


async def _change_status(conn: Any, request: web.Request, customer_id: int, action: str) -> Any:
    row = await _customer_or_404(conn, request, customer_id)
    try:
        target = lifecycle.move(row["status"], action)
    except lifecycle.LifecycleError as e:
        raise web.HTTPConflict(text=str(e)) from None
    return await _update_customer(conn, request, customer_id, {"status": target}, action,
                                  f"{action}: {row['status']} -> {target}")


@AREA.page("/customers/{id}/status", permission="customers.edit", method="POST")
async def status_form(request: web.Request) -> web.StreamResponse:
    customer_id = path_id(request)
    action = str((await request.post()).get("action", ""))
    async with request.app[keys.POOL].acquire() as conn:
        await _change_status(conn, request, customer_id, action)
    raise web.HTTPFound(f"/admin/customers/{customer_id}?done={action}")


async def _delete(conn: Any, request: web.Request, customer_id: int) -> None:
    row = await _customer_or_404(conn, request, customer_id)
    if not lifecycle.deletable(row["status"]):
        raise web.HTTPConflict(text=f"Only an inactive customer can be deleted (this one is {row['status']}): "
                                    "make it inactive first, which stops its services.")
    blockers = queries.references(await queries.services_of(conn, customer_id))
    if blockers:
        raise web.HTTPConflict(text="Still in use: " + "; ".join(blockers))
    await _update_customer(conn, request, customer_id, {"status": "deleted"}, "delete",
                           f"deleted customer {row['number']} (kept for finance)")


@AREA.page("/customers/{id}/delete", permission="customers.delete", method="POST")
async def delete_form(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        await _delete(conn, request, path_id(request))
    raise web.HTTPFound("/admin/customers?done=deleted")


# -- services: pages ----------------------------------------------------------------------------

def _service_values(form: Any) -> dict[str, Any]:
    return {k: v for k, v in form.items() if not k.startswith("custom.") and k != "_csrf"}


async def _service_context(conn: Any) -> dict[str, Any]:
    return {"choices": await queries.choices(conn), "fields": await custom.definitions(conn, "service")}


@AREA.page("/customers/{id}/services/new", permission="customers.add")
async def new_service_form(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        c = await _customer_or_404(conn, request, path_id(request))
        ctx = await _service_context(conn)
    return pages.render("customers/service_form.html", request, {
        **ctx, "c": c, "s": {"status": "active", "simultaneous_use": 1, "custom": {}}, "errors": {}, "editing": False})


async def _check_tariff(conn: Any, partner_id: int, tariff_id: int) -> None:
    """A customer's service is on a tariff its partner may sell (admin/partners/: a tariff given to
    particular partners is theirs alone)."""
    if not await partners_store.may_sell(conn, partner_id, tariff_id):
        raise schemas.Invalid({"tariff_id": "this customer's partner may not sell this tariff (Partners: the "
                                            "tariffs it may sell)"})


async def _create_service(conn: Any, request: web.Request, customer: Any, data: ServiceIn) -> int:
    who = keys.principal(request)
    values = msgspec.structs.asdict(data)
    await _check_tariff(conn, customer["partner_id"], data.tariff_id)
    try:
        async with conn.transaction():
            service_id = await queries.create_service(conn, customer["id"], values)
            await oplog_store.record(conn, who, keys.client_address(request), "create", "service", service_id,
                                     customer_id=customer["id"], partner_id=customer["partner_id"],
                                     summary=f"created service {data.login}",
                                     after={k: str(v) if isinstance(v, dt.date) else v for k, v in values.items()
                                            if k != "password"})
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise _db_error(e) from None
    return service_id


@AREA.page("/customers/{id}/services/new", permission="customers.add", method="POST")
async def create_service_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = _service_values(form)
    async with request.app[keys.POOL].acquire() as conn:
        c = await _customer_or_404(conn, request, path_id(request))
        ctx = await _service_context(conn)
        try:
            data = schemas.from_strings(values, ServiceIn)
            data.custom, errors = custom.validate(ctx["fields"], _strings(form))
            if errors:
                raise schemas.Invalid(errors)
            service_id = await _create_service(conn, request, c, data)
        except schemas.Invalid as e:
            return pages.render("customers/service_form.html", request, {
                **ctx, "c": c, "s": {**values, "custom": {}}, "errors": e.errors, "editing": False}, status=422)
    raise web.HTTPFound(f"/admin/services/{service_id}")


async def _service_or_404(conn: Any, request: web.Request, service_id: int, *, lock: bool = False) -> Any:
    who = keys.principal(request)
    row = await queries.service(conn, who.partner_id, who.creator_id, service_id, lock=lock)
    if row is None:
        raise web.HTTPNotFound()
    return row


@AREA.page("/services/{id}", permission="customers.view")
async def service_page(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        s = await _service_or_404(conn, request, path_id(request))
        fields = await custom.definitions(conn, "service")
    return pages.render("customers/service.html", request, {"s": s, "fields": fields,
                                                             "notice": request.query.get("done", "")})


@AREA.page("/services/{id}/edit", permission="customers.edit")
async def edit_service_form(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        s = await _service_or_404(conn, request, path_id(request))
        ctx = await _service_context(conn)
        c = await _customer_or_404(conn, request, s["customer_id"])
    return pages.render("customers/service_form.html", request, {**ctx, "c": c, "s": s, "errors": {},
                                                                  "editing": True})


async def _update_service(conn: Any, request: web.Request, service_id: int, changes: dict[str, Any]) -> None:
    who = keys.principal(request)
    try:
        async with conn.transaction():
            before = await _service_or_404(conn, request, service_id, lock=True)
            changed = {k: v for k, v in changes.items() if str(before[k]) != str(v) or
                       (before[k] is None) != (v is None)}
            if not changed:
                return
            if "tariff_id" in changed:
                await _check_tariff(conn, before["partner_id"], changed["tariff_id"])
            await queries.update_service(conn, service_id, changed)
            old = schemas.row_json(before)
            await oplog_store.record(
                conn, who, keys.client_address(request), "update", "service", service_id,
                customer_id=before["customer_id"], partner_id=before["partner_id"],
                summary=f"service {before['login']}: changed {', '.join(sorted(changed))}",
                before={k: old.get(k) for k in changed if k != "password"},
                after={k: str(v) if isinstance(v, dt.date) else v for k, v in changed.items() if k != "password"})
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise _db_error(e) from None


@AREA.page("/services/{id}/edit", permission="customers.edit", method="POST")
async def edit_service(request: web.Request) -> web.StreamResponse:
    service_id = path_id(request)
    form = await request.post()
    values = _service_values(form)
    async with request.app[keys.POOL].acquire() as conn:
        s = await _service_or_404(conn, request, service_id)
        ctx = await _service_context(conn)
        try:
            data = schemas.from_strings(values, ServiceIn)
            data.custom, errors = custom.validate(ctx["fields"], _strings(form))
            if errors:
                raise schemas.Invalid(errors)
            await _update_service(conn, request, service_id, msgspec.structs.asdict(data))
        except schemas.Invalid as e:
            c = await _customer_or_404(conn, request, s["customer_id"])
            return pages.render("customers/service_form.html", request, {
                **ctx, "c": c, "s": {**values, "id": service_id, "custom": {}}, "errors": e.errors,
                "editing": True}, status=422)
    raise web.HTTPFound(f"/admin/services/{service_id}?done=saved")


# -- search -------------------------------------------------------------------------------------

@AREA.page("/search", permission="customers.view")
async def search_page(request: web.Request) -> web.StreamResponse:
    q = request.query.get("q", "").strip()[:100]
    at = None
    if request.query.get("at"):
        try:
            at = dt.datetime.fromisoformat(request.query["at"]).replace(tzinfo=dt.UTC)
        except ValueError:
            at = None
    hits: list[Any] = []
    if q:
        who = keys.principal(request)
        async with request.app[keys.POOL].acquire() as conn:
            hits = await queries.search(conn, who.partner_id, who.creator_id, q, at, 50)
        if len(hits) == 1 and "go" not in request.query:
            raise web.HTTPFound(f"/admin/customers/{hits[0]['customer_id']}")
    return pages.render("customers/search.html", request, {"q": q, "hits": hits, "at": request.query.get("at", "")})


@AREA.page("/search/suggest", permission="customers.view")
async def search_suggest(request: web.Request) -> web.StreamResponse:
    """The search box's matches as the operator types (an htmx fragment): the best eight."""
    q = request.query.get("q", "").strip()[:100]
    hits: list[Any] = []
    if len(q) >= 2:
        who = keys.principal(request)
        async with request.app[keys.POOL].acquire() as conn:
            hits = await queries.search(conn, who.partner_id, who.creator_id, q, None, 8)
    return pages.render("customers/suggest.html", request, {"q": q, "hits": hits})


# -- the API ------------------------------------------------------------------------------------

@AREA.api("GET", "/customers", permission="customers.view", summary="List customers", query=CustomerQuery,
          response=Page[Customer])
async def api_customers(request: web.Request) -> web.StreamResponse:
    """Customers, `limit` at a time; `next` is the cursor for `after`. Deleted customers only with `status=deleted`."""
    who = keys.principal(request)
    f = schemas.query(request, CustomerQuery)
    after = listing.decode_cursor(f.after)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.list_customers(conn, who.partner_id, who.creator_id, status=f.status,
                                            partner_id=f.partner_id, category=f.category, q=f.q, sort=f.sort,
                                            direction=f.dir, after=after, limit=f.limit)
    nxt = listing.encode_cursor((rows[f.limit - 1]["sort_value"], rows[f.limit - 1]["id"])) \
        if len(rows) > f.limit else None
    return schemas.json(Page[Customer]([_customer_out(r) for r in rows[: f.limit]], nxt))


@AREA.api("POST", "/customers", permission="customers.add", summary="Create a customer", body=CustomerIn,
          response=Customer, status=201)
async def api_create_customer(request: web.Request) -> web.StreamResponse:
    data = await schemas.body(request, CustomerIn)
    async with request.app[keys.POOL].acquire() as conn:
        data.custom, errors = custom.validate(await custom.definitions(conn, "customer"),
                                              {f"custom.{k}": str(v) for k, v in data.custom.items()})
        if errors:
            raise schemas.Invalid(errors)
        row = await _create_customer(conn, request, data)
        row = await _customer_or_404(conn, request, row["id"])
    return schemas.json(_customer_out(row), status=201)


@AREA.api("GET", "/customers/{id}", permission="customers.view", summary="Get a customer", response=Customer)
async def api_customer(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await _customer_or_404(conn, request, path_id(request))
    return schemas.json(_customer_out(row))


@AREA.api("PATCH", "/customers/{id}", permission="customers.edit", summary="Change a customer's fields",
          body=CustomerPatch, response=Customer)
async def api_update_customer(request: web.Request) -> web.StreamResponse:
    customer_id = path_id(request)
    patch = await schemas.body(request, CustomerPatch)
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    async with request.app[keys.POOL].acquire() as conn:
        if "custom" in changes:
            changes["custom"], errors = custom.validate(await custom.definitions(conn, "customer"),
                                                        {f"custom.{k}": str(v) for k, v in changes["custom"].items()})
            if errors:
                raise schemas.Invalid(errors)
        await _customer_or_404(conn, request, customer_id)
        if changes:
            await _update_customer(conn, request, customer_id, changes)
        row = await _customer_or_404(conn, request, customer_id)
    return schemas.json(_customer_out(row))


@AREA.api("POST", "/customers/{id}/status", permission="customers.edit", body=StatusChange, response=Customer,
          summary="Move a customer through its lifecycle (activate, block, unblock, deactivate)")
async def api_status(request: web.Request) -> web.StreamResponse:
    customer_id = path_id(request)
    change = await schemas.body(request, StatusChange)
    async with request.app[keys.POOL].acquire() as conn:
        await _change_status(conn, request, customer_id, change.action)
        row = await _customer_or_404(conn, request, customer_id)
    return schemas.json(_customer_out(row))


@AREA.api("DELETE", "/customers/{id}", permission="customers.delete", response=schemas.Deleted,
          summary="Delete an inactive customer (its row stays for finance; lists hide it)")
async def api_delete(request: web.Request) -> web.StreamResponse:
    customer_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        await _delete(conn, request, customer_id)
    return schemas.json(schemas.Deleted(customer_id))


@AREA.api("GET", "/customers/{id}/services", permission="customers.view", summary="A customer's services",
          response=list[Service])
async def api_services(request: web.Request) -> web.StreamResponse:
    customer_id = path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        await _customer_or_404(conn, request, customer_id)
        rows = await queries.services_of(conn, customer_id)
    return schemas.json([_service_out(r) for r in rows])


@AREA.api("POST", "/customers/{id}/services", permission="customers.add", summary="Add a service to a customer",
          body=ServiceIn, response=Service, status=201)
async def api_create_service(request: web.Request) -> web.StreamResponse:
    data = await schemas.body(request, ServiceIn)
    async with request.app[keys.POOL].acquire() as conn:
        c = await _customer_or_404(conn, request, path_id(request))
        data.custom, errors = custom.validate(await custom.definitions(conn, "service"),
                                              {f"custom.{k}": str(v) for k, v in data.custom.items()})
        if errors:
            raise schemas.Invalid(errors)
        service_id = await _create_service(conn, request, c, data)
        row = await _service_or_404(conn, request, service_id)
    return schemas.json(_service_out(row), status=201)


@AREA.api("GET", "/services/{id}", permission="customers.view", summary="Get a service", response=Service)
async def api_service(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await _service_or_404(conn, request, path_id(request))
    return schemas.json(_service_out(row))


@AREA.api("PATCH", "/services/{id}", permission="customers.edit", summary="Change a service", body=ServicePatch,
          response=Service)
async def api_update_service(request: web.Request) -> web.StreamResponse:
    service_id = path_id(request)
    patch = await schemas.body(request, ServicePatch)
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    async with request.app[keys.POOL].acquire() as conn:
        if "custom" in changes:
            changes["custom"], errors = custom.validate(await custom.definitions(conn, "service"),
                                                        {f"custom.{k}": str(v) for k, v in changes["custom"].items()})
            if errors:
                raise schemas.Invalid(errors)
        await _update_service(conn, request, service_id, changes)
        row = await _service_or_404(conn, request, service_id)
    return schemas.json(_service_out(row))


@AREA.api("GET", "/search", permission="customers.view", summary="Find customers", query=SearchQuery,
          response=list[SearchHit])
async def api_search(request: web.Request) -> web.StreamResponse:
    """By name, login, customer number, address, phone, email, IP (now, or at `at` from sessions) or MAC; best first."""
    who = keys.principal(request)
    f = schemas.query(request, SearchQuery)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.search(conn, who.partner_id, who.creator_id, f.q.strip(), f.at, f.limit)
    return schemas.json([SearchHit(r["customer_id"], r["number"], r["name"], r["status"], r["match"], r["score"])
                         for r in rows])

