"""Fuzzing the RouterOS API word codec and the router double behind it (reliability.md M-9, smoke size).

Invariant, as h11's fuzz harness puts it: any byte stream either decodes or raises ProtocolError,
never anything else, and whichever way TCP splits it, the same sentences come out (or the same
error). What decodes reads as text and as a command; encoding it again decodes to itself. Seeds
are sentences a client and a router exchange (login, a tagged print with queries, a reply with
long words in two- and three-byte lengths), mutated with the boundary bytes of the length
prefixes (0x7F/0x80, 0xBF/0xC0, 0xDF/0xE0, 0xEF/0xF0, control bytes 0xF8-0xFF).

The double itself (tests.fakes.routeros) gets fuzzed commands over a real connection: every one
is answered with sentences that decode and end in ``!done`` (or ``!fatal``, which closes), and
the router still serves a fresh connection afterwards. ``make fuzz`` runs both a hundred times
longer (the nightly Hypothesis profile).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemons.provisiond.codec import (
    Decoder,
    ProtocolError,
    encode_sentence,
    parse_command,
    parse_reply,
    text_sentence,
    word_sentence,
)
from tests.fakes.routeros import FakeRouter
from tests.profiles import examples

FUZZ = settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])

SEEDS = [
    word_sentence(["/login", "=name=admin", "=password=secret"]),
    word_sentence(["/ip/firewall/address-list/print", "=.proplist=.id,address,comment", "?list=blocked",
                   "?=disabled=no", "?#&", ".tag=17"]),
    encode_sentence([b"!re", b"=.id=*1A", b"=comment=" + b"c" * 200, b"=x=" + b"y" * 0x4000]) + b"\x00",
    word_sentence(["!trap", "=category=0", "=message=no such command prefix"]) + word_sentence(["!done"]),
    b"\xf0\x00\x00\x00\x05/quit\x00" + b"\xe0\x00\x00\x05!done\x00",
]
INTERESTING = [0x00, 0x01, 0x7F, 0x80, 0x81, 0xBF, 0xC0, 0xDF, 0xE0, 0xEF, 0xF0, 0xF1, 0xF7, 0xF8, 0xFE, 0xFF]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "splice", "repeat"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.sampled_from(INTERESTING))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=12))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 10))]
        elif op == "truncate":
            del data[pos:]
        elif op == "splice":
            other = draw(st.sampled_from(SEEDS))
            data[pos:pos] = other[: draw(st.integers(1, 40))]
        elif op == "repeat" and data:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 20))]
    return bytes(data)


def decode(chunks: list[bytes], limit: int = 1 << 16) -> tuple[list[tuple[bytes, ...]], str | None]:
    """Sentences the chunks decode to, and the ProtocolError's reason if one was raised."""
    decoder = Decoder(max_word=limit, max_sentence=limit)
    out: list[tuple[bytes, ...]] = []
    for chunk in chunks:
        try:
            out += decoder.feed(chunk)
        except ProtocolError as e:
            return out, e.reason
    return out, decoder.error.reason if decoder.error else None


def read_everything(sentences: list[tuple[bytes, ...]]) -> None:
    """As the double reads a sentence: text, then command; and its re-encoding reads back."""
    for sentence in sentences:
        words = text_sentence(sentence)
        if words:
            parse_command(words)
            parse_reply(words)
            assert Decoder().feed(encode_sentence(sentence)) == [sentence]


def check_stream(data: bytes, cuts: list[int]) -> None:
    whole, error = decode([data])
    read_everything(whole)
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    # the same sentences and the same verdict however TCP splits the stream
    assert decode(pieces) == (whole, error)
    if len(data) <= 300:
        assert decode([data[i : i + 1] for i in range(len(data))]) == (whole, error)


@FUZZ
@given(st.binary(max_size=600), st.lists(st.integers(0, 1000), max_size=6))
def test_random_bytes_only_raise_protocol_error(data: bytes, cuts: list[int]) -> None:
    check_stream(data, cuts)


@FUZZ
@given(mutated(), st.lists(st.integers(0, 1 << 15), max_size=6))
def test_mutated_streams_only_raise_protocol_error(data: bytes, cuts: list[int]) -> None:
    check_stream(data, cuts)


@FUZZ
@given(st.lists(st.lists(st.binary(min_size=1, max_size=0x4100), min_size=1, max_size=5).map(tuple), max_size=4))
def test_encode_then_decode_is_the_identity(sentences: list[tuple[bytes, ...]]) -> None:
    stream = b"".join(encode_sentence(s) for s in sentences)
    assert decode([stream], limit=1 << 20) == (sentences, None)


# --- the double under fuzzed commands ------------------------------------------------------------

MENUS = ["/ip/firewall/address-list", "/queue/simple", "/ppp/secret", "/ppp/profile", "/ppp/active",
         "/ip/dhcp-server", "/ip/dhcp-server/lease", "/system/identity", "/system/resource", "/nowhere", ""]
VERBS = ["print", "getall", "add", "set", "remove", "unset", "enable", "disable", "listen", "move", "quit", ""]
NAMES = [".id", "numbers", "list", "address", "comment", "timeout", "disabled", "dynamic", "name", "target",
         "max-limit", "limit-at", "priority", "parent", "queue", "burst-time", "password", "profile", "service",
         "remote-address", "mac-address", "server", "interface", "value-name", ".proplist", "count-only",
         "place-before", "follow", "tag"]
VALUES = ["", "*1", "*2,*1", "*FFFF", "x", "10.0.0.1", "10.0.0.0/24", "1.2.3.4-1.2.3.9", "10M/5M", "1k", "yes",
          "no", "true", "8/8", "0", "1h30m", "00:01:00", "aa:bb:cc:dd:ee:ff", "none", "all", "default",
          ".id,name,address", "Zürich ✓", "=", "a=b", "-1", "9" * 30]
QUERIES = ["?name", "?-comment", "?=name=x", "?list=x", "?<address=10.0.0.5", "?>comment=", "?#!", "?#&", "?#|",
           "?#0", "?#1.", "?#..|!", "?#x", "?#", "?", "?=.id=*1"]


@st.composite
def command(draw: st.DrawFn) -> list[str]:
    menu, verb = draw(st.sampled_from(MENUS)), draw(st.sampled_from(VERBS))
    words = [f"{menu}/{verb}" if menu or verb else draw(st.sampled_from(["/", "/cancel", "junk"]))]
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["attribute", "attribute", "query", "tag", "raw"]))
        if kind == "attribute":
            words.append(f"={draw(st.sampled_from(NAMES))}={draw(st.sampled_from(VALUES) | st.text(max_size=8))}")
        elif kind == "query":
            words.append(draw(st.sampled_from(QUERIES)))
        elif kind == "tag":
            words.append(f".tag={draw(st.integers(0, 3))}")
        else:
            words.append(draw(st.text(min_size=1, max_size=10)))
    return words


class Client:
    """A bare API client on a socket, for commands librouteros would not send."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.decoder = Decoder()
        self.pending: list[tuple[bytes, ...]] = []

    def send(self, words: list[str]) -> None:
        self.sock.sendall(word_sentence(words))

    def read(self) -> tuple[str, ...] | None:
        """The next reply sentence; None at the end of the stream."""
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.pending += self.decoder.feed(data)
        return text_sentence(self.pending.pop(0))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def router() -> Iterator[FakeRouter]:
    with FakeRouter(password="pw").threaded() as double:
        double.seed("/ip/dhcp-server", [{"name": "dhcp1", "interface": "ether2"}])
        double.seed("/queue/simple", [{"name": "x", "target": "10.0.0.9"}])
        yield double


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                               HealthCheck.function_scoped_fixture])
@given(st.lists(command(), min_size=1, max_size=4))
def test_the_double_answers_every_command(router: FakeRouter, commands: list[list[str]]) -> None:
    client = Client(router.port)
    try:
        client.send(["/login", "=name=admin", "=password=pw"])
        assert client.read() == ("!done",)
        for words in commands:
            sent = parse_command(words)
            client.send(words)
            waiting = {sent.tag}
            if sent.verb == "listen" or (sent.verb in ("print", "getall")
                                         and {"follow", "follow-only"} & set(sent.attributes)):
                client.send(["/cancel", *([f"=tag={sent.tag}"] if sent.tag else []), ".tag=cancel"])
                waiting.add("cancel")
            while waiting:
                reply = client.read()
                assert reply is not None, f"the connection closed without !fatal after {words}"
                parsed = parse_reply(reply)
                assert parsed.kind in ("!re", "!done", "!trap", "!empty", "!fatal"), reply
                if parsed.kind == "!fatal":
                    assert client.read() is None  # !fatal, then the router closes
                    return
                if parsed.kind == "!trap":
                    assert set(parsed.attributes) <= {"message", "category"}, reply  # as librouteros needs
                if parsed.kind == "!done":
                    waiting.discard(parsed.tag)
    finally:
        client.close()
    assert not router.protocol_errors and not router.internal_errors, router.internal_errors[:1]
    fresh = Client(router.port)
    try:
        fresh.send(["/login", "=name=admin", "=password=pw"])
        assert fresh.read() == ("!done",)
        fresh.send(["/system/identity/print"])
        assert fresh.read() is not None
    finally:
        fresh.close()
