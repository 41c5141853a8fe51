"""daemons.udp: delivery, replies, SO_REUSEPORT, IPv6, and the kernel drop counter."""

import asyncio
import socket
import time

from daemons import udp
from tests.conftest import free_port


async def test_datagrams_reach_the_handler_and_replies_go_back() -> None:
    got: list[tuple[bytes, tuple[str, int]]] = []
    endpoint: udp.UdpEndpoint | None = None

    def handler(data: bytes, addr: udp.Address) -> None:
        got.append((data, addr[:2]))
        assert endpoint is not None
        endpoint.send(data.upper(), addr)

    endpoint = await udp.open_endpoint("127.0.0.1", 0, handler, rcvbuf=4 << 20)
    try:
        assert endpoint.rcvbuf >= 4 << 20  # granted (Linux reports twice the request)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.setblocking(False)
        client.sendto(b"hello", endpoint.address)
        loop = asyncio.get_running_loop()
        reply = await asyncio.wait_for(loop.sock_recv(client, 100), 2)
        assert reply == b"HELLO"
        assert got[0] == (b"hello", ("127.0.0.1", client.getsockname()[1]))
        client.close()
    finally:
        endpoint.close()


async def test_reuse_port_lets_two_workers_share_a_port() -> None:
    port = free_port(socket.SOCK_DGRAM)
    a = await udp.open_endpoint("127.0.0.1", port, lambda *_: None, reuse_port=True)
    b = await udp.open_endpoint("127.0.0.1", port, lambda *_: None, reuse_port=True)
    assert a.address == b.address
    a.close()
    b.close()


async def test_ipv6_dual_stack() -> None:
    got: list[bytes] = []
    endpoint = await udp.open_endpoint("::", 0, lambda data, addr: got.append(data))
    try:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as v4,
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as v6,
        ):
            v4.sendto(b"v4", ("127.0.0.1", endpoint.address[1]))
            v6.sendto(b"v6", ("::1", endpoint.address[1]))
        for _ in range(50):
            if len(got) == 2:
                break
            await asyncio.sleep(0.02)
        assert sorted(got) == [b"v4", b"v6"]
    finally:
        endpoint.close()


async def test_kernel_drops_are_counted_when_the_loop_stalls() -> None:
    received = 0

    def handler(data: bytes, addr: udp.Address) -> None:
        nonlocal received
        received += 1

    endpoint = await udp.open_endpoint("127.0.0.1", 0, handler, rcvbuf=4096)
    try:
        assert endpoint.kernel_drops() == 0
        sent = 2000
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for _ in range(sent):  # the loop is blocked here, so the small buffer overflows
                sender.sendto(b"x" * 200, endpoint.address)
        time.sleep(0.05)
        await asyncio.sleep(0.2)
        drops = endpoint.kernel_drops()
        assert drops > 0
        assert received + drops == sent  # loopback loses nothing else
    finally:
        endpoint.close()
