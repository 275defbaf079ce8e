"""python-socketio's client as a peer: connected and disconnected without leaking connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import socketio  # type: ignore[import-untyped]  # no stubs

__all__ = ["EagerResponse", "psio_client"]


class EagerResponse(aiohttp.ClientResponse):
    """A response whose body is read as soon as its headers are in (WebSocket upgrades
    excepted), so its connection is always released."""

    async def start(self, connection: Any) -> aiohttp.ClientResponse:
        response = await super().start(connection)
        if self.status != 101:
            await self.read()
        return response


@asynccontextmanager
async def psio_client(
    url: str,
    transport: str,
    *,
    namespaces: list[str] | None = None,
    setup: Callable[..., Any] | None = None,
) -> AsyncIterator[socketio.AsyncClient]:
    """python-socketio's ``AsyncClient`` connected to ``url`` over ``transport``, ``setup(sio)``
    called before it connects; disconnected cleanly (its queue drained) afterwards."""
    # Our own HTTP session, closed only once python-engineio's write loop is done, and reading
    # every response: python-engineio never reads its POST responses, which leaks an aiohttp
    # connection whenever a body arrives after its headers (ResourceWarning at GC).
    async with aiohttp.ClientSession(response_class=EagerResponse) as http:
        sio = socketio.AsyncClient(reconnection=False, http_session=http)
        if setup is not None:
            setup(sio)
        await sio.connect(url, transports=[transport], namespaces=namespaces, wait_timeout=5)
        try:
            yield sio
        finally:
            # Its polling write loop also exits without sending the queued DISCONNECT and
            # CLOSE when disconnect() is called while one of its POSTs is in flight (the
            # session then lingers until the next ping): let the queue drain first.
            await asyncio.wait_for(sio.eio.queue.join(), 5)
            writer = sio.eio.write_loop_task
            await sio.disconnect()
            if writer is not None:
                await asyncio.wait_for(writer, 5)
