"""What the ACS's integration tests share: an ACS in the test's own loop over real HTTP on
127.0.0.1 and a real PostgreSQL (:func:`start`, the ``acs_factory`` and ``acs`` fixtures), and a
CPE by hand (:class:`HandCpe`) that replays the envelopes of tests/vectors/cwmp with the digest
computed here (hashlib).

``start(db_url, **settings)`` returns an :class:`Acs` with its URL, its Server (caches, metrics)
and its pool; ``stop()`` drains it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from yarl import URL

from acs.files import Tokens
from acs.server import COOKIE, Server
from acs.settings import AcsSettings
from acs.writer import InformWriter, SessionLog
from daemons import db
from daemons.secrets import Keyring
from tests.conftest import free_port
from tests.fakes.cpe import Cpe

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "cwmp"
KEY = bytes(range(32))
KEYRING = Keyring(KEY)
USER, PASSWORD = "cpe", "cpe-secret"
SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"


# --- an ACS in the test's loop ----------------------------------------------------------------

@dataclass
class Acs:
    url: str
    server: Server
    pool: asyncpg.Pool
    runner: web.AppRunner

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.server.writer.close()
        await self.server.session_log.close()
        await self.pool.close()


async def start(db_url: str, **overrides: Any) -> Acs:
    port = free_port()
    values: dict[str, Any] = {"bind": "127.0.0.1", "port": port, "username": USER, "password": PASSWORD}
    settings = AcsSettings(**{**values, **overrides})
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=6, init=db.init_connection)
    server = Server(pool, settings, keyring=KEYRING, writer=InformWriter(pool),
                    session_log=SessionLog(pool, max_wait=0.05), cookie_key=KEY, tokens=Tokens(KEY),
                    password=settings.password, instance=f"test-{port}")
    await server.load()
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return Acs(f"http://127.0.0.1:{port}/cwmp", server, pool, runner)


@pytest.fixture
async def acs_factory(db_url: str) -> AsyncIterator[Callable[..., Awaitable[Acs]]]:
    started: list[Acs] = []

    async def make(**overrides: Any) -> Acs:
        acs = await start(db_url, **overrides)
        started.append(acs)
        return acs

    yield make
    for acs in started:
        await acs.stop()


@pytest.fixture
async def acs(acs_factory: Callable[..., Awaitable[Acs]]) -> Acs:
    return await acs_factory()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


# --- a CPE by hand: the recorded envelopes, digest computed here ------------------------------

def vector(name: str, cwmp_id: str | None = None) -> bytes:
    data = (VECTORS / name).read_bytes()
    if cwmp_id is not None:
        data = re.sub(rb"(<cwmp:ID[^>]*>)[^<]*(</cwmp:ID>)", rb"\g<1>" + cwmp_id.encode() + rb"\g<2>", data)
    return data


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def digest_header(challenge: str, user: str, password: str, uri: str, nc: int = 1) -> str:
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.partition(" ")[2]))
    realm, nonce, cnonce = params["realm"], params["nonce"], secrets.token_hex(8)
    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"POST:{uri}")
    response = md5(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", qop=auth, '
            f'nc={nc:08x}, cnonce="{cnonce}", response="{response}", algorithm=MD5')


@dataclass
class Answer:
    status: int
    headers: Any
    body: bytes

    @property
    def cookie(self) -> str | None:
        m = re.search(rf"{COOKIE}=([^;]*)", self.headers.get("Set-Cookie", ""))
        return m.group(1) if m and m.group(1) else None

    def message(self) -> tuple[str, str | None]:
        """(local name of the Body's element, cwmp:ID) of an envelope answer."""
        root = ET.fromstring(self.body)
        header, body = root.find(f"{SOAP}Header"), root.find(f"{SOAP}Body")
        assert body is not None and len(body) == 1
        cwmp_id = next((h.text for h in (header if header is not None else []) if h.tag.endswith("}ID")), None)
        return body[0].tag.rpartition("}")[2], cwmp_id


@dataclass
class HandCpe:
    """Posts envelopes as a CPE does: answers one digest challenge, keeps the session cookie."""

    http: aiohttp.ClientSession
    user: str = USER
    password: str = PASSWORD
    cookie: str | None = None
    authorization: str | None = None
    statuses: list[int] = field(default_factory=list)

    async def post(self, url: str, data: bytes = b"", *, authenticate: bool = True) -> Answer:
        for _ in range(2):
            headers = {"Content-Type": 'text/xml; charset="utf-8"'}
            if self.cookie:
                headers["Cookie"] = f"{COOKIE}={self.cookie}"
            if self.authorization:
                headers["Authorization"] = self.authorization
            async with self.http.post(url, data=data, headers=headers) as r:
                answer = Answer(r.status, r.headers, await r.read())
            self.statuses.append(answer.status)
            if answer.status == 401 and authenticate and self.authorization is None:
                self.authorization = digest_header(answer.headers["WWW-Authenticate"], self.user, self.password,
                                                   URL(url).raw_path)
                continue
            break
        if "Set-Cookie" in answer.headers:
            self.cookie = answer.cookie
        return answer


async def without_presets(acs: Acs) -> None:
    await acs.pool.execute("UPDATE acs_presets SET enabled = false")
    await acs.server.load()


def identity(cpe: Cpe) -> str:
    """The device's cwmp id as the ACS names it (each part's "-" percent-encoded: HGW-181 -> HGW%2D181)."""
    return "-".join(p.replace("%", "%25").replace("-", "%2D")
                    for p in (cpe.oui, cpe.product_class, cpe.value(cpe._info("SerialNumber"))))


def metric(name: str, **labels: str) -> float:
    from daemons.metrics import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0
