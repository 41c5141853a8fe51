"""The benchmark's traffic: which subscribers log in, and the requests a MikroTik BRAS sends.

Every request is a list of ``(attribute, value)`` pairs. ``radclient_text`` turns one into a
block of a radclient request file; ``radpkt`` encodes the same pairs for the latency generator,
so both load generators send identical requests (PPPoE, PAP, Message-Authenticator on every
Access-Request; accounting Start, Interim-Updates and Stop with counters, no
Message-Authenticator, as MikroTik sends them).
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from radpkt import ATTRIBUTES, Attrs

NAS_IP = "127.0.0.1"
NAS_IDENTIFIER = "bench-bras"
POOL_BASE = ipaddress.IPv4Address("10.128.0.0")  # addresses of sessions of services without a static one
INTERIM_S = 300


@dataclass(frozen=True)
class Subscriber:
    index: int
    login: str
    password: str
    ipv4: str  # static address, or "" when the address comes from a pool
    rate_limit: str  # Mikrotik-Rate-Limit of the tariff ("upload/download")
    bound_mac: str = ""  # the service's MAC address, when it is bound to one

    @property
    def mac(self) -> str:
        """Calling-Station-Id: the bound MAC, else one made up from the index."""
        if self.bound_mac:
            return self.bound_mac
        i = self.index
        return f"4C:5E:0C:{(i >> 16) & 255:02X}:{(i >> 8) & 255:02X}:{i & 255:02X}"

    @property
    def session_ip(self) -> str:
        return self.ipv4 or str(POOL_BASE + self.index)


def read_subscribers(path: Path) -> list[Subscriber]:
    """Subscribers from a TSV file: index, login, password, ipv4, rate limit, MAC (may be empty)."""
    subs = []
    for line in path.read_text().splitlines():
        index, login, password, ipv4, rate, mac = line.split("\t")
        subs.append(Subscriber(int(index), login, password, ipv4, rate, mac))
    return subs


def write_subscribers(path: Path, subs: Iterable[Subscriber]) -> None:
    path.write_text(
        "".join(f"{s.index}\t{s.login}\t{s.password}\t{s.ipv4}\t{s.rate_limit}\t{s.bound_mac}\n" for s in subs)
    )


def _nas_attrs(sub: Subscriber) -> Attrs:
    return [
        ("Service-Type", "Framed-User"),
        ("Framed-Protocol", "PPP"),
        ("NAS-Port", 15728640 + sub.index % 1048576),
        ("NAS-Port-Type", "Ethernet"),
        ("Calling-Station-Id", sub.mac),
        ("Called-Station-Id", "pppoe-bench"),
        ("NAS-Port-Id", f"vlan{100 + sub.index % 50}"),
        ("User-Name", sub.login),
    ]


def auth_attrs(sub: Subscriber, seq: int) -> Attrs:
    """A MikroTik PPPoE PAP Access-Request (Message-Authenticator is added by the sender)."""
    return [
        *_nas_attrs(sub),
        ("User-Password", sub.password),
        ("NAS-IP-Address", NAS_IP),
        ("NAS-Identifier", NAS_IDENTIFIER),
        ("Acct-Session-Id", f"{seq & 0xFFFFFFFF:08x}"),
    ]


def acct_attrs(sub: Subscriber, session_id: str, step: int, last: int, start_time: int) -> Attrs:
    """Accounting-Request number ``step`` of a session that started at ``start_time``: 0 Start,
    ``last`` Stop, Interim-Updates every INTERIM_S between."""
    status = "Start" if step == 0 else "Stop" if step == last else "Interim-Update"
    attrs: Attrs = [
        ("Acct-Status-Type", status),
        *_nas_attrs(sub),
        ("NAS-IP-Address", NAS_IP),
        ("NAS-Identifier", NAS_IDENTIFIER),
        ("Acct-Session-Id", session_id),
        ("Framed-IP-Address", sub.session_ip),
        ("Acct-Authentic", "RADIUS"),
        ("Acct-Delay-Time", 0),
        ("Event-Timestamp", start_time + step * INTERIM_S),
    ]
    if step:
        elapsed = step * INTERIM_S
        down = elapsed * 2_500_000 + sub.index  # ~20 Mbit/s down, 1/10 of it up
        attrs += [
            ("Acct-Session-Time", elapsed),
            ("Acct-Input-Octets", (down // 10) & 0xFFFFFFFF),
            ("Acct-Output-Octets", down & 0xFFFFFFFF),
            ("Acct-Input-Gigawords", (down // 10) >> 32),
            ("Acct-Output-Gigawords", down >> 32),
            ("Acct-Input-Packets", elapsed * 400),
            ("Acct-Output-Packets", elapsed * 1800),
        ]
    if status == "Stop":
        attrs.append(("Acct-Terminate-Cause", "User-Request"))
    return attrs


def radclient_text(attrs: Attrs, message_authenticator: bool) -> str:
    """One request block for a radclient request file (radclient hides User-Password itself,
    and fills in ``Message-Authenticator = 0x00``)."""
    lines = []
    for name, value in attrs:
        if ATTRIBUTES[name][1] in ("string", "password"):
            lines.append(f'{name} = "{_escape(str(value))}"')
        else:  # integers, addresses and named values go bare
            lines.append(f"{name} = {value}")
    if message_authenticator:
        lines.append("Message-Authenticator = 0x00")
    return "\n".join(lines) + "\n\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def login_order(subs: Sequence[Subscriber], count: int, rnd: random.Random) -> Iterator[Subscriber]:
    """``count`` subscribers in random order; every subscriber once before any twice."""
    order: list[Subscriber] = []
    for _ in range(count):
        if not order:
            order = list(subs)
            rnd.shuffle(order)
        yield order.pop()


@dataclass(frozen=True)
class Chunks:
    """Request files for radclient (pPP-cKKKKK.txt: phase PP, chunk KKKKK) in ``directory``."""

    directory: Path
    requests: int
    sessions: int  # accounting only


def write_auth(directory: Path, subs: Sequence[Subscriber], count: int, chunk: int, seed: int) -> Chunks:
    rnd = random.Random(seed)
    blocks = (
        radclient_text(auth_attrs(sub, seed * 1_000_003 + k), message_authenticator=True)
        for k, sub in enumerate(login_order(subs, count, rnd))
    )
    _write_phase(directory, 0, blocks, chunk)
    return Chunks(directory, count, 0)


def write_acct(
    directory: Path,
    subs: Sequence[Subscriber],
    sessions: int,
    interims: int,
    prefix: str,
    chunk: int,
    seed: int,
    event_time: int,
) -> Chunks:
    """Sessions with Start, ``interims`` Interim-Updates and Stop (at ``event_time``), written
    phase by phase so that chunk K of every phase holds the same sessions (see ``loader.py``)."""
    rnd = random.Random(seed)
    picked = list(login_order(subs, sessions, rnd))
    last = interims + 1
    start = event_time - last * INTERIM_S
    for step in range(last + 1):
        blocks = (
            radclient_text(acct_attrs(sub, session_id(prefix, k), step, last, start), message_authenticator=False)
            for k, sub in enumerate(picked)
        )
        _write_phase(directory, step, blocks, chunk)
    return Chunks(directory, sessions * (last + 1), sessions)


def session_id(prefix: str, k: int) -> str:
    return f"{prefix}{k:08x}"


def _write_phase(directory: Path, phase: int, blocks: Iterable[str], chunk: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    batch: list[str] = []
    number = 0
    for block in blocks:
        batch.append(block)
        if len(batch) == chunk:
            (directory / f"p{phase:02d}-c{number:05d}.txt").write_text("".join(batch))
            batch, number = [], number + 1
    if batch:
        (directory / f"p{phase:02d}-c{number:05d}.txt").write_text("".join(batch))
