"""The codecs under fuzzing, each as a function of one input and the one error it may raise.

Shared by the Hypothesis fuzz tests (``tests/fuzz/test_*_fuzz.py``) and the mutation campaign
(``tests/fuzz/campaign.py``). A target decodes the bytes it is given and reads everything that
decoded (every typed accessor, every record), as a daemon would; its contract is that for any
input it returns, or raises its codec's own error, never anything else. Seeds are the golden
vectors under ``tests/vectors/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from daemons import mqtt
from daemons.provisiond import codec as routeros_codec
from flowcollector.codec import CodecError as FlowCodecError
from flowcollector.codec import Decoder, DecoderSettings
from radiusd import codec
from radiusd.codec import CodecError as RadiusCodecError

VECTORS = Path(__file__).parents[1] / "vectors"


@dataclass(frozen=True)
class Target:
    """One codec under fuzzing."""

    name: str
    #: the only exception ``run`` may raise
    error: type[Exception]
    #: inputs to mutate
    seeds: Sequence[bytes]
    #: decode one input and read all of it; ``make`` gives a fresh one (targets may keep state)
    make: Callable[[], Callable[[bytes], object]]
    #: no input may take longer (the hang guard of reliability.md: R-2 100 ms, N-2 5 ms)
    limit_ms: float
    #: the reliability check it measures
    check: str
    #: how often an input is a seed as it is (NetFlow data needs its template to arrive first)
    unmutated: float = 0.0
    #: makes a mutated input's framing consistent again, for half of them (the rest stay as mutated)
    repair: Callable[[bytes], bytes] | None = None


# --- RADIUS: decode as a request and as a response, with typed access of every attribute ---

SECRET = b"lastmile-vector-secret"
RADIUS_SEEDS = [bytes.fromhex(p.read_text()) for p in sorted((VECTORS / "radius").glob("*.hex"))]
RADIUS_MALFORMED = [bytes.fromhex(p["hex"])
                    for p in json.loads((VECTORS / "radius" / "malformed.json").read_text())["packets"]]
TABLE = codec.default_table()
ACCESSORS = [
    name for cls in (codec.Packet, codec.Request) for name, member in vars(cls).items() if isinstance(member, property)
]


def touch_everything(packet: codec.Packet) -> None:
    """Every typed accessor, every attribute of the dictionary by name, and the whole list."""
    for name in ACCESSORS:
        getattr(packet, name)
    packet.attributes()
    for name in TABLE.by_name:
        packet.get(name)
        packet.values(name)
    repr(packet)


def find_ma(data: bytes) -> int:
    """Offset of a well-formed Message-Authenticator value, 0 if none (lenient walk)."""
    pos = 20
    while pos + 2 <= len(data) and data[pos + 1] >= 2:
        if data[pos] == 80 and data[pos + 1] == 18:
            return pos + 2
        pos += data[pos + 1]
    return 0


def resign(data: bytes) -> bytes:
    """Fix Length and sign the packet as a NAS with SECRET would, so that a mutated packet gets
    past the authenticator checks and reaches the accessors."""
    if len(data) < 20:
        return data
    data = data[:2] + min(len(data), 0xFFFF).to_bytes(2, "big") + data[4:]
    code = data[0]
    vector = data[4:20] if code in (1, 12) else bytes(16)
    ma = find_ma(data)
    if ma:
        zeroed = data[:4] + vector + data[20:ma] + bytes(16) + data[ma + 16 :]
        data = data[:ma] + hmac.digest(SECRET, zeroed, "md5") + data[ma + 16 :]
    if code not in (1, 12):
        data = data[:4] + hashlib.md5(data[:4] + bytes(16) + data[20:] + SECRET).digest() + data[20:]
    return data


def radius_decode(data: bytes) -> None:
    """The bytes as received and re-signed, each decoded as a request (lenient, so that as much as
    possible reaches the accessors) and as a response, every decoded packet read in full.

    Raises the CodecError of the re-signed request when it was dropped (what a NAS sending
    these bytes would see), once all four decodes have run."""
    dropped = None
    for candidate in (data, resign(data)):
        try:
            touch_everything(codec.decode_request(candidate, SECRET, require_ma=False, limit_proxy_state=False))
        except RadiusCodecError as e:
            dropped = e if candidate is not data else None
        with contextlib.suppress(RadiusCodecError):
            touch_everything(codec.decode_response(candidate, candidate[4:20], SECRET))
    if dropped is not None:
        raise dropped


RADIUS = Target("radius", RadiusCodecError, RADIUS_SEEDS + RADIUS_MALFORMED, lambda: radius_decode, 100.0, "R-2")


# --- NetFlow v5/v9 and IPFIX (N-2): one long-lived decoder, every record read ---

NETFLOW_VECTORS = [[bytes.fromhex(line) for line in p.read_text().splitlines() if line and not line.startswith("#")]
                   for p in sorted((VECTORS / "netflow").glob("*.hex"))]
NETFLOW_SETTINGS = DecoderSettings(max_templates=64, max_templates_per_domain=16, max_domains=8, hold_max_sets=8)
NOW = 1_790_000_000.5


def netflow_decoder() -> Callable[[bytes], object]:
    """A decoder that lives as long as the campaign (its template and hold tables bounded by
    NETFLOW_SETTINGS), its clock moving and its tables expired as the collector's timer does, fed
    from a few exporters; every record of every batch is read."""
    decoder = Decoder(NETFLOW_SETTINGS)
    exporters = [f"192.0.2.{i}" for i in range(4)]
    count = 0

    def decode(data: bytes) -> int:
        nonlocal count
        count += 1
        now = NOW + count / 1000  # a millisecond an input: templates and held sets age
        if count % 10_000 == 0:
            decoder.expire(now)
        # mostly the first exporter (whose templates the seeds carry), now and then another
        exporter = exporters[(count >> 3) % len(exporters)] if count % 8 == 7 else exporters[0]
        result = decoder.decode(data, exporter, now)
        records = 0
        for batch in result.batches:
            records += sum(1 for _ in batch.rows())
            batch.flows()
        return records

    return decode


def reframe(data: bytes) -> bytes:
    """The datagram's framing made consistent again: the v5 record count, the IPFIX length, set
    lengths that overrun clamped to the end, a trailing fragment of a set header cut. Most
    mutations break a length, and the decoder refuses the datagram before any set is read; this
    is the NetFlow counterpart of :func:`resign`."""
    b = bytearray(data)
    version = int.from_bytes(b[:2], "big") if len(b) >= 2 else 0
    if version == 5 and len(b) >= 24:
        count = (len(b) - 24) // 48
        del b[24 + 48 * count :]
        b[2:4] = count.to_bytes(2, "big")
    elif version in (9, 10) and len(b) >= (20 if version == 9 else 16):
        off = 20 if version == 9 else 16
        while off + 4 <= len(b):
            set_len = int.from_bytes(b[off + 2 : off + 4], "big")
            if set_len < 4 or set_len > len(b) - off:
                b[off + 2 : off + 4] = min(len(b) - off, 0xFFFF).to_bytes(2, "big")
                del b[off + 0xFFFF :]
                break
            off += set_len
        else:
            del b[off:]
        if version == 10:
            b[2:4] = min(len(b), 0xFFFF).to_bytes(2, "big")
    return bytes(b)


NETFLOW = Target("netflow", FlowCodecError, [dg for vector in NETFLOW_VECTORS for dg in vector], netflow_decoder,
                 5.0, "N-2", unmutated=0.1, repair=reframe)


# --- MQTT: the Reader over what a broker sends, and the packets a publisher reads ---

MQTT_SEEDS = [bytes.fromhex(p.read_text()) for p in sorted((VECTORS / "mqtt").glob("*.hex"))]


def mqtt_read(data: bytes) -> int:
    """The stream whole and in two pieces, each to a fresh Reader (a ProtocolError closes the
    connection); the acknowledgements and CONNACKs read as daemons.events reads them."""
    packets = mqtt.Reader().feed(data)
    reader = mqtt.Reader()
    half = len(data) // 2
    assert reader.feed(data[:half]) + reader.feed(data[half:]) == packets, "a split stream reads otherwise"
    for kind, _, body in packets:
        if kind is mqtt.PacketType.CONNACK:
            mqtt.connack_error(body)
        elif kind in (mqtt.PacketType.PUBACK, mqtt.PacketType.PUBREC, mqtt.PacketType.PUBCOMP):
            mqtt.packet_id(body)
    return len(packets)


MQTT = Target("mqtt", mqtt.ProtocolError, MQTT_SEEDS, lambda: mqtt_read, 5.0, "MQTT reader")


# --- RouterOS API (M-9): the word codec of the router double, whole and split, as text and parsed ---

ROUTEROS_SEEDS = [
    routeros_codec.word_sentence(["/login", "=name=admin", "=password=secret"]),
    routeros_codec.word_sentence(["/queue/simple/print", "=.proplist=.id,name,max-limit,comment", "?disabled=no",
                                 ".tag=7"]),
    routeros_codec.word_sentence(["/ip/firewall/address-list/add", "=list=blocked", "=address=10.0.0.1",
                                 "=comment=lastmile:s42 Jörg Müller", ".tag=8"]),
    routeros_codec.encode_sentence([b"!re", b"=.id=*1A", b"=comment=" + b"c" * 200, b"=x=" + b"y" * 0x4000])
    + b"\x00" + routeros_codec.word_sentence(["!done", ".tag=7"]),
    routeros_codec.word_sentence(["!trap", "=message=failure: already have such entry"])
    + routeros_codec.word_sentence(["!done"]) + routeros_codec.word_sentence(["!empty"]),
]


def _routeros_sentences(chunks: Sequence[bytes]) -> tuple[list[tuple[bytes, ...]], Exception | None]:
    """The sentences a fresh Decoder makes of ``chunks`` before the stream turns out bad, and why."""
    decoder = routeros_codec.Decoder()
    out: list[tuple[bytes, ...]] = []
    for chunk in chunks:
        try:
            out += decoder.feed(chunk)
        except routeros_codec.ProtocolError as e:
            return out, e
    return out, decoder.error


def routeros_read(data: bytes) -> int:
    """The stream whole and in two pieces: the same sentences, and an error in both or neither;
    each sentence read as text and parsed as a command or a reply."""
    whole, error = _routeros_sentences([data])
    half = len(data) // 2
    split, split_error = _routeros_sentences([data[:half], data[half:]])
    assert split == whole and (error is None) == (split_error is None), "a split stream reads otherwise"
    for sentence in whole:
        words = routeros_codec.text_sentence(sentence)
        if words and words[0].startswith("!"):
            routeros_codec.parse_reply(words)
        elif words:
            routeros_codec.parse_command(words)
    if error is not None:
        raise error
    return len(whole)


ROUTEROS = Target("routeros", routeros_codec.ProtocolError, ROUTEROS_SEEDS, lambda: routeros_read, 5.0,
                  "RouterOS API word codec")

TARGETS = {t.name: t for t in (RADIUS, NETFLOW, MQTT, ROUTEROS)}
