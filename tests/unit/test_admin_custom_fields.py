"""Custom field values from a form: each kind's checks and normal form, required fields, errors
keyed as the inputs are named (admin/administration/custom.py)."""

from __future__ import annotations

from admin.administration.custom import Field, validate


def f(key: str, kind: str, *, required: bool = False, choices: tuple[str, ...] = ()) -> Field:
    return Field(id=1, object_type="customer", key=key, label=key.title(), kind=kind, choices=choices,
                 required=required)


DEFS = [f("note", "text"), f("floor", "number"), f("since", "date"), f("site", "url"),
        f("plan", "choice", choices=("gold", "silver"))]


def test_good_values_are_kept_in_their_normal_form() -> None:
    values, errors = validate(DEFS, {"custom.note": "  back door  ", "custom.floor": "3.50",
                                     "custom.since": "2025-03-01", "custom.site": "https://example.net/x?y=1",
                                     "custom.plan": "gold"})
    assert errors == {}
    assert values == {"note": "back door", "floor": "3.50", "since": "2025-03-01",
                      "site": "https://example.net/x?y=1", "plan": "gold"}


def test_numbers_are_decimal_strings_never_floats() -> None:
    values, errors = validate([f("n", "number")], {"custom.n": "0.1"})
    assert values == {"n": "0.1"} and errors == {}
    values, _ = validate([f("n", "number")], {"custom.n": "-12"})
    assert values == {"n": "-12"}


def test_each_kind_refuses_what_is_not_of_it() -> None:
    _, errors = validate(DEFS, {"custom.floor": "three", "custom.since": "1/3/2025",
                                "custom.site": "javascript:alert(1)", "custom.plan": "bronze"})
    assert set(errors) == {"custom.floor", "custom.since", "custom.site", "custom.plan"}
    assert "one of: gold, silver" in errors["custom.plan"]


def test_numbers_must_be_finite() -> None:
    for text in ("NaN", "Infinity", "-inf", "1e", "1,5"):
        _, errors = validate([f("n", "number")], {"custom.n": text})
        assert "custom.n" in errors, text


def test_dates_must_be_iso_days() -> None:
    for text in ("20250301", "2025-02-30", "2025-03-01T10:00", "tomorrow"):
        _, errors = validate([f("d", "date")], {"custom.d": text})
        assert "custom.d" in errors, text


def test_urls_must_be_http_or_https_with_a_host() -> None:
    for text in ("ftp://example.net/", "http://", "example.net", "https://exa mple.net/", "data:text/html,x",
                 "//example.net/x"):
        _, errors = validate([f("u", "url")], {"custom.u": text})
        assert "custom.u" in errors, text
    values, errors = validate([f("u", "url")], {"custom.u": "http://192.0.2.1:8080/status"})
    assert values == {"u": "http://192.0.2.1:8080/status"} and errors == {}


def test_required_fields_must_be_given_and_optional_empty_ones_are_left_out() -> None:
    defs = [f("a", "text", required=True), f("b", "number", required=True), f("c", "text")]
    values, errors = validate(defs, {"custom.a": "  ", "custom.c": ""})
    assert errors == {"custom.a": "is required", "custom.b": "is required"}
    assert values == {}


def test_inputs_of_no_definition_and_uploads_are_ignored() -> None:
    values, errors = validate([f("a", "text")], {"custom.a": "x", "custom.other": "y", "name": "z"})
    assert values == {"a": "x"} and errors == {}
    values, errors = validate([f("a", "text", required=True)], {"custom.a": object()})
    assert values == {} and errors == {"custom.a": "is required"}


def test_text_has_a_length_limit() -> None:
    _, errors = validate([f("a", "text")], {"custom.a": "x" * 1001})
    assert "custom.a" in errors
    values, errors = validate([f("a", "text")], {"custom.a": "x" * 1000})
    assert errors == {} and len(str(values["a"])) == 1000


def test_field_from_a_row() -> None:
    row = {"id": 7, "object_type": "router", "key": "rack", "label": "Rack", "kind": "choice",
           "choices": ["A1", "A2"], "required": True, "position": 3}
    field = Field.of(row)
    assert field == Field(7, "router", "rack", "Rack", "choice", ("A1", "A2"), True, 3)
