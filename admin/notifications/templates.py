"""Message templates: the built-in ones (``messages/``) and operators' own, in Jinja2's sandbox.

One template per kind of notice and channel: ``<kind>.email.html`` (HTML, autoescaped; they extend
``layout.email.html``, which prints the brand's name, contacts and footer), ``<kind>.sms.txt`` and
``<kind>.portal.txt`` (plain text, not escaped: a text message and the portal's dashboard print
text). The subject is a template too (one line: see :func:`default_subject`). An operator's template
(table ``message_templates``) replaces the built-in body for its partner, kind, channel and language.

They run in billing's sandbox (:class:`admin.billing.render.templates.Sandbox`: the immutable
sandbox with ``*`` and ``**`` bounded) with a budget per message for operators' templates (at most
:data:`~admin.notifications.sandbox.MAX_STEPS` loop turns and calls, no string or output over
:data:`~admin.notifications.sandbox.MAX_TEXT`: admin/notifications/sandbox.py), and with
:class:`~jinja2.StrictUndefined` (a typo is an error when the template is saved, not an empty gap
in ten thousand messages). Every error is a
:class:`~admin.billing.render.templates.TemplateError` whose ``str()`` is one line with the
template's line number.

An e-mail gets a plain-text alternative made from its HTML
(:func:`admin.notifications.plaintext.html_to_text`: paragraphs, line breaks, lists, links as "text (url)").

What a template sees: :func:`variables` (by kind) and the filters in :func:`filters`.

Reading the built-in template files (through Jinja2's loader) is this module's only I/O.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import babel
import jinja2
from babel.dates import format_interval
from jinja2 import StrictUndefined, pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from admin.billing.render.templates import TemplateError, date_filter, money_filter, number_filter
from admin.notifications import sandbox
from admin.notifications.context import DocumentView, MessageContext
from admin.notifications.model import CHANNELS, KIND_TITLES, TEMPLATE_KINDS, Channel
from admin.notifications.plaintext import html_to_text
from admin.notifications.sandbox import MAX_STEPS, MAX_TEXT, MessageSandbox

__all__ = ["MAX_STEPS", "MAX_SUBJECT", "MAX_TEXT", "Rendered", "TemplateError", "builtin_source", "check",
           "default_subject", "filters", "html_to_text", "render", "variables"]

MESSAGES_DIR = Path(__file__).resolve().parent / "messages"
LAYOUT = "layout.email.html"
SUFFIX: Mapping[Channel, str] = {"email": "email.html", "sms": "sms.txt", "portal": "portal.txt"}
#: The longest subject (characters); a longer one is cut, with an ellipsis.
MAX_SUBJECT = 250
#: Jinja2's name for a template compiled from a string (its tracebacks' file name).
_SOURCE_NAME = "<template>"
_PLAIN_SPACES = {0x00A0: " ", 0x202F: " ", 0x2009: " "}


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message rendered: its subject (one line), its text, and for an e-mail its HTML."""

    subject: str
    text: str
    html: str | None = None


# -- the environment -----------------------------------------------------------------------------


def _defined(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    return value


@pass_context
def _period(context: Context, document: DocumentView | None) -> str:
    """A document's period, as its locale writes a date range ("Mar 1 – 31, 2026"); '' without one."""
    document = _defined(document)
    if document is None or document.period_start is None or document.period_end is None:
        return ""
    last = document.period_end.fromordinal(document.period_end.toordinal() - 1)  # period_end is exclusive
    if last <= document.period_start:
        return str(date_filter(context, document.period_start))
    return str(format_interval(document.period_start, last, "yMMMd", locale=_locale(context)))


@pass_context
def _paragraphs(context: Context, text: str | None) -> str:
    """Plain text (a ticket reply, an announcement) as HTML paragraphs with line breaks; in a text
    message or the portal the text unchanged."""
    text = _defined(text)
    if text is None:
        return ""
    if not context.eval_ctx.autoescape:
        return str(text)
    blocks = [b.strip("\n") for b in str(text).replace("\r\n", "\n").split("\n\n")]
    return Markup("\n").join(Markup("<p>{}</p>").format(Markup("<br>\n").join(escape(line) for line in b.split("\n")))
                             for b in blocks if b.strip())


def _locale(context: Context) -> str:
    value = context.get("locale")
    return value if isinstance(value, str) else "en"


@functools.cache
def _environment(html: bool) -> jinja2.Environment:
    """The sandbox message templates run in: autoescaped for e-mail's HTML, not for text."""
    env = MessageSandbox(
        loader=jinja2.FileSystemLoader(MESSAGES_DIR),
        autoescape=html,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # the built-in templates change with a release, not while it runs
    )
    env.filters.update({"money": money_filter, "date": date_filter, "number": number_filter, "period": _period,
                        "paragraphs": _paragraphs})
    return env


def _html(channel: Channel) -> bool:
    return channel == "email"


# -- the templates ---------------------------------------------------------------------------------

_SUBJECTS: Mapping[str, str] = {
    "invoice": "Invoice {{ document.number }} from {{ brand.company_name }}",
    "proforma": "Proforma invoice {{ document.number }} from {{ brand.company_name }}",
    "credit_note": "Credit note {{ document.number }} from {{ brand.company_name }}",
    "payment": "Thank you for your payment of {{ payment.amount|money(payment.currency) }}",
    "reminder_1": "Reminder: {{ invoices|length }} unpaid invoice(s), {{ amount_due|money }} due",
    "reminder_2": "Second reminder: {{ amount_due|money }} overdue",
    "reminder_3": "Final reminder: {{ amount_due|money }} overdue, please pay to avoid blocking",
    "prepaid_1": "Your balance lasts {{ prepaid.days_left }} more day(s)",
    "prepaid_2": "Please top up: {{ prepaid.days_left }} day(s) of balance left",
    "prepaid_3": "Your service will be blocked on {{ prepaid.blocking_on|date }}: please top up",
    "blocking": "Your {{ brand.company_name }} service has been blocked",
    "inactive": "Your {{ brand.company_name }} account has been deactivated",
    "card_expiry": "Your card ending in {{ card.last4 }} expires at the end of "
                   "{{ '%02d/%d'|format(card.exp_month, card.exp_year) }}",
    "contract_end": "Your contract{% if service.tariff %} for {{ service.tariff }}{% endif %} is coming to an end",
    "ticket_reply": "Re: {% if extra.get('ticket') %}[#{{ extra.get('ticket') }}] {% endif %}"
                    "{{ extra.get('subject') or 'your request' }}",
    "ticket_staff": "{% if extra.get('ticket') %}[#{{ extra.get('ticket') }}] {% endif %}"
                    "{{ extra.get('what') or 'Ticket' }}: {{ extra.get('subject') or '(no subject)' }}",
    "portal_code": "Your {{ brand.company_name }} password code",
    "announcement": "{{ extra.get('subject') or 'News from ' ~ brand.company_name }}",
}


def _known(kind: str, channel: str | None = None) -> None:
    if kind not in TEMPLATE_KINDS:
        raise TemplateError(f"no message kind {kind!r} (one of {', '.join(TEMPLATE_KINDS)})")
    if channel is not None and channel not in CHANNELS:
        raise TemplateError(f"no channel {channel!r} (one of {', '.join(CHANNELS)})")


def default_subject(kind: str) -> str:
    """The subject template a notice of ``kind`` gets when its rule gives none."""
    _known(kind)
    return _SUBJECTS[kind]


def _builtin(kind: str, channel: Channel) -> jinja2.Template:
    _known(kind, channel)
    return _environment(_html(channel)).get_template(f"{kind}.{SUFFIX[channel]}")


def builtin_source(kind: str, channel: Channel) -> str:
    """The text of the built-in template: what an operator starts editing from (an e-mail's
    extends ``layout.email.html`` and fills its ``body`` block)."""
    template = _builtin(kind, channel)
    env = template.environment
    assert env.loader is not None and template.name is not None
    return env.loader.get_source(env, template.name)[0]


@functools.lru_cache(maxsize=512)
def _compile(source: str, html: bool) -> jinja2.Template:
    """An operator's template (or a subject) compiled in the sandbox, its loops and ``~`` guarded;
    kept by its text (a partner's template is compiled once per process)."""
    try:
        return sandbox.guarded(_environment(html), source)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(e.message or "syntax error", e.lineno) from None
    except jinja2.TemplateNotFound as e:
        raise TemplateError(f"no template {e.name!r} to extend or include (the built-in ones are named "
                            f"<kind>.email.html, <kind>.sms.txt, <kind>.portal.txt, and {LAYOUT})") from None


def _names(kind: str, context: MessageContext) -> dict[str, Any]:
    """What a template sees (see :func:`variables`)."""
    priced = context.document or context.payment or context.prepaid or context.customer
    return {
        "customer": context.customer, "brand": context.brand, "document": context.document,
        "payment": context.payment, "invoices": context.invoices, "amount_due": context.amount_due,
        "reminder": context.reminder, "prepaid": context.prepaid, "card": context.card, "service": context.service,
        "extra": context.extra, "today": context.today, "kind": kind, "currency": priced.currency,
        "locale": _babel_locale(context.locale), sandbox.BUDGET: sandbox.Budget(),
    }


@functools.lru_cache(maxsize=64)
def _babel_locale(locale: str) -> str:
    """``locale`` when Babel knows it, else its language ("de" of "de_XX"), else "en": a customer's
    language that Babel cannot write money in still gets the message, in English formats."""
    for candidate in (locale, locale.partition("_")[0]):
        try:
            babel.Locale.parse(candidate)
        except (ValueError, TypeError, babel.UnknownLocaleError):
            continue
        return candidate
    return "en"


def _run(template: jinja2.Template, names: Mapping[str, Any], own: bool) -> str:
    """``template`` rendered, any failure as a :class:`TemplateError` with the line (of the
    operator's template when ``own``, else of the built-in file)."""
    try:
        return template.render(names)
    except TemplateError as e:
        raise TemplateError(str(e), _line(sys.exc_info()[2], own) if e.line is None else e.line) from None
    except jinja2.exceptions.SecurityError as e:
        why = f"refused by the sandbox: {e}"
        if "unsafe" in why or "safely callable" in why:
            why += " (a template reads the message's values, nothing of Python's internals)"
        raise TemplateError(why, _line(sys.exc_info()[2], own)) from None
    except jinja2.UndefinedError as e:
        raise TemplateError(f"{e.message} (see the variables a template is given)",
                            _line(sys.exc_info()[2], own)) from None
    except jinja2.TemplateNotFound as e:
        raise TemplateError(f"no template {e.name!r} to extend or include", _line(sys.exc_info()[2], own)) from None
    except jinja2.TemplateError as e:
        raise TemplateError(e.message or type(e).__name__, _line(sys.exc_info()[2], own)) from None
    except RecursionError:
        raise TemplateError("a macro that calls itself without end", _line(sys.exc_info()[2], own)) from None
    except (TypeError, ValueError, ArithmeticError, AttributeError, KeyError, IndexError, LookupError) as e:
        raise TemplateError(f"{type(e).__name__}: {e}", _line(sys.exc_info()[2], own)) from None


def _line(tb: TracebackType | None, own: bool) -> int | None:
    """The line of the innermost frame of the template (Jinja2 rewrites tracebacks so that a
    template's frames carry its file name and line): the operator's, or a built-in file."""
    line = None
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name == _SOURCE_NAME or (not own and name.startswith(str(MESSAGES_DIR))):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _subject_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_SUBJECT else line[: MAX_SUBJECT - 1].rstrip() + "…"


def render(kind: str, channel: Channel, context: MessageContext, *, body: str | None = None,
           subject: str = "") -> Rendered:
    """A message of ``kind`` for ``channel`` from ``context``: with the operator's template ``body``
    (None: the built-in one) and subject template ``subject`` ('': :func:`default_subject`).

    Raises :class:`TemplateError` for anything a template does wrong."""
    _known(kind, channel)
    names = _names(kind, context)
    html = _html(channel)
    template = _builtin(kind, channel) if body is None else _compile(body, html)
    out = _run(template, names, body is not None)
    try:
        title = _subject_line(_run(_compile(subject or _SUBJECTS[kind], False), names, True))
    except TemplateError as e:
        raise TemplateError(f"in the subject: {e.args[0].removeprefix(f'line {e.line}: ')}", e.line) from None
    if html:
        return Rendered(title, html_to_text(out), out)
    if channel == "sms":  # one line, and the locale's no-break spaces as plain ones (they would force UCS-2)
        return Rendered(title, " ".join(out.translate(_PLAIN_SPACES).split()), None)
    return Rendered(title, out.strip(), None)


def check(kind: str, channel: Channel, body: str, subject: str = "") -> list[str]:
    """What is wrong with an operator's template ``body`` (and subject template ``subject``) for
    ``kind`` and ``channel``: nothing, or one line per error.

    Both are compiled, then rendered against every sample of the kind
    (:func:`admin.notifications.samples.variants`), so a template that works for an invoice with a
    due date and breaks on one without is refused when it is saved."""
    from admin.notifications import samples

    try:
        _known(kind, channel)
    except TemplateError as e:
        return [str(e)]
    if not body.strip():
        return ["the template is empty"]
    errors: list[str] = []
    for source, html, where in ((body, _html(channel), ""), (subject, False, "in the subject: ")):
        if not source:
            continue
        try:
            _compile(source, html)
        except TemplateError as e:
            errors.append(_where(e, where))
    if errors:
        return errors
    for sample in samples.variants(kind):
        try:
            render(kind, channel, sample, body=body, subject=subject)
        except TemplateError as e:
            if str(e) not in errors:
                errors.append(str(e))
    return errors


def _where(error: TemplateError, where: str) -> str:
    return str(error) if not where else str(TemplateError(where + error.args[0].removeprefix(
        f"line {error.line}: "), error.line))


# -- the names, for the editor ---------------------------------------------------------------------

_COMMON: Mapping[str, str] = {
    "customer": "the customer (id, number, name, email, phone, country, language, balance: credits less debits, "
                "negative when owing, currency, status, portal_url)",
    "brand": "the partner as its branding names it (company_name, email, phone, website, address_lines, "
             "bank_lines, footer)",
    "today": "the day the message is made (a date: today|date)",
    "kind": "the kind of message (invoice, reminder_1, ...)",
    "locale": "the locale money and dates are written in (en, de_AT, ...)",
    "currency": "the currency |money uses when given none (ISO 4217)",
}
_DOCUMENT = ("the {what} (id, kind, number, issued_on, total, currency, due_on or none, due: what is still to pay, "
             "period_start and period_end or none: document|period, related_number, payment_reference)")
_INVOICES = ("the unpaid invoices, oldest first (a list of documents: number, issued_on, due_on, total, due, "
             "payment_reference)")
_BY_KIND: Mapping[str, Mapping[str, str]] = {
    "invoice": {"document": _DOCUMENT.format(what="invoice")},
    "proforma": {"document": _DOCUMENT.format(what="proforma invoice")},
    "credit_note": {"document": _DOCUMENT.format(what="credit note (related_number: the invoice it credits)")},
    "payment": {"payment": "the payment (id, amount, currency, paid_on, method, receipt_number)",
                "document": _DOCUMENT.format(what="receipt, or none when the payment has none")},
    **{f"reminder_{n}": {"invoices": _INVOICES, "amount_due": "what the unpaid invoices still ask for (|money)",
                         "reminder": f"the reminder's number ({n})",
                         "document": _DOCUMENT.format(what="oldest unpaid invoice, or none")} for n in (1, 2, 3)},
    **{f"prepaid_{n}": {"prepaid": "the prepaid outlook (balance, daily_cost, days_left: whole days the balance "
                                   "still pays, blocking_on: the day of blocking, currency)",
                        "service": "the service (id, login, tariff, end_date), or none"} for n in (1, 2, 3)},
    "blocking": {"invoices": _INVOICES + "; empty for a prepaid customer",
                 "amount_due": "what the unpaid invoices still ask for", "service": "the service, or none"},
    "inactive": {"invoices": _INVOICES + "; empty for a prepaid customer",
                 "amount_due": "what the unpaid invoices still ask for", "service": "the service, or none"},
    "card_expiry": {"card": "the saved card (brand, last4, exp_month, exp_year)"},
    "contract_end": {"service": "the service whose contract ends (id, login, tariff, end_date or none)"},
    "ticket_reply": {"extra": "the reply: extra.body (the text), extra.get('ticket') (its number), "
                              "extra.get('subject'), extra.get('author')"},
    "ticket_staff": {"extra": "the notice to an agent: extra.body (the message's text), extra.get('ticket') (its "
                              "number), extra.get('subject') (the ticket's), extra.get('what') (New ticket, "
                              "Customer reply, Staff reply, Internal note), extra.get('author') (who wrote it), "
                              "extra.get('customer') (the ticket's customer or sender), extra.get('url') (the "
                              "ticket in the admin); customer is blank: the notice goes to the agent"},
    "portal_code": {"extra": "the code that sets a new portal password: extra.body (6 digits; single use, valid "
                             "15 minutes)"},
    "announcement": {"extra": "the announcement: extra.body (the text), extra.get('subject')"},
}


def variables(kind: str) -> Mapping[str, str]:
    """The names a template of ``kind`` is given that mean something for it, for the editor's help
    (the other names of :func:`render`'s list are there too, empty or none)."""
    _known(kind)
    return {**_BY_KIND[kind], **_COMMON}


def filters() -> Mapping[str, str]:
    """The filters a template may use besides Jinja2's own, for the editor's help."""
    return {
        "money": "an amount in the message's currency and locale: amount_due|money, or another: x|money('USD')",
        "date": "a date in the locale's medium format, or another: today|date('long'), due_on|date('dd.MM.yyyy')",
        "number": "a number in the locale's way: 1234.5|number",
        "period": "a document's period as a date range: document|period",
        "paragraphs": "plain text as HTML paragraphs and line breaks (e-mail); unchanged in text",
    }


def title(kind: str) -> str:
    """The kind's name for people ("Payment reminder 1")."""
    _known(kind)
    return KIND_TITLES[kind]
