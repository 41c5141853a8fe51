"""Support → Reports on a worked example: the SLA buckets per agent and per group (who answered
first, the assignee while nobody has), agent performance (first-contact resolution, average
times), CSV, the API, a partner's administrator seeing its own tickets only, a bad period."""

from __future__ import annotations

import csv
import datetime as dt
import io

from admin.auth.store import Connection
from admin.tickets import store
from admin.tickets.automation import Author
from tests.integration.admin.conftest import Admin, api_key, call, logged_in, make_admin
from tests.integration.admin.test_devices import partner_client

DAY = dt.datetime(2026, 11, 2, 8, tzinfo=dt.UTC)


async def world(conn: Connection) -> dict[str, int]:
    """Ann answers in 1 h, 5 h and 30 h, Bob in 2 h and at exactly 3 h; one ticket of Bob's group
    is unanswered; one ticket of another partner is answered by Ann in 10 h."""
    main = await conn.fetchval("INSERT INTO partners (name) VALUES ('Main') RETURNING id")
    other = await conn.fetchval("INSERT INTO partners (name) VALUES ('Other') RETURNING id")
    ann = await make_admin(conn, "ann", "super")
    bob = await make_admin(conn, "bob", "super")
    level1 = await conn.fetchval("INSERT INTO ticket_groups (name, assign_mode) VALUES ('Level 1', 'nobody') "
                                 "RETURNING id")
    cid = await conn.fetchval("INSERT INTO customers (partner_id, number, name, email) "
                              "VALUES ($1, 'C1', 'Anna', 'anna@example.at') RETURNING id", main)
    foreign = await conn.fetchval("INSERT INTO customers (partner_id, number, name) VALUES ($1, 'C2', 'Otto') "
                                  "RETURNING id", other)

    async def ticket(customer: int, partner: int, agent: int, hours: float | None, *, resolve: bool = False,
                     group: int | None = None, assign: int | None = None) -> None:
        made = await store.create_ticket(conn, store.NewTicket(
            subject="Down", body="help", source="portal", partner_id=partner, customer_id=customer, group_id=group,
            assignee_id=assign), now=DAY)
        assert made is not None
        if hours is not None:
            await store.add_message(conn, made.ticket_id, store.NewMessage(Author.STAFF, "on it", agent),
                                    now=DAY + dt.timedelta(hours=hours))
        if resolve:
            await store.set_fields(conn, made.ticket_id, {"status": "resolved"}, now=DAY + dt.timedelta(hours=48))

    await ticket(cid, main, ann, 1, resolve=True, assign=ann)
    await ticket(cid, main, ann, 5, assign=ann)
    await ticket(cid, main, ann, 30, assign=ann)
    await ticket(cid, main, bob, 2, assign=bob, resolve=True)
    await ticket(cid, main, bob, 3, group=level1, assign=bob)
    await ticket(cid, main, bob, None, group=level1)
    await ticket(foreign, other, ann, 10, assign=ann)
    return {"main": main, "other": other, "ann": ann, "bob": bob, "level1": level1}


def row_of(html: str, name: str) -> list[str]:
    start = html.index(f'<th scope="row">{name}</th>')
    cells = html[start:html.index("</tr>", start)].split('<td class="num">')[1:]
    return [c.split("</td>")[0].strip() for c in cells]


async def test_the_sla_report_buckets_first_responses_per_agent_and_group(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
    period = "since=2026-11-01&until=2026-11-30"
    async with await logged_in(admin) as c:
        status, html = await c.get(f"/admin/tickets/reports?{period}")
        assert status == 200, html
        # buckets: ≤3 h, 3–6 h, 6–9 h, 9–12 h, 12–24 h, > 24 h, no response yet; then the total
        assert row_of(html, "ann") == ["1", "1", "0", "1", "0", "1", "0", "4"]
        assert row_of(html, "bob") == ["2", "0", "0", "0", "0", "0", "0", "2"]  # exactly 3 h is "≤ 3 h"
        assert row_of(html, "nobody") == ["0", "0", "0", "0", "0", "0", "1", "1"]
        assert row_of(html, "All") == ["3", "1", "0", "1", "0", "1", "1", "7"]
        # agent performance: Ann resolved 1 of 4 with one reply (FCR 100 %), first response avg (1+5+30+10)/4 h
        agents = html[html.index('id="agents-title"'):]
        assert row_of(agents, "ann")[:5] == ["4", "1", "0", "100 %", "11.5 h"]

        status, html = await c.get(f"/admin/tickets/reports?{period}&by=group")
        assert row_of(html, "Level 1") == ["1", "0", "0", "0", "0", "0", "1", "2"]
        assert row_of(html, "no group")[-1] == "5"

        status, text = await c.get(f"/admin/tickets/reports/sla.csv?{period}")
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0][0] == "agent" and rows[0][-1] == "total"
        assert ["ann", "1", "1", "0", "1", "0", "1", "0", "4"] in rows

        status, html = await c.get("/admin/tickets/reports?since=2026-11-30&until=2026-11-01")
        assert status == 400 and "is after until" in html
        status, _ = await c.get("/admin/tickets/reports?since=2025-01-01&until=2026-11-01")
        assert status == 400

    async with await partner_client(admin, "other-admin", w["other"]) as c:
        status, html = await c.get(f"/admin/tickets/reports?{period}")
        assert row_of(html, "ann") == ["0", "0", "0", "1", "0", "0", "0", "1"]  # its own ticket only
        assert "bob" not in html.split("Agent performance")[0]

    async with admin.pool.acquire() as conn:
        key = await api_key(conn)
    status, body = await call(admin, key, "GET", f"/tickets/reports/agents?{period}")
    assert status == 200, body
    ann = next(r for r in body["rows"] if r["name"] == "ann")
    assert (ann["assigned"], ann["resolved"], ann["first_contact_resolution"], ann["resolution_hours"]) == (
        4, 1, 1.0, 48.0)
    assert ann["response_hours"] == 11.5  # one wait each, answered after 1, 5, 30 and 10 h
    status, body = await call(admin, key, "GET", f"/tickets/reports/sla?{period}&by=group")
    assert status == 200 and body["buckets"][0] == "≤ 3 h" and body["totals"] == [3, 1, 0, 1, 0, 1, 1]
