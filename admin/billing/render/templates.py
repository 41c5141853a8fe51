"""The documents' HTML templates: the shipped ones, and operators' own, in Jinja2's sandbox.

An operator's template is text the database keeps per partner and kind; it runs in an
:class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`, so it can read the document it is given
and nothing else: no attribute of Python's internals (``''.__class__``,
``cycler.__init__.__globals__``: a :class:`~jinja2.exceptions.SecurityError`), no method that
changes a value, no file but the shipped templates (``{% extends "invoice.html" %}`` to change
only some blocks is the easy way to write one). Autoescape is on; undefined names are errors
(:class:`~jinja2.StrictUndefined`), so a typo is refused when the template is saved, not printed
as nothing on a thousand invoices. :func:`check` says what is wrong with a template by rendering
it against sample documents (``admin.billing.render.samples``); every error is one line with the
template's line number.

What a template sees: ``doc`` (a :class:`~admin.billing.render.model.Document` or
:class:`~admin.billing.render.model.Statement`), ``brand`` (the
:class:`~admin.billing.render.model.Branding`), ``kind``, ``currency``, ``locale``, ``logo`` (the
logo's ``data:`` URI or None) and ``stylesheet`` (the shared CSS, inlined in a preview, None in a
PDF, which gets it parsed once); the filters ``money`` (in the document's currency and locale
unless given another currency), ``date`` (Babel's ``medium`` format unless given another),
``percent`` (``20`` -> ``20%``), ``number`` (a quantity) and ``period``.

Reading the shipped template files (through Jinja2's loader) is this module's only I/O.
"""

from __future__ import annotations

import functools
import operator
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeAlias, get_args

import jinja2
from babel.dates import format_date
from babel.numbers import format_decimal
from jinja2 import StrictUndefined, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from admin.billing import money
from admin.billing.render.model import Branding, Document, Period, Statement, percent_text

TemplateKind = Literal["invoice", "proforma", "credit_note", "receipt", "statement"]
TEMPLATE_KINDS: tuple[TemplateKind, ...] = get_args(TemplateKind)
Printable: TypeAlias = Document | Statement

HERE = Path(__file__).resolve().parent
TEMPLATE_DIR = HERE / "templates"
STYLESHEET = "documents.css"
#: The name Jinja2 gives a template compiled from a string (its tracebacks' file name).
_SOURCE_NAME = "<template>"

#: The largest string or list a template may make with ``*``, and the largest exponent of ``**``:
#: enough for any document, too small to eat the worker's memory.
MAX_REPEAT = 10_000
MAX_EXPONENT = 64


class TemplateError(ValueError):
    """A template that cannot be compiled or rendered: ``str()`` is one line for the operator."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


class Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with ``*`` and ``**`` bounded (``{{ 'x' * 10**10 }}`` is refused)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int | float | Decimal) and abs(Decimal(right)) > MAX_EXPONENT:
                raise jinja2.exceptions.SecurityError(f"exponent {right} is larger than {MAX_EXPONENT}")
            return operator.pow(left, right)
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int) and len(seq) * int(times) > MAX_REPEAT:
                raise jinja2.exceptions.SecurityError(f"a repeat of more than {MAX_REPEAT} items")
        return operator.mul(left, right)


def _defined(value: Any) -> Any:
    """``value``, or the undefined name's error (a filter is given an Undefined, not printed)."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    return value


def _locale(ctx: Context) -> str:
    value = ctx.get("locale")
    return value if isinstance(value, str) else "en"


@pass_context
def money_filter(ctx: Context, amount: Decimal | None, currency: str | None = None) -> str:
    amount = _defined(amount)
    if amount is None:
        return ""
    code = currency or ctx.get("currency")
    if not isinstance(code, str):
        raise TemplateError("money needs a currency: the document has none, give one (amount|money('EUR'))")
    return money.format_money(amount, code, _locale(ctx))


@pass_context
def date_filter(ctx: Context, value: date | None, format: str = "medium") -> str:
    value = _defined(value)
    if value is None:
        return ""
    return str(format_date(value, format, locale=_locale(ctx)))


@pass_context
def _percent(ctx: Context, value: Decimal | int | None) -> str:
    value = _defined(value)
    if value is None:
        return ""
    return percent_text(Decimal(value), _locale(ctx))


@pass_context
def number_filter(ctx: Context, value: Decimal | int | None) -> str:
    value = _defined(value)
    if value is None:
        return ""
    return str(format_decimal(Decimal(value).normalize(), locale=_locale(ctx), decimal_quantization=False))


# The filters' and the sandbox's former private names (admin/notifications/templates.py uses the public ones).
_Sandbox, _money, _date, _number = Sandbox, money_filter, date_filter, number_filter


@pass_context
def _period(ctx: Context, value: Period | None) -> str:
    value = _defined(value)
    return "" if value is None else value.text(_locale(ctx))


@functools.cache
def environment() -> ImmutableSandboxedEnvironment:
    """The one sandboxed environment every document template runs in (shipped or operator's)."""
    env = Sandbox(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # the shipped templates change with a release, not while it runs
    )
    env.globals.pop("lipsum", None)  # nothing a document needs; it only makes text
    env.filters.update(money=money_filter, date=date_filter, percent=_percent, number=number_filter, period=_period)
    return env


@functools.cache
def stylesheet() -> str:
    """The shared CSS (A4, @page, the running header and footer), as text."""
    env = environment()
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, STYLESHEET)
    return source


def shipped(kind: TemplateKind) -> jinja2.Template:
    """The template lastmile ships for ``kind``."""
    if kind not in TEMPLATE_KINDS:
        raise TemplateError(f"no template kind {kind!r} (one of {', '.join(TEMPLATE_KINDS)})")
    return environment().get_template(f"{kind}.html")


def shipped_source(kind: TemplateKind) -> str:
    """The text of the shipped template for ``kind``: what an operator starts editing from."""
    env = environment()
    assert env.loader is not None
    return env.loader.get_source(env, f"{shipped(kind).name}")[0]


def _not_found(name: object) -> str:
    return (f"no template {name!r} to extend or include (the shipped ones: "
            f"{', '.join(f'{k}.html' for k in TEMPLATE_KINDS)}, base.html)")


@functools.lru_cache(maxsize=256)
def compile_source(source: str) -> jinja2.Template:
    """An operator's template compiled in the sandbox (kept: a partner's template is compiled once).

    Raises :class:`TemplateError` (with the line) for a syntax error or an unknown template it
    extends or includes."""
    try:
        return environment().from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(e.message or "syntax error", e.lineno) from None
    except jinja2.TemplateNotFound as e:
        raise TemplateError(_not_found(e.name)) from None


def context(doc: Printable, branding: Branding, *, inline_css: bool) -> dict[str, Any]:
    """What a template sees (the module docstring)."""
    return {
        "doc": doc,
        "brand": branding,
        "kind": doc.kind,
        "currency": doc.currency,
        "locale": doc.locale,
        "logo": branding.logo_uri,
        "stylesheet": Markup(stylesheet()) if inline_css else None,  # noqa: S704 (our own file)
    }


def render(doc: Printable, branding: Branding, source: str | None = None, *, inline_css: bool = False) -> str:
    """``doc`` as HTML, with the operator's template ``source`` or else the shipped one for its kind.

    Raises :class:`TemplateError` for anything the template does wrong (an undefined name, an
    attribute the sandbox refuses, a filter given the wrong kind of value)."""
    template = compile_source(source) if source is not None else shipped(doc.kind)
    try:
        return template.render(context(doc, branding, inline_css=inline_css))
    except TemplateError:
        raise
    except jinja2.exceptions.SecurityError as e:
        raise TemplateError(f"refused by the sandbox: {e} (a template reads the document it is given, and "
                            "nothing of Python's internals)", _template_line(sys.exc_info()[2])) from None
    except jinja2.UndefinedError as e:
        raise TemplateError(f"{e.message} (see the variables a template is given)",
                            _template_line(sys.exc_info()[2])) from None
    except jinja2.TemplateNotFound as e:
        raise TemplateError(_not_found(e.name), _template_line(sys.exc_info()[2])) from None
    except jinja2.TemplateError as e:  # TemplateRuntimeError
        raise TemplateError(e.message or type(e).__name__, _template_line(sys.exc_info()[2])) from None
    except (TypeError, ValueError, ArithmeticError, AttributeError, KeyError, IndexError) as e:
        raise TemplateError(f"{type(e).__name__}: {e}", _template_line(sys.exc_info()[2])) from None


def _template_line(tb: TracebackType | None) -> int | None:
    """The line of the innermost frame of the operator's template (Jinja2 rewrites tracebacks so
    that a template's frames carry its own file name and line); None when the error is in a block
    of a shipped template that the operator's template did not override."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _SOURCE_NAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def check(source: str, kind: TemplateKind,
          samples: Callable[[TemplateKind], Iterable[tuple[Printable, Branding]]] | None = None) -> list[str]:
    """What is wrong with the operator's template ``source`` for ``kind``: no errors, or one line each.

    It is compiled, then rendered against the sample documents of its kind (a full one, a minimal
    one without period, due date or taxes, and the statuses that stamp), so a template that works
    for a paid invoice and breaks on one without a due date is refused too. The PDF renderer's
    check (``admin.billing.render.pdf.check``) adds what only rendering the PDF shows (a URL the
    renderer refuses to fetch)."""
    from admin.billing.render import samples as sample_data

    if kind not in TEMPLATE_KINDS:
        return [f"no template kind {kind!r} (one of {', '.join(TEMPLATE_KINDS)})"]
    try:
        compile_source(source)
    except TemplateError as e:
        return [str(e)]
    errors: list[str] = []
    for doc, branding in (samples or sample_data.variants)(kind):
        try:
            render(doc, branding, source)
        except TemplateError as e:
            if str(e) not in errors:
                errors.append(str(e))
    return errors


def variables() -> Mapping[str, str]:
    """The names a template is given, for the editor's help text."""
    return {
        "doc": "the document (number, issued_on, due_on, period, customer, lines, taxes, subtotal, tax_total, "
               "total, paid, due, status, stamp, note, related_number, payment_reference, payment_method) "
               "or the statement (customer, from_date, to_date, opening_balance, entries, closing_balance)",
        "brand": "the issuing company (company_name, address_lines, tax_id, bank_lines, email, phone, website, "
                 "accent_color, footer)",
        "kind": "invoice, proforma, credit_note, receipt or statement",
        "currency": "the document's currency (ISO 4217)",
        "locale": "the document's locale (en, de_AT, ...)",
        "logo": "the logo as a data: URI, or none",
        "stylesheet": "the shared CSS in a preview, none in a PDF",
    }
