"""Paying online from the portal (admin/portal/pay.py) against localstripe (tests/fakes/localstripe.py),
with what Stripe.js does in the payer's browser done by the test (``ls.confirm_setup``,
``ls.authenticate``): an invoice paid with a saved card, with a new card (kept or not), with a
3-D Secure card, a declined card, top-ups refused, the same page's key twice (one charge),
CSRF, staff looking as the customer, another customer's ids, no gateway."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from typing import Any

import pytest

from admin.portal import pay as portal_pay
from tests.db.test_payments_online import CARD_3DS, CARD_DECLINED_LATER, CARD_OK, localstripe, use_stripe
from tests.fakes.localstripe import LocalStripe
from tests.integration.admin.conftest import Admin, Client
from tests.integration.portal.conftest import admin, portal_customer, portal_login  # noqa: F401
from tests.integration.portal.test_dashboard import invoice
from tests.integration.portal.test_support import impersonated

__all__ = ["localstripe"]  # a fixture
KEY = re.compile(r'name="key" value="([^"]+)"')
RESULT = re.compile(r"/portal/finance/online/([0-9]+)")


@pytest.fixture
async def stripe_on(admin: Admin, localstripe: LocalStripe) -> LocalStripe:  # noqa: F811
    async with admin.pool.acquire() as conn:
        await use_stripe(conn, admin.keyring, localstripe.url)
    return localstripe


async def anna_with_invoice(site: Admin, amount: str = "31.00", login: str = "anna") -> tuple[int, int]:
    cid = await portal_customer(site, login=login)
    async with site.pool.acquire() as conn:
        doc = await invoice(conn, cid, amount)
    return cid, doc.id


async def page_key(c: Client, path: str) -> str:
    status, body = await c.get(path)
    assert status == 200, body[:500]
    found = KEY.search(body)
    assert found, body[:2000]
    return found.group(1)


async def new_setup(c: Client, ls: LocalStripe, number: str) -> str:
    """What portal-pay.js does for a new card: a SetupIntent from lastmile, the card into Stripe."""
    async with c.session.post(c.url + "/portal/finance/cards/setup", headers={"X-CSRF-Token": c.csrf}) as r:
        assert r.status == 200, await r.text()
        setup = await r.json()
    await ls.confirm_setup(setup["client_secret"], number)
    return str(setup["setup_ref"])


async def save_card(c: Client, ls: LocalStripe, number: str = CARD_OK, *, autopay: bool = False) -> None:
    await c.get("/portal/finance/cards")
    ref = await new_setup(c, ls, number)
    status, body, url = await c.post("/portal/finance/cards", {"setup_ref": ref, "autopay": "1" if autopay else ""})
    assert status == 200 and url.endswith("done=saved"), (status, body[:800])


async def card_id(site: Admin, customer_id: int) -> int:
    async with site.pool.acquire() as conn:
        return int(await conn.fetchval("SELECT max(id) FROM payment_methods WHERE customer_id = $1", customer_id))


async def pay(c: Client, document_id: int, form: dict[str, Any], *, key: str | None = None) -> tuple[int, str, str]:
    """The pay form of the document's page (its key, the open amount it shows) with ``form``."""
    path = f"/portal/finance/documents/{document_id}/pay"
    key = key or await page_key(c, path)
    return await c.post(path, {"key": key, "amount": "31.00", **form})


async def facts(site: Admin, customer_id: int) -> dict[str, Any]:
    async with site.pool.acquire() as conn:
        return {
            "payments": await conn.fetchval("SELECT count(*) FROM payments WHERE customer_id = $1", customer_id),
            "intents": await conn.fetchval("SELECT count(*) FROM payment_intents WHERE customer_id = $1", customer_id),
            "status": await conn.fetchval("SELECT s.status FROM billing_documents_state s JOIN documents d "
                                          "ON d.id = s.id WHERE d.customer_id = $1 AND d.kind = 'invoice'",
                                          customer_id),
            "balance": await conn.fetchval(
                "SELECT coalesce(sum(balance), 0) FROM customer_balances WHERE customer_id = $1", customer_id)}


async def test_an_invoice_is_paid_with_a_saved_card(admin: Admin, stripe_on: LocalStripe) -> None:  # noqa: F811
    anna, doc = await anna_with_invoice(admin)
    async with await portal_login(admin, "anna") as c:
        status, body = await c.get("/portal/finance")
        assert f"/portal/finance/documents/{doc}/pay" in body and "/portal/finance/top-up" in body
        await save_card(c, stripe_on)
        status, body = await c.get("/portal/finance/cards")
        assert "Visa •••• 4242" in body and "expires 12/2030" in body and "Autopay off" in body
        method = await card_id(admin, anna)
        status, body = await c.get(f"/portal/finance/documents/{doc}/pay")
        assert "31.00 EUR" in body and f'value="{method}" checked' in body
        status, body, url = await pay(c, doc, {"card": str(method)})
        assert status == 200 and RESULT.search(url), (status, url)
        assert "Paid" in body and "Receipt" in body and "31.00 EUR" in body, body[:3000]
    got = await facts(admin, anna)
    assert (got["payments"], got["status"]) == (1, "paid")
    async with admin.pool.acquire() as conn:
        actors = await conn.fetch("SELECT actor, summary FROM operations_log WHERE customer_id = $1 "
                                  "AND object_type = 'payment_method'", anna)
    assert [a["actor"] for a in actors] == [f"customer:{await number(admin, anna)}"]
    assert CARD_OK not in str([dict(a) for a in actors])


async def number(site: Admin, customer_id: int) -> str:
    async with site.pool.acquire() as conn:
        return str(await conn.fetchval("SELECT number FROM customers WHERE id = $1", customer_id))


async def test_a_new_card_pays_and_is_forgotten_unless_kept(admin: Admin, stripe_on: LocalStripe) -> None:  # noqa: F811
    anna, doc = await anna_with_invoice(admin)
    async with await portal_login(admin, "anna") as c:
        key = await page_key(c, f"/portal/finance/documents/{doc}/pay")
        ref = await new_setup(c, stripe_on, CARD_OK)
        status, body, _ = await pay(c, doc, {"card": "new", "setup_ref": ref}, key=key)   # "keep" unticked
        assert status == 200 and "Paid" in body, body[:2000]
        async with admin.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT removed_at, autopay FROM payment_methods WHERE customer_id = $1", anna)
        assert row is not None and row["removed_at"] is not None
        status, body = await c.get("/portal/finance/cards")
        assert "No saved cards." in body
        # a second invoice, a new card kept
        async with admin.pool.acquire() as conn:
            second = (await invoice(conn, anna, "12.50")).id
        key = await page_key(c, f"/portal/finance/documents/{second}/pay")
        ref = await new_setup(c, stripe_on, CARD_OK)
        status, body, _ = await c.post(f"/portal/finance/documents/{second}/pay",
                                         {"key": key, "amount": "12.50", "card": "new", "setup_ref": ref, "save": "1"})
        assert status == 200 and "Paid" in body, body[:2000]
        status, body = await c.get("/portal/finance/cards")
        assert "Visa •••• 4242" in body
    got = await facts(admin, anna)
    assert got["payments"] == 2 and got["balance"] == Decimal("0")


async def test_a_3d_secure_card_pays_after_the_payer_confirms(admin: Admin, stripe_on: LocalStripe) -> None:  # noqa: F811
    anna, doc = await anna_with_invoice(admin)
    async with await portal_login(admin, "anna") as c:
        key = await page_key(c, f"/portal/finance/documents/{doc}/pay")
        ref = await new_setup(c, stripe_on, CARD_3DS)
        status, body, url = await pay(c, doc, {"card": "new", "setup_ref": ref}, key=key)  # not kept
        assert status == 200 and "Your bank asks you to confirm" in body, body[:2000]
        secret = re.search(r'data-client-secret="([^"]+)"', body)
        assert secret, body[:3000]
        assert (await facts(admin, anna))["payments"] == 0
        assert "forget=" in url
        await stripe_on.authenticate(secret.group(1))                    # Stripe.js confirmCardPayment
        status, body = await c.get(url[len(c.url):])
        assert status == 200 and "Paid" in body, body[:2000]
        status, body = await c.get(url[len(c.url):])                     # again: recorded once
        assert "Paid" in body
    got = await facts(admin, anna)
    assert (got["payments"], got["status"]) == (1, "paid")
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT removed_at IS NOT NULL FROM payment_methods WHERE customer_id = $1", anna)


async def test_a_3d_secure_step_failed_is_said_and_nothing_is_recorded(
        admin: Admin, stripe_on: LocalStripe) -> None:  # noqa: F811
    anna, doc = await anna_with_invoice(admin)
    async with await portal_login(admin, "anna") as c:
        await save_card(c, stripe_on, CARD_3DS)
        _, body, url = await pay(c, doc, {"card": str(await card_id(admin, anna))})
        secret = re.search(r'data-client-secret="([^"]+)"', body)
        assert secret, body[:3000]
        await stripe_on.authenticate(secret.group(1), success=False)
        _, body = await c.get(url[len(c.url):])
        assert "The payment did not go through." in body and "Nothing was charged." in body, body[:3000]
    assert (await facts(admin, anna))["payments"] == 0


async def test_a_declined_card_says_why_and_records_nothing(admin: Admin, stripe_on: LocalStripe) -> None:  # noqa: F811
    anna, doc = await anna_with_invoice(admin)
    async with await portal_login(admin, "anna") as c:
        await save_card(c, stripe_on, CARD_DECLINED_LATER)
        status, body, _ = await pay(c, doc, {"card": str(await card_id(admin, anna))})
        assert status == 200 and "The payment did not go through." in body, body[:2000]
        assert "declined" in body.lower() and "Try again" in body
    got = await facts(admin, anna)
    assert (got["payments"], got["status"]) == (0, "unpaid")
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT status FROM payment_intents WHERE customer_id = $1", anna) == "failed"
        assert await conn.fetchval("SELECT count(*) FROM documents WHERE customer_id = $1 AND kind = 'receipt'",
                                   anna) == 0


async def test_top_up_amounts_are_checked(admin: Admin, stripe_on: LocalStripe) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    async with await portal_login(admin, "anna") as c:
        await save_card(c, stripe_on)
        method = str(await card_id(admin, anna))
        for typed, said in (("0", "more than 0"), ("-5", "more than 0"), ("1.234", "EUR has 2 decimals"),
                            ("abc", "Type an amount"), ("NaN", "Type an amount"), ("0.50", "between 1 and 5000"),
                            ("5000.01", "between 1 and 5000"), ("1e3", "")):
            key = await page_key(c, "/portal/finance/top-up")
            status, body, _ = await c.post("/portal/finance/top-up", {"key": key, "amount": typed, "card": method})
            if typed == "1e3":
                continue  # 1000 written otherwise: a valid amount (checked below with the balance)
            assert status == 422 and said in body, (typed, status, body[:1500])
        assert (await facts(admin, anna))["payments"] == 1  # the 1e3
        key = await page_key(c, "/portal/finance/top-up")
        status, body, _ = await c.post("/portal/finance/top-up", {"key": key, "amount": "20,00", "card": method})
        assert status == 200 and "Paid" in body and "added to your balance" in body, body[:2000]
    got = await facts(admin, anna)
    assert got["payments"] == 2 and got["balance"] == Decimal("1020")


async def test_the_same_page_twice_charges_once(admin: Admin, stripe_on: LocalStripe) -> None:  # noqa: F811
    anna, doc = await anna_with_invoice(admin)
    async with await portal_login(admin, "anna") as c:
        await save_card(c, stripe_on)
        method = str(await card_id(admin, anna))
        key = await page_key(c, f"/portal/finance/documents/{doc}/pay")
        before = stripe_on.proxy.forwarded["POST /v1/payment_intents"]
        form = {"key": key, "amount": "31.00", "card": method, "_csrf": c.csrf}
        path = f"{c.url}/portal/finance/documents/{doc}/pay"

        async def click() -> str:
            async with c.session.post(path, data=form, allow_redirects=False) as r:
                assert r.status == 303, await r.text()
                return r.headers["Location"]

        first, second = await asyncio.gather(click(), click())            # a double click
        third = await click()                                             # the page sent again
        assert first == second == third
        assert stripe_on.proxy.forwarded["POST /v1/payment_intents"] - before == 1
        status, body = await c.get(first)
        assert "Paid" in body
        # the page's key for another payment (a top-up): refused
        status, body, _ = await c.post("/portal/finance/top-up", {"key": key, "amount": "5.00", "card": method})
        assert status == 409, (status, body[:500])
    got = await facts(admin, anna)
    assert (got["payments"], got["intents"]) == (1, 1)


async def test_forms_need_the_csrf_token_and_the_customer_itself(admin: Admin, stripe_on: LocalStripe) -> None:  # noqa: F811
    anna, doc = await anna_with_invoice(admin)
    async with await portal_login(admin, "anna") as c:
        await save_card(c, stripe_on)
        method = await card_id(admin, anna)
        key = await page_key(c, f"/portal/finance/documents/{doc}/pay")
        for path, form in ((f"/portal/finance/documents/{doc}/pay", {"key": key, "card": str(method)}),
                           ("/portal/finance/top-up", {"key": key, "amount": "5", "card": str(method)}),
                           (f"/portal/finance/cards/{method}/autopay", {"on": "1"}),
                           (f"/portal/finance/cards/{method}/remove", {}),
                           ("/portal/finance/cards", {"setup_ref": "seti_x"}),
                           ("/portal/finance/cards/setup", {})):
            status, _, _ = await c.post(path, form, csrf=False, allow_redirects=False)
            assert status == 403, path
    async with await impersonated(admin, anna) as staff:
        status, body = await staff.get(f"/portal/finance/documents/{doc}/pay")
        assert status == 200 and "you may read, not write" in body and 'id="pay-form"' not in body
        status, body = await staff.get("/portal/finance/cards")
        assert "Turn autopay on" not in body and 'id="card-form"' not in body
        for path, form in ((f"/portal/finance/documents/{doc}/pay", {"key": key, "card": str(method)}),
                           ("/portal/finance/top-up", {"key": key, "amount": "5", "card": str(method)}),
                           (f"/portal/finance/cards/{method}/autopay", {"on": "1"}),
                           (f"/portal/finance/cards/{method}/remove", {}),
                           ("/portal/finance/cards", {"setup_ref": "seti_x"}),
                           ("/portal/finance/cards/setup", {})):
            status, _, _ = await staff.post(path, form, allow_redirects=False)
            assert status == 403, path
    got = await facts(admin, anna)
    assert (got["payments"], got["intents"]) == (0, 0)
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT autopay FROM payment_methods WHERE id = $1", method) is False


async def test_autopay_on_and_off_and_a_card_removed(admin: Admin, stripe_on: LocalStripe) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    async with await portal_login(admin, "anna") as c:
        await save_card(c, stripe_on, autopay=True)
        method = await card_id(admin, anna)
        status, body = await c.get("/portal/finance/cards")
        assert "Autopay on" in body and "Turn autopay off" in body
        _, body, _ = await c.post(f"/portal/finance/cards/{method}/autopay", {"on": "0"})
        assert "Autopay is off." in body
        _, body, _ = await c.post(f"/portal/finance/cards/{method}/autopay", {"on": "1"})
        assert "Autopay is on" in body
        _, body, _ = await c.post(f"/portal/finance/cards/{method}/remove", {})
        assert "The card is removed." in body and "No saved cards." in body
        status, _, _ = await c.post(f"/portal/finance/cards/{method}/autopay", {"on": "1"}, allow_redirects=False)
        assert status == 404                                               # removed: no longer a card of hers
    async with admin.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT autopay, removed_at FROM payment_methods WHERE id = $1", method)
        lines = await conn.fetch("SELECT actor, summary FROM operations_log WHERE object_type = 'payment_method' "
                                 "ORDER BY id")
    assert row is not None and row["autopay"] is False and row["removed_at"] is not None
    assert {ln["actor"] for ln in lines} == {f"customer:{await number(admin, anna)}"}
    assert [ln["summary"].split(" ")[0] for ln in lines] == ["card", "autopay", "autopay", "autopay", "card"]


async def test_another_customers_ids_are_not_found(admin: Admin, stripe_on: LocalStripe) -> None:  # noqa: F811
    anna, mine = await anna_with_invoice(admin)
    bruno, theirs = await anna_with_invoice(admin, login="bruno")
    async with await portal_login(admin, "bruno") as b:
        await save_card(b, stripe_on)
        bruno_card = await card_id(admin, bruno)
        status, body, url = await pay(b, theirs, {"card": str(bruno_card)})
        bruno_intent = RESULT.search(url)
        assert bruno_intent, url
    async with await portal_login(admin, "anna") as c:
        key = await page_key(c, f"/portal/finance/documents/{mine}/pay")
        for path in (f"/portal/finance/documents/{theirs}/pay", f"/portal/finance/online/{bruno_intent.group(1)}"):
            status, _ = await c.get(path)
            assert status == 404, path
        for path, form in ((f"/portal/finance/documents/{theirs}/pay", {"key": key, "card": str(bruno_card)}),
                           (f"/portal/finance/documents/{mine}/pay", {"key": key, "card": str(bruno_card),
                                                                      "amount": "31.00"}),
                           (f"/portal/finance/cards/{bruno_card}/autopay", {"on": "1"}),
                           (f"/portal/finance/cards/{bruno_card}/remove", {})):
            status, _, _ = await c.post(path, form, allow_redirects=False)
            assert status == 404, path
        status, body = await c.get("/portal/finance/cards")
        assert "4242" not in body
    assert (await facts(admin, anna))["intents"] == 0
    async with admin.pool.acquire() as conn:
        assert await conn.fetchval("SELECT removed_at IS NULL AND NOT autopay FROM payment_methods WHERE id = $1",
                                   bruno_card)


async def test_without_a_gateway_there_is_no_pay_button(admin: Admin) -> None:  # noqa: F811
    _, doc = await anna_with_invoice(admin)
    async with await portal_login(admin, "anna") as c:
        status, body = await c.get("/portal/finance")
        assert status == 200 and f"/documents/{doc}/pay" not in body and "top-up" not in body
        status, body = await c.get("/portal/finance/invoices")
        assert "Pay online" not in body
        for path in (f"/portal/finance/documents/{doc}/pay", "/portal/finance/top-up", "/portal/finance/cards"):
            status, body = await c.get(path)
            assert status == 200 and "Payments online are not available" in body, path
            assert "js.stripe.com" not in body
        status, body, _ = await c.post(f"/portal/finance/documents/{doc}/pay", {"key": "k" * 32, "card": "1"})
        assert status == 409 and "Payments online are not available" in body


async def test_the_pay_page_lets_stripe_js_in_and_nothing_inline(admin: Admin, stripe_on: LocalStripe) -> None:  # noqa: F811
    _, doc = await anna_with_invoice(admin)
    async with await portal_login(admin, "anna") as c:
        async with c.session.get(f"{c.url}/portal/finance/documents/{doc}/pay") as r:
            policy = r.headers["Content-Security-Policy"]
            body = await r.text()
        assert f"script-src 'self' {stripe_on.url}" in policy and f"frame-src {stripe_on.url}" in policy
        assert f"connect-src 'self' {stripe_on.url}" in policy and "unsafe-inline" not in policy
        assert f'src="{stripe_on.url}/js.stripe.com/v3/"' in body and "<script>" not in body
        async with c.session.get(f"{c.url}/portal/finance") as r:
            assert stripe_on.url not in r.headers["Content-Security-Policy"]


def test_the_policy_names_stripe_in_production_and_never_a_made_up_origin() -> None:
    policy = portal_pay.csp({"settings": {}})
    assert "script-src 'self' https://js.stripe.com https://*.js.stripe.com;" in policy
    assert "frame-src https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com;" in policy
    assert "connect-src 'self' https://api.stripe.com;" in policy
    assert portal_pay.stripe_js({"settings": {"api_base": "http://127.0.0.1:9/v1"}})[0] == "http://127.0.0.1:9/js.stripe.com/v3/"
    odd = portal_pay.csp({"settings": {"api_base": "http://x; script-src *"}})             # not an origin: Stripe's own
    assert "*;" not in odd.replace("https://*.js", "") and "https://js.stripe.com" in odd


async def test_a_lost_answer_is_asked_again_under_the_same_key(admin: Admin, stripe_on: LocalStripe) -> None:  # noqa: F811
    anna, doc = await anna_with_invoice(admin)
    async with await portal_login(admin, "anna") as c:
        await save_card(c, stripe_on)
        method = str(await card_id(admin, anna))
        key = await page_key(c, f"/portal/finance/documents/{doc}/pay")
        before = stripe_on.proxy.forwarded["POST /v1/payment_intents"]
        stripe_on.proxy.lose_responses = 10                   # Stripe charges, its answers never arrive
        try:
            status, body, _ = await pay(c, doc, {"card": method}, key=key)
        finally:
            stripe_on.proxy.lose_responses = 0
        assert status == 409, (status, body[:1000])           # the page again, with the same key
        assert KEY.findall(body) == [key], body[:2000]
        status, body, _ = await pay(c, doc, {"card": method}, key=key)
        assert status == 200 and "Paid" in body, body[:2000]
        assert stripe_on.proxy.forwarded["POST /v1/payment_intents"] - before == 1
    got = await facts(admin, anna)
    assert (got["payments"], got["intents"]) == (1, 1)
