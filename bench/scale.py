"""Scale: ``--clients`` (50,000) idle WebSocket connections in one server process, then
``--broadcasts`` (5) broadcasts to all of them, one at a time.

Connections come from many 127.0.0.x source addresses (about 28k ephemeral ports each) and both
processes lift RLIMIT_NOFILE as far as they may; where its hard limit is below ``--clients``
(a container without CAP_SYS_RESOURCE) the run uses as many clients as the limit allows and
says so. Reported: connect rate, memory per connection, the time from
sending one ``bcast`` until every client has its ``tick`` (median), and the server CPU per
delivery. sockjet only by default (``--servers`` adds peers)."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench.harness import Metric, Probe, add_common_arguments, raise_nofile, run_scenario
from bench.loadgen.drive import Sink, close_all, connect_many
from bench.loadgen.wsclient import SourceAddresses

__all__ = ["METRICS", "add_arguments", "main", "measure"]

METRICS = (
    Metric("clients", "connections", "higher"),
    Metric("connections_per_s", "connections/s", "higher"),
    Metric("kib_per_conn", "KiB/conn", "lower", "{:.1f}"),
    Metric("broadcast_ms", "broadcast to all, ms", "lower", "{:,.0f}"),
    Metric("server_us_per_delivery", "server CPU us/delivery", "lower", "{:.2f}"),
)
FILES_HEADROOM = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Scenario options."""
    add_common_arguments(parser, rounds=1)
    parser.set_defaults(servers="sockjet")
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--broadcasts", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=200)


async def measure(port: int, probe: Probe, args: argparse.Namespace) -> dict[str, float]:
    """Drive one server; see the module docstring."""
    count = 200 if args.quick else args.clients
    await asyncio.sleep(0.05 if args.quick else 0.5)
    rss0 = probe.rss()
    t0 = time.perf_counter()
    clients = await connect_many(
        port, count, args.concurrency, sources=SourceAddresses(250), writes=args.client_writes
    )
    rate = count / (time.perf_counter() - t0)
    try:
        await asyncio.sleep(0.05 if args.quick else 3.0)
        kib = (probe.rss() - rss0) / count / 1024
        sink = Sink()
        for client in clients:
            client.sink = sink
        durations = []
        cpu0 = probe.cpu()
        for i in range(args.broadcasts):
            started = time.perf_counter()
            clients[0].send(f'42["bcast",{{"n":{i}}}]'.encode())
            clients[0].flush()
            if not await sink.reach(count * (i + 1), 60.0):
                raise TimeoutError(f"broadcast {i} reached {sink.count - count * i} of {count}")
            durations.append(time.perf_counter() - started)
        cpu = probe.cpu() - cpu0
    finally:
        close_all(clients)
    return {
        "clients": count,
        "connections_per_s": rate,
        "kib_per_conn": kib,
        "broadcast_ms": statistics.median(durations) * 1e3,
        "server_us_per_delivery": cpu / (count * args.broadcasts) * 1e6,
    }


def main(args: argparse.Namespace) -> int:
    """Run the scenario over the chosen servers."""
    requested = args.clients
    # one socket per client in the generator and one in the server, plus their other files
    allowed = raise_nofile() - FILES_HEADROOM
    if args.clients > allowed:
        print(
            f"RLIMIT_NOFILE allows {allowed + FILES_HEADROOM:,} open files per process: "
            f"{allowed:,} clients instead of {requested:,}"
        )
        args.clients = allowed
    status, _ = run_scenario(
        "scale",
        f"{args.clients:,} idle WebSocket connections, then broadcasts to all",
        METRICS,
        measure,
        args,
        settings={
            "clients": args.clients,
            "requested_clients": requested,
            "broadcasts": args.broadcasts,
        },
    )
    return status
