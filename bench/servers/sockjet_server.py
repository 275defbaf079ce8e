"""sockjet implementing the benchmark contract, native or under uvicorn (ASGI).

``python bench/servers/sockjet_server.py --port P [--mode native|asgi] [--recovery]
[--admin development|production] [--metrics]``

Contract, namespace ``/``: ``echo`` with ack -> ack with the same data; ``bcast`` data ->
``io.emit("tick", data)``; ``join`` {room} with ack -> join, then ack; ``room_bcast``
{room, ...} -> ``io.to(room).emit("tick", data)``. Handlers are plain functions (sockjet runs
them inline, as Node does); prints ``READY <port>`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import sys
from typing import Any

import sockjet


def build(recovery: bool = False, metrics: bool = False) -> sockjet.Server:
    """The contract's Socket.IO server (``recovery``: with connection state recovery;
    ``metrics``: with Prometheus metrics on ``/metrics``)."""
    # Default limits: flow control slows a fast client down instead of dropping it, so the
    # benchmark needs no raised limits (before it did: max_buffered_bytes=16_000_000).
    io = sockjet.Server(connection_state_recovery=recovery, metrics=metrics)

    @io.on("echo")
    def echo(socket: sockjet.Socket, data: Any) -> Any:
        return data

    @io.on("bcast")
    def bcast(socket: sockjet.Socket, data: Any) -> None:
        io.emit("tick", data)

    @io.on("join")
    def join(socket: sockjet.Socket, data: Any) -> bool:
        socket.join(data["room"])
        return True

    @io.on("room_bcast")
    def room_bcast(socket: sockjet.Socket, data: Any) -> None:
        io.to(data["room"]).emit("tick", data)

    return io


async def _native(io: sockjet.Server, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    server = await io.serve("127.0.0.1", port)
    print(f"READY {server.port}", flush=True)
    await stop.wait()
    await io.close()
    await server.close()


def _asgi(io: sockjet.Server, port: int) -> None:
    import uvicorn

    from sockjet.serving.asgi import ASGIApp

    class Announcing(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            print(f"READY {port}", flush=True)

    config = uvicorn.Config(
        ASGIApp(io),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        lifespan="on",
        log_level="warning",
        ws_ping_interval=None,  # Engine.IO has its own heartbeat
        backlog=4096,
        timeout_graceful_shutdown=2,
    )
    Announcing(config).run()


def main() -> None:
    """Parse the command line and serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("native", "asgi"), default="native")
    parser.add_argument("--recovery", action="store_true", help="connection state recovery on")
    parser.add_argument(
        "--admin", choices=("development", "production"), help="instrumented for the Admin UI"
    )
    parser.add_argument("--metrics", action="store_true", help="Prometheus metrics on")
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    io = build(args.recovery, args.metrics)
    if args.admin:
        io.instrument(auth=False, mode=args.admin)
    if args.mode == "native":
        import uvloop

        uvloop.run(_native(io, args.port))
    else:
        _asgi(io, args.port)


if __name__ == "__main__":
    sys.exit(main())
