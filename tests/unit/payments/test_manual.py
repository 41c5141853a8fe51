"""The pure parts of manual payments and the API's Idempotency-Key: a key as a header gives it,
what makes two requests the same, whose keys they are, what the add form's "pays" choice names,
and the customer's payment reference on invoices and proforma invoices."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin import idempotency, schemas
from admin.auth.principal import Principal
from admin.billing.render import samples, templates
from admin.finance import payments
from admin.payments import reference


def test_a_key_is_one_to_255_visible_characters_quoted_or_not() -> None:
    assert idempotency.parse("crm-4711") == "crm-4711"
    assert idempotency.parse('"8e03978e-40d5-43e8-bc93-6894a57f9324"') == "8e03978e-40d5-43e8-bc93-6894a57f9324"
    assert idempotency.parse("  spaced out  ") == "spaced out"
    assert idempotency.parse("x" * 255) == "x" * 255
    for bad in ("", '""', "x" * 256, "tab\tkey", "caf\u00e9", "new\nline", '" padded"'):
        with pytest.raises(schemas.Invalid) as e:
            idempotency.parse(bad)
        assert idempotency.HEADER in e.value.errors


@given(st.text(min_size=1, max_size=300))
def test_parse_takes_a_key_or_says_why_not(value: str) -> None:
    try:
        key = idempotency.parse(value)
    except schemas.Invalid:
        return
    assert 1 <= len(key) <= idempotency.MAX_LENGTH and key.isascii() and key.isprintable()


def test_the_same_request_is_method_path_and_body_byte_for_byte() -> None:
    a = idempotency.fingerprint("POST", "/api/v1/payments", b'{"amount": "1"}')
    assert a == idempotency.fingerprint("POST", "/api/v1/payments", b'{"amount": "1"}')
    assert len({a, idempotency.fingerprint("PUT", "/api/v1/payments", b'{"amount": "1"}'),
                idempotency.fingerprint("POST", "/api/v1/payments?x=1", b'{"amount": "1"}'),
                idempotency.fingerprint("POST", "/api/v1/payments", b'{"amount":"1"}')}) == 4
    # Parts are length-prefixed: moving bytes from the path into the body is another request.
    assert idempotency.fingerprint("POST", "/a", b"b/c") != idempotency.fingerprint("POST", "/ab/", b"c")


def test_keys_are_each_callers() -> None:
    key = Principal("key:crm", "finance", frozenset(), api_key_id=7)
    person = Principal("anna", "finance", frozenset(), admin_id=3)
    assert idempotency.principal_of(key) == "key:7" and idempotency.principal_of(person) == "admin:3"


def test_the_forms_pays_choice() -> None:
    assert payments._target("") == {}
    assert payments._target("doc:42") == {"document_id": 42}
    assert payments._target("svc:7:2026-04-01:2026-05-01") == {
        "service_id": 7, "period_start": dt.date(2026, 4, 1), "period_end": dt.date(2026, 5, 1)}
    for bad in ("doc:", "doc:x", "svc:7:2026-04-01", "svc:7:2026-02-30:2026-03-01", "anything"):
        with pytest.raises(schemas.Invalid):
            payments._target(bad)


@pytest.mark.parametrize("kind", ["invoice", "proforma"])
def test_invoices_and_proformas_print_the_customers_payment_reference(kind: Literal["invoice", "proforma"]) -> None:
    printed = reference.printed(reference.for_customer(10042))
    doc = samples.document(kind)
    doc = replace(doc, customer=replace(doc.customer, payment_reference=printed))
    html = templates.render(doc, samples.branding())
    assert "Your payment reference" in html and printed in html
    bare = templates.render(replace(doc, customer=replace(doc.customer, payment_reference="")), samples.branding())
    assert "Your payment reference" not in bare
