"""The UDP endpoint radiusd and flowcollector share.

``datagram_received`` calls the handler synchronously and never awaits: a handler that needs
the database starts its own (bounded) task. The socket is made here rather than by asyncio so
that the receive buffer, ``SO_REUSEPORT`` (several worker processes on one port; the kernel
keeps each source on one socket) and dual-stack IPv6 can be set before ``bind``.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path

from daemons import log

Address = tuple[str, int] | tuple[str, int, int, int]
Handler = Callable[[bytes, Address], None]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, handler: Handler, on_error: Callable[[Exception], None]) -> None:
        self.handler = handler
        self.on_error = on_error

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.handler(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.on_error(exc)


class UdpEndpoint:
    """A bound UDP socket feeding ``handler``; ``send`` replies, ``kernel_drops`` reads losses."""

    def __init__(self, sock: socket.socket, transport: asyncio.DatagramTransport) -> None:
        self.sock = sock
        self.transport = transport
        self.inode = os.fstat(sock.fileno()).st_ino
        self.address: tuple[str, int] = sock.getsockname()[:2]
        self.rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    def send(self, data: bytes, addr: Address) -> None:
        self.transport.sendto(data, addr)

    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped for this socket (full buffer), from /proc/net/udp[6]."""
        return kernel_drops(self.inode)

    def close(self) -> None:
        self.transport.close()


async def open_endpoint(
    bind: str,
    port: int,
    handler: Handler,
    *,
    reuse_port: bool = False,
    rcvbuf: int | None = None,
    on_error: Callable[[Exception], None] | None = None,
) -> UdpEndpoint:
    """Bind (bind, port) and start delivering datagrams to ``handler``."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if bind == "::" else 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if rcvbuf:
            _set_rcvbuf(sock, rcvbuf)
        sock.bind((bind, port))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(handler, on_error or _log_error), sock=sock
        )
    except BaseException:
        sock.close()
        raise
    return UdpEndpoint(sock, transport)


SO_RCVBUFFORCE = 33  # Linux <asm-generic/socket.h>; the socket module does not export it


def _set_rcvbuf(sock: socket.socket, size: int) -> None:
    """Ask for ``size`` bytes of receive buffer; with CAP_NET_ADMIN past net.core.rmem_max too."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def kernel_drops(inode: int) -> int:
    """The ``drops`` column of /proc/net/udp or udp6 for the socket with this inode."""
    for name in ("udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) >= 13 and fields[9] == str(inode):
                return int(fields[12])
    return 0


def _log_error(exc: Exception) -> None:
    log.get("lastmile.udp").warning("udp error", error=str(exc))
