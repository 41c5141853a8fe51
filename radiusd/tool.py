"""`lastmile radius ...`: the NOC's RADIUS tools.

- ``test LOGIN PASSWORD``: send a real Access-Request (PAP, with Message-Authenticator) to radiusd
  as a NAS would, and print the reply: "why can't this customer log in", answered by the server.
- ``disconnect LOGIN``: send a Disconnect-Request for every live session of the login to its NAS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket

from daemons import db
from daemons.config import Settings
from radiusd import coa, store
from radiusd.cache import NasTable
from radiusd.codec import Code, CodecError, decode_response, encode_request


def main(settings: Settings, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lastmile radius")
    sub = parser.add_subparsers(dest="command", required=True)
    test = sub.add_parser("test", help="send an Access-Request and print the reply")
    test.add_argument("login")
    test.add_argument("password")
    test.add_argument("--server", default="127.0.0.1", help="radiusd address (default 127.0.0.1)")
    test.add_argument("--port", type=int, default=settings.radiusd.auth_port)
    test.add_argument("--secret", help="shared secret (default: the NAS entry for this host in the database)")
    test.add_argument("--nas-ip", default="127.0.0.1", help="NAS-IP-Address to send")
    test.add_argument("--timeout", type=float, default=3.0)
    disconnect = sub.add_parser("disconnect", help="disconnect every live session of a login")
    disconnect.add_argument("login")
    args = parser.parse_args(argv)
    if args.command == "test":
        return run_test(settings, args)
    return asyncio.run(run_disconnect(settings, args.login))


def run_test(settings: Settings, args: argparse.Namespace) -> int:
    secret = args.secret or asyncio.run(_secret_for(settings, args.server))
    if secret is None:
        print("lastmile radius test: no NAS entry covers this host; give --secret")
        return 2
    attributes = [("User-Name", args.login), ("User-Password", args.password), ("NAS-IP-Address", args.nas_ip),
                  ("NAS-Port-Type", "Virtual"), ("Service-Type", "Framed-User"), ("Framed-Protocol", "PPP"),
                  ("Calling-Station-Id", "02:00:00:00:00:01")]
    identifier = os.getpid() % 256
    packet = encode_request(Code.ACCESS_REQUEST, identifier, attributes, secret.encode())
    with socket.socket(socket.AF_INET6 if ":" in args.server else socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(args.timeout)
        for _ in range(3):
            sock.sendto(packet, (args.server, args.port))
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            try:
                reply = decode_response(data, packet[4:20], secret.encode(), request_code=Code.ACCESS_REQUEST)
            except CodecError as e:
                print(f"invalid reply ({e.reason}): wrong secret?")
                return 1
            print(Code(reply.code).name.replace("_", "-").title())
            for name, values in reply.attributes().items():
                if name != "Message-Authenticator":
                    for value in values:
                        print(f"  {name} = {value!r}" if isinstance(value, bytes) else f"  {name} = {value}")
            return 0 if reply.code == Code.ACCESS_ACCEPT else 1
    print(f"no reply from {args.server}:{args.port} (radiusd not running, or this host is not a NAS?)")
    return 1


async def _secret_for(settings: Settings, server: str) -> str | None:
    """The secret radiusd expects from this host: the NAS entry that covers the loopback/source address."""
    conn = await db.connect(db.url_of(settings.database), settings.database.connect_timeout)
    try:
        nas = NasTable()
        nas.replace(await store.load_nas(conn))
    finally:
        await conn.close()
    source = "127.0.0.1" if server.startswith("127.") or server in ("localhost", "::1") else server
    entry = nas.lookup(source)
    return entry.secret.decode() if entry else None


async def run_disconnect(settings: Settings, login: str) -> int:
    conn = await db.connect(db.url_of(settings.database), settings.database.connect_timeout)
    client = coa.CoaClient(settings.radiusd.coa_timeout, settings.radiusd.coa_retries)
    try:
        service_id = await conn.fetchval("SELECT id FROM services WHERE login = $1", login)
        if service_id is None:
            print(f"no service with login {login!r}")
            return 2
        nas = NasTable()
        nas.replace(await store.load_nas(conn))
        targets = await store.coa_targets(conn, service_id)
        if not targets:
            print(f"{login}: no live session")
            return 1
        await client.open()
        failed = 0
        for target in targets:
            entry = nas.by_id.get(target.nas_id)
            if entry is None:
                result = "no-nas"
            else:
                code, attributes = coa.request_for("disconnect", None, target, "disconnect", "")
                result = (await client.send(entry, code, attributes, coa.destination(entry, target))).result
            await store.record_coa_on_session(conn, target, result)
            failed += result != "ack"
            where = entry.name if entry else target.nas_id
            print(f"{login}: session {target.acct_session_id} on {where} ({target.framed_ip or '-'}): {result}")
        return 1 if failed else 0
    finally:
        client.close()
        await conn.close()
