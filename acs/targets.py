"""Which ConnectionRequestURLs the ACS may call: the check that keeps it from being aimed at
arbitrary hosts.

A CPE reports its ConnectionRequestURL in every Inform, so whoever can inform (or edit a device
row) chooses where the ACS sends an HTTP GET with credentials. The ACS therefore calls a URL only
when all of these hold:

- the scheme is ``http`` or ``https`` and the URL has no user information (``user@host``: a way
  to smuggle a different host past a careless reader) and no control characters, spaces or
  backslashes;
- the host is an IP literal (a dotted quad, or IPv6 in brackets without a zone): no names, so no
  DNS answer can move the target after the check;
- the host is the address the device informed from, or lies inside one of the configured
  networks (``[acs] connection_request_networks``: CPEs behind a NAT that the ACS reaches on
  their LAN side, a management VLAN, 127.0.0.0/8 in tests);
- a loopback, link-local, multicast, unspecified or reserved host only when it lies inside a
  configured network (a device informing through a local proxy must not make the ACS call its
  own loopback services).

Any port is allowed (CPEs use 7547, 30005, 5000, random high ports). IPv4-mapped IPv6 addresses
(``::ffff:a.b.c.d``, as a dual-stack socket reports an IPv4 peer) count as their IPv4 address.
Pure: no I/O, no name resolution.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

_FORBIDDEN = frozenset(" \\\"<>^`{|}") | frozenset(chr(c) for c in range(0x20)) | {"\x7f"}


@dataclass(frozen=True, slots=True)
class Target:
    """A URL that passed the check, split: what the sender connects to."""

    scheme: str
    host: Address
    port: int
    url: str


def _plain(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_address(text: str) -> Address | None:
    """An IP address as the server saw the peer (``host(address)`` of the row), or None."""
    try:
        return _plain(ipaddress.ip_address(text))
    except ValueError:
        return None


def parse_networks(texts: Sequence[str]) -> list[Network]:
    """The ``connection_request_networks`` setting; raises ValueError naming a bad entry."""
    networks: list[Network] = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as e:
            raise ValueError(f"connection_request_networks: {text!r} is not a network ({e})") from e
    return networks


def _special(address: Address) -> str | None:
    for flag in ("loopback", "link_local", "multicast", "unspecified", "reserved"):
        if getattr(address, f"is_{flag}"):
            return flag.replace("_", "-")
    return None


def _split(url: str) -> tuple[str, str, str] | str:
    """(scheme, host text, port text) of ``url``, or the reason it is refused."""
    if any(c in _FORBIDDEN for c in url) or any(ord(c) > 0x7E for c in url):
        return "the URL holds spaces, control or non-ASCII characters"
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "not an absolute URL"
    scheme = scheme.lower()
    if scheme not in ("http", "https"):
        return f"scheme {scheme!r} is not http or https"
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:end]
    if "@" in authority:
        return "the URL has user information (user@host)"
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            return "an IPv6 host without its closing bracket"
        host, after = authority[1:close], authority[close + 1:]
        if "%" in host:
            return "an IPv6 zone (%) is not allowed"
        if after and not after.startswith(":"):
            return "garbage after the IPv6 host"
        port = after[1:] if after else ""
        if after == ":":
            return "an empty port"
        return scheme, host, port
    host, colon, port = authority.partition(":")
    if colon and not port:
        return "an empty port"
    return scheme, host, port


def check(url: str, informed_from: str | None, networks: Sequence[Network]) -> Target | str:
    """The :class:`Target` of ``url`` when the ACS may call it, else the reason it may not (one
    line, for acs_wakeups.error). ``informed_from`` is the device's last Inform address
    (acs_devices.address); ``networks`` the parsed ``connection_request_networks``."""
    parts = _split(url)
    if isinstance(parts, str):
        return parts
    scheme, host_text, port_text = parts
    if not host_text:
        return "the URL has no host"
    try:
        host = _plain(ipaddress.ip_address(host_text))
    except ValueError:
        return f"host {host_text!r} is not an IP address (names are not resolved)"
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return f"port {port_text!r} is not a port number"
        port = int(port_text)
    else:
        port = 443 if scheme == "https" else 80
    target = Target(scheme, host, port, url)
    if any(host in network for network in networks):
        return target
    special = _special(host)
    if special is not None:
        return f"host {host} is a {special} address outside connection_request_networks"
    source = parse_address(informed_from) if informed_from else None
    if source is None:
        return "the device's Inform address is unknown"
    if host != source:
        return f"host {host} is neither the address the device informed from ({source}) " \
               "nor inside connection_request_networks"
    return target
