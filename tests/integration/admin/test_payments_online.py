"""Online payments over HTTP: the admin app on 127.0.0.1, localstripe sending its signed webhooks
to ``/hooks/stripe`` and the PayPal double to ``/hooks/paypal``; the API the portal pays and saves
cards with; the gateways' settings (keys sealed, never given back); the pages; a partner's
administrator kept to its partner's customers."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from stripe import WebhookSignature

from admin.payments import online, online_store
from daemons.secrets import is_sealed
from tests.db.test_payments_online import (
    CARD_3DS,
    WHSEC,
    doc_status,
    invoiced,
    localstripe,
    paypal,
    row_of,
    use_paypal,
    use_stripe,
)
from tests.fakes.localstripe import LocalStripe
from tests.fakes.paypal import FakePayPal
from tests.integration.admin.conftest import Admin, api_key, call, logged_in, make_admin

__all__ = ["localstripe", "paypal"]  # fixtures


async def wait_for(pool: asyncpg.Pool, sql: str, *args: Any, timeout: float = 15.0) -> Any:
    """The first non-null value of ``sql`` within ``timeout`` seconds (a webhook arrives about a second late)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await pool.fetchval(sql, *args)
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


async def post_hook(admin: Admin, name: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(f"{admin.url}/hooks/{name}", data=body, headers=headers) as r:
        return r.status, await r.json(content_type=None)


@pytest.fixture
async def stripe_on(admin: Admin, localstripe: LocalStripe) -> AsyncIterator[LocalStripe]:
    """Stripe enabled on the admin, pointed at localstripe, whose webhooks go to the admin's /hooks/stripe."""
    async with admin.pool.acquire() as conn:
        await use_stripe(conn, admin.keyring, localstripe.url)
    await localstripe.webhooks_to(f"{admin.url}/hooks/stripe", WHSEC)
    yield localstripe


async def test_a_card_saved_and_an_invoice_paid_through_the_api_are_recorded_by_stripes_webhook(
        admin: Admin, stripe_on: LocalStripe) -> None:
    cid, invoice = await invoiced(admin.pool)
    async with admin.pool.acquire() as conn:
        key = await api_key(conn, "finance")
    status, setup = await call(admin, key, "POST", f"/customers/{cid}/payment-methods/setups", {"gateway": "stripe"})
    assert status == 201 and setup["client_secret"] and setup["publishable_key"] == "pk_test_lastmile", setup
    await stripe_on.confirm_setup(setup["client_secret"], CARD_3DS)          # the payer, with Stripe.js
    status, card = await call(admin, key, "POST", f"/customers/{cid}/payment-methods",
                              {"gateway": "stripe", "setup_ref": setup["setup_ref"]})
    assert status == 201 and (card["brand"], card["last4"]) == ("visa", "3184") and "token" not in card, card
    status, again = await call(admin, key, "POST", f"/customers/{cid}/payment-methods",
                               {"gateway": "stripe", "setup_ref": setup["setup_ref"]})
    assert status == 200 and again["id"] == card["id"]
    body = {"gateway": "stripe", "document_id": invoice, "method_id": card["id"]}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "pay-42"}) as s:
        async with s.post(f"{admin.url}/api/v1/customers/{cid}/online-payments", json=body) as r:
            first = await r.json()
            assert r.status == 201, first
        async with s.post(f"{admin.url}/api/v1/customers/{cid}/online-payments", json=body) as r:
            repeat = await r.json()
            assert r.status in (200, 201) and repeat["id"] == first["id"], repeat
        async with s.post(f"{admin.url}/api/v1/customers/{cid}/online-payments", json={**body, "amount": "1.00"}) as r:
            assert r.status in (409, 422), await r.text()                    # the same key for another payment
    assert first["status"] == "requires_action" and first["client_secret"] and first["amount"] == "31.0000"
    async with admin.pool.acquire() as conn:
        assert await doc_status(conn, invoice) == "overdue"                   # not paid before 3-D Secure
    await stripe_on.authenticate(first["client_secret"])                     # 3-D Secure, in the payer's browser
    receipt = await wait_for(admin.pool, "SELECT outcome FROM gateway_events WHERE type = 'payment_intent.succeeded' "
                                         "AND outcome LIKE 'payment recorded%'")
    assert receipt, "localstripe's payment_intent.succeeded did not record the payment"
    async with admin.pool.acquire() as conn:
        assert await doc_status(conn, invoice) == "paid"
        row = await row_of(conn, "SELECT * FROM payments")
        pi = await conn.fetchval("SELECT external_id FROM payment_intents WHERE id = $1", first["id"])
        assert (row["source"], row["gateway"], row["gateway_ref"], row["intent_id"]) == ("online", "stripe", pi,
                                                                                         first["id"])
        others = await conn.fetch("SELECT type, outcome FROM gateway_events WHERE type = 'customer.created'")
        assert others and {o["outcome"] for o in others} == {"nothing to do"}  # kept raw, nothing to do
    status, done = await call(admin, key, "POST", f"/online-payments/{first['id']}/finish")
    assert status == 200 and done["status"] == "succeeded"
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM payments") == 1


async def test_a_forged_stale_or_modified_stripe_webhook_is_400_and_writes_nothing(
        admin: Admin, stripe_on: LocalStripe) -> None:
    async with admin.pool.acquire() as conn:
        await use_stripe(conn, admin.keyring, stripe_on.url, "whsec_current", WHSEC)   # a rotation: two secrets
    body = json.dumps({"id": "evt_http_1", "object": "event", "type": "payment_intent.created",
                       "data": {"object": {"id": "pi_none", "object": "payment_intent", "status":
                                           "requires_payment_method"}}})
    now = int(time.time())
    cases = {
        "modified": (body.replace("pi_none", "pi_other"), WebhookSignature.generate_signature_header(body, WHSEC)),
        "wrong secret": (body, WebhookSignature.generate_signature_header(body, "whsec_someone_else")),
        "stale": (body, WebhookSignature.generate_signature_header(body, WHSEC, timestamp=now - 301)),
        "unsigned": (body, ""),
        "not json": ("{", WebhookSignature.generate_signature_header("{", WHSEC)),
    }
    for name, (payload, header) in cases.items():
        status, answer = await post_hook(admin, "stripe", payload.encode(), {"Stripe-Signature": header})
        assert status == 400 and "signature" in answer["error"], (name, status, answer)
    assert await admin.pool.fetchval("SELECT count(*) FROM gateway_events WHERE event_id = 'evt_http_1'") == 0
    for secret in ("whsec_current", WHSEC):                          # the new and the previous secret
        status, answer = await post_hook(admin, "stripe", body.encode(), {
            "Stripe-Signature": WebhookSignature.generate_signature_header(body, secret),
            "Content-Type": "application/json"})
        assert status == 200, answer
    assert answer["outcome"] == "duplicate"
    assert await admin.pool.fetchval("SELECT count(*) FROM gateway_events WHERE event_id = 'evt_http_1'") == 1
    async with admin.pool.acquire() as conn:
        await conn.execute("UPDATE payment_gateways SET enabled = false WHERE name = 'stripe'")
    status, _ = await post_hook(admin, "stripe", body.encode(), {
        "Stripe-Signature": WebhookSignature.generate_signature_header(body, WHSEC)})
    assert status == 404


async def test_paypal_webhooks_over_http_capture_the_approved_order_once(admin: Admin, paypal: FakePayPal) -> None:
    cid, invoice = await invoiced(admin.pool)
    async with admin.pool.acquire() as conn:
        await use_paypal(conn, admin.keyring, paypal)
        key = await api_key(conn, "finance")
    paypal.listen(f"{admin.url}/hooks/paypal")
    status, attempt = await call(admin, key, "POST", f"/customers/{cid}/online-payments", {
        "gateway": "paypal", "document_id": invoice, "return_url": "https://portal.example/back"})
    assert status == 201 and attempt["approve_url"] and attempt["status"] == "requires_action", attempt
    async with aiohttp.ClientSession() as s, s.get(attempt["approve_url"], allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"].startswith("https://portal.example/back?token=")
    await paypal.settle()
    async with admin.pool.acquire() as conn:
        assert await doc_status(conn, invoice) == "paid"
        outcomes = [r["outcome"] for r in await conn.fetch("SELECT outcome FROM gateway_events ORDER BY received_at")]
    assert outcomes[0].startswith("payment recorded: receipt")
    assert [d.status for d in paypal.deliveries()] == [200, 200]
    for delivery in paypal.deliveries():                                   # PayPal's retries: nothing more
        await paypal.redeliver(delivery)
        assert delivery.status == 200
    status, done = await call(admin, key, "POST", f"/online-payments/{attempt['id']}/finish")
    assert status == 200 and done["status"] == "succeeded"
    tampered = paypal.deliveries()[0]
    status, answer = await post_hook(admin, "paypal", tampered.body.replace(b"APPROVED", b"VOIDED"), tampered.headers)
    assert status == 400, answer
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM payments") == 1 and len(paypal.captures) == 1
        assert await conn.fetchval("SELECT count(*) FROM gateway_events") == 2


async def test_gateway_keys_are_sealed_never_given_back_and_only_a_global_administrator_changes_them(
        admin: Admin, localstripe: LocalStripe) -> None:
    async with admin.pool.acquire() as conn:
        key = await api_key(conn, "finance")
        partner = await conn.fetchval("INSERT INTO partners (name) VALUES ('Other ISP') RETURNING id")
        partner_key = await api_key(conn, "finance", partner_id=partner)
    secret = "sk_test_51Hsecretvalue0000abcd"
    status, body = await call(admin, key, "PATCH", "/payment-gateways/stripe", {
        "enabled": True, "secret_key": secret, "webhook_secret": "whsec_first", "publishable_key": "pk_test_x",
        "api_base": localstripe.url})
    assert status == 200, body
    text = json.dumps(body)
    assert secret not in text and "whsec_first" not in text
    assert body["secret_key_hint"] == "sk_test_…abcd" and body["webhook_secret_set"] and body["mode"] == "test"
    assert body["webhook_url"] == f"{admin.url}/hooks/stripe" and not body["previous_webhook_secret_set"]
    status, body = await call(admin, key, "PATCH", "/payment-gateways/stripe", {"webhook_secret": "whsec_second"})
    assert status == 200 and body["previous_webhook_secret_set"]            # the rotation keeps the first
    row = await row_of(admin.pool, "SELECT * FROM payment_gateways WHERE name = 'stripe'")
    assert is_sealed(row["secret_key"]) and is_sealed(row["webhook_secret"])
    _, hooks = online.secrets_of(row, admin.keyring)
    assert hooks == ["whsec_second", "whsec_first"]
    status, body = await call(admin, key, "PATCH", "/payment-gateways/stripe", {"forget_previous_webhook_secret": True})
    assert status == 200 and not body["previous_webhook_secret_set"]
    status, body = await call(admin, key, "GET", "/payment-gateways")
    assert status == 200 and secret not in json.dumps(body) and {g["name"] for g in body} == {"stripe", "paypal"}
    status, checked = await call(admin, key, "POST", "/payment-gateways/stripe/test")
    assert status == 200 and checked == {"ok": True, "message": "Stripe answered (test mode)"}
    status, bad = await call(admin, key, "PATCH", "/payment-gateways/stripe", {"secret_key": "pk_live_oops"})
    assert status == 422 and "secret_key" in bad["errors"]
    status, _ = await call(admin, partner_key, "PATCH", "/payment-gateways/stripe", {"enabled": False})
    assert status == 403
    status, _ = await call(admin, partner_key, "POST", "/payment-gateways/stripe/test")
    assert status == 403
    log = await admin.pool.fetch("SELECT summary, before, after FROM operations_log "
                                 "WHERE object_type = 'payment_gateway' ORDER BY id")
    assert [r["summary"] for r in log] == [
        "Stripe: changed enabled, publishable_key, api_base, secret key, webhook secret",
        "Stripe: changed webhook secret", "Stripe: changed webhook secret"]
    assert secret not in json.dumps([dict(r) for r in log], default=str)


async def test_another_partners_customer_has_no_cards_payments_or_refunds_here(
        admin: Admin, localstripe: LocalStripe) -> None:
    async with admin.pool.acquire() as conn:
        mine = await conn.fetchval("INSERT INTO partners (name) VALUES ('Mine') RETURNING id")
        theirs = await conn.fetchval("INSERT INTO partners (name) VALUES ('Theirs') RETURNING id")
    own, _ = await invoiced(admin.pool, partner=mine)
    other, other_invoice = await invoiced(admin.pool, partner=theirs)
    async with admin.pool.acquire() as conn:
        await use_stripe(conn, admin.keyring, localstripe.url)
        key = await api_key(conn, "finance", partner_id=mine)
        year, month = online.next_month(dt.datetime.now(dt.UTC).date())
        card, _ = await online_store.add_method(conn, other, "stripe", "pm_card_visa", "visa", "4242", month,
                                                       year)
        mine_card, _ = await online_store.add_method(conn, own, "stripe", "pm_mine", "visa", "1111", month, year)
        stripe = await online.Gateways(admin.keyring).get(conn, "stripe")
        paid = await online.start(conn, stripe, customer_id=other, purpose="invoice", key="theirs-1",
                                  document_id=other_invoice, method_id=card["id"])
        await stripe.close()
        assert paid.payment_id is not None
    for method, path, body in (
            ("GET", f"/customers/{other}/payment-methods", None),
            ("POST", f"/customers/{other}/payment-methods/setups", {"gateway": "stripe"}),
            ("POST", f"/customers/{other}/payment-methods", {"gateway": "stripe", "setup_ref": "seti_x"}),
            ("PATCH", f"/payment-methods/{card['id']}", {"autopay": True}),
            ("DELETE", f"/payment-methods/{card['id']}", None),
            ("POST", f"/customers/{other}/online-payments", {"gateway": "stripe", "document_id": other_invoice}),
            ("POST", f"/online-payments/{paid.intent_id}/finish", None),
            ("POST", f"/payments/{paid.payment_id}/gateway-refund", {"reason": "not mine"})):
        status, answer = await call(admin, key, method, path, body)
        assert status == 404, (method, path, status, answer)
    status, expiring = await call(admin, key, "GET", "/payment-methods/expiring")
    assert status == 200 and [e["id"] for e in expiring] == [mine_card["id"]]   # both expire next month
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM payment_reversals") == 0
        assert await conn.fetchval("SELECT bool_or(autopay) FROM payment_methods") is False
        await make_admin(conn, "partner-admin", "finance", partner_id=mine)
    c = admin.client()
    async with c:
        await c.login("partner-admin")
        status, _ = await c.get(f"/admin/customers/{other}/cards")
        assert status == 404
        for action in ("autopay", "remove"):
            status, _, _ = await c.post(f"/admin/finance/cards/{card['id']}/{action}", {"on": "1"})
            assert status == 404, action
        status, _, _ = await c.post(f"/admin/finance/online-payments/{paid.payment_id}/refund", {"reason": "x"})
        assert status == 404
        status, page = await c.get(f"/admin/customers/{own}/cards")
        assert status == 200 and "•••• 1111" in page and "4242" not in page
        status, page = await c.get("/admin/finance/gateways")
        assert status == 200 and "Latest events" not in page and 'action="/admin/finance/gateways/stripe"' not in page


async def test_the_pages_save_keys_sealed_show_cards_and_refund(admin: Admin, localstripe: LocalStripe) -> None:
    cid, invoice = await invoiced(admin.pool)
    async with admin.pool.acquire() as conn:
        await use_stripe(conn, admin.keyring, localstripe.url)
        card, _ = await online_store.add_method(conn, cid, "stripe", "pm_card_visa", "visa", "4242", 12, 2030)
    c = await logged_in(admin)
    async with c:
        status, page = await c.get("/admin/finance/gateways")
        assert status == 200 and f"{admin.url}/hooks/stripe" in page and "sk_test_…mile" in page
        status, page, url = await c.post("/admin/finance/gateways/stripe", {
            "enabled": "1", "publishable_key": "pk_test_page", "secret_key": "", "webhook_secret": "whsec_page",
            "api_base": localstripe.url})
        assert status == 200 and url.endswith("done=saved&gateway=stripe"), page
        assert "whsec_page" not in page
        _, hooks = online.secrets_of(await row_of(admin.pool, "SELECT * FROM payment_gateways WHERE name = 'stripe'"),
                                     admin.keyring)
        assert hooks == ["whsec_page", WHSEC]
        status, page, _ = await c.post("/admin/finance/gateways/stripe", {"secret_key": "nonsense"})
        assert status == 422 and "starts with sk_" in page and "nonsense" not in page
        status, page, url = await c.post("/admin/finance/gateways/stripe/test")
        assert status == 200 and "Stripe answered (test mode)" in page
        number = await admin.pool.fetchval("SELECT number FROM customers WHERE id = $1", cid)
        status, page = await c.get(f"/admin/finance/gateways/cards?customer={number}")   # the search box
        assert status == 200 and "Saved cards" in page
        status, page = await c.get("/admin/finance/gateways/cards?customer=nobody")
        assert status == 200 and "No such customer" in page
        status, page = await c.get(f"/admin/customers/{cid}/cards")
        assert status == 200 and "visa •••• 4242, 12/2030" in page
        status, page, url = await c.post(f"/admin/finance/cards/{card['id']}/autopay", {"on": "1"})
        assert status == 200 and "Autopay changed" in page and "On: turn off" in page
        async with admin.pool.acquire() as conn:
            stripe = await online.Gateways(admin.keyring).get(conn, "stripe")
            paid = await online.start(conn, stripe, customer_id=cid, purpose="invoice", key="page-1",
                                      document_id=invoice, method_id=card["id"])
            await stripe.close()
        status, page = await c.get(f"/admin/customers/{cid}/cards")
        assert "Refund" in page and "succeeded" in page
        status, page, url = await c.post(f"/admin/finance/online-payments/{paid.payment_id}/refund",
                                         {"reason": "asked by phone"})
        assert status == 200 and "Refunded" in page and "refunded" in page
        status, page, url = await c.post(f"/admin/finance/cards/{card['id']}/remove")
        assert status == 200 and "Card removed" in page
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT removed_at IS NOT NULL AND NOT autopay FROM payment_methods") is True
        assert await conn.fetchval("SELECT refund_ref FROM payment_reversals") is not None
        actions = [r["action"] for r in await conn.fetch("SELECT action FROM operations_log WHERE customer_id = $1 "
                                                         "ORDER BY id", cid)]
        assert {"update", "payment", "refund", "delete"} <= set(actions)
