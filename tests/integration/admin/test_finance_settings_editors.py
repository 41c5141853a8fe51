"""Finance → Settings: the taxes editor, partners' branding and operators' document templates,
through their pages and their API on the admin app over a real database, rendering real PDFs
(WeasyPrint; read back with poppler's pdftotext).

Taxes: rates and groups are added, changed and deleted; a rate in a group and a group on a tariff
are not deleted, and the refusal names what uses them; a changed rate reaches the documents
issued after it only; tariffs take a tax group and "price includes tax". Branding: the logo
upload refuses what is not a plain SVG, a partner's administrator reaches only its partner, the
preview is a PDF of the sample invoice with the form's branding. Templates: a template that does
not compile, breaks the sandbox or fails to render is refused with its line; a document renders
with its partner's template, else the operator-wide one, else the built-in one; a kept PDF stays
as it was; "back to the default" deletes the row. Every change is in the operations log, and the
renders' times are printed (each must stay under 300 ms: the issue's figure)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from admin.billing import ledger, store
from admin.billing.render import pdf as renderer
from admin.billing.render import samples, templates
from daemons import demo
from tests.conftest import one
from tests.integration.admin.conftest import Admin, Client, api_key, call
from tests.integration.admin.test_finance import logged

D = Decimal
TODAY = dt.datetime.now(dt.UTC).date()
NS = 'xmlns="http://www.w3.org/2000/svg"'
LOGO = f'<svg {NS} width="120" height="40"><rect width="40" height="40" fill="#c0392b"/>' \
       '<text x="48" y="28" font-size="20">LOGO-MARK</text></svg>'
MARKER_TEMPLATE = ('{% extends "invoice.html" %}{% block heading %}<h1 class="doc-title">MARKER-{{ doc.number }}'
                   '</h1>{% endblock %}')

needs_pdf = pytest.mark.skipif(bool(renderer.missing_libraries()) or not shutil.which("pdftotext"),
                               reason="WeasyPrint's libraries or poppler-utils are missing (.ci/run installs them)")


def pdf_text(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / f"doc-{time.monotonic_ns()}.pdf"
    path.write_bytes(data)
    return " ".join(subprocess.run(["pdftotext", "-raw", str(path), "-"], capture_output=True, check=True,
                                   text=True).stdout.split())


async def oplog(conn: asyncpg.Connection, object_type: str) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT * FROM operations_log WHERE object_type = $1 ORDER BY id", object_type))


async def get_bytes(c: Client, path: str) -> tuple[int, str, bytes, float]:
    """(status, content type, body, milliseconds) of a GET."""
    started = time.perf_counter()
    async with c.session.get(c.url + path) as r:
        return r.status, r.content_type, await r.read(), (time.perf_counter() - started) * 1000


async def post_bytes(c: Client, path: str, form: aiohttp.FormData | dict[str, Any]) -> tuple[int, str, bytes, float]:
    """(status, content type, body, milliseconds) of a form's POST (the CSRF token added)."""
    if isinstance(form, dict):
        form = {"_csrf": c.csrf, **form}
    started = time.perf_counter()
    async with c.session.post(c.url + path, data=form, allow_redirects=True) as r:
        return r.status, r.content_type, await r.read(), (time.perf_counter() - started) * 1000


def upload(c: Client, fields: dict[str, str], logo: bytes | None = None, name: str = "logo.svg") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("_csrf", c.csrf)
    for k, v in fields.items():
        form.add_field(k, v)
    if logo is not None:
        form.add_field("logo", logo, filename=name, content_type="image/svg+xml")
    return form


BRAND = {"company_name": "Acme Fibre Ltd", "address": "1 High Street\nSpringfield", "tax_id": "GB123456789",
         "bank": "Acme Bank\nIBAN GB33BUKB20201555555555", "email": "billing@acme.example", "phone": "+44 1 2345",
         "website": "acme.example", "accent_color": "#c0392b", "footer": "Registered in England 0123456"}


async def invoice(conn: asyncpg.Connection, partner_id: int | None = None, group: int | None = None) -> int:
    """An invoice of a demo customer (of ``partner_id``, moved there when given), taxed by ``group``."""
    customer = await one(conn, "SELECT c.id, c.partner_id, b.currency FROM customers c JOIN customer_billing b "
                               "ON b.customer_id = c.id ORDER BY c.id LIMIT 1")
    if partner_id is not None and customer["partner_id"] != partner_id:
        await conn.execute("UPDATE customers SET partner_id = $2 WHERE id = $1", customer["id"], partner_id)
    groups = store.tax_groups_of(await store.tax_groups(conn))
    line = ledger.NewLine("Fibre 100", D("40.00"), tax_group=groups[group] if group else ledger.NO_TAX)
    async with conn.transaction():
        [doc] = await ledger.issue(conn, [ledger.NewDocument(
            "invoice", customer["id"], partner_id or customer["partner_id"], customer["currency"], TODAY, "manual",
            (line,), due_on=TODAY)])
    return doc.id


# -- taxes -------------------------------------------------------------------------------------------

async def test_taxes_are_added_changed_and_kept_while_in_use(admin: Admin, conn: asyncpg.Connection) -> None:
    await demo.load(conn, 3, seed=1)
    async with await logged(admin, "root", "super") as c:
        status, body = await c.get("/admin/finance/taxes")
        assert status == 200 and "No tax rates yet" in body and "issued from then on only" in body
        status, body, url = await c.post("/admin/finance/tax-rates", {"name": "VAT 20%", "percent": "20"})
        assert status == 200 and url.endswith("done=rate-created"), (status, url)
        assert "Tax rate added." in body
        status, body, _ = await c.post("/admin/finance/tax-rates", {"name": "Reduced", "percent": "7,5"})
        assert status == 200  # a decimal comma is taken
        vat, reduced = [r["id"] for r in await conn.fetch("SELECT id FROM tax_rates ORDER BY name DESC")]
        assert await conn.fetchval("SELECT percent FROM tax_rates WHERE id = $1", reduced) == D("7.5")

        # Refusals, each on its field, the form as typed, nothing written.
        for form, says in (({"name": "VAT 20%", "percent": "10"}, "another tax rate has this name"),
                           ({"name": "Odd", "percent": "abc"}, "must be a percent from 0 to 999.9999"),
                           ({"name": "Huge", "percent": "1000"}, "must be a percent from 0 to 999.9999"),
                           ({"name": "Fine", "percent": "1.23456"}, "at most 4 decimals"),
                           ({"name": "  ", "percent": "5"}, "is required")):
            status, body, _ = await c.post("/admin/finance/tax-rates", form)
            assert status == 422 and says in body, (form, status, body[:500])
            assert f'value="{form["percent"]}"' in body
        assert await conn.fetchval("SELECT count(*) FROM tax_rates") == 2

        status, body, _ = await c.post("/admin/finance/tax-groups", {"name": "Standard", "rate_ids": str(vat)})
        assert status == 200 and "Tax group added." in body
        status, body, _ = await c.post("/admin/finance/tax-groups", {"name": "Exempt"})
        assert status == 200
        std = await conn.fetchval("SELECT id FROM tax_groups WHERE name = 'Standard'")
        exempt = await conn.fetchval("SELECT id FROM tax_groups WHERE name = 'Exempt'")
        assert await conn.fetchval("SELECT count(*) FROM tax_group_rates WHERE group_id = $1", exempt) == 0
        status, body, _ = await c.post("/admin/finance/tax-groups", {"name": "Bad", "rate_ids": "999999"})
        assert status == 422 and "no such tax rate" in body

        # Both rates in the group; then a rate in a group is not deleted, and the refusal names the group.
        both = aiohttp.FormData([("_csrf", c.csrf), ("name", "Standard"), ("rate_ids", str(vat)),
                                 ("rate_ids", str(reduced))])
        status, _, page, _ = await post_bytes(c, f"/admin/finance/tax-groups/{std}", both)
        assert status == 200 and b"Tax group saved." in page
        assert await conn.fetchval("SELECT count(*) FROM tax_group_rates WHERE group_id = $1", std) == 2
        status, body, _ = await c.post(f"/admin/finance/tax-rates/{reduced}/delete", {})
        assert status == 409 and "is in the tax group Standard" in body
        status, body, _ = await c.post(f"/admin/finance/tax-groups/{std}", {"name": "Standard", "rate_ids": str(vat)})
        status, body, _ = await c.post(f"/admin/finance/tax-rates/{reduced}/delete", {})
        assert status == 200 and "Tax rate deleted." in body

        # A tariff on the group (through the tariff's form): the group is not deleted, the tariff is named.
        tariff = await one(conn, "SELECT * FROM tariffs ORDER BY id LIMIT 1")
        status, body = await c.get(f"/admin/tariffs/{tariff['id']}/edit")
        assert status == 200 and f'<option value="{std}">Standard</option>' in body
        form = {k: "" if tariff[k] is None else str(tariff[k]) for k in
                ("name", "download_kbps", "upload_kbps", "burst_download_kbps", "burst_upload_kbps",
                 "burst_threshold_download_kbps", "burst_threshold_upload_kbps", "burst_time_s", "priority",
                 "contention", "price", "currency")}
        status, body, _ = await c.post(f"/admin/tariffs/{tariff['id']}/edit",
                                       {**form, "tax_group_id": str(std), "price_includes_tax": "1"})
        assert status == 200 and "Standard" in body and "tax included" in body
        row = await one(conn, "SELECT tax_group_id, price_includes_tax FROM tariffs WHERE id = $1", tariff["id"])
        assert tuple(row) == (std, True)
        status, body = await c.get("/admin/tariffs")
        assert "Standard <span class=\"muted\">(included)</span>" in body
        status, body, _ = await c.post(f"/admin/finance/tax-groups/{std}/delete", {})
        assert status == 409 and f"1 tariff ({tariff['name']})" in body
        status, body, _ = await c.post(f"/admin/finance/tax-groups/{exempt}/delete", {})
        assert status == 200 and "Tax group deleted." in body

    logged_rates = await oplog(conn, "tax_rate")
    assert [r["action"] for r in logged_rates] == ["create", "create", "delete"]
    assert [r["action"] for r in await oplog(conn, "tax_group")] == ["create", "create", "update", "update", "delete"]


async def test_a_changed_rate_reaches_the_documents_issued_after_it_only(admin: Admin,
                                                                          conn: asyncpg.Connection) -> None:
    await demo.load(conn, 2, seed=1)
    key = await api_key(conn)
    status, rate = await call(admin, key, "POST", "/finance/tax-rates", {"name": "VAT", "percent": "20"})
    assert status == 201 and rate["percent"] == "20.0000"
    status, group = await call(admin, key, "POST", "/finance/tax-groups", {"name": "VAT", "rate_ids": [rate["id"]]})
    assert status == 201 and [r["name"] for r in group["rates"]] == ["VAT"]
    before = await invoice(conn, group=group["id"])
    status, changed = await call(admin, key, "PATCH", f"/finance/tax-rates/{rate['id']}", {"percent": "10"})
    assert status == 200 and changed["percent"] == "10.0000"
    after = await invoice(conn, group=group["id"])
    taxes = {d: await conn.fetchval("SELECT taxes FROM document_lines WHERE document_id = $1", d)
             for d in (before, after)}
    assert [t["percent"] for t in taxes[before]] == ["20.0000"] and [t["amount"] for t in taxes[before]] == ["8.00"]
    assert [t["percent"] for t in taxes[after]] == ["10.0000"] and [t["amount"] for t in taxes[after]] == ["4.00"]
    assert await conn.fetchval("SELECT total FROM documents WHERE id = $1", before) == D("48.00")
    [line] = [r for r in await oplog(conn, "tax_rate") if r["action"] == "update"]
    assert "20% -> 10%" in line["summary"]


async def test_the_taxes_api_answers_and_refuses(admin: Admin, conn: asyncpg.Connection) -> None:
    await demo.load(conn, 2, seed=1)
    key = await api_key(conn, "finance")
    status, rate = await call(admin, key, "POST", "/finance/tax-rates", {"name": "GST", "percent": "5"})
    assert status == 201
    status, qst = await call(admin, key, "POST", "/finance/tax-rates", {"name": "QST", "percent": "9.975"})
    status, group = await call(admin, key, "POST", "/finance/tax-groups",
                               {"name": "Quebec", "rate_ids": [rate["id"], qst["id"]]})
    assert status == 201 and {r["percent"] for r in group["rates"]} == {"5.0000", "9.9750"}
    status, rates = await call(admin, key, "GET", "/finance/tax-rates")
    assert status == 200 and {r["name"]: r["groups"] for r in rates} == {"GST": ["Quebec"], "QST": ["Quebec"]}
    status, groups = await call(admin, key, "GET", "/finance/tax-groups")
    assert status == 200 and groups[0]["tariffs"] == 0
    for method, path, body, expected in (
            ("POST", "/finance/tax-rates", {"name": "GST", "percent": "1"}, 422),
            ("POST", "/finance/tax-rates", {"name": "X", "percent": "-1"}, 422),
            ("POST", "/finance/tax-rates", {"name": "X\u0000", "percent": "1"}, 422),
            ("PATCH", "/finance/tax-rates/999999", {"percent": "1"}, 404),
            ("PATCH", f"/finance/tax-groups/{group['id']}", {"rate_ids": [999999]}, 422),
            ("DELETE", f"/finance/tax-rates/{rate['id']}", None, 409)):
        status, answer = await call(admin, key, method, path, body)
        assert status == expected, (method, path, status, answer)
    status, answer = await call(admin, key, "DELETE", f"/finance/tax-rates/{rate['id']}")
    assert "Quebec" in answer["detail"]
    # A tariff through the API takes the group; the group is kept while it is named.
    status, tariff = await call(admin, await api_key(conn), "POST", "/tariffs", {
        "name": "Taxed", "download_kbps": 10000, "upload_kbps": 1000, "price": "30", "tax_group_id": group["id"],
        "price_includes_tax": True})
    assert status == 201 and tariff["tax_group"] == "Quebec" and tariff["price_includes_tax"] is True
    status, answer = await call(admin, await api_key(conn), "POST", "/tariffs", {
        "name": "Ghost", "download_kbps": 1, "upload_kbps": 1, "tax_group_id": 999999})
    assert status == 422 and answer["errors"] == {"tax_group_id": "no such tax group (deleted meanwhile?)"}
    status, answer = await call(admin, key, "DELETE", f"/finance/tax-groups/{group['id']}")
    assert status == 409 and "1 tariff (Taxed)" in answer["detail"]
    status, tariff = await call(admin, await api_key(conn), "PATCH", f"/tariffs/{tariff['id']}", {"tax_group_id": None})
    assert status == 200 and tariff["tax_group"] is None
    status, _ = await call(admin, key, "DELETE", f"/finance/tax-groups/{group['id']}")
    assert status == 200
    status, _ = await call(admin, key, "DELETE", f"/finance/tax-rates/{rate['id']}")
    assert status == 200

    # A partner's key sees the taxes and changes none; a role without finance sees nothing.
    partner = await conn.fetchval("SELECT id FROM partners LIMIT 1")
    theirs = await api_key(conn, "finance", partner_id=partner)
    assert (await call(admin, theirs, "GET", "/finance/tax-rates"))[0] == 200
    status, answer = await call(admin, theirs, "POST", "/finance/tax-rates", {"name": "Mine", "percent": "3"})
    assert status == 403 and "every partner" in answer["detail"]
    assert (await call(admin, await api_key(conn, "engineer"), "GET", "/finance/tax-rates"))[0] == 403


# -- branding ----------------------------------------------------------------------------------------

@needs_pdf
async def test_a_partner_is_branded_with_a_checked_logo_and_previewed(admin: Admin, conn: asyncpg.Connection,
                                                                      tmp_path: Path) -> None:
    await demo.load(conn, 2, seed=1)
    partner = await conn.fetchval("SELECT id FROM partners WHERE name = 'Demo ISP'")
    async with await logged(admin, "root", "super") as c:
        status, body = await c.get("/admin/finance/branding")
        assert status == 200 and "Demo ISP (no branding yet)" in body
        status, body = await c.get(f"/admin/finance/partners/{partner}/branding")
        assert status == 200 and 'enctype="multipart/form-data"' in body

        # A logo with a script is refused, with the reason and the file's name; nothing is written.
        bad = f'<svg {NS}><script>alert(1)</script></svg>'.encode()
        status, _, page, _ = await post_bytes(c, f"/admin/finance/partners/{partner}/branding",
                                              upload(c, BRAND, bad, "evil.svg"))
        assert status == 422 and b"evil.svg: the SVG has a script (&lt;script&gt;)" in page
        assert b'value="Acme Fibre Ltd"' in page  # the form as typed
        assert await conn.fetchval("SELECT count(*) FROM partner_branding") == 0

        # The preview of the unsaved form: a PDF of the sample invoice with that branding.
        await c.get(f"/admin/finance/partners/{partner}/branding")
        status, kind, pdf, ms = await post_bytes(c, f"/admin/finance/partners/{partner}/branding/preview",
                                                 upload(c, BRAND, LOGO.encode()))
        assert status == 200 and kind == "application/pdf" and pdf.startswith(b"%PDF"), pdf[:300]
        text = pdf_text(pdf, tmp_path)
        assert "Acme Fibre Ltd" in text and "GB33BUKB20201555555555" in text and samples.document().number in text
        assert "LOGO-MARK" in text  # the logo just uploaded, drawn (its text is the PDF's)
        print(f"branding preview (POST, unsaved, a PDF of the sample invoice): {ms:.0f} ms")
        assert await conn.fetchval("SELECT count(*) FROM partner_branding") == 0

        status, _, page, _ = await post_bytes(c, f"/admin/finance/partners/{partner}/branding",
                                              upload(c, {**BRAND, "email": "not-an-address"}, LOGO.encode()))
        assert status == 422 and b"is not an email address" in page
        status, _, page, _ = await post_bytes(c, f"/admin/finance/partners/{partner}/branding",
                                              upload(c, BRAND, LOGO.encode()))
        assert status == 200 and b"Branding saved" in page and b'id="saved-logo"' in page
        row = await one(conn, "SELECT * FROM partner_branding WHERE partner_id = $1", partner)
        assert row["company_name"] == "Acme Fibre Ltd" and row["logo_svg"] == LOGO and row["accent_color"] == "#c0392b"
        assert row["address"] == "1 High Street\nSpringfield"

        # Saving again without a file keeps the logo; the saved branding's PDF; then the logo removed.
        await c.get(f"/admin/finance/partners/{partner}/branding")
        status, _, _, _ = await post_bytes(c, f"/admin/finance/partners/{partner}/branding",
                                           upload(c, {**BRAND, "phone": "+44 9"}))
        assert status == 200
        assert await conn.fetchval("SELECT logo_svg FROM partner_branding") == LOGO
        status, kind, pdf, ms = await get_bytes(c, f"/admin/finance/partners/{partner}/branding/preview")
        assert status == 200 and kind == "application/pdf" and "+44 9" in pdf_text(pdf, tmp_path)
        print(f"branding preview (GET, saved): {ms:.0f} ms")
        assert "LOGO-MARK" in pdf_text(pdf, tmp_path)
        status, _, _, _ = await post_bytes(c, f"/admin/finance/partners/{partner}/branding",
                                           upload(c, {**BRAND, "remove_logo": "1"}))
        assert await conn.fetchval("SELECT logo_svg FROM partner_branding") is None

        # A real invoice of the partner shows its branding.
        doc = await invoice(conn, partner)
        status, kind, pdf, ms = await get_bytes(c, f"/admin/finance/documents/{doc}/pdf")
        text = pdf_text(pdf, tmp_path)
        assert status == 200 and "Acme Fibre Ltd" in text and "LOGO-MARK" not in text
    lines = await oplog(conn, "partner_branding")
    assert len(lines) == 3 and lines[0]["partner_id"] == partner
    assert lines[0]["after"]["logo_svg"].startswith(f"{len(LOGO)} bytes, sha256 ")  # the log keeps no SVG text
    assert lines[1]["summary"].endswith("changed phone")


async def test_branding_is_the_partners_own_and_in_the_api(admin: Admin, conn: asyncpg.Connection) -> None:
    await demo.load(conn, 2, seed=1)
    mine = await conn.fetchval("SELECT id FROM partners WHERE name = 'Demo ISP'")
    other = await conn.fetchval("INSERT INTO partners (name) VALUES ('Other ISP') RETURNING id")
    async with await logged(admin, "theirs", "finance", partner_id=mine) as c:
        status, body = await c.get("/admin/finance/branding")
        assert status == 200 and "Demo ISP" in body and "Other ISP" not in body
        assert (await c.get(f"/admin/finance/partners/{other}/branding"))[0] == 404
        assert (await c.get(f"/admin/finance/partners/{mine}/branding"))[0] == 200
        status, _, _, _ = await post_bytes(c, f"/admin/finance/partners/{other}/branding", upload(c, BRAND))
        assert status == 404
        status, _, _, _ = await post_bytes(c, f"/admin/finance/partners/{mine}/branding", upload(c, BRAND))
        assert status == 200
    assert await conn.fetchval("SELECT partner_id FROM partner_branding") == mine

    key = await api_key(conn, "finance", partner_id=mine)
    status, listed = await call(admin, key, "GET", "/finance/branding")
    assert status == 200 and [b["partner"] for b in listed] == ["Demo ISP"]
    assert (await call(admin, key, "GET", f"/finance/partners/{other}/branding"))[0] == 404
    assert (await call(admin, key, "PATCH", f"/finance/partners/{other}/branding", {"footer": "x"}))[0] == 404
    status, got = await call(admin, key, "PATCH", f"/finance/partners/{mine}/branding",
                             {"logo_svg": LOGO, "footer": "Footer line"})
    assert status == 200 and got["logo_svg"] == LOGO and got["footer"] == "Footer line" and got["branded"]
    for bad, field in (({"logo_svg": f'<svg {NS}><foreignObject/></svg>'}, "logo"),
                       ({"logo_svg": f'<svg {NS} onload="x()"/>'}, "logo"),
                       ({"logo_svg": '<!DOCTYPE svg [<!ENTITY a "a">]><svg/>'}, "logo"),
                       ({"accent_color": "red"}, "accent_color"),
                       ({"email": "nobody"}, "email")):
        status, answer = await call(admin, key, "PATCH", f"/finance/partners/{mine}/branding", bad)
        assert status == 422 and field in answer["errors"], (bad, answer)
    status, got = await call(admin, key, "GET", f"/finance/partners/{mine}/branding")
    assert got["logo_svg"] == LOGO
    status, got = await call(admin, await api_key(conn), "GET", f"/finance/partners/{other}/branding")
    assert status == 200 and got["branded"] is False and got["accent_color"] == "#1f6feb"
    creator = await api_key(conn, "creator")
    assert (await call(admin, creator, "GET", "/finance/branding"))[0] == 403


# -- document templates ------------------------------------------------------------------------------

REFUSED_TEMPLATES = {
    "a syntax error": ('{% extends "invoice.html" %}\n{% block body %}\n{% if doc.total %}\n{% endblock %}',
                       "line 4"),
    "what the sandbox forbids": ('{% extends "invoice.html" %}\n{% block body %}\n'
                                 "{{ doc.__class__.__init__.__globals__ }}\n{% endblock %}",
                                 "line 3: refused by the sandbox"),
    "an undefined name": ('{% extends "invoice.html" %}\n{% block body %}\n\n{{ doc.totl|money }}\n{% endblock %}',
                          "line 4"),
    "a fetch the renderer refuses": ('{% extends "invoice.html" %}\n{% block body %}<img src="https://evil.example/p.png">'
                                     '{% endblock %}', "documents fetch nothing"),
    "an unknown template": ('{% extends "nothing.html" %}', "no template 'nothing.html'"),
}


@needs_pdf
async def test_templates_are_checked_previewed_saved_and_used_in_order(admin: Admin, conn: asyncpg.Connection,
                                                                        tmp_path: Path) -> None:
    await demo.load(conn, 2, seed=1)
    partner = await conn.fetchval("SELECT id FROM partners WHERE name = 'Demo ISP'")
    async with await logged(admin, "root", "super") as c:
        status, body = await c.get("/admin/finance/document-templates")
        assert status == 200 and "In use: <strong>the built-in one</strong>" in body
        assert "{% extends &#34;base.html&#34; %}" in body or "{% extends &quot;base.html&quot; %}" in body
        assert "keeps it" in body  # a kept PDF stays as it was

        for name, (source, says) in REFUSED_TEMPLATES.items():
            started = time.perf_counter()
            status, body, _ = await c.post("/admin/finance/document-templates", {"kind": "invoice", "body": source})
            assert status == 422 and says in body.replace("&#39;", "'"), (name, body[body.find("not taken"):][:600])
            print(f"template refused ({name}): {(time.perf_counter() - started) * 1000:.0f} ms")
        assert await conn.fetchval("SELECT count(*) FROM document_templates") == 0

        # The preview renders the editor's text, unsaved; a preview of a broken one says why.
        status, kind, pdf, ms = await post_bytes(c, "/admin/finance/document-templates/preview",
                                                 {"kind": "invoice", "body": MARKER_TEMPLATE})
        assert status == 200 and kind == "application/pdf"
        assert f"MARKER-{samples.document().number}" in pdf_text(pdf, tmp_path)
        print(f"template preview (POST, a PDF of the sample invoice): {ms:.0f} ms")
        status, kind, page, _ = await post_bytes(c, "/admin/finance/document-templates/preview",
                                                 {"kind": "invoice", "body": REFUSED_TEMPLATES["an undefined name"][0]})
        assert status == 422 and b"line 4" in page
        assert await conn.fetchval("SELECT count(*) FROM document_templates") == 0

        doc = await invoice(conn, partner)
        status, body, url = await c.post("/admin/finance/document-templates",
                                         {"kind": "invoice", "body": MARKER_TEMPLATE.replace("MARKER", "OPERATOR")})
        assert status == 200 and "done=saved" in url and "the operator-wide one" in body
        status, _, pdf, ms = await get_bytes(c, f"/admin/finance/documents/{doc}/pdf")
        number = await conn.fetchval("SELECT number FROM documents WHERE id = $1", doc)
        assert f"OPERATOR-{number}" in pdf_text(pdf, tmp_path)
        print(f"an invoice rendered with the operator-wide template: {ms:.0f} ms")

        # The partner's own template wins over the operator-wide one, for documents rendered after it.
        status, body, _ = await c.post("/admin/finance/document-templates",
                                       {"kind": "invoice", "partner_id": str(partner),
                                        "body": MARKER_TEMPLATE.replace("MARKER", "PARTNER")})
        assert status == 200 and "Demo ISP&#39;s own" in body
        status, _, kept, _ = await get_bytes(c, f"/admin/finance/documents/{doc}/pdf")
        assert kept == pdf  # the PDF kept stays as it was
        second = await invoice(conn, partner)
        status, _, pdf, ms = await get_bytes(c, f"/admin/finance/documents/{second}/pdf")
        second_number = await conn.fetchval("SELECT number FROM documents WHERE id = $1", second)
        assert f"PARTNER-{second_number}" in pdf_text(pdf, tmp_path)
        print(f"an invoice rendered with the partner's template: {ms:.0f} ms")
        status, body = await c.get(f"/admin/finance/document-templates?partner_id={partner}&kind=invoice")
        assert "The default: the operator-wide template" in body and "Back to the default" in body

        # Back to the default: the partner's row goes, the operator-wide one is used again.
        status, body, _ = await c.post("/admin/finance/document-templates/reset",
                                       {"kind": "invoice", "partner_id": str(partner)})
        assert status == 200 and "Back to the default" in body
        third = await invoice(conn, partner)
        status, _, pdf, _ = await get_bytes(c, f"/admin/finance/documents/{third}/pdf")
        assert "OPERATOR-" in pdf_text(pdf, tmp_path)
        status, body, _ = await c.post("/admin/finance/document-templates/reset", {"kind": "invoice"})
        assert await conn.fetchval("SELECT count(*) FROM document_templates") == 0
    assert [r["action"] for r in await oplog(conn, "document_template")] == ["create", "create", "delete", "delete"]


@needs_pdf
async def test_templates_in_the_api_and_by_partner(admin: Admin, conn: asyncpg.Connection, tmp_path: Path) -> None:
    await demo.load(conn, 2, seed=1)
    mine = await conn.fetchval("SELECT id FROM partners WHERE name = 'Demo ISP'")
    other = await conn.fetchval("INSERT INTO partners (name) VALUES ('Other ISP') RETURNING id")
    key = await api_key(conn, "finance", partner_id=mine)
    status, listed = await call(admin, key, "GET", "/finance/document-templates")
    assert status == 200 and [t["kind"] for t in listed] == list(templates.TEMPLATE_KINDS)
    assert {t["source"] for t in listed} == {"built-in"} and {t["partner_id"] for t in listed} == {mine}
    receipt = ('{% extends "receipt.html" %}{% block heading %}<h1 class="doc-title">THANKS {{ doc.number }}</h1>'
               '{% endblock %}')
    status, saved = await call(admin, key, "PUT", "/finance/document-templates/receipt", {"body": receipt})
    assert status == 200 and saved["source"] == "partner" and saved["updated_by"].startswith("key:")
    status, answer = await call(admin, key, "PUT", "/finance/document-templates/receipt",
                                {"body": "{{ doc.nope }}"})
    assert status == 422 and "nope" in answer["errors"]["body"]
    assert (await call(admin, key, "PUT", "/finance/document-templates/memo", {"body": "x"}))[0] == 404
    status, answer = await call(admin, key, "PUT", f"/finance/document-templates/receipt?partner_id={other}",
                                {"body": receipt})
    assert status == 422 and answer["errors"] == {"partner_id": "no such partner"}  # another's: not told apart
    status, answer = await call(admin, await api_key(conn), "GET", "/finance/document-templates?partner_id=999999")
    assert status == 422 and answer["errors"] == {"partner_id": "no such partner"}
    started = time.perf_counter()
    account = '{% extends "statement.html" %}{% block heading %}<h1>ACCOUNT</h1>{% endblock %}'
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as s, \
            s.post(admin.url + "/api/v1/finance/document-templates/statement/preview", json={"body": account}) as r:
        assert r.status == 200 and r.content_type == "application/pdf"
        assert "ACCOUNT" in pdf_text(await r.read(), tmp_path)
    print(f"statement template preview (API): {(time.perf_counter() - started) * 1000:.0f} ms")

    # The operator-wide templates are the unscoped administrators'.
    async with await logged(admin, "theirs", "finance", partner_id=mine) as c:
        status, body = await c.get("/admin/finance/document-templates?kind=receipt")
        assert status == 200 and "Demo ISP&#39;s own" in body and "every partner (the operator" not in body
        assert (await c.get(f"/admin/finance/document-templates?partner_id={other}"))[0] == 404
    super_key = await api_key(conn)
    status, listed = await call(admin, super_key, "GET", "/finance/document-templates")
    assert {t["source"] for t in listed} == {"built-in"} and {t["partner_id"] for t in listed} == {None}
    status, saved = await call(admin, super_key, "PUT", "/finance/document-templates/invoice",
                               {"body": MARKER_TEMPLATE})
    assert status == 200 and saved["source"] == "operator"
    status, listed = await call(admin, key, "GET", "/finance/document-templates")
    assert {t["kind"]: t["source"] for t in listed} == {"invoice": "operator", "proforma": "built-in",
                                                       "credit_note": "built-in", "receipt": "partner",
                                                       "statement": "built-in"}
    status, answer = await call(admin, key, "DELETE", "/finance/document-templates/receipt")
    assert status == 200 and answer["source"] == "built-in"
    status, answer = await call(admin, key, "DELETE", "/finance/document-templates/invoice")
    assert status == 200 and answer["source"] == "operator"  # its partner had none: the operator's stays
    assert await conn.fetchval("SELECT count(*) FROM document_templates") == 1


# -- pages by role, and the renders' cost ----------------------------------------------------------------

PAGES = ["/admin/finance/taxes", "/admin/finance/branding", "/admin/finance/document-templates",
         "/admin/finance/document-templates?kind=statement"]


@pytest.mark.parametrize("role", ["finance", "manager", "admin"])
async def test_the_editors_answer_for_a_finance_role(admin: Admin, conn: asyncpg.Connection, role: str) -> None:
    """Every page answers; a role that only views them (the manager: finance.view) gets no button that changes."""
    await demo.load(conn, 1, seed=1)
    partner = await conn.fetchval("SELECT id FROM partners LIMIT 1")
    edits = role != "manager"
    async with await logged(admin, "money", role) as c:
        for url, button in ((PAGES[0], "Add rate"), (PAGES[1], None), (PAGES[2], 'id="save"'),
                            (PAGES[3], 'id="save"'), (f"/admin/finance/partners/{partner}/branding", ">Save<")):
            status, body = await c.get(url)
            assert status == 200, (url, status, body[:300])
            assert button is None or (button in body) == edits, (url, button)
        status, body = await c.get("/admin/finance/settings")
        assert 'href="/admin/finance/taxes"' in body and 'href="/admin/finance/document-templates"' in body


@pytest.mark.parametrize("role", ["engineer", "creator"])
async def test_the_editors_refuse_a_role_without_finance(admin: Admin, conn: asyncpg.Connection, role: str) -> None:
    async with await logged(admin, "nope", role) as c:
        for url in PAGES:
            assert (await c.get(url))[0] == 403, url


@needs_pdf
def test_every_kind_renders_with_an_operators_template_and_a_logo(tmp_path: Path) -> None:
    """The renders the editors make: the sample of each kind, branded with a logo, through an
    operator's template (the shipped one with its title changed). Each is timed and the time printed
    (the issue's bound is 300 ms a document; not asserted: the machine is shared)."""
    renderer.warm_up()
    brand = samples.branding()
    for kind in templates.TEMPLATE_KINDS:
        source = templates.shipped_source(kind).replace("{% block title %}", "{% block title %}Custom ")
        times = []
        for _ in range(3):
            started = time.perf_counter()
            pdf = renderer.render_pdf(samples.sample(kind), brand, source)
            times.append((time.perf_counter() - started) * 1000)
        assert "Custom" in pdf_text(pdf, tmp_path) or kind == "receipt", kind
        print(f"{kind}: {min(times):.0f} ms (best of 3; {', '.join(f'{t:.0f}' for t in times)}) with an operator's "
              "template and the logo")
