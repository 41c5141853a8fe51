"""PostgreSQL access shared by every daemon: pools, the schema, and LISTEN that survives drops.

Type codecs: ``jsonb``/``json`` are Python objects (json.dumps/loads). ``inet`` and ``cidr``
use asyncpg's own codecs: an ``inet`` host comes back as ``IPv4Address``/``IPv6Address``, an
``inet`` with a prefix as ``IPv4Interface``, a ``cidr`` as ``IPv4Network``/``IPv6Network``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from prometheus_client import Counter, Gauge

from daemons import log
from daemons.config import DatabaseSettings
from daemons.metrics import REGISTRY


def _schema_path() -> Path:
    """schema.sql: inside the package in an installed wheel (setup.py copies it there), else at
    the top of the checkout (a checkout or an editable install)."""
    here = Path(__file__).resolve().parent
    packaged = here / "schema.sql"
    return packaged if packaged.is_file() else here.parent / "schema.sql"


SCHEMA_PATH = _schema_path()
_VERSION_RE = re.compile(r"^-- lastmile schema version (\d+)$", re.MULTILINE)
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


def _outcome_not_wanted(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" warning


class SchemaError(Exception):
    """The database has no lastmile schema, or another version than this code."""


def schema_sql() -> str:
    return SCHEMA_PATH.read_text()


def schema_version() -> int:
    """The version this code expects, from the header of schema.sql."""
    match = _VERSION_RE.search(schema_sql())
    if not match:
        raise SchemaError(f"{SCHEMA_PATH} has no '-- lastmile schema version N' line")
    return int(match.group(1))


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
    """A pool with lastmile's codecs; fails if the schema is missing or of another version.
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


async def apply_schema(conn: Connection) -> None:
    """Apply schema.sql (idempotent) in one transaction, serialised against concurrent runs."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('lastmile schema'))")
        await conn.execute(schema_sql())


async def check_schema(conn: Connection) -> None:
    expected = schema_version()
    try:
        found = await conn.fetchval("SELECT version FROM schema_version")
    except asyncpg.UndefinedTableError:
        raise SchemaError("the database has no lastmile schema: run `lastmile db init`") from None
    if found != expected:
        raise SchemaError(
            f"the database schema is version {found}, this lastmile needs {expected}: run `lastmile db init`"
        )


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
