"""sockjet as one node of a Redis cluster (``sockjet.adapters.redis.redis_adapter``, its sharded
protocol with ``--adapter sharded``, or the Redis Streams adapter with ``--adapter streams``;
connection state recovery with ``--recovery``; ``--cluster``: ``--redis`` is a node of a Redis
Cluster, sharded pub/sub).

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


def build(
    redis_url: str, adapter: str = "classic", recovery: bool = False, cluster: bool = False
) -> sockjet.Server:
    """The contract's server; a plain handler runs inline, as Node's does."""
    if adapter == "streams":
        from sockjet.adapters.redis_streams import redis_streams_adapter

        factory: sockjet.AdapterFactory = redis_streams_adapter(
            redis_url, cluster=cluster, sharded_pubsub=cluster
        )
    else:
        factory = redis_adapter(redis_url, sharded=adapter == "sharded", cluster=cluster)
    io = sockjet.Server(
        adapter=factory,
        ping_interval=300,  # no heartbeat traffic inside a measurement
        connection_state_recovery=recovery,
    )

    @io.on("bcast")
    def bcast(socket: sockjet.Socket, data: Any) -> None:
        io.emit("tick", data)

    return io


async def serve(redis_url: str, port: int, adapter: str, recovery: bool, cluster: bool) -> None:
    """Serve until SIGTERM, then shut down gracefully."""
    io = build(redis_url, adapter, recovery, cluster)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    server = await io.serve("127.0.0.1", port)
    wait_ready = getattr(io.sockets.adapter, "wait_ready", None)
    if wait_ready is not None:  # subscribed (and reading the stream) before READY
        async with asyncio.timeout(10):
            await wait_ready()
    print(f"READY {server.port}", flush=True)
    await stop.wait()
    await io.close()
    await server.close()


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, help="redis://host:port")
    parser.add_argument("--adapter", choices=("classic", "sharded", "streams"), default="classic")
    parser.add_argument("--recovery", action="store_true", help="connection state recovery")
    parser.add_argument("--cluster", action="store_true", help="--redis is a Redis Cluster node")
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    uvloop.run(serve(args.redis, args.port, args.adapter, args.recovery, args.cluster))


if __name__ == "__main__":
    sys.exit(main())
