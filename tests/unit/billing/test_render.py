"""admin.billing.render: documents as PDF (read back with poppler's pdftotext), operators' templates
in the sandbox, the renderer that fetches nothing, and the CSV exports for accounting software.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from admin.billing.money import format_money
from admin.billing.render import csv_export, pdf, samples, templates
from admin.billing.render.model import Branding, Document, Line, ModelError, Party, Period, Statement
from admin.billing.render.templates import TEMPLATE_KINDS, TemplateError, TemplateKind

D = Decimal

needs_pdf = pytest.mark.skipif(
    bool(pdf.missing_libraries()) or not shutil.which("pdftotext"),
    reason="WeasyPrint's libraries or poppler-utils are not installed (.ci/run installs them)",
)


def pdf_text(data: bytes, tmp_path: Path) -> str:
    """The PDF's text as pdftotext reads it, in the order it was drawn (-raw: the rotated stamp is
    one word, not letters scattered over lines)."""
    path = tmp_path / "document.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdftotext", "-raw", str(path), "-"], capture_output=True, check=True,
                          text=True).stdout


def flat(text: str) -> str:
    """Every run of white space as one space (no-break spaces too: Babel writes "€ 1.234,50")."""
    return re.sub(r"[\s\u00a0\u202f]+", " ", text)


def pages(text: str) -> int:
    return text.count("\f") or 1


# -- every kind, as PDF ------------------------------------------------------------------------

CURRENCIES = [("EUR", "en"), ("JPY", "en"), ("KWD", "de_AT")]


@needs_pdf
@pytest.mark.parametrize(("currency", "locale"), CURRENCIES)
@pytest.mark.parametrize("kind", ["invoice", "proforma", "credit_note", "receipt"])
def test_each_document_kind_shows_its_number_totals_and_customer(kind: TemplateKind, currency: str, locale: str,
                                                                  tmp_path: Path) -> None:
    doc = samples.document(kind, currency, locale)  # type: ignore[arg-type]
    assert isinstance(doc, Document)
    text = pdf_text(pdf.render_pdf(doc, samples.branding()), tmp_path)
    assert pages(text) == 1
    shown = flat(text)
    assert doc.number in shown
    assert doc.customer.name in shown
    for amount in {doc.total, doc.subtotal, doc.tax_total} if kind != "receipt" else {doc.total}:
        assert flat(format_money(amount, currency, locale)) in shown, (amount, shown)


@needs_pdf
@pytest.mark.parametrize(("currency", "expected"), [("EUR", r"€118\.08"), ("JPY", r"¥17,712(?![.,]\d)"),
                                                    ("KWD", r"KWD35\.424(?!\d)")])
def test_totals_have_the_currencys_minor_unit(currency: str, expected: str, tmp_path: Path) -> None:
    text = flat(pdf_text(pdf.render_pdf(samples.document("invoice", currency), samples.branding()), tmp_path))
    assert re.search(r"Total " + expected, text), text


@needs_pdf
def test_the_statement_shows_the_account(tmp_path: Path) -> None:
    st = samples.statement()
    text = flat(pdf_text(pdf.render_pdf(st, samples.branding()), tmp_path))
    assert "Statement of account" in text
    assert st.customer.name in text and st.customer.number in text
    for entry in st.entries:
        assert entry.document_number in text
    assert f"Amount due {format_money(-st.closing_balance, 'EUR')}" in text
    assert f"Closing balance {format_money(st.closing_balance, 'EUR')}" in text
    assert "IBAN AT61 1904 3002 3457 3201" in text  # how to pay what is due


@needs_pdf
def test_a_proforma_says_it_is_not_a_tax_invoice(tmp_path: Path) -> None:
    text = flat(pdf_text(pdf.render_pdf(samples.document("proforma"), samples.branding()), tmp_path))
    assert "Proforma invoice — not a tax invoice" in text


@needs_pdf
def test_an_invoice_has_the_bank_details_due_date_and_reference(tmp_path: Path) -> None:
    doc = samples.document("invoice")
    text = flat(pdf_text(pdf.render_pdf(doc, samples.branding()), tmp_path))
    assert "€118.08 by May 15, 2025" in text
    assert f"Payment reference: {doc.payment_reference}" in text
    assert "BIC RZOOAT2L" in text
    assert "VAT 20% €97.40 €19.48" in text  # the taxes per rate: base and tax
    assert "Page 1 of 1" in text


@needs_pdf
@pytest.mark.parametrize(("kind", "status", "stamp"), [
    ("invoice", "paid", "PAID"), ("invoice", "overdue", "OVERDUE"), ("invoice", "void", "VOID"),
    ("invoice", "unpaid", None), ("invoice", "partially_paid", None), ("proforma", "paid", "PAID"),
    ("credit_note", "void", "VOID"), ("credit_note", "issued", None), ("receipt", "issued", None),
])
def test_the_status_stamp(kind: TemplateKind, status: str, stamp: str | None, tmp_path: Path) -> None:
    doc = replace(samples.document(kind), status=status)  # type: ignore[arg-type]
    assert doc.stamp == stamp
    words = set(flat(pdf_text(pdf.render_pdf(doc, samples.branding()), tmp_path)).split())
    assert {w for w in ("PAID", "OVERDUE", "VOID") if w in words} == ({stamp} if stamp else set())


@needs_pdf
def test_a_long_invoice_runs_over_pages_with_header_and_page_numbers(tmp_path: Path) -> None:
    doc = samples.document("invoice")
    doc = replace(doc, lines=doc.lines * 12)
    text = pdf_text(pdf.render_pdf(doc, samples.branding()), tmp_path)
    n = pages(text)
    assert n >= 3
    for page_no, page in enumerate(text.split("\f")[:n], 1):
        assert f"Page {page_no} of {n}" in flat(page)
        assert "Description" in page  # the lines' header, repeated
        if page_no > 1:
            assert f"Invoice {doc.number}" in flat(page)  # the running header


@needs_pdf
def test_a_branding_without_logo_bank_or_contact_still_renders(tmp_path: Path) -> None:
    bare = Branding(company_name="Tiny ISP e.U.")
    for kind in TEMPLATE_KINDS:
        text = flat(pdf_text(pdf.render_pdf(samples.sample(kind), bare), tmp_path))
        assert "Tiny ISP e.U." in text


@needs_pdf
def test_a_raster_logo_is_embedded_and_a_broken_one_refused() -> None:
    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (40, 12), "#1f6feb").save(png, "PNG")
    brand = replace(samples.branding(), logo_svg=None, logo=png.getvalue(), logo_mime="image/png")
    assert b"/Image" in pdf.render_pdf(samples.document(), brand)
    # a PNG whose header reads and whose data does not: Pillow fails while the page is drawn
    broken = replace(brand, logo=bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2b0f4c50000000049454e44ae426082"))
    with pytest.raises(pdf.RenderError, match="cannot be read"):
        pdf.render_pdf(samples.document(), broken)


# -- the renderer ------------------------------------------------------------------------------

@needs_pdf
def test_the_renderer_fetches_nothing() -> None:
    source = ('{% extends "invoice.html" %}{% block style %}'
              '<link rel="stylesheet" href="http://127.0.0.1:9/evil.css">'
              '<style>body { background: url("file:///etc/passwd"); }</style>{% endblock %}')
    with pytest.raises(pdf.RenderError, match=re.escape("http://127.0.0.1:9/evil.css")) as refused:
        pdf.render_pdf(samples.document(), samples.branding(), source)
    assert "file:///etc/passwd" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert pdf.check(source, "invoice") == [str(refused.value)]
    # the logo (a data: URI) and the package's own stylesheet are fetched
    own = f'{{% extends "invoice.html" %}}{{% block style %}}<link rel="stylesheet" href="{templates.STYLESHEET}">' \
          "{% endblock %}"
    assert pdf.check(own, "invoice") == []


def test_missing_libraries_are_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf, "LIBRARIES", {**pdf.LIBRARIES, "libnot-there-at-all.so.7": "libnot-there7"})
    pdf._weasyprint.cache_clear()
    try:
        with pytest.raises(pdf.RenderError) as refused:
            pdf.render_pdf(samples.document(), samples.branding())
    finally:
        pdf._weasyprint.cache_clear()
    message = str(refused.value)
    assert "\n" not in message
    assert "libnot-there7" in message and "apt-get install" in message


@needs_pdf
def test_one_page_renders_well_within_300_ms() -> None:
    pdf.warm_up()
    for kind in TEMPLATE_KINDS:
        doc, brand = samples.sample(kind), samples.branding()
        times = []
        for _ in range(5):  # CPU time: a busy machine's wait for a core is not the renderer's
            start = time.process_time()
            pdf.render_pdf(doc, brand)
            times.append(time.process_time() - start)
        assert statistics.median(times) < 0.3, (kind, times)


def test_the_preview_is_one_self_contained_page() -> None:
    html = pdf.render_html(samples.document(), samples.branding())
    assert "<style>" in html and "@page" in html  # the stylesheet, inlined
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    assert 'src="data:image/svg+xml;base64,' in html


def test_what_a_document_shows_is_escaped() -> None:
    doc = replace(samples.document(), customer=Party(name="<script>alert(1)</script> & Co"),
                  note='</p><img src="http://x">')
    html = templates.render(doc, samples.branding())
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html
    assert '<img src="http://x">' not in html


# -- operators' templates in the sandbox -------------------------------------------------------

@pytest.mark.parametrize("escape", [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.system('id') }}",
    "{{ doc.__class__.__init__.__globals__ }}",
    "{{ brand.__dict__ }}",
    "{{ doc.lines.__class__ }}",
    "{% set x = [] %}{{ x.append(1) }}",  # the immutable sandbox: no method that changes a value
    "{{ 'x' * 100000000 }}",
    "{{ 9 ** 99999999 }}",
])
def test_the_sandbox_refuses_python_internals(escape: str) -> None:
    source = f"<p>{{{{ doc.number }}}}</p>\n{escape}"
    errors = templates.check(source, "invoice")
    assert len(errors) == 1
    assert errors[0].startswith("line 2: refused by the sandbox:"), errors
    with pytest.raises(TemplateError, match="sandbox"):
        templates.render(samples.document(), samples.branding(), source)


def test_no_file_outside_the_shipped_templates() -> None:
    for path in ("../../../../../../etc/passwd", "/etc/passwd", "../pdf.py"):
        errors = templates.check(f'{{% include "{path}" %}}', "invoice")
        assert len(errors) == 1 and "no template" in errors[0], errors


@pytest.mark.parametrize(("source", "expected"), [
    ("<h1>{{ doc.number }}</h1>\n<p>{{ custmer.name }}</p>", "line 2: 'custmer' is undefined"),
    ("<h1>{{ doc.number }}</h1>\n\n<p>{{ doc.totl|money }}</p>", "line 3: 'admin.billing.render.model.Document object' "
                                                                "has no attribute 'totl'"),
    ("{{ doc.customer.nmae }}", "line 1: 'admin.billing.render.model.Party object' has no attribute 'nmae'"),
    ("{% if doc.number %}\n{{ doc.number }}", "line 2: Unexpected end of template"),
    ("{{ doc.number|money }}", "line 1: MoneyError: money must be a Decimal, not str"),
    ('{% extends "invoce.html" %}', "line 1: no template 'invoce.html'"),
])
def test_a_broken_template_is_one_clear_error(source: str, expected: str) -> None:
    errors = templates.check(source, "invoice")
    assert len(errors) == 1 and errors[0].startswith(expected), errors


def test_check_renders_every_variant_not_only_the_full_sample() -> None:
    # fine on the full sample, broken on an invoice without a billing period
    source = "<p>{{ doc.number }}, {{ doc.period.start|date }}</p>"
    assert templates.render(samples.document(), samples.branding(), source)
    errors = templates.check(source, "invoice")
    assert errors == ["line 1: 'None' has no attribute 'start' (see the variables a template is given)"]
    assert templates.check("<p>{{ doc.number }}{% if doc.period %}, {{ doc.period|period }}{% endif %}</p>",
                           "invoice") == []


@needs_pdf
def test_an_operators_template_extends_a_shipped_one(tmp_path: Path) -> None:
    source = ('{% extends "invoice.html" %}\n{% block title %}Rechnung{% endblock %}\n'
              '{% block after %}<p class="note">Zahlbar ohne Abzug. {{ doc.due|money }}</p>{% endblock %}')
    assert pdf.check(source, "invoice") == []
    text = flat(pdf_text(pdf.render_pdf(samples.document(), samples.branding(), source), tmp_path))
    assert "Rechnung" in text and "Zahlbar ohne Abzug. €118.08" in text
    assert "Invoice number INV-2025-000123" in text  # the blocks it did not override


@pytest.mark.parametrize("kind", TEMPLATE_KINDS)
def test_the_shipped_templates_pass_their_own_check(kind: TemplateKind) -> None:
    assert templates.check(templates.shipped_source(kind), kind) == []


def test_the_filters_format_per_locale() -> None:
    doc = replace(samples.document(locale="de_AT"))
    source = ("{{ doc.total|money }}|{{ doc.total|money('JPY') }}|{{ doc.issued_on|date }}|"
              "{{ doc.issued_on|date('long') }}|{{ 20|percent }}|{{ doc.taxes[0].percent|percent }}|"
              "{{ doc.lines[0].quantity|number }}|{{ doc.period|period }}")
    out = templates.render(doc, samples.branding(), source).replace("\xa0", " ")
    assert out == "€ 118,08|¥ 118|01.05.2025|1. Mai 2025|20 %|20 %|1|01.05.2025 – 31.05.2025"


# -- the model --------------------------------------------------------------------------------

def test_the_model_refuses_what_it_cannot_show() -> None:
    doc = samples.document()
    with pytest.raises(ModelError, match="Decimal, not float"):
        replace(doc, total=118.08)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match=r"Line\.net must be a Decimal"):
        Line("x", net=1, tax=D(0), gross=D(1))  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="kind"):
        replace(doc, kind="quote")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ISO 4217"):
        replace(doc, currency="EURO")
    with pytest.raises(ModelError, match="exclusive"):
        Period(date(2025, 5, 1), date(2025, 5, 1))
    with pytest.raises(ModelError, match="#rrggbb"):
        Branding("x", accent_color="red; background: url(http://x)")
    with pytest.raises(ModelError, match="logo type"):
        Branding("x", logo=b"...", logo_mime="text/html")
    with pytest.raises(ModelError, match="before the start"):
        replace(samples.statement(), to_date=date(2025, 1, 1))


def test_a_period_reads_as_its_first_and_last_day() -> None:
    assert Period(date(2025, 5, 1), date(2025, 6, 1)).text("en") == "May 1, 2025 – May 31, 2025"
    assert Period(date(2025, 5, 1), date(2025, 5, 2)).text("de_AT") == "01.05.2025"


def test_samples_add_up() -> None:
    for kind in ("invoice", "proforma", "credit_note"):
        doc = samples.document(kind)
        assert doc.subtotal + doc.tax_total == doc.total
        assert sum(line.gross for line in doc.lines) == doc.total
        assert sum(t.tax for t in doc.taxes) == doc.tax_total
    st = samples.statement()
    assert isinstance(st, Statement)
    assert st.opening_balance + sum((e.credit or 0) - (e.debit or 0) for e in st.entries) == st.closing_balance


# -- CSV for accounting software ----------------------------------------------------------------

def invoice_rows() -> list[csv_export.InvoiceRow]:
    return [
        csv_export.InvoiceRow("INV-2025-000123", "invoice", date(2025, 5, 1), "C-10042", "Maria Huber", "EUR",
                              D("98.6000"), D("19.4800"), D("118.0800"), due_on=date(2025, 5, 15),
                              period_start=date(2025, 5, 1), period_end=date(2025, 6, 1), paid=D("18.08"),
                              status="partially_paid"),
        csv_export.InvoiceRow("INV-2025-000124", "invoice", date(2025, 5, 1), "C-7",
                              '=HYPERLINK("http://evil.example","click")', "JPY", D("1234.5"), D(0), D("1234.5")),
        csv_export.InvoiceRow("CN-2025-000007", "credit_note", date(2025, 5, 20), "C-8", "+Kuwait; Trading, \"Co\"",
                              "KWD", D("1.2345"), D("0.0004"), D("1.2349"), related_number="INV-2025-000100"),
    ]


def read(chunks: Iterator[bytes], delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"), newline=""), delimiter=delimiter))


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_invoices_round_trip_through_csv_reader(delimiter: str) -> None:
    rows = read(csv_export.invoices_csv(invoice_rows(), delimiter=delimiter), delimiter)  # type: ignore[arg-type]
    header = [c.header for c in csv_export.INVOICE_COLUMNS]
    assert rows[0] == header
    first, second, third = (dict(zip(header, r, strict=True)) for r in rows[1:])
    assert first == {
        "number": "INV-2025-000123", "kind": "invoice", "issued_on": "2025-05-01", "due_on": "2025-05-15",
        "period_start": "2025-05-01", "period_last_day": "2025-05-31", "customer_number": "C-10042",
        "customer_name": "Maria Huber", "customer_tax_id": "", "currency": "EUR", "subtotal": "98.60",
        "tax_total": "19.48", "total": "118.08", "paid": "18.08", "status": "partially_paid", "related_number": "",
    }
    assert second["customer_name"] == "'=HYPERLINK(\"http://evil.example\",\"click\")"  # a formula, quoted
    assert (second["subtotal"], second["total"], second["due_on"]) == ("1235", "1235", "")  # JPY: no decimals
    assert third["customer_name"] == "'+Kuwait; Trading, \"Co\""
    assert (third["subtotal"], third["tax_total"], third["total"]) == ("1.235", "0.000", "1.235")  # KWD: 3


def test_transactions_have_debit_and_credit_columns_with_a_decimal_point() -> None:
    rows = [
        csv_export.TransactionRow(1, date(2025, 5, 1), "C-1", "Anna", "debit", "charge", "Fibre 300, May 2025",
                                  D("1234.5"), "EUR", "INV-2025-000123"),
        {"id": 2, "posted_on": date(2025, 5, 9), "customer_number": "C-1", "customer_name": "Anna",
         "direction": "credit", "kind": "payment", "description": "-1 refund? @SUM(A1)", "amount": D("100"),
         "currency": "EUR", "document_number": ""},
    ]
    out = read(csv_export.transactions_csv(rows, delimiter=";"), ";")
    assert out[0] == ["posted_on", "id", "customer_number", "customer_name", "kind", "description",
                      "document_number", "debit", "credit", "currency"]
    assert out[1] == ["2025-05-01", "1", "C-1", "Anna", "charge", "Fibre 300, May 2025", "INV-2025-000123",
                      "1234.50", "", "EUR"]  # a point, never the locale's comma, and no thousands separator
    assert out[2] == ["2025-05-09", "2", "C-1", "Anna", "payment", "'-1 refund? @SUM(A1)", "", "", "100.00", "EUR"]


def test_the_byte_order_mark_only_when_asked() -> None:
    assert b"".join(csv_export.invoices_csv([], bom=True)).startswith(b"\xef\xbb\xbfnumber,")
    assert b"".join(csv_export.invoices_csv([])).startswith(b"number,")
    data = b"".join(csv_export.invoices_csv(invoice_rows()))
    assert b"Maria Huber" in data and data.count(b"\r\n") == 4


def test_csv_is_streamed() -> None:
    made = 0

    def endless() -> Iterator[csv_export.InvoiceRow]:
        nonlocal made
        row = invoice_rows()[0]
        while True:
            made += 1
            yield row

    chunks = csv_export.CsvWriter(csv_export.INVOICE_COLUMNS).stream(endless(), batch=100)
    assert next(chunks).startswith(b"number,")
    assert next(chunks).count(b"\r\n") == 100
    assert made <= 101  # nothing read ahead of what was written


def test_csv_refuses_rows_it_cannot_write() -> None:
    with pytest.raises(csv_export.CsvError, match="a row has no 'kind'"):
        b"".join(csv_export.invoices_csv([{"number": "X"}]))
    with pytest.raises(csv_export.CsvError, match="money must be a Decimal"):
        b"".join(csv_export.invoices_csv([replace(invoice_rows()[0], total=118.08)]))  # type: ignore[arg-type]
    with pytest.raises(csv_export.CsvError, match="delimiter"):
        csv_export.CsvWriter(csv_export.INVOICE_COLUMNS, delimiter="\t")  # type: ignore[arg-type]
