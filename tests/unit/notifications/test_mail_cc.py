"""A message's CC (a ticket's, on its replies): written in the Cc header and carried in the
envelope, each address once and not again when To names it; line breaks refused as anywhere."""

from __future__ import annotations

import email.policy
from email.parser import BytesParser

import pytest

from admin.notifications import mail
from admin.notifications.model import MailSettings, Outgoing, PermanentFailure

SETTINGS = MailSettings(host="mail.isp.example", sender="Lastmile Netz <billing@isp.example>")


def outgoing(**changes: object) -> Outgoing:
    fields: dict[str, object] = {"message_id": 7, "channel": "email", "recipient": "anna@example.at",
                                 "subject": "Re: [#12] No internet", "body": "Restart it.\n"}
    fields.update(changes)
    return Outgoing(**fields)  # type: ignore[arg-type]


def test_cc_is_a_header_and_in_the_envelope_before_the_bcc() -> None:
    message = outgoing(cc=("Jörg Chef <boss@example.at>, ANNA@example.at", "office@example.at", "boss@example.at"),
                       bcc=("archive@isp.example", "office@example.at"))
    got = BytesParser(policy=email.policy.default).parsebytes(mail.build(message, SETTINGS).as_bytes())
    assert got["Cc"] == "Jörg Chef <boss@example.at>, office@example.at"
    assert "Bcc" not in got and b"archive@" not in mail.build(message, SETTINGS).as_bytes()
    assert mail.envelope(message, SETTINGS) == (
        "billing@isp.example", ["anna@example.at"], ["boss@example.at", "office@example.at", "archive@isp.example"])


def test_no_cc_no_header() -> None:
    got = BytesParser(policy=email.policy.default).parsebytes(mail.build(outgoing(), SETTINGS).as_bytes())
    assert "Cc" not in got


@pytest.mark.parametrize("cc", ["boss@example.at\r\nBcc: everyone@example.com", "not an address"])
def test_a_cc_that_cannot_be_written_is_refused(cc: str) -> None:
    with pytest.raises(PermanentFailure, match="CC address"):
        mail.build(outgoing(cc=(cc,)), SETTINGS)
