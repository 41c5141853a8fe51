"""Hostile and broken bodies: each gives SoapError within a second, without expanding,
fetching or building much (tracemalloc peak), and without crashing on depth."""

from __future__ import annotations

import random
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from acs import soap
from acs.messages import Inform
from acs.soap import SoapError

SAMPLE = (Path(__file__).parents[2] / "vectors" / "cwmp" / "tr098" / "inform-2-periodic.xml").read_bytes()
BODY_START = SAMPLE.index(b"<soap-env:Body>")
MiB = 1 << 20

LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10))
          + "]><lolz>&lol9;</lolz>").encode()
QUADRATIC = (f'<?xml version="1.0"?><!DOCTYPE q [<!ENTITY a "{"x" * 100_000}">]><q>' + "&a;" * 20_000
             + "</q>").encode()


def xxe(system_id: str) -> bytes:
    return SAMPLE.replace(b"<soap-env:Envelope",
                          f'<!DOCTYPE e [<!ENTITY x SYSTEM "{system_id}">]><soap-env:Envelope'.encode(), 1).replace(
                              b"<SerialNumber>000001", b"<SerialNumber>&x;")


HOSTILE = {
    "billion laughs": LAUGHS,
    "quadratic blowup": QUADRATIC,
    "xxe file": xxe("file:///etc/passwd"),
    "xxe http": xxe("http://127.0.0.1:9/evil.dtd"),
    "parameter entity": b'<!DOCTYPE e [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]><e/>',
    "external dtd": b'<?xml version="1.0"?><!DOCTYPE e SYSTEM "file:///etc/passwd"><e/>',
    "dtd alone": b"<!DOCTYPE soap-env:Envelope>",
    "lower-case doctype": b"<!doctype e><e/>",
    "dtd in utf-8 with a latin-1 declaration": b"<?xml version='1.0' encoding='ISO-8859-1'?><!DOCTYPE e []><e/>",
    "doctype hidden in a comment": b"<!-- --><!-- <!DOCTYPE e> --><e/>",
}


@contextmanager
def bounded(seconds: float = 1.0, peak_mib: float | None = None) -> Iterator[None]:
    """Assert the block takes at most ``seconds`` of CPU and, when given, allocates at most
    ``peak_mib``. CPU time, not the clock: a test worker beside others waits for its core, and
    that wait says nothing about the parser."""
    tracemalloc.start()
    began = time.process_time()
    try:
        yield
    finally:
        elapsed = time.process_time() - began
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < seconds, f"{elapsed:.2f} s"
    if peak_mib is not None:
        assert peak < peak_mib * MiB, f"peak {peak / MiB:.1f} MiB"


def error(data: bytes) -> SoapError:
    with pytest.raises(SoapError) as caught:
        soap.parse(data)
    return caught.value


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_declarations_are_refused_at_once(name: str) -> None:
    with bounded(peak_mib=2 + len(HOSTILE[name]) * 3 / MiB):  # the decoded text and the search
        e = error(HOSTILE[name])
    assert e.refused and e.fault_code == 8003
    assert "document type or entity declaration refused" in str(e)


def test_comments_and_cdata_are_not_declarations() -> None:
    data = SAMPLE.replace(b"<Manufacturer>Huawei", b"<!-- a comment! --><Manufacturer><![CDATA[<Hua&wei>]]>")
    inform = soap.parse(data).body
    assert isinstance(inform, Inform) and inform.device.manufacturer == "<Hua&wei> Technologies Co., Ltd."


def test_deep_nesting_is_parsed_quickly_without_recursion() -> None:
    depth = soap.MAX_MARKUP // 2 - 100  # as deep as the markup limit lets through: parsed
    body = b"<soap-env:Body>" + b"<a>" * depth + b"</a>" * depth + b"</soap-env:Body></soap-env:Envelope>"
    with bounded():
        e = error(SAMPLE[:BODY_START] + body)
    assert "not in a CWMP namespace" in str(e) and e.cwmp_id == "rdvm25mx"
    body = b"<soap-env:Body>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</soap-env:Body></soap-env:Envelope>"
    with bounded():  # 100,000 levels: refused before parsing
        assert error(SAMPLE[:BODY_START] + body).fault_code == 8004


def test_too_many_tags_are_refused_before_parsing() -> None:
    data = SAMPLE[:BODY_START] + b"<soap-env:Body>" + b"<a/>" * (soap.MAX_MARKUP + 1) + b"</soap-env:Body>"
    with bounded(peak_mib=8):  # the decoded text; no tree
        e = error(data)
    assert e.fault_code == 8004 and not e.refused


@pytest.mark.parametrize("kind", ["random bytes", "ascii", "markup", "text"])
def test_four_mebibytes_of_junk(kind: str) -> None:
    rng = random.Random(kind)
    data = {
        "random bytes": lambda: rng.randbytes(4 * MiB),
        "ascii": lambda: rng.randbytes(4 * MiB).translate(bytes(b"abc <>&;/=\"'"[i % 12] for i in range(256))),
        "markup": lambda: b"<" * (4 * MiB),
        "text": lambda: b"<x>" + b"y" * (4 * MiB) + b"</x>",
    }[kind]()
    with bounded():
        error(data)


@pytest.mark.parametrize("data", [
    SAMPLE.replace(b"Huawei", "Huawéi".encode("latin-1")),
    SAMPLE.decode().encode("utf-16"),
    b"\xff\xfe<\x00e\x00/\x00>\x00",
    b"\xc3\x28",
])
def test_bytes_that_are_not_utf8(data: bytes) -> None:
    e = error(data)
    assert "not UTF-8" in str(e) and not e.refused


@pytest.mark.parametrize("cut", [1, 10, 38, 39, 100, 400, BODY_START, BODY_START + 20, len(SAMPLE) - 30,
                                 len(SAMPLE) - 1])
def test_truncated_envelopes(cut: int) -> None:
    with bounded():
        e = error(SAMPLE[:cut])
    assert "not well-formed XML" in str(e)


def test_two_rpcs_in_one_body() -> None:
    rpc = SAMPLE[SAMPLE.index(b"<cwmp:Inform>"):SAMPLE.index(b"</soap-env:Body>")]
    data = SAMPLE.replace(rpc, rpc + rpc)
    e = error(data)
    assert "the Body holds 2 elements (Inform, Inform), not one RPC" in str(e) and e.cwmp_id == "rdvm25mx"


def test_two_envelopes_in_one_body() -> None:
    assert "not well-formed XML" in str(error(SAMPLE + SAMPLE[SAMPLE.index(b"<soap-env:Envelope"):]))
