"""Servers for the official protocol test suites, configured as those suites expect.

The Engine.IO and Socket.IO projects publish compliance suites (the ``test-suite/`` folder of the
``socketio/engine.io-protocol`` and ``socketio/socket.io-protocol`` repositories). They talk to
``http://localhost:3000`` and expect a server set up like their reference configuration:

* ``engine.io``: a bare Engine.IO server on ``/engine.io/`` (pingInterval 300 ms, pingTimeout
  200 ms, maxPayload 1,000,000) that sends every message back to its sender;
* ``socket.io``: a Socket.IO server on ``/socket.io/`` with the same heartbeat and limits and a
  1 s connect timeout; on ``"/"`` and ``"/custom"`` each socket is sent ``"auth"`` with its
  handshake auth, and on ``"/"`` ``"message"`` is echoed as ``"message-back"`` and
  ``"message-with-ack"`` is acknowledged with its own arguments.

Run from the repository root (see docs/conformance.md), then run the suite with mocha::

    python examples/conformance/server.py --suite engine.io --serving native --port 3000
    python examples/conformance/server.py --suite socket.io --serving asgi --port 3000

``--serving native`` uses sockjet's own HTTP/WebSocket server; ``--serving asgi`` the ASGI app
under uvicorn. The server prints ``ready <port>`` on stdout once it accepts connections and exits
cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any, Final, Literal

import sockjet
from sockjet.engine.cors import CorsOptions
from sockjet.engine.io import EngineSocket, Outgoing
from sockjet.engine.server import EngineServer

Suite = Literal["engine.io", "socket.io"]
Serving = Literal["native", "asgi"]

SUITES: Final[tuple[Suite, ...]] = ("engine.io", "socket.io")
SERVING_MODES: Final[tuple[Serving, ...]] = ("native", "asgi")

# The suites' reference configuration (the "Test suite" section of each protocol's README).
PING_INTERVAL: Final = 0.3
PING_TIMEOUT: Final = 0.2
MAX_PAYLOAD: Final = 1_000_000
CONNECT_TIMEOUT: Final = 1.0  # the suite waits for the close of a silent client within 2 s
AUTH_DELAY: Final = 0.02
"""Seconds between the CONNECT reply and the ``"auth"`` event (see :func:`send_auth`)."""

logger = logging.getLogger("examples.conformance")


# -- the engine.io suite: a bare Engine.IO echo ---------------------------------------------------


class EchoSession:
    """Sends every Engine.IO message (text or binary) back to the session it came from."""

    __slots__ = ("_socket",)

    def __init__(self, socket: EngineSocket) -> None:
        self._socket = socket

    def on_message(self, data: str | bytes) -> None:
        self._socket.send(Outgoing.message(data))

    def on_close(self, reason: str) -> None:
        pass


def engine_io_server(*, cors_origins: str | None = "*") -> EngineServer:
    """The Engine.IO server the engine.io-protocol suite expects (path ``/engine.io/``).

    CORS is open to every origin, as in the suites' reference configuration (it matters only
    when the suite runs in a browser, from its ``index.html``); None keeps it closed.
    """
    return EngineServer(
        EchoSession,
        path="/engine.io/",
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
        max_payload=MAX_PAYLOAD,
        cors=None if cors_origins is None else CorsOptions(origins=cors_origins),
    )


# -- the socket.io suite ---------------------------------------------------------------------------


async def send_auth(socket: sockjet.Socket) -> None:
    """Emit ``"auth"`` with the handshake auth, a moment after the CONNECT reply went out.

    The suite reads frames with ``waitFor(socket, "message")``, one listener at a time, and its
    ``ws`` client (8.5) emits all the frames of one TCP read synchronously: a frame that arrives
    in the same read as the awaited one is lost. Node's engine.io writes the CONNECT reply and
    this event separately (it holds further packets until the first write drains); sockjet
    coalesces what one loop iteration sends to a connection into one write, and from Python
    3.12 (eager handler tasks) this handler runs in the CONNECT reply's iteration. A short
    pause keeps the two frames in separate reads; the bytes on the wire are the same.
    """
    await asyncio.sleep(AUTH_DELAY)
    socket.emit("auth", socket.handshake.auth)


def socket_io_server(*, cors_origins: str | None = "*") -> sockjet.Server:
    """The Socket.IO server the socket.io-protocol suite expects (CORS as in
    :func:`engine_io_server`)."""
    io = sockjet.Server(
        path="/socket.io/",
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
        max_payload=MAX_PAYLOAD,
        connect_timeout=CONNECT_TIMEOUT,
        cors_origins=cors_origins,
    )

    @io.on("connection")
    async def on_main(socket: sockjet.Socket) -> None:
        @socket.on("message")
        async def message(*args: Any) -> None:
            socket.emit("message-back", *args)

        @socket.on("message-with-ack")
        async def message_with_ack(*args: Any) -> tuple[Any, ...]:
            return args  # a tuple acknowledges with several arguments

        await send_auth(socket)

    @io.of("/custom").on("connection")
    async def on_custom(socket: sockjet.Socket) -> None:
        await send_auth(socket)

    return io


# -- serving ----------------------------------------------------------------------------------


def _listening_sockets(host: str, port: int) -> list[socket.socket]:
    """One listening socket per address of ``host`` ("localhost" may be 127.0.0.1 and ::1),
    as asyncio's ``create_server`` binds them; uvicorn alone would bind IPv4 only."""
    sockets: list[socket.socket] = []
    infos = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(2048)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bound_port(sockets: Sequence[socket.socket]) -> int:
    port: int = sockets[0].getsockname()[1]
    return port


class _DenialNoise(logging.Filter):
    """Drops one misleading uvicorn log line.

    uvicorn's websockets-sansio protocol logs "ASGI callable returned without completing
    handshake." at ERROR after every upgrade the app refuses with an HTTP response (the ASGI
    ``websocket.http.response`` extension), although the client does receive that response (a
    known uvicorn issue). The suites make such refusals on purpose (invalid ``EIO``/``transport``).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


class _Uvicorn:
    """uvicorn driven from our own loop: our signal handlers decide when it stops, so that the
    sockjet server closes (sessions ended with their proper reasons) before uvicorn does."""

    __slots__ = ("_server", "_task")

    def __init__(self, app: sockjet.ASGIApp, engine: EngineServer) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Any:  # the caller owns SIGINT/SIGTERM
                yield

        config = uvicorn.Config(
            app,
            lifespan="on",
            log_level="warning",
            ws_max_size=engine.max_payload + 1024,  # this app enforces max_payload itself
            ws_ping_interval=None,  # Engine.IO has its own heartbeat
            # As the engine (and Node's engine.io) by default: no permessage-deflate. With it,
            # Node's ws client compresses off-thread, so a frame can reach us after an HTTP
            # request sent later (the suites' "ignores HTTP requests with same sid after
            # upgrade" sends "5" over WebSocket, then polls, and expects the poll refused).
            ws_per_message_deflate=engine.per_message_deflate,
            timeout_graceful_shutdown=3,
        )
        logging.getLogger("uvicorn.error").addFilter(_DenialNoise())
        self._server = Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self, sockets: list[socket.socket]) -> None:
        server = self._server
        self._task = asyncio.create_task(server.serve(sockets=sockets), name="uvicorn")
        while not server.started:
            if self._task.done():
                await self._task  # startup failed: raise its error
                raise RuntimeError("uvicorn stopped during startup")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)


async def serve(
    suite: Suite,
    serving: Serving,
    host: str = "localhost",
    port: int = 3000,
    *,
    cors_origins: str | None = "*",
    stop: asyncio.Event | None = None,
    ready: asyncio.Future[int] | None = None,
) -> None:
    """Serve the ``suite``'s server with ``serving`` until ``stop`` is set, then shut down.

    ``ready`` (if given) receives the bound port once connections are accepted (``port=0``
    picks a free one).
    """
    stop = stop or asyncio.Event()
    if suite == "engine.io":
        target: EngineServer | sockjet.Server = engine_io_server(cors_origins=cors_origins)
    elif suite == "socket.io":
        target = socket_io_server(cors_origins=cors_origins)
    else:
        raise ValueError(f"unknown suite {suite!r}")

    if serving == "native":
        from sockjet.serving.native import serve as native_serve

        if isinstance(target, sockjet.Server):
            native = await target.serve(host, port)
        else:
            native = await native_serve(target, host, port)
        try:
            if ready is not None:
                ready.set_result(native.port)
            await stop.wait()
        finally:
            await target.close()  # sessions end first, with their own reasons
            await native.close()
    elif serving == "asgi":
        engine = target.engine if isinstance(target, sockjet.Server) else target
        sockets = _listening_sockets(host, port)
        uvicorn_server = _Uvicorn(sockjet.ASGIApp(target), engine)
        try:
            await uvicorn_server.start(sockets)
            if ready is not None:
                ready.set_result(_bound_port(sockets))
            await stop.wait()
        finally:
            await target.close()
            await uvicorn_server.stop()
            for sock in sockets:
                sock.close()
    else:
        raise ValueError(f"unknown serving mode {serving!r}")


async def _main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ready: asyncio.Future[int] = loop.create_future()
    ready.add_done_callback(lambda f: print(f"ready {f.result()}", flush=True))
    await serve(
        args.suite,
        args.serving,
        args.host,
        args.port,
        cors_origins=None if args.cors == "none" else args.cors,
        stop=stop,
        ready=ready,
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--suite", choices=SUITES, required=True)
    parser.add_argument("--serving", choices=SERVING_MODES, default="native")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument(
        "--cors",
        default="*",
        metavar="ORIGIN",
        help='the origin CORS allows: "*" (the default, as the suites\' reference servers), '
        'one origin, or "none" to keep CORS closed',
    )
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional
        asyncio.run(_main(args))
    else:
        uvloop.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
