"""Phone numbers to E.164 (national numbers read in the region given), refused with one clear
line when they are no numbers; how many SMS a text takes; the provider id read from an answer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.notifications.model import PermanentFailure
from admin.notifications.sms import normalise, pick, segments


@pytest.mark.parametrize("number, region, e164", [
    ("0664 1234567", "AT", "+436641234567"),
    ("0664/123 45 67", "at", "+436641234567"),
    ("+43 664 1234567", "", "+436641234567"),
    ("0043 664 1234567", "AT", "+436641234567"),
    ("+49 (0)151 23456789", "DE", "+4915123456789"),
    ("0151 23456789", "DE", "+4915123456789"),
    ("(201) 555-0123", "US", "+12015550123"),
    ("07911 123456", "GB", "+447911123456"),
    ("  +41 79 123 45 67  ", "AT", "+41791234567"),  # an international number ignores the region
])
def test_numbers_become_e164(number: str, region: str, e164: str) -> None:
    assert normalise(number, region) == e164


@pytest.mark.parametrize("number, region, words", [
    ("", "AT", "no phone number"),
    ("   ", "AT", "no phone number"),
    ("0664 1234567", "", "national and no region"),
    ("0664 1234567", "XX", "unknown region"),
    ("call me", "AT", "not a phone number"),
    ("+43 1", "", "too short"),
    ("+43 664 12345678901", "", "impossible"),
    ("07700 900123", "GB", "invalid"),  # Ofcom's range for drama: possible, never assigned
    ("+1 200 555 0123", "", "invalid"),  # no US area code starts with 2-0-0... as a valid one
    ("+999 123456", "", "not a phone number"),
    ("+", "AT", "not a phone number"),
])
def test_no_number_is_a_permanent_failure_saying_why(number: str, region: str, words: str) -> None:
    with pytest.raises(PermanentFailure, match=words) as caught:
        normalise(number, region)
    assert "\n" not in str(caught.value)


def test_a_long_input_is_cut_in_the_message() -> None:
    with pytest.raises(PermanentFailure) as caught:
        normalise("9" * 5000, "AT")
    assert len(str(caught.value)) < 200


@given(st.text(max_size=300), st.sampled_from(["", "AT", "DE", "US", "GB", "at", "XX", "A", "ATT", "\n"]))
def test_any_string_is_e164_or_a_permanent_failure(number: str, region: str) -> None:
    try:
        e164 = normalise(number, region)
    except PermanentFailure as failure:
        assert str(failure) and "\n" not in str(failure)
        return
    assert e164.startswith("+") and e164[1:].isdigit() and 8 <= len(e164) <= 16
    assert normalise(e164, "") == e164


@given(st.text(alphabet="0123456789 +-()/", max_size=25), st.sampled_from(["AT", "DE", "US"]))
def test_numberlike_strings_are_e164_or_a_permanent_failure(number: str, region: str) -> None:
    try:
        e164 = normalise(number, region)
    except PermanentFailure:
        return
    assert normalise(e164, "") == e164


@pytest.mark.parametrize("text, count", [
    ("", 0),
    ("Hello", 1),
    ("x" * 160, 1),
    ("x" * 161, 2),
    ("x" * 306, 2),
    ("x" * 307, 3),
    ("€" * 80, 1),  # an extension character takes two septets: 160
    ("€" * 81, 2),
    ("x" * 152 + "€" + "x" * 10, 2),  # the escape pair is not split: 152 + 2 + 10 = 164 -> 153 | 11
    ("x" * 152 + "€" + "x" * 152, 3),  # 152 | 2+151 | 1
    ("Grüße aus Wien! äöüÄÖÜß", 1),  # all of these are in the GSM alphabet
    ("ç", 1),  # lower-case ç is not (only Ç is): UCS-2
    ("ç" * 70, 1),
    ("ç" * 71, 2),
    ("ç" * 134, 2),
    ("ç" * 135, 3),
    ("😀" * 35, 1),  # a surrogate pair each: 70 units
    ("😀" * 36, 2),
    ("x" * 66 + "😀", 1),  # 68 units
    ("ç" * 66 + "😀" + "ç" * 10, 2),  # 66 + 2 = 68 > 67: the pair moves on -> 66 | 12
    ("x" * 100 + "ł", 2),  # one character outside GSM makes the whole text UCS-2
])
def test_segments(text: str, count: int) -> None:
    assert segments(text) == count


@given(st.text(max_size=2000))
def test_segments_never_undercount(text: str) -> None:
    n = segments(text)
    units = len(text.encode("utf-16-le")) // 2
    assert n == 0 if not text else n >= 1
    assert n <= max(1, -(-units * 2 // 153) + 1)


@pytest.mark.parametrize("document, path, value", [
    ({"id": "abc"}, "id", "abc"),
    ({"id": 42}, "id", "42"),
    ({"messages": [{"message-id": "0A00"}]}, "messages.0.message-id", "0A00"),
    ([{"id": "b1"}, {"id": "b2"}], "1.id", "b2"),
    ([{"id": "b1"}], "-1.id", "b1"),
    ({"id": None}, "id", ""),
    ({"id": {"deep": 1}}, "id", ""),
    ({"data": []}, "data.0.id", ""),
    ({"x": 1}, "id", ""),
    (None, "id", ""),
    ("text", "id", ""),
    ({"a": {"b": {"c": "d"}}}, "a.b.c", "d"),
])
def test_pick_reads_a_dotted_path(document: object, path: str, value: str) -> None:
    assert pick(document, path) == value
