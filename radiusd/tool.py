"""`lastmile radius ...`: the NOC's RADIUS tools.

- ``test LOGIN PASSWORD``: send a real Access-Request (PAP, with Message-Authenticator) to radiusd
  as a NAS would (its MAC, port, address, service type, and any dictionary attribute with
  ``--attr``), print the reply and the reason radiusd recorded for it in ``radius_postauth``: "why
  can't this customer log in", answered by the server. The request carries
  Lastmile-Test-Request, so radiusd takes no address from a lastmile pool for it.
- ``disconnect LOGIN``: send a Disconnect-Request for every live session of the login to its NAS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from daemons import db, output
from daemons.config import Settings
from radiusd import coa, dictionaries, store
from radiusd.cache import Nas, NasTable
from radiusd.codec import (
    AttributeTable,
    Code,
    CodecError,
    EncodeError,
    InValue,
    Response,
    check_attribute,
    decode_response,
    encode_request,
)
from radiusd.settings import RadiusdSettings

#: How long the post-auth row of a test may take to appear (radiusd writes them every 25 ms).
POSTAUTH_WAIT = 2.0


def main(settings: Settings, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lastmile radius")
    sub = parser.add_subparsers(dest="command", required=True)
    test = sub.add_parser("test", help="send an Access-Request as a NAS would, print the reply and the reason")
    test.add_argument("login")
    test.add_argument("password")
    test.add_argument("--server", default="127.0.0.1", help="radiusd address (default 127.0.0.1)")
    test.add_argument("--port", type=int, default=settings.of(RadiusdSettings).auth_port)
    test.add_argument("--secret", help="shared secret (default: the NAS entry for this host in the database)")
    test.add_argument("--mac", help="Calling-Station-Id: the subscriber device's MAC address (default: none)")
    test.add_argument("--nas-ip", default="127.0.0.1",
                      help="NAS-IP-Address (NAS-IPv6-Address for an IPv6 address) to send (default 127.0.0.1)")
    test.add_argument("--nas-port", help="NAS-Port to send")
    test.add_argument("--service-type", default="Framed-User", help="Service-Type to send (default Framed-User)")
    test.add_argument("--attr", action="append", default=[], metavar="NAME=VALUE",
                      help="any attribute of the dictionary (site ones included), e.g. NAS-Port-Id=ether1; "
                           "repeatable; replaces the default of that name")
    test.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for each of 3 tries")
    disconnect = sub.add_parser("disconnect", help="disconnect every live session of a login")
    disconnect.add_argument("login")
    args = parser.parse_args(argv)
    if args.command == "test":
        return run_test(settings, args)
    return asyncio.run(run_disconnect(settings, args.login))


class _Usage(Exception):
    """An option the request cannot carry; the one line to show."""


def request_attributes(args: argparse.Namespace, table: AttributeTable) -> list[tuple[str, InValue]]:
    """What the test request carries: what a NAS sends, the options, ``--attr``, the test marker."""

    def checked(given: str, name: str, value: str) -> tuple[str, InValue]:
        try:
            return name, check_attribute(name, value, table)
        except EncodeError as e:
            raise _Usage(f"{given}: {e}") from None

    nas_address = "NAS-IPv6-Address" if ":" in args.nas_ip else "NAS-IP-Address"
    defaults = [checked(f"--nas-ip {args.nas_ip}", nas_address, args.nas_ip), ("NAS-Port-Type", "Virtual"),
                checked(f"--service-type {args.service_type}", "Service-Type", args.service_type),
                ("Framed-Protocol", "PPP")]
    if args.nas_port is not None:
        defaults.append(checked(f"--nas-port {args.nas_port}", "NAS-Port", args.nas_port))
    if args.mac is not None:
        defaults.append(checked(f"--mac {args.mac}", "Calling-Station-Id", args.mac))
    extra = []
    for text in args.attr:
        name, equals, value = text.partition("=")
        if not equals or not name:
            raise _Usage(f"--attr {text}: not NAME=VALUE")
        extra.append(checked(f"--attr {text}", name, value))
    named = {name for name, _ in extra}
    return [checked("LOGIN", "User-Name", args.login), checked("PASSWORD", "User-Password", args.password),
            *(a for a in defaults if a[0] not in named), *extra,
            ("Lastmile-Test-Request", "lastmile radius test")]


@dataclass
class _Outcome:
    code: int
    lines: list[str] = field(default_factory=list)
    error: str = ""


def run_test(settings: Settings, args: argparse.Namespace) -> int:
    try:
        table = dictionaries.load(settings.of(RadiusdSettings).dictionary_dir).table
        attributes = request_attributes(args, table)
    except (dictionaries.DictionaryError, _Usage) as e:
        print(f"lastmile radius test: {e}", file=sys.stderr)
        return 2
    outcome = asyncio.run(_test(settings, args, table, attributes))
    if outcome.error:
        print(f"lastmile radius test: {outcome.error}", file=sys.stderr)
    output.emit(outcome.lines)
    return outcome.code




async def _test(settings: Settings, args: argparse.Namespace, table: AttributeTable,
                attributes: list[tuple[str, InValue]]) -> _Outcome:
    family = socket.AF_INET6 if ":" in args.server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((args.server, args.port))
        source = sock.getsockname()[0]  # the address radiusd looks this NAS up by
        conn: asyncpg.Connection | None = None
        unreachable = ""
        try:
            conn = await db.connect(db.url_of(settings.database), settings.database.connect_timeout)
        except (OSError, asyncpg.PostgresError) as e:
            if args.secret is None:
                raise  # the command says the database cannot be reached; without it there is no secret
            unreachable = str(e) or type(e).__name__
        try:
            nas = await _nas_for(conn, source) if conn is not None else None
            secret = args.secret or (nas.secret.decode() if nas else None)
            if secret is None:
                return _Outcome(2, error=f"no NAS entry covers this host ({source}); give --secret")
            before = await store.last_postauth(conn, args.login, nas.id) if conn and nas else None
            packet = encode_request(Code.ACCESS_REQUEST, os.getpid() % 256, attributes, secret.encode(), table=table)
            data = await asyncio.to_thread(_exchange, sock, packet, args.timeout)
            if data is None:
                return _Outcome(1, [f"no reply from {args.server}:{args.port} (radiusd not running, or this host "
                                    "is not a NAS?)"])
            try:
                reply = decode_response(data, packet[4:20], secret.encode(), request_code=Code.ACCESS_REQUEST,
                                        table=table)
            except CodecError as e:
                return _Outcome(1, [f"invalid reply ({e.reason}): wrong secret?"])
            lines = _describe(reply)
            accepted = reply.code == Code.ACCESS_ACCEPT
            if conn is None or nas is None:
                lines.append(f"reason: not known (the database is unreachable: {unreachable})" if unreachable
                             else "reason: not known (no NAS entry covers this host in the database)")
            else:
                if accepted and reply.framed_ip_address is None:
                    pool = await store.lastmile_pool_of(conn, args.login)
                    if pool is not None:
                        lines.append(f"  (no Framed-IP-Address: a test takes no address from pool {pool})")
                reason = await _reason(conn, args.login, nas.id, "accept" if accepted else "reject", before)
                lines.append(f"reason: {reason}" if reason is not None else
                             f"reason: not in radius_postauth after {POSTAUTH_WAIT:g} s (is the database slow?)")
            return _Outcome(0 if accepted else 1, lines)
        finally:
            if conn is not None:
                await conn.close()


async def _nas_for(conn: asyncpg.Connection, source: str) -> Nas | None:
    """The NAS entry radiusd will take this host for."""
    nas = NasTable()
    nas.replace(await store.load_nas(conn))
    return nas.lookup(source)


def _exchange(sock: socket.socket, packet: bytes, timeout: float) -> bytes | None:
    """Send up to three times; the first datagram that answers this request (same Identifier)."""
    try:
        for _ in range(3):
            sock.send(packet)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    data = sock.recv(4096)
                except TimeoutError:
                    break
                if len(data) >= 20 and data[1] == packet[1]:
                    return data
    except ConnectionRefusedError:  # ICMP port unreachable: nobody listens there
        return None
    return None


def _describe(reply: Response) -> list[str]:
    lines = [Code(reply.code).name.replace("_", "-").title()]
    for name, values in reply.attributes().items():
        if name != "Message-Authenticator":
            lines.extend(f"  {name} = {value!r}" if isinstance(value, bytes) else f"  {name} = {value}"
                         for value in values)
    return lines


async def _reason(conn: asyncpg.Connection, login: str, nas_id: int, result: str,
                  before: datetime | None) -> str | None:
    """The reason radiusd recorded for the request just answered: the first row of this user from
    this NAS with this result after the newest one seen before sending."""
    deadline = time.monotonic() + POSTAUTH_WAIT
    while True:
        reason = await store.postauth_reason(conn, login, nas_id, result, before)
        if reason is not None or time.monotonic() > deadline:
            return reason
        await asyncio.sleep(0.025)


async def run_disconnect(settings: Settings, login: str) -> int:
    conn = await db.connect(db.url_of(settings.database), settings.database.connect_timeout)
    table = dictionaries.load(settings.of(RadiusdSettings).dictionary_dir).table
    client = coa.CoaClient(settings.of(RadiusdSettings).coa_timeout, settings.of(RadiusdSettings).coa_retries, table)
    try:
        service_id = await store.service_id(conn, login)
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
