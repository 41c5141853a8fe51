"""The RouterOS API wire protocol as bytes: words, sentences and what their words mean (sans-IO).

MikroTik's API manual (help.mikrotik.com "API", section Protocol) defines the framing:

- A *word* is a length, then that many bytes. The length is big-endian in one to five bytes, its
  first byte telling how many follow::

      0x00-0x7F        1 byte   len
      0x80-0x3FFF      2 bytes  len | 0x8000
      0x4000-0x1FFFFF  3 bytes  len | 0xC00000
      0x200000-0xFFFFFFF 4 bytes len | 0xE0000000
      >= 0x10000000    5 bytes  0xF0, then len in four bytes

  A first byte of 0xF8 or more is a reserved *control byte*: "after receiving an unknown control
  byte, an API client cannot proceed, because it does not know how to interpret the following
  bytes". 0xF1-0xF7 are no length either. Both are a :class:`ProtocolError` here.
- A *sentence* is words up to a zero-length word (a single 0x00). "Empty sentences are ignored"
  by the router; :class:`Decoder` still returns them (as ``()``) so that a caller can count them.

The decoder takes the byte stream in whatever pieces TCP delivers (a word, even its length prefix,
may be split anywhere) and returns each sentence once its terminator has arrived, the same
sentences however the stream is split. It accepts a
length written in more bytes than needed (RouterOS's own decoder is not known to refuse one; the
encoder always writes the shortest form). Limits on a word and on a sentence bound the memory a
peer can make it hold; past them, and on any malformed prefix, it raises :class:`ProtocolError`
(once it has returned the sentences complete before the bad byte: the call that meets it returns
those, sets :attr:`Decoder.error`, and the next call raises) and stays failed: the stream cannot
be resynchronised, the connection must go.

Above the framing, :func:`parse_command` sorts a sentence's words as the manual does: the command
word (``/ip/address/print``), attribute words (``=name=value``, the value may hold ``=`` and may
be empty), API attribute words (``.tag=7``) and query words (``?type=ether``, kept in order);
:func:`parse_reply` does the same for a reply (``!re``, ``!done``, ``!trap``, ``!fatal``,
``!empty``). Words are bytes on the wire; text is UTF-8 with surrogate escapes by default, so that
bytes in any other codepage survive a decode and encode unchanged.

Imports nothing of lastmile and does no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "MAX_LENGTH",
    "Command",
    "Decoder",
    "ProtocolError",
    "Reply",
    "decode_length",
    "encode_length",
    "encode_sentence",
    "encode_word",
    "parse_command",
    "parse_reply",
    "text_sentence",
    "word_sentence",
]

MAX_LENGTH = 0xFFFFFFFF  # the five-byte form carries four bytes of length
ENCODING = "utf-8"
ERRORS = "surrogateescape"

_ONE = [bytes((n,)) for n in range(0x80)]


class ProtocolError(Exception):
    """The bytes are no RouterOS API stream (a control byte, a bad prefix, a word over the limit).

    The stream cannot be read on: whoever reads it must close the connection."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode_length(length: int) -> bytes:
    """The length prefix of a word of ``length`` bytes, in the shortest form."""
    if length < 0x80:
        if length < 0:
            raise ValueError(f"negative word length {length}")
        return _ONE[length]
    if length < 0x4000:
        return (length | 0x8000).to_bytes(2, "big")
    if length < 0x200000:
        return (length | 0xC00000).to_bytes(3, "big")
    if length < 0x10000000:
        return (length | 0xE0000000).to_bytes(4, "big")
    if length <= MAX_LENGTH:
        return b"\xf0" + length.to_bytes(4, "big")
    raise ValueError(f"word length {length} does not fit in the five-byte form")


def decode_length(data: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int] | None:
    """The length prefix at ``data[pos]``: ``(length, position after the prefix)``, or None when
    the prefix is not complete yet. Raises ProtocolError for a control byte or an unused prefix."""
    end = len(data)
    if pos >= end:
        return None
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    if first < 0xC0:
        if pos + 2 > end:
            return None
        return ((first & 0x3F) << 8) | data[pos + 1], pos + 2
    if first < 0xE0:
        if pos + 3 > end:
            return None
        return ((first & 0x1F) << 16) | (data[pos + 1] << 8) | data[pos + 2], pos + 3
    if first < 0xF0:
        if pos + 4 > end:
            return None
        return int.from_bytes(data[pos : pos + 4], "big") & 0x0FFFFFFF, pos + 4
    if first == 0xF0:
        if pos + 5 > end:
            return None
        return int.from_bytes(data[pos + 1 : pos + 5], "big"), pos + 5
    if first >= 0xF8:
        raise ProtocolError(f"reserved control byte 0x{first:02X}")
    raise ProtocolError(f"no length prefix starts with 0x{first:02X}")


def encode_word(word: bytes) -> bytes:
    """One word: its length prefix and its bytes. A word cannot be empty: that is the end of
    a sentence."""
    n = len(word)
    if n < 0x80:
        if n == 0:
            raise ValueError("an empty word would end the sentence")
        return _ONE[n] + word
    return encode_length(n) + word


def encode_sentence(words: Iterable[bytes]) -> bytes:
    """The words of one sentence and its terminating zero-length word."""
    out = bytearray()
    for word in words:
        n = len(word)
        if n < 0x80:
            if n == 0:
                raise ValueError("an empty word would end the sentence")
            out.append(n)
        else:
            out += encode_length(n)
        out += word
    out.append(0)
    return bytes(out)


def word_sentence(words: Iterable[str], encoding: str = ENCODING) -> bytes:
    """A sentence of text words (UTF-8 with surrogate escapes unless told)."""
    errors = ERRORS if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else "strict"
    return encode_sentence(w.encode(encoding, errors) for w in words)


def text_sentence(sentence: Sequence[bytes], encoding: str = ENCODING) -> tuple[str, ...]:
    """A decoded sentence's words as text (UTF-8 with surrogate escapes unless told)."""
    errors = ERRORS if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else "replace"
    return tuple(w.decode(encoding, errors) for w in sentence)


class Decoder:
    """Splits a byte stream into sentences; feed it chunks as they arrive.

    ``max_word`` and ``max_sentence`` (bytes of content) bound what a peer can make it buffer."""

    def __init__(self, *, max_word: int = 1 << 26, max_sentence: int = 1 << 26) -> None:
        self.max_word = max_word
        self.max_sentence = max_sentence
        self._buffer = bytearray()
        self._words: list[bytes] = []
        self._sentence_bytes = 0
        self._failed: ProtocolError | None = None

    @property
    def error(self) -> ProtocolError | None:
        """Why the stream is unreadable (None: it is not, so far)."""
        return self._failed

    @property
    def mid_sentence(self) -> bool:
        """Some bytes of a sentence arrived, not its end (a stream that stops here was cut)."""
        return bool(self._words or self._buffer)

    @property
    def buffered(self) -> int:
        """Bytes held for the sentence not complete yet (words read plus the partial word)."""
        return self._sentence_bytes + len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[bytes, ...]]:
        """Add received bytes; return every sentence they complete, in order (``()`` for an
        empty one). Once the stream turns out bad, raises ProtocolError, on this call if it
        completed no sentence before the bad byte (else on the next), and on every later one."""
        if self._failed is not None:
            raise self._failed
        buf = self._buffer
        buf += data
        sentences: list[tuple[bytes, ...]] = []
        words = self._words
        pos = 0
        size = len(buf)
        try:
            while pos < size:
                first = buf[pos]
                if first < 0x80:  # the common case, inline: a short word or the terminator
                    length, start = first, pos + 1
                else:
                    decoded = decode_length(buf, pos)
                    if decoded is None:
                        break
                    length, start = decoded
                if length == 0:
                    sentences.append(tuple(words))
                    words.clear()
                    self._sentence_bytes = 0
                    pos = start
                    continue
                if length > self.max_word:
                    raise ProtocolError(f"word of {length} bytes, more than the limit of {self.max_word}")
                if self._sentence_bytes + length > self.max_sentence:
                    raise ProtocolError(f"sentence longer than the limit of {self.max_sentence} bytes")
                end = start + length
                if end > size:
                    break
                words.append(bytes(buf[start:end]))
                self._sentence_bytes += length
                pos = end
        except ProtocolError as e:
            self._failed = e
            if not sentences:
                raise
        finally:
            del buf[:pos]
        return sentences


# --- what the words of a sentence mean ----------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A sentence sent to the router, its words sorted by kind (API manual, "API words")."""

    word: str
    #: ``=name=value`` words; a name given twice keeps its last value
    attributes: dict[str, str] = field(default_factory=dict)
    #: ``.name=value`` words (``.tag``)
    api: dict[str, str] = field(default_factory=dict)
    #: ``?...`` words without their ``?``, in order (their order is significant)
    queries: tuple[str, ...] = ()
    #: words that are none of these (no prefix the manual knows)
    other: tuple[str, ...] = ()

    @property
    def tag(self) -> str | None:
        """The ``.tag``, None when absent or empty (an empty tag tags nothing)."""
        return self.api.get("tag") or None

    @property
    def menu(self) -> str:
        """``/ip/address`` of ``/ip/address/print``."""
        return self.word.rpartition("/")[0]

    @property
    def verb(self) -> str:
        """``print`` of ``/ip/address/print``."""
        return self.word.rpartition("/")[2]


def _split_attribute(body: str) -> tuple[str, str]:
    name, _, value = body.partition("=")
    return name, value


def parse_command(words: Sequence[str]) -> Command:
    """A sentence's words as a :class:`Command` (the first word is the command, whatever it is)."""
    if not words:
        raise ProtocolError("an empty sentence has no command")
    attributes: dict[str, str] = {}
    api: dict[str, str] = {}
    queries: list[str] = []
    other: list[str] = []
    for word in words[1:]:
        head = word[:1]
        if head == "=":
            name, value = _split_attribute(word[1:])
            attributes[name] = value
        elif head == ".":
            name, value = _split_attribute(word[1:])
            api[name] = value
        elif head == "?":
            queries.append(word[1:])
        else:
            other.append(word)
    return Command(words[0], attributes, api, tuple(queries), tuple(other))


@dataclass(frozen=True)
class Reply:
    """A sentence the router sent: its reply word and attributes."""

    kind: str  # "!re", "!done", "!trap", "!fatal", "!empty"
    attributes: dict[str, str] = field(default_factory=dict)
    tag: str | None = None
    #: words without a prefix (the reason of a ``!fatal``)
    other: tuple[str, ...] = ()

    @property
    def message(self) -> str | None:
        """A ``!trap``'s message, a ``!fatal``'s reason."""
        if self.kind == "!fatal":
            return self.other[0] if self.other else None
        return self.attributes.get("message")


def parse_reply(words: Sequence[str]) -> Reply:
    command = parse_command(words)
    return Reply(command.word, command.attributes, command.tag, command.other)
