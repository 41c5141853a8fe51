#!/usr/bin/env python3
"""webhook benchmark: 100 concurrent Stripe webhook deliveries, duplicates among them, each event
recorded exactly once (issue 13's target), timed end to end over HTTP.

Set-up (untimed): an embedded PostgreSQL (``daemons.pgembed``, durable, as in production) in the
work directory, the schema, ``BENCH_CUSTOMERS`` demo customers (``daemons.demo``) billed by a real
billing run, Stripe enabled with its keys sealed, and for ``BENCH_DISTINCT`` of them a payment
attempt of their invoice that Stripe answered (``payment_intents`` with its ``pi_...``). The admin
app (admin/app.py, as ``lastmile admin`` serves it) on 127.0.0.1.

Timed: ``BENCH_DELIVERIES`` POSTs to ``/hooks/stripe`` sent at once (one aiohttp session,
no connection limit): a ``payment_intent.succeeded`` for each attempt, the rest duplicates of
some of them (the same event, signed again as Stripe's retries are), shuffled. Each delivery's
time is from its send to its answer; the round's from the first send to the last answer. Each
delivery's signature is checked with the stripe library, its event inserted into
``gateway_events`` in the transaction that records the payment (admin/payments/online.py); a
duplicate finds the row and answers ``duplicate``.

Checked afterwards: every delivery answered 200; one ``gateway_events`` row and one payment per
distinct event, no more; every invoice paid. Then the same again with ``BENCH_ROUNDS`` rounds of
new events (so the figure is not one cold start). The run holds ``/tmp/bench.lock``. Results: a
table on stdout and ``results.json`` in the work directory (docs/benchmarks.md ("Payments") has
the last one).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web
from benchkit import free_port, on_embedded_postgres, percentile
from stripe import WebhookSignature

from admin.app import create_app
from admin.billing import run
from admin.payments import online
from admin.settings import AdminSettings
from daemons import db, demo
from daemons.config import DatabaseSettings
from daemons.secrets import Keyring

CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "1000"))
DELIVERIES = int(os.environ.get("BENCH_DELIVERIES", "100"))
DISTINCT = int(os.environ.get("BENCH_DISTINCT", "60"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WORK = Path(os.environ.get("BENCH_WORKDIR", "/tmp/lastmile-bench-payments-webhooks"))
SECRET = "whsec_bench"
RUN_DAY = dt.date(2026, 11, 1)


def say(text: str) -> None:
    print(f"[bench webhooks] {text}", file=sys.stderr, flush=True)


async def attempts(conn: asyncpg.Connection, n: int, round_no: int) -> list[tuple[int, str, int]]:
    """``n`` customers' invoices each with an attempt Stripe answered: (intent id, pi id, cents)."""
    rows = await conn.fetch(
        "SELECT d.id, d.customer_id, s.open, d.currency FROM documents d JOIN billing_documents_state s ON s.id = d.id "
        "WHERE d.kind = 'invoice' AND s.open > 0 AND NOT EXISTS (SELECT 1 FROM payment_intents i "
        "WHERE i.document_id = d.id) ORDER BY d.id LIMIT $1", n)
    out = []
    for r in rows:
        pi = f"pi_bench{round_no}x{r['id']}"
        intent = await conn.fetchval(
            "INSERT INTO payment_intents (customer_id, gateway, external_id, purpose, document_id, amount, currency, "
            "idempotency_key, status) VALUES ($1, 'stripe', $2, 'invoice', $3, $4, $5, $6, 'requires_action') "
            "RETURNING id", r["customer_id"], pi, r["id"], r["open"], r["currency"], f"bench:{pi}")
        out.append((intent, pi, int(Decimal(r["open"]) * 100)))
    return out


def event(intent: int, pi: str, cents: int) -> str:
    return json.dumps({"id": f"evt_{pi}", "object": "event", "type": "payment_intent.succeeded", "data": {"object": {
        "id": pi, "object": "payment_intent", "status": "succeeded", "amount": cents, "amount_received": cents,
        "currency": "eur", "metadata": {"lastmile_intent": str(intent)}}}})


async def deliver(url: str, bodies: list[str]) -> tuple[float, list[float], list[tuple[int, str]]]:
    times: list[float] = []
    answers: list[tuple[int, str]] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as s:
        async def one(body: str) -> None:
            header = WebhookSignature.generate_signature_header(body, SECRET)
            t = time.perf_counter()
            async with s.post(url, data=body.encode(), headers={"Stripe-Signature": header,
                                                                "Content-Type": "application/json"}) as r:
                answer = await r.json()
                times.append(time.perf_counter() - t)
                answers.append((r.status, str(answer.get("outcome", answer))))

        t = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        return time.perf_counter() - t, times, answers


async def measure(url: str) -> dict[str, object]:
    results: dict[str, object] = {"customers": CUSTOMERS, "deliveries per round": DELIVERIES,
                                  "distinct events per round": DISTINCT}
    conn = await db.connect(url)
    await db.apply_schema(conn)
    say(f"loading {CUSTOMERS} demo customers and billing them ...")
    await demo.load(conn, CUSTOMERS, seed=1)
    await conn.execute("UPDATE services SET start_date = DATE '2026-11-01'")
    await conn.execute("UPDATE customer_billing SET billing_day = 1, billing_type = 'recurring'")
    pool = await db.create_pool(DatabaseSettings(), url, max_size=10)
    await run.run(pool, RUN_DAY, by="bench")
    keyring = Keyring(os.urandom(32))
    await conn.execute(
        "UPDATE payment_gateways SET enabled = true, secret_key = $1, webhook_secret = $2 WHERE name = 'stripe'",
        keyring.seal("sk_test_bench", online.secret_purpose("stripe", "secret_key")),
        keyring.seal(SECRET, online.secret_purpose("stripe", "webhook_secret")))
    port = free_port()
    app = create_app(AdminSettings(port=port), keyring, pool=pool)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    rnd = random.Random(7)
    rounds = []
    try:
        for round_no in range(1, ROUNDS + 1):
            made = await attempts(conn, DISTINCT, round_no)
            assert len(made) == DISTINCT, "not enough open invoices: raise BENCH_CUSTOMERS"
            bodies = [event(*m) for m in made]
            bodies += [rnd.choice(bodies) for _ in range(DELIVERIES - len(bodies))]
            rnd.shuffle(bodies)
            wall, times, answers = await deliver(f"http://127.0.0.1:{port}/hooks/stripe", bodies)
            pis = [m[1] for m in made]
            recorded = await conn.fetchval("SELECT count(*) FROM payments WHERE gateway_ref = ANY($1::text[])", pis)
            kept = await conn.fetchval("SELECT count(*) FROM gateway_events WHERE event_id = ANY($1::text[])",
                                       [f"evt_{p}" for p in pis])
            paid = await conn.fetchval(
                "SELECT count(*) FROM payment_intents i JOIN billing_documents_state s ON s.id = i.document_id "
                "WHERE i.external_id = ANY($1::text[]) AND s.status = 'paid'", pis)
            outcome = {
                "deliveries": len(bodies), "distinct events": DISTINCT, "all 200": all(s == 200 for s, _ in answers),
                "answered duplicate": sum(a == "duplicate" for _, a in answers),
                "payments recorded": recorded, "events kept": kept, "invoices paid": paid,
                "round ms": round(wall * 1000, 1), "p50 ms": round(percentile(times, 50) * 1000, 1),
                "p95 ms": round(percentile(times, 95) * 1000, 1), "max ms": round(max(times) * 1000, 1)}
            assert outcome["all 200"] and recorded == kept == paid == DISTINCT, outcome
            assert outcome["answered duplicate"] == DELIVERIES - DISTINCT, outcome
            say(f"round {round_no}: {outcome}")
            rounds.append(outcome)
    finally:
        await runner.cleanup()
        await pool.close()
        await conn.close()
    results["rounds"] = rounds
    return results


def report(results: dict[str, object]) -> None:
    print(f"\nwebhook benchmark: {DELIVERIES} concurrent Stripe deliveries, {DISTINCT} distinct events "
          f"(the rest duplicates), {CUSTOMERS:,} customers\n")
    print(f"{'round':6} {'round ms':>9} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'recorded':>9} {'dup answers':>12}")
    rounds = results["rounds"]
    assert isinstance(rounds, list)
    for i, r in enumerate(rounds, 1):
        print(f"{i:<6} {r['round ms']:9.1f} {r['p50 ms']:8.1f} {r['p95 ms']:8.1f} {r['max ms']:8.1f} "
              f"{r['payments recorded']:9} {r['answered duplicate']:12}")
    print(json.dumps(results, indent=1, default=str))
    (WORK / "results.json").write_text(json.dumps(results, indent=1, default=str))


def main() -> int:
    report(on_embedded_postgres(WORK, 55498, measure, say))
    return 0


if __name__ == "__main__":
    sys.exit(main())
