"""The ``lastmile`` command.

It dispatches to each component's entry point (``<component>/__main__.py``'s ``main``) and
runs the shared commands (``up``, ``db init``, ``demo``, ``config``). It is the one module of
``daemons/`` that names the components, and it only dispatches to them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import sys
import time
from collections.abc import Callable
from typing import Any

from daemons import config

# name -> (entry module, issue that builds it)
DAEMONS: dict[str, tuple[str, str]] = {
    "radiusd": ("radiusd.__main__", "#3"),
    "flowcollector": ("flowcollector.__main__", "#4"),
    "acs": ("acs.__main__", "the ACS issue"),
    "provisiond": ("daemons.provisiond.__main__", "the provisioning issue"),
    "admin": ("admin.__main__", "the admin issue"),
}


def built(name: str) -> bool:
    """Whether the daemon exists in this installation."""
    module = DAEMONS[name][0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        settings = config.load()
    except config.SettingsError as e:
        print(f"lastmile: bad settings: {e}", file=sys.stderr)
        return 2
    try:
        code: int = args.run(settings, args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # one line for what a user can fix: the database is away or off-version
        import asyncpg

        from daemons import db, pgembed

        if isinstance(e, OSError | db.SchemaError | asyncpg.PostgresError | pgembed.EmbeddedError):
            print(f"lastmile: {_describe(e, settings)}", file=sys.stderr)
            return 1
        raise
    return code


def _describe(error: Exception, settings: config.Settings) -> str:
    from daemons import db

    if isinstance(error, OSError) and not isinstance(error, FileNotFoundError):
        where = config.redact_url(db.url_of(settings.database))
        return f"cannot reach the database at {where}: {error.strerror or error}"
    return str(error)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lastmile", description="lastmile: ISP operations platform")
    sub = p.add_subparsers(metavar="command")

    up = sub.add_parser("up", help="run everything here: database, broker, every daemon")
    up.add_argument("--no-demo", action="store_true", help="do not load demo data on first start")
    up.add_argument("--customers", type=int, default=1000, help="demo customers on first start")
    up.set_defaults(run=_up)

    db = sub.add_parser("db", help="database commands").add_subparsers(metavar="action")
    init = db.add_parser("init", help="apply schema.sql (idempotent) and create partitions")
    init.set_defaults(run=_db_init)
    start = db.add_parser("start", help="start the embedded PostgreSQL and leave it running")
    start.set_defaults(run=_db_start)
    stop = db.add_parser("stop", help="stop the embedded PostgreSQL")
    stop.set_defaults(run=_db_stop)

    demo = sub.add_parser("demo", help="load demo customers, tariffs, a NAS and a router")
    demo.add_argument("--customers", type=int, default=1000)
    demo.add_argument("--seed", type=int, default=None, help="random seed, for repeatable data")
    demo.set_defaults(run=_demo)

    cfg = sub.add_parser("config", help="print the settings in force")
    cfg.add_argument("--markdown", action="store_true", help="print the settings reference instead")
    cfg.set_defaults(run=_config)

    broker = sub.add_parser("broker", help="run the embedded MQTT broker (what `up` starts)")
    broker.add_argument("--port", type=int, default=None)
    broker.set_defaults(run=_broker)

    for name, (_, issue) in DAEMONS.items():
        d = sub.add_parser(name, help=f"run {name} (what its systemd unit runs)")
        d.set_defaults(run=_daemon(name, issue))
    radius = sub.add_parser("radius", help="RADIUS tools: test a login, disconnect a subscriber")
    radius.add_argument("args", nargs=argparse.REMAINDER, help="`test LOGIN PASSWORD` or `disconnect LOGIN`")
    radius.set_defaults(run=_tool("radiusd.tool", "#3"))
    flows = sub.add_parser("flows", help="flow tools: who passes traffic nobody pays for")
    flows.add_argument("args", nargs=argparse.REMAINDER, help="`leaks [--since DURATION] [--limit N]`")
    flows.set_defaults(run=_tool("flowcollector.tool", "#4"))
    admin = sub.add_parser("create-admin", help="create the first administrator")
    admin.set_defaults(run=_not_built("create-admin", "the admin issue"))
    return p


def _daemon(name: str, issue: str) -> Callable[[config.Settings, argparse.Namespace], int]:
    def run(settings: config.Settings, _: argparse.Namespace) -> int:
        if not built(name):
            return _not_built(name, issue)(settings, _)
        entry: Any = importlib.import_module(DAEMONS[name][0])
        result: int = entry.main(settings)
        return result

    return run


def _tool(module: str, issue: str) -> Callable[[config.Settings, argparse.Namespace], int]:
    """A component's command-line tool: ``module.main(settings, argv) -> int``."""

    def run(settings: config.Settings, args: argparse.Namespace) -> int:
        if importlib.util.find_spec(module) is None:
            return _not_built(module.split(".", maxsplit=1)[0], issue)(settings, args)
        entry: Any = importlib.import_module(module)
        result: int = entry.main(settings, args.args)
        return result

    return run


def _not_built(name: str, issue: str) -> Callable[[config.Settings, argparse.Namespace], int]:
    def run(_: config.Settings, __: argparse.Namespace) -> int:
        print(f"lastmile {name}: not built yet (comes with {issue})", file=sys.stderr)
        return 2

    return run


def _up(settings: config.Settings, args: argparse.Namespace) -> int:
    from daemons import up

    return up.run(settings, demo=not args.no_demo, customers=args.customers)


def _db_init(settings: config.Settings, _: argparse.Namespace) -> int:
    from daemons import db

    async def init() -> db.SchemaChange:
        conn = await db.connect(db.url_of(settings.database), settings.database.connect_timeout)
        try:
            change = await db.apply_schema(conn, lock_timeout=settings.database.lock_timeout)
            await db.maintain_partitions(conn)
        finally:
            await conn.close()
        return change

    with _database(settings):
        change = asyncio.run(init())
    print(f"lastmile db init: {change}")
    return 0


def _db_start(settings: config.Settings, _: argparse.Namespace) -> int:
    """Start the embedded server (``[database] embedded_dir`` on ``embedded_port``) and return,
    leaving it running; say how to reach it."""
    import shutil

    from daemons.pgembed import EmbeddedPostgres, bin_dir

    if settings.database.url:
        return _not_embedded("start", settings)
    server = EmbeddedPostgres(settings.database.embedded_dir, settings.database.embedded_port)
    was_running = server.is_running()
    url = server.start()
    psql = "psql" if shutil.which("psql") else str(bin_dir() / "psql")
    state = "was already running" if was_running else "started"
    print(f"lastmile db start: PostgreSQL {state} in {server.datadir}, on 127.0.0.1:{server.port}")
    print(f"  url   {url}")
    print(f"  psql  {psql} {url}")
    print("  stop  lastmile db stop")
    return 0


def _db_stop(settings: config.Settings, _: argparse.Namespace) -> int:
    from daemons.pgembed import EmbeddedPostgres

    if settings.database.url:
        return _not_embedded("stop", settings)
    server = EmbeddedPostgres(settings.database.embedded_dir, settings.database.embedded_port)
    if not server.is_running():
        print(f"lastmile db stop: PostgreSQL in {server.datadir} is not running")
        return 0
    server.stop()
    print(f"lastmile db stop: PostgreSQL in {server.datadir} stopped")
    return 0


def _not_embedded(action: str, settings: config.Settings) -> int:
    where = config.redact_url(settings.database.url)
    print(
        f"lastmile db {action}: [database] url is set ({where}); db {action} is for the embedded server, "
        "used when it is empty",
        file=sys.stderr,
    )
    return 2


def _demo(settings: config.Settings, args: argparse.Namespace) -> int:
    from daemons import db, demo

    async def load() -> int:
        conn = await db.connect(db.url_of(settings.database), settings.database.connect_timeout)
        try:
            await db.check_schema(conn)
            return await demo.load(conn, args.customers, seed=args.seed)
        finally:
            await conn.close()

    started = time.monotonic()
    with _database(settings):
        count = asyncio.run(load())
    print(f"lastmile demo: {count} customers loaded in {time.monotonic() - started:.1f} s")
    return 0


def _config(settings: config.Settings, args: argparse.Namespace) -> int:
    print(config.describe() + "\n" if args.markdown else config.as_toml(settings), end="")
    return 0


def _broker(settings: config.Settings, args: argparse.Namespace) -> int:
    from daemons import broker, log

    log.setup(settings.log, "broker")
    asyncio.run(broker.serve(args.port or settings.mqtt.embedded_port))
    return 0


class _database:
    """Context: with no database URL set, the embedded server is started for the command and
    stopped after it, unless it was already running (under `lastmile up`)."""

    def __init__(self, settings: config.Settings) -> None:
        self.settings = settings
        self.server: Any = None

    def __enter__(self) -> None:
        if self.settings.database.url:
            return
        from daemons.pgembed import EmbeddedPostgres

        server = EmbeddedPostgres(self.settings.database.embedded_dir, self.settings.database.embedded_port)
        if not server.is_running():
            self.server = server
        server.start()

    def __exit__(self, *_: object) -> None:
        if self.server is not None:
            self.server.stop()


if __name__ == "__main__":
    sys.exit(main())
