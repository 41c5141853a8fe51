#!/usr/bin/env python3
"""flowgen: a NetFlow v5 / v9 / IPFIX load with exactly known totals, for collector benchmarks.

Every subscriber address (from ``--addresses``, one IPv4 address a line) gets, in turn, one
download record (subscriber = destination) and one upload record (subscriber = source); the
remote ends are in 198.18.0.0/15.  Every record has packets = 1, so a collector's
sum(packets) is the number of records it accounted, and record j of the pool carries
``40 + (j * 7919) % 1461`` bytes, so the bytes each address was sent are known exactly:
``--expect FILE`` writes them (address, bytes_down, bytes_up, packets_down, packets_up), and
the JSON summary on stdout holds the totals, the achieved rate and the sender's CPU time.

How it reaches millions of records a second from one CPython process: the datagrams are
built once (a pool covering every address in both directions, with a template datagram
after every ``--template-every`` data datagrams for v9 and IPFIX) into a ring of
``struct mmsghdr`` entries, each with its own buffer.  Sending is then, per datagram, one
``pack_into`` of the header fields that change (sysUptime, export time, sequence number)
and, per batch, one ``sendmmsg(2)`` over a contiguous slice of the ring.  Pacing follows
a schedule (batch k leaves at t0 + records_before_k / rate), so short sleeps that overshoot
are caught up by the next batch and the long-run rate is the requested one.  When the sender
falls further behind (descheduled on a busy machine), it catches up at most ``--max-burst-ms``
of load at once and shifts the schedule by the rest, rather than firing a long burst at full
speed; the largest delay and the time shifted are reported (``max_lag_ms``, ``stalled_ms``).

Sequence numbers are the protocols': v5 counts flows, v9 counts export packets (templates
included), IPFIX counts data records.  Flow times in the records are those of the moment the
pool was built (v5/v9 relative to sysUptime, IPFIX flowStart/EndMilliseconds), so in a long
run the records describe flows up to the run's length in the past; the headers are current.

Only the standard library is used; the target must be a loopback address.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import ipaddress
import json
import os
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

V5_HDR = struct.Struct("!HHIIIIBBH")  # version, count, uptime, secs, nsecs, flow_sequence, engine, sampling
V5_REC = struct.Struct("!IIIHHIIIIHHBBBBHHBBH")
V9_HDR = struct.Struct("!HHIIII")  # version, count, uptime, secs, package_sequence, source_id
IPFIX_HDR = struct.Struct("!HHIII")  # version, length, export_time, sequence, observation_domain
SET_HDR = struct.Struct("!HH")

# The header fields patched per datagram, packed at offset 4 (right after version and count/length).
PATCH = {5: struct.Struct("!IIII"), 9: struct.Struct("!III"), 10: struct.Struct("!II")}
DEFAULT_PER_DATAGRAM = {5: 30, 9: 29, 10: 25}  # what nfgen sends: 1,464 / 1,391 / 1,395-byte datagrams
MAX_PER_DATAGRAM = {5: 30, 9: 29, 10: 25}  # a 1500-byte MTU (v5: the format's own limit)

# (information element, length): the v9 field types and IPFIX IEs are the same numbers here.
ADDRESSES = [(8, 4), (12, 4), (15, 4)]  # source, destination, next hop
COUNTERS = [(10, 4), (14, 4), (2, 4), (1, 8)]  # ingress/egress ifIndex, packets, octets
V9_TIMES = [(22, 4), (21, 4)]  # FIRST_SWITCHED / LAST_SWITCHED (sysUptime ms)
IPFIX_TIMES = [(152, 8), (153, 8)]  # flowStart/EndMilliseconds (Unix ms)
PORTS = [(7, 2), (11, 2), (6, 1), (4, 1), (5, 1)]  # ports, TCP flags, protocol, ToS
V9_RECORD = struct.Struct("!IIIIIIQIIHHBBB")  # 47 bytes, in the order of V9_FIELDS
IPFIX_RECORD = struct.Struct("!IIIIIIQQQHHBBB")  # 55 bytes, in the order of IPFIX_FIELDS
V9_FIELDS = ADDRESSES + COUNTERS + V9_TIMES + PORTS
IPFIX_FIELDS = ADDRESSES + COUNTERS + IPFIX_TIMES + PORTS
TEMPLATE_ID = 256

REMOTE_BASE = int(ipaddress.IPv4Address("198.18.0.0"))  # RFC 2544 benchmarking range
REMOTE_SPAN = 1 << 17
BOOTED_AGO_S = 86_400.0  # the exporter pretends to have booted a day ago
EAGAIN, EINTR, ENOBUFS = 11, 4, 105


@dataclass(frozen=True, slots=True)
class Record:
    """Record j of the pool: which address, which direction, and its wire fields."""

    address: int  # index into the address list
    down: bool
    octets: int
    src: int
    dst: int
    sport: int
    dport: int
    proto: int


def record(j: int, addresses: list[int]) -> Record:
    """The deterministic content of record j: addresses alternate download / upload."""
    index = (j // 2) % len(addresses)
    down = j % 2 == 0
    remote = REMOTE_BASE + (j * 2654435761) % REMOTE_SPAN
    subscriber = addresses[index]
    octets = 40 + (j * 7919) % 1461
    proto = 6 if j % 3 else 17
    service_port = 443 if proto == 6 else 53
    client_port = 1024 + j % 60000
    if down:
        return Record(index, True, octets, remote, subscriber, service_port, client_port, proto)
    return Record(index, False, octets, subscriber, remote, client_port, service_port, proto)


# ------------------------------------------------------------------------------ encoding
@dataclass(slots=True)
class Encoder:
    """Builds the data and template datagrams of one exporter (version, source id)."""

    version: int
    per_datagram: int
    source_id: int
    boot: float
    built_at: float = field(init=False)

    def __post_init__(self) -> None:
        self.built_at = time.time()

    @property
    def uptime_ms(self) -> int:
        return int((self.built_at - self.boot) * 1000) & 0xFFFFFFFF

    def data(self, records: list[Record]) -> bytes:
        body = b"".join(self._record(r) for r in records)
        secs = int(self.built_at)
        if self.version == 5:
            return V5_HDR.pack(5, len(records), self.uptime_ms, secs, 0, 0, 0, self.source_id & 0xFF, 0) + body
        padding = b"\0" * (-(SET_HDR.size + len(body)) % 4)  # sets end on a 32-bit boundary
        dataset = SET_HDR.pack(TEMPLATE_ID, SET_HDR.size + len(body) + len(padding)) + body + padding
        if self.version == 9:
            return V9_HDR.pack(9, len(records), self.uptime_ms, secs, 0, self.source_id) + dataset
        return IPFIX_HDR.pack(10, IPFIX_HDR.size + len(dataset), secs, 0, self.source_id) + dataset

    def template(self) -> bytes:
        fields = V9_FIELDS if self.version == 9 else IPFIX_FIELDS
        spec = struct.pack("!HH", TEMPLATE_ID, len(fields)) + b"".join(struct.pack("!HH", *f) for f in fields)
        tset = SET_HDR.pack(0 if self.version == 9 else 2, SET_HDR.size + len(spec)) + spec
        secs = int(self.built_at)
        if self.version == 9:
            return V9_HDR.pack(9, 1, self.uptime_ms, secs, 0, self.source_id) + tset
        return IPFIX_HDR.pack(10, IPFIX_HDR.size + len(tset), secs, 0, self.source_id) + tset

    def _record(self, r: Record) -> bytes:
        in_if, out_if = (1, 2) if r.down else (2, 1)
        flags = 0x1B if r.proto == 6 else 0
        last_ms = self.uptime_ms - 1000
        first_ms = last_ms - 4000
        if self.version == 5:
            return V5_REC.pack(
                r.src,
                r.dst,
                0,
                in_if,
                out_if,
                1,
                r.octets,
                first_ms,
                last_ms,
                r.sport,
                r.dport,
                0,
                flags,
                r.proto,
                0,
                0,
                0,
                0,
                0,
                0,
            )
        if self.version == 9:
            return V9_RECORD.pack(
                r.src, r.dst, 0, in_if, out_if, 1, r.octets, first_ms, last_ms, r.sport, r.dport, flags, r.proto, 0
            )
        end_ms = int(self.built_at * 1000) - 1000
        return IPFIX_RECORD.pack(
            r.src, r.dst, 0, in_if, out_if, 1, r.octets, end_ms - 4000, end_ms, r.sport, r.dport, flags, r.proto, 0
        )


# ------------------------------------------------------------------------------ the ring
@dataclass(slots=True)
class Ring:
    """The datagrams in send order, periodic: data datagrams of the pool, a template every k.

    ``increments[i]`` is what entry i adds to the header's sequence number, ``records[i]`` the
    flow records it carries (0 for a template), ``pool_index[i]`` its pool datagram (-1 for a
    template).  ``pool`` holds each pool datagram's records, for the expected totals."""

    buffers: list[bytearray]
    increments: list[int]
    records: list[int]
    pool_index: list[int]
    pool: list[list[Record]]


def build_ring(encoder: Encoder, addresses: list[int], template_every: int) -> Ring:
    per = encoder.per_datagram
    pool_size = -(-2 * len(addresses) // per)  # datagrams to cover every address both ways
    every = template_every if encoder.version != 5 else 0
    if every:
        pool_size = -(-pool_size // every) * every  # whole template periods: the ring is periodic
    pool = [[record(k * per + i, addresses) for i in range(per)] for k in range(pool_size)]
    ring = Ring([], [], [], [], pool)
    template = encoder.template() if encoder.version != 5 else b""
    for k, records in enumerate(pool):
        if template and (k == 0 or (every and k % every == 0)):
            ring.buffers.append(bytearray(template))
            ring.increments.append(1 if encoder.version == 9 else 0)
            ring.records.append(0)
            ring.pool_index.append(-1)
        ring.buffers.append(bytearray(encoder.data(records)))
        ring.increments.append(1 if encoder.version == 9 else per)
        ring.records.append(per)
        ring.pool_index.append(k)
    return ring


# ------------------------------------------------------------------------------ sendmmsg
class IOVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(IOVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", MsgHdr), ("msg_len", ctypes.c_uint)]


class SockAddrIn(ctypes.Structure):
    _fields_ = [
        ("sin_family", ctypes.c_ushort),
        ("sin_port", ctypes.c_uint16),
        ("sin_addr", ctypes.c_uint8 * 4),
        ("sin_zero", ctypes.c_uint8 * 8),
    ]


class MultiSender:
    """sendmmsg(2) over slices of a fixed array of messages, one per ring entry."""

    def __init__(self, buffers: list[bytearray], host: str, port: int) -> None:
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.address = SockAddrIn(socket.AF_INET, socket.htons(port), (ctypes.c_uint8 * 4)(*socket.inet_aton(host)))
        count = len(buffers)
        self.iovecs = (IOVec * count)()
        self.messages = (MMsgHdr * count)()
        self.views = [(ctypes.c_char * len(b)).from_buffer(b) for b in buffers]  # pins the buffers
        for i, view in enumerate(self.views):
            self.iovecs[i].iov_base = ctypes.addressof(view)
            self.iovecs[i].iov_len = len(view)
            header = self.messages[i].msg_hdr
            header.msg_name = ctypes.addressof(self.address)
            header.msg_namelen = ctypes.sizeof(SockAddrIn)
            header.msg_iov = ctypes.pointer(self.iovecs[i])
            header.msg_iovlen = 1
        self.retries = 0

    def send(self, first: int, count: int, deadline: float) -> int:
        """Send ring entries [first, first + count); return how many left (fewer only at the deadline)."""
        done = 0
        size = ctypes.sizeof(MMsgHdr)
        while done < count:
            sent = self.libc.sendmmsg(
                self.sock.fileno(), ctypes.byref(self.messages, (first + done) * size), count - done, 0
            )
            if sent > 0:
                done += sent
                continue
            errno = ctypes.get_errno()
            if errno not in (EAGAIN, EINTR, ENOBUFS):
                raise OSError(errno, os.strerror(errno))
            self.retries += 1
            if time.perf_counter() > deadline:
                break
            time.sleep(0.0002)
        return done

    def close(self) -> None:
        self.sock.close()


# ------------------------------------------------------------------------------ sending
@dataclass(slots=True)
class Sent:
    records: int = 0
    data_datagrams: int = 0
    template_datagrams: int = 0
    wire_bytes: int = 0
    seconds: float = 0.0
    max_lag: float = 0.0
    stalled: float = 0.0
    cpu_seconds: float = 0.0
    truncated: bool = False


def batch_size(rate: float, per_datagram: int, ring_len: int, limit: int) -> int:
    """About a millisecond of datagrams per sendmmsg at the requested rate (all at once unthrottled)."""
    if rate <= 0:
        return min(limit, ring_len)
    return max(1, min(limit, ring_len, round(rate / per_datagram / 1000)))


@dataclass(slots=True)
class Pacer:
    """Holds the sender to ``rate`` records/s: batch k leaves at origin + records_before_k / rate."""

    rate: float
    max_burst: float  # seconds of schedule caught up at once at most
    origin: float
    max_lag: float = 0.0
    stalled: float = 0.0

    def wait(self, records: int) -> None:
        if not self.rate:
            return
        now = time.perf_counter()
        due = self.origin + records / self.rate
        if due > now:
            time.sleep(due - now)
            return
        lag = now - due
        self.max_lag = max(self.max_lag, lag)
        if lag > self.max_burst:  # fell far behind: shift the schedule rather than burst at full speed
            self.stalled += lag - self.max_burst
            self.origin += lag - self.max_burst


def send_load(ring: Ring, sender: MultiSender, version: int, boot: float, args: argparse.Namespace) -> Sent:
    """Send ``args.records`` records (whole datagrams) at ``args.rate``, or for ``args.duration``
    unthrottled; stop at ``args.time_limit`` whatever happens."""
    per = max(ring.records)
    target = -(-args.records // per) if args.records else 1 << 62  # data datagrams
    batch = batch_size(args.rate, per, len(ring.buffers), args.batch)
    out = Sent()
    seq = pos = 0
    cpu0 = time.process_time()
    start = time.perf_counter()
    pacer = Pacer(float(args.rate), args.max_burst_ms / 1000, start)
    stop_at = start + args.duration if not args.records else float("inf")
    deadline = start + args.time_limit
    while out.data_datagrams < target:
        now = time.perf_counter()
        if now >= stop_at or now >= deadline:
            out.truncated = now >= deadline
            break
        pacer.wait(out.records)
        count, seq = patch_headers(ring, pos, batch, target - out.data_datagrams, version, seq, boot)
        sent = sender.send(pos, count, deadline)
        account(out, ring, pos, sent)
        if sent < count:
            out.truncated = True
            break
        pos = (pos + count) % len(ring.buffers)
    out.seconds = time.perf_counter() - start
    out.cpu_seconds = time.process_time() - cpu0
    out.max_lag, out.stalled = pacer.max_lag, pacer.stalled
    return out


def patch_headers(
    ring: Ring, first: int, limit: int, data_left: int, version: int, seq: int, boot: float
) -> tuple[int, int]:
    """Write the current uptime, time and sequence numbers into up to ``limit`` ring entries
    from ``first`` (no further than the ring's end, nor past ``data_left`` data datagrams);
    return how many, and the next sequence number."""
    wall = time.time()
    uptime = int((wall - boot) * 1000) & 0xFFFFFFFF
    secs = int(wall)
    nsecs = int((wall - secs) * 1e9)
    pack = PATCH[version].pack_into
    buffers, increments, records = ring.buffers, ring.increments, ring.records
    last = min(first + limit, len(buffers))
    pos = first
    while pos < last and data_left:
        if version == 5:
            pack(buffers[pos], 4, uptime, secs, nsecs, seq & 0xFFFFFFFF)
        elif version == 9:
            pack(buffers[pos], 4, uptime, secs, seq & 0xFFFFFFFF)
        else:
            pack(buffers[pos], 4, secs, seq & 0xFFFFFFFF)
        seq += increments[pos]
        data_left -= records[pos] > 0
        pos += 1
    return pos - first, seq


def account(out: Sent, ring: Ring, first: int, count: int) -> None:
    for i in range(first, first + count):
        n = ring.records[i]
        out.records += n
        out.data_datagrams += n > 0
        out.template_datagrams += n == 0
        out.wire_bytes += len(ring.buffers[i])


# ------------------------------------------------------------------------------ expected totals
def expected_totals(ring: Ring, data_datagrams: int, n_addresses: int) -> list[list[int]]:
    """[bytes_down, bytes_up, packets_down, packets_up] per address for the data datagrams sent:
    the stream is the pool over and over, so whole cycles are counted once and multiplied."""
    cycles, rest = divmod(data_datagrams, len(ring.pool))
    whole = [[0, 0, 0, 0] for _ in range(n_addresses)]
    for datagram in ring.pool:
        add(whole, datagram)
    totals = [[v * cycles for v in row] for row in whole]
    for datagram in ring.pool[:rest]:
        add(totals, datagram)
    return totals


def add(totals: list[list[int]], records: list[Record]) -> None:
    for r in records:
        row = totals[r.address]
        row[0 if r.down else 1] += r.octets
        row[2 if r.down else 3] += 1


def write_expected(path: Path, addresses: list[int], totals: list[list[int]]) -> None:
    with path.open("w") as f:
        f.write("address,bytes_down,bytes_up,packets_down,packets_up\n")
        for address, row in zip(addresses, totals, strict=True):
            if any(row):
                f.write(f"{ipaddress.IPv4Address(address)},{row[0]},{row[1]},{row[2]},{row[3]}\n")


# ------------------------------------------------------------------------------ main
def load_addresses(args: argparse.Namespace) -> list[int]:
    if args.addresses:
        lines = Path(args.addresses).read_text().split()
        addresses = [int(ipaddress.IPv4Address(line.split("/")[0])) for line in lines]
    else:
        base = int(ipaddress.IPv4Address("100.64.0.1"))
        addresses = [base + i for i in range(args.subscribers)]
    if not addresses or len(set(addresses)) != len(addresses):
        raise SystemExit("flowgen: the address list is empty or has duplicates")
    return addresses


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="a loopback address")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("-V", "--version", type=int, choices=(5, 9, 10), default=9, help="5, 9, or 10 (IPFIX)")
    p.add_argument("--addresses", help="file of subscriber IPv4 addresses, one a line")
    p.add_argument("--subscribers", type=int, default=50_000, help="without --addresses: 100.64.0.1 on")
    p.add_argument("--records-per-datagram", type=int, default=0, help="default 30 (v5), 29 (v9), 25 (IPFIX)")
    p.add_argument("--rate", type=float, default=0.0, help="records/s (0: as fast as possible)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load (records = rate x duration)")
    p.add_argument("--records", type=int, default=0, help="send this many records instead (whole datagrams)")
    p.add_argument("--template-every", type=int, default=20, help="a template after every N data datagrams")
    p.add_argument("--batch", type=int, default=64, help="largest number of datagrams per sendmmsg")
    p.add_argument("--max-burst-ms", type=float, default=20.0, help="most load sent at once to catch up (ms)")
    p.add_argument("--source-id", type=int, default=100, help="v9 source id / IPFIX domain / v5 engine id")
    p.add_argument("--time-limit", type=float, default=0.0, help="hard stop (default: 1.5 x duration + 10 s)")
    p.add_argument("--expect", help="write the expected totals per address to this CSV file")
    args = p.parse_args(argv)
    if not ipaddress.ip_address(args.host).is_loopback:
        p.error("flowgen sends to loopback addresses only")
    if args.rate and not args.records:
        args.records = max(1, round(args.rate * args.duration))
    if not args.time_limit:
        seconds = args.records / args.rate if args.rate and args.records else args.duration
        args.time_limit = 1.5 * seconds + 10.0
    per = args.records_per_datagram or DEFAULT_PER_DATAGRAM[args.version]
    if not 1 <= per <= MAX_PER_DATAGRAM[args.version]:
        p.error(f"--records-per-datagram must be 1..{MAX_PER_DATAGRAM[args.version]} for version {args.version}")
    args.records_per_datagram = per
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    addresses = load_addresses(args)
    boot = time.time() - BOOTED_AGO_S
    encoder = Encoder(args.version, args.records_per_datagram, args.source_id, boot)
    build_started = time.perf_counter()
    ring = build_ring(encoder, addresses, args.template_every)
    build_seconds = time.perf_counter() - build_started
    sender = MultiSender(ring.buffers, args.host, args.port)
    try:
        sent = send_load(ring, sender, args.version, boot, args)
    finally:
        sender.close()
    totals = expected_totals(ring, sent.data_datagrams, len(addresses))
    if args.expect:
        write_expected(Path(args.expect), addresses, totals)
    summary = {
        "version": args.version,
        "target": f"{args.host}:{args.port}",
        "addresses": len(addresses),
        "records_per_datagram": args.records_per_datagram,
        "rate_requested": args.rate,
        "records_requested": args.records,
        "sent": {
            "records": sent.records,
            "data_datagrams": sent.data_datagrams,
            "template_datagrams": sent.template_datagrams,
            "wire_bytes": sent.wire_bytes,
            "retries": sender.retries,
            "truncated": sent.truncated,
        },
        "seconds": round(sent.seconds, 4),
        "records_per_s": round(sent.records / sent.seconds, 1) if sent.seconds else None,
        "datagrams_per_s": round((sent.data_datagrams + sent.template_datagrams) / sent.seconds, 1)
        if sent.seconds
        else None,
        "max_lag_ms": round(sent.max_lag * 1000, 3),
        "stalled_ms": round(sent.stalled * 1000, 3),
        "cpu_seconds": round(sent.cpu_seconds, 3),
        "build_seconds": round(build_seconds, 3),
        "expected": {
            "records": sum(r[2] + r[3] for r in totals),
            "bytes_down": sum(r[0] for r in totals),
            "bytes_up": sum(r[1] for r in totals),
            "addresses": sum(1 for r in totals if any(r)),
        },
    }
    summary["expected"]["bytes"] = summary["expected"]["bytes_down"] + summary["expected"]["bytes_up"]
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
