"""radiusd's transport: datagrams in, replies out, on the auth and accounting ports.

``on_auth`` and ``on_acct`` run inside ``datagram_received`` and never await. Before anything is
handled: the source must be a known NAS (else dropped and counted), the packet must pass the
codec's checks with that NAS's secret (else dropped with the codec's reason), Status-Server is
answered here (RFC 5997), and the RFC 5080 duplicate cache answers retransmissions with the
bytes of the first answer. What the request asks for is the handler's (handler.py); its answer
comes back through :meth:`Transport.answer` (Access-Accept or -Reject) or, after the commit,
:meth:`Transport.acknowledge` (Accounting-Responses), or not at all (:meth:`Transport.unanswered`:
the NAS retransmits and the request is handled again). So the transport concerns sit here, as
FreeRADIUS keeps ``track_duplicates`` in its listener and aioquic its protocol apart from the
asyncio adapter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from daemons import udp
from radiusd import metrics
from radiusd.cache import Nas, NasTable
from radiusd.codec import (
    AttributeTable,
    Code,
    CodecError,
    InValue,
    Request,
    decode_request,
    default_table,
    encode_reply,
)
from radiusd.dedup import DuplicateCache
from radiusd.logsummary import LogSummary

if TYPE_CHECKING:
    from radiusd.handler import Handler
    from radiusd.writer import Item

#: Codec drop reasons that mean "not from whoever holds the NAS's secret" (a spoofer, or a wrong secret).
_AUTHENTICATION_FAILURES = frozenset({"bad_message_authenticator", "bad_request_authenticator",
                                      "missing_message_authenticator", "proxy_state_without_ma"})


@dataclass(slots=True)
class Exchange:
    """One request being answered: who sent it, and what its answer needs."""

    nas: Nas
    request: Request
    addr: udp.Address
    key: tuple[str, int, int]  # (source address, source port, Identifier): the duplicate cache's key
    received: float  # perf_counter() at receipt


class Transport:
    def __init__(self, nas: NasTable, *, duplicate_ttl: float, max_attributes: int,
                 table: AttributeTable | None = None) -> None:
        self.nas = nas
        self.max_attributes = max_attributes
        #: the dictionary requests are decoded with (and so their replies encoded with)
        self.table = table or default_table()
        self.handler: Handler | None = None
        self.auth_dedup = DuplicateCache(duplicate_ttl)
        self.acct_dedup = DuplicateCache(duplicate_ttl)
        self.auth_endpoint: udp.UdpEndpoint | None = None
        self.acct_endpoint: udp.UdpEndpoint | None = None
        #: Cleared by the first drain step: datagrams are then dropped while in-flight work finishes.
        self.accepting = True
        self.log = structlog.get_logger("lastmile.radiusd")
        self._latency = {t: metrics.LATENCY.labels(t) for t in ("access", "accounting", "status")}
        # Repeated log lines: the first in full, then a count a minute (logsummary.py).
        self.unknown_sources = LogSummary(self.log.warning, "request from unknown client dropped", ("source",),
                                          group=0)
        self.auth_failures = LogSummary(self.log.warning, "request failed authentication", ("nas", "reason"))
        self.summaries = (self.unknown_sources, self.auth_failures)

    def _decode(self, data: bytes, addr: udp.Address) -> tuple[Nas, Request] | None:
        if not self.accepting:
            metrics.drop("draining")
            return None
        nas = self.nas.lookup(addr[0])
        if nas is None:
            metrics.drop("unknown_client")
            if self.unknown_sources.first((addr[0],)):
                self.log.warning("request from unknown client dropped", source=addr[0])
            return None
        try:
            request = decode_request(data, nas.secret, require_ma=nas.require_ma,
                                     limit_proxy_state=nas.limit_proxy_state, max_attributes=self.max_attributes,
                                     table=self.table)
        except CodecError as e:
            metrics.drop(e.reason)
            if e.reason in _AUTHENTICATION_FAILURES and self.auth_failures.first((nas.name, e.reason)):
                self.log.warning("request failed authentication", nas=nas.name, reason=e.reason)
            return None
        return nas, request

    # -- authentication ------------------------------------------------------------------------------

    def on_auth(self, data: bytes, addr: udp.Address) -> None:
        received = time.perf_counter()
        decoded = self._decode(data, addr)
        if decoded is None:
            return
        nas, request = decoded
        if request.code == Code.STATUS_SERVER:  # RFC 5997 section 3: Access-Accept on the auth port
            self._send(self.auth_endpoint, encode_reply(request, Code.ACCESS_ACCEPT), addr)
            metrics.count("status", nas.name, "accept")
            return
        if request.code != Code.ACCESS_REQUEST:
            metrics.drop("wrong_port")
            return
        key = (addr[0], addr[1], request.identifier)
        cached = self.auth_dedup.check(key, request.authenticator, received)
        if cached is not None:
            self._resend(cached, addr, self.auth_endpoint)
            return
        assert self.handler is not None
        self.handler.access(Exchange(nas, request, addr, key, received))

    def answer(self, ex: Exchange, accept: bool, attributes: list[tuple[str, InValue]]) -> None:
        """Send the Access-Accept or -Reject, and keep it for retransmissions."""
        reply = encode_reply(ex.request, Code.ACCESS_ACCEPT if accept else Code.ACCESS_REJECT, attributes)
        self._send(self.auth_endpoint, reply, ex.addr)
        self.auth_dedup.answered(ex.key, ex.request.authenticator, reply, ex.received)
        metrics.count("access", ex.nas.name, "accept" if accept else "reject")
        self._latency["access"].observe(time.perf_counter() - ex.received)

    def unanswered(self, ex: Exchange) -> None:
        """No answer (the database is needed and away, overload, nothing recordable): the NAS's
        retransmission is then handled as a new request."""
        dedup = self.auth_dedup if ex.request.code == Code.ACCESS_REQUEST else self.acct_dedup
        dedup.forget(ex.key, ex.request.authenticator)

    # -- accounting ----------------------------------------------------------------------------------

    def on_acct(self, data: bytes, addr: udp.Address) -> None:
        received = time.perf_counter()
        decoded = self._decode(data, addr)
        if decoded is None:
            return
        nas, request = decoded
        if request.code == Code.STATUS_SERVER:  # RFC 5997 section 3: Accounting-Response on the acct port
            self._send(self.acct_endpoint, encode_reply(request, Code.ACCOUNTING_RESPONSE), addr)
            metrics.count("status", nas.name, "ok")
            return
        if request.code != Code.ACCOUNTING_REQUEST:
            metrics.drop("wrong_port")
            return
        key = (addr[0], addr[1], request.identifier)
        cached = self.acct_dedup.check(key, request.authenticator, received)
        if cached is not None:
            self._resend(cached, addr, self.acct_endpoint)
            return
        assert self.handler is not None
        self.handler.accounting(Exchange(nas, request, addr, key, received))

    def acknowledge(self, items: list[Item]) -> None:
        """After the commit (or the spool's fsync): an Accounting-Response for each record of the
        batch (the writer's ``on_saved``)."""
        assert self.acct_endpoint is not None
        send = self.acct_endpoint.send
        answered = self.acct_dedup.answered
        observe = self._latency["accounting"].observe
        per_nas: dict[str, int] = {}  # answers counted once per batch and NAS
        for item in items:
            ex: Exchange = item.waiter
            reply = encode_reply(ex.request, Code.ACCOUNTING_RESPONSE)
            send(reply, ex.addr)
            answered(ex.key, ex.request.authenticator, reply, ex.received)
            observe(time.perf_counter() - ex.received)
            name = ex.nas.name
            per_nas[name] = per_nas.get(name, 0) + 1
        for name, n in per_nas.items():
            metrics.count("accounting", name, "ok", n)

    def unacknowledged(self, items: list[Item]) -> None:
        """Nothing saved (the writer's ``on_unsaved``): no reply, so the NAS retransmits."""
        for item in items:
            ex: Exchange = item.waiter
            self.acct_dedup.forget(ex.key, ex.request.authenticator)

    # -- sockets -------------------------------------------------------------------------------------

    @staticmethod
    def _send(endpoint: udp.UdpEndpoint | None, data: bytes, addr: udp.Address) -> None:
        assert endpoint is not None
        endpoint.send(data, addr)

    def _resend(self, cached: bytes, addr: udp.Address, endpoint: Any) -> None:
        if cached:
            self._send(endpoint, cached, addr)
            metrics.DUPLICATES.inc()
        else:
            metrics.drop("duplicate_in_flight")

    def close(self) -> None:
        for endpoint in (self.auth_endpoint, self.acct_endpoint):
            if endpoint:
                endpoint.close()
