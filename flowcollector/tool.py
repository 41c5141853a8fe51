"""`lastmile flows ...`: the NOC's flow tools.

- ``leaks [--since DURATION] [--limit N]``: traffic billing gets nothing for, most bytes first:
  own addresses that passed traffic without a service, and services that passed traffic while
  they or their customer were blocked, disabled, archived (or new), with what billing says of
  each. The admin's revenue-leak report reads the same SQL function (``traffic_leaks``).
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from daemons import db, output
from daemons.config import Settings
from flowcollector import store

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)([smhdw])")
BILLING = {
    "no_service": "no service",
    "other_addresses": "other addresses (over max_unknown_addresses)",
    "service_active": "service active now (not then)",
}
COLUMNS = ("ADDRESS", "SERVICE", "CUSTOMER", "BYTES", "PACKETS", "LAST SEEN (UTC)", "BILLING")


def main(settings: Settings, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lastmile flows")
    sub = parser.add_subparsers(dest="command", required=True)
    leaks = sub.add_parser("leaks", help="addresses and services passing traffic nobody pays for, most bytes first")
    leaks.add_argument("--since", type=duration, default=timedelta(hours=24),
                       help="how far back, e.g. 90m, 24h, 7d, 1h30m (default 24h)")
    leaks.add_argument("--limit", type=int, default=100, help="most rows shown (default 100)")
    args = parser.parse_args(argv)
    since = datetime.now(UTC) - args.since
    rows = asyncio.run(_leaks(settings, since, args.limit))
    output.emit(table(rows) if rows else [f"no leaks since {since:%Y-%m-%d %H:%M} UTC"])
    return 0


def duration(text: str) -> timedelta:
    """``90m``, ``24h``, ``7d``, ``1h30m``, ``2w``: for argparse."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90m, 24h, 7d or 1h30m")
    return timedelta(seconds=sum(int(n) * UNITS[u] for n, u in parts))


async def _leaks(settings: Settings, since: datetime, limit: int) -> list[Any]:
    conn = await db.connect(db.url_of(settings.database), settings.database.connect_timeout)
    try:
        return await store.leaks(conn, since, limit)
    finally:
        await conn.close()


def billing_text(flag: str) -> str:
    """``service_blocked`` -> "service blocked", and the few that need more words."""
    return BILLING.get(flag, flag.replace("_", " "))


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def table(rows: Iterable[Any]) -> list[str]:
    cells = []
    for r in rows:
        address = r["address"]
        cells.append((
            "-" if address is None else str(address),
            r["login"] or "-",
            r["customer"] or "-",
            size(int(r["bytes"])),
            f"{int(r['packets']):,}",
            f"{r['last_seen']:%Y-%m-%d %H:%M}",
            billing_text(r["billing"]),
        ))
    return output.table(COLUMNS, cells, right=frozenset({3, 4}))  # bytes and packets right-aligned
