"""SMS out through an HTTP gateway: one generic adapter that POSTs the message as JSON or as a
form, with the field names the partner's settings give, and reads the provider's message id
back from the answer.

Two real providers with these settings (``SmsSettings``; the Authorization header is sealed in
notification_settings like a password):

- A Twilio-style form post (Twilio's Programmable Messaging, and the many gateways built like it)::

      url         = "https://api.twilio.com/2010-04-01/Accounts/AC0123.../Messages.json"
      format      = "form"
      to_field    = "To";  text_field = "Body";  from_field = "From";  sender = "+4312345678"
      auth_header = "Basic " + base64("AC0123...:<auth token>")
      id_field    = "sid"            # {"sid": "SM...", "status": "queued", ...}

  (A Messaging Service instead of a number: leave ``sender`` empty and put
  ``extra = {"MessagingServiceSid": "MG..."}``.)

- A JSON API (BulkSMS's JSON REST API, ``POST /v1/messages``)::

      url         = "https://api.bulksms.com/v1/messages?auto-unicode=true"
      format      = "json"
      to_field    = "to";  text_field = "body";  from_field = "from";  sender = "ISP"
      auth_header = "Basic " + base64("<token id>:<token secret>")
      id_field    = "0.id"           # the answer is a list of messages: [{"id": "1234...", ...}]

Numbers go in E.164 (``+436641234567``), read in the message's region, else the settings'.
``extra`` adds fixed fields (an API key a provider wants in the body, a route, a flag); the
message's own fields win over them.

How an answer is classed: 2xx is delivered (the id from ``id_field``, a dotted path through
objects and lists, '' when absent or the answer is not JSON); 429, 408, 5xx, timeouts and
connection errors are temporary; 401 is temporary too (the credentials were refused: the
operator fixes the settings and the waiting messages go, as with SMTP's 535); a 3xx (the
gateway moved) is temporary, naming where; any other 4xx is permanent. Some providers answer
200 with an error inside the body (Vonage's legacy SMS API with ``status != "0"``): the
generic adapter cannot see that, so use their endpoints that answer with HTTP statuses.

The Authorization header never appears in an error, a log or an answer, nor does the URL's
query string or user info (where some providers put a key).
"""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import phonenumbers
from yarl import URL

from admin.notifications.model import (
    Delivered,
    Outgoing,
    PermanentFailure,
    SmsSettings,
    TemporaryFailure,
    Unreachable,
)

ANSWER_LIMIT = 2000

# GSM 03.38: the default alphabet (one septet each) and the extension table (escape + one septet).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def normalise(number: str, region: str) -> str:
    """``number`` in E.164 (``"0664 1234567"``, ``"AT"`` -> ``"+436641234567"``); a national number
    is read in ``region`` (ISO 3166 alpha-2). Anything that is not a valid number raises
    :class:`PermanentFailure` with one line saying why."""
    shown = repr(number if len(number) <= 40 else number[:40] + "…")
    text = number.strip()
    if not text:
        raise PermanentFailure("no phone number to send the SMS to")
    code = region.strip().upper() or None
    if code is not None and code not in phonenumbers.SUPPORTED_REGIONS:
        raise PermanentFailure(f"unknown region {region!r} to read the phone number {shown} in")
    try:
        parsed = phonenumbers.parse(text, code)
    except phonenumbers.NumberParseException as error:
        national = not text.startswith(("+", "00", "\uff0b"))  # "+" or its full-width form, or an IDD
        if error.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE and code is None and national:
            raise PermanentFailure(f"the phone number {shown} is national and no region is set to read it in") \
                from None
        reason = re.sub(r"^\(\d+\)\s*", "", str(error))  # "(1) Missing or invalid default region."
        raise PermanentFailure(f"not a phone number: {shown} ({reason})") from None
    if not phonenumbers.is_possible_number(parsed):
        raise PermanentFailure(f"impossible phone number (wrong length): {shown}")
    if not phonenumbers.is_valid_number(parsed):
        raise PermanentFailure(f"invalid phone number: {shown}")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def segments(text: str) -> int:
    """How many SMS ``text`` takes: GSM-7 (160 septets, or 153 a part when concatenated; an
    extension character takes two and is never split) when every character is in the GSM
    alphabet, else UCS-2 (70 UTF-16 units, or 67 a part; a surrogate pair is never split).
    ``""`` takes 0."""
    if not text:
        return 0
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        sizes = [2 if c in _GSM_EXTENDED else 1 for c in text]
        single, part = 160, 153
    else:
        sizes = [2 if ord(c) > 0xFFFF else 1 for c in text]
        single, part = 70, 67
    if sum(sizes) <= single:
        return 1
    count, used = 1, 0
    for size in sizes:
        if used + size > part:
            count, used = count + 1, 0
        used += size
    return count


def pick(document: Any, path: str) -> str:
    """The value at a dotted ``path`` ("id", "messages.0.id", "0.id") as text; '' when absent."""
    value = document
    for key in path.split(".") if path else ():
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.lstrip("-").isdigit() and -len(value) <= int(key) < len(value):
            value = value[int(key)]
        else:
            return ""
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)


def _line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


class SmsTransport:
    """The generic HTTP gateway adapter (see the module's docstring). Pass an aiohttp session
    to share its connection pool; without one the transport makes its own (keep-alive, DNS
    cached) at the first message and closes it in :meth:`close`."""

    def __init__(self, settings: SmsSettings, session: aiohttp.ClientSession | None = None) -> None:
        self.settings = settings
        self._session = session
        self._own = session is None
        self._url: URL | None = None
        self._where = "the SMS gateway"
        try:
            url = URL(settings.url)
            if url.scheme in ("http", "https") and url.host:
                self._url = url
                self._where = str(url.with_user(None).with_query(None).with_fragment(None))
        except (ValueError, TypeError):
            pass

    async def send(self, message: Outgoing) -> Delivered:
        s = self.settings
        if self._url is None:
            raise Unreachable("the SMS gateway URL in the settings is not an http(s) URL")
        number = normalise(message.recipient, message.region or s.region)
        if not message.body:
            raise PermanentFailure("the SMS text is empty")
        fields: dict[str, str] = {**s.extra, s.to_field: number, s.text_field: message.body}
        if s.sender:
            fields[s.from_field] = s.sender
        headers = {"Accept": "application/json"}
        if s.auth_header:
            headers["Authorization"] = s.auth_header
        body: dict[str, Any] = {"json": fields} if s.format == "json" else {"data": fields}
        session = self._session_for_use()
        try:
            async with session.post(self._url, headers=headers, allow_redirects=False,
                                    timeout=aiohttp.ClientTimeout(total=s.timeout), **body) as response:
                raw = await response.read()
                status, reason, location = response.status, response.reason or "", response.headers.get("Location")
        except TimeoutError:
            raise TemporaryFailure(f"{self._where} did not answer within {s.timeout:g} s") from None
        except aiohttp.ClientConnectorError as error:
            raise Unreachable(f"cannot connect to {self._where}: {self._scrub(str(error.os_error))}") from None
        except (aiohttp.ClientError, OSError) as error:
            said = self._scrub(str(error))
            raise TemporaryFailure(f"the request to {self._where} failed: {type(error).__name__}"
                                   f"{': ' + said if said else ''}") from None
        text = raw.decode("utf-8", "replace")
        answer = text[:ANSWER_LIMIT]
        if 200 <= status < 300:
            try:
                document = json.loads(text)
            except ValueError:
                document = None
            return Delivered(provider_id=pick(document, s.id_field), answer=answer)
        said = f"{self._where} answered {status} {reason}".rstrip() + (f": {_line(text)}" if text.strip() else "")
        if status == 401:
            raise TemporaryFailure(f"the gateway refused the credentials: {said}", answer)
        if 300 <= status < 400:
            raise TemporaryFailure(f"{said} (moved to {location or '?'}: set that URL)", answer)
        if status in (408, 429) or status >= 500:
            raise TemporaryFailure(said, answer)
        raise PermanentFailure(said, answer)

    def _scrub(self, text: str) -> str:
        """An error's words without the URL's query or user info (aiohttp quotes the whole URL)."""
        for secret in {str(self._url), self.settings.url} - {""}:
            text = text.replace(secret, self._where)
        if self._url is not None and self._url.query_string:
            text = text.replace(self._url.query_string, "…")
        return _line(text)

    def _session_for_use(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if not self._own and self._session is not None:
                raise TemporaryFailure("the shared HTTP session of the SMS transport is closed")
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ttl_dns_cache=300))
            self._own = True
        return self._session

    async def close(self) -> None:
        if self._own and self._session is not None:
            await self._session.close()
        self._session = None

    def __repr__(self) -> str:  # never the auth header
        return f"SmsTransport({self._where})"

    async def __aenter__(self) -> SmsTransport:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

