"""Status automation (the status after each kind of message), the rules engine's decisions and
refusals, and assignment to a group's members, by shift across midnight."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.tickets.automation import (
    MAX_IDLE_HOURS,
    PRIORITIES,
    TYPES,
    Action,
    Assignment,
    AssignMode,
    Author,
    Changes,
    Condition,
    Facts,
    Rule,
    Shift,
    Status,
    Transition,
    after_message,
    apply,
    assign,
    close,
    due,
    on_shift,
    problems,
    reopen,
)

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)  # a Friday
VIENNA = ZoneInfo("Europe/Vienna")  # the operator's wall time


def facts(**changes: object) -> Facts:
    base = Facts(id=7, status=Status.WAITING_CUSTOMER, closed=False, priority="medium", type="incident",
                 group_id=2, assignee_id=11, last_activity_at=NOW - timedelta(days=8),
                 created_at=NOW - timedelta(days=10))
    return replace(base, **changes)  # type: ignore[arg-type]


CLOSE_IDLE = Rule(1, "resolve after a week without answer",
                  Condition(status=Status.WAITING_CUSTOMER, idle_hours=7 * 24),
                  Action(set_status=Status.RESOLVED, canned_reply_id=3))


# -- status after a message ------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "closed", "author", "expected"), [
    (Status.NEW, False, Author.CUSTOMER, Transition(Status.WAITING_AGENT, False)),
    (Status.WAITING_CUSTOMER, False, Author.CUSTOMER, Transition(Status.WAITING_AGENT, False)),
    (Status.WAITING_AGENT, False, Author.CUSTOMER, Transition(Status.WAITING_AGENT, False)),
    (Status.RESOLVED, True, Author.CUSTOMER, Transition(Status.WAITING_AGENT, True)),
    ("spam", True, Author.CUSTOMER, Transition(Status.WAITING_AGENT, True)),  # a site's own closed status
    (Status.NEW, False, Author.STAFF, Transition(Status.WAITING_CUSTOMER, False)),
    (Status.IN_PROGRESS, False, Author.STAFF, Transition(Status.WAITING_CUSTOMER, False)),
    (Status.WAITING_AGENT, False, Author.STAFF, Transition(Status.WAITING_CUSTOMER, False)),
    (Status.RESOLVED, True, Author.STAFF, Transition(Status.RESOLVED, False)),  # a last word
    (Status.WAITING_AGENT, False, Author.NOTE, Transition(Status.WAITING_AGENT, False)),
    (Status.RESOLVED, True, Author.NOTE, Transition(Status.RESOLVED, False)),
    (Status.NEW, False, Author.SYSTEM, Transition(Status.NEW, False)),
    ("on_hold", False, Author.SYSTEM, Transition("on_hold", False)),
])
def test_the_status_after_a_message(status: str, closed: bool, author: Author, expected: Transition) -> None:
    assert after_message(status, closed, author) == expected


def test_an_agent_reopens_to_work_in_progress_and_closes_to_resolved() -> None:
    assert reopen() == Transition(Status.IN_PROGRESS, reopened=True)
    assert close() == "resolved"


# -- rules -----------------------------------------------------------------------------------------

def test_a_rule_is_due_when_all_its_conditions_hold() -> None:
    assert due(CLOSE_IDLE, facts(), NOW)
    assert apply(CLOSE_IDLE, facts()) == Changes(status=Status.RESOLVED, canned_reply_id=3)


def test_idle_time_is_at_least_the_hours() -> None:
    week = timedelta(days=7)
    assert due(CLOSE_IDLE, facts(last_activity_at=NOW - week), NOW)
    assert not due(CLOSE_IDLE, facts(last_activity_at=NOW - week + timedelta(seconds=1)), NOW)


@pytest.mark.parametrize("changed", [
    {"status": Status.WAITING_AGENT},
    {"last_activity_at": NOW - timedelta(hours=1)},
])
def test_a_rule_is_not_due_when_a_condition_fails(changed: dict[str, object]) -> None:
    assert not due(CLOSE_IDLE, facts(**changed), NOW)


def test_a_rule_is_not_due_again_once_it_acted() -> None:
    """Resolved, the ticket no longer matches; and a rule whose action changes nothing is not due."""
    assert not due(CLOSE_IDLE, facts(status=Status.RESOLVED, closed=True), NOW)
    high = Rule(2, "incidents are high", Condition(type="incident"), Action(set_priority="high"))
    assert due(high, facts(), NOW)
    assert not due(high, facts(priority="high"), NOW)
    assert apply(high, facts(priority="high")).empty


def test_every_condition_is_checked() -> None:
    rule = Rule(3, "unassigned urgent problems of group 2 to group 5",
                Condition(priority="urgent", type="problem", group_id=2, unassigned=True), Action(set_group_id=5))
    match = facts(priority="urgent", type="problem", group_id=2, assignee_id=None)
    assert due(rule, match, NOW)
    assert apply(rule, match) == Changes(group_id=5)
    for changed in ({"priority": "high"}, {"type": "incident"}, {"group_id": 3}, {"assignee_id": 11}):
        assert not due(rule, replace(match, **changed), NOW), changed
    assigned = Rule(4, "assigned: medium", Condition(unassigned=False), Action(set_priority="low"))
    assert due(assigned, facts(), NOW)
    assert not due(assigned, facts(assignee_id=None), NOW)


def test_a_disabled_rule_or_one_with_problems_is_never_due() -> None:
    assert not due(replace(CLOSE_IDLE, enabled=False), facts(), NOW)
    bad = Rule(5, "bad", Condition(priority="critical"), Action(set_status=Status.RESOLVED))
    assert problems(bad)
    assert not due(bad, facts(priority="critical"), NOW)


def test_without_a_status_condition_a_rule_looks_at_open_tickets_only() -> None:
    bump = Rule(6, "urgent when idle a day", Condition(idle_hours=24), Action(set_priority="urgent"))
    assert due(bump, facts(), NOW)
    assert not due(bump, facts(status=Status.RESOLVED, closed=True), NOW)
    archive = Rule(7, "archive", Condition(status=Status.RESOLVED, idle_hours=24), Action(set_status="archived"))
    assert due(archive, facts(status=Status.RESOLVED, closed=True), NOW)


def test_apply_gives_only_what_differs_and_always_the_reply_and_note() -> None:
    rule = Rule(8, "all", Condition(idle_hours=48),
                Action(set_status=Status.WAITING_CUSTOMER, set_priority="medium", set_group_id=2,
                       canned_reply_id=9, note="reminded"))
    assert apply(rule, facts()) == Changes(canned_reply_id=9, note="reminded")
    assert apply(rule, facts(status=Status.NEW, priority="low", group_id=None)) == Changes(
        status=Status.WAITING_CUSTOMER, priority="medium", group_id=2, canned_reply_id=9, note="reminded")
    assert Changes().empty
    assert not Changes(note="x").empty


def test_a_reminder_waits_for_the_ticket_to_be_idle_again() -> None:
    """A reply-only rule is always a change; the store counts it as activity."""
    remind = Rule(9, "remind", Condition(status=Status.WAITING_CUSTOMER, idle_hours=72), Action(canned_reply_id=4))
    assert problems(remind) == []
    assert due(remind, facts(), NOW)
    assert not due(remind, facts(last_activity_at=NOW), NOW)


def test_a_good_rule_has_no_problems() -> None:
    assert problems(CLOSE_IDLE) == []


@pytest.mark.parametrize(("condition", "action", "says"), [
    (Condition(), Action(set_priority="high"), "the rule has no condition: it would act on every ticket"),
    (Condition(type="incident"), Action(), "the rule has no action: it would do nothing"),
    (Condition(idle_hours=0), Action(set_priority="high"),
     "the idle time must be from 1 to 8760 hours (a year), not 0"),
    (Condition(idle_hours=-5), Action(set_priority="high"),
     "the idle time must be from 1 to 8760 hours (a year), not -5"),
    (Condition(idle_hours=MAX_IDLE_HOURS + 1), Action(set_priority="high"),
     "the idle time must be from 1 to 8760 hours (a year), not 8761"),
    (Condition(status=Status.RESOLVED), Action(set_status=Status.RESOLVED),
     "the rule sets the status it looks for (resolved): it would change nothing"),
    (Condition(priority="critical"), Action(set_status="x"),
     "the condition's priority 'critical' is not one of low, medium, high, urgent"),
    (Condition(type="incident"), Action(set_priority="p1"),
     "the action's priority 'p1' is not one of low, medium, high, urgent"),
    (Condition(type="outage"), Action(set_priority="high"),
     "the type 'outage' is not one of question, incident, problem, feature_request"),
    (Condition(status=" "), Action(set_priority="high"), "the condition's status is empty"),
    (Condition(type="incident"), Action(set_status=""), "the action's status is empty"),
    (Condition(idle_hours=1), Action(note="  "), "the note is empty"),
    (Condition(type="incident"), Action(canned_reply_id=1),
     "a rule that only sends a reply or adds a note needs an idle time, or it would act again on every run"),
])
def test_problems_refuse_a_rule(condition: Condition, action: Action, says: str) -> None:
    assert says in problems(Rule(1, "r", condition, action))


def test_the_vocabularies() -> None:
    assert PRIORITIES == ("low", "medium", "high", "urgent")
    assert TYPES == ("question", "incident", "problem", "feature_request")


maybe_text = st.none() | st.sampled_from([*PRIORITIES, *TYPES, *Status, "", "other"])
maybe_int = st.none() | st.integers(-2, 2 * MAX_IDLE_HOURS)
rules = st.builds(
    Rule, id=st.integers(1, 9), name=st.text(max_size=5),
    condition=st.builds(Condition, status=maybe_text, idle_hours=maybe_int, priority=maybe_text, type=maybe_text,
                        group_id=maybe_int, unassigned=st.none() | st.booleans()),
    action=st.builds(Action, set_status=maybe_text, set_priority=maybe_text, set_group_id=maybe_int,
                     canned_reply_id=maybe_int, note=st.none() | st.text(max_size=3)),
    enabled=st.booleans())
all_facts = st.builds(
    Facts, id=st.integers(1, 9), status=st.sampled_from([*Status, "other"]), closed=st.booleans(),
    priority=st.sampled_from(PRIORITIES), type=st.sampled_from(TYPES), group_id=maybe_int,
    assignee_id=st.none() | st.integers(1, 3),
    last_activity_at=st.datetimes(timezones=st.just(UTC)), created_at=st.datetimes(timezones=st.just(UTC)))


@given(rules, all_facts, st.datetimes(timezones=st.just(UTC)))
def test_rules_never_raise_and_are_idempotent(rule: Rule, ticket: Facts, now: datetime) -> None:
    """Whatever an operator saves: no exception, and once applied (status, priority and group
    set; the reply or note made the ticket active now) a rule is not due again."""
    problems(rule)
    if not due(rule, ticket, now):
        return
    changes = apply(rule, ticket)
    assert not changes.empty
    after = replace(ticket, status=changes.status or ticket.status, priority=changes.priority or ticket.priority,
                    group_id=changes.group_id if changes.group_id is not None else ticket.group_id,
                    last_activity_at=now)
    assert not due(rule, after, now)


# -- assignment ------------------------------------------------------------------------------------

WEEKDAYS = frozenset(range(5))
DAY = Shift(1, WEEKDAYS, time(8), time(16))
NIGHT = Shift(2, frozenset({4}), time(22), time(6))  # Friday night into Saturday
ALWAYS = Shift(3, frozenset({0}), time(12), time(12))  # 24 hours from Monday noon


@pytest.mark.parametrize(("shift", "now", "expected"), [
    (DAY, datetime(2026, 12, 4, 8, 0, tzinfo=VIENNA), True),  # Friday, start included
    (DAY, datetime(2026, 12, 4, 15, 59, tzinfo=VIENNA), True),
    (DAY, datetime(2026, 12, 4, 16, 0, tzinfo=VIENNA), False),  # end excluded
    (DAY, datetime(2026, 12, 4, 7, 59, tzinfo=VIENNA), False),
    (DAY, datetime(2026, 12, 5, 10, 0, tzinfo=VIENNA), False),  # Saturday
    (NIGHT, datetime(2026, 12, 4, 23, 0, tzinfo=VIENNA), True),  # Friday 23:00
    (NIGHT, datetime(2026, 12, 5, 3, 0, tzinfo=VIENNA), True),  # Saturday 03:00 belongs to Friday's shift
    (NIGHT, datetime(2026, 12, 5, 6, 0, tzinfo=VIENNA), False),
    (NIGHT, datetime(2026, 12, 5, 23, 0, tzinfo=VIENNA), False),  # Saturday night: no shift
    (NIGHT, datetime(2026, 12, 4, 3, 0, tzinfo=VIENNA), False),  # Friday 03:00 would be Thursday's
    (ALWAYS, datetime(2026, 11, 30, 12, 0, tzinfo=VIENNA), True),  # Monday noon
    (ALWAYS, datetime(2026, 12, 1, 11, 59, tzinfo=VIENNA), True),  # Tuesday before noon
    (ALWAYS, datetime(2026, 12, 1, 12, 0, tzinfo=VIENNA), False),
    (ALWAYS, datetime(2026, 11, 30, 11, 59, tzinfo=VIENNA), False),
    (DAY, datetime(2026, 12, 4, 9, 0), True),  # naive: wall time too  # noqa: DTZ001
])
def test_on_shift(shift: Shift, now: datetime, expected: bool) -> None:
    assert on_shift(shift, now) is expected


def test_nobody_assigned_everybody_told() -> None:
    assert assign(AssignMode.NOBODY, [1, 2, 3, 2], [DAY], NOW, random.Random(1)) == Assignment(None, (1, 2, 3))


def test_random_picks_a_member_and_tells_only_them() -> None:
    picked = {assign(AssignMode.RANDOM, [1, 2, 3], [], NOW, random.Random(seed)) for seed in range(50)}
    assert picked == {Assignment(m, (m,)) for m in (1, 2, 3)}
    assert assign(AssignMode.RANDOM, [5], [], NOW, random.Random(0)) == Assignment(5, (5,))


def test_shift_picks_among_those_on_shift() -> None:
    friday_night = datetime(2026, 12, 4, 23, 30, tzinfo=VIENNA)
    for seed in range(20):
        assert assign(AssignMode.SHIFT, [1, 2, 3], [DAY, NIGHT, ALWAYS], friday_night,
                      random.Random(seed)) == Assignment(2, (2,))
    friday_morning = datetime(2026, 12, 4, 9, 0, tzinfo=VIENNA)
    picked = {assign(AssignMode.SHIFT, [1, 2, 4], [DAY, replace(DAY, administrator_id=4)], friday_morning,
                     random.Random(seed)).assignee_id for seed in range(50)}
    assert picked == {1, 4}


def test_shift_of_someone_outside_the_group_does_not_count() -> None:
    assert assign(AssignMode.SHIFT, [1, 3], [NIGHT], datetime(2026, 12, 4, 23, 30, tzinfo=VIENNA),
                  random.Random(0)) == Assignment(None, (1, 3))


def test_nobody_on_shift_is_nobody_assigned_all_told() -> None:
    sunday = datetime(2026, 12, 6, 10, 0, tzinfo=VIENNA)
    assert assign(AssignMode.SHIFT, [1, 2, 3], [DAY, NIGHT, ALWAYS], sunday, random.Random(0)) == Assignment(
        None, (1, 2, 3))


@pytest.mark.parametrize("mode", list(AssignMode))
def test_an_empty_group_is_nobody_and_no_one_told(mode: AssignMode) -> None:
    assert assign(mode, [], [DAY], NOW, random.Random(0)) == Assignment(None, ())


def test_the_same_seed_picks_the_same() -> None:
    one = assign(AssignMode.RANDOM, range(1, 100), [], NOW, random.Random(42))
    assert one == assign(AssignMode.RANDOM, range(1, 100), [], NOW, random.Random(42))


def test_a_rule_without_idle_time_is_done_once_its_fields_are_set_whatever_its_note() -> None:
    """Hypothesis's find: "priority low → group 0, note" kept adding its note every run once the
    group was 0, since a note alone counted as a change."""
    when = datetime(2000, 1, 1, tzinfo=UTC)
    rule = Rule(1, "triage", Condition(priority="low"), Action(set_group_id=0, note="0"))
    elsewhere = Facts(1, "new", False, "low", "question", 5, None, when, when)
    assert due(rule, elsewhere, when)
    assert not due(rule, replace(elsewhere, group_id=0), when)
