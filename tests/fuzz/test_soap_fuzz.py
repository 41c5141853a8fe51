"""Fuzzing acs.soap (smoke size).

Invariant, as h11's fuzz harness puts it: any body either parses into an Envelope, or raises
SoapError, never anything else; and whatever parses renders back into an envelope that parses
to the same value (its other header elements aside, whose names render only when they are
plain). Seeds are the recorded envelopes (tests/vectors/cwmp), mutated as bytes and as text.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acs import soap
from acs.messages import Envelope
from acs.soap import SoapError
from tests.profiles import examples

VECTORS = Path(__file__).parents[1] / "vectors" / "cwmp"
SEEDS = [p.read_bytes() for p in sorted(VECTORS.glob("tr*/*.xml"))]
FUZZ = settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
SNIPPETS = [b"<", b">", b"&", b"&amp;", b"&#0;", b"&#x10FFFF;", b"<!--", b"-->", b"<![CDATA[", b"]]>", b"<!DOCTYPE a>",
            b"</soap-env:Body>", b"<cwmp:Inform>", b"<soap-env:Fault>", b"xmlns:cwmp=\"urn:dslforum-org:cwmp-1-3\"",
            b"\xff", b"\xc3", b"\x00", b"\xef\xbb\xbf", b"<?xml version='1.0'?>", b"999999999999", b"-1", b"true"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "snippet", "delete", "truncate", "splice", "swap"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=12))
        elif op == "snippet":
            data[pos:pos] = draw(st.sampled_from(SNIPPETS))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 40))]
        elif op == "truncate":
            del data[pos:]
        elif op == "splice":
            seed = draw(st.sampled_from(SEEDS))
            start = draw(st.integers(0, len(seed) - 1))
            data[pos:pos] = seed[start : start + draw(st.integers(1, 200))]
        elif op == "swap":  # one element's text for another's: well-formed, wrong content
            text = draw(st.sampled_from([b"0", b"", b"x", b"1.5", b"false", b"Device."]))
            end = data.find(b"</", pos)
            start = data.rfind(b">", 0, end) + 1
            if 0 < start <= end:
                data[start:end] = text
    return bytes(data)


def check(data: bytes) -> None:
    try:
        parsed = soap.parse(data)
    except SoapError:
        return
    assert isinstance(parsed, Envelope)
    plain = dataclasses.replace(parsed, extra={})
    assert soap.parse(soap.render(plain)) == (plain if plain.body is not None else Envelope(None))


@FUZZ
@given(mutated())
def test_mutated_envelopes_parse_or_raise_soap_error(data: bytes) -> None:
    check(data)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_parse_or_raise_soap_error(data: bytes) -> None:
    check(data)


def test_the_seeds_parse() -> None:
    assert len(SEEDS) == 28
    for seed in SEEDS:
        assert soap.parse(seed).body is not None
