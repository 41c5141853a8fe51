"""Subject tags and our Message-IDs: tagging and replying without doubling, reading the ticket
back (and refusing bad ids), the hints an incoming mail gives, and our replies' headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.tickets.inbound import InboundMail, parse
from admin.tickets.threading import (
    MAX_ID,
    MAX_REFERENCES,
    Hints,
    hints,
    message_id,
    reply_headers,
    reply_subject,
    tag_subject,
    ticket_in_ids,
    ticket_in_subject,
)

DOMAIN = "helpdesk.isp.example"


@pytest.mark.parametrize(("subject", "expected"), [
    ("Slow internet", "Slow internet [#1234]"),
    ("Slow internet [#1234]", "Slow internet [#1234]"),  # kept, not doubled
    ("Re: Slow internet [#1234]", "Re: Slow internet [#1234]"),
    ("Re: Re: RE: Slow internet", "Re: Slow internet [#1234]"),  # prefixes become one
    ("AW: Re: Slow internet [#1234]", "Re: Slow internet [#1234]"),
    ("Slow internet [#99]", "Slow internet [#99] [#1234]"),  # another ticket's tag stays, ours is last
    ("  Slow\r\n internet\t", "Slow internet [#1234]"),  # whitespace (and line breaks) collapsed
    ("", "[#1234]"),
    ("Re:", "Re: [#1234]"),
    ("[#1234] Slow internet", "[#1234] Slow internet"),  # ours, even first
])
def test_tag_subject(subject: str, expected: str) -> None:
    assert tag_subject(subject, 1234) == expected


@pytest.mark.parametrize(("subject", "expected"), [
    ("Slow internet", "Re: Slow internet [#1234]"),
    ("Re: Slow internet [#1234]", "Re: Slow internet [#1234]"),
    ("RE: re: Slow internet [#1234]", "Re: Slow internet [#1234]"),
    ("Re[2]: Slow internet", "Re: Slow internet [#1234]"),
    ("Aw: Langsames Internet", "Re: Langsames Internet [#1234]"),
    ("SV: Re : Fwd: Slow", "Re: Fwd: Slow [#1234]"),  # Fwd: stays: it says what the mail was
    ("Rechnung", "Re: Rechnung [#1234]"),  # a word beginning like a prefix is not one
    ("", "Re: [#1234]"),
])
def test_reply_subject(subject: str, expected: str) -> None:
    assert reply_subject(subject, 1234) == expected


@pytest.mark.parametrize(("subject", "expected"), [
    ("Re: Slow internet [#1234]", 1234),
    ("[#5] moved to [#7]", 7),  # the last tag
    ("no tag", None),
    ("[#0]", None),
    ("[#abc]", None),
    ("[# 12]", None),  # not a tag: no spaces
    ("[#12 ]", None),
    ("#12", None),
    ("[#007]", 7),
    ("[#9223372036854775807]", MAX_ID),
    ("[#9223372036854775808]", None),  # over a bigint
    ("[#" + "9" * 5000 + "]", None),  # a huge number: no int() of it
    ("[#5] then [#0]", None),  # the last tag is bad: no fall back
    ("[#12] [#abc]", 12),  # [#abc] is not a tag
])
def test_ticket_in_subject(subject: str, expected: int | None) -> None:
    assert ticket_in_subject(subject) == expected


def test_message_ids_are_ours_and_read_back() -> None:
    ours = message_id(12, 345, DOMAIN)
    assert ours == "<ticket-12.345@helpdesk.isp.example>"
    assert ticket_in_ids([ours], DOMAIN) == 12
    assert ticket_in_ids([ours], "HelpDesk.ISP.example") == 12  # any case
    assert ticket_in_ids(["<TICKET-12.345@HELPDESK.ISP.EXAMPLE>"], DOMAIN) == 12


@pytest.mark.parametrize(("ids", "expected"), [
    ([], None),
    (["<abc@mail.example>"], None),
    (["<ticket-12.1@other.example>"], None),  # another domain's
    (["<ticket-12.1@helpdesk.isp.example.evil>"], None),
    (["<ticket-1.1@helpdesk.isp.example>", "<x@y>", "<ticket-2.5@helpdesk.isp.example>", "<z@y>"], 2),  # last
    (["<ticket-0.1@helpdesk.isp.example>"], None),
    (["<ticket-1.0@helpdesk.isp.example>"], None),
    (["<ticket-99999999999999999999.1@helpdesk.isp.example>"], None),
    (["<ticket-12.1@helpdesk.isp.example>", "<ticket-0.1@helpdesk.isp.example>"], 12),  # a bad one is not ours
    (["ticket-12.1@helpdesk.isp.example"], None),  # no brackets
    ([" <ticket-12.1@helpdesk.isp.example> "], 12),
])
def test_ticket_in_ids(ids: list[str], expected: int | None) -> None:
    assert ticket_in_ids(ids, DOMAIN) == expected


@pytest.mark.parametrize(("ticket_id", "mid", "domain"), [
    (0, 1, DOMAIN), (1, 0, DOMAIN), (MAX_ID + 1, 1, DOMAIN), (1, 1, ""), (1, 1, "a b"), (1, 1, "x>y"),
    (1, 1, "a@b"),
])
def test_message_id_refuses_what_cannot_be_read_back(ticket_id: int, mid: int, domain: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        message_id(ticket_id, mid, domain)


def mail(headers: str, subject: str = "Re: Slow internet") -> InboundMail:
    return parse(f"From: anna@example.at\nTo: support@isp.example\nSubject: {subject}\n{headers}\n\ntext\n".encode())


def test_hints_prefer_in_reply_to_then_the_newest_reference() -> None:
    refs = "References: <a@mail.example> <ticket-5.1@helpdesk.isp.example> <b@mail.example>"
    replied = mail(f"In-Reply-To: <ticket-9.4@helpdesk.isp.example>\n{refs} <ticket-6.2@helpdesk.isp.example>",
                   "Re: Slow internet [#3]")
    assert hints(replied, DOMAIN) == Hints(by_header=9, by_subject=3,
                                           foreign_ids=("<b@mail.example>", "<a@mail.example>"))
    assert hints(mail(refs + " <ticket-6.2@helpdesk.isp.example>"), DOMAIN).by_header == 6
    assert hints(mail("In-Reply-To: <c@mail.example>\n" + refs), DOMAIN) == Hints(
        by_header=5, by_subject=None, foreign_ids=("<c@mail.example>", "<b@mail.example>", "<a@mail.example>"))


def test_hints_of_a_new_mail_are_empty() -> None:
    assert hints(mail("", "Slow internet"), DOMAIN) == Hints(None, None, ())
    assert hints(mail("", "Re: [#77]"), DOMAIN) == Hints(None, 77, ())


def test_hints_list_a_foreign_id_once() -> None:
    found = hints(mail("In-Reply-To: <a@mail.example>\nReferences: <a@mail.example> <ticket-1.1@elsewhere.example>"),
                  DOMAIN)
    assert found == Hints(None, None, ("<a@mail.example>", "<ticket-1.1@elsewhere.example>"))


def test_reply_headers() -> None:
    parents = ["<root@mail.example>", "<ticket-12.3@helpdesk.isp.example>", "<anna-2@mail.example>"]
    assert reply_headers(12, 5, DOMAIN, parents) == {
        "Message-ID": "<ticket-12.5@helpdesk.isp.example>",
        "In-Reply-To": "<anna-2@mail.example>",
        "References": "<root@mail.example> <ticket-12.3@helpdesk.isp.example> <anna-2@mail.example>",
    }


def test_reply_headers_without_parents_have_no_threading_headers() -> None:
    assert reply_headers(12, 1, DOMAIN, []) == {"Message-ID": "<ticket-12.1@helpdesk.isp.example>"}
    assert reply_headers(12, 1, DOMAIN, ["not an id", "<a b>", "<x@y>\r\nBcc: all@example"]) == {
        "Message-ID": "<ticket-12.1@helpdesk.isp.example>"}


def test_reply_headers_keep_the_last_twenty_references_once() -> None:
    parents = [f"<m{i}@mail.example>" for i in range(30)]
    headers = reply_headers(1, 2, DOMAIN, [*parents, "<m3@mail.example>"])
    kept = headers["References"].split(" ")
    assert len(kept) == MAX_REFERENCES
    assert kept[-1] == headers["In-Reply-To"] == "<m3@mail.example>"  # a repeat keeps its last place
    assert kept[:-1] == parents[11:]


@given(st.text(max_size=300), st.integers(1, MAX_ID))
def test_subjects_never_raise_and_read_back(subject: str, ticket_id: int) -> None:
    tagged = tag_subject(subject, ticket_id)
    replied = reply_subject(subject, ticket_id)
    assert ticket_in_subject(tagged) == ticket_in_subject(replied) == ticket_id
    assert tag_subject(tagged, ticket_id) == tagged
    assert reply_subject(replied, ticket_id) == replied
    assert not replied.lower().startswith(("re: re:", "re: aw:"))
    assert "\n" not in replied and "\r" not in replied


@given(st.lists(st.text(max_size=60), max_size=10), st.text(max_size=40))
def test_ids_never_raise(ids: list[str], domain: str) -> None:
    ticket_in_ids(ids, domain)
    ticket_in_subject(" ".join(ids))
