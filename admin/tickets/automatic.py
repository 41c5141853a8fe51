"""Automatic tickets (issue 16): the system opens a ticket itself when something needs a person.
Each kind is on or off in ``ticket_settings``, lands in its ``group_id``, and is opened once: its
``rule_key`` is unique (store.create_ticket returns None the second time).

- A tariff plan created or changed (``tariff:<id>:<updated_at>``): what changed and how many
  active services are on the plan; written by the tariff's save, in its transaction
  (:func:`tariff_changed`), so a change rolled back opens no ticket. No customer, no partner.
- A CPE fault (``cpe_fault:<device>:<date>``): one a device a day (UTC), for its customer.
- A failed payment collection, for the customer: a SEPA collection returned or failed
  (``dd_collection:<id>``) or an autopay charge that failed (``autopay:<intent id>``).
- A router out of sync for longer than ``router_drift_minutes`` (0: off), once an episode
  (``router_drift:<router>:<since>``, since: its last successful run, or when it was added).

The worker's ``tickets.automatic`` job (every minute, one at a time) runs the last three
(:func:`run`), each in its own transaction with its cursor: faults and autopay charges are read
after a cursor in event_cursors (a minute behind, so writes in flight commit first) and each is
looked at once; a kind switched off moves its cursor on without tickets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.tickets import automatic_store as q
from admin.tickets.automation import Author
from admin.tickets.store import Created, NewTicket, create_ticket
from admin.worker.jobs import Context, job

LAG = dt.timedelta(minutes=1)
"""How far behind now the cursors read (the rows' times are their transactions' start)."""
FIRST = dt.timedelta(hours=1)
"""How far back a cursor's first run reads."""
COLLECTIONS_WINDOW = dt.timedelta(days=35)
"""Failed collections of batches older than this are not ticketed (no failure time is kept)."""

TARIFF_FIELDS = (("name", "name"), ("price", "price"), ("currency", "currency"),
                 ("download_kbps", "download"), ("upload_kbps", "upload"),
                 ("burst_download_kbps", "burst download"), ("burst_upload_kbps", "burst upload"),
                 ("limit_at_download_kbps", "guaranteed download"), ("limit_at_upload_kbps", "guaranteed upload"))
"""What a tariff's ticket shows before and after (name, price, speeds)."""
TARIFF_OTHERS = ("burst_threshold_download_kbps", "burst_threshold_upload_kbps", "burst_time_s", "priority",
                 "contention", "session_timeout_s", "tax_group", "price_includes_tax", "custom")
"""What it only names when changed."""

Row = Mapping[str, Any] | asyncpg.Record


@dataclass(frozen=True, slots=True)
class Settings:
    tariff: bool = True
    cpe_fault: bool = True
    payment_failure: bool = True
    router_drift_minutes: int = 60
    group_id: int | None = None


@dataclass(slots=True)
class Summary:
    cpe_faults: int = 0
    payment_failures: int = 0
    router_drift: int = 0


async def settings(conn: Connection) -> Settings:
    row = await q.settings(conn)
    if row is None:
        return Settings()
    return Settings(row["tariff_tickets"], row["cpe_fault_tickets"], row["payment_failure_tickets"],
                    row["router_drift_minutes"], row["group_id"])


async def active_services(conn: Connection, tariff_id: int) -> int:
    """How many active services are on the tariff (the form's warning before a change)."""
    return await q.active_services(conn, tariff_id)


# -- the words -----------------------------------------------------------------------------------

def speed(kbps: int | None) -> str:
    if kbps is None:
        return "none"
    if kbps % 1000 == 0:
        return f"{kbps // 1000} Mbit/s"
    return f"{kbps} kbit/s"


def money(amount: Decimal | None, currency: str) -> str:
    return f"{(amount or Decimal(0)):.2f} {currency}"


def _shown(column: str, value: Any) -> str:
    if column.endswith("_kbps"):
        return speed(value)
    if column == "price":
        return f"{(value or Decimal(0)):.2f}"
    return "none" if value is None else str(value)


def tariff_text(before: Row | None, after: Row, services: int) -> tuple[str, str]:
    """The subject and text of a tariff's ticket: every shown field as it was and is (or as it is,
    for a new plan), the other fields changed by name, and the active services on the plan."""
    lines: list[str] = []
    if before is None:
        subject = f"Tariff plan {after['name']} created"
        lines += [f"{label}: {_shown(column, after[column])}" for column, label in TARIFF_FIELDS
                  if after[column] is not None]
    else:
        subject = f"Tariff plan {after['name']} changed"
        lines += [f"{label}: {_shown(column, before[column])} → {_shown(column, after[column])}"
                  for column, label in TARIFF_FIELDS if before[column] != after[column]]
        others = [c for c in TARIFF_OTHERS if before[c] != after[c]]
        if others:
            lines.append(f"also changed: {', '.join(others)}")
    lines.append("")
    lines.append(f"{services} active service{'s are' if services != 1 else ' is'} on this plan.")
    return subject, "\n".join(lines)


# -- 1. tariffs ----------------------------------------------------------------------------------

async def tariff_changed(conn: Connection, before: Row | None, after: Row, *,
                         now: dt.datetime) -> Created | None:
    """The ticket of a tariff created (``before`` None) or changed, in the caller's transaction.
    None: tariff tickets are off, nothing changed, or this version has its ticket already."""
    s = await settings(conn)
    if not s.tariff:
        return None
    if before is not None and all(before[c] == after[c] for c, _ in TARIFF_FIELDS) \
            and all(before[c] == after[c] for c in TARIFF_OTHERS):
        return None
    subject, body = tariff_text(before, after, await q.active_services(conn, after["id"]))
    return await create_ticket(conn, NewTicket(
        subject=subject, body=body, source="rule", author=Author.SYSTEM, group_id=s.group_id,
        rule_key=f"tariff:{after['id']}:{after['updated_at'].isoformat()}", created_by="automatic"), now=now)


# -- 2. CPE faults -------------------------------------------------------------------------------

async def cpe_faults(conn: Connection, s: Settings, now: dt.datetime) -> int:
    """A ticket per device and day for the faults recorded since the last run; how many opened."""
    made = 0
    async with conn.transaction():
        upto = now - LAG
        since = await q.advance(conn, q.FAULTS_CURSOR, upto, FIRST)
        if not s.cpe_fault or since >= upto:
            return 0
        for f in await q.faults(conn, since, upto):
            code = "" if f["code"] is None else str(f["code"])
            what = " ".join(p for p in (code, f["message"]) if p) or f["source"]
            day = f["at"].astimezone(dt.UTC).date().isoformat()
            body = (f"The ACS recorded a fault of router {f['cwmp_id']} at {f['at'].astimezone(dt.UTC):%Y-%m-%d %H:%M} "
                    f"UTC ({f['source']}{', ' + f['rpc'] if f['rpc'] else ''}): {what}.\n"
                    "Later faults of the device today are on its page.")
            created = await create_ticket(conn, NewTicket(
                subject=f"Router {f['cwmp_id']}: fault {what}", body=body, source="rule", author=Author.SYSTEM,
                partner_id=f["partner_id"], customer_id=f["customer_id"], type="incident", group_id=s.group_id,
                rule_key=f"cpe_fault:{f['device_id']}:{day}", created_by="automatic"), now=now)
            made += created is not None
    return made


# -- 3. failed payments --------------------------------------------------------------------------

async def payment_failures(conn: Connection, s: Settings, now: dt.datetime) -> int:
    """A ticket per failed SEPA collection and per failed autopay charge; how many opened."""
    made = 0
    async with conn.transaction():
        upto = now - LAG
        since = await q.advance(conn, q.AUTOPAY_CURSOR, upto, FIRST)
        if not s.payment_failure:
            return 0
        for x in await q.failed_collections(conn, (now - COLLECTIONS_WINDOW).date()):
            reason = x["reason"] or "no reason given"
            created = await create_ticket(conn, NewTicket(
                subject=f"Direct debit failed: {money(x['amount'], x['currency'])} for {x['document_number']}",
                body=(f"The SEPA direct debit of {money(x['amount'], x['currency'])} for invoice "
                      f"{x['document_number']} (collection {x['end_to_end_id']}, due {x['collection_date']}) "
                      f"was returned or failed: {reason}."),
                source="rule", author=Author.SYSTEM, partner_id=x["partner_id"], customer_id=x["customer_id"],
                priority="high", group_id=s.group_id, rule_key=f"dd_collection:{x['id']}", created_by="automatic"),
                now=now)
            made += created is not None
        if since < upto:
            for i in await q.failed_autopay(conn, since, upto):
                invoice = f" for invoice {i['document_number']}" if i["document_number"] else ""
                created = await create_ticket(conn, NewTicket(
                    subject=f"Autopay failed: {money(i['amount'], i['currency'])}{invoice}",
                    body=(f"The automatic charge of {money(i['amount'], i['currency'])}{invoice} on the saved "
                          f"card ({i['gateway']}) failed: {i['error'] or 'no reason given'}."),
                    source="rule", author=Author.SYSTEM, partner_id=i["partner_id"], customer_id=i["customer_id"],
                    priority="high", group_id=s.group_id, rule_key=f"autopay:{i['id']}", created_by="automatic"),
                    now=now)
                made += created is not None
    return made


# -- 4. routers out of sync ----------------------------------------------------------------------

async def router_drift(conn: Connection, s: Settings, now: dt.datetime) -> int:
    """A ticket per router out of sync for longer than ``router_drift_minutes``, once an episode."""
    if s.router_drift_minutes <= 0:
        return 0
    made = 0
    async with conn.transaction():
        for r in await q.routers_out_of_sync(conn, now - dt.timedelta(minutes=s.router_drift_minutes)):
            since = r["since"].astimezone(dt.UTC)
            minutes = int((now - since).total_seconds() // 60)
            why = ("it does not answer" if r["reachable"] is False
                   else f"its last run failed: {r['last_error']}" if r["last_error"]
                   else "it has not been synchronised yet")
            created = await create_ticket(conn, NewTicket(
                subject=f"Router {r['name']} out of sync for {minutes} minutes",
                body=(f"Router {r['name']} ({r['host']}) has not been in step with billing since "
                      f"{since:%Y-%m-%d %H:%M} UTC: {why}."),
                source="rule", author=Author.SYSTEM, priority="high", type="incident", group_id=s.group_id,
                rule_key=f"router_drift:{r['id']}:{since.isoformat()}", created_by="automatic"), now=now)
            made += created is not None
    return made


async def run(conn: Connection, *, now: dt.datetime) -> Summary:
    """Kinds 2 to 4, each in its own transaction."""
    s = await settings(conn)
    return Summary(await cpe_faults(conn, s, now), await payment_failures(conn, s, now),
                   await router_drift(conn, s, now))


@job("tickets.automatic", schedule="* * * * *", retries=3, timeout=300, concurrency=1)
async def automatic_tickets(ctx: Context) -> None:
    """Open the automatic tickets: CPE faults, failed payments, routers out of sync."""
    async with ctx.pool.acquire() as conn:
        done = await run(conn, now=dt.datetime.now(dt.UTC))
    if done.cpe_faults or done.payment_failures or done.router_drift:
        ctx.log.info("automatic tickets", cpe_faults=done.cpe_faults, payment_failures=done.payment_failures,
                     router_drift=done.router_drift)
