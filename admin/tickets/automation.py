"""What the helpdesk does to a ticket by itself: the status after a message, the rules engine's
decision, and who a new ticket goes to. Pure: the store passes the ticket's facts, the clock and
the random source in, and writes what comes out.

**Status after a message** (:func:`after_message`). The status says whose turn it is:

- a customer writes → ``waiting_agent`` (our turn). On a *closed* ticket that is a reopen
  (``reopened=True``): the ticket goes to ``waiting_agent``, not ``in_progress``, because nobody
  has picked the customer's new message up yet; the flag lets the store note "reopened" in the
  history and tell the assignee. (:func:`reopen`, an agent's own act, gives ``in_progress``.)
- staff reply → ``waiting_customer`` (their turn); on a closed ticket the status stays: an agent
  may add a last word without reopening.
- an internal note or a system message changes nothing.

Statuses are rows in the database (any code, each open or closed); :class:`Status` holds the five
built-in codes automation sets. Which status counts as closed comes in as ``closed``.

**Rules** (:func:`due`, :func:`apply`, :func:`problems`). A rule is a :class:`Condition` (all its
given fields must hold) and an :class:`Action`. Rules are idempotent: a rule is due only while
its action would change something, so "resolve tickets waiting for the customer for 7 days" is
not due again once the ticket is resolved. Two consequences for the store:

- a rule that only sends a canned reply or adds a note always "changes something", so it must
  have an ``idle_hours`` condition (:func:`problems` refuses it otherwise), and the store must
  count what the rule did as activity (``last_activity_at`` = now): then the rule waits for the
  ticket to be idle again;
- a rule without a ``status`` condition looks at open tickets only (a priority bump should not
  walk through years of resolved tickets); to act on closed tickets, name their status.

A rule with :func:`problems` is never due.

**Assignment** (:func:`assign`): nobody (every member of the group is told: what the seed ISP
asks for), a random member, or a random member on shift now (:class:`Shift`; nobody on shift →
nobody, everyone told).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, time, timedelta
from enum import StrEnum


class Status(StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    WAITING_CUSTOMER = "waiting_customer"
    WAITING_AGENT = "waiting_agent"
    RESOLVED = "resolved"


class Author(StrEnum):
    CUSTOMER = "customer"
    STAFF = "staff"
    NOTE = "note"  # internal: the customer never sees it
    SYSTEM = "system"


PRIORITIES = ("low", "medium", "high", "urgent")
TYPES = ("question", "incident", "problem", "feature_request")

#: The longest idle condition a rule may have: a year.
MAX_IDLE_HOURS = 24 * 365


@dataclass(frozen=True, slots=True)
class Transition:
    status: str
    reopened: bool  # a closed ticket became open again


def after_message(status: str, closed: bool, author: Author) -> Transition:
    """The status of a ticket in ``status`` (``closed``: whether that status is a closed one) once
    ``author`` has added a message."""
    if author == Author.CUSTOMER:
        return Transition(Status.WAITING_AGENT, reopened=closed)
    if author == Author.STAFF and not closed:
        return Transition(Status.WAITING_CUSTOMER, reopened=False)
    return Transition(status, reopened=False)


def reopen() -> Transition:
    """An agent reopens a closed ticket: it is being worked on."""
    return Transition(Status.IN_PROGRESS, reopened=True)


def close() -> str:
    """The status an agent's "close" sets."""
    return Status.RESOLVED


# -- rules -----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Condition:
    """What a ticket must be for a rule to act; None: any."""

    status: str | None = None
    idle_hours: int | None = None  # no activity for at least this many hours
    priority: str | None = None
    type: str | None = None
    group_id: int | None = None
    unassigned: bool | None = None  # True: nobody assigned; False: somebody


@dataclass(frozen=True, slots=True)
class Action:
    """What a rule does; None: nothing of that kind."""

    set_status: str | None = None
    set_priority: str | None = None
    set_group_id: int | None = None
    canned_reply_id: int | None = None  # a reply sent to the customer
    note: str | None = None  # an internal note added to the ticket


@dataclass(frozen=True, slots=True)
class Rule:
    id: int
    name: str
    condition: Condition
    action: Action
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Facts:
    """What a rule looks at of one ticket."""

    id: int
    status: str
    closed: bool  # the status is a closed one
    priority: str
    type: str
    group_id: int | None
    assignee_id: int | None
    last_activity_at: datetime  # aware: the last message, or what a rule did
    created_at: datetime  # aware


@dataclass(frozen=True, slots=True)
class Changes:
    """What to set on a ticket (None: leave it), the reply to send and the note to add."""

    status: str | None = None
    priority: str | None = None
    group_id: int | None = None
    canned_reply_id: int | None = None
    note: str | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


def problems(rule: Rule) -> list[str]:
    """Why ``rule`` cannot be saved (empty when it can)."""
    condition, action = rule.condition, rule.action
    found: list[str] = []
    if all(getattr(condition, f.name) is None for f in fields(condition)):
        found.append("the rule has no condition: it would act on every ticket")
    if all(getattr(action, f.name) is None for f in fields(action)):
        found.append("the rule has no action: it would do nothing")
    if condition.idle_hours is not None and not 1 <= condition.idle_hours <= MAX_IDLE_HOURS:
        found.append(f"the idle time must be from 1 to {MAX_IDLE_HOURS} hours (a year), "
                     f"not {condition.idle_hours}")
    for what, status in (("condition", condition.status), ("action", action.set_status)):
        if status is not None and not status.strip():
            found.append(f"the {what}'s status is empty")
    if action.set_status is not None and action.set_status == condition.status:
        found.append(f"the rule sets the status it looks for ({action.set_status}): it would change nothing")
    for what, priority in (("condition", condition.priority), ("action", action.set_priority)):
        if priority is not None and priority not in PRIORITIES:
            found.append(f"the {what}'s priority {priority!r} is not one of {', '.join(PRIORITIES)}")
    if condition.type is not None and condition.type not in TYPES:
        found.append(f"the type {condition.type!r} is not one of {', '.join(TYPES)}")
    if action.note is not None and not action.note.strip():
        found.append("the note is empty")
    sets = (action.set_status, action.set_priority, action.set_group_id)
    if all(value is None for value in sets) and condition.idle_hours is None and (
            action.canned_reply_id is not None or action.note is not None):
        found.append("a rule that only sends a reply or adds a note needs an idle time, "
                     "or it would act again on every run")
    return found


def apply(rule: Rule, facts: Facts) -> Changes:
    """What ``rule``'s action changes on the ticket of ``facts``: only what differs, and the reply
    and note (which always count as a change)."""
    action = rule.action
    return Changes(
        status=action.set_status if action.set_status not in (None, facts.status) else None,
        priority=action.set_priority if action.set_priority not in (None, facts.priority) else None,
        group_id=action.set_group_id if action.set_group_id not in (None, facts.group_id) else None,
        canned_reply_id=action.canned_reply_id,
        note=action.note,
    )


def due(rule: Rule, facts: Facts, now: datetime) -> bool:
    """Whether ``rule`` acts on the ticket of ``facts`` at ``now`` (aware): it is enabled and
    valid, all its conditions hold, and its action would change something (without an idle
    time: a field it sets)."""
    if not rule.enabled or problems(rule):
        return False
    condition = rule.condition
    if condition.status is None and facts.closed:
        return False
    checks = (
        condition.status is None or condition.status == facts.status,
        condition.idle_hours is None or now - facts.last_activity_at >= timedelta(hours=condition.idle_hours),
        condition.priority is None or condition.priority == facts.priority,
        condition.type is None or condition.type == facts.type,
        condition.group_id is None or condition.group_id == facts.group_id,
        condition.unassigned is None or condition.unassigned == (facts.assignee_id is None),
    )
    if not all(checks):
        return False
    changes = apply(rule, facts)
    if condition.idle_hours is None:
        # nothing ends the rule's hold on the ticket but the fields it sets: a reply or note
        # rides along with them, and alone (the fields already as set) would come every run
        return any(v is not None for v in (changes.status, changes.priority, changes.group_id))
    return not changes.empty  # a reply or note moves the last activity: the idle time starts again


# -- assignment ------------------------------------------------------------------------------------

class AssignMode(StrEnum):
    NOBODY = "nobody"  # nobody assigned, every member of the group told
    RANDOM = "random"  # a random member
    SHIFT = "shift"  # a random member on shift now; nobody on shift: as NOBODY


@dataclass(frozen=True, slots=True)
class Shift:
    """When one administrator works: from ``start`` to ``end`` (end excluded) on ``weekdays``
    (0 = Monday). ``end <= start`` crosses midnight, and the hours after midnight belong to the
    weekday the shift started on (a Friday 22:00–06:00 shift covers Saturday 03:00);
    ``end == start`` is 24 hours."""

    administrator_id: int
    weekdays: frozenset[int]
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class Assignment:
    assignee_id: int | None
    notify: tuple[int, ...]  # administrators to tell about the new ticket


def on_shift(shift: Shift, now: datetime) -> bool:
    """Whether ``shift`` covers ``now`` (the operator's local wall time: naive, or aware in the
    operator's zone; either way its own clock reading counts, nothing is converted)."""
    clock = now.time()
    weekday = now.weekday()
    if shift.start < shift.end:
        return weekday in shift.weekdays and shift.start <= clock < shift.end
    return ((weekday in shift.weekdays and clock >= shift.start)
            or ((weekday - 1) % 7 in shift.weekdays and clock < shift.end))


def assign(mode: AssignMode, members: Sequence[int], shifts: Sequence[Shift], now: datetime,
           rng: random.Random) -> Assignment:
    """Who a new ticket of a group with ``members`` goes to, and who is told. ``shifts``: the
    members' shifts (others' are ignored); ``now``: the operator's local wall time."""
    group = tuple(dict.fromkeys(members))
    if not group:
        return Assignment(None, ())
    candidates: Sequence[int] = ()
    if mode == AssignMode.RANDOM:
        candidates = group
    elif mode == AssignMode.SHIFT:
        working = {s.administrator_id for s in shifts if on_shift(s, now)}
        candidates = [member for member in group if member in working]
    if not candidates:
        return Assignment(None, group)
    chosen = rng.choice(candidates)
    return Assignment(chosen, (chosen,))
