"""Request and response types of the administration area: the API's (they make its part of the
OpenAPI document) and the forms'."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from admin.auth import permissions
from admin.schemas import Id, Limit

# Text PostgreSQL can store: no NUL character (it would fail in the database, not as a 422).
NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, msgspec.Meta(max_length=200, pattern=NO_NUL)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_NUL)]
LOGIN_PATTERN = "^[a-z0-9][a-z0-9_.@-]{0,63}$"
Login = Annotated[str, msgspec.Meta(pattern=LOGIN_PATTERN, description=(
    "Lower-case letters, digits and _ . @ -, starting with a letter or digit; at most 64 characters."))]
Email = Annotated[str, msgspec.Meta(pattern=r"^[^@\s\x00]+@[^@\s\x00]+$", max_length=200)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1000, description=(
    "At least 10 characters, not beginning or ending with a space."))]
Permission = Annotated[str, msgspec.Meta(
    pattern="^(" + "|".join(permissions.AREAS) + r")\.(" + "|".join(permissions.ACTIONS) + ")$",
    description="An area and an action, like `customers.edit`.")]
IdleTimeout = Annotated[int, msgspec.Meta(ge=60, le=7 * 86400, description="Seconds idle before a session ends.")]
AbsoluteTimeout = Annotated[int, msgspec.Meta(ge=60, le=30 * 86400, description=(
    "Seconds a session lasts at most (not less than the idle timeout)."))]
Cursor = Annotated[str, msgspec.Meta(max_length=500, description="`next` of the previous page.")]
ObjectType = Literal["customer", "service", "tariff", "router"]
Kind = Literal["text", "number", "date", "choice", "url"]
Key = Annotated[str, msgspec.Meta(pattern="^[a-z][a-z0-9_]{0,39}$", description=(
    "Lower-case letters, digits and _, starting with a letter; at most 40 characters."))]


# --- administrators -------------------------------------------------------------------------------

class Administrator(msgspec.Struct):
    id: int
    login: str
    name: str
    email: str | None
    role_id: int
    role: str
    partner_id: int | None
    partner: str | None
    enabled: bool
    two_factor: bool
    grants: list[str]
    revokes: list[str]
    permissions: list[str]
    idle_timeout_s: int
    absolute_timeout_s: int
    last_login_at: dt.datetime | None
    created_at: dt.datetime


class AdministratorQuery(msgspec.Struct, kw_only=True):
    q: Text = ""
    role_id: Id | None = None
    status: Literal["enabled", "disabled"] | None = None
    after: Cursor | None = None
    limit: Limit | None = None


class AdministratorCreate(msgspec.Struct, kw_only=True):
    login: Login
    name: Text = ""
    email: Email | None = None
    role_id: Id
    partner_id: Id | None = None
    password: Password
    idle_timeout_s: IdleTimeout = 1800
    absolute_timeout_s: AbsoluteTimeout = 43200
    grants: list[Permission] = []
    revokes: list[Permission] = []


class AdministratorPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields given change. ``enabled: false`` disables it and ends its sessions."""

    login: Login | msgspec.UnsetType = msgspec.UNSET
    name: Text | msgspec.UnsetType = msgspec.UNSET
    email: Email | msgspec.UnsetType | None = msgspec.UNSET
    role_id: Id | msgspec.UnsetType = msgspec.UNSET
    partner_id: Id | msgspec.UnsetType | None = msgspec.UNSET
    password: Password | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    idle_timeout_s: IdleTimeout | msgspec.UnsetType = msgspec.UNSET
    absolute_timeout_s: AbsoluteTimeout | msgspec.UnsetType = msgspec.UNSET
    grants: list[Permission] | msgspec.UnsetType = msgspec.UNSET
    revokes: list[Permission] | msgspec.UnsetType = msgspec.UNSET


class AdministratorForm(msgspec.Struct, kw_only=True):
    """The administrator form (timeouts in minutes and hours; password empty: unchanged)."""

    login: Text
    name: Text = ""
    email: Text = ""
    role_id: Id
    partner_id: Id | None = None
    password: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    idle_minutes: Annotated[int, msgspec.Meta(ge=1, le=7 * 1440)] = 30
    absolute_hours: Annotated[int, msgspec.Meta(ge=1, le=30 * 24)] = 12
    grant: list[str] = []
    revoke: list[str] = []


# --- roles ----------------------------------------------------------------------------------------

class Role(msgspec.Struct):
    id: int
    name: str
    builtin: str | None
    permissions: list[str]
    own_customers_only: bool
    require_2fa: bool
    administrators: int
    api_keys: int


class RoleForm(msgspec.Struct, kw_only=True):
    name: Text = ""
    perm: list[str] = []
    own_customers_only: bool = False
    require_2fa: bool = False


class CopyForm(msgspec.Struct):
    name: Name


# --- API keys -------------------------------------------------------------------------------------

class ApiKey(msgspec.Struct):
    id: int
    name: str
    prefix: str
    role_id: int
    role: str
    partner_id: int | None
    partner: str | None
    allow_from: list[str]
    created_by: int | None
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class ApiKeyCreated(ApiKey):
    """The new key with its secret, ``key``: shown this once, only its hash is kept."""

    key: str


class ApiKeyQuery(msgspec.Struct, kw_only=True):
    revoked: Literal["yes", "no"] | None = None
    after: Cursor | None = None
    limit: Limit | None = None


class ApiKeyCreate(msgspec.Struct, kw_only=True):
    name: Name
    role_id: Id
    partner_id: Id | None = None
    allow_from: list[Annotated[str, msgspec.Meta(max_length=50, pattern=NO_NUL, description=(
        "An address or network the key may be used from (none: from anywhere)."))]] = []


class ApiKeyForm(msgspec.Struct, kw_only=True):
    name: Name
    role_id: Id
    partner_id: Id | None = None
    allow_from: Annotated[str, msgspec.Meta(max_length=2000, pattern=NO_NUL)] = ""


# --- the operations log ---------------------------------------------------------------------------

class LogEntry(msgspec.Struct):
    id: int
    at: dt.datetime
    admin_id: int | None
    api_key_id: int | None
    actor: str
    address: str | None
    action: str
    object_type: str
    object_id: int | None
    customer_id: int | None
    partner_id: int | None
    summary: str
    before: Any
    after: Any


class LogQuery(msgspec.Struct, kw_only=True):
    actor: Text = ""
    customer_id: Id | None = None
    object_type: Text = ""
    object_id: Id | None = None
    action: Text = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    after: Cursor | None = None
    limit: Limit | None = None


# --- settings and custom fields -------------------------------------------------------------------

class SettingsForm(msgspec.Struct):
    require_2fa: bool = False


class CustomFieldForm(msgspec.Struct, kw_only=True):
    object_type: ObjectType = "customer"
    key: Text = ""
    label: Name
    kind: Kind = "text"
    choices: Annotated[str, msgspec.Meta(max_length=5000, pattern=NO_NUL)] = ""
    required: bool = False
    position: Annotated[int, msgspec.Meta(ge=-10000, le=10000)] = 0
