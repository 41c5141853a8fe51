"""Site dictionaries on top of the shipped ones, and values from text (tariffs, the command line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiusd import dictionaries
from radiusd.cache import tariff_reply
from radiusd.codec import Code, EncodeError, check_attribute, decode_request, default_table, encode_request

SECRET = b"unit-secret"


def site(tmp_path: Path, **files: str) -> dictionaries.Loaded:
    directory = tmp_path / "dicts"
    directory.mkdir()
    for name, text in files.items():
        (directory / name.replace("_", ".")).write_text(text)
    return dictionaries.load(str(directory))


def test_an_alias_of_the_same_type_encodes_under_its_name_and_decodes_under_the_shipped_one(tmp_path: Path) -> None:
    """FreeRADIUS's own vendor files have a few second names (dictionary.mikrotik, .microsoft)."""
    loaded = site(tmp_path, dictionary_alias="VENDOR Mikrotik 14988\nBEGIN-VENDOR Mikrotik\n"
                                             "ATTRIBUTE Mikrotik-Speed 8 string\nEND-VENDOR Mikrotik\n"
                                             "VALUE Service-Type Site-Special 200\n")
    packet = encode_request(Code.ACCESS_REQUEST, 1, [("User-Name", "ann"), ("Mikrotik-Speed", "10M/50M"),
                                                     ("Service-Type", "Site-Special")], SECRET, table=loaded.table)
    request = decode_request(packet, SECRET, table=loaded.table)
    assert request.attributes()["Mikrotik-Rate-Limit"] == ["10M/50M"]
    assert request.attributes()["Service-Type"] == ["Site-Special"]  # a VALUE added to a shipped attribute
    assert default_table().by_name.keys() <= loaded.table.by_name.keys()


def test_hidden_files_and_backups_are_not_read(tmp_path: Path) -> None:
    loaded = site(tmp_path, dictionary_site="ATTRIBUTE Site-One 230 string\n", _dictionary_site="garbage\n",
                  **{"dictionary_site~": "garbage\n"})
    assert [p.name for p in loaded.files] == ["dictionary.site"]
    assert "Site-One" in loaded.table.by_name


def test_an_include_that_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(dictionaries.DictionaryError, match=r"dictionary\.site, line 2: .*nothere: no such file"):
        site(tmp_path, dictionary_site="# vendors\n$INCLUDE nothere\n")


@pytest.mark.parametrize(("name", "given", "expected"), [
    ("Idle-Timeout", "600", 600),
    ("Idle-Timeout", 600, 600),
    ("Service-Type", "Framed-User", "Framed-User"),
    ("Mikrotik-Group", 5, "5"),
    ("Class", "0x0102", b"\x01\x02"),
    ("Framed-IP-Address", "192.0.2.1", "192.0.2.1"),
])
def test_values_from_text(name: str, given: object, expected: object) -> None:
    assert check_attribute(name, given) == expected


@pytest.mark.parametrize(("name", "given", "problem"), [
    ("No-Such-Attribute", "x", "unknown attribute"),
    ("Idle-Timeout", "soon", "expected an integer"),
    ("Idle-Timeout", 2**32, "does not fit"),
    ("Idle-Timeout", True, "neither text nor an integer"),
    ("Framed-IP-Address", "192.0.2", "not an IPv4 address"),
    ("Mikrotik-Group", "x" * 248, "do not fit"),
    ("Class", "0xzz", "not hexadecimal"),
])
def test_values_that_do_not_fit(name: str, given: object, problem: str) -> None:
    with pytest.raises(EncodeError, match=problem):
        check_attribute(name, given)


def test_a_tariff_reply_keeps_what_fits_and_says_what_not() -> None:
    good, problems = tariff_reply([["Mikrotik-Group", "pppoe"], ["Idle-Timeout", "x"], "Session-Timeout", [1, 2],
                                   ["Session-Timeout", 3600, "extra"]], default_table())
    assert good == (("Mikrotik-Group", "pppoe"),)
    assert len(problems) == 4 and "Idle-Timeout" in problems[0] and "'Session-Timeout'" in problems[1]
