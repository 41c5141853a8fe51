"""Finance → Settings's editors in a real browser: a tax rate and a group are added and set on a
tariff; a partner is branded (its logo uploaded, a bad one refused) and previewed; its invoice
template is edited, previewed, refused with its line when broken, saved. Screenshots in
var/screenshots/finance_editors-<page>.png, and the previews' PDFs beside them (with their first
page as PNG, when poppler's pdftoppm is there)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Route

from daemons import demo
from tests.integration.admin.conftest import Admin, make_admin
from tests.integration.browser.conftest import PHONE, SHOTS, Browse, Tab

pytestmark = pytest.mark.skipif(not shutil.which("pdftoppm") or not shutil.which("pdftotext"),
                                reason="poppler-utils are missing (.ci/run installs them): the previews are read back")

LOGO = ('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="48" viewBox="0 0 200 48">'
        '<circle cx="24" cy="24" r="20" fill="#c0392b"/><path d="M14 30 L24 12 L34 30 Z" fill="#fff"/>'
        '<text x="54" y="32" font-family="DejaVu Sans" font-size="20" font-weight="bold" fill="#222">ACME-LOGO</text>'
        "</svg>")
TEMPLATE = """{% extends "invoice.html" %}
{% block heading %}<h1 class="doc-title">Invoice from {{ brand.company_name }}</h1>
<p>Thank you for choosing us, {{ doc.customer.name }}.</p>{% endblock %}"""


async def pdf_of(tab: Tab, button: str, name: str) -> str:
    """Click ``button`` (a form's button that opens its answer in a new tab) and keep the PDF the
    server answers to the browser's own POST (taken on its way by a route: Chromium's viewer shows
    it, which leaves the page no bytes to read) as var/screenshots/finance_editors-<name>.pdf, with
    its first page as .png and a screenshot of the tab that shows it; its text (poppler's pdftotext)."""
    page = tab.page
    answers: list[tuple[int, str, bytes]] = []

    async def keep(route: Route) -> None:
        response = await route.fetch()
        answers.append((response.status, response.headers.get("content-type", ""), await response.body()))
        await route.fulfill(response=response)

    await page.context.route("**/preview", keep)
    try:
        async with page.context.expect_page() as opened:
            await page.click(button)
        viewer = await opened.value
        await viewer.wait_for_load_state()
    finally:
        await page.context.unroute("**/preview", keep)
    [(status, kind, body)] = answers
    assert status == 200 and kind == "application/pdf", (status, kind, body[:300])
    assert body.startswith(b"%PDF")
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"finance_editors-{name}.pdf"
    path.write_bytes(body)
    await viewer.wait_for_timeout(1000)  # the viewer draws the first page
    await viewer.screenshot(path=str(SHOTS / f"finance_editors-{name}-tab.png"))
    await viewer.close()
    subprocess.run(["pdftoppm", "-png", "-r", "70", "-singlefile", str(path), str(path.with_suffix(""))],
                   check=True, timeout=60)
    text = subprocess.run(["pdftotext", "-raw", str(path), "-"], capture_output=True, check=True, text=True).stdout
    return " ".join(text.split())


async def test_taxes_branding_and_a_template_are_edited_and_previewed(conn: asyncpg.Connection, admin: Admin,
                                                                      browse: Browse, tmp_path: Path) -> None:
    await make_admin(conn, "root")
    await demo.load(conn, 3, seed=1)
    partner = await conn.fetchval("SELECT id FROM partners WHERE name = 'Demo ISP'")
    tariff = await conn.fetchrow("SELECT id, name FROM tariffs ORDER BY id LIMIT 1")
    assert tariff is not None
    tab = await browse()
    page = tab.page
    page.on("dialog", lambda dialog: dialog.accept())
    for refused in (r"422 .*/admin/finance/tax-rates", r"409 .*/admin/finance/tax-groups/\d+/delete",
                    r"422 .*/admin/finance/partners/\d+/branding", r"422 .*/admin/finance/document-templates"):
        tab.expect_error(refused)  # the forms refused on purpose below answer 422 or 409
    await tab.login("root")

    # Taxes: a rate, a group taking it; then on a tariff.
    await tab.goto("/admin/finance/settings")
    await tab.shot("settings", full_page=False)
    async with page.expect_navigation(url="**/admin/finance/taxes"):
        await page.click("#settings-more a:text-is('Taxes')")
    await page.fill("#rate-new input[name=name]", "VAT 20%")
    await page.fill("#rate-new input[name=percent]", "20")
    await tab.submit("#rate-new-form button")
    assert "Tax rate added." in await page.inner_text("p.notice")
    await page.fill("#rate-new input[name=name]", "Reduced")
    await page.fill("#rate-new input[name=percent]", "abc")
    await tab.submit("#rate-new-form button")
    assert "must be a percent" in await page.inner_text("#rate-new")
    await tab.shot("taxes-refused")
    await page.fill("#rate-new input[name=percent]", "10")
    await tab.submit("#rate-new-form button")
    await page.fill("#group-new input[name=name]", "Standard VAT")
    await page.check("#group-new label:has-text('VAT 20%') input")
    await tab.submit("#group-new-form button")
    assert "Tax group added." in await page.inner_text("p.notice")
    assert "Standard VAT" in await page.inner_text("#rates")
    await tab.shot("taxes")

    await tab.goto(f"/admin/tariffs/{tariff['id']}/edit")
    await page.select_option("#f-tax_group_id", label="Standard VAT")
    await page.check("input[name=price_includes_tax]")
    await tab.submit("main form button:text-is('Save')")
    assert "Standard VAT" in await page.inner_text("main")
    assert "tax included" in await page.inner_text("main")
    await tab.shot("tariff")
    await tab.goto("/admin/finance/taxes")
    async with page.expect_navigation():
        await page.click("#groups tr:has(input[value='Standard VAT']) button:text-is('Delete')")
    assert f"1 tariff ({tariff['name']})" in await page.inner_text("p.error")
    await tab.shot("taxes-group-in-use")

    # Branding: a bad logo refused, then the logo and the company; the preview as PDF.
    await tab.goto("/admin/finance/settings")
    async with page.expect_navigation(url="**/admin/finance/branding"):
        await page.click("#settings-more a:text-is('Branding')")
    await tab.shot("branding-list")
    async with page.expect_navigation(url=f"**/admin/finance/partners/{partner}/branding"):
        await page.click("a:text-is('Demo ISP')")
    await page.fill("#f-company_name", "Acme Fibre Ltd")
    await page.fill("#f-address", "1 High Street\nSpringfield")
    await page.fill("#f-bank", "Acme Bank\nIBAN GB33 BUKB 2020 1555 5555 55")
    await page.fill("#f-tax_id", "GB123456789")
    await page.fill("#f-email", "billing@acme.example")
    await page.fill("#f-accent_color", "#c0392b")
    await page.fill("#f-footer", "Acme Fibre Ltd · Registered in England 0123456")
    evil = tmp_path / "evil.svg"
    evil.write_text('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="9" height="9"/></svg>')
    await page.set_input_files("#f-logo", str(evil))
    await tab.submit("#branding button:text-is('Save')")
    assert "event handler (onload)" in await page.inner_text("#e-logo")
    assert await page.input_value("#f-company_name") == "Acme Fibre Ltd"  # kept as typed
    await tab.shot("branding-refused")
    good = tmp_path / "acme.svg"
    good.write_text(LOGO)
    await page.set_input_files("#f-logo", str(good))
    await tab.submit("#branding button:text-is('Save')")
    assert "Branding saved" in await page.inner_text("p.notice")
    assert await page.locator("#saved-logo").is_visible()
    await tab.shot("branding")
    # The preview shows the form as it is, unsaved: a new company name with the saved logo.
    # (Chromium hands an intercepted request no file it uploads: the logo is previewed once saved.)
    await page.fill("#f-company_name", "Acme Fibre Group")
    text = await pdf_of(tab, "#preview", "branding-preview")
    assert "Acme Fibre Group" in text and "ACME-LOGO" in text, text[:300]
    assert await conn.fetchval("SELECT company_name FROM partner_branding") == "Acme Fibre Ltd"

    # The partner's invoice template: previewed unsaved, refused when broken (with its line), saved.
    await tab.goto("/admin/finance/settings")
    async with page.expect_navigation(url="**/admin/finance/document-templates"):
        await page.click("#settings-more a:text-is('Document templates')")
    await page.select_option("#f-partner_id", label="Demo ISP")
    await tab.submit("#scope button")
    assert "Invoice for Demo ISP" in await page.inner_text("#template h2")
    assert "the built-in one" in await page.inner_text("#template-source")
    await tab.shot("template-built-in")
    await page.fill("#f-body", TEMPLATE)
    text = await pdf_of(tab, "#preview", "template-preview")
    assert "Invoice from Acme Fibre Ltd" in text and "Thank you for choosing us, Maria Huber." in text, text[:300]
    await page.fill("#f-body", TEMPLATE.replace("doc.customer.name", "doc.customer.nmae"))
    await tab.submit("#save")
    errors = await page.inner_text("#template-errors")
    assert "line 3" in errors and "nmae" in errors, errors
    await tab.shot("template-refused")
    await page.fill("#f-body", TEMPLATE)
    await tab.submit("#save")
    assert "Template saved" in await page.inner_text("p.notice")
    assert "Demo ISP's own" in await page.inner_text("#template-source")
    await tab.shot("template-saved")
    assert await conn.fetchval("SELECT count(*) FROM document_templates WHERE partner_id = $1", partner) == 1

    phone = await browse(viewport=PHONE, is_mobile=True)
    await phone.login("root")
    await phone.goto("/admin/finance/taxes")
    await phone.shot("taxes-phone")
    await phone.goto(f"/admin/finance/document-templates?partner_id={partner}")
    await phone.shot("template-phone")
