"""64 KB binary events: ``--clients`` (10) clients each keep ``--inflight`` (2) ``echo`` events
carrying a 64 KiB attachment in flight; the server acks with the same bytes (a binary ack: a
text frame and a binary frame each way). Reported: acks/s, MB/s each way, server CPU per ack.
``--client-writes`` (default per-message): each request is two messages, two writes (as
socket.io-client sends the placeholder packet and the attachment); batched (the old generator)
joins the replies to one read and masks with zero keys."""

from __future__ import annotations

import argparse
import os
import time

from bench.harness import (
    QUICK_DURATION,
    QUICK_WARMUP,
    Metric,
    Probe,
    add_common_arguments,
    generator_cpu,
    run_scenario,
)
from bench.loadgen.drive import close_all, connect_many
from bench.loadgen.wsclient import WSClient

__all__ = ["METRICS", "add_arguments", "main", "measure"]

METRICS = (
    Metric("acks_per_s", "acks/s", "higher"),
    Metric("mb_per_s", "MB/s each way", "higher", "{:,.1f}"),
    Metric("server_us_per_ack", "server CPU us/ack", "lower", "{:.1f}"),
    Metric("server_cpu", "server CPU %", "lower", "{:.0%}"),
    Metric("generator_cpu", "generator CPU %", "lower", "{:.0%}"),
)
SIZE = 64 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Scenario options."""
    add_common_arguments(parser)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--inflight", type=int, default=2)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")


async def measure(port: int, probe: Probe, args: argparse.Namespace) -> dict[str, float]:
    """Drive one server; see the module docstring."""
    import asyncio

    clients_n = 2 if args.quick else args.clients
    duration = QUICK_DURATION if args.quick else args.duration
    blob = os.urandom(SIZE)
    acks = [0]

    def request(client: WSClient, ack_id: int) -> None:
        # as socket.io-client: the placeholder packet, then the attachment, two messages
        client.send(f'451-{ack_id}["echo",{{"_placeholder":true,"num":0}}]'.encode())
        client.send(blob, opcode=2)

    def on_message(client: WSClient, payload: bytes) -> None:
        if len(payload) == SIZE:  # the attachment completes the binary ack
            acks[0] += 1
            client.tag += 1
            request(client, client.tag)

    clients = await connect_many(port, clients_n, writes=args.client_writes)
    try:
        for client in clients:
            client.on_message = on_message
            client.tag = args.inflight
            for i in range(args.inflight):
                request(client, i)
            client.flush()
        await asyncio.sleep(QUICK_WARMUP if args.quick else 1.0)
        acks0, cpu0, gen0, t0 = acks[0], probe.cpu(), generator_cpu(), time.perf_counter()
        await asyncio.sleep(duration)
        acks1, cpu1, gen1, t1 = acks[0], probe.cpu(), generator_cpu(), time.perf_counter()
    finally:
        close_all(clients)
    elapsed = t1 - t0
    count = acks1 - acks0
    if not count:
        raise RuntimeError("no binary acks")
    return {
        "acks_per_s": count / elapsed,
        "mb_per_s": count * SIZE / elapsed / 1e6,
        "server_us_per_ack": (cpu1 - cpu0) / count * 1e6,
        "server_cpu": (cpu1 - cpu0) / elapsed,
        "generator_cpu": (gen1 - gen0) / elapsed,
    }


def main(args: argparse.Namespace) -> int:
    """Run the scenario over the chosen servers."""
    status, _ = run_scenario(
        "binary",
        f"64 KiB binary echo with acks: {args.clients} clients x {args.inflight} in flight",
        METRICS,
        measure,
        args,
        settings={"clients": args.clients, "inflight": args.inflight, "size": SIZE},
    )
    return status
