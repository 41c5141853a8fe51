"""Incoming mail read into an InboundMail: decoded addresses and subject, threading headers, the
text (plain preferred, HTML made text), the quoted history trimmed, attachments with safe names
and sniffed types, the limits, and broken mail parsed with reasons rather than raising."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.tickets.inbound import InboundError, Limits, Party, parse, safe_filename, sniff, trim_quoted

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n%%EOF\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


MULTIPART = f"""\
From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <Joerg@Example.AT>
To: support@isp.example, "Billing" <billing@isp.example>
Cc: =?iso-8859-1?q?Fran=E7ois?= <f@example.fr>
Subject: =?utf-8?b?UmU6IEludGVybmV0IGdlaHQgbmljaHQ=?= [#123]
Date: Tue, 01 Dec 2026 10:00:00 +0100
Message-ID: <abc@mail.example.at>
In-Reply-To: <lastmile.5.aa@isp.example>
References: <first@example.at>
 <lastmile.5.aa@isp.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b1

--b1
Content-Type: multipart/alternative; boundary=b2

--b2
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hallo, es geht wieder.

Am Di., 1. Dez. 2026 um 09:00 Uhr schrieb Support <support@isp.example>:
> Bitte starten Sie den Router neu.
--b2
Content-Type: text/html; charset=utf-8

<p>Hallo, <b>es geht</b> wieder.</p>
--b2--
--b1
Content-Type: application/pdf; name="Rechnung.pdf"
Content-Disposition: attachment; filename="Rechnung.pdf"
Content-Transfer-Encoding: base64

{b64(PDF)}
--b1
Content-Type: image/png
Content-Disposition: inline
Content-ID: <logo@example.at>
Content-Transfer-Encoding: base64

{b64(PNG)}
--b1--
""".encode()


def test_a_multipart_reply_reads_into_its_parts() -> None:
    mail = parse(MULTIPART)
    assert mail.sender == Party("joerg@example.at", "Jörg Müller")
    assert mail.to == (Party("support@isp.example"), Party("billing@isp.example", "Billing"))
    assert mail.cc == (Party("f@example.fr", "François"),)
    assert mail.subject == "Re: Internet geht nicht [#123]"
    assert mail.date == dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    assert mail.message_id == "<abc@mail.example.at>"
    assert mail.in_reply_to == ("<lastmile.5.aa@isp.example>",)
    assert mail.references == ("<first@example.at>", "<lastmile.5.aa@isp.example>")
    assert mail.text.startswith("Hallo, es geht wieder.\n\nAm Di., 1. Dez. 2026")
    assert mail.reply == "Hallo, es geht wieder.\n"
    assert not mail.from_html
    assert mail.content_type == "multipart/mixed"
    assert mail.size == len(MULTIPART)
    assert mail.problems == ()
    pdf, png = mail.attachments
    assert (pdf.filename, pdf.declared_type, pdf.sniffed_type, pdf.size) == ("Rechnung.pdf", "application/pdf",
                                                                          "application/pdf", len(PDF))
    assert pdf.data == PDF and pdf.served_type == "application/pdf" and not pdf.viewable
    assert (png.filename, png.inline, png.content_id, png.viewable) == ("attachment.png", True, "<logo@example.at>",
                                                                        True)


def test_html_only_mail_becomes_text_without_its_scripts() -> None:
    raw = (b"From: a@example.at\nSubject: html\nContent-Type: text/html; charset=utf-8\n\n"
           b"<html><head><style>p{}</style><script>alert(1)</script></head>"
           b"<body><p>Mein Router <a href='https://x.example/r'>hier</a></p><p>Danke</p></body></html>")
    mail = parse(raw)
    assert mail.from_html
    assert mail.text == "Mein Router hier (https://x.example/r)\n\nDanke\n"
    assert "alert" not in mail.text


def test_quoted_history_is_trimmed_where_it_is_marked() -> None:
    assert trim_quoted("Yes, thanks.\n\nOn Tue, 1 Dec 2026 at 09:00, Support <s@isp.example> wrote:\n> old\n") == \
        "Yes, thanks.\n"
    # Gmail wraps a long attribution over two lines
    assert trim_quoted("Ok\n\nOn Tue, 1 Dec 2026 at 09:00, Support Team of Lastmile Networks\n<s@isp.example> "
                       "wrote:\n> old\n") == "Ok\n"
    assert trim_quoted("Ja\n\n-----Ursprüngliche Nachricht-----\nVon: Support\nBetreff: x\n") == "Ja\n"
    assert trim_quoted("See below\n" + "_" * 32 + "\nFrom: Support\nSent: Monday\n") == "See below\n"
    assert trim_quoted("Fine\n\n> quoted\n> more\n") == "Fine\n"
    # inline answers between quotes stay whole; a mail that is all quote stays as it is
    assert trim_quoted("> q1\nanswer 1\n> q2\nanswer 2\n") == "> q1\nanswer 1\n> q2\nanswer 2\n"
    assert trim_quoted("> only a quote\n") == "> only a quote\n"


def test_a_hostile_file_name_is_made_safe() -> None:
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\Windows\\System32\\evil.exe") == "evil.exe"
    assert safe_filename("invoice\u202efdp.exe") == "invoicefdp.exe"  # the right-to-left override trick
    assert safe_filename("a\x00b\r\nX-Injected: 1.txt") == "abX-Injected_ 1.txt"
    assert safe_filename("CON.txt") == "_CON.txt" and safe_filename("lpt1") == "_lpt1"
    assert safe_filename(".htaccess") == "htaccess"
    assert safe_filename("  ..  ", "application/pdf") == "attachment.pdf"
    assert safe_filename('what?<script>"*|.pdf') == "what__script____.pdf"
    long = safe_filename("x" * 300 + ".pdf")
    assert long == "x" * 116 + ".pdf" and len(long) == 120


def test_a_hostile_file_name_in_a_mail() -> None:
    raw = (b"From: a@example.at\nSubject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n"
           b"--B\nContent-Type: text/plain\n\nsee file\n--B\nContent-Type: text/html\n"
           b"Content-Disposition: attachment; filename*=utf-8''..%2F..%2Fwww%2Findex.html\n\n"
           b"<script>steal()</script>\n--B--\n")
    (attachment,) = parse(raw).attachments
    assert attachment.filename == "index.html"
    assert (attachment.declared_type, attachment.sniffed_type) == ("text/html", "text/html")
    assert attachment.served_type == "application/octet-stream" and not attachment.viewable


@given(st.text(max_size=400))
def test_any_file_name_comes_out_safe(name: str) -> None:
    safe = safe_filename(name)
    assert safe and len(safe) <= 120
    assert not set(safe) & set('/\\<>:"|?*\x00\r\n\t')
    assert not safe.startswith((".", " ")) and not safe.endswith((".", " "))
    assert safe.split(".")[0].upper() not in ("CON", "PRN", "AUX", "NUL") or safe.startswith("_")


def test_sniffing_finds_what_the_bytes_are_whatever_the_declared_type() -> None:
    assert sniff(PNG) == "image/png"
    assert sniff(PDF) == "application/pdf"
    assert sniff(b"MZ\x90\x00rest") == "application/x-msdownload"
    assert sniff(b"  <!DOCTYPE html><p>") == "text/html"
    assert sniff(b"<?xml version='1.0'?>\n<svg onload='x()'>") == "image/svg+xml"
    assert sniff(b"RIFF\x10\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff("Grüße\n".encode()) == "text/plain"
    assert sniff(b"\x00\x01\x02") == "application/octet-stream"
    assert sniff(b"\xff\xfe\xfd plain?") == "application/octet-stream"


def test_an_executable_declared_as_an_image_is_served_as_a_download() -> None:
    raw = (b"From: a@example.at\nSubject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n"
           b"--B\nContent-Type: text/plain\n\nphoto\n--B\nContent-Type: image/jpeg; name=photo.jpg\n"
           b"Content-Transfer-Encoding: base64\n\n" + b64(b"MZ\x90\x00" + b"\x00" * 60).encode() + b"\n--B--\n")
    (attachment,) = parse(raw).attachments
    assert (attachment.declared_type, attachment.sniffed_type) == ("image/jpeg", "application/x-msdownload")
    assert attachment.served_type == "application/octet-stream" and not attachment.viewable


def _with_attachments(*sizes: int) -> bytes:
    parts = "".join(f"--B\nContent-Type: application/octet-stream\nContent-Disposition: attachment; "
                    f"filename=f{i}.bin\nContent-Transfer-Encoding: base64\n\n{b64(b'z' * size)}\n"
                    for i, size in enumerate(sizes))
    return (f"From: a@example.at\nSubject: files\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n"
            f"--B\nContent-Type: text/plain\n\nfiles\n{parts}--B--\n").encode()


def test_a_huge_attachment_is_dropped_with_a_reason() -> None:
    mail = parse(_with_attachments(100, 5000, 200), Limits(max_attachment_bytes=1000))
    assert [a.filename for a in mail.attachments] == ["f0.bin", "f2.bin"]
    assert mail.problems == ("attachment 'f1.bin' of 5000 bytes dropped: over the limit of 1000",)
    assert mail.text == "files"  # the line end before a boundary belongs to the boundary


def test_attachments_past_the_count_are_dropped() -> None:
    mail = parse(_with_attachments(1, 2, 3), Limits(max_attachments=2))
    assert [a.size for a in mail.attachments] == [1, 2]
    assert mail.problems == ("attachment 'f2.bin' dropped: more than 2 attachments",)


def test_a_message_over_the_size_limit_keeps_its_headers_only() -> None:
    raw = _with_attachments(3000)
    mail = parse(raw, Limits(max_message_bytes=1000))
    assert (mail.sender, mail.subject, mail.text, mail.attachments) == (Party("a@example.at"), "files", "", ())
    assert mail.size == len(raw)
    assert mail.problems == (f"message of {len(raw)} bytes is over the limit of 1000: "
                             "its text and attachments were dropped",)


def test_the_text_is_cut_at_its_limit() -> None:
    mail = parse(b"From: a@example.at\nSubject: long\n\n" + b"y" * 50, Limits(max_text_chars=10))
    assert mail.text == "y" * 10
    assert mail.problems == ("text of 50 characters cut at 10",)


def test_malformed_mail_parses_with_reasons() -> None:
    raw = (b"From: \nSubject: =?x-unknown?q?abc?= broken\nDate: yesterday\nIn-Reply-To: garbage\n"
           b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=never\n\n"
           b"no boundary ever comes\n")
    mail = parse(raw)
    assert mail.sender is None and mail.date is None and mail.in_reply_to == () and mail.message_id == ""
    assert "no sender: the From header is missing or holds no address" in mail.problems
    assert "the Date header cannot be read" in mail.problems
    assert any(p.startswith("malformed: ") for p in mail.problems)


def test_a_message_id_without_brackets_is_a_problem() -> None:
    mail = parse(b"From: a@example.at\nMessage-ID: abc@example.at\nSubject: x\n\nx\n")
    assert mail.message_id == ""
    assert mail.problems == ("the Message-ID header holds no <id>",)


def test_an_unknown_charset_reads_as_utf8_with_a_reason() -> None:
    mail = parse(b"From: a@example.at\nSubject: x\nContent-Type: text/plain; charset=klingon\n\nGr\xc3\xbc\xc3\x9fe\n")
    assert mail.text == "Grüße\n"
    assert mail.problems == ("unknown charset 'klingon': read as UTF-8",)


def test_bytes_wrong_for_their_charset_are_replaced_with_a_reason() -> None:
    mail = parse(b"From: a@example.at\nSubject: x\nContent-Type: text/plain; charset=utf-8\n\nGr\xfc\xdfe\n")
    assert mail.text == "Gr\ufffd\ufffde\n"
    assert mail.problems == ("text not valid in its charset 'utf-8': read as UTF-8",)


def test_headers_loops_need_are_kept() -> None:
    mail = parse(b"From: a@example.at\nAuto-Submitted: auto-replied\nPrecedence: bulk\nList-Id: <x.example>\n"
                 b"X-Spam: no\nSubject: away\n\nI am away\n")
    assert mail.headers == (("auto-submitted", "auto-replied"), ("precedence", "bulk"), ("list-id", "<x.example>"))
    assert mail.header("Auto-Submitted") == "auto-replied" and mail.header("x-autoreply") == ""


def test_a_date_without_a_zone_is_taken_as_utc() -> None:
    mail = parse(b"From: a@example.at\nDate: Tue, 01 Dec 2026 10:00:00 -0000\nSubject: x\n\nx\n")
    assert mail.date == dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("raw", [b"", b"   \r\n", b"hello world", b"\x89PNG\r\n\x1a\n\x00\x00\x00"])
def test_what_is_not_mail_raises_inbound_error(raw: bytes) -> None:
    with pytest.raises(InboundError):
        parse(raw)


@given(st.binary(max_size=2000))
def test_any_bytes_parse_or_raise_inbound_error(raw: bytes) -> None:
    assert parse(b"From: a@example.at\n" + raw).size == len(raw) + 19  # a header: mail, however broken
    with contextlib.suppress(InboundError):
        parse(raw)


@given(st.lists(st.sampled_from([b"From: ", b"Subject: ", b"=?utf-8?b?", b"?=", b"<", b">", b"\n", b"\r\n",
                                 b"Content-Type: multipart/mixed; boundary=B\n", b"--B\n", b"--B--\n",
                                 b"Content-Transfer-Encoding: base64\n", b"filename*=", b"%FF", b"\xff", b"a@b",
                                 b"Content-Disposition: attachment; ", b"\n\n", b"message/rfc822\n"]), max_size=40))
def test_mail_shaped_garbage_parses_or_raises_inbound_error(pieces: list[bytes]) -> None:
    with contextlib.suppress(InboundError):
        parse(b"".join(pieces))
