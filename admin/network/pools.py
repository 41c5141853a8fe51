"""IP pools and their leases: the list (size, free, bound per pool), a pool's page with its
leases, the form (a new pool's name, prefix and manager; afterwards only its name), delete;
and the API.

A 'lastmile' pool gets one ip_leases row per address when it is created (schema.sql
``lastmile_fill_pool``), so its prefix cannot change afterwards and its size is capped (a /16).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from admin import keys, listing, pages, schemas
from admin.network import queries
from admin.network.common import (
    AREA,
    InUse,
    Row,
    address_text,
    back,
    check_cursor,
    form_values,
    log,
    names,
    out,
    plural,
    refused,
)
from admin.network.schemas import (
    LEASE_STATES,
    MAX_POOL_BITS,
    Lease,
    LeaseQuery,
    Pool,
    PoolIn,
    PoolPatch,
    PoolQuery,
    pool_network,
)
from admin.schemas import Deleted, Page
from admin.web import path_id

LEASE_SORTS = {"address": "l.address"}
POOL_CSV = ("id", "name", "network", "managed_by", "size", "free", "bound", "held", "services")
LEASE_CSV = ("address", "state", "service_id", "login", "acct_unique_id", "holder", "expires_at", "updated_at")
LOGGED = ("name", "network", "managed_by")


def _lease_key(r: Any) -> tuple[str, int]:
    """A lease's cursor: its address (the listing's cursor also carries a number, unused here)."""
    return (str(r["address"]), 0)


async def _create(request: web.Request, data: PoolIn) -> asyncpg.Record:
    try:
        net = pool_network(data.network, data.managed_by)
    except ValueError as e:
        raise schemas.Invalid({"network": str(e)}) from None
    values = {"name": data.name, "network": net, "managed_by": data.managed_by}
    pool = request.app[keys.POOL]
    try:
        async with pool.acquire() as conn, conn.transaction():
            pool_id = await queries.create_pool(conn, values)
            row = await queries.pool(conn, pool_id)
            assert row is not None
            await log(conn, request, "create", "ip_pool", pool_id, f"created IP pool {data.name} ({net})",
                      after=schemas.row_json(row, LOGGED))
            return row
    except asyncpg.ExclusionViolationError:
        async with pool.acquire() as conn:
            others = await queries.pool_overlapping(conn, net, None)
        raise schemas.Invalid({"network": "overlaps " + ", ".join(f"pool {o['name']} ({o['network']})"
                                                                  for o in others) if others
                               else "overlaps another pool"}) from None
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise refused(e) from None


async def _rename(request: web.Request, pool_id: int, name: str) -> asyncpg.Record:
    try:
        async with request.app[keys.POOL].acquire() as conn, conn.transaction():
            before = await queries.pool(conn, pool_id, lock=True)
            if before is None:
                raise web.HTTPNotFound()
            if before["name"] == name:
                return before
            await queries.rename_pool(conn, pool_id, name)
            await log(conn, request, "update", "ip_pool", pool_id, f"renamed IP pool {before['name']} to {name}",
                      before={"name": before["name"]}, after={"name": name})
            row = await queries.pool(conn, pool_id)
            assert row is not None
            return row
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as e:
        raise refused(e) from None


async def _delete(request: web.Request, pool_id: int) -> asyncpg.Record:
    async with request.app[keys.POOL].acquire() as conn:
        try:
            async with conn.transaction():
                row = await queries.pool(conn, pool_id, lock=True)
                if row is None:
                    raise web.HTTPNotFound()
                users = await queries.pool_users(conn, pool_id)
                if not users["services"] and not users["live"] and await queries.delete_pool(conn, pool_id):
                    await log(conn, request, "delete", "ip_pool", pool_id, f"deleted IP pool {row['name']}",
                              before=schemas.row_json(row, LOGGED))
                    return row
        except asyncpg.ForeignKeyViolationError:
            users = await queries.pool_users(conn, pool_id)
    parts = []
    if users["services"]:
        parts.append(f"{plural(users['services'], 'service')} take their address from it "
                     f"({names(users['logins'], users['services'])})")
    if users["live"]:
        parts.append(f"{plural(users['live'], 'address', 'addresses')} of it are leased to sessions now")
    raise InUse(f"This pool is in use: {'; '.join(parts)}. Move the services to another pool first.")


# -- pages ----------------------------------------------------------------------------------------

@AREA.page("/ip-pools", permission="networking.view")
async def pools_list(request: web.Request) -> web.StreamResponse:
    f = schemas.query(request, PoolQuery)
    ls = listing.Listing.of(request, queries.POOL_SORTS, "name", limit=request.app[keys.SETTINGS].page_size)
    check_cursor(ls, {"network": address_text})
    db = request.app[keys.POOL]

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with db.acquire() as conn:
            return await queries.list_pools(conn, q=f.q, sort=ls.sort, direction=ls.direction, after=after,
                                            limit=limit)

    def key(r: Any) -> tuple[Any, int]:
        return (r["sort_value"], r["id"])

    if ls.wants_csv:
        return await listing.export_csv(request, "ip-pools.csv", POOL_CSV, fetch, key,
                                        lambda r: [r[c] for c in POOL_CSV])
    rows = ls.take(await fetch(ls.after, ls.limit + 1), key)
    return pages.render("network/pools_list.html", request, {"rows": rows, "ls": ls, "f": f,
                                                              "notice": request.query.get("done", "")})


def _form(request: web.Request, p: Row, errors: dict[str, str], *, status: int = 200,
          editing: bool = False) -> web.Response:
    return pages.render("network/pool_form.html", request, {"p": p, "errors": errors, "editing": editing,
                                                             "max_bits": MAX_POOL_BITS}, status=status)


@AREA.page("/ip-pools/new", permission="networking.add")
async def pool_new_form(request: web.Request) -> web.StreamResponse:
    return _form(request, {"managed_by": "lastmile"}, {})


@AREA.page("/ip-pools/new", permission="networking.add", method="POST")
async def pool_create_form(request: web.Request) -> web.StreamResponse:
    values = form_values(await request.post())
    try:
        row = await _create(request, schemas.from_strings(values, PoolIn))
    except schemas.Invalid as e:
        return _form(request, values, e.errors, status=422)
    raise web.HTTPFound(f"/admin/ip-pools/{row['id']}?done=created")


async def _leases_page(request: web.Request, pool_id: int, *, error: str = "",
                       status: int = 200) -> web.StreamResponse:
    f = schemas.query(request, LeaseQuery)
    ls = listing.Listing.of(request, LEASE_SORTS, "address", limit=request.app[keys.SETTINGS].page_size)
    check_cursor(ls, {"address": address_text})
    db = request.app[keys.POOL]
    async with db.acquire() as conn:
        row = await queries.pool(conn, pool_id)
    if row is None:
        raise web.HTTPNotFound()

    async def fetch(after: list[Any] | None, limit: int) -> list[Any]:
        async with db.acquire() as conn:
            return await queries.leases(conn, pool_id, str(row["network"]), state=f.state, direction=ls.direction,
                                        after=str(after[0]) if after else None, limit=limit)

    if ls.wants_csv:
        return await listing.export_csv(request, f"pool-{pool_id}-leases.csv", LEASE_CSV, fetch, _lease_key,
                                        lambda r: [r[c] for c in LEASE_CSV])
    leases = ls.take(await fetch(ls.after, ls.limit + 1), _lease_key)
    return pages.render("network/pool_detail.html", request, {
        "p": row, "leases": leases, "ls": ls, "f": f, "states": LEASE_STATES, "error": error,
        "notice": request.query.get("done", "")}, status=status)


@AREA.page("/ip-pools/{id}", permission="networking.view")
async def pool_page(request: web.Request) -> web.StreamResponse:
    return await _leases_page(request, path_id(request))


@AREA.page("/ip-pools/{id}/edit", permission="networking.edit")
async def pool_edit_form(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.pool(conn, path_id(request))
    if row is None:
        raise web.HTTPNotFound()
    return _form(request, schemas.row_json(row), {}, editing=True)


@AREA.page("/ip-pools/{id}/edit", permission="networking.edit", method="POST")
async def pool_edit(request: web.Request) -> web.StreamResponse:
    pool_id = path_id(request)
    values = form_values(await request.post())
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.pool(conn, pool_id)
    if row is None:
        raise web.HTTPNotFound()
    try:
        patch = schemas.from_strings(values, PoolPatch)
        if isinstance(patch.name, str):
            row = await _rename(request, pool_id, patch.name)
        else:
            raise schemas.Invalid({"name": "is required"})
    except schemas.Invalid as e:
        return _form(request, {**schemas.row_json(row), **values}, e.errors, status=422, editing=True)
    raise web.HTTPFound(f"/admin/ip-pools/{pool_id}?done=saved")


@AREA.page("/ip-pools/{id}/delete", permission="networking.delete", method="POST")
async def pool_delete_form(request: web.Request) -> web.StreamResponse:
    pool_id = path_id(request)
    try:
        row = await _delete(request, pool_id)
    except InUse as e:
        return await _leases_page(request, pool_id, error=str(e), status=409)
    raise back("/admin/ip-pools", "deleted", row["name"])


# -- API ------------------------------------------------------------------------------------------

@AREA.api("GET", "/ip-pools", permission="networking.view", summary="List IP pools", query=PoolQuery,
          response=Page[Pool])
async def list_pools(request: web.Request) -> web.StreamResponse:
    """Pools with their leases counted by state (lastmile pools) and the services using each."""
    f = schemas.query(request, PoolQuery)
    ls = listing.Listing.of(request, queries.POOL_SORTS, "name", limit=request.app[keys.SETTINGS].page_size)
    check_cursor(ls, {"network": address_text})
    async with request.app[keys.POOL].acquire() as conn:
        rows = await queries.list_pools(conn, q=f.q, sort=ls.sort, direction=ls.direction, after=ls.after,
                                        limit=ls.limit + 1)
    page = ls.take(rows, lambda r: (r["sort_value"], r["id"]))
    return schemas.json(Page[Pool](items=[out(r, Pool) for r in page], next=ls.next))


@AREA.api("GET", "/ip-pools/{id}", permission="networking.view", summary="Get an IP pool", response=Pool)
async def get_pool(request: web.Request) -> web.StreamResponse:
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.pool(conn, path_id(request))
    if row is None:
        raise web.HTTPNotFound(text="no such pool")
    return schemas.json(out(row, Pool))


@AREA.api("GET", "/ip-pools/{id}/leases", permission="networking.view", summary="List a pool's leases",
          query=LeaseQuery, response=Page[Lease])
async def list_leases(request: web.Request) -> web.StreamResponse:
    """In address order; ``login`` is the service's the lease names (a free lease keeps its last one)."""
    pool_id = path_id(request)
    f = schemas.query(request, LeaseQuery)
    ls = listing.Listing.of(request, LEASE_SORTS, "address", limit=request.app[keys.SETTINGS].page_size)
    check_cursor(ls, {"address": address_text})
    async with request.app[keys.POOL].acquire() as conn:
        row = await queries.pool(conn, pool_id)
        if row is None:
            raise web.HTTPNotFound(text="no such pool")
        rows = await queries.leases(conn, pool_id, str(row["network"]), state=f.state, direction=ls.direction,
                                    after=str(ls.after[0]) if ls.after else None, limit=ls.limit + 1)
    page = ls.take(rows, _lease_key)
    return schemas.json(Page[Lease](items=[out(r, Lease) for r in page], next=ls.next))


@AREA.api("POST", "/ip-pools", permission="networking.add", summary="Create an IP pool", body=PoolIn,
          response=Pool, status=201)
async def create_pool(request: web.Request) -> web.StreamResponse:
    return schemas.json(out(await _create(request, await schemas.body(request, PoolIn)), Pool), status=201)


@AREA.api("PATCH", "/ip-pools/{id}", permission="networking.edit", summary="Rename an IP pool", body=PoolPatch,
          response=Pool)
async def update_pool(request: web.Request) -> web.StreamResponse:
    pool_id = path_id(request)
    patch = await schemas.body(request, PoolPatch)
    if isinstance(patch.name, str):
        row = await _rename(request, pool_id, patch.name)
    else:
        async with request.app[keys.POOL].acquire() as conn:
            found = await queries.pool(conn, pool_id)
        if found is None:
            raise web.HTTPNotFound(text="no such pool")
        row = found
    return schemas.json(out(row, Pool))


@AREA.api("DELETE", "/ip-pools/{id}", permission="networking.delete", summary="Delete an IP pool",
          response=Deleted, description="Refused (409) while services use the pool or sessions hold its addresses.")
async def delete_pool(request: web.Request) -> web.StreamResponse:
    pool_id = path_id(request)
    try:
        await _delete(request, pool_id)
    except InUse as e:
        return schemas.problem(409, "pool in use", str(e))
    return schemas.json(Deleted(pool_id))
