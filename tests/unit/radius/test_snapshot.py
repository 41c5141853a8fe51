"""The cache snapshot radiusd starts from when PostgreSQL is down: round trip, and refusal of
anything it cannot trust."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from radiusd import snapshot
from radiusd.cache import NasTable, Subscriber


def subscriber(n: int, **changes: object) -> Subscriber:
    values: dict[str, object] = dict(
        service_id=n, login=f"user{n}", password="pässwörd", status="active", customer_id=n, customer_status="active",
        tariff_id=1, ipv4=ipaddress.IPv4Address(0x64400000 + n), ipv6_prefix=ipaddress.IPv6Network("2001:db8:1::/64"),
        delegated_ipv6_prefix=None, mac="02abcd001122", simultaneous_use=1, rate_limit="10M/50M", session_timeout=None,
        extra_reply=(("Mikrotik-Group", "pppoe"), ("Idle-Timeout", 600), ("Class", b"\x00tier-1")), pool_id=None,
        pool_name=None, pool_managed_by=None)
    values.update(changes)
    return Subscriber(**values)  # type: ignore[arg-type]


def example() -> snapshot.Snapshot:
    nas = NasTable()
    nas.replace([{"id": 1, "name": "bras-1", "address": "10.0.0.0/24", "secret": "s3cret", "type": "mikrotik",
                  "coa_port": 3799, "require_message_authenticator": True, "limit_proxy_state": True}])
    subs = [subscriber(n) for n in range(1, 2500)] + [subscriber(9000, ipv4=None, ipv6_prefix=None, mac=None,
                                                                 extra_reply=(), pool_id=4, pool_name="dyn",
                                                                 pool_managed_by="lastmile")]
    return snapshot.Snapshot(1764600000.5, snapshot.nas_rows(nas), subs, [(1, "a" * 32), (2, "b" * 32)],
                             {9000: (4, "100.96.0.7")})


def test_round_trip_keeps_every_field_and_the_file_private(tmp_path: Path) -> None:
    path = tmp_path / snapshot.NAME
    snap = example()
    snapshot.write(path, snap)
    assert path.stat().st_mode & 0o777 == 0o600
    again = snapshot.read(path)
    assert again == snap
    nas = NasTable()
    nas.replace(again.nas)
    found = nas.lookup("10.0.0.17")
    assert found is not None and found.secret == b"s3cret"
    assert len(path.read_text().splitlines()) > 3  # subscribers in chunks, not one line


@pytest.mark.parametrize("damage", ["truncated", "garbage", "other_fields", "other_format", "incomplete", "missing"])
def test_a_snapshot_that_cannot_be_trusted_is_refused_whole(tmp_path: Path, damage: str) -> None:
    path = tmp_path / snapshot.NAME
    snapshot.write(path, example())
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    if damage == "truncated":
        path.write_text("\n".join(lines)[:-40])
    elif damage == "garbage":
        path.write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    elif damage == "other_fields":
        header["subscriber_fields"] = header["subscriber_fields"][:-1]
        path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    elif damage == "other_format":
        header["format"] = snapshot.FORMAT + 1
        path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    elif damage == "incomplete":
        path.write_text("\n".join(lines[:-3]) + "\n")  # a subscriber chunk short
    else:
        path.unlink()
    with pytest.raises(snapshot.SnapshotError):
        snapshot.read(path)
