"""The benchmark's own RouterOS API client: counts, and a watch on an address list.

librouteros's API waits for each command's ``!done`` and so cannot follow a ``listen``; this
speaks the protocol with the double's sans-IO codec (daemons/provisiond/codec.py) over asyncio
streams instead. Every reply carries the time.time() at which the bytes holding it were read,
so a watch says when an entry reached the router's stream, not when the benchmark got round to
parsing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from daemons.provisiond.codec import Decoder, Reply, parse_reply, text_sentence, word_sentence

ADDRESS_LIST = "/ip/firewall/address-list"


class ApiError(Exception):
    """The router refused a command (``!trap``, ``!fatal``) or the session broke."""


@dataclass(frozen=True, slots=True)
class Received:
    reply: Reply
    at: float  # time.time() when its bytes were read


class Api:
    """One logged-in API session (plain API, no TLS)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = Decoder()
        self.pending: deque[Received] = deque()

    @classmethod
    async def open(cls, host: str, port: int, user: str, password: str, timeout: float = 10.0) -> Api:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        api = cls(reader, writer)
        try:
            replies = await api.call("/login", f"=name={user}", f"=password={password}", timeout=timeout)
        except BaseException:
            await api.close()
            raise
        if any(r.kind != "!done" for r in replies):
            await api.close()
            raise ApiError(f"login to {host}:{port} refused: {replies[0].message}")
        return api

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)

    def send(self, *words: str) -> None:
        self.writer.write(word_sentence(words))

    async def read(self) -> Received:
        while not self.pending:
            data = await self.reader.read(1 << 16)
            at = time.time()
            if not data:
                raise ApiError("the router closed the connection")
            for sentence in self.decoder.feed(data):
                if sentence:  # an empty sentence is ignored, as the router does
                    self.pending.append(Received(parse_reply(text_sentence(sentence)), at))
        return self.pending.popleft()

    async def call(self, *words: str, timeout: float = 30.0) -> list[Reply]:
        """Send one untagged command and read its replies up to its ``!done`` (or a ``!fatal``)."""
        self.send(*words)
        out: list[Reply] = []
        async with asyncio.timeout(timeout):
            while True:
                reply = (await self.read()).reply
                out.append(reply)
                if reply.kind in ("!done", "!fatal"):
                    return out

    async def count(self, menu: str, *queries: str) -> int:
        """``print =count-only=`` of ``menu`` (with ``?`` query words)."""
        replies = await self.call(f"{menu}/print", "=count-only=", *queries)
        for r in replies:
            if r.kind in ("!trap", "!fatal"):
                raise ApiError(f"{menu}/print =count-only=: {r.message}")
        return int(replies[-1].attributes.get("ret", "-1"))


Change = Callable[[str, bool, float], None]
"""``(address, present, at)``: an address entered (True) or left (False) the watched list."""


class ListWatch:
    """What one address list holds on one router, kept current from a ``listen`` stream.

    ``listen`` is sent before a plain ``print`` on the same session, so the print's rows are a
    snapshot and every change after it arrives on the stream (the router handles one session's
    commands in order). A removed entry arrives as ``.id`` + ``.dead=yes`` only: the watch keeps
    each entry's id to know which address went."""

    def __init__(self, api: Api, list_name: str, on_change: Change) -> None:
        self.api = api
        self.list_name = list_name
        self.on_change = on_change
        self.entries: dict[str, tuple[str, str]] = {}  # .id -> (list, address)
        self.holders: dict[str, int] = {}  # address in the watched list -> entries holding it
        self.started = False
        self.task: asyncio.Task[None] | None = None

    @property
    def addresses(self) -> set[str]:
        return set(self.holders)

    async def start(self) -> None:
        self.api.send(f"{ADDRESS_LIST}/listen", ".tag=listen")
        self.api.send(f"{ADDRESS_LIST}/print", "=.proplist=.id,list,address", ".tag=snapshot")
        while True:
            got = await self.api.read()
            r = got.reply
            if r.tag == "snapshot":
                if r.kind == "!done":
                    break
                if r.kind in ("!trap", "!fatal"):
                    raise ApiError(f"address-list print: {r.message}")
            self._apply(got)
        self.started = True
        self.task = asyncio.create_task(self._follow(), name=f"watch-{self.list_name}")

    async def _follow(self) -> None:
        while True:
            got = await self.api.read()
            if got.reply.kind in ("!trap", "!fatal"):
                raise ApiError(f"listen: {got.reply.message}")
            self._apply(got)

    def _apply(self, got: Received) -> None:
        r = got.reply
        if r.kind != "!re":
            return
        a = r.attributes
        rid = a.get(".id", "")
        old = self.entries.get(rid)
        if a.get(".dead") in ("yes", "true"):
            self.entries.pop(rid, None)
            if old is not None and old[0] == self.list_name:
                self._drop(old[1], got.at)
            return
        new = (a.get("list", old[0] if old else ""), a.get("address", old[1] if old else ""))
        self.entries[rid] = new
        if new == old:  # a set of other properties
            return
        if old is not None and old[0] == self.list_name:
            self._drop(old[1], got.at)
        if new[0] == self.list_name:
            n = self.holders.get(new[1], 0)
            self.holders[new[1]] = n + 1
            if n == 0 and self.started:
                self.on_change(new[1], True, got.at)

    def _drop(self, address: str, at: float) -> None:
        n = self.holders.get(address, 0) - 1
        if n > 0:
            self.holders[address] = n
            return
        self.holders.pop(address, None)
        if self.started:
            self.on_change(address, False, at)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ApiError, OSError):
                await self.task
        await self.api.close()
