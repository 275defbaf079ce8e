"""python-socketio implementing the benchmark contract, under uvicorn (ASGI) or aiohttp.

``python bench/servers/psio_server.py --port P [--mode uvicorn|aiohttp]``

Its idiomatic form: ``socketio.AsyncServer`` with async handlers (its ``emit`` is a coroutine),
default options otherwise. Prints ``READY <port>`` once listening.
"""

from __future__ import annotations

import argparse
import resource
import sys
from typing import Any

import socketio


def build() -> socketio.AsyncServer:
    """The contract's Socket.IO server."""
    sio = socketio.AsyncServer(async_mode="asgi", max_http_buffer_size=16_000_000)
    return _register(sio)


def _register(sio: socketio.AsyncServer) -> socketio.AsyncServer:
    @sio.on("echo")
    async def echo(sid: str, data: Any) -> Any:
        return data

    @sio.on("bcast")
    async def bcast(sid: str, data: Any) -> None:
        await sio.emit("tick", data)

    @sio.on("join")
    async def join(sid: str, data: Any) -> bool:
        await sio.enter_room(sid, data["room"])
        return True

    @sio.on("room_bcast")
    async def room_bcast(sid: str, data: Any) -> None:
        await sio.emit("tick", data, to=data["room"])

    return sio


def main() -> None:
    """Parse the command line and serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("uvicorn", "aiohttp"), default="uvicorn")
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.mode == "uvicorn":
        import uvicorn

        port = args.port

        class Announcing(uvicorn.Server):
            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets)
                print(f"READY {port}", flush=True)

        config = uvicorn.Config(
            socketio.ASGIApp(build()),
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
    else:
        import asyncio

        import uvloop
        from aiohttp import web

        async def run() -> None:
            sio = _register(
                socketio.AsyncServer(async_mode="aiohttp", max_http_buffer_size=16_000_000)
            )
            app = web.Application()
            sio.attach(app)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096)
            await site.start()
            print(f"READY {args.port}", flush=True)
            await asyncio.Event().wait()

        uvloop.run(run())


if __name__ == "__main__":
    sys.exit(main())
