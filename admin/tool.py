"""``lastmile create-admin``: an administrator from the command line (the first one, or a locked-out one)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import sys

import asyncpg

from admin.auth import passwords, permissions, store
from daemons import db
from daemons.config import Settings


def create_admin(settings: Settings, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lastmile create-admin", description=(
        "Create an administrator. The password is asked for (twice) on a terminal, else read from "
        "standard input with --password-stdin."))
    parser.add_argument("--login", default="admin")
    parser.add_argument("--name", default="")
    parser.add_argument("--email", default=None)
    parser.add_argument("--role", default=permissions.SUPER, choices=[b.key for b in permissions.BUILTIN],
                        help="a built-in role (default: super, the Super administrator)")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    args = parser.parse_args(argv)
    login = args.login.strip().lower()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {login}: ")
        if getpass.getpass("again: ") != password:
            print("lastmile create-admin: the two passwords differ", file=sys.stderr)
            return 2
    if (why := passwords.weak(password)) is not None:
        print(f"lastmile create-admin: the password {why}", file=sys.stderr)
        return 2
    return asyncio.run(_create(settings, login, args.name, args.email, args.role, passwords.hash_password(password)))


async def _create(settings: Settings, login: str, name: str, email: str | None, role: str, hashed: str) -> int:
    conn = await db.connect(db.url_of(settings.database))
    try:
        await db.check_schema(conn)
        admin_id = await store.create_admin(conn, login, name, email, hashed, role)
    except asyncpg.UniqueViolationError:
        print(f"lastmile create-admin: an administrator {login!r} exists already", file=sys.stderr)
        return 1
    except asyncpg.CheckViolationError:
        print(f"lastmile create-admin: {login!r} is not a valid login (lower-case letters, digits, _ . @ -)",
              file=sys.stderr)
        return 2
    finally:
        await conn.close()
    print(f"lastmile create-admin: created administrator {login!r} (id {admin_id}, role {role})")
    return 0


DEMO_LOGIN = "admin"
DEMO_PASSWORD = "lastmile-demo"  # noqa: S105  # the demo's, printed by `lastmile up`


def demo_admin(settings: Settings, url: str) -> list[tuple[str, str]]:
    """``lastmile up`` on demo data: a Super administrator ``admin`` when there is no administrator yet,
    and this month billed (admin/billing/demo.py)."""

    async def make() -> bool:
        conn = await db.connect(url)
        try:
            if await store.any_admin(conn):
                return False
            await store.create_admin(conn, DEMO_LOGIN, "Demo administrator", None,
                                     passwords.hash_password(DEMO_PASSWORD), permissions.SUPER)
            return True
        finally:
            await conn.close()

    async def bill() -> str:
        from admin.billing import demo

        pool = await db.create_pool(settings.database, url, max_size=2)
        try:
            return await demo.setup(pool, dt.datetime.now(dt.UTC).date())
        finally:
            await pool.close()

    made = asyncio.run(make())
    return [("admin login", f"{DEMO_LOGIN} / {DEMO_PASSWORD}" + ("" if made else " (if not changed since)")),
            ("billing", asyncio.run(bill()))]
