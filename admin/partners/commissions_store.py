"""The SQL of percentage mode's commissions (commissions.py has the rule): commissions worked
out for the allocations not seen yet, statements issued, payouts recorded, and what is owed.

Which allocations :func:`compute` reads: those created in a window of ``created_at`` (the job's
cursor in event_cursors, read a minute behind now as admin/tickets/automatic.py does, so the
writes in flight have committed), of a payment's credit, to an invoice or a debit on no document,
by a customer whose partner is in percentage mode on the day it is earned; a release only when
its original earned. Each is written once (``allocation_id`` UNIQUE, ON CONFLICT DO NOTHING), so
a window read twice, or :func:`compute` over a whole period (tests, a repair), writes nothing
twice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.billing import money
from admin.partners import commissions as rule

CURSOR = "partners.commissions"

_MODE = ("coalesce((SELECT m.mode FROM partner_modes m WHERE m.partner_id = {p} AND m.starts_on <= {day} "
         "ORDER BY m.starts_on DESC LIMIT 1), 'direct')")

_CANDIDATES = f"""
SELECT a.id, a.customer_id, c.partner_id, a.amount, a.target_document_id, a.target_transaction_id, a.releases_id,
       t.currency, greatest(t.posted_on, (a.created_at AT TIME ZONE 'UTC')::date) AS earned_on,
       d.kind AS doc_kind, d.total AS doc_total,
       tt.kind AS debit_kind, tt.service_id AS debit_service_id, ts.tariff_id AS debit_tariff_id
FROM allocations a
JOIN transactions t ON t.id = a.credit_id AND t.kind = 'payment'
JOIN customers c ON c.id = a.customer_id
LEFT JOIN documents d ON d.id = a.target_document_id
LEFT JOIN transactions tt ON tt.id = a.target_transaction_id
LEFT JOIN services ts ON ts.id = tt.service_id
WHERE a.created_at > $1 AND a.created_at <= $2
  AND NOT EXISTS (SELECT 1 FROM partner_commissions pc WHERE pc.allocation_id = a.id)
  AND (d.kind = 'invoice' OR tt.kind IN ('charge', 'fee'))
  AND CASE WHEN a.releases_id IS NULL
           THEN {_MODE.format(p='c.partner_id', day="greatest(t.posted_on, (a.created_at AT TIME ZONE 'UTC')::date)")}
                = 'percentage'
           ELSE EXISTS (SELECT 1 FROM partner_commissions o WHERE o.allocation_id = a.releases_id)
                OR EXISTS (SELECT 1 FROM allocations o WHERE o.id = a.releases_id AND o.created_at > $1)
      END
ORDER BY a.id
"""

_LINES = """
SELECT dl.document_id, dl.position, dl.net, dl.gross, dl.service_id, s.tariff_id, lt.kind AS transaction_kind,
       (li.item_id IS NOT NULL) AS one_time
FROM document_lines dl
LEFT JOIN services s ON s.id = dl.service_id
LEFT JOIN transactions lt ON lt.id = dl.transaction_id
LEFT JOIN document_line_items li ON li.document_id = dl.document_id AND li.position = dl.position
WHERE dl.document_id = ANY($1::bigint[])
ORDER BY dl.document_id, dl.position
"""


async def _rates(conn: Connection, partner_ids: list[int]) -> dict[int, rule.Rates]:
    percent = {r["id"]: Decimal(r["commission_percent"]) for r in await conn.fetch(
        "SELECT id, commission_percent FROM partners WHERE id = ANY($1::bigint[])", partner_ids)}
    tariffs: dict[int, dict[int, Decimal]] = defaultdict(dict)
    categories: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for r in await conn.fetch("SELECT partner_id, tariff_id, category, percent FROM partner_commission_rates "
                              "WHERE partner_id = ANY($1::bigint[])", partner_ids):
        if r["tariff_id"] is not None:
            tariffs[r["partner_id"]][r["tariff_id"]] = Decimal(r["percent"])
        else:
            categories[r["partner_id"]][r["category"]] = Decimal(r["percent"])
    return {p: rule.Rates(percent.get(p, Decimal(0)), tariffs[p], categories[p]) for p in partner_ids}


async def compute(conn: Connection, since: dt.datetime, upto: dt.datetime) -> int:
    """The commissions of the allocations created after ``since`` and up to ``upto`` that have
    none yet (in the caller's transaction); how many were written."""
    found = await conn.fetch(_CANDIDATES, since, upto)
    if not found:
        return 0
    rates = await _rates(conn, sorted({r["partner_id"] for r in found}))
    lines: dict[int, list[rule.Line]] = defaultdict(list)
    doc_ids = sorted({r["target_document_id"] for r in found if r["target_document_id"] is not None})
    for r in await conn.fetch(_LINES, doc_ids) if doc_ids else []:
        lines[r["document_id"]].append(rule.Line(
            r["position"], Decimal(r["net"]), Decimal(r["gross"]),
            rule.category_of(r["transaction_kind"], r["service_id"], r["one_time"]), r["tariff_id"]))
    originals: dict[int, tuple[rule.Earned, Decimal, dt.date]] = {}
    release_of = [r["releases_id"] for r in found if r["releases_id"] is not None]
    if release_of:
        for o in await conn.fetch(
                "SELECT pc.allocation_id, pc.base, pc.amount, pc.detail, pc.earned_on, a.amount AS paid "
                "FROM partner_commissions pc JOIN allocations a ON a.id = pc.allocation_id "
                "WHERE pc.allocation_id = ANY($1::bigint[])", release_of):
            earned = rule.Earned(Decimal(o["base"]), Decimal(o["amount"]), detail_of(o["detail"]))
            originals[o["allocation_id"]] = (earned, Decimal(o["paid"]), o["earned_on"])
    rows: list[tuple[Any, ...]] = []
    for r in found:
        amount, currency = Decimal(r["amount"]), r["currency"]
        earned_on: dt.date = r["earned_on"]
        if r["releases_id"] is not None:
            original = originals.get(r["releases_id"])
            if original is None:
                continue  # its original earned nothing (a partner not in percentage mode then)
            earned = rule.release(original[0], original[1], amount, currency)
            earned_on = max(earned_on, original[2])
        elif r["target_document_id"] is not None:
            earned = rule.earn_document(amount, Decimal(r["doc_total"]), lines[r["target_document_id"]],
                                        rates[r["partner_id"]], currency)
        else:
            category = rule.category_of(r["debit_kind"], r["debit_service_id"])
            earned = rule.earn_debit(amount, category, r["debit_tariff_id"] if category == "service" else None,
                                     rates[r["partner_id"]], currency)
        originals[r["id"]] = (earned, amount, earned_on)
        rows.append((r["partner_id"], r["customer_id"], r["id"], r["target_document_id"], earned_on, earned.base,
                     earned.amount, currency, json.dumps(earned.detail)))
    if not rows:
        return 0
    done = await conn.fetch(
        "INSERT INTO partner_commissions (partner_id, customer_id, allocation_id, document_id, earned_on, base, "
        "amount, currency, detail) SELECT p, c, a, d, e, b, m, cur, detail::jsonb "
        "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::date[], $6::numeric[], "
        "$7::numeric[], $8::text[], $9::text[]) AS u(p, c, a, d, e, b, m, cur, detail) "
        "ON CONFLICT (allocation_id) DO NOTHING RETURNING id",
        *[list(column) for column in zip(*rows, strict=True)])
    return len(done)


def detail_of(value: Any) -> list[dict[str, Any]]:
    """A detail as read (the pool's jsonb codec decodes it; a bare connection gives its text)."""
    found: list[dict[str, Any]] = json.loads(value) if isinstance(value, str) else list(value)
    return found


async def advance(conn: Connection, upto: dt.datetime, first: dt.timedelta) -> dt.datetime:
    """Move the job's cursor to ``upto`` (a first run starts ``first`` before it) and return where
    it was; the row stays locked until the caller's transaction ends, so runs do not overlap."""
    await conn.execute("INSERT INTO event_cursors (name, position) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                       CURSOR, upto - first)
    since: dt.datetime = await conn.fetchval("SELECT position FROM event_cursors WHERE name = $1 FOR UPDATE", CURSOR)
    if since < upto:
        await conn.execute("UPDATE event_cursors SET position = $2 WHERE name = $1", CURSOR, upto)
    return since


# -- reading -------------------------------------------------------------------------------------

async def partner(conn: Connection, partner_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT p.id, p.name, p.commission_percent, " + _MODE.format(p="p.id", day="current_date")
        + " AS mode FROM partners p WHERE p.id = $1", partner_id)


async def partners(conn: Connection, scope: int | None) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT id, name FROM partners WHERE $1::bigint IS NULL OR id = $1 ORDER BY name",
                                 scope))


async def commissions(conn: Connection, partner_id: int, start: dt.date, end: dt.date) -> list[asyncpg.Record]:
    """A partner's commissions earned in [start, end), with their customer, document and statement."""
    return list(await conn.fetch(
        "SELECT pc.id, pc.partner_id, pc.customer_id, cu.number AS customer_number, cu.name AS customer_name, "
        "pc.allocation_id, pc.document_id, d.number AS document_number, pc.earned_on, pc.base, pc.amount, "
        "pc.currency, pc.detail, pc.statement_id, s.number AS statement_number, "
        "(al.releases_id IS NOT NULL) AS release "
        "FROM partner_commissions pc JOIN customers cu ON cu.id = pc.customer_id "
        "JOIN allocations al ON al.id = pc.allocation_id "
        "LEFT JOIN documents d ON d.id = pc.document_id LEFT JOIN partner_statements s ON s.id = pc.statement_id "
        "WHERE pc.partner_id = $1 AND pc.earned_on >= $2 AND pc.earned_on < $3 ORDER BY pc.earned_on, pc.id",
        partner_id, start, end))


async def owed(conn: Connection, scope: int | None) -> list[asyncpg.Record]:
    """Per partner and currency: earned, on statements, open, paid out, owed (earned less paid)."""
    return list(await conn.fetch(
        "WITH c AS (SELECT partner_id, currency, sum(amount) AS earned, "
        "  coalesce(sum(amount) FILTER (WHERE statement_id IS NOT NULL), 0) AS stated FROM partner_commissions "
        "  WHERE $1::bigint IS NULL OR partner_id = $1 GROUP BY partner_id, currency), "
        "p AS (SELECT partner_id, currency, sum(amount) AS paid FROM partner_payouts "
        "  WHERE $1::bigint IS NULL OR partner_id = $1 GROUP BY partner_id, currency) "
        "SELECT pa.id AS partner_id, pa.name AS partner_name, coalesce(c.currency, p.currency) AS currency, "
        "coalesce(c.earned, 0) AS earned, coalesce(c.stated, 0) AS stated, "
        "coalesce(c.earned, 0) - coalesce(c.stated, 0) AS open, coalesce(p.paid, 0) AS paid, "
        "coalesce(c.earned, 0) - coalesce(p.paid, 0) AS owed "
        "FROM c FULL JOIN p ON p.partner_id = c.partner_id AND p.currency = c.currency "
        "JOIN partners pa ON pa.id = coalesce(c.partner_id, p.partner_id) ORDER BY pa.name, 3", scope))


_STATEMENT = ("SELECT s.id, s.partner_id, pa.name AS partner_name, s.number, s.period_start, s.period_end, "
              "s.currency, s.total, s.issued_on, s.created_by, s.created_at, "
              "coalesce((SELECT sum(po.amount) FROM partner_payouts po WHERE po.partner_id = s.partner_id "
              "          AND po.statement_id = s.id), 0) AS paid "
              "FROM partner_statements s JOIN partners pa ON pa.id = s.partner_id ")


async def _counted(conn: Connection, rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """``rows`` (statements) with how many commissions each took: one pass over their partners'
    commissions (there is no index on statement_id; there is one on the partner)."""
    if not rows:
        return []
    # a statement's commissions were earned in its month or the month before (issue)
    since = rule.month_of(min(r["period_start"] for r in rows) - dt.timedelta(days=1))
    counts = {r["statement_id"]: r["n"] for r in await conn.fetch(
        "SELECT statement_id, count(*) AS n FROM partner_commissions WHERE partner_id = ANY($1::bigint[]) "
        "AND earned_on >= $3 AND earned_on < $4 AND statement_id = ANY($2::bigint[]) GROUP BY statement_id",
        sorted({r["partner_id"] for r in rows}), [r["id"] for r in rows], since,
        max(r["period_end"] for r in rows))}
    return [{**dict(r), "commissions": counts.get(r["id"], 0)} for r in rows]


async def statements(conn: Connection, scope: int | None, partner_id: int | None = None,
                     limit: int = 500) -> list[dict[str, Any]]:
    return await _counted(conn, list(await conn.fetch(
        _STATEMENT + "WHERE ($1::bigint IS NULL OR s.partner_id = $1) AND ($2::bigint IS NULL OR s.partner_id = $2) "
        "ORDER BY s.period_start DESC, s.id DESC LIMIT $3", scope, partner_id, limit)))


async def statement(conn: Connection, statement_id: int, scope: int | None) -> dict[str, Any] | None:
    row = await conn.fetchrow(_STATEMENT + "WHERE s.id = $1 AND ($2::bigint IS NULL OR s.partner_id = $2)",
                              statement_id, scope)
    return None if row is None else (await _counted(conn, [row]))[0]


async def statement_commissions(conn: Connection, statement_id: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT pc.id, pc.customer_id, cu.number AS customer_number, cu.name AS customer_name, pc.allocation_id, "
        "pc.document_id, d.number AS document_number, pc.earned_on, pc.base, pc.amount, pc.currency, pc.detail "
        "FROM partner_commissions pc JOIN customers cu ON cu.id = pc.customer_id "
        "LEFT JOIN documents d ON d.id = pc.document_id WHERE pc.statement_id = $1 ORDER BY pc.earned_on, pc.id",
        statement_id))


async def payouts(conn: Connection, scope: int | None, partner_id: int | None = None,
                  limit: int = 500) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT po.id, po.partner_id, pa.name AS partner_name, po.statement_id, s.number AS statement_number, "
        "po.amount, po.currency, po.paid_on, po.reference, po.idempotency_key, po.created_by, po.created_at "
        "FROM partner_payouts po JOIN partners pa ON pa.id = po.partner_id "
        "LEFT JOIN partner_statements s ON s.id = po.statement_id "
        "WHERE ($1::bigint IS NULL OR po.partner_id = $1) AND ($2::bigint IS NULL OR po.partner_id = $2) "
        "ORDER BY po.paid_on DESC, po.id DESC LIMIT $3", scope, partner_id, limit))


# -- writing -------------------------------------------------------------------------------------

class CommissionRefused(ValueError):
    """A statement or payout refused, said for the person who asked (``field``: the input it is about)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


async def issue(conn: Connection, partner_id: int, month: dt.date, *, today: dt.date,
                by: str = "") -> tuple[list[dict[str, Any]], list[int]]:
    """Issue the partner's statements of ``month`` (its first day), one per currency: each takes
    the open commissions earned in the month, and those of the month before whose statement of
    that currency was issued already (written after it: the job's lag at the month's end, or a
    month issued before it was over). The same month again gives the statements it gave (and one
    for a currency that has none yet). Older open ones (a repair run over a period long issued)
    stay open: they count in what is owed, and the owed report shows them as not on a statement.
    In the caller's transaction: (every statement of the month, the ids issued now)."""
    if month.day != 1:
        raise CommissionRefused("a statement is of a whole month", "month")
    if month > today:
        raise CommissionRefused(f"{month:%Y-%m} has not begun", "month")
    if await conn.fetchval("SELECT id FROM partners WHERE id = $1 FOR UPDATE", partner_id) is None:
        raise CommissionRefused(f"no partner {partner_id}")
    end = rule.next_month(month)
    have = {r["currency"]: r["number"] for r in await conn.fetch(
        "SELECT currency, number FROM partner_statements WHERE partner_id = $1 AND period_start = $2",
        partner_id, month)}
    # the month's, and the late ones of the month before when its statement is out; both ranges of
    # partner_commissions_partner_idx (never the partner's whole history, which is on statements)
    before = rule.month_of(month - dt.timedelta(days=1))
    taken: dict[str, list[tuple[int, Decimal]]] = defaultdict(list)
    for r in await conn.fetch(
            "SELECT pc.id, pc.currency, pc.amount FROM partner_commissions pc WHERE pc.partner_id = $1 "
            "AND pc.statement_id IS NULL AND pc.earned_on >= $2 AND pc.earned_on < $4 AND (pc.earned_on >= $3 "
            "OR EXISTS (SELECT 1 FROM partner_statements s WHERE s.partner_id = pc.partner_id "
            "AND s.currency = pc.currency AND s.period_start = $2))", partner_id, before, month, end):
        taken[r["currency"]].append((r["id"], Decimal(r["amount"])))
    made: list[int] = []
    for currency in sorted(taken):
        if currency in have:
            continue
        number = rule.statement_number(partner_id, month, currency if have or made else None)
        total = money.quantize(sum((amount for _, amount in taken[currency]), Decimal(0)), currency)
        sid = await conn.fetchval(
            "INSERT INTO partner_statements (partner_id, number, period_start, period_end, currency, total, "
            "issued_on, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            partner_id, number, month, end, currency, total, today, by)
        await conn.execute("UPDATE partner_commissions SET statement_id = $1 WHERE id = ANY($2::bigint[]) "
                           "AND statement_id IS NULL", sid, [i for i, _ in taken[currency]])
        have[currency] = number
        made.append(int(sid))
    found = list(await conn.fetch(_STATEMENT + "WHERE s.partner_id = $1 AND s.period_start = $2 ORDER BY s.id",
                                  partner_id, month))
    if set(made) == {r["id"] for r in found}:  # all new: their counts are known
        return [{**dict(r), "commissions": len(taken[r["currency"]])} for r in found], made
    return await _counted(conn, found), made


async def owed_of(conn: Connection, partner_id: int, currency: str) -> Decimal:
    value = await conn.fetchval(
        "SELECT coalesce((SELECT sum(amount) FROM partner_commissions WHERE partner_id = $1 AND currency = $2), 0) "
        "- coalesce((SELECT sum(amount) FROM partner_payouts WHERE partner_id = $1 AND currency = $2), 0)",
        partner_id, currency)
    return Decimal(value)


async def record_payout(conn: Connection, partner_id: int, amount: Decimal, currency: str, paid_on: dt.date, *,
                        reference: str = "", key: str | None = None, statement_id: int | None = None,
                        by: str = "") -> tuple[asyncpg.Record, bool]:
    """A payout to the partner (in the caller's transaction): (its row, whether it was written now).
    The same ``key`` again answers with the first payout; more than is owed is refused."""
    if key is not None:
        first = await conn.fetchrow("SELECT * FROM partner_payouts WHERE idempotency_key = $1", key)
        if first is not None:
            if first["partner_id"] != partner_id or Decimal(first["amount"]) != amount:
                raise CommissionRefused("this payout was recorded already for another partner or amount",
                                        "idempotency_key")
            return first, False
    try:
        rounded = money.quantize(amount, currency)
    except money.MoneyError as e:
        raise CommissionRefused(str(e), "currency") from None
    if rounded != amount or amount <= 0:
        raise CommissionRefused(f"a payout is an amount above zero in {currency}'s minor unit", "amount")
    if await conn.fetchval("SELECT id FROM partners WHERE id = $1 FOR UPDATE", partner_id) is None:
        raise CommissionRefused(f"no partner {partner_id}", "partner_id")
    if statement_id is not None and await conn.fetchval(
            "SELECT id FROM partner_statements WHERE id = $1 AND partner_id = $2 AND currency = $3",
            statement_id, partner_id, currency) is None:
        raise CommissionRefused("the statement is not this partner's in this currency", "statement_id")
    owed = await owed_of(conn, partner_id, currency)
    if amount > owed:
        raise CommissionRefused(f"{amount} {currency} is more than the {owed.quantize(rounded)} {currency} owed",
                                "amount")
    row = await conn.fetchrow(
        "INSERT INTO partner_payouts (partner_id, statement_id, amount, currency, paid_on, reference, "
        "idempotency_key, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING *",
        partner_id, statement_id, amount, currency, paid_on, reference, key, by)
    if row is None:  # the same key, committed meanwhile
        row = await conn.fetchrow("SELECT * FROM partner_payouts WHERE idempotency_key = $1", key)
        assert row is not None
        return row, False
    return row, True
