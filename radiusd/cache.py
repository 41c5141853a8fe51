"""What radiusd keeps in memory: the NAS table, the subscribers, and who is online.

Everything an Access-Request needs comes from here, so authentication makes no database round
trip (only a login that needs an address from a lastmile pool does). The caches load in full at
start and follow the database through NOTIFY (``lastmile_<table>`` payloads); a notification
with ``"id": null`` or a LISTEN reconnect reloads in full.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from daemons import log
from radiusd import metrics
from radiusd.codec import AttributeTable, EncodeError, InValue, check_attribute, default_table

ReplyAttributes = tuple[tuple[str, InValue], ...]


@dataclass(frozen=True, slots=True)
class Nas:
    id: int
    name: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    secret: bytes
    type: str
    coa_port: int
    require_ma: bool
    limit_proxy_state: bool

    @property
    def address(self) -> str:
        """Where CoA/Disconnect requests go: the NAS's own address (a /32 or /128 entry)."""
        return str(self.network.network_address)


class NasTable:
    """RADIUS clients by source address: exact hosts in a dict, prefixes scanned (they are few)."""

    def __init__(self) -> None:
        self._hosts: dict[str, Nas] = {}
        self._networks: list[Nas] = []
        self.by_id: dict[int, Nas] = {}

    def replace(self, rows: list[Any]) -> None:
        hosts: dict[str, Nas] = {}
        networks: list[Nas] = []
        by_id: dict[int, Nas] = {}
        for r in rows:
            network = ipaddress.ip_network(r["address"])
            nas = Nas(r["id"], r["name"], network, r["secret"].encode(), r["type"], r["coa_port"],
                      r["require_message_authenticator"], r["limit_proxy_state"])
            by_id[nas.id] = nas
            if network.num_addresses == 1:
                hosts[str(network.network_address)] = nas
            else:
                networks.append(nas)
        self._hosts, self._networks, self.by_id = hosts, networks, by_id

    def lookup(self, source: str) -> Nas | None:
        nas = self._hosts.get(source)
        if nas is not None or not self._networks:
            return nas
        if source.startswith("::ffff:") and "." in source:  # IPv4 on a dual-stack socket
            return self.lookup(source[7:])
        address = ipaddress.ip_address(source)
        for candidate in self._networks:
            if address in candidate.network:
                return candidate
        return None

    def __len__(self) -> int:
        return len(self.by_id)


def _speed(kbps: int) -> str:
    return f"{kbps // 1000}M" if kbps % 1000 == 0 else f"{kbps}k"


def mikrotik_rate_limit(row: Any) -> str:
    """Mikrotik-Rate-Limit for a tariff: ``rx/tx [burst rx/tx [threshold rx/tx [time rx/tx [priority]]]]``.

    rx and tx are the router's view of a PPP client: rx is the subscriber's upload.
    """
    rate = f"{_speed(row['upload_kbps'])}/{_speed(row['download_kbps'])}"
    if row["burst_download_kbps"] is None:
        return rate
    up_threshold = row["burst_threshold_upload_kbps"] or row["upload_kbps"]
    down_threshold = row["burst_threshold_download_kbps"] or row["download_kbps"]
    return (f"{rate} {_speed(row['burst_upload_kbps'])}/{_speed(row['burst_download_kbps'])} "
            f"{_speed(up_threshold)}/{_speed(down_threshold)} {row['burst_time_s']}/{row['burst_time_s']} "
            f"{row['priority']}")


def normalise_mac(value: str | None) -> str | None:
    """``02:AB:cd-00.11.22`` and friends → ``02abcd001122``; None if it is not a MAC address."""
    if not value:
        return None
    digits = "".join(ch for ch in value.lower() if ch in "0123456789abcdef")
    return digits if len(digits) == 12 else None


def tariff_reply(pairs: object, table: AttributeTable) -> tuple[ReplyAttributes, list[str]]:
    """A tariff's ``radius_reply`` (``[["Attr-Name", value], ...]``) as the attributes an
    Access-Accept can carry, and what was left out, one line each: an entry that is not a
    [name, value] pair, a name no dictionary defines, a value that does not fit its attribute."""
    good: list[tuple[str, InValue]] = []
    problems: list[str] = []
    for entry in pairs if isinstance(pairs, list) else [pairs]:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            problems.append(f"{entry!r}: not a [name, value] pair")
            continue
        try:
            good.append((entry[0], check_attribute(entry[0], entry[1], table)))
        except EncodeError as e:
            problems.append(str(e))
    return tuple(good), problems


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One service as authentication sees it."""

    service_id: int
    login: str
    password: str
    status: str
    customer_id: int
    customer_status: str
    tariff_id: int
    # Addresses stay the objects asyncpg made of inet/cidr: parsing text per Access-Request (to
    # encode it, and again to log it) cost a quarter of its time.
    ipv4: ipaddress.IPv4Address | None
    ipv6_prefix: ipaddress.IPv6Network | None
    delegated_ipv6_prefix: ipaddress.IPv6Network | None
    mac: str | None
    simultaneous_use: int
    rate_limit: str
    session_timeout: int | None
    extra_reply: ReplyAttributes
    pool_id: int | None
    pool_name: str | None
    pool_managed_by: str | None

    @classmethod
    def from_row(cls, r: Any, extra_reply: ReplyAttributes | None = None) -> Subscriber:
        """``extra_reply``: the tariff's reply attributes, checked (by default checked here against
        the shipped dictionary, silently: :class:`SubscriberCache` checks and reports them)."""
        if extra_reply is None:
            extra_reply = tariff_reply(r["radius_reply"], default_table())[0]
        return cls(r["id"], r["login"], r["password"], r["status"], r["customer_id"], r["customer_status"],
                   r["tariff_id"], r["ipv4"], r["ipv6_prefix"], r["delegated_ipv6_prefix"], normalise_mac(r["mac"]),
                   r["simultaneous_use"], mikrotik_rate_limit(r), r["session_timeout_s"], extra_reply,
                   r["pool_id"], r["pool_name"], r["pool_managed_by"])

    @property
    def blocked(self) -> bool:
        return self.status == "blocked" or self.customer_status == "blocked"


class SubscriberCache:
    """Services by login (and by id), replaced row by row as notifications arrive.

    A tariff's reply attributes are checked against ``table`` (the dictionary radiusd encodes
    with) once per tariff and version of its ``radius_reply``, not per service: what does not fit
    is left out of its Access-Accepts, with one warning and a count."""

    def __init__(self, table: AttributeTable | None = None) -> None:
        self.by_login: dict[str, Subscriber] = {}
        self.by_id: dict[int, Subscriber] = {}
        #: Bumped by every change (the snapshot encodes the subscribers again only then).
        self.version = 0
        self.table = table or default_table()
        #: tariff id -> (its radius_reply as last loaded, the attributes sent for it)
        self._replies: dict[int, tuple[object, ReplyAttributes]] = {}

    def _reply(self, r: Any) -> ReplyAttributes:
        raw = r["radius_reply"]
        known = self._replies.get(r["tariff_id"])
        if known is not None and known[0] == raw:
            return known[1]
        attributes, problems = tariff_reply(raw, self.table)
        if problems:
            metrics.REPLY_SKIPPED.inc(len(problems))
            log.get("lastmile.radiusd.cache").warning("tariff reply attributes skipped", tariff_id=r["tariff_id"],
                                                      skipped=problems)
        self._replies[r["tariff_id"]] = (raw, attributes)
        return attributes

    def replace_all(self, rows: list[Any]) -> None:
        by_login: dict[str, Subscriber] = {}
        for r in rows:
            sub = Subscriber.from_row(r, self._reply(r))
            by_login[sub.login] = sub
        self.by_login = by_login
        self.by_id = {s.service_id: s for s in by_login.values()}
        self.version += 1

    def replace_subscribers(self, subscribers: list[Subscriber]) -> None:
        """Everything from a snapshot (radiusd/snapshot.py)."""
        self.by_login = {s.login: s for s in subscribers}
        self.by_id = {s.service_id: s for s in self.by_login.values()}
        self.version += 1

    def upsert(self, rows: list[Any], gone: set[int] | None = None) -> None:
        """Put ``rows`` in; drop the services of ``gone`` ids that did not come back."""
        self.version += 1
        for r in rows:
            sub = Subscriber.from_row(r, self._reply(r))
            old = self.by_id.get(sub.service_id)
            if old is not None and old.login != sub.login:
                self.by_login.pop(old.login, None)
            self.by_login[sub.login] = sub
            self.by_id[sub.service_id] = sub
        for service_id in (gone or set()) - {r["id"] for r in rows}:
            old = self.by_id.pop(service_id, None)
            if old is not None:
                self.by_login.pop(old.login, None)

    def get(self, login: str) -> Subscriber | None:
        return self.by_login.get(login)

    def __len__(self) -> int:
        return len(self.by_login)


@dataclass
class OnlineSessions:
    """Open sessions per service, for Simultaneous-Use: loaded at start, kept by the accounting
    writers' ``lastmile_sessions`` notifications (every radiusd instance sees every session)."""

    by_service: dict[int, set[str]] = field(default_factory=dict)
    #: Called with the service id when one of its sessions opens or closes.
    on_change: Callable[[int], None] | None = None
    #: Sessions in ``by_service``, kept as they come and go (the gauge reads it at every scrape).
    _total: int = 0

    def replace_all(self, rows: list[Any]) -> None:
        by_service: dict[int, set[str]] = {}
        for r in rows:
            if r["service_id"] is not None:
                by_service.setdefault(r["service_id"], set()).add(r["acct_unique_id"])
        self.by_service = by_service
        self._total = sum(len(s) for s in by_service.values())

    def opened(self, service_id: int, unique_id: str) -> None:
        sessions = self.by_service.setdefault(service_id, set())
        if unique_id not in sessions:
            sessions.add(unique_id)
            self._total += 1
        if self.on_change is not None:
            self.on_change(service_id)

    def closed(self, service_id: int, unique_id: str) -> None:
        if self.on_change is not None:
            self.on_change(service_id)
        sessions = self.by_service.get(service_id)
        if sessions is not None:
            if unique_id in sessions:
                sessions.discard(unique_id)
                self._total -= 1
            if not sessions:
                del self.by_service[service_id]

    def count(self, service_id: int) -> int:
        sessions = self.by_service.get(service_id)
        return len(sessions) if sessions else 0

    def total(self) -> int:
        return self._total
