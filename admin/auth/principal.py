"""The one asking: an administrator logged in, or an API key; what it may do and see."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    name: str                         # the administrator's login, or "key:<name>"
    role: str
    permissions: frozenset[str]
    admin_id: int | None = None
    api_key_id: int | None = None
    #: Set: sees only this partner's rows (another partner's are "not found").
    partner_id: int | None = None
    #: The role's "own customers only" (a Customer creator sees the customers it created).
    own_customers_only: bool = False
    csrf_token: str = ""
    session: bytes | None = None      # the digest of its login session's token

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def creator_id(self) -> int | None:
        """The administrator whose customers alone this one sees, or None (no such limit). An API
        key of an "own customers only" role created no customer: 0, which no administrator is,
        so it sees none (never everyone's)."""
        if not self.own_customers_only:
            return None
        return self.admin_id if self.admin_id is not None else 0
