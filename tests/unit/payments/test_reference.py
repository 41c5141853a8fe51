"""Payment references: ISO 11649 check digits catch what a person mistypes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.payments import reference


def test_the_standards_example_is_valid_and_ours_read_back() -> None:
    assert reference.valid("RF18 5390 0754 7034") and reference.valid("rf18539007547034")
    assert not reference.valid("RF19 5390 0754 7034")
    ours = reference.for_customer(1234)
    assert ours == "RF5400001234" and reference.printed(ours) == "RF54 0000 1234"
    assert reference.customer_of("rf54 0000 1234") == 1234


@given(st.integers(min_value=1, max_value=10**12), st.data())
def test_one_wrong_digit_or_two_swapped_is_caught(customer_id: int, data: st.DataObject) -> None:
    ref = reference.for_customer(customer_id)
    assert reference.customer_of(ref) == customer_id
    i = data.draw(st.integers(min_value=2, max_value=len(ref) - 1))
    wrong = data.draw(st.sampled_from([d for d in "0123456789" if d != ref[i]]))
    assert reference.customer_of(ref[:i] + wrong + ref[i + 1:]) is None
    j = data.draw(st.integers(min_value=2, max_value=len(ref) - 2))
    if ref[j] != ref[j + 1]:
        assert reference.customer_of(ref[:j] + ref[j + 1] + ref[j] + ref[j + 2:]) is None


def test_references_are_found_in_a_remittance_line() -> None:
    a, b = reference.for_customer(77), reference.for_customer(1_000_001)
    text = f"Invoice 2026010001 / {reference.printed(a)} and rf{b[2:]}x; RF00 1234 is no reference"
    assert reference.find(text) == [77, 1_000_001]
    assert reference.find("nothing here") == []


def test_a_customer_id_is_positive() -> None:
    with pytest.raises(ValueError):
        reference.for_customer(0)
