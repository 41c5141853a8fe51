"""Document number patterns: parsing, every error, formatting, the counter's scope, and properties
(a pattern round-trips through parse; within one counter, numbers never repeat)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.billing.numbering import (
    MAX_WIDTH,
    Field,
    NumberingError,
    Pattern,
    Reset,
    Text,
    counter_key,
    format_number,
    parse,
    validate,
)

D = dt.date(2026, 3, 7)


@pytest.mark.parametrize(("pattern", "partner", "next_value", "expected"), [
    ("{year}{partner_id|2}{next|6}", 3, 42, "202603000042"),  # Splynx's invoice pattern
    ("{year}{partner_id|2}{next|6}", 123, 42, "2026123000042"),  # widths pad, never cut
    ("{year}{next|6}", None, 1, "2026000001"),  # Splynx's proforma pattern
    ("{year}{next|6}", None, 1234567, "20261234567"),
    ("INV-{year}-{month}-{day}/{next}", None, 7, "INV-2026-03-07/7"),
    ("{next}", None, 10, "10"),
    ("{next|3}", None, 5, "005"),
    ("R{{{next}}}", None, 5, "R{5}"),  # escaped braces are literal
    ("{day|3}.{month|4}.{year|5}-{next}", None, 9, "007.0003.02026-9"),
    ("P{partner_id}-{next|4}", 0, 12, "P0-0012"),
])
def test_numbers_are_formatted_from_the_pattern(pattern: str, partner: int | None, next_value: int,
                                                 expected: str) -> None:
    assert format_number(pattern, D, partner, next_value) == expected


def test_a_parsed_pattern_can_be_formatted_too() -> None:
    p = parse("{year}{partner_id|2}{next|6}")
    assert p == Pattern((Field("year"), Field("partner_id", 2), Field("next", 6)))
    assert format_number(p, dt.date(2027, 1, 1), 5, 1) == "202705000001"
    assert str(p) == "{year}{partner_id|2}{next|6}"


def test_literal_text_and_escapes_parse_into_text_segments() -> None:
    assert parse("A{{b}}-{next}") == Pattern((Text("A{b}-"), Field("next")))
    assert parse("") == Pattern(())
    assert parse("plain") == Pattern((Text("plain"),))


@pytest.mark.parametrize(("pattern", "message"), [
    ("{yaer}{next}", "pattern '{yaer}{next}': unknown field {yaer} at 0 (known: day, month, next, partner_id, year)"),
    ("{next}{rand_string}", "pattern '{next}{rand_string}': unknown field {rand_string} at 6 (known: day, month, "
                            "next, partner_id, year)"),
    ("{}", "pattern '{}': unknown field {} at 0 (known: day, month, next, partner_id, year)"),
    ("{ next }", "pattern '{ next }': unknown field { next } at 0 (known: day, month, next, partner_id, year)"),
    ("{next|}", "pattern '{next|}': the width of {next|} at 0 must be a whole number from 1 to 20"),
    ("{next|0}", "pattern '{next|0}': the width of {next|0} at 0 must be a whole number from 1 to 20"),
    ("{next|06}", "pattern '{next|06}': the width of {next|06} at 0 must be a whole number from 1 to 20"),
    ("{next|-2}", "pattern '{next|-2}': the width of {next|-2} at 0 must be a whole number from 1 to 20"),
    ("{next|x}", "pattern '{next|x}': the width of {next|x} at 0 must be a whole number from 1 to 20"),
    ("{next|٣}", "pattern '{next|٣}': the width of {next|٣} at 0 must be a whole number from 1 to 20"),
    ("{next|2|3}", "pattern '{next|2|3}': the width of {next|2|3} at 0 must be a whole number from 1 to 20"),
    ("{next|21}", "pattern '{next|21}': the width of {next|21} at 0 is over 20"),
    ("{year|2}{next}", "pattern '{year|2}{next}': {year|2} at 0: year is written with at least 4 digits"),
    ("{next}{month|1}", "pattern '{next}{month|1}': {month|1} at 6: month is written with at least 2 digits"),
    ("{next", "pattern '{next': '{' at 0 is not closed (write '{{' for a brace)"),
    ("{ye{ar}}", "pattern '{ye{ar}}': '{' at 0 is not closed (write '{{' for a brace)"),
    ("A}{next}", "pattern 'A}{next}': '}' at 1 closes nothing (write '}}' for a brace)"),
])
def test_parse_errors_say_what_and_where(pattern: str, message: str) -> None:
    with pytest.raises(NumberingError) as err:
        parse(pattern)
    assert str(err.value) == message


@pytest.mark.parametrize(("pattern", "message"), [
    ("{year}-", "pattern '{year}-' has no {next}: a number series needs it exactly once"),
    ("", "pattern '' has no {next}: a number series needs it exactly once"),
    ("{{next}}", "pattern '{{next}}' has no {next}: a number series needs it exactly once"),
    ("{next}{next|2}", "pattern '{next}{next|2}' has {next} 2 times: a number series needs it exactly once"),
])
def test_validate_wants_next_exactly_once(pattern: str, message: str) -> None:
    parse(pattern)  # the syntax is fine
    for call in (lambda: validate(pattern), lambda: format_number(pattern, D, 1, 1),
                 lambda: counter_key(pattern, D, 1)):
        with pytest.raises(NumberingError) as err:
            call()
        assert str(err.value) == message


def test_format_errors() -> None:
    with pytest.raises(NumberingError) as err:
        format_number("{next}", D, None, 0)
    assert str(err.value) == "the counter starts at 1, not 0"
    with pytest.raises(NumberingError) as err:
        format_number("{partner_id}{next}", D, None, 1)
    assert str(err.value) == ("pattern '{partner_id}{next}' writes the partner: a partner id (0 or more) is needed, "
                              "not None")
    with pytest.raises(NumberingError) as err:
        counter_key("{partner_id}{next}", D, -1)
    assert str(err.value) == ("pattern '{partner_id}{next}' counts per partner: a partner id (0 or more) is needed, "
                              "not -1")
    assert format_number("{next}", D, None, 3) == "3"  # no partner needed when the pattern has none


@pytest.mark.parametrize(("pattern", "reset", "key"), [
    ("{year}{partner_id|2}{next|6}", Reset.YEARLY, "2026/partner=4"),
    ("{year}{next|6}", Reset.YEARLY, "2026"),
    ("{year}{month}{next}", Reset.MONTHLY, "2026-03"),
    ("{month}{year}{next}", Reset.MONTHLY, "2026-03"),  # the order in the text does not matter
    ("{year}{month}{day}-{next}", Reset.DAILY, "2026-03-07"),
    ("{year}{day}{next}", Reset.YEARLY, "2026"),  # a day without the month cannot reset daily
    ("{month}{next}", Reset.NEVER, "all"),  # nor a month without the year
    ("{next|8}", Reset.NEVER, "all"),
    ("{partner_id}-{next}", Reset.NEVER, "all/partner=4"),
])
def test_the_counter_scope_follows_the_date_fields(pattern: str, reset: Reset, key: str) -> None:
    assert parse(pattern).reset is reset
    assert counter_key(pattern, D, 4) == key


def test_a_yearly_series_restarts_each_year_and_partners_count_apart() -> None:
    p = "{year}{partner_id|2}{next|6}"
    assert counter_key(p, dt.date(2026, 12, 31), 1) == counter_key(p, dt.date(2026, 1, 1), 1)
    assert counter_key(p, dt.date(2026, 12, 31), 1) != counter_key(p, dt.date(2027, 1, 1), 1)
    assert counter_key(p, D, 1) != counter_key(p, D, 2)
    # without {partner_id} every partner draws from the one counter, or their numbers would clash
    assert counter_key("{year}{next}", D, 1) == counter_key("{year}{next}", D, 2)


# --- properties -------------------------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8"), min_size=1, max_size=6)
widths = st.none() | st.integers(1, MAX_WIDTH)


@st.composite
def fields(draw: st.DrawFn, name: str | None = None) -> Field:
    chosen = name or draw(st.sampled_from(["year", "month", "day", "partner_id"]))
    floor = {"year": 4, "month": 2, "day": 2}.get(chosen, 1)
    return Field(chosen, draw(st.none() | st.integers(floor, MAX_WIDTH)))


@st.composite
def patterns(draw: st.DrawFn) -> Pattern:
    """A valid pattern: {next} once, other fields and text around it (no two texts side by side,
    as parse would join them)."""
    parts: list[Text | Field] = [draw(fields()) for _ in range(draw(st.integers(0, 4)))]
    parts.insert(draw(st.integers(0, len(parts))), draw(fields("next")))
    segments: list[Text | Field] = []
    for part in parts:
        if draw(st.booleans()):
            segments.append(Text(draw(texts)))
        segments.append(part)
    if draw(st.booleans()):
        segments.append(Text(draw(texts)))
    return Pattern(tuple(segments))


dates = st.dates(dt.date(1000, 1, 1), dt.date(9999, 12, 31))


@given(patterns())
def test_parse_round_trips(p: Pattern) -> None:
    text = str(p)
    assert parse(text) == p
    assert str(parse(text)) == text
    assert validate(text) == p


@given(patterns(), dates, dates, st.integers(0, 999), st.integers(1, 10**9), st.integers(1, 10**9))
def test_numbers_within_one_counter_never_repeat(p: Pattern, d1: dt.date, d2: dt.date, partner: int,
                                                  n1: int, n2: int) -> None:
    """Two documents under the same counter key get the same number only for the same next value."""
    if counter_key(p, d1, partner) != counter_key(p, d2, partner):
        d2 = d1
    same = format_number(p, d1, partner, n1) == format_number(p, d2, partner, n2)
    assert same == (n1 == n2 and (d1 == d2 or format_number(p, d1, partner, 1) == format_number(p, d2, partner, 1)))


@given(patterns(), dates, st.integers(0, 999), st.lists(st.integers(1, 10**7), min_size=2, max_size=30, unique=True))
def test_format_is_injective_over_next_values(p: Pattern, d: dt.date, partner: int, values: list[int]) -> None:
    numbers = [format_number(p, d, partner, v) for v in values]
    assert len(set(numbers)) == len(values)


BITS = ["{", "}", "|", "0", "2", "next", "year", "day", "x"]


@given(texts | st.lists(st.sampled_from(BITS), max_size=12).map("".join))
def test_any_text_is_either_parsed_or_refused_cleanly(text: str) -> None:
    try:
        p = parse(text)
    except NumberingError:
        return
    assert str(parse(str(p))) == str(p)
