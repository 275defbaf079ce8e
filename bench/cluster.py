"""Cross-node fan-out: two server nodes on one Redis; a broadcast from one node reaches all.

For each implementation a private ``redis-server`` and two nodes start fresh (sockjet with its
Redis adapter, python-socketio with ``AsyncRedisManager``, Node socket.io with
``@socket.io/redis-adapter``); ``--clients`` WebSocket clients (1,000) connect, half to each
node. One client on node A drives: it sends ``bcast`` events, keeping ``--window`` broadcasts'
worth of deliveries in flight, for ``--duration`` seconds after a warm-up; node A emits each
``tick`` to its own sockets and, through Redis, to node B's. Every client counts its ``tick``
frames; a few clients of node B also read the send time carried in the data (cross-node latency).

Reported: deliveries/s over both nodes, server CPU per delivery (both nodes' user + system CPU
over the measured window / deliveries), Redis CPU per broadcast (what one published message costs
the broker), the servers' and generator's CPU use, node B's latency p50/p99, and with the Redis
Streams adapter what one recorded broadcast takes in Redis (stream bytes/entry). Both nodes are pinned to the server core (so the cluster has
one core, whatever the implementation), Redis and the generator to the other one. Rounds rotate
the order of implementations; medians and ratios to sockjet are printed, raw results saved.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import ROOT, machine_info, package_versions, write_results
from bench.harness import (
    GENERATOR_CORE,
    Metric,
    Probe,
    RunningServer,
    ServerSpec,
    free_port,
    generator_cpu,
    raise_nofile,
    render_table,
)
from bench.loadgen.drive import Sink, close_all, connect_many, percentile
from bench.loadgen.wsclient import BATCHED, WSClient, client_frame

__all__ = [
    "CLUSTERS",
    "DEFAULT_SERVERS",
    "METRICS",
    "ClusterSpec",
    "RedisServer",
    "add_arguments",
    "main",
    "measure",
    "run",
]

METRICS = (
    Metric("deliveries_per_s", "deliveries/s", "higher"),
    Metric("server_us_per_delivery", "server CPU us/delivery", "lower", "{:.2f}"),
    Metric("redis_us_per_broadcast", "Redis CPU us/broadcast", "lower", "{:.1f}"),
    Metric("server_cpu", "server CPU %", "lower", "{:.0%}"),
    Metric("generator_cpu", "generator CPU %", "lower", "{:.0%}"),
    Metric("remote_p50_ms", "node B latency p50 ms", "lower", "{:.1f}"),
    Metric("remote_p99_ms", "node B latency p99 ms", "lower", "{:.1f}"),
    Metric("stream_bytes_per_entry", "stream bytes/entry", "lower", "{:.0f}"),
)
SAMPLED = 5  # clients of node B that read the send time (the rest only count frames)
PAD = "x" * 32

_PY = sys.executable
_SERVERS = ROOT / "bench" / "servers"


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """How to start one node of an implementation (``{port}`` and ``{redis}`` substituted)."""

    name: str
    argv: tuple[str, ...]
    redis_cluster: bool = False
    """The nodes share a three-master Redis Cluster instead of one Redis."""

    def node(self, redis_url: str) -> ServerSpec:
        """The harness's server spec of one node talking to ``redis_url``."""
        return ServerSpec(
            self.name, tuple(part.replace("{redis}", redis_url) for part in self.argv)
        )


def _node_argv(kind: str, *extra: str) -> tuple[str, ...]:
    """The command line of a sockjet or Node cluster node with ``extra`` options."""
    if kind == "sockjet":
        head: tuple[str, ...] = (_PY, str(_SERVERS / "cluster_sockjet.py"))
    else:
        head = ("node", str(_SERVERS / "node_cluster.js"))
    return (*head, "--port", "{port}", "--redis", "{redis}", *extra)


CLUSTERS: dict[str, ClusterSpec] = {
    spec.name: spec
    for spec in (
        ClusterSpec(
            "sockjet",
            (_PY, str(_SERVERS / "cluster_sockjet.py"), "--port", "{port}", "--redis", "{redis}"),
        ),
        ClusterSpec(
            "psio-aiohttp",
            (
                _PY,
                str(_SERVERS / "cluster_psio.py"),
                "--port",
                "{port}",
                "--redis",
                "{redis}",
                "--mode",
                "aiohttp",
            ),
        ),
        ClusterSpec(
            "psio-uvicorn",
            (
                _PY,
                str(_SERVERS / "cluster_psio.py"),
                "--port",
                "{port}",
                "--redis",
                "{redis}",
                "--mode",
                "uvicorn",
            ),
        ),
        ClusterSpec(
            "node",
            ("node", str(_SERVERS / "node_cluster.js"), "--port", "{port}", "--redis", "{redis}"),
        ),
        ClusterSpec("sockjet-sharded", _node_argv("sockjet", "--adapter", "sharded")),
        ClusterSpec("node-sharded", _node_argv("node", "--adapter", "sharded")),
        # The Redis Streams adapter (sockjet's and Node's @socket.io/redis-streams-adapter),
        # without and with connection state recovery (what recording every broadcast costs).
        ClusterSpec("sockjet-streams", _node_argv("sockjet", "--adapter", "streams")),
        ClusterSpec(
            "sockjet-streams-csr", _node_argv("sockjet", "--adapter", "streams", "--recovery")
        ),
        ClusterSpec("node-streams", _node_argv("node", "--adapter", "streams")),
        ClusterSpec("node-streams-csr", _node_argv("node", "--adapter", "streams", "--recovery")),
        # On a three-master Redis Cluster (sharded pub/sub: what scales there).
        ClusterSpec(
            "sockjet-sharded-rc", _node_argv("sockjet", "--adapter", "sharded", "--cluster"), True
        ),
        ClusterSpec(
            "node-sharded-rc", _node_argv("node", "--adapter", "sharded", "--cluster"), True
        ),
        ClusterSpec(
            "sockjet-streams-csr-rc",
            _node_argv("sockjet", "--adapter", "streams", "--recovery", "--cluster"),
            True,
        ),
        ClusterSpec(
            "node-streams-csr-rc",
            _node_argv("node", "--adapter", "streams", "--recovery", "--cluster"),
            True,
        ),
    )
}
STREAMS = ("sockjet-streams", "node-streams", "sockjet-streams-csr", "node-streams-csr")
"""``--servers streams``: the streams adapters side by side."""
ADAPTERS = ("sockjet", "node", "sockjet-sharded", "node-sharded", *STREAMS)
"""``--servers adapters``: every Redis adapter of both, the choice docs/deployment.md explains."""
REDIS_CLUSTER = (
    "sockjet-sharded-rc",
    "node-sharded-rc",
    "sockjet-streams-csr-rc",
    "node-streams-csr-rc",
)
"""``--servers redis-cluster``: on a Redis Cluster."""

# python-socketio under aiohttp spends less CPU per delivery than under uvicorn here (its best
# figure on the main metric); psio-uvicorn is there to check that on other machines.
DEFAULT_SERVERS = ("sockjet", "psio-aiohttp", "node")


class RedisServer:
    """A private ``redis-server`` on a free port: no persistence, pinned to ``core`` if any."""

    def __init__(self, core: int | None = None, extra: Sequence[str] = ()) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.port = free_port()
        self._dir = tempfile.mkdtemp(prefix="sockjet-bench-redis-")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"]
        argv += ["--dir", self._dir, *extra]
        if core is not None:
            argv = ["taskset", "-c", str(core), *argv]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT
        )
        self.probe: Probe | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def ports(self) -> list[int]:
        return [self.port]

    def wait_ready(self, timeout: float = 10.0) -> Probe:
        """Block until Redis answers PING; returns its CPU probe."""
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=1.0)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"redis-server exited: {err[-2000:]}")
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"redis-server not ready in {timeout}s") from None
                    time.sleep(0.02)  # nothing to wait on: it says nothing when ready
        finally:
            client.close()
        self.probe = Probe(self.proc.pid)
        return self.probe

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        shutil.rmtree(self._dir, ignore_errors=True)


class BenchRedisCluster:
    """A private three-master Redis Cluster (no replicas), with the :class:`RedisServer`
    interface; its probe sums the CPU of the three."""

    def __init__(self, core: int | None = None, masters: int = 3) -> None:
        self.nodes = [RedisServer(core, self._cluster_options()) for _ in range(masters)]

    @staticmethod
    def _cluster_options() -> tuple[str, ...]:
        # --cluster-port: the node-to-node port (port + 10000 would not fit above 55535)
        options = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
        return (*options, "--cluster-port", str(free_port()))

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def wait_ready(self, timeout: float = 20.0) -> Probe:
        import redis

        probes = [node.wait_ready() for node in self.nodes]
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, capture_output=True, timeout=timeout,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        for port in self.ports:
            client = redis.Redis(port=port)
            try:
                while client.cluster("info").get("cluster_state") != "ok":
                    if time.monotonic() > deadline:
                        raise TimeoutError("the Redis Cluster did not come up")
                    time.sleep(0.05)
            finally:
                client.close()
        return probes[0]  # CPU is read from every node's INFO

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m bench cluster``."""
    parser.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help=(
            f"comma-separated, of {', '.join(CLUSTERS)}; or 'streams' (the streams adapters), "
            "'adapters' (every Redis adapter) (default: %(default)s)"
        ),
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default %(default)s)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: one round, 20 clients, ~1 s each"
    )
    parser.add_argument("--clients", type=int, default=1000, help="total, half per node")
    # More in flight than the one-node fan-out's 4: the Redis hop lengthens the round trip,
    # and a window that small would measure latency, not capacity.
    parser.add_argument("--window", type=int, default=16, help="broadcasts in flight")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument(
        "--timeout", type=float, default=90.0, help="give up one measurement after this (s)"
    )
    parser.add_argument("--output", type=Path, default=None, help="directory for the JSON results")
    parser.add_argument("--no-save", action="store_true", help="print only, write no JSON")


def _event() -> bytes:
    return client_frame(f'42["bcast",{{"t":{time.perf_counter_ns()},"p":"{PAD}"}}]'.encode())


def _sampler(latencies: list[float]) -> Callable[[WSClient, bytes], None]:
    def on_message(client: WSClient, payload: bytes) -> None:
        at = payload.find(b'"t":')
        if at >= 0:
            end = payload.find(b",", at)
            latencies.append((time.perf_counter_ns() - int(payload[at + 4 : end])) / 1e6)

    return on_message


async def _until_connected(driver: WSClient, sink: Sink, receivers: int) -> None:
    """Broadcast until one reaches every receiver: the nodes' Redis subscriptions may still be
    on their way when the clients are connected (python-socketio subscribes lazily)."""
    for _ in range(50):
        target = sink.count + receivers
        driver.send_raw(_event())
        if await sink.reach(target, 0.2):
            return
    raise TimeoutError("broadcasts never reached the other node")


def _ports(redis_port: int | Sequence[int] | None) -> list[int]:
    if redis_port is None:
        return []
    return [redis_port] if isinstance(redis_port, int) else list(redis_port)


async def _redis_cpu(redis_port: int | Sequence[int] | None, probe: Probe | None) -> float:
    """Redis's CPU seconds so far (every node of a cluster): its own getrusage (INFO cpu,
    microseconds), else the process's /proc ticks (10 ms: too coarse for a few hundred
    broadcasts a second)."""
    ports = _ports(redis_port)
    if not ports:
        return 0.0 if probe is None else probe.cpu()
    import redis.asyncio as aioredis

    total = 0.0
    for port in ports:
        client = aioredis.Redis(port=port)
        try:
            info = await client.info("cpu")
            total += float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
        finally:
            await client.aclose()
    return total


async def _stream_bytes_per_entry(redis_port: int | Sequence[int] | None) -> float:
    """Redis memory per entry of the streams adapter's stream (NaN: no stream)."""
    import redis.asyncio as aioredis
    from redis.exceptions import ResponseError

    for port in _ports(redis_port):
        client = aioredis.Redis(port=port)
        try:
            length = await client.xlen("socket.io")
            if not length:
                continue
            used = await client.memory_usage("socket.io", samples=0)
            return float(used or 0) / length
        except ResponseError:  # MOVED: another master of a cluster holds it
            continue
        finally:
            await client.aclose()
    return float("nan")


async def measure(
    ports: Sequence[int],
    probes: Sequence[Probe],
    redis: Probe,
    args: argparse.Namespace,
    redis_port: int | Sequence[int] | None = None,
) -> dict[str, float]:
    """Drive one fresh cluster; see the module docstring."""
    clients_n = 20 if args.quick else args.clients
    duration = 0.5 if args.quick else args.duration
    warmup = 0.2 if args.quick else 1.0
    half = clients_n // 2
    # The old generator's mode (zero masking keys, bursts in one write): the cross-node path is
    # the server-to-server one, which the client's writes do not change.
    on_a = await connect_many(ports[0], clients_n - half, writes=BATCHED)
    on_b: list[WSClient] = []
    latencies: list[float] = []
    try:
        on_b = await connect_many(ports[1], half, writes=BATCHED)
        sink = Sink()
        for client in on_a:
            client.sink = sink
        sampled = min(SAMPLED, max(half - 1, 0))
        for index, client in enumerate(on_b):
            if index < sampled:
                client.on_message = _sampler(latencies)
            else:
                client.sink = sink
        counted = clients_n - sampled
        driver = on_a[0]
        await _until_connected(driver, sink, counted)
        sent = 0
        base = sink.count

        async def run_for(seconds: float) -> None:
            nonlocal sent
            deadline = time.monotonic() + seconds
            window = args.window * counted
            while time.monotonic() < deadline:
                burst = []
                while sent * counted - (sink.count - base) < window:
                    burst.append(_event())
                    sent += 1
                driver.send_raw(b"".join(burst))
                if not await sink.reach(base + sent * counted - window + counted, 10.0):
                    raise TimeoutError("deliveries stalled")

        await run_for(warmup)
        latencies.clear()
        cpu = [probe.cpu() for probe in probes]
        redis0 = await _redis_cpu(redis_port, redis)
        count0, gen0, t0 = sink.count, generator_cpu(), time.perf_counter()
        await run_for(duration)
        count1, gen1, t1 = sink.count, generator_cpu(), time.perf_counter()
        redis1 = await _redis_cpu(redis_port, redis)
        server_cpu = sum(probe.cpu() for probe in probes) - sum(cpu)
        stream_bytes = await _stream_bytes_per_entry(redis_port)
    finally:
        close_all(on_a)
        close_all(on_b)
    elapsed = t1 - t0
    deliveries = (count1 - count0) * clients_n / counted  # sampled clients included
    return {
        "deliveries_per_s": deliveries / elapsed,
        "server_us_per_delivery": server_cpu / deliveries * 1e6,
        "redis_us_per_broadcast": (redis1 - redis0) / (deliveries / clients_n) * 1e6,
        "server_cpu": server_cpu / elapsed,
        "generator_cpu": (gen1 - gen0) / elapsed,
        "remote_p50_ms": percentile(latencies, 0.5),
        "remote_p99_ms": percentile(latencies, 0.99),
        "stream_bytes_per_entry": stream_bytes,
    }


def _pin_self(core: int) -> None:
    with contextlib.suppress(AttributeError, OSError):
        if len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(0, {core})


def _can_pin() -> bool:
    try:
        return len(os.sched_getaffinity(0)) > 1 and shutil.which("taskset") is not None
    except AttributeError:  # not on Linux
        return False


def _run_one(spec: ClusterSpec, args: argparse.Namespace) -> dict[str, float]:
    import uvloop

    pin = not args.no_pin and _can_pin()
    core = GENERATOR_CORE if pin else None
    redis: RedisServer | BenchRedisCluster = (
        BenchRedisCluster(core) if spec.redis_cluster else RedisServer(core)
    )
    nodes: list[RunningServer] = []
    try:
        redis_probe = redis.wait_ready()
        nodes = [RunningServer(spec.node(redis.url), pin=pin) for _ in range(2)]
        probes = [node.wait_ready() for node in nodes]

        async def bounded() -> dict[str, float]:
            ports = [node.port for node in nodes]
            return await asyncio.wait_for(
                measure(ports, probes, redis_probe, args, redis.ports), args.timeout
            )

        return uvloop.run(bounded())
    finally:
        for node in nodes:
            node.stop()
        redis.stop()


def run(
    names: Sequence[str], args: argparse.Namespace, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Measure every implementation in ``names``, rotating their order each round."""
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
                result = _run_one(CLUSTERS[name], args)
            except Exception as exc:  # one peer failing must not lose the others' numbers
                errors.setdefault(name, []).append(repr(exc))
                say(f"  [cluster] round {round_index + 1} {name}: FAILED {exc!r}")
                continue
            raw[name].append(result)
            shown = ", ".join(f"{m.key}={m.fmt.format(result[m.key])}" for m in METRICS)
            say(f"  [cluster] round {round_index + 1} {name}: {shown}")
    medians = {
        name: {m.key: statistics.median(r[m.key] for r in results) for m in METRICS}
        for name, results in raw.items()
        if results
    }
    return {
        "scenario": "cluster",
        "machine": machine_info(),
        "versions": {
            **package_versions("sockjet", "python-socketio", "redis", "aiohttp"),
            "redis-server": _redis_version(),
        },
        "settings": {
            "clients": 20 if args.quick else args.clients,
            "window": args.window,
            "duration_s": 0.5 if args.quick else args.duration,
            "rounds": rounds,
            "quick": args.quick,
            "pinned": not args.no_pin and _can_pin(),
        },
        "metrics": [m.key for m in METRICS],
        "raw": raw,
        "medians": medians,
        "errors": errors,
    }


def _redis_version() -> str | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or None


def main(args: argparse.Namespace) -> int:
    """Run the scenario, print the medians with ratios to sockjet, save the raw results."""
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    if names == ["streams"]:
        names = list(STREAMS)
    elif names == ["adapters"]:
        names = list(ADAPTERS)
    elif names == ["redis-cluster"]:
        names = list(REDIS_CLUSTER)
    unknown = [n for n in names if n not in CLUSTERS]
    if unknown or not names:
        print(f"unknown servers: {', '.join(unknown)} (known: {', '.join(CLUSTERS)})")
        return 2
    if shutil.which("redis-server") is None:
        print("the cluster benchmark needs redis-server", file=sys.stderr)
        return 2
    data = run(names, args)
    clients = data["settings"]["clients"]
    print(
        f"\n## Cross-node fan-out: {clients:,} WebSocket clients on two nodes sharing one Redis "
        f"(medians of {data['settings']['rounds']} round(s))\n"
    )
    print(render_table(METRICS, data["medians"]))
    print(
        "\nBoth nodes share the server core; Redis and the generator the other one. "
        "server CPU = both nodes."
    )
    if not args.no_save:
        path = write_results("cluster", data, args.output)
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"raw results: {shown}")
    return 1 if data["errors"] and not data["medians"] else 0
