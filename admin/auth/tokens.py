"""Random tokens: login session cookies, CSRF tokens, API keys. Only a digest of a session token
or an API key is stored (they are 256 random bits: a fast hash suffices, unlike passwords)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "lm_"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def new_api_key() -> tuple[str, str]:
    """``(key, prefix)``: ``lm_<prefix>_<secret>``; the prefix (8 characters) names the key in
    lists and logs, the whole key is shown once."""
    prefix = secrets.token_hex(4)
    return f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}", prefix


def api_key_prefix(key: str) -> str | None:
    """The prefix of a key of the right shape, else None."""
    if not key.startswith(API_KEY_PREFIX):
        return None
    prefix, sep, rest = key[len(API_KEY_PREFIX):].partition("_")
    return prefix if sep and len(prefix) == 8 and len(rest) >= 40 else None
