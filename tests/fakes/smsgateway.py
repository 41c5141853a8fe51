"""An SMS gateway for tests: an aiohttp server on 127.0.0.1 (a free port unless told) that
records every request and answers as scripted.

    async with SmsGateway() as gateway:
        settings = SmsSettings(url=gateway.url, ...)
        gateway.answer(503, "busy", times=1)       # the next request gets 503, then the default
        ...
        [request] = await gateway.wait_for(1)
        request.fields["to"], request.headers["Authorization"], request.json

- Any method and path is accepted (``url`` is ``http://127.0.0.1:<port>/send``; ``url_for(path)``
  gives another path on the same server).
- Each request is kept as :class:`Request`: method, path, query, headers, the raw body, ``json``
  (when the body is JSON) and ``fields`` (the form's fields, or a JSON object's top-level values
  as strings), in :attr:`requests`.
- The default answer is 200 with ``{"id": "sms-<n>", "status": "queued"}`` (``n`` counts the
  requests from 1). :meth:`answer` queues scripted answers (status, body: a dict/list sent as JSON,
  a string as text, and ``delay`` seconds before answering, for timeouts), each used ``times``
  times, in order; :meth:`default` replaces the default answer.
- :meth:`stop` closes the server (connections refused), :meth:`start` listens again on the same port.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: Any = None  # dict/list: JSON; str: text; None: the default JSON {"id": "sms-<n>", ...}
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class SmsGateway:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, path: str = "/send") -> None:
        self.host = host
        self.port = port
        self.path = path
        self.requests: list[Request] = []
        self._script: deque[Answer] = deque()
        self._default = Answer()
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Event()

    @property
    def url(self) -> str:
        return self.url_for(self.path)

    def url_for(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def answer(self, status: int, body: Any = None, times: int = 1, *, delay: float = 0.0,
               headers: dict[str, str] | None = None) -> None:
        """Answer the next ``times`` requests with ``status`` and ``body`` (after ``delay`` s)."""
        self._script.extend([Answer(status, body, delay, dict(headers or {}))] * times)

    def default(self, status: int = 200, body: Any = None, *, delay: float = 0.0) -> None:
        """The answer once the script is used up."""
        self._default = Answer(status, body, delay)

    async def wait_for(self, n: int, timeout: float = 5.0) -> list[Request]:
        async with asyncio.timeout(timeout):
            while len(self.requests) < n:
                self._arrived.clear()
                await self._arrived.wait()
        return self.requests[:n]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        parsed: Any = None
        fields: dict[str, str] = {}
        kind = request.content_type
        if kind == "application/json" or body[:1] in (b"{", b"["):
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                fields = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in parsed.items()}
        elif kind == "application/x-www-form-urlencoded":
            fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        self.requests.append(Request(request.method, request.path, dict(request.query), dict(request.headers),
                                     body, parsed, fields))
        self._arrived.set()
        n = len(self.requests)
        answer = self._script.popleft() if self._script else self._default
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.body is None:
            return web.json_response({"id": f"sms-{n}", "status": "queued"}, status=answer.status,
                                     headers=answer.headers)
        if isinstance(answer.body, str):
            return web.Response(text=answer.body, status=answer.status, headers=answer.headers)
        return web.json_response(answer.body, status=answer.status, headers=answer.headers)

    async def start(self) -> SmsGateway:
        if self._runner is not None:
            return self
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]  # an asyncio Server
        return self

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> SmsGateway:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
