"""Stripe for tests: localstripe (a stateful Stripe emulator, from PyPI) in a process of its own
on 127.0.0.1, behind a proxy that adds Stripe's idempotency keys, which localstripe lacks.

localstripe lives in its own virtual environment, ``.venv-localstripe/`` at the repository's
root (it pins its own libraries and must not change the project's): :func:`ensure_installed`
makes it on first use with ``pip install localstripe==VERSION`` and reuses it after. Without it
(no network, say) the tests that need it are skipped, and under CI (``CI=true``) they fail.

:class:`LocalStripe` starts it (``localstripe.server``'s aiohttp app, on 127.0.0.1 and a free
port, nothing read from or meant for disk) and stops it; ``url`` is what the ``stripe`` library
is pointed at (``StripeClient(base_addresses={"api": url})``, lastmile's gateway setting
``api_base``). Requests go through :class:`IdempotencyProxy`, which does what Stripe documents
for ``Idempotency-Key`` (docs.stripe.com/api/idempotent_requests): the first answer to a key,
success or error, is kept and given again to a request with the same key and parameters (with
``Idempotent-Replayed: true``); the same key with other parameters is refused 400
``idempotency_error``; a request with a key in use waits for the first (Stripe answers 409 at
once). ``lose_responses = N`` drops the next N answers after localstripe did the work, as a
network that loses an answer would; ``forwarded`` counts what reached localstripe, by path.

localstripe's own limits, which the tests live with: a PaymentIntent takes only amount,
currency, customer, payment_method, metadata, payment_method_types, capture_method and
payment_method_options (no description, no setup_future_usage); a card reaches it through a
SetupIntent's confirmation (Stripe.js ``confirmCardSetup``, done by :meth:`LocalStripe.confirm_setup`)
or its test payment methods (``pm_card_visa``); a PaymentIntent waiting for 3-D Secure is
finished through its ``/_authenticate`` route (:meth:`LocalStripe.authenticate`, what its
Stripe.js does); an off-session charge of a card that wants 3-D Secure is left waiting rather
than refused; it sends no ``setup_intent.*`` and no ``charge.refunded`` events (the tests send
those themselves, signed as Stripe signs).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.conftest import free_port

VERSION = "1.15.10"
ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-localstripe"
PYTHON = VENV / "bin" / "python"
LAUNCH = ("import logging, sys\n"
          "from aiohttp import web\n"
          "from localstripe.server import app\n"
          "logging.basicConfig(level=logging.INFO, stream=sys.stdout)\n"
          "web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), print=None, access_log_format='%r %s')\n")


class Unavailable(RuntimeError):
    """localstripe could not be installed or started."""


def installed() -> bool:
    return PYTHON.exists() and subprocess.run(  # our own venv's python
        [str(PYTHON), "-c", "import localstripe.server"], capture_output=True, check=False).returncode == 0


def ensure_installed() -> Path:
    """``.venv-localstripe/`` with localstripe in it (made once; a lock keeps two sessions from
    making it at once)."""
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(ROOT / ".venv-localstripe.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed():
            return PYTHON
        base = getattr(sys, "_base_executable", sys.executable)
        steps = [[base, "-m", "venv", "--clear", str(VENV)],
                 [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  f"localstripe=={VERSION}"]]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False, timeout=600)
            if done.returncode != 0:
                raise Unavailable(f"{' '.join(step[:4])}... failed: {(done.stderr or done.stdout)[-800:]}")
        if not installed():
            raise Unavailable("localstripe was installed but does not import")
    return PYTHON


class IdempotencyProxy:
    """Stripe's idempotency keys in front of localstripe (see the module's doc)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.lose_responses = 0
        self.forwarded: Counter[str] = Counter()
        self._kept: dict[str, tuple[str, int, bytes, str]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request, body: bytes) -> tuple[int, bytes, str]:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("authorization", "content-type", "stripe-version", "user-agent")}
        self.forwarded[f"{request.method} {request.path}"] += 1
        async with self._session.request(request.method, self.upstream + request.path_qs, data=body or None,
                                         headers=headers) as r:
            return r.status, await r.read(), r.headers.get("Content-Type", "application/json")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key:
            status, data, kind = await self._forward(request, body)
            return web.Response(status=status, body=data, headers={"Content-Type": kind})
        fingerprint = hashlib.sha256(request.path.encode() + b"\0" + body).hexdigest()
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            kept = self._kept.get(key)
            if kept is not None:
                if kept[0] != fingerprint:
                    return web.json_response({"error": {
                        "type": "idempotency_error",
                        "message": "Keys for idempotent requests can only be used with the same parameters they "
                                   f"were first used with. Try using a key other than '{key}' if you meant to "
                                   "execute a different request."}}, status=400)
                return self._answer(request, web.Response(status=kept[1], body=kept[2], headers={
                    "Content-Type": kept[3], "Idempotent-Replayed": "true"}))
            status, data, kind = await self._forward(request, body)
            self._kept[key] = (fingerprint, status, data, kind)
        return self._answer(request, web.Response(status=status, body=data, headers={"Content-Type": kind}))

    def _answer(self, request: web.Request, response: web.Response) -> web.Response:
        if self.lose_responses > 0:
            self.lose_responses -= 1
            if request.transport is not None:
                request.transport.close()  # the work is done; the answer never arrives
        return response


class LocalStripe:
    """localstripe as a process on 127.0.0.1 behind :class:`IdempotencyProxy`."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.proxy = IdempotencyProxy(f"http://127.0.0.1:{self.port}")
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def direct(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self) -> subprocess.Popen[bytes]:
        python = ensure_installed()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            return subprocess.Popen([str(python), "-c", LAUNCH, str(self.port)], stdout=out,
                                    stderr=subprocess.STDOUT, cwd=str(self.log.parent),
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})

    async def start(self) -> LocalStripe:
        self.process = await asyncio.to_thread(self._spawn)
        deadline = time.monotonic() + 30
        self._session = aiohttp.ClientSession()
        while True:
            try:
                async with self._session.get(self.direct + "/v1/balance",
                                             headers={"Authorization": "Bearer sk_test_up"}) as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                await self.stop()
                raise Unavailable(f"localstripe did not start (see {self.log})")
            await asyncio.sleep(0.1)
        await self.proxy.start()
        return self

    async def stop(self) -> None:
        await self.proxy.stop()
        if self._session is not None:
            await self._session.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    async def call(self, method: str, path: str, data: dict[str, Any] | None = None, *,
                   key: str = "sk_test_lastmile") -> tuple[int, Any]:
        """A request straight to localstripe (as the test, or as Stripe.js with a ``pk_`` key)."""
        assert self._session is not None
        headers = {"Authorization": f"Bearer {key}"} if key.startswith("sk_") else {}
        body = None if data is None else ({**data, "key": key} if key.startswith("pk_") else data)
        async with self._session.request(method, self.direct + path, json=body, headers=headers) as r:
            return r.status, await r.json(content_type=None)

    async def confirm_setup(self, client_secret: str, number: str, *, exp_month: int = 12, exp_year: int = 2030,
                            authenticate: bool = True) -> dict[str, Any]:
        """What Stripe.js ``confirmCardSetup`` does in the payer's browser: the card goes to
        Stripe (never to lastmile), then the 3-D Secure step when the card asks for one."""
        seti = client_secret.split("_secret_", maxsplit=1)[0]
        status, body = await self.call("POST", f"/v1/setup_intents/{seti}/confirm", {
            "client_secret": client_secret, "use_stripe_sdk": True,
            "payment_method_data": {"type": "card", "card": {"number": number, "exp_month": exp_month,
                                                             "exp_year": exp_year, "cvc": "123"}}},
            key="pk_test_lastmile")
        if status == 200 and body.get("status") == "requires_action":
            path = "confirm" if authenticate else "cancel"
            status, body = await self.call("POST", f"/v1/setup_intents/{seti}/{path}",
                                           {"client_secret": client_secret, "use_stripe_sdk": True},
                                           key="pk_test_lastmile")
        assert status == 200, body
        return dict(body)

    async def authenticate(self, client_secret: str, *, success: bool = True) -> dict[str, Any]:
        """The payer passes (or fails) 3-D Secure on a PaymentIntent: Stripe.js ``confirmCardPayment``."""
        pi = client_secret.split("_secret_", maxsplit=1)[0]
        path = f"/v1/payment_intents/{pi}/_authenticate?success={str(success).lower()}"
        status, body = await self.call("POST", path, {"client_secret": client_secret}, key="pk_test_lastmile")
        assert status == 200, body
        return dict(body)

    async def webhooks_to(self, url: str, secret: str) -> None:
        """localstripe signs and POSTs its events to ``url`` from now on (about a second after each)."""
        status, body = await self.call("POST", "/_config/webhooks/lastmile", {"url": url, "secret": secret})
        assert status == 200, body


@contextlib.asynccontextmanager
async def running(log: Path) -> AsyncIterator[LocalStripe]:
    stripe = LocalStripe(log)
    await stripe.start()
    try:
        yield stripe
    finally:
        await stripe.stop()
