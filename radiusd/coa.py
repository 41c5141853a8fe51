"""CoA and Disconnect (RFC 5176): lastmile is the client, the NAS answers on its CoA port.

:class:`CoaClient` sends a request and waits for the matching ACK/NAK (by NAS address and
Identifier), retransmitting the same bytes (RFC 5176 section 3.4: same Identifier and
Event-Timestamp) until ``retries`` run out. :class:`CoaWorker` turns rows of ``coa_requests``
(written by triggers when a service's tariff or status changes) into requests to the NAS of
every live session of that service, and records the result on the request and the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import asyncpg

from daemons import log, udp
from daemons.events import EventPublisher
from radiusd import metrics, store
from radiusd.cache import Nas, NasTable, Subscriber
from radiusd.codec import (
    AttributeTable,
    Code,
    CodecError,
    InValue,
    Response,
    decode_response,
    default_table,
    encode_request,
)

ERROR_CAUSES = {
    201: "Residual-Session-Context-Removed", 202: "Invalid-EAP-Packet", 401: "Unsupported-Attribute",
    402: "Missing-Attribute", 403: "NAS-Identification-Mismatch", 404: "Invalid-Request",
    405: "Unsupported-Service", 406: "Unsupported-Extension", 407: "Invalid-Attribute-Value",
    501: "Administratively-Prohibited", 502: "Request-Not-Routable", 503: "Session-Context-Not-Found",
    504: "Session-Context-Not-Removable", 505: "Other-Proxy-Processing-Error", 506: "Resources-Unavailable",
    507: "Request-Initiated", 508: "Multiple-Session-Selection-Unsupported",
}  # fmt: skip


class Sent(NamedTuple):
    """What became of one request: ``result`` is ``ack``, ``nak:<Error-Cause>``, ``timeout`` (or
    ``no-nas``), ``sends`` how many datagrams went out for it, retransmissions included."""

    result: str
    sends: int


@dataclass(slots=True)
class _Waiter:
    future: asyncio.Future[Response]
    request: bytes
    secret: bytes


class CoaClient:
    def __init__(self, timeout: float, retries: int, table: AttributeTable | None = None) -> None:
        self.timeout = timeout
        self.retries = retries
        #: the dictionary requests are encoded, and answers decoded, with
        self.table = table or default_table()
        self.endpoint: udp.UdpEndpoint | None = None
        self._pending: dict[tuple[str, int], _Waiter] = {}
        self._ids = itertools.count()

    async def open(self, bind: str = "0.0.0.0") -> None:
        self.endpoint = await udp.open_endpoint(bind, 0, self._received)

    def close(self) -> None:
        if self.endpoint:
            self.endpoint.close()

    def _received(self, data: bytes, addr: udp.Address) -> None:
        """Only an authentic answer ends the wait; anything else (a forgery, garbage, a reply to
        an older request) is dropped and counted, and the real answer can still come."""
        waiter = self._pending.get((addr[0], data[1])) if len(data) >= 20 else None
        if waiter is None or waiter.future.done():
            metrics.DROPPED.labels("coa_unexpected_reply").inc()
            return
        try:
            reply = decode_response(data, waiter.request[4:20], waiter.secret, request_code=waiter.request[0],
                                    require_ma=False, table=self.table)
        except CodecError as e:
            metrics.DROPPED.labels(f"coa_{e.reason}").inc()
            return
        waiter.future.set_result(reply)

    async def send(self, nas: Nas, code: int, attributes: list[tuple[str, InValue]],
                   address: str | None = None) -> Sent:
        """Send to ``address`` (default: the NAS's own) and wait, retransmitting; returns the
        result (``ack``, ``nak:<Error-Cause>`` or ``timeout``) and the number of sends."""
        assert self.endpoint is not None, "open() first"
        address = address or nas.address
        identifier = self._free_identifier(address)
        packet = encode_request(code, identifier, attributes, nas.secret, table=self.table)
        waiter = _Waiter(asyncio.get_running_loop().create_future(), packet, nas.secret)
        self._pending[(address, identifier)] = waiter
        try:
            for sends in range(1, self.retries + 1):
                self.endpoint.send(packet, (address, nas.coa_port))  # the same octets each time (RFC 5176 3.4)
                try:
                    reply = await asyncio.wait_for(asyncio.shield(waiter.future), self.timeout)
                except TimeoutError:
                    continue
                if reply.code in (Code.COA_ACK, Code.DISCONNECT_ACK):
                    return Sent("ack", sends)
                cause = reply.error_cause
                return Sent(f"nak:{ERROR_CAUSES.get(cause, cause) if cause is not None else 'no Error-Cause'}", sends)
            return Sent("timeout", self.retries)
        finally:
            del self._pending[(address, identifier)]

    def _free_identifier(self, address: str) -> int:
        for _ in range(256):
            identifier = next(self._ids) % 256
            if (address, identifier) not in self._pending:
                return identifier
        raise RuntimeError(f"256 requests in flight to {address}")


def destination(nas: Nas, target: store.CoaTarget) -> str:
    """Where a session's CoA goes: the NAS's address; for a NAS entered as a prefix, the address
    the session's accounting came from (NAS-IP-Address), when it lies in that prefix."""
    if nas.network.num_addresses > 1 and target.nas_address:
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(target.nas_address) in nas.network:
                return target.nas_address
    return nas.address


Action = Literal["rate", "block", "unblock", "disconnect"]


def request_for(action: Action, sub: Subscriber | None, target: store.CoaTarget, block_method: str,
                blocked_list: str) -> tuple[int, list[tuple[str, InValue]]]:
    """The packet code and attributes that carry ``action`` to one session."""
    ident: list[tuple[str, InValue]] = [("User-Name", target.username), ("Acct-Session-Id", target.acct_session_id)]
    if target.framed_ip:
        ident.append(("Framed-IP-Address", target.framed_ip))
    if action == "rate" and sub is not None:
        return Code.COA_REQUEST, [*ident, ("Mikrotik-Rate-Limit", sub.rate_limit)]
    if action == "block" and block_method == "coa":
        return Code.COA_REQUEST, [*ident, ("Mikrotik-Address-List", blocked_list)]
    # An unblock always disconnects: an address list cannot be emptied by CoA (a RADIUS string is
    # never empty, RFC 2865 5), and the new login gets the unblocked attributes.
    return Code.DISCONNECT_REQUEST, ident


class CoaWorker:
    def __init__(self, pool: asyncpg.Pool, client: CoaClient, nas: NasTable, events: EventPublisher,
                 block_method: str, blocked_list: str) -> None:
        self.pool = pool
        self.client = client
        self.nas = nas
        self.events = events
        self.block_method = block_method
        self.blocked_list = blocked_list
        self.wake = asyncio.Event()
        self.log = log.get("lastmile.radiusd.coa")

    def notified(self, _channel: str, _payload: Any) -> None:
        self.wake.set()

    async def run(self) -> None:
        while True:
            try:
                while await self.handle_one():
                    pass
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
                self.log.warning("coa queue unavailable", error=str(e) or type(e).__name__)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 5.0)

    async def handle_one(self) -> bool:
        """Take one pending request, send it to every live session of its service; False if none.

        The request is claimed (state ``sending``) in a short transaction and the sending
        happens outside it, so a silent NAS holds no connection or lock; a claim left by a
        crashed sender is taken again after two minutes.
        """
        async with self.pool.acquire() as conn:
            request = await store.claim_coa(conn)
            if request is None:
                return False
            rows = await store.load_subscribers(conn, "services", [request["service_id"]])
            targets = await store.coa_targets(conn, request["service_id"])
        sub = Subscriber.from_row(rows[0]) if rows else None
        sent = await asyncio.gather(*(self.send(request["action"], sub, t) for t in targets))
        results = [s.result for s in sent]
        ok = all(r == "ack" for r in results)
        summary = ", ".join(results) if results else "no live session"
        async with self.pool.acquire() as conn, conn.transaction():
            for target, result in zip(targets, results, strict=True):
                await store.record_coa_on_session(conn, target, result)
            # attempts: datagrams sent, to every session's NAS, retransmissions included
            await store.finish_coa(conn, request["id"], "done" if ok else "failed", summary,
                                   sum(s.sends for s in sent))
        self.log.info("coa", service_id=request["service_id"], action=request["action"], result=summary)
        self.events.publish("session", "coa", {"service_id": request["service_id"], "action": request["action"],
                                               "result": summary})
        return True

    async def send(self, action: Action, sub: Subscriber | None, target: store.CoaTarget) -> Sent:
        nas = self.nas.by_id.get(target.nas_id)
        if nas is None:
            sent = Sent("no-nas", 0)
        else:
            code, attributes = request_for(action, sub, target, self.block_method, self.blocked_list)
            sent = await self.client.send(nas, code, attributes, destination(nas, target))
        metrics.COA.labels(action, sent.result.split(":")[0]).inc()
        return sent
