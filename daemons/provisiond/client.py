"""The RouterOS API side of provisiond: log in, read the menus, apply a plan. librouteros
carries the words (its codec and transport); what is here is how lastmile uses them.

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
import contextlib
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import librouteros
from librouteros.exceptions import LibRouterosError, TrapError
from librouteros.login import encode_password

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

    async def _call(self, stage: str, cmd: str, *words: str) -> list[dict[str, Any]]:
        try:
            return [r async for r in self.api.rawCmd(cmd, *words)]
        except TrapError:
            raise
        except (OSError, TimeoutError, LibRouterosError, EOFError, UnicodeError) as e:
            self.broken = True
            raise RouterError(stage, _message(e)) from e

    async def identity(self) -> dict[str, str]:
        """The router's name and RouterOS version (``/system/identity``, ``/system/resource``)."""
        name = await self._call("read", "/system/identity/print")
        resource = await self._call("read", "/system/resource/print", "=.proplist=version,board-name,uptime")
        out = {k: str(v) for k, v in (resource[0] if resource else {}).items()}
        out["identity"] = str(name[0].get("name", "")) if name else ""
        return out

    async def read(self, menu: Menu, field: str | None = None, values: Iterable[str] = ()) -> list[Item]:
        """The objects of ``menu`` (owned or not: the planner needs both) with their compared
        attributes: all of them, or those whose ``field`` is one of ``values`` (one query)."""
        words = [f"=.proplist=.id,{','.join(menu.attrs)}"]
        if field is not None:
            wanted = sorted(set(values))
            if not wanted:
                return []
            words += [f"?{field}={v}" for v in wanted] + ["?#" + "|" * (len(wanted) - 1)] * (len(wanted) > 1)
        try:
            rows = await self._call("read", f"{menu.path}/print", *words)
        except TrapError as e:
            raise RouterError("read", f"{menu.path}: {e}") from e
        return [make(menu, row, str(row[".id"])) for row in rows if ".id" in row]

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
                reply, words = await protocol.readSentence()
                attrs = _attributes(words)
                tag = attrs.get(".tag", "")
                if tag not in inflight:
                    continue
                group, traps = inflight[tag]
                if reply == "!trap":
                    traps.append(str(attrs.get("message", "trap")))
                elif reply == "!done":
                    del inflight[tag]
                    if traps:
                        out.failed += [(c, traps[0]) for c in group]
                    else:
                        for c in group:
                            out.done[c.op] += 1
                    answered += len(group)
                    if progress is not None:
                        progress(answered)
                elif reply == "!fatal":
                    raise RouterError("write", f"the router ended the session: {attrs}")
        except (OSError, TimeoutError, LibRouterosError, EOFError, UnicodeError) as e:
            self.broken = True
            raise RouterError("write", f"{_message(e)} ({len(inflight)} changes in flight: their outcome is unknown)"
                              ) from e
        return out


def _attributes(words: Iterable[str]) -> dict[str, str]:
    """A reply's words as attributes, values as sent (``=name=value``, and ``.tag=N``, which
    librouteros's own parser cannot read)."""
    out = {}
    for word in words:
        if word.startswith("="):
            key, _, value = word[1:].partition("=")
            out[key] = value
        elif word.startswith(".tag="):
            out[".tag"] = word[5:]
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
