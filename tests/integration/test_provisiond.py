"""provisiond against the RouterOS API double (tests/fakes/routeros.py), over real sockets.

The reconciler and the scheduler run in the test's loop against a real PostgreSQL and one or
more FakeRouters: desired state written from empty, a second pass that writes nothing, drift made
by hand repaired, objects without lastmile's tag never touched, the safety valve, every fault a
router can have (refusing, hanging, cutting a reply, losing an add's answer, a reboot that
renumbers ids), both login forms, API-SSL with verification, UTF-8 names, and the import.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from daemons import db
from daemons.config import DatabaseSettings, SecretsSettings
from daemons.provisiond import store
from daemons.provisiond.reconcile import Reconciler
from daemons.provisiond.scheduler import Scheduler
from daemons.provisiond.settings import ProvisiondSettings
from daemons.secrets import ROUTER_PURPOSE, Keyring
from tests.fakes.routeros import FakeRouter, make_certificates
from tests.integration.conftest import eventually
from tests.integration.radius_env import ROOT, add_service

PASSWORD = "router-pass"
QUEUES, LISTS, SECRETS, LEASES = "/queue/simple", "/ip/firewall/address-list", "/ppp/secret", "/ip/dhcp-server/lease"


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return Keyring.load(SecretsSettings(key_file=str(tmp_path / "secret.key")), create=True)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(DatabaseSettings(), db_url, max_size=6)
    yield pool
    await pool.close()


@pytest.fixture
async def router() -> AsyncIterator[FakeRouter]:
    async with FakeRouter(user="lastmile", password=PASSWORD) as r:
        yield r


def settings(**kw: Any) -> ProvisiondSettings:
    base: dict[str, Any] = {"connect_timeout": 1.0, "command_timeout": 1.0, "run_timeout": 5.0}
    return ProvisiondSettings(**{**base, **kw})


async def add_router(conn: asyncpg.Connection, keyring: Keyring, r: FakeRouter, name: str = "r1",
                     **columns: Any) -> int:
    values = {"name": name, "host": "127.0.0.1", "api_port": r.port, "username": "lastmile",
              "password": keyring.seal(PASSWORD, ROUTER_PURPOSE), **columns}
    names = ", ".join(values)
    marks = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    router_id: int = await conn.fetchval(f"INSERT INTO routers ({names}) VALUES ({marks}) RETURNING id",
                                         *values.values())
    return router_id


async def services(conn: asyncpg.Connection, router_id: int, n: int, **columns: Any) -> list[int]:
    return [await add_service(conn, f"user{i}", f"pw{i}", router_id=router_id, ipv4=f"10.9.{i // 250}.{i % 250 + 1}",
                              **columns) for i in range(n)]


async def router_row(pool: asyncpg.Pool, router_id: int) -> store.Router:
    async with pool.acquire() as conn:
        (row,) = await store.routers(conn, [router_id])
    return row


def owned(r: FakeRouter, menu: str) -> list[dict[str, str]]:
    return [row for row in r.table(menu) if row.get("comment", "").startswith("lastmile:")]


async def test_a_router_is_written_from_empty_and_a_second_pass_writes_nothing(
        conn: asyncpg.Connection, pool: asyncpg.Pool, keyring: Keyring, router: FakeRouter) -> None:
    rid = await add_router(conn, keyring, router)
    ids = await services(conn, rid, 30)
    await conn.execute("UPDATE customers SET status = 'blocked', name = 'Jörg Müller' WHERE id = "
                       "(SELECT customer_id FROM services WHERE id = $1)", ids[3])
    router.seed(QUEUES, [{"name": "hand-made", "target": "10.200.0.1", "max-limit": "1M/1M"}])
    reconciler = Reconciler(pool, keyring, settings())
    first = await reconciler.run(await router_row(pool, rid))
    assert first.result == "ok", first.error
    assert first.applied is not None and first.applied.done == {"add": 31, "set": 0, "remove": 0}
    queues = {q["name"]: q for q in owned(router, QUEUES)}
    assert len(queues) == 30
    assert queues["user0"]["max-limit"] == "10000000/50000000"  # upload/download, bit/s
    assert queues["user0"]["burst-limit"] == "20000000/100000000"
    assert queues["user0"]["target"] == "10.9.0.1/32"
    assert queues["user3"]["comment"] == f"lastmile:s{ids[3]} Jörg Müller"  # UTF-8 kept
    assert [(e["list"], e["address"]) for e in owned(router, LISTS)] == [("blocked", "10.9.0.4")]
    router.clear_journal()
    second = await reconciler.run(await router_row(pool, rid))
    assert second.result == "ok" and second.plan is not None and not second.plan.changes
    assert router.writes() == []
    assert [q["name"] for q in router.table(QUEUES) if q["name"] == "hand-made"] == ["hand-made"]
    async with pool.acquire() as c:
        state = await c.fetchrow("SELECT generation, reachable, adds, drift, last_error FROM router_sync")
    assert state is not None and tuple(state) == (2, True, 0, 0, None)
    assert second.report["leaks"] == ["queue hand-made (target 10.200.0.1/32) matches no active service"]
    await reconciler.close()


async def test_drift_made_by_hand_is_repaired_and_foreign_objects_are_left_alone(
        conn: asyncpg.Connection, pool: asyncpg.Pool, keyring: Keyring, router: FakeRouter) -> None:
    rid = await add_router(conn, keyring, router)
    await services(conn, rid, 5)
    reconciler = Reconciler(pool, keyring, settings())
    assert (await reconciler.run(await router_row(pool, rid))).result == "ok"
    q = {r["name"]: r for r in router.table(QUEUES)}
    # By hand on the router: a limit changed, a queue removed, one disabled, a stray owned one, a foreign one.
    router.seed(QUEUES, [{"name": "stray", "target": "10.1.1.1", "comment": "lastmile:s999 gone"},
                         {"name": "theirs", "target": "10.1.1.2", "comment": "NOC test"}])
    async with FakeRouterClient(router) as api:
        await api("/queue/simple/set", f"=.id={q['user0']['.id']}", "=max-limit=1M/1M")
        await api("/queue/simple/remove", f"=.id={q['user1']['.id']}")
        await api("/queue/simple/set", f"=.id={q['user2']['.id']}", "=disabled=yes")
    router.clear_journal()
    outcome = await reconciler.run(await router_row(pool, rid))
    assert outcome.result == "ok", outcome.error
    assert outcome.plan is not None
    assert sorted(c.describe() for c in outcome.plan.changes) == sorted([
        "add queue user1", "remove queue stray",
        "set queue user0: max-limit '1000000/1000000' -> '10000000/50000000'",
        "set queue user2: disabled 'true' -> 'false'"])
    after = {r["name"]: r for r in router.table(QUEUES)}
    assert set(after) == {"user0", "user1", "user2", "user3", "user4", "theirs"}
    assert after["user0"]["max-limit"] == "10000000/50000000" and after["user2"]["disabled"] == "false"
    assert all("theirs" not in " ".join(w.words) for w in router.writes())
    await reconciler.close()


class FakeRouterClient:
    """A plain librouteros session, as an operator's script would change the router by hand."""

    def __init__(self, router: FakeRouter) -> None:
        self.router = router
        self.api: Any = None

    async def __aenter__(self) -> FakeRouterClient:
        import librouteros

        self.api = await librouteros.async_connect("127.0.0.1", "lastmile", PASSWORD, port=self.router.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.api.close()

    async def __call__(self, cmd: str, *words: str) -> list[Any]:
        return [r async for r in self.api.rawCmd(cmd, *words)]


async def test_the_safety_valve_stops_a_run_that_would_empty_a_router(
        conn: asyncpg.Connection, pool: asyncpg.Pool, keyring: Keyring, router: FakeRouter) -> None:
    rid = await add_router(conn, keyring, router)
    await services(conn, rid, 30)
    reconciler = Reconciler(pool, keyring, settings())
    assert (await reconciler.run(await router_row(pool, rid))).result == "ok"
    await conn.execute("UPDATE services SET router_id = NULL WHERE id IN (SELECT id FROM services LIMIT 20)")
    router.clear_journal()
    stopped = await reconciler.run(await router_row(pool, rid))
    assert stopped.result == "stopped"
    assert stopped.error is not None and "would remove 20 of the 30 objects" in stopped.error
    assert router.writes() == [] and len(owned(router, QUEUES)) == 30
    state = await conn.fetchrow("SELECT last_success_at, last_attempt_at, last_error FROM router_sync")
    assert state is not None and state["last_error"].startswith("stopped: ")
    assert state["last_success_at"] < state["last_attempt_at"]  # not in step: the last success is the first run's
    forced = await reconciler.run(await router_row(pool, rid), force=True)
    assert forced.result == "ok" and len(owned(router, QUEUES)) == 10
    await reconciler.close()


async def test_a_hung_router_does_not_delay_the_others(
        conn: asyncpg.Connection, pool: asyncpg.Pool, keyring: Keyring) -> None:
    async with FakeRouter(user="lastmile", password=PASSWORD) as good, \
            FakeRouter(user="lastmile", password=PASSWORD) as hung:
        hung.faults.silent = True  # accepts the connection, never answers
        good_id = await add_router(conn, keyring, good, "good")
        hung_id = await add_router(conn, keyring, hung, "hung")
        await services(conn, good_id, 5)
        reconciler = Reconciler(pool, keyring, settings(connect_timeout=2.0))

        async def load(ids: set[int] | None) -> list[store.Router]:
            async with pool.acquire() as c:
                return await store.routers(c, ids)

        scheduler = Scheduler(reconciler, load, concurrency=4, backoff_max=30)
        task = asyncio.create_task(scheduler.run())
        started = time.monotonic()
        scheduler.mark(None)
        while len(owned(good, QUEUES)) < 5:
            assert time.monotonic() - started < 1.5, "the good router waited for the hung one"
            await asyncio.sleep(0.01)
        good_took = time.monotonic() - started
        await eventually(lambda: any(o.router == "hung" for o in scheduler.outcomes))
        hung_outcome = next(o for o in scheduler.outcomes if o.router == "hung")
        assert hung_outcome.result == "unreachable" and "no answer in time" in str(hung_outcome.error)
        assert good_took < 1.0
        assert scheduler.not_before.get(hung_id) is not None  # backing off
        task.cancel()
        await scheduler.stop()
        await reconciler.close()


@pytest.mark.parametrize("fault", ["drop_after_add", "cut_reply", "trap"])
async def test_a_write_whose_outcome_is_unknown_is_read_again_not_repeated(
        fault: str, conn: asyncpg.Connection, pool: asyncpg.Pool, keyring: Keyring, router: FakeRouter) -> None:
    rid = await add_router(conn, keyring, router)
    await services(conn, rid, 10)
    if fault == "drop_after_add":
        router.drop_on("/queue/simple/add", 3, apply=True)  # the add lands, its answer never comes
    elif fault == "cut_reply":
        router.cut_on("/queue/simple/add", 5, after_bytes=3)
    else:
        router.trap_on("/queue/simple/add", 2)
    reconciler = Reconciler(pool, keyring, settings(pipeline=1))
    first = await reconciler.run(await router_row(pool, rid))
    assert first.result == ("failed" if fault == "trap" else "error"), first
    router.clear_faults()
    second = await reconciler.run(await router_row(pool, rid))
    assert second.result == "ok", second.error
    names = [q["name"] for q in owned(router, QUEUES)]
    assert sorted(names) == sorted(f"user{i}" for i in range(10))  # each exactly once
    third = await reconciler.run(await router_row(pool, rid))
    assert third.plan is not None and not third.plan.changes
    await reconciler.close()


async def test_a_reboot_that_renumbers_ids_is_followed_by_a_clean_reconcile(
        conn: asyncpg.Connection, pool: asyncpg.Pool, keyring: Keyring, router: FakeRouter) -> None:
    rid = await add_router(conn, keyring, router)
    ids = await services(conn, rid, 8)
    reconciler = Reconciler(pool, keyring, settings())
    assert (await reconciler.run(await router_row(pool, rid))).result == "ok"
    before = {q["name"]: q[".id"] for q in router.table(QUEUES)}
    router.reboot()  # connections dropped, every .id renumbered
    after = {q["name"]: q[".id"] for q in router.table(QUEUES)}
    assert set(before) == set(after) and not set(before.values()) & set(after.values())
    await conn.execute("UPDATE services SET status = 'blocked' WHERE id = $1", ids[0])
    await conn.execute("UPDATE tariffs SET download_kbps = 60000")
    outcome = await reconciler.run(await router_row(pool, rid))
    assert outcome.result == "ok", outcome.error  # a new connection, the new ids
    assert {q["max-limit"] for q in owned(router, QUEUES)} == {"10000000/60000000"}
    assert [e["address"] for e in owned(router, LISTS)] == ["10.9.0.1"]
    await reconciler.close()


@pytest.mark.parametrize("version", ["6.42.12", "6.44", "7.18"])
async def test_both_login_forms(version: str, conn: asyncpg.Connection, pool: asyncpg.Pool,
                                keyring: Keyring) -> None:
    async with FakeRouter(user="lastmile", password=PASSWORD, version=version) as r:
        rid = await add_router(conn, keyring, r)
        await services(conn, rid, 2)
        reconciler = Reconciler(pool, keyring, settings())
        outcome = await reconciler.run(await router_row(pool, rid))
        assert outcome.result == "ok", outcome.error
        assert len(owned(r, QUEUES)) == 2
        await reconciler.close()


async def test_a_wrong_password_is_a_login_error(conn: asyncpg.Connection, pool: asyncpg.Pool,
                                                 keyring: Keyring, router: FakeRouter) -> None:
    rid = await add_router(conn, keyring, router, password=keyring.seal("wrong", ROUTER_PURPOSE))
    reconciler = Reconciler(pool, keyring, settings())
    outcome = await reconciler.run(await router_row(pool, rid))
    assert outcome.result == "unreachable"
    assert outcome.error == "login: invalid user name or password (6)"
    assert "wrong" not in str(outcome) and PASSWORD not in str(outcome)


async def test_api_ssl_is_verified(tmp_path: Path, conn: asyncpg.Connection, pool: asyncpg.Pool,
                                   keyring: Keyring) -> None:
    certs = make_certificates(tmp_path / "tls")
    other = make_certificates(tmp_path / "other")
    async with FakeRouter(user="lastmile", password=PASSWORD, ssl_context=certs.server_context()) as r:
        rid = await add_router(conn, keyring, r, api_tls=True)
        await services(conn, rid, 1)
        trusted = Reconciler(pool, keyring, settings(ca_file=str(certs.ca)))
        assert (await trusted.run(await router_row(pool, rid))).result == "ok"
        stranger = Reconciler(pool, keyring, settings(ca_file=str(other.ca)))
        refused = await stranger.run(await router_row(pool, rid))
        assert refused.result == "unreachable" and "TLS" in str(refused.error)
        await conn.execute("UPDATE routers SET api_tls_verify = false")
        assert (await stranger.run(await router_row(pool, rid))).result == "ok"
        await trusted.close()
        await stranger.close()


async def test_ppp_secrets_and_leases_on_an_api_router(conn: asyncpg.Connection, pool: asyncpg.Pool,
                                                       keyring: Keyring, router: FakeRouter) -> None:
    rid = await add_router(conn, keyring, router, auth_mode="api")
    ids = await services(conn, rid, 3)
    await conn.execute("UPDATE services SET mac = ('02:00:00:00:00:0' || id % 10)::macaddr WHERE id = $1", ids[0])
    reconciler = Reconciler(pool, keyring, settings())
    assert (await reconciler.run(await router_row(pool, rid))).result == "ok"
    secrets = {s["name"]: s for s in owned(router, SECRETS)}
    assert secrets["user1"]["password"] == "pw1" and secrets["user1"]["remote-address"] == "10.9.0.2"
    assert [(lease["address"]) for lease in owned(router, LEASES)] == ["10.9.0.1"]
    await conn.execute("UPDATE services SET password = 'changed' WHERE id = $1", ids[1])
    router.allowed = frozenset({"/queue", "/ip", "/ppp/secret/print", "/ppp/secret/set", "/ppp/secret/add",
                                "/ppp/secret/remove", "/system"})
    outcome = await reconciler.run(await router_row(pool, rid))
    assert outcome.result == "ok", outcome.error
    assert {s["name"]: s["password"] for s in owned(router, SECRETS)}["user1"] == "changed"
    assert outcome.plan is not None and [c.describe() for c in outcome.plan.changes] == [
        f"set PPP secret user1: password changed, comment "
        f"{secrets['user1']['comment']!r} -> {owned(router, SECRETS)[1]['comment']!r}"]
    await reconciler.close()


def lastmile(db_url: str, key: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = key.parent / "lastmile.toml"
    config.touch()
    env = {**os.environ, "LASTMILE_DATABASE__URL": db_url, "LASTMILE_SECRETS__KEY_FILE": str(key),
           "LASTMILE_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "daemons.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


async def test_the_routers_command_lists_plans_syncs_and_imports(
        db_url: str, conn: asyncpg.Connection, pool: asyncpg.Pool, keyring: Keyring, router: FakeRouter,
        tmp_path: Path) -> None:
    key = tmp_path / "secret.key"
    rid = await add_router(conn, keyring, router)
    ids = await services(conn, rid, 2)
    router.seed(SECRETS, [{"name": "anna", "password": "a-pass", "remote-address": "10.5.0.2", "comment": "Anna K"},
                          {"name": "user0", "password": "pw0", "remote-address": "10.9.0.1"}])
    router.seed(QUEUES, [{"name": "anna", "target": "10.5.0.2", "max-limit": "10M/50M"},
                         {"name": "bob", "target": "10.5.0.3", "max-limit": "5M/20M", "comment": "Bob B"}])
    router.seed(LISTS, [{"list": "blocked", "address": "10.5.0.3"}])

    listed = await asyncio.to_thread(lastmile, db_url, key, "routers")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split()[:5] == ["r1", f"api://127.0.0.1:{router.port}", "2", "-", "never"]

    planned = await asyncio.to_thread(lastmile, db_url, key, "routers", "plan", "r1")
    assert planned.returncode == 0, planned.stderr
    assert "r1: 0 objects owned by lastmile; to do: 2 to add, 0 to set, 0 to remove" in planned.stdout
    assert "queue anna (target 10.5.0.2/32) matches no active service" in planned.stdout
    assert router.writes() == []

    proposal = await asyncio.to_thread(lastmile, db_url, key, "routers", "import", "r1")
    assert proposal.returncode == 0, proposal.stderr
    lines = proposal.stdout.splitlines()
    assert lines[0] == ("r1: would create 2 customers with a service each, 1 new tariffs; would tag 1 objects "
                        "that match services already in billing")
    assert lines[2].split()[:3] == ["anna", "Anna", "K"] and "Home 50 " in lines[2]  # the same speeds
    assert "bob" in lines[3] and "Imported 20M/5M (new)" in lines[3] and "blocked" in lines[3]
    assert router.writes() == [] and await conn.fetchval("SELECT count(*) FROM services") == 2

    applied = await asyncio.to_thread(lastmile, db_url, key, "routers", "import", "r1", "--apply")
    assert applied.returncode == 0, applied.stderr
    rows = await conn.fetch("SELECT s.login, host(s.ipv4) AS ip, t.download_kbps, t.upload_kbps, c.status, "
                            "s.password FROM services s JOIN tariffs t ON t.id = s.tariff_id "
                            "JOIN customers c ON c.id = s.customer_id WHERE s.login IN ('anna', 'bob') ORDER BY 1")
    assert next(tuple(r) for r in rows) == ("anna", "10.5.0.2", 50000, 10000, "active", "a-pass")
    assert tuple(rows[1])[:5] == ("bob", "10.5.0.3", 20000, 5000, "blocked")
    assert await conn.fetchval("SELECT auth_mode FROM routers") == "api"  # it authenticates from secrets
    tagged = {(r.get("name") or r.get("address")): r.get("comment", "") for m in (QUEUES, SECRETS, LISTS)
              for r in router.table(m)}
    assert tagged["anna"].startswith("lastmile:s") and tagged["bob"].startswith("lastmile:s")
    assert tagged["10.5.0.3"].startswith("lastmile:s")
    assert tagged["user0"] == f"lastmile:s{ids[0]} Customer user0"  # adopted: it matched billing

    synced = await asyncio.to_thread(lastmile, db_url, key, "routers", "sync", "r1")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert synced.stdout.splitlines()[0].startswith("r1: 4 added, 3 set, 0 removed in ")
    again = await asyncio.to_thread(lastmile, db_url, key, "routers", "plan", "r1")
    assert "to do: 0 to add, 0 to set, 0 to remove" in again.stdout, again.stdout
    assert {q["name"] for q in owned(router, QUEUES)} == {"anna", "bob", "user0", "user1"}
    assert {s["name"] for s in owned(router, SECRETS)} == {"anna", "bob", "user0", "user1"}
    unknown = await asyncio.to_thread(lastmile, db_url, key, "routers", "sync", "nope")
    assert unknown.returncode == 2 and "no router named 'nope'" in unknown.stdout


async def test_a_clear_text_router_password_is_sealed_at_start(conn: asyncpg.Connection, keyring: Keyring,
                                                                router: FakeRouter) -> None:
    from daemons.provisiond.__main__ import seal_clear_passwords

    rid = await add_router(conn, keyring, router, password=PASSWORD)  # as a row written by hand
    assert await seal_clear_passwords(conn, keyring) == 1
    stored = await conn.fetchval("SELECT password FROM routers WHERE id = $1", rid)
    assert stored.startswith("lm1:") and PASSWORD not in stored
    assert keyring.open(stored, ROUTER_PURPOSE) == PASSWORD
    assert await seal_clear_passwords(conn, keyring) == 0  # once


def test_provisiond_refuses_to_start_without_its_key(db_url: str, tmp_path: Path) -> None:
    result = lastmile(db_url, tmp_path / "missing.key", "provisiond")
    assert result.returncode != 0
    assert f"[secrets] key_file {tmp_path / 'missing.key'}: no such file (`lastmile db init` creates it)" in (
        result.stdout + result.stderr)


async def test_a_change_of_a_few_services_is_a_targeted_run_followed_by_a_full_one(
        conn: asyncpg.Connection, pool: asyncpg.Pool, keyring: Keyring, router: FakeRouter,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from daemons.provisiond import scheduler as scheduling

    monkeypatch.setattr(scheduling, "FOLLOW_UP_S", 0.3)
    rid = await add_router(conn, keyring, router)
    ids = await services(conn, rid, 50)
    reconciler = Reconciler(pool, keyring, settings())
    assert (await reconciler.run(await router_row(pool, rid))).result == "ok"
    router.seed(QUEUES, [{"name": "stray", "target": "10.1.1.1", "comment": "lastmile:s999 gone"}])

    async def load(wanted: set[int] | None) -> list[store.Router]:
        async with pool.acquire() as c:
            return await store.routers(c, wanted)

    scheduler = Scheduler(reconciler, load, concurrency=2, backoff_max=5)
    task = asyncio.create_task(scheduler.run())
    try:
        await conn.execute("UPDATE services SET status = 'blocked' WHERE id = $1", ids[7])
        router.clear_journal()
        scheduler.mark_services({rid: {ids[7]}})
        await eventually(lambda: [e["address"] for e in owned(router, LISTS)] == ["10.9.0.8"], 2.0)
        prints = [r for r in router.commands("print") if not r.word.startswith("/system")]
        assert prints and all(any(w.startswith("?") for w in r.words) for r in prints)  # keyed reads only
        assert any("?address=10.9.0.8" in r.words for r in prints) and any("?name=user7" in r.words for r in prints)
        assert [w.command.menu for w in router.writes()] == ["/ip/firewall/address-list"]
        assert any(q["name"] == "stray" for q in router.table(QUEUES))  # not seen by a targeted run
        await eventually(lambda: not any(q["name"] == "stray" for q in router.table(QUEUES)), 3.0)  # the follow-up
        # the follow-up's outcome is recorded when its run has ended, just after its last write
        await eventually(lambda: len(scheduler.outcomes) >= 2, 3.0)
        outcomes = [(o.targeted, o.result) for o in scheduler.outcomes]
        assert outcomes[:2] == [(True, "ok"), (False, "ok")]
    finally:
        task.cancel()
        await scheduler.stop()
        await reconciler.close()
