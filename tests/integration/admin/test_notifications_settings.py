"""Notifications → Settings through its page and its API on the admin app over a real database:
the form saves a partner's (or the default) mail server, SMS gateway, send window and reminder
mode; wrong fields are refused each with its message and nothing saved; the SMTP password and
the gateway's Authorization header are sealed in the database and shown nowhere (page, API,
operations log); a new server without its secret clears it; a partner's administrator reaches
its own partner only (404) and does not change the default (403); "Send a test email/SMS" goes
through the saved settings to a real SMTP server and SMS gateway on 127.0.0.1 and shows the
answer (or the error) in one line."""

from __future__ import annotations

import asyncpg

from admin.notifications import settings as page
from daemons.secrets import is_sealed
from tests.conftest import one
from tests.fakes.smsgateway import SmsGateway
from tests.fakes.smtpserver import SmtpServer
from tests.integration.admin.conftest import Admin, Client, api_key, call
from tests.integration.admin.test_finance import logged

PASSWORD = "pa55-w0rd-never-shown"
AUTH = "Bearer sms-token-never-shown"

FORM = {"mail_from": "Acme Billing <billing@acme.example>", "mail_reply_to": "help@acme.example",
        "smtp_host": "127.0.0.1", "smtp_port": "2525", "smtp_security": "none", "smtp_username": "",
        "smtp_password": "", "mail_per_minute": "600", "sms_url": "http://127.0.0.1:9/send", "sms_format": "json",
        "sms_to_field": "to", "sms_text_field": "text", "sms_from_field": "from", "sms_sender": "Acme",
        "sms_auth_header": "", "sms_id_field": "id", "sms_region": "at", "sms_per_minute": "60",
        "send_days": ["1", "2", "3", "4", "5"], "send_from": "8", "send_until": "18", "timezone": "Europe/Vienna",
        "skip_holidays": "1", "reminder_days": "relative"}


def form(scope: str = "default", **changes: str | list[str]) -> dict[str, object]:
    return {**FORM, "partner": scope, **changes}


async def post(c: Client, path: str, data: dict[str, object]) -> tuple[int, str, str]:
    """A form's POST with repeated fields (send_days) sent as such."""
    fields: list[tuple[str, str]] = [("_csrf", c.csrf)]
    for k, v in data.items():
        fields.extend((k, str(x)) for x in (v if isinstance(v, list) else [v]))
    async with c.session.post(c.url + path, data=fields) as r:
        text = await r.text()
        return r.status, text, str(r.url)


async def partners(conn: asyncpg.Connection, *names: str) -> list[int]:
    return [int(await conn.fetchval("INSERT INTO partners (name) VALUES ($1) RETURNING id", n)) for n in names]


async def test_the_default_settings_are_saved_with_their_secrets_sealed(admin: Admin, conn: asyncpg.Connection) -> None:
    async with await logged(admin, "root", "super") as c:
        status, body = await c.get("/admin/notifications/settings")
        assert status == 200 and "Nothing is saved yet" in body and 'value="starttls" selected' in body
        status, body, url = await post(c, "/admin/notifications/settings",
                                       form(smtp_password=PASSWORD, sms_auth_header=AUTH))
        assert status == 200 and "done=saved" in url, (status, url)
        assert "Settings saved" in body and PASSWORD not in body and AUTH not in body
        assert "saved: leave empty to keep it" in body
        row = await one(conn, "SELECT * FROM notification_settings WHERE partner_id IS NULL")
        assert (row["mail_from"], row["smtp_port"], row["smtp_security"], row["sms_region"], row["timezone"]) == (
            "Acme Billing <billing@acme.example>", 2525, "none", "AT", "Europe/Vienna")
        assert list(row["send_days"]) == [1, 2, 3, 4, 5] and (row["send_from"], row["send_until"]) == (8, 18)
        for column, plain, purpose in (("smtp_password", PASSWORD, page.PASSWORD_PURPOSE),
                                       ("sms_auth_header", AUTH, page.AUTH_PURPOSE)):
            assert is_sealed(row[column]) and plain not in row[column]
            assert admin.keyring.open(row[column], purpose) == plain
        log = await conn.fetchval("SELECT string_agg(concat(summary, before::text, after::text), ' ') "
                                  "FROM operations_log WHERE object_type = 'notification_settings'")
        assert "made" in log and PASSWORD not in log and AUTH not in log

        # Saved again with the secrets left empty: kept; the "clear" box removes one.
        status, _, _ = await post(c, "/admin/notifications/settings", form(mail_per_minute="900"))
        assert status == 200
        again = await one(conn, "SELECT * FROM notification_settings WHERE partner_id IS NULL")
        assert again["smtp_password"] == row["smtp_password"] and again["mail_per_minute"] == 900
        status, _, _ = await post(c, "/admin/notifications/settings", form(clear_sms_auth_header="1"))
        assert await conn.fetchval("SELECT sms_auth_header FROM notification_settings") is None
        assert await conn.fetchval("SELECT smtp_password FROM notification_settings") == row["smtp_password"]

        # A new mail server without the password entered again: the password is not sent there.
        status, _, _ = await post(c, "/admin/notifications/settings", form(smtp_host="mail.elsewhere.example"))
        assert status == 200
        assert await conn.fetchval("SELECT smtp_password FROM notification_settings") is None

    key = await api_key(conn)
    status, got = await call(admin, key, "GET", "/notifications/settings/default")
    assert status == 200 and got["source"] == "default" and got["smtp_host"] == "mail.elsewhere.example"
    assert got["smtp_password_set"] is False and "smtp_password" not in got and "sms_auth_header" not in got
    status, got = await call(admin, key, "PUT", "/notifications/settings/default",
                             {"smtp_password": PASSWORD, "sms_url": "https://sms.example/api", "sms_auth_header": AUTH})
    assert status == 200 and got["smtp_password_set"] and got["sms_auth_header_set"], got
    assert PASSWORD not in str(got) and AUTH not in str(got)
    status, got = await call(admin, key, "PUT", "/notifications/settings/default", {"smtp_password": None})
    assert status == 200 and not got["smtp_password_set"] and got["sms_auth_header_set"]


async def test_wrong_settings_are_refused_field_by_field(admin: Admin, conn: asyncpg.Connection) -> None:
    async with await logged(admin, "root", "super") as c:
        await c.get("/admin/notifications/settings")
        status, body, _ = await post(c, "/admin/notifications/settings", form(
            mail_from="billing at acme", timezone="Mars/Olympus", send_from="18", send_until="8", send_days=[],
            sms_region="XX", sms_url="ftp://sms.example", smtp_port="http", mail_reply_to="a@b@c", sms_to_field="",
            smtp_password="one\ntwo"))
        assert status == 422
        for text in ("must be an address, or a name and an address", "not a time zone",
                     "choose at least one day of the week", "a two-letter country code",
                     "must be the gateway&#39;s http:// or https:// URL", "must be a whole number from 1 to 65535",
                     "must be a field name"):
            assert text in body, text
        assert 'value="billing at acme"' in body  # the form comes back as it was filled in
        assert await conn.fetchval("SELECT count(*) FROM notification_settings") == 0
        status, body, _ = await post(c, "/admin/notifications/settings", form(send_from="18", send_until="8"))
        assert status == 422 and "must be after the hour notices may start" in body
        status, body, _ = await post(c, "/admin/notifications/settings",
                                     form(mail_from="", smtp_host="smtp.acme.example"))
        assert status == 422 and "a mail server needs a sender" in body
        assert await conn.fetchval("SELECT count(*) FROM notification_settings") == 0
    key = await api_key(conn)
    status, got = await call(admin, key, "PUT", "/notifications/settings/default", {"timezone": "Nowhere/Land",
                                                                                    "send_days": [0, 9]})
    assert status == 422 and set(got["errors"]) == {"timezone", "send_days"}, got
    status, got = await call(admin, key, "PUT", "/notifications/settings/default", {"smtp_port": "25"})
    assert status == 422 and "smtp_port" in got["errors"], got
    for bad in ("/notifications/settings/nobody", "/notifications/settings/0", "/notifications/settings/999999"):
        status, _ = await call(admin, key, "GET", bad)
        assert status == 404, bad


async def test_a_partners_administrator_reaches_its_own_partner_only(admin: Admin, conn: asyncpg.Connection) -> None:
    mine, other = await partners(conn, "Alpha Net", "Beta Fibre")
    async with await logged(admin, "root", "super") as root:
        await root.get("/admin/notifications/settings")
        status, _, _ = await post(root, "/admin/notifications/settings", form(smtp_password=PASSWORD))
        assert status == 200
    default_password = await conn.fetchval("SELECT smtp_password FROM notification_settings")
    async with await logged(admin, "alpha", "admin", partner_id=mine) as c:
        status, body = await c.get("/admin/notifications/settings")
        assert status == 200 and "Alpha Net follows the default settings" in body and "Beta Fibre" not in body
        assert 'value="127.0.0.1"' in body  # the default's values, which it uses
        status, _ = await c.get(f"/admin/notifications/settings?partner={other}")
        assert status == 404
        status, body = await c.get("/admin/notifications/settings?partner=default")
        assert status == 200 and "Only an administrator of every partner changes the default settings" in body
        status, _, _ = await post(c, "/admin/notifications/settings", form())
        assert status == 403
        status, _, _ = await post(c, "/admin/notifications/settings", form(str(other)))
        assert status == 404
        assert await conn.fetchval("SELECT count(*) FROM notification_settings") == 1

        # Its own settings, made from the default ones: the same server keeps its password...
        status, body, url = await post(c, "/admin/notifications/settings",
                                       form(str(mine), mail_from="Alpha <billing@alpha.example>"))
        assert status == 200 and "done=saved" in url and "Alpha Net's own settings." in body
        own = await one(conn, "SELECT * FROM notification_settings WHERE partner_id = $1", mine)
        assert own["mail_from"] == "Alpha <billing@alpha.example>" and own["smtp_password"] == default_password
        # ... and a server of its own does not get it.
        status, _, _ = await post(c, "/admin/notifications/settings", form(str(mine), smtp_host="smtp.alpha.example"))
        assert await conn.fetchval("SELECT smtp_password FROM notification_settings WHERE partner_id = $1",
                                   mine) is None
        assert await conn.fetchval("SELECT smtp_password FROM notification_settings WHERE partner_id IS NULL") \
            == default_password
        status, body, _ = await post(c, "/admin/notifications/settings/reset", {"partner": str(mine)})
        assert status == 200 and "uses the default settings again" in body
        assert await conn.fetchval("SELECT count(*) FROM notification_settings WHERE partner_id = $1", mine) == 0
        status, _, _ = await post(c, "/admin/notifications/settings/reset", {"partner": "default"})
        assert status == 409

    key = await api_key(conn, "admin", partner_id=mine)
    assert (await call(admin, key, "GET", f"/notifications/settings/{mine}"))[0] == 200
    assert (await call(admin, key, "GET", f"/notifications/settings/{other}"))[0] == 404
    assert (await call(admin, key, "PUT", f"/notifications/settings/{other}", {"send_from": 9}))[0] == 404
    assert (await call(admin, key, "PUT", "/notifications/settings/default", {"send_from": 9}))[0] == 403
    status, got = await call(admin, key, "PUT", f"/notifications/settings/{mine}", {"send_from": 9})
    assert status == 200 and got["source"] == "partner" and got["send_from"] == 9 and got["partner"] == "Alpha Net"
    status, got = await call(admin, key, "DELETE", f"/notifications/settings/{mine}")
    assert status == 200 and got["source"] == "default" and got["send_from"] == 8


async def test_viewing_needs_notifications_view_and_changing_notifications_edit(admin: Admin,
                                                                              conn: asyncpg.Connection) -> None:
    async with await logged(admin, "boss", "manager") as c:  # notifications.view only
        status, body = await c.get("/admin/notifications/settings")
        assert status == 200 and "changing them needs notifications.edit" in body and "Send a test email" not in body
        status, _, _ = await post(c, "/admin/notifications/settings", form())
        assert status == 403
        status, _, _ = await post(c, "/admin/notifications/settings/test", {"partner": "default", "channel": "email",
                                                                            "to": "a@b.example"})
        assert status == 403
    async with await logged(admin, "tech", "engineer") as c:  # no notifications.* at all
        status, _ = await c.get("/admin/notifications/settings")
        assert status == 403
    key = await api_key(conn, "manager")
    assert (await call(admin, key, "GET", "/notifications/settings/default"))[0] == 200
    assert (await call(admin, key, "PUT", "/notifications/settings/default", {"send_from": 9}))[0] == 403
    assert await conn.fetchval("SELECT count(*) FROM notification_settings") == 0


async def test_test_messages_go_through_the_saved_settings(admin: Admin, conn: asyncpg.Connection) -> None:
    async with SmtpServer(auth=("mailer", PASSWORD)) as smtp, SmsGateway() as gateway, \
            await logged(admin, "root", "super") as c:
        await c.get("/admin/notifications/settings")
        status, _, _ = await post(c, "/admin/notifications/settings", form(
            smtp_port=str(smtp.port), smtp_username="mailer", smtp_password=PASSWORD, sms_url=gateway.url,
            sms_auth_header=AUTH))
        assert status == 200
        status, body, url = await post(c, "/admin/notifications/settings/test",
                                       {"partner": "default", "channel": "email", "to": "noc@acme.example"})
        assert status == 200 and "test=email" in url
        [got] = await smtp.wait_for(1)
        assert got.rcpt_tos == ("noc@acme.example",) and got.login == "mailer"
        assert got.message["Subject"] == "lastmile test email (the default settings)"
        assert got.message["From"] == "Acme Billing <billing@acme.example>"
        assert 'id="test-result"' in body and "Test email: Sent to noc@acme.example: 250" in body

        status, body, _ = await post(c, "/admin/notifications/settings/test",
                                     {"partner": "default", "channel": "sms", "to": "0664 1234567"})
        [sms] = await gateway.wait_for(1)
        assert sms.fields["to"] == "+436641234567" and sms.headers["Authorization"] == AUTH
        assert "Test SMS: Sent to 0664 1234567" in body and AUTH not in body

        await smtp.stop()
        status, body, _ = await post(c, "/admin/notifications/settings/test",
                                     {"partner": "default", "channel": "email", "to": "noc@acme.example"})
        assert status == 200 and "Test email: Not sent: cannot connect to 127.0.0.1" in body, body
        line = body.split('id="test-result">')[1].split("</p>")[0]
        assert "\n" not in line and PASSWORD not in body

    key = await api_key(conn)
    status, got = await call(admin, key, "POST", "/notifications/settings/default/test/email", {"to": "not an address"})
    assert status == 200 and got == {"ok": False, "message": "'not an address' is not an email address."}
