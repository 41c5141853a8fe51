"""Tickets: request and response types of the helpdesk API (validation and the OpenAPI
document), and the forms of its pages."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from admin.schemas import Id, Limit

Direction = Literal["asc", "desc"]
Search = Annotated[str, msgspec.Meta(max_length=200, pattern=r"^[^\x00]*$")]
StatusCode = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$",
                                         description="a ticket status's code (new, in_progress, waiting_agent, "
                                                     "waiting_customer, resolved, or the operator's own)")]
Priority = Literal["low", "medium", "high", "urgent"]
TicketType = Literal["question", "incident", "problem", "feature_request"]
AuthorKind = Literal["customer", "staff", "note", "system"]
Subject = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"^[^\x00]*\S[^\x00]*$")]
Body = Annotated[str, msgspec.Meta(min_length=1, max_length=100_000, pattern=r"^[^\x00]*\S[^\x00]*$")]
PRIORITIES: tuple[str, ...] = ("low", "medium", "high", "urgent")
TYPES: tuple[str, ...] = ("question", "incident", "problem", "feature_request")


class TicketQuery(msgspec.Struct, kw_only=True):
    status: StatusCode | None = None
    priority: Priority | None = None
    assignee_id: Id | None = None
    group_id: Id | None = None
    customer_id: Id | None = None
    q: Annotated[Search, msgspec.Meta(description="part of the subject")] | None = None
    sort: Literal["last_activity", "created"] = "last_activity"
    dir: Direction = "desc"
    after: str | None = None
    limit: Limit = 50


class Ticket(msgspec.Struct):
    """A helpdesk ticket: a customer's, or an unknown sender's (customer_id null, requester_* from the mail)."""

    id: int
    subject: str
    status: str
    status_title: str
    closed: bool
    priority: Priority
    type: TicketType
    partner_id: int | None
    customer_id: int | None
    customer_number: str | None
    customer_name: str | None
    requester_email: str
    requester_name: str
    assignee_id: int | None
    group_id: int | None
    group_name: str | None
    source: Literal["email", "admin", "portal", "api", "rule"]
    first_response_at: dt.datetime | None
    resolved_at: dt.datetime | None
    reopened: int
    created_at: dt.datetime
    updated_at: dt.datetime
    last_activity_at: dt.datetime


class TicketAttachment(msgspec.Struct):
    id: int
    file_name: str
    served_type: str
    size: int


class TicketMessage(msgspec.Struct):
    """A message of a ticket: from the customer, a staff reply, an internal note, or the automation's."""

    id: int
    author: AuthorKind
    administrator_id: int | None
    from_address: str
    from_name: str
    body: str
    problems: list[str]
    outgoing_id: Annotated[int | None, msgspec.Meta(description="the e-mail (messages) a staff reply went out as")]
    created_at: dt.datetime
    attachments: list[TicketAttachment] = []


class TicketDetail(Ticket):
    messages: list[TicketMessage] = []


class TicketIn(msgspec.Struct, kw_only=True):
    customer_id: Id
    subject: Subject
    body: Body
    priority: Priority = "medium"
    type: TicketType = "question"
    group_id: Id | None = None
    assignee_id: Id | None = None


class MessageIn(msgspec.Struct, kw_only=True):
    body: Body
    kind: Annotated[Literal["reply", "note"], msgspec.Meta(
        description="reply: to the customer (mailed, the ticket then waits on the customer); "
                    "note: internal, never shown to the customer")] = "reply"


class TicketPatch(msgspec.Struct, kw_only=True):
    status: StatusCode | msgspec.UnsetType = msgspec.UNSET
    priority: Priority | msgspec.UnsetType = msgspec.UNSET
    type: TicketType | msgspec.UnsetType = msgspec.UNSET
    group_id: Id | msgspec.UnsetType | None = msgspec.UNSET
    assignee_id: Id | msgspec.UnsetType | None = msgspec.UNSET


class FieldsForm(msgspec.Struct, kw_only=True):
    """The ticket page's fields form (an empty group or assignee: none)."""

    status: StatusCode
    priority: Priority
    type: TicketType
    group_id: Id | None = None
    assignee_id: Id | None = None


class NewTicketForm(msgspec.Struct, kw_only=True):
    customer_id: Id
    subject: Subject
    body: Body
    priority: Priority = "medium"
    type: TicketType = "question"
    group_id: Id | None = None


# -- the helpdesk's configuration (inboxes, groups, canned replies, rules, settings) ----------
# The API's bodies are checked twice: their types here (msgspec), then as the pages check their
# forms (editing.as_form), so the API and the pages refuse the same values with the same sentences.

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Line = Annotated[str, msgspec.Meta(max_length=300)]
InboxSecurity = Literal["tls", "starttls", "none"]
ReadMode = Literal["unread", "all"]
AssignMode = Literal["nobody", "random", "shift"]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Password = Annotated[str, msgspec.Meta(max_length=500, description="write-only: sealed as it is stored, never "
                                                                    "returned")]
Weekday = Annotated[int, msgspec.Meta(ge=0, le=6, description="0 Monday … 6 Sunday")]
Clock = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{2}:[0-9]{2}(:[0-9]{2})?$", description="HH:MM, the operator's "
                                                                                            "time zone")]
ReplyBody = Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
Note = Annotated[str, msgspec.Meta(max_length=10_000)]
DenyField = Literal["address", "subject", "body"]
DenyMatch = Literal["exact", "contains", "starts", "ends", "regex"]


class Inbox(msgspec.Struct):
    """An e-mail inbox read into tickets (its password is write-only: never returned)."""

    id: int
    partner_id: int
    partner_name: str
    name: str
    enabled: bool
    address: str
    host: str
    port: int
    security: InboxSecurity
    username: str
    folder: str
    read_mode: ReadMode
    since: dt.date | None
    mark_read: bool
    accept_unknown: bool
    group_id: int | None
    priority: Priority
    type: TicketType
    last_checked_at: dt.datetime | None
    last_error: Annotated[str, msgspec.Meta(description="why the last reading failed; empty: it did not")]


class InboxIn(msgspec.Struct, kw_only=True):
    partner_id: Annotated[Id | None, msgspec.Meta(
        description="an administrator of every partner names the inbox's partner; a partner's is its own")] = None
    name: Name
    address: Line
    host: Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
    port: Port = 993
    security: InboxSecurity = "tls"
    username: Line
    password: Password
    folder: Line = "INBOX"
    read_mode: ReadMode = "unread"
    since: dt.date | None = None
    mark_read: bool = True
    accept_unknown: bool = True
    group_id: Id | None = None
    priority: Priority = "medium"
    type: TicketType = "question"
    enabled: bool = True


class InboxPatch(msgspec.Struct, kw_only=True):
    """Only the fields given change; without ``password`` the stored one is kept."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    address: Line | msgspec.UnsetType = msgspec.UNSET
    host: Annotated[str, msgspec.Meta(min_length=1, max_length=253)] | msgspec.UnsetType = msgspec.UNSET
    port: Port | msgspec.UnsetType = msgspec.UNSET
    security: InboxSecurity | msgspec.UnsetType = msgspec.UNSET
    username: Line | msgspec.UnsetType = msgspec.UNSET
    password: Password | msgspec.UnsetType = msgspec.UNSET
    folder: Line | msgspec.UnsetType = msgspec.UNSET
    read_mode: ReadMode | msgspec.UnsetType = msgspec.UNSET
    since: dt.date | msgspec.UnsetType | None = msgspec.UNSET
    mark_read: bool | msgspec.UnsetType = msgspec.UNSET
    accept_unknown: bool | msgspec.UnsetType = msgspec.UNSET
    group_id: Id | msgspec.UnsetType | None = msgspec.UNSET
    priority: Priority | msgspec.UnsetType = msgspec.UNSET
    type: TicketType | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class DenyLine(msgspec.Struct):
    """An inbox's own deny-list line: its mail whose ``field`` matches ``pattern`` opens no ticket."""

    id: int
    field: DenyField
    match: DenyMatch
    pattern: str


class DenyLineIn(msgspec.Struct, kw_only=True):
    field: DenyField
    match: DenyMatch = "exact"
    pattern: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class Shift(msgspec.Struct):
    """A member's shift: on ``weekdays`` from ``starts`` to ``ends`` (at or before ``starts``: past midnight)."""

    id: int
    administrator_id: int
    weekdays: list[int]
    starts: dt.time
    ends: dt.time


class ShiftIn(msgspec.Struct, kw_only=True):
    administrator_id: Annotated[Id, msgspec.Meta(description="a member of the group")]
    weekdays: Annotated[list[Weekday], msgspec.Meta(min_length=1, max_length=7)]
    starts: Clock
    ends: Clock


class Group(msgspec.Struct):
    """A group of agents tickets are given to (``partner_id`` null: every partner's)."""

    id: int
    partner_id: int | None
    partner_name: str | None
    name: str
    assign_mode: AssignMode
    members: list[int] = []
    shifts: list[Shift] = []


class GroupIn(msgspec.Struct, kw_only=True):
    partner_id: Annotated[Id | None, msgspec.Meta(
        description="an administrator of every partner may name the group's partner (none: every partner's)")] = None
    name: Name
    assign_mode: AssignMode = "nobody"
    members: Annotated[list[Id], msgspec.Meta(max_length=1000, description="enabled administrators of the "
                                                                           "group's partner or every partner")] = []


class GroupPatch(msgspec.Struct, kw_only=True):
    """Only the fields given change; ``members`` replaces them (a member who leaves takes its shifts)."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    assign_mode: AssignMode | msgspec.UnsetType = msgspec.UNSET
    members: Annotated[list[Id], msgspec.Meta(max_length=1000)] | msgspec.UnsetType = msgspec.UNSET


class CannedReply(msgspec.Struct):
    """A reply's text as a template (``partner_id`` null: every partner's)."""

    id: int
    partner_id: int | None
    partner_name: str | None
    name: str
    body: str
    updated_at: dt.datetime


class CannedReplyIn(msgspec.Struct, kw_only=True):
    partner_id: Annotated[Id | None, msgspec.Meta(
        description="an administrator of every partner may name the reply's partner (none: every partner's)")] = None
    name: Name
    body: Annotated[ReplyBody, msgspec.Meta(description="checked as the rules render it")]


class CannedReplyPatch(msgspec.Struct, kw_only=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    body: ReplyBody | msgspec.UnsetType = msgspec.UNSET


class RuleCondition(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a ticket must be for the rule to act: every field given must hold."""

    status: StatusCode | None = None
    idle_hours: Annotated[int, msgspec.Meta(
        ge=0, le=999_999_999, description="no activity for at least this many hours (1 to 8760)")] | None = None
    priority: Priority | None = None
    type: TicketType | None = None
    group_id: Id | None = None
    unassigned: Annotated[bool | None, msgspec.Meta(description="true: nobody assigned; false: somebody")] = None


class RuleAction(msgspec.Struct, kw_only=True, omit_defaults=True):
    set_status: StatusCode | None = None
    set_priority: Priority | None = None
    set_group_id: Id | None = None
    canned_reply_id: Annotated[Id | None, msgspec.Meta(description="a canned reply mailed to the customer")] = None
    note: Annotated[Note | None, msgspec.Meta(description="an internal note added to the ticket")] = None


class Rule(msgspec.Struct):
    """An automation rule (the operator's): the ``tickets.rules`` job acts on the tickets its condition holds for."""

    id: int
    name: str
    enabled: bool
    condition: RuleCondition
    action: RuleAction
    updated_at: dt.datetime


class RuleIn(msgspec.Struct, kw_only=True):
    name: Name
    enabled: bool = True
    condition: RuleCondition
    action: RuleAction


class RulePatch(msgspec.Struct, kw_only=True):
    """Only the fields given change; a ``condition`` or ``action`` given replaces the stored one whole."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    condition: RuleCondition | msgspec.UnsetType = msgspec.UNSET
    action: RuleAction | msgspec.UnsetType = msgspec.UNSET


class TicketSettings(msgspec.Struct):
    """The tickets the system opens itself: each kind on or off, the router drift that opens one
    (minutes, 0: never) and the group they go to."""

    tariff_tickets: bool
    cpe_fault_tickets: bool
    payment_failure_tickets: bool
    router_drift_minutes: int
    group_id: int | None
    updated_at: dt.datetime | None = None


class TicketSettingsPatch(msgspec.Struct, kw_only=True):
    tariff_tickets: bool | msgspec.UnsetType = msgspec.UNSET
    cpe_fault_tickets: bool | msgspec.UnsetType = msgspec.UNSET
    payment_failure_tickets: bool | msgspec.UnsetType = msgspec.UNSET
    router_drift_minutes: Annotated[int, msgspec.Meta(ge=0, le=525600)] | msgspec.UnsetType = msgspec.UNSET
    group_id: Id | msgspec.UnsetType | None = msgspec.UNSET
