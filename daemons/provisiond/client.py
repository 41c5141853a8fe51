"""The RouterOS API side of provisiond: log in, read the menus, apply a plan. librouteros
connects, logs in (its TLS and login code) and writes the sentences; replies are read with
:mod:`daemons.provisiond.codec` in large chunks (librouteros reads a word in three reads under a
timeout per sentence: 80 µs per row of a print, the most of a full run's CPU).

- Every step has a deadline (the connect with its login, each sentence; the caller bounds the
  whole run): a router that accepts and never answers costs its own run, never another's.
  After any failure the connection is closed and never used again: the protocol would be out
  of step.
- Writes are pipelined: up to ``pipeline`` commands go out, each with its own ``.tag``, before
  their answers are read (RouterOS answers tagged commands in any order). A trap fails that
  change only; a lost connection leaves the outcome of the changes in flight unknown, and the
  next run reads the router again before it plans (an add that did land is then found, not
  added twice).
- Login in RouterOS's 6.43+ form (name and password); a router of the transitional versions
  that answers it with a challenge is answered in the old MD5 form.
- UTF-8 throughout (librouteros's default is ASCII, which drops other characters).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import librouteros
from librouteros.exceptions import LibRouterosError, TrapError
from librouteros.login import encode_password

from daemons.provisiond import codec
from daemons.provisiond.model import Item, Menu, make
from daemons.provisiond.plan import Change


class RouterError(Exception):
    """The router could not be reached, logged into or talked to (``stage``: connect, login, read, write)."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    host: str
    port: int
    username: str
    password: str
    tls: bool = False
    verify: bool = True
    ca_file: str = ""


@dataclass(slots=True)
class Applied:
    done: dict[str, int] = field(default_factory=lambda: {"add": 0, "set": 0, "remove": 0})
    failed: list[tuple[Change, str]] = field(default_factory=list)  # trapped: the change and the router's message


def tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=endpoint.ca_file or None)
    if not endpoint.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def _login(api: librouteros.AsyncApi, username: str, password: str) -> None:
    replies = [r async for r in api("/login", name=username, password=password)]
    challenge = next((str(r["ret"]) for r in replies if "ret" in r), None)
    if challenge is not None:  # 6.43-6.45: the old form is asked for
        [r async for r in api("/login", name=username, response=encode_password(challenge, password))]


def _message(e: BaseException) -> str:
    if isinstance(e, TimeoutError | asyncio.TimeoutError):
        return "no answer in time"
    return str(e) or type(e).__name__


class Connection:
    """One logged-in API session with a router."""

    def __init__(self, api: librouteros.AsyncApi, endpoint: Endpoint, timeout: float) -> None:
        self.api = api
        self.endpoint = endpoint
        self.timeout = timeout
        self.broken = False
        self._tag = 0
        self._reader = api.protocol.transport.reader
        self._decoder = codec.Decoder()
        self._replies: collections.deque[tuple[bytes, ...]] = collections.deque()

    async def _reply(self) -> codec.Reply:
        """The next reply sentence (empty ones skipped), reading the stream in chunks."""
        while True:
            while not self._replies:
                chunk = await asyncio.wait_for(self._reader.read(1 << 16), self.timeout)
                if not chunk:
                    raise ConnectionError("the router closed the connection")
                self._replies.extend(self._decoder.feed(chunk))
            sentence = self._replies.popleft()
            if sentence:
                return codec.parse_reply(codec.text_sentence(sentence))

    @classmethod
    async def open(cls, endpoint: Endpoint, connect_timeout: float, command_timeout: float) -> Connection:
        try:
            api = await asyncio.wait_for(librouteros.async_connect(
                endpoint.host, endpoint.username, endpoint.password, port=endpoint.port, timeout=command_timeout,
                encoding="utf-8", login_method=_login,
                ssl_wrapper=tls_context(endpoint) if endpoint.tls else None), connect_timeout)
        except TrapError as e:
            raise RouterError("login", str(e)) from e
        except ssl.SSLError as e:
            raise RouterError("connect", f"TLS: {e.reason or e}") from e
        except (OSError, TimeoutError, LibRouterosError, EOFError) as e:
            raise RouterError("connect", _message(e)) from e
        return cls(api, endpoint, command_timeout)

    async def close(self) -> None:
        self.broken = True
        with contextlib.suppress(OSError, TimeoutError, LibRouterosError, RuntimeError):
            await asyncio.wait_for(self.api.close(), 1.0)

    async def _call(self, stage: str, cmd: str, *words: str) -> list[dict[str, str]]:
        """Send one command and return its ``!re`` rows (values as the router sent them); a
        ``!trap`` raises RouterError after its ``!done``, as the connection stays usable."""
        self._tag += 1
        tag = str(self._tag)
        rows: list[dict[str, str]] = []
        trap: str | None = None
        try:
            await self.api.protocol.writeSentence(cmd, *words, f".tag={tag}")
            while True:
                reply = await self._reply()
                if reply.tag != tag:
                    continue
                if reply.kind == "!re":
                    rows.append(reply.attributes)
                elif reply.kind == "!trap":
                    trap = trap or reply.attributes.get("message", "trap")
                elif reply.kind == "!fatal":
                    raise ConnectionError(f"the router ended the session: {reply.attributes or reply.other}")
                elif reply.kind == "!done":
                    break
        except (OSError, TimeoutError, LibRouterosError, codec.ProtocolError, UnicodeError) as e:
            self.broken = True
            raise RouterError(stage, _message(e)) from e
        if trap is not None:
            raise RouterError(stage, f"{cmd}: {trap}")
        return rows

    async def read(self, menu: Menu, field: str | None = None, values: Iterable[str] = ()) -> list[Item]:
        """The objects of ``menu`` (owned or not: the planner needs both) with their compared
        attributes: all of them, or those whose ``field`` is one of ``values`` (one query)."""
        words = [f"=.proplist=.id,{','.join(menu.attrs)}"]
        if field is not None:
            wanted = sorted(set(values))
            if not wanted:
                return []
            words += [f"?{field}={v}" for v in wanted] + ["?#" + "|" * (len(wanted) - 1)] * (len(wanted) > 1)
        rows = await self._call("read", f"{menu.path}/print", *words)
        return [make(menu, row, row[".id"]) for row in rows if ".id" in row]

    async def apply(self, changes: list[Change], pipeline: int,
                    progress: Callable[[int], None] | None = None) -> Applied:
        """Send ``changes`` in order, up to ``pipeline`` at a time; removes of one menu go as one
        command; ``progress(changes answered)`` after each answer. Raises RouterError when the
        connection fails (what was in flight is unknown)."""
        out = Applied()
        answered = 0
        commands = _commands(changes)
        protocol = self.api.protocol
        inflight: dict[str, tuple[list[Change], list[str]]] = {}
        queue = list(reversed(commands))
        try:
            while queue or inflight:
                while queue and len(inflight) < pipeline:
                    group, cmd, words = queue.pop()
                    self._tag += 1
                    tag = str(self._tag)
                    await protocol.writeSentence(cmd, *words, f".tag={tag}")
                    inflight[tag] = (group, [])
                reply = await self._reply()
                tag = reply.tag or ""
                if reply.kind == "!fatal":
                    raise ConnectionError(f"the router ended the session: {reply.attributes or reply.other}")
                if tag not in inflight:
                    continue
                group, traps = inflight[tag]
                if reply.kind == "!trap":
                    traps.append(reply.attributes.get("message", "trap"))
                elif reply.kind == "!done":
                    del inflight[tag]
                    if traps:
                        out.failed += [(c, traps[0]) for c in group]
                    else:
                        for c in group:
                            out.done[c.op] += 1
                    answered += len(group)
                    if progress is not None:
                        progress(answered)
        except (OSError, TimeoutError, LibRouterosError, codec.ProtocolError, UnicodeError) as e:
            self.broken = True
            raise RouterError("write", f"{_message(e)} ({len(inflight)} changes in flight: their outcome is unknown)"
                              ) from e
        return out


def _commands(changes: list[Change]) -> list[tuple[list[Change], str, list[str]]]:
    """The API commands of ``changes``: one remove per menu (its ``.id`` list), a set or add each."""
    out: list[tuple[list[Change], str, list[str]]] = []
    removes: dict[str, list[Change]] = {}
    for c in changes:
        if c.op == "remove":
            removes.setdefault(c.menu.path, []).append(c)
    for path, group in removes.items():
        out.append((group, f"{path}/remove", ["=.id=" + ",".join(str(c.item.id) for c in group)]))
    for c in changes:
        if c.op == "set":
            out.append(([c], f"{c.menu.path}/set", [f"=.id={c.item.id}", *(f"={k}={v}" for k, v in c.attrs.items())]))
        elif c.op == "add":
            out.append(([c], f"{c.menu.path}/add", [f"={k}={v}" for k, v in c.attrs.items()]))
    return out
