"""Notifications → Settings: per partner (and the default of every partner without its own) the
mail server and sender, the SMS gateway, when document notices may go (the send window) and how
payment reminders count their days; "Send a test email" / "Send a test SMS" through the saved
settings; "Use the default" (a partner's row deleted). A partner's row is used whole, never
merged with the default one (schema.sql section 10).

The SMTP password and the gateway's Authorization header are write-only: sealed as they are
saved (daemons/secrets.py), never shown nor given out by the API (``smtp_password_set`` says
whether there is one). A secret belongs to the server it was entered for: changing the mail
server's host (the gateway's URL) without entering the secret again clears it, so nobody can
point a partner's settings, made from the default ones, at a server of their own and receive the
default's password there.

An administrator of one partner sees and changes its partner's settings only (another partner's:
not found) and reads the default ones; the default ones are changed by an administrator of every
partner. notifications.view sees, notifications.edit changes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
import zoneinfo
from collections.abc import Mapping
from email.utils import parseaddr
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import asyncpg
import msgspec
import phonenumbers
import yarl
from aiohttp import web

from admin import keys, oplog_store, pages, schemas
from admin.auth.principal import Principal
from admin.auth.store import Connection
from admin.notifications import mail, model, settings_store, sms
from admin.notifications.area import AREA
from daemons.secrets import Keyring, SecretError

PASSWORD_PURPOSE = "notification_settings.smtp_password"  # noqa: S105  # a purpose's name, not a password
AUTH_PURPOSE = "notification_settings.sms_auth_header"
PURPOSES = {"smtp_password": PASSWORD_PURPOSE, "sms_auth_header": AUTH_PURPOSE}
BOUND_TO = {"smtp_password": "smtp_host", "sms_auth_header": "sms_url"}
"""Each secret and the server it is for: a new server without the secret entered again clears it."""
TEST_TIMEOUT = 15.0
"""Seconds a test email or SMS may take before the page says it did not go."""

DEFAULTS: dict[str, Any] = {
    "timezone": "UTC", "send_days": [1, 2, 3, 4, 5], "send_from": 8, "send_until": 20, "skip_holidays": True,
    "reminder_days": "relative", "mail_from": "", "mail_reply_to": "", "smtp_host": "", "smtp_port": 587,
    "smtp_security": "starttls", "smtp_username": "", "smtp_password": None, "mail_per_minute": 6000,
    "sms_url": "", "sms_format": "json", "sms_to_field": "to", "sms_text_field": "text", "sms_from_field": "from",
    "sms_sender": "", "sms_auth_header": None, "sms_id_field": "id", "sms_region": "", "sms_per_minute": 60}
"""The columns' defaults (schema.sql): what is in effect while there is no row at all."""
PLAIN = tuple(c for c in settings_store.EDITABLE if c not in settings_store.SECRETS)
INTEGERS = {"send_from": (0, 23), "send_until": (1, 24), "smtp_port": (1, 65535), "mail_per_minute": (1, 1_000_000),
            "sms_per_minute": (1, 1_000_000)}
TEXTS = ("timezone", "reminder_days", "mail_from", "mail_reply_to", "smtp_host", "smtp_security", "smtp_username",
         "sms_url", "sms_format", "sms_to_field", "sms_text_field", "sms_from_field", "sms_sender", "sms_id_field",
         "sms_region")
WEEKDAYS = ((1, "Mon"), (2, "Tue"), (3, "Wed"), (4, "Thu"), (5, "Fri"), (6, "Sat"), (7, "Sun"))
SECURITY = (("starttls", "STARTTLS (port 587)"), ("tls", "TLS from the start (port 465)"), ("none", "none (port 25)"))
_ADDRESS = re.compile(r"[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?|\[?[0-9A-Fa-f:.]+\]?")
_FIELD = re.compile(r"[A-Za-z0-9_.\-\[\]]{1,100}")
_LINE = r"^[^\x00-\x1f\x7f]*$"
_DIGITS = re.compile(r"[0-9]+")  # not str.isdigit(): "¹" is a digit to it, and int() refuses it
Scope = int | None
"""A partner's id, or None: the default settings."""

Line = Annotated[str, msgspec.Meta(max_length=300, pattern=_LINE)]
FieldName = Annotated[str, msgspec.Meta(max_length=100, pattern=_LINE)]


class NotificationSettingsIn(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The fields to change (the others keep their values; a partner without settings of its own
    starts from the default ones). ``smtp_password`` / ``sms_auth_header``: a new one, or null to
    remove it; a new ``smtp_host`` (``sms_url``) without its secret removes the secret."""

    timezone: Line | msgspec.UnsetType = msgspec.UNSET
    send_days: Annotated[list[int], msgspec.Meta(min_length=1, max_length=7, description="ISO weekdays, 1 Monday .. "
                                                                                     "7 Sunday")] | msgspec.UnsetType \
        = msgspec.UNSET
    send_from: int | msgspec.UnsetType = msgspec.UNSET
    send_until: int | msgspec.UnsetType = msgspec.UNSET
    skip_holidays: bool | msgspec.UnsetType = msgspec.UNSET
    reminder_days: Literal["relative", "static"] | msgspec.UnsetType = msgspec.UNSET
    mail_from: Line | msgspec.UnsetType = msgspec.UNSET
    mail_reply_to: Line | msgspec.UnsetType = msgspec.UNSET
    smtp_host: Line | msgspec.UnsetType = msgspec.UNSET
    smtp_port: int | msgspec.UnsetType = msgspec.UNSET
    smtp_security: Literal["starttls", "tls", "none"] | msgspec.UnsetType = msgspec.UNSET
    smtp_username: Line | msgspec.UnsetType = msgspec.UNSET
    smtp_password: Annotated[str, msgspec.Meta(max_length=500)] | msgspec.UnsetType | None = msgspec.UNSET
    mail_per_minute: int | msgspec.UnsetType = msgspec.UNSET
    sms_url: Annotated[str, msgspec.Meta(max_length=2000, pattern=_LINE)] | msgspec.UnsetType = msgspec.UNSET
    sms_format: Literal["json", "form"] | msgspec.UnsetType = msgspec.UNSET
    sms_to_field: FieldName | msgspec.UnsetType = msgspec.UNSET
    sms_text_field: FieldName | msgspec.UnsetType = msgspec.UNSET
    sms_from_field: FieldName | msgspec.UnsetType = msgspec.UNSET
    sms_sender: Line | msgspec.UnsetType = msgspec.UNSET
    sms_auth_header: Annotated[str, msgspec.Meta(max_length=2000)] | msgspec.UnsetType | None = msgspec.UNSET
    sms_id_field: FieldName | msgspec.UnsetType = msgspec.UNSET
    sms_region: Annotated[str, msgspec.Meta(max_length=2)] | msgspec.UnsetType = msgspec.UNSET
    sms_per_minute: int | msgspec.UnsetType = msgspec.UNSET


class NotificationSettings(msgspec.Struct, kw_only=True):
    """The settings in effect for ``partner_id`` (null: the default ones). ``source``: the partner's
    own row, the default row, or the built-in values (no row at all). Secrets are never given out:
    ``smtp_password_set`` and ``sms_auth_header_set`` say whether there is one."""

    partner_id: int | None
    partner: str
    source: Literal["partner", "default", "built-in"]
    timezone: str
    send_days: list[int]
    send_from: int
    send_until: int
    skip_holidays: bool
    reminder_days: str
    mail_from: str
    mail_reply_to: str
    smtp_host: str
    smtp_port: int
    smtp_security: str
    smtp_username: str
    smtp_password_set: bool
    mail_per_minute: int
    sms_url: str
    sms_format: str
    sms_to_field: str
    sms_text_field: str
    sms_from_field: str
    sms_sender: str
    sms_auth_header_set: bool
    sms_id_field: str
    sms_region: str
    sms_per_minute: int
    updated_by: str
    updated_at: dt.datetime | None


class TestIn(msgspec.Struct, kw_only=True):
    to: Annotated[str, msgspec.Meta(min_length=1, max_length=300, pattern=_LINE,
                                    description="an email address (email) or a phone number (sms)")]


class TestResult(msgspec.Struct, kw_only=True):
    """Whether the test message went, and the server's answer or its error in one line."""

    ok: bool
    message: str


# -- scope: whose settings, and who may change them --------------------------------------------------

def parse_scope(text: str) -> Scope:
    """``default`` or a partner's id (another text: not found)."""
    if text == "default":
        return None
    if _DIGITS.fullmatch(text) and 0 < int(text) < 2**63:
        return int(text)
    raise web.HTTPNotFound(text="a partner's id or 'default'")


def scope_text(scope: Scope) -> str:
    return "default" if scope is None else str(scope)


def checked_scope(who: Principal, scope: Scope) -> Scope:
    """``scope`` when ``who`` may see it: a partner's administrator its own partner and the default."""
    if who.partner_id is not None and scope is not None and scope != who.partner_id:
        raise web.HTTPNotFound()
    return scope


def page_scope(who: Principal, query: Mapping[str, Any]) -> Scope:
    """The page's scope (``?partner=``): the asked one, else the principal's own (the default for
    an administrator of every partner)."""
    asked = str(query.get("partner", "")).strip()
    if not asked:
        return who.partner_id
    return checked_scope(who, parse_scope(asked))


def may_edit(who: Principal, scope: Scope) -> bool:
    if not who.can("notifications.edit") or who.creator_id is not None:
        return False
    return scope is not None or who.partner_id is None


def editor(who: Principal, scope: Scope) -> None:
    if not may_edit(who, scope):
        raise web.HTTPForbidden(text="The default notification settings are every partner's: only an administrator "
                                     "of every partner changes them." if scope is None else
                                "An administrator limited to the customers it created changes no settings.")


async def partner_name(conn: Connection, scope: Scope) -> str:
    """The partner's name ('' for the default); not found when there is no such partner."""
    if scope is None:
        return ""
    name = await settings_store.partner_name(conn, scope)
    if name is None:
        raise web.HTTPNotFound()
    return name


async def partners_of(conn: Connection, who: Principal) -> list[asyncpg.Record]:
    """The partners the scope picker lists (a partner's administrator: its own)."""
    return await settings_store.partners(conn, who.partner_id)


# -- values -------------------------------------------------------------------------------------------

def effective(found: list[asyncpg.Record] | list[dict[str, Any]], scope: Scope) -> tuple[dict[str, Any], str]:
    """(the values in effect for ``scope``, their source) from the scope's and the default's rows."""
    own = next((r for r in found if r["partner_id"] == scope), None)
    default = next((r for r in found if r["partner_id"] is None), None)
    if own is not None:
        return dict(own), "partner" if scope is not None else "default"
    if default is not None:
        return dict(default), "default"
    return {**DEFAULTS, "partner_id": scope, "updated_by": "", "updated_at": None}, "built-in"


def _address(text: str, field: str, errors: dict[str, str], *, named: bool) -> str:
    text = text.strip()
    if not text:
        return ""
    name, address = parseaddr(text)
    if not address or not _ADDRESS.fullmatch(address) or any(c in text for c in "\r\n\x00"):
        errors[field] = ("must be an address, or a name and an address: Acme Billing <billing@acme.example>" if named
                         else "must be an email address")
        return text
    if name and not named:
        errors[field] = "must be an email address alone"
    return text


def _zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def checked(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (every PLAIN column) as the row keeps them; Invalid with every wrong field."""
    out = dict(values)
    errors: dict[str, str] = {}
    for name in TEXTS:
        out[name] = str(out[name]).strip()
        if re.search(r"[\x00-\x1f\x7f]", out[name]):
            errors[name] = "must be one line of text"
    for name, (low, high) in INTEGERS.items():
        value = out[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            errors[name] = f"must be a whole number from {low} to {high}"
    if "send_from" not in errors and "send_until" not in errors and out["send_until"] <= out["send_from"]:
        errors["send_until"] = "must be after the hour notices may start"
    days = out["send_days"]
    if not isinstance(days, list | tuple) or not days or any(isinstance(d, bool) or d not in range(1, 8) for d in days):
        errors["send_days"] = "choose at least one day of the week"
    else:
        out["send_days"] = sorted({int(d) for d in days})
    if not out["timezone"] or len(out["timezone"]) > 64 or not _zone(out["timezone"]):
        errors["timezone"] = "not a time zone (an IANA name like Europe/Vienna or UTC)"
    if out["reminder_days"] not in ("relative", "static"):
        errors["reminder_days"] = "relative or static"
    out["mail_from"] = _address(out["mail_from"], "mail_from", errors, named=True)
    out["mail_reply_to"] = _address(out["mail_reply_to"], "mail_reply_to", errors, named=True)
    if out["smtp_host"] and (len(out["smtp_host"]) > 253 or not _HOST.fullmatch(out["smtp_host"])):
        errors["smtp_host"] = "must be a host name or an IP address, like smtp.example.net"
    if out["smtp_host"] and not out["mail_from"] and "mail_from" not in errors:
        errors["mail_from"] = "a mail server needs a sender: Acme Billing <billing@acme.example>"
    if out["smtp_security"] not in ("starttls", "tls", "none"):
        errors["smtp_security"] = "starttls, tls or none"
    if out["sms_url"]:
        try:
            url = yarl.URL(out["sms_url"])
            good = url.scheme in ("http", "https") and bool(url.host) and url.is_absolute()
        except (ValueError, TypeError):
            good = False
        if not good or len(out["sms_url"]) > 2000:
            errors["sms_url"] = "must be the gateway's http:// or https:// URL"
    if out["sms_format"] not in ("json", "form"):
        errors["sms_format"] = "json or form"
    for name in ("sms_to_field", "sms_text_field"):
        if not _FIELD.fullmatch(out[name]):
            errors[name] = "must be a field name: letters, digits, _ . - [ ]"
    for name in ("sms_from_field", "sms_id_field"):
        if out[name] and not _FIELD.fullmatch(out[name]):
            errors[name] = "must be a field name (letters, digits, _ . - [ ]) or empty"
    if len(out["sms_sender"]) > 20:
        errors["sms_sender"] = "at most 20 characters (a number, or a name of up to 11 letters)"
    out["sms_region"] = out["sms_region"].upper()
    if out["sms_region"] and out["sms_region"] not in phonenumbers.SUPPORTED_REGIONS:
        errors["sms_region"] = "a two-letter country code (AT, DE, GB, …) or empty"
    if errors:
        raise schemas.Invalid(errors)
    return out


def _form_values(form: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """The settings form's (plain values, secret changes, errors of the form itself): a blank
    secret keeps the saved one, its "clear" box removes it."""
    values: dict[str, Any] = {name: str(form.get(name, "")) for name in TEXTS}
    errors: dict[str, str] = {}
    for name, (low, high) in INTEGERS.items():
        text = str(form.get(name, "")).strip()
        if _DIGITS.fullmatch(text.removeprefix("-")) and len(text) < 12:
            values[name] = int(text)
        else:
            values[name] = text
            errors[name] = f"must be a whole number from {low} to {high}"
    getall = getattr(form, "getall", None)
    raw_days = getall("send_days", []) if getall is not None else form.get("send_days", [])
    values["send_days"] = [int(d) for d in raw_days if re.fullmatch(r"[1-7]", str(d))]
    values["skip_holidays"] = bool(form.get("skip_holidays"))
    secrets: dict[str, Any] = {}
    for name in settings_store.SECRETS:
        text = str(form.get(name, ""))
        if form.get(f"clear_{name}"):
            secrets[name] = None
        elif text.strip():
            secrets[name] = text.strip()
            if re.search(r"[\r\n\x00]", secrets[name]):
                errors[name] = "must be one line"
    return values, secrets, errors


def _secret_log(keyring: Keyring, name: str, plain: str | None, sealed: str | None) -> str | None:
    """A secret as the operations log shows it: a keyed fingerprint of a new one, "(set)" for one kept."""
    if plain is not None:
        return keyring.fingerprint(plain, PURPOSES[name])
    return "(set)" if sealed is not None else None


async def save(conn: Connection, request: web.Request, scope: Scope, changes: Mapping[str, Any],
               secrets: Mapping[str, str | None]) -> asyncpg.Record:
    """Apply ``changes`` (PLAIN columns) and ``secrets`` (a new secret, or None: removed) to the
    scope's row, made from the default one the first time; with its line in the operations log."""
    who = keys.principal(request)
    editor(who, scope)
    keyring = request.app[keys.KEYRING]
    name = await partner_name(conn, scope)
    async with conn.transaction():
        own = await settings_store.row(conn, scope, lock=True)
        base = dict(own) if own is not None else (effective(await settings_store.rows(conn, scope), scope)[0])
        new = checked({**{c: base[c] for c in PLAIN}, **{c: v for c, v in changes.items() if c in PLAIN}})
        plain: dict[str, str | None] = {}
        for secret, bound in BOUND_TO.items():
            new[secret] = base[secret]
            if secret in secrets:
                given = secrets[secret]
                new[secret] = keyring.seal(given, PURPOSES[secret]) if given else None
                plain[secret] = given
            elif new[bound] != base[bound]:
                new[secret] = None  # a secret goes only to the server it was entered for
        changed = [c for c in settings_store.EDITABLE if own is None or new[c] != own[c] or c in plain]
        if own is not None and not changed:
            return own
        after = await settings_store.save(conn, scope, new, who.name)
        before_log = schemas.row_json({c: own[c] for c in changed if c in PLAIN}) if own is not None else None
        after_log = schemas.row_json({c: new[c] for c in changed if c in PLAIN})
        for secret in settings_store.SECRETS:
            if secret in changed:
                after_log[secret] = _secret_log(keyring, secret, plain.get(secret), new[secret])
                if before_log is not None:
                    before_log[secret] = "(set)" if own is not None and own[secret] is not None else None
        whose = f"{name}'s" if scope is not None else "the default"
        await oplog_store.record(conn, who, keys.client_address(request), "update" if own else "create",
                                 "notification_settings", after["id"], partner_id=scope,
                                 summary=f"{whose} notification settings: "
                                         + (f"changed {', '.join(changed)}" if own else "made"),
                                 before=before_log, after=after_log)
    return after


async def reset(conn: Connection, request: web.Request, scope: Scope) -> bool:
    """"Use the default": delete a partner's own settings; False when it had none."""
    who = keys.principal(request)
    if scope is None:
        raise web.HTTPConflict(text="The default settings have nothing to fall back to: change them instead.")
    editor(who, scope)
    name = await partner_name(conn, scope)
    async with conn.transaction():
        gone = await settings_store.delete(conn, scope)
        if gone is None:
            return False
        await oplog_store.record(conn, who, keys.client_address(request), "delete", "notification_settings",
                                 gone["id"], partner_id=scope,
                                 summary=f"{name}'s notification settings: back to the default ones",
                                 before=schemas.row_json({c: gone[c] for c in PLAIN}))
    return True


def out(values: Mapping[str, Any], source: str, scope: Scope, name: str) -> NotificationSettings:
    fields = {k: values[k] for k in NotificationSettings.__struct_fields__ if k in values}
    return msgspec.convert({**fields, "partner_id": scope, "partner": name, "source": source,
                            "send_days": list(values["send_days"]),
                            "smtp_password_set": values["smtp_password"] is not None,
                            "sms_auth_header_set": values["sms_auth_header"] is not None,
                            "updated_by": values.get("updated_by", ""), "updated_at": values.get("updated_at")},
                           NotificationSettings)


# -- the test messages ---------------------------------------------------------------------------------

def _open(keyring: Keyring, name: str, sealed: str | None) -> str:
    if sealed is None:
        return ""
    try:
        return keyring.open(sealed, PURPOSES[name])
    except SecretError:
        raise model.PermanentFailure(f"the saved {'password' if name == 'smtp_password' else 'Authorization header'} "
                                     "is sealed under another key: enter it again") from None


def mail_settings(values: Mapping[str, Any], keyring: Keyring) -> model.MailSettings:
    """The mail server of saved settings, its password opened."""
    return model.MailSettings(
        host=values["smtp_host"], port=values["smtp_port"], security=values["smtp_security"],
        username=values["smtp_username"], password=_open(keyring, "smtp_password", values["smtp_password"]),
        sender=values["mail_from"], reply_to=values["mail_reply_to"], per_minute=values["mail_per_minute"],
        timeout=TEST_TIMEOUT)


def sms_settings(values: Mapping[str, Any], keyring: Keyring) -> model.SmsSettings:
    """The SMS gateway of saved settings, its Authorization header opened."""
    return model.SmsSettings(
        url=values["sms_url"], format=values["sms_format"], to_field=values["sms_to_field"],
        text_field=values["sms_text_field"], from_field=values["sms_from_field"], sender=values["sms_sender"],
        auth_header=_open(keyring, "sms_auth_header", values["sms_auth_header"]), id_field=values["sms_id_field"],
        region=values["sms_region"], per_minute=values["sms_per_minute"], timeout=TEST_TIMEOUT)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 300 else line[:299] + "…"


async def send_test(values: Mapping[str, Any], keyring: Keyring, channel: Literal["email", "sms"], to: str,
                    name: str) -> TestResult:
    """Send a test message through the saved ``values``; the server's answer or its error, one line."""
    who = name or "the default settings"
    to = to.strip()
    message_id = time.time_ns() // 1000  # a fresh Message-ID per test (mail.py makes it from this)
    transport: model.Transport | None = None
    try:
        if channel == "email":
            if not values["smtp_host"]:
                return TestResult(ok=False, message="No mail server is set: save one first.")
            if not _ADDRESS.fullmatch(to):
                return TestResult(ok=False, message=f"{to!r} is not an email address.")
            transport = mail.MailTransport(mail_settings(values, keyring))
            outgoing = model.Outgoing(message_id=message_id, channel="email", recipient=to,
                                      subject=f"lastmile test email ({who})",
                                      body=f"This is a test email from lastmile, sent through the mail server of "
                                           f"{who} ({values['smtp_host']}:{values['smtp_port']}).\n")
        else:
            if not values["sms_url"]:
                return TestResult(ok=False, message="No SMS gateway is set: save one first.")
            transport = sms.SmsTransport(sms_settings(values, keyring))
            outgoing = model.Outgoing(message_id=message_id, channel="sms", recipient=to,
                                      subject="", body=f"lastmile test SMS ({who})", region=values["sms_region"])
        delivered = await transport.send(outgoing)
    except model.DeliveryError as e:
        return TestResult(ok=False, message=_one_line(f"Not sent: {e}"))
    finally:
        if transport is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail again: already reported
                await transport.close()
    answer = delivered.answer or delivered.provider_id or "accepted"
    return TestResult(ok=True, message=_one_line(f"Sent to {to}: {answer}"))


# -- pages -------------------------------------------------------------------------------------------

async def _render(request: web.Request, conn: Connection, scope: Scope, *, values: Mapping[str, Any] | None = None,
                  errors: Mapping[str, str] | None = None, status: int = 200) -> web.Response:
    who = keys.principal(request)
    name = await partner_name(conn, scope)
    saved, source = effective(await settings_store.rows(conn, scope), scope)
    shown = {**saved, **(values or {})}
    partners = await partners_of(conn, who)
    return pages.render("notifications/settings.html", request, {
        "scope": scope_text(scope), "partner_id": scope, "partner": name, "source": source, "s": shown,
        "saved": saved, "errors": errors or {}, "done": request.query.get("done", ""),
        "test": request.query.get("test", ""), "ok": request.query.get("ok", ""),
        "message": request.query.get("message", ""), "partners": partners, "weekdays": WEEKDAYS,
        "security": SECURITY, "may_edit": may_edit(who, scope), "may_pick_default": who.partner_id is None},
        status=status)


def _url(scope: Scope, **query: str) -> str:
    return "/admin/notifications/settings?" + urlencode({"partner": scope_text(scope), **query})


@AREA.page("/notifications/settings", permission="notifications.view")
async def settings_page(request: web.Request) -> web.StreamResponse:
    scope = page_scope(keys.principal(request), request.query)
    async with request.app[keys.POOL].acquire() as conn:
        return await _render(request, conn, scope)


@AREA.page("/notifications/settings", permission="notifications.edit", method="POST")
async def save_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    who = keys.principal(request)
    scope = checked_scope(who, parse_scope(str(form.get("partner", ""))))
    values, secrets, errors = _form_values(form)
    async with request.app[keys.POOL].acquire() as conn:
        try:
            editor(who, scope)
            if errors:  # the form's own, with what the values' check finds besides
                try:
                    checked(values)
                except schemas.Invalid as e:
                    errors = {**e.errors, **errors}
                raise schemas.Invalid(errors)
            await save(conn, request, scope, values, secrets)
        except schemas.Invalid as e:
            return await _render(request, conn, scope, values=values, errors={**errors, **e.errors}, status=422)
    raise web.HTTPFound(_url(scope, done="saved"))


@AREA.page("/notifications/settings/reset", permission="notifications.edit", method="POST")
async def reset_form(request: web.Request) -> web.StreamResponse:
    """"Use the default": the partner's own settings deleted."""
    form = await request.post()
    scope = checked_scope(keys.principal(request), parse_scope(str(form.get("partner", ""))))
    async with request.app[keys.POOL].acquire() as conn:
        await reset(conn, request, scope)
    raise web.HTTPFound(_url(scope, done="reset"))


async def _saved(conn: Connection, scope: Scope) -> tuple[dict[str, Any], str]:
    name = await partner_name(conn, scope)
    values, _ = effective(await settings_store.rows(conn, scope), scope)
    return values, name


@AREA.page("/notifications/settings/test", permission="notifications.edit", method="POST")
async def test_form(request: web.Request) -> web.StreamResponse:
    """Send a test email or SMS (``channel``) to ``to`` through the saved settings."""
    form = await request.post()
    who = keys.principal(request)
    scope = checked_scope(who, parse_scope(str(form.get("partner", ""))))
    channel: Literal["email", "sms"] = "sms" if form.get("channel") == "sms" else "email"
    async with request.app[keys.POOL].acquire() as conn:
        values, name = await _saved(conn, scope)
    result = await send_test(values, request.app[keys.KEYRING], channel, str(form.get("to", ""))[:300], name)
    raise web.HTTPFound(_url(scope, test=channel, ok="1" if result.ok else "", message=result.message,
                             to=str(form.get("to", ""))[:300]))


# -- the API ----------------------------------------------------------------------------------------

def _api_scope(request: web.Request) -> Scope:
    return checked_scope(keys.principal(request), parse_scope(request.match_info["partner"]))


async def _api_out(conn: Connection, scope: Scope) -> NotificationSettings:
    name = await partner_name(conn, scope)
    values, source = effective(await settings_store.rows(conn, scope), scope)
    return out(values, source, scope, name)


@AREA.api("GET", "/notifications/settings/{partner}", permission="notifications.view",
          response=NotificationSettings, summary="A partner's notification settings (or the default ones)")
async def api_get(request: web.Request) -> web.StreamResponse:
    """``partner``: a partner's id, or `default`. The settings in effect and where they come from
    (`source`); the secrets never (`smtp_password_set`, `sms_auth_header_set`)."""
    scope = _api_scope(request)
    async with request.app[keys.POOL].acquire() as conn:
        return schemas.json(await _api_out(conn, scope))


@AREA.api("PUT", "/notifications/settings/{partner}", permission="notifications.edit",
          body=NotificationSettingsIn, response=NotificationSettings,
          summary="Change a partner's notification settings (or the default ones)")
async def api_put(request: web.Request) -> web.StreamResponse:
    """The fields given change; a partner without settings of its own gets them, made from the
    default ones. A wrong field is refused (422, `errors` names it)."""
    scope = _api_scope(request)
    data = await schemas.body(request, NotificationSettingsIn)
    given = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    secrets = {k: given.pop(k) for k in settings_store.SECRETS if k in given}
    async with request.app[keys.POOL].acquire() as conn:
        await save(conn, request, scope, given, secrets)
        return schemas.json(await _api_out(conn, scope))


@AREA.api("DELETE", "/notifications/settings/{partner}", permission="notifications.edit",
          response=NotificationSettings, summary="A partner back to the default notification settings")
async def api_reset(request: web.Request) -> web.StreamResponse:
    """Deletes the partner's own settings; the answer is what it uses now. `default`: 409."""
    scope = _api_scope(request)
    async with request.app[keys.POOL].acquire() as conn:
        await reset(conn, request, scope)
        return schemas.json(await _api_out(conn, scope))


@AREA.api("POST", "/notifications/settings/{partner}/test/{channel}", permission="notifications.edit",
          body=TestIn, response=TestResult, summary="Send a test email or SMS through the saved settings")
async def api_test(request: web.Request) -> web.StreamResponse:
    """``channel``: `email` or `sms`. Sent through the settings in effect (saved); `ok` false with
    the error when it did not go (the answer is 200 either way)."""
    scope = _api_scope(request)
    channel = request.match_info["channel"]
    if channel not in ("email", "sms"):
        raise web.HTTPNotFound(text="email or sms")
    data = await schemas.body(request, TestIn)
    async with request.app[keys.POOL].acquire() as conn:
        values, name = await _saved(conn, scope)
    return schemas.json(await send_test(values, request.app[keys.KEYRING], "sms" if channel == "sms" else "email",
                                        data.to, name))
