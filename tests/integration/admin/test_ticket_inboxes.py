"""Support → Inboxes: an inbox is made and changed in its form with its password sealed and never
shown (an empty field keeps it), a database refusal is a field's sentence, its deny-list lines
are checked as the intake takes them, added and deleted; a partner's administrator reaches its
own partner's inboxes only (404), and changing needs support.edit (403)."""

from __future__ import annotations

import re

import asyncpg

from admin.tickets.intake_store import PASSWORD_PURPOSE
from tests.integration.admin.conftest import Admin, make_admin
from tests.integration.admin.test_devices import oplog, partner_client

SECRET = "s3cret-imap-pass"
FORM = {"name": "Support", "address": "support@isp.example", "host": "imap.isp.example", "port": "993",
        "security": "tls", "username": "support", "password": SECRET, "folder": "INBOX", "read_mode": "unread",
        "since": "2026-01-01", "mark_read": "1", "accept_unknown": "1", "group_id": "", "priority": "high",
        "type": "incident", "enabled": "1"}


def field_error(html: str, name: str) -> str:
    m = re.search(rf'<p class="error" id="e-{re.escape(name)}">([^<]*)</p>', html)
    return m.group(1).replace("&#39;", "'") if m else ""


async def partners(conn: asyncpg.Connection, *names: str) -> list[int]:
    return [int(await conn.fetchval("INSERT INTO partners (name) VALUES ($1) RETURNING id", n)) for n in names]


async def test_an_inbox_is_made_with_its_password_sealed_and_changed_keeping_it(admin: Admin,
                                                                                 conn: asyncpg.Connection) -> None:
    (mine,) = await partners(conn, "Alpha Net")
    group = await conn.fetchval("INSERT INTO ticket_groups (partner_id, name) VALUES ($1, 'Level 1') RETURNING id",
                                mine)
    async with await partner_client(admin, "alpha", mine) as c:
        status, body = await c.get("/admin/tickets/inboxes/new")
        assert status == 200 and "Level 1" in body
        status, body, url = await c.post("/admin/tickets/inboxes/new", {**FORM, "group_id": str(group)})
        assert status == 200 and url.endswith("?done=created"), body
        inbox_id = int(re.search(r"/tickets/inboxes/(\d+)\?", url).group(1))  # type: ignore[union-attr]
        row = await conn.fetchrow("SELECT * FROM ticket_inboxes WHERE id = $1", inbox_id)
        assert row is not None and row["partner_id"] == mine and row["group_id"] == group
        assert row["priority"] == "high" and str(row["since"]) == "2026-01-01" and row["mark_read"]
        sealed = row["password"]
        assert sealed.startswith("lm1:") and admin.keyring.open(sealed, PASSWORD_PURPOSE) == SECRET
        assert SECRET not in body and sealed not in body
        # an empty password keeps the stored one; the unticked boxes are off
        status, body, url = await c.post(f"/admin/tickets/inboxes/{inbox_id}",
                                         {**FORM, "password": "", "port": "143", "security": "starttls",
                                          "mark_read": "", "enabled": ""})
        assert url.endswith("?done=saved"), body
        row = await conn.fetchrow("SELECT * FROM ticket_inboxes WHERE id = $1", inbox_id)
        assert row is not None and row["password"] == sealed and row["port"] == 143 and not row["mark_read"]
        assert not row["enabled"] and row["group_id"] is None
        assert SECRET not in body
        # the list shows it, and the last error in red
        await conn.execute("UPDATE ticket_inboxes SET last_error = 'LOGIN failed' WHERE id = $1", inbox_id)
        status, body = await c.get("/admin/tickets/inboxes")
        assert status == 200 and "support@isp.example" in body and "imap.isp.example:143" in body
        assert '<span class="error">LOGIN failed</span>' in body
        # a database refusal is the field's sentence; a wrong field its own
        await c.post("/admin/tickets/inboxes/new", {**FORM, "name": "Other", "address": "other@isp.example"})
        for changes, field, words in [({"address": "Support@ISP.example"}, "address", "another inbox reads"),
                                      ({"address": "not an address"}, "address", "must be an e-mail address"),
                                      ({"port": "70000"}, "port", "65535"),
                                      ({"security": "ssl"}, "security", ""),
                                      ({"group_id": "999999"}, "group_id", "no such group")]:
            status, body, _ = await c.post("/admin/tickets/inboxes/new", {**FORM, **changes})
            assert status == 422 and words in field_error(body, field), (changes, field_error(body, field))
            assert field_error(body, field), changes
            assert SECRET not in body
    actions = [(r["action"], r["summary"]) for r in await oplog(admin, "ticket_inbox")]
    assert [a for a, _ in actions] == ["create", "update", "create"]
    assert "port" in actions[1][1] and "password" not in actions[1][1]
    assert all(SECRET not in str(r["after"]) for r in await oplog(admin, "ticket_inbox"))


async def test_deny_list_lines_are_checked_added_and_deleted(admin: Admin, conn: asyncpg.Connection) -> None:
    (mine,) = await partners(conn, "Alpha Net")
    async with await partner_client(admin, "alpha", mine) as c:
        await c.get("/admin/tickets/inboxes/new")
        _, _, url = await c.post("/admin/tickets/inboxes/new", FORM)
        inbox_id = int(re.search(r"/tickets/inboxes/(\d+)\?", url).group(1))  # type: ignore[union-attr]
        path = f"/admin/tickets/inboxes/{inbox_id}/denylist"
        status, body, _ = await c.post(path, {"field": "subject", "match": "regex", "pattern": "(a+)+"})
        assert status == 422 and field_error(body, "deny_pattern"), body
        status, body, _ = await c.post(path, {"field": "subject", "match": "regex", "pattern": "([a-z"})
        assert status == 422 and "not a regular expression" in field_error(body, "deny_pattern")
        assert await conn.fetchval("SELECT count(*) FROM ticket_denylist") == 0
        status, body, url = await c.post(path, {"field": "address", "match": "ends", "pattern": "@spam.example"})
        assert status == 200 and "?done=denied" in url and "@spam.example" in body
        rule = await conn.fetchrow("SELECT * FROM ticket_denylist")
        assert rule is not None and rule["inbox_id"] == inbox_id and rule["match"] == "ends"
        status, body, url = await c.post(f"{path}/{rule['id']}/delete", {})
        assert status == 200 and "?done=undenied" in url and "@spam.example" not in body
        assert await conn.fetchval("SELECT count(*) FROM ticket_denylist") == 0
    assert [r["action"] for r in await oplog(admin, "ticket_denylist")] == ["create", "delete"]


async def test_a_partners_administrator_reaches_its_own_inboxes_only(admin: Admin, conn: asyncpg.Connection) -> None:
    mine, other = await partners(conn, "Alpha Net", "Beta Fibre")
    async with await partner_client(admin, "root", other) as c:
        await c.get("/admin/tickets/inboxes/new")
        _, _, url = await c.post("/admin/tickets/inboxes/new", FORM)
    theirs = int(re.search(r"/tickets/inboxes/(\d+)\?", url).group(1))  # type: ignore[union-attr]
    async with await partner_client(admin, "alpha", mine) as c:
        status, body = await c.get("/admin/tickets/inboxes")
        assert status == 200 and "support@isp.example" not in body
        status, _ = await c.get(f"/admin/tickets/inboxes/{theirs}")
        assert status == 404
        for path in (f"/admin/tickets/inboxes/{theirs}", f"/admin/tickets/inboxes/{theirs}/denylist"):
            status, _, _ = await c.post(path, {**FORM, "field": "body", "match": "contains", "pattern": "x"})
            assert status == 404, path
    # an administrator of every partner picks the partner
    await make_admin(conn, "operator")
    c = admin.client()
    async with c:
        await c.login("operator")
        status, body = await c.get("/admin/tickets/inboxes/new")
        assert status == 200 and "Beta Fibre" in body and "Alpha Net" in body
        status, body, _ = await c.post("/admin/tickets/inboxes/new", {**FORM, "address": "x@alpha.example"})
        assert status == 422 and field_error(body, "partner_id")
        status, body, url = await c.post("/admin/tickets/inboxes/new",
                                         {**FORM, "address": "x@alpha.example", "partner_id": str(mine)})
        assert url.endswith("?done=created"), body
        assert await conn.fetchval("SELECT partner_id FROM ticket_inboxes WHERE address = 'x@alpha.example'") == mine
        status, body = await c.get("/admin/tickets/inboxes")
        assert "x@alpha.example" in body and "support@isp.example" in body


async def test_changing_needs_support_edit(admin: Admin, conn: asyncpg.Connection) -> None:
    (mine,) = await partners(conn, "Alpha Net")
    async with await partner_client(admin, "alpha", mine) as c:
        await c.get("/admin/tickets/inboxes/new")
        _, _, url = await c.post("/admin/tickets/inboxes/new", FORM)
    inbox_id = int(re.search(r"/tickets/inboxes/(\d+)\?", url).group(1))  # type: ignore[union-attr]
    role = await conn.fetchval("INSERT INTO admin_roles (name, permissions) VALUES ('Viewer', '{support.view}') "
                               "RETURNING id")
    async with await partner_client(admin, "viewer", mine) as c:
        await conn.execute("UPDATE administrators SET role_id = $1 WHERE login = 'viewer'", role)
        status, body = await c.get(f"/admin/tickets/inboxes/{inbox_id}")
        assert status == 200 and "Create inbox" not in body and ">Save<" not in body
        status, _ = await c.get("/admin/tickets/inboxes/new")
        assert status == 403
        for path in ("/admin/tickets/inboxes/new", f"/admin/tickets/inboxes/{inbox_id}",
                     f"/admin/tickets/inboxes/{inbox_id}/denylist"):
            status, _, _ = await c.post(path, {**FORM, "field": "body", "match": "contains", "pattern": "x"})
            assert status == 403, path
    async with await partner_client(admin, "cashier", mine, "cashier") as c:
        status, _ = await c.get("/admin/tickets/inboxes")
        assert status == 403
