"""The native server: asyncio + httptools + sockjet's WebSocket codec, one protocol per connection.

This is the fast path. :func:`serve` binds a socket and routes every request under the engine's
path (HTTP long-polling and WebSocket upgrades) to the Engine.IO runtime; other paths go to an
optional static directory (a built front end), then to an optional ``fallback``, else 404. It runs
on whatever event loop is running (the Server/CLI installs uvloop when it wants it).

Lifecycle: close the engine first (sessions end with their proper reasons), then
``await server.close()``, which stops accepting, closes idle HTTP connections, lets answers in
flight finish, closes WebSockets with 1001 "going away" and aborts whatever is left after
``limits.shutdown_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import TYPE_CHECKING, Final

from sockjet.serving.http import Engine, Handoff, HTTPProtocol, ServerContext
from sockjet.serving.limits import DEFAULT_LIMITS, NativeLimits
from sockjet.serving.static import StaticFiles
from sockjet.serving.websocket import Flusher

if TYPE_CHECKING:
    import ssl as ssl_module
    from collections.abc import Awaitable, Callable, Iterable, Mapping
    from types import TracebackType

    from sockjet.engine.io import HTTPRequest, HTTPResponse

__all__ = ["DEFAULT_LIMITS", "Engine", "NativeLimits", "NativeServer", "serve", "stop_accepting"]

BACKLOG: Final = 2048
"""Listen backlog: a reconnect storm of thousands of clients must not overflow the accept queue."""


class NativeServer:
    """A running native server (see :func:`serve`)."""

    __slots__ = ("_closed", "_closing", "_ctx", "_port", "_server")

    def __init__(self, server: asyncio.Server, ctx: ServerContext) -> None:
        self._server = server
        self._port: int = server.sockets[0].getsockname()[1]
        self._ctx = ctx
        self._closing: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets."""
        return tuple(self._server.sockets)

    @property
    def port(self) -> int:
        """The bound port (the one the OS chose when ``port=0``); still known after close."""
        return self._port

    @property
    def connections(self) -> int:
        """Open connections (HTTP and WebSocket)."""
        return len(self._ctx.connections)

    async def stop_accepting(self) -> None:
        """Accept no new connection, and go on serving the open ones (a worker of
        ``--workers`` that drains: the other workers accept from the shared socket)."""
        await stop_accepting(self._server.sockets)
        self._server.close()

    async def adopt(self, sock: socket.socket, data: bytes) -> None:
        """Serve a connection accepted by another process (a worker handed it over, see
        :mod:`sockjet.serving.handoff`) as if ``data`` had just been read from it."""
        ctx = self._ctx
        await asyncio.get_running_loop().connect_accepted_socket(
            lambda: HTTPProtocol(ctx, data), sock
        )

    async def close(self) -> None:
        """Stop accepting and close every connection (WebSockets with 1001). Idempotent."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        ctx = self._ctx
        ctx.closing = True  # from here, a connection that comes up is closed at once
        await stop_accepting(self._server.sockets)
        self._server.close()
        if ctx.connections:
            ctx.drained = asyncio.get_running_loop().create_future()
            for conn in list(ctx.connections):
                conn.shutdown()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(ctx.drained), ctx.limits.shutdown_timeout)
            for conn in list(ctx.connections):
                conn.abort()
            if ctx.connections:
                # Aborted transports report connection_lost on the next iterations.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(ctx.drained), 1.0)
        await self._server.wait_closed()
        self._closed.set()

    async def serve_forever(self) -> None:
        """Run until :meth:`close` is called; if cancelled, close gracefully first."""
        try:
            await self._closed.wait()
        except asyncio.CancelledError:
            await self.close()
            raise

    async def __aenter__(self) -> NativeServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


if TYPE_CHECKING:
    from sockjet.server.server import RunningServer

    _SERVES_AS: type[RunningServer] = NativeServer  # Server.serve() promises this protocol


async def stop_accepting(sockets: Iterable[socket.socket]) -> None:
    """Stop accepting on listening ``sockets``, then let the accepts under way finish.

    Call it before ``asyncio.Server.close()``. CPython gh-109564 (open in every version we
    support): on the stdlib selector loop the transport of an accepted socket is built one
    iteration later, in a task; a ``close()`` in between fails that build and leaks the socket,
    never closed and invisible to the server. So the listening sockets leave the selector first
    (which also cancels an accept callback already queued), one iteration lets the pending
    builds run and the next runs their ``connection_made``. uvloop accepts and builds in one
    step: nothing to do there.
    """
    loop = asyncio.get_running_loop()
    if not isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop):
        return
    for sock in sockets:
        loop.remove_reader(sock.fileno())
    await asyncio.sleep(0)  # pending accept tasks build their transports
    await asyncio.sleep(0)  # their connection_made callbacks run


async def serve(
    engine: Engine,
    host: str = "127.0.0.1",
    port: int = 5000,
    *,
    static_dir: str | os.PathLike[str] | None = None,
    fallback: Callable[[HTTPRequest], Awaitable[HTTPResponse]] | None = None,
    limits: NativeLimits = DEFAULT_LIMITS,
    ssl: ssl_module.SSLContext | None = None,
    reuse_port: bool = False,
    endpoints: Mapping[str, Callable[[HTTPRequest], Awaitable[HTTPResponse]]] | None = None,
    sock: socket.socket | None = None,
    handoff: Handoff | None = None,
) -> NativeServer:
    """Start serving ``engine`` on ``host:port`` and return the running server.

    Requests under ``engine.path`` go to the engine (polling and WebSocket upgrades); other
    GET/HEAD requests to ``static_dir`` when given (a built front end: ``index.html`` for ``/``
    and for extension-less paths); the rest to ``fallback``, else 404. ``port=0`` picks a free
    port (read it back from :attr:`NativeServer.port`). ``reuse_port`` lets several processes
    share the port (Linux ``SO_REUSEPORT``). ``endpoints`` maps exact paths to extra handlers
    (``Server.serve`` passes the server's own, e.g. ``/metrics``), tried before ``static_dir``.
    ``sock``: a listening socket to accept from instead (``host`` and ``port`` are then
    ignored), such as the one the workers of ``--workers`` share; ``handoff`` sends the
    requests of other workers' sessions to them (:mod:`sockjet.serving.handoff`).
    """
    loop = asyncio.get_running_loop()
    ctx = ServerContext(
        engine,
        limits,
        Flusher(loop),
        static=StaticFiles(static_dir) if static_dir is not None else None,
        fallback=fallback,
        secure=ssl is not None,
        endpoints=endpoints,
        handoff=handoff,
    )
    if sock is not None:
        server = await loop.create_server(
            lambda: HTTPProtocol(ctx), sock=sock, ssl=ssl, backlog=BACKLOG
        )
    else:
        server = await loop.create_server(
            lambda: HTTPProtocol(ctx),
            host,
            port,
            ssl=ssl,
            reuse_port=reuse_port or None,
            backlog=BACKLOG,
        )
    return NativeServer(server, ctx)
