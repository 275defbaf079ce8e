"""A sockjet server in its own process, for the flow-control tests that measure its memory.

``python tests/integration/flood_server.py`` binds 127.0.0.1 on a free port, prints ``ready
<port>`` and then one JSON line per disconnection (``{"disconnect": reason}``); it exits on
SIGTERM. Its clients join the room ``"flood"``; an ``echo`` event acks its arguments, and
``flood(count, size, rate)`` broadcasts ``count`` events ``tick(i, "x" * size)`` to the room at
``rate`` per second (a sustained broadcast, as a game or a telemetry feed sends, not one burst),
then acks the count.
``stats`` acks ``{"slow_consumers": n, "volatile_dropped": n}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

import sockjet

SLOW_CONSUMER_TIMEOUT = 2.0
TICK = 0.01  # seconds between batches


def build() -> sockjet.Server:
    io = sockjet.Server(slow_consumer_timeout=SLOW_CONSUMER_TIMEOUT)

    @io.on("connection")
    def joined(socket: sockjet.Socket) -> None:
        socket.join("flood")

    @io.on("disconnect")
    def left(socket: sockjet.Socket, reason: str) -> None:
        print(json.dumps({"disconnect": reason}), flush=True)

    @io.on("echo")
    def echo(socket: sockjet.Socket, *args: Any) -> tuple[Any, ...]:
        return args

    @io.on("flood")
    async def flood(socket: sockjet.Socket, count: int, size: int, rate: int) -> int:
        payload = "x" * size
        room = io.to("flood")
        batch = max(1, round(rate * TICK))
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(count):
            room.emit("tick", i, payload)
            if i % batch == batch - 1:
                # on schedule, whatever the emits cost: the rate is the feed's, not ours
                await asyncio.sleep(max(0.0, start + (i + 1) / rate - loop.time()))
        return count

    @io.on("stats")
    def stats(socket: sockjet.Socket) -> dict[str, int]:
        counters = io.engine.stats
        return {
            "slow_consumers": counters.slow_consumers,
            "volatile_dropped": counters.volatile_dropped,
        }

    return io


async def main() -> None:
    io = build()
    server = await io.serve("127.0.0.1", 0)
    print(f"ready {server.port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await io.close()
    await server.close()


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dev dependency
        asyncio.run(main())
    else:
        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(main())
    sys.exit(0)
