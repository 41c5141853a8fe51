"""flowcollector joins lastmile here (daemons/registry.py): its command, settings, tools and addresses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from daemons.registry import Component, Tool
from flowcollector.settings import FlowcollectorSettings

if TYPE_CHECKING:
    from daemons.config import Settings


def _addresses(settings: Settings) -> list[tuple[str, str]]:
    fs = settings.of(FlowcollectorSettings)
    return [("flowcollector", f"NetFlow udp/{fs.bind}:{fs.netflow_port}, IPFIX udp/{fs.bind}:{fs.ipfix_port}")]


def _state_dirs(settings: Settings) -> list[str]:
    from daemons import workers

    return [str(workers.state_base(settings.of(FlowcollectorSettings).state_dir, "flowcollector"))]


COMPONENT = Component(
    name="flowcollector",
    summary="NetFlow v5/v9 and IPFIX into per-subscriber traffic",
    settings=FlowcollectorSettings,
    main="flowcollector.__main__:main",
    addresses=_addresses,
    state_dirs=_state_dirs,
    tools=(Tool("flows", "flow tools: who passes traffic nobody pays for", "flowcollector.tool:main",
                "`leaks [--since DURATION] [--limit N]`"),),
    order=20,
)
