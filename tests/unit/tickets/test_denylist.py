"""The deny list: each field and each way of matching, ignoring case; regular expressions checked
when saved (what compiles, what backtracks); and the worst allowed patterns on the worst texts
finishing in milliseconds."""

from __future__ import annotations

import time

import pytest

from admin.tickets.denylist import CHUNK, REGEX_TEXT, Field, Match, Rule, check, problems
from admin.tickets.inbound import InboundMail, parse


def mail(sender: str = "Spam King <King@Spam.Example>", subject: str = "You WON a prize",
         body: str = "Click here to claim\nyour prize\n") -> InboundMail:
    return parse(f"From: {sender}\nSubject: {subject}\n\n{body}".encode())


@pytest.mark.parametrize(("field", "match", "pattern", "hit"), [
    (Field.ADDRESS, Match.EXACT, "KING@spam.example", True),
    (Field.ADDRESS, Match.EXACT, "spam.example", False),
    (Field.ADDRESS, Match.ENDS, "@SPAM.example", True),
    (Field.ADDRESS, Match.STARTS, "king@", True),
    (Field.ADDRESS, Match.CONTAINS, "spam king", False),  # the address only, not the name
    (Field.SUBJECT, Match.CONTAINS, "won A PRIZE", True),
    (Field.SUBJECT, Match.STARTS, "you won", True),
    (Field.SUBJECT, Match.ENDS, "prize", True),
    (Field.SUBJECT, Match.EXACT, "you won a prize", True),
    (Field.SUBJECT, Match.EXACT, "you won", False),
    (Field.BODY, Match.CONTAINS, "CLAIM\nYOUR", True),
    (Field.BODY, Match.EXACT, "click here to claim\nyour prize", True),  # the text's line ends aside
    (Field.BODY, Match.STARTS, "click", True),
    (Field.BODY, Match.ENDS, "your prize", True),
    (Field.ADDRESS, Match.REGEX, r"^[a-z]+@spam\.(example|test)$", True),
    (Field.SUBJECT, Match.REGEX, r"\bwon\b.*prize", True),
    (Field.BODY, Match.REGEX, r"^your PRIZE$", True),  # line by line: ^ and $ at each line
    (Field.BODY, Match.REGEX, r"claim your", False),  # not across a line end
])
def test_each_field_and_match(field: Field, match: Match, pattern: str, hit: bool) -> None:
    rule = Rule(field, match, pattern)
    assert problems(rule) == []
    assert (check([rule], mail()) is rule) is hit


def test_the_first_matching_rule_is_given() -> None:
    miss = Rule(Field.SUBJECT, Match.CONTAINS, "invoice")
    first = Rule(Field.ADDRESS, Match.ENDS, "@spam.example")
    second = Rule(Field.SUBJECT, Match.CONTAINS, "prize")
    assert check([miss, first, second], mail()) is first
    assert check([miss], mail()) is None
    assert check([], mail()) is None


def test_a_mail_without_sender_matches_no_address_rule() -> None:
    nobody = parse(b"Subject: hi\n\nbody\n")
    assert check([Rule(Field.ADDRESS, Match.CONTAINS, "@")], nobody) is None
    assert check([Rule(Field.ADDRESS, Match.REGEX, "^$")], nobody) is not None


def test_subclassed_rules_come_back_as_themselves() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True, slots=True)
    class Stored(Rule):
        id: int = 0

    stored = Stored(Field.SUBJECT, Match.CONTAINS, "prize", id=7)
    assert check([stored], mail()) == stored


@pytest.mark.parametrize(("pattern", "problem"), [
    ("", "the pattern is empty"),
    ("   ", "the pattern is empty"),
    ("(", "not a regular expression: missing ), unterminated subpattern at position 0"),
    ("x" * 201, "the regular expression is longer than 200 characters"),
    (r"(a+)+$", "a repeated group holds a repeat or an alternation (it backtracks exponentially)"),
    (r"(a|ab)*c", "a repeated group holds a repeat or an alternation (it backtracks exponentially)"),
    (r"(?:x*y){2,}", "a repeated group holds a repeat or an alternation (it backtracks exponentially)"),
    (r"(\w+)\s\1", "a backreference (\\1) is not allowed"),
    (r"(?P<w>a)(?P=w)", "a backreference ((?P=name)) is not allowed"),
    (r".*a.*b", "too many repeats: they multiply to 250000 choices (at most 1000; '*' and '+' count 500)"),
    (r"\d{1,100}\d{1,100}", "too many repeats: they multiply to 10000 choices (at most 1000; '*' and '+' count 500)"),
])
def test_regex_problems(pattern: str, problem: str) -> None:
    rule = Rule(Field.BODY, Match.REGEX, pattern)
    assert problem in problems(rule)
    assert check([rule], mail(body="a" * 100 + "b")) is None  # a rule with problems never matches


@pytest.mark.parametrize("pattern", [
    r"viagra|c[i1]al[i1]s", r"^\s*unsubscribe", r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}",
    r"(?i)casino", r"(?:ab)+c", r"[(+*|]+", r"win\s+prize", r"a{3}b{2}", r".*x?",
])
def test_ordinary_regexes_pass(pattern: str) -> None:
    assert problems(Rule(Field.BODY, Match.REGEX, pattern)) == []


def test_text_patterns_have_a_length_limit() -> None:
    assert problems(Rule(Field.BODY, Match.CONTAINS, "x" * 1000)) == []
    assert problems(Rule(Field.BODY, Match.CONTAINS, "x" * 1001)) == ["the pattern is longer than 1000 characters"]


def test_regexes_read_the_first_characters_of_a_field_only() -> None:
    rule = Rule(Field.BODY, Match.REGEX, "needle")
    assert check([rule], mail(body="x" * (REGEX_TEXT - 6) + "needle")) is rule
    assert check([rule], mail(body="x" * REGEX_TEXT + "needle")) is None
    assert check([Rule(Field.BODY, Match.CONTAINS, "needle")], mail(body="x" * REGEX_TEXT + "needle")) is not None


def test_a_long_line_is_matched_in_pieces() -> None:
    rule = Rule(Field.BODY, Match.REGEX, "needle")
    assert check([rule], mail(body="x" * (CHUNK - 6) + "needle")) is rule
    assert check([rule], mail(body="x" * (CHUNK - 3) + "needle")) is None  # cut across: missed


@pytest.mark.parametrize(("pattern", "text"), [
    (r".*x", "a" * 20_000),  # each start runs .* to the end of its piece and back
    (r"\s*\s?x", " " * 20_000),
    (r"[\s\S]*y?x", "y" * 20_000),
    (r"(?:ab)+c", "ab" * 10_000),
    (r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}x", "1." * 10_000),
])
def test_the_worst_allowed_patterns_stay_fast(pattern: str, text: str) -> None:
    rules = [Rule(field, Match.REGEX, pattern) for field in Field]
    assert all(problems(rule) == [] for rule in rules)
    hostile = mail(sender=f"{'a' * 300}@isp.de", subject=text, body=text)
    started = time.perf_counter()
    assert check(rules, hostile) is None
    assert time.perf_counter() - started < 0.25  # three rules over 5,000 characters each: ~60 ms here at worst
