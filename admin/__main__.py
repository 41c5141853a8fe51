"""admin: wiring only. ``lastmile admin`` runs ``main(settings)``."""

from __future__ import annotations

import sys

from admin.app import create_app
from admin.auth import store as auth_store
from admin.portal import accounts_store as portal_accounts
from admin.portal import brand_cache
from admin.portal import sessions_store as portal_sessions
from admin.settings import AdminSettings
from daemons import db, http, log, runtime
from daemons.config import Settings
from daemons.secrets import Keyring, SecretError


def main(settings: Settings) -> int:
    return runtime.run("admin", lambda rt: serve(rt, settings), settings, settings.of(AdminSettings))


async def serve(rt: runtime.Runtime, settings: Settings) -> None:
    s = settings.of(AdminSettings)
    try:
        keyring = Keyring.load(settings.secrets)
    except SecretError as e:
        raise runtime.StartError(str(e)) from None
    pool = await db.create_pool(settings.database)
    rt.on_drain("database", pool.close, pool.terminate)
    app = create_app(s, keyring, pool=pool)
    brands = app[brand_cache.CACHE]  # other processes' brand changes (admin/portal/brand_cache.py)
    rt.spawn("portal-brands", db.Listener(db.url_of(settings.database), brand_cache.CHANNELS, brands.invalidate,
                                          on_reconnect=brands.invalidate).run())
    await http.serve(rt, app, s.bind, s.port, name="admin")

    async def expire() -> None:
        async with pool.acquire() as conn:
            await auth_store.expire_sessions(conn)
            await auth_store.forget_attempts(conn, max(s.login_window, 86400))
            await portal_sessions.expire(conn)  # the customer portal's, likewise
            await portal_accounts.forget_attempts(conn, max(s.login_window, 86400))

    rt.every("expire-sessions", 300, expire)
    log.get("lastmile.admin").info("admin listening", url=f"http://{s.bind}:{s.port}/admin/")


if __name__ == "__main__":
    from daemons import config

    sys.exit(main(config.load()))
