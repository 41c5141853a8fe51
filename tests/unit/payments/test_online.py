"""The pure parts of online payments: statuses that only move up (so events in any order end
alike), minor units, the two gateways' events read into lastmile's words, keys shown masked."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from functools import reduce

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.finance.gateways import hint
from admin.payments.gateways import (
    STATUS_RANK,
    GatewayError,
    from_minor_units,
    has_card_number,
    merge_status,
    minor_units,
)
from admin.payments.gateways import paypal as pp
from admin.payments.gateways import stripe as st_gateway
from admin.payments.online import describe, gateway_key, next_month

statuses = st.sampled_from(sorted(STATUS_RANK))


@given(st.lists(statuses, min_size=1, max_size=6))
def test_the_status_after_any_order_of_reports_is_the_same(reports: list[str]) -> None:
    ends = {reduce(merge_status, order, "created") for order in itertools.permutations(reports)}
    assert ends == {max(["created", *reports], key=STATUS_RANK.__getitem__)}


def test_a_success_is_final_and_a_failure_may_still_succeed() -> None:
    assert merge_status("succeeded", "failed") == "succeeded"
    assert merge_status("failed", "succeeded") == "succeeded"
    assert merge_status("requires_action", "processing") == "processing"
    assert merge_status("processing", "requires_action") == "processing"


@given(st.integers(0, 10**12), st.sampled_from([0, 2, 3]))
def test_minor_units_round_trip(value: int, digits: int) -> None:
    assert minor_units(from_minor_units(value, digits), digits) == value


def test_minor_units_refuse_what_the_currency_cannot_hold() -> None:
    assert minor_units(Decimal("29.90"), 2) == 2990 and minor_units(Decimal("1500"), 0) == 1500
    with pytest.raises(ValueError, match="more than 2 decimals"):
        minor_units(Decimal("0.001"), 2)


def test_stripe_events_in_lastmiles_words() -> None:
    pi = {"id": "pi_1", "object": "payment_intent", "amount": 3100, "amount_received": 3100, "currency": "eur",
          "customer": "cus_1", "metadata": {"lastmile_intent": "42"}}
    ok = st_gateway.parse_event({"id": "evt_1", "type": "payment_intent.succeeded",
                                 "data": {"object": {**pi, "status": "succeeded"}}})
    assert (ok.kind, ok.status, ok.payment_ref, ok.amount, ok.currency, ok.intent_id, ok.customer_ref) == (
        "payment", "succeeded", "pi_1", Decimal("31.00"), "EUR", 42, "cus_1")
    failed = st_gateway.parse_event({"id": "evt_2", "type": "payment_intent.payment_failed", "data": {"object": {
        **pi, "status": "requires_payment_method", "last_payment_error": {"message": "Your card was declined."}}}})
    assert (failed.status, failed.payment_ref, failed.amount, failed.error) == ("failed", None, None,
                                                                                 "Your card was declined.")
    yen = st_gateway.parse_event({"id": "evt_3", "type": "payment_intent.succeeded", "data": {"object": {
        "id": "pi_2", "status": "succeeded", "amount": 1500, "currency": "jpy"}}})
    assert yen.amount == Decimal("1500")
    refund = st_gateway.parse_event({"id": "evt_4", "type": "charge.refunded", "data": {"object": {
        "id": "ch_1", "payment_intent": "pi_1", "amount": 3100, "amount_refunded": 1000, "refunded": False,
        "currency": "eur", "refunds": {"data": [{"id": "re_9"}]}}}})
    assert (refund.kind, refund.payment_ref, refund.amount, refund.refunded_all, refund.refund_ref) == (
        "refund", "pi_1", Decimal("10.00"), False, "re_9")
    card = st_gateway.parse_event({"id": "evt_5", "type": "setup_intent.succeeded", "data": {"object": {
        "id": "seti_1", "payment_method": "pm_1", "customer": "cus_1"}}})
    assert (card.kind, card.card_token, card.customer_ref, card.card) == ("card", "pm_1", "cus_1", None)
    assert st_gateway.parse_event({"id": "evt_6", "type": "customer.created", "data": {"object": {}}}).kind == "other"
    weird = st_gateway.parse_event({"id": "evt_7", "type": "payment_intent.succeeded", "data": {"object": {
        "id": "pi_3", "status": "succeeded", "metadata": {"lastmile_intent": "not-a-number"}}}})
    assert weird.intent_id is None and weird.amount is None


def test_paypal_events_in_lastmiles_words() -> None:
    capture = pp.parse_event({"id": "WH-1", "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource": {
        "id": "CAP1", "status": "COMPLETED", "amount": {"currency_code": "EUR", "value": "31.00"}, "custom_id": "7",
        "supplementary_data": {"related_ids": {"order_id": "ORD1"}}}})
    assert (capture.kind, capture.status, capture.payment_ref, capture.intent_ref, capture.intent_id,
            capture.amount, capture.currency) == ("payment", "succeeded", "CAP1", "ORD1", 7, Decimal("31.00"), "EUR")
    denied = pp.parse_event({"id": "WH-2", "event_type": "PAYMENT.CAPTURE.DENIED", "resource": {"id": "CAP2"}})
    assert (denied.status, denied.payment_ref) == ("failed", None)
    approved = pp.parse_event({"id": "WH-3", "event_type": "CHECKOUT.ORDER.APPROVED", "resource": {
        "id": "ORD1", "status": "APPROVED", "purchase_units": [{"custom_id": "7"}]}})
    assert (approved.kind, approved.status, approved.intent_ref, approved.intent_id) == ("payment", "processing",
                                                                                         "ORD1", 7)
    refunded = pp.parse_event({"id": "WH-4", "event_type": "PAYMENT.CAPTURE.REFUNDED", "resource": {
        "id": "REF1", "amount": {"currency_code": "EUR", "value": "31.00"},
        "links": [{"rel": "up", "href": "https://api-m.paypal.com/v2/payments/captures/CAP1"}]}})
    assert (refunded.kind, refunded.payment_ref, refunded.refund_ref, refunded.amount) == ("refund", "CAP1", "REF1",
                                                                                           Decimal("31.00"))
    vaulted = pp.parse_event({"id": "WH-5", "event_type": "VAULT.PAYMENT-TOKEN.CREATED", "resource": {
        "id": "tok1", "customer": {"id": "cust1"}, "payment_source": {"card": {
            "brand": "VISA", "last_digits": "4242", "expiry": "2030-12"}}}})
    assert vaulted.card is not None and (vaulted.card.token, vaulted.card.brand, vaulted.card.last4,
                                         vaulted.card.exp_month, vaulted.card.exp_year, vaulted.customer_ref) == (
        "card/tok1", "Visa", "4242", 12, 2030, "cust1")
    assert pp.parse_event({"id": "WH-6", "event_type": "BILLING.PLAN.CREATED", "resource": {}}).kind == "other"
    assert pp.parse_event({"id": "WH-7", "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource": "x"}).kind == "other"


def test_a_vault_token_names_its_source() -> None:
    assert pp._vault("paypal/abc") == ("paypal", "abc")
    with pytest.raises(GatewayError):
        pp._vault("pm_123")


def test_keys_are_shown_by_their_kind_and_last_four_only() -> None:
    assert hint("sk_live_51Habcdefghijklmnop1234") == "sk_live_…1234"
    assert hint("0123456789abcdef") == "…cdef"
    assert hint("short") == "…" and hint("") == ""


def test_gateway_keys_are_stable_short_and_differ_per_row() -> None:
    a = gateway_key("intent", 1, "2026-04-01T00:00:00+00:00", "k")
    assert a == gateway_key("intent", 1, "2026-04-01T00:00:00+00:00", "k") and len(a) <= 108
    assert a != gateway_key("intent", 1, "2026-04-01T00:00:01+00:00", "k")   # another database's row 1


def test_a_card_as_people_read_it_and_next_month() -> None:
    assert describe({"brand": "visa", "last4": "4242", "exp_month": 3, "exp_year": 2030}) == "visa •••• 4242, 03/2030"
    assert describe({"brand": "PayPal", "last4": None, "exp_month": None, "exp_year": None}) == "PayPal"
    assert next_month(dt.date(2026, 12, 5)) == (2027, 1) and next_month(dt.date(2026, 1, 31)) == (2026, 2)


def test_text_with_a_card_number_is_told_apart() -> None:
    assert has_card_number("refund 4242 4242 4242 4242 please") and has_card_number("4000-0027-6000-3184")
    assert has_card_number("amex 378282246310005")                              # 15 digits
    assert not has_card_number("invoice 202601000001, customer C07001, IBAN AT611904300234573201")
    assert not has_card_number("4242424242424241")                              # Luhn says no
