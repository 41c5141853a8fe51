"""provisiond's settings: the ``[provisiond]`` section (docs/configuration.md is generated from it)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from daemons.config import DaemonSettings, is_non_negative, is_positive, listen_port, setting


def _is_share(value: float) -> str | None:
    return None if 0 < value <= 1 else "must be above 0 and at most 1"


def _is_list_name(value: str) -> str | None:
    return None if re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value) else "must be 1-64 letters, digits, '_', '.' or '-'"


@dataclass(frozen=True, slots=True)
class ProvisiondSettings(DaemonSettings):
    metrics_port: int = listen_port(9728, "Port of `/metrics` (0: none).")
    concurrency: int = setting(8, "Routers reconciled at once (one connection to each).", check=is_positive)
    connect_timeout: float = setting(
        5.0, "Seconds to connect to a router and log in; a router that does not answer is unreachable.",
        check=is_positive)
    command_timeout: float = setting(
        10.0, "Seconds one RouterOS API command may take (a read of a whole menu included).", check=is_positive)
    run_timeout: float = setting(
        120.0, "Seconds a whole reconcile of one router may take; then it is abandoned and retried.",
        check=is_positive)
    full_interval: float = setting(
        300.0, "Seconds between full reconciles of every router (repairs changes made by hand on a router).",
        check=is_positive)
    debounce: float = setting(
        0.05, "Seconds to gather the changes a notification names before the routers they touch are reconciled.",
        check=is_non_negative)
    backoff_max: float = setting(
        300.0, "Longest wait between attempts on an unreachable router (doubling from 1 s, with jitter).",
        check=is_positive)
    max_remove_share: float = setting(
        0.5,
        "A run that would remove more than this share of the objects lastmile owns on a router (and more "
        "than 10) stops before writing and reports it; `lastmile routers sync ROUTER --force` applies it.",
        check=_is_share)
    blocked_list: str = setting(
        "blocked", "Firewall address list of the addresses of blocked customers and services (the list "
        "radiusd's `blocked_address_list` names for sessions, so one firewall rule serves both).",
        check=_is_list_name)
    new_list: str = setting(
        "new", "Address list of the addresses of customers in status `new`, when `list_new` is on.",
        check=_is_list_name)
    list_new: bool = setting(False, "Put the addresses of customers in status `new` in `new_list`.")
    ca_file: str = setting(
        "", "CA certificates (PEM) that routers' API-SSL certificates are checked against. Empty: the system's.")
    pipeline: int = setting(
        64, "RouterOS API commands sent to one router before their answers are read (tagged).",
        check=lambda v: None if 1 <= v <= 1024 else "must be from 1 to 1024")
