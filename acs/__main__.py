"""The ACS: wiring only. ``lastmile acs`` runs ``main(settings)``.

What runs besides the CWMP listeners: the LISTEN connection (presets, devices' own passwords,
connection requests, dry runs), the connection request sender (acs/wakeup.py), the dry runs, and
periodic chores (sessions gone quiet, expired live rows, transfers that never completed, the
queued-tasks gauge). On SIGTERM the listeners close first and the requests in flight finish
their current step; then the loops stop, the access log and the Inform writer flush, and the
pool closes last.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from acs import metrics, store, wakeup
from acs.files import Tokens
from acs.server import Server
from acs.settings import AcsSettings
from acs.writer import InformWriter, SessionLog
from daemons import db, http, log, runtime
from daemons.config import Settings
from daemons.events import EventPublisher
from daemons.metrics import REGISTRY
from daemons.secrets import Keyring, SecretError

CREDENTIALS = "lastmile_acs_credentials"  # payload: the cwmp_id whose own password changed
PRESETS = "lastmile_acs_presets"
DRY_RUNS = "lastmile_acs_dry_runs"
POLL = 5.0  # seconds between rounds of dry runs without a notification
KEY_PURPOSE = "acs-hmac-key"


def main(settings: Settings) -> int:
    return runtime.run("acs", lambda rt: serve(rt, settings), settings, settings.of(AcsSettings))


def hmac_key(keyring: Keyring, purpose: str) -> bytes:
    """A 36-byte key for ``purpose`` derived from the secrets key (HMAC-SHA256 under it, through
    ``Keyring.fingerprint``, the one keyed derivation daemons/secrets.py offers): every instance
    with the same key file signs and checks the same cookies, nonces and file links."""
    return b"".join(bytes.fromhex(keyring.fingerprint(f"{purpose}/{i}", KEY_PURPOSE)) for i in range(6))


def read_password(s: AcsSettings) -> str:
    if not s.password_file:
        return s.password
    try:
        return Path(s.password_file).read_text().splitlines()[0]
    except (OSError, UnicodeDecodeError, IndexError) as e:
        raise runtime.StartError(f"[acs] password_file {s.password_file}: cannot read a password from it ({e})") \
            from None


def tls_context(s: AcsSettings) -> ssl.SSLContext | None:
    if not s.tls_port:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(s.tls_cert_file, s.tls_key_file)
    except (OSError, ssl.SSLError) as e:
        raise runtime.StartError(f"[acs] tls_cert_file/tls_key_file: cannot load them ({e})") from None
    return context


async def serve(rt: runtime.Runtime, settings: Settings) -> None:
    s = settings.of(AcsSettings)
    logger = log.get("lastmile.acs")
    try:
        keyring = Keyring.load(settings.secrets)
    except SecretError as e:
        raise runtime.StartError(str(e)) from None
    password, context = read_password(s), tls_context(s)
    url = db.url_of(settings.database)
    pool = await db.create_pool(settings.database, url)
    rt.on_drain("database", pool.close, pool.terminate)
    events = EventPublisher(settings.mqtt, f"lastmile-acs-{os.getpid()}")
    events.start()
    rt.on_drain("events", events.close)
    writer = InformWriter(pool, max_batch=s.inform_batch, max_wait=s.inform_wait)
    rt.on_drain("inform-writer", writer.close)
    session_log = SessionLog(pool)
    rt.on_drain("session-log", session_log.close)
    instance = f"{socket.gethostname()}-{os.getpid()}"
    server = Server(pool, s, keyring=keyring, writer=writer, session_log=session_log,
                    cookie_key=hmac_key(keyring, "cookies"), tokens=Tokens(hmac_key(keyring, "files")),
                    password=password, events=events, instance=instance)

    caches = asyncio.Event()  # presets or passwords to reload
    changed: set[str] = set()  # cwmp_ids whose own password changed; "" for all (and the presets)
    wakeups, dry_runs = asyncio.Event(), asyncio.Event()

    def raw_credentials(channel: str, payload: str) -> bool:
        """Take a credentials notification as the text it is (a cwmp_id, which JSON parsing could
        turn into a number) and keep it from the JSON handler."""
        if channel != CREDENTIALS:
            return False
        changed.add(payload)
        caches.set()
        return True

    def notified(channel: str, _payload: Any) -> None:
        if channel == PRESETS:
            changed.add("")
            caches.set()
        elif channel == wakeup.CHANNEL:
            wakeups.set()
        elif channel == DRY_RUNS:
            dry_runs.set()

    def reconnected() -> None:  # notifications may have been missed while away
        changed.add("")
        for event in (caches, wakeups, dry_runs):
            event.set()

    listener = db.Listener(url, [CREDENTIALS, PRESETS, wakeup.CHANNEL, DRY_RUNS], notified,
                           on_reconnect=reconnected, skip=raw_credentials)
    rt.spawn("listen", listener.run())
    await asyncio.wait_for(listener.connected.wait(), settings.database.connect_timeout)
    await server.load()  # after LISTEN: a change committed after this load is notified

    async def refresh_caches() -> None:
        outage = log.Outage(logger, "presets and passwords not refreshed")
        while True:
            await caches.wait()
            caches.clear()
            ids, everything = {i for i in changed if i}, "" in changed
            changed.clear()
            try:
                if everything:
                    await server.load()
                else:
                    await server.reload_credentials(ids)
            except db.DB_ERRORS as e:
                outage.failed(e)
                changed.update(ids | ({""} if everything else set()))
                await asyncio.sleep(1.0)
                caches.set()
            else:
                outage.ok()

    async def run_dry_runs() -> None:
        outage = log.Outage(logger, "dry runs skipped")
        while True:
            dry_runs.clear()
            try:
                while await server.dry_runs():
                    pass
            except db.DB_ERRORS as e:
                outage.failed(e)
            else:
                outage.ok()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(dry_runs.wait(), POLL)

    async def sweep() -> None:
        server.sweep()

    async def live_rows() -> None:
        now = time.time()
        async with pool.acquire() as conn:
            abandoned = await store.purge_live(conn, now)
            ended = await store.expire_transfers(conn, now, s.transfer_timeout, success=s.download_success_on_timeout)
        for state in abandoned:
            server.abandoned(state, now)
        if ended:
            logger.info("transfers without TransferComplete (or M Reboot) ended", count=ended,
                        as_done=s.download_success_on_timeout)

    async def partitions() -> None:  # the access log's days (radiusd and flowcollector run it too)
        async with pool.acquire() as conn:
            await db.maintain_partitions(conn)

    async def tasks_due() -> None:
        async with pool.acquire() as conn:
            metrics.TASKS_QUEUED.set(await store.due_task_count(conn))

    rt.spawn("caches", refresh_caches())
    rt.spawn("connection-requests", wakeup.run(pool, keyring, s, wakeups))
    rt.spawn("dry-runs", run_dry_runs())
    rt.every("sweep", 5.0, sweep)
    rt.every("live-sessions", 60.0, live_rows, first=1.0)
    rt.every("tasks-due", 15.0, tasks_due, first=0.0)
    rt.every("partitions", 3600.0, partitions, first=0.0)
    REGISTRY.register(metrics.Live(lambda: {
        "live": len(server.opened), "batches": writer.batches, "rows": writer.rows,
        "log_written": session_log.written, "log_dropped": session_log.dropped}))

    runner = web.AppRunner(server.app(), handle_signals=False, access_log=None,
                           shutdown_timeout=rt.drain_timeout * http.SHUTDOWN_SHARE)
    await runner.setup()
    try:
        await web.TCPSite(runner, s.bind, s.port, reuse_address=True).start()
        if context is not None:
            await web.TCPSite(runner, s.bind, s.tls_port, reuse_address=True, ssl_context=context).start()
    except BaseException:
        await runner.cleanup()
        raise
    rt.on_drain("cwmp", runner.cleanup)
    logger.info("cwmp listening", http=f"{s.bind}:{s.port}", https=f"{s.bind}:{s.tls_port}" if s.tls_port else None,
                auth=s.auth, url=server.base_url, presets=len(server.presets))
    if s.auth == "none":
        logger.warning("CPE authentication is off ([acs] auth = none): any device may inform and be configured")
    elif not s.username:
        logger.warning("no [acs] username/password: only devices with their own password can inform")
    if not s.public_url and s.bind in ("0.0.0.0", "::"):
        logger.warning("no [acs] public_url: download and upload links point at this machine's loopback address, "
                       "which no CPE reaches", url=server.base_url)


if __name__ == "__main__":
    from daemons import config

    sys.exit(main(config.load()))
