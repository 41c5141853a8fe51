"""Fuzzing flowcollector.codec and the aggregator behind it (checks N-1 and N-2, smoke size).

Invariant: any datagram either decodes or raises CodecError, never anything else; whatever
decodes can be read in full (rows, flows) and aggregated; no datagram takes long (a
zero-size template must not loop); and the decoder's state stays within its bounds.
Seeds are the golden vectors (tests/vectors/netflow), mutated, plus random templates.
"""

from __future__ import annotations

import contextlib
import random
import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowcollector.addressmap import ServiceMap
from flowcollector.aggregate import Aggregator
from flowcollector.codec import CodecError, Decoder
from tests.fuzz.targets import NETFLOW_SETTINGS as SETTINGS
from tests.fuzz.targets import NETFLOW_VECTORS as SEEDS
from tests.fuzz.targets import NOW
from tests.profiles import examples

SMAP = ServiceMap()
SMAP.replace_static([("0.0.0.0/1", 1), ("2001:db8::/32", 2)])
SMAP.add_session("100.64.0.1", 3, NOW - 3600)


def feed(decoder: Decoder, datagrams: list[bytes], exporter: str = "192.0.2.1") -> None:
    """Decode, read and aggregate everything; only CodecError may escape decode()."""
    agg = Aggregator(SMAP)
    fed = decoded = 0
    for dg in datagrams:
        fed += len(dg)
        try:
            result = decoder.decode(dg, exporter, NOW)
        except CodecError:
            continue
        for batch in result.batches:
            rows = list(batch.rows())
            assert len(rows) == batch.count
            decoded += len(rows)
            batch.flows()
            agg.add(batch)
        # N-2 (zero-length fields looping forever): every record takes at least one octet of what
        # was fed (held data sets are decoded once, later), so the work is bounded by the input.
        # A hang itself is caught by pytest-timeout; this is a behaviour, not a stopwatch.
        assert decoded <= fed, f"{decoded} records out of {fed} octets"
    usage = agg.drain()
    usage.services()
    gauges = decoder.gauges()
    assert gauges["templates"] <= SETTINGS.max_templates and gauges["domains"] <= SETTINGS.max_domains
    assert gauges["held_sets"] <= SETTINGS.hold_max_sets


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(version=st.sampled_from([b"\x00\x05", b"\x00\x09", b"\x00\x0a", b""]), body=st.binary(max_size=300))
def test_random_bytes(version: bytes, body: bytes) -> None:
    feed(Decoder(SETTINGS), [version + body])


def _mutate(rng: random.Random, dg: bytes) -> bytes:
    b = bytearray(dg)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        pos = rng.randrange(len(b)) if b else 0
        if op == 0 and b:
            b[pos] ^= 1 << rng.randrange(8)
        elif op == 1 and len(b) > 1:
            b[pos:pos + 2] = rng.choice([b"\x00\x00", b"\xff\xff", b"\x00\x04", b"\x01\x00", b"\x80\x01"])
        elif op == 2:
            del b[pos:pos + rng.randint(1, 8)]
        elif op == 3:
            b[pos:pos] = rng.randbytes(rng.randint(1, 8))
        else:
            b = b[:pos]
    return bytes(b)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), vector=st.integers(0, len(SEEDS) - 1))
def test_mutated_vectors(seed: int, vector: int) -> None:
    rng = random.Random(seed)
    datagrams = SEEDS[vector]
    feed(Decoder(SETTINGS), [_mutate(rng, dg) if rng.random() < 0.7 else dg for dg in datagrams])


def test_mutation_smoke_one_decoder() -> None:
    """N-2 smoke: many mutated datagrams through one long-lived decoder, state bounded."""
    rng = random.Random(20261121)
    decoder = Decoder(SETTINGS)
    for _ in range(examples(150)):
        datagrams = rng.choice(SEEDS)
        feed(decoder, [_mutate(rng, dg) for dg in datagrams], exporter=f"192.0.2.{rng.randrange(12)}")


FIELD = st.tuples(
    st.one_of(st.sampled_from([1, 2, 8, 12, 21, 22, 27, 28, 34, 48, 50, 152, 153, 154, 160, 225, 302, 305]),
              st.integers(0, 0xFFFF)),
    st.one_of(st.sampled_from([0, 1, 2, 3, 4, 8, 16, 0xFFFF]), st.integers(0, 0xFFFF)),
)


@st.composite
def templated(draw: Any) -> list[bytes]:
    version = draw(st.sampled_from([9, 10]))
    tid = draw(st.integers(250, 260))
    fields = draw(st.lists(FIELD, max_size=12))
    options = draw(st.booleans())
    specs = b"".join(struct.pack("!HH", ie, length) + (b"\0\0\0\x09" if version == 10 and ie & 0x8000 else b"")
                     for ie, length in fields)
    if options:
        scope = draw(st.integers(0, len(fields) + 1))
        head = struct.pack("!HHH", tid, 4 * scope, 4 * (len(fields) - scope) & 0xFFFF) if version == 9 else \
            struct.pack("!HHH", tid, len(fields), scope)
    else:
        head = struct.pack("!HH", tid, len(fields))
    set_id = (1 if options else 0) if version == 9 else (3 if options else 2)
    tset = struct.pack("!HH", set_id, 4 + len(head) + len(specs)) + head + specs
    data = draw(st.binary(max_size=400))
    dset = struct.pack("!HH", tid, 4 + len(data)) + data

    def wrap(body: bytes, seq: int) -> bytes:
        if version == 9:
            return struct.pack("!HHIIII", 9, 1, 0x00FF0000, int(NOW), seq, 0) + body
        return struct.pack("!HHIII", 10, 16 + len(body), int(NOW), seq, 0) + body

    order = draw(st.sampled_from(["template first", "data first", "together"]))
    if order == "together":
        return [wrap(tset + dset, 0)]
    pair = [wrap(tset, 0), wrap(dset, 1)]
    return pair if order == "template first" else pair[::-1]


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datagrams=templated())
def test_random_templates_and_data(datagrams: list[bytes]) -> None:
    """Zero-length fields, zero fields, variable lengths, huge lengths, enterprise bits,
    scope counts past the field count: refused or decoded, never a crash or a hang."""
    feed(Decoder(SETTINGS), datagrams)


@settings(max_examples=examples(40), deadline=None)
@given(state=st.one_of(st.binary(max_size=200), st.text(max_size=200),
                       st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                                    lambda kids: st.lists(kids, max_size=4)
                                    | st.dictionaries(st.text(max_size=8), kids, max_size=4)).map(repr)))
def test_load_state_garbage(state: str | bytes) -> None:
    with contextlib.suppress(CodecError):
        Decoder().load_state(state, NOW)
