#!/usr/bin/env python3
"""portal benchmark: every GET page of the customer portal over the 100,000-customer demo, against
issue 17's target (p95 under 100 ms per page).

What is measured, in one run (``bench/portal/run.sh``):

* **every GET portal route**, found as the admin finds them (``admin.app.areas()``, from the same
  tree the admin runs): those declared ``PORTAL_CUSTOMER`` (asked logged in as the benchmark's
  customer) and ``PORTAL_PUBLIC`` (asked without a session: the login and reset forms, the brand's
  stylesheet, logo and manifest, the static files). Left out, and said so: the pages waiting for
  a second factor, the redirects (``/portal/logout``: a POST anyway). A path parameter is filled
  with the customer's own row of the table the segment before it names (``documents/{id}``: its
  invoice, ``tickets/{id}``: its ticket, ``services/{id}``: its service, ``messages/{id}``, a
  ticket's attachment; ``static/{name}``: portal.css); a page another helper adds later with a
  parameter of its own is filled from a table of that name with a ``customer_id`` column, else
  left out and said so. Each route gets ``BENCH_WARMUP`` requests, then ``BENCH_REQUESTS``
  sequential ones, timed from sending to the last byte of the body: p50/p95/p99, the status, the
  size, and the admin's and PostgreSQL's CPU per request (/proc). A PDF (``.../pdf``: WeasyPrint
  renders the statement for each request) is a download, not a page: timed, held to no target.
* **the customer**: every demo customer gets a portal account here (one INSERT ... SELECT, one
  argon2 hash shared: the portal_accounts table is as long as customers), and every service what
  a running network adds (an open RADIUS session, a minute of traffic), as bench/admin adds it.
  The customer measured (one in the middle of the table, with a service) also gets a history a
  customer of some years has: ``BENCH_MONTHS`` monthly invoices issued through the ledger and as
  many payments, a credit note and an open proforma, ``BENCH_SESSIONS`` ended RADIUS sessions,
  traffic every hour of last month and this one (rolled up as flowcollector's rollup does),
  ``BENCH_TICKETS`` tickets opened through the portal's own form (with a file on the first), and
  ten portal messages. The demo itself is unchanged.

Set-up: an embedded PostgreSQL (``daemons.pgembed``, durable) in the work directory, ``lastmile db
init``, ``lastmile demo --customers N --seed 1`` (its time is reported), the secret key file, then
``python -m daemons.cli admin`` as its own process, pinned to the first CPU of this process's
affinity (as bench/admin pins it); the benchmark runs on the others. No other portal or ISP
billing system runs here, so there is no peer to compare with: the figures stand against the
target alone.

Results: a table on stdout, ``results.json`` in the work directory, and
``bench/results/portal-<date>[-quick].md`` and ``.json``.

Settings (environment): BENCH_QUICK=1 (5,000 customers, 50 requests per route), BENCH_CUSTOMERS=100000,
BENCH_REQUESTS=200, BENCH_WARMUP=10, BENCH_ROUTE_SECONDS=8 (a route's requests stop after it, at 20
at least), BENCH_MONTHS=24, BENCH_SESSIONS=300, BENCH_TICKETS=12, BENCH_SEED=1,
BENCH_RESULTS=bench/results, BENCH_LOCK=/tmp/bench.lock, BENCH_LOCK_WAIT=1800 (s), BENCH_WORKDIR
(run.sh makes one).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import asyncpg
import uvloop

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "radius"))  # benchkit, procstat

import benchkit  # noqa: E402
import procstat  # noqa: E402
from benchkit import percentile  # noqa: E402

from admin import app as admin_app  # noqa: E402
from admin.auth import passwords  # noqa: E402
from admin.billing import ledger  # noqa: E402
from admin.web import PERMISSIONS, PORTAL_CUSTOMER, PORTAL_PUBLIC  # noqa: E402
from daemons import db  # noqa: E402
from daemons.config import SecretsSettings  # noqa: E402
from daemons.pgembed import EmbeddedPostgres  # noqa: E402
from daemons.secrets import Keyring  # noqa: E402
from flowcollector import store as flows  # noqa: E402

PYTHON = ROOT / ".venv" / "bin" / "python"
LASTMILE = ROOT / ".venv" / "bin" / "lastmile"
PASSWORD = "bench: portal horse battery"
TARGET_MS = 100.0
PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
_CSRF = re.compile(r'name="_csrf" value="([^"]*)"')
LOGO = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><circle cx="32" cy="32" r="28" '
        'fill="#0a7d4f"/></svg>')
# A path's value where it is no row's id.
NAMES = {"/portal/static/{name}": "portal.css", "/portal/static/vendor/{name}": "uPlot-1.6.32.min.css"}
# What a page needs in its query to show the customer's rows (as test_query_counts.py asks it).
QUERIES = {"/portal/usage/data": "service={service}&range=days", "/portal/usage": "service={service}"}
# Asked without a session, although public: they answer a logged-in customer with a redirect.
LOGGED_OUT = "logged out"
# What runs on every service, so that the tables a page reads are as long as a network makes them.
ACTIVITY = """
INSERT INTO radius_session_index (acct_unique_id, started_at)
SELECT 'bench-' || s.id, now() - interval '1 hour' * (s.id % 5) FROM services s;
INSERT INTO radius_sessions (acct_unique_id, started_at, service_id, nas_id, username, acct_session_id, nas_address,
                             framed_ip, updated_at, input_octets, output_octets)
SELECT 'bench-' || s.id, now() - interval '1 hour' * (s.id % 5), s.id, n.id, s.login, to_hex(s.id),
       host(n.address)::inet, s.ipv4, now(), 1000 * s.id, 5000 * s.id
FROM services s CROSS JOIN (SELECT id, address FROM nas ORDER BY id LIMIT 1) n;
INSERT INTO traffic_usage (service_id, minute, bytes_down, bytes_up, packets_down, packets_up)
SELECT s.id, greatest(date_trunc('day', now()), date_trunc('minute', now()) - interval '5 minutes'), 10000, 1000, 10, 5
FROM services s;
"""


def log(text: str) -> None:
    print(f"bench/portal: {text}", file=sys.stderr, flush=True)


class Failed(Exception):
    """The run cannot go on (the admin exited, a set-up step failed): said in the report."""


@dataclass(frozen=True, slots=True)
class Settings:
    quick: bool
    customers: int
    requests: int
    warmup: int
    route_seconds: float
    months: int
    sessions: int
    tickets: int
    seed: int
    results: Path
    lock: Path
    lock_wait: float
    work: Path

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        quick = env("BENCH_QUICK", "0") not in ("", "0")
        work = env("BENCH_WORKDIR")
        if not work:
            raise SystemExit("bench/portal: BENCH_WORKDIR is not set (run bench/portal/run.sh)")
        return cls(
            quick=quick,
            customers=int(env("BENCH_CUSTOMERS", "5000" if quick else "100000")),
            requests=int(env("BENCH_REQUESTS", "50" if quick else "200")),
            warmup=int(env("BENCH_WARMUP", "5" if quick else "10")),
            route_seconds=float(env("BENCH_ROUTE_SECONDS", "8")),
            months=int(env("BENCH_MONTHS", "24")),
            sessions=int(env("BENCH_SESSIONS", "300")),
            tickets=int(env("BENCH_TICKETS", "12")),
            seed=int(env("BENCH_SEED", "1")),
            results=Path(env("BENCH_RESULTS", str(ROOT / "bench" / "results"))),
            lock=Path(env("BENCH_LOCK", "/tmp/bench.lock")),
            lock_wait=float(env("BENCH_LOCK_WAIT", "1800")),
            work=Path(work),
        )


@dataclass(slots=True)
class Timing:
    """One route, asked ``len(ms)`` times in sequence."""

    route: str  # the route's template
    access: str  # PORTAL_CUSTOMER or PORTAL_PUBLIC
    url: str
    ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    size: int = 0
    admin_cpu_ms: float = 0.0
    pg_cpu_ms: float = 0.0
    capped: bool = False
    error: str = ""

    def pct(self, p: float) -> float:
        return percentile(self.ms, p)

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.statuses) and set(self.statuses) == {200}

    @property
    def download(self) -> bool:
        """A PDF made for the request (WeasyPrint): a file to save, not a page; timed, no target."""
        return self.route.endswith("/pdf")

    @property
    def passed(self) -> bool:
        return self.ok and (self.download or self.pct(95) < TARGET_MS)


class Bench:
    def __init__(self, s: Settings) -> None:
        self.s = s
        self.work = s.work
        self.pids = s.work / "pids"
        self.started = datetime_now()
        self.locked = False
        self.lock_wait_s = 0.0
        self.pg: EmbeddedPostgres | None = None
        self.pg_url = ""
        self.postmaster = 0
        self.key_file = s.work / "secret.key"
        self.config_file = s.work / "lastmile.toml"
        self.port = benchkit.free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.load_s = 0.0
        self.prepare_s = 0.0
        self.customer: dict[str, Any] = {}
        self.ids: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.timings: list[Timing] = []
        self.left_out: list[str] = []
        self.problems: list[str] = []
        self.rss_kb: int | None = None

    # -- processes ------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
        env.update({"LASTMILE_DATABASE__URL": self.pg_url, "LASTMILE_SECRETS__KEY_FILE": str(self.key_file),
                    "LASTMILE_CONFIG": str(self.config_file), "LASTMILE_LOG__FORMAT": "json",
                    "LASTMILE_ADMIN__PORT": str(self.port)})
        return env

    def register(self, pid: int) -> None:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return
        with self.pids.open("a") as f:
            f.write(f"{pid}\t{cmdline.strip()}\n")

    def lastmile(self, *args: str, timeout: float = 600) -> None:
        out = subprocess.run([str(LASTMILE), *args], env=self.env(), cwd=self.work, capture_output=True, text=True,
                             timeout=timeout, check=False)
        if out.returncode != 0:
            raise Failed(f"lastmile {' '.join(args)} failed ({out.returncode}): {(out.stderr or out.stdout)[-800:]}")

    def start_database(self) -> None:
        self.pg = EmbeddedPostgres(self.work / "pg", benchkit.free_port(), durable=True)
        self.pg_url = self.pg.start()
        self.postmaster = int((self.work / "pg" / "postmaster.pid").read_text().split("\n", 1)[0])
        self.register(self.postmaster)
        self.config_file.write_text("# bench/portal: every setting from the environment or its default\n")
        Keyring.load(SecretsSettings(key_file=str(self.key_file)), create=True)
        self.lastmile("db", "init", timeout=300)
        t = time.monotonic()
        self.lastmile("demo", "--customers", str(self.s.customers), "--seed", str(self.s.seed), timeout=1800)
        self.load_s = time.monotonic() - t
        log(f"demo: {self.s.customers:,} customers loaded in {self.load_s:.1f} s")

    def start_admin(self) -> None:
        cpus = sorted(os.sched_getaffinity(0))
        pin = cpus[0] if len(cpus) >= 2 else None
        if pin is None:
            self.problems.append("one CPU only: the admin and the benchmark share it")

        def preexec() -> None:
            if pin is not None:
                os.sched_setaffinity(0, {pin})

        with (self.work / "admin.log").open("wb") as out:
            self.proc = subprocess.Popen([str(PYTHON), "-m", "daemons.cli", "admin"], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, env=self.env(), cwd=self.work,
                                         start_new_session=True, preexec_fn=preexec)  # noqa: PLW1509
        self.register(self.proc.pid)
        if pin is not None:
            os.sched_setaffinity(0, set(cpus[1:]))

    def alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = (self.work / "admin.log").read_text(errors="replace")[-1500:]
            raise Failed(f"the admin exited with code {self.proc.returncode}: {tail}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_admin(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                self.alive()
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with http.get(self.base + "/portal/login", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise Failed(f"the admin did not answer within {timeout:.0f} s")
                await asyncio.sleep(0.1)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.pg is not None:
            with contextlib.suppress(Exception):
                self.pg.stop()

    # -- the customer ---------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Portal accounts for every customer, activity for every service, and the measured
        customer's history (see the module docstring)."""
        t = time.monotonic()
        conn = await db.connect(self.pg_url)
        try:
            await conn.execute(
                "INSERT INTO portal_accounts (customer_id, login, password_hash) "
                "SELECT id, lower(number), $1 FROM customers", passwords.hash_password(PASSWORD))
            await conn.execute(ACTIVITY)
            row = await conn.fetchrow(
                "SELECT c.id, c.partner_id, c.number, a.login, s.id AS service, s.login AS service_login "
                "FROM customers c JOIN portal_accounts a ON a.customer_id = c.id "
                "JOIN services s ON s.customer_id = c.id WHERE c.id >= $1 ORDER BY c.id, s.id LIMIT 1",
                self.s.customers // 2)
            if row is None:
                raise Failed("no demo customer with a service")
            self.customer = dict(row)
            await conn.execute("INSERT INTO partner_branding (partner_id, logo_svg) VALUES ($1, $2) "
                               "ON CONFLICT (partner_id) DO UPDATE SET logo_svg = EXCLUDED.logo_svg",
                               row["partner_id"], LOGO)
            await self.history(conn, row["id"], row["partner_id"], row["service"], row["service_login"])
            for table in ("customers", "services", "portal_accounts", "radius_sessions", "traffic_usage",
                          "documents", "tickets"):
                self.counts[table] = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
            await conn.execute("VACUUM (ANALYZE)")
        finally:
            await conn.close()
        self.prepare_s = time.monotonic() - t
        log(f"portal accounts, activity and the customer's history in {self.prepare_s:.1f} s")

    async def history(self, conn: asyncpg.Connection, customer: int, partner: int, service: int,
                      login: str) -> None:
        today = dt.datetime.now(dt.UTC).date()
        first = None
        for k in range(self.s.months, 0, -1):
            on = today - dt.timedelta(days=30 * k)
            async with conn.transaction():
                issued = await ledger.issue(conn, [ledger.NewDocument(
                    kind="invoice", customer_id=customer, partner_id=partner, currency="EUR", issued_on=on,
                    origin="manual", due_on=on + dt.timedelta(days=14), by="bench",
                    lines=(ledger.NewLine("Fibre 100", Decimal("29.00"), service_id=service),
                           ledger.NewLine("Router rental", Decimal("3.50"))))])
                await ledger.record_payment(conn, customer, Decimal("32.50"), on + dt.timedelta(days=5),
                                            method="bank transfer", by="bench")
            first = first or issued[0].id
        async with conn.transaction():
            assert first is not None
            await ledger.credit_note(conn, first, "outage", "bench", Decimal("4.00"))
            await ledger.issue(conn, [ledger.NewDocument(
                kind="proforma", customer_id=customer, partner_id=partner, currency="EUR", issued_on=today,
                origin="manual", due_on=today + dt.timedelta(days=14), by="bench",
                lines=(ledger.NewLine("Installation", Decimal("49.00")),))])
        self.ids["documents"] = int(await conn.fetchval(
            "SELECT max(id) FROM documents WHERE customer_id = $1 AND kind = 'invoice'", customer))
        now = dt.datetime.now(dt.UTC)
        rows = []
        for k in range(self.s.sessions):
            started = now - dt.timedelta(hours=3 * k + 2)
            rows.append((f"bench-{service}-{k}", started, started + dt.timedelta(hours=2), 7200,
                         "Lost-Carrier" if k % 3 else "User-Request", f"100.96.{k // 250}.{k % 250 + 1}",
                         10_000_000 * (k + 1), 1_000_000 * (k + 1), service, login))
        await conn.executemany("INSERT INTO radius_session_index VALUES ($1, $2)", [(r[0], r[1]) for r in rows])
        await conn.executemany(
            "INSERT INTO radius_sessions (acct_unique_id, started_at, stopped_at, session_time_s, terminate_cause, "
            "framed_ip, output_octets, input_octets, service_id, username, acct_session_id, updated_at) "
            "VALUES ($1, $2, $3, $4, $5, $6::text::inet, $7, $8, $9, $10, $1, now())", rows)
        # traffic every hour from the first of last month to now, rolled up as flowcollector's rollup does
        start = (now.replace(day=1) - dt.timedelta(days=1)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        usage: dict[tuple[int, int], list[int]] = {}
        at = start
        while at < now:
            usage[(service, int(at.timestamp()))] = [50_000_000 + at.hour * 1_000_000, 5_000_000, 40_000, 20_000]
            at += dt.timedelta(hours=1)
        async with conn.transaction():
            await flows.write_usage(conn, usage, {})
        await conn.execute("SELECT lastmile_rollup_traffic($1)", start)
        for k in range(10):
            await conn.execute(
                "INSERT INTO messages (partner_id, customer_id, kind, channel, cause, subject, body, status, sent_at) "
                "VALUES ($1, $2, 'announcement', 'portal', $3, $4, 'Hello from the bench', 'sent', now())",
                partner, customer, f"bench:{k}", f"News {k}")
        self.ids["messages"] = int(await conn.fetchval("SELECT max(id) FROM messages WHERE customer_id = $1",
                                                       customer))
        self.ids["services"] = service

    async def log_in(self, http: aiohttp.ClientSession) -> str:
        """Log the customer in through the form; the session's CSRF token."""
        async with http.get(self.base + "/portal/login") as r:
            m = _CSRF.search(await r.text())
        if m is None:
            raise Failed("no _csrf field in /portal/login")
        async with http.post(self.base + "/portal/login", allow_redirects=False, data={
                "login": self.customer["login"], "password": PASSWORD, "_csrf": m.group(1)}) as r:
            if r.status != 302:
                raise Failed(f"the portal login answered {r.status}: {(await r.text())[:300]}")
        async with http.get(self.base + "/portal/security") as r:
            m = _CSRF.search(await r.text())
        if m is None:
            raise Failed("no _csrf on /portal/security after logging in")
        return m.group(1)

    async def open_tickets(self, http: aiohttp.ClientSession, csrf: str) -> None:
        """The customer's tickets, through the portal's own form (the first with a file)."""
        for k in range(self.s.tickets):
            form = aiohttp.FormData()
            for key, value in {"_csrf": csrf, "subject": f"Internet drops in the evening ({k})", "type": "incident",
                               "priority": "medium", "body": "It drops every evening at eight.\n" * 5}.items():
                form.add_field(key, value)
            if k == 0:
                form.add_field("files", b"line 1\nline 2\n", filename="router.log", content_type="text/plain")
            async with http.post(self.base + "/portal/tickets/new", data=form, allow_redirects=False) as r:
                if r.status not in (302, 303):
                    raise Failed(f"opening a ticket answered {r.status}: {(await r.text())[:300]}")
        conn = await db.connect(self.pg_url)
        try:
            ticket = await conn.fetchval("SELECT min(id) FROM tickets WHERE customer_id = $1", self.customer["id"])
            self.ids["tickets"] = int(ticket)
            aid = await conn.fetchval(
                "SELECT a.id FROM ticket_attachments a JOIN ticket_messages m ON m.id = a.message_id "
                "WHERE m.ticket_id = $1 ORDER BY a.id LIMIT 1", ticket)
            if aid is not None:
                self.ids["attachments"] = int(aid)
            self.counts["tickets"] = int(await conn.fetchval("SELECT count(*) FROM tickets"))
        finally:
            await conn.close()

    # -- the routes -----------------------------------------------------------------------------

    async def value_for(self, segment: str) -> int | None:
        """The customer's row for a path parameter after ``segment`` (``tickets`` in /tickets/{id})."""
        table = segment.replace("-", "_")
        if table in self.ids:
            return self.ids[table]
        conn = await db.connect(self.pg_url)
        try:
            has = await conn.fetchval(
                "SELECT count(*) = 2 FROM information_schema.columns WHERE table_schema = 'public' "
                "AND table_name = $1 AND column_name IN ('id', 'customer_id')", table)
            if not has:
                return None
            value = await conn.fetchval(f"SELECT min(id) FROM {table} WHERE customer_id = $1",  # table: the catalog's
                                        self.customer["id"])
        finally:
            await conn.close()
        if value is not None:
            self.ids[table] = int(value)
        return None if value is None else int(value)

    async def routes(self) -> list[Timing]:
        out = []
        seen = set()
        for area in admin_app.areas():
            for method, path, handler in area.routes:
                if method != "GET" or not path.startswith("/portal") or path in seen:
                    continue
                seen.add(path)
                access = PERMISSIONS.get(handler)
                if access not in (PORTAL_CUSTOMER, PORTAL_PUBLIC):
                    self.left_out.append(f"`{path}` ({access}: a step of the login, not a page of its own)")
                    continue
                url = path
                missing = []
                segments = path.split("/")
                for i, seg in enumerate(segments):
                    m = PARAM.fullmatch(seg)
                    if m is None:
                        continue
                    value: object = NAMES.get(path) if m.group(1) == "name" else None
                    if value is None:
                        value = self.ids.get("attachments") if m.group(1) == "aid" else \
                            await self.value_for(segments[i - 1])
                    if value is None:
                        missing.append(m.group(1))
                        continue
                    url = url.replace(seg, str(value), 1)
                if missing:
                    self.left_out.append(f"`{path}` (no row of the customer for {', '.join(missing)})")
                    continue
                if path in QUERIES:
                    url += "?" + QUERIES[path].format(service=self.ids["services"])
                out.append(Timing(path, LOGGED_OUT if access == PORTAL_PUBLIC else access, url))
        return out

    def snap(self) -> tuple[float, float]:
        assert self.proc is not None
        return procstat.cpu_seconds(self.proc.pid), procstat.cpu_seconds(self.postmaster)

    async def measure(self, http: aiohttp.ClientSession, t: Timing) -> None:
        async def one() -> float:
            started = time.perf_counter()
            async with http.get(self.base + t.url, allow_redirects=False) as r:
                body = await r.read()
                t.statuses[r.status] = t.statuses.get(r.status, 0) + 1
                t.size = len(body)
            return (time.perf_counter() - started) * 1000

        try:
            for _ in range(self.s.warmup):
                await one()
            t.statuses.clear()
            a0, p0 = self.snap()
            deadline = time.monotonic() + self.s.route_seconds
            for i in range(self.s.requests):
                t.ms.append(await one())
                if i >= 20 and time.monotonic() > deadline:
                    t.capped = True
                    break
            a1, p1 = self.snap()
            t.admin_cpu_ms = (a1 - a0) * 1000 / len(t.ms)
            t.pg_cpu_ms = (p1 - p0) * 1000 / len(t.ms)
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            t.error = f"{type(e).__name__}: {e}"
            self.alive()

    async def run(self) -> None:
        self.start_database()
        await self.prepare()
        self.start_admin()
        await self.wait_admin()
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as customer, aiohttp.ClientSession() as anonymous:
            csrf = await self.log_in(customer)
            await self.open_tickets(customer, csrf)
            # the customer's session is seen now, so no request of the run writes its seen_at but
            # the one a minute (TOUCH_EVERY_S), as a customer reading page after page does
            self.timings = await self.routes()
            log(f"{len(self.timings)} portal routes, {self.s.requests} requests each")
            for t in self.timings:
                await self.measure(anonymous if t.access == LOGGED_OUT else customer, t)
                log(f"{t.route}: p50 {t.pct(50):.1f} ms, p95 {t.pct(95):.1f} ms, {t.statuses}")
        assert self.proc is not None
        self.rss_kb = benchkit.status_kb(self.proc.pid, "VmRSS")

    # -- the report -----------------------------------------------------------------------------

    def report(self) -> list[str]:
        s = self.s
        lines = [f"# Portal benchmark, {self.started:%Y-%m-%d %H:%M} UTC{' (quick)' if s.quick else ''}", "",
                 f"{s.customers:,} demo customers (loaded in {self.load_s:.0f} s; portal accounts, activity and "
                 f"the customer's history in {self.prepare_s:.0f} s), {s.requests} sequential requests per route "
                 f"after {s.warmup} to warm up; the admin pinned to one core. Machine: {benchkit.cpu_model()}, "
                 f"{os.cpu_count()} CPUs, Python {platform.python_version()}. Rows: "
                 + ", ".join(f"{k} {v:,}" for k, v in self.counts.items()) + ".", "",
                 f"Target (issue 17): p95 < {TARGET_MS:.0f} ms for every page (a PDF download, made for the "
                 "request, is timed but has none). No other portal runs here to compare with.", "",
                 "| route | asked | p50 ms | p95 ms | p99 ms | admin CPU ms | PostgreSQL CPU ms | bytes | status | "
                 "target |",
                 "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
        for t in self.timings:
            verdict = ("no target: a PDF download" if t.ok else "FAIL") if t.download else \
                "pass" if t.passed else "FAIL"
            status = t.error or ", ".join(f"{k}×{v}" for k, v in sorted(t.statuses.items()))
            lines.append(f"| `{t.route}` | {'customer' if t.access == PORTAL_CUSTOMER else 'logged out'} | "
                         f"{t.pct(50):.1f} | {t.pct(95):.1f} | {t.pct(99):.1f} | {t.admin_cpu_ms:.1f} | "
                         f"{t.pg_cpu_ms:.1f} | {t.size:,} | {status}{' (capped)' if t.capped else ''} | {verdict} |")
        if self.left_out:
            lines += ["", "Left out: " + "; ".join(self.left_out) + "."]
        if self.rss_kb:
            lines += ["", f"The admin's memory after the run: {self.rss_kb / 1024:.0f} MB RSS."]
        if self.problems:
            lines += ["", "Problems:"] + [f"- {p}" for p in self.problems]
        return lines

    def results_json(self) -> dict[str, Any]:
        settings = {k: str(v) for k, v in dataclasses.asdict(self.s).items()}
        return {"started": self.started.isoformat(), "settings": settings,
                "load_s": self.load_s, "prepare_s": self.prepare_s, "counts": self.counts,
                "routes": [{"route": t.route, "access": t.access, "url": t.url, "requests": len(t.ms),
                            "p50_ms": t.pct(50), "p95_ms": t.pct(95), "p99_ms": t.pct(99),
                            "admin_cpu_ms": t.admin_cpu_ms, "pg_cpu_ms": t.pg_cpu_ms, "statuses": t.statuses,
                            "bytes": t.size, "passed": t.passed, "error": t.error} for t in self.timings],
                "left_out": self.left_out, "problems": self.problems, "locked": self.locked}

    def write(self, lines: list[str]) -> Path:
        data = json.dumps(self.results_json(), indent=1, default=str)
        (self.work / "results.json").write_text(data)
        self.s.results.mkdir(parents=True, exist_ok=True)
        base = self.s.results / f"portal-{self.started:%Y%m%d-%H%M}{'-quick' if self.s.quick else ''}"
        base.with_suffix(".md").write_text("\n".join(lines) + "\n")
        base.with_suffix(".json").write_text(data)
        return base


def datetime_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def run_all(bench: Bench) -> None:
    await bench.run()


def take_lock(bench: Bench, f: TextIO) -> None:
    bench.locked, bench.lock_wait_s = benchkit.take_lock(f, bench.s.lock, bench.s.lock_wait, log)


def main() -> int:
    s = Settings.from_env()
    bench = Bench(s)
    s.lock.touch(exist_ok=True)
    with benchkit.terminate_on_sigterm(), s.lock.open("a") as lock:
        try:
            take_lock(bench, lock)
            uvloop.run(run_all(bench))
        except KeyboardInterrupt:
            log("interrupted: stopping everything it started")
            bench.cleanup()
            return 130
        except Failed as e:
            log(str(e))
            bench.problems.append(str(e))
        finally:
            bench.cleanup()
    lines = bench.report()
    print("\n".join(lines), flush=True)
    base = bench.write(lines)
    log(f"results: {base}.md, {base}.json, {s.work / 'results.json'}")
    return 1 if bench.problems or not all(t.passed for t in bench.timings) else 0


if __name__ == "__main__":
    sys.exit(main())
