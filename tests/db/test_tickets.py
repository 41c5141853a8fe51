"""The helpdesk's store against a real PostgreSQL with fixed clocks: the status automation on
each message, the first response, reopening, assignment by group mode, and the rules applied
once (tests/integration/tickets/test_intake.py has e-mail to ticket)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import AsyncIterator

import asyncpg
import pytest

from admin.auth.store import Connection
from admin.tickets import rules_store, store
from admin.tickets.automation import Author
from daemons import db
from tests.db.notifications_data import at, customer, partner

NOW = at("2026-12-01 09:00")


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(db_url)
    await db.init_connection(c)
    try:
        yield c
    finally:
        await c.close()


async def admin(conn: Connection, login: str) -> int:
    role = await conn.fetchval("SELECT id FROM admin_roles WHERE builtin = 'engineer'")
    value: int = await conn.fetchval("INSERT INTO administrators (login, name, password_hash, role_id) "
                                     "VALUES ($1, $1, 'x', $2) RETURNING id", login, role)
    return value


async def open_ticket(conn: Connection, cid: int, pid: int) -> int:
    created = await store.create_ticket(conn, store.NewTicket(
        subject="No internet", body="Since today", source="portal", partner_id=pid, customer_id=cid), now=NOW)
    assert created is not None
    return created.ticket_id


async def ticket(conn: Connection, tid: int) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM tickets WHERE id = $1", tid)
    assert row is not None
    return row


async def test_messages_move_the_status_and_the_first_response_is_kept(conn: asyncpg.Connection) -> None:
    pid = await partner(conn)
    cid = await customer(conn, pid, 1)
    agent = await admin(conn, "max")
    tid = await open_ticket(conn, cid, pid)
    assert (await ticket(conn, tid))["status"] == "new"

    later = NOW + dt.timedelta(hours=4)
    await store.add_message(conn, tid, store.NewMessage(Author.NOTE, "checking the line"), now=later)
    t = await ticket(conn, tid)
    assert (t["status"], t["first_response_at"], t["last_activity_at"]) == ("new", None, NOW)  # a note is not one

    await store.add_message(conn, tid, store.NewMessage(Author.STAFF, "Restart it", agent), now=later)
    t = await ticket(conn, tid)
    assert (t["status"], t["first_response_at"], t["first_response_by"]) == ("waiting_customer", later, agent)
    await store.add_message(conn, tid, store.NewMessage(Author.CUSTOMER, "Still down"), now=later)
    await store.add_message(conn, tid, store.NewMessage(Author.STAFF, "Sent a tech", agent),
                            now=later + dt.timedelta(days=1))
    t = await ticket(conn, tid)
    assert t["first_response_at"] == later  # the first, not the last
    # waits: opened at NOW, answered 4 h later; "Still down" at `later`, answered a day later
    assert (t["responses"], t["response_seconds"], t["awaiting_since"]) == (2, 4 * 3600 + 86400, None)

    assert await store.set_fields(conn, tid, {"status": "resolved"}, now=later)
    t = await ticket(conn, tid)
    assert (t["status"], t["resolved_at"], t["reopened"]) == ("resolved", later, 0)
    await store.add_message(conn, tid, store.NewMessage(Author.CUSTOMER, "It broke again"), now=later)
    t = await ticket(conn, tid)
    assert (t["status"], t["resolved_at"], t["reopened"]) == ("waiting_agent", None, 1)
    assert not await store.set_fields(conn, 999_999, {"status": "resolved"}, now=later)
    with pytest.raises(ValueError, match="not a ticket field"):
        await store.set_fields(conn, tid, {"created_at": later}, now=later)


async def test_a_group_assigns_at_random_or_notifies_everyone(conn: asyncpg.Connection) -> None:
    pid = await partner(conn)
    cid = await customer(conn, pid, 1)
    a, b = await admin(conn, "ann"), await admin(conn, "bob")
    for mode in ("random", "nobody"):
        gid = await conn.fetchval("INSERT INTO ticket_groups (name, assign_mode) VALUES ($1, $1) RETURNING id", mode)
        await conn.executemany("INSERT INTO ticket_group_members (group_id, administrator_id) VALUES ($1, $2)",
                               [(gid, a), (gid, b)])
    random_group, nobody_group = [r["id"] for r in await conn.fetch("SELECT id FROM ticket_groups ORDER BY id")]
    picked = set()
    for seed in range(8):
        made = await store.create_ticket(conn, store.NewTicket(
            subject="x", body="y", source="admin", partner_id=pid, customer_id=cid, group_id=random_group), now=NOW,
            rng=random.Random(seed))
        assert made is not None and made.assignee_id in (a, b) and made.notify == (made.assignee_id,)
        picked.add(made.assignee_id)
    assert picked == {a, b}
    made = await store.create_ticket(conn, store.NewTicket(
        subject="x", body="y", source="admin", partner_id=pid, customer_id=cid, group_id=nobody_group), now=NOW)
    assert made is not None and made.assignee_id is None and set(made.notify) == {a, b}
    assert (await ticket(conn, made.ticket_id))["assignee_id"] is None


async def test_an_automatic_ticket_is_made_once_per_cause(conn: asyncpg.Connection) -> None:
    new = store.NewTicket(subject="Tariff Home 50 changed", body="price 30 → 35", source="rule", rule_key="tariff:1:x")
    assert await store.create_ticket(conn, new, now=NOW) is not None
    assert await store.create_ticket(conn, new, now=NOW) is None
    assert await conn.fetchval("SELECT count(*) FROM tickets") == 1


async def test_close_after_seven_days_waiting_on_the_customer_with_a_canned_reply(conn: asyncpg.Connection) -> None:
    pid = await partner(conn)
    cid = await customer(conn, pid, 1, email="anna@example.at")
    await conn.execute("INSERT INTO notification_settings (partner_id, mail_from) "
                       "VALUES (NULL, 'Help <help@isp.example>')")
    reply = await conn.fetchval(
        "INSERT INTO ticket_canned_replies (name, body) VALUES ('closing', "
        "'Dear {{ customer.name }}, we close #{{ ticket.id }}. You wrote: {{ ticketMessage.message | raw }}') "
        "RETURNING id")
    await conn.execute("INSERT INTO ticket_rules (name, condition, action) VALUES ('close idle', $1, $2)",
                       {"status": "waiting_customer", "idle_hours": 168},
                       {"set_status": "resolved", "canned_reply_id": reply})
    idle, fresh = await open_ticket(conn, cid, pid), await open_ticket(conn, cid, pid)
    for tid, when in ((idle, NOW), (fresh, NOW + dt.timedelta(days=6))):
        await store.add_message(conn, tid, store.NewMessage(Author.STAFF, "Does it work now?"), now=when)
    [rule] = await rules_store.rules(conn)
    week_later = NOW + dt.timedelta(days=7, minutes=1)

    found = await rules_store.candidates(conn, rule, week_later)
    assert [f.id for f in found] == [idle]
    applied = await rules_store.apply(conn, rule, idle, now=week_later)
    assert applied is not None and applied.changes.status == "resolved"
    t = await ticket(conn, idle)
    assert (t["status"], t["resolved_at"]) == ("resolved", week_later)
    sent = await conn.fetchrow("SELECT recipient, subject, body, reply_headers FROM messages "
                               "WHERE kind = 'ticket_reply'")
    assert sent is not None
    assert sent["recipient"] == "anna@example.at" and f"[#{idle}]" in sent["subject"]
    assert sent["body"].startswith(f"Dear Customer 1, we close #{idle}. You wrote: Since today")
    assert sent["reply_headers"]["message_id"].endswith("@isp.example>")
    # again: nothing is due any more
    assert await rules_store.candidates(conn, rule, week_later) == []
    assert await rules_store.apply(conn, rule, idle, now=week_later) is None
    assert await conn.fetchval("SELECT count(*) FROM messages") == 1
    assert (await ticket(conn, fresh))["status"] == "waiting_customer"


def test_a_rule_with_an_unknown_key_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown condition key colour"):
        rules_store.rule_of({"id": 1, "name": "x", "enabled": True, "condition": {"colour": "red"}, "action": {}})
