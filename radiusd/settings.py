"""radiusd's settings: the ``[radiusd]`` section (docs/configuration.md is generated from it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from daemons.config import (
    DaemonSettings,
    is_address,
    is_listen_port,
    is_non_negative,
    is_positive,
    listen_port,
    setting,
)


@dataclass(frozen=True, slots=True)
class RadiusdSettings(DaemonSettings):
    bind: str = setting("0.0.0.0", "Address RADIUS listens on (`::` for IPv6 and IPv4).", check=is_address)
    auth_port: int = listen_port(1812, "RADIUS authentication port (UDP, 1-65535).", check=is_listen_port)
    acct_port: int = listen_port(1813, "RADIUS accounting port (UDP, 1-65535).", check=is_listen_port)
    metrics_port: int = listen_port(9812, "Port of `/metrics` (0: none); worker N of several uses this + N.")
    workers: int = setting(1, "Processes sharing the ports with SO_REUSEPORT.", check=is_positive)
    blocked_action: Literal["address-list", "reject"] = setting(
        "address-list",
        "A blocked customer's login: `address-list` accepts it into `blocked_address_list` (the router "
        "redirects it to the payment page), `reject` sends Access-Reject.",
    )
    blocked_address_list: str = setting("blocked", "Mikrotik-Address-List of blocked customers' sessions.")
    block_method: Literal["disconnect", "coa"] = setting(
        "disconnect",
        "How a block or unblock reaches a live session: `disconnect` (Disconnect-Request; the "
        "router logs it in again) or `coa` (CoA-Request with the address list).",
    )
    interim_interval: int = setting(
        300, "Acct-Interim-Interval sent in every Access-Accept (seconds).", check=is_positive
    )
    stale_grace: int = setting(
        120,
        "A session without an update for 2 x interim_interval + this many seconds is closed as stale "
        "(0: right after two missed interims).",
        check=is_non_negative,
    )
    duplicate_ttl: float = setting(
        10.0, "Seconds a reply is kept to answer retransmissions (RFC 5080).", check=is_positive
    )
    max_attributes: int = setting(200, "Most attributes a request may carry.", check=is_positive)
    acct_batch: int = setting(500, "Most accounting records committed in one transaction.", check=is_positive)
    db_deadline: float = setting(
        1.0,
        "Seconds radiusd waits for PostgreSQL where a NAS waits for the answer: an accounting commit not done "
        "by then is spooled and acknowledged (it may still commit later; the replay is then a no-op), and a "
        "login's Simultaneous-Use check or pool lease is decided from memory. Keep it well below the NAS's "
        "retransmission timeout.",
        check=is_positive,
    )
    spool_dir: str = setting(
        "",
        "Where accounting is spooled while PostgreSQL is away. Empty: `$STATE_DIRECTORY` (systemd) or `var/radiusd`.",
    )
    pool_reserve: int = setting(
        60,
        "Seconds an address from a pool stays reserved for a session that has not started accounting yet.",
        check=is_positive,
    )
    pool_stock: int = setting(
        64,
        "Addresses of each lastmile pool that a radiusd instance keeps taken out of circulation for itself, "
        "so that a login without a previous address to get back is answered without waiting for a commit "
        "(0: every pool login waits for the database).",
        check=is_non_negative,
    )
    dictionary_dir: str = setting(
        "",
        "Directory of extra RADIUS dictionaries in the FreeRADIUS format (a vendor's attributes, for "
        "`tariffs.radius_reply`, CoA and `lastmile radius test`); every file in it is read. Empty: the shipped "
        "ones only (RFC, Microsoft, MikroTik). A broken file stops start-up with its name and line.",
    )
    coa_timeout: float = setting(2.0, "Seconds to wait for a CoA/Disconnect answer before retrying.", check=is_positive)
    coa_retries: int = setting(3, "CoA/Disconnect attempts before giving up.", check=is_positive)
    rcvbuf: int = setting(8 << 20, "Receive buffer asked for each UDP socket (bytes).", check=is_positive)
