#!/usr/bin/env python3
"""notifications benchmark: reminders scheduled, mail delivered, templates rendered, the events
outbox dispatched and webhooks delivered, against issue 14's targets, in one run
(``bench/notify/run.sh``).

Set-up: an embedded PostgreSQL (``daemons.pgembed``, durable) in the work directory, the schema,
``BENCH_CUSTOMERS`` demo customers (``daemons.demo``), every one recurring (billed on the 1st,
due in 15 days) with its services started on 2026-11-01, and the billing run of 2026-11-01: one
unpaid invoice each. Reminder #1 (3 days after the due date, at 09:00 UTC, by email) is on, the
mail server is a local SMTP server (``sink.py``, aiosmtpd in a process of its own).

(a) **scheduling the reminders**: ``scheduler.run_day`` at 2026-11-19 09:30 UTC, when reminder #1
    of every customer is due: target < 10 s for 100,000 customers;
(b) **delivery**: ``BENCH_MESSAGES`` of those reminders sent by ``deliver.deliver`` (one worker:
    claim, check the cause, load the contexts, render, send over one SMTP connection, mark each),
    without attachments (a PDF's first rendering is billing's cost, measured there): target
    >= 300 messages/s;
(c) **a template render**: every kind's built-in email, SMS and portal template, p50 and p95 of
    ``BENCH_RENDERS`` renders each: target < 2 ms;
(d) **the outbox**: what the triggers cost (the invoices' events written again, in a
    transaction rolled back), and the dispatch of every event the load and the run wrote;
(e) **webhooks**: ``BENCH_HOOKS`` events to one subscribed webhook, a local HTTP receiver
    (``sink.py``), signed and POSTed by ``webhooks.deliver``.

No peer runs here: Splynx and UISP are closed and hosted; what people glue together instead (a
cron script over a mail relay) has no schedule rules to compare. The figures stand against the
targets. The run holds ``/tmp/bench.lock``; results: a table on stdout and ``results.json`` in
the work directory.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import structlog
from benchkit import free_port, on_embedded_postgres, percentile

from admin.billing import run
from admin.notifications import deliver, dispatch, samples, scheduler, templates, webhooks
from admin.notifications.model import TEMPLATE_KINDS
from daemons import db, demo
from daemons.secrets import Keyring

CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "100000"))
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "10000"))
RENDERS = int(os.environ.get("BENCH_RENDERS", "500"))
HOOKS = int(os.environ.get("BENCH_HOOKS", "5000"))
WORK = Path(os.environ.get("BENCH_WORKDIR", "/tmp/lastmile-bench-notify"))
HERE = Path(__file__).resolve().parent
UTC = dt.UTC
REMINDER_DAY = dt.datetime(2026, 11, 19, 9, 30, tzinfo=UTC)


def say(text: str) -> None:
    print(f"[bench notify] {text}", file=sys.stderr, flush=True)


class Sink:
    """sink.py in a process of its own, registered with the driver (bench/driver.sh reaps it)."""

    def __init__(self, kind: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, str(HERE / "sink.py"), kind, str(self.port)],
                                     stdout=subprocess.PIPE, text=True)
        cmdline = Path(f"/proc/{self.proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        with (WORK / "pids").open("a") as f:
            f.write(f"{self.proc.pid}\t{cmdline}\n")
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"sink {kind} did not start")

    def stop(self) -> int:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=30)
        return int(out.split()[-1])


async def prepare(conn: asyncpg.Connection, smtp_port: int) -> None:
    await conn.execute("UPDATE customers SET status = 'active', email = coalesce(email, 'c' || id || '@example.net')")
    await conn.execute("UPDATE services SET status = 'active', start_date = DATE '2026-11-01'")
    await conn.execute("UPDATE customer_billing SET billing_type = 'recurring', billing_day = 1, due_days = 15, "
                       "months_in_advance = 1, block_after_due_days = NULL")
    await conn.execute(
        "INSERT INTO notification_settings (partner_id, timezone, smtp_host, smtp_port, smtp_security, mail_from, "
        "mail_per_minute) VALUES (NULL, 'UTC', '127.0.0.1', $1, 'none', 'Bench ISP <billing@isp.example>', 1000000)",
        smtp_port)
    await conn.execute("INSERT INTO notice_rules (partner_id, kind, enabled, channels, send_hour, day, attach) "
                       "VALUES (NULL, 'reminder_1', true, '{email}', 9, 3, false)")
    await conn.execute("ANALYZE")


async def timed(what: str, results: dict[str, object], work: object) -> object:
    say(f"{what} ...")
    t = time.perf_counter()
    out = await work  # type: ignore[misc]
    seconds = time.perf_counter() - t
    results[what] = {"seconds": round(seconds, 3), "outcome": str(out)}
    say(f"{what}: {seconds:.2f} s ({out})")
    return out


def render_times() -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for channel in ("email", "sms", "portal"):
        times: list[float] = []
        for kind in TEMPLATE_KINDS:
            context = samples.variants(kind)[0]
            templates.render(kind, channel, context)  # compiled once, as the worker keeps it
            for _ in range(RENDERS):
                t = time.perf_counter()
                templates.render(kind, channel, context)
                times.append(time.perf_counter() - t)
        out[channel] = {"p50 ms": round(percentile(times, 50) * 1000, 3),
                        "p95 ms": round(percentile(times, 95) * 1000, 3), "renders": len(times)}
    return out


async def drain_outbox(conn: asyncpg.Connection) -> int:
    total = 0
    while (n := await dispatch.dispatch(conn, limit=5000, now=REMINDER_DAY)) > 0:
        total += n
    return total


async def hooks(pool: asyncpg.Pool, conn: asyncpg.Connection, results: dict[str, object]) -> None:
    sink = Sink("http")
    keyring = Keyring(secrets.token_bytes(32))
    await conn.execute("INSERT INTO webhooks (url, events, secret) VALUES ($1, '{bench.*}', $2)",
                       f"http://127.0.0.1:{sink.port}/hook", keyring.seal("whsec-bench", "webhooks.secret"))
    await conn.execute("INSERT INTO events (subject, name, payload) SELECT 'bench', 'ping', "
                       "jsonb_build_object('n', n, 'text', repeat('x', 200)) FROM generate_series(1, $1) n", HOOKS)
    t = time.perf_counter()
    fanned = await drain_outbox(conn)
    fan_s = time.perf_counter() - t
    settings = webhooks.DeliverySettings(keyring)
    t = time.perf_counter()
    delivered = 0
    while delivered < HOOKS:
        done = await webhooks.deliver(pool, settings, now=lambda: dt.datetime.now(UTC))
        if not done.attempts:
            break
        delivered += done.delivered
    seconds = time.perf_counter() - t
    received = sink.stop()
    results["webhooks"] = {"events": fanned, "fan-out seconds": round(fan_s, 3), "delivered": delivered,
                           "received": received, "seconds": round(seconds, 3),
                           "per second": round(delivered / seconds, 1)}
    say(f"webhooks: {delivered} delivered in {seconds:.2f} s ({delivered / seconds:.0f}/s), receiver got {received}")


async def measure(url: str) -> dict[str, object]:
    results: dict[str, object] = {"customers": CUSTOMERS}
    conn = await db.connect(url)
    await db.apply_schema(conn)
    say(f"loading {CUSTOMERS} demo customers ...")
    t = time.perf_counter()
    await demo.load(conn, CUSTOMERS, seed=1)
    smtp = Sink("smtp")
    await prepare(conn, smtp.port)
    say(f"loaded in {time.perf_counter() - t:.1f} s")
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4, init=db.init_connection)
    await timed("billing run 2026-11-01", results, run.run(pool, dt.date(2026, 11, 1), by="bench"))
    await conn.execute("ANALYZE")

    # (d) the outbox: the triggers' work for the run's invoices, written again and rolled back
    invoices = await conn.fetchval("SELECT count(*) FROM documents WHERE kind = 'invoice'")
    t = time.perf_counter()
    tr = conn.transaction()
    await tr.start()
    await conn.execute(
        "INSERT INTO events (subject, name, partner_id, payload) SELECT n.kind, 'created', n.partner_id, "
        "jsonb_build_object('id', n.id, 'number', n.number, 'customer_id', n.customer_id, 'issued_on', n.issued_on, "
        "'due_on', n.due_on, 'currency', n.currency, 'total', n.total, 'origin', n.origin, 'related_id', n.related_id) "
        "FROM documents n WHERE n.kind = 'invoice' ORDER BY n.id")
    await tr.rollback()
    results["outbox writes"] = {"invoices": invoices, "seconds": round(time.perf_counter() - t, 3)}
    pending = await conn.fetchval("SELECT count(*) FROM events WHERE dispatched_at IS NULL")
    t = time.perf_counter()
    dispatched = await drain_outbox(conn)
    seconds = time.perf_counter() - t
    results["dispatch"] = {"pending": pending, "dispatched": dispatched, "seconds": round(seconds, 3),
                           "per second": round(dispatched / seconds, 1)}
    say(f"dispatch: {dispatched} events in {seconds:.2f} s")

    # (a) scheduling
    scheduled = await timed("schedule reminders", results, scheduler.run_day(conn, REMINDER_DAY))
    # (b) delivery: MESSAGES of them due, the rest later
    await conn.execute("UPDATE messages SET send_at = '2030-01-01' WHERE id NOT IN "
                       "(SELECT id FROM messages ORDER BY id LIMIT $1)", MESSAGES)
    await conn.execute("ANALYZE messages")
    t = time.perf_counter()
    summary = await deliver.deliver(pool, None, seconds=900)
    seconds = time.perf_counter() - t
    received = smtp.stop()
    sent = await conn.fetchval("SELECT count(*) FROM messages WHERE status = 'sent'")
    results["delivery"] = {"messages": MESSAGES, "sent": sent, "received": received, "seconds": round(seconds, 3),
                           "per second": round(sent / seconds, 1), "summary": str(summary),
                           "scheduled": str(scheduled)}
    say(f"delivery: {sent} sent in {seconds:.2f} s ({sent / seconds:.0f}/s); the SMTP server accepted {received}")

    results["render"] = render_times()
    say(f"render: {results['render']}")
    await hooks(pool, conn, results)
    await pool.close()
    await conn.close()
    return results


def report(results: dict[str, object]) -> None:
    r: dict[str, dict[str, object]] = results  # type: ignore[assignment]
    print(f"\nnotifications benchmark, {CUSTOMERS:,} customers\n")
    rows = [
        ("schedule reminders (s)", r["schedule reminders"]["seconds"], 10.0, "below"),
        ("delivery (messages/s)", r["delivery"]["per second"], 300.0, "above"),
        ("render email p95 (ms)", r["render"]["email"]["p95 ms"], 2.0, "below"),  # type: ignore[index]
        ("render sms p95 (ms)", r["render"]["sms"]["p95 ms"], 2.0, "below"),  # type: ignore[index]
        ("webhooks (deliveries/s)", r["webhooks"]["per second"], None, ""),
        ("dispatch (events/s)", r["dispatch"]["per second"], None, ""),
    ]
    print(f"{'measure':28} {'value':>10} {'target':>8} {'ratio':>7}")
    for what, value, target, way in rows:
        v = float(value)
        ratio = "" if target is None else f"{(target / v if way == 'below' else v / target):.1f}x"
        print(f"{what:28} {v:10.3f} {target or '':>8} {ratio:>7}")
    print(json.dumps(results, indent=1, default=str))
    (WORK / "results.json").write_text(json.dumps(results, indent=1, default=str))


def main() -> int:
    # the jobs' debug lines (a line per dispatched batch) would flood the report
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    report(on_embedded_postgres(WORK, 55497, measure, say))
    return 0


if __name__ == "__main__":
    sys.exit(main())
