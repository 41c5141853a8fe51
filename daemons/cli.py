"""The ``lastmile`` command.

It runs the shared commands (``up``, ``db``, ``demo``, ``config``, ``broker``) and dispatches to
the components the registry finds (daemons/registry.py): ``lastmile <component>`` runs its
daemon, and each of its tools is a command of its own. It names no component: what is
installed is what it offers.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

from daemons import config, registry


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # A tool's own options before any positional argument (`create-admin --login x`):
        # argparse's REMAINDER leaves those out; the tool parses its arguments itself.
        if not isinstance(getattr(args, "args", None), list):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.args = [*extra, *args.args]
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        settings = config.load()
    except config.SettingsError as e:
        print(f"lastmile: bad settings: {e}", file=sys.stderr)
        return 2
    if settings.ignored and args.run is not _config:
        print(f"lastmile: settings for {', '.join(f'[{n}]' for n in settings.ignored)} ignored: no such "
              "component is installed", file=sys.stderr)
    try:
        code: int = args.run(settings, args)
    except KeyboardInterrupt:
        return 130
    except config.SettingsError as e:  # a component's own section
        print(f"lastmile: bad settings: {e}", file=sys.stderr)
        return 2
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

    # backup and restore parse their own options (prefix_chars: `--to` etc. reach them untouched)
    backup = sub.add_parser("backup", help="the database and the daemons' state into one dated archive",
                            add_help=False, prefix_chars="+")
    backup.add_argument("args", nargs=argparse.REMAINDER, help="`[--to DIR]`")
    backup.set_defaults(run=_tool("daemons.backup:main"))
    restore = sub.add_parser("restore", help="restore a backup archive into a database (and the state)",
                             add_help=False, prefix_chars="+")
    restore.add_argument("args", nargs=argparse.REMAINDER, help="`ARCHIVE [--database URL|NAME] [--force] [--state]`")
    restore.set_defaults(run=_tool("daemons.restore:main"))

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

    for component in registry.components().values():
        if component.main is not None:
            d = sub.add_parser(component.name, help=f"run {component.name}: {component.summary}")
            d.set_defaults(run=_daemon(component.main))
        for tool in component.tools:
            t = sub.add_parser(tool.name, help=tool.summary)
            t.add_argument("args", nargs=argparse.REMAINDER, help=tool.usage or None)
            t.set_defaults(run=_tool(tool.entry))
    return p


def _daemon(entry: str) -> Callable[[config.Settings, argparse.Namespace], int]:
    """A component's daemon: ``entry`` is its ``main(settings) -> int``."""

    def run(settings: config.Settings, _: argparse.Namespace) -> int:
        result: int = registry.load(entry)(settings)
        return result

    return run


def _tool(entry: str) -> Callable[[config.Settings, argparse.Namespace], int]:
    """A component's command-line tool: ``entry`` is its ``main(settings, argv) -> int``."""

    def run(settings: config.Settings, args: argparse.Namespace) -> int:
        result: int = registry.load(entry)(settings, args.args)
        return result

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
    _secret_key(settings, "lastmile db init")
    return 0


def _secret_key(settings: config.Settings, command: str) -> None:
    """Create ``[secrets] key_file`` when there is none (an installation's first start)."""
    from daemons import secrets

    path = secrets.key_path(settings.secrets)
    if not path.exists():
        secrets.Keyring.load(settings.secrets, create=True)
        print(f"{command}: created the secret key {path} (keep a copy apart from the backups)", file=sys.stderr)


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
    """The settings in force; exit code 2 when a component's section is not usable (a check)."""
    if args.markdown:
        print(config.describe() + "\n", end="")
        return 0
    print(config.as_toml(settings), end="")
    bad = {n: v for n, v in settings.sections.items() if isinstance(v, config.SettingsError)}
    for error in bad.values():
        print(f"lastmile config: bad settings: {error}", file=sys.stderr)
    for name in settings.ignored:
        print(f"lastmile config: [{name}]: no installed component owns it (ignored)", file=sys.stderr)
    return 2 if bad else 0


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
