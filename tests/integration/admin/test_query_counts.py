"""How many SQL statements each GET route issues, held to a baseline (query_counts.json), so that
an N+1 query (a statement per row of a list) fails here instead of slowing the 100,000-customer
admin down (NetBox holds its views the same way, utilities/testing/query_counts.py).

Every GET route the admin serves (pages and API operations, found from the app's areas, so a
new route is covered the day it lands) is asked by a super administrator over the demo's data
(30 customers, with a session, log lines and traffic each), a path parameter filled with a real
row of the table the segment before it names. Each statement the app's pool runs while the
request is served is counted: asyncpg's query logger on every connection of the pool. Not
counted: asyncpg's own type introspection (once per connection and type) and the API request
log, written in the background (admin/auth/apilog.py) through a pool of its own here. Counted,
and constant: the auth middleware's session lookup (its touch is kept out by a fresh seen_at)
or API key lookup (its 5 s cache is emptied before each request).

A route with more statements than its baseline fails; so does a route missing from the baseline.
After a deliberate change, rewrite the baseline:

    LASTMILE_UPDATE_QUERY_COUNTS=1 .venv/bin/pytest tests/integration/admin/test_query_counts.py

and commit query_counts.json with the change. The N+1 check asks every list (a route without a
path parameter) with 5 customers and again with 30: the counts must be equal.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest
from aiohttp import web
from asyncpg import introspection

from admin import keys
from admin.app import create_app
from admin.auth import middleware as auth
from admin.auth import tokens
from admin.billing import ledger
from admin.payments import record
from admin.settings import AdminSettings
from admin.web import PERMISSIONS, SECOND_FACTOR
from daemons import db, demo
from daemons.config import DatabaseSettings
from daemons.secrets import Keyring
from tests.conftest import free_port
from tests.integration.admin.conftest import Admin, Client, make_admin
from tests.integration.admin.test_payments_direct_debit import sample_rows as direct_debit_rows
from tests.integration.admin.test_payments_statements import sample_rows as statement_rows
from tests.integration.portal.conftest import password_hash, portal_login
from tests.integration.portal.test_equipment import TR181_WIFI, device

BASELINE = Path(__file__).with_name("query_counts.json")
PORTAL_LOGIN = "qc-portal"  # the data's customer's portal login (password: conftest's PASSWORD)
UPDATE_ENV = "LASTMILE_UPDATE_QUERY_COUNTS"
HOW_TO_UPDATE = (f"if the new statements are meant, rewrite the baseline: {UPDATE_ENV}=1 .venv/bin/pytest "
                 f"tests/integration/admin/test_query_counts.py (and commit {BASELINE.name})")
PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
# The segment before a path parameter -> its table, where the two differ.
TABLES = {"pools": "ip_pools", "exporters": "flow_exporters", "roles": "admin_roles", "keys": "api_keys",
          "api-keys": "api_keys", "admins": "administrators", "fields": "custom_fields",
          "custom-fields": "custom_fields", "operations-log": "operations_log", "oplog": "operations_log",
          "jobs": "pgqueuer", "batches": "dd_batches", "mandates": "sepa_mandates",
          "deliveries": "webhook_deliveries", "devices": "acs_devices", "tasks": "acs_tasks",
          "wakeups": "acs_wakeups", "connection-requests": "acs_wakeups", "dry-runs": "acs_dry_runs",
          "presets": "acs_presets", "files": "acs_files", "attachments": "ticket_attachments",
          "inboxes": "ticket_inboxes", "groups": "ticket_groups", "canned-replies": "ticket_canned_replies",
          "rules": "ticket_rules", "accounts": "customers", "brands": "partners",
          "commissions": "partners", "statements": "partner_statements"}
# Routes whose whole URL is given (a parameter that names a file, not a row).
PATHS = {"/portal/static/{name}": "/portal/static/portal.css",
         "/portal/static/vendor/{name}": "/portal/static/vendor/uPlot-1.6.32.min.css"}
# Path parameters that name no row of a table, by their name: the value they are asked with.
NAMED = {"partner": "default", "kind": "invoice", "channel": "email"}
# Query strings for routes that need input to do their work.
QUERIES = {"/portal/usage/data": "service={services}&range=days",
           "/admin/search": "q={ip}", "/admin/search/suggest": "q={ip}", "/api/v1/search": "q={ip}",
           "/api/v1/payments/customers": "q={ip}", "/admin/finance/payments/customers": "q={ip}"}
# Statements of asyncpg itself (type introspection).
_NOT_COUNTED = (introspection.INTRO_LOOKUP_TYPES_13.strip()[:60], introspection.INTRO_LOOKUP_TYPES.strip()[:60])


def _counted(query: str) -> bool:
    text = query.strip()
    return not (text.startswith(_NOT_COUNTED) or "current_setting('jit')" in text or text.startswith("SET jit"))


@dataclass(eq=False)  # hashable: asyncpg keeps its query loggers in a set
class Recorder:
    """Every statement the pool's connections run while ``on`` (asyncpg calls a logger with
    call_soon once the statement is done: before the response is written)."""

    on: bool = False
    statements: list[str] = field(default_factory=list)

    def __call__(self, record: asyncpg.connection.LoggedQuery) -> None:
        if self.on and _counted(record.query):
            self.statements.append(" ".join(record.query.split())[:200])


@dataclass
class Counted:
    admin: Admin
    recorder: Recorder


@pytest.fixture
async def counted(db_url: str) -> AsyncIterator[Counted]:
    """The admin app as the ``admin`` fixture builds it (conftest.py), over a pool made as
    db.create_pool makes it, whose connections report every statement to a Recorder. The API
    request log (written once a second, in the background) gets a pool of its own."""
    recorder = Recorder()

    async def init(conn: asyncpg.Connection) -> None:
        await db.init_connection(conn)
        conn.add_query_logger(recorder)

    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=4, init=init, reset=db._keep_session)
    async with pool.acquire() as conn:
        await db.check_schema(conn)
    settings = AdminSettings(port=free_port())
    app = create_app(settings, Keyring(os.urandom(32)), pool=pool)
    runner = web.AppRunner(app)
    await runner.setup()
    log_pool = await db.create_pool(DatabaseSettings(), db_url, max_size=1)
    app[keys.API_LOG].pool = log_pool
    site = web.TCPSite(runner, "127.0.0.1", settings.port)
    await site.start()
    try:
        yield Counted(Admin(f"http://127.0.0.1:{settings.port}", pool, app[keys.KEYRING], app), recorder)
    finally:
        await runner.cleanup()
        await pool.close()
        await log_pool.close()


async def add_activity(conn: asyncpg.Connection, after_service: int) -> None:
    """What a running network adds to the demo, for every service after ``after_service``: an open
    RADIUS session, an accept and a reject in the post-auth log, a line of the operations log and
    a minute of traffic (so the lists of those have rows too)."""
    await conn.execute("""
        CREATE TEMP TABLE activity_window ON COMMIT DROP AS
            -- back as far as 6 h, within today (the partitions the schema made)
            SELECT least(now() - date_trunc('day', now()), interval '6 hours') AS back;
        INSERT INTO radius_session_index (acct_unique_id, started_at)
        SELECT 'qc-' || s.id, now() - w.back * (s.id * 7919 % 1000 / 1000.0)
        FROM services s, activity_window w WHERE s.id > $1;
        INSERT INTO radius_sessions (acct_unique_id, started_at, service_id, nas_id, username, acct_session_id,
                                     nas_address, framed_ip, updated_at, input_octets, output_octets)
        SELECT 'qc-' || s.id, now() - w.back * (s.id * 7919 % 1000 / 1000.0), s.id, n.id, s.login, to_hex(s.id),
               host(n.address)::inet, s.ipv4, now(), 1000 * s.id, 5000 * s.id
        FROM services s CROSS JOIN activity_window w CROSS JOIN (SELECT id, address FROM nas ORDER BY id LIMIT 1) n
        WHERE s.id > $1;
        INSERT INTO radius_postauth (at, username, service_id, nas_id, result, reason, framed_ip)
        SELECT now() - w.back * ((s.id * 7919 + r.k * 131) % 1000 / 1000.0), s.login, s.id, n.id, r.result, r.reason,
               s.ipv4
        FROM services s CROSS JOIN activity_window w CROSS JOIN (SELECT id FROM nas ORDER BY id LIMIT 1) n
             CROSS JOIN (VALUES (1, 'reject', 'wrong password'), (2, 'accept', 'ok')) r (k, result, reason)
        WHERE s.id > $1;
        INSERT INTO operations_log (actor, action, object_type, object_id, customer_id, partner_id, summary)
        SELECT 'demo', 'update', 'customer', c.id, c.id, c.partner_id, 'query counts'
        FROM services s JOIN customers c ON c.id = s.customer_id WHERE s.id > $1;
        INSERT INTO traffic_usage (service_id, minute, bytes_down, bytes_up, packets_down, packets_up)
        SELECT s.id, greatest(date_trunc('day', now()), date_trunc('minute', now()) - interval '5 minutes'),
               10000, 1000, 10, 5
        FROM services s WHERE s.id > $1;
    """.replace("$1", str(int(after_service))))


async def load(conn: asyncpg.Connection, customers: int) -> None:
    """``customers`` more demo customers (seed 1), with their activity."""
    last = await conn.fetchval("SELECT coalesce(max(id), 0) FROM services")
    await demo.load(conn, customers, seed=1)
    await add_activity(conn, int(last))


async def _data(conn: asyncpg.Connection) -> dict[str, Any]:
    """The ids routes are asked with (the tables' first rows; a customer with a static IPv4) and the
    values of QUERIES."""
    row = await conn.fetchrow("SELECT s.customer_id, s.id, host(s.ipv4) AS ip FROM services s "
                              "WHERE s.ipv4 IS NOT NULL ORDER BY s.id LIMIT 1")
    assert row is not None
    await conn.execute("INSERT INTO custom_fields (object_type, key, label, kind) "
                       "VALUES ('customer', 'contract', 'Contract', 'text') ON CONFLICT DO NOTHING")
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM documents)"):
        await _bill(conn, row["customer_id"])
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM dd_batches)"):  # a mandate and a direct-debit batch
        await direct_debit_rows(conn, row["customer_id"])
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM payments)"):  # a payment for Finance -> Payments
        await record.record(conn, record.NewPayment(row["customer_id"], Decimal("2.00"), dt.datetime.now(dt.UTC).date(),
                                                    "cash", key="qc-payment"))
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM bank_statements)"):  # a statement, its lines, a mapping
        await statement_rows(conn, row["customer_id"])
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM messages)"):  # a message for Notifications -> Messages
        await conn.execute("INSERT INTO messages (partner_id, customer_id, kind, channel, cause, recipient, subject, "
                           "body, status, attachments) SELECT partner_id, id, 'invoice', 'email', 'qc-message', "
                           "'qc@example.net', 'Invoice', '<p>Hello</p>', 'failed', "
                           "ARRAY(SELECT id FROM documents ORDER BY id LIMIT 2) FROM customers WHERE id = $1",
                           row["customer_id"])
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM webhooks)"):  # a webhook, a delivery, an attempt
        await conn.execute(
            "WITH w AS (INSERT INTO webhooks (url, events, secret) VALUES ('http://127.0.0.1:9/hook', '{*}', 'x') "
            "RETURNING id), e AS (SELECT id FROM events ORDER BY id LIMIT 1), "
            "d AS (INSERT INTO webhook_deliveries (webhook_id, event_id, status, attempts) "
            "SELECT w.id, e.id, 'failed', 1 FROM w, e RETURNING id) "
            "INSERT INTO webhook_attempts (delivery_id, response_status, response_body) SELECT id, 500, 'no' FROM d")
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pgqueuer)"):  # a job for the Jobs pages
        await conn.execute("INSERT INTO pgqueuer (priority, status, entrypoint, payload) "
                           "VALUES (0, 'queued', 'qc.job', '{}')")
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM acs_devices)"):  # a CPE with a tree, a task, ...
        await conn.execute(
            "WITH d AS (INSERT INTO acs_devices (cwmp_id, oui, product_class, serial, customer_id, last_inform_at) "
            "VALUES ('00D09E-QC-1', '00D09E', 'QC', '1', $1, now()) RETURNING id), "
            "p AS (INSERT INTO acs_parameters (device_id, path, value, read_at) "
            "SELECT id, 'Device.DeviceInfo.UpTime', '1', now() FROM d), "
            "t AS (INSERT INTO acs_tasks (device_id, kind) SELECT id, 'reboot' FROM d), "
            "w AS (INSERT INTO acs_wakeups (device_id) SELECT id FROM d), "
            "r AS (INSERT INTO acs_dry_runs (device_id, preset) SELECT id, '{}' FROM d) "
            "INSERT INTO acs_sessions (started_at, device_id, events, rpcs, duration_ms, outcome) "
            "SELECT now(), id, '{2 PERIODIC}', '{Inform}', 3, 'ok' FROM d", row["customer_id"])
        await conn.execute("WITH f AS (INSERT INTO acs_files (name, file_type, size, complete) "
                           "VALUES ('qc.bin', '1 Firmware Upgrade Image', 1, true) RETURNING id) "
                           "INSERT INTO acs_file_chunks (file_id, n, data) SELECT id, 0, '\\x00' FROM f")
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM tickets)"):  # a ticket, its message, an attachment
        await conn.execute(
            "WITH t AS (INSERT INTO tickets (partner_id, customer_id, subject, source) "
            "SELECT partner_id, id, 'QC ticket', 'email' FROM customers WHERE id = $1 RETURNING id), "
            "m AS (INSERT INTO ticket_messages (ticket_id, author, body) "
            "SELECT id, 'customer', 'Hello' FROM t RETURNING id) "
            "INSERT INTO ticket_attachments (message_id, file_name, size, sha256, data) "
            "SELECT id, 'qc.txt', 1, sha256('\\x00'::bytea), '\\x00'::bytea FROM m", row["customer_id"])
        await conn.execute("INSERT INTO ticket_inboxes (partner_id, name, address, host, username, password) "
                           "SELECT partner_id, 'QC', 'qc@isp.example', 'imap.example', 'qc', 'x' FROM customers "
                           "WHERE id = $1", row["customer_id"])
        await conn.execute("WITH g AS (INSERT INTO ticket_groups (name, assign_mode) VALUES ('QC', 'shift') "
                           "RETURNING id), m AS (INSERT INTO ticket_group_members SELECT g.id, a.id FROM g, "
                           "(SELECT min(id) AS id FROM administrators) a RETURNING group_id, administrator_id) "
                           "INSERT INTO ticket_shifts (group_id, administrator_id, weekdays, starts, ends) "
                           "SELECT group_id, administrator_id, '{0,1,2}', '08:00', '16:00' FROM m")
        reply = await conn.fetchval("INSERT INTO ticket_canned_replies (name, body) VALUES ('QC', 'Hi "
                                    "{{ customer.name }}') RETURNING id")
        await conn.execute("INSERT INTO ticket_rules (name, condition, action) VALUES ('QC', $1, $2)",
                           {"status": "waiting_customer", "idle_hours": 168},
                           {"set_status": "resolved", "canned_reply_id": reply})
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM portal_accounts)"):  # the customer's portal, a notice
        await conn.execute("INSERT INTO portal_accounts (customer_id, login, password_hash) VALUES ($1, $2, $3)",
                           row["customer_id"], PORTAL_LOGIN, password_hash())
        await conn.execute("INSERT INTO messages (partner_id, customer_id, kind, channel, cause, subject, body, "
                           "status) SELECT partner_id, id, 'announcement', 'portal', 'qc-portal', 'News', 'Hello', "
                           "'sent' FROM customers WHERE id = $1", row["customer_id"])
        await conn.execute("INSERT INTO partner_branding (partner_id, logo_svg) SELECT partner_id, $2 FROM customers "
                           "WHERE id = $1 ON CONFLICT (partner_id) DO UPDATE SET logo_svg = EXCLUDED.logo_svg",
                           row["customer_id"], '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"/>')
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM payment_intents)"):  # its CPE, a card and an attempt
        await device(conn, customer_id=row["customer_id"], service_id=row["id"], serial="SN-qc", params=TR181_WIFI)
        card = await conn.fetchval(
            "INSERT INTO payment_methods (customer_id, gateway, token, brand, last4, exp_month, exp_year) "
            "VALUES ($1, 'stripe', 'pm_qc', 'visa', '4242', 12, 2030) RETURNING id", row["customer_id"])
        await conn.execute(
            "INSERT INTO payment_intents (customer_id, gateway, purpose, payment_method_id, amount, currency, "
            "idempotency_key) VALUES ($1, 'stripe', 'top_up', $2, 12, 'EUR', 'qc') RETURNING id",
            row["customer_id"], card)
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM partner_statements)"):  # a commission statement
        await conn.execute("INSERT INTO partner_statements (partner_id, number, period_start, period_end, currency, "
                           "total, issued_on) SELECT partner_id, 'CS-qc', '2026-01-01', '2026-02-01', 'EUR', 0, "
                           "'2026-02-01' FROM customers WHERE id = $1", row["customer_id"])
    portal_message = await conn.fetchval("SELECT min(id) FROM messages WHERE channel = 'portal'")
    device_id = await conn.fetchval("SELECT min(id) FROM acs_devices WHERE customer_id = $1", row["customer_id"])
    intent = await conn.fetchval("SELECT min(id) FROM payment_intents WHERE customer_id = $1", row["customer_id"])
    mandate = await conn.fetchval("SELECT min(id) FROM sepa_mandates WHERE customer_id = $1", row["customer_id"])
    return {"customers": row["customer_id"], "services": row["id"], "ip": row["ip"],
            "portal:messages": portal_message, "portal:equipment": device_id, "portal:online": intent,
            "portal:direct-debit": mandate}


async def _bill(conn: asyncpg.Connection, customer_id: int) -> None:
    """An invoice partly paid (a receipt, an allocation) and a billing run's preview: rows for the
    finance area's pages (the demo bills nobody by itself)."""
    today = dt.datetime.now(dt.UTC).date()
    c = await conn.fetchrow("SELECT c.partner_id, b.currency FROM customers c JOIN customer_billing b "
                            "ON b.customer_id = c.id WHERE c.id = $1", customer_id)
    assert c is not None
    async with conn.transaction():
        [invoice] = await ledger.issue(conn, [ledger.NewDocument(
            "invoice", customer_id, c["partner_id"], c["currency"], today, "manual",
            (ledger.NewLine("Installation", Decimal("10.00")),), due_on=today)])
        await ledger.record_payment(conn, customer_id, Decimal("4.00"), today, method="cash", document_id=invoice.id)
        await conn.execute("INSERT INTO billing_runs (billing_date, created_by) VALUES ($1, 'qc')", today)


async def _id(conn: asyncpg.Connection, data: dict[str, Any], segment: str) -> Any:
    table = TABLES.get(segment, segment.replace("-", "_"))
    if table in data:
        return data[table]
    exists = await conn.fetchval("SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' "
                                 "AND table_name = $1 AND column_name = 'id'", table)
    if not exists:
        return None
    data[table] = await conn.fetchval(f"SELECT id FROM {table} ORDER BY id LIMIT 1")  # table: from the catalog
    return data[table]


async def get_routes(app: web.Application, conn: asyncpg.Connection) -> dict[str, str]:
    """Every GET route -> the URL it is asked with (parameters and QUERIES filled)."""
    data = await _data(conn)
    out: dict[str, str] = {}
    unfilled = []
    for area in app[keys.AREAS]:
        for method, path, handler in area.routes:
            if method != "GET" or PERMISSIONS.get(handler) == SECOND_FACTOR:
                continue  # a verified session is sent on from the second factor's page
            url = PATHS.get(path, path)
            segments = url.split("/")
            for i, segment in enumerate(segments):
                if match := PARAM.fullmatch(segment):
                    table = segments[i - 1]  # a portal page's row: the portal customer's where the data has one
                    value = NAMED.get(match.group(1)) or (path.startswith("/portal/") and data.get(f"portal:{table}")) \
                        or await _id(conn, data, table)
                    if value is None:
                        unfilled.append(path)
                    url = url.replace(segment, str(value), 1)
            if path in QUERIES:
                url += "?" + QUERIES[path].format(**{k: quote(str(v)) for k, v in data.items()})
            out[f"GET {path}"] = url
    assert not unfilled, (f"no row to fill the path parameters of {unfilled}: name the table in TABLES or add a "
                          "row in _data()")
    return out


async def count(c: Counted, client: Client, url: str) -> tuple[int, list[str]]:
    """(status, the statements) of one GET, caches warm: asked once before, the session's seen_at
    fresh (no touch), the API key cache empty (one lookup)."""
    async with client.session.get(client.url + url, allow_redirects=False) as r:  # (bytes: a PDF is no text)
        await r.read()
    async with c.admin.pool.acquire() as conn:  # before the recorder is on: not counted
        await conn.execute("UPDATE admin_sessions SET seen_at = now()")
        await conn.execute("UPDATE portal_sessions SET seen_at = now()")
    c.admin.app[auth.KEY_CACHE].entries.clear()
    c.recorder.statements.clear()
    c.recorder.on = True
    try:
        async with client.session.get(client.url + url, allow_redirects=False) as r:
            await r.read()
            status = r.status
    finally:
        c.recorder.on = False
    return status, list(c.recorder.statements)


async def count_all(c: Counted, key: str, routes: dict[str, str]) -> dict[str, tuple[int, list[str]]]:
    """Each route's (status, statements), pages as the super administrator qc-super, the API with
    ``key``, the customer portal's as the data's customer (PORTAL_LOGIN)."""
    out = {}
    async with c.admin.client() as pages, c.admin.client(Authorization=f"Bearer {key}") as api, \
            await portal_login(c.admin, PORTAL_LOGIN) as portal:
        status, _, _ = await pages.login("qc-super")
        assert status == 200
        for route, url in routes.items():
            client = api if url.startswith("/api/") else portal if url.startswith("/portal/") else pages
            out[route] = await count(c, client, url)
    return out


async def logins(conn: asyncpg.Connection) -> str:
    """The super administrator qc-super, and a new API key of the super role (returned)."""
    if not await conn.fetchval("SELECT 1 FROM administrators WHERE login = 'qc-super'"):
        await make_admin(conn, "qc-super")
    key, prefix = tokens.new_api_key()
    await conn.execute("INSERT INTO api_keys (name, prefix, key_hash, role_id) "
                       "SELECT 'qc-' || $1, $1, $2, id FROM admin_roles WHERE builtin = 'super'",
                       prefix, tokens.digest(key))
    return key


def _grouped(statements: list[str]) -> list[str]:
    """The statements in order, each once, with how often it ran."""
    seen = Counter(statements)
    return [f"{seen[s]} x {s}" if seen[s] > 1 else s for s in dict.fromkeys(statements)]


def _baseline() -> dict[str, int]:
    if not BASELINE.exists():
        return {}
    data = json.loads(BASELINE.read_text())
    return {k: int(v) for k, v in data.items()}


async def test_every_get_route_holds_its_query_count(counted: Counted, conn: asyncpg.Connection) -> None:
    await load(conn, 30)
    key = await logins(conn)
    routes = await get_routes(counted.admin.app, conn)
    measured = await count_all(counted, key, routes)
    broken = {r: s for r, (s, _) in measured.items() if s >= 400}
    assert not broken, f"routes answering with an error (a count of nothing; give input in QUERIES?): {broken}"
    counts = {route: len(statements) for route, (_, statements) in measured.items()}
    if os.environ.get(UPDATE_ENV) == "1":
        BASELINE.write_text(json.dumps(dict(sorted(counts.items())), indent=2) + "\n")
        return
    baseline = _baseline()
    problems = []
    for route, n in sorted(counts.items()):
        if route not in baseline:
            problems.append(f"{route}: {n} statements, and no baseline in {BASELINE.name}")
        elif n > baseline[route]:
            statements = "\n      ".join(_grouped(measured[route][1]))
            problems.append(f"{route}: {n} statements, baseline {baseline[route]}:\n      {statements}")
    assert not problems, "\n  ".join(["more SQL statements than the baseline:", *problems, HOW_TO_UPDATE])


async def test_lists_do_not_query_per_row(counted: Counted, conn: asyncpg.Connection) -> None:
    """A list with 30 rows issues as many statements as with 5 (no statement per row)."""
    await load(conn, 5)
    key = await logins(conn)
    routes = {r: u for r, u in (await get_routes(counted.admin.app, conn)).items() if not PARAM.search(r)}
    few = await count_all(counted, key, routes)
    broken = {r: s for r, (s, _) in few.items() if s >= 400}
    assert not broken, f"routes answering with an error (a count of nothing; give input in QUERIES?): {broken}"
    await load(conn, 25)
    many = await count_all(counted, key, routes)
    rows = await conn.fetchval("SELECT count(*) FROM customers")
    assert rows == 30
    grew = {r: (len(few[r][1]), len(many[r][1]), many[r][1]) for r in routes if len(many[r][1]) != len(few[r][1])}
    assert not grew, "statements grew with the rows of the list (5 -> 30 customers): " + "; ".join(
        f"{r}: {a} -> {b} ({' | '.join(_grouped(s))})" for r, (a, b, s) in grew.items())
