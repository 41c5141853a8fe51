"""PostgreSQL access shared by every daemon: pools, the schema, and LISTEN that survives drops.

Type codecs: ``jsonb``/``json`` are Python objects (json.dumps/loads). ``inet`` and ``cidr``
use asyncpg's own codecs: an ``inet`` host comes back as ``IPv4Address``/``IPv6Address``, an
``inet`` with a prefix as ``IPv4Interface``, a ``cidr`` as ``IPv4Network``/``IPv6Network``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from prometheus_client import Counter, Gauge

from daemons import log, schemafiles
from daemons.config import DatabaseSettings
from daemons.metrics import REGISTRY


def _schema_path() -> Path:
    """schema.sql: inside the package in an installed wheel (setup.py copies it there), else at
    the top of the checkout (a checkout or an editable install)."""
    here = Path(__file__).resolve().parent
    packaged = here / "schema.sql"
    return packaged if packaged.is_file() else here.parent / "schema.sql"


SCHEMA_PATH = _schema_path()
UPGRADES_DIR = Path(__file__).resolve().parent / "upgrades"
"""The upgrade steps, ``NNN.sql`` (package data of ``daemons.upgrades``, so in the wheel too)."""
LISTEN_RECONNECTS = Counter(
    "lastmile_db_listen_reconnects_total",
    "Times the LISTEN connection was lost and opened again.",
    registry=REGISTRY,
)
LISTEN_CONNECTED = Gauge(
    "lastmile_db_listen_connected", "1 while the LISTEN connection is up.", registry=REGISTRY
)


Connection = asyncpg.Connection | PoolConnectionProxy
"""A connection of its own or one borrowed from a pool: the functions here take either."""

DB_DOWN = (
    OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError, TimeoutError)
"""Errors that mean "the database is not there (or not answering)", as opposed to a bug or bad data."""
DB_ERRORS = (*DB_DOWN, asyncpg.PostgresError)
"""What a periodic job that reads or writes the database may meet and shrug off until next time."""

T = TypeVar("T")


class Late(TimeoutError):
    """:func:`bounded`'s work did not finish in time; it goes on as ``task``."""

    def __init__(self, task: asyncio.Future[Any], timeout: float) -> None:
        super().__init__(f"the database did not answer within {timeout:g} s")
        self.task = task
        self.timeout = timeout


async def bounded(work: Awaitable[T], timeout: float) -> T:
    """``await work``, but for at most ``timeout`` seconds: after that raise :class:`Late` and
    leave the work running, not cancelled. Cancelling a query on a hung PostgreSQL (a stopped
    server, a partition) waits for the server too, so ``asyncio.wait_for`` would hang with it;
    the work finishes or fails by itself once the server answers or the pool is terminated."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.add_done_callback(_outcome_not_wanted)
        raise Late(task, timeout)
    return task.result()


async def answers(pool: asyncpg.Pool, timeout: float) -> bool:
    """True if the server answers a trivial query within ``timeout`` seconds: alive, however busy.
    A statement that is late while this answers is slow (a big update, a lock held elsewhere),
    not stuck behind a hung server."""

    async def ping() -> None:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    try:
        await bounded(ping(), timeout)
    except DB_DOWN:  # Late is a TimeoutError
        return False
    return True


def _outcome_not_wanted(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" warning


SchemaError = schemafiles.SchemaError
"""The database's schema is missing, of another version or hash, or cannot be upgraded now."""


def schema_sql() -> str:
    return SCHEMA_PATH.read_text()


def schema_version() -> int:
    """The version this code expects, from the header of schema.sql."""
    return schemafiles.header(schema_sql(), str(SCHEMA_PATH))[0]


def load_schema() -> schemafiles.Schema:
    """This lastmile's schema.sql and upgrade steps, checked against their rules."""
    return schemafiles.load(SCHEMA_PATH, UPGRADES_DIR)


def url_of(settings: DatabaseSettings) -> str:
    """The URL to connect to: the setting, or the embedded server's."""
    if settings.url:
        return settings.url
    from daemons.pgembed import DATABASE

    return f"postgresql://postgres@127.0.0.1:{settings.embedded_port}/{DATABASE}"


async def init_connection(conn: Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, schema="pg_catalog", encoder=json.dumps, decoder=json.loads, format="text"
        )


async def connect(url: str, timeout: float = 10.0) -> asyncpg.Connection:
    conn = await asyncpg.connect(url, timeout=timeout)
    await init_connection(conn)
    return conn


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """A pool connection goes back as it is. asyncpg's default reset is a round trip per release
    (UNLISTEN, RESET ALL, advisory unlock...) for state lastmile never leaves on a pool connection:
    LISTEN has its own connection, locks are transaction-scoped, nothing is SET per session.
    asyncpg still rolls back a transaction left open before calling this."""


async def create_pool(
    settings: DatabaseSettings, url: str | None = None, max_size: int | None = None, *, connect: bool = True
) -> asyncpg.Pool:
    """A pool with lastmile's codecs; fails if the schema is missing or of another version or hash.
    ``connect=False``: a pool that connects on first use and checks nothing now (a daemon that
    starts while the database is away; it checks the schema when the database answers)."""
    max_size = max_size or settings.pool_max
    pool = await asyncpg.create_pool(
        url or url_of(settings),
        min_size=min(settings.pool_min, max_size) if connect else 0,
        max_size=max_size,
        init=init_connection,
        reset=_keep_session,
        timeout=settings.connect_timeout,
    )
    if not connect:
        return pool
    try:
        async with pool.acquire() as conn:
            await check_schema(conn)
    except BaseException:
        await pool.close()
        raise
    return pool


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """What :func:`apply_schema` did; ``str()`` is what `lastmile db init` prints."""

    action: Literal["applied", "upgraded", "finished", "current"]
    version: int
    from_version: int = 0
    steps: int = 0

    def __str__(self) -> str:
        if self.action == "applied":
            return f"applied schema version {self.version}"
        if self.action == "upgraded":
            plural = "" if self.steps == 1 else "s"
            return f"upgraded schema {self.from_version} -> {self.version} ({self.steps} step{plural})"
        if self.action == "finished":
            return f"finished the upgrade to schema version {self.version}"
        return f"already at schema version {self.version}"


async def apply_schema(
    conn: Connection, *, lock_timeout: float = 5.0, schema: schemafiles.Schema | None = None
) -> SchemaChange:
    """Bring the database to this lastmile's schema (`lastmile db init`), doing only what it lacks:

    - no lastmile schema: schema.sql in one transaction, and its version and hash recorded;
    - an older version: each upgrade step from there, in a transaction of its own under
      ``lock_timeout`` (seconds, for each lock), recording the version it makes. Before a step
      the functions of schema.sql the database lacks are created (a step may call them); in the
      last step's transaction every function of schema.sql is created again and the hash is
      recorded. A version reached before the last is recorded without a hash, so nothing but
      this function accepts the database until the upgrade is done;
    - this version and hash: nothing but the schema lock and a read of schema_version (no table
      of the schema is touched); this version without a hash (an upgrade that stopped there):
      the functions again, and the hash;
    - a newer version, one older than the steps reach, or another hash of this version:
      :class:`SchemaError`, and nothing changed.

    A step that cannot get a lock in time, deadlocks or fails raises :class:`SchemaError` with
    the statement (and who holds the lock); its transaction is rolled back, so the database stays
    at the version before it. Concurrent runs take turns (an advisory lock, waited for up to
    ``lock_timeout`` too).
    """
    schema = schema or load_schema()
    started = 0
    steps = 0
    while True:
        try:
            async with conn.transaction():
                found = await _lock_and_read(conn, lock_timeout)
                if found is None:
                    await conn.execute(schema.sql)
                    await _record(conn, schema.version, schema.hash)
                    return SchemaChange("applied", schema.version)
                version, hash_ = found
                _refuse_other(version, hash_, schema.version, schema.hash, schema.oldest)
                started = started or version
                if version == schema.version and hash_ == schema.hash:
                    if steps:
                        return SchemaChange("upgraded", version, started, steps)
                    return SchemaChange("current", version)
                if version == schema.version:  # recorded without its hash: an upgrade stopped here
                    await _create_functions(conn, schema, replace=True)
                    await _record(conn, version, schema.hash)
                    return SchemaChange("finished", version)
                step = schema.step_to(version + 1)
                last = step.version == schema.version
                await _create_functions(conn, schema, replace=False)
                await _run_step(conn, step)
                if last:
                    await _create_functions(conn, schema, replace=True, step=step)
                await _record(conn, step.version, schema.hash if last else None)
        except _Stopped as stop:
            raise SchemaError(await stop.describe(conn, lock_timeout)) from stop.error
        steps += 1
        if last:
            return SchemaChange("upgraded", schema.version, started, steps)


async def check_schema(conn: Connection) -> None:
    """What a daemon checks at start: the database is at this lastmile's schema version, with its
    hash; else :class:`SchemaError`, one line that says what to run."""
    version, hash_ = schemafiles.header(schema_sql(), str(SCHEMA_PATH))
    try:
        found = await _read_version(conn)
    except asyncpg.UndefinedTableError:
        found = None
    if found is None:
        raise SchemaError("the database has no lastmile schema: run `lastmile db init`")
    found_version, found_hash = found
    if found_version < version:
        raise SchemaError(
            f"the database schema is version {found_version}, this lastmile needs {version}: run `lastmile db init`"
        )
    _refuse_other(found_version, found_hash, version, hash_, None)
    if found_hash is None:
        raise SchemaError(f"the upgrade of the database to schema version {version} did not finish: "
                          "run `lastmile db init`")


def _refuse_other(found: int, found_hash: str | None, version: int, hash_: str, oldest: int | None) -> None:
    """What neither a daemon nor `db init` can work with: a newer schema, one too old to upgrade
    (``oldest`` None: not checked), or another schema under this version number."""
    if found > version:
        raise SchemaError(
            f"the database schema is version {found}, newer than this lastmile's ({version}): run the lastmile "
            "that upgraded it (db init does not downgrade)"
        )
    if oldest is not None and found < oldest:
        raise SchemaError(
            f"the database schema is version {found}, older than this lastmile upgrades from ({oldest}): run "
            f"`lastmile db init` of a release with schema version {oldest} first"
        )
    if found == version and found_hash is not None and found_hash != hash_:
        raise SchemaError(
            f"the database has another schema of version {version} than this lastmile (hash {found_hash[:12]}, "
            f"this one {hash_[:12]}): it was made by another build; run that one, or make a new database "
            "with `lastmile db init`"
        )


async def _lock_and_read(conn: Connection, lock_timeout: float) -> tuple[int, str | None] | None:
    """In the transaction: set ``lock_timeout``, take the schema lock, read the version and hash
    (None: no lastmile schema)."""
    await conn.execute(f"SET LOCAL lock_timeout = {max(1, round(lock_timeout * 1000))}")
    try:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('lastmile schema'))")
    except asyncpg.LockNotAvailableError as e:
        raise _Stopped(None, None, e) from e
    if await conn.fetchval("SELECT to_regclass('schema_version') IS NULL"):
        return None
    return await _read_version(conn)


async def _read_version(conn: Connection) -> tuple[int, str | None] | None:
    # to_jsonb: version 4 has no hash column
    row = await conn.fetchrow("SELECT version, to_jsonb(s) ->> 'hash' AS hash FROM schema_version s")
    return None if row is None else (row["version"], row["hash"])


async def _record(conn: Connection, version: int, hash_: str | None) -> None:
    await conn.execute(
        "INSERT INTO schema_version (version, hash) VALUES ($1, $2) ON CONFLICT (singleton) DO UPDATE "
        "SET version = EXCLUDED.version, hash = EXCLUDED.hash, applied_at = now()",
        version, hash_,
    )


async def _create_functions(
    conn: Connection, schema: schemafiles.Schema, *, replace: bool, step: schemafiles.Step | None = None
) -> None:
    """Every function of schema.sql (``replace``), or those the database has none of that name of
    (their bodies unchecked: the tables they read may come with the step)."""
    routines = schema.routines()
    if not replace:
        have = {r["proname"] for r in await conn.fetch(
            "SELECT proname FROM pg_proc WHERE pronamespace = current_schema()::regnamespace")}
        routines = [r for r in routines if r.name not in have]
        if not routines:
            return
        await conn.execute("SET LOCAL check_function_bodies = off")
    for routine in routines:
        try:
            await conn.execute(routine.sql)
        except asyncpg.PostgresError as e:
            raise _Stopped(step, routine.statement, e) from e
    if not replace:
        await conn.execute("SET LOCAL check_function_bodies = on")


async def _run_step(conn: Connection, step: schemafiles.Step) -> None:
    for statement in step.statements():
        try:
            await conn.execute(statement.sql)
        except asyncpg.PostgresError as e:
            raise _Stopped(step, statement, e) from e


class _Stopped(Exception):
    """A step stopped at ``statement`` (step None: finishing an upgrade did; statement None too: the
    schema lock was not to be had); described once its transaction is rolled back."""

    def __init__(
        self, step: schemafiles.Step | None, statement: schemafiles.Statement | None, error: asyncpg.PostgresError
    ) -> None:
        super().__init__(str(error))
        self.step, self.statement, self.error = step, statement, error

    async def describe(self, conn: Connection, lock_timeout: float) -> str:
        error = str(self.error).splitlines()[0] if str(self.error) else type(self.error).__name__
        if self.statement is None:
            pids = ", ".join(f"pid {r['pid']}" for r in await _holders(conn, None))
            return (f"another `lastmile db init` is running{f' ({pids})' if pids else ''} and holds the schema lock "
                    f"({lock_timeout:g} s waited): run this one again when it is done")
        where = f"`{self.statement.summary}`"
        if self.step is None:
            return f"finishing the upgrade failed at {where}: {error}"
        step = self.step
        stays = f"the database stays at version {step.version - 1}"
        if isinstance(self.error, asyncpg.LockNotAvailableError):
            held = [_holder(r) for r in await _holders(conn, self.statement.words())]
            by = f": {'; '.join(held)}" if held else ""
            return (f"{step.name} could not get a lock within {lock_timeout:g} s ([database] lock_timeout) at "
                    f"{where}{by}; {stays}: run `lastmile db init` again when that is done, or raise lock_timeout")
        if isinstance(self.error, asyncpg.DeadlockDetectedError):
            return f"{step.name} deadlocked with another session at {where}; {stays}: run `lastmile db init` again"
        return f"{step.name} failed at {where}: {error}; {stays}"


async def _holders(conn: Connection, names: set[str] | None) -> list[asyncpg.Record]:
    """The other sessions holding locks on the tables named (or their partitions), longest held
    first, three at most; holding the schema lock when ``names`` is None."""
    rows = await conn.fetch(
        """
        WITH named AS (
            SELECT c.oid FROM pg_class c
            WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
              AND c.relname = ANY($1::text[])),
        rels AS (
            SELECT oid AS relid FROM named UNION SELECT t.relid FROM named, LATERAL pg_partition_tree(named.oid) t)
        SELECT DISTINCT ON (l.pid) l.pid, l.relation::regclass::text AS rel, a.usename, a.application_name,
               a.state, extract(epoch FROM now() - a.xact_start)::int AS age, left(a.query, 60) AS query
        FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.granted AND l.pid <> pg_backend_pid()
          AND CASE WHEN $1::text[] IS NULL
                   THEN l.locktype = 'advisory' AND l.objid = hashtext('lastmile schema')::oid
                   ELSE l.locktype = 'relation' AND l.relation IN (SELECT relid FROM rels) END
        ORDER BY l.pid
        """,
        None if names is None else sorted(names),
    )
    return sorted(rows, key=lambda r: -(r["age"] or 0))[:3]


def _holder(row: asyncpg.Record) -> str:
    """``traffic_usage_p20261201 is held by pid 4242 (flowcollector, idle in transaction for 40 s: SELECT …)``"""
    who = ", ".join(str(x) for x in (row["application_name"] or row["usename"], row["state"]) if x)
    age = f" for {row['age']} s" if row["age"] is not None else ""
    query = f": {' '.join(row['query'].split())}" if row["query"] else ""
    return f"{row['rel']} is held by pid {row['pid']} ({who}{age}{query})"


async def maintain_partitions(conn: Connection) -> None:
    """Create the coming partitions of the time-series tables (idempotent; run daily)."""
    await conn.execute("SELECT lastmile_maintain_partitions()")


Handler = Callable[[str, Any], None]


class Listener:
    """LISTEN on channels over one dedicated connection that comes back when it drops.

    ``handler(channel, payload)`` gets each notification's JSON payload, unless ``skip(channel,
    raw payload)`` says it is not wanted (checked before parsing). Notifications sent
    while the connection was down are lost (PostgreSQL keeps none for an absent listener), so
    after every reconnect ``on_reconnect()`` runs: caches reload in full there.
    """

    def __init__(
        self,
        url: str,
        channels: list[str],
        handler: Handler,
        on_reconnect: Callable[[], object] | None = None,
        keepalive: float = 5.0,
        skip: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.url = url
        self.skip = skip
        self.channels = channels
        self.handler = handler
        self.on_reconnect = on_reconnect
        self.keepalive = keepalive
        self.connected = asyncio.Event()
        self.log = log.get("lastmile.db")
        self._lost = asyncio.Event()

    async def run(self) -> None:
        """Stay subscribed until cancelled."""
        delay = 0.1
        first = True
        while True:
            try:
                conn = await connect(self.url, timeout=5)
            except (OSError, asyncpg.PostgresError, TimeoutError) as e:
                self.log.warning("listen connect failed", error=str(e), retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            try:
                await self._subscribe(conn)
                delay = 0.1
                LISTEN_CONNECTED.set(1)
                self.connected.set()
                if not first:
                    LISTEN_RECONNECTS.inc()
                    self.log.info("listen reconnected", channels=self.channels)
                    if self.on_reconnect:
                        self.on_reconnect()
                first = False
                await self._watch(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
                self.log.warning("listen connection lost", error=str(e) or type(e).__name__)
            finally:
                LISTEN_CONNECTED.set(0)
                self.connected.clear()
                conn.terminate()

    async def _subscribe(self, conn: asyncpg.Connection) -> None:
        self._lost.clear()
        conn.add_termination_listener(lambda _: self._lost.set())
        for channel in self.channels:
            await conn.add_listener(channel, self._dispatch)

    async def _watch(self, conn: asyncpg.Connection) -> None:
        """Return when the connection is gone: closed under us, or silent to a keepalive."""
        while not self._lost.is_set():
            try:
                await asyncio.wait_for(self._lost.wait(), self.keepalive)
            except TimeoutError:
                await conn.fetchval("SELECT 1", timeout=self.keepalive)
        self.log.warning("listen connection closed by the server")

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        if self.skip is not None and self.skip(channel, str(payload)):
            return
        try:
            data = json.loads(str(payload)) if payload else None
        except ValueError:
            data = payload
        try:
            self.handler(channel, data)
        except Exception:
            self.log.exception("notification handler failed", channel=channel)


Pending = dict[str, set[int] | None]
"""What a refresh is asked for: key (a table, a map) -> the ids of the rows that changed, or None
for all of it."""


class Refresher:
    """Changes named by notifications, applied by one task: the NOTIFY-driven half of every
    daemon's cache (STYLE.md: subscribe, then load, then follow).

    ``want(key, row_id)`` (from a ``Listener`` handler: it never waits) records what changed;
    one task gathers everything asked for by the time it wakes, waits ``settle`` seconds more
    so that a burst becomes one refresh, and calls ``refresh(pending)``. When that fails because
    the database is away, the same changes are asked again a second later, together with
    whatever came meanwhile; ``reload()`` (after a LISTEN reconnect: notifications may have been
    missed) asks for all of every key in ``everything``.
    """

    def __init__(self, refresh: Callable[[Pending], Awaitable[None]], everything: Iterable[str], *,
                 settle: float = 0.0, name: str = "cache") -> None:
        self.refresh = refresh
        self.everything = tuple(everything)
        self.settle = settle
        self.pending: Pending = {}
        self._wake = asyncio.Event()
        self.applied = asyncio.Event()  # set (and cleared) after each refresh: tests wait on it
        self._outage = log.Outage(log.get("lastmile.db"), f"{name} refresh failed; retrying", every=60.0)

    def want(self, key: str, row_id: int | None = None) -> None:
        ids = self.pending.get(key, set())
        if row_id is None or ids is None:
            self.pending[key] = None
        else:
            ids.add(row_id)
            self.pending[key] = ids
        self._wake.set()

    def reload(self) -> None:
        for key in self.everything:
            self.pending[key] = None
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            if self.settle:
                await asyncio.sleep(self.settle)
            self._wake.clear()
            pending, self.pending = self.pending, {}
            try:
                await self.refresh(pending)
            except DB_ERRORS as e:
                self._outage.failed(e)
                for key, ids in pending.items():  # asked again, with what came meanwhile
                    have = self.pending.get(key, set())
                    self.pending[key] = None if ids is None or have is None else ids | have
                await asyncio.sleep(1.0)
                self._wake.set()
                continue
            self._outage.ok()
            self.applied.set()
            self.applied.clear()
