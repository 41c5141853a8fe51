"""Notifications -> Templates, through its pages and its API on the admin app over a real database:
which kinds x channels are the operator's and which built-in, per partner or the default and per
language; Check (errors with their lines), Preview with the last entity of the kind (the newest
invoice's number in the rendered email; a sample when there is none; an SMS with its characters
and segments); Save refuses a broken template (an undefined name, a syntax error, a sandbox
escape) with its line and keeps nothing; "Back to the built-in" deletes the row; every change in
the operations log. A partner's administrator reaches its own partner's templates only (the
default's and another partner's: 404); notifications.view alone saves nothing (403)."""

from __future__ import annotations

import html
import re

import asyncpg

from tests.integration.admin.conftest import Admin, api_key, call, make_admin
from tests.integration.admin.notifications_pages import customer_of, invoice, two_partners

EDIT = "/admin/notifications/templates/edit"
GOOD = "<p>Dear {{ customer.name }},</p>\n<p>invoice {{ document.number }} is ready.</p>"


def cell(body: str, kind: str, channel: str) -> str:
    """What the overview says of a kind x channel: own, default, partner or built-in."""
    m = re.search(rf'data-cell="{kind}\.{channel}"><span class="status[^"]*">([^<]*)</span>', body)
    assert m is not None, (kind, channel)
    return m.group(1).strip()


def errors_of(body: str) -> list[str]:
    return [html.unescape(e) for e in re.findall(r'<li class="template-error">([^<]*)</li>', body)]


async def test_templates_are_checked_saved_shown_and_reset(admin: Admin, conn: asyncpg.Connection) -> None:
    demo_id, _ = await two_partners(conn)
    await make_admin(conn, "root")
    async with admin.client() as c:
        await c.login("root")
        status, body = await c.get("/admin/notifications/templates")
        assert status == 200 and cell(body, "invoice", "email") == "built-in" and cell(body, "reminder_3", "sms")
        assert len(re.findall(r'data-cell="', body)) == 18 * 3
        status, body = await c.get(f"{EDIT}?kind=invoice&channel=email")
        assert status == 200 and "the built-in one" in body and "customer" in body  # the variables beside it
        builtin = re.search(r'<textarea id="f-body"[^>]*>([^<]*)</textarea>', body)
        assert builtin is not None and builtin.group(1).strip()
        # Check: the errors with their lines; or none.
        form = {"kind": "invoice", "channel": "email", "body": "<p>Hi</p>\n<p>{{ customer.nmae }}</p>"}
        status, body, _ = await c.post("/admin/notifications/templates/check", form)
        assert status == 200 and any("line 2" in e and "nmae" in e for e in errors_of(body)), errors_of(body)
        status, body, _ = await c.post("/admin/notifications/templates/check", {**form, "body": GOOD})
        assert status == 200 and 'id="check-ok"' in body and not errors_of(body)
        # Save refuses what check finds, keeping the text as typed; then takes a good one.
        status, body, _ = await c.post(EDIT, form)
        assert status == 422 and any("line 2" in e for e in errors_of(body))
        assert "{{ customer.nmae }}" in html.unescape(body)  # the text is kept in the editor
        status, body, _ = await c.post(EDIT, {**form, "body": "{% if %}"})
        assert status == 422 and any("line 1" in e for e in errors_of(body)), errors_of(body)
        status, body, _ = await c.post(EDIT, {**form, "body": "{{ ''.__class__.__mro__[1].__subclasses__() }}"})
        assert status == 422 and errors_of(body), "a sandbox escape is refused"
        status, body, _ = await c.post(EDIT, {**form, "body": "{{ cycler.__init__.__globals__ }}"})
        assert status == 422 and errors_of(body)
        status, body, _ = await c.post(EDIT, {**form, "body": "   "})
        assert status == 422 and "empty" in " ".join(errors_of(body))
        assert await conn.fetchval("SELECT count(*) FROM message_templates") == 0
        status, body, url = await c.post(EDIT, {**form, "body": GOOD})
        assert status == 200 and url.endswith("done=saved") and "Template saved" in body
        row = await conn.fetchrow("SELECT partner_id, kind, channel, language, body, updated_by FROM message_templates")
        assert row is not None and dict(row) == {"partner_id": None, "kind": "invoice", "channel": "email",
                                                 "language": "", "body": GOOD, "updated_by": "root"}
        status, body = await c.get("/admin/notifications/templates")
        assert cell(body, "invoice", "email") == "own" and cell(body, "invoice", "sms") == "built-in"
        status, body = await c.get(f"/admin/notifications/templates?partner_id={demo_id}")
        assert cell(body, "invoice", "email") == "default"  # the partner inherits the default
        # A partner's German template: the partner's de customers get it, the others the default.
        status, body, url = await c.post(EDIT, {**form, "body": "<p>Hallo {{ customer.name }}</p>",
                                                "partner_id": str(demo_id), "language": "de"})
        assert status == 200 and url.endswith("done=saved"), body
        status, body = await c.get(f"/admin/notifications/templates?partner_id={demo_id}&language=de")
        assert cell(body, "invoice", "email") == "own"
        status, body = await c.get("/admin/notifications/templates?language=de")
        assert cell(body, "invoice", "email") == "default"  # the default's page: the default's any-language one
        status, body = await c.get(f"/admin/notifications/templates?partner_id={demo_id}&language=fr")
        assert cell(body, "invoice", "email") == "default"
        status, body, _ = await c.post(EDIT, {**form, "body": GOOD, "language": "deutsch"})
        assert status == 404  # not a language: no such template
        # Back to the built-in: the default's row goes.
        status, body = await c.get(f"{EDIT}?kind=invoice&channel=email")
        assert 'id="reset"' in body
        status, body, url = await c.post("/admin/notifications/templates/reset", {"kind": "invoice",
                                                                                  "channel": "email"})
        assert status == 200 and url.endswith("done=reset") and "the built-in one" in body
        assert await conn.fetchval("SELECT count(*) FROM message_templates WHERE partner_id IS NULL") == 0
    log = await conn.fetch("SELECT action, actor, partner_id, summary FROM operations_log "
                           "WHERE object_type = 'message_template' ORDER BY id")
    assert [(r["action"], r["partner_id"]) for r in log] == [("create", None), ("create", demo_id),
                                                             ("delete", None)]
    assert "the default invoice Email template" in log[0]["summary"] and "(de)" in log[1]["summary"]


async def test_a_preview_renders_the_last_entity_or_a_sample(admin: Admin, conn: asyncpg.Connection) -> None:
    demo_id, _ = await two_partners(conn)
    await make_admin(conn, "root")
    async with admin.client() as c:
        await c.login("root")
        form = {"kind": "invoice", "channel": "email", "body": GOOD}
        status, body, _ = await c.post("/admin/notifications/templates/preview", form)
        assert status == 200 and "Rendered with a sample" in body, body
        ann = await customer_of(conn, demo_id)
        doc = await invoice(conn, ann["id"])
        status, body, _ = await c.post("/admin/notifications/templates/preview", form)
        assert status == 200 and "Rendered with the last invoice" in body
        frame = re.search(r'<iframe class="body" sandbox="" [^>]*srcdoc="([^"]*)"', body)
        assert frame is not None
        shown = html.unescape(frame.group(1))
        assert doc["number"] in shown and html.escape(ann["name"]) in shown
        assert "<script" not in body.split('id="preview-result"')[1]  # nothing of it is raw in the page
        status, body, _ = await c.post("/admin/notifications/templates/preview",
                                       {**form, "body": "{{ document.nope }}"})
        assert status == 200 and errors_of(body) and 'id="preview-result"' not in body
        sms = {"kind": "invoice", "channel": "sms", "body": "Invoice {{ document.number }}: " + "x" * 150}
        status, body, _ = await c.post("/admin/notifications/templates/preview", sms)
        assert status == 200 and doc["number"] in body
        count = re.search(r'id="sms-count">(\d+) characters, (\d+) SMS', body)
        assert count is not None
        chars = len(f"Invoice {doc['number']}: ") + 150
        assert int(count.group(1)) == chars and int(count.group(2)) == (1 if chars <= 160 else 2)
        status, body, _ = await c.post("/admin/notifications/templates/preview",
                                       {**sms, "body": "Rechnung {{ document.number }} — ✓"})
        assert re.search(r'id="sms-count">\d+ characters, 1 SMS', body)


async def test_the_api_gets_saves_refuses_and_deletes_templates(admin: Admin, conn: asyncpg.Connection) -> None:
    demo_id, other = await two_partners(conn)
    key = await api_key(conn)
    status, t = await call(admin, key, "GET", "/notifications/templates/default/reminder_1/sms")
    assert status == 200 and t["source"] == "built-in" and t["own"] is False and t["body"]
    status, t = await call(admin, key, "PUT", "/notifications/templates/default/reminder_1/sms?language=de",
                           {"body": "Bitte zahlen Sie {{ amount_due|money }}."})
    assert status == 200 and t["source"] == "default" and t["own"] and t["language"] == "de", t
    status, t = await call(admin, key, "GET", f"/notifications/templates/{demo_id}/reminder_1/sms?language=de")
    assert t["source"] == "default" and t["used_language"] == "de" and not t["own"]
    status, t = await call(admin, key, "GET", f"/notifications/templates/{demo_id}/reminder_1/sms?language=de_AT")
    assert t["source"] == "built-in"  # languages match exactly, as the engine picks them (store.py)
    status, t = await call(admin, key, "GET", f"/notifications/templates/{demo_id}/reminder_1/sms")
    assert t["source"] == "built-in"
    status, answer = await call(admin, key, "PUT", "/notifications/templates/default/reminder_1/sms",
                                {"body": "ok\n\n{{ broken( }}"})
    assert status == 422 and "line 3" in answer["errors"]["body"], answer
    status, answer = await call(admin, key, "PUT", "/notifications/templates/default/reminder_1/sms?language=DEU",
                                {"body": "x"})
    assert status == 422 and "language" in answer["errors"]
    for path in ("/notifications/templates/default/nothing/sms", "/notifications/templates/default/invoice/fax",
                 "/notifications/templates/999999/invoice/email", "/notifications/templates/x/invoice/email"):
        status, _ = await call(admin, key, "GET", path)
        assert status == 404, path
    status, t = await call(admin, key, "DELETE", "/notifications/templates/default/reminder_1/sms?language=de")
    assert status == 200 and t["source"] == "built-in"
    assert await conn.fetchval("SELECT count(*) FROM message_templates") == 0
    # A partner's key: its own partner only; notifications.view alone changes nothing.
    theirs = await api_key(conn, "admin", partner_id=other)
    status, t = await call(admin, theirs, "PUT", f"/notifications/templates/{other}/invoice/portal",
                           {"body": "Your invoice {{ document.number }} is in the portal."})
    assert status == 200 and t["source"] == "partner" and t["partner_id"] == other
    for path in ("/notifications/templates/default/invoice/portal",
                 f"/notifications/templates/{demo_id}/invoice/portal"):
        status, _ = await call(admin, theirs, "GET", path)
        assert status == 404, path
        status, _ = await call(admin, theirs, "PUT", path, {"body": "x"})
        assert status == 404, path
    viewer = await api_key(conn, "manager")
    status, _ = await call(admin, viewer, "GET", f"/notifications/templates/{other}/invoice/portal")
    assert status == 200
    status, _ = await call(admin, viewer, "DELETE", f"/notifications/templates/{other}/invoice/portal")
    assert status == 403
    status, _ = await call(admin, await api_key(conn, "engineer"), "GET",
                           "/notifications/templates/default/invoice/sms")
    assert status == 403
    assert await conn.fetchval("SELECT count(*) FROM message_templates WHERE partner_id = $1", other) == 1


async def test_a_partners_administrator_edits_its_own_templates_only(admin: Admin, conn: asyncpg.Connection) -> None:
    demo_id, other = await two_partners(conn)
    await make_admin(conn, "other-admin", "admin", partner_id=other)
    await make_admin(conn, "manager", "manager")
    async with admin.client() as c:
        await c.login("other-admin")
        status, body = await c.get("/admin/notifications/templates")
        assert status == 200 and "Other ISP" in body and 'id="f-partner_id"' not in body
        for path in (f"/admin/notifications/templates?partner_id={demo_id}", f"{EDIT}?partner_id={demo_id}"):
            status, _ = await c.get(path)
            assert status == 404, path
        status, _, _ = await c.post(EDIT, {"kind": "invoice", "channel": "email", "body": GOOD,
                                           "partner_id": str(demo_id)})
        assert status == 404
        status, body, url = await c.post(EDIT, {"kind": "invoice", "channel": "email", "body": GOOD})
        assert status == 200 and url.endswith("done=saved"), body
        assert await conn.fetchval("SELECT partner_id FROM message_templates") == other
    async with admin.client() as c:
        await c.login("manager")
        status, body = await c.get(f"{EDIT}?partner_id={other}&kind=invoice&channel=email")
        assert status == 200 and 'id="save"' not in body and "readonly" in body
        status, _, _ = await c.post(EDIT, {"kind": "invoice", "channel": "email", "body": GOOD})
        assert status == 403
        status, body, _ = await c.post("/admin/notifications/templates/check",
                                       {"kind": "invoice", "channel": "email", "body": GOOD})
        assert status == 200 and 'id="check-ok"' in body  # checking changes nothing: view is enough
