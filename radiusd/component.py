"""radiusd joins lastmile here (daemons/registry.py): its command, settings, tools and addresses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from daemons.registry import Component, Tool
from radiusd.settings import RadiusdSettings

if TYPE_CHECKING:
    from daemons.config import Settings


def _addresses(settings: Settings) -> list[tuple[str, str]]:
    from daemons import demo

    rs = settings.of(RadiusdSettings)
    return [("radiusd", f"auth udp/{rs.bind}:{rs.auth_port}, acct udp/{rs.bind}:{rs.acct_port}, "
                        f"NAS secret '{demo.NAS_SECRET}'")]


def _state_dirs(settings: Settings) -> list[str]:
    from daemons import workers

    return [str(workers.state_base(settings.of(RadiusdSettings).spool_dir, "radiusd"))]


COMPONENT = Component(
    name="radiusd",
    summary="RADIUS authentication, accounting, CoA/Disconnect",
    settings=RadiusdSettings,
    main="radiusd.__main__:main",
    addresses=_addresses,
    state_dirs=_state_dirs,
    tools=(Tool("radius", "RADIUS tools: test a login, disconnect a subscriber", "radiusd.tool:main",
                "`test LOGIN PASSWORD [--mac ...]` or `disconnect LOGIN`"),),
    order=10,
)
