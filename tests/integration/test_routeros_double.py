"""The RouterOS API double (tests/fakes/routeros.py) against librouteros 4.2.2, the client provisiond uses.

What a test elsewhere relies on is proven here with the real client, async and sync: both login
methods against the versions that accept them, API-SSL verified with the test CA and refused with
another, every menu operation, the queries, ``!empty`` on 7.18, UTF-8, the faults (each surfacing
as librouteros's TrapError, FatalError, ConnectionClosed, a refused connection or a timeout),
reboots and the journal. What librouteros cannot send (tags, ``/cancel``, a control byte) goes
through a bare client on the codec.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import librouteros
import pytest
from librouteros.exceptions import ConnectionClosed, FatalError, TrapError
from librouteros.login import async_token, token
from librouteros.query import And, Key, Or

from daemons.provisiond.codec import Decoder, Reply, parse_reply, text_sentence, word_sentence
from tests.fakes.routeros import Certificates, FakeRouter, make_certificates, running

ROOT = Path(__file__).parents[2]
USER, PASSWORD = "lastmile", "s3cret"
AL = ("ip", "firewall", "address-list")
QUEUES = ("queue", "simple")


@pytest.fixture
async def router() -> AsyncIterator[FakeRouter]:
    async with FakeRouter(user=USER, password=PASSWORD) as double:
        yield double


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


async def connect(router: FakeRouter, **kwargs: Any) -> Any:
    kwargs.setdefault("timeout", 3)
    return await librouteros.async_connect("127.0.0.1", kwargs.pop("user", USER), kwargs.pop("password", PASSWORD),
                                           port=router.port, **kwargs)


@contextlib.asynccontextmanager
async def session(router: FakeRouter, **kwargs: Any) -> AsyncIterator[Any]:
    api = await connect(router, **kwargs)
    try:
        yield api
    finally:
        with contextlib.suppress(Exception):
            await api.close()


async def rows(api: Any, *path: str) -> list[dict[str, Any]]:
    return [row async for row in api.path(*path)]


async def call(api: Any, command: str, **kwargs: Any) -> list[dict[str, Any]]:
    return [row async for row in api(command, **kwargs)]


async def raw(api: Any, command: str, *words: str) -> list[dict[str, Any]]:
    return [row async for row in api.rawCmd(command, *words)]


async def eventually(check: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class Bare:
    """An API client on the codec alone, for what librouteros does not send (tags, /cancel)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = Decoder()
        self.pending: list[tuple[bytes, ...]] = []

    @classmethod
    async def open(cls, router: FakeRouter, *, login: bool = True) -> Bare:
        reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
        client = cls(reader, writer)
        if login:
            await client.send("/login", f"=name={USER}", f"=password={PASSWORD}")
            assert (await client.read()).kind == "!done"
        return client

    async def send(self, *words: str) -> None:
        self.writer.write(word_sentence(words))
        await self.writer.drain()

    async def read(self, timeout: float = 3.0) -> Reply:
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                raise ConnectionClosed("closed")
            self.pending += self.decoder.feed(data)
        return parse_reply(text_sentence(self.pending.pop(0)))

    async def until_done(self, tag: str | None = None) -> list[Reply]:
        out = []
        while True:
            reply = await self.read()
            out.append(reply)
            if reply.kind in ("!done", "!fatal") and reply.tag == tag:
                return out

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def bare(router: FakeRouter, *, login: bool = True) -> AsyncIterator[Bare]:
    client = await Bare.open(router, login=login)
    try:
        yield client
    finally:
        await client.close()


# --- login ----------------------------------------------------------------------------------------


async def test_plain_login_on_a_current_router(router: FakeRouter) -> None:
    async with session(router) as api:
        assert (await call(api, "/system/identity/print")) == [{"name": "MikroTik"}]
    [login, identity] = router.journal
    assert login.words == ("/login", f"=name={USER}", f"=password={PASSWORD}") and login.outcome == "done"
    assert identity.user == USER and identity.connection == login.connection == 1


async def test_wrong_password_is_the_routers_trap(router: FakeRouter) -> None:
    with pytest.raises(TrapError, match=r"invalid user name or password \(6\)"):
        await connect(router, password="wrong")
    with pytest.raises(TrapError, match=r"invalid user name or password \(6\)"):
        await connect(router, user="nobody")
    await eventually(lambda: router.connections == 0)  # librouteros closed both
    assert [r.outcome for r in router.journal] == ["trap", "trap"]


async def test_token_login_on_an_old_router() -> None:
    async with FakeRouter(version="6.40", user=USER, password=PASSWORD) as router:
        async with session(router, login_method=async_token) as api:
            assert (await call(api, "/system/resource/print"))[0]["version"] == "6.40 (stable)"
        [challenge, response, _] = router.journal
        assert challenge.words == ("/login",)
        assert response.attributes["response"].startswith("00") and len(response.attributes["response"]) == 34
        with pytest.raises(TrapError, match="cannot log in"):
            await connect(router, password="wrong", login_method=async_token)


async def test_plain_login_on_an_old_router_fails_at_the_first_command() -> None:
    """Before 6.43 the password is ignored and a challenge comes back, which librouteros takes
    for a login; the first command then dies, as on a real router."""
    async with FakeRouter(version="6.40", user=USER, password=PASSWORD) as router:
        api = await connect(router)
        with pytest.raises(FatalError, match="not logged in"):
            await call(api, "/system/identity/print")
        assert router.journal[0].outcome == "done" and router.journal[1].outcome == "fatal"


async def test_token_login_is_gone_after_6_45_1() -> None:
    async with running(version="7.18", user=USER, password=PASSWORD) as router:
        with pytest.raises(TrapError, match=r"invalid user name or password \(6\)"):
            await connect(router, login_method=async_token)
    async with FakeRouter(version="6.45.1", user=USER, password=PASSWORD) as router:
        for method in (async_token, librouteros.async_plain):
            async with session(router, login_method=method) as api:
                assert await call(api, "/system/identity/print")


def test_sync_client_both_logins() -> None:
    with FakeRouter(version="6.44", user=USER, password=PASSWORD).threaded() as router:
        added: list[str] = []
        for n, method in enumerate((librouteros.plain, token), start=1):
            api = librouteros.connect("127.0.0.1", USER, PASSWORD, port=router.port, timeout=3, login_method=method)
            try:
                path = api.path(*AL)
                added.append(path.add(list="sync", address=f"192.0.2.{n}"))
                assert [r[".id"] for r in path] == added
            finally:
                api.close()
        assert [r["address"] for r in router.table("/ip/firewall/address-list")] == ["192.0.2.1", "192.0.2.2"]
        assert [r.user for r in router.commands("add")] == [USER, USER]


async def test_commands_before_login(router: FakeRouter) -> None:
    async with bare(router, login=False) as client:
        await client.send("/ip/firewall/address-list/print")
        fatal = await client.read()
        assert (fatal.kind, fatal.message) == ("!fatal", "not logged in")
        with pytest.raises(ConnectionClosed):
            await client.read()
    router.prelogin_traps = 2
    async with bare(router, login=False) as client:
        for _ in range(2):
            await client.send("/queue/simple/print")
            [trap, done] = await client.until_done()
            assert (trap.kind, trap.message, done.kind) == ("!trap", "not logged in", "!done")
        await client.send("/queue/simple/print")
        assert (await client.read()).kind == "!fatal"


# --- API-SSL --------------------------------------------------------------------------------------


async def test_api_ssl_verified_with_the_test_ca(certificates: Certificates) -> None:
    async with FakeRouter(user=USER, password=PASSWORD, ssl_context=certificates.server_context()) as router:
        async with session(router, ssl_wrapper=certificates.client_context()) as api:
            assert await call(api, "/system/identity/print") == [{"name": "MikroTik"}]
        with pytest.raises(ssl.SSLCertVerificationError):  # the default trust store does not know the test CA
            await connect(router, ssl_wrapper=ssl.create_default_context())
        with pytest.raises(ConnectionClosed):  # plain API to an API-SSL port: the handshake fails
            await connect(router, timeout=1)
    again = make_certificates(certificates.directory)  # one CA for every router given the same directory
    assert again.ca.read_bytes() == certificates.ca.read_bytes() and again.key == certificates.key


async def test_api_ssl_refused_with_another_ca(certificates: Certificates, tmp_path: Path) -> None:
    other = make_certificates(tmp_path / "other")
    async with FakeRouter(user=USER, password=PASSWORD, ssl_context=certificates.server_context()) as router:
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect(router, ssl_wrapper=other.client_context())
        elsewhere = certificates.client_context()
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):  # the right CA, the wrong name
            _, writer = await asyncio.open_connection("127.0.0.1", router.port, ssl=elsewhere,
                                                      server_hostname="router.example")
            writer.close()
        assert router.journal == []


def test_api_ssl_sync_client(certificates: Certificates) -> None:
    context = certificates.client_context()
    with FakeRouter(user=USER, password=PASSWORD, ssl_context=certificates.server_context()).threaded() as router:
        api = librouteros.connect("127.0.0.1", USER, PASSWORD, port=router.port, timeout=3,
                                  ssl_wrapper=functools.partial(context.wrap_socket, server_hostname="localhost"))
        try:
            assert list(api("/system/identity/print")) == [{"name": "MikroTik"}]
        finally:
            api.close()


# --- the protocol ---------------------------------------------------------------------------------


async def test_tag_on_every_reply(router: FakeRouter) -> None:
    router.seed("/ip/firewall/address-list", [{"list": "a", "address": f"10.0.0.{i}"} for i in (1, 2)])
    async with bare(router) as client:
        await client.send("/ip/firewall/address-list/print", ".tag=p1")
        replies = await client.until_done("p1")
        assert [r.kind for r in replies] == ["!re", "!re", "!done"] and {r.tag for r in replies} == {"p1"}
        await client.send("/nowhere/print", ".tag=t")
        trap, done = await client.until_done("t")
        assert (trap.kind, trap.tag, trap.attributes, done.kind, done.tag) == (
            "!trap", "t", {"category": "0", "message": "no such command prefix"}, "!done", "t")
        await client.send("/ip/firewall/address-list/add", "=list=b", "=address=10.0.0.3", ".tag=a9")
        assert [(r.kind, r.attributes, r.tag) for r in await client.until_done("a9")] == [
            ("!done", {"ret": "*3"}, "a9")]


async def test_listen_interleaves_and_cancel_interrupts(router: FakeRouter) -> None:
    async with bare(router) as client, session(router) as api:
        await client.send("/ip/firewall/address-list/listen", ".tag=L")
        await client.send("/ip/firewall/address-list/add", "=list=x", "=address=10.1.1.1", ".tag=A")
        added = await client.read()
        assert (added.kind, added.tag) == ("!re", "L") and added.attributes["address"] == "10.1.1.1"
        assert (await client.read()).kind == "!done"
        rid = added.attributes[".id"]
        await api.path(*AL).remove(rid)  # a change made on another connection reaches the listener
        dead = await client.read()
        assert (dead.kind, dead.tag, dead.attributes) == ("!re", "L", {".id": rid, ".dead": "yes"})
        await client.send("/cancel", "=tag=L", ".tag=C")
        replies = [(r.kind, r.tag, r.attributes) for r in [await client.read() for _ in range(3)]]
        assert replies == [("!trap", "L", {"category": "2", "message": "interrupted"}), ("!done", "C", {}),
                           ("!done", "L", {})]
        await api.path(*AL).add(list="x", address="10.1.1.2")  # no listener any more
        await client.send("/system/identity/print", ".tag=I")
        assert [r.kind for r in await client.until_done("I")] == ["!re", "!done"]


async def test_pipelined_commands_answered_out_of_order(router: FakeRouter) -> None:
    router.faults.reorder = True
    async with bare(router) as client:
        client.writer.write(b"".join(word_sentence(["/ip/firewall/address-list/add", "=list=p", f"=address=10.0.0.{n}",
                                                    f".tag={n}"]) for n in (1, 2, 3)))
        await client.writer.drain()
        replies = [await client.read() for _ in range(3)]
        assert [(r.tag, r.attributes["ret"]) for r in replies] == [("3", "*3"), ("2", "*2"), ("1", "*1")]
    router.faults.reorder = False
    async with bare(router) as client:
        client.writer.write(b"".join(word_sentence(["/system/identity/print", f".tag={n}"]) for n in (1, 2)))
        await client.writer.drain()
        assert [(await client.read()).tag for _ in range(4)] == ["1", "1", "2", "2"]


async def test_max_sessions() -> None:
    async with FakeRouter(user=USER, password=PASSWORD, max_sessions=1) as router, session(router) as api:
        with pytest.raises(ConnectionClosed):
            await connect(router)
        assert await call(api, "/system/identity/print")
        assert (router.connections, router.accepted) == (1, 2)


async def test_print_follow(router: FakeRouter) -> None:
    router.seed("/queue/simple", [{"name": "q1", "target": "10.0.0.1"}])
    async with bare(router) as client, session(router) as api:
        await client.send("/queue/simple/print", "=follow=", "=.proplist=name,max-limit", ".tag=F")
        first = await client.read()
        assert first.attributes == {"name": "q1", "max-limit": "0/0"}
        await api.path(*QUEUES).update(**{".id": "q1", "max-limit": "1M"})
        assert (await client.read()).attributes == {"name": "q1", "max-limit": "1000000/1000000"}
        await client.send("/cancel")
        assert [r.kind for r in await client.until_done("F")] == ["!trap", "!done", "!done"]


async def test_quit_is_fatal(router: FakeRouter) -> None:
    api = await connect(router)
    with pytest.raises(FatalError, match="session terminated on request"):
        await call(api, "/quit")
    await eventually(lambda: router.connections == 0)


async def test_unknown_commands_trap_and_the_connection_goes_on(router: FakeRouter) -> None:
    async with session(router) as api:
        with pytest.raises(TrapError) as prefix:
            await call(api, "/ip/nonsense/print")
        assert (prefix.value.message, prefix.value.category) == ("no such command prefix", 0)
        with pytest.raises(TrapError) as command:
            await call(api, "/ppp/active/add", name="x")
        assert (command.value.message, command.value.category) == ("no such command", 0)
        with pytest.raises(TrapError, match="unknown parameter frobnicate"):
            await api.path(*AL).add(list="a", address="10.0.0.1", frobnicate="yes")
        assert await rows(api, *AL) == []


async def test_empty_print_on_7_18_and_before() -> None:
    for version, expected in (("7.18", ["!empty", "!done"]), ("7.17.2", ["!done"]), ("6.49.10", ["!done"])):
        async with FakeRouter(version=version, user=USER, password=PASSWORD) as router:
            async with bare(router) as client:
                await client.send("/ppp/secret/print", ".tag=e")
                replies = await client.until_done("e")
                assert [r.kind for r in replies] == expected, version
                assert all(r.tag == "e" for r in replies)
                await client.send("/ppp/secret/print", "=count-only=")
                assert [(r.kind, r.attributes) for r in await client.until_done()] == [("!done", {"ret": "0"})]
            async with session(router) as api:  # librouteros skips !empty: [] and still in step
                assert await rows(api, "ppp", "secret") == []
                assert await rows(api, "ppp", "secret") == []
                assert len(await rows(api, "ppp", "profile")) == 2


async def test_resource_and_dates_follow_the_version() -> None:
    async with (FakeRouter(version="6.49.10", channel="long-term", user=USER, password=PASSWORD) as router,
                session(router) as api):
        [resource] = await call(api, "/system/resource/print")
        assert resource["version"] == "6.49.10 (long-term)" and resource["bad-blocks"] == 0
        await api.path(*AL).add(list="a", address="10.0.0.1")
        [entry] = await rows(api, *AL)
        assert entry["creation-time"][:3].isalpha()  # "dec/02/2026 01:02:03"
    async with (FakeRouter(version="7.18", user=USER, password=PASSWORD, resource={"cpu-load": "37"}) as router,
                session(router) as api):
        [resource] = await call(api, "/system/resource/print")
        assert resource["cpu-load"] == 37 and "bad-blocks" not in resource
        assert resource["board-name"] == "CHR" and resource["uptime"].endswith("s")


# --- menus ----------------------------------------------------------------------------------------


async def test_address_list(router: FakeRouter) -> None:
    async with session(router) as api:
        path = api.path(*AL)
        ids = [await path.add(list="blocked", address=f"192.0.2.{i}") for i in range(1, 12)]
        assert ids == [f"*{n:X}" for n in range(1, 12)]  # *1 ... *9, *A, *B
        await path.add(list="blocked", address="198.51.100.7/32", comment="lm:42", disabled=True)
        await path.add(list="blocked", address="203.0.113.9/24")
        entries = {r["address"]: r for r in await rows(api, *AL)}
        assert entries["198.51.100.7"] == {".id": "*C", "list": "blocked", "address": "198.51.100.7",
                                           "creation-time": entries["198.51.100.7"]["creation-time"],
                                           "dynamic": False, "disabled": True, "comment": "lm:42"}
        assert "comment" not in entries["192.0.2.1"] and entries["192.0.2.1"]["disabled"] is False
        assert "203.0.113.0/24" in entries
        with pytest.raises(TrapError) as duplicate:
            await path.add(list="blocked", address="192.0.2.1/32", comment="another")
        assert (duplicate.value.message, duplicate.value.category) == ("failure: already have such entry", None)
        await path.add(list="blocked", address="192.0.2.1", disabled=True)  # a disabled twin is allowed
        await path.add(list="other", address="192.0.2.1")  # another list
        with pytest.raises(TrapError, match="failure: already have such entry"):
            await path.update(**{".id": "*C", "disabled": False, "address": "192.0.2.2"})
        with pytest.raises(TrapError) as invalid:
            await path.add(list="blocked", address="10.0.0.300")
        assert (invalid.value.message, invalid.value.category) == ("invalid value for argument address", 1)
        with pytest.raises(TrapError, match=r"missing value\(s\) of argument\(s\) list"):
            await path.add(address="10.9.9.9")
        empty = await path.add(list="blocked", address="203.0.113.77", comment="")
        assert "comment" not in {r[".id"]: r for r in await rows(api, *AL)}[empty]  # absent, not ""


async def test_address_list_timeout_is_dynamic_and_runs_out(router: FakeRouter) -> None:
    async with session(router) as api:
        path = api.path(*AL)
        await path.add(list="t", address="10.0.0.1", timeout="00:00:01")
        await path.add(list="t", address="10.0.0.2", timeout="1h")
        [short, long] = await rows(api, *AL)
        assert short["dynamic"] is True and short["timeout"] == "1s"
        assert long["timeout"] in ("1h", "59m59s")
        await asyncio.sleep(1.1)
        assert [r["address"] for r in await rows(api, *AL)] == ["10.0.0.2"]
        await path.update(**{".id": long[".id"], "timeout": "0s"})  # back to a static entry
        [static] = await rows(api, *AL)
        assert static["dynamic"] is False and "timeout" not in static


async def test_simple_queue_defaults_and_shapes(router: FakeRouter) -> None:
    async with session(router) as api:
        path = api.path(*QUEUES)
        await path.add(name="cust-1", target="10.0.0.1", **{"max-limit": "10M/50M", "limit-at": "1M",
                                                             "burst-time": "16", "priority": "5"})
        await path.add(target="10.0.0.2,10.0.1.0/24")
        [one, two] = await rows(api, *QUEUES)
        assert {k: one[k] for k in ("name", "target", "max-limit", "limit-at", "burst-limit", "burst-threshold",
                                    "burst-time", "priority", "queue", "parent", "disabled", "dynamic")} == {
            "name": "cust-1", "target": "10.0.0.1/32", "max-limit": "10000000/50000000",
            "limit-at": "1000000/1000000", "burst-limit": "0/0", "burst-threshold": "0/0", "burst-time": "16s/16s",
            "priority": "5/5", "queue": "default-small/default-small", "parent": "none", "disabled": False,
            "dynamic": False}
        assert two["name"] == "queue1" and two["target"] == "10.0.0.2/32,10.0.1.0/24"
        assert two["max-limit"] == "0/0" and two["priority"] == "8/8" and "comment" not in two
        with pytest.raises(TrapError, match="failure: item with such name already exists"):
            await path.add(name="cust-1", target="10.0.0.3")
        with pytest.raises(TrapError, match="failure: item with such name already exists"):
            await path.update(**{".id": two[".id"], "name": "cust-1"})
        with pytest.raises(TrapError, match="input does not match any value of parent"):
            await path.add(name="child", target="10.0.0.4", parent="nope")
        await path.add(name="child", target="10.0.0.4", parent="cust-1", **{"place-before": "cust-1"})
        assert [r["name"] for r in await rows(api, *QUEUES)] == ["child", "cust-1", "queue1"]
        with pytest.raises(TrapError, match="invalid value for argument priority"):
            await path.add(name="bad", target="10.0.0.5", priority="9")
        with pytest.raises(TrapError, match="invalid value for argument max-limit"):
            await path.add(name="bad", target="10.0.0.5", **{"max-limit": "fast"})
        await path.update(**{".id": "cust-1", "comment": "by name"})  # a queue's name works as its .id
        assert router.table("/queue/simple")[1]["comment"] == "by name"


async def test_ppp_secrets_and_profiles(router: FakeRouter) -> None:
    async with session(router) as api:
        secrets_ = api.path("ppp", "secret")
        await secrets_.add(name="alice", password="pw", service="pppoe", **{"remote-address": "100.64.0.10"})
        [alice] = await rows(api, "ppp", "secret")
        assert {k: alice[k] for k in ("name", "password", "profile", "service", "remote-address", "caller-id",
                                      "disabled")} == {
            "name": "alice", "password": "pw", "profile": "default", "service": "pppoe",
            "remote-address": "100.64.0.10", "caller-id": "", "disabled": False}
        assert "local-address" not in alice
        with pytest.raises(TrapError, match="failure: secret with the same name already exists"):
            await secrets_.add(name="alice")
        with pytest.raises(TrapError) as profile:
            await secrets_.add(name="bob", profile="100M")
        assert (profile.value.message, profile.value.category) == ("input does not match any value of profile", 1)
        await api.path("ppp", "profile").add(name="100M", **{"rate-limit": "100M/100M"})
        await secrets_.add(name="bob", profile="100M")
        with pytest.raises(TrapError, match="invalid value for argument remote-address"):
            await secrets_.add(name="carol", **{"remote-address": "pool1"})
        with pytest.raises(TrapError, match="invalid value for argument service"):
            await secrets_.add(name="carol", service="telnet")
        assert [r["name"] for r in await rows(api, "ppp", "secret")] == ["alice", "bob"]


async def test_ppp_active_is_read_only_and_remove_disconnects(router: FakeRouter) -> None:
    [first, _] = router.seed("/ppp/active", [
        {"name": "alice", "service": "pppoe", "address": "100.64.0.10", "caller-id": "AA:BB:CC:00:00:01"},
        {"name": "bob", "service": "pppoe", "address": "100.64.0.11", "uptime": "1h2m"}])
    async with session(router) as api:
        active = await rows(api, "ppp", "active")
        assert [(r["name"], r["uptime"]) for r in active] == [("alice", "0s"), ("bob", "1h2m")]
        for verb in ("add", "set"):
            with pytest.raises(TrapError, match="no such command"):
                await call(api, f"/ppp/active/{verb}", name="mallory")
        await api.path("ppp", "active").remove(first)
        assert [r["name"] for r in await rows(api, "ppp", "active")] == ["bob"]


async def test_dhcp_leases(router: FakeRouter) -> None:
    router.seed("/ip/dhcp-server", [{"name": "lan", "interface": "ether2"}, {"name": "guest", "interface": "ether3"}])
    async with session(router) as api:
        leases = api.path("ip", "dhcp-server", "lease")
        with pytest.raises(TrapError, match="input does not match any value of server"):
            await leases.add(address="192.168.88.10", **{"mac-address": "aa:bb:cc:dd:ee:01"}, server="nope")
        await leases.add(address="192.168.88.10", **{"mac-address": "aa-bb-cc-dd-ee-01"}, server="lan",
                         comment="lm:7")
        await leases.add(address="192.168.88.11", **{"mac-address": "AA:BB:CC:DD:EE:02"})  # server=all
        [lan, everywhere] = await rows(api, "ip", "dhcp-server", "lease")
        assert lan["mac-address"] == "AA:BB:CC:DD:EE:01" and lan["server"] == "lan"
        assert lan["status"] == "waiting" and lan["last-seen"] == "never" and lan["disabled"] is False
        assert "server" not in everywhere
        await leases.add(address="192.168.88.12", **{"mac-address": "aa:bb:cc:dd:ee:01"}, server="guest")
        with pytest.raises(TrapError, match="failure: already have static lease for this client"):
            await leases.add(address="192.168.88.13", **{"mac-address": "aa:bb:cc:dd:ee:01"}, server="lan")
        with pytest.raises(TrapError, match="failure: already have static lease for this client"):
            await leases.add(address="192.168.88.13", **{"mac-address": "AA:BB:CC:DD:EE:02"}, server="guest")
        with pytest.raises(TrapError, match="failure: already have static lease with this IP address"):
            await leases.add(address="192.168.88.10", **{"mac-address": "aa:bb:cc:dd:ee:09"}, server="guest")
        await leases.add(address="192.168.88.10", **{"mac-address": "aa:bb:cc:dd:ee:09"}, disabled=True)
        with pytest.raises(TrapError, match="invalid value for argument mac-address"):
            await leases.add(address="192.168.88.20", **{"mac-address": "not-a-mac"})


async def test_identity_and_resource(router: FakeRouter) -> None:
    async with session(router) as api:
        await call(api, "/system/identity/set", name="core-1")
        assert await call(api, "/system/identity/print") == [{"name": "core-1"}]
        with pytest.raises(TrapError, match="no such command"):
            await call(api, "/system/resource/set", cpu="x")
        [resource] = await raw(api, "/system/resource/print", "=.proplist=version,cpu-load")
        assert resource == {"version": "7.18 (stable)", "cpu-load": 1}


async def test_set_remove_take_one_id_or_a_list_all_or_nothing(router: FakeRouter) -> None:
    ids = router.seed("/ip/firewall/address-list", [{"list": "l", "address": f"10.0.0.{i}"} for i in range(1, 5)])
    async with session(router) as api:
        path = api.path(*AL)
        await path.update(**{".id": ids[0], "comment": "one"})
        await path.update(**{".id": f"{ids[1]},{ids[2]}", "comment": "two"})
        assert [r.get("comment") for r in router.table("/ip/firewall/address-list")] == ["one", "two", "two", None]
        with pytest.raises(TrapError) as missing:
            await path.update(**{".id": f"{ids[3]},*99", "comment": "never"})
        assert (missing.value.message, missing.value.category) == ("no such item", None)
        with pytest.raises(TrapError, match="no such item"):
            await path.remove(ids[0], "*99")
        assert len(router.table("/ip/firewall/address-list")) == 4  # nothing removed, nothing set
        assert "comment" not in router.table("/ip/firewall/address-list")[3]
        with pytest.raises(TrapError, match=r"missing =\.id="):
            await path.update(comment="no id")
        await path.remove(ids[0], ids[2])
        assert [r[".id"] for r in await rows(api, *AL)] == [ids[1], ids[3]]
        await raw(api, "/ip/firewall/address-list/remove", f"=numbers={ids[1]}")
        assert [r[".id"] for r in await rows(api, *AL)] == [ids[3]]
        new = await path.add(list="l", address="10.0.0.1")
        assert int(new[1:], 16) > int(ids[3][1:], 16)  # ids are never reused within a boot


async def test_unset_enable_disable(router: FakeRouter) -> None:
    [qid] = router.seed("/queue/simple", [{"name": "q", "target": "10.0.0.1", "max-limit": "5M", "comment": "c"}])
    async with session(router) as api:
        await call(api, "/queue/simple/unset", **{".id": qid, "value-name": "comment"})
        await call(api, "/queue/simple/unset", **{".id": qid, "value-name": "max-limit"})
        [queue] = await rows(api, *QUEUES)
        assert "comment" not in queue and queue["max-limit"] == "0/0"
        with pytest.raises(TrapError, match="invalid value for argument value-name"):
            await call(api, "/queue/simple/unset", **{".id": qid, "value-name": "target"})
        await call(api, "/queue/simple/disable", **{".id": qid})
        assert router.table("/queue/simple")[0]["disabled"] == "true"
        await call(api, "/queue/simple/enable", **{".id": qid})
        assert router.table("/queue/simple")[0]["disabled"] == "false"
        al = router.seed("/ip/firewall/address-list", [{"list": "x", "address": "10.0.0.1"},
                                                       {"list": "x", "address": "10.0.0.1", "disabled": True}])
        with pytest.raises(TrapError, match="failure: already have such entry"):  # enabling makes a duplicate
            await call(api, "/ip/firewall/address-list/enable", **{".id": al[1]})


# --- queries ----------------------------------------------------------------------------------------


@pytest.fixture
async def listed(router: FakeRouter) -> AsyncIterator[Any]:
    router.seed("/ip/firewall/address-list", [
        {"list": "a", "address": "10.0.0.5", "comment": "five"},
        {"list": "a", "address": "10.0.0.10"},
        {"list": "b", "address": "10.0.0.20", "comment": "twenty", "disabled": True},
        {"list": "c", "address": "10.0.0.30", "comment": ""},
    ])
    async with session(router) as api:
        yield api


async def addresses(api: Any, *queries: str) -> list[str]:
    return [r["address"] for r in await raw(api, "/ip/firewall/address-list/print", "=.proplist=address", *queries)]


async def test_query_words(listed: Any) -> None:
    api = listed
    assert await addresses(api, "?comment") == ["10.0.0.5", "10.0.0.20"]  # an empty comment is no comment
    assert await addresses(api, "?-comment") == ["10.0.0.10", "10.0.0.30"]
    assert await addresses(api, "?>comment=") == ["10.0.0.5", "10.0.0.20"]  # the manual's "non-empty comment"
    assert await addresses(api, "?>comment=a", "?<comment=u") == ["10.0.0.5", "10.0.0.20"]  # "five", "twenty"
    assert await addresses(api, "?<comment=g") == ["10.0.0.5"]
    assert await addresses(api, "?list=a") == await addresses(api, "?=list=a") == ["10.0.0.5", "10.0.0.10"]
    # addresses compare as addresses: as text "10.0.0.10" < "10.0.0.5"
    assert await addresses(api, "?<address=10.0.0.6") == ["10.0.0.5"]
    assert await addresses(api, "?>address=10.0.0.6") == ["10.0.0.10", "10.0.0.20", "10.0.0.30"]
    assert await addresses(api, "?disabled=yes") == ["10.0.0.20"]  # read as the property is: yes is true
    assert await addresses(api, "?list=a", "?list=b", "?#|") == ["10.0.0.5", "10.0.0.10", "10.0.0.20"]
    assert await addresses(api, "?list=a", "?comment", "?#&") == ["10.0.0.5"]
    assert await addresses(api, "?list=a", "?#!") == ["10.0.0.20", "10.0.0.30"]
    assert await addresses(api, "?list=a", "?comment") == ["10.0.0.5"]  # no operator: every value must hold
    # an index at the end of the word replaces the stack with that value: list=b is thrown away
    assert await addresses(api, "?list=a", "?list=b", "?#1") == ["10.0.0.5", "10.0.0.10"]
    # an index before another character pushes a copy ("." after an index does nothing): a, b, a
    assert await addresses(api, "?list=a", "?list=b", "?#1.") == []
    assert await addresses(api, "?list=a", "?list=b", "?#|!") == ["10.0.0.30"]  # neither a nor b
    everything = ["10.0.0.5", "10.0.0.10", "10.0.0.20", "10.0.0.30"]
    assert await addresses(api, "?list=b", "?#.!|") == everything  # "." copies the top: b or not b
    assert await addresses(api, "?list=a", "?#5") == everything  # below the stack: infinitely many true
    with pytest.raises(TrapError, match="unknown query operation"):
        await addresses(api, "?#x")


async def test_librouteros_queries(listed: Any) -> None:
    path = listed.path(*AL)
    selected = [r async for r in path.select(Key("address"), Key(".id")).where(Key("list") == "a")]
    assert [set(r) for r in selected] == [{"address", ".id"}] * 2
    assert [r["address"] async for r in path.select(Key("address")).where(Key("list") != "a")] == [
        "10.0.0.20", "10.0.0.30"]
    assert [r["address"] async for r in path.select(Key("address")).where(Key("list").In("b", "c"))] == [
        "10.0.0.20", "10.0.0.30"]
    assert [r["address"] async for r in path.select(Key("address")).where(
        Or(Key("list") == "c", And(Key("list") == "a", Key("disabled") == False)))] == [  # noqa: E712
        "10.0.0.5", "10.0.0.10", "10.0.0.30"]
    assert [r["address"] async for r in path.select(Key("address")).where(Key("disabled") == True)] == [  # noqa: E712
        "10.0.0.20"]


async def test_proplist_and_count_only(listed: Any) -> None:
    [first, *_] = await raw(listed, "/ip/firewall/address-list/print", "=.proplist=address,comment,nothing")
    assert first == {"address": "10.0.0.5", "comment": "five"}  # no .id unless asked, no unknown key
    assert await raw(listed, "/ip/firewall/address-list/print", "=count-only=", "?list=a") == [{"ret": 2}]
    assert await call(listed, "/ip/firewall/address-list/print", **{"count-only": ""}) == [{"ret": 4}]
    with pytest.raises(TrapError, match="unknown parameter interval"):
        await call(listed, "/ip/firewall/address-list/print", interval="1")


async def test_utf8_comments_and_numbers_as_text(router: FakeRouter) -> None:
    comment = "Zürich – Ñandú ✓"
    async with session(router, encoding="utf-8") as api:
        await api.path(*AL).add(list="u", address="10.0.0.1", comment=comment)
        await api.path(*AL).add(list="u", address="10.0.0.2", comment="123")
        await api.path(*AL).add(list="u", address="10.0.0.3", comment="00123")
        got = [r["comment"] for r in await rows(api, *AL)]
        assert got == [comment, 123, "00123"]  # librouteros casts "123", keeps "00123"
    assert [r["comment"] for r in router.table("/ip/firewall/address-list")] == [comment, "123", "00123"]
    async with session(router) as ascii_api:  # librouteros's default: ASCII, errors ignored
        mangled = (await rows(ascii_api, *AL))[0]["comment"]
        assert mangled == "Zrich  and " != comment


async def test_large_print_and_many_adds_are_quick(router: FakeRouter) -> None:
    router.seed("/queue/simple", ({"name": f"q{i}", "target": f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}"}
                                  for i in range(10_000)))
    async with session(router) as api:
        started = time.process_time()
        assert len(await rows(api, *QUEUES)) == 10_000
        count = 500
        path = api.path(*AL)
        for i in range(count):
            await path.add(list="bulk", address=f"10.200.{i >> 8}.{i & 255}")
        spent = time.process_time() - started  # this process: the double and librouteros together
    assert len(router.table("/ip/firewall/address-list")) == count
    assert spent < 10, spent


# --- faults ---------------------------------------------------------------------------------------


async def test_refused_then_accepted_again(router: FakeRouter) -> None:
    router.refuse_connections()
    with pytest.raises(ConnectionRefusedError):
        await connect(router)
    router.accept_connections()
    async with session(router) as api:
        assert await call(api, "/system/identity/print")


async def test_silent_router_times_out(router: FakeRouter) -> None:
    router.faults.silent = True
    with pytest.raises(TimeoutError):  # librouteros's own per-sentence timeout
        await connect(router, timeout=0.3)
    with pytest.raises(TimeoutError):  # an overall deadline around it (M-3)
        await asyncio.wait_for(connect(router, timeout=10), 0.3)
    assert [(r.word, r.outcome) for r in router.journal] == [("/login", "unanswered")] * 2
    router.faults.silent = False
    async with session(router) as api:
        assert await call(api, "/system/identity/print")


async def test_delay_and_drip(router: FakeRouter) -> None:
    router.seed("/queue/simple", [{"name": "q", "target": "10.0.0.1"}])
    async with session(router) as api:
        router.faults.delay = 0.3
        started = time.monotonic()
        assert len(await rows(api, *QUEUES)) == 1
        assert time.monotonic() - started >= 0.3
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(rows(api, *QUEUES), 0.1)
    router.faults.delay = 0
    async with session(router) as api:
        router.faults.drip_bytes, router.faults.drip_interval = 16, 0.01
        started = time.monotonic()
        [queue] = await rows(api, *QUEUES)  # a reply of about 600 bytes, 16 bytes every 10 ms
        assert queue["name"] == "q" and time.monotonic() - started > 0.25


async def test_cut_mid_sentence(router: FakeRouter) -> None:
    router.seed("/queue/simple", [{"name": "q", "target": "10.0.0.1"}])
    fault = router.cut_on("/queue/simple/print")
    api = await connect(router)
    with pytest.raises(ConnectionClosed):
        await rows(api, *QUEUES)
    assert fault.fired == 1 and router.journal[-1].outcome == "cut"
    with contextlib.suppress(Exception):
        await api.close()
    router.cut_on("print", then="stall")
    api = await connect(router, timeout=0.5)
    with pytest.raises(TimeoutError):  # half a sentence, then nothing
        await rows(api, *QUEUES)
    with contextlib.suppress(Exception):
        await api.close()


async def test_trap_on_the_nth_add(router: FakeRouter) -> None:
    fault = router.trap_on("add", 2, message="failure: out of memory", category=4)
    async with session(router) as api:
        path = api.path(*AL)
        await path.add(list="n", address="10.0.0.1")
        with pytest.raises(TrapError) as trapped:
            await path.add(list="n", address="10.0.0.2")
        assert (trapped.value.message, trapped.value.category) == ("failure: out of memory", 4)
        await path.add(list="n", address="10.0.0.3")
        assert [r["address"] for r in await rows(api, *AL)] == ["10.0.0.1", "10.0.0.3"]  # the trapped one not applied
    assert (fault.seen, fault.fired) == (3, 1)


async def test_add_applied_then_connection_dropped(router: FakeRouter) -> None:
    """M-4: the add happened, its !done never came; a re-read finds exactly one entry."""
    router.drop_on("/ppp/secret/add")
    api = await connect(router)
    with pytest.raises(ConnectionClosed):
        await api.path("ppp", "secret").add(name="lm:alice", password="pw")
    with contextlib.suppress(Exception):
        await api.close()
    async with session(router) as api:
        assert [r["name"] for r in await rows(api, "ppp", "secret")] == ["lm:alice"]
    router.drop_on("add", apply=False, abort=True)
    api = await connect(router)
    with pytest.raises((ConnectionClosed, ConnectionResetError)):
        await api.path("ppp", "secret").add(name="lm:bob")
    with contextlib.suppress(Exception):
        await api.close()
    assert [r["name"] for r in router.table("/ppp/secret")] == ["lm:alice"]
    assert [r.outcome for r in router.writes()] == ["dropped", "dropped"]


async def test_fatal_on_a_command_and_at_any_time(router: FakeRouter) -> None:
    router.fatal_on("print", message="out of memory")
    api = await connect(router)
    with pytest.raises(FatalError, match="out of memory"):
        await rows(api, *AL)
    async with session(router) as api, bare(router) as client:
        await eventually(lambda: router.connections == 2)
        router.fatal_all("router is shutting down")
        fatal = await client.read()
        assert (fatal.kind, fatal.message) == ("!fatal", "router is shutting down")
        with pytest.raises((FatalError, ConnectionClosed)):
            await rows(api, *AL)


async def test_reboot_renumbers_and_drops(router: FakeRouter) -> None:
    router.seed("/ppp/active", [{"name": "alice", "service": "pppoe", "address": "100.64.0.10"}])
    async with session(router) as api:
        path = api.path(*QUEUES)
        old = [await path.add(name=f"q{i}", target=f"10.0.0.{i}") for i in range(3)]
        await path.remove(old[0])
        router.reboot()
        with pytest.raises((ConnectionClosed, ConnectionResetError)):
            await rows(api, *QUEUES)
    async with session(router) as api:
        after = await rows(api, *QUEUES)
        assert [r["name"] for r in after] == ["q1", "q2"]  # the configuration survives ...
        assert not {r[".id"] for r in after} & set(old)  # ... under new ids; the old ones name nothing
        with pytest.raises(TrapError, match="no such item"):
            await api.path(*QUEUES).update(**{".id": old[1], "comment": "stale"})
        assert await rows(api, "ppp", "active") == []  # sessions do not survive a reboot
    assert router.reboots == 1 and router.accepted == 2
    router.reboot(ids="restart", down_for=0.3)
    with pytest.raises(ConnectionRefusedError):
        await connect(router)
    await asyncio.sleep(0.4)
    async with session(router) as api:
        assert [r[".id"] for r in await rows(api, *QUEUES)] == ["*1", "*2"]  # numbered from *1 again


async def test_system_reboot_command(router: FakeRouter) -> None:
    api = await connect(router)
    with pytest.raises(ConnectionClosed):  # no reply: the connection just goes
        await call(api, "/system/reboot")
    with contextlib.suppress(Exception):
        await api.close()
    await eventually(lambda: router.reboots == 1)


async def test_permissions(router: FakeRouter) -> None:
    router.seed("/ip/firewall/address-list", [{"list": "a", "address": "10.0.0.1"}])
    router.allowed = frozenset({"/ip/firewall/address-list/print", "/queue/simple"})
    async with session(router) as api:
        assert len(await rows(api, *AL)) == 1
        with pytest.raises(TrapError) as denied:
            await api.path(*AL).add(list="a", address="10.0.0.2")
        assert (denied.value.message, denied.value.category) == ("not enough permissions (9)", None)
        await api.path(*QUEUES).add(name="q", target="10.0.0.1")
        with pytest.raises(TrapError, match=r"not enough permissions \(9\)"):
            await call(api, "/system/reboot")
    assert [r.outcome for r in router.commands()] == ["done", "denied", "done", "denied"]
    assert router.reboots == 0 and len(router.table("/ip/firewall/address-list")) == 1


async def test_protocol_error_resets_the_connection(router: FakeRouter) -> None:
    async with bare(router) as client:
        client.writer.write(word_sentence(["/system/identity/print"]) + b"\xf8")
        await client.writer.drain()
        assert (await client.read()).kind == "!re"
        assert (await client.read()).kind == "!done"
        with pytest.raises((ConnectionClosed, ConnectionResetError)):
            await client.read()
    assert router.protocol_errors == [(1, "reserved control byte 0xF8")]


# --- the journal ----------------------------------------------------------------------------------


async def test_journal_counts_round_trips_and_proves_what_was_written(router: FakeRouter) -> None:
    [foreign] = router.seed("/ip/firewall/address-list", [{"list": "blocked", "address": "10.9.9.9",
                                                            "comment": "the operator's"}])
    async with session(router) as api, session(router) as other:
        path = api.path(*AL)
        ours = [await path.add(list="blocked", address=f"10.0.0.{i}", comment=f"lm:{i}") for i in range(3)]
        await path.remove(*ours[:2])
        await rows(other, *AL)
    assert router.accepted == 2 and [r.connection for r in router.commands()] == [1, 1, 1, 1, 2]
    assert len(router.commands("add")) == 3 and len(router.commands("/ip/firewall/address-list/remove")) == 1
    written = {rid for r in router.writes() for rid in r.ids}
    assert written == set(ours[:2]) and foreign not in written
    times = [r.at for r in router.journal]
    assert times == sorted(times)
    router.clear_journal()
    assert router.journal == []


async def test_seed_table_clear(router: FakeRouter) -> None:
    twice = [{"list": "imported", "address": "10.0.0.1"}] * 2
    with pytest.raises(ValueError, match="already have such entry"):
        router.seed("/ip/firewall/address-list", twice)
    assert len(router.table("/ip/firewall/address-list")) == 1  # the first of the two went in
    router.clear("ip firewall address-list")  # the console's spelling works too
    ids = router.seed("/ip/firewall/address-list", twice, check=False)  # as an old configuration may hold
    assert [r[".id"] for r in router.table("/ip/firewall/address-list")] == ids and len(set(ids)) == 2
    assert router.seed("/queue/simple", [{".id": "*1F", "name": "q", "target": "10.0.0.1", "disabled": True}]) == [
        "*1F"]
    async with session(router) as api:
        assert await api.path(*QUEUES).add(name="next", target="10.0.0.2") == "*20"
        assert (await rows(api, *QUEUES))[0]["disabled"] is True
        with pytest.raises(TrapError, match="failure: can not remove default profile"):
            await api.path("ppp", "profile").remove("*0")
    router.clear("/ppp/profile")
    assert [r["name"] for r in router.table("/ppp/profile")] == ["default", "default-encryption"]
    with pytest.raises(KeyError, match="no menu /interface"):
        router.table("/interface")


async def test_connection_count(router: FakeRouter) -> None:
    async with session(router), session(router):
        await eventually(lambda: router.connections == 2)
        router.drop_connections()
        await eventually(lambda: router.connections == 0)
    assert router.accepted == 2


# --- outside the test's event loop ----------------------------------------------------------------


@pytest.fixture
def process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"/queue/simple": [{"name": "seeded", "target": "10.0.0.1"}]}))
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.routeros", "--port", "0", "--tls", "--tls-dir",
                             str(tmp_path / "tls"), "--version", "6.44", "--user", USER, "--password", PASSWORD,
                             "--seed", str(seed)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc, json.loads(proc.stdout.readline())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_standalone_process(process: tuple[subprocess.Popen[str], dict[str, Any]]) -> None:
    proc, started = process
    assert started["host"] == "127.0.0.1" and started["tls"] is True and started["version"] == "6.44"
    context = ssl.create_default_context(cafile=started["ca"])
    api = librouteros.connect(started["host"], USER, PASSWORD, port=started["port"], timeout=5, login_method=token,
                              ssl_wrapper=functools.partial(context.wrap_socket, server_hostname="127.0.0.1"))
    try:
        assert [r["name"] for r in api.path(*QUEUES)] == ["seeded"]
    finally:
        api.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_standalone_several_routers_in_one_process() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.routeros", "--count", "2", "--identity", "edge-",
                             "--user", USER, "--password", PASSWORD], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        started = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert started[0]["pid"] == started[1]["pid"] and started[0]["port"] != started[1]["port"]
        names = []
        for router in started:
            api = librouteros.connect("127.0.0.1", USER, PASSWORD, port=router["port"], timeout=5)
            try:
                names += [r["name"] for r in api("/system/identity/print")]
            finally:
                api.close()
        assert names == ["edge-1", "edge-2"]
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        if proc.stdout is not None:
            proc.stdout.close()


def test_threaded_router_serves_a_sync_client_while_the_test_blocks() -> None:
    router = FakeRouter(user=USER, password=PASSWORD)
    with router.threaded():
        [rid] = router.seed("/ip/firewall/address-list", [{"list": "x", "address": "10.0.0.1"}])
        api = librouteros.connect("127.0.0.1", USER, PASSWORD, port=router.port, timeout=3)
        try:
            path = api.path(*AL)
            path.update(**{".id": rid, "comment": "sync"})
            assert [r["comment"] for r in path] == ["sync"]
            router.reboot()
            with pytest.raises((ConnectionClosed, ConnectionResetError, BrokenPipeError)):
                list(path)
        finally:
            api.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", router.port), timeout=1).close()
