#!/usr/bin/env python3
"""The do-nothing ACS the benchmark measures as the floor (the peer baseline of reference
section 5): raw asyncio, HTTP/1.1 keep-alive, digest with qop=auth (one nonce per connection,
nc checked to increase), Inform -> InformResponse with a session cookie, empty POST -> 204.
No parsing beyond finding the cwmp:ID, no database."""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets

import digest

_ID = re.compile(rb"<cwmp:ID[^>]*>([^<]*)</cwmp:ID>")
_RESPONSE = (b'<?xml version="1.0" encoding="UTF-8"?><soap-env:Envelope '
             b'xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/" '
             b'xmlns:cwmp="urn:dslforum-org:cwmp-1-0"><soap-env:Header>'
             b'<cwmp:ID soap-env:mustUnderstand="1">%s</cwmp:ID></soap-env:Header>'
             b'<soap-env:Body><cwmp:InformResponse><MaxEnvelopes>1</MaxEnvelopes>'
             b'</cwmp:InformResponse></soap-env:Body></soap-env:Envelope>')
REALM = "lastmile-bench"


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                user: str, password: str) -> None:
    nonce = secrets.token_hex(16)
    last_nc = 0
    try:
        while True:
            raw = await reader.readuntil(b"\r\n\r\n")
            headers = {}
            for line in raw.decode("latin-1").split("\r\n")[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length) if length else b""
            auth = digest.parse(headers.get("authorization", ""))
            nc = int(auth.get("nc", "0"), 16)
            expected = digest.response(user, password, REALM, "POST", auth.get("uri", ""),
                                       nonce, auth.get("nc", ""), auth.get("cnonce", ""))
            if auth.get("nonce") != nonce or nc <= last_nc or auth.get("response") != expected:
                writer.write(b'HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n'
                             b'WWW-Authenticate: Digest realm="%s", qop="auth", nonce="%s", '
                             b'algorithm=MD5\r\n\r\n' % (REALM.encode(), nonce.encode()))
                continue
            last_nc = nc
            if body:
                request_id = m[1] if (m := _ID.search(body)) else b"1"
                reply = _RESPONSE % request_id
                writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset="utf-8"\r\n'
                             b"Set-Cookie: session=%s; Path=/\r\nContent-Length: %d\r\n\r\n"
                             % (secrets.token_hex(8).encode(), len(reply)) + reply)
            else:
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(args: argparse.Namespace) -> None:
    server = await asyncio.start_server(
        lambda r, w: serve(r, w, args.user, args.password), args.host, args.port, backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=17547)
    parser.add_argument("--user", default="cpe")
    parser.add_argument("--password", default="cpe")
    import uvloop
    uvloop.run(main(parser.parse_args()))
