"""Fan-out: one client's ``bcast`` reaches every connected socket (``io.emit("tick", data)``).

``--clients`` WebSocket clients connect (1,000 by default); one of them drives: it sends
``bcast`` events, keeping ``--window`` broadcasts' worth of deliveries in flight, for
``--duration`` seconds after a one-second warm-up. Every client counts the ``tick`` frames it
receives; ten sampled clients also read the send timestamp carried in the data for the
end-to-end latency. Reported: deliveries/s, server CPU per delivery (server CPU seconds over the
measured window / deliveries), server and generator CPU use (a generator near 100% means the
figure is the generator's limit, not the server's), latency p50/p99.

``--rooms R`` makes it the room fan-out: every client joins room ``i % R`` (with ack) and the
driver cycles ``room_bcast`` over the rooms (each event reaches ``clients / R`` sockets).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.harness import (
    QUICK_DURATION,
    QUICK_WARMUP,
    Metric,
    Probe,
    add_common_arguments,
    generator_cpu,
    run_scenario,
)
from bench.loadgen.drive import Sink, close_all, connect_many, connect_polling_many, percentile
from bench.loadgen.pollclient import PollClient
from bench.loadgen.wsclient import WSClient

__all__ = ["METRICS", "add_arguments", "main", "measure"]

METRICS = (
    Metric("deliveries_per_s", "deliveries/s", "higher"),
    Metric("server_us_per_delivery", "server CPU us/delivery", "lower", "{:.2f}"),
    Metric("server_cpu", "server CPU %", "lower", "{:.0%}"),
    Metric("generator_cpu", "generator CPU %", "lower", "{:.0%}"),
    Metric("latency_p50_ms", "latency p50 ms", "lower", "{:.1f}"),
    Metric("latency_p99_ms", "latency p99 ms", "lower", "{:.1f}"),
)
SAMPLED = 10
PAD = "x" * 32


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Scenario options."""
    add_common_arguments(parser)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=0, help="room fan-out over R rooms")
    parser.add_argument("--window", type=int, default=8, help="broadcasts in flight")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--polling", action="store_true", help="receivers use HTTP long-polling")


def _sampler(latencies: list[float]) -> Any:
    def on_message(client: WSClient, payload: bytes) -> None:
        at = payload.find(b'"t":')
        if at >= 0:
            end = payload.find(b",", at)
            latencies.append((time.perf_counter_ns() - int(payload[at + 4 : end])) / 1e6)

    return on_message


async def measure(port: int, probe: Probe, args: argparse.Namespace) -> dict[str, float]:
    """Drive one server; see the module docstring."""
    clients_n = 20 if args.quick else args.clients
    duration = QUICK_DURATION if args.quick else args.duration
    warmup = QUICK_WARMUP if args.quick else 1.0
    rooms = args.rooms
    polling = getattr(args, "polling", False)
    latencies: list[float] = []
    sink = Sink()
    sampler = _sampler(latencies)
    pollers: list[PollClient] = []
    if polling:
        # N polling receivers; the driver is one more (WebSocket) client, the latency sample.
        pollers = await connect_polling_many(port, clients_n)
        clients = await connect_many(port, 1)
        clients[0].on_message = sampler
        for poller in pollers:
            poller.sink = sink
        counted = clients_n
        clients_n += 1
    else:
        clients = await connect_many(port, clients_n)
        if rooms:  # before counting starts: the join acks must reach their callbacks
            await _join_rooms(clients, rooms)
        for index, client in enumerate(clients):
            if index < SAMPLED:
                client.on_message = sampler
            else:
                client.sink = sink
        # Sampled clients count through their callback: scale the sink's count by N/(N-S).
        counted = clients_n - SAMPLED
    try:
        per_event = counted // rooms if rooms else counted
        per_event = per_event or 1
        driver = clients[0]
        sent = 0

        async def run_for(seconds: float) -> None:
            nonlocal sent
            deadline = time.monotonic() + seconds
            window = args.window * per_event
            while time.monotonic() < deadline:
                burst = []
                while sent * per_event - sink.count < window:
                    room = sent % rooms if rooms else None
                    burst.append(_event(room))
                    sent += 1
                driver.send_raw(b"".join(burst))
                if not await sink.reach(sent * per_event - window + per_event, 5.0):
                    raise TimeoutError("deliveries stalled")

        await run_for(warmup)
        latencies.clear()
        count0, cpu0, gen0, t0 = sink.count, probe.cpu(), generator_cpu(), time.perf_counter()
        await run_for(duration)
        count1, cpu1, gen1, t1 = sink.count, probe.cpu(), generator_cpu(), time.perf_counter()
    finally:
        close_all(clients)
        for poller in pollers:
            poller.close()
    elapsed = t1 - t0
    deliveries = (count1 - count0) * clients_n / counted  # sampled clients included
    return {
        "deliveries_per_s": deliveries / elapsed,
        "server_us_per_delivery": (cpu1 - cpu0) / deliveries * 1e6,
        "server_cpu": (cpu1 - cpu0) / elapsed,
        "generator_cpu": (gen1 - gen0) / elapsed,
        "latency_p50_ms": percentile(latencies, 0.5),
        "latency_p99_ms": percentile(latencies, 0.99),
    }


def _event(room: int | None) -> bytes:
    from bench.loadgen.wsclient import client_frame

    t = time.perf_counter_ns()
    if room is None:
        text = f'42["bcast",{{"t":{t},"p":"{PAD}"}}]'
    else:
        text = f'42["room_bcast",{{"room":"r{room}","t":{t},"p":"{PAD}"}}]'
    return client_frame(text.encode())


async def _join_rooms(clients: list[WSClient], rooms: int) -> None:
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Future[None]] = []
    for index, client in enumerate(clients):
        done: asyncio.Future[None] = loop.create_future()
        pending.append(done)

        def on_ack(c: WSClient, payload: bytes, done: asyncio.Future[None] = done) -> None:
            if payload.startswith(b"43") and not done.done():
                done.set_result(None)

        client.on_message = on_ack
        client.send_text(f'421["join",{{"room":"r{index % rooms}"}}]')
    await asyncio.wait_for(asyncio.gather(*pending), 30)


def main(args: argparse.Namespace) -> int:
    """Run the scenario over the chosen servers."""
    rooms = args.rooms
    if args.polling:
        name, title = "polling", f"Fan-out to {args.clients:,} long-polling clients"
    elif rooms:
        name, title = "rooms", f"Room fan-out: {args.clients:,} WebSocket clients in {rooms} rooms"
    else:
        name, title = "fanout", f"Fan-out to {args.clients:,} WebSocket clients"
    status, _ = run_scenario(
        name,
        title,
        METRICS,
        measure,
        args,
        servers_filter=(lambda spec: spec.polling) if args.polling else None,
        settings={
            "clients": args.clients,
            "rooms": rooms,
            "window": args.window,
            "polling": args.polling,
        },
    )
    return status
