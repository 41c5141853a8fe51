"""radiusd authentication over UDP with real clients: policy, BlastRADIUS, drops, duplicates, pools, cache."""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from pyrad.packet import AccessAccept, AccessReject

from radiusd import authproto, logsummary
from radiusd.codec import Code, encode_request
from tests.integration.radius_env import (
    SECRET,
    Radiusd,
    access_request,
    accounting_request,
    add_nas,
    add_service,
    attrs,
    client,
    eventually,
    send,
    send_raw,
    start_radiusd,
)


@pytest.fixture
async def radiusd(db_url: str, conn: asyncpg.Connection, tmp_path: Path) -> AsyncIterator[Radiusd]:
    await add_nas(conn)
    await add_service(conn, "ann", "secret-ann", ipv4="100.64.0.10", ipv6_prefix="2001:db8:0:10::/64",
                      delegated_ipv6_prefix="2001:db8:8000:1000::/56")
    await add_service(conn, "bob", "secret-bob", mac="02:00:00:00:00:0b")
    await add_service(conn, "carl", "secret-carl", status="disabled")
    await add_service(conn, "dora", "secret-dora", customer_status="blocked")
    await add_service(conn, "eve", "secret-eve", simultaneous_use=1)
    daemon = start_radiusd(db_url, tmp_path)
    yield daemon
    assert daemon.stop() == 0, "\n".join(daemon.output)


async def test_pap_accept_carries_the_tariff_and_addresses(radiusd: Radiusd, conn: asyncpg.Connection) -> None:
    c = client(radiusd)
    reply = await send(c, access_request(c, "ann", "secret-ann"))
    assert reply.code == AccessAccept
    a = attrs(reply)
    assert a["Framed-IP-Address"] == ["100.64.0.10"]
    assert a["Framed-IPv6-Prefix"] == ["2001:db8:0:10::/64"]
    assert a["Delegated-IPv6-Prefix"] == ["2001:db8:8000:1000::/56"]
    # rx/tx = upload/download, burst, threshold, time, priority
    assert a["Mikrotik-Rate-Limit"] == ["10M/50M 20M/100M 8M/40M 16/16 8"]
    assert a["Acct-Interim-Interval"] == [300]
    row = await eventually(lambda: conn.fetchrow("SELECT result, reason, nas_id FROM radius_postauth"))
    assert (row["result"], row["reason"]) == ("accept", "ok")


async def test_every_reply_starts_with_a_valid_message_authenticator(radiusd: Radiusd) -> None:
    """BlastRADIUS: Message-Authenticator is the first attribute of every Access-Accept and -Reject."""
    for user, password, code in (("ann", "secret-ann", Code.ACCESS_ACCEPT), ("ann", "nope", Code.ACCESS_REJECT)):
        request = encode_request(Code.ACCESS_REQUEST, 7, [("User-Name", user), ("User-Password", password)], SECRET)
        reply = await send_raw(request, radiusd.auth_port)
        assert reply is not None and reply[0] == code
        assert reply[20:22] == b"\x50\x12"
        zeroed = reply[:4] + request[4:20] + reply[20:22] + bytes(16) + reply[38:]
        assert hmac.digest(SECRET, zeroed, "md5") == reply[22:38]
        expected_auth = hashlib.md5(reply[:4] + request[4:20] + reply[20:] + SECRET).digest()
        assert reply[4:20] == expected_auth


@pytest.mark.parametrize(("user", "password", "kwargs", "reason", "message"), [
    ("ann", "wrong", {}, "wrong password", "Login incorrect"),
    ("nobody", "x", {}, "unknown user", "Login incorrect"),
    ("carl", "secret-carl", {}, "service not active", "Service not active"),
    ("bob", "secret-bob", {"Calling_Station_Id": "02:00:00:00:00:99"}, "MAC address does not match the service",
     "Device not allowed for this account"),
])
async def test_rejects_say_why(radiusd: Radiusd, conn: asyncpg.Connection, user: str, password: str,
                               kwargs: dict[str, str], reason: str, message: str) -> None:
    c = client(radiusd)
    reply = await send(c, access_request(c, user, password, ma=True, **kwargs))
    assert reply.code == AccessReject
    assert attrs(reply)["Reply-Message"] == [message]
    row = await eventually(lambda: conn.fetchrow("SELECT username, result, reason FROM radius_postauth"))
    assert tuple(row) == (user, "reject", reason)
    log = await eventually(lambda: [e for e in radiusd.logs() if e.get("event") == "access-reject"])
    assert log[0]["reason"] == reason and log[0]["user"] == user


async def test_mac_binding_accepts_the_right_device(radiusd: Radiusd) -> None:
    c = client(radiusd)
    reply = await send(c, access_request(c, "bob", "secret-bob", Calling_Station_Id="02-00-00-00-00-0B"))
    assert reply.code == AccessAccept


async def test_blocked_customer_lands_in_the_address_list(radiusd: Radiusd, db_url: str, tmp_path: Path) -> None:
    c = client(radiusd)
    reply = await send(c, access_request(c, "dora", "secret-dora"))
    assert reply.code == AccessAccept
    assert attrs(reply)["Mikrotik-Address-List"] == ["blocked"]


async def test_blocked_customer_or_service_rejected_when_set_so(conn: asyncpg.Connection, db_url: str,
                                                                 tmp_path: Path) -> None:
    """The reason names what is blocked: the customer (all their services) or this one service."""
    await add_nas(conn)
    await add_service(conn, "dora", "secret-dora", customer_status="blocked")
    await add_service(conn, "fred", "secret-fred", status="blocked")  # under an active customer
    daemon = start_radiusd(db_url, tmp_path, blocked_action="reject")
    try:
        c = client(daemon)
        reply = await send(c, access_request(c, "dora", "secret-dora"))
        assert reply.code == AccessReject and attrs(reply)["Reply-Message"] == ["Account blocked"]
        reply = await send(c, access_request(c, "fred", "secret-fred"))
        assert reply.code == AccessReject and attrs(reply)["Reply-Message"] == ["Service blocked"]
        query = "SELECT username, reason FROM radius_postauth ORDER BY at"
        rows = await eventually(lambda: _rows_when(conn, query, 2))
        assert [tuple(r) for r in rows] == [("dora", "customer blocked"), ("fred", "service blocked")]
    finally:
        assert daemon.stop() == 0


async def _rows_when(conn: asyncpg.Connection, query: str, n: int) -> list[asyncpg.Record] | None:
    rows = await conn.fetch(query)
    return rows if len(rows) >= n else None


async def test_chap(radiusd: Radiusd) -> None:
    c = client(radiusd)
    challenge = os.urandom(16)
    ident = 5
    req = access_request(c, "ann", CHAP_Challenge=challenge)
    req["CHAP-Password"] = bytes([ident]) + authproto.chap_response(ident, b"secret-ann", challenge)
    assert (await send(c, req)).code == AccessAccept
    req = access_request(c, "ann", CHAP_Challenge=challenge)
    req["CHAP-Password"] = bytes([ident]) + authproto.chap_response(ident, b"wrong", challenge)
    assert (await send(c, req)).code == AccessReject


async def test_mschapv2_with_success_and_mppe_keys(radiusd: Radiusd) -> None:
    """The client side of RFC 2759 computed here; the server must prove it knows the password too."""
    c = client(radiusd)
    auth_challenge, peer_challenge, ident = os.urandom(16), os.urandom(16), 9
    password_hash = authproto.nt_password_hash("secret-ann")
    nt_response = authproto.generate_nt_response(auth_challenge, peer_challenge, b"ann", password_hash)
    req = access_request(c, "ann")
    req["MS-CHAP-Challenge"] = auth_challenge
    req["MS-CHAP2-Response"] = bytes([ident, 0]) + peer_challenge + bytes(8) + nt_response
    reply = await send(c, req)
    assert reply.code == AccessAccept
    a = attrs(reply)
    expected = authproto.generate_authenticator_response(
        password_hash, nt_response, peer_challenge, auth_challenge, b"ann")
    assert a["MS-CHAP2-Success"] == [bytes([ident]) + expected]
    assert "MS-MPPE-Send-Key" in a and "MS-MPPE-Recv-Key" in a


async def test_access_request_without_message_authenticator_is_dropped(radiusd: Radiusd) -> None:
    request = encode_request(Code.ACCESS_REQUEST, 1, [("User-Name", "ann"), ("User-Password", "secret-ann")],
                             SECRET)
    stripped = bytearray(request[:20] + request[38:])  # remove the MA (first attribute)
    stripped[2:4] = len(stripped).to_bytes(2, "big")
    assert await send_raw(bytes(stripped), radiusd.auth_port) is None
    forged = bytearray(request)
    forged[30] ^= 0xFF  # a wrong Message-Authenticator
    assert await send_raw(bytes(forged), radiusd.auth_port) is None
    assert radiusd.metric("lastmile_radiusd_dropped_total", reason="missing_message_authenticator") == 1
    assert radiusd.metric("lastmile_radiusd_dropped_total", reason="bad_message_authenticator") == 1


async def test_exempt_nas_without_ma_but_proxy_state_still_limited(conn: asyncpg.Connection, db_url: str,
                                                                   tmp_path: Path) -> None:
    await add_nas(conn, require_ma=False, limit_proxy_state=True)
    await add_service(conn, "ann", "secret-ann")
    daemon = start_radiusd(db_url, tmp_path)
    try:
        c = client(daemon)
        assert (await send(c, access_request(c, "ann", "secret-ann", ma=False))).code == AccessAccept
        proxied = encode_request(Code.ACCESS_REQUEST, 2, [("User-Name", "ann"), ("User-Password", "secret-ann"),
                                                          ("Proxy-State", b"hop1")], SECRET)
        without_ma = bytearray(proxied[:20] + proxied[38:])
        without_ma[2:4] = len(without_ma).to_bytes(2, "big")
        assert await send_raw(bytes(without_ma), daemon.auth_port) is None
        assert daemon.metric("lastmile_radiusd_dropped_total", reason="proxy_state_without_ma") == 1
    finally:
        assert daemon.stop() == 0


async def test_unknown_client_is_dropped_and_counted(radiusd: Radiusd) -> None:
    request = encode_request(Code.ACCESS_REQUEST, 3, [("User-Name", "ann"), ("User-Password", "secret-ann")], SECRET)
    assert await send_raw(request, radiusd.auth_port, source="127.0.0.2") is None
    assert radiusd.metric("lastmile_radiusd_dropped_total", reason="unknown_client") == 1


async def test_floods_cost_a_line_and_a_summary_not_a_line_per_packet(conn: asyncpg.Connection, db_url: str,
                                                                       tmp_path: Path) -> None:
    """1,103 spoofed packets from a known NAS's address and a router retrying a wrong password:
    each writes its first line and, when the period ends (here: at the drain), one line with the
    count. Distinct users rejected for one reason are logged one by one up to a limit, then
    counted together. The post-auth log keeps every reject."""
    import socket

    await add_nas(conn)
    await add_service(conn, "ann", "secret-ann")
    daemon = start_radiusd(db_url, tmp_path)
    try:
        request = encode_request(Code.ACCESS_REQUEST, 1, [("User-Name", "ann"), ("User-Password", "x")], SECRET)
        forged = bytearray(request)
        forged[30] ^= 0xFF  # a Message-Authenticator that does not verify
        others = [f"nobody-{i}" for i in range(logsummary.PER_GROUP + 5)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(2)
            for _ in range(1103):
                s.sendto(bytes(forged), ("127.0.0.1", daemon.auth_port))
            for n, user in enumerate(["ann"] * 50 + others):
                s.sendto(encode_request(Code.ACCESS_REQUEST, n % 256, [("User-Name", user), ("User-Password", "nope")],
                                        SECRET), ("127.0.0.1", daemon.auth_port))
                assert s.recv(4096)[0] == Code.ACCESS_REJECT
        await eventually(lambda: daemon.metric("lastmile_radiusd_dropped_total",
                                               reason="bad_message_authenticator") == 1103)
        await eventually(lambda: _rows_when(conn, "SELECT 1 FROM radius_postauth WHERE result = 'reject'", 65))
    finally:
        assert daemon.stop() == 0
    logs = daemon.logs()

    def lines(event: str) -> list[dict[str, object]]:
        return [{k: v for k, v in e.items() if k not in ("timestamp", "level", "daemon", "seconds")}
                for e in logs if e["event"] == event]

    assert lines("request failed authentication") == [
        {"event": "request failed authentication", "nas": "nas-1", "reason": "bad_message_authenticator"}]
    assert lines("request failed authentication repeated") == [
        {"event": "request failed authentication repeated", "nas": "nas-1", "reason": "bad_message_authenticator",
         "count": 1102}]
    rejected = lines("access-reject")
    assert [(e["user"], e["reason"]) for e in rejected] == [
        ("ann", "wrong password"), *((u, "unknown user") for u in others[:logsummary.PER_GROUP])]
    assert sorted(lines("access-reject repeated"), key=str) == sorted([
        {"event": "access-reject repeated", "nas": "nas-1", "reason": "wrong password", "user": "ann", "count": 49},
        {"event": "access-reject repeated", "nas": "nas-1", "reason": "unknown user", "others": True, "count": 5},
    ], key=str)


MALFORMED = [  # one packet per class of FreeRADIUS's errors.txt that reaches a server
    (b"\x01\x02\x00\x14" + bytes(10), "short_packet"),
    (b"\x01\x02\x00\x10" + bytes(16), "bad_length"),
    (b"\x01\x02\x00\x40" + bytes(16), "truncated"),
    (b"\x01\x02\x00\x17" + bytes(16) + b"\x01\x01\x00", "attr_length"),
    (b"\x01\x02\x00\x18" + bytes(16) + b"\x01\x09ab", "attr_overflow"),
    (b"\x01\x02\x00\x17" + bytes(16) + b"\x00\x03a", "attr_type_zero"),
    (b"\x01\x02\x10\x01" + bytes(4113), "too_long"),
    (b"\x07\x02\x00\x14" + bytes(16), "unknown_code"),
    (b"\x01\x02\x00\x1c" + bytes(16) + b"\x50\x08" + bytes(6), "bad_ma_length"),
]


async def test_malformed_packets_get_a_labelled_drop(radiusd: Radiusd) -> None:
    for packet, _ in MALFORMED:
        assert await send_raw(packet, radiusd.auth_port, timeout=0.2) is None
    for _, reason in MALFORMED:
        assert radiusd.metric("lastmile_radiusd_dropped_total", reason=reason) == 1, reason
    # Still serving after all of them.
    c = client(radiusd)
    assert (await send(c, access_request(c, "ann", "secret-ann"))).code == AccessAccept


async def test_retransmission_gets_the_same_bytes_and_runs_once(radiusd: Radiusd, conn: asyncpg.Connection) -> None:
    request = encode_request(Code.ACCESS_REQUEST, 42, [("User-Name", "ann"), ("User-Password", "secret-ann")],
                             SECRET)
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.bind(("127.0.0.1", 0))
        s.sendto(request, ("127.0.0.1", radiusd.auth_port))
        first = s.recv(4096)
        s.sendto(request, ("127.0.0.1", radiusd.auth_port))
        second = s.recv(4096)
    assert first == second
    assert radiusd.metric("lastmile_radiusd_duplicates_total") == 1
    await eventually(lambda: conn.fetchval("SELECT count(*) FROM radius_postauth"))
    assert await conn.fetchval("SELECT count(*) FROM radius_postauth") == 1


async def test_status_server_on_both_ports(radiusd: Radiusd) -> None:
    probe = encode_request(Code.STATUS_SERVER, 9, [("NAS-Identifier", "monitor")], SECRET)
    reply = await send_raw(probe, radiusd.auth_port)
    assert reply is not None and reply[0] == Code.ACCESS_ACCEPT
    reply = await send_raw(probe, radiusd.acct_port)
    assert reply is not None and reply[0] == Code.ACCOUNTING_RESPONSE


async def test_simultaneous_use_counts_live_sessions(radiusd: Radiusd) -> None:
    c = client(radiusd)
    assert (await send(c, access_request(c, "eve", "secret-eve"))).code == AccessAccept
    await send(c, accounting_request(c, "eve", "Start", "eve-1"))
    reply = await send(c, access_request(c, "eve", "secret-eve"))
    assert reply.code == AccessReject and attrs(reply)["Reply-Message"] == ["Already logged in"]
    await send(c, accounting_request(c, "eve", "Stop", "eve-1", Acct_Session_Time=60))
    assert (await send(c, access_request(c, "eve", "secret-eve"))).code == AccessAccept


async def test_a_change_in_the_database_reaches_the_cache_within_a_second(radiusd: Radiusd,
                                                                          conn: asyncpg.Connection) -> None:
    import time

    c = client(radiusd)
    await conn.execute("UPDATE services SET password = 'new-pass' WHERE login = 'ann'")
    changed = time.monotonic()

    async def accepted() -> bool:
        return bool((await send(c, access_request(c, "ann", "new-pass"))).code == AccessAccept)

    await eventually(accepted, timeout=1.0)
    assert time.monotonic() - changed < 1.0
    await conn.execute("INSERT INTO nas (name, address, secret) VALUES ('nas-2', '127.0.0.2/32', 'other-secret-1234')")
    other = encode_request(Code.ACCESS_REQUEST, 4, [("User-Name", "ann"), ("User-Password", "new-pass")],
                           b"other-secret-1234")
    await eventually(lambda: send_raw(other, radiusd.auth_port, source="127.0.0.2"), timeout=1.0)


async def test_dynamic_addresses_come_from_the_pool_and_return(conn: asyncpg.Connection, db_url: str,
                                                               tmp_path: Path) -> None:
    await add_nas(conn)
    pool_id = await conn.fetchval("INSERT INTO ip_pools (name, network) VALUES ('dyn', '100.96.0.0/29') RETURNING id")
    for name in ("p1", "p2", "p3"):
        await add_service(conn, name, "pw-" + name, pool_id=pool_id)
    daemon = start_radiusd(db_url, tmp_path)
    try:
        c = client(daemon)
        given = {}
        for name in ("p1", "p2", "p3"):
            reply = await send(c, access_request(c, name, "pw-" + name))
            assert reply.code == AccessAccept
            given[name] = attrs(reply)["Framed-IP-Address"][0]
        assert len(set(given.values())) == 3  # never one address for two sessions
        assert all(a.startswith("100.96.0.") for a in given.values())
        # The NAS asks again for p2 (its Accept was followed by no Accounting-Start): p2 has one
        # session at most, so it gets the address still reserved for it, not a second one.
        retry = await send(c, access_request(c, "p2", "pw-p2"))
        assert attrs(retry)["Framed-IP-Address"][0] == given["p2"]
        # Addresses from the stock are recorded (reserved for their service) just after the reply.
        reserved_p2 = ("SELECT count(*) = 1 FROM ip_leases WHERE state = 'reserved' AND service_id = "
                       "(SELECT id FROM services WHERE login = 'p2')")
        assert await eventually(lambda: conn.fetchval(reserved_p2))
        await send(c, accounting_request(c, "p1", "Start", "p1-s", Framed_IP_Address=given["p1"]))
        lease = await eventually(lambda: conn.fetchrow(
            "SELECT state, acct_unique_id FROM ip_leases WHERE address = $1::inet AND state = 'bound'", given["p1"]))
        assert lease["acct_unique_id"]
        await send(c, accounting_request(c, "p1", "Stop", "p1-s", Framed_IP_Address=given["p1"]))
        assert await conn.fetchval("SELECT state FROM ip_leases WHERE address = $1::inet", given["p1"]) == "free"
        # The service gets its old address back when it is free.
        again = await send(c, access_request(c, "p1", "pw-p1"))
        assert attrs(again)["Framed-IP-Address"][0] == given["p1"]
    finally:
        assert daemon.stop() == 0


async def test_pool_exhausted_rejects(conn: asyncpg.Connection, db_url: str, tmp_path: Path) -> None:
    await add_nas(conn)
    pool_id = await conn.fetchval("INSERT INTO ip_pools (name, network) VALUES ('tiny', '100.96.1.0/31') RETURNING id")
    for name in ("q1", "q2", "q3"):
        await add_service(conn, name, "pw", pool_id=pool_id, simultaneous_use=0)
    daemon = start_radiusd(db_url, tmp_path)
    try:
        c = client(daemon)
        codes = [(await send(c, access_request(c, n, "pw"))).code for n in ("q1", "q2", "q3")]
        assert codes == [AccessAccept, AccessAccept, AccessReject]
    finally:
        assert daemon.stop() == 0


@pytest.mark.skipif(not shutil.which("radclient"), reason="radclient (freeradius-utils) is not installed")
async def test_radclient_gets_an_accept(radiusd: Radiusd) -> None:
    result = subprocess.run(
        ["radclient", "-x", "-r", "1", "-t", "2", f"127.0.0.1:{radiusd.auth_port}", "auth", SECRET.decode()],
        input="User-Name = ann\nUser-Password = secret-ann\nMessage-Authenticator = 0x00\n",
        capture_output=True, text=True, timeout=10)
    assert "Received Access-Accept" in result.stdout, result.stdout + result.stderr
    assert 'Mikrotik-Rate-Limit = "10M/50M' in result.stdout
