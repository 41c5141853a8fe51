"""The helpdesk's configuration API: inboxes (the password write-only) and their deny-list lines,
groups with members and shifts, canned replies, rules and the automatic tickets' settings are
listed, read, made, changed and (where the pages allow it) deleted, every change in the
operations log; a refusal is 422 with the field's sentence, as the pages say it; a partner's key
finds another partner's rows (and the operator's rules and settings) nowhere (404); a role
without support.* is refused (403); an Idempotency-Key makes a retried POST answer as the first."""

from __future__ import annotations

import json

import aiohttp
import asyncpg

from admin.tickets.intake_store import PASSWORD_PURPOSE
from tests.integration.admin.conftest import Admin, api_key, call, make_admin
from tests.integration.admin.test_devices import oplog
from tests.integration.admin.test_ticket_inboxes import partners

SECRET = "s3cret-imap-pass"
INBOX = {"name": "Support", "address": "support@alpha.example", "host": "imap.alpha.example", "username": "support",
         "password": SECRET, "priority": "high", "since": "2026-01-01"}


async def test_inboxes_and_their_deny_lists(admin: Admin, conn: asyncpg.Connection) -> None:
    mine, other = await partners(conn, "Alpha Net", "Beta Fibre")
    key = await api_key(conn, partner_id=mine)
    theirs = await api_key(conn, partner_id=other)
    operator = await api_key(conn)
    status, body = await call(admin, operator, "POST", "/tickets/inboxes", INBOX)
    assert status == 422 and body["errors"] == {"partner_id": "pick the partner whose mail this is"}
    status, body = await call(admin, key, "POST", "/tickets/inboxes", {**INBOX, "address": "not-an-address"})
    assert status == 422 and "e-mail address" in body["errors"]["address"]
    status, body = await call(admin, key, "POST", "/tickets/inboxes", {**INBOX, "port": 0})
    assert status == 422 and "port" in body["errors"]
    status, body = await call(admin, key, "POST", "/tickets/inboxes", INBOX)
    assert status == 201, body
    inbox = body["id"]
    assert body["partner_id"] == mine and body["priority"] == "high" and body["since"] == "2026-01-01"
    assert "password" not in body and SECRET not in json.dumps(body)
    sealed = await conn.fetchval("SELECT password FROM ticket_inboxes WHERE id = $1", inbox)
    assert admin.keyring.open(sealed, PASSWORD_PURPOSE) == SECRET
    status, body = await call(admin, key, "POST", "/tickets/inboxes", INBOX)
    assert status == 422 and body["errors"] == {"address": "another inbox reads this address"}
    # list and get: never the password
    status, body = await call(admin, key, "GET", "/tickets/inboxes")
    assert status == 200 and [i["id"] for i in body] == [inbox] and "password" not in body[0]
    status, body = await call(admin, key, "GET", f"/tickets/inboxes/{inbox}")
    assert status == 200 and body["username"] == "support" and "password" not in body
    # a change without the password keeps it; with it, seals the new one
    status, body = await call(admin, key, "PATCH", f"/tickets/inboxes/{inbox}", {"port": 143, "enabled": False})
    assert status == 200 and body["port"] == 143 and not body["enabled"] and body["priority"] == "high", body
    assert await conn.fetchval("SELECT password FROM ticket_inboxes WHERE id = $1", inbox) == sealed
    status, body = await call(admin, key, "PATCH", f"/tickets/inboxes/{inbox}", {"password": "n3w"})
    assert status == 200 and "n3w" not in json.dumps(body)
    resealed = await conn.fetchval("SELECT password FROM ticket_inboxes WHERE id = $1", inbox)
    assert admin.keyring.open(resealed, PASSWORD_PURPOSE) == "n3w"
    logged = await oplog(admin, "ticket_inbox")
    assert [r["action"] for r in logged] == ["create", "update", "update"]
    assert all(SECRET not in json.dumps(dict(r), default=str) and "n3w" not in json.dumps(dict(r), default=str)
               for r in logged)
    assert "password" in logged[-1]["summary"] and logged[0]["partner_id"] == mine
    # another partner's key: not found
    for method, path in (("GET", f"/tickets/inboxes/{inbox}"), ("PATCH", f"/tickets/inboxes/{inbox}"),
                         ("GET", f"/tickets/inboxes/{inbox}/denylist")):
        status, _ = await call(admin, theirs, method, path, {} if method == "PATCH" else None)
        assert status == 404, (method, path)
    status, body = await call(admin, theirs, "GET", "/tickets/inboxes")
    assert status == 200 and body == []
    # deny-list lines
    status, body = await call(admin, key, "POST", f"/tickets/inboxes/{inbox}/denylist",
                              {"field": "subject", "match": "regex", "pattern": "(unclosed"})
    assert status == 422 and "pattern" in body["errors"], body
    status, body = await call(admin, key, "POST", f"/tickets/inboxes/{inbox}/denylist",
                              {"field": "address", "match": "ends", "pattern": "@spam.example"})
    assert status == 201 and body["field"] == "address", body
    line = body["id"]
    status, body = await call(admin, key, "GET", f"/tickets/inboxes/{inbox}/denylist")
    assert status == 200 and [d["pattern"] for d in body] == ["@spam.example"]
    status, _ = await call(admin, theirs, "DELETE", f"/tickets/inboxes/{inbox}/denylist/{line}")
    assert status == 404
    status, body = await call(admin, key, "DELETE", f"/tickets/inboxes/{inbox}/denylist/{line}")
    assert status == 200 and body == {"id": line}
    status, _ = await call(admin, key, "DELETE", f"/tickets/inboxes/{inbox}/denylist/{line}")
    assert status == 404
    assert [r["action"] for r in await oplog(admin, "ticket_denylist")] == ["create", "delete"]


async def test_groups_with_members_and_shifts(admin: Admin, conn: asyncpg.Connection) -> None:
    mine, other = await partners(conn, "Alpha Net", "Beta Fibre")
    anna = await make_admin(conn, "anna", partner_id=mine)
    bert = await make_admin(conn, "bert", partner_id=other)
    key = await api_key(conn, partner_id=mine)
    theirs = await api_key(conn, partner_id=other)
    operator = await api_key(conn)
    status, body = await call(admin, key, "POST", "/tickets/groups", {"name": "Level 1", "members": [bert]})
    assert status == 422 and body["errors"] == {"members": "pick enabled administrators of the group's partner"}
    status, body = await call(admin, key, "POST", "/tickets/groups", {"name": "Level 1", "assign_mode": "x"})
    assert status == 422 and "assign_mode" in body["errors"]
    status, body = await call(admin, key, "POST", "/tickets/groups",
                              {"name": "Level 1", "assign_mode": "shift", "members": [anna]})
    assert status == 201 and body["partner_id"] == mine and body["members"] == [anna] and body["shifts"] == [], body
    group = body["id"]
    status, body = await call(admin, key, "POST", "/tickets/groups", {"name": "level 1"})
    assert status == 422 and body["errors"] == {"name": "another group of this partner has this name"}
    # shifts: a member's, crossing midnight
    status, body = await call(admin, key, "POST", f"/tickets/groups/{group}/shifts",
                              {"administrator_id": bert, "weekdays": [0], "starts": "08:00", "ends": "16:00"})
    assert status == 422 and body["errors"] == {"administrator_id": "pick a member of the group"}
    status, body = await call(admin, key, "POST", f"/tickets/groups/{group}/shifts",
                              {"administrator_id": anna, "weekdays": [4, 5], "starts": "22:00", "ends": "06:00"})
    assert status == 201 and body["weekdays"] == [4, 5] and body["starts"] == "22:00:00", body
    shift = body["id"]
    status, body = await call(admin, key, "GET", f"/tickets/groups/{group}")
    assert status == 200 and [s["id"] for s in body["shifts"]] == [shift] and body["assign_mode"] == "shift"
    status, body = await call(admin, key, "PATCH", f"/tickets/groups/{group}", {"name": "First line"})
    assert status == 200 and body["name"] == "First line" and body["members"] == [anna], body
    status, body = await call(admin, operator, "POST", "/tickets/groups", {"name": "Everyone"})
    assert status == 201 and body["partner_id"] is None
    shared = body["id"]
    status, body = await call(admin, key, "GET", "/tickets/groups")
    assert status == 200 and {g["id"] for g in body} == {group, shared}
    status, _ = await call(admin, key, "PATCH", f"/tickets/groups/{shared}", {"name": "Mine now"})
    assert status == 403
    for method, path in (("GET", f"/tickets/groups/{group}"), ("PATCH", f"/tickets/groups/{group}"),
                         ("DELETE", f"/tickets/groups/{group}/shifts/{shift}")):
        status, _ = await call(admin, theirs, method, path, {} if method == "PATCH" else None)
        assert status == 404, (method, path)
    # a member who leaves takes its shift along
    status, body = await call(admin, key, "PATCH", f"/tickets/groups/{group}", {"members": []})
    assert status == 200 and body["members"] == [] and body["shifts"] == []
    status, _ = await call(admin, key, "DELETE", f"/tickets/groups/{group}/shifts/{shift}")
    assert status == 404
    assert [r["action"] for r in await oplog(admin, "ticket_group")] == ["create", "update", "create", "update"]
    assert [r["action"] for r in await oplog(admin, "ticket_shift")] == ["create"]


async def test_canned_replies(admin: Admin, conn: asyncpg.Connection) -> None:
    mine, other = await partners(conn, "Alpha Net", "Beta Fibre")
    key = await api_key(conn, partner_id=mine)
    theirs = await api_key(conn, partner_id=other)
    status, body = await call(admin, key, "POST", "/tickets/canned-replies", {"name": "Hi", "body": "Dear {{ nope"})
    assert status == 422 and set(body["errors"]) == {"body"}
    status, body = await call(admin, key, "POST", "/tickets/canned-replies",
                              {"name": "Hi", "body": "Dear {{ customer.name }}"})
    assert status == 201 and body["partner_id"] == mine and body["partner_name"] == "Alpha Net", body
    reply = body["id"]
    status, body = await call(admin, key, "PATCH", f"/tickets/canned-replies/{reply}", {"name": "Hello"})
    assert status == 200 and body["name"] == "Hello" and body["body"] == "Dear {{ customer.name }}"
    status, body = await call(admin, key, "GET", "/tickets/canned-replies")
    assert status == 200 and [r["id"] for r in body] == [reply]
    for method in ("GET", "PATCH", "DELETE"):
        status, _ = await call(admin, theirs, method, f"/tickets/canned-replies/{reply}",
                               {} if method == "PATCH" else None)
        assert status == 404, method
    # a rule that sends it keeps it
    rule = await conn.fetchval("INSERT INTO ticket_rules (name, condition, action) VALUES ('r', $1, $2) RETURNING id",
                               {"status": "new"}, {"canned_reply_id": reply})
    status, body = await call(admin, key, "DELETE", f"/tickets/canned-replies/{reply}")
    assert status == 409 and "change them first" in body["detail"]
    await conn.execute("DELETE FROM ticket_rules WHERE id = $1", rule)
    status, body = await call(admin, key, "DELETE", f"/tickets/canned-replies/{reply}")
    assert status == 200 and body == {"id": reply}
    status, _ = await call(admin, key, "GET", f"/tickets/canned-replies/{reply}")
    assert status == 404
    assert [r["action"] for r in await oplog(admin, "ticket_canned_reply")] == ["create", "update", "delete"]


async def test_rules_and_settings_are_the_operators(admin: Admin, conn: asyncpg.Connection) -> None:
    (mine,) = await partners(conn, "Alpha Net")
    key = await api_key(conn)
    partner_key = await api_key(conn, partner_id=mine)
    status, body = await call(admin, key, "POST", "/tickets/rules", {"name": "x", "condition": {}, "action": {}})
    assert status == 422 and "no condition" in body["errors"][""] and "no action" in body["errors"][""], body
    status, body = await call(admin, key, "POST", "/tickets/rules", {
        "name": "Close idle", "condition": {"status": "nope"}, "action": {"set_status": "resolved"}})
    assert status == 422 and body["errors"] == {"status": "no such status"}
    status, body = await call(admin, key, "POST", "/tickets/rules", {
        "name": "Close idle", "enabled": False, "condition": {"status": "waiting_customer", "idle_hours": 72,
                                                              "unassigned": False},
        "action": {"set_status": "resolved", "note": "closed for want of an answer"}})
    assert status == 201 and body["condition"] == {"status": "waiting_customer", "idle_hours": 72,
                                                   "unassigned": False}, body
    rule = body["id"]
    assert not body["enabled"] and body["action"]["set_status"] == "resolved"
    status, body = await call(admin, key, "PATCH", f"/tickets/rules/{rule}", {"enabled": True})
    assert status == 200 and body["enabled"] and body["condition"]["idle_hours"] == 72, body
    status, body = await call(admin, key, "PATCH", f"/tickets/rules/{rule}", {"condition": {"priority": "low"}})
    assert status == 200 and body["condition"] == {"priority": "low"}, body
    status, body = await call(admin, key, "GET", "/tickets/rules")
    assert status == 200 and [r["id"] for r in body] == [rule]
    for method, path in (("GET", "/tickets/rules"), ("GET", f"/tickets/rules/{rule}"),
                         ("DELETE", f"/tickets/rules/{rule}"), ("GET", "/tickets/settings"),
                         ("PATCH", "/tickets/settings")):
        status, _ = await call(admin, partner_key, method, path, {} if method == "PATCH" else None)
        assert status == 404, (method, path)
    status, body = await call(admin, key, "DELETE", f"/tickets/rules/{rule}")
    assert status == 200 and body == {"id": rule}
    assert [r["action"] for r in await oplog(admin, "ticket_rule")] == ["create", "update", "update", "delete"]
    # the settings
    status, body = await call(admin, key, "GET", "/tickets/settings")
    assert status == 200 and body["router_drift_minutes"] == 60 and body["tariff_tickets"], body
    status, body = await call(admin, key, "PATCH", "/tickets/settings", {"router_drift_minutes": -1})
    assert status == 422 and "router_drift_minutes" in body["errors"]
    status, body = await call(admin, key, "PATCH", "/tickets/settings", {"group_id": 999999})
    assert status == 422 and body["errors"] == {"group_id": "no such group"}
    status, body = await call(admin, key, "PATCH", "/tickets/settings", {"router_drift_minutes": 0,
                                                                        "tariff_tickets": False})
    assert status == 200 and body["router_drift_minutes"] == 0 and not body["tariff_tickets"]
    assert body["cpe_fault_tickets"]
    logged = await oplog(admin, "ticket_settings")
    assert len(logged) == 1 and "router_drift_minutes" in logged[0]["summary"]


async def test_a_role_without_support_is_refused_and_a_retry_answers_as_the_first(admin: Admin,
                                                                                 conn: asyncpg.Connection) -> None:
    cashier = await api_key(conn, "cashier")
    for method, path in (("GET", "/tickets/inboxes"), ("POST", "/tickets/groups"), ("GET", "/tickets/rules"),
                         ("PATCH", "/tickets/settings"), ("POST", "/tickets/canned-replies")):
        status, _ = await call(admin, cashier, method, path, {} if method != "GET" else None)
        assert status == 403, (method, path)
    key = await api_key(conn)
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "group-1"}
    answers = []
    async with aiohttp.ClientSession(headers=headers) as s:
        for _ in range(2):
            async with s.post(admin.url + "/api/v1/tickets/groups", json={"name": "Level 2"}) as r:
                answers.append((r.status, await r.json(), r.headers.get("Idempotent-Replayed")))
    assert answers[0][0] == answers[1][0] == 201 and answers[0][1] == answers[1][1]
    assert answers[1][2] == "true"
    assert await conn.fetchval("SELECT count(*) FROM ticket_groups WHERE name = 'Level 2'") == 1
