"""RFC 5080 section 2.2.2 duplicate detection: one answer per request, resent byte for byte.

A request is known by (source address, source port, Identifier, Request Authenticator). While it
is being handled its retransmissions are dropped; once answered, they get the cached reply
without being handled again. A request with the same (address, port, Identifier) but another
authenticator is a new request and replaces the entry. Entries live ``ttl`` seconds. Packets
that failed authentication never reach this cache (RFC 5080: they "MUST NOT affect" it).
"""

from __future__ import annotations

from collections import OrderedDict

IN_FLIGHT = b""

Key = tuple[str, int, int]


class DuplicateCache:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        # Insertion order is expiry order: every entry lives the same ttl from its (re)insertion.
        self._entries: OrderedDict[Key, tuple[bytes, bytes, float]] = OrderedDict()

    def check(self, key: Key, authenticator: bytes, now: float) -> bytes | None:
        """None: a new request (now marked in flight). b"": in flight, drop. Else: the reply to resend."""
        self._expire(now)
        entry = self._entries.get(key)
        if entry is not None and entry[0] == authenticator:
            return entry[1]
        self._entries[key] = (authenticator, IN_FLIGHT, now + self.ttl)
        self._entries.move_to_end(key)
        return None

    def answered(self, key: Key, authenticator: bytes, reply: bytes, now: float) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] == authenticator:
            self._entries[key] = (authenticator, reply, entry[2])

    def forget(self, key: Key, authenticator: bytes) -> None:
        """Drop the in-flight mark of a request that got no answer, so its retransmission is handled."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] == authenticator and entry[1] == IN_FLIGHT:
            del self._entries[key]

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, (_, _, expires) = next(iter(entries.items()))
            if expires > now:
                return
            del entries[key]

    def __len__(self) -> int:
        return len(self._entries)
