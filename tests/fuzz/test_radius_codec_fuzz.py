"""Fuzzing radiusd.codec (reliability checks R-2 and R-3, smoke size).

Invariant, as h11's fuzz harness puts it: any input either decodes, or raises CodecError, never
anything else; and every typed accessor and ``attributes()`` of a decoded packet works.  Mutated
packets are re-signed like a NAS would sign them, so they get past the authenticator checks and
reach the accessors (tests/fuzz/targets.py, which the million-mutation campaign shares).
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radiusd import codec
from radiusd.codec import Code, CodecError
from tests.fuzz.targets import RADIUS_SEEDS as SEEDS
from tests.fuzz.targets import SECRET, TABLE, resign, touch_everything
from tests.profiles import examples

FUZZ = settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "splice"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.sampled_from([0, 1, 2, 3, 17, 18, 19, 0x1F, 0x80, 0xFF]))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=20))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 10))]
        elif op == "truncate":
            del data[pos:]
        elif op == "splice":
            data[pos:pos] = draw(st.sampled_from(SEEDS))[20:][: draw(st.integers(2, 60))]
    return bytes(data)


def decode_all_ways(data: bytes) -> None:
    for strict in (True, False):
        with contextlib.suppress(CodecError):
            touch_everything(codec.decode_request(data, SECRET, require_ma=strict, limit_proxy_state=strict))
    for request_code in (None, 1, 4, 12, 43):
        with contextlib.suppress(CodecError):
            touch_everything(codec.decode_response(data, data[4:20], SECRET, request_code=request_code))


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_only_raise_codec_error(data: bytes) -> None:
    decode_all_ways(data)
    decode_all_ways(resign(bytes([1]) + data))


@FUZZ
@given(mutated())
def test_mutated_packets_only_raise_codec_error(data: bytes) -> None:
    decode_all_ways(data)
    decode_all_ways(resign(data))


@FUZZ
@given(mutated())
def test_replies_to_mutated_requests_decode(data: bytes) -> None:
    """Whatever request got through, our reply to it is valid for a client."""
    try:
        request = codec.decode_request(resign(data), SECRET, require_ma=False, limit_proxy_state=False)
    except CodecError:
        return
    code = {1: 2, 4: 5, 12: 2, 40: 41, 43: 44}[request.code]
    reply = codec.encode_reply(request, code, [("Reply-Message", "ok")])
    response = codec.decode_response(reply, request.authenticator, SECRET, request_code=request.code)
    assert response.proxy_state == request.proxy_state
    assert response.reply_message == "ok"


# ---------------------------------------------------------------------------------------------------
# Round trips: decode(encode(x)) == x

ROUND_TRIP_NAMES = sorted(
    name
    for name, d in TABLE.by_name.items()
    if not d.encrypt and name not in {"Message-Authenticator", "EAP-Message", "Vendor-Specific"}
)


@st.composite
def attribute(draw: st.DrawFn) -> tuple[str, Any]:
    name = draw(st.sampled_from(ROUND_TRIP_NAMES))
    d = TABLE.by_name[name]
    size = d.size
    value: Any
    if size is not None and d.datatype == "octets":  # CHAP-Password, MS-CHAP-*: fixed sizes
        value = draw(st.binary(min_size=size[0], max_size=size[1]))
    elif d.datatype == "string":
        long_ok = name == "Reply-Message"  # split over several attributes
        value = draw(st.text(max_size=600 if long_ok else 50))
    elif d.datatype == "octets":
        value = draw(st.binary(max_size=240 if d.vendor else 253))
    elif d.datatype in ("integer", "date"):
        value = draw(st.integers(0, 2**24 - 1 if d.has_tag else 2**32 - 1))
    elif d.datatype == "ipaddr":
        value = str(ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1))))
    elif d.datatype == "ipv6addr":
        value = str(ipaddress.IPv6Address(draw(st.integers(0, 2**128 - 1))))
    elif d.datatype == "ipv6prefix":
        address = ipaddress.IPv6Address(draw(st.integers(0, 2**128 - 1)))
        value = str(ipaddress.IPv6Network((address, draw(st.integers(0, 128))), strict=False))
    else:
        value = ":".join(f"{g:x}" for g in draw(st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4)))
    return name, value


def normal(name: str, value: Any) -> Any:
    d = TABLE.by_name[name]
    if isinstance(value, int) and value in d.numbers:
        return d.numbers[value]
    return value


@FUZZ
@given(st.lists(attribute(), max_size=15), st.sampled_from([1, 4, 12, 40, 43]))
def test_encode_request_decode_round_trip(items: list[tuple[str, Any]], code: int) -> None:
    data = codec.encode_request(code, 77, items, SECRET, event_timestamp=1)
    request = codec.decode_request(data, SECRET)
    assert request.code == code
    assert request.identifier == 77
    for name in {name for name, _ in items}:
        decoded = request.values(name)
        if name == "Reply-Message":
            assert "".join(str(v) for v in decoded) == "".join(v for n, v in items if n == name)
        elif name != "Event-Timestamp" or code not in (40, 43):
            assert decoded == [normal(n, v) for n, v in items if n == name]
    touch_everything(request)


@FUZZ
@given(st.lists(attribute(), max_size=15))
def test_encode_reply_decode_response_round_trip(items: list[tuple[str, Any]]) -> None:
    items = [item for item in items if item[0] != "Proxy-State"]
    data = codec.encode_request(Code.ACCESS_REQUEST, 5, [("User-Name", "x"), ("Proxy-State", b"p")], SECRET)
    request = codec.decode_request(data, SECRET)
    reply = codec.encode_reply(request, Code.ACCESS_ACCEPT, items)
    response = codec.decode_response(reply, data[4:20], SECRET, request_code=Code.ACCESS_REQUEST)
    assert response.proxy_state == [b"p"]
    for name in {name for name, _ in items}:
        if name != "Reply-Message":
            assert response.values(name) == [normal(n, v) for n, v in items if n == name]
