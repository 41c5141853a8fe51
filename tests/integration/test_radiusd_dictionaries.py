"""Site dictionaries (`[radiusd] dictionary_dir`) and tariff reply attributes, through a real radiusd.

A vendor's attributes come from a FreeRADIUS-format file the NOC drops in a directory: radiusd
must send them from `tariffs.radius_reply`, refuse a broken file at start with its name and line,
and never let a tariff's bad attribute cost a subscriber their Access-Accept.
"""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from pyrad.dictionary import Dictionary
from pyrad.packet import AccessAccept

from radiusd.codec import Code, encode_request
from tests.integration.radius_env import (
    DICTIONARY,
    ROOT,
    SECRET,
    access_request,
    add_nas,
    add_service,
    client,
    eventually,
    send,
    send_raw,
    start_radiusd,
)

# 32473: the enterprise number for documentation (RFC 5612).
EXAMPLE = """\
# An example vendor, as a NOC would drop it in
VENDOR		Example		32473

BEGIN-VENDOR	Example
ATTRIBUTE	Example-Rate-Limit	1	string
ATTRIBUTE	Example-Vlan		2	integer
VALUE	Example-Vlan		Guest			999
END-VENDOR	Example
"""


def example_dir(tmp_path: Path, text: str = EXAMPLE, name: str = "dictionary.example") -> Path:
    directory = tmp_path / "dictionaries"
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text)
    return directory


async def tariff_reply(conn: asyncpg.Connection, reply: list[object]) -> None:
    """add_service's tariff (shared by every service a test adds) with these reply attributes."""
    await conn.execute("UPDATE tariffs SET radius_reply = $1::jsonb WHERE name = 'Home 50'", reply)


async def test_vendor_attributes_from_the_dictionary_dir_in_the_accept(conn: asyncpg.Connection, db_url: str,
                                                                     tmp_path: Path) -> None:
    directory = example_dir(tmp_path)
    await add_nas(conn)
    await add_service(conn, "ann", "secret-ann")
    await tariff_reply(conn, [["Example-Rate-Limit", "10M/50M"], ["Example-Vlan", "Guest"], ["Idle-Timeout", "600"]])
    daemon = start_radiusd(db_url, tmp_path, dictionary_dir=str(directory))
    try:
        c = client(daemon)
        c.dict = Dictionary(str(DICTIONARY), str(directory / "dictionary.example"))  # the NAS knows the vendor too
        reply = await send(c, access_request(c, "ann", "secret-ann"))
        assert reply.code == AccessAccept
        assert reply["Example-Rate-Limit"] == ["10M/50M"]
        assert reply["Example-Vlan"] == ["Guest"]  # 999, the VALUE name
        assert reply["Idle-Timeout"] == [600]  # an integer, though the tariff wrote text
        # Requests are decoded with the site's dictionary too: a vendor attribute of the wrong size
        # (Example-Vlan is an integer: 4 octets) is a malformed packet now, dropped and counted.
        short_vlan = struct.pack(">BBIBB", 26, 11, 32473, 2, 5) + b"\x00\x01\x02"
        bad = encode_request(Code.ACCESS_REQUEST, 9, [("User-Name", "ann"), ("User-Password", "secret-ann"),
                                                     ("Vendor-Specific", short_vlan[2:])], SECRET)
        assert await send_raw(bad, daemon.auth_port) is None
        assert daemon.metric("lastmile_radiusd_dropped_total", reason="bad_value") == 1
    finally:
        assert daemon.stop() == 0


async def test_a_bad_tariff_reply_attribute_is_skipped_and_reported_once(conn: asyncpg.Connection, db_url: str,
                                                                         tmp_path: Path) -> None:
    """An attribute no dictionary defines (a vendor's file not installed), a value that does not fit
    its attribute, an entry that is no [name, value] pair: left out of the Access-Accept, which
    still goes out with the rest; one warning per tariff (not per login or service), counted."""
    await add_nas(conn)
    await add_service(conn, "ann", "secret-ann")
    await add_service(conn, "bob", "secret-bob")
    await tariff_reply(conn, [["Example-Vlan", 100], ["Idle-Timeout", "soon"], ["Mikrotik-Group", "pppoe"],
                              ["Session-Timeout"]])
    daemon = start_radiusd(db_url, tmp_path)
    try:
        c = client(daemon)
        for user in ("ann", "bob", "ann"):
            reply = await send(c, access_request(c, user, f"secret-{user}"))
            assert reply.code == AccessAccept
            assert reply["Mikrotik-Group"] == ["pppoe"]
            assert "Idle-Timeout" not in reply and "Session-Timeout" not in reply
        assert daemon.metric("lastmile_radiusd_reply_attributes_skipped_total") == 3
        [warning] = [e for e in daemon.logs() if e["event"] == "tariff reply attributes skipped"]
        assert warning["tariff_id"] == await conn.fetchval("SELECT id FROM tariffs WHERE name = 'Home 50'")
        problems = warning["skipped"]
        assert len(problems) == 3
        assert "Example-Vlan" in problems[0] and "Idle-Timeout" in problems[1] and "Session-Timeout" in problems[2]

        # Fixed in the admin: the next Accept has it, and nothing more is skipped.
        await tariff_reply(conn, [["Idle-Timeout", 600], ["Mikrotik-Group", "pppoe"]])

        async def fixed() -> bool:
            return bool((await send(c, access_request(c, "ann", "secret-ann"))).get("Idle-Timeout") == [600])

        await eventually(fixed, timeout=2.0)
        assert daemon.metric("lastmile_radiusd_reply_attributes_skipped_total") == 3
    finally:
        assert daemon.stop() == 0


def radiusd_start(tmp_path: Path, db_url: str, directory: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    env.update(PYTHONPATH=str(ROOT), LASTMILE_DATABASE__URL=db_url, LASTMILE_RADIUSD__DICTIONARY_DIR=str(directory),
               LASTMILE_RADIUSD__METRICS_PORT="0", LASTMILE_RADIUSD__AUTH_PORT="1", LASTMILE_RADIUSD__ACCT_PORT="2")
    return subprocess.run([sys.executable, "-m", "daemons.cli", "radiusd"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("text", "line", "problem"), [
    ("VENDOR Example 32473\nATTRIBUTE Example-Rate-Limit 1 string Exampel\n", 2, "Unknown vendor Exampel"),
    ("VENDOR Example 32473\n\nATTRIBUT Example-Rate-Limit 1 string\n", 3, "unknown keyword ATTRIBUT"),
    ("# a site file may not change what the shipped files define\nATTRIBUTE Framed-IP-Address 8 string\n", 2,
     "redefines Framed-IP-Address"),
    ("ATTRIBUTE Site-Address 8 string\n", 1, "Site-Address (string) has the number of Framed-IP-Address"),
    ("ATTRIBUTE Site-Long 300 string\n", 1, "300"),
    (EXAMPLE + "VALUE Example-Vlan Staff twelve\n", 9, "Illegal value twelve"),
], ids=["unknown-vendor", "typo", "redefined", "number-taken", "number-too-big", "bad-value"])
async def test_a_broken_dictionary_stops_start_with_its_file_and_line(db_url: str, tmp_path: Path, text: str,
                                                                      line: int, problem: str) -> None:
    directory = example_dir(tmp_path, text, "dictionary.site")
    result = await asyncio.to_thread(radiusd_start, tmp_path, db_url, directory)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    [message] = result.stderr.strip().splitlines()
    assert message.startswith(f"lastmile: bad settings: radiusd.dictionary_dir: {directory}/dictionary.site, "
                              f"line {line}: "), message
    assert problem in message


async def test_a_missing_dictionary_dir_stops_start(db_url: str, tmp_path: Path) -> None:
    result = await asyncio.to_thread(radiusd_start, tmp_path, db_url, tmp_path / "nowhere")
    assert result.returncode == 2
    assert result.stderr.strip() == f"lastmile: bad settings: radiusd.dictionary_dir = {tmp_path / 'nowhere'!s}: " \
                                    "no such directory"
