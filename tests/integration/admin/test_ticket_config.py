"""Support → Groups, Canned replies, Rules and Ticket settings: each is made, changed (and, where
it can be, deleted) through its form, every change in the operations log; a refusal is its
sentence (a field's, automation.problems' each, replies.problems'); a rule's dry run counts the
tickets it would act on now; a partner's administrator reaches its own partner's and every
partner's groups and replies only, no rules nor settings (404); changing needs support.edit (403)."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import asyncpg

from admin.tickets import replies
from tests.integration.admin.conftest import Admin, Client, make_admin
from tests.integration.admin.test_devices import oplog, partner_client
from tests.integration.admin.test_ticket_inboxes import field_error, partners


async def post_pairs(c: Client, path: str, pairs: list[tuple[str, str]]) -> tuple[int, str, str]:
    """A POST of a form with repeated names (a multi-select, checkboxes)."""
    async with c.session.post(c.url + path, data=[("_csrf", c.csrf), *pairs]) as r:
        return r.status, await r.text(), str(r.url)


def new_id(url: str, what: str) -> int:
    found = re.search(rf"/tickets/{what}/(\d+)\?", url)
    assert found is not None, url
    return int(found.group(1))


def problems_shown(body: str) -> list[str]:
    found = re.search(r'<div class="error banner" role="alert" id="problems">.*?<ul>(.*?)</ul>', body, re.S)
    return [html.unescape(p) for p in re.findall(r"<li>(.*?)</li>", found.group(1))] if found else []


async def operator(admin: Admin, conn: asyncpg.Connection, login: str = "operator") -> Client:
    await make_admin(conn, login)
    c = admin.client()
    status, body, _ = await c.login(login)
    assert status == 200, body
    await c.get("/admin/profile")
    return c


# -- groups ------------------------------------------------------------------------------------

async def test_a_group_is_made_with_members_changed_and_given_shifts(admin: Admin, conn: asyncpg.Connection) -> None:
    mine, other = await partners(conn, "Alpha Net", "Beta Fibre")
    ours = await make_admin(conn, "anna", partner_id=mine)
    shared = await make_admin(conn, "otto")
    theirs = await make_admin(conn, "bert", partner_id=other)
    await make_admin(conn, "gone", partner_id=mine, enabled=False)
    async with await partner_client(admin, "alpha", mine) as c:
        status, body = await c.get("/admin/tickets/groups/new")
        assert status == 200 and "anna" in body and "otto" in body and "bert" not in body and "gone (" not in body
        assert "every member is told" in body and "on shift now" in body
        status, body, _ = await post_pairs(c, "/admin/tickets/groups/new", [
            ("name", "Level 1"), ("assign_mode", "random"), ("members", str(theirs))])
        assert status == 422 and "administrators of the group's partner" in html.unescape(field_error(body, "members"))
        status, body, _ = await post_pairs(c, "/admin/tickets/groups/new", [("name", "Level 1"), ("assign_mode", "x")])
        assert status == 422 and field_error(body, "assign_mode")
        status, body, url = await post_pairs(c, "/admin/tickets/groups/new", [
            ("name", "Level 1"), ("assign_mode", "random"), ("members", str(ours)), ("members", str(shared))])
        assert status == 200 and url.endswith("?done=created"), body
        group = new_id(url, "groups")
        row = await conn.fetchrow("SELECT * FROM ticket_groups WHERE id = $1", group)
        assert row is not None and row["partner_id"] == mine and row["assign_mode"] == "random"
        assert {r["administrator_id"] for r in await conn.fetch(
            "SELECT administrator_id FROM ticket_group_members WHERE group_id = $1", group)} == {ours, shared}
        # the same name again is the field's sentence
        status, body, _ = await post_pairs(c, "/admin/tickets/groups/new", [("name", "level 1"),
                                                                            ("assign_mode", "nobody")])
        assert status == 422 and "another group" in field_error(body, "name")
        # shifts: a member's, a weekday at least, crossing midnight
        path = f"/admin/tickets/groups/{group}/shifts"
        status, body, _ = await post_pairs(c, path, [("administrator_id", str(ours)), ("starts", "22:00"),
                                                     ("ends", "06:00")])
        assert status == 422 and "weekday" in field_error(body, "weekdays")
        status, body, _ = await post_pairs(c, path, [("administrator_id", str(theirs)), ("weekdays", "4"),
                                                     ("starts", "22:00"), ("ends", "06:00")])
        assert status == 422 and "member" in field_error(body, "administrator_id")
        status, body, url = await post_pairs(c, path, [("administrator_id", str(ours)), ("weekdays", "4"),
                                                       ("weekdays", "5"), ("starts", "22:00"), ("ends", "06:00")])
        assert status == 200 and "?done=shift" in url and "Fri, Sat" in body and "(next day)" in body
        shift = await conn.fetchrow("SELECT * FROM ticket_shifts WHERE group_id = $1", group)
        assert shift is not None and shift["weekdays"] == [4, 5] and shift["starts"] == dt.time(22)
        await post_pairs(c, path, [("administrator_id", str(shared)), ("weekdays", "0"), ("starts", "08:00"),
                                   ("ends", "16:00")])
        # a member who leaves takes its shifts along; the mode changes
        status, body, url = await post_pairs(c, f"/admin/tickets/groups/{group}", [
            ("name", "Level 1"), ("assign_mode", "shift"), ("members", str(ours))])
        assert url.endswith("?done=saved"), body
        assert await conn.fetchval("SELECT count(*) FROM ticket_shifts WHERE group_id = $1", group) == 1
        status, body, url = await c.post(f"{path}/{shift['id']}/delete", {})
        assert "?done=unshift" in url and "No shifts." in body
        status, body = await c.get("/admin/tickets/groups")
        assert status == 200 and "Level 1" in body and "Shift" in body
    actions = [(r["action"], r["summary"]) for r in await oplog(admin, "ticket_group")]
    assert [a for a, _ in actions] == ["create", "update"]
    assert "assign_mode" in actions[1][1] and "members" in actions[1][1]
    assert [r["action"] for r in await oplog(admin, "ticket_shift")] == ["create", "create", "delete"]


async def test_groups_and_replies_are_their_partners(admin: Admin, conn: asyncpg.Connection) -> None:
    mine, other = await partners(conn, "Alpha Net", "Beta Fibre")
    theirs = await conn.fetchval("INSERT INTO ticket_groups (partner_id, name) VALUES ($1, 'Beta desk') RETURNING id",
                                 other)
    everyone = await conn.fetchval("INSERT INTO ticket_groups (name) VALUES ('Field team') RETURNING id")
    their_reply = await conn.fetchval("INSERT INTO ticket_canned_replies (partner_id, name, body) "
                                      "VALUES ($1, 'Beta hello', 'Hi') RETURNING id", other)
    async with await partner_client(admin, "alpha", mine) as c:
        status, body = await c.get("/admin/tickets/groups")
        assert status == 200 and "Field team" in body and "Beta desk" not in body
        assert (await c.get(f"/admin/tickets/groups/{everyone}"))[0] == 200
        for path in (f"/admin/tickets/groups/{theirs}", f"/admin/tickets/canned-replies/{their_reply}",
                     "/admin/tickets/rules", "/admin/tickets/rules/new", "/admin/tickets/settings"):
            assert (await c.get(path))[0] == 404, path
        for path in (f"/admin/tickets/groups/{theirs}", f"/admin/tickets/groups/{theirs}/shifts",
                     f"/admin/tickets/canned-replies/{their_reply}",
                     f"/admin/tickets/canned-replies/{their_reply}/delete", "/admin/tickets/rules/new",
                     "/admin/tickets/settings"):
            status, _, _ = await c.post(path, {"name": "x", "assign_mode": "nobody", "body": "x"})
            assert status == 404, path
        status, body = await c.get("/admin/tickets/canned-replies")
        assert "Beta hello" not in body
        # what every partner shares is the operator's: a partner's administrator reads it, never changes it
        shared_reply = await conn.fetchval("INSERT INTO ticket_canned_replies (name, body) VALUES ('All', 'Hi') "
                                           "RETURNING id")
        for path in (f"/admin/tickets/groups/{everyone}", f"/admin/tickets/groups/{everyone}/shifts",
                     f"/admin/tickets/canned-replies/{shared_reply}",
                     f"/admin/tickets/canned-replies/{shared_reply}/delete"):
            status, _, _ = await c.post(path, {"name": "mine now", "assign_mode": "random", "body": "x"})
            assert status == 403, path
        assert (await c.get(f"/admin/tickets/canned-replies/{shared_reply}"))[0] == 200
    assert await conn.fetchval("SELECT name FROM ticket_groups WHERE id = $1", theirs) == "Beta desk"
    assert await conn.fetchval("SELECT name FROM ticket_groups WHERE id = $1", everyone) == "Field team"
    assert await conn.fetchval("SELECT count(*) FROM ticket_canned_replies WHERE name = 'All'") == 1
    # an administrator of every partner picks the partner, or none
    async with await operator(admin, conn) as c:
        status, body, url = await c.post("/admin/tickets/groups/new", {"name": "Alpha desk", "assign_mode": "nobody",
                                                                       "partner_id": str(mine)})
        assert url.endswith("?done=created"), body
        status, body, url = await c.post("/admin/tickets/canned-replies/new", {"name": "Hello", "body": "Hi"})
        assert url.endswith("?done=created"), body
        status, body = await c.get("/admin/tickets/groups")
        assert "Beta desk" in body and "Alpha desk" in body
    assert await conn.fetchval("SELECT partner_id FROM ticket_groups WHERE name = 'Alpha desk'") == mine
    assert await conn.fetchval("SELECT partner_id IS NULL FROM ticket_canned_replies WHERE name = 'Hello'")


# -- canned replies ------------------------------------------------------------------------------

async def test_a_canned_reply_is_checked_previewed_changed_and_deleted(admin: Admin,
                                                                     conn: asyncpg.Connection) -> None:
    (mine,) = await partners(conn, "Alpha Net")
    bad = "Dear {{ customer.nickname }}"
    async with await partner_client(admin, "alpha", mine) as c:
        await c.get("/admin/tickets/canned-replies/new")
        status, body, _ = await c.post("/admin/tickets/canned-replies/new", {"name": "Hello", "body": bad})
        assert status == 422 and html.unescape(field_error(body, "body")) == replies.problems(bad)[0]
        assert await conn.fetchval("SELECT count(*) FROM ticket_canned_replies") == 0
        status, body, _ = await c.post("/admin/tickets/canned-replies/new",
                                       {"name": "Hello", "body": "Dear {{ customer.name }},", "preview": "1"})
        assert status == 200 and "Dear Anna Bauer," in body
        assert await conn.fetchval("SELECT count(*) FROM ticket_canned_replies") == 0
        status, body, url = await c.post("/admin/tickets/canned-replies/new",
                                         {"name": "Hello", "body": "Dear {{ customer.name }},\nticket {{ ticket.id }}"})
        assert url.endswith("?done=created"), body
        reply = new_id(url, "canned-replies")
        assert "ticket 1234" in body  # the stored body's preview
        status, body, url = await c.post(f"/admin/tickets/canned-replies/{reply}",
                                         {"name": "Hello again", "body": "Hi {{ agent.name }}"})
        assert url.endswith("?done=saved") and "Hi Max" in body
        row = await conn.fetchrow("SELECT * FROM ticket_canned_replies WHERE id = $1", reply)
        assert row is not None and row["partner_id"] == mine and row["name"] == "Hello again"
        # a reply a rule sends stays
        rule = await conn.fetchval("INSERT INTO ticket_rules (name, condition, action) VALUES ('Nudge', "
                                   "'{\"idle_hours\": 48}', $1) RETURNING id", {"canned_reply_id": reply})
        status, body, _ = await c.post(f"/admin/tickets/canned-replies/{reply}/delete", {})
        assert status == 409 and "Nudge" in body
        await conn.execute("DELETE FROM ticket_rules WHERE id = $1", rule)
        status, body, url = await c.post(f"/admin/tickets/canned-replies/{reply}/delete", {})
        assert url.endswith("?done=deleted") and "Hello again" not in body
        assert await conn.fetchval("SELECT count(*) FROM ticket_canned_replies") == 0
    assert [r["action"] for r in await oplog(admin, "ticket_canned_reply")] == ["create", "update", "delete"]


# -- rules ---------------------------------------------------------------------------------------

RULE = {"name": "Close idle", "status": "waiting_customer", "idle_hours": "72", "set_status": "resolved",
        "enabled": "1"}


async def ticket(conn: asyncpg.Connection, status: str, idle_hours: float, **more: Any) -> int:
    now = dt.datetime.now(dt.UTC)
    return int(await conn.fetchval(
        "INSERT INTO tickets (subject, requester_email, source, status, priority, assignee_id, last_activity_at) "
        "VALUES ('Test', 'a@b.example', 'admin', $1, $2, $3, $4) RETURNING id",
        status, more.get("priority", "medium"), more.get("assignee_id"), now - dt.timedelta(hours=idle_hours)))


async def test_a_rule_is_checked_saved_dry_run_switched_and_deleted(admin: Admin, conn: asyncpg.Connection) -> None:
    for code, idle in (("waiting_customer", 100), ("waiting_customer", 80), ("waiting_customer", 10),
                       ("new", 100), ("resolved", 100)):
        await ticket(conn, code, idle)
    agent = await make_admin(conn, "agent", "technician")
    await ticket(conn, "waiting_customer", 95, assignee_id=agent)
    async with await operator(admin, conn) as c:
        status, body = await c.get("/admin/tickets/rules/new")
        assert status == 200 and "Waiting on customer" in body
        status, body, _ = await c.post("/admin/tickets/rules/new", {"name": "Nothing"})
        assert status == 422 and problems_shown(body) == [
            "the rule has no condition: it would act on every ticket", "the rule has no action: it would do nothing"]
        status, body, _ = await c.post("/admin/tickets/rules/new", {"name": "Loop", "note": "ping"})
        assert status == 422 and any("needs an idle time" in p for p in problems_shown(body))
        status, body, _ = await c.post("/admin/tickets/rules/new", {**RULE, "set_status": "waiting_customer"})
        assert status == 422 and any("would change nothing" in p for p in problems_shown(body))
        status, body, _ = await c.post("/admin/tickets/rules/new", {**RULE, "set_group_id": "999999"})
        assert status == 422 and field_error(body, "set_group_id") == "no such group"
        assert await conn.fetchval("SELECT count(*) FROM ticket_rules") == 0
        status, body, url = await c.post("/admin/tickets/rules/new", RULE)
        assert url.endswith("?done=created"), body
        rule = new_id(url, "rules")
        row = await conn.fetchrow("SELECT * FROM ticket_rules WHERE id = $1", rule)
        assert row is not None and row["enabled"]
        assert row["condition"] == {"status": "waiting_customer", "idle_hours": 72}
        assert row["action"] == {"set_status": "resolved"}
        # the dry run: the three waiting longer than 72 hours; then the one of them unassigned and over 90
        assert re.search(r'<strong id="dry-run-count">3</strong> tickets', body), body
        status, body, url = await c.post(f"/admin/tickets/rules/{rule}", {**RULE, "idle_hours": "90",
                                                                          "unassigned": "yes"})
        assert url.endswith("?done=saved"), body
        assert re.search(r'<strong id="dry-run-count">1</strong> ticket\b', body), body
        row = await conn.fetchrow("SELECT * FROM ticket_rules WHERE id = $1", rule)
        assert row is not None and row["condition"]["unassigned"] is True and row["enabled"]
        status, body, url = await c.post(f"/admin/tickets/rules/{rule}/disable", {})
        assert url.endswith("?done=disabled") and "were it enabled" in body
        assert not await conn.fetchval("SELECT enabled FROM ticket_rules WHERE id = $1", rule)
        status, body, url = await c.post(f"/admin/tickets/rules/{rule}/enable", {})
        assert url.endswith("?done=enabled")
        status, body = await c.get("/admin/tickets/rules")
        assert "Close idle" in body and "idle 90 h" in body and "status → Resolved" in body
        status, body, url = await c.post(f"/admin/tickets/rules/{rule}/delete", {})
        assert url.endswith("?done=deleted") and "Close idle" not in body
    assert [r["action"] for r in await oplog(admin, "ticket_rule")] == ["create", "update", "disable", "enable",
                                                                         "delete"]


# -- settings ------------------------------------------------------------------------------------

async def test_the_ticket_settings_are_changed(admin: Admin, conn: asyncpg.Connection) -> None:
    group = await conn.fetchval("INSERT INTO ticket_groups (name) VALUES ('Field team') RETURNING id")
    async with await operator(admin, conn) as c:
        status, body = await c.get("/admin/tickets/settings")
        assert status == 200 and "Field team" in body
        status, body, _ = await c.post("/admin/tickets/settings", {"tariff_tickets": "1",
                                                                   "router_drift_minutes": "-5"})
        assert status == 422 and field_error(body, "router_drift_minutes")
        status, body, url = await c.post("/admin/tickets/settings", {"tariff_tickets": "1", "group_id": str(group),
                                                                     "router_drift_minutes": "0"})
        assert url.endswith("?done=saved"), body
    row = await conn.fetchrow("SELECT * FROM ticket_settings")
    assert row is not None and row["tariff_tickets"] and not row["cpe_fault_tickets"]
    assert row["router_drift_minutes"] == 0 and row["group_id"] == group
    (line,) = await oplog(admin, "ticket_settings")
    assert "cpe_fault_tickets" in line["summary"] and "tariff_tickets" not in line["summary"]


# -- permissions ---------------------------------------------------------------------------------

async def test_changing_needs_support_edit(admin: Admin, conn: asyncpg.Connection) -> None:
    group = await conn.fetchval("INSERT INTO ticket_groups (name) VALUES ('Field team') RETURNING id")
    reply = await conn.fetchval("INSERT INTO ticket_canned_replies (name, body) VALUES ('Hi', 'Hi') RETURNING id")
    rule = await conn.fetchval("INSERT INTO ticket_rules (name, condition, action) VALUES ('R', "
                               "'{\"idle_hours\": 5}', '{\"set_priority\": \"high\"}') RETURNING id")
    role = await conn.fetchval("INSERT INTO admin_roles (name, permissions) VALUES ('Viewer', '{support.view}') "
                               "RETURNING id")
    await make_admin(conn, "viewer")
    await conn.execute("UPDATE administrators SET role_id = $1 WHERE login = 'viewer'", role)
    c = admin.client()
    async with c:
        await c.login("viewer")
        for path in (f"/admin/tickets/groups/{group}", f"/admin/tickets/canned-replies/{reply}",
                     f"/admin/tickets/rules/{rule}", "/admin/tickets/settings"):
            status, body = await c.get(path)
            assert status == 200 and ">Save<" not in body, path
        for path in ("/admin/tickets/groups/new", "/admin/tickets/canned-replies/new", "/admin/tickets/rules/new"):
            assert (await c.get(path))[0] == 403, path
        for path in ("/admin/tickets/groups/new", f"/admin/tickets/groups/{group}",
                     f"/admin/tickets/groups/{group}/shifts", "/admin/tickets/canned-replies/new",
                     f"/admin/tickets/canned-replies/{reply}", f"/admin/tickets/canned-replies/{reply}/delete",
                     "/admin/tickets/rules/new", f"/admin/tickets/rules/{rule}", f"/admin/tickets/rules/{rule}/enable",
                     f"/admin/tickets/rules/{rule}/disable", f"/admin/tickets/rules/{rule}/delete",
                     "/admin/tickets/settings"):
            status, _, _ = await c.post(path, {"name": "x"})
            assert status == 403, path
    assert await conn.fetchval("SELECT count(*) FROM ticket_rules") == 1
