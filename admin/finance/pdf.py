"""A document's PDF: rendered the first time it is asked for (admin/billing/render/, WeasyPrint,
in a thread: it is CPU work), then kept in document_files and served from there, so an issued
document reads the same every time (its status stamp included: PAID, VOID, OVERDUE as it was
when it was first asked for). Its template is its partner's own (Finance -> Settings -> Document
templates), else the operator-wide one, else the file lastmile ships: a template changed later
changes the documents rendered from then on, not the PDFs kept."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from decimal import Decimal

import asyncpg
from aiohttp import web

from admin.auth.store import Connection
from admin.billing.render import model, pdf, templates
from admin.finance import common, doc_templates_store, queries
from admin.payments import reference

LOCALE = "en"


def _lines(text: str | None) -> tuple[str, ...]:
    return tuple(line.strip() for line in (text or "").splitlines() if line.strip())


def branding(row: common.Row) -> model.Branding:
    """A partner's branding (partner_branding), or its name alone while it has none."""
    if row["company_name"] is None:  # no partner_branding row
        return model.Branding(company_name=row["partner"])
    return model.Branding(
        company_name=row["company_name"] or row["partner"], address_lines=_lines(row["address"]), tax_id=row["tax_id"],
        bank_lines=_lines(row["bank"]), email=row["email"], phone=row["phone"], website=row["website"],
        logo_svg=row["logo_svg"] or None, accent_color=row["accent_color"], footer=row["footer"])


def party(row: asyncpg.Record) -> model.Party:
    place = " ".join(p for p in (row["zip"], row["city"]) if p)
    return model.Party(name=row["name"], number=row["number"],
                       address_lines=tuple(p for p in (row["street"], place, row["country"]) if p),
                       email=row["billing_email"] or row["email"] or "",
                       payment_reference=reference.printed(reference.for_customer(row["id"])))


def _period(start: dt.date | None, end: dt.date | None) -> model.Period | None:
    return model.Period(start, end) if start is not None and end is not None else None


def document(doc: asyncpg.Record, lines: list[asyncpg.Record], related: list[asyncpg.Record],
             customer: asyncpg.Record) -> model.Document:
    """What the document shows, from its rows (the renderer knows no SQL)."""
    shown = []
    rates: dict[tuple[str, Decimal], list[Decimal]] = {}
    for line in lines:
        period = _period(line["period_start"], line["period_end"])
        percents = [Decimal(t["percent"]) for t in line["taxes"]]
        shown.append(model.Line(
            description=line["description"], net=line["net"], tax=line["tax"], gross=line["gross"],
            quantity=line["quantity"], unit=line["unit"], unit_price=line["unit_price"],
            period_text=period.text(LOCALE) if period is not None else "",
            tax_percent_text=" + ".join(model.percent_text(p, LOCALE) for p in percents)))
        for t in line["taxes"]:
            key = (t["name"], Decimal(t["percent"]))
            net, tax = rates.get(key, [Decimal(0), Decimal(0)])
            rates[key] = [net + line["net"], tax + Decimal(t["amount"])]
    related_number = next((r["number"] for r in related if r["id"] == doc["related_id"]), "")
    method = reference = ""
    if doc["kind"] == "receipt":
        reference = doc["note"]
        first = lines[0]["description"] if lines else ""
        method = first.removeprefix("Payment: ").removesuffix(reference).strip()
    elif doc["kind"] in ("invoice", "proforma"):
        reference = doc["number"]
    return model.Document(
        kind=doc["kind"], number=doc["number"], issued_on=doc["issued_on"], customer=party(customer),
        currency=doc["currency"], subtotal=doc["subtotal"], tax_total=doc["tax_total"], total=doc["total"],
        locale=LOCALE, due_on=doc["due_on"], period=_period(doc["period_start"], doc["period_end"]),
        lines=tuple(shown),
        taxes=tuple(model.TaxSummary(name, percent, net, tax) for (name, percent), (net, tax) in rates.items()),
        paid=doc["paid"], due=doc["open"] if doc["status"] != "void" else Decimal(0), status=doc["status"],
        note=doc["note"] if doc["kind"] != "receipt" else "", related_number=related_number,
        payment_reference=reference, payment_method=method)


async def template(conn: Connection, partner_id: int | None, kind: str) -> str | None:
    """The template a partner's document of ``kind`` is rendered with: its own, else the
    operator-wide one; None: the shipped file."""
    return await doc_templates_store.effective(conn, partner_id, kind)


async def render(conn: Connection, doc: asyncpg.Record) -> bytes:
    lines = await queries.document_lines(conn, doc["id"])
    related = await queries.related(conn, doc["id"], doc["related_id"])
    customer = await queries.party(conn, doc["customer_id"])
    brand = await queries.branding(conn, doc["partner_id"])
    source = await template(conn, doc["partner_id"], doc["kind"])
    printable = document(doc, lines, related, customer)
    try:
        return await asyncio.to_thread(pdf.render_pdf, printable, branding(brand), source)
    except (pdf.RenderError, templates.TemplateError) as e:
        which = "the operator's template" if source is not None else "the template"
        raise web.HTTPServiceUnavailable(text=f"The PDF cannot be made ({which} for {doc['kind']}): {e}") from None


async def response(conn: Connection, doc: asyncpg.Record) -> web.StreamResponse:
    kept = await queries.document_file(conn, doc["id"])
    if kept is None:
        rendered = await render(conn, doc)
        kept = await queries.keep_document_file(conn, doc["id"], hashlib.sha256(rendered).digest(), rendered)
    name = f"{doc['kind'].replace('_', '-')}-{doc['number']}.pdf"
    name = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)
    return web.Response(body=kept, content_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
