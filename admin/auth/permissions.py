"""Permissions: an area and an action, ``"customers.edit"``; roles are sets of them.

Every route declares the permission it needs (admin/web.py); a role grants permissions, and an
administrator's own grants and revokes adjust the role's. The built-in roles are rows of
schema.sql (``admin_roles.builtin``), written from :data:`BUILTIN` here
(tests/db/test_admin_roles.py holds the two equal).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

AREAS: dict[str, str] = {
    "dashboard": "Dashboard",
    "customers": "Customers",
    "tariffs": "Tariff plans",
    "finance": "Finance",
    "payments": "Payments",
    "notifications": "Notifications",
    "networking": "Networking",
    "support": "Support",
    "inventory": "Inventory",
    "voice": "Voice",
    "administration": "Administration",
    "config": "Config",
}
ACTIONS = ("view", "add", "edit", "delete")
ALL = frozenset(f"{area}.{action}" for area in AREAS for action in ACTIONS)


@dataclass(frozen=True, slots=True)
class Builtin:
    key: str
    name: str
    permissions: frozenset[str]
    own_customers_only: bool = False


def _of(*specs: str) -> frozenset[str]:
    """``"customers.*"`` (every action), ``"tariffs.view"``."""
    out: set[str] = set()
    for spec in specs:
        area, _, action = spec.partition(".")
        out |= {f"{area}.{a}" for a in ACTIONS} if action == "*" else {spec}
    assert out <= ALL, out - ALL
    return frozenset(out)


SUPER = "super"
"""The super administrator's key: it has every permission, those added later included."""

BUILTIN: tuple[Builtin, ...] = (
    Builtin(SUPER, "Super administrator", ALL),
    Builtin("admin", "Administrator", ALL - _of("config.*")),
    Builtin("creator", "Customer creator", _of("dashboard.view", "customers.view", "customers.add", "customers.edit",
                                               "tariffs.view"), own_customers_only=True),
    Builtin("finance", "Financial manager", _of("dashboard.view", "customers.view", "tariffs.view", "finance.*",
                                                "payments.*", "notifications.*")),
    Builtin("manager", "Manager", _of("dashboard.view", "customers.*", "tariffs.*", "finance.view", "payments.view",
                                      "support.*", "networking.view", "inventory.view", "voice.view",
                                      "notifications.view")),
    Builtin("engineer", "Engineer", _of("dashboard.view", "customers.view", "tariffs.view", "networking.*",
                                        "support.view", "support.edit", "inventory.view")),
    Builtin("technician", "Technician", _of("dashboard.view", "customers.view", "networking.view", "support.view",
                                            "support.edit", "inventory.view", "inventory.edit")),
    # The cash desk: takes payments and sees whom from, nothing else (no reversal, no settings).
    Builtin("cashier", "Cashier", _of("dashboard.view", "customers.view", "payments.view", "payments.add")),
)


def effective(role_permissions: Iterable[str], grants: Iterable[str], revokes: Iterable[str], *,
              super_role: bool = False) -> frozenset[str]:
    """What an administrator may do: the role's permissions, plus its grants, minus its revokes
    (a super administrator has everything, whatever its revokes say)."""
    if super_role:
        return ALL
    return ((frozenset(role_permissions) | frozenset(grants)) - frozenset(revokes)) & ALL


def sql_rows() -> str:
    """The built-in roles as schema.sql inserts them (for editing schema.sql when BUILTIN changes)."""
    lines = []
    for b in BUILTIN:
        perms = ",".join(sorted(b.permissions))
        lines.append(f"    ('{b.name}', '{b.key}', '{{{perms}}}', {str(b.own_customers_only).lower()})")
    return ",\n".join(lines)
