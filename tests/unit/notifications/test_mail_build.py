"""The message mail.py builds, without a server: headers, encodings, parts and attachments,
BCC kept out of the headers, line breaks refused (no header injection), and a Message-ID that
is the same every time the same message is built."""

from __future__ import annotations

import datetime as dt
import email.policy
import re
from email.message import EmailMessage, Message
from email.parser import BytesParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.notifications import mail
from admin.notifications.model import (
    Attachment,
    MailSettings,
    Outgoing,
    PermanentFailure,
    TemporaryFailure,
    Thread,
)

SETTINGS = MailSettings(host="mail.isp.example", sender="Lastmile Netz <billing@isp.example>",
                        reply_to="support@isp.example")
NOW = dt.datetime(2026, 4, 1, 9, 30, tzinfo=dt.UTC)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def outgoing(**changes: object) -> Outgoing:
    fields: dict[str, object] = {"message_id": 4711, "channel": "email", "recipient": "anna@example.at",
                                 "subject": "Your invoice 2026000123", "body": "Dear Anna,\n\nyour invoice.\n"}
    fields.update(changes)
    return Outgoing(**fields)  # type: ignore[arg-type]


def reparsed(message: Message[str, str]) -> EmailMessage:
    """The message as a mail store reads it: the bytes sent, with local line ends."""
    parsed = BytesParser(policy=email.policy.default).parsebytes(message.as_bytes().replace(b"\r\n", b"\n"))
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_the_headers_name_sender_recipient_reply_to_subject_date_and_id() -> None:
    got = reparsed(mail.build(outgoing(), SETTINGS, now=NOW))
    assert got["From"] == "Lastmile Netz <billing@isp.example>"
    assert got["To"] == "anna@example.at"
    assert got["Reply-To"] == "support@isp.example"
    assert got["Subject"] == "Your invoice 2026000123"
    assert got["Date"].datetime == NOW
    assert got["Message-ID"].startswith("<lastmile.4711.") and got["Message-ID"].endswith("@isp.example>")
    assert got["Auto-Submitted"] == "auto-generated"
    assert got.get_content_type() == "text/plain"
    assert got.get_content() == "Dear Anna,\n\nyour invoice.\n"
    assert "Bcc" not in got


def test_no_reply_to_header_without_one_in_the_settings() -> None:
    got = reparsed(mail.build(outgoing(), MailSettings(host="h", sender="billing@isp.example"), now=NOW))
    assert "Reply-To" not in got
    assert got["From"] == "billing@isp.example"


def test_the_message_id_is_deterministic_per_message_and_sender() -> None:
    first = mail.build(outgoing(), SETTINGS, now=NOW)["Message-ID"]
    again = mail.build(outgoing(subject="Changed", body="other"), SETTINGS,
                       now=NOW + dt.timedelta(hours=3))["Message-ID"]
    other_message = mail.build(outgoing(message_id=4712), SETTINGS, now=NOW)["Message-ID"]
    other_sender = mail.build(outgoing(), MailSettings(host="h", sender="noreply@isp.example"),
                              now=NOW)["Message-ID"]
    assert first == again
    assert len({first, other_message, other_sender}) == 3
    assert re.fullmatch(r"<lastmile\.4711\.[0-9a-f]{8}@isp\.example>", first)


def test_non_ascii_names_and_subjects_are_encoded_and_read_back() -> None:
    settings = MailSettings(host="h", sender="Jörg Müller GmbH <rechnung@isp.example>")
    message = mail.build(outgoing(recipient="Zoë Łukasiewicz <zoe@example.at>",
                                  subject="Ihre Rechnung über 42,00 € – März", body="Grüße, 😀\n"), settings, now=NOW)
    raw = message.as_bytes()
    assert raw.isascii()  # RFC 2047 words in the headers, quoted-printable/base64 in the body
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    got = reparsed(message)
    assert got["Subject"] == "Ihre Rechnung über 42,00 € – März"
    assert got["From"].addresses[0].display_name == "Jörg Müller GmbH"
    assert got["To"].addresses[0].display_name == "Zoë Łukasiewicz"
    assert got.get_content().replace("\r\n", "\n") == "Grüße, 😀\n"  # text's canonical form is CRLF, in base64 too


def test_a_long_subject_is_folded_and_unfolds_to_the_same() -> None:
    subject = "Zahlungserinnerung " + " ".join(f"Rechnung-{n:04d}" for n in range(30))
    raw = mail.build(outgoing(subject=subject), SETTINGS, now=NOW).as_bytes()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert reparsed(mail.build(outgoing(subject=subject), SETTINGS, now=NOW))["Subject"] == subject


def test_an_idn_domain_is_written_in_punycode() -> None:
    got = reparsed(mail.build(outgoing(recipient="kunde@müller.example"), SETTINGS, now=NOW))
    assert got["To"].addresses[0].domain == "xn--mller-kva.example"


def test_html_goes_beside_the_text_and_attachments_after_both() -> None:
    message = mail.build(outgoing(html="<p>Dear <b>Anna</b></p>", attachments=(
        Attachment("invoice-2026000123.pdf", "application/pdf", PDF),
        Attachment("Beleg für März.pdf", "application/pdf", PDF + b"2"))), SETTINGS, now=NOW)
    got = reparsed(message)
    assert got.get_content_type() == "multipart/mixed"
    body = got.get_body(("html", "plain"))
    assert body is not None and body.get_content_type() == "text/html"
    assert "<b>Anna</b>" in body.get_content()
    plain = got.get_body(("plain",))
    assert plain is not None and plain.get_content() == "Dear Anna,\n\nyour invoice.\n"
    files = list(got.iter_attachments())
    assert [f.get_filename() for f in files] == ["invoice-2026000123.pdf", "Beleg für März.pdf"]
    assert [f.get_content_type() for f in files] == ["application/pdf", "application/pdf"]
    assert files[0].get_content() == PDF and files[1].get_content() == PDF + b"2"


def test_html_alone_makes_an_alternative_and_a_bad_content_type_is_octet_stream() -> None:
    got = reparsed(mail.build(outgoing(html="<p>x</p>"), SETTINGS, now=NOW))
    assert got.get_content_type() == "multipart/alternative"
    got = reparsed(mail.build(outgoing(attachments=(Attachment("a.bin", "not a type", b"\x00\x01"),)), SETTINGS,
                              now=NOW))
    [file] = got.iter_attachments()
    assert file.get_content_type() == "application/octet-stream" and file.get_content() == b"\x00\x01"


def test_bcc_goes_to_the_envelope_only() -> None:
    message = outgoing(bcc=("archive@isp.example", "anna@example.at", "archive@isp.example"))
    raw = mail.build(message, SETTINGS, now=NOW).as_bytes()
    assert b"archive@" not in raw and b"Bcc" not in raw
    assert mail.envelope(message, SETTINGS) == ("billing@isp.example", ["anna@example.at"], ["archive@isp.example"])


def test_a_recipient_field_may_list_several_addresses() -> None:
    message = outgoing(recipient="anna@example.at, Bob <bob@example.de>")
    assert mail.envelope(message, SETTINGS)[1] == ["anna@example.at", "bob@example.de"]
    got = reparsed(mail.build(message, SETTINGS, now=NOW))
    assert [a.addr_spec for a in got["To"].addresses] == ["anna@example.at", "bob@example.de"]


@pytest.mark.parametrize("field, value", [
    ("subject", "Invoice\r\nBcc: everyone@example.com"),
    ("subject", "Invoice\nX-Injected: 1"),
    ("subject", "Invoice\rX"),
    ("subject", "Invoice\x0bX"),
    ("subject", "Invoice\u2028X"),
    ("recipient", "anna@example.at\r\nBcc: everyone@example.com"),
    ("recipient", "anna@example.at\n"),
    ("bcc", ("archive@isp.example\r\nX-Injected: 1",)),
])
def test_a_line_break_in_a_subject_or_address_is_refused(field: str, value: object) -> None:
    message = outgoing(**{field: value})
    with pytest.raises(PermanentFailure, match="line break"):
        mail.build(message, SETTINGS, now=NOW) if field != "bcc" else mail.envelope(message, SETTINGS)


def test_a_line_break_in_an_attachments_name_is_refused() -> None:
    with pytest.raises(PermanentFailure, match="file name holds a line break"):
        mail.build(outgoing(attachments=(Attachment("a\r\nX: y.pdf", "application/pdf", PDF),)), SETTINGS, now=NOW)


@pytest.mark.parametrize("recipient", ["", "anna", "anna@", "@example.at", "anna@@example.at", "an na@example.at",
                                       "jörg@example.at", "anna@example.at junk"])
def test_a_recipient_that_is_no_address_is_a_permanent_failure(recipient: str) -> None:
    with pytest.raises(PermanentFailure, match="recipient") as caught:
        mail.build(outgoing(recipient=recipient), SETTINGS, now=NOW)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("sender", ["", "not an address", "a@x.at, b@y.at", "billing@isp.example\r\nX: 1"])
def test_a_broken_sender_is_temporary_the_settings_are_fixed_then_mail_goes(sender: str) -> None:
    with pytest.raises(TemporaryFailure, match="sender"):
        mail.build(outgoing(), MailSettings(host="h", sender=sender), now=NOW)


@given(st.text(max_size=120))
def test_any_subject_is_either_written_as_one_header_or_refused(subject: str) -> None:
    try:
        message = mail.build(outgoing(subject=subject), SETTINGS, now=NOW)
    except PermanentFailure as failure:
        assert "line break" in str(failure)
        return
    got = reparsed(message)
    assert sorted(got.keys()) == sorted(["From", "To", "Reply-To", "Subject", "Date", "Message-ID", "Auto-Submitted",
                                         "Content-Type", "Content-Transfer-Encoding", "MIME-Version"])
    assert " ".join(str(got["Subject"]).split()) == " ".join(subject.split())


@given(st.text(max_size=60))
def test_any_recipient_is_either_an_address_or_a_permanent_failure(recipient: str) -> None:
    try:
        _, to, _ = mail.envelope(outgoing(recipient=recipient), SETTINGS)
        mail.build(outgoing(recipient=recipient), SETTINGS, now=NOW).as_bytes()
    except PermanentFailure as failure:
        assert "\n" not in str(failure) and "\r" not in str(failure)
        return
    assert to and all("@" in a and a.isascii() and "\n" not in a for a in to)


def test_a_word_too_long_to_fold_is_written_as_encoded_words() -> None:
    subject = "Invoice " + "x" * 1200
    raw = mail.build(outgoing(subject=subject), SETTINGS, now=NOW).as_bytes()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    assert reparsed(mail.build(outgoing(subject=subject), SETTINGS, now=NOW))["Subject"] == subject


def test_a_subject_that_looks_like_an_encoded_word_reads_back_as_written() -> None:
    subject = "Code =?utf-8?q?A?= inside"
    assert reparsed(mail.build(outgoing(subject=subject), SETTINGS, now=NOW))["Subject"] == subject


REFERENCES = " ".join(f"<m{n}.{'x' * 30}@mail.example>" for n in range(20))  # long: folded when written
THREAD = Thread("<ticket-12.34@helpdesk.isp.example>", "<m19.x@mail.example>", REFERENCES)


def test_a_reply_carries_its_own_message_id_its_thread_and_no_auto_submitted() -> None:
    message = outgoing(subject="Re: No internet [#12]", thread=THREAD)
    got = reparsed(mail.build(message, SETTINGS, now=NOW))
    assert got["Message-ID"] == "<ticket-12.34@helpdesk.isp.example>"
    assert got["In-Reply-To"] == "<m19.x@mail.example>"
    assert " ".join(str(got["References"]).split()) == REFERENCES
    assert "Auto-Submitted" not in got
    assert got["Subject"] == "Re: No internet [#12]" and got["To"] == "anna@example.at"
    # The same every time: a resend is the same message.
    assert mail.build(message, SETTINGS, now=NOW)["Message-ID"] == mail.build(message, SETTINGS, now=NOW)["Message-ID"]


def test_a_reply_without_parents_has_no_in_reply_to_or_references() -> None:
    got = reparsed(mail.build(outgoing(thread=Thread("<ticket-1.1@helpdesk.isp.example>")), SETTINGS, now=NOW))
    assert got["Message-ID"] == "<ticket-1.1@helpdesk.isp.example>"
    assert "In-Reply-To" not in got and "References" not in got and "Auto-Submitted" not in got


def test_a_notice_still_says_it_is_auto_generated() -> None:
    got = reparsed(mail.build(outgoing(), SETTINGS, now=NOW))
    assert got["Auto-Submitted"] == "auto-generated" and "In-Reply-To" not in got and "References" not in got


@pytest.mark.parametrize("thread", [
    Thread("<ticket-1.1@x.example>\r\nBcc: everyone@example.com"),
    Thread("<ticket-1.1@x.example>", in_reply_to="<a@x.example>\r\nX-Injected: 1"),
    Thread("<ticket-1.1@x.example>", references="<a@x.example>\n<b@x.example>"),
    Thread("<ticket-1.1@x.example>", references="<a@x.example>\u2028<b@x.example>"),
])
def test_a_line_break_in_a_threading_header_is_refused(thread: Thread) -> None:
    with pytest.raises(PermanentFailure, match="header of the reply holds a line break") as caught:
        mail.build(outgoing(thread=thread), SETTINGS, now=NOW)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("thread", [Thread(""), Thread("  "), Thread("<tickét-1.1@x.example>")])
def test_a_reply_without_a_usable_message_id_is_refused(thread: Thread) -> None:
    with pytest.raises(PermanentFailure, match="Message-ID"):
        mail.build(outgoing(thread=thread), SETTINGS, now=NOW)
