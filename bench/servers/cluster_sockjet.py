"""sockjet as one node of a Redis cluster (``sockjet.adapters.redis.redis_adapter``).

``python bench/servers/cluster_sockjet.py --port P --redis redis://127.0.0.1:R``

Contract of the cluster benchmark, namespace ``/``: ``bcast`` data -> ``io.emit("tick", data)``
to every socket of every node. Native server on uvloop; prints ``READY <port>`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import sys
from typing import Any

import sockjet
from sockjet.adapters.redis import redis_adapter


def build(redis_url: str) -> sockjet.Server:
    """The contract's server; a plain handler runs inline, as Node's does."""
    io = sockjet.Server(
        adapter=redis_adapter(redis_url),
        ping_interval=300,  # no heartbeat traffic inside a measurement
    )

    @io.on("bcast")
    def bcast(socket: sockjet.Socket, data: Any) -> None:
        io.emit("tick", data)

    return io


async def serve(redis_url: str, port: int) -> None:
    """Serve until SIGTERM, then shut down gracefully."""
    io = build(redis_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    server = await io.serve("127.0.0.1", port)
    print(f"READY {server.port}", flush=True)
    await stop.wait()
    await io.close()
    await server.close()


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, help="redis://host:port")
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    uvloop.run(serve(args.redis, args.port))


if __name__ == "__main__":
    sys.exit(main())
