"""Direct-debit mandates in the portal (admin/portal/mandates.py) on 127.0.0.1: a mandate signed
(a valid IBAN; a wrong check digit, a wrong length, no consent, a BIC missing where needed
refused with the reason and nothing written), the row as the admin's add makes it, the log line
as the customer with the IBAN masked, revoked after a confirm step, CSRF, staff looking as the
customer, another customer's mandate, and no creditor (no tab, 409)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from admin.auth.principal import Principal
from admin.payments import direct_debit_service as service
from tests.integration.admin.conftest import Admin, Client
from tests.integration.portal.conftest import admin, portal_customer, portal_login  # noqa: F401
from tests.integration.portal.test_dashboard import invoice
from tests.integration.portal.test_support import impersonated

IBAN = "DE89370400440532013000"        # Commerzbank: its BIC COBADEFFXXX is derived
BAD_CHECKSUM = "DE88 3704 0044 0532 0130 00"
SHORT = "DE89 3704 0044 0532 0130 0"
NEEDS_BIC = "SM86U0322509800000000270100"  # San Marino: SEPA, outside the EEA, a bank schwifty does not know
PAGE = "/portal/finance/direct-debit"
TODAY = dt.datetime.now(dt.UTC).date()


async def creditor(site: Admin, scheme: str = "CORE") -> None:
    async with site.pool.acquire() as conn:
        await conn.execute("UPDATE sepa_settings SET creditor_id = 'DE98ZZZ09999999999', "
                           "creditor_name = 'Lastmile Netz', iban = 'DE02120300000000202051', bic = 'BYLADEM1001', "
                           "scheme = $1", scheme)


@pytest.fixture
async def configured(admin: Admin) -> Admin:  # noqa: F811
    await creditor(admin)
    return admin


def sign_form(**kw: str) -> dict[str, str]:
    return {"holder": "Anna Muster", "iban": IBAN.lower()[:4] + " " + IBAN[4:], "bic": "", "consent": "1", **kw}


async def sign(c: Client, **kw: str) -> tuple[int, str, str]:
    await c.get(PAGE)
    return await c.post(PAGE, sign_form(**kw), allow_redirects=False)


async def mandates(site: Admin, customer_id: int) -> list[Any]:
    async with site.pool.acquire() as conn:
        return list(await conn.fetch("SELECT * FROM sepa_mandates WHERE customer_id = $1 ORDER BY id", customer_id))


async def number(site: Admin, customer_id: int) -> str:
    async with site.pool.acquire() as conn:
        return str(await conn.fetchval("SELECT number FROM customers WHERE id = $1", customer_id))


async def test_sign_a_mandate_as_the_admin_would_add_it(configured: Admin) -> None:
    anna = await portal_customer(configured, login="anna", name="Anna Muster")
    bruno = await portal_customer(configured, login="bruno")
    async with await portal_login(configured, "anna") as c:
        status, body = await c.get("/portal/finance")
        assert status == 200 and f'href="{PAGE}"' in body                 # the tab
        status, body = await c.get(PAGE)
        assert status == 200 and 'id="mandate-form"' in body
        assert "DE98ZZZ09999999999" in body and "Lastmile Netz" in body
        assert "within 8 weeks" in body and "pre-notification" in body    # the SEPA Core mandate's wording
        assert 'value="Anna Muster"' in body                              # the holder: the customer's name
        status, body, _ = await c.post(PAGE, sign_form(), allow_redirects=False)
        assert status == 303, body[:800]
        status, body = await c.get(PAGE + "?done=signed")
        assert "Your mandate is signed" in body and 'id="mandate-form"' not in body  # one active: no form
        assert "DE •••• 3000" in body and IBAN not in body and "Active" in body
        assert "online in the customer portal" in body
    (mine,) = await mandates(configured, anna)
    n = await number(configured, anna)
    async with configured.pool.acquire() as conn:                       # the admin's add, for Bruno
        row = await conn.fetchrow("SELECT c.id, c.number, c.partner_id, b.currency FROM customers c "
                                  "JOIN customer_billing b ON b.customer_id = c.id WHERE c.id = $1", bruno)
        assert row is not None
        await service.add_mandate(conn, row, service.MandateIn(IBAN, "Anna Muster", TODAY),
                                  Principal("boss", "super", frozenset()), None, today=TODAY)
        log = await conn.fetchrow("SELECT * FROM operations_log WHERE object_type = 'sepa_mandate' "
                                  "AND customer_id = $1", anna)
    assert log is not None
    (theirs,) = await mandates(configured, bruno)
    assert mine["reference"] == f"LM-{n}-1" and theirs["reference"] == f"LM-{row['number']}-1"
    same = ("iban", "bic", "holder", "signed_on", "revoked_at")
    assert {k: mine[k] for k in same} == {k: theirs[k] for k in same} == {
        "iban": IBAN, "bic": "COBADEFFXXX", "holder": "Anna Muster", "signed_on": TODAY, "revoked_at": None}
    assert mine["created_by"] == f"customer:{n}" and theirs["created_by"] == "boss"
    assert log["actor"] == f"customer:{n}" and log["admin_id"] is None and log["action"] == "create"
    assert IBAN not in log["summary"] and IBAN not in str(log["after"]) and "DE •••• 3000" in log["summary"]
    assert "online in the customer portal" in log["summary"]
    assert log["after"]["signed"] == "online in the customer portal"


@pytest.mark.parametrize(("form", "field", "said"), [
    ({"iban": BAD_CHECKSUM}, "iban", "the check digits (88) do not match the rest"),
    ({"iban": SHORT}, "iban", "An IBAN of DE has 22 characters, and this one has 21"),
    ({"iban": ""}, "iban", "The IBAN is required."),
    ({"consent": ""}, "consent", "Tick the box to authorise the direct debit"),
    ({"holder": " "}, "holder", "Account holder is required."),
    ({"iban": NEEDS_BIC}, "bic", "BIC is needed for an account in SM, outside the EEA"),
    ({"iban": NEEDS_BIC, "bic": "NOTABIC"}, "bic", "NOTABIC: not a valid BIC"),
])
async def test_a_mandate_refused_says_why(configured: Admin, form: dict[str, str], field: str, said: str) -> None:
    anna = await portal_customer(configured, login="anna")
    async with await portal_login(configured, "anna") as c:
        status, body, _ = await sign(c, **form)
        assert status == 422, body[:800]
        found = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', body)
        assert found and said in found.group(1), body[:3000]
        assert 'id="mandate-form"' in body                                # the form again, with what was typed
    assert await mandates(configured, anna) == []


async def test_no_consent_and_a_wrong_iban_are_said_together(configured: Admin) -> None:
    await portal_customer(configured, login="anna")
    async with await portal_login(configured, "anna") as c:
        status, body, _ = await sign(c, iban=BAD_CHECKSUM, consent="")
        assert status == 422 and 'id="e-consent"' in body and 'id="e-iban"' in body
        assert 'value="DE88 3704 0044 0532 0130 00"' in body


async def test_a_bic_given_where_needed_is_kept(configured: Admin) -> None:
    anna = await portal_customer(configured, login="anna")
    async with await portal_login(configured, "anna") as c:
        status, body, _ = await sign(c, iban=NEEDS_BIC, bic="bsmasmsm")
        assert status == 303, body[:800]
    (m,) = await mandates(configured, anna)
    assert (m["iban"], m["bic"]) == (NEEDS_BIC, "BSMASMSM")


async def test_revoke_after_a_confirm_step(configured: Admin) -> None:
    anna = await portal_customer(configured, login="anna")
    async with await portal_login(configured, "anna") as c:
        assert (await sign(c))[0] == 303
        (m,) = await mandates(configured, anna)
        status, body = await c.get(PAGE)
        assert f'href="{PAGE}/{m["id"]}/revoke"' in body
        status, body = await c.get(f"{PAGE}/{m['id']}/revoke")             # asks first, says what it stops
        assert status == 200 and 'id="revoke-form"' in body and "no future invoice is collected" in body
        assert (await mandates(configured, anna))[0]["revoked_at"] is None
        status, body, _ = await c.post(f"{PAGE}/{m['id']}/revoke", {}, allow_redirects=False)
        assert status == 303, body[:500]
        status, body = await c.get(PAGE + "?done=revoked")
        assert "nothing more is collected" in body and "Revoked" in body
        assert 'id="mandate-form"' in body                                # none active: a new one may be signed
        status, body, _ = await c.post(f"{PAGE}/{m['id']}/revoke", {}, allow_redirects=False)
        assert status == 409 and "revoked already" in body
        status, body = await c.get(f"{PAGE}/{m['id']}/revoke")
        assert status == 200 and 'id="revoke-form"' not in body
        assert (await sign(c, iban=NEEDS_BIC, bic="BSMASMSM"))[0] == 303  # a new account: a new mandate
    first, second = await mandates(configured, anna)
    assert first["revoked_at"] is not None and second["revoked_at"] is None
    assert second["reference"] == f"LM-{await number(configured, anna)}-2"
    async with configured.pool.acquire() as conn:
        log = await conn.fetchrow("SELECT actor, summary FROM operations_log WHERE action = 'revoke' "
                                  "AND object_type = 'sepa_mandate'")
    assert log is not None
    assert log["actor"] == f"customer:{await number(configured, anna)}"
    assert "no collection from now on" in log["summary"]


async def test_a_second_active_mandate_is_refused(configured: Admin) -> None:
    anna = await portal_customer(configured, login="anna")
    async with await portal_login(configured, "anna") as c:
        assert (await sign(c))[0] == 303
        status, body, _ = await c.post(PAGE, sign_form(iban=NEEDS_BIC, bic="BSMASMSM"), allow_redirects=False)
        assert status == 409 and "You have an active mandate already" in body
    assert len(await mandates(configured, anna)) == 1


async def test_forms_need_the_csrf_token_and_the_customer_itself(configured: Admin) -> None:
    anna = await portal_customer(configured, login="anna")
    async with await portal_login(configured, "anna") as c:
        await c.get(PAGE)
        status, _, _ = await c.post(PAGE, sign_form(), csrf=False, allow_redirects=False)
        assert status == 403
        assert (await sign(c))[0] == 303
        (m,) = await mandates(configured, anna)
        status, _, _ = await c.post(f"{PAGE}/{m['id']}/revoke", {}, csrf=False, allow_redirects=False)
        assert status == 403
    async with await impersonated(configured, anna) as staff:
        status, body = await staff.get(PAGE)
        assert status == 200 and "DE •••• 3000" in body and "/revoke" not in body
        status, body = await staff.get(f"{PAGE}/{m['id']}/revoke")
        assert status == 200 and "you may read, not write" in body and 'id="revoke-form"' not in body
        status, _, _ = await staff.post(f"{PAGE}/{m['id']}/revoke", {}, allow_redirects=False)
        assert status == 403
    async with configured.pool.acquire() as conn:
        await conn.execute("UPDATE sepa_mandates SET revoked_at = now() WHERE id = $1", m["id"])
    async with await impersonated(configured, anna, login="helpdesk2") as staff:
        status, body = await staff.get(PAGE)
        assert status == 200 and 'id="mandate-form"' not in body and "you may read, not write" in body
        status, _, _ = await staff.post(PAGE, sign_form(), allow_redirects=False)
        assert status == 403
    assert len(await mandates(configured, anna)) == 1


async def test_another_customers_mandate_is_not_found(configured: Admin) -> None:
    await portal_customer(configured, login="anna")
    bruno = await portal_customer(configured, login="bruno")
    async with await portal_login(configured, "bruno") as c:
        assert (await sign(c))[0] == 303
    (theirs,) = await mandates(configured, bruno)
    async with await portal_login(configured, "anna") as c:
        status, body = await c.get(PAGE)
        assert theirs["reference"] not in body
        status, _ = await c.get(f"{PAGE}/{theirs['id']}/revoke")
        assert status == 404
        await c.get(PAGE)
        status, _, _ = await c.post(f"{PAGE}/{theirs['id']}/revoke", {}, allow_redirects=False)
        assert status == 404
    assert (await mandates(configured, bruno))[0]["revoked_at"] is None


async def test_not_configured_no_tab_and_409(admin: Admin) -> None:  # noqa: F811
    anna = await portal_customer(admin, login="anna")
    async with await portal_login(admin, "anna") as c:
        for path in ("/portal/finance", "/portal/finance/invoices", "/portal/finance/cards"):
            status, body = await c.get(path)
            assert status == 200 and f'href="{PAGE}"' not in body, path
        status, body = await c.get(PAGE)
        assert status == 200 and "not available" in body and 'id="mandate-form"' not in body
        status, body, _ = await c.post(PAGE, sign_form(), allow_redirects=False)
        assert status == 409 and "not available" in body
    assert await mandates(admin, anna) == []


async def test_a_customer_billed_in_another_currency_is_not_offered(configured: Admin) -> None:
    anna = await portal_customer(configured, login="anna")
    async with configured.pool.acquire() as conn:
        await conn.execute("UPDATE customer_billing SET currency = 'CHF' WHERE customer_id = $1", anna)
    async with await portal_login(configured, "anna") as c:
        status, body = await c.get("/portal/finance")
        assert f'href="{PAGE}"' not in body
        status, body = await c.get(PAGE)
        assert "in euro only" in body and "CHF" in body and 'id="mandate-form"' not in body
        status, body, _ = await c.post(PAGE, sign_form(), allow_redirects=False)
        assert status == 409
    assert await mandates(configured, anna) == []


async def test_b2b_shows_the_b2b_wording_and_the_last_collection(configured: Admin) -> None:
    await creditor(configured, "B2B")
    anna = await portal_customer(configured, login="anna")
    async with await portal_login(configured, "anna") as c:
        status, body = await c.get(PAGE)
        assert status == 200 and "business-to-business" in body and "8 weeks" not in body
        assert (await sign(c))[0] == 303
        (m,) = await mandates(configured, anna)
        async with configured.pool.acquire() as conn:
            doc = (await invoice(conn, anna, "29.00")).id
            batch = await conn.fetchval("INSERT INTO dd_batches (message_id, collection_date, currency, count, total, "
                                        "xml) VALUES ('LMDD-T', '2026-12-10', 'EUR', 1, 29, '<x/>') RETURNING id")
            await conn.execute("INSERT INTO dd_collections (batch_id, mandate_id, customer_id, document_id, amount, "
                               "sequence, end_to_end_id) VALUES ($1, $2, $3, $4, 29, 'FRST', 'E2E-T')",
                               batch, m["id"], anna, doc)
        _, body = await c.get(PAGE)
        assert "Last collection: 29.00 EUR on 10 Dec 2026 (to be collected)" in body, body[-3000:]
