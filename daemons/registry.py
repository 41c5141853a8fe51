"""The components lastmile is made of, found by their entry points: the kit names none of them.

A component joins with one declaration, a :class:`Component` named ``COMPONENT`` in a module of
its own, and one entry point that points at it, in its distribution's metadata::

    [project.entry-points."lastmile.components"]
    radiusd = "radiusd.component:COMPONENT"

From that declaration ``lastmile <name>`` runs it (what its systemd unit runs), its settings
section ``[<name>]`` is read and documented, ``lastmile up`` starts it and prints its addresses,
and its tools become commands (``lastmile radius ...``). Nothing of the component is imported
until one of those needs it, and then only by the dotted names given here (``"radiusd.__main__:
main"``), so ``lastmile --help`` stays light and the kit keeps to its rule: it imports no
component (tests/unit/test_layering.py).

The declaring module must be cheap to import: it should import the component's settings
dataclass and nothing heavier.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daemons.config import DaemonSettings, Settings

GROUP = "lastmile.components"

Addresses = Callable[["Settings"], list[tuple[str, str]]]


@dataclass(frozen=True, slots=True)
class Tool:
    """A command a component adds: ``lastmile <name> ARGS...`` calls ``entry(settings, argv) -> int``."""

    name: str
    summary: str
    entry: str  # "radiusd.tool:main"
    usage: str = ""  # how the arguments go, for `lastmile --help`


@dataclass(frozen=True, slots=True)
class Component:
    """One component, as the kit sees it.

    ``name`` is at once the command that runs it (``lastmile <name>``), its settings section
    ``[<name>]`` (a ``settings`` dataclass the component owns, derived from ``DaemonSettings``
    for a daemon) and its systemd unit ``systemd/lastmile-<name>.service``. ``main`` is the
    daemon's entry point, ``main(settings) -> int`` (None for a component of tools only).
    ``addresses(settings)`` gives the lines ``lastmile up`` prints for it, label and value; its
    metrics URL is added from its section. ``state_dirs(settings)`` names the directories its
    daemon keeps state in (backups take them).
    """

    name: str
    summary: str
    settings: type[DaemonSettings] | None = None
    main: str | None = None
    addresses: Addresses | None = None
    tools: tuple[Tool, ...] = ()
    state_dirs: Callable[[Settings], list[str]] | None = None
    #: Whether ``lastmile up`` starts it (a daemon that needs a peer `up` cannot provide may not).
    up: bool = True
    #: Where ``lastmile up`` sees it ready (``lastmile_ready{daemon=...} 1``); default: its section's /metrics.
    ready_url: Callable[[Settings], str | None] | None = None
    order: int = 50  # `up` starts components in this order, then by name
    #: ``"module:function"``, ``function(settings, database_url) -> [(label, value)]``: run by ``lastmile up``
    #: on demo data (the admin makes its demo administrator); the lines are printed with the addresses.
    demo: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def unit(self) -> str:
        return f"lastmile-{self.name}.service"

    def metrics_url(self, settings: Settings) -> str | None:
        """Its ``/metrics``: on its section's metrics port, or, for a component that serves
        ``/metrics`` on its own port (the admin), where it is seen ready."""
        section = settings.section(self.name) if self.settings is not None else None
        port = getattr(section, "metrics_port", 0) if section is not None else 0
        if section is not None and port:
            return f"http://{section.metrics_bind}:{port}/metrics"
        return self.ready_url(settings) if self.ready_url is not None else None

    def readiness_url(self, settings: Settings) -> str | None:
        return self.ready_url(settings) if self.ready_url is not None else self.metrics_url(settings)


class RegistryError(Exception):
    """A component's declaration is wrong; ``str()`` names the entry point and what is wrong."""


@functools.cache
def components() -> dict[str, Component]:
    """Every installed component, by name, in start order."""
    found: list[Component] = []
    for entry in importlib.metadata.entry_points(group=GROUP):
        try:
            component = entry.load()
        except Exception as e:
            raise RegistryError(f"component {entry.name} ({entry.value}): cannot be loaded: {e}") from e
        if not isinstance(component, Component):
            raise RegistryError(f"component {entry.name} ({entry.value}) is not a daemons.registry.Component")
        if component.name != entry.name:
            raise RegistryError(f"component {entry.value} calls itself {component.name!r}, its entry point "
                                f"{entry.name!r}")
        found.append(component)
    names = [c.name for c in found]
    if len(set(names)) != len(names):
        raise RegistryError(f"two components share a name: {sorted(n for n in names if names.count(n) > 1)}")
    return {c.name: c for c in sorted(found, key=lambda c: (c.order, c.name))}


def load(dotted: str) -> Any:
    """``"package.module:attribute"`` → the attribute (a component's entry point or tool)."""
    module, _, attribute = dotted.partition(":")
    return getattr(importlib.import_module(module), attribute)
