"""Connect: a storm of WebSocket handshakes, then the memory the idle connections hold.

``--counts 5000,10000``: the first count's clients connect with ``--concurrency`` (100)
handshakes in flight (TCP connect, HTTP upgrade, Engine.IO OPEN, Socket.IO CONNECT to ``/``);
that gives the connection rate and the handshake latency. The later counts add clients (same
concurrency) up to each total; after each total the server's resident memory is read (after a
short settle) and reported per connection above the server's idle RSS before the storm.
Sockets close with RST, so no TIME_WAIT piles up across runs; connections come from many
127.0.0.x source addresses. ``--client-writes`` (default: both, side by side): ``per-message``
clients send a browser's upgrade request (Origin of the same host, User-Agent, Accept-*, ...)
and mask their frames (CONNECT, pongs) with random keys; ``batched`` clients (the old generator)
send a minimal upgrade request and zero keys. Either way every client message is its own write
(a handshake has nothing to coalesce). The server's read and write syscalls per connection
(/proc/PID/io) are reported too.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.harness import (
    Metric,
    Probe,
    add_common_arguments,
    generator_cpu,
    generator_syscalls,
    run_scenario,
    syscalls_per,
)
from bench.loadgen.drive import close_all, connect_many, percentile
from bench.loadgen.wsclient import SourceAddresses, WSClient

__all__ = ["add_arguments", "main", "measure"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Scenario options."""
    add_common_arguments(parser, rounds=3, client_writes="both")
    parser.add_argument("--counts", default="5000,10000", help="connection totals to reach")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before reading RSS")


def _counts(args: argparse.Namespace) -> list[int]:
    return [100, 200] if args.quick else [int(c) for c in args.counts.split(",")]


def metrics(args: argparse.Namespace) -> tuple[Metric, ...]:
    """This run's figures (one memory column per count)."""
    return (
        Metric("connections_per_s", "connections/s", "higher"),
        Metric("server_us_per_connection", "server CPU us/conn", "lower", "{:.0f}"),
        Metric("generator_cpu", "generator CPU %", "lower", "{:.0%}"),
        Metric("handshake_p50_ms", "handshake p50 ms", "lower", "{:.1f}"),
        Metric("handshake_p99_ms", "handshake p99 ms", "lower", "{:.1f}"),
        Metric("server_reads_per_connection", "server reads/conn", "lower", "{:.2f}"),
        Metric("server_writes_per_connection", "server writes/conn", "lower", "{:.2f}"),
        *(
            Metric(f"kib_per_conn_{n}", f"KiB/conn @{n:,}", "lower", "{:.1f}")
            for n in _counts(args)
        ),
    )


async def measure(port: int, probe: Probe, args: argparse.Namespace) -> dict[str, float]:
    """Drive one server; see the module docstring."""
    counts = _counts(args)
    sources = SourceAddresses()
    clients: list[WSClient] = []
    result: dict[str, float] = {}
    await asyncio.sleep(
        0.05 if args.quick else 0.5
    )  # let the fresh server finish starting (lazy imports, JIT)
    rss0 = probe.rss()
    try:
        latencies: list[float] = []
        cpu0, gen0, t0 = probe.cpu(), generator_cpu(), time.perf_counter()
        io0, gio0 = probe.syscalls(), generator_syscalls()
        clients += await connect_many(
            port,
            counts[0],
            args.concurrency,
            sources=sources,
            latencies=latencies,
            writes=args.client_writes,
        )
        cpu1, gen1, t1 = probe.cpu(), generator_cpu(), time.perf_counter()
        io1, gio1 = probe.syscalls(), generator_syscalls()
        per_connection = syscalls_per(counts[0], "connection", io0, io1, gio0, gio1)
        result["server_reads_per_connection"] = per_connection["server_reads_per_connection"]
        result["server_writes_per_connection"] = per_connection["server_writes_per_connection"]
        result["connections_per_s"] = counts[0] / (t1 - t0)
        result["server_us_per_connection"] = (cpu1 - cpu0) / counts[0] * 1e6
        result["generator_cpu"] = (gen1 - gen0) / (t1 - t0)
        result["handshake_p50_ms"] = percentile(latencies, 0.5) * 1e3
        result["handshake_p99_ms"] = percentile(latencies, 0.99) * 1e3
        for total in counts:
            if total > len(clients):
                clients += await connect_many(
                    port,
                    total - len(clients),
                    args.concurrency,
                    sources=sources,
                    writes=args.client_writes,
                )
            await asyncio.sleep(0.05 if args.quick else args.settle)
            result[f"kib_per_conn_{total}"] = (probe.rss() - rss0) / total / 1024
    finally:
        close_all(clients)
    return result


def main(args: argparse.Namespace) -> int:
    """Run the scenario over the chosen servers."""
    counts = _counts(args)
    status, _ = run_scenario(
        "connect",
        f"Connect {counts[0]:,} WebSocket clients ({args.concurrency} in flight), "
        f"idle memory at {', '.join(f'{n:,}' for n in counts)}",
        metrics(args),
        measure,
        args,
        settings={"counts": counts, "concurrency": args.concurrency},
    )
    return status
