#!/usr/bin/env python3
"""bank statement benchmark: a 10,000-line statement against 100,000 customers, imported and
matched (issue 13's target: under 5 s), with the time of each part.

Set-up (untimed): an embedded PostgreSQL (``daemons.pgembed``, durable, as in production) in
the work directory, the schema, ``BENCH_CUSTOMERS`` demo customers (``daemons.demo``), each
billed once (a billing run on 2026-11-01: one open invoice each), and a bank's CSV mapping.

The statement (``BENCH_LINES`` lines, CSV with a decimal comma, as a German bank writes it), of
customers drawn at random among those with an open invoice:

- 70 % carry the customer's payment reference (RF..., with its check digits) and pay the
  invoice's open amount;
- 10 % carry only the invoice's number, 10 % only the payer's name (the customer's), both
  paying the open amount;
- 8 % name nobody (a name no customer has, a text with no number), 2 % are money out.

Timed: :func:`admin.payments.statements.service.import_file` from the file's bytes to the
commit (read, hash, the known lines, matching with its bulk loads, the lines stored, every
matched line's payment recorded with its receipt and allocation, dunning). Then the same file
in CAMT.053 is read (parse only) for comparison, and ``BENCH_ONE_BY_ONE`` payments through
record.record one at a time, to show what the bulk recording saves.

The run holds ``/tmp/bench.lock``. Results: a table on stdout and ``results.json`` in the work
directory (docs/benchmarks.md ("Payments") has the last one).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

import asyncpg
from benchkit import on_embedded_postgres

from admin.billing import run
from admin.payments import record, reference
from admin.payments.statements import camt, service
from daemons import db, demo

CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "100000"))
LINES = int(os.environ.get("BENCH_LINES", "10000"))
ONE_BY_ONE = int(os.environ.get("BENCH_ONE_BY_ONE", "200"))
WORK = Path(os.environ.get("BENCH_WORKDIR", "/tmp/lastmile-bench-payments"))
TARGET = 5.0
BOOKED = dt.date(2026, 11, 5)


def say(text: str) -> None:
    print(f"[bench statement] {text}", file=sys.stderr, flush=True)


async def prepare(conn: asyncpg.Connection, pool: asyncpg.Pool) -> None:
    await conn.execute("UPDATE customers SET status = 'active' WHERE status = 'new'")
    await conn.execute("UPDATE services SET status = 'active' WHERE status NOT IN ('active', 'blocked')")
    await conn.execute("UPDATE customer_billing SET billing_day = 1, billing_type = 'recurring'")
    await conn.execute("UPDATE services SET start_date = DATE '2026-10-01'")
    await conn.execute("ANALYZE")
    await run.run(pool, dt.date(2026, 10, 1), by="bench")
    await conn.execute("ANALYZE")


def _amount(value: Decimal) -> str:
    return format(value, "f").replace(".", ",")


async def statement(conn: asyncpg.Connection, rnd: random.Random) -> tuple[bytes, bytes, dict[str, int]]:
    """The statement as CSV and as CAMT.053, and how many lines of each kind it has."""
    rows = await conn.fetch(
        "SELECT d.customer_id, d.number, d.total - coalesce((SELECT sum(a.amount) FROM allocations a "
        "WHERE a.target_document_id = d.id), 0) AS open, c.name FROM documents d JOIN customers c "
        "ON c.id = d.customer_id WHERE d.kind = 'invoice'")
    picked = rnd.sample(list(rows), min(LINES, len(rows)))
    kinds = {"reference": 0, "invoice number": 0, "name": 0, "nobody": 0, "money out": 0}
    lines: list[tuple[str, str, str, str, Decimal]] = []  # name, iban, purpose, e2e, amount
    for i, r in enumerate(picked):
        share = i / len(picked)
        iban = f"DE{rnd.randint(10, 99)}{rnd.randint(10**17, 10**18 - 1)}"
        if share < 0.70:
            kinds["reference"] += 1
            lines.append((r["name"], iban, f"Internet {reference.printed(reference.for_customer(r['customer_id']))}",
                          "", Decimal(r["open"])))
        elif share < 0.80:
            kinds["invoice number"] += 1
            lines.append((f"{r['name'][0]}. {r['name'].split()[-1]}", iban, f"Rechnung {r['number']}", "",
                          Decimal(r["open"])))
        elif share < 0.90:
            kinds["name"] += 1
            lines.append((r["name"], iban, "Internet November", "", Decimal(r["open"])))
        elif share < 0.98:
            kinds["nobody"] += 1
            lines.append((f"Zora Q{i}xyz", iban, "Geschenk", "", Decimal("7.50")))
        else:
            kinds["money out"] += 1
            lines.append(("Telco Supplies GmbH", iban, "Cable", "", Decimal("-120.00")))
    rnd.shuffle(lines)
    out = ["Buchungstag;Name;IBAN;Verwendungszweck;Betrag;Waehrung"]
    for name, iban, purpose, _, value in lines:
        out.append(f"{BOOKED:%d.%m.%Y};{name};{iban};{purpose};{_amount(value)};EUR")
    entries = []
    for n, (name, iban, purpose, _, value) in enumerate(lines, start=1):
        mark = "CRDT" if value > 0 else "DBIT"
        party = "Dbtr" if value > 0 else "Cdtr"
        entries.append(
            f"<Ntry><Amt Ccy=\"EUR\">{abs(value)}</Amt><CdtDbtInd>{mark}</CdtDbtInd><Sts>BOOK</Sts>"
            f"<BookgDt><Dt>{BOOKED}</Dt></BookgDt><AcctSvcrRef>B{n:08d}</AcctSvcrRef><NtryDtls><TxDtls>"
            f"<RltdPties><{party}><Nm>{name}</Nm></{party}><{party}Acct><Id><IBAN>{iban}</IBAN></Id></{party}Acct>"
            f"</RltdPties><RmtInf><Ustrd>{purpose}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>")
    xml = ("<?xml version=\"1.0\"?><Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02\">"
           "<BkToCstmrStmt><GrpHdr><MsgId>B</MsgId></GrpHdr><Stmt><Id>1</Id><Acct><Id><IBAN>DE89370400440532013000"
           "</IBAN></Id></Acct>" + "".join(entries) + "</Stmt></BkToCstmrStmt></Document>")
    return ("\n".join(out) + "\n").encode(), xml.encode(), kinds


async def measure(url: str) -> dict[str, object]:
    results: dict[str, object] = {"customers": CUSTOMERS, "lines": LINES}
    conn = await db.connect(url)
    await db.apply_schema(conn)
    say(f"loading {CUSTOMERS} demo customers and billing them ...")
    t = time.perf_counter()
    await demo.load(conn, CUSTOMERS, seed=1)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2, init=db.init_connection)
    await prepare(conn, pool)
    mapping = await conn.fetchrow(
        "INSERT INTO bank_mappings (name, delimiter, columns, date_format, decimal_comma) VALUES "
        "('Bench bank', ';', $1::jsonb, '%d.%m.%Y', true) RETURNING *",
        {"date": 0, "payer_name": [1], "payer_account": 2, "description": [3], "amount": 4, "currency": 5})
    say(f"set up in {time.perf_counter() - t:.1f} s")
    data, xml, kinds = await statement(conn, random.Random(7))
    results["statement"] = {"kinds": kinds, "csv bytes": len(data), "camt bytes": len(xml)}
    say(f"importing {LINES} lines ...")
    t = time.perf_counter()
    done = await service.import_file(conn, data, "bench.csv", mapping=mapping, by="bench", today=BOOKED)
    seconds = time.perf_counter() - t
    results["import"] = {"seconds": round(seconds, 3), "outcome": done.describe(), "counts": done.counts,
                         "parts": {k: round(v, 3) for k, v in done.timings.items()}}
    say(f"imported in {seconds:.2f} s: {done.describe()}")
    t = time.perf_counter()
    parsed = camt.parse(xml)
    results["camt parse"] = {"seconds": round(time.perf_counter() - t, 3), "lines": len(parsed.lines)}
    t = time.perf_counter()
    again = await service.import_file(conn, data.replace(b"Waehrung", b"Waehrung "), "again.csv", mapping=mapping,
                                      by="bench", today=BOOKED)
    results["overlap (all known)"] = {"seconds": round(time.perf_counter() - t, 3), "outcome": again.describe()}
    rows = await conn.fetch(
        "SELECT d.id, d.customer_id, d.total FROM documents d WHERE d.kind = 'invoice' AND NOT EXISTS "
        "(SELECT 1 FROM allocations a WHERE a.target_document_id = d.id) LIMIT $1", ONE_BY_ONE)
    t = time.perf_counter()
    async with conn.transaction():
        for n, r in enumerate(rows):
            await record.record(conn, record.NewPayment(r["customer_id"], Decimal(r["total"]), BOOKED, "bank_transfer",
                                                        source="api", key=f"bench-{n}", document_id=r["id"]),
                                today=BOOKED)
    each = (time.perf_counter() - t) / max(1, len(rows))
    results["record.record one by one"] = {"payments": len(rows), "ms each": round(each * 1000, 2)}
    await pool.close()
    await conn.close()
    return results


def report(results: dict[str, object]) -> None:
    imported = results["import"]
    assert isinstance(imported, dict)
    print(f"\nbank statement benchmark: {LINES:,} lines against {CUSTOMERS:,} customers\n")
    print(f"{'import and match (to the commit)':40} {imported['seconds']:8.3f} s   target {TARGET} s "
          f"({TARGET / imported['seconds']:.1f}x)")
    for part, seconds in imported["parts"].items():
        print(f"  {part:38} {seconds:8.3f} s")
    print(json.dumps(results, indent=1, default=str))
    (WORK / "results.json").write_text(json.dumps(results, indent=1, default=str))


def main() -> int:
    report(on_embedded_postgres(WORK, 55498, measure, say))
    return 0


if __name__ == "__main__":
    sys.exit(main())
