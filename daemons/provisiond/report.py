"""What a run tells people about a router, beyond the changes: objects on the router that billing
does not know (revenue leaks: someone surfs without a bill) and services the router lacks. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from daemons.provisiond.desired import Service
from daemons.provisiond.model import DHCP_LEASE, PPP_SECRET, QUEUE, Item
from daemons.provisiond.plan import Plan

LIMIT = 200  # entries of each list kept in a report


def _addresses(target: str) -> set[str]:
    return {part.split("/")[0] for part in target.split(",") if part}


def leaks(observed: Iterable[Item], services: Iterable[Service]) -> list[str]:
    """Objects without lastmile's tag whose name or address matches no live service: a queue, PPP
    secret or DHCP lease that lets someone on the network that billing does not charge."""
    live = [s for s in services if s.live]
    logins = {s.login for s in live}
    addresses = {s.ipv4 for s in live if s.ipv4}
    out = []
    for it in observed:
        if it.owned:
            continue
        a = it.attrs
        if it.menu is QUEUE and a.get("name") not in logins and not _addresses(a.get("target", "")) & addresses:
            out.append(f"queue {a.get('name', '')} (target {a.get('target', '')}) matches no active service")
        elif it.menu is PPP_SECRET and a.get("name") not in logins:
            out.append(f"PPP secret {a.get('name', '')} matches no active service")
        elif it.menu is DHCP_LEASE and a.get("address") not in addresses:
            out.append(f"DHCP lease {a.get('address', '')} ({a.get('mac-address', '')}) matches no active service")
    return out


def build(p: Plan, observed: list[Item], services: list[Service]) -> dict[str, Any]:
    """The report router_sync keeps: drift found (the changes made), conflicts, leaks; refusals
    (``failed``) are added by the run that met them."""
    missing = [f"{c.describe()}: an object without lastmile's tag has its {'/'.join(c.menu.key)}"
               " (`lastmile routers import` adopts it)" for c in p.conflicts]
    return {
        "drift": [c.describe() for c in p.changes][:LIMIT],
        "missing": missing[:LIMIT],
        "leaks": leaks(observed, services)[:LIMIT],
        "failed": [],
    }
