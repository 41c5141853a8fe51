"""`lastmile routers import ROUTER [--apply]`: onboard a router that already serves subscribers.

Every ISP that changes billing systems has routers full of PPP secrets, simple queues, DHCP
leases and address lists that nobody wants to type in again. The import reads them, groups the
objects of one subscriber (a PPP secret, the queue of the same name or address, the lease of
that address), and proposes a customer and a service for each, with the tariff its queue's
max-limit matches (an existing tariff of the same speeds, or a new one); an address in the
blocked list makes a blocked customer. Without ``--apply`` it prints the proposal; with it, it
creates the rows in one transaction and then tags the router's objects as lastmile's, so the
reconciles own them from then on (objects already matching a service are tagged too).

A PPP secret whose password the router does not show (the API user lacks the ``sensitive``
policy) is left out: the service would get another password, which the next reconcile would
write to the router. Importing PPP secrets switches the router to auth mode ``api``, as it
authenticates from them.
"""

from __future__ import annotations

import ipaddress
import secrets as random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import asyncpg

from daemons import output
from daemons.provisiond import store
from daemons.provisiond.client import Connection
from daemons.provisiond.model import ADDRESS_LIST, DHCP_LEASE, PPP_SECRET, QUEUE, Item, owner_tag
from daemons.provisiond.plan import Change
from daemons.provisiond.reconcile import Reconciler

UNSHAPED_KBPS = 10_000_000  # the tariff of subscribers without a queue: 10 Gbit/s, i.e. none


@dataclass(slots=True)
class Subscriber:
    login: str
    name: str
    password: str | None = None
    ipv4: str | None = None
    mac: str | None = None
    down_kbps: int | None = None
    up_kbps: int | None = None
    blocked: bool = False
    objects: list[Item] = field(default_factory=list)

    @property
    def speeds(self) -> tuple[int, int]:
        if self.down_kbps is None or self.up_kbps is None:
            return (UNSHAPED_KBPS, UNSHAPED_KBPS)
        return (self.down_kbps, self.up_kbps)


@dataclass(slots=True)
class Proposal:
    subscribers: list[Subscriber] = field(default_factory=list)
    adopt: list[tuple[Item, int, str]] = field(default_factory=list)  # object, its service, the customer's name
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Known:
    """What billing has: services by login and by address (service id, customer name)."""

    logins: dict[str, tuple[int, str]]
    addresses: dict[str, tuple[int, str]]


def _host(value: str) -> str | None:
    """The IPv4 address of ``10.0.0.5`` or ``10.0.0.5/32``; None for anything else."""
    try:
        net = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None
    return str(net.network_address) if net.version == 4 and net.prefixlen == 32 else None


def _kbps(rate_pair: str) -> tuple[int, int] | None:
    up, _, down = rate_pair.partition("/")
    try:
        u, d = int(up) // 1000, int(down) // 1000
    except ValueError:
        return None
    return (d, u) if u > 0 and d > 0 else None


def propose(observed: Iterable[Item], known: Known, blocked_list: str) -> Proposal:
    """Pure: the subscribers that the router's unowned objects describe."""
    out = Proposal()
    secrets: list[Item] = []
    queues: dict[str, Item] = {}
    queue_by_ip: dict[str, Item] = {}
    leases: dict[str, Item] = {}
    blocked: dict[str, Item] = {}
    for it in observed:
        if it.owned:
            continue
        a = it.attrs
        if it.menu is PPP_SECRET:
            secrets.append(it)
        elif it.menu is QUEUE:
            queues[a.get("name", "")] = it
            if (ip := _host(a.get("target", ""))) is not None:
                queue_by_ip[ip] = it
        elif it.menu is DHCP_LEASE and (ip := _host(a.get("address", ""))) is not None:
            leases[ip] = it
        elif it.menu is ADDRESS_LIST and a.get("list") == blocked_list and (ip := _host(a.get("address", ""))):
            blocked[ip] = it
    used: set[int] = set()

    def take(it: Item | None) -> Item | None:
        if it is None or id(it) in used:
            return None
        used.add(id(it))
        return it

    def attach(sub: Subscriber) -> Subscriber:
        """Add the queue, lease and blocked entry of ``sub``'s login or address."""
        queue = take(queues.get(sub.login)) or (take(queue_by_ip.get(sub.ipv4)) if sub.ipv4 else None)
        if queue is not None:
            sub.objects.append(queue)
            if (speeds := _kbps(queue.attrs.get("max-limit", ""))) is not None:
                sub.down_kbps, sub.up_kbps = speeds
            if sub.ipv4 is None:
                sub.ipv4 = _host(queue.attrs.get("target", ""))
        static = take(leases.get(sub.ipv4)) if sub.ipv4 else None
        if static is not None:
            sub.objects.append(static)
            sub.mac = static.attrs.get("mac-address") or None
        entry = take(blocked.get(sub.ipv4)) if sub.ipv4 else None
        if entry is not None:
            sub.objects.append(entry)
            sub.blocked = True
        return sub

    found: list[Subscriber] = []
    for secret in secrets:
        take(secret)
        sub = Subscriber(secret.attrs.get("name", ""), "", secret.attrs.get("password"),
                         _host(secret.attrs.get("remote-address", "")), objects=[secret])
        if sub.password is None:
            out.skipped.append(f"PPP secret {sub.login}: the router does not show its password (give the API "
                               "user the `sensitive` policy for the import)")
            continue
        found.append(attach(sub))
    for q in list(queues.values()):
        if id(q) in used:
            continue
        if _host(q.attrs.get("target", "")) is None:
            out.skipped.append(f"queue {q.attrs.get('name', '')}: its target {q.attrs.get('target', '')!r} is "
                               "not one address")
            continue
        found.append(attach(Subscriber(q.attrs.get("name", ""), "")))
    for lease in list(leases.values()):
        if id(lease) not in used:
            mac = lease.attrs.get("mac-address", "")
            found.append(attach(Subscriber("dhcp-" + mac.replace(":", "").lower(), "",
                                           ipv4=_host(lease.attrs.get("address", "")))))
    for sub in found:
        comments = [o.attrs.get("comment", "") for o in sub.objects]
        sub.name = next((c for c in comments if c.strip()), sub.login).strip()
        match = known.logins.get(sub.login) or (known.addresses.get(sub.ipv4) if sub.ipv4 else None)
        if match is not None:
            out.adopt += [(o, match[0], match[1]) for o in sub.objects]
        elif not sub.login:
            out.skipped.append(f"{sub.objects[0].describe()}: no name to log in with")
        else:
            out.subscribers.append(sub)
    return out


def speed(kbps: int) -> str:
    for unit, size in (("G", 1_000_000), ("M", 1000)):
        if kbps >= size and kbps % size == 0:
            return f"{kbps // size}{unit}"
    return f"{kbps}k"


def tariff_name(down: int, up: int) -> str:
    if (down, up) == (UNSHAPED_KBPS, UNSHAPED_KBPS):
        return "Imported: no limit"
    return f"Imported {speed(down)}/{speed(up)}"


def lines(router: str, p: Proposal, tariffs: dict[tuple[int, int], str], applied: bool) -> Iterator[str]:
    verb = "created" if applied else "would create"
    new_tariffs = sorted({tariff_name(*s.speeds) for s in p.subscribers if s.speeds not in tariffs})
    yield f"{router}: {verb} {len(p.subscribers)} customers with a service each, {len(new_tariffs)} new tariffs; " \
          f"{'tagged' if applied else 'would tag'} {len(p.adopt)} objects that match services already in billing"
    rows = [(s.login, s.name, s.ipv4 or "-", s.mac or "-", tariffs.get(s.speeds, tariff_name(*s.speeds) + " (new)"),
             "blocked" if s.blocked else "active", ", ".join(o.menu.label for o in s.objects))
            for s in p.subscribers]
    if rows:
        yield from output.table(("LOGIN", "CUSTOMER", "ADDRESS", "MAC", "TARIFF", "STATUS", "FROM"), rows)
    for s in p.skipped:
        yield f"skipped: {s}"
    if not applied and (p.subscribers or p.adopt):
        yield f"nothing was written; `lastmile routers import {router} --apply` does it"


async def run(reconciler: Reconciler, router: store.Router, apply: bool, partner: str | None) -> list[str]:
    """Read ``router``, propose, and with ``apply`` create and tag; what to print. Raises
    RouterError when the router cannot be read."""
    pool, ps = reconciler.pool, reconciler.settings
    async with pool.acquire() as conn:
        known = Known(*await store.known_services(conn))
        tariffs = await store.tariff_speeds(conn)
    link = await Connection.open(reconciler.endpoint(router), ps.connect_timeout, ps.command_timeout)
    refused = []
    try:
        observed = await reconciler.observe(link, router.name)
        proposal = propose(observed, known, ps.blocked_list)
        if apply:
            async with pool.acquire() as conn, conn.transaction():
                created = await store.import_subscribers(conn, router.id, partner, proposal.subscribers,
                                                         tariff_name, lambda: random.token_urlsafe(12))
                if any(o.menu is PPP_SECRET for s in proposal.subscribers for o in s.objects):
                    await store.set_auth_mode(conn, router.id, "api")
            tags = [(o, sid, s.name) for s, sid in zip(proposal.subscribers, created, strict=True)
                    for o in s.objects] + proposal.adopt
            changes = [Change("set", o.menu, Item(o.menu, {"comment": owner_tag(sid, who)}, o.id),
                              {"comment": o.attrs.get("comment", "")}) for o, sid, who in tags]
            done = await link.apply(changes, ps.pipeline)
            refused = [f"not tagged: {c.item.describe()}: {message}" for c, message in done.failed]
            tariffs = await _tariffs(pool)
    finally:
        await link.close()
    return [*lines(router.name, proposal, tariffs, apply), *refused]


async def _tariffs(pool: asyncpg.Pool) -> dict[tuple[int, int], str]:
    async with pool.acquire() as conn:
        return await store.tariff_speeds(conn)
