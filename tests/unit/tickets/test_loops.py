"""Mail that must not be answered automatically: each machine signal on its own, the mail a
person writes (answered), and the hourly limit per address."""

from __future__ import annotations

import pytest

from admin.tickets.inbound import InboundMail, parse
from admin.tickets.loops import REPLY_LIMIT, NoReply, Reason, may_reply, no_reply

OURS = ("Support@ISP.example", "billing@isp.example")


def mail(headers: str = "", sender: str = "Anna Bauer <anna@example.at>",
         content_type: str = "text/plain") -> InboundMail:
    return parse(f"From: {sender}\nTo: support@isp.example\nSubject: Frage\nContent-Type: {content_type}\n"
                 f"{headers}\nmein Internet\n".encode())


def test_a_person_s_mail_may_be_answered() -> None:
    assert no_reply(mail(), OURS) is None
    assert no_reply(mail("Auto-Submitted: no\nPrecedence: first-class\nX-Auto-Response-Suppress: OOF\n"
                         "X-Autoreply: no\n"), OURS) is None


@pytest.mark.parametrize(("headers", "reason", "detail"), [
    ("Auto-Submitted: auto-replied", Reason.AUTO_SUBMITTED, "Auto-Submitted: auto-replied"),
    ("Auto-Submitted: auto-generated; owner-email=x@y", Reason.AUTO_SUBMITTED,
     "Auto-Submitted: auto-generated; owner-email=x@y"),
    ("Precedence: bulk", Reason.PRECEDENCE, "Precedence: bulk"),
    ("Precedence: JUNK", Reason.PRECEDENCE, "Precedence: JUNK"),
    ("Precedence: list", Reason.PRECEDENCE, "Precedence: list"),
    ("X-Auto-Response-Suppress: All", Reason.SUPPRESSED, "X-Auto-Response-Suppress: All"),
    ("X-Auto-Response-Suppress: DR, AutoReply", Reason.SUPPRESSED, "X-Auto-Response-Suppress: DR, AutoReply"),
    ("X-Autoreply: yes", Reason.AUTOREPLY, "X-Autoreply: yes"),
    ("X-Autorespond: Out of office", Reason.AUTOREPLY, "X-Autorespond: Out of office"),
    ("List-Id: Users <users.lists.example>", Reason.MAILING_LIST, "List-Id: Users <users.lists.example>"),
    ("List-Unsubscribe: <mailto:leave@lists.example>", Reason.MAILING_LIST,
     "List-Unsubscribe: <mailto:leave@lists.example>"),
    ("Return-Path: <>", Reason.NULL_SENDER, "Return-Path: <>"),
])
def test_machine_headers(headers: str, reason: Reason, detail: str) -> None:
    assert no_reply(mail(headers + "\n"), OURS) == NoReply(reason, detail)


@pytest.mark.parametrize("sender", [
    "MAILER-DAEMON@mx.example.at", "Mail Delivery System <postmaster@example.at>", "noreply@shop.example",
    "no-reply@accounts.example", "donotreply@bank.example", "bounces+123-abc@sendgrid.example",
    "owner-users@lists.example", "users-request@lists.example", "noreply-alerts@monitor.example",
])
def test_system_senders(sender: str) -> None:
    result = no_reply(mail(sender=sender), OURS)
    assert result is not None and result.reason is Reason.SYSTEM_SENDER


def test_a_mail_without_a_sender_is_not_answered() -> None:
    assert no_reply(parse(b"Subject: x\n\nx\n")) == NoReply(Reason.SYSTEM_SENDER, "no sender address")


def test_a_delivery_report_is_not_answered() -> None:
    report = mail(content_type="multipart/report; report-type=delivery-status; boundary=R", sender="mx@example.at")
    assert no_reply(report, OURS) == NoReply(Reason.REPORT, "Content-Type: multipart/report")


def test_our_own_inbox_is_never_answered() -> None:
    assert no_reply(mail(sender="Lastmile Support <support@isp.example>"), OURS) == \
        NoReply(Reason.OWN_ADDRESS, "sender support@isp.example is one of our inboxes")
    assert no_reply(mail(sender="support@isp.example")) is None  # no inboxes given: not ours


def test_the_hourly_limit_per_address() -> None:
    assert REPLY_LIMIT == 5
    assert [may_reply(n) for n in range(7)] == [True, True, True, True, True, False, False]
    assert may_reply(1, limit=1) is False and may_reply(0, limit=1) is True
