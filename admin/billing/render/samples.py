"""Sample documents of every kind: what a template is checked against, and the preview of a
template before any real document exists. Priced by the real tax engine (admin/billing/taxes.py),
so their totals add up as real ones do."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal

from admin.billing import taxes
from admin.billing.render.model import (
    Branding,
    Document,
    Kind,
    Line,
    Party,
    Period,
    Statement,
    StatementEntry,
    TaxSummary,
    percent_text,
)
from admin.billing.render.templates import Printable, TemplateKind

D = Decimal
VAT = taxes.TaxRate("VAT", D(20))
VAT_GROUP = taxes.TaxGroup("Standard VAT", (VAT,))
EXEMPT = taxes.TaxGroup("Outside the scope of VAT")

_LOGO = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="180" height="48" viewBox="0 0 180 48">'
    '<rect x="0" y="4" width="40" height="40" rx="8" fill="#1f6feb"/>'
    '<path d="M10 32 L20 14 L30 32 Z" fill="#fff"/>'
    '<text x="50" y="32" font-family="DejaVu Sans" font-size="22" font-weight="bold" fill="#1b1f24">Fibrenet</text>'
    "</svg>"
)


def branding() -> Branding:
    return Branding(
        company_name="Fibrenet Regional GmbH",
        address_lines=("Hauptstraße 12", "4020 Linz", "Austria"),
        tax_id="ATU12345678",
        bank_lines=("Raiffeisenbank Linz", "IBAN AT61 1904 3002 3457 3201", "BIC RZOOAT2L"),
        email="billing@fibrenet.example",
        phone="+43 732 123 456",
        website="fibrenet.example",
        logo_svg=_LOGO,
        accent_color="#1f6feb",
        footer="Fibrenet Regional GmbH · Commercial register FN 123456a, Regional Court Linz",
    )


def customer() -> Party:
    return Party(
        name="Maria Huber",
        number="C-10042",
        address_lines=("Landstraße 5/3", "4020 Linz", "Austria"),
        tax_id="",
        email="maria.huber@example.com",
    )


def priced(items: Sequence[tuple[str, str, Decimal, str, Decimal, taxes.TaxGroup]], currency: str,
           locale: str) -> tuple[tuple[Line, ...], tuple[TaxSummary, ...], Decimal, Decimal, Decimal]:
    """Lines, the taxes per rate, the subtotal, the tax and the total of ``items`` (description,
    period text, quantity, unit, unit price, tax group), net prices, through the tax engine."""
    lines, totals = taxes.price_document(
        [taxes.DocumentLine(desc, qty, price, group, False, currency) for desc, _, qty, _, price, group in items],
        currency)
    shown = tuple(
        Line(description=desc, period_text=period, quantity=qty, unit=unit, unit_price=price, net=p.net,
             tax=p.tax, gross=p.gross, tax_percent_text=" + ".join(percent_text(t.rate.percent, locale)
                                                                   for t in p.taxes))
        for (desc, period, qty, unit, price, _), p in zip(items, lines, strict=True)
    )
    summary = tuple(TaxSummary(t.rate.name, t.rate.percent, t.base, t.amount) for t in totals.taxes)
    return shown, summary, totals.net, totals.tax, totals.gross


def document(kind: Kind = "invoice", currency: str = "EUR", locale: str = "en") -> Document:
    """A typical one-page document of ``kind``: a month of service, an extra, a one-time charge."""
    period = Period(date(2025, 5, 1), date(2025, 6, 1))
    month = period.text(locale)
    scale = {"JPY": D(150), "KWD": D("0.3")}.get(currency, D(1))
    items = [
        ("Fibre 300/100 Mbit/s — monthly fee", month, D(1), "month", D("39.90") * scale, VAT_GROUP),
        ("Static IPv4 address", month, D(1), "month", D("5.00") * scale, VAT_GROUP),
        ("Wi-Fi router rental", month, D(1), "month", D("3.50") * scale, VAT_GROUP),
        ("Installation and activation (one-time)", "", D(1), "", D("49.00") * scale, VAT_GROUP),
        ("Municipal network levy", month, D(1), "month", D("1.20") * scale, EXEMPT),
    ]
    if kind == "credit_note":
        items = [("Credit for 6 days without service (outage 2025-05-10)", "10 May 2025 – 15 May 2025",
                  D(6), "days", D("1.33") * scale, VAT_GROUP)]
    if kind == "receipt":
        lines, tax_summary, subtotal, tax, total = priced(items, currency, locale)
        return Document(
            kind="receipt", number="RCT-2025-000311", issued_on=date(2025, 5, 9), customer=customer(),
            currency=currency, locale=locale, subtotal=total, tax_total=D(0), total=total, paid=total, due=D(0),
            status="issued", related_number="INV-2025-000123",
            lines=(Line(description="Invoice INV-2025-000123 of 1 May 2025", net=total, tax=D(0), gross=total),),
            payment_method="Bank transfer", payment_reference="SEPA 2025050912345",
            note="Thank you for your payment.")
    lines, tax_summary, subtotal, tax, total = priced(items, currency, locale)
    numbers = {"invoice": "INV-2025-000123", "proforma": "PRO-2025-000045", "credit_note": "CN-2025-000007"}
    return Document(
        kind=kind, number=numbers[kind], issued_on=date(2025, 5, 1),
        due_on=None if kind == "credit_note" else date(2025, 5, 15), period=period, customer=customer(),
        currency=currency, locale=locale, lines=lines, taxes=tax_summary, subtotal=subtotal, tax_total=tax,
        total=total, paid=D(0), due=total, status="issued" if kind == "credit_note" else "unpaid",
        related_number="INV-2025-000123" if kind == "credit_note" else "",
        payment_reference="" if kind == "credit_note" else f"{numbers[kind]} / C-10042",
        note={"credit_note": "The credit is applied to your next invoice.",
              "proforma": "A tax invoice follows your payment."}.get(kind, ""))


def statement(currency: str = "EUR", locale: str = "en") -> Statement:
    """A quarter of a customer's account: invoices, payments, a credit note."""
    d = D
    rows = [
        (date(2025, 4, 1), "Invoice", "INV-2025-000088", d("62.38"), None),
        (date(2025, 4, 9), "Payment, bank transfer", "RCT-2025-000201", None, d("62.38")),
        (date(2025, 5, 1), "Invoice", "INV-2025-000123", d("119.26"), None),
        (date(2025, 5, 9), "Payment, bank transfer", "RCT-2025-000311", None, d("100.00")),
        (date(2025, 5, 20), "Credit note: outage 10–15 May", "CN-2025-000007", None, d("9.58")),
        (date(2025, 6, 1), "Invoice", "INV-2025-000164", d("58.38"), None),
    ]
    balance = d("0.00")
    entries = []
    for on, what, number, debit, credit in rows:
        balance = balance - (debit or 0) + (credit or 0)
        entries.append(StatementEntry(on, what, debit, credit, balance, number))
    return Statement(customer=customer(), currency=currency, locale=locale, issued_on=date(2025, 6, 30),
                     from_date=date(2025, 4, 1), to_date=date(2025, 6, 30), opening_balance=d("0.00"),
                     closing_balance=balance, entries=tuple(entries))


def sample(kind: TemplateKind, currency: str = "EUR", locale: str = "en") -> Printable:
    return statement(currency, locale) if kind == "statement" else document(kind, currency, locale)


def variants(kind: TemplateKind) -> Iterator[tuple[Printable, Branding]]:
    """The documents a template of ``kind`` must render: a full one, a bare one (no period, due date,
    taxes, lines, logo or bank), each status that stamps, and other currencies and a locale."""
    brand = branding()
    bare_brand = Branding(company_name=brand.company_name)
    if kind == "statement":
        account = statement()
        yield account, brand
        yield replace(account, entries=(), closing_balance=account.opening_balance), bare_brand
        yield statement("JPY", "de_AT"), brand
        return
    full = document(kind)
    yield full, brand
    yield replace(full, due_on=None, period=None, lines=(), taxes=(), note="", related_number="",
                  payment_reference="", payment_method="", customer=Party(name="A. Customer")), bare_brand
    for status in ("paid", "overdue", "void", "partially_paid"):
        yield replace(full, status=status, paid=full.total if status == "paid" else D(0)), brand
    yield document(kind, "KWD", "de_AT"), replace(brand, logo_svg=None)
