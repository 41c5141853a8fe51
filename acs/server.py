"""The CWMP endpoint: one aiohttp handler that carries sessions, and the application around it.

A CPE posts to any path (it is configured with a URL). A session goes:

1. **Inform**: the address is checked (``allow_networks``), the Inform authenticated (HTTP digest,
   or Basic over HTTPS; :mod:`acs.auth`), its device upserted by the group-commit
   :class:`~acs.writer.InformWriter`, and the session opened (:func:`acs.session.open`).
2. **Fast or slow**. A device whose declared state is current (not stale, presets_key the
   presets' key, due_at not passed), with no task due and events that call for no plan, takes
   the *fast* path: nothing but the Inform's commit touches the database, and the session lives
   in its signed cookie only, so the empty POST that follows is answered 204 from the cookie by
   any instance, and the access log line goes to the batched :class:`~acs.writer.SessionLog`.
   Anything else takes the *slow* path: the device's view is loaded, the session planned
   (:func:`acs.session.plan`), and its state saved in acs_live_sessions at each step; the cookie
   names it and its step. An instance that holds the session at that step in memory uses its
   copy, another loads it from the table (two instances behind a balancer).
3. **Each next request**: :func:`acs.session.receive` answers it; its effects are applied in one
   transaction (``store.apply``) with the saved state *before* the reply goes, so what a CPE was
   told is committed. The empty answer (204) ends the session.

One session per device at a time: a second Inform of a device whose session this instance holds
gets 503 with Retry-After until the old one is ``session_timeout`` old, then takes over (at once
if it carries the old session's cookie: the CPE gave it up); across instances the database's
``claim_device_session`` does the same for sessions with work. Admission control: at most
``max_new_sessions`` Informs in progress; more are answered 503 with a jittered Retry-After
before their body is read, while requests of open sessions are never refused.

Bad input never makes a 500: a body too large is 413, one too slow 408, hostile XML (a document
type) 400 at once, malformed XML 400 (with an ACS Fault when its cwmp:ID could be read), a
request of no live session (a CPE that lost its cookie) Fault 8003, and PostgreSQL away 503.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import random
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
from aiohttp import web

from acs import auth, datamodel, metrics, plan, soap, store
from acs import session as cwmp
from acs.files import FileServer, Tokens
from acs.messages import CWMP_1_0, NAMESPACES, AcsFault, DeviceIdStruct, Envelope, Inform, InformResponse, device_key
from acs.model import (
    Effect,
    FaultRecorded,
    Preset,
    TaskDone,
    TaskFaulted,
    TaskWaiting,
    TransferEnded,
)
from acs.session import Session
from acs.settings import AcsSettings
from acs.tasks import RESPONSES
from acs.writer import InformWriter, SessionLog
from daemons import log
from daemons.db import DB_ERRORS, Connection
from daemons.events import CpeFault, CpeInformed, CpeTaskChanged, Event, EventPublisher
from daemons.secrets import Keyring, SecretError

COOKIE = "lastmile_acs"
CPE_PASSWORD_PURPOSE = "acs-cpe"  # noqa: S105 (a name, not a password)
"""The sealing purpose of acs_devices.cpe_password."""
XML = {"Content-Type": 'text/xml; charset="utf-8"'}
WAN_SUFFIXES = ("ExternalIPAddress", "IPv4Address.1.IPAddress")
_INFORM_FIELDS = {"DeviceInfo.HardwareVersion": "hardware_version", "DeviceInfo.SoftwareVersion": "software_version",
                  "DeviceInfo.ProvisioningCode": "provisioning_code", "ManagementServer.ParameterKey": "parameter_key",
                  "ManagementServer.ConnectionRequestURL": "connection_request_url"}


def inform_row(inform: Inform, namespace: str, cwmp_id: str, address: str | None, now: float) -> store.InformRow:
    """What the Inform says of its device, as the writer records it."""
    found = dict.fromkeys(_INFORM_FIELDS.values(), "")
    wan = pppoe = ""
    for p in inform.parameters:
        name = p.name
        field = _INFORM_FIELDS.get(name[name.find(".") + 1:])
        if field is not None:
            found[field] = p.value
        elif not wan and name.endswith(WAN_SUFFIXES):
            wan = p.value
        elif name.endswith("Username") and store.PPPOE_USERNAME.fullmatch(name):
            pppoe = p.value
    d = inform.device
    events = {e.code for e in inform.events}
    return store.InformRow(
        cwmp_id, d.oui, d.product_class, d.serial_number, d.manufacturer,
        datamodel.data_model_of(p.name for p in inform.parameters), NAMESPACES.get(namespace, "1.0"),
        found["hardware_version"], found["software_version"], found["provisioning_code"], found["parameter_key"],
        found["connection_request_url"], address, wan, pppoe, "0 BOOTSTRAP" in events, "1 BOOT" in events, now)


def task_of(command_key: str) -> int | None:
    """The task a CommandKey names (``task-<id>``, acs/tasks.py); None for a preset's."""
    prefix, _, number = command_key.partition("-")
    return int(number) if prefix == "task" and number.isdigit() and len(number) < 19 else None


def cookie_of(header: str | None) -> str | None:
    """The value of our cookie in a Cookie header (cheaper than parsing every cookie)."""
    if not header:
        return None
    for part in header.split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name == COOKIE:
            return value.strip('"')
    return None


class Credentials:
    """The devices' own passwords (cwmp_id -> sealed, opened on first use), kept by NOTIFY."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self.sealed: dict[str, str] = {}
        self._opened: dict[str, str] = {}
        self.log = log.get("lastmile.acs")

    def replace(self, sealed: dict[str, str]) -> None:
        self.sealed, self._opened = sealed, {}

    def update(self, cwmp_id: str, sealed: str | None) -> None:
        self._opened.pop(cwmp_id, None)
        if sealed is None:
            self.sealed.pop(cwmp_id, None)
        else:
            self.sealed[cwmp_id] = sealed

    def password(self, cwmp_id: str) -> str | None:
        """The device's own password; None when it has none. One that does not open is no
        password at all (the device cannot authenticate), said in the log."""
        plain = self._opened.get(cwmp_id)
        if plain is None and cwmp_id in self.sealed:
            try:
                plain = self._opened[cwmp_id] = self.keyring.open(self.sealed[cwmp_id], CPE_PASSWORD_PURPOSE)
            except SecretError as e:
                self.log.error("a device's password does not open", cwmp_id=cwmp_id, error=str(e))
                plain = self._opened[cwmp_id] = ""
        return plain


class Refusals:
    """Refused requests: counted each, logged at most once per ``every`` seconds per reason (with
    how many were not logged since), so that a flood does not flood the journal."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.log = log.get("lastmile.acs")
        self._last: dict[str, tuple[float, int]] = {}

    def __call__(self, reason: str, **fields: object) -> None:
        metrics.refused.inc(reason)
        now = time.monotonic()
        last, unlogged = self._last.get(reason, (-self.every, 0))
        if now - last < self.every:
            self._last[reason] = (last, unlogged + 1)
            return
        self._last[reason] = (now, 0)
        self.log.warning("request refused", reason=reason, not_logged_since=unlogged, **fields)


@dataclass(slots=True)
class Opened:
    """A session this instance answered the Inform of (one per device at a time)."""

    sid: str
    at: float  # monotonic


class Server:
    """The CWMP handler and the caches it answers from (presets, devices' passwords)."""

    def __init__(self, pool: asyncpg.Pool, settings: AcsSettings, *, keyring: Keyring, writer: InformWriter,
                 session_log: SessionLog, cookie_key: bytes, tokens: Tokens, password: str = "",
                 events: EventPublisher | None = None, instance: str = "") -> None:
        self.pool = pool
        self.settings = settings
        self.keyring = keyring
        self.writer = writer
        self.session_log = session_log
        self.tokens = tokens
        self.events = events
        self.instance = instance
        self.username, self.password = settings.username, password
        self.digest = auth.Digest(cookie_key, settings.realm, settings.nonce_lifetime)
        self.cookies = auth.Cookies(cookie_key)
        self.credentials = Credentials(keyring)
        self.networks = [ipaddress.ip_network(n, strict=False) for n in settings.allow_networks]
        self.base_url = settings.url()
        self.presets: list[Preset] = []
        self.presets_key = plan.presets_key([])
        self.opened: dict[str, Opened] = {}  # cwmp_id ->
        self.live: dict[str, tuple[Session, float]] = {}  # sid -> (slow session, monotonic time of its last step)
        self.informing = 0
        self.refused = Refusals()
        self.log = log.get("lastmile.acs")

    # -- caches --

    def set_presets(self, presets: Sequence[Preset]) -> None:
        self.presets = list(presets)
        self.presets_key = plan.presets_key(self.presets)

    async def load(self) -> None:
        """Load the presets and the devices' own passwords (at start, and after the listener
        reconnected: notifications may have been missed)."""
        async with self.pool.acquire() as conn:
            self.set_presets(await store.presets(conn))
            self.credentials.replace(await store.cpe_passwords(conn))

    async def reload_credentials(self, cwmp_ids: Iterable[str]) -> None:
        async with self.pool.acquire() as conn:
            for cwmp_id in cwmp_ids:
                self.credentials.update(cwmp_id, (await store.cpe_passwords(conn, cwmp_id)).get(cwmp_id))

    def sweep(self) -> None:
        """Forget sessions whose CPE went quiet for ``session_timeout``."""
        limit = time.monotonic() - self.settings.session_timeout
        for cwmp_id in [k for k, o in self.opened.items() if o.at < limit]:
            del self.opened[cwmp_id]
        for sid in [k for k, (_, at) in self.live.items() if at < limit]:
            del self.live[sid]

    async def dry_runs(self, limit: int = 20) -> int:
        """Compute pending dry runs (acs_dry_runs: a draft preset against one device, from the
        admin's editor) in one transaction; returns how many were taken."""
        now = time.time()
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await store.claim_dry_runs(conn, limit)
            for run_id, device_id, draft in rows:
                status, result = await self._dry_run(conn, device_id, draft, now)
                await store.finish_dry_run(conn, run_id, status, result)
        return len(rows)

    async def _dry_run(self, conn: Connection, device_id: int, draft: dict[str, Any],
                       now: float) -> tuple[Literal["done", "failed"], dict[str, Any]]:
        match, actions = draft.get("match", {}), draft.get("actions", [])
        problems = plan.check_preset(match, actions)
        if problems:
            return "failed", {"errors": problems}
        device = await store.load_device(conn, device_id)
        if device is None:
            return "failed", {"errors": ["no such device"]}
        preset = Preset(0, str(draft.get("name") or "draft"), 0, match, actions)
        events = tuple(match.get("events", ()))  # as if the device informed with the events it matches on
        view = await store.load_view(conn, device, events, now, file_url=self.file_url, presets=[preset],
                                     upload_url=self.tokens.upload_url(self.base_url, device.id, now))
        try:
            return "done", plan.dry_run_json(view, [preset])
        except Exception as e:  # one draft the planner chokes on must not stop the others
            self.log.exception("dry run failed", device_id=device_id)
            return "failed", {"errors": [f"{type(e).__name__}: {e}"]}

    def file_url(self, file_id: int, name: str) -> str:
        return self.tokens.file_url(self.base_url, file_id, name, time.time() + self.settings.file_link_lifetime)

    # -- the application --

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.client_max_size)
        FileServer(self.pool, self.tokens, max_upload=self.settings.max_upload).add_routes(app)
        app.router.add_route("POST", "/{path:.*}", self.handle)  # after /uploads/: any other path is CWMP
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        address = request.remote or ""
        if self.networks and not self._allowed(address):
            self.refused("address", address=address)
            return web.Response(status=403)
        now = time.time()
        raw = cookie_of(request.headers.get("Cookie"))
        cookie = self.cookies.decode(raw, now) if raw else None
        if cookie is not None and cookie.address != address:
            cookie = None
        if cookie is None and self.informing >= self.settings.max_new_sessions:
            return self._busy("admission")
        try:
            if request.content.is_eof():  # the whole body came with the headers: no timer to arm
                data = await request.read()
            else:
                async with asyncio.timeout(self.settings.read_timeout):
                    data = await request.read()
        except TimeoutError:
            self.refused("slow_body", address=address)
            return web.Response(status=408, headers={"Connection": "close"})
        except web.HTTPRequestEntityTooLarge:
            self.refused("too_large", address=address, max_size=self.settings.client_max_size)
            raise
        namespace = cookie.namespace if cookie is not None else CWMP_1_0
        try:
            envelope = soap.parse(data)
        except soap.SoapError as e:
            return self._bad_body(e, address, namespace)
        body = envelope.body
        try:
            if isinstance(body, Inform):
                if cookie is not None and self.informing >= self.settings.max_new_sessions:
                    return self._busy("admission")
                self.informing += 1
                try:
                    return await self._inform(request, envelope, body, address, cookie, now)
                finally:
                    self.informing -= 1
            if cookie is None:
                return self._no_session(envelope, address, namespace)
            if body is not None:
                metrics.rpcs.inc(soap.method(body))
            if cookie.slow:
                return await self._slow_next(envelope, cookie, now)
            session = Session(cookie.sid, cookie.device_id, cookie.cwmp_id, cookie.namespace, cookie.started_at,
                              cookie.events, rpcs=list(cookie.rpcs), faults=list(cookie.faults), step=cookie.step)
            return await self._next(session, envelope, cookie, now, slow=False)
        except DB_ERRORS as e:
            self.refused("database", error=str(e) or type(e).__name__)
            return self._retry_later(503)

    def _allowed(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in n for n in self.networks)

    def _retry_later(self, status: int) -> web.Response:
        wait = self.settings.retry_after * (1 + random.random() / 2)
        return web.Response(status=status, headers={"Retry-After": str(round(wait))})

    def _busy(self, reason: str) -> web.Response:
        metrics.busy.inc(reason)
        return self._retry_later(503)

    def _bad_body(self, e: soap.SoapError, address: str, namespace: str) -> web.Response:
        if e.refused:
            self.refused("hostile", address=address, error=str(e))
            return web.Response(status=400, text="refused\n", headers={"Connection": "close"})
        self.refused("malformed", address=address, error=str(e))
        if e.cwmp_id is None:
            return web.Response(status=400, text=f"not a CWMP envelope: {e}\n")
        metrics.faults.inc(str(e.fault_code))
        fault = Envelope(AcsFault(e.fault_code, str(e)[:200]), e.cwmp_id, namespace)
        return web.Response(status=400, body=soap.render(fault), headers=XML)

    def _no_session(self, envelope: Envelope, address: str, namespace: str) -> web.Response:
        """A request that belongs to no live session: nothing to end for an empty POST, Fault
        8003 for anything else (the CPE lost its cookie, or the session timed out)."""
        if envelope.body is None:
            return web.Response(status=204)
        self.refused("no_session", address=address, method=soap.method(envelope.body))
        metrics.faults.inc("8003")
        fault = AcsFault(8003, "no session: the request carries no valid session cookie (Inform first)")
        return self._reply(Envelope(fault, envelope.cwmp_id, envelope.namespace or namespace), None)

    def _reply(self, envelope: Envelope, cookie: auth.SessionCookie | None) -> web.Response:
        headers = dict(XML)
        if cookie is not None:
            headers["Set-Cookie"] = f"{COOKIE}={self.cookies.encode(cookie)}; Path=/; HttpOnly"
        return web.Response(body=soap.render(envelope), headers=headers)

    # -- authentication --

    def _authenticate(self, request: web.Request, device: DeviceIdStruct, cwmp_id: str, address: str,
                      now: float) -> web.Response | None:
        """None if the Inform of ``cwmp_id`` may go on, else the 401 to send."""
        if self.settings.auth == "none":
            return None
        own = self.credentials.password(cwmp_id)
        shared_user = self.username.format(cwmp_id=cwmp_id, serial=device.serial_number, oui=device.oui,
                                           product_class=device.product_class) if "{" in self.username \
            else self.username

        def password(user: str) -> str | None:
            if own is not None:  # a device with its own password: that one, under its own name only
                return own if own and user == cwmp_id else None
            return self.password if shared_user and user == shared_user else None

        header = request.headers.get("Authorization")
        stale = False
        if header:
            scheme, params = auth.parse_authorization(header)
            if scheme == "digest":
                verdict = self.digest.verify(params, request.method, request.path_qs, password, address, now)
                if verdict.result == "ok":
                    return None
                stale = verdict.result == "stale"
                if not stale:
                    self.refused("credentials", address=address, cwmp_id=cwmp_id, username=verdict.username,
                                 why=verdict.reason)
            elif scheme == "basic":
                given = auth.parse_basic(params[""])
                if not request.secure:
                    self.refused("basic_without_tls", address=address, cwmp_id=cwmp_id)
                else:
                    want = password(given[0]) if given is not None else None
                    if given is not None and want is not None and hmac.compare_digest(want.encode(),
                                                                                      given[1].encode()):
                        return None
                    self.refused("credentials", address=address, cwmp_id=cwmp_id,
                                 username=given[0] if given else None, why="wrong Basic credentials")
        metrics.challenges.inc("stale" if stale else "new")
        response = web.Response(status=401)
        response.headers.add("WWW-Authenticate", self.digest.challenge(now, address, stale=stale))
        if request.secure:
            response.headers.add("WWW-Authenticate", f'Basic realm="{self.digest.realm}"')
        return response

    # -- the Inform --

    async def _inform(self, request: web.Request, envelope: Envelope, inform: Inform, address: str,
                      cookie: auth.SessionCookie | None, now: float) -> web.Response:
        metrics.rpcs.inc("Inform")
        cwmp_id = device_key(inform.device)
        refused = self._authenticate(request, inform.device, cwmp_id, address, now)
        if refused is not None:
            return refused
        moment = time.monotonic()
        previous = self.opened.get(cwmp_id)
        given_up = previous is not None and cookie is not None and cookie.sid == previous.sid
        if previous is not None and not given_up and moment - previous.at < self.settings.session_timeout:
            return self._busy("device")
        if previous is not None:
            self.live.pop(previous.sid, None)
        sid = str(uuid.uuid4())
        self.opened[cwmp_id] = opened = Opened(sid, moment)
        try:
            response = await self._open(envelope, inform, cwmp_id, sid, address, now,
                                        previous.sid if given_up and previous is not None else None)
        except BaseException:
            self._release(cwmp_id, sid)
            raise
        if response.status != 200:
            self._release(cwmp_id, sid)
        else:
            opened.at = time.monotonic()
        return response

    async def _open(self, envelope: Envelope, inform: Inform, cwmp_id: str, sid: str, address: str, now: float,
                    given_up: str | None) -> web.Response:
        namespace = envelope.namespace
        result = await self.writer.inform(inform_row(inform, namespace, cwmp_id, address or None, now))
        device = result.device
        session, effects = cwmp.open(inform, session_id=sid, device_id=device.id, cwmp_id=cwmp_id,
                                     namespace=namespace, now=now)
        metrics.session_opened(session.events)
        fast = (not device.stale and device.presets_key == self.presets_key and not result.tasks_due
                and (device.due_at is None or device.due_at > now) and not cwmp.needs_plan(session.events,
                                                                                            self.presets))
        slow = False
        if fast:
            if effects:
                async with self.pool.acquire() as conn, conn.transaction():
                    await store.apply(conn, device.id, effects, keyring=self.keyring, now=now)
        else:
            async with self.pool.acquire() as conn, conn.transaction():
                if given_up is not None:
                    await store.drop_live(conn, given_up)
                if not await store.claim_device_session(conn, device.id, sid, now):
                    return self._busy("device")
                if effects:
                    await store.apply(conn, device.id, effects, keyring=self.keyring, now=now)
                view = await store.load_view(
                    conn, device, session.events, now, file_url=self.file_url, presets=self.presets,
                    upload_url=self.tokens.upload_url(self.base_url, device.id, now + self.settings.file_link_lifetime))
                planned = cwmp.plan(session, view, self.presets)
                if planned:
                    await store.apply(conn, device.id, planned, keyring=self.keyring, now=now)
                    effects = [*effects, *planned]
                if session.queue:
                    await store.save_live(conn, sid, device.id, session.step, session.to_json(),
                                          now + self.settings.session_timeout)
            slow = bool(session.queue)  # nothing planned: the rest of the session is its cookie's
            if slow:
                self.live[sid] = (session, time.monotonic())
        metrics.informs.inc("fast" if fast else "slow")
        self._publish(CpeInformed(cwmp_id, device.id, session.events, address, device.software_version))
        self._effects(cwmp_id, effects)
        cookie = self._cookie(session, address, now, slow=slow)
        return self._reply(Envelope(InformResponse(1), envelope.cwmp_id, namespace), cookie)

    def _cookie(self, session: Session, address: str, now: float, *, slow: bool) -> auth.SessionCookie:
        log_so_far: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()) if slow else (tuple(session.rpcs),
                                                                                     tuple(session.faults))
        return auth.SessionCookie(session.id, session.device_id, session.cwmp_id, address, session.started_at,
                                  session.events, session.namespace, session.step, slow,
                                  now + self.settings.session_timeout, *log_so_far)

    def _release(self, cwmp_id: str, sid: str) -> None:
        opened = self.opened.get(cwmp_id)
        if opened is not None and opened.sid == sid:
            del self.opened[cwmp_id]

    # -- the requests after it --

    async def _slow_next(self, envelope: Envelope, cookie: auth.SessionCookie, now: float) -> web.Response:
        held = self.live.get(cookie.sid)
        session = held[0] if held is not None else None
        if session is None or session.step != cookie.step:
            async with self.pool.acquire() as conn:
                saved = await store.load_live(conn, cookie.sid, now)
            if saved is None or saved[0] != cookie.step or saved[1] != cookie.device_id:
                self.live.pop(cookie.sid, None)
                return self._no_session(envelope, cookie.address, cookie.namespace)
            session = Session.from_json(saved[2])
        return await self._next(session, envelope, cookie, now, slow=True)

    async def _next(self, session: Session, envelope: Envelope, cookie: auth.SessionCookie, now: float, *,
                    slow: bool) -> web.Response:
        outcome = cwmp.receive(session, envelope.body, now)
        reply = outcome.reply
        if outcome.effects:
            async with self.pool.acquire() as conn, conn.transaction():
                await store.apply(conn, session.device_id, outcome.effects, keyring=self.keyring, now=now)
                if slow:
                    await self._save_step(conn, session, reply is None, now)
        elif slow:  # one statement: its own transaction, without the BEGIN and COMMIT round trips
            async with self.pool.acquire() as conn:
                await self._save_step(conn, session, reply is None, now)
        self._effects(session.cwmp_id, outcome.effects)
        if reply is None:
            self._end(session, cookie.address, now)
            return web.Response(status=204, headers={"Set-Cookie": f"{COOKIE}=; Max-Age=0; Path=/"})
        if slow:
            self.live[session.id] = (session, time.monotonic())
        opened = self.opened.get(session.cwmp_id)
        if opened is not None and opened.sid == session.id:
            opened.at = time.monotonic()
        if type(reply) in RESPONSES:  # a request of the ACS: an id of its own
            metrics.rpcs.inc(soap.method(reply))
            cwmp_id: str | None = f"{session.id[:8]}.{session.step}"
        else:  # an answer to the CPE's request
            if isinstance(reply, AcsFault):
                metrics.faults.inc(str(reply.code))
            cwmp_id = envelope.cwmp_id
        return self._reply(Envelope(reply, cwmp_id, session.namespace), self._cookie(session, cookie.address, now,
                                                                                      slow=slow))

    async def _save_step(self, conn: Connection, session: Session, ended: bool, now: float) -> None:
        """The slow session's state after this step (gone once it ended), for the next request."""
        if ended:
            await store.drop_live(conn, session.id)
        else:
            await store.save_live(conn, session.id, session.device_id, session.step, session.to_json(),
                                  now + self.settings.session_timeout)

    def abandoned(self, state: dict[str, Any], now: float) -> None:
        """A slow session whose CPE went quiet in the middle (its live row expired, whichever
        instance held it): its line of the access log, as a timeout."""
        try:
            session = Session.from_json(state)
        except (KeyError, TypeError, ValueError) as e:  # a row of another version's shape
            self.log.warning("an expired live session could not be read", error=str(e))
            return
        self.live.pop(session.id, None)
        self._release(session.cwmp_id, session.id)
        self.session_log.add(store.SessionLine(
            session.started_at, session.device_id, None, session.events, tuple(session.rpcs), tuple(session.faults),
            max(0, round((now - session.started_at) * 1000)), "timeout", self.instance))

    def _end(self, session: Session, address: str, now: float) -> None:
        self.live.pop(session.id, None)
        self._release(session.cwmp_id, session.id)
        metrics.SESSION_SECONDS.observe(max(0.0, now - session.started_at))
        self.session_log.add(store.SessionLine(
            session.started_at, session.device_id, address or None, session.events, tuple(session.rpcs),
            tuple(session.faults), max(0, round((now - session.started_at) * 1000)),
            "fault" if session.faults else "ok", self.instance))

    def _effects(self, cwmp_id: str, effects: Sequence[Effect]) -> None:
        """Count the faults among ``effects``, and publish them and the tasks' progress."""
        for e in effects:
            if isinstance(e, FaultRecorded):
                metrics.faults.inc("session" if e.code is None else str(e.code))
                self._publish(CpeFault(cwmp_id, e.code, e.message, e.task_id))
            elif isinstance(e, TaskFaulted):
                metrics.faults.inc(str(e.code))
                self._publish(CpeFault(cwmp_id, e.code, e.string, e.task_id))
                self._publish(CpeTaskChanged(e.task_id, cwmp_id, "faulted", ""))
            elif isinstance(e, TaskDone):
                self._publish(CpeTaskChanged(e.task_id, cwmp_id, "done", ""))
            elif isinstance(e, TaskWaiting):
                self._publish(CpeTaskChanged(e.task_id, cwmp_id, "waiting", e.command_key))
            elif isinstance(e, TransferEnded):
                if e.fault_code:
                    metrics.faults.inc(str(e.fault_code))
                self._publish(CpeTaskChanged(task_of(e.command_key), cwmp_id, "fault" if e.fault_code else "done",
                                             e.command_key))

    def _publish(self, event: Event) -> None:
        if self.events is not None:
            self.events.publish(event)
