"""python-socketio as one node of a Redis cluster (``socketio.AsyncRedisManager``).

``python bench/servers/cluster_psio.py --port P --redis redis://127.0.0.1:R [--mode uvicorn|aiohttp]``

Contract of the cluster benchmark, namespace ``/``: ``bcast`` data -> ``emit("tick", data)`` to
every socket of every node. Prints ``READY <port>`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
from typing import Any

import socketio  # type: ignore[import-untyped]  # no stubs


def build(redis_url: str, async_mode: str) -> Any:
    """The contract's server: async handlers, as python-socketio's emit is a coroutine."""
    sio = socketio.AsyncServer(
        async_mode=async_mode,
        client_manager=socketio.AsyncRedisManager(redis_url),
        ping_interval=300,  # no heartbeat traffic inside a measurement
    )

    @sio.on("bcast")
    async def bcast(sid: str, data: Any) -> None:
        await sio.emit("tick", data)

    return sio


def _uvicorn(redis_url: str, port: int) -> None:
    import uvicorn

    class Announcing(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            print(f"READY {port}", flush=True)

    config = uvicorn.Config(
        socketio.ASGIApp(build(redis_url, "asgi")),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        log_level="warning",
        backlog=4096,
        timeout_graceful_shutdown=2,
    )
    Announcing(config).run()


async def _aiohttp(redis_url: str, port: int) -> None:
    from aiohttp import web

    sio = build(redis_url, "aiohttp")
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    print(f"READY {port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    """Parse the command line and serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, help="redis://host:port")
    parser.add_argument("--mode", choices=("uvicorn", "aiohttp"), default="uvicorn")
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.mode == "uvicorn":
        _uvicorn(args.redis, args.port)
    else:
        import uvloop

        uvloop.run(_aiohttp(args.redis, args.port))


if __name__ == "__main__":
    sys.exit(main())
