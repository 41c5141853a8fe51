"""Who may hand out what. An administrator (or API key) never gives more than it has:

- only a super administrator makes, edits or manages a super administrator, gives the super role
  (to an administrator or an API key) or edits the super role;
- a role given, or permissions added to a role or as an administrator's grants, must be within
  the giver's own permissions (a super administrator has them all);
- an administrator is managed (edited, disabled, its two-factor reset, its sessions ended) only
  by one whose permissions cover its own;
- a partner's administrator sees and manages only its partner's administrators and API keys
  (another partner's are "not found") and makes only its partner's; it does not edit the roles,
  which every partner shares.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from admin import schemas
from admin.administration import queries
from admin.administration.queries import Row
from admin.auth import permissions
from admin.auth.principal import Principal
from admin.auth.store import Connection


@dataclass(frozen=True, slots=True)
class Actor:
    who: Principal
    is_super: bool

    def lacks(self, wanted: Iterable[str]) -> list[str]:
        """The permissions of ``wanted`` this actor may not give (it lacks them)."""
        return [] if self.is_super else sorted(set(wanted) - self.who.permissions)


async def actor(conn: Connection, who: Principal) -> Actor:
    return Actor(who, await queries.is_super(conn, who.admin_id, who.api_key_id))


def role_permissions(role: Row) -> frozenset[str]:
    return permissions.effective(role["permissions"], (), (), super_role=role["builtin"] == permissions.SUPER)


def give_role(a: Actor, role: Row | None) -> str | None:
    """Why ``a`` may not give ``role`` (to an administrator or an API key), or None."""
    if role is None:
        return "no such role"
    if role["builtin"] == permissions.SUPER and not a.is_super:
        return "only a super administrator may give the super role"
    if missing := a.lacks(role_permissions(role)):
        return "this role has permissions you do not have: " + ", ".join(missing)
    return None


def add_permissions(a: Actor, added: Iterable[str]) -> str | None:
    unknown = sorted(set(added) - permissions.ALL)
    if unknown:
        return "no such permission: " + ", ".join(unknown)
    if missing := a.lacks(added):
        return "you cannot give permissions you do not have: " + ", ".join(missing)
    return None


def effective(row: Row) -> frozenset[str]:
    """An administrator row's permissions (queries._ADMIN)."""
    return permissions.effective(row["role_permissions"], row["grants"], row["revokes"],
                                 super_role=row["builtin"] == permissions.SUPER)


def manage(a: Actor, target: Row) -> None:
    """Refuse (403) when ``a`` may not manage the administrator ``target``."""
    if target["builtin"] == permissions.SUPER and not a.is_super:
        raise web.HTTPForbidden(text="Only a super administrator may change a super administrator.")
    if missing := a.lacks(effective(target)):
        raise web.HTTPForbidden(text="This administrator has permissions you do not have: " + ", ".join(missing))


def edit_roles(who: Principal) -> None:
    if who.partner_id is not None:
        raise web.HTTPForbidden(text="Roles are shared by every partner: a partner's administrator cannot change "
                                     "them.")


def partner(who: Principal, wanted: int | None) -> tuple[int | None, str | None]:
    """The partner a new administrator or key gets: a partner's administrator makes only its own."""
    if who.partner_id is not None and wanted != who.partner_id:
        return who.partner_id, "must be your own partner"
    return wanted, None


def snapshot(row: Row, columns: Iterable[str]) -> dict[str, Any]:
    """The ``columns`` of ``row`` for the operations log's before/after."""
    return {c: schemas.jsonable(row[c]) for c in columns}

