"""Micro-benchmark of radiusd.codec against pyrad's Packet: microseconds per operation, one core.

    python bench/radius/codec_micro.py [--number N]

Packets are the golden vectors (made by radclient): a MikroTik PPPoE PAP Access-Request with
Message-Authenticator and an Accounting-Request Interim-Update.  Each row is the best of 5 runs.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from pathlib import Path

from pyrad import packet as pyrad_packet
from pyrad.dictionary import Dictionary

from radiusd import codec

ROOT = Path(__file__).parents[2]
VECTORS = ROOT / "tests" / "vectors" / "radius"
SECRET = b"lastmile-vector-secret"
ACCEPT: list[tuple[str, codec.InValue]] = [
    ("Framed-IP-Address", "100.64.0.5"),
    ("Mikrotik-Rate-Limit", "10M/50M 20M/100M 8M/40M 10/10"),
    ("Mikrotik-Address-List", "active"),
    ("Session-Timeout", 86400),
    ("Acct-Interim-Interval", 300),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="calls per run")
    number = parser.parse_args().number
    pap = bytes.fromhex((VECTORS / "mikrotik_pppoe_pap_request.hex").read_text())
    acct = bytes.fromhex((VECTORS / "mikrotik_acct_interim.hex").read_text())
    pyd = Dictionary(str(Path(codec.__file__).parent / "dictionary" / "dictionary"))
    request = codec.decode_request(pap, SECRET)

    def lean_access() -> None:
        r = codec.decode_request(pap, SECRET)
        _ = r.user_name, r.user_password

    def pyrad_access() -> None:
        p = pyrad_packet.AuthPacket(packet=pap, dict=pyd, secret=SECRET)
        assert p.verify_message_authenticator()
        _ = p["User-Name"], p.PwDecrypt(p["User-Password"][0])

    def lean_acct() -> None:
        r = codec.decode_request(acct, SECRET)
        _ = r.acct_status_type, r.acct_session_id, r.acct_input_bytes, r.acct_output_bytes, r.acct_unique_session_id

    def pyrad_acct() -> None:
        p = pyrad_packet.AcctPacket(packet=acct, dict=pyd, secret=SECRET)
        assert p.VerifyAcctRequest()
        _ = p["Acct-Status-Type"], p["Acct-Session-Id"], p["Acct-Input-Octets"], p["Acct-Input-Gigawords"]

    def lean_accept() -> None:
        codec.encode_reply(request, codec.Code.ACCESS_ACCEPT, ACCEPT)

    pyrad_request = pyrad_packet.AuthPacket(packet=pap, dict=pyd, secret=SECRET)

    def pyrad_accept() -> None:
        reply = pyrad_request.CreateReply()
        for name, value in ACCEPT:
            reply.AddAttribute(name, value)
        reply.ReplyPacket()

    def lean_round_trip() -> None:
        r = codec.decode_request(pap, SECRET)
        assert r.user_password == b"correct horse battery staple"
        codec.encode_reply(r, codec.Code.ACCESS_ACCEPT, ACCEPT)

    def pyrad_round_trip() -> None:
        pyrad_access()
        pyrad_accept()

    rows: list[tuple[str, Callable[[], None], Callable[[], None]]] = [
        ("decode+verify PAP Access-Request (MA), User-Name, password", lean_access, pyrad_access),
        ("decode+verify Accounting-Request, counters, unique id", lean_acct, pyrad_acct),
        ("encode Access-Accept, 5 attributes, MA first", lean_accept, pyrad_accept),
        ("Access-Request in, Access-Accept out", lean_round_trip, pyrad_round_trip),
    ]
    print(f"{'operation':<62} {'lean us':>8} {'pyrad us':>9} {'speed-up':>9}")
    for label, lean, reference in rows:
        lean_us = best(lean, number)
        pyrad_us = best(reference, max(number // 10, 100))
        print(f"{label:<62} {lean_us:8.2f} {pyrad_us:9.2f} {pyrad_us / lean_us:8.1f}x")


def best(fn: Callable[[], None], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


if __name__ == "__main__":
    main()
