"""Merging and splitting tickets, and watchers (admin/tickets/merge.py): a merge moves the
messages, CC and watchers, keeps the earlier first response and closes the source (merged, its
reply form gone); it refuses a ticket into itself, a merged one and another partner's (404); a
split moves the chosen customer message and the later ones to a new ticket; watch and unwatch;
the API of each; the operations log."""

from __future__ import annotations

import datetime as dt

from admin.tickets import store
from admin.tickets.automation import Author
from tests.integration.admin.conftest import Admin, api_key, call, logged_in
from tests.integration.admin.test_tickets import NOW, one, oplog, partner_client, world


async def _second_ticket(admin: Admin, customer: int, partner: int) -> tuple[int, list[int]]:
    """Another ticket of the customer: a customer message, a staff reply (its first response), a
    customer message; with a CC address and a watcher. (its id, its messages' ids)."""
    async with admin.pool.acquire() as conn, conn.transaction():
        created = await store.create_ticket(conn, store.NewTicket(
            "Still no internet", "Day two without a line.", "email", partner_id=partner, customer_id=customer,
            cc=("neighbour@example.net", "ALPHA-cc@example.net")), now=NOW - dt.timedelta(hours=2))
        assert created is not None
        staff = await store.add_message(conn, created.ticket_id, store.NewMessage(Author.STAFF, "Looking at it."),
                                        now=NOW - dt.timedelta(hours=1))
        again = await store.add_message(conn, created.ticket_id, store.NewMessage(Author.CUSTOMER, "Any news?"),
                                        now=NOW - dt.timedelta(minutes=30))
        agent = await conn.fetchval("SELECT id FROM administrators WHERE login = 'agent'")
        await conn.execute("INSERT INTO ticket_watchers (ticket_id, administrator_id) VALUES ($1, $2)",
                           created.ticket_id, agent)
        assert staff is not None and again is not None
        return created.ticket_id, [created.message_id, staff, again]


async def test_a_merge_moves_messages_cc_and_watchers_and_closes_the_source(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        await conn.execute("UPDATE tickets SET cc = '{alpha-cc@example.net}' WHERE id = $1", w.ticket_a)
    source, moved = await _second_ticket(admin, w.customer_a, w.partner_a)
    async with await logged_in(admin) as c:
        status, body = await c.get(f"/admin/tickets/{source}")
        assert status == 200 and 'id="merge-form"' in body and 'id="reply-form"' in body
        status, body, url = await c.post(f"/admin/tickets/{source}/merge", {"into": str(w.ticket_a)})
        assert status == 200 and url.endswith(f"/admin/tickets/{w.ticket_a}?done=merged"), body
        assert "Day two without a line." in body and "Any news?" in body
        assert f"#{source} merged into this ticket" in body
        status, body = await c.get(f"/admin/tickets/{source}")
        assert status == 200 and 'id="merged-into"' in body
        assert f'<a href="/admin/tickets/{w.ticket_a}">#{w.ticket_a}</a>' in body
        assert 'id="reply-form"' not in body and 'id="merge-form"' not in body and "Split off" not in body
        assert f"Merged into #{w.ticket_a}" in body
        status, body, _ = await c.post(f"/admin/tickets/{source}/messages", {"body": "late", "kind": "note"})
        assert status == 409 and f"merged into #{w.ticket_a}" in body  # written where the thread is now
        # a merged ticket is merged no more, nor is anything merged into it
        status, body, _ = await c.post(f"/admin/tickets/{source}/merge", {"into": str(w.ticket_unknown)})
        assert status == 422 and "merged into" in body
        status, body, _ = await c.post(f"/admin/tickets/{w.ticket_unknown}/merge", {"into": str(source)})
        assert status == 422 and 'id="e-into"' in body
        status, body, _ = await c.post(f"/admin/tickets/{w.ticket_a}/merge", {"into": str(w.ticket_a)})
        assert status == 422 and "itself" in body
        status, _, _ = await c.post(f"/admin/tickets/{w.ticket_a}/merge", {"into": "999999999"})
        assert status == 404
        status, body, _ = await c.post(f"/admin/tickets/{w.ticket_a}/merge", {"into": str(w.ticket_b)})
        assert status == 422 and "different partners" in body
    async with admin.pool.acquire() as conn:
        s = await one(conn, "SELECT * FROM tickets WHERE id = $1", source)
        t = await one(conn, "SELECT * FROM tickets WHERE id = $1", w.ticket_a)
        on_target = await conn.fetch("SELECT id, author, body FROM ticket_messages WHERE ticket_id = $1 ORDER BY id",
                                     w.ticket_a)
        on_source = await conn.fetch("SELECT author, body FROM ticket_messages WHERE ticket_id = $1", source)
        watchers = await conn.fetchval("SELECT array_agg(administrator_id) FROM ticket_watchers WHERE ticket_id = $1",
                                       w.ticket_a)
        merged = await conn.fetchval("SELECT count(*) FROM tickets WHERE merged_into IS NOT NULL")
    assert (s["merged_into"], s["status"]) == (w.ticket_a, "resolved") and s["resolved_at"] is not None
    assert set(moved) <= {m["id"] for m in on_target}
    assert [(m["author"], m["body"]) for m in on_source] == [("system", f"Merged into #{w.ticket_a}")]
    assert t["cc"] == ["alpha-cc@example.net", "neighbour@example.net"]  # no address twice
    assert t["first_response_at"] == NOW - dt.timedelta(hours=1)  # the source's, the earlier
    assert watchers == [w.agent] and merged == 1
    logged = await oplog(admin, "ticket")
    assert [r["action"] for r in logged] == ["merge"] and logged[0]["object_id"] == source
    assert logged[0]["after"]["merged_into"] == w.ticket_a and logged[0]["customer_id"] == w.customer_a


async def test_another_partners_ticket_is_not_found_for_a_merge(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        key = await api_key(conn, partner_id=w.partner_a)
    async with await partner_client(admin, "alpha", w.partner_a) as c:
        await c.get(f"/admin/tickets/{w.ticket_a}")
        for source, target in ((w.ticket_a, w.ticket_b), (w.ticket_b, w.ticket_a)):
            status, _, _ = await c.post(f"/admin/tickets/{source}/merge", {"into": str(target)})
            assert status == 404, (source, target)
    for source, target in ((w.ticket_a, w.ticket_b), (w.ticket_b, w.ticket_a)):
        status, _ = await call(admin, key, "POST", f"/tickets/{source}/merge", {"into": target})
        assert status == 404
    status, _ = await call(admin, key, "POST", f"/tickets/{w.ticket_b}/split", {"message_id": 1})
    assert status == 404
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tickets WHERE merged_into IS NOT NULL") == 0
        assert await conn.fetchval("SELECT count(*) FROM ticket_messages WHERE ticket_id = $1", w.ticket_b) == 1


async def test_the_api_merges_and_shows_merged_into_and_watchers(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        key = await api_key(conn)
    source, _ = await _second_ticket(admin, w.customer_a, w.partner_a)
    status, got = await call(admin, key, "POST", f"/tickets/{source}/merge", {"into": w.ticket_unknown})
    assert status == 200, got
    assert got["id"] == w.ticket_unknown and got["merged_into"] is None
    assert [wa["login"] for wa in got["watchers"]] == ["agent"]
    assert "Any news?" in [m["body"] for m in got["messages"]]
    assert got["messages"][-1]["body"] == f"#{source} merged into this ticket"
    status, got = await call(admin, key, "GET", f"/tickets/{source}")
    assert status == 200 and got["merged_into"] == w.ticket_unknown and got["status"] == "resolved"
    status, problem = await call(admin, key, "POST", f"/tickets/{source}/merge", {"into": w.ticket_a})
    assert status == 422, problem
    status, problem = await call(admin, key, "POST", f"/tickets/{w.ticket_a}/merge", {"into": w.ticket_a})
    assert status == 422, problem
    status, problem = await call(admin, key, "POST", f"/tickets/{w.ticket_a}/merge", {"into": 0})
    assert status == 422, problem


async def test_a_split_moves_the_message_and_the_later_ones_to_a_new_ticket(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        key = await api_key(conn)
    source, [first, staff, again] = await _second_ticket(admin, w.customer_a, w.partner_a)
    async with admin.pool.acquire() as conn, conn.transaction():
        later = await store.add_message(conn, source, store.NewMessage(Author.NOTE, "Later note"), now=NOW)
    async with await logged_in(admin) as c:
        status, body = await c.get(f"/admin/tickets/{source}")
        assert status == 200 and body.count("Split off from here") == 1  # the second customer message only
        for message_id, error in ((first, "first message"), (staff, "only a customer"), (999999999, "no such message")):
            status, body, _ = await c.post(f"/admin/tickets/{source}/split", {"message_id": str(message_id)})
            assert status == 422 and error in body and 'id="e-message_id"' in body, (message_id, body)
        status, body, url = await c.post(f"/admin/tickets/{source}/split", {"message_id": str(again)})
        assert status == 200 and "done=split" in url, body
        assert f"Split from #{source}: Still no internet" in body
    async with admin.pool.acquire() as conn:
        new_id = await conn.fetchval("SELECT ticket_id FROM ticket_messages WHERE id = $1", again)
        new = await one(conn, "SELECT * FROM tickets WHERE id = $1", new_id)
        on_new = await conn.fetch("SELECT id, author FROM ticket_messages WHERE ticket_id = $1 ORDER BY id", new_id)
        on_source = await conn.fetch("SELECT id, author, body FROM ticket_messages WHERE ticket_id = $1 ORDER BY id",
                                     source)
    assert new_id != source and (new["customer_id"], new["partner_id"], new["status"]) == (
        w.customer_a, w.partner_a, "new")
    assert new["subject"] == f"Split from #{source}: Still no internet" and new["source"] == "admin"
    assert [m["id"] for m in on_new][:2] == [again, later] and on_new[-1]["author"] == "system"
    assert [m["id"] for m in on_source][:2] == [first, staff]
    assert on_source[-1]["body"].startswith(f"Split into #{new_id}")
    assert [r["action"] for r in await oplog(admin, "ticket")] == ["split"]
    # the API, with a subject of its own
    status, got = await call(admin, key, "POST", f"/tickets/{new_id}/split", {"message_id": later})
    assert status == 422, got  # a note is no customer's message
    async with admin.pool.acquire() as conn, conn.transaction():
        answer = await store.add_message(conn, new_id, store.NewMessage(Author.CUSTOMER, "Another thing"), now=NOW)
    status, got = await call(admin, key, "POST", f"/tickets/{new_id}/split",
                             {"message_id": answer, "subject": "Another thing"})
    assert status == 201, got
    assert got["subject"] == "Another thing" and got["source"] == "api"
    assert [m["body"] for m in got["messages"]] == ["Another thing", f"Split from #{new_id}"]


async def test_watch_and_unwatch(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        w = await world(conn)
        key = await api_key(conn)
    async with await logged_in(admin) as c:
        status, body = await c.get(f"/admin/tickets/{w.ticket_a}")
        assert status == 200 and "Nobody watches this ticket." in body and 'id="watch-button">Watch<' in body
        status, body, url = await c.post(f"/admin/tickets/{w.ticket_a}/watch")
        assert status == 200 and "done=watch" in url
        assert 'id="watch-button">Unwatch<' in body and '<ul class="watchers"><li>root</li>' in body
        status, body, _ = await c.post(f"/admin/tickets/{w.ticket_a}/watch")  # twice: still once
        assert status == 200 and body.count("<li>root</li>") == 1
        status, got = await call(admin, key, "GET", f"/tickets/{w.ticket_a}")
        assert [wa["login"] for wa in got["watchers"]] == ["root"] and got["merged_into"] is None
        status, body, url = await c.post(f"/admin/tickets/{w.ticket_a}/unwatch")
        assert status == 200 and "done=unwatch" in url and "Nobody watches this ticket." in body
        status, _, _ = await c.post("/admin/tickets/999999999/watch")
        assert status == 404
    async with await partner_client(admin, "alpha", w.partner_a) as c:
        await c.get(f"/admin/tickets/{w.ticket_a}")
        status, _, _ = await c.post(f"/admin/tickets/{w.ticket_b}/watch")
        assert status == 404
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ticket_watchers") == 0
    assert [r["action"] for r in await oplog(admin, "ticket")] == ["watch", "unwatch"]
