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
