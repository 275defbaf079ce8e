"""The cost of connection state recovery across nodes, on the Redis Streams adapter.

For each implementation (sockjet and Node socket.io, each with its streams adapter and
connection state recovery) a private ``redis-server`` and two nodes start fresh. ``--clients``
WebSocket clients connect to node A and receive one broadcast (their offset); they drop (a
reset, as a dead network path: node A sees them go and keeps their sessions); ``--missed``
broadcasts follow, recorded in the stream; then every client reconnects, to node B, with its
session id and offset, and must come back with the same socket id and every broadcast it missed.

Reported: restores/s; node B's CPU per restored session and per replayed packet; Redis's CPU per
restore; restore latency p50/p99 (reconnection to the last missed packet received); and how many
sessions came back whole (same id, every missed packet: anything under 100% is a failure).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from bench import machine_info, package_versions, write_results
from bench.cluster import CLUSTERS, RedisServer, _can_pin, _pin_self, _redis_cpu
from bench.harness import GENERATOR_CORE, Metric, Probe, RunningServer, raise_nofile, render_table
from bench.loadgen.drive import Sink, close_all, connect_many, percentile
from bench.loadgen.tcp import open_tcp
from bench.loadgen.wsclient import BATCHED, WSClient, client_frame

__all__ = ["IMPLEMENTATIONS", "METRICS", "add_arguments", "main", "measure", "run"]

METRICS = (
    Metric("restores_per_s", "restores/s", "higher"),
    Metric("server_us_per_restore", "node B CPU us/restore", "lower", "{:.0f}"),
    Metric("server_us_per_packet", "node B CPU us/replayed packet", "lower", "{:.2f}"),
    Metric("redis_us_per_restore", "Redis CPU us/restore", "lower", "{:.0f}"),
    Metric("restore_p50_ms", "restore p50 ms", "lower", "{:.1f}"),
    Metric("restore_p99_ms", "restore p99 ms", "lower", "{:.1f}"),
    Metric("recovered", "recovered whole", "higher", "{:.0%}"),
)
IMPLEMENTATIONS = {"sockjet": "sockjet-streams-csr", "node": "node-streams-csr"}


class RecoveringClient(WSClient):
    """A load-generator client that joins with ``auth`` and keeps what recovery needs: its
    CONNECT reply (sid, pid) and the last offset it received."""

    __slots__ = ("auth", "done", "offset", "session", "started", "want")

    def __init__(self, connected: asyncio.Future[int], auth: dict[str, Any]) -> None:
        super().__init__(connected, None, BATCHED)
        self.auth = orjson.dumps(auth) if auth else b""
        self.session: dict[str, Any] = {}
        self.offset: str | None = None
        self.want = 0
        self.started = 0.0
        self.done: asyncio.Future[float] = connected.get_loop().create_future()

    def _message(self, data: bytes, start: int, end: int) -> None:
        payload = data[start:end]
        if not self.connected.done():
            if payload[:1] == b"0":  # Engine.IO OPEN -> Socket.IO CONNECT with the auth
                self.send_raw(client_frame(b"40" + self.auth))
            elif payload[:2] == b"40":
                self.session = orjson.loads(payload[2:])
                self.connected.set_result(0)
                if self.received >= self.want and not self.done.done():
                    self.done.set_result(time.perf_counter())
            elif payload[:2] == b"44":
                self.connected.set_exception(ConnectionError(payload.decode()))
            if payload[:2] != b"42":  # Node sends the missed packets before its CONNECT reply
                return
        self.received += 1
        cut = payload.rfind(b',"')
        if payload.endswith(b'"]') and cut > 0:
            self.offset = payload[cut + 2 : -2].decode()
        if self.received >= self.want and not self.done.done():
            self.done.set_result(time.perf_counter())


async def _connect(port: int, auth: dict[str, Any], want: int = 1) -> RecoveringClient:
    loop = asyncio.get_running_loop()
    connected: asyncio.Future[int] = loop.create_future()

    def make() -> RecoveringClient:
        client = RecoveringClient(connected, auth)
        client.port = port
        client.want = want
        client.started = time.perf_counter()
        return client

    _, client = await open_tcp(make, port, "127.0.0.1", 15.0)
    try:
        await asyncio.wait_for(connected, 15.0)
    except BaseException:
        client.close()
        raise
    return client


async def _bounded(tasks: Sequence[Callable[[], Any]], concurrency: int) -> list[Any]:
    queue = list(enumerate(tasks))
    results: list[Any] = [None] * len(tasks)

    async def worker() -> None:
        while queue:
            index, task = queue.pop()
            results[index] = await task()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(tasks)))))
    return results


def _bcast(n: int) -> bytes:
    return client_frame(b'42["bcast",{"n":%d,"p":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}]' % n)


async def measure(
    ports: Sequence[int], probe_b: Probe, redis: Probe, redis_port: int, args: argparse.Namespace
) -> dict[str, float]:
    """One fresh cluster: connect to A, drop, miss ``--missed`` broadcasts, restore on B."""
    count, missed = (20, 20) if args.quick else (args.clients, args.missed)
    port_a, port_b = ports
    [driver] = await connect_many(port_a, 1, writes=BATCHED)
    first: list[RecoveringClient] = []
    second: list[RecoveringClient] = []
    try:
        first = await _bounded([lambda: _connect(port_a, {}) for _ in range(count)], 100)
        driver.send_raw(_bcast(-1))
        await asyncio.wait_for(asyncio.gather(*(c.done for c in first)), 15)
        close_all(first)  # gone with a reset: node A keeps their sessions
        await asyncio.sleep(0.5)
        sink = driver.sink = Sink()  # the driver hears its own broadcasts: all recorded then
        driver.send_raw(b"".join(_bcast(n) for n in range(missed)))
        if not await sink.reach(missed, 15.0):
            raise TimeoutError("the missed broadcasts did not go out")
        cpu0, redis0, t0 = probe_b.cpu(), await _redis_cpu(redis_port, redis), time.perf_counter()
        second = await _bounded(
            [
                (
                    lambda c=c: _connect(
                        port_b, {"pid": c.session["pid"], "offset": c.offset}, missed
                    )
                )
                for c in first
            ],
            100,
        )
        finished = await asyncio.wait_for(asyncio.gather(*(c.done for c in second)), 30)
        t1 = time.perf_counter()
        cpu1, redis1 = probe_b.cpu(), await _redis_cpu(redis_port, redis)
    finally:
        close_all([driver, *first, *second])
    whole = sum(
        1
        for before, after in zip(first, second, strict=True)
        if after.session.get("sid") == before.session.get("sid") and after.received == missed
    )
    latencies = [(end - c.started) * 1000 for c, end in zip(second, finished, strict=True)]
    return {
        "restores_per_s": count / (t1 - t0),
        "server_us_per_restore": (cpu1 - cpu0) / count * 1e6,
        "server_us_per_packet": (cpu1 - cpu0) / (count * max(missed, 1)) * 1e6,
        "redis_us_per_restore": (redis1 - redis0) / count * 1e6,
        "restore_p50_ms": percentile(latencies, 0.5),
        "restore_p99_ms": percentile(latencies, 0.99),
        "recovered": whole / count,
    }


def _run_one(name: str, args: argparse.Namespace) -> dict[str, float]:
    import uvloop

    pin = not args.no_pin and _can_pin()
    redis = RedisServer(GENERATOR_CORE if pin else None)
    nodes: list[RunningServer] = []
    try:
        redis_probe = redis.wait_ready()
        spec = CLUSTERS[IMPLEMENTATIONS[name]]
        nodes = [RunningServer(spec.node(redis.url), pin=pin) for _ in range(2)]
        probes = [node.wait_ready() for node in nodes]

        async def bounded() -> dict[str, float]:
            ports = [node.port for node in nodes]
            coro = measure(ports, probes[1], redis_probe, redis.port, args)
            return await asyncio.wait_for(coro, args.timeout)

        return uvloop.run(bounded())
    finally:
        for node in nodes:
            node.stop()
        redis.stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m bench recovery``."""
    parser.add_argument(
        "--servers",
        default=",".join(IMPLEMENTATIONS),
        help=f"comma-separated, of {', '.join(IMPLEMENTATIONS)} (default: %(default)s)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 clients, 20 missed")
    parser.add_argument("--clients", type=int, default=500, help="sessions restored")
    parser.add_argument("--missed", type=int, default=100, help="broadcasts missed by each")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after this (s)")
    parser.add_argument("--output", type=Path, default=None, help="directory for the JSON results")
    parser.add_argument("--no-save", action="store_true", help="print only, write no JSON")


def run(
    names: Sequence[str], args: argparse.Namespace, say: Callable[[str], None] = print
) -> dict[str, Any]:
    raise_nofile()
    if not args.no_pin and _can_pin():
        _pin_self(GENERATOR_CORE)
    rounds = 1 if args.quick else args.rounds
    raw: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    errors: dict[str, list[str]] = {}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in [*names[shift:], *names[:shift]]:
            try:
                result = _run_one(name, args)
            except Exception as exc:  # one peer failing must not lose the others' numbers
                errors.setdefault(name, []).append(repr(exc))
                say(f"  [recovery] round {round_index + 1} {name}: FAILED {exc!r}")
                continue
            raw[name].append(result)
            shown = ", ".join(f"{m.key}={m.fmt.format(result[m.key])}" for m in METRICS)
            say(f"  [recovery] round {round_index + 1} {name}: {shown}")
    medians = {
        name: {m.key: statistics.median(r[m.key] for r in results) for m in METRICS}
        for name, results in raw.items()
        if results
    }
    return {
        "scenario": "recovery",
        "machine": machine_info(),
        "versions": package_versions("sockjet", "redis"),
        "settings": {
            "clients": 20 if args.quick else args.clients,
            "missed": 20 if args.quick else args.missed,
            "rounds": rounds,
            "quick": args.quick,
            "pinned": not args.no_pin and _can_pin(),
        },
        "metrics": [m.key for m in METRICS],
        "raw": raw,
        "medians": medians,
        "errors": errors,
    }


def main(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = [n for n in names if n not in IMPLEMENTATIONS]
    if unknown or not names:
        print(f"unknown servers: {', '.join(unknown)} (known: {', '.join(IMPLEMENTATIONS)})")
        return 2
    data = run(names, args)
    settings = data["settings"]
    print(
        f"\n## Recovery across nodes: {settings['clients']:,} sessions restored on node B, "
        f"{settings['missed']} missed broadcasts each (medians of {settings['rounds']} round(s))\n"
    )
    print(render_table(METRICS, data["medians"]))
    if not args.no_save:
        path = write_results("recovery", data, args.output)
        print(f"\nraw results: {path}")
    return 1 if data["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(argparse.Namespace()))
