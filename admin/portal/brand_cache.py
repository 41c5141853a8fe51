"""The brand of each portal host, kept in the process: every portal request (a page, a static file)
needs it, and it changes a few times a year, so looking it up costs no query once it is loaded.

What it holds: the host names (portal_hosts) with their partner, the partner a host nobody claims
shows (the first partner) and each partner's published brand (brands_store.brand_of). A change
to any of them empties it, and the next request loads again:

* in the process that made the change, at once: the writer calls :func:`changed` after its
  commit (a brand published, a host added or removed, the partner's document branding saved);
* in every other admin process, within a moment: the writer also sends :data:`CHANNEL` in its
  transaction (:func:`notify`, delivered at commit), and partners' own changes come on the
  ``lastmile_partners`` channel of schema.sql's triggers; ``lastmile admin`` follows both with a
  ``db.Listener`` (admin/__main__.py), which empties the cache after a reconnect too;
* at worst after :data:`TTL_S` seconds (a change written by hand in SQL, a listener that is down).

A load that began before a change is not kept (``generation``), so a change is never lost to a
request that raced it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import asyncpg
import msgspec
from aiohttp import web

from admin.auth.store import Connection
from admin.portal import brands_store
from admin.portal.brand import Brand
from daemons import channels

CHANNEL = "lastmile_portal_brands"
"""Sent (no payload) by whoever changes a brand, a host or a partner's document branding."""
CHANNELS = [CHANNEL, channels.table_channel("partners")]
"""What an admin process listens to for its brand cache."""
TTL_S = 60.0
"""How long a loaded brand is kept at most without a notification."""


class Entry(msgspec.Struct, frozen=True):
    partner_id: int | None
    brand: Brand


class BrandCache:
    def __init__(self, ttl: float = TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.generation = 0
        self.loads = 0  # how many times the hosts were loaded (tests and the benchmark read it)
        self._until = 0.0
        self._hosts: dict[str, int] = {}
        self._default: int | None = None
        self._brands: dict[int, Entry] = {}

    def invalidate(self, *_: object) -> None:
        """Forget everything (a ``db.Listener`` handler too: ``(channel, payload)`` ignored)."""
        self.generation += 1
        self._until = 0.0
        self._hosts = {}
        self._brands = {}

    async def lookup(self, pool: asyncpg.Pool, host: str) -> Entry:
        """The partner whose portal ``host`` is (None: no partner yet) and its published brand;
        a connection is taken from ``pool`` only when something must be loaded."""
        if self.clock() < self._until:
            partner_id = self._hosts.get(host.lower(), self._default)
            if partner_id is None:
                return _NONE
            if (found := self._brands.get(partner_id)) is not None:
                return found
        async with pool.acquire() as conn:
            return await self._load(conn, host)

    async def _load(self, conn: Connection, host: str) -> Entry:
        generation = self.generation
        if self.clock() >= self._until:
            hosts = await brands_store.all_hosts(conn)
            default = await brands_store.default_partner(conn)
            self.loads += 1
            if generation == self.generation:
                self._hosts, self._default, self._brands = hosts, default, {}
                self._until = self.clock() + self.ttl
        else:
            hosts, default = self._hosts, self._default
        partner_id = hosts.get(host.lower(), default)
        if partner_id is None:
            return _NONE
        brand = await brands_store.brand_of(conn, partner_id)
        entry = Entry(partner_id, brand)
        if generation == self.generation:  # else changed meanwhile: used, not kept
            self._brands[partner_id] = entry
        return entry


_NONE = Entry(None, Brand())
CACHE = web.AppKey("portal_brand_cache", BrandCache)


def changed(request: web.Request) -> None:
    """A brand, host or branding was changed and committed: this process forgets its brands now."""
    request.app[CACHE].invalidate()


async def notify(conn: Connection) -> None:
    """Tell the other admin processes (sent when the caller's transaction commits)."""
    await brands_store.notify(conn, CHANNEL)
