"""NAS, routers, IP pools and flow exporters: request and response types (validation and the
OpenAPI document), the checks msgspec's types cannot make, and what each constraint of their
tables means to the person filling in the form.

Secrets are write-only: a NAS's RADIUS secret and a router's API password go in, and only a
hint of the secret (its last two characters) comes out.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Annotated, Any, Literal

import msgspec

from admin.schemas import Id, Limit, Name

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Address = Annotated[str, msgspec.Meta(max_length=64)]
Host = Annotated[str, msgspec.Meta(min_length=1, max_length=253, description="a host name or an IP address")]
NasType = Literal["mikrotik", "cisco", "juniper", "huawei", "accel-ppp", "other"]
Query = Annotated[str, msgspec.Meta(max_length=100, pattern=r"^[^\x00]*$", description="part of the name")]
Direction = Literal["asc", "desc"]

NAS_TYPES: tuple[str, ...] = ("mikrotik", "cisco", "juniper", "huawei", "accel-ppp", "other")
LEASE_STATES: tuple[str, ...] = ("free", "stock", "reserved", "bound")
MAX_POOL_BITS = 16
"""A lastmile pool has a row per address in ip_leases: at most a /16 (65,534 addresses) each."""


# -- NAS ------------------------------------------------------------------------------------------

class NasFields(msgspec.Struct, kw_only=True):
    name: Name
    address: Annotated[Address, msgspec.Meta(description="the NAS's source address, a host or a prefix "
                                                         "(192.0.2.1, 192.0.2.0/28); NAS may not overlap")]
    type: NasType = "mikrotik"
    coa_port: Port = 3799
    require_message_authenticator: bool = True
    limit_proxy_state: bool = True
    router_id: Id | None = None


class NasIn(NasFields, kw_only=True):
    """A new NAS (a RADIUS client). BlastRADIUS (CVE-2024-3596): a NAS that does not require
    Message-Authenticator must at least have Proxy-State limited."""

    secret: Annotated[Secret, msgspec.Meta(description="the RADIUS shared secret (write-only)")]


class NasPatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    address: Address | msgspec.UnsetType = msgspec.UNSET
    secret: Secret | msgspec.UnsetType = msgspec.UNSET
    type: NasType | msgspec.UnsetType = msgspec.UNSET
    coa_port: Port | msgspec.UnsetType = msgspec.UNSET
    require_message_authenticator: bool | msgspec.UnsetType = msgspec.UNSET
    limit_proxy_state: bool | msgspec.UnsetType = msgspec.UNSET
    router_id: Id | msgspec.UnsetType | None = msgspec.UNSET


class Nas(msgspec.Struct):
    id: int
    name: str
    address: str
    secret_hint: Annotated[str, msgspec.Meta(description="the secret's last two characters, the rest masked")]
    type: str
    coa_port: int
    require_message_authenticator: bool
    limit_proxy_state: bool
    router_id: int | None
    router: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class NasQuery(msgspec.Struct, kw_only=True):
    q: Query | None = None
    type: NasType | None = None
    sort: Literal["name", "address"] = "name"
    dir: Direction = "asc"
    after: str | None = None
    limit: Limit = 50


# -- routers --------------------------------------------------------------------------------------

class RouterFields(msgspec.Struct, kw_only=True):
    name: Name
    host: Host
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    api_port: Port = 8728
    api_tls: bool = False
    api_tls_verify: bool = True
    enabled: bool = True
    auth_mode: Literal["radius", "api"] = "radius"
    custom: dict[str, Any] = {}


class RouterIn(RouterFields, kw_only=True):
    """A MikroTik router provisiond manages through the RouterOS API."""

    password: Annotated[Secret, msgspec.Meta(description="the API user's password (write-only, stored sealed)")]


class RouterPatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The fields to change; ``custom`` replaces the router's custom values."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    host: Host | msgspec.UnsetType = msgspec.UNSET
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | msgspec.UnsetType = msgspec.UNSET
    password: Secret | msgspec.UnsetType = msgspec.UNSET
    api_port: Port | msgspec.UnsetType = msgspec.UNSET
    api_tls: bool | msgspec.UnsetType = msgspec.UNSET
    api_tls_verify: bool | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    auth_mode: Literal["radius", "api"] | msgspec.UnsetType = msgspec.UNSET
    custom: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class SyncState(msgspec.Struct):
    """What provisiond's last run on the router found and did (router_sync)."""

    reachable: bool
    generation: int
    last_attempt_at: dt.datetime | None
    last_success_at: dt.datetime | None
    last_error: str | None
    adds: int
    sets: int
    removes: int
    drift: int
    duration_ms: int
    report: Annotated[dict[str, Any] | None, msgspec.Meta(
        description='the run\'s report ({"drift": [...], "missing": [...], "leaks": [...], "failed": [...]}); '
                    "in GET /routers/{id} only")] = None


class Router(msgspec.Struct):
    id: int
    name: str
    host: str
    api_port: int
    api_tls: bool
    api_tls_verify: bool
    username: str
    enabled: bool
    auth_mode: str
    custom: dict[str, Any]
    in_sync: Annotated[bool, msgspec.Meta(
        description="enabled and its last run reached it and ended in step (drift it repaired included)")]
    services: int
    sync: SyncState | None
    created_at: dt.datetime
    updated_at: dt.datetime


class RouterQuery(msgspec.Struct, kw_only=True):
    q: Annotated[str, msgspec.Meta(max_length=100, pattern=r"^[^\x00]*$",
                                   description="part of the name or host")] | None = None
    sync: Literal["out"] | None = None
    sort: Literal["name", "host"] = "name"
    dir: Direction = "asc"
    after: str | None = None
    limit: Limit = 50


class SyncRequested(msgspec.Struct):
    id: int
    requested_at: dt.datetime
    detail: str


# -- IP pools -------------------------------------------------------------------------------------

class PoolIn(msgspec.Struct, kw_only=True):
    """A new address pool: 'lastmile' pools (IPv4, at most a /16) are leased by radiusd, one
    address per session; 'nas' pools are only named in Framed-Pool and the NAS allocates."""

    name: Name
    network: Annotated[Address, msgspec.Meta(description="a prefix, e.g. 100.64.0.0/22; pools may not overlap")]
    managed_by: Literal["lastmile", "nas"] = "lastmile"


class PoolPatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Only the name changes (the addresses of a pool are its leases)."""

    name: Name | msgspec.UnsetType = msgspec.UNSET


class Pool(msgspec.Struct):
    id: int
    name: str
    network: str
    managed_by: str
    size: Annotated[int | None, msgspec.Meta(description="addresses (leases) of a lastmile pool; null for a nas pool")]
    free: int | None
    bound: int | None
    held: Annotated[int | None, msgspec.Meta(description="reserved or in a radiusd's stock")]
    services: int
    created_at: dt.datetime
    updated_at: dt.datetime


class PoolQuery(msgspec.Struct, kw_only=True):
    q: Query | None = None
    sort: Literal["name", "network"] = "name"
    dir: Direction = "asc"
    after: str | None = None
    limit: Limit = 50


class Lease(msgspec.Struct):
    address: str
    state: str
    service_id: int | None
    login: str | None
    acct_unique_id: str | None
    holder: str | None
    expires_at: dt.datetime | None
    updated_at: dt.datetime


class LeaseQuery(msgspec.Struct, kw_only=True):
    state: Literal["free", "stock", "reserved", "bound"] | None = None
    dir: Direction = "asc"
    after: str | None = None
    limit: Limit = 50


# -- flow exporters -------------------------------------------------------------------------------

class ExporterIn(msgspec.Struct, kw_only=True):
    """A NetFlow/IPFIX exporter flowcollector accepts flows from."""

    name: Name
    address: Annotated[Address, msgspec.Meta(description="the exporter's source address")]
    sampling_rate: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1, description="1 in N packets, when the "
                                                                                 "exporter does not say")] = 1
    router_id: Id | None = None
    enabled: bool = True


class ExporterPatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    address: Address | msgspec.UnsetType = msgspec.UNSET
    sampling_rate: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | msgspec.UnsetType = msgspec.UNSET
    router_id: Id | msgspec.UnsetType | None = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class Exporter(msgspec.Struct):
    id: int
    name: str
    address: str
    sampling_rate: int
    router_id: int | None
    router: str | None
    enabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class ExporterQuery(msgspec.Struct, kw_only=True):
    q: Query | None = None
    sort: Literal["name", "address"] = "name"
    dir: Direction = "asc"
    after: str | None = None
    limit: Limit = 50


# -- checks ---------------------------------------------------------------------------------------

def network(text: str) -> str:
    """A host or a prefix as PostgreSQL's cidr keeps it ("192.0.2.1" -> "192.0.2.1/32")."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=True))
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError("must be an address or a prefix, like 192.0.2.1 or 192.0.2.0/28") from None
    raise ValueError(f"has bits set after the prefix: the prefix is {loose}")


def host_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError("must be one IP address, like 192.0.2.1") from None


def pool_network(text: str, managed_by: str) -> str:
    net = ipaddress.ip_network(network(text))
    if managed_by == "lastmile":
        if net.version != 4:
            raise ValueError("a lastmile pool is IPv4 (an IPv6 pool is managed by the NAS)")
        if net.prefixlen < 32 - MAX_POOL_BITS:
            raise ValueError(f"is too large for a lastmile pool (one row per address): at most a /{32 - MAX_POOL_BITS}"
                             ", split it into several pools")
    return str(net)


def host_name(text: str) -> str:
    """A router's host: an IP address or a DNS name."""
    text = text.strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    if not all(0 < len(p) <= 63 and p.replace("-", "").isalnum() and p.isascii() and not p.startswith("-")
               and not p.endswith("-") for p in labels):
        raise ValueError("must be a host name or an IP address, like router1.example.net or 192.0.2.1")
    return text


def secret_hint(secret: str) -> str:
    """A secret as lists show it: masked, with its last two characters when it is long enough
    that they say little."""
    return "••••••" + (secret[-2:] if len(secret) >= 8 else "")


# -- constraints ----------------------------------------------------------------------------------

BLASTRADIUS = ("must stay on when Message-Authenticator is not required: one of the two protects this NAS "
               "from BlastRADIUS (CVE-2024-3596)")

CONSTRAINTS: dict[str, tuple[str, str]] = {
    "nas_name_unique": ("name", "another NAS has this name"),
    "nas_secret_nonempty": ("secret", "is required"),
    "nas_type_valid": ("type", "is not a known type"),
    "nas_coa_port_range": ("coa_port", "must be from 1 to 65535"),
    "nas_router_fk": ("router_id", "no such router"),
    "nas_blastradius_protected": ("limit_proxy_state", BLASTRADIUS),
    "nas_address_no_overlap": ("address", "overlaps the address of another NAS"),
    "routers_name_unique": ("name", "another router has this name"),
    "routers_api_port_range": ("api_port", "must be from 1 to 65535"),
    "routers_auth_mode_valid": ("auth_mode", "must be radius or api"),
    "ip_pools_name_unique": ("name", "another pool has this name"),
    "ip_pools_managed_by_valid": ("managed_by", "must be lastmile or nas"),
    "ip_pools_network_no_overlap": ("network", "overlaps another pool"),
    "flow_exporters_name_unique": ("name", "another exporter has this name"),
    "flow_exporters_address_unique": ("address", "another exporter has this address"),
    "flow_exporters_sampling_positive": ("sampling_rate", "must be 1 or more"),
    "flow_exporters_router_fk": ("router_id", "no such router"),
}


def constraint_error(constraint: str) -> dict[str, str]:
    field, text = CONSTRAINTS.get(constraint, ("", f"refused by the database's rule {constraint or '(unnamed)'}"))
    return {field: text}
