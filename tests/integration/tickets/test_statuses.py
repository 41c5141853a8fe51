"""Support → Ticket statuses: a status of the operator's own is added (its code checked as the
database's CHECK), renamed, reordered, closed, shown at once in the ticket list's filter, the
ticket page's select and the rules' choices, and deleted only while no ticket is in it and no rule
names it (409, saying why); a built-in one is renamed and reordered but never deleted nor opened
or closed; a partner's administrator reads and is refused changing (403); the API does the same
(422 for bad input), and every change is a line of the operations log."""

from __future__ import annotations

import re

import asyncpg

from tests.integration.admin import conftest as admin_fixtures
from tests.integration.admin.conftest import Admin, api_key, call, logged_in
from tests.integration.admin.test_devices import oplog, partner_client

admin = admin_fixtures.admin  # the admin app on 127.0.0.1 (a fixture)


def field_error(html: str, name: str) -> str:
    m = re.search(rf'<p class="error" id="e-{re.escape(name)}">([^<]*)</p>', html)
    return m.group(1).replace("&#39;", "'") if m else ""


def banner(html: str) -> str:
    m = re.search(r'<p class="error banner" role="alert"[^>]*>([^<]*)</p>', html)
    return m.group(1).replace("&#39;", "'") if m else ""


async def ticket(conn: asyncpg.Connection, status: str = "new") -> int:
    return int(await conn.fetchval("INSERT INTO tickets (subject, requester_email, source, status) "
                                   "VALUES ('Test', 'a@b.example', 'admin', $1) RETURNING id", status))


async def test_an_own_status_is_added_changed_offered_and_deleted_when_unused(admin: Admin,
                                                                              conn: asyncpg.Connection) -> None:
    async with await logged_in(admin) as c:
        status, body = await c.get("/admin/tickets/statuses")
        assert status == 200 and "Waiting on customer" in body and 'href="/admin/tickets/statuses"' in body
        for form, field, words in [({"code": "Parts", "title": "Parts"}, "code", "lower case letters"),
                                   ({"code": "9parts", "title": "Parts"}, "code", "starting with a letter"),
                                   ({"code": "a" * 41, "title": "Parts"}, "code", "at most 40"),
                                   ({"code": "parts", "title": "  "}, "title", "is required"),
                                   ({"code": "new", "title": "Parts"}, "code", "the code new is taken"),
                                   ({"code": "parts", "title": "resolved"}, "title", "another status has this title"),
                                   ({"code": "parts", "title": "Parts", "position": "40000"}, "position", "32767")]:
            status, body, _ = await c.post("/admin/tickets/statuses", form)
            assert status == 422 and words in field_error(body, field), (form, field_error(body, field))
        assert await conn.fetchval("SELECT count(*) FROM ticket_statuses") == 5
        status, body, url = await c.post("/admin/tickets/statuses", {"code": "waiting_parts",
                                                                     "title": "Waiting on parts"})
        assert status == 200 and url.endswith("?done=added") and "Waiting on parts" in body
        row = await conn.fetchrow("SELECT * FROM ticket_statuses WHERE code = 'waiting_parts'")
        assert row is not None and not row["builtin"] and not row["closed"] and row["position"] == 60
        # closed and moved to the top: the lists show it first
        status, body, url = await c.post("/admin/tickets/statuses/waiting_parts",
                                         {"title": "Parts ordered", "position": "5", "closed": "1"})
        assert url.endswith("?done=saved"), (status, url, re.findall(r"class=\"error[^>]*>[^<]*", body))
        row = await conn.fetchrow("SELECT * FROM ticket_statuses WHERE code = 'waiting_parts'")
        assert row is not None and row["title"] == "Parts ordered" and row["closed"] and row["position"] == 5
        # the ticket list's filter, the ticket's select and the rules' choices offer it
        ticket_id = await ticket(conn)
        for path in ("/admin/tickets", f"/admin/tickets/{ticket_id}", "/admin/tickets/rules/new"):
            status, body = await c.get(path)
            assert status == 200 and 'value="waiting_parts"' in body and "Parts ordered" in body, path
        # a ticket moved into it counts as resolved
        status, body, _ = await c.post(f"/admin/tickets/{ticket_id}", {"status": "waiting_parts",
                                                                        "priority": "medium", "type": "question"})
        assert status == 200, body
        assert await conn.fetchval("SELECT resolved_at IS NOT NULL FROM tickets WHERE id = $1", ticket_id)
        # in use by a ticket, then by a rule: refused, saying why
        status, body, _ = await c.post("/admin/tickets/statuses/waiting_parts/delete", {})
        assert status == 409 and "1 ticket is in Parts ordered (waiting_parts)" in banner(body), banner(body)
        await conn.execute("UPDATE tickets SET status = 'new' WHERE id = $1", ticket_id)
        await conn.execute("INSERT INTO ticket_rules (name, condition, action) VALUES ('Chase parts', "
                           "'{\"status\": \"waiting_parts\", \"idle_hours\": 48}', '{\"set_priority\": \"high\"}')")
        status, body, _ = await c.post("/admin/tickets/statuses/waiting_parts/delete", {})
        assert status == 409 and "the rules Chase parts name" in banner(body), banner(body)
        await conn.execute("DELETE FROM ticket_rules")
        status, body, url = await c.post("/admin/tickets/statuses/waiting_parts/delete", {})
        assert url.endswith("?done=deleted") and "waiting_parts" not in body
        assert not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM ticket_statuses WHERE code = 'waiting_parts')")
        status, _, _ = await c.post("/admin/tickets/statuses/waiting_parts/delete", {})
        assert status == 404
    assert [r["action"] for r in await oplog(admin, "ticket_status")] == ["create", "update", "delete"]


async def test_a_builtin_status_is_renamed_and_reordered_only(admin: Admin, conn: asyncpg.Connection) -> None:
    async with await logged_in(admin) as c:
        await c.get("/admin/tickets/statuses")
        # its closed box is ignored: resolved stays closed, new stays open
        status, body, url = await c.post("/admin/tickets/statuses/resolved", {"title": "Done", "position": "1"})
        assert url.endswith("?done=saved"), (status, url)
        status, body, url = await c.post("/admin/tickets/statuses/new", {"title": "Fresh", "position": "10",
                                                                        "closed": "1"})
        assert status == 200
        rows = {r["code"]: r for r in await conn.fetch("SELECT * FROM ticket_statuses")}
        resolved = rows["resolved"]
        assert (resolved["title"], resolved["closed"], resolved["position"]) == ("Done", True, 1)
        assert (rows["new"]["title"], rows["new"]["closed"]) == ("Fresh", False)
        status, body, _ = await c.post("/admin/tickets/statuses/new", {"title": "", "position": "10"})
        assert status == 422 and field_error(body, "title-new") == "is required"
        status, body, _ = await c.post("/admin/tickets/statuses/new/delete", {})
        assert status == 409 and "is built in" in banner(body)
        assert await conn.fetchval("SELECT count(*) FROM ticket_statuses") == 5
        # the lists put it first now
        status, body = await c.get("/admin/tickets/statuses")
        assert body.index('id="status-resolved"') < body.index('id="status-new"')
        assert 'id="delete-new"' not in body


async def test_a_partners_administrator_reads_but_does_not_change_statuses(admin: Admin,
                                                                           conn: asyncpg.Connection) -> None:
    partner = await conn.fetchval("INSERT INTO partners (name) VALUES ('Alpha Net') RETURNING id")
    async with await partner_client(admin, "alpha", partner) as c:
        status, body = await c.get("/admin/tickets/statuses")
        assert status == 200 and "Waiting on agent" in body and 'id="add-status"' not in body
        for path, form in [("/admin/tickets/statuses", {"code": "parts", "title": "Parts"}),
                           ("/admin/tickets/statuses/new", {"title": "Fresh", "position": "10"}),
                           ("/admin/tickets/statuses/new/delete", {})]:
            status, _, _ = await c.post(path, form)
            assert status == 403, path
    key = await api_key(conn, "super", partner_id=partner)
    assert (await call(admin, key, "GET", "/tickets/statuses"))[0] == 200
    assert (await call(admin, key, "POST", "/tickets/statuses", {"code": "parts", "title": "Parts"}))[0] == 403
    assert (await call(admin, key, "PATCH", "/tickets/statuses/new", {"title": "Fresh"}))[0] == 403
    # a role without support.*: not even the list
    finance = await api_key(conn, "finance")
    assert (await call(admin, finance, "GET", "/tickets/statuses"))[0] == 403
    assert await conn.fetchval("SELECT title FROM ticket_statuses WHERE code = 'new'") == "New"


async def test_the_api_lists_adds_changes_and_deletes_statuses(admin: Admin, conn: asyncpg.Connection) -> None:
    key = await api_key(conn)
    status, found = await call(admin, key, "GET", "/tickets/statuses")
    assert status == 200 and [s["code"] for s in found] == ["new", "in_progress", "waiting_agent",
                                                            "waiting_customer", "resolved"]
    assert found[0] == {"code": "new", "title": "New", "closed": False, "builtin": True, "position": 10,
                        "tickets": 0}
    for body in ({"code": "Bad-Code", "title": "x"}, {"code": "spam", "title": ""}, {"code": "spam"},
                 {"code": "spam", "title": "Spam", "position": -1}, {"code": "new", "title": "Again"},
                 {"code": "spam", "title": "two\nlines"}):
        status, problem = await call(admin, key, "POST", "/tickets/statuses", body)
        assert status == 422, (body, problem)
    status, made = await call(admin, key, "POST", "/tickets/statuses", {"code": "spam", "title": "Spam",
                                                                        "closed": True, "position": 70})
    assert status == 201 and made == {"code": "spam", "title": "Spam", "closed": True, "builtin": False,
                                      "position": 70, "tickets": 0}
    status, changed = await call(admin, key, "PATCH", "/tickets/statuses/spam", {"closed": False, "title": "Junk"})
    assert status == 200 and (changed["title"], changed["closed"], changed["position"]) == ("Junk", False, 70)
    status, problem = await call(admin, key, "PATCH", "/tickets/statuses/resolved", {"closed": False})
    assert status == 409 and "is built in" in problem["detail"]
    status, changed = await call(admin, key, "PATCH", "/tickets/statuses/resolved", {"title": "Closed", "closed": True})
    assert status == 200 and changed["title"] == "Closed"
    assert (await call(admin, key, "PATCH", "/tickets/statuses/nope", {"title": "x"}))[0] == 404
    assert (await call(admin, key, "PATCH", "/tickets/statuses/spam", {"position": 99999}))[0] == 422
    # a ticket in it: 409, saying so; a built-in one never goes
    ticket_id = await ticket(conn, "spam")
    status, listed = await call(admin, key, "GET", "/tickets/statuses")
    assert {s["code"]: s["tickets"] for s in listed}["spam"] == 1
    status, problem = await call(admin, key, "DELETE", "/tickets/statuses/spam")
    assert status == 409 and "1 ticket is in Junk (spam)" in problem["detail"]
    status, problem = await call(admin, key, "DELETE", "/tickets/statuses/new")
    assert status == 409 and "is built in" in problem["detail"]
    await conn.execute("UPDATE tickets SET status = 'new' WHERE id = $1", ticket_id)
    status, gone = await call(admin, key, "DELETE", "/tickets/statuses/spam")
    assert status == 200 and gone["code"] == "spam"
    assert (await call(admin, key, "DELETE", "/tickets/statuses/spam"))[0] == 404
    actions = [(r["action"], r["summary"]) for r in await oplog(admin, "ticket_status")]
    assert [a for a, _ in actions] == ["create", "update", "update", "delete"]
    assert actions[1][1] == "changed ticket status spam: title, closed"
