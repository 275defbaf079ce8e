"""Fan-out: one client's ``bcast`` reaches every connected socket (``io.emit("tick", data)``).

``--clients`` WebSocket clients connect (1,000 by default); one of them drives: it sends
``bcast`` events, keeping ``--window`` broadcasts' worth of deliveries in flight, for
``--duration`` seconds after a one-second warm-up. Every client counts the ``tick`` frames it
receives; ten sampled clients also read the send timestamp carried in the data for the
end-to-end latency. Reported: deliveries/s, server CPU per delivery (server CPU seconds over the
measured window / deliveries), server and generator CPU use (a generator near 100% means the
figure is the generator's limit, not the server's), latency p50/p99.

``--rooms R`` makes it the room fan-out: every client joins room ``i % R`` (with ack) and the
driver cycles ``room_bcast`` over the rooms (each event reaches ``clients / R`` sockets). Before
the fan-out, the join phase is measured: for ``--join-duration`` seconds (after a warm-up) every
client keeps one ``join`` in flight, sending the next as soon as the ack is back (its own room
again: a join is idempotent, so the rooms stay as they are); reported: joins/s, server CPU per
join, join latency p50/p99, server reads per join.

``--client-writes``: ``per-message`` (default; the room scenario: both, side by side) sends every
event in its own write with a random masking key, as a browser does; ``batched`` (the old
generator) writes the driver's burst of events in one write, with zero keys.
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
JOIN_METRICS = (
    Metric("joins_per_s", "joins/s", "higher"),
    Metric("server_us_per_join", "server CPU us/join", "lower", "{:.2f}"),
    Metric("join_p50_ms", "join p50 ms", "lower", "{:.2f}"),
    Metric("join_p99_ms", "join p99 ms", "lower", "{:.2f}"),
    Metric("server_reads_per_join", "server reads/join", "lower", "{:.2f}"),
)
SAMPLED = 10
PAD = "x" * 32


def metrics(args: argparse.Namespace) -> tuple[Metric, ...]:
    """This run's figures: the fan-out's, and the join phase's for the room fan-out."""
    return METRICS + JOIN_METRICS if args.rooms and not args.polling else METRICS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Scenario options."""
    add_common_arguments(parser)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=0, help="room fan-out over R rooms")
    parser.add_argument("--window", type=int, default=8, help="broadcasts in flight")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--polling", action="store_true", help="receivers use HTTP long-polling")
    parser.add_argument(
        "--join-duration", type=float, default=3.0, help="measured seconds of the join phase"
    )


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
    joins: dict[str, float] = {}
    writes = args.client_writes
    if polling:
        # N polling receivers; the driver is one more (WebSocket) client, the latency sample.
        pollers = await connect_polling_many(port, clients_n)
        clients = await connect_many(port, 1, writes=writes)
        clients[0].on_message = sampler
        for poller in pollers:
            poller.sink = sink
        counted = clients_n
        clients_n += 1
    else:
        clients = await connect_many(port, clients_n, writes=writes)
        if rooms:  # before counting starts: the join acks must reach their callbacks
            await _join_rooms(clients, rooms)
            joins = await _measure_joins(
                clients,
                probe,
                QUICK_WARMUP if args.quick else 0.5,
                QUICK_DURATION if args.quick else args.join_duration,
            )
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
                while sent * per_event - sink.count < window:
                    driver.send(_event(sent % rooms if rooms else None))
                    sent += 1
                driver.flush()  # batched: the burst in one write
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
        **joins,
        "deliveries_per_s": deliveries / elapsed,
        "server_us_per_delivery": (cpu1 - cpu0) / deliveries * 1e6,
        "server_cpu": (cpu1 - cpu0) / elapsed,
        "generator_cpu": (gen1 - gen0) / elapsed,
        "latency_p50_ms": percentile(latencies, 0.5),
        "latency_p99_ms": percentile(latencies, 0.99),
    }


def _event(room: int | None) -> bytes:
    t = time.perf_counter_ns()
    if room is None:
        text = f'42["bcast",{{"t":{t},"p":"{PAD}"}}]'
    else:
        text = f'42["room_bcast",{{"room":"r{room}","t":{t},"p":"{PAD}"}}]'
    return text.encode()


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
        client.tag = _Joiner(b"r%d" % (index % rooms))
        client.send_text(f'421["join",{{"room":"r{index % rooms}"}}]')
    await asyncio.wait_for(asyncio.gather(*pending), 30)


class _Joiner:
    """A client's state in the join phase: its room, next ack id, when its join left."""

    __slots__ = ("ack_id", "room", "sent_ns")

    def __init__(self, room: bytes) -> None:
        self.room = room
        self.ack_id = 1
        self.sent_ns = 0

    def next_join(self) -> bytes:
        self.ack_id += 1
        self.sent_ns = time.perf_counter_ns()
        return b'42%d["join",{"room":"%s"}]' % (self.ack_id, self.room)


async def _measure_joins(
    clients: list[WSClient], probe: Probe, warmup: float, duration: float
) -> dict[str, float]:
    """Every client keeps one join in flight (see the module docstring); then waits for the
    last acks, so that none reaches the fan-out phase's counters."""
    latencies: list[float] = []
    state = {"acks": 0, "outstanding": 0, "recording": False, "running": True}
    drained = asyncio.get_running_loop().create_future()
    perf_ns = time.perf_counter_ns

    def on_ack(client: WSClient, payload: bytes) -> None:
        if payload[:2] != b"43":
            return
        joiner: _Joiner = client.tag
        state["acks"] += 1
        if state["recording"]:
            latencies.append((perf_ns() - joiner.sent_ns) / 1e6)
        if state["running"]:
            client.send(joiner.next_join())
        else:
            state["outstanding"] -= 1
            if not state["outstanding"] and not drained.done():
                drained.set_result(None)

    for client in clients:
        client.on_message = on_ack
        client.send(client.tag.next_join())
        client.flush()
    state["outstanding"] = len(clients)
    await asyncio.sleep(warmup)
    state["recording"] = True
    acks0, cpu0, t0, io0 = state["acks"], probe.cpu(), time.perf_counter(), probe.syscalls()
    await asyncio.sleep(duration)
    acks1, cpu1, t1, io1 = state["acks"], probe.cpu(), time.perf_counter(), probe.syscalls()
    state["running"] = False
    await asyncio.wait_for(drained, 10)
    joins = acks1 - acks0
    if not joins:
        raise RuntimeError("no join acks")
    return {
        "joins_per_s": joins / (t1 - t0),
        "server_us_per_join": (cpu1 - cpu0) / joins * 1e6,
        "join_p50_ms": percentile(latencies, 0.5),
        "join_p99_ms": percentile(latencies, 0.99),
        "server_reads_per_join": (io1[0] - io0[0]) / joins,
    }


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
        metrics(args),
        measure,
        args,
        servers_filter=(lambda spec: spec.polling) if args.polling else None,
        mode_metrics=[
            "deliveries_per_s",
            "server_us_per_delivery",
            "joins_per_s",
            "server_us_per_join",
        ],
        settings={
            "clients": args.clients,
            "rooms": rooms,
            "window": args.window,
            "polling": args.polling,
        },
    )
    return status
