"""Opening the generator's loopback TCP connections cheaply, from many source addresses.

Binding a socket to ``(127.0.0.x, 0)`` makes the kernel pick a free port at ``bind()`` time,
which for a bind it must do without knowing the destination: it searches the port space under
the bind-hash lock for a port no other socket on that address holds. In a storm of thousands of
connects that search was the generator's limit (the server core was 32% busy while the
connection rate stalled at ~2,000/s). ``IP_BIND_ADDRESS_NO_PORT`` (Linux >= 4.2) defers the port
choice to ``connect()``, which picks it per 4-tuple from the connect hash, the path an unbound
client socket takes anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import TypeVar

__all__ = ["open_tcp"]

# Not exported by the socket module before Python 3.12; the value is Linux's ABI.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)

P = TypeVar("P", bound=asyncio.BaseProtocol)


def _bound_socket(source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with contextlib.suppress(OSError):  # not Linux: bind() picks the port, as before
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
    except BaseException:
        sock.close()
        raise
    return sock


async def open_tcp(
    factory: Callable[[], P],
    port: int,
    source: str,
    timeout: float,  # noqa: ASYNC109
) -> tuple[asyncio.BaseTransport, P]:
    """Connect ``127.0.0.1:port`` from ``source`` and wrap the socket in ``factory()``'s
    protocol; the socket is closed if anything fails."""
    loop = asyncio.get_running_loop()
    sock = _bound_socket(source)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), timeout)
        return await loop.create_connection(factory, sock=sock)
    except BaseException:
        sock.close()
        raise
