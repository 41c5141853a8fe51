"""`lastmile up`: everything on one machine, for trying lastmile and for development.

Starts the embedded PostgreSQL (unless ``[database] url`` is set) and applies the schema,
loads demo data on the first start, starts the embedded MQTT broker (unless ``[mqtt] url``
is set), then runs every daemon that exists as its own child process, exactly as systemd
would run it (``lastmile <daemon>``), with each line of its output prefixed by its name. It
prints the addresses once everything is up. Ctrl-C (or SIGTERM) stops the daemons (they
drain), then the broker, then PostgreSQL (unless it was running before, e.g. from
`lastmile db start`); anything still running after the grace is killed. ``./var`` keeps the
database between runs.

Like systemd's ``Restart=on-failure``, a child that exits with an error (a non-zero code or a
signal) is started again, after 1 s, then 2, 4, ... up to 30 s while it keeps failing soon
after its start; a child that stayed up for a minute starts the count afresh. After 5 failures
in a row, each within a minute of its start, it is left stopped (the others keep running).
Each restart, each return to ready and each giving-up is a line of output.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from daemons import config, db, demo, mqtt, registry, secrets
from daemons.pgembed import EmbeddedPostgres

PR_SET_PDEATHSIG = 1
CHILD_GRACE = 7.0  # seconds the daemons get to drain; PostgreSQL's fast stop takes the rest of 10
COLOURS = ("36", "33", "35", "32", "34", "31", "96")


@dataclass
class Backoff:
    """When to restart a child that failed: systemd's ``Restart=on-failure`` with a growing delay.

    Pure (the caller says how long the child ran), so its arithmetic is tested without processes."""

    first: float = 1.0  # seconds before the first restart
    maximum: float = 30.0  # the delay doubles up to this
    stable: float = 60.0  # a child that ran this long failed "afresh": the delay starts again at `first`
    limit: int = 5  # failures in a row, each within `stable` of its start, before giving up
    failures: int = 0  # rapid failures in a row so far

    def failed(self, ran_for: float) -> float | None:
        """The child failed after ``ran_for`` seconds: seconds to wait before restarting it, or
        None to give up."""
        if ran_for >= self.stable:
            self.failures = 0
        self.failures += 1
        if self.failures >= self.limit and ran_for < self.stable:
            return None
        return float(min(self.first * 2 ** (self.failures - 1), self.maximum))


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: asyncio.subprocess.Process | None = None
    pump: asyncio.Task[None] | None = None
    colour: str = "0"
    expected_exit: bool = field(default=False)
    started: float = 0.0  # time.monotonic() of the last start
    backoff: Backoff = field(default_factory=Backoff)
    cwd: str | None = None


def run(settings: config.Settings, demo: bool, customers: int) -> int:
    return asyncio.run(_up(settings, demo, customers))


async def _up(settings: config.Settings, load_demo: bool, customers: int) -> int:
    started = time.monotonic()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    pg = None
    if settings.database.url:
        url = settings.database.url
    else:
        server = EmbeddedPostgres(settings.database.embedded_dir, settings.database.embedded_port)
        if await asyncio.to_thread(server.is_running):
            _say(f"PostgreSQL in {server.datadir} is running already: using it (and leaving it running)")
        else:
            pg = server  # ours to stop at the end
            _say(f"starting PostgreSQL in {server.datadir} ...")
        url = await asyncio.to_thread(server.start)
    children: list[Child] = []
    try:
        keyring = _keyring(settings)
        await _prepare_database(url, load_demo, customers, settings.database.lock_timeout, keyring)
        env = dict(os.environ, LASTMILE_DATABASE__URL=url, PYTHONUNBUFFERED="1")
        env.setdefault("LASTMILE_LOG__FORMAT", "console")
        mqtt_url = settings.mqtt.url
        if not mqtt_url:
            port = settings.mqtt.embedded_port
            mqtt_url = f"mqtt://127.0.0.1:{port}"
            children.append(
                Child("mqtt", [sys.executable, "-m", "daemons.cli", "broker", "--port", str(port)])
            )
        env["LASTMILE_MQTT__URL"] = mqtt_url
        router = demo_router(settings) if load_demo else None
        if router is not None:
            children.append(router)
            await _point_demo_router(url, settings)
        components = _startable(settings)
        extra = await _demo_rows(settings, url, components) if load_demo else []
        daemons = [c.name for c in components]
        children += [Child(name, [sys.executable, "-m", "daemons.cli", name]) for name in daemons]
        for i, child in enumerate(children):
            child.colour = COLOURS[i % len(COLOURS)]
            await _start(child, env)
        if children and children[0].name == "mqtt":
            await _wait_broker(settings.mqtt.embedded_port, 10)
        await _wait_ready(settings, [c for c in children if c.name in daemons])
        _print_addresses(settings, url, mqtt_url, components, time.monotonic() - started, router is not None, extra)
        supervisors = [asyncio.ensure_future(supervise(child, env, stop, settings)) for child in children]
        await stop.wait()
        _say("stopping ...")
        await asyncio.gather(*supervisors)  # each returns at once when `stop` is set
    finally:
        await _stop_children(children)
        if pg is not None:
            await asyncio.to_thread(pg.stop)
    _say("stopped")
    return 0


def _keyring(settings: config.Settings) -> secrets.Keyring:
    path = secrets.key_path(settings.secrets)
    if not path.exists():
        _say(f"creating the secret key {path}")
    return secrets.Keyring.load(settings.secrets, create=True)


async def _prepare_database(url: str, load_demo: bool, customers: int, lock_timeout: float,
                            keyring: secrets.Keyring) -> None:
    conn = await db.connect(url)
    try:
        change = await db.apply_schema(conn, lock_timeout=lock_timeout)
        if change.action != "current":
            _say(f"database: {change}")
        await db.maintain_partitions(conn)
        if load_demo and not await demo.has_customers(conn):
            t = time.monotonic()
            await demo.load(conn, customers, keyring=keyring)
            _say(f"loaded demo data: {customers} customers in {time.monotonic() - t:.1f} s")
    finally:
        await conn.close()


async def supervise(child: Child, env: dict[str, str], stop: asyncio.Event, settings: config.Settings) -> None:
    """Restart ``child`` whenever it fails (see the module docstring), until ``stop`` is set."""
    while True:
        assert child.proc is not None
        exited = asyncio.ensure_future(child.proc.wait())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        stopping.cancel()
        if stop.is_set() or child.expected_exit:
            return
        code = child.proc.returncode
        ran = time.monotonic() - child.started
        how = _exit_status(code)
        if code == 0:
            _say(f"{child.name} exited with code 0 after {ran:.1f} s: not restarted (the others keep running)")
            return
        delay = child.backoff.failed(ran)
        if delay is None:
            _say(
                f"{child.name} exited with {how} after {ran:.1f} s: it failed {child.backoff.failures} times in "
                f"a row, each within {child.backoff.stable:g} s of its start; not restarting it (the others "
                "keep running)"
            )
            return
        _say(f"{child.name} exited with {how} after {ran:.1f} s; restarting it in {delay:g} s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        if stop.is_set():
            return
        if child.pump:
            with contextlib.suppress(asyncio.CancelledError):
                await child.pump  # the rest of the old process's output first
        try:
            await _start(child, env)
        except OSError as e:
            _say(f"{child.name} could not be started again: {e}")
            return
        back = asyncio.ensure_future(_wait_back(settings, child))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({back, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not back.done():
            back.cancel()
            return
        if back.result():
            _say(f"{child.name} is back (pid {child.proc.pid}, ready in {time.monotonic() - child.started:.1f} s)")


def _exit_status(code: int | None) -> str:
    """``code 3`` or ``signal SIGKILL`` (asyncio gives a death by signal N as -N)."""
    if code is None or code >= 0:
        return f"code {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"


async def _wait_back(settings: config.Settings, child: Child) -> bool:
    """Wait until a restarted child serves again; False if it exited first."""
    assert child.proc is not None
    if child.name == "mqtt":
        try:
            await _wait_broker(settings.mqtt.embedded_port, 30, child.proc)
        except RuntimeError:
            return False
    elif child.name in registry.components():
        await _wait_ready(settings, [child])
    return child.proc.returncode is None


async def _start(child: Child, env: dict[str, str]) -> None:
    child.started = time.monotonic()
    child.proc = await asyncio.create_subprocess_exec(
        *child.argv,
        env=env,
        cwd=child.cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    child.pump = asyncio.ensure_future(_pump(child))


def _die_with_parent() -> None:
    """In the child: SIGTERM when `lastmile up` dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG),
    so no daemon outlives the supervisor that started it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


async def _pump(child: Child) -> None:
    """Copy a child's output to ours, each line prefixed with its name."""
    assert child.proc is not None and child.proc.stdout is not None
    prefix = (
        f"\x1b[{child.colour}m{child.name:>13} |\x1b[0m " if sys.stdout.isatty() else f"{child.name:>13} | "
    )
    async for line in child.proc.stdout:
        sys.stdout.write(prefix + line.decode(errors="replace"))
        sys.stdout.flush()


async def _stop_children(children: list[Child]) -> None:
    """SIGTERM the daemons first, the broker last; SIGKILL whatever outlives the grace."""
    deadline = time.monotonic() + CHILD_GRACE
    for group in ([c for c in children if c.name != "mqtt"], [c for c in children if c.name == "mqtt"]):
        for child in group:
            if child.proc and child.proc.returncode is None:
                child.expected_exit = True
                child.proc.send_signal(signal.SIGTERM)
        for child in group:
            if not child.proc:
                continue
            try:
                await asyncio.wait_for(child.proc.wait(), max(deadline - time.monotonic(), 0.1))
            except TimeoutError:
                _say(f"{child.name} did not stop in time: killed")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
                await child.proc.wait()
            if child.pump:
                with contextlib.suppress(asyncio.CancelledError):
                    await child.pump


async def _wait_broker(port: int, timeout: float, proc: asyncio.subprocess.Process | None = None) -> None:
    """Return once the embedded broker accepts an MQTT connection (while ``proc`` runs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (proc is None or proc.returncode is None):
        if await _broker_accepts(port):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the embedded MQTT broker did not come up on port {port}")


async def _broker_accepts(port: int) -> bool:
    """One CONNECT to 127.0.0.1:``port``: True when a CONNACK accepts it."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(mqtt.encode_connect("lastmile-up", keepalive=10))
        packets = mqtt.Reader().feed(await asyncio.wait_for(reader.read(64), 2))
        accepted = bool(packets) and packets[0][0] == mqtt.PacketType.CONNACK and \
            mqtt.connack_error(packets[0][2]) is None
        writer.write(mqtt.DISCONNECT)
        return accepted
    except (OSError, TimeoutError, mqtt.ProtocolError):
        return False
    finally:
        writer.close()


def _startable(settings: config.Settings) -> list[registry.Component]:
    """The installed components `up` runs: those with a daemon, whose settings are usable (a bad
    section is said here and leaves the others running, as it does under systemd)."""
    found = []
    for component in registry.components().values():
        if component.main is None or not component.up:
            continue
        try:
            if component.settings is not None:
                settings.section(component.name)
        except config.SettingsError as e:
            _say(f"{component.name} not started: bad settings: {e}")
            continue
        found.append(component)
    return found


async def _wait_ready(settings: config.Settings, children: list[Child], timeout: float = 60) -> None:
    """Return when every daemon reports ``lastmile_ready 1`` where its component says (or has exited)."""
    deadline = time.monotonic() + timeout
    components = registry.components()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        for child in children:
            url = components[child.name].readiness_url(settings)
            if url is None:
                continue
            while time.monotonic() < deadline and child.proc and child.proc.returncode is None:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(url) as response:
                        if f'lastmile_ready{{daemon="{child.name}"}} 1.0' in await response.text():
                            break
                await asyncio.sleep(0.1)


DEMO_ROUTER_PORT = 18728
"""Where `up` runs the demo router (plus ``port_offset``): the RouterOS API double of tests/fakes."""


def _demo_router_port(settings: config.Settings) -> int:
    return DEMO_ROUTER_PORT + settings.port_offset


def demo_router(settings: config.Settings) -> Child | None:
    """The demo router: tests/fakes/routeros.py, a RouterOS API double, when this is a source
    checkout (an installed lastmile has no tests, and no demo router to provision)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "tests" / "fakes" / "routeros.py").exists():
        return None
    port = str(_demo_router_port(settings))
    return Child("demo-router", [sys.executable, "-m", "tests.fakes.routeros", "--port", port, "--user", "admin",
                                 "--password", demo.ROUTER_PASSWORD], cwd=str(root))


async def _point_demo_router(url: str, settings: config.Settings) -> None:
    conn = await db.connect(url)
    try:
        await demo.point_router(conn, _demo_router_port(settings))
    finally:
        await conn.close()


async def _demo_rows(settings: config.Settings, url: str,
                     components: list[registry.Component]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for component in components:
        if component.demo is not None:
            rows += await asyncio.to_thread(registry.load(component.demo), settings, url)
    return rows


def _print_addresses(
    settings: config.Settings, db_url: str, mqtt_url: str, components: list[registry.Component], took: float,
    demo_router: bool = False, extra: list[tuple[str, str]] | None = None,
) -> None:
    rows = [("PostgreSQL", db_url), ("MQTT events", f"{mqtt_url}  (topics lastmile/#)")]
    if demo_router:
        rows.append(("demo router", f"RouterOS API 127.0.0.1:{_demo_router_port(settings)} (a double: "
                     f"tests/fakes/routeros.py), user admin, password '{demo.ROUTER_PASSWORD}'"))
    for component in components:
        rows += component.addresses(settings) if component.addresses is not None else []
        rows.append((f"{component.name} metrics", component.metrics_url(settings) or "(off)"))
    rows += extra or []
    width = max(len(label) for label, _ in rows)
    lines = [f"lastmile is up ({took:.1f} s); Ctrl-C stops everything", ""]
    lines += [f"  {label:<{width}}  {value}" for label, value in rows]
    print("\n".join(lines) + "\n", flush=True)


def _say(text: str) -> None:
    print(f"lastmile up: {text}", flush=True)
