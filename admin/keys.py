"""The admin app's typed state (``request.app[POOL]``), and the request's principal."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

from admin.auth.principal import Principal
from admin.settings import AdminSettings, networks
from daemons.secrets import Keyring

if TYPE_CHECKING:
    from admin.auth.apilog import ApiLog
    from admin.web import Area

POOL = web.AppKey("pool", asyncpg.Pool)
SETTINGS = web.AppKey("settings", AdminSettings)
KEYRING = web.AppKey("keyring", Keyring)
AREAS = web.AppKey("areas", list["Area"])
API_LOG: web.AppKey[ApiLog] = web.AppKey("api_log")
PRINCIPAL = web.RequestKey("principal", Principal)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Networks:
    """The address lists of the settings, parsed once."""

    def __init__(self, settings: AdminSettings) -> None:
        self.allow = networks(settings.allow_from)
        self.metrics = networks(settings.metrics_allow)
        self.portal = networks(settings.portal_allow_from)
        self.proxies = networks(settings.trusted_proxies)


NETWORKS = web.AppKey("networks", Networks)


def principal(request: web.Request) -> Principal:
    """Who is asking (set by the auth middleware; every route but the public ones has one)."""
    return request[PRINCIPAL]


def client_address(request: web.Request) -> str | None:
    """The client's address: the peer's, or from X-Forwarded-For when the peer is a trusted proxy."""
    peer = request.remote
    proxies = request.app[NETWORKS].proxies
    if not proxies or peer is None:
        return peer
    chain = [peer] + [a.strip() for a in reversed(request.headers.get("X-Forwarded-For", "").split(",")) if a.strip()]
    for address in chain:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return peer
        if not any(ip in n for n in proxies):
            return address
    return chain[-1]


def allowed(address: str | None, nets: list[Network]) -> bool:
    if not nets:
        return True
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in nets)
