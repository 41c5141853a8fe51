"""Tickets: request and response types of the statuses' and the shared deny list's pages and API
(statuses.py, denylist_page.py)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from admin.schemas import Id
from admin.tickets.schemas import StatusCode

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^\x00\r\n]*\S[^\x00\r\n]*$",
                                    description="what the pages show: one line")]
Position = Annotated[int, msgspec.Meta(ge=0, le=32767, description="the lists' order: smallest first")]
DenyField = Literal["address", "subject", "body"]
DenyMatch = Literal["exact", "contains", "starts", "ends", "regex"]
Pattern = Annotated[str, msgspec.Meta(min_length=1, max_length=1000, pattern=r"^[^\x00]*\S[^\x00]*$")]
Sample = Annotated[str, msgspec.Meta(max_length=100_000, pattern=r"^[^\x00]*$")]


class TicketStatus(msgspec.Struct, kw_only=True):
    """A ticket status: one of the five built in (the automation moves tickets through them) or
    the operator's own."""

    code: str
    title: str
    closed: Annotated[bool, msgspec.Meta(description="a ticket in it counts as resolved")]
    builtin: bool
    position: int
    tickets: Annotated[int, msgspec.Meta(description="how many tickets are in it")]


class TicketStatusIn(msgspec.Struct, kw_only=True):
    code: Annotated[StatusCode, msgspec.Meta(description="lower case letters, digits and _; never changed")]
    title: Title
    closed: bool = False
    position: Position | None = None  # None: after the last


class TicketStatusPatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    title: Title | msgspec.UnsetType = msgspec.UNSET
    closed: Annotated[bool, msgspec.Meta(description="not of a built-in status")] | msgspec.UnsetType = msgspec.UNSET
    position: Position | msgspec.UnsetType = msgspec.UNSET


class StatusForm(msgspec.Struct, kw_only=True):
    """A status's row of the page (its code is the path's; a built-in one's closed box is ignored)."""

    title: Title
    closed: bool = False
    position: Position


class SharedDenyLine(msgspec.Struct, kw_only=True):
    """A line of the deny list every inbox shares: mail whose field matches the pattern (ignoring
    case) makes no ticket."""

    id: int
    field: DenyField
    match: DenyMatch
    pattern: str
    inbox_id: Annotated[int | None, msgspec.Meta(description="null: every inbox's (the lines listed here)")] = None


class SharedDenyLineIn(msgspec.Struct, kw_only=True):
    field: DenyField
    match: DenyMatch
    pattern: Annotated[Pattern, msgspec.Meta(description="a regular expression (match regex) is at most 200 "
                                                         "characters and must not backtrack exponentially")]


class SharedDenyLinePatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    field: DenyField | msgspec.UnsetType = msgspec.UNSET
    match: DenyMatch | msgspec.UnsetType = msgspec.UNSET
    pattern: Pattern | msgspec.UnsetType = msgspec.UNSET


class DenyTest(msgspec.Struct, kw_only=True):
    """A mail to try the deny list on: its sender's address, its subject, its text (any may be empty);
    given an inbox, its own lines too (as its intake reads them)."""

    inbox_id: Id | None = None
    address: Annotated[str, msgspec.Meta(max_length=320, pattern=r"^[^\x00\r\n]*$")] = ""
    subject: Annotated[str, msgspec.Meta(max_length=1000, pattern=r"^[^\x00]*$")] = ""
    body: Sample = ""


class DenyVerdict(msgspec.Struct, kw_only=True):
    """The line that refuses the mail (null: none does)."""

    refused: bool
    line: SharedDenyLine | None
