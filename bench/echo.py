"""Echo with acks: ``--clients`` clients (50) each keep ``--inflight`` (16) ``echo`` events with
an ack id in flight; every ack is answered by the next event at once.

The event data is the send time (ns), which the ack carries back: no per-request bookkeeping in
the generator. ``--client-writes`` (default: both, side by side): ``per-message`` writes every
request in its own ``write()`` with a random masking key, as socket.io-client in a browser or
Node does; ``batched`` (the old generator) writes the replies to all acks found in one read in
one write, with a zero key, and each client's initial 16 requests in one write. Reported:
acks/s, server CPU per ack, server and generator CPU use, ack latency p50/p99, and the read and
write syscalls per ack of the server and of the generator (/proc/PID/io) and the share of the
server's CPU spent in the kernel.
"""

from __future__ import annotations

import argparse
import time

from bench.harness import (
    QUICK_DURATION,
    QUICK_WARMUP,
    Metric,
    Probe,
    add_common_arguments,
    generator_cpu,
    generator_syscalls,
    run_scenario,
    syscalls_per,
)
from bench.loadgen.drive import close_all, connect_many, percentile
from bench.loadgen.wsclient import WSClient

__all__ = ["METRICS", "add_arguments", "main", "measure"]

METRICS = (
    Metric("acks_per_s", "acks/s", "higher"),
    Metric("server_us_per_ack", "server CPU us/ack", "lower", "{:.2f}"),
    Metric("server_cpu", "server CPU %", "lower", "{:.0%}"),
    Metric("generator_cpu", "generator CPU %", "lower", "{:.0%}"),
    Metric("latency_p50_ms", "latency p50 ms", "lower", "{:.2f}"),
    Metric("latency_p99_ms", "latency p99 ms", "lower", "{:.2f}"),
    Metric("server_kernel_share", "server CPU in kernel", "lower", "{:.0%}"),
    Metric("server_reads_per_ack", "server reads/ack", "lower", "{:.2f}"),
    Metric("server_writes_per_ack", "server writes/ack", "lower", "{:.2f}"),
    Metric("generator_writes_per_ack", "generator writes/ack", "lower", "{:.2f}"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Scenario options."""
    add_common_arguments(parser, client_writes="both")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--inflight", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")


class _Counter:
    __slots__ = ("acks", "latencies", "recording")

    def __init__(self) -> None:
        self.acks = 0
        self.latencies: list[float] = []
        self.recording = False


def _request(ack_id: int) -> bytes:
    return b'42%d["echo",%d]' % (ack_id, time.perf_counter_ns())


async def measure(port: int, probe: Probe, args: argparse.Namespace) -> dict[str, float]:
    """Drive one server; see the module docstring."""
    clients_n = 5 if args.quick else args.clients
    duration = QUICK_DURATION if args.quick else args.duration
    warmup = QUICK_WARMUP if args.quick else 1.0
    counter = _Counter()
    perf_ns = time.perf_counter_ns

    def on_message(client: WSClient, payload: bytes) -> None:
        if payload[:2] != b"43":
            return
        counter.acks += 1
        open_at = payload.index(b"[")
        if counter.recording:
            counter.latencies.append((perf_ns() - int(payload[open_at + 1 : -1])) / 1e6)
        client.tag += 1
        client.send(b'42%d["echo",%d]' % (client.tag, perf_ns()))

    clients = await connect_many(port, clients_n, writes=args.client_writes)
    try:
        for client in clients:
            client.on_message = on_message
            client.tag = args.inflight
            for i in range(args.inflight):
                client.send(_request(i))
            client.flush()  # batched: the whole burst in one write
        await _sleep(warmup)
        counter.recording = True
        acks0, cpu0, gen0, t0 = counter.acks, probe.cpu(), generator_cpu(), time.perf_counter()
        io0, gio0, sys0 = probe.syscalls(), generator_syscalls(), probe.system_cpu()
        await _sleep(duration)
        acks1, cpu1, gen1, t1 = counter.acks, probe.cpu(), generator_cpu(), time.perf_counter()
        io1, gio1, sys1 = probe.syscalls(), generator_syscalls(), probe.system_cpu()
        counter.recording = False
    finally:
        close_all(clients)
    elapsed = t1 - t0
    acks = acks1 - acks0
    if not acks:
        raise RuntimeError("no acks")
    return {
        **syscalls_per(acks, "ack", io0, io1, gio0, gio1),
        "acks_per_s": acks / elapsed,
        "server_us_per_ack": (cpu1 - cpu0) / acks * 1e6,
        "server_cpu": (cpu1 - cpu0) / elapsed,
        "server_kernel_share": (sys1 - sys0) / (cpu1 - cpu0) if cpu1 > cpu0 else 0.0,
        "generator_cpu": (gen1 - gen0) / elapsed,
        "latency_p50_ms": percentile(counter.latencies, 0.5),
        "latency_p99_ms": percentile(counter.latencies, 0.99),
    }


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def main(args: argparse.Namespace) -> int:
    """Run the scenario over the chosen servers."""
    status, _ = run_scenario(
        "echo",
        f"Echo with acks: {args.clients} clients x {args.inflight} in flight",
        METRICS,
        measure,
        args,
        settings={"clients": args.clients, "inflight": args.inflight},
    )
    return status
