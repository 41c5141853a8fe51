"""Portal brands for staff (admin/portal/brands.py): the draft saved, previewed and published
(what brands_store.brand_of returns changes only then), the refusals (colours, custom CSS, menu
items), host names (lower case, one partner's), partner scoping (404), the operations log."""

from __future__ import annotations

import pytest

from admin.portal import brands, brands_store
from tests.integration.admin.conftest import Admin, api_key, call, logged_in, make_admin
from tests.integration.portal.conftest import admin, partner

__all__ = ["admin"]


async def _key(admin: Admin, partner_id: int | None = None) -> str:
    async with admin.pool.acquire() as conn:
        return await api_key(conn, partner_id=partner_id)


async def test_a_draft_shows_only_once_published(admin: Admin) -> None:
    pid = await partner(admin, "Alpha Net")
    key = await _key(admin)
    status, out = await call(admin, key, "GET", f"/portal/brands/{pid}")
    assert status == 200 and out["published_at"] is None and out["draft"]["accent_color"] == "#1f6feb"
    draft = {"name": "Alpha", "accent_color": "#aa3300", "custom_css": ".card { border-width: 2px; }",
             "menu": ["finance", "support"], "dashboard": ["balance"], "fields": {"phone": "view", "email": "hidden"},
             "footer_text": "Alpha Net GmbH"}
    status, out = await call(admin, key, "PUT", f"/portal/brands/{pid}", draft)
    assert status == 200 and out["unpublished"] is True and out["draft"]["menu"] == ["dashboard", "finance", "support"]
    async with admin.pool.acquire() as conn:
        shown = await brands_store.brand_of(conn, pid)
        previewed = await brands_store.brand_of(conn, pid, draft=True)
    assert shown.accent_color == "#1f6feb" and shown.name == "Alpha Net"
    assert previewed.accent_color == "#aa3300" and previewed.name == "Alpha" and previewed.fields["email"] == "hidden"
    status, out = await call(admin, key, "POST", f"/portal/brands/{pid}/publish")
    assert status == 200 and out["unpublished"] is False and out["published_at"]
    assert out["updated_by"].startswith("key:")
    async with admin.pool.acquire() as conn:
        shown = await brands_store.brand_of(conn, pid)
        log = await conn.fetch("SELECT action, summary FROM operations_log WHERE object_type = 'portal_brand' "
                               "AND object_id = $1 ORDER BY id", pid)
    assert shown.accent_color == "#aa3300" and shown.menu == ("dashboard", "finance", "support")
    assert shown.custom_css == ".card { border-width: 2px; }" and shown.footer_text == "Alpha Net GmbH"
    assert [r["action"] for r in log] == ["update", "publish"] and "accent_color" in log[1]["summary"]
    status, out = await call(admin, key, "PUT", f"/portal/brands/{pid}", {**draft, "accent_color": "#00aa00"})
    async with admin.pool.acquire() as conn:
        assert (await brands_store.brand_of(conn, pid)).accent_color == "#aa3300"  # a new draft: not yet


@pytest.mark.parametrize(("css", "why"), [
    ("</style><script>alert(1)</script>", "</style"),
    ("@import url(https://cdn.example/x.css);", "@import of https://cdn.example/x.css is refused"),
    ('@import "//cdn.example/x.css";', "@import of //cdn.example/x.css"),
    ('@\\69mport "https://cdn.example/x.css";', "@import of https://cdn.example/x.css"),
    ("body { background: url( 'http://track.example/p.gif' ) }", "url(http://track.example/p.gif) is refused"),
    ("body { background: u\\72l(https://t.example/a.png) }", "url(https://t.example/a.png) is refused"),
    ("body { background: image-set(\"https://t.example/a.png\" 1x) }", "image-set"),
    ("/* " + "x" * (21 * 1024) + " */", "at most 20 KB"),
])
async def test_custom_css_is_refused_saying_why(admin: Admin, css: str, why: str) -> None:
    pid = await partner(admin)
    status, out = await call(admin, await _key(admin), "PUT", f"/portal/brands/{pid}", {"custom_css": css})
    assert status == 422 and why in out["errors"]["custom_css"], out


def test_css_that_stays_on_the_portal_s_host_is_taken() -> None:
    assert brands.css_problem(".a { background: url(data:image/png;base64,AAAA) }") is None
    assert brands.css_problem(".a { background: url('/portal/static/x.svg') } @import '/portal/static/b.css';") is None
    assert brands.css_problem(".a::before { content: '\\201C' }") is None


async def test_other_refusals_and_the_editor_form(admin: Admin) -> None:
    pid = await partner(admin)
    key = await _key(admin)
    for payload, field in (({"accent_color": "red"}, "accent_color"), ({"menu": ["casino"]}, "menu"),
                           ({"dashboard": ["weather"]}, "dashboard"), ({"fields": {"iban": "edit"}}, "fields")):
        status, out = await call(admin, key, "PUT", f"/portal/brands/{pid}", payload)
        assert status == 422 and (field in out["errors"] or field in str(out["errors"])), (payload, out)
    status, out = await call(admin, key, "POST", f"/portal/brands/{pid}/publish")
    assert status == 409  # no draft yet
    async with await logged_in(admin) as c:
        status, body = await c.get("/admin/portal/brands")
        assert status == 200 and "not published" in body
        status, body = await c.get(f"/admin/portal/brands/{pid}")
        assert status == 200 and f"/admin/finance/partners/{pid}/branding" in body
        form = {"name": "Fibre", "accent_color": "#123456", "background_color": "#ffffff", "text_color": "#000000",
                "custom_css": "@import url(https://x.example/a.css);", "header_text": "", "footer_text": "",
                "menu": "finance", "dashboard": "balance", "field_email": "edit"}
        status, body, _ = await c.post(f"/admin/portal/brands/{pid}", form)
        assert status == 422 and "@import of https://x.example/a.css is refused" in body
        assert 'value="#123456"' in body  # the form as it was filled in
        status, body, url = await c.post(f"/admin/portal/brands/{pid}", {**form, "custom_css": ".x { color: red }"})
        assert status == 200 and url.endswith("?done=saved") and "draft not published" not in body  # never published
        status, body = await c.get(f"/admin/portal/brands/{pid}/preview")
        assert status == 200 and "Preview" in body and "Fibre" in body and f"brands/{pid}/preview.css" in body
        assert 'data-section="finance"' in body and 'data-section="usage"' not in body
        status, css = await c.get(f"/admin/portal/brands/{pid}/preview.css")
        assert status == 200 and "--accent: #123456" in css and ".x { color: red }" in css
        status, body, _ = await c.post(f"/admin/portal/brands/{pid}/publish")
        assert status == 200 and "Published" in body
    async with admin.pool.acquire() as conn:
        assert (await brands_store.brand_of(conn, pid)).name == "Fibre"


async def test_a_host_name_is_one_partner_s(admin: Admin) -> None:
    alpha = await partner(admin, "Alpha")
    beta = await partner(admin, "Beta")
    key = await _key(admin)
    status, out = await call(admin, key, "POST", f"/portal/brands/{alpha}/hosts", {"host": " Portal.Alpha.example. "})
    assert status == 201 and out == {"host": "portal.alpha.example", "partner_id": alpha}
    status, out = await call(admin, key, "POST", f"/portal/brands/{beta}/hosts", {"host": "portal.alpha.example"})
    assert status == 422 and "portal.alpha.example is Alpha's portal already" in out["errors"]["host"]
    for bad in ("https://portal.beta.example", "portal.beta.example/x", "a..b", "bad host"):
        status, out = await call(admin, key, "POST", f"/portal/brands/{beta}/hosts", {"host": bad})
        assert status == 422 and "host name" in out["errors"]["host"], bad
    async with admin.pool.acquire() as conn:
        assert await brands_store.partner_of_host(conn, "PORTAL.alpha.example") == alpha
        await make_admin(conn, "bea", "super", partner_id=beta)
    async with admin.client() as c:
        await c.login("bea")
        await c.get(f"/admin/portal/brands/{beta}")
        status, body, _ = await c.post(f"/admin/portal/brands/{beta}/hosts", {"host": "portal.alpha.example"})
        assert status == 422 and "another partner&#39;s portal already" in body and "Alpha" not in body
        status, body, _ = await c.post(f"/admin/portal/brands/{beta}/hosts", {"host": "portal.beta.example:8443"})
        assert status == 200 and "portal.beta.example:8443" in body
    status, out = await call(admin, key, "GET", f"/portal/brands/{beta}/hosts")
    assert out == [{"host": "portal.beta.example:8443", "partner_id": beta}]
    status, _ = await call(admin, key, "DELETE", f"/portal/brands/{alpha}/hosts/portal.beta.example:8443")
    assert status == 404  # not Alpha's
    status, _ = await call(admin, key, "DELETE", f"/portal/brands/{alpha}/hosts/portal.alpha.example")
    assert status == 200
    async with admin.pool.acquire() as conn:
        assert await brands_store.partner_of_host(conn, "portal.alpha.example") is None
        assert await conn.fetchval("SELECT count(*) FROM operations_log WHERE object_type = 'portal_brand'") == 3


async def test_a_partner_s_administrator_sees_only_its_own_brand(admin: Admin) -> None:
    mine = await partner(admin, "Mine")
    theirs = await partner(admin, "Theirs")
    key = await _key(admin, mine)
    async with admin.pool.acquire() as conn:
        await make_admin(conn, "pat", "super", partner_id=mine)
    status, out = await call(admin, key, "GET", "/portal/brands")
    assert status == 200 and [b["partner"] for b in out] == ["Mine"]
    for method, path, payload in (("GET", f"/portal/brands/{theirs}", None),
                                  ("PUT", f"/portal/brands/{theirs}", {"name": "x"}),
                                  ("POST", f"/portal/brands/{theirs}/publish", None),
                                  ("GET", f"/portal/brands/{theirs}/hosts", None),
                                  ("POST", f"/portal/brands/{theirs}/hosts", {"host": "x.example"})):
        status, _ = await call(admin, key, method, path, payload)
        assert status == 404, (method, path)
    async with admin.client() as c:
        await c.login("pat")
        status, body = await c.get("/admin/portal/brands")
        assert status == 200 and "Mine" in body and "Theirs" not in body
        for path in (f"/admin/portal/brands/{theirs}", f"/admin/portal/brands/{theirs}/preview",
                     f"/admin/portal/brands/{theirs}/preview.css"):
            status, _ = await c.get(path)
            assert status == 404, path
        status, _, _ = await c.post(f"/admin/portal/brands/{theirs}", {"name": "x"})
        assert status == 404
    async with await logged_in(admin, "eng", "engineer") as c:  # no config.view
        status, _ = await c.get(f"/admin/portal/brands/{mine}")
        assert status == 403
