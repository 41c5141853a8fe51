"""flowcollector's settings: the ``[flowcollector]`` section (docs/configuration.md is generated from it)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from daemons.config import DaemonSettings, is_address, is_listen_port, is_positive, listen_port, setting


@dataclass(frozen=True, slots=True)
class FlowcollectorSettings(DaemonSettings):
    @staticmethod
    def _are_prefixes(value: tuple[str, ...]) -> str | None:
        for prefix in value:
            try:
                ipaddress.ip_network(prefix)
            except ValueError as e:
                return f"must be IPv4/IPv6 prefixes ({e})"
        return None

    bind: str = setting("0.0.0.0", "Address the flow listeners bind (`::` for IPv6 and IPv4).", check=is_address)
    netflow_port: int = listen_port(2055, "NetFlow v5/v9 port (UDP, 1-65535); takes IPFIX too.", check=is_listen_port)
    ipfix_port: int = listen_port(4739, "IPFIX port (UDP, 1-65535); takes NetFlow too.", check=is_listen_port)
    metrics_port: int = listen_port(9855, "Port of `/metrics` (0: none); worker N of several uses this + N.")
    workers: int = setting(1, "Processes sharing the ports with SO_REUSEPORT.", check=is_positive)
    flush_interval: float = setting(
        5.0, "Seconds between writes of the per-minute counters to PostgreSQL.", check=is_positive
    )
    max_backlog_rows: int = setting(
        2_000_000,
        "Counter rows held while PostgreSQL is away; beyond, the oldest are dropped and counted.",
        check=is_positive,
    )
    rcvbuf: int = setting(
        32 << 20,
        "Receive buffer asked for each UDP socket (bytes); raise net.core.rmem_max to match.",
        check=is_positive,
    )
    state_dir: str = setting(
        "", "Where templates are kept across restarts. Empty: `$STATE_DIRECTORY` (systemd) or `var/flowcollector`."
    )
    template_timeout: float = setting(
        1800.0, "Seconds a template lives after it was last announced.", check=is_positive
    )
    rollup_interval: float = setting(
        300.0, "Seconds between hourly/daily rollups of the traffic tables.", check=is_positive
    )
    late_window: float = setting(
        86400.0,
        "Flows that ended up to this many seconds ago are late traffic, booked at the start of their own hour "
        "(rollups then see it); older ones at arrival, counted. Ended sessions are kept this long for them.",
        check=is_positive,
    )
    own_prefixes: tuple[str, ...] = setting(
        (),
        "The ISP's own address space (prefixes): unknown traffic whose subscriber side is in it is recorded "
        "per address, for `lastmile flows leaks`. Empty: the networks of `ip_pools` and the addresses and "
        "prefixes of all services, kept current from the database.",
        check=_are_prefixes,
    )
    max_unknown_addresses: int = setting(
        10000,
        "Distinct own addresses of unknown traffic recorded per flush; the rest are folded into "
        "0.0.0.0/0 or ::/0 (\"other addresses\") and counted.",
        check=is_positive,
    )
    max_sampling_rate: int = setting(
        65535,
        "Highest sampling rate (1 in N) an exporter may announce and be believed; a higher one is "
        "dropped and counted (`sampling_too_high`). `flow_exporters.sampling_rate` is not capped by it.",
        check=lambda v: None if 1 <= v <= 1 << 20 else "must be from 1 to 1048576",
    )
