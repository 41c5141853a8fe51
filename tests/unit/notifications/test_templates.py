"""Message templates (admin/notifications/templates.py, sandbox.py, plaintext.py, samples.py): every
built-in renders for every sample, escaping per channel, the sandbox's refusals with line numbers,
check(), the e-mail's text alternative, the subject, and the render budget."""

from __future__ import annotations

import time
from dataclasses import replace
from decimal import Decimal

import pytest

from admin.notifications import samples, templates
from admin.notifications.model import CHANNELS, TEMPLATE_KINDS, Channel
from admin.notifications.plaintext import html_to_text
from admin.notifications.templates import MAX_SUBJECT, TemplateError, render

GSM_BASIC = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
             "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXTENDED = "^{}\\[~]|€\f"


def sms_segments(text: str) -> int:
    """How many SMS ``text`` takes: GSM-7 (153 septets a part when split) or else UCS-2 (67)."""
    if all(c in GSM_BASIC or c in GSM_EXTENDED for c in text):
        septets = sum(2 if c in GSM_EXTENDED else 1 for c in text)
        return 1 if septets <= 160 else -(-septets // 153)
    return 1 if len(text) <= 70 else -(-len(text) // 67)


CASES = [(kind, channel) for kind in TEMPLATE_KINDS for channel in CHANNELS]


# -- the built-in templates ------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "channel"), CASES)
def test_every_builtin_renders_for_every_sample(kind: str, channel: Channel) -> None:
    for number, sample in enumerate(samples.variants(kind)):
        got = render(kind, channel, sample)
        assert got.subject and "\n" not in got.subject and len(got.subject) <= MAX_SUBJECT
        assert got.subject == got.subject.strip()
        assert got.text.strip()
        for text in (got.subject, got.text, got.html or ""):
            assert "None" not in text and "Undefined" not in text and "{{" not in text and "{%" not in text
        if channel == "email":
            assert got.html is not None and got.html.startswith("<!DOCTYPE html>")
            assert sample.brand.company_name in got.html and sample.brand.company_name in got.text
            assert "<" not in got.text  # the text alternative is text
            if number == 0:  # the full sample: the brand's contacts and footer in both parts
                for part in (got.html, got.text):
                    assert sample.brand.phone in part and sample.brand.email in part and "Commercial register" in part
        else:
            assert got.html is None
        if channel == "sms":
            assert "\n" not in got.text and sms_segments(got.text) <= 2, got.text
            assert sample.brand.company_name in got.text


@pytest.mark.parametrize(("kind", "channel"), CASES)
def test_every_builtin_source_passes_check(kind: str, channel: Channel) -> None:
    source = templates.builtin_source(kind, channel)
    assert source.strip()
    assert templates.check(kind, channel, source, templates.default_subject(kind)) == []
    full = samples.variants(kind)[0]
    assert render(kind, channel, full, body=source) == render(kind, channel, full)  # the same template


def test_the_builtins_say_what_an_isp_says() -> None:
    invoice = render("invoice", "email", samples.variants("invoice")[0])
    for words in ("2026000123", "€59.88", "Mar 15, 2026", "RF18 5390 0754 7034", "PDF is attached",
                  "Mar 1\u2009–\u200931, 2026"):  # Babel writes the range with thin spaces
        assert words in invoice.text
    assert invoice.subject == "Invoice 2026000123 from Fibrenet Regional GmbH"
    reminder = render("reminder_1", "email", samples.variants("reminder_1")[0])
    assert reminder.subject == "Reminder: 2 unpaid invoice(s), €109.78 due"
    assert "2026000098" in reminder.text and "2026000111" in reminder.text and "€109.78" in reminder.text
    firmness = [render(f"reminder_{n}", "email", samples.variants(f"reminder_{n}")[0]).text for n in (1, 2, 3)]
    assert "ignore" in firmness[0] and "7 days" in firmness[1] and "block" in firmness[2]
    prepaid = render("prepaid_3", "sms", samples.variants("prepaid_3")[0])
    assert "blocked on Mar 4, 2026" in prepaid.text and "€1.49" in prepaid.text
    prepaid_mail = render("prepaid_1", "email", samples.variants("prepaid_1")[0]).text
    assert "Days left: 7" in prepaid_mail and "Daily cost: €0.99" in prepaid_mail
    assert "Blocking date: Mar 10, 2026" in prepaid_mail
    reply = render("ticket_reply", "email", samples.variants("ticket_reply")[0])
    assert reply.subject == "Re: [#4711] No internet since this morning"
    assert "your line is back.\nPlease restart" in reply.text  # the body's line break kept


def test_minimal_sample_in_another_locale() -> None:
    minimal = samples.variants("invoice")[1]
    email = render("invoice", "email", minimal)
    assert "€\xa00,00" in email.html  # type: ignore[operator]  # de_AT writes the euro with a no-break space
    assert "Nothing is left to pay" in email.text and "Due date" not in email.text
    sms = render("invoice", "sms", minimal)
    assert "€ 0,00" in sms.text and "\xa0" not in sms.text  # plain spaces in a text message


def test_unknown_kind_channel_and_locale() -> None:
    sample = samples.variants("invoice")[0]
    with pytest.raises(TemplateError, match="no message kind 'bill'"):
        render("bill", "email", sample)
    with pytest.raises(TemplateError, match="no channel 'fax'"):
        render("invoice", "fax", sample)  # type: ignore[arg-type]
    # a language Babel cannot write money in: its language's formats, else English ones (the notice still goes)
    assert render("invoice", "sms", replace(sample, locale="xx_YY")) == render("invoice", "sms", sample)
    assert "59,88" in render("invoice", "sms", replace(sample, locale="de_XX")).text
    assert render("invoice", "sms", replace(sample, locale="")) == render("invoice", "sms", sample)
    with pytest.raises(TemplateError, match="no message kind"):
        templates.builtin_source("bill", "email")
    with pytest.raises(TemplateError, match="no message kind"):
        templates.variables("bill")
    assert templates.check("bill", "email", "x") == ["no message kind 'bill' (one of " + ", ".join(TEMPLATE_KINDS)
                                                     + ")"]


# -- escaping --------------------------------------------------------------------------------------

def test_html_is_escaped_in_email_not_in_sms() -> None:
    sample = samples.variants("invoice")[0]
    evil = replace(sample, customer=replace(sample.customer, name="<script>alert(1)</script> & Co"))
    email = render("invoice", "email", evil)
    assert email.html is not None
    assert "<script>" not in email.html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in email.html
    assert "Dear <script>alert(1)</script> & Co," in email.text  # the text part is text: shown as written
    sms = render("invoice", "sms", evil, body="Hello {{ customer.name }}")
    assert sms.text == "Hello <script>alert(1)</script> & Co"
    portal = render("invoice", "portal", evil, body="Hello {{ customer.name }}")
    assert portal.text == "Hello <script>alert(1)</script> & Co"  # the portal page escapes it when it shows it
    subject = render("invoice", "email", evil, subject="For {{ customer.name }}")
    assert subject.subject == "For <script>alert(1)</script> & Co"  # a header, not HTML


def test_plain_text_bodies_become_paragraphs_in_html() -> None:
    sample = samples.variants("announcement")[0]
    note = replace(sample, extra={"subject": "News", "body": "Line <b>one</b>\nline two\n\nSecond paragraph"})
    email = render("announcement", "email", note)
    assert "<p>Line &lt;b&gt;one&lt;/b&gt;<br>\nline two</p>\n<p>Second paragraph</p>" in email.html  # type: ignore[operator]
    assert "Line <b>one</b>\nline two\n\nSecond paragraph" in email.text
    assert render("announcement", "portal", note).text == "Line <b>one</b>\nline two\n\nSecond paragraph"
    assert render("announcement", "sms", note).text == "Net: Line <b>one</b> line two Second paragraph".replace(
        "Net", sample.brand.company_name)
    assert render("announcement", "email", note).subject == "News"


# -- operators' templates and the sandbox ----------------------------------------------------------

def test_an_operators_email_extends_the_layout() -> None:
    body = ('{% extends "layout.email.html" %}\n'
            "{% block body %}<p>Hi {{ customer.name }}, {{ document.total|money }}</p>{% endblock %}")
    got = render("invoice", "email", samples.variants("invoice")[0], body=body,
                 subject="Your bill {{ document.number }}")
    assert "<p>Hi Maria Huber, €59.88</p>" in got.html  # type: ignore[operator]
    assert "Regional Court Linz" in got.html  # type: ignore[operator]
    assert got.subject == "Your bill 2026000123"
    assert got.text.startswith("Fibrenet Regional GmbH\n\nHi Maria Huber, €59.88\n\nKind regards,")


@pytest.mark.parametrize(("source", "line", "words"), [
    ("{{ ''.__class__.__mro__ }}", 1, "unsafe"),
    ("Hello\n\n{{ cycler.__init__.__globals__ }}", 3, "unsafe"),
    ("{{ customer.__class__.__subclasses__() }}", 1, "unsafe"),
    ("a\n{{ document.__dataclass_fields__ }}", 2, "unsafe"),
    ("{{ joiner.__init__.__globals__['os'] }}", 1, "unsafe"),
    ("{{ self._TemplateReference__context }}", 1, "unsafe"),
    ("{{ extra.update({'a': 'b'}) }}", 1, "unsafe"),
    ("{{ invoices.__len__() }}", 1, "unsafe"),
    ("{{ 'x' * 10**9 }}", 1, "repeat"),
    ("{{ 2 ** 10000 }}", 1, "exponent"),
    ("x\n{% for i in range(10**9) %}x{% endfor %}", 2, "Range too big"),
    ("{% for i in range(100000) %}\n{% for j in range(100000) %}{% endfor %}{% endfor %}", 2, "loop turns"),
    ("{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}", 1, "loop turns"),
    ("{% macro f() %}{{ f() }}{% endmacro %}\n{{ f() }}", 1, "calls itself"),
    ("{% set ns = namespace(s='xx') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", 1,
     "longer than"),
    ("{% set ns = namespace(s='xx') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", 1,
     "longer than"),
    ("{{ 'x'.center(10**9) }}", 1, "width"),
    ("{{ 'x'|center(10**9) }}", 1, "width"),
    ("{{ 'x'|indent(10**9) }}", 1, "width"),
    ("{{ [1, 2]|slice(10**9)|list }}", 1, "width"),
    ("{{ '%*d' % (10**9, 1) }}", 1, "width"),
    ("{{ '%1000000000d' % 1 }}", 1, "width"),
    ("{{ '%*d'|format(10**9, 1) }}", 1, "width"),
    ("{{ '{:>1000000000}'.format(1) }}", 1, "width"),
    ("{{ '{:>{}}'.format(1, 10**9) }}", 1, "width"),
    ("{{ ('x' * 10000).replace('', 'y' * 10000) }}", 1, "replace"),
    ("{{ ('x' * 10000)|replace('', 'y' * 10000) }}", 1, "replace"),
    ("\n{{ range(100000)|join(',') }}", None, "message longer"),
    ("ok\n{{ customer.nmae }}", 2, "no attribute 'nmae'"),
    ("{{ nothing }}", 1, "'nothing' is undefined"),
    ("{{ lipsum() }}", 1, "'lipsum' is undefined"),
    ("a\nb\n{% if %}", 3, "Expected an expression"),
    ("{% for x in invoices %}", 1, "endfor"),
    ("{{ document.number|money }}", 1, "Decimal"),
    ("{% include 'nothing.html' %}", 1, "no template 'nothing.html'"),
    ("\n{% extends 'nothing.html' %}", 2, "no template 'nothing.html'"),
])
def test_the_sandbox_refuses_quickly_with_the_line(source: str, line: int | None, words: str) -> None:
    sample = samples.variants("invoice")[0]
    started = time.perf_counter()
    with pytest.raises(TemplateError) as caught:
        render("invoice", "sms", sample, body=source)
    assert time.perf_counter() - started < 0.5
    assert words in str(caught.value)
    assert caught.value.line == line
    if line is not None:
        assert str(caught.value).startswith(f"line {line}: ")
    assert "\n" not in str(caught.value)
    errors = templates.check("invoice", "sms", source)
    assert len(errors) == 1 and words in errors[0]


def test_ordinary_numbers_and_formats_are_not_refused() -> None:
    sample = samples.variants("invoice")[0]
    body = ("{{ '%s'|format(123456) }} {{ '{}'.format(123456) }} {{ '%05d' % 42 }} {{ '{:>8}'.format('x') }} "
            "{{ 'abcdefghijklmnopqrstuvwxyz'|truncate(10) }} {{ 'ab'|replace('a', 'b') }} "
            "{{ (range(20)|list|length) }} "
            "{{ 1234567.5|number }} {{ invoices|length }}")
    assert render("invoice", "portal", sample, body=body).text == \
        "123456 123456 00042        x abcdefg... bb 20 1,234,567.5 0"


def test_check_renders_against_every_sample() -> None:
    # works for the full sample, breaks without a due date: refused at save time
    body = "Due on day {{ document.due_on.day }}"
    assert render("invoice", "sms", samples.variants("invoice")[0], body=body).text == "Due on day 15"
    errors = templates.check("invoice", "sms", body)
    assert errors == ["line 1: 'None' has no attribute 'day' (see the variables a template is given)"]
    assert templates.check("invoice", "sms", "Due {{ document.due_on|date }}") == []
    assert templates.check("invoice", "sms", "   ") == ["the template is empty"]
    assert templates.check("invoice", "sms", "ok", subject="Bill\n{{ nope }}") == [
        "line 2: in the subject: 'nope' is undefined (see the variables a template is given)"]
    assert templates.check("invoice", "sms", "ok", subject="{% if %}") == [
        "line 1: in the subject: Expected an expression, got 'end of statement block'"]
    assert templates.check("invoice", "sms", "{% if %}", subject="{{ x") == [
        "line 1: Expected an expression, got 'end of statement block'",
        "line 1: in the subject: unexpected end of template, expected 'end of print statement'."]


def test_the_subject_is_one_line_and_bounded() -> None:
    sample = samples.variants("invoice")[0]
    got = render("invoice", "sms", sample, subject="  Hello\n{{ customer.name }}\r\n\n\t there  ")
    assert got.subject == "Hello Maria Huber there"
    long = render("invoice", "sms", sample, subject="{{ 'x' * 300 }}")
    assert len(long.subject) == MAX_SUBJECT and long.subject.endswith("…")
    with pytest.raises(TemplateError, match=r"^line 1: in the subject: 'nope' is undefined"):
        render("invoice", "sms", sample, subject="{{ nope }}")


def test_variables_and_filters_for_the_editor() -> None:
    for kind in TEMPLATE_KINDS:
        names = templates.variables(kind)
        assert {"customer", "brand", "today", "kind", "locale"} <= set(names)
        assert all(names.values())
    assert "document" in templates.variables("invoice")
    assert {"invoices", "amount_due", "reminder"} <= set(templates.variables("reminder_2"))
    assert "prepaid" in templates.variables("prepaid_1")
    assert "card" in templates.variables("card_expiry") and "service" in templates.variables("contract_end")
    assert "extra" in templates.variables("ticket_reply") and "extra" in templates.variables("announcement")
    assert set(templates.filters()) == {"money", "date", "number", "period", "paragraphs"}
    assert templates.default_subject("reminder_1").startswith("Reminder: {{ invoices|length }}")


def test_samples_have_a_full_and_a_minimal_variant() -> None:
    for kind in TEMPLATE_KINDS:
        full, minimal = samples.variants(kind)
        assert full.kind == minimal.kind == kind
        assert full.customer.email and not minimal.customer.email
        assert minimal.customer.balance == Decimal(0) or kind in ("blocking", "inactive")
    assert samples.variants("invoice")[1].document.due_on is None  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="no message kind"):
        samples.variants("bill")


# -- the text alternative --------------------------------------------------------------------------

def test_html_to_text() -> None:
    html = """<!DOCTYPE html><html><head><title>Hidden</title><style>p { color: red }</style></head>
<body><h1>Your   invoice</h1>
<p>Dear <b>Maria</b>,<br>line two &amp; more&nbsp;text.</p>
<p>See <a href="https://portal.example/inv/1">your portal</a>, mail <a href="mailto:a@b.example">a@b.example</a>
or <a href="https://x.example">https://x.example</a>.</p>
<ul><li>first</li><li>second<ol><li>one</li><li>two</li></ol></li></ul>
<table><tr><td>Total:</td><td>€5.00</td></tr>
<tr><td>Due:</td>
<td>1 March</td></tr></table>
<script>alert(1)</script>
<hr><p>Footer</p>
<pre>  kept
   as is</pre>
</body></html>"""
    assert html_to_text(html) == (
        "Your invoice\n\n"
        "Dear Maria,\nline two & more\xa0text.\n\n"
        "See your portal (https://portal.example/inv/1), mail a@b.example or https://x.example.\n\n"
        "- first\n- second\n  1. one\n  2. two\n\n"
        "Total: €5.00\nDue: 1 March\n\n"
        "--------------------\n\n"
        "Footer\n\n"
        "  kept\n   as is\n"
    )


def test_html_to_text_of_nothing_and_of_broken_html() -> None:
    assert html_to_text("") == "\n"
    assert html_to_text("<p>unclosed <b>bold <a href='x'>link") == "unclosed bold link\n"
    assert html_to_text("<p>a</p></div></ul></a><p>b</p>") == "a\n\nb\n"


# -- speed -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("channel", CHANNELS)
def test_a_thousand_renders_in_under_two_seconds(channel: Channel) -> None:
    sample = samples.variants("reminder_1")[0]
    body = templates.builtin_source("reminder_1", channel)
    render("reminder_1", channel, sample, body=body)  # compiled once, then cached by its text
    started = time.perf_counter()
    for _ in range(1000):
        render("reminder_1", channel, sample, body=body)
    assert time.perf_counter() - started < 2.0
