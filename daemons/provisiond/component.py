"""provisiond joins lastmile here (daemons/registry.py): its command, settings and tools."""

from __future__ import annotations

from daemons.provisiond.settings import ProvisiondSettings
from daemons.registry import Component, Tool


def _addresses(_settings: object) -> list[tuple[str, str]]:
    return [("provisiond", "RouterOS API clients of the routers table; `lastmile routers` shows their sync state")]


COMPONENT = Component(
    name="provisiond",
    summary="keeps MikroTik routers in step with billing (RouterOS API)",
    settings=ProvisiondSettings,
    main="daemons.provisiond.__main__:main",
    addresses=_addresses,
    tools=(Tool("routers", "routers: list with sync state, plan, sync, import an existing router",
                "daemons.provisiond.tool:main",
                "`[list]`, `plan ROUTER`, `sync ROUTER [--force]` or `import ROUTER [--apply]`"),),
    order=30,
)
