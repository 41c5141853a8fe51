"""Support → Deny list: the lines every inbox shares (inbox_id NULL) are checked as the intake takes
them (a regular expression that does not compile or could backtrack: refused with its sentence),
added and deleted, listed apart from an inbox's own lines, and tried with the test box (the
intake's own matcher, over the shared lines or an inbox's); a partner's administrator reads and
tests them but is refused changing them (403); the API does the same (422 for bad input), and
every change is a line of the operations log."""

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


def result(html: str) -> str:
    m = re.search(r'<div id="test-result" role="status">(.*?)</div>', html, re.S)
    return " ".join(re.sub(r"<[^>]+>", "", m.group(1)).replace("&#39;", "'").split()) if m else ""


async def inbox(conn: asyncpg.Connection, partner_name: str = "Alpha Net") -> tuple[int, int]:
    partner = await conn.fetchval("INSERT INTO partners (name) VALUES ($1) RETURNING id", partner_name)
    inbox_id = await conn.fetchval(
        "INSERT INTO ticket_inboxes (partner_id, name, address, host, username, password) "
        "VALUES ($1, 'Support', $2, 'imap.example', 'u', 'p') RETURNING id",
        partner, f"support@{partner_name.split(maxsplit=1)[0].lower()}.example")
    return int(partner), int(inbox_id)


async def test_shared_lines_are_checked_added_tested_and_deleted(admin: Admin, conn: asyncpg.Connection) -> None:
    _, inbox_id = await inbox(conn)
    await conn.execute("INSERT INTO ticket_denylist (inbox_id, field, match, pattern) "
                       "VALUES ($1, 'subject', 'contains', 'lottery')", inbox_id)
    async with await logged_in(admin) as c:
        status, body = await c.get("/admin/tickets/denylist")
        assert status == 200 and 'href="/admin/tickets/denylist"' in body
        assert "lottery" not in body  # an inbox's own line is on its page
        for form, words in [({"field": "subject", "match": "regex", "pattern": "(a+)+"}, "backtracks"),
                            ({"field": "subject", "match": "regex", "pattern": "([a-z"}, "not a regular expression"),
                            ({"field": "body", "match": "regex", "pattern": r"(x)\1"}, "backreference"),
                            ({"field": "body", "match": "regex", "pattern": "x" * 201}, "longer than 200"),
                            ({"field": "body", "match": "contains", "pattern": "   "}, "")]:
            status, body, _ = await c.post("/admin/tickets/denylist", form)
            assert status == 422 and words in field_error(body, "pattern"), (form, field_error(body, "pattern"))
            assert form["pattern"] in body or not form["pattern"].strip()  # the form keeps what was typed
        status, body, _ = await c.post("/admin/tickets/denylist", {"field": "headers", "match": "exact",
                                                                   "pattern": "x"})
        assert status == 422 and field_error(body, "field")
        assert await conn.fetchval("SELECT count(*) FROM ticket_denylist WHERE inbox_id IS NULL") == 0
        status, body, url = await c.post("/admin/tickets/denylist", {"field": "address", "match": "ends",
                                                                     "pattern": "@spam.example"})
        assert status == 200 and url.endswith("?done=added") and "@spam.example" in body
        await c.post("/admin/tickets/denylist", {"field": "subject", "match": "regex",
                                                 "pattern": r"^\[?viagra\]?\b"})
        lines = await conn.fetch("SELECT * FROM ticket_denylist WHERE inbox_id IS NULL ORDER BY id")
        assert [(r["field"], r["match"]) for r in lines] == [("address", "ends"), ("subject", "regex")]
        # the test box: the line that refuses, or none
        for form, said in [
                ({"address": "King <King@SPAM.example>", "subject": "hi", "body": ""},
                 "Refused by the shared line address ends @spam.example"),
                ({"address": "anna@example.at", "subject": "[VIAGRA] cheap", "body": ""},
                 r"Refused by the shared line subject regex ^\[?viagra\]?\b"),
                ({"address": "anna@example.at", "subject": "You won the lottery", "body": "x"}, "No line refuses it"),
                ({"address": "anna@example.at", "subject": "You won the lottery", "body": "x",
                  "inbox_id": str(inbox_id)}, "Refused by the inbox's own line subject contains lottery")]:
            status, body, _ = await c.post("/admin/tickets/denylist/test", form)
            assert status == 200 and result(body).startswith(said), (form, result(body))
        status, body, _ = await c.post("/admin/tickets/denylist/test", {"subject": "x", "inbox_id": "999999"})
        assert status == 422 and field_error(body, "inbox_id") == "no such inbox" and not result(body)
        status, body, url = await c.post(f"/admin/tickets/denylist/{lines[0]['id']}/delete", {})
        assert url.endswith("?done=deleted") and "@spam.example" not in body
        # an inbox's own line is not the shared list's to delete
        own = await conn.fetchval("SELECT id FROM ticket_denylist WHERE inbox_id = $1", inbox_id)
        status, _, _ = await c.post(f"/admin/tickets/denylist/{own}/delete", {})
        assert status == 404
    assert await conn.fetchval("SELECT count(*) FROM ticket_denylist") == 2
    assert [r["action"] for r in await oplog(admin, "ticket_denylist")] == ["create", "create", "delete"]


async def test_a_partners_administrator_reads_and_tests_but_does_not_change(admin: Admin,
                                                                           conn: asyncpg.Connection) -> None:
    partner, mine = await inbox(conn)
    _, theirs = await inbox(conn, "Beta Fibre")
    line = await conn.fetchval("INSERT INTO ticket_denylist (field, match, pattern) "
                               "VALUES ('body', 'contains', 'unsubscribe') RETURNING id")
    async with await partner_client(admin, "alpha", partner) as c:
        status, body = await c.get("/admin/tickets/denylist")
        assert status == 200 and "unsubscribe" in body and 'id="add-line"' not in body
        assert "support@alpha.example" in body and "support@beta.example" not in body  # the test's inboxes
        status, body, _ = await c.post("/admin/tickets/denylist/test", {"body": "To Unsubscribe click",
                                                                        "inbox_id": str(mine)})
        assert status == 200 and result(body).startswith("Refused by the shared line body contains unsubscribe")
        status, body, _ = await c.post("/admin/tickets/denylist/test", {"body": "x", "inbox_id": str(theirs)})
        assert status == 422 and field_error(body, "inbox_id") == "no such inbox"
        for path, form in [("/admin/tickets/denylist", {"field": "body", "match": "contains", "pattern": "x"}),
                           (f"/admin/tickets/denylist/{line}/delete", {})]:
            status, _, _ = await c.post(path, form)
            assert status == 403, path
    key = await api_key(conn, "super", partner_id=partner)
    assert (await call(admin, key, "GET", "/tickets/denylist"))[0] == 200
    assert (await call(admin, key, "POST", "/tickets/denylist", {"field": "body", "match": "exact",
                                                                 "pattern": "x"}))[0] == 403
    assert (await call(admin, key, "DELETE", f"/tickets/denylist/{line}"))[0] == 403
    assert (await call(admin, await api_key(conn, "finance"), "GET", "/tickets/denylist"))[0] == 403
    assert await conn.fetchval("SELECT count(*) FROM ticket_denylist") == 1


async def test_the_api_lists_adds_changes_tests_and_deletes_shared_lines(admin: Admin,
                                                                         conn: asyncpg.Connection) -> None:
    _, inbox_id = await inbox(conn)
    await conn.execute("INSERT INTO ticket_denylist (inbox_id, field, match, pattern) "
                       "VALUES ($1, 'address', 'exact', 'own@example.net')", inbox_id)
    key = await api_key(conn)
    assert await call(admin, key, "GET", "/tickets/denylist") == (200, [])
    for body, field in [({"field": "subject", "match": "regex", "pattern": "(a|ab)*"}, "pattern"),
                        ({"field": "subject", "match": "regex", "pattern": "[z-a]"}, "pattern"),
                        ({"field": "subject", "match": "like", "pattern": "x"}, "match"),
                        ({"field": "from", "match": "exact", "pattern": "x"}, "field"),
                        ({"field": "subject", "match": "exact", "pattern": ""}, "pattern"),
                        ({"field": "subject", "match": "exact"}, "")]:
        status, problem = await call(admin, key, "POST", "/tickets/denylist", body)
        assert status == 422, (body, problem)
        assert field in problem.get("errors", {}) or field == "", problem
    status, made = await call(admin, key, "POST", "/tickets/denylist", {"field": "subject", "match": "starts",
                                                                        "pattern": " [SPAM] "})
    assert status == 201 and made == {"id": made["id"], "field": "subject", "match": "starts", "pattern": "[SPAM]",
                                      "inbox_id": None}
    status, problem = await call(admin, key, "PATCH", f"/tickets/denylist/{made['id']}", {"match": "regex",
                                                                                          "pattern": "(x+)+y"})
    assert status == 422 and "backtracks" in problem["errors"]["pattern"]
    status, changed = await call(admin, key, "PATCH", f"/tickets/denylist/{made['id']}", {"match": "contains"})
    assert status == 200 and (changed["match"], changed["pattern"]) == ("contains", "[SPAM]")
    status, verdict = await call(admin, key, "POST", "/tickets/denylist/test", {"subject": "Re: [spam] offer"})
    assert status == 200 and verdict == {"refused": True, "line": changed}
    status, verdict = await call(admin, key, "POST", "/tickets/denylist/test", {"address": "OWN@example.net"})
    assert verdict == {"refused": False, "line": None}
    status, verdict = await call(admin, key, "POST", "/tickets/denylist/test", {"address": "OWN@example.net",
                                                                              "inbox_id": inbox_id})
    assert verdict["refused"] and verdict["line"]["inbox_id"] == inbox_id
    assert (await call(admin, key, "POST", "/tickets/denylist/test", {"inbox_id": 999999}))[0] == 422
    status, listed = await call(admin, key, "GET", "/tickets/denylist")
    assert status == 200 and listed == [changed]
    own = await conn.fetchval("SELECT id FROM ticket_denylist WHERE inbox_id = $1", inbox_id)
    assert (await call(admin, key, "PATCH", f"/tickets/denylist/{own}", {"pattern": "x"}))[0] == 404
    assert (await call(admin, key, "DELETE", f"/tickets/denylist/{own}"))[0] == 404
    assert await call(admin, key, "DELETE", f"/tickets/denylist/{made['id']}") == (200, {"id": made["id"]})
    assert (await call(admin, key, "DELETE", f"/tickets/denylist/{made['id']}"))[0] == 404
    assert [r["action"] for r in await oplog(admin, "ticket_denylist")] == ["create", "update", "delete"]
