"""Sample message contexts of every kind: what :func:`admin.notifications.templates.check` renders
a template against, and the editor's preview when there is no real entity to show. Pure.

Each kind has a full sample (every field a template may print) and a minimal one (no e-mail, no
due date, a zero balance, no payment reference, another locale: what a template must survive
without printing "None" or failing), so a template that works for one customer and breaks on
another is refused when it is saved, not when it is sent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

from admin.notifications.context import (
    BrandView,
    CardView,
    CustomerView,
    DocumentView,
    MessageContext,
    PaymentView,
    PrepaidView,
    ServiceView,
)
from admin.notifications.model import TEMPLATE_KINDS

D = Decimal
TODAY = dt.date(2026, 3, 2)


def brand() -> BrandView:
    return BrandView(
        company_name="Fibrenet Regional GmbH",
        email="billing@fibrenet.example",
        phone="+43 732 123 456",
        website="fibrenet.example",
        address_lines=("Hauptstraße 12", "4020 Linz", "Austria"),
        bank_lines=("Raiffeisenbank Linz", "IBAN AT61 1904 3002 3457 3201", "BIC RZOOAT2L"),
        footer="Fibrenet Regional GmbH · Commercial register FN 123456a, Regional Court Linz",
    )


def customer() -> CustomerView:
    return CustomerView(
        id=10042, number="C-10042", name="Maria Huber", email="maria.huber@example.com", phone="+43 664 1234567",
        country="AT", language="en", balance=D("-59.88"), currency="EUR", status="active",
        portal_url="https://portal.fibrenet.example/",
    )


def _minimal_brand() -> BrandView:
    return BrandView(company_name="Net")


def _minimal_customer() -> CustomerView:
    return CustomerView(id=7, number="7", name="Li", currency="EUR")


def _invoice(number: str, issued: dt.date, total: str, *, kind: str = "invoice", doc_id: int = 501) -> DocumentView:
    amount = D(total)
    return DocumentView(
        id=doc_id, kind=kind, number=number, issued_on=issued, total=amount, currency="EUR",
        due_on=issued + dt.timedelta(days=14), due=amount, period_start=issued.replace(day=1),
        period_end=(issued.replace(day=1) + dt.timedelta(days=32)).replace(day=1),
        payment_reference="RF18 5390 0754 7034",
    )


def _bare(kind: str, number: str) -> DocumentView:
    """A document with nothing optional: no due date, period, reference; nothing left to pay."""
    return DocumentView(id=9, kind=kind, number=number, issued_on=dt.date(2026, 1, 31), total=D(0), currency="EUR")


def _full(kind: str) -> MessageContext:
    base = MessageContext(kind=kind, customer=customer(), brand=brand(), today=TODAY, locale="en")
    if kind in ("invoice", "proforma"):
        number = "2026000123" if kind == "invoice" else "PF-2026-0042"
        return replace(base, document=_invoice(number, dt.date(2026, 3, 1), "59.88", kind=kind))
    if kind == "credit_note":
        note = replace(_invoice("CN-2026-0007", dt.date(2026, 3, 1), "19.96", kind="credit_note"), due_on=None,
                       due=D(0), related_number="2026000098", payment_reference="")
        return replace(base, document=note)
    if kind == "payment":
        receipt = DocumentView(id=777, kind="receipt", number="R-2026-0077", issued_on=TODAY, total=D("59.88"),
                               currency="EUR", related_number="2026000123")
        return replace(base, customer=replace(base.customer, balance=D(0)), document=receipt,
                       payment=PaymentView(id=901, amount=D("59.88"), currency="EUR", paid_on=TODAY,
                                           method="Bank transfer", receipt_number="R-2026-0077"))
    if kind.startswith("reminder_"):
        unpaid = (_invoice("2026000098", dt.date(2026, 1, 1), "49.90", doc_id=498),
                  _invoice("2026000111", dt.date(2026, 2, 1), "59.88", doc_id=511))
        due = sum((i.due for i in unpaid), D(0))
        return replace(base, customer=replace(base.customer, balance=-due), document=unpaid[0], invoices=unpaid,
                       amount_due=due, reminder=int(kind[-1]))
    if kind.startswith("prepaid_"):
        days = {"prepaid_1": 7, "prepaid_2": 3, "prepaid_3": 1}[kind]
        balance = D("0.99") * days + D("0.50")
        return replace(base, customer=replace(base.customer, balance=balance),
                       prepaid=PrepaidView(balance=balance, daily_cost=D("0.99"), days_left=days,
                                           blocking_on=TODAY + dt.timedelta(days=days + 1), currency="EUR"),
                       service=ServiceView(id=77, login="maria.huber", tariff="Prepaid Fibre 100"))
    if kind in ("blocking", "inactive"):
        overdue = (_invoice("2026000098", dt.date(2026, 1, 1), "49.90", doc_id=498),)
        status = "blocked" if kind == "blocking" else "inactive"
        return replace(base, customer=replace(base.customer, status=status, balance=D("-49.90")), invoices=overdue,
                       amount_due=D("49.90"), service=ServiceView(id=77, login="maria.huber", tariff="Fibre 300"))
    if kind == "card_expiry":
        return replace(base, card=CardView(brand="visa", last4="4242", exp_month=3, exp_year=2026))
    if kind == "contract_end":
        return replace(base, service=ServiceView(id=77, login="maria.huber", tariff="Fibre 300",
                                                 end_date=dt.date(2026, 3, 31)))
    if kind == "ticket_reply":
        return replace(base, extra={
            "ticket": "4711", "subject": "No internet since this morning", "author": "Anna, Fibrenet support",
            "body": "Dear Maria,\n\nthe fibre node in your street was repaired at 11:20 and your line is back.\n"
                    "Please restart your router if it is still offline.\n\nBest regards,\nAnna",
        })
    if kind == "ticket_staff":  # to an agent: the customer's fields are the ticket's, in extra
        return replace(base, extra={
            "ticket": "4711", "subject": "No internet since this morning", "what": "Customer reply",
            "author": "Maria Huber (maria.huber@example.com)", "customer": "C-10042 Maria Huber",
            "url": "https://admin.fibrenet.example/admin/tickets/4711",
            "body": "Hello,\n\nthe router's light is still red & blinking.\n\nMaria",
        })
    if kind == "portal_code":
        return replace(base, extra={"subject": "", "body": "493027"})
    if kind == "announcement":
        return replace(base, extra={
            "subject": "Planned maintenance on 12 March",
            "body": "On 12 March between 01:00 and 04:00 we upgrade the core network in Linz.\n\n"
                    "Your connection may drop for a few minutes during this time.",
        })
    raise ValueError(f"no message kind {kind!r} (one of {', '.join(TEMPLATE_KINDS)})")


def _minimal(kind: str) -> MessageContext:
    base = MessageContext(kind=kind, customer=_minimal_customer(), brand=_minimal_brand(), today=dt.date(2026, 1, 31),
                          locale="de_AT")
    if kind in ("invoice", "proforma", "credit_note"):
        return replace(base, document=_bare(kind, "1"))
    if kind == "payment":  # a payment without a receipt (yet) and without a method's name
        return replace(base, payment=PaymentView(id=1, amount=D("0.01"), currency="EUR", paid_on=base.today))
    if kind.startswith("reminder_"):
        unpaid = (replace(_bare("invoice", "1"), total=D("0.01"), due=D("0.01")),)
        return replace(base, invoices=unpaid, amount_due=D("0.01"), reminder=int(kind[-1]))
    if kind.startswith("prepaid_"):
        return replace(base, prepaid=PrepaidView(balance=D(0), daily_cost=D("0.01"), days_left=0,
                                                 blocking_on=base.today))
    if kind in ("blocking", "inactive"):  # a prepaid customer whose balance ran out: no invoices
        return replace(base, customer=replace(base.customer, status="blocked" if kind == "blocking" else "inactive"))
    if kind == "card_expiry":
        return replace(base, card=CardView(brand="", last4="0000", exp_month=12, exp_year=2026))
    if kind == "contract_end":
        return replace(base, service=ServiceView(id=1, login="li", tariff=""))
    if kind in ("ticket_reply", "ticket_staff", "portal_code", "announcement"):
        return replace(base, extra={"body": "OK", "subject": ""})
    raise ValueError(f"no message kind {kind!r} (one of {', '.join(TEMPLATE_KINDS)})")


def variants(kind: str) -> list[MessageContext]:
    """The sample contexts of ``kind``: the full one first (the editor's preview), then the minimal one."""
    return [_full(kind), _minimal(kind)]
