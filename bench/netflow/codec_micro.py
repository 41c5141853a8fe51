#!/usr/bin/env python3
"""Micro-benchmark of lastmile's flow codec and aggregator (one core, no sockets).

Builds the load nfgen.py sends (50,000 subscribers in 100.64.0.0/16 or 2001:db8:1::/48,
one download and one upload record per subscriber, v5 30 records per datagram, v9 29,
IPFIX 25; the same template layouts) plus a MikroTik-like v9 load (Traffic-Flow's IPv4
template with post-NAT fields, 24 records per datagram), and times, in CPU microseconds
per record (best of ``--repeats``):

* ``decode``: ``Decoder.decode`` of every datagram, reading every row;
* ``decode+agg``: the same folded into an ``Aggregator`` whose ``ServiceMap`` holds the
  subscribers as RADIUS sessions (/32, or /64 for IPv6) or, with ``--static``, as static
  prefixes (/32, /64) -- "warm" when the counters exist already (the steady state: a
  subscriber has many flows per minute), "cold" when every record creates its counter
  (this load has about one record per subscriber and direction: the worst case);
* ``flush``: ``drain()`` + ``Usage.services()`` per output row, the writer's share (with the
  bulk path's tables moved into the counters).

IPv4 loads take the aggregator's bulk (NumPy) path, which folds thousands of records at once;
the timings include folding what is still queued at the end.

Flow times vary per record (ends up to 5 s before export, durations up to 20 s), so about
one flow in eight crosses a minute boundary and is spread over two buckets.  ``--profile
LOAD`` runs cProfile over one load's warm decode+agg instead.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import ipaddress
import pstats
import struct
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from flowcollector.addressmap import ServiceMap
from flowcollector.aggregate import Aggregator
from flowcollector.codec import Decoder

SUBSCRIBERS = 50_000
EXPORT_S = 1_790_000_000  # a fixed export time, so runs are comparable
NOW = EXPORT_S + 0.5
UPTIME_MS = 86_400_000 | 0x00FF0000
V4_BASE = int(ipaddress.IPv4Address("100.64.0.1"))
V6_BASE = int(ipaddress.IPv6Address("2001:db8:1::"))
REMOTE4 = int(ipaddress.IPv4Address("198.18.0.0"))
REMOTE6 = int(ipaddress.IPv6Address("2001:db8:ffff::"))

NFGEN_V9 = [
    (8, 4),
    (12, 4),
    (15, 4),
    (10, 4),
    (14, 4),
    (2, 4),
    (1, 8),
    (22, 4),
    (21, 4),
    (7, 2),
    (11, 2),
    (6, 1),
    (4, 1),
    (5, 1),
]
NFGEN_V9_V6 = [(27, 16), (28, 16), (62, 16), *NFGEN_V9[3:]]
NFGEN_IPFIX = [*NFGEN_V9[:7], (152, 8), (153, 8), *NFGEN_V9[9:]]
MIKROTIK_V9 = [
    (8, 4),
    (12, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (1, 4),
    (2, 4),
    (22, 4),
    (21, 4),
    (10, 4),
    (14, 4),
    (5, 1),
    (6, 1),
    (15, 4),
    (9, 1),
    (13, 1),
    (225, 4),
    (226, 4),
    (227, 2),
    (228, 2),
]


def record(j: int, ipv6: bool) -> dict[int, int]:
    """Record j of the pool, as {element: value} (nfgen's model, varied times)."""
    i = (j // 2) % SUBSCRIBERS
    sub = V6_BASE + (i << 64) + 1 if ipv6 else V4_BASE + i
    remote = (REMOTE6 if ipv6 else REMOTE4) + (j * 2654435761) % (1 << 17)
    src, dst = (remote, sub) if j % 2 == 0 else (sub, remote)
    end_age = j * 37 % 5000
    dur = j * 7919 % 20000
    export_ms = EXPORT_S * 1000
    return {
        8: src,
        12: dst,
        27: src,
        28: dst,
        15: 0,
        62: 0,
        10: 1,
        14: 2,
        2: 1,
        1: 40 + (j * 7919) % 1461,
        22: UPTIME_MS - end_age - dur,
        21: UPTIME_MS - end_age,
        152: export_ms - end_age - dur,
        153: export_ms - end_age,
        7: 443,
        11: 1024 + j % 60000,
        6: 0x1B,
        4: 6,
        5: 0,
        9: 24,
        13: 32,
        225: src,
        226: dst,
        227: 1,
        228: 2,
    }


def encode(fields: list[tuple[int, int]], values: dict[int, int]) -> bytes:
    return b"".join(values[ie].to_bytes(length, "big") for ie, length in fields)


def v5_packets(n: int) -> list[bytes]:
    rec = struct.Struct("!IIIHHIIIIHHBBBBHHBBH")
    out = []
    for k in range(n):
        body = b""
        for j in range(k * 30, k * 30 + 30):
            r = record(j, False)
            body += rec.pack(
                r[8], r[12], 0, 1, 2, r[2], r[1], r[22], r[21], r[7], r[11], 0, r[6], r[4], 0, 0, 0, 0, 0, 0
            )
        out.append(struct.pack("!HHIIIIBBH", 5, 30, UPTIME_MS, EXPORT_S, 0, k * 30, 0, 100, 0) + body)
    return out


def templated_packets(
    version: int, fields: list[tuple[int, int]], per: int, n: int, ipv6: bool = False
) -> tuple[bytes, list[bytes]]:
    tpl = struct.pack("!HH", 256, len(fields)) + b"".join(struct.pack("!HH", ie, ln) for ie, ln in fields)
    tset = struct.pack("!HH", 0 if version == 9 else 2, 4 + len(tpl)) + tpl
    out = []
    for k in range(n):
        body = b"".join(encode(fields, record(j, ipv6)) for j in range(k * per, k * per + per))
        pad = -(4 + len(body)) % 4
        dset = struct.pack("!HH", 256, 4 + len(body) + pad) + body + bytes(pad)
        out.append(header(version, k if version == 9 else k * per, per, len(dset)) + dset)
    return header(version, 0, 1, len(tset)) + tset, out


def header(version: int, seq: int, count: int, body: int) -> bytes:
    if version == 9:
        return struct.pack("!HHIIII", 9, count, UPTIME_MS, EXPORT_S, seq, 100)
    return struct.pack("!HHIII", 10, 16 + body, EXPORT_S, seq, 100)


def service_map(ipv6: bool, static: bool) -> ServiceMap:
    smap = ServiceMap()
    if static:
        smap.replace_static(
            (
                f"{ipaddress.IPv6Address(V6_BASE + (i << 64))}/64" if ipv6 else str(ipaddress.IPv4Address(V4_BASE + i)),
                1000 + i,
            )
            for i in range(SUBSCRIBERS)
        )
    else:
        for i in range(SUBSCRIBERS):
            addr = (
                f"{ipaddress.IPv6Address(V6_BASE + (i << 64))}/64" if ipv6 else str(ipaddress.IPv4Address(V4_BASE + i))
            )
            smap.add_session(addr, 1000 + i, EXPORT_S - 86400)
    return smap


def primed(tpl: bytes | None) -> Decoder:
    dec = Decoder()
    if tpl:
        dec.decode(tpl, "192.0.2.1", NOW)
    return dec


def timed_decode(tpl: bytes | None, pkts: list[bytes]) -> tuple[int, float]:
    """Decode every datagram and read every row: (records, CPU seconds)."""
    dec = primed(tpl)
    sink: collections.deque[tuple[int, ...]] = collections.deque(maxlen=0)
    n = 0
    c0 = time.process_time()
    for p in pkts:
        for b in dec.decode(p, "192.0.2.1", NOW).batches:
            sink.extend(b.rows())
            n += b.count
    return n, time.process_time() - c0


def timed_aggregate(tpl: bytes | None, pkts: list[bytes], smap: ServiceMap, warm: bool) -> tuple[int, float]:
    """Decode and fold: (records, CPU seconds).  ``warm``: the counters exist already (a
    first, untimed pass made them), the steady state of a flush interval in which every
    subscriber has many flows; cold: this load's ~one record per subscriber and direction
    creates a counter each time, the worst case."""
    agg = Aggregator(smap)
    if warm:
        dec = primed(tpl)
        for p in pkts:
            for b in dec.decode(p, "192.0.2.1", NOW).batches:
                agg.add(b)
    dec = primed(tpl)
    n = 0
    c0 = time.process_time()
    for p in pkts:
        for b in dec.decode(p, "192.0.2.1", NOW).batches:
            agg.add(b)
            n += b.count
    agg.fold_queue()  # what is still queued for the bulk path is this load's work too
    spent = time.process_time() - c0
    assert not agg.drain().unknown, "every record must attribute"
    return n, spent


def timed_flush(tpl: bytes | None, pkts: list[bytes], smap: ServiceMap) -> tuple[int, float]:
    """drain() + services(), the per-row work of a flush: (rows, CPU seconds)."""
    agg = Aggregator(smap)
    dec = primed(tpl)
    for p in pkts:
        for b in dec.decode(p, "192.0.2.1", NOW).batches:
            agg.add(b)
    c0 = time.process_time()
    rows = len(agg.drain().services())
    return rows, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=3000, help="datagrams per case")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--static", action="store_true", help="subscribers as static prefixes, not sessions")
    ap.add_argument("--profile", default=None, help="profile decode+agg (warm) of one load, e.g. v9")
    a = ap.parse_args()

    loads = {
        "v5": (None, v5_packets(a.packets), False),
        "v9": (*templated_packets(9, NFGEN_V9, 29, a.packets), False),
        "ipfix": (*templated_packets(10, NFGEN_IPFIX, 25, a.packets), False),
        "v9-mikrotik": (*templated_packets(9, MIKROTIK_V9, 24, a.packets), False),
        "v9-ipv6": (*templated_packets(9, NFGEN_V9_V6, 21, a.packets, ipv6=True), True),
    }
    maps = {six: service_map(six, a.static) for six in (False, True)}
    print(f"python {sys.version.split()[0]}, {a.packets} datagrams per case, "
          f"subscribers as {'static prefixes' if a.static else 'sessions'}, best of {a.repeats}, CPU time")
    print("| load | decode us/rec | decode+agg us/rec (warm) | decode+agg us/rec (cold) | flush us/row |")
    print("|---|---|---|---|---|")
    for name, (tpl, pkts, six) in loads.items():
        smap = maps[six]
        if a.profile:
            if a.profile == name:
                prof = cProfile.Profile()
                prof.runcall(timed_aggregate, tpl, pkts, smap, True)
                pstats.Stats(prof).sort_stats("tottime").print_stats(15)
            continue
        runs: list[Callable[[], tuple[int, float]]] = [
            partial(timed_decode, tpl, pkts),
            partial(timed_aggregate, tpl, pkts, smap, True),
            partial(timed_aggregate, tpl, pkts, smap, False),
            partial(timed_flush, tpl, pkts, smap),
        ]
        cells = []
        for run in runs:
            best = min(spent / n for n, spent in (run() for _ in range(a.repeats)))
            cells.append(f"{best * 1e6:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
