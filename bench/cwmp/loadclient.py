#!/usr/bin/env python3
"""CWMP load client: ``--cpes`` virtual CPEs, each on its own keep-alive connection, running
sessions back to back for ``--seconds``: Inform (a real envelope of tests/vectors/cwmp with the
device's serial), InformResponse + cookie, then empty POSTs answering any RPC the ACS sends
(GetParameterValues, SetParameterValues, others with a minimal response) until the 204.

HTTP digest like a real CPE: the first request of a connection gets a 401, the client answers
it and reuses the nonce with nc+1 afterwards (a new challenge or ``stale=true`` restarts it).
Prints one JSON line: sessions, errors, latencies (p50/p99 ms), HTTP requests and RPCs, its own
CPU seconds; with ``--require``, how many sessions got exactly one SetParameterValues and it
named every parameter listed (the BOOTSTRAP scenario's check).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import secrets
import time
from pathlib import Path

import digest

VECTORS = Path(__file__).resolve().parents[2] / "tests" / "vectors" / "cwmp"
_SERIAL = re.compile(rb"<SerialNumber>[^<]*</SerialNumber>")
_ID = re.compile(rb"<cwmp:ID[^>]*>([^<]*)</cwmp:ID>")
_RPC = re.compile(rb"<cwmp:(\w+)[ >/]")
_NAMES = re.compile(rb"<string>([^<]*)</string>")
_ENV_HEAD = (b'<?xml version="1.0" encoding="UTF-8"?><soap-env:Envelope '
             b'xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/" '
             b'xmlns:soap-enc="http://schemas.xmlsoap.org/soap/encoding/" '
             b'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
             b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
             b'xmlns:cwmp="urn:dslforum-org:cwmp-1-0"><soap-env:Header>'
             b'<cwmp:ID soap-env:mustUnderstand="1">%s</cwmp:ID></soap-env:Header><soap-env:Body>')
_ENV_TAIL = b"</soap-env:Body></soap-env:Envelope>"


def serial(prefix: str, index: int) -> str:
    return f"{prefix}{index:06d}"


def inform_body(template: bytes, serial_number: str) -> bytes:
    return _SERIAL.sub(b"<SerialNumber>" + serial_number.encode() + b"</SerialNumber>", template, 1)


def method(body: bytes) -> str:
    """The RPC an envelope of the ACS carries."""
    names = [n for n in _RPC.findall(body) if n not in (b"ID", b"HoldRequests", b"NoMoreRequests")]
    return names[0].decode() if names else "Unknown"


def rpc_reply(body: bytes) -> bytes:
    """A minimal response to the RPC in ``body`` (GPV: empty strings for the names asked)."""
    request_id = m[1] if (m := _ID.search(body)) else b"1"
    rpc = method(body)
    if rpc == "GetParameterValues":
        asked = _NAMES.findall(body)
        items = b"".join(b"<ParameterValueStruct><Name>%s</Name><Value xsi:type=\"xsd:string\">"
                         b"</Value></ParameterValueStruct>" % n for n in asked)
        inner = (b'<cwmp:GetParameterValuesResponse><ParameterList soap-enc:arrayType='
                 b'"cwmp:ParameterValueStruct[%d]">%s</ParameterList>'
                 b'</cwmp:GetParameterValuesResponse>' % (len(asked), items))
    elif rpc == "SetParameterValues":
        inner = b"<cwmp:SetParameterValuesResponse><Status>0</Status></cwmp:SetParameterValuesResponse>"
    elif rpc == "AddObject":
        inner = (b"<cwmp:AddObjectResponse><InstanceNumber>1</InstanceNumber><Status>0</Status>"
                 b"</cwmp:AddObjectResponse>")
    else:
        inner = b"<cwmp:%sResponse/>" % rpc.encode()
    return _ENV_HEAD % request_id + inner + _ENV_TAIL


class Cpe:
    """One virtual CPE on one keep-alive connection."""

    def __init__(self, host: str, port: int, user: str, password: str,
                 informs: list[bytes], require: list[bytes]) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.informs = informs
        self.require = require
        self.turn = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.challenge: dict[str, str] | None = None
        self.nc = 0
        self.cnonce = secrets.token_hex(8)
        self.rpcs = 0
        self.requests = 0
        self.complete = 0  # sessions with one SetParameterValues naming every ``require`` name

    async def _exchange(self, body: bytes, cookie: str | None) -> tuple[int, dict[str, str], bytes]:
        while True:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            head = [b"POST / HTTP/1.1", b"Host: %s:%d" % (self.host.encode(), self.port),
                    b"Content-Length: %d" % len(body)]
            if body:
                head.append(b'Content-Type: text/xml; charset="utf-8"')
            if cookie:
                head.append(b"Cookie: " + cookie.encode())
            if self.challenge is not None:
                self.nc += 1
                head.append(b"Authorization: " + digest.authorization(
                    self.user, self.password, self.challenge, "POST", "/", self.nc,
                    self.cnonce).encode())
            self.writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
            self.requests += 1
            status, headers, reply = await self._read()
            if status == 401 and "www-authenticate" in headers:
                fresh = digest.parse(headers["www-authenticate"])
                if self.challenge is not None and fresh.get("stale", "").lower() != "true" \
                        and fresh.get("nonce") == self.challenge.get("nonce"):
                    raise RuntimeError("digest rejected")
                self.challenge, self.nc = fresh, 0
                if headers.get("connection", "").lower() == "close":
                    self.close()
                continue
            if headers.get("connection", "").lower() == "close":
                self.close()
            return status, headers, reply

    async def _read(self) -> tuple[int, dict[str, str], bytes]:
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                key, _, value = line.partition(":")
                k = key.strip().lower()
                headers[k] = (headers[k] + ", " + value.strip()) if k in headers else value.strip()
        length = int(headers.get("content-length", "0"))
        body = await self.reader.readexactly(length) if length else b""
        return status, headers, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def session(self) -> None:
        inform = self.informs[self.turn % len(self.informs)]
        self.turn += 1
        status, headers, body = await self._exchange(inform, None)
        if status != 200 or b"InformResponse" not in body:
            raise RuntimeError(f"Inform answered {status}")
        cookie = headers.get("set-cookie", "").split(";", 1)[0] or None
        reply = b""
        sets: list[bytes] = []
        for _ in range(64):
            status, headers, body = await self._exchange(reply, cookie)
            if status == 204 or (status == 200 and not body):
                if self.require and len(sets) == 1 and all(b"<Name>" + n in sets[0] for n in self.require):
                    self.complete += 1
                return
            if status != 200:
                raise RuntimeError(f"empty POST answered {status}")
            if "set-cookie" in headers:  # the ACS's cookie names the session's step: keep the newest
                cookie = headers["set-cookie"].split(";", 1)[0] or None
            self.rpcs += 1
            if method(body) == "SetParameterValues":
                sets.append(body)
            reply = rpc_reply(body)
        raise RuntimeError("session did not end")


async def run(args: argparse.Namespace) -> dict[str, object]:
    template = (VECTORS / args.model / f"{args.inform}.xml").read_bytes()
    devices = max(args.devices, args.cpes)
    require = [n.encode() for n in args.require.split(",") if n]
    cpes = [Cpe(args.host, args.port, args.user, args.password,
                [inform_body(template, serial(args.prefix, args.first + d))
                 for d in range(i, devices, args.cpes)], require)
            for i in range(args.cpes)]
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + args.seconds

    async def loop(cpe: Cpe) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                await cpe.session()
            except (OSError, RuntimeError, asyncio.IncompleteReadError, ValueError) as exc:
                errors.append(repr(exc))
                cpe.close()
                await asyncio.sleep(0.05)
            else:
                latencies.append(time.perf_counter() - started)
            if args.once and cpe.turn >= len(cpe.informs):
                return

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in cpes))
    wall = time.perf_counter() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 3) \
            if latencies else 0.0

    return {"sessions": len(latencies), "errors": len(errors), "first_errors": errors[:3],
            "wall_s": round(wall, 3), "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "max_ms": pct(1.0), "rpcs": sum(c.rpcs for c in cpes), "requests": sum(c.requests for c in cpes),
            "complete": sum(c.complete for c in cpes),
            "cpu_s": round(cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7547)
    parser.add_argument("--user", default="cpe")
    parser.add_argument("--password", default="cpe")
    parser.add_argument("--model", default="tr098", choices=["tr098", "tr181"])
    parser.add_argument("--inform", default="inform-2-periodic")
    parser.add_argument("--prefix", default="BENCH")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--cpes", type=int, default=50)
    parser.add_argument("--devices", type=int, default=0,
                        help="distinct serials, shared out over the CPEs in turn (default: --cpes)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--once", action="store_true", help="one session per device, then stop")
    parser.add_argument("--require", default="",
                        help="comma-separated parameter names one SetParameterValues of a session must set")
    args = parser.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(args)) | {"pid": os.getpid()}), flush=True)


if __name__ == "__main__":
    main()
