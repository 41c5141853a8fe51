"""The ACS joins lastmile here (daemons/registry.py): its command, settings and addresses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from acs.settings import AcsSettings
from daemons.registry import Component

if TYPE_CHECKING:
    from daemons.config import Settings


def _addresses(settings: Settings) -> list[tuple[str, str]]:
    s = settings.of(AcsSettings)
    urls = f"{s.url()}/" + (f", https port {s.tls_port}" if s.tls_port else "")
    if s.auth == "none":
        login = "no CPE authentication (auth = none)"
    elif s.username:
        login = f"CPEs authenticate as '{s.username}' (HTTP digest)"
    else:
        login = "HTTP digest with per-device passwords only ([acs] username/password unset)"
    return [("acs", f"CWMP {urls}: {login}")]


COMPONENT = Component(
    name="acs",
    summary="the CWMP/TR-069 auto-configuration server for customers' routers",
    settings=AcsSettings,
    main="acs.__main__:main",
    addresses=_addresses,
    order=40,
)
