"""Fixed-rate Access-Request generator: per-request latency at a given rate (radclient cannot
pace its requests, it only keeps N in flight).

    latency.py --port P --secret S --rate R --seconds T --subscribers FILE [--seed N]

Pre-encodes rate x seconds PAP Access-Requests (the same attributes as radclient's files, with
Message-Authenticator, subscribers in random order) before the clock starts, then sends request
k at t0 + k / rate from one of 32 UDP sockets (identifier and socket cycle, so a reply is matched
by socket and identifier) and timestamps its reply. Replies are checked (Response Authenticator,
Access-Accept). Prints one JSON object: counts, percentiles of the latency in ms, how late the
sends ran behind the schedule (if much, the generator itself was the bottleneck).
"""

from __future__ import annotations

import argparse
import json
import random
import selectors
import socket
import time
from pathlib import Path

import radpkt
import workload

SOCKETS = 32


def build(subscribers: list[workload.Subscriber], count: int, secret: bytes, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    order = workload.login_order(subscribers, count, rnd)
    return [
        radpkt.access_request((k // SOCKETS) % 256, workload.auth_attrs(sub, 0x4C000000 + seed * 7919 + k), secret)
        for k, sub in enumerate(order)
    ]


def open_sockets(host: str, port: int) -> list[socket.socket]:
    socks = []
    for _ in range(SOCKETS):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind((host, 0))
        s.connect((host, port))
        s.setblocking(False)
        socks.append(s)
    return socks


class Run:
    def __init__(self, packets: list[bytes], socks: list[socket.socket], rate: float, secret: bytes) -> None:
        self.packets, self.socks, self.rate, self.secret = packets, socks, rate, secret
        self.sent_at = [0.0] * len(packets)
        self.pending: dict[tuple[int, int], int] = {}  # (socket, identifier) -> request number
        self.latencies: list[float] = []
        self.accepted = self.rejected = self.invalid = self.overwritten = 0
        self.max_lag = 0.0

    def send_due(self, t0: float, sent: int) -> int:
        now = time.perf_counter()
        due = min(len(self.packets), int((now - t0) * self.rate) + 1)
        while sent < due:
            key = (sent % SOCKETS, self.packets[sent][1])
            if key in self.pending:
                self.overwritten += 1  # the earlier request never got a reply in time
            self.pending[key] = sent
            self.sent_at[sent] = time.perf_counter()
            self.socks[key[0]].send(self.packets[sent])
            self.max_lag = max(self.max_lag, self.sent_at[sent] - (t0 + sent / self.rate))
            sent += 1
        return sent

    def receive(self, index: int) -> None:
        sock = self.socks[index]
        while True:
            try:
                reply = sock.recv(4096)
            except BlockingIOError:
                return
            now = time.perf_counter()
            k = self.pending.pop((index, reply[1]), None) if len(reply) >= 20 else None
            if k is None:
                continue
            if not radpkt.reply_ok(reply, self.packets[k], self.secret):
                self.invalid += 1
                continue
            self.latencies.append(now - self.sent_at[k])
            if reply[0] == radpkt.ACCESS_ACCEPT:
                self.accepted += 1
            else:
                self.rejected += 1

    def loop(self, reply_timeout: float) -> float:
        selector = selectors.DefaultSelector()
        for i, s in enumerate(self.socks):
            selector.register(s, selectors.EVENT_READ, i)
        t0 = time.perf_counter()
        sent, total = 0, len(self.packets)
        while True:
            if sent < total:
                sent = self.send_due(t0, sent)
            now = time.perf_counter()
            if sent >= total:
                if not self.pending or now > t0 + total / self.rate + reply_timeout:
                    break
                wait = 0.01
            else:
                wait = max(0.0, t0 + sent / self.rate - now)
            for key, _ in selector.select(wait):
                self.receive(key.data)
        return time.perf_counter() - t0


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--subscribers", type=Path, required=True, help="TSV written by bench.py")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reply-timeout", type=float, default=3.0)
    args = parser.parse_args()
    secret = args.secret.encode()
    count = max(1, int(args.rate * args.seconds))
    packets = build(workload.read_subscribers(args.subscribers), count, secret, args.seed)
    run = Run(packets, open_sockets(args.host, args.port), args.rate, secret)
    elapsed = run.loop(args.reply_timeout)
    lat = sorted(x * 1000 for x in run.latencies)
    result = {
        "rate": args.rate,
        "sent": count,
        "answered": len(lat),
        "accepted": run.accepted,
        "rejected": run.rejected,
        "invalid": run.invalid,
        "lost": count - len(lat) - run.invalid,
        "elapsed_s": round(elapsed, 3),
        "p50_ms": percentile(lat, 0.50),
        "p90_ms": percentile(lat, 0.90),
        "p99_ms": percentile(lat, 0.99),
        "p999_ms": percentile(lat, 0.999),
        "max_ms": lat[-1] if lat else float("nan"),
        "max_send_lag_ms": run.max_lag * 1000,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
