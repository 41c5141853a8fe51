"""What a router should hold, from billing's rows: ``desired(router, services, policy)``. Pure.

Per service on the router (``services.router_id``) whose service is active or blocked and whose
customer is new, active or blocked:

- blocked (the service or its customer) with a static address: an entry of that address in the
  blocked address list, so the router's firewall rules (the operator's: redirect to a payment
  page, drop) apply to it; a customer in status ``new`` likewise in the new list, when on;
- a static address: a simple queue with the tariff's rates (max-limit, limit-at, burst,
  priority). A login without a static address gets its rate from radiusd
  (Mikrotik-Rate-Limit, a dynamic queue); a second queue of provisiond's would shape it twice;
- on a router whose auth mode is ``api``: a PPP secret with the login and password (and the
  static address as remote-address), disabled while blocked if it has no address to list;
- a MAC and a static address: a DHCP static lease.

Rates are written as MikroTik orders them, upload/download, in bit/s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from daemons.provisiond.model import ADDRESS_LIST, DHCP_LEASE, PPP_SECRET, QUEUE, Item, Menu, item, owner_tag

LIVE_SERVICE = ("active", "blocked")
LIVE_CUSTOMER = ("new", "active", "blocked")


@dataclass(frozen=True, slots=True)
class Tariff:
    download_kbps: int
    upload_kbps: int
    limit_at_download_kbps: int | None = None
    limit_at_upload_kbps: int | None = None
    burst_download_kbps: int | None = None
    burst_upload_kbps: int | None = None
    burst_threshold_download_kbps: int | None = None
    burst_threshold_upload_kbps: int | None = None
    burst_time_s: int | None = None
    priority: int = 8


@dataclass(frozen=True, slots=True)
class Service:
    id: int
    login: str
    password: str
    status: str
    customer_status: str
    customer_name: str
    ipv4: str | None
    mac: str | None
    tariff: Tariff

    @property
    def live(self) -> bool:
        return self.status in LIVE_SERVICE and self.customer_status in LIVE_CUSTOMER

    @property
    def blocked(self) -> bool:
        return self.status == "blocked" or self.customer_status == "blocked"


@dataclass(frozen=True, slots=True)
class Policy:
    blocked_list: str = "blocked"
    new_list: str = "new"
    list_new: bool = False


def _pair(up: int | None, down: int | None) -> str:
    return f"{(up or 0) * 1000}/{(down or 0) * 1000}"


def queue(s: Service) -> Item:
    t = s.tariff
    bursts = t.burst_download_kbps is not None
    return item(
        QUEUE, name=s.login, target=f"{s.ipv4}/32",
        max_limit=_pair(t.upload_kbps, t.download_kbps),
        limit_at=_pair(t.limit_at_upload_kbps, t.limit_at_download_kbps),
        burst_limit=_pair(t.burst_upload_kbps, t.burst_download_kbps),
        burst_threshold=_pair(t.burst_threshold_upload_kbps or t.upload_kbps,
                              t.burst_threshold_download_kbps or t.download_kbps) if bursts else "0/0",
        burst_time=f"{t.burst_time_s}s/{t.burst_time_s}s" if bursts else "0s/0s",
        priority=f"{t.priority}/{t.priority}",
        comment=owner_tag(s.id, s.customer_name), disabled="false",
    )


def desired(services: list[Service], policy: Policy, api_auth: bool,
            fingerprint: Callable[[str], str]) -> list[Item]:
    """The items of one router. ``api_auth``: the router's auth mode is ``api`` (PPP secrets);
    ``fingerprint(text)``: a keyed digest of a secret, for the owner tag (see model.Menu.secret)."""
    out: list[Item] = []
    for s in services:
        if not s.live:
            continue
        tag = owner_tag(s.id, s.customer_name)
        if s.ipv4 is not None:
            if s.blocked:
                out.append(item(ADDRESS_LIST, list=policy.blocked_list, address=s.ipv4, comment=tag, disabled="false"))
            elif policy.list_new and s.customer_status == "new":
                out.append(item(ADDRESS_LIST, list=policy.new_list, address=s.ipv4, comment=tag, disabled="false"))
            out.append(queue(s))
            if s.mac is not None:
                out.append(item(DHCP_LEASE, mac_address=s.mac, address=s.ipv4, comment=tag, disabled="false"))
        if api_auth:
            out.append(item(
                PPP_SECRET, name=s.login, password=s.password, service="any", profile="default",
                remote_address=s.ipv4 or "", comment=owner_tag(s.id, s.customer_name, fingerprint(s.password)),
                disabled="true" if s.blocked and s.ipv4 is None else "false",
            ))
    return out


def keys_of(services: list[Service]) -> dict[Menu, tuple[str, set[str]]]:
    """Where the objects of ``services`` can be, whatever their status now: per menu, the field
    and values to read (a targeted run reads only these, then plans over them)."""
    addresses = {s.ipv4 for s in services if s.ipv4}
    logins = {s.login for s in services}
    return {
        ADDRESS_LIST: ("address", addresses),
        QUEUE: ("name", logins),
        PPP_SECRET: ("name", logins),
        DHCP_LEASE: ("mac-address", {s.mac for s in services if s.mac}),
    }
