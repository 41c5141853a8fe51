"""Helpers for driving a real radiusd process over UDP: subscribers in the database, the daemon
as a subprocess, pyrad clients, raw sockets, and metric reads."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from pyrad.client import Client
from pyrad.dictionary import Dictionary
from pyrad.packet import AccessRequest, AccountingRequest, Packet

from tests.conftest import free_port
from tests.integration.daemon import Daemon, start_daemon

ROOT = Path(__file__).resolve().parents[2]
DICTIONARY = ROOT / "radiusd" / "dictionary" / "dictionary"
SECRET = b"test-secret-0123456789"


async def add_nas(conn: asyncpg.Connection, address: str = "127.0.0.1/32", secret: bytes = SECRET,
                  require_ma: bool = True, limit_proxy_state: bool = True, coa_port: int = 3799,
                  name: str = "nas-1") -> int:
    nas_id: int = await conn.fetchval(
        "INSERT INTO nas (name, address, secret, require_message_authenticator, limit_proxy_state, coa_port) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        name, address, secret.decode(), require_ma, limit_proxy_state, coa_port)
    return nas_id


async def add_service(conn: asyncpg.Connection, login: str, password: str, **columns: Any) -> int:
    """A customer with one service on a 50/10 Mbit/s tariff; ``columns`` override the service's."""
    partner = await conn.fetchval(
        "INSERT INTO partners (name) VALUES ('test') ON CONFLICT (name) DO UPDATE SET name = 'test' RETURNING id")
    tariff = await conn.fetchval(
        "INSERT INTO tariffs (name, download_kbps, upload_kbps, burst_download_kbps, burst_upload_kbps, "
        "burst_threshold_download_kbps, burst_threshold_upload_kbps, burst_time_s) "
        "VALUES ('Home 50', 50000, 10000, 100000, 20000, 40000, 8000, 16) "
        "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id")
    customer_status = columns.pop("customer_status", "active")
    customer = await conn.fetchval(
        "INSERT INTO customers (partner_id, number, name, status) VALUES ($1, $2, $3, $4) RETURNING id",
        partner, f"N-{login}", f"Customer {login}", customer_status)
    names = ["customer_id", "tariff_id", "login", "password", *columns]
    values = [customer, tariff, login, password, *columns.values()]
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    service_id: int = await conn.fetchval(
        f"INSERT INTO services ({', '.join(names)}) VALUES ({placeholders}) RETURNING id", *values)
    return service_id


@dataclass
class Radiusd(Daemon):
    """A running `lastmile radiusd`."""

    auth_port: int = 0
    acct_port: int = 0
    spool_dir: Path = Path()


def start_radiusd(db_url: str, tmp: Path, extra_env: dict[str, str] | None = None, **settings: str) -> Radiusd:
    """Start radiusd on free ports against ``db_url``; returns once it reports ready."""
    auth, acct = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    env = {"LASTMILE_RADIUSD__BIND": "127.0.0.1", "LASTMILE_RADIUSD__AUTH_PORT": str(auth),
           "LASTMILE_RADIUSD__ACCT_PORT": str(acct), "LASTMILE_RADIUSD__SPOOL_DIR": str(tmp / "spool")}
    env.update({f"LASTMILE_RADIUSD__{k.upper()}": v for k, v in settings.items()})
    env.update(extra_env or {})
    return start_daemon(Radiusd, "radiusd", db_url, tmp, env, auth_port=auth, acct_port=acct, spool_dir=tmp / "spool")


async def start(db_url: str, tmp: Path, started: list[Radiusd], **settings: str) -> Radiusd:
    """``start_radiusd`` off the event loop; the daemon joins ``started`` (the ``radiusds`` fixture)."""
    daemon = await asyncio.to_thread(lambda: start_radiusd(db_url, tmp, None, **settings))
    started.append(daemon)
    return daemon


def client(daemon: Radiusd, secret: bytes = SECRET, timeout: float = 2.0, retries: int = 1) -> Client:
    c = Client(server="127.0.0.1", authport=daemon.auth_port, acctport=daemon.acct_port, secret=secret,
               dict=Dictionary(str(DICTIONARY)))
    c.timeout = timeout
    c.retries = retries
    return c


def access_request(c: Client, user: str, password: str | None = None, *, ma: bool = True,
                   **attributes: Any) -> Packet:
    req = c.CreateAuthPacket(code=AccessRequest, User_Name=user, NAS_IP_Address="127.0.0.1", **attributes)
    if password is not None:
        req["User-Password"] = req.PwCrypt(password)
    if ma:
        req.add_message_authenticator()
    return req


def accounting_request(c: Client, user: str, status: str, session_id: str, **attributes: Any) -> Packet:
    return c.CreateAcctPacket(code=AccountingRequest, User_Name=user, Acct_Status_Type=status,
                              Acct_Session_Id=session_id, NAS_IP_Address="127.0.0.1", **attributes)


def attrs(reply: Packet) -> dict[str, list[Any]]:
    """The attributes of a pyrad reply by name (pyrad's values are untyped: str, int or bytes)."""
    # pyrad overrides keys() to give attribute names; iterating the dict gives raw codes.
    return {k: reply[k] for k in reply.keys()}  # noqa: SIM118


async def send(c: Client, req: Packet) -> Packet:
    """pyrad's client is blocking: run it off the event loop (and close the socket it opens)."""

    def run() -> Packet:
        try:
            return c.SendPacket(req)
        finally:
            c._CloseSocket()

    return await asyncio.to_thread(run)


async def send_raw(data: bytes, port: int, timeout: float = 0.5, source: str = "127.0.0.1") -> bytes | None:
    """Send one datagram and return the reply, or None if none comes in ``timeout``."""
    def run() -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((source, 0))
            s.settimeout(timeout)
            s.sendto(data, ("127.0.0.1", port))
            try:
                return s.recv(4096)
            except TimeoutError:
                return None

    return await asyncio.to_thread(run)


def unique_id(user: str, session_id: str, nas_ip: str = "127.0.0.1", nas_port_id: str = "") -> str:
    """FreeRADIUS's Acct-Unique-Session-Id (User-Name,Acct-Session-Id,NAS-IP,NAS-Identifier,NAS-Port-Id,NAS-Port)."""
    return hashlib.md5(f"{user},{session_id},{nas_ip},,{nas_port_id},".encode()).hexdigest()


async def eventually(check: Any, timeout: float = 5.0) -> Any:
    """Await ``check()`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        await asyncio.sleep(0.05)
