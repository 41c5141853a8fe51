"""Online payments against a real PostgreSQL, a real Stripe emulator (localstripe, with Stripe's
idempotency keys in front: tests/fakes/localstripe.py) and the PayPal double (tests/fakes/paypal.py):
cards saved through the gateway (3-D Secure included) and charged, an attempt kept before the
gateway is asked and never charged twice (W-17), autopay, refunds, webhooks processed once and in
any order (W-16), and no card number anywhere (W-15)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import itertools
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.billing import run
from admin.payments import online
from admin.payments import online_store as store
from admin.payments.gateways import Event, GatewayError, SignatureError
from admin.payments.gateways.paypal import PayPalGateway
from admin.payments.gateways.stripe import StripeGateway, parse_event
from daemons import db
from daemons.secrets import Keyring
from tests.db.test_billing import balance, customer
from tests.fakes.localstripe import ROOT, LocalStripe, Unavailable
from tests.fakes.paypal import FakePayPal

D = Decimal
APRIL = dt.date(2026, 4, 1)
TODAY = dt.date(2026, 4, 20)           # past April's invoices' due date (the 15th)
WHSEC = "whsec_lastmile_test_secret"
SK = "sk_test_lastmile"
CARD_3DS = "4000002760003184"          # localstripe's (and Stripe's) "authentication required" card
CARD_OK = "4242424242424242"
CARD_DECLINED_LATER = "4000000000000341"  # saves, then every charge is declined
LOGS = ROOT / "var" / "test-logs"
COUNTER = itertools.count(1)
ROOT_ADMIN = Principal(name="root", role="super", permissions=frozenset(), admin_id=None)


# -- the emulator and the double ----------------------------------------------------------------

@pytest.fixture(scope="session")
async def localstripe() -> AsyncIterator[LocalStripe]:
    """localstripe for the session (installed into .venv-localstripe/ on first use). Missing, the
    tests skip; under CI they fail (a payments test that does not run is a failure)."""
    emulator = LocalStripe(LOGS / f"localstripe-{os.getpid()}.log")
    try:
        await emulator.start()
    except Unavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"localstripe is needed: {e}")
        pytest.skip(f"localstripe is not available: {e}")
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest.fixture
async def paypal() -> AsyncIterator[FakePayPal]:
    async with FakePayPal() as double:
        yield double


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(db_url, min_size=2, max_size=6, init=db.init_connection)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(os.urandom(32))


@pytest.fixture
async def gateways(keyring: Keyring) -> AsyncIterator[online.Gateways]:
    g = online.Gateways(keyring)
    try:
        yield g
    finally:
        await g.close()


async def use_stripe(conn: Connection, keyring: Keyring, url: str, *secrets: str) -> None:
    """Stripe on, pointed at ``url``, with its keys sealed as the admin seals them."""
    hooks = "\n".join(secrets or (WHSEC,))
    await conn.execute(
        "UPDATE payment_gateways SET enabled = true, settings = $1::jsonb, secret_key = $2, webhook_secret = $3 "
        "WHERE name = 'stripe'", {"api_base": url, "publishable_key": "pk_test_lastmile"},
        keyring.seal(SK, online.secret_purpose("stripe", "secret_key")),
        keyring.seal(hooks, online.secret_purpose("stripe", "webhook_secret")))


async def use_paypal(conn: Connection, keyring: Keyring, double: FakePayPal) -> None:
    await conn.execute(
        "UPDATE payment_gateways SET enabled = true, settings = $1::jsonb, secret_key = $2, webhook_secret = $3 "
        "WHERE name = 'paypal'", {"api_base": double.url, "client_id": double.client_id, "mode": "sandbox"},
        keyring.seal(double.client_secret, online.secret_purpose("paypal", "secret_key")),
        keyring.seal(double.webhook_id, online.secret_purpose("paypal", "webhook_secret")))


async def invoiced(pool: asyncpg.Pool, n: int | None = None, *, partner: int | None = None) -> tuple[int, int]:
    """A customer with April's invoice (31.00 EUR, due on the 15th): (customer id, invoice id)."""
    n = n or next(COUNTER)
    async with pool.acquire() as conn:
        cid = await customer(conn, 7000 + n, start=APRIL, partner=partner)
    await run.run(pool, APRIL)
    async with pool.acquire() as conn:
        invoice: int = await conn.fetchval(
            "SELECT id FROM documents WHERE kind = 'invoice' AND customer_id = $1 ORDER BY id DESC LIMIT 1", cid)
    return cid, invoice


async def row_of(conn: Connection | asyncpg.Pool, sql: str, *args: Any) -> asyncpg.Record:
    """The one row ``sql`` returns (the test fails here when there is none)."""
    found = await conn.fetchrow(sql, *args)
    assert found is not None, sql
    return found


async def card_fields(double: FakePayPal, number: str, expiry: str, customer_ref: str) -> str:
    """What PayPal's card fields do in the payer's browser for the vault customer: the card goes to
    PayPal, which answers with an approved setup token (the id the page then gives lastmile)."""
    async with aiohttp.ClientSession() as s:
        basic = base64.b64encode(f"{double.client_id}:{double.client_secret}".encode()).decode()
        async with s.post(double.url + "/v1/oauth2/token", data={"grant_type": "client_credentials"},
                          headers={"Authorization": f"Basic {basic}"}) as r:
            token = (await r.json())["access_token"]
        async with s.post(double.url + "/v3/vault/setup-tokens", headers={"Authorization": f"Bearer {token}"},
                          json={"customer": {"id": customer_ref},
                                "payment_source": {"card": {"number": number, "expiry": expiry}}}) as r:
            body = await r.json()
            assert r.status == 201, body
            return str(body["id"])


async def doc_status(conn: Connection, document_id: int) -> str:
    value: str = await conn.fetchval("SELECT status FROM billing_documents_state WHERE id = $1", document_id)
    return value


async def save_card(conn: Connection, gateway: Any, ls: LocalStripe, cid: int, number: str) -> asyncpg.Record:
    """The payer saves ``number`` through Stripe.js (straight to localstripe); lastmile keeps the token."""
    setup = await online.start_setup(conn, gateway, cid)
    assert setup.client_secret is not None
    await ls.confirm_setup(setup.client_secret, number)
    row, created = await online.finish_setup(conn, gateway, cid, setup.external_id, ROOT_ADMIN, None)
    assert created
    return row


# -- Stripe through localstripe -----------------------------------------------------------------

async def test_a_3d_secure_card_is_saved_and_pays_an_invoice_after_the_payer_authenticates(
        pool: asyncpg.Pool, localstripe: LocalStripe, keyring: Keyring, gateways: online.Gateways) -> None:
    cid, invoice = await invoiced(pool)
    async with pool.acquire() as conn:
        await use_stripe(conn, keyring, localstripe.url)
        stripe = await gateways.get(conn, "stripe")
        card = await save_card(conn, stripe, localstripe, cid, CARD_3DS)
        assert (card["brand"], card["last4"], card["exp_month"], card["exp_year"]) == ("visa", "3184", 12, 2030)
        assert card["token"].startswith("pm_") and CARD_3DS not in json.dumps(dict(card), default=str)
        attempt = await online.start(conn, stripe, customer_id=cid, purpose="invoice", key="portal-1",
                                     document_id=invoice, method_id=card["id"], today=TODAY)
        assert attempt.status == "requires_action" and attempt.client_secret and attempt.payment_id is None
        assert attempt.amount == D("31.00") and await doc_status(conn, invoice) == "overdue"
        again = await online.start(conn, stripe, customer_id=cid, purpose="invoice", key="portal-1",
                                   document_id=invoice, method_id=card["id"], today=TODAY)
        assert (again.intent_id, again.created, again.client_secret) == (attempt.intent_id, False,
                                                                         attempt.client_secret)
        await localstripe.authenticate(attempt.client_secret)            # Stripe.js: the 3-D Secure step
        done = await online.finish(conn, stripe, attempt.intent_id, today=TODAY)
        assert done.status == "succeeded" and done.receipt_number and done.payment_id
        assert await doc_status(conn, invoice) == "paid" and await balance(conn, cid) == D("0.00")
        payment = await row_of(conn, "SELECT * FROM payments WHERE id = $1", done.payment_id)
        assert (payment["source"], payment["gateway"], payment["gateway_ref"], payment["intent_id"],
                payment["document_id"]) == ("online", "stripe", attempt.external_id, attempt.intent_id, invoice)
        # Its webhook later finds it recorded: once.
        outcome = await online.handle_event(conn, stripe, parse_event({
            "id": "evt_late", "type": "payment_intent.succeeded", "data": {"object": {
                "id": attempt.external_id, "object": "payment_intent", "status": "succeeded", "amount": 3100,
                "amount_received": 3100, "currency": "eur", "metadata": {"lastmile_intent": str(attempt.intent_id)}}}}),
            today=TODAY)
        assert outcome.startswith("payment recorded before")
        assert await conn.fetchval("SELECT count(*) FROM payments") == 1


async def test_the_charge_whose_answer_was_lost_is_asked_again_under_its_key_and_made_once(
        pool: asyncpg.Pool, localstripe: LocalStripe, keyring: Keyring, gateways: online.Gateways) -> None:
    """W-17: the attempt (and its key) is committed before the gateway is asked; Stripe does the
    charge, the answer never comes (twice: the library's own retry too); the retry under the same
    key gets the first answer back. Same key, other amount: refused before any call."""
    cid, invoice = await invoiced(pool)
    async with pool.acquire() as conn:
        await use_stripe(conn, keyring, localstripe.url)
        stripe = await gateways.get(conn, "stripe")
        card = await save_card(conn, stripe, localstripe, cid, CARD_OK)
        before = localstripe.proxy.forwarded["POST /v1/payment_intents"]
        localstripe.proxy.lose_responses = 2
        with pytest.raises(GatewayError) as lost:
            await online.start(conn, stripe, customer_id=cid, purpose="invoice", key=f"autopay:{invoice}:1",
                               document_id=invoice, method_id=card["id"], off_session=True, today=TODAY)
        assert lost.value.retryable
        kept = await row_of(conn, "SELECT * FROM payment_intents WHERE idempotency_key = $1", f"autopay:{invoice}:1")
        assert kept["status"] == "created" and kept["external_id"] is None and "did not answer" in kept["error"]
        assert await conn.fetchval("SELECT count(*) FROM payments") == 0
        retried = await online.start(conn, stripe, customer_id=cid, purpose="invoice", key=f"autopay:{invoice}:1",
                                     document_id=invoice, method_id=card["id"], off_session=True, today=TODAY)
        assert retried.status == "succeeded" and not retried.created and retried.intent_id == kept["id"]
        assert localstripe.proxy.forwarded["POST /v1/payment_intents"] == before + 1   # one charge at Stripe
        assert await conn.fetchval("SELECT count(*) FROM payments") == 1
        with pytest.raises(online.KeyReused):
            await online.start(conn, stripe, customer_id=cid, purpose="top_up", key=f"autopay:{invoice}:1",
                               amount=D("5.00"), method_id=card["id"], today=TODAY)
        assert localstripe.proxy.forwarded["POST /v1/payment_intents"] == before + 1


async def test_a_double_clicked_pay_charges_once(pool: asyncpg.Pool, localstripe: LocalStripe, keyring: Keyring,
                                                 gateways: online.Gateways) -> None:
    cid, _ = await invoiced(pool)
    async with pool.acquire() as conn:
        await use_stripe(conn, keyring, localstripe.url)
        stripe = await gateways.get(conn, "stripe")
        card = await save_card(conn, stripe, localstripe, cid, CARD_OK)
    before = localstripe.proxy.forwarded["POST /v1/payment_intents"]

    async def click() -> online.Attempt:
        async with pool.acquire() as conn:
            return await online.start(conn, stripe, customer_id=cid, purpose="top_up", key="pay-button-1",
                                      amount=D("12.50"), method_id=card["id"], today=TODAY)

    results = await asyncio.gather(click(), click(), click())
    assert {r.intent_id for r in results} == {results[0].intent_id} and {r.status for r in results} == {"succeeded"}
    assert sorted(r.created for r in results) == [False, False, True]
    assert localstripe.proxy.forwarded["POST /v1/payment_intents"] == before + 1
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM payments") == 1
        assert await balance(conn, cid) == D("-31.00") + D("12.50")


async def test_autopay_charges_the_due_invoice_once_and_tries_a_declining_card_once_a_day(
        pool: asyncpg.Pool, localstripe: LocalStripe, keyring: Keyring, gateways: online.Gateways) -> None:
    good, good_invoice = await invoiced(pool)
    bad, bad_invoice = await invoiced(pool)
    async with pool.acquire() as conn:
        await use_stripe(conn, keyring, localstripe.url)
        stripe = await gateways.get(conn, "stripe")
        for cid, number in ((good, CARD_OK), (bad, CARD_DECLINED_LATER)):
            card = await save_card(conn, stripe, localstripe, cid, number)
            await online.set_autopay(conn, card, True, ROOT_ADMIN, None)
        first = await online.autopay(conn, gateways, TODAY)
        assert (first.charged, first.failed, first.waiting) == (1, 1, 0), first.errors
        assert await doc_status(conn, good_invoice) == "paid" and await doc_status(conn, bad_invoice) == "overdue"
        keys = [r["idempotency_key"] for r in await conn.fetch(
            "SELECT idempotency_key FROM payment_intents WHERE purpose = 'autopay' ORDER BY id")]
        assert keys == [f"autopay:{good_invoice}:1", f"autopay:{bad_invoice}:1"]
        failed = await row_of(conn, "SELECT * FROM payment_intents WHERE idempotency_key = $1",
                                     f"autopay:{bad_invoice}:1")
        assert failed["status"] == "failed" and "declined" in failed["error"].lower()
        same_day = await online.autopay(conn, gateways, TODAY)
        assert (same_day.charged, same_day.failed) == (0, 0)                # once a day
        for day in (1, 2, 3, 4):
            await a_day_passes(conn)
            later = await online.autopay(conn, gateways, TODAY + dt.timedelta(days=day))
            assert (later.charged, later.failed) == (0, 1 if day < online.MAX_AUTOPAY_ATTEMPTS else 0), day
        assert await conn.fetchval("SELECT count(*) FROM payment_intents WHERE document_id = $1",
                                   bad_invoice) == online.MAX_AUTOPAY_ATTEMPTS
        assert await conn.fetchval("SELECT count(*) FROM payments") == 1


async def a_day_passes(conn: Connection) -> None:
    """What a day does to the attempts: they were made a day earlier (the 20-hour pause is by the clock)."""
    await conn.execute("UPDATE payment_intents SET created_at = created_at - interval '1 day'")


async def test_a_refund_through_stripe_takes_the_payment_back_and_a_second_is_refused(
        pool: asyncpg.Pool, localstripe: LocalStripe, keyring: Keyring, gateways: online.Gateways) -> None:
    cid, invoice = await invoiced(pool)
    async with pool.acquire() as conn:
        await use_stripe(conn, keyring, localstripe.url)
        stripe = await gateways.get(conn, "stripe")
        card = await save_card(conn, stripe, localstripe, cid, CARD_OK)
        paid = await online.start(conn, stripe, customer_id=cid, purpose="invoice", key="r-1", document_id=invoice,
                                  method_id=card["id"], today=TODAY)
        assert paid.status == "succeeded" and paid.payment_id is not None
        ref = await online.refund(conn, stripe, paid.payment_id, "customer asked", ROOT_ADMIN, None, today=TODAY)
        assert ref.startswith("re_")
        reversal = await row_of(conn, "SELECT * FROM payment_reversals WHERE payment_id = $1", paid.payment_id)
        assert reversal["refund_ref"] == ref and "customer asked" in reversal["reason"]
        assert await doc_status(conn, invoice) == "overdue" and await balance(conn, cid) == D("-31.00")
        status, refunds = await localstripe.call("GET", f"/v1/refunds?payment_intent={paid.external_id}")
        assert status == 200 and [r["amount"] for r in refunds["data"]] == [3100]
        with pytest.raises(online.OnlineError, match="taken back already"):
            await online.refund(conn, stripe, paid.payment_id, "again", ROOT_ADMIN, None)
        with pytest.raises(online.OnlineError, match="card number"):
            await online.refund(conn, stripe, paid.payment_id, f"card {CARD_OK} charged twice", ROOT_ADMIN, None)
        # Stripe's charge.refunded for it finds it taken back.
        outcome = await online.handle_event(conn, stripe, parse_event({
            "id": "evt_refund_late", "type": "charge.refunded", "data": {"object": {
                "id": "ch_x", "object": "charge", "payment_intent": paid.external_id, "amount": 3100,
                "amount_refunded": 3100, "refunded": True, "currency": "eur",
                "refunds": {"data": [{"id": ref}]}}}}))
        assert outcome == "payment taken back before"


async def test_a_declined_card_and_a_card_saved_for_another_customer_are_refused(
        pool: asyncpg.Pool, localstripe: LocalStripe, keyring: Keyring, gateways: online.Gateways) -> None:
    ann, invoice = await invoiced(pool)
    bob, _ = await invoiced(pool)
    async with pool.acquire() as conn:
        await use_stripe(conn, keyring, localstripe.url)
        stripe = await gateways.get(conn, "stripe")
        card = await save_card(conn, stripe, localstripe, ann, CARD_DECLINED_LATER)
        declined = await online.start(conn, stripe, customer_id=ann, purpose="invoice", key="d-1",
                                      document_id=invoice, method_id=card["id"])
        assert declined.status == "failed" and declined.error
        with pytest.raises(online.OnlineError, match="not a saved card of this customer"):
            await online.start(conn, stripe, customer_id=bob, purpose="top_up", key="d-2", amount=D("1.00"),
                               method_id=card["id"])
        setup = await online.start_setup(conn, stripe, ann)
        assert setup.client_secret is not None
        await localstripe.confirm_setup(setup.client_secret, CARD_OK)
        await online.start_setup(conn, stripe, bob)
        with pytest.raises(GatewayError, match="not a setup of this customer"):
            await online.finish_setup(conn, stripe, bob, setup.external_id)
        with pytest.raises(online.OnlineError, match="left to pay"):
            await online.start(conn, stripe, customer_id=ann, purpose="invoice", key="d-3", document_id=invoice,
                               amount=D("40.00"))
        with pytest.raises(online.OnlineError, match="decimals"):
            await online.start(conn, stripe, customer_id=ann, purpose="top_up", key="d-4", amount=D("1.001"))
        assert await conn.fetchval("SELECT count(*) FROM payments") == 0


# -- webhooks: once, in any order (W-16) --------------------------------------------------------

def stripe_events(pi: str, intent_id: int, cents: int) -> dict[str, dict[str, Any]]:
    obj = {"id": pi, "object": "payment_intent", "amount": cents, "currency": "eur",
           "metadata": {"lastmile_intent": str(intent_id)}}
    return {
        "processing": {"id": f"evt_{pi}_p", "type": "payment_intent.processing",
                       "data": {"object": {**obj, "status": "processing"}}},
        "failed": {"id": f"evt_{pi}_f", "type": "payment_intent.payment_failed",
                   "data": {"object": {**obj, "status": "requires_payment_method",
                                       "last_payment_error": {"message": "Your card was declined."}}}},
        "succeeded": {"id": f"evt_{pi}_s", "type": "payment_intent.succeeded",
                      "data": {"object": {**obj, "status": "succeeded", "amount_received": cents}}},
        "refunded": {"id": f"evt_{pi}_r", "type": "charge.refunded", "data": {"object": {
            "id": f"ch_{pi}", "object": "charge", "payment_intent": pi, "amount": cents, "amount_refunded": cents,
            "refunded": True, "currency": "eur", "refunds": {"data": [{"id": f"re_{pi}"}]}}}},
    }


async def _deliver_in_order(url: str, names: list[str], duplicates: list[int]) -> tuple[Any, ...]:
    """A fresh customer and attempt; the events ``names`` delivered in that order (with the
    deliveries at ``duplicates`` sent twice); the end state."""
    n = next(COUNTER)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2, init=db.init_connection)
    try:
        async with pool.acquire() as conn:
            cid = await customer(conn, 9000 + n, start=APRIL)
            intent, _ = await store.add_intent(conn, {
                "customer_id": cid, "gateway": "stripe", "purpose": "top_up", "document_id": None,
                "payment_method_id": None, "amount": D("20.00"), "currency": "EUR",
                "idempotency_key": f"prop-{n}"})
            # Stripe answered the attempt with its id.
            await store.update_intent(conn, intent["id"], status="created", external_id=f"pi_prop{n}")
            events = stripe_events(f"pi_prop{n}", intent["id"], 2000)
            gateway = StripeGateway(SK, [WHSEC])
            sends = list(names)
            for i in duplicates:
                if sends:
                    sends.insert(i % (len(sends) + 1), sends[i % len(sends)])
            outcomes = [await online.handle_event(conn, gateway, parse_event(events[name]), today=TODAY)
                        for name in sends]
            assert outcomes.count("duplicate") == len(sends) - len(set(sends))
            row = await row_of(conn, "SELECT status, external_id FROM payment_intents WHERE id = $1", intent["id"])
            payments = await conn.fetchval("SELECT count(*) FROM payments WHERE customer_id = $1", cid)
            taken_back = await conn.fetchval("SELECT count(*) FROM payment_reversals r JOIN payments p "
                                             "ON p.id = r.payment_id WHERE p.customer_id = $1", cid)
            kept = await conn.fetchval("SELECT count(*) FROM gateway_events WHERE event_id LIKE $1",
                                       f"evt_pi_prop{n}_%")
            return row["status"], payments, taken_back, await balance(conn, cid), kept
    finally:
        await pool.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.sampled_from(["processing", "failed", "succeeded", "refunded"]), min_size=1, max_size=4,
                       unique=True).flatmap(st.permutations),
       duplicates=st.lists(st.integers(0, 7), max_size=3))
def test_webhooks_in_any_order_and_repeated_end_in_the_state_of_their_set(db_url: str, events: list[str],
                                                                            duplicates: list[int]) -> None:
    status, payments, taken_back, money, kept = asyncio.run(_deliver_in_order(db_url, events, duplicates))
    paid = "succeeded" in events or "refunded" in events
    expected = "succeeded" if paid else ("failed" if "failed" in events else "processing")
    assert status == expected
    assert payments == (1 if paid else 0)
    assert taken_back == (1 if "refunded" in events else 0)
    assert kept == len(events)                     # every event kept once, duplicates not
    assert money == (D("20.00") if paid and "refunded" not in events else D("0.00"))


async def test_every_order_of_the_same_events_ends_alike(pool: asyncpg.Pool, db_url: str) -> None:
    """Exhaustively for three events: all six orders give one state."""
    states = {await _deliver_in_order(db_url, list(order), []) for order in itertools.permutations(
        ["processing", "succeeded", "refunded"])}
    assert states == {("succeeded", 1, 1, D("0.00"), 3)}


async def test_a_stripe_event_must_be_signed_fresh_and_by_a_current_secret(pool: asyncpg.Pool) -> None:
    from stripe import WebhookSignature

    gateway = StripeGateway(SK, ["whsec_new", "whsec_old"])
    body = json.dumps({"id": "evt_sig", "type": "payment_intent.created", "data": {"object": {"id": "pi_x"}}})
    for secret in ("whsec_new", "whsec_old"):                      # both, during a rotation
        header = WebhookSignature.generate_signature_header(body, secret)
        event = await gateway.verify_event(body.encode(), {"Stripe-Signature": header})
        assert event.event_id == "evt_sig"
    good = WebhookSignature.generate_signature_header(body, "whsec_new")
    stale = WebhookSignature.generate_signature_header(body, "whsec_new", timestamp=int(dt.datetime.now(
        dt.UTC).timestamp()) - 301)
    wrong = WebhookSignature.generate_signature_header(body, "whsec_elsewhere")
    for payload, header in ((body.replace("pi_x", "pi_y"), good), (body, stale), (body, wrong), (body, ""),
                            (body, "t=1,v0=abc")):
        with pytest.raises(SignatureError):
            await gateway.verify_event(payload.encode(), {"Stripe-Signature": header})
    with pytest.raises(SignatureError):
        await StripeGateway(SK, []).verify_event(body.encode(), {"Stripe-Signature": good})


# -- PayPal through its double ------------------------------------------------------------------

async def test_paypal_a_payer_approves_lastmile_captures_and_the_webhooks_find_it_recorded(
        pool: asyncpg.Pool, paypal: FakePayPal, keyring: Keyring, gateways: online.Gateways) -> None:
    cid, invoice = await invoiced(pool)
    async with pool.acquire() as conn:
        await use_paypal(conn, keyring, paypal)
        gateway = await gateways.get(conn, "paypal")
        attempt = await online.start(conn, gateway, customer_id=cid, purpose="invoice", key="pp-1",
                                     document_id=invoice, return_url="https://portal.example/paid", today=TODAY)
        assert attempt.status == "requires_action" and attempt.approve_url is not None
        assert attempt.approve_url.startswith(paypal.url + "/checkoutnow?token=")
        back = paypal.approve(attempt.external_id or "")
        assert back.startswith("https://portal.example/paid?token=")
        done = await online.finish(conn, gateway, attempt.intent_id, today=TODAY)
        assert done.status == "succeeded" and done.payment_id is not None
        assert await doc_status(conn, invoice) == "paid"
        again = await online.finish(conn, gateway, attempt.intent_id, today=TODAY)
        assert again.status == "succeeded"
        assert len(paypal.captures) == 1
        # The deliveries PayPal made (approved, capture completed), verified through its API, find it done.
        await paypal.settle()
        outcomes = []
        for delivery in paypal.deliveries():
            event = await gateway.verify_event(delivery.body, delivery.headers)
            outcomes.append(await online.handle_event(conn, gateway, event, today=TODAY))
        assert outcomes == [f"attempt {attempt.intent_id}: succeeded",
                            f"payment recorded before: receipt {done.receipt_number}"]
        assert len(paypal.captures) == 1 and await conn.fetchval("SELECT count(*) FROM payments") == 1


async def test_paypal_an_approved_order_is_captured_by_its_webhook_when_the_payer_never_comes_back(
        pool: asyncpg.Pool, paypal: FakePayPal, keyring: Keyring, gateways: online.Gateways) -> None:
    cid, invoice = await invoiced(pool)
    async with pool.acquire() as conn:
        await use_paypal(conn, keyring, paypal)
        gateway = await gateways.get(conn, "paypal")
        attempt = await online.start(conn, gateway, customer_id=cid, purpose="invoice", key="pp-2",
                                     document_id=invoice, return_url="https://portal.example/paid")
        paypal.approve(attempt.external_id or "")
        approved = paypal.deliveries("CHECKOUT.ORDER.APPROVED")[-1]
        event = await gateway.verify_event(approved.body, approved.headers)
        outcome = await online.handle_event(conn, gateway, event, today=TODAY)
        assert outcome.startswith("payment recorded: receipt") and await doc_status(conn, invoice) == "paid"
        assert await online.handle_event(conn, gateway, event) == "duplicate"
        assert len(paypal.captures) == 1


async def test_paypal_vault_saves_the_wallet_charges_it_and_refunds_the_capture(
        pool: asyncpg.Pool, paypal: FakePayPal, keyring: Keyring, gateways: online.Gateways) -> None:
    cid, invoice = await invoiced(pool)
    async with pool.acquire() as conn:
        await use_paypal(conn, keyring, paypal)
        gateway = await gateways.get(conn, "paypal")
        setup = await online.start_setup(conn, gateway, cid, return_url="https://portal.example/saved")
        assert setup.approve_url and setup.customer_ref
        with pytest.raises(online.OnlineError, match="not approved"):
            await online.finish_setup(conn, gateway, cid, setup.external_id)
        paypal.approve_setup(setup.external_id)
        card, created = await online.finish_setup(conn, gateway, cid, setup.external_id)
        assert created and card["token"].startswith("paypal/") and card["brand"] == "PayPal"
        assert await store.gateway_customer(conn, cid, "paypal") == setup.customer_ref
        # Its VAULT.PAYMENT-TOKEN.CREATED event finds the card kept.
        await paypal.settle()
        vaulted = paypal.deliveries("VAULT.PAYMENT-TOKEN.CREATED")[-1]
        outcome = await online.handle_event(conn, gateway, await gateway.verify_event(vaulted.body, vaulted.headers))
        assert outcome == "card saved before"
        paid = await online.start(conn, gateway, customer_id=cid, purpose="invoice", key="pp-3", document_id=invoice,
                                  method_id=card["id"], off_session=True, today=TODAY)
        assert paid.status == "succeeded" and paid.payment_id is not None
        ref = await online.refund(conn, gateway, paid.payment_id, "duplicate", ROOT_ADMIN, None, today=TODAY)
        assert paypal.refunds[ref]["_capture"] in paypal.captures
        refunded = paypal.deliveries("PAYMENT.CAPTURE.REFUNDED")[-1]
        event = await gateway.verify_event(refunded.body, refunded.headers)
        assert await online.handle_event(conn, gateway, event) == "payment taken back before"
        paypal.declining.add(card["token"].split("/")[1])
        declined = await online.start(conn, gateway, customer_id=cid, purpose="top_up", key="pp-4", amount=D("3.00"),
                                      method_id=card["id"], off_session=True)
        assert declined.status == "failed" and "declined" in declined.error


async def test_paypal_lost_answers_and_forged_events(pool: asyncpg.Pool, paypal: FakePayPal, keyring: Keyring,
                                                     gateways: online.Gateways) -> None:
    cid, _ = await invoiced(pool)
    async with pool.acquire() as conn:
        await use_paypal(conn, keyring, paypal)
        gateway = await gateways.get(conn, "paypal")
        paypal.lose_responses = 1
        with pytest.raises(GatewayError) as lost:
            await online.start(conn, gateway, customer_id=cid, purpose="top_up", key="pp-lost", amount=D("9.00"),
                               return_url="https://portal.example/x")
        assert lost.value.retryable and len(paypal.orders) == 1
        again = await online.start(conn, gateway, customer_id=cid, purpose="top_up", key="pp-lost",
                                   amount=D("9.00"), return_url="https://portal.example/x")
        assert again.status == "requires_action" and len(paypal.orders) == 1   # PayPal-Request-Id: the same order
        paypal.expire_tokens()                                                 # a new token is fetched, once
        assert (await gateway.payment(again.external_id or "")).status == "requires_action"
        forged = paypal.send({"id": "WH-FORGED", "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource": {
            "id": "CAP1", "status": "COMPLETED", "amount": {"currency_code": "EUR", "value": "9.00"}}},
            sign_with="WHOTHER")
        with pytest.raises(SignatureError):
            await gateway.verify_event(forged.body, forged.headers)
        good = paypal.send({"id": "WH-GOOD", "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource": {
            "id": "CAP2", "status": "COMPLETED", "amount": {"currency_code": "EUR", "value": "9.00"}}})
        with pytest.raises(SignatureError):
            await gateway.verify_event(good.body.replace(b"9.00", b"90.00"), good.headers)
        with pytest.raises(SignatureError):
            await gateway.verify_event(good.body, {k: v for k, v in good.headers.items()
                                                   if k != "PAYPAL-TRANSMISSION-SIG"})
        event = await gateway.verify_event(good.body, good.headers)
        assert await online.handle_event(conn, gateway, event) == "ignored: no payment attempt of lastmile's"
        wrong = PayPalGateway(paypal.client_id, "not-the-secret", paypal.webhook_id, api_base=paypal.url)
        with pytest.raises(GatewayError, match="refused the client"):
            await wrong.check()
        await wrong.close()


# -- cards expiring; no card number anywhere (W-15) ---------------------------------------------

async def test_cards_expiring_next_month_are_listed_for_their_owners(pool: asyncpg.Pool) -> None:
    cid, _ = await invoiced(pool)
    async with pool.acquire() as conn:
        for token, month, year in (("pm_a", 5, 2026), ("pm_b", 6, 2026), ("pm_c", 5, 2027)):
            await store.add_method(conn, cid, "stripe", token, "visa", "4242", month, year)
        removed, _ = await store.add_method(conn, cid, "stripe", "pm_d", "visa", "1111", 5, 2026)
        await store.remove_method(conn, removed["id"])
        rows = await online.expiring_next_month(conn, dt.date(2026, 4, 30))
        assert [r["token"] for r in rows] == ["pm_a"] and rows[0]["customer_id"] == cid
        december = await online.expiring_next_month(conn, dt.date(2026, 12, 3))
        assert december == []
        assert online.next_month(dt.date(2026, 12, 31)) == (2027, 1)


LUHN_CANDIDATE = re.compile(r"(?<!\d)(?:\d[ -]?){15}\d(?!\d)")


def luhn_pans(text: str) -> list[str]:
    """The 16-digit numbers in ``text`` (spaces or dashes between digits allowed) that pass Luhn's check."""
    found = []
    for match in LUHN_CANDIDATE.finditer(text):
        digits = [int(c) for c in match.group() if c.isdigit()]
        total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
        if total % 10 == 0:
            found.append(match.group())
    return found


def test_the_luhn_scan_finds_card_numbers_and_only_them() -> None:
    assert luhn_pans(f"a {CARD_OK} b 4000-0027-6000-3184 c") == [CARD_OK, "4000-0027-6000-3184"]
    assert luhn_pans("4242424242424241 12345678901234567 202604000001") == []


async def _dump(conn: Connection) -> str:
    """Every row of every table, as text (what a pg_dump of the data holds)."""
    tables = await conn.fetch("SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN "
                              "('pg_catalog', 'information_schema')")
    parts: list[str] = []
    for t in tables:
        rows = await conn.fetch(f'SELECT t::text AS row FROM "{t["schemaname"]}"."{t["tablename"]}" t')
        parts.extend(r["row"] for r in rows)
    return "\n".join(parts)


@pytest.fixture
def captured_logs() -> Iterator[list[str]]:
    """Every log record of the test, at every level, every logger (lastmile's, stripe's, aiohttp's)."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record) + " " + json.dumps(record.__dict__, default=str))

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


async def test_no_card_number_in_the_schema_the_database_or_the_logs(
        pool: asyncpg.Pool, localstripe: LocalStripe, keyring: Keyring, gateways: online.Gateways,
        paypal: FakePayPal, captured_logs: list[str], capfd: pytest.CaptureFixture[str]) -> None:
    """W-15: after cards (3-D Secure and plain) are saved and charged, refunded, and their events
    handled, no column can hold a card number, and no row, log line or emulator log has one."""
    cid, invoice = await invoiced(pool)
    async with pool.acquire() as conn:
        await use_stripe(conn, keyring, localstripe.url)
        await use_paypal(conn, keyring, paypal)
        stripe = await gateways.get(conn, "stripe")
        secure = await save_card(conn, stripe, localstripe, cid, CARD_3DS)
        plain = await save_card(conn, stripe, localstripe, cid, CARD_OK)
        first = await online.start(conn, stripe, customer_id=cid, purpose="invoice", key="w15-1", document_id=invoice,
                                   method_id=secure["id"], today=TODAY)
        assert first.client_secret is not None
        await localstripe.authenticate(first.client_secret)
        await online.finish(conn, stripe, first.intent_id, today=TODAY)
        second = await online.start(conn, stripe, customer_id=cid, purpose="top_up", key="w15-2", amount=D("5.00"),
                                    method_id=plain["id"], today=TODAY)
        assert second.payment_id is not None
        await online.refund(conn, stripe, second.payment_id, "test", ROOT_ADMIN, None)
        # PayPal's card fields send the number to PayPal (never to lastmile); lastmile vaults what they made.
        pp = await gateways.get(conn, "paypal")
        setup = await online.start_setup(conn, pp, cid)
        assert setup.customer_ref is not None
        setup_id = await card_fields(paypal, CARD_OK, "2030-12", setup.customer_ref)
        card, _ = await online.finish_setup(conn, pp, cid, setup_id)
        assert (card["last4"], card["exp_month"], card["exp_year"], card["brand"]) == ("4242", 12, 2030, "Visa")
        columns = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public'")
        dump = await _dump(conn)
    await asyncio.sleep(1.5)                                    # localstripe's webhook sends, logged by it
    suspicious = [f"{c['table_name']}.{c['column_name']}" for c in columns
                  if re.search(r"(^|_)(pan|card_?number|cc_?number|cvc|cvv|card_no)($|_)", c["column_name"])]
    assert suspicious == []
    methods_columns = sorted(c["column_name"] for c in columns if c["table_name"] == "payment_methods")
    assert methods_columns == sorted(["id", "customer_id", "gateway", "token", "brand", "last4", "exp_month",
                                      "exp_year", "autopay", "created_at", "removed_at"])
    schema = (ROOT / "schema.sql").read_text()
    out, err = capfd.readouterr()
    emulator_log = localstripe.log.read_text()
    assert "POST /v1/setup_intents" in emulator_log             # the emulator's log was read, not an empty file
    assert any("/v1/payment_intents" in line for line in captured_logs)  # the stripe library's log lines were caught
    for name, text in (("schema.sql", schema), ("the database", dump), ("the logs", "\n".join(captured_logs)),
                       ("stdout", out), ("stderr", err), ("localstripe's log", emulator_log)):
        assert luhn_pans(text) == [], name
    assert CARD_3DS[-4:] in dump and "3184" in dump               # what is kept: the last four


__all__ = ["Event", "invoiced", "localstripe", "paypal", "use_paypal", "use_stripe"]
