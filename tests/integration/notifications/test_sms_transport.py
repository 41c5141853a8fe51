"""SmsTransport against a real HTTP gateway double on 127.0.0.1 (tests/fakes/smsgateway.py): JSON
and form posts with the settings' field names, the provider's id read by a dotted path, and the
answers (429, 5xx, 401, other 4xx, timeouts, an outage) mapped to temporary or permanent failures,
with the Authorization header never in a failure's text."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest

from admin.notifications.model import Outgoing, PermanentFailure, SmsSettings, TemporaryFailure
from admin.notifications.sms import SmsTransport
from tests.fakes.smsgateway import SmsGateway

SECRET = "Bearer sk_live_do-not-leak-4711"


def sms(n: int = 1, **changes: object) -> Outgoing:
    fields: dict[str, object] = {"message_id": n, "channel": "sms", "recipient": "0664 1234567", "subject": "",
                                 "body": f"Ihre Rechnung {n} über 42,00 € ist fällig."}
    fields.update(changes)
    return Outgoing(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def gateway() -> AsyncIterator[SmsGateway]:
    async with SmsGateway() as started:
        yield started


def settings_for(gateway: SmsGateway, **changes: object) -> SmsSettings:
    settings = SmsSettings(url=gateway.url, sender="Lastmile", auth_header=SECRET, region="AT", timeout=5.0)
    return replace(settings, **changes)  # type: ignore[arg-type]


async def test_json_with_the_settings_field_names(gateway: SmsGateway) -> None:
    async with SmsTransport(settings_for(gateway, extra={"route": "premium", "to": "overridden"})) as transport:
        delivered = await transport.send(sms(1))
    [request] = gateway.requests
    assert request.method == "POST" and request.path == "/send"
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.headers["Authorization"] == SECRET
    assert request.json == {"route": "premium", "to": "+436641234567", "from": "Lastmile",
                            "text": "Ihre Rechnung 1 über 42,00 € ist fällig."}
    assert delivered.provider_id == "sms-1"
    assert delivered.answer == '{"id": "sms-1", "status": "queued"}'


async def test_a_twilio_style_form(gateway: SmsGateway) -> None:
    gateway.answer(201, {"sid": "SM0123456789abcdef", "status": "queued", "to": "+4915123456789"})
    settings = settings_for(gateway, format="form", to_field="To", text_field="Body", from_field="From",
                            sender="+4312345678", id_field="sid", region="DE")
    async with SmsTransport(settings) as transport:
        delivered = await transport.send(sms(2, recipient="0151 23456789"))
    [request] = gateway.requests
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.fields == {"To": "+4915123456789", "Body": "Ihre Rechnung 2 über 42,00 € ist fällig.",
                              "From": "+4312345678"}
    assert delivered.provider_id == "SM0123456789abcdef"


async def test_no_sender_no_from_field_and_the_messages_region_wins(gateway: SmsGateway) -> None:
    async with SmsTransport(settings_for(gateway, sender="", auth_header="")) as transport:
        await transport.send(sms(3, recipient="0151 23456789", region="DE"))
    [request] = gateway.requests
    assert request.json == {"to": "+4915123456789", "text": "Ihre Rechnung 3 über 42,00 € ist fällig."}
    assert "Authorization" not in request.headers


@pytest.mark.parametrize("body, path, provider_id", [
    ({"messages": [{"message-id": "0A0000000123ABCD1", "status": "0"}]}, "messages.0.message-id",
     "0A0000000123ABCD1"),
    ([{"id": "bulk-77", "type": "SENT"}], "0.id", "bulk-77"),
    ({"data": {"id": 12345}}, "data.id", "12345"),
    ({"status": "ok"}, "id", ""),
    ("OK: queued", "id", ""),
])
async def test_the_provider_id_by_a_dotted_path(gateway: SmsGateway, body: object, path: str,
                                                provider_id: str) -> None:
    gateway.answer(200, body)
    async with SmsTransport(settings_for(gateway, id_field=path)) as transport:
        delivered = await transport.send(sms())
    assert delivered.provider_id == provider_id
    if isinstance(body, str):
        assert delivered.answer == body


async def test_the_answer_is_kept_to_2000_characters(gateway: SmsGateway) -> None:
    gateway.answer(200, {"id": "x", "padding": "y" * 5000})
    async with SmsTransport(settings_for(gateway)) as transport:
        delivered = await transport.send(sms())
    assert delivered.provider_id == "x" and len(delivered.answer) == 2000


@pytest.mark.parametrize("status, body, failure, words", [
    (429, {"error": "Too Many Requests"}, TemporaryFailure, "answered 429 Too Many Requests"),
    (503, "busy, try later", TemporaryFailure, "answered 503 Service Unavailable: busy, try later"),
    (500, None, TemporaryFailure, "answered 500 Internal Server Error"),
    (408, "", TemporaryFailure, "answered 408 Request Timeout"),
    (401, {"message": "Authenticate"}, TemporaryFailure, "refused the credentials: .* answered 401 Unauthorized"),
    (301, "", TemporaryFailure, "moved to http://elsewhere.example/send"),
    (400, {"code": 21211, "message": "The 'To' number is not a valid phone number."}, PermanentFailure,
     r"answered 400 Bad Request: \{\"code\": 21211, \"message\": \"The 'To' number is not a valid phone number.\"\}"),
    (403, "forbidden destination", PermanentFailure, "answered 403 Forbidden: forbidden destination"),
    (422, {"error": "unroutable"}, PermanentFailure, "answered 422 Unprocessable Entity"),
])
async def test_answers_are_temporary_or_permanent(gateway: SmsGateway, status: int, body: object,
                                                  failure: type[Exception], words: str) -> None:
    headers = {"Location": "http://elsewhere.example/send"} if status == 301 else None
    gateway.answer(status, body, headers=headers)
    async with SmsTransport(settings_for(gateway)) as transport:
        with pytest.raises(failure, match=words) as caught:
            await transport.send(sms())
        assert type(caught.value) is failure
        text = str(caught.value)
        assert "\n" not in text and "sk_live" not in text and "sk_live" not in getattr(caught.value, "answer", "")
        await transport.send(sms(2))  # the next one goes (the default answer)
    assert len(gateway.requests) == 2


async def test_a_slow_gateway_times_out_as_temporary(gateway: SmsGateway) -> None:
    gateway.answer(200, {"id": "late"}, delay=2.0)
    async with SmsTransport(settings_for(gateway, timeout=0.2)) as transport:
        started = time.monotonic()
        with pytest.raises(TemporaryFailure, match=r"did not answer within 0\.2 s"):
            await transport.send(sms())
        assert time.monotonic() - started < 1.5
        assert (await transport.send(sms(2))).provider_id == "sms-2"


async def test_an_outage_is_temporary_and_the_same_transport_sends_after_it(gateway: SmsGateway) -> None:
    async with SmsTransport(settings_for(gateway, url=gateway.url + "?api_key=secret-in-query")) as transport:
        assert (await transport.send(sms(1))).provider_id == "sms-1"
        await gateway.stop()
        for n in (2, 3):  # the kept connection fails first (or not), then the new one is refused
            with pytest.raises(TemporaryFailure, match=f"(cannot connect to|the request to) {gateway.url}") as caught:
                await transport.send(sms(n))
            assert "secret-in-query" not in str(caught.value) and "sk_live" not in str(caught.value)
        await gateway.start()
        assert (await transport.send(sms(4))).provider_id == "sms-2"
    assert gateway.requests[0].query == {"api_key": "secret-in-query"}


async def test_an_invalid_number_or_empty_text_is_permanent_and_nothing_is_posted(gateway: SmsGateway) -> None:
    async with SmsTransport(settings_for(gateway)) as transport:
        with pytest.raises(PermanentFailure, match="invalid phone number"):
            await transport.send(sms(recipient="0664 12"))
        with pytest.raises(PermanentFailure, match="unknown region"):
            await transport.send(sms(region="XX"))
        with pytest.raises(PermanentFailure, match="empty"):
            await transport.send(sms(body=""))
    assert gateway.requests == []


async def test_a_url_that_is_not_http_is_temporary(gateway: SmsGateway) -> None:
    async with SmsTransport(settings_for(gateway, url="ftp://gateway.example/send")) as transport:
        with pytest.raises(TemporaryFailure, match="not an http"):
            await transport.send(sms())


async def test_a_shared_session_is_used_and_left_open(gateway: SmsGateway) -> None:
    async with aiohttp.ClientSession() as session:
        transport = SmsTransport(settings_for(gateway), session=session)
        await transport.send(sms(1))
        await transport.send(sms(2))
        await transport.close()
        assert not session.closed
        assert repr(transport) == f"SmsTransport(http://127.0.0.1:{gateway.port}/send)"
    assert len(gateway.requests) == 2
