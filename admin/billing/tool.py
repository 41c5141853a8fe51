"""``lastmile billing``: the billing run, the prepaid charges and dunning from the command line.

    lastmile billing run [--date D] [--partner P] [--preview | --confirm RUN]
    lastmile billing prepaid [--date D]
    lastmile billing dunning [--date D]

``run`` without options previews and issues at once; ``--preview`` stops after the preview
(printed, and its id to confirm later); ``--confirm RUN`` issues a preview (again after a crash:
it goes on where it stopped). Exit 0 when done (also when there was nothing to bill), 1 when
refused (the reason in one line), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys

from admin.billing import collect, run
from admin.billing.ledger import LedgerError
from daemons import db
from daemons.config import Settings


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def main(settings: Settings, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lastmile billing", description="Billing runs, prepaid charges, dunning.")
    commands = parser.add_subparsers(dest="command", required=True)
    today = dt.datetime.now(dt.UTC).date()
    p_run = commands.add_parser("run", help="bill what is due on a date (preview, then issue)")
    p_run.add_argument("--date", type=_date, default=today, help="the billing date (default: today, UTC)")
    p_run.add_argument("--partner", type=int, default=None, help="only this partner's customers")
    mode = p_run.add_mutually_exclusive_group()
    mode.add_argument("--preview", action="store_true", help="make the preview only")
    mode.add_argument("--confirm", type=int, metavar="RUN", help="issue the preview RUN")
    for name, text in (("prepaid", "post the prepaid charges due by a date"),
                       ("dunning", "block, deactivate and let back in by what customers owe")):
        p = commands.add_parser(name, help=text)
        p.add_argument("--date", type=_date, default=today)
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_main(settings, args))
    except (run.RunError, LedgerError) as e:
        print(f"lastmile billing: {e}", file=sys.stderr)
        return 1


async def _main(settings: Settings, args: argparse.Namespace) -> int:
    pool = await db.create_pool(settings.database, max_size=2)
    try:
        by = "lastmile billing"
        if args.command == "run":
            if args.confirm is not None:
                summary = await run.confirm(pool, args.confirm, by)
            elif args.preview:
                summary = await run.preview(pool, args.date, args.partner, by)
                if not summary.nothing:
                    print(summary.describe())
                    print(f"confirm with: lastmile billing run --confirm {summary.run_id}")
                    return 0
            else:
                summary = await run.run(pool, args.date, args.partner, by)
            print(summary.describe())
        elif args.command == "prepaid":
            print((await run.charge_prepaid(pool, args.date, by)).describe())
        else:
            async with pool.acquire() as conn:
                print((await collect.run(conn, args.date)).describe())
        return 0
    finally:
        await pool.close()
