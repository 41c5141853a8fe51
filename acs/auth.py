"""CPE authentication and the session cookie: pure functions of header text, keys and times.

HTTP digest (RFC 7616, and RFC 2617/2069 clients): MD5 or MD5-sess, ``qop=auth`` or none. The
nonce is stateless: the time it was made and an HMAC of that time, the client's address and the
realm under the ACS's key, so any acs instance checks a nonce another one made, and a CPE that
opens a new connection after the 401 (many do) still passes. A nonce is good for ``lifetime``
seconds; a right answer to an older one is told ``stale=true`` (the CPE answers the new nonce
without asking its user). Stateless means a nonce is not counted: a captured answer replays from
the same address until the nonce ages out, the price of surviving CPEs that reconnect and of
sharing no state between instances; HTTPS closes that gap.

Basic (``user:password`` in base64) is parsed here; the server accepts it over HTTPS only.

The session cookie carries what a session is, signed (HMAC-SHA256, 128 bits) under the ACS's key
so no CPE can forge or alter it, and bound to the device and the address it informed from: a
session whose Inform was authenticated goes on by its cookie alone, on any instance.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s"]*))\s*(?:,|$)')


def parse_authorization(header: str) -> tuple[str, dict[str, str]]:
    """``Digest username="a", qop=auth, ...`` -> ("digest", {"username": "a", ...}); the scheme
    lower-cased; for Basic the token under ``""``. Unparsable parameters are left out."""
    scheme, _, rest = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        return scheme, {"": rest.strip()}
    params: dict[str, str] = {}
    for m in _PARAM.finditer(rest):
        quoted, bare = m.group(2), m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
    return scheme, params


def parse_basic(token: str) -> tuple[str, str] | None:
    """(user, password) of a Basic token, or None if it is not one."""
    try:
        text = base64.b64decode(token, validate=True).decode()
    except (binascii.Error, ValueError):
        return None
    user, colon, password = text.partition(":")
    return (user, password) if colon else None


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _mac(key: bytes, text: str, size: int) -> str:
    digest = hmac.new(key, text.encode(), hashlib.sha256).digest()[:size]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What became of a digest answer: ``ok`` (``username`` authenticated), ``stale`` (right
    credentials, an old nonce: challenge again with stale=true) or refused with ``reason``."""

    result: Literal["ok", "stale", "refused"]
    username: str = ""
    reason: str = ""


class Digest:
    """Challenges and checks of one realm under one key."""

    def __init__(self, key: bytes, realm: str, lifetime: float = 300.0) -> None:
        if len(key) < 16:
            raise ValueError("a digest key has 16 bytes at least")
        self.key = key
        self.realm = realm
        self.lifetime = lifetime

    def nonce(self, now: float, address: str) -> str:
        stamp = f"{int(now):x}"
        return f"{stamp}.{_mac(self.key, f'{stamp}|{address}|{self.realm}', 15)}"

    def challenge(self, now: float, address: str, *, stale: bool = False) -> str:
        """The WWW-Authenticate value of a 401."""
        return (f'Digest realm="{self.realm}", qop="auth", nonce="{self.nonce(now, address)}", algorithm=MD5'
                + (", stale=true" if stale else ""))

    def nonce_age(self, nonce: str, address: str, now: float) -> float | None:
        """Seconds since ``nonce`` was made for ``address``; None if this ACS did not make it."""
        stamp, dot, mac = nonce.partition(".")
        if not dot or not 0 < len(stamp) <= 12 or any(c not in "0123456789abcdef" for c in stamp):
            return None
        if not hmac.compare_digest(mac, _mac(self.key, f"{stamp}|{address}|{self.realm}", 15)):
            return None
        return now - int(stamp, 16)

    def verify(self, params: dict[str, str], method: str, target: str, password: Callable[[str], str | None],
               address: str, now: float) -> Verdict:
        """Check a digest answer (``params`` of :func:`parse_authorization`) to a request of
        ``method`` on ``target`` (its path and query) from ``address``; ``password(username)`` is
        that user's password, None for no such user (for the device this Inform names)."""
        username, nonce, uri, response = (params.get(k) for k in ("username", "nonce", "uri", "response"))
        if username is None or nonce is None or uri is None or response is None:
            return Verdict("refused", reason="incomplete digest answer")
        if params.get("realm") != self.realm:
            return Verdict("refused", username, "wrong realm")
        if uri != target and not ("://" in uri and uri.endswith(target)):
            return Verdict("refused", username, "the digest names another URI")
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in ("MD5", "MD5-SESS"):
            return Verdict("refused", username, f"algorithm {algorithm} not supported")
        qop, nc, cnonce = params.get("qop"), params.get("nc", ""), params.get("cnonce", "")
        if qop is not None and (qop.lower() != "auth" or not nc or not cnonce):
            return Verdict("refused", username, "qop other than auth, or no nc/cnonce")
        age = self.nonce_age(nonce, address, now)
        if age is None:
            return Verdict("refused", username, "nonce not ours (or made for another address)")
        secret = password(username)
        if secret is None:
            return Verdict("refused", username, "unknown user name")
        ha1 = _md5(f"{username}:{self.realm}:{secret}")
        if algorithm == "MD5-SESS":
            ha1 = _md5(f"{ha1}:{nonce}:{cnonce}")
        ha2 = _md5(f"{method}:{uri}")
        expected = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}" if qop is not None else f"{ha1}:{nonce}:{ha2}")
        if not hmac.compare_digest(expected, response.lower()):
            return Verdict("refused", username, "wrong password")
        if not -60 <= age <= self.lifetime:
            return Verdict("stale", username)
        return Verdict("ok", username)


# --- the session cookie ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SessionCookie:
    """A session as its cookie carries it. ``slow``: its state (plan) is in acs_live_sessions
    at ``step``; a fast session is this cookie alone (its access log so far in ``rpcs`` and
    ``faults``). ``expires``: the session is over if its next request comes later."""

    sid: str
    device_id: int
    cwmp_id: str
    address: str
    started_at: float
    events: tuple[str, ...]
    namespace: str
    step: int
    slow: bool
    expires: float
    rpcs: tuple[str, ...] = ()
    faults: tuple[str, ...] = ()


class Cookies:
    """Signs and checks session cookies under one key."""

    VERSION = 1

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a cookie key has 16 bytes at least")
        self.key = key

    def encode(self, c: SessionCookie) -> str:
        data = json.dumps([self.VERSION, c.sid, c.device_id, c.cwmp_id, c.address, c.started_at, c.events,
                           c.namespace, c.step, int(c.slow), round(c.expires, 3), c.rpcs, c.faults],
                          separators=(",", ":"), ensure_ascii=True)
        body = base64.urlsafe_b64encode(data.encode()).rstrip(b"=").decode()
        return f"{body}.{_mac(self.key, body, 16)}"

    def decode(self, text: str, now: float) -> SessionCookie | None:
        """The session of a cookie signed here and not expired at ``now``, else None."""
        body, dot, mac = text.rpartition(".")
        if not dot or not hmac.compare_digest(mac, _mac(self.key, body, 16)):
            return None
        try:
            d = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            (version, sid, device_id, cwmp_id, address, started_at, events, namespace, step, slow, expires, rpcs,
             faults) = d
        except (ValueError, TypeError):
            return None  # signed by us, so only an older layout gets here
        if version != self.VERSION or expires < now:
            return None
        return SessionCookie(sid, device_id, cwmp_id, address, started_at, tuple(events), namespace, step,
                             bool(slow), expires, tuple(rpcs), tuple(faults))
