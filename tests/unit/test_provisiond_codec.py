"""daemons.provisiond.codec: RouterOS API words and sentences as bytes (API manual, "Protocol").

The length prefixes are checked at every boundary of the manual's table, against the manual's
formulas and, where its four-byte limit allows, against librouteros's own encoder and decoder.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from librouteros import protocol as librouteros_protocol

from daemons.provisiond.codec import (
    Decoder,
    ProtocolError,
    decode_length,
    encode_length,
    encode_sentence,
    encode_word,
    parse_command,
    parse_reply,
    text_sentence,
    word_sentence,
)
from tests.profiles import examples

# (length, its prefix as the manual's table writes it)
BOUNDARIES = [
    (0, "00"),
    (1, "01"),
    (0x7F, "7f"),
    (0x80, "8080"),
    (0x3FFF, "bfff"),
    (0x4000, "c04000"),
    (0x1FFFFF, "dfffff"),
    (0x200000, "e0200000"),
    (0xFFFFFFF, "efffffff"),
    (0x10000000, "f010000000"),
    (0xFFFFFFFF, "f0ffffffff"),
]


@pytest.mark.parametrize(("length", "prefix"), BOUNDARIES)
def test_length_prefix_at_each_boundary(length: int, prefix: str) -> None:
    encoded = encode_length(length)
    assert encoded.hex() == prefix
    assert decode_length(encoded) == (length, len(encoded))
    assert decode_length(b"\x99" + encoded + b"rest", 1) == (length, 1 + len(encoded))


@pytest.mark.parametrize(("length", "prefix"), BOUNDARIES)
def test_every_truncated_prefix_asks_for_more(length: int, prefix: str) -> None:
    encoded = bytes.fromhex(prefix)
    for cut in range(len(encoded)):
        assert decode_length(encoded[:cut]) is None


@pytest.mark.parametrize("length", [n for n, _ in BOUNDARIES if n < 0x10000000])
def test_prefix_agrees_with_librouteros(length: int) -> None:
    encoded = encode_length(length)
    assert encoded == librouteros_protocol.encode_length(length)
    assert librouteros_protocol.decode_length(encoded) == length


@pytest.mark.parametrize("length", [0x7F, 0x80, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000])
def test_words_round_trip_at_the_boundaries(length: int) -> None:
    word = bytes(range(256)) * (length // 256) + bytes(length % 256)
    assert len(word) == length
    stream = encode_sentence([b"/cmd", word, b"=a=b"])
    assert Decoder().feed(stream) == [(b"/cmd", word, b"=a=b")]


@pytest.mark.parametrize("length", [0xFFFFFFF, 0x10000000, 0xFFFFFFFF])
def test_huge_word_waits_for_its_bytes_then_the_limit_refuses_it(length: int) -> None:
    prefix = encode_length(length)
    roomy = Decoder(max_word=0xFFFFFFFF, max_sentence=0xFFFFFFFF)
    assert roomy.feed(prefix + b"abc") == []
    assert roomy.mid_sentence
    assert roomy.buffered == len(prefix) + 3
    with pytest.raises(ProtocolError, match="limit"):
        Decoder(max_word=1 << 20).feed(prefix)


@pytest.mark.parametrize("first", range(0xF8, 0x100))
def test_control_bytes_are_refused(first: int) -> None:
    decoder = Decoder()
    assert decoder.feed(b"\x04/cmd") == []  # a partial sentence before it
    with pytest.raises(ProtocolError, match="control byte"):
        decoder.feed(bytes([first]))
    with pytest.raises(ProtocolError):  # the stream stays unreadable
        decoder.feed(b"\x00")


@pytest.mark.parametrize("first", range(0xF1, 0xF8))
def test_prefixes_between_five_bytes_and_control_bytes_are_refused(first: int) -> None:
    with pytest.raises(ProtocolError, match="no length prefix"):
        decode_length(bytes([first, 0, 0, 0, 0]))


def test_sentences_before_a_control_byte_come_out_then_the_error() -> None:
    decoder = Decoder()
    assert decoder.feed(encode_sentence([b"/a"]) + encode_sentence([b"/b"]) + b"\xff" + encode_sentence([b"/c"])) == [
        (b"/a",), (b"/b",)]
    assert decoder.error is not None and "control byte 0xFF" in decoder.error.reason
    with pytest.raises(ProtocolError, match="0xFF"):
        decoder.feed(b"")


def test_five_byte_prefix_decodes() -> None:
    assert Decoder().feed(b"\xf0\x00\x00\x00\x03abc\x00") == [(b"abc",)]


def test_non_minimal_prefixes_are_read() -> None:
    # 3 as two, three and four bytes, and the terminator as two bytes
    stream = b"\x80\x03abc" + b"\xc0\x00\x03def" + b"\xe0\x00\x00\x03ghi" + b"\x80\x00"
    assert Decoder().feed(stream) == [(b"abc", b"def", b"ghi")]


def test_empty_sentences_are_returned_as_such() -> None:
    assert Decoder().feed(b"\x00\x00" + encode_sentence([b"/x"]) + b"\x00") == [(), (), (b"/x",), ()]


def test_the_manuals_login_sentence() -> None:
    assert encode_sentence([b"/login", b"=name=admin", b"=password="]) == (
        b"\x06/login" + b"\x0b=name=admin" + b"\x0a=password=" + b"\x00"
    )


def test_split_at_every_byte() -> None:
    stream = encode_sentence([b"/ip/address/print", b"x" * 0x80, b"y" * 0x4000]) + encode_sentence([b"!done"])
    expected = Decoder().feed(stream)
    assert len(expected) == 2
    for cut in range(len(stream) + 1):
        decoder = Decoder()
        assert decoder.feed(stream[:cut]) + decoder.feed(stream[cut:]) == expected, cut
        assert not decoder.mid_sentence


def test_byte_by_byte() -> None:
    first = encode_sentence([b"!re", b"=.id=*1", b"=name=" + b"n" * 300])
    stream = first + encode_sentence([b"!done"])
    ends = {len(first) - 1, len(stream) - 1}
    decoder = Decoder()
    got = []
    for i in range(len(stream)):
        got += decoder.feed(stream[i : i + 1])
        assert decoder.mid_sentence == (i not in ends), i
    assert got == [(b"!re", b"=.id=*1", b"=name=" + b"n" * 300), (b"!done",)]
    assert not decoder.mid_sentence and decoder.buffered == 0


def state(decoder: Decoder) -> tuple[bool, int]:
    return decoder.mid_sentence, decoder.buffered


def test_mid_sentence_and_buffered() -> None:
    decoder = Decoder()
    assert state(decoder) == (False, 0)
    decoder.feed(b"\x03ab")
    assert state(decoder) == (True, 3)
    decoder.feed(b"c")
    assert state(decoder) == (True, 3)  # one word read, no terminator yet
    assert decoder.feed(b"\x00") == [(b"abc",)]
    assert state(decoder) == (False, 0)


def test_sentence_limit() -> None:
    decoder = Decoder(max_word=100, max_sentence=150)
    decoder.feed(encode_word(b"a" * 100))
    with pytest.raises(ProtocolError, match="sentence longer"):
        decoder.feed(encode_word(b"b" * 60))


def test_encode_refuses_impossible_lengths() -> None:
    with pytest.raises(ValueError, match="negative"):
        encode_length(-1)
    with pytest.raises(ValueError, match="five-byte"):
        encode_length(0x100000000)
    with pytest.raises(ValueError, match="empty word"):
        encode_sentence([b"/x", b""])
    with pytest.raises(ValueError, match="empty word"):
        encode_word(b"")


def test_parse_command_sorts_the_words() -> None:
    command = parse_command(["/queue/simple/print", "=.proplist=.id,name", "=name=a=b", "=comment=",
                             "?name=x", "?#!", ".tag=7", "stray", "=name=last"])
    assert command.word == "/queue/simple/print"
    assert command.menu == "/queue/simple" and command.verb == "print"
    assert command.attributes == {".proplist": ".id,name", "name": "last", "comment": ""}
    assert command.queries == ("name=x", "#!")
    assert command.tag == "7"
    assert command.other == ("stray",)
    assert parse_command(["/cancel", "=tag=7", ".tag="]).tag is None  # an empty tag tags nothing
    with pytest.raises(ProtocolError):
        parse_command([])


def test_parse_reply() -> None:
    trap = parse_reply(["!trap", "=category=0", "=message=no such command prefix", ".tag=a"])
    assert (trap.kind, trap.message, trap.tag, trap.attributes["category"]) == (
        "!trap", "no such command prefix", "a", "0")
    fatal = parse_reply(["!fatal", "session terminated on request"])
    assert fatal.kind == "!fatal" and fatal.message == "session terminated on request"
    assert parse_reply(["!done", "=ret=*1A"]).attributes == {"ret": "*1A"}


def test_text_keeps_any_bytes() -> None:
    raw = (b"/x", b"=comment=\xe9t\xe9 \xff", "=comment=Zürich ✓".encode())
    text = text_sentence(raw)
    assert text[2] == "=comment=Zürich ✓"
    assert word_sentence(text) == encode_sentence(raw)
    assert text_sentence(raw, "latin-1")[1] == "=comment=été ÿ"


# --- properties -----------------------------------------------------------------------------------

words = st.binary(min_size=1, max_size=300) | st.binary(min_size=0x3FF0, max_size=0x4010)
sentences = st.lists(st.lists(words, min_size=1, max_size=6).map(tuple), max_size=5)


@settings(max_examples=examples(200))
@given(st.integers(0, 0xFFFFFFFF))
def test_length_round_trip(length: int) -> None:
    encoded = encode_length(length)
    assert decode_length(encoded) == (length, len(encoded))
    assert len(encoded) == 1 + (length >= 0x80) + (length >= 0x4000) + (length >= 0x200000) + (length >= 0x10000000)


@settings(max_examples=examples(200))
@given(st.integers(0, 0x10000000 - 1))
def test_length_agrees_with_librouteros(length: int) -> None:
    encoded = encode_length(length)
    assert encoded == librouteros_protocol.encode_length(length)
    assert librouteros_protocol.decode_length(encoded) == length


@settings(max_examples=examples(100), deadline=None)
@given(sentences, st.lists(st.integers(0, 1 << 16), max_size=8))
def test_sentences_round_trip_in_any_chunks(stream_sentences: list[tuple[bytes, ...]], cuts: list[int]) -> None:
    stream = b"".join(encode_sentence(s) for s in stream_sentences)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    decoder = Decoder()
    got: list[tuple[bytes, ...]] = []
    start = 0
    for point in [*points, len(stream)]:
        got += decoder.feed(stream[start:point])
        start = point
    assert got == stream_sentences
    assert not decoder.mid_sentence


@settings(max_examples=examples(100))
@given(st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=6))
def test_text_words_round_trip(text_words: list[str]) -> None:
    [decoded] = Decoder().feed(word_sentence(text_words))
    assert list(text_sentence(decoded)) == text_words
