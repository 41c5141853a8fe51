"""Connection requests: the ACS asks a CPE to open a session now (TR-069 3.2.2).

An operator (admin, API) inserts a pending row into acs_wakeups; every acs instance runs
:func:`run`, which claims pending rows (``store.claim_wakeups``: FOR UPDATE SKIP LOCKED, so each
row goes to one instance), sends each an HTTP GET to the device's ConnectionRequestURL and
records the outcome (``store.finish_wakeup``) in the same transaction. As GenieACS does:

- digest authentication (RFC 7616, aiohttp's ``DigestAuthMiddleware``) with the
  ConnectionRequestUsername/Password the ACS set on the device (the password kept sealed,
  purpose ``acs-connection-request``); Basic only when the CPE asks for it and
  ``connection_request_basic`` allows it (it sends the password in clear on plain HTTP);
  without credentials (the default preset has not run yet) the GET goes without and a 401 fails;
- a short timeout (``connection_request_timeout``, 2 s): a CPE answers a connection request at
  once (200 or 204) and opens its session afterwards;
- the URL is checked first (acs/targets.py): a refused URL is never contacted;
- no redirects followed (a redirect would aim the ACS past the check);
- one request per device per ``connection_request_interval`` (10 s) per instance: CPEs drop
  bursts, and the session the first one starts runs every queued task anyway. A row of a device
  asked too recently stays pending and goes when the interval has passed; several pending rows of
  one device in a batch share one request and its outcome.

A 2xx answer is ``sent``; anything else is ``failed`` with the HTTP status (401: the CPE refused
the credentials) or the error (refused URL, timeout, connection refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import aiohttp
import asyncpg

from acs import store, targets
from daemons import log
from daemons.db import Connection
from daemons.secrets import Keyring, SecretError

CHANNEL = "lastmile_acs_wakeups"  # acs_wakeups' notifications (lastmile_watch): set run()'s wake on them
BATCH = 100  # rows claimed per round
POLL = 5.0  # seconds between rounds when no notification comes (a lost one costs at most this)


class WakeupSettings(Protocol):
    """What :func:`run` reads of the ``[acs]`` settings."""

    @property
    def connection_request_networks(self) -> Sequence[str]: ...
    @property
    def connection_request_basic(self) -> bool: ...
    @property
    def connection_request_timeout(self) -> float: ...
    @property
    def connection_request_interval(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one connection request (the columns of acs_wakeups it sets)."""

    status: Literal["sent", "failed"]
    http_status: int | None = None
    error: str = ""
    contacted: bool = True  # whether anything went to the network (rate limit counts those)


async def send(http: aiohttp.ClientSession, url: str, credentials: tuple[str, str] | None, *,
               informed_from: str | None, networks: Sequence[targets.Network], allow_basic: bool = False,
               timeout: float = 2.0) -> Outcome:
    """One connection request to ``url`` (checked by :func:`acs.targets.check` first)."""
    target = targets.check(url, informed_from, networks)
    if isinstance(target, str):
        return Outcome("failed", None, f"URL refused: {target}", contacted=False)
    middlewares: tuple[aiohttp.DigestAuthMiddleware, ...] = ()
    if credentials is not None:
        middlewares = (aiohttp.DigestAuthMiddleware(credentials[0], credentials[1], preemptive=False),)
    limit = aiohttp.ClientTimeout(total=timeout)
    try:
        async with http.get(url, allow_redirects=False, timeout=limit, middlewares=middlewares) as response:
            status = response.status
            challenge = response.headers.get("WWW-Authenticate", "")
        if (status == 401 and credentials is not None and allow_basic
                and challenge.lower().startswith("basic")):
            basic = {"Authorization": aiohttp.encode_basic_auth(credentials[0], credentials[1])}
            async with http.get(url, allow_redirects=False, timeout=limit, headers=basic) as response:
                status = response.status
    except TimeoutError:
        return Outcome("failed", None, f"no answer within {timeout:g} s")
    except (aiohttp.ClientError, OSError, ValueError) as e:
        return Outcome("failed", None, f"{type(e).__name__}: {e}".rstrip(": "))
    if 200 <= status < 300:
        return Outcome("sent", status)
    if status == 401:
        why = ("the CPE refused the credentials" if credentials is not None
               else "the CPE wants credentials and the ACS has set none yet")
        if credentials is not None and challenge.lower().startswith("basic") and not allow_basic:
            why = "the CPE asks for Basic authentication, which connection_request_basic does not allow"
        return Outcome("failed", status, why)
    return Outcome("failed", status, f"HTTP {status}")


class Sender:
    """Claims and sends pending connection requests; remembers when each device was last asked."""

    def __init__(self, keyring: Keyring, settings: WakeupSettings) -> None:
        self.keyring = keyring
        self.networks = targets.parse_networks(settings.connection_request_networks)
        self.allow_basic = settings.connection_request_basic
        self.timeout = settings.connection_request_timeout
        self.interval = settings.connection_request_interval
        self.log = log.get("lastmile.acs")
        self._asked: dict[int, float] = {}  # device id -> monotonic time of its last request

    def _credentials(self, username: str | None, sealed: str | None) -> tuple[str, str] | str | None:
        if username is None or sealed is None:
            return None
        try:
            return username, self.keyring.open(sealed, store.CONNECTION_REQUEST_PURPOSE)
        except SecretError as e:
            return str(e)

    async def round(self, conn: Connection, http: aiohttp.ClientSession) -> float | None:
        """Send what is pending, in ``conn``'s transaction (the caller opens it and commits).
        Returns the seconds until a deferred row falls due, None when none waits."""
        rows = await store.claim_wakeups(conn, BATCH)
        now = time.monotonic()
        self._asked = {d: t for d, t in self._asked.items() if now - t < self.interval}
        groups: dict[int, list[int]] = {}
        jobs: dict[int, tuple[str, tuple[str, str] | str | None]] = {}
        for wakeup_id, device_id, url, username, sealed in rows:
            groups.setdefault(device_id, []).append(wakeup_id)
            jobs.setdefault(device_id, (url, self._credentials(username, sealed)))
        wait: float | None = None
        outcomes: dict[int, Outcome] = {}
        sends: dict[int, Coroutine[None, None, Outcome]] = {}
        for device_id, (url, credentials) in jobs.items():
            asked = self._asked.get(device_id)
            if asked is not None:
                due = asked + self.interval - now
                wait = due if wait is None else min(wait, due)
                continue
            if isinstance(credentials, str):
                outcomes[device_id] = Outcome("failed", None, credentials, contacted=False)
                continue
            device = await store.load_device(conn, device_id)
            address = device.address if device is not None else None
            sends[device_id] = send(http, url, credentials, informed_from=address, networks=self.networks,
                                    allow_basic=self.allow_basic, timeout=self.timeout)
        outcomes.update(zip(sends, await asyncio.gather(*sends.values()), strict=True))
        for device_id, result in outcomes.items():
            if result.contacted:
                self._asked[device_id] = now
            for wakeup_id in groups[device_id]:
                await store.finish_wakeup(conn, wakeup_id, result.status, result.http_status, result.error)
            self.log.info("connection request", device_id=device_id, status=result.status,
                          http_status=result.http_status, error=result.error or None)
        return wait


async def run(pool: asyncpg.Pool, keyring: Keyring, settings: WakeupSettings, wake: asyncio.Event, *,
              poll: float = POLL) -> None:
    """Send connection requests until cancelled: a round at start, whenever ``wake`` is set (NOTIFY
    on :data:`CHANNEL`, and after the listener reconnects) and every ``poll`` seconds. Cancelling
    it between rounds loses nothing; during one, the claimed rows stay pending (the transaction
    rolls back) and go again."""
    sender = Sender(keyring, settings)
    connector = aiohttp.TCPConnector(limit=BATCH, force_close=True)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as http:
        while True:
            wake.clear()
            try:
                async with pool.acquire() as conn, conn.transaction():
                    wait = await sender.round(conn, http)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                sender.log.warning("connection requests: database unavailable", error=str(e))
                wait = None
            delay = poll if wait is None else max(0.05, min(poll, wait))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)
