"""The admin's settings: the ``[admin]`` section (docs/configuration.md is generated from it)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from daemons.config import DaemonSettings, is_address, is_listen_port, is_positive, listen_port, setting


def networks(value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """``"10.0.0.0/8, 192.0.2.7"`` -> networks (ValueError names the bad one)."""
    out = []
    for part in value.replace(",", " ").split():
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an address or a network") from None
    return out


def _is_networks(value: str) -> str | None:
    try:
        networks(value)
    except ValueError as e:
        return f"must be addresses or networks separated by commas: {e}"
    return None


@dataclass(frozen=True, slots=True)
class AdminSettings(DaemonSettings):
    bind: str = setting("127.0.0.1", "Address the admin, the API and `/metrics` listen on.", check=is_address)
    port: int = listen_port(8080, "Port of the admin (`/admin`), the REST API (`/api/v1`) and `/metrics`.",
                            check=is_listen_port)
    public_url: str = setting(
        "", "The admin's address as browsers reach it (`https://admin.example.net`), for links and the "
        "two-factor issuer. Empty: http://bind:port.")
    tls: bool = setting(
        False, "The admin is reached over HTTPS (a TLS proxy in front): cookies get `Secure` and HSTS is sent.")
    allow_from: str = setting(
        "", "Addresses or networks allowed to reach `/admin` and `/api/v1`, separated by commas (each API key "
        "may narrow it further). Empty: any address.", check=_is_networks)
    metrics_allow: str = setting(
        "127.0.0.0/8, ::1", "Addresses or networks allowed to read `/metrics`.", check=_is_networks)
    trusted_proxies: str = setting(
        "", "Proxies whose `X-Forwarded-For` names the client (the last address not in this list is the "
        "client's). Empty: the peer's address is the client's.", check=_is_networks)
    login_failures_per_account: int = setting(
        5, "Failed logins of one account within `login_window` that lock it for the rest of the window.",
        check=is_positive)
    login_failures_per_address: int = setting(
        20, "Failed logins from one address within `login_window` that lock that address out.", check=is_positive)
    login_window: float = setting(900.0, "Seconds over which failed logins are counted.", check=is_positive)
    portal_allow_from: str = setting(
        "", "Addresses or networks allowed to reach the customer portal (`/portal`), separated by commas; "
        "`allow_from` does not apply to it (customers are on the internet). Empty: any address.", check=_is_networks)
    portal_idle_timeout: int = setting(
        1800, "Seconds a customer's portal session lasts without a request.", check=is_positive)
    portal_absolute_timeout: int = setting(
        43200, "Seconds a customer's portal session lasts at most, however busy.", check=is_positive)
    default_page: str = setting(
        "admin", "Where `/` leads: `admin` (the admin's login and dashboard) or `portal` (the customer portal).",
        check=lambda v: None if v in ("admin", "portal") else "must be admin or portal")
    page_size: int = setting(50, "Rows per page of the list pages and API lists (at most 500 by `limit`).",
                             check=lambda v: None if 1 <= v <= 500 else "must be from 1 to 500")
