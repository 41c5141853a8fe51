"""Helpers for driving a real radiusd process over UDP: subscribers in the database, the daemon
as a subprocess, pyrad clients, raw sockets, and metric reads."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from pyrad.client import Client
from pyrad.dictionary import Dictionary
from pyrad.packet import AccessRequest, AccountingRequest, Packet

from tests.conftest import free_port

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
class Radiusd:
    """A running `lastmile radiusd`."""

    proc: subprocess.Popen[str]
    auth_port: int
    acct_port: int
    metrics_port: int
    spool_dir: Path
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            self.output.append(line.rstrip("\n"))

    def metrics(self) -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            match = re.match(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
            if not match:
                continue
            have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(match.group(2))
        return total

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.output if line.startswith("{")]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._drain_output()
        return self.proc.returncode

    def _drain_output(self) -> None:
        assert self.proc.stdout and self.reader
        self.reader.join(5)
        self.proc.stdout.close()


def start_radiusd(db_url: str, tmp: Path, extra_env: dict[str, str] | None = None, **settings: str) -> Radiusd:
    """Start radiusd on free ports against ``db_url``; returns once it reports ready."""
    auth, acct, metrics_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    env.update(PYTHONPATH=str(ROOT), LASTMILE_DATABASE__URL=db_url, LASTMILE_RADIUSD__BIND="127.0.0.1",
               LASTMILE_RADIUSD__AUTH_PORT=str(auth), LASTMILE_RADIUSD__ACCT_PORT=str(acct),
               LASTMILE_RADIUSD__METRICS_PORT=str(metrics_port), LASTMILE_RADIUSD__SPOOL_DIR=str(tmp / "spool"),
               LASTMILE_LOG__FORMAT="json", LASTMILE_DATABASE__POOL_MIN="1")
    env.update({f"LASTMILE_RADIUSD__{k.upper()}": v for k, v in settings.items()})
    env.update(extra_env or {})
    proc = subprocess.Popen([sys.executable, "-m", "daemons.cli", "radiusd"], env=env, cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    daemon = Radiusd(proc, auth, acct, metrics_port, tmp / "spool")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            daemon._drain_output()
            raise AssertionError("radiusd exited:\n" + "\n".join(daemon.output))
        try:
            if 'lastmile_ready{daemon="radiusd"} 1.0' in daemon.metrics():
                return daemon
        except OSError:
            pass
        time.sleep(0.05)
    daemon.stop()
    raise AssertionError("radiusd did not become ready:\n" + "\n".join(daemon.output))


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
