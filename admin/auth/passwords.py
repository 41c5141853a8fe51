"""Administrators' passwords: argon2id (argon2-cffi, RFC 9106's second recommended profile:
t=3, m=64 MiB, p=4), checked in a thread so a login does not stall the event loop.

Logging in costs one hash, about 160-180 ms of one core here (docs/benchmarks.md "admin"): that
is the point of the hash, and the reason logins are throttled (throttle.py) rather than cheap.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

HASHER = PasswordHasher()  # argon2-cffi's defaults are RFC 9106 "low memory": argon2id t=3 m=64MiB p=4
MIN_LENGTH = 10

# A hash of a password nobody has: checked when the login is unknown, so that an unknown login
# costs as long as a known one (no user enumeration by timing).
_DUMMY = HASHER.hash("lastmile: no such administrator")


def weak(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if password.strip() != password:
        return "must not begin or end with a space"
    return None


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (None: an unknown login, which never matches)."""
    try:
        matched = HASHER.verify(stored or _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None and bool(matched)


async def verify_async(stored: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify, stored, password)


def needs_rehash(stored: str) -> bool:
    return HASHER.check_needs_rehash(stored)
