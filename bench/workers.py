"""All the cores of one host: ``sockjet serve --workers N`` beside Node's cluster module with
``@socket.io/cluster-adapter`` (and ``@socket.io/sticky`` for polling), on 1, 2... workers.

For every implementation, number of workers and placement, a fresh server runs three loads
against its one port:

* ``fanout``: ``--clients`` WebSocket clients (1,000), spread over the workers by the kernel
  (Node: by its primary, round robin); one drives ``bcast`` events, keeping ``--window``
  broadcasts in flight; every worker delivers to its own clients what the driver's worker
  published (through the local bus; Node: relayed by the primary over IPC);
* ``bus``: the fan-out with ``--bus-clients`` clients (20) and ``--bus-window`` broadcasts in
  flight (64): deliveries are few, so the CPU per broadcast is mostly what a broadcast costs
  beyond its deliveries, and its growth from 1 to 2 workers is what one more worker costs
  (sending it the broadcast, its reading and decoding it);
* ``echo``: 50 WebSocket clients x 16 acks in flight (no traffic between workers);
* ``polling``: ``--pollers`` polling clients doing echo round trips (a POST with an ack id, then
  the GET that brings the ack back) with a **new TCP connection for every request**, as a
  client without keep-alive does: each request lands on any worker, and those that land on the
  wrong one are handed over (sockjet) or routed by the primary (Node, sticky).

Placements: ``one-core`` pins every server process (supervisor or primary included) to the
server core, the generator to the other: CPU per unit (deliveries, acks, requests) is then
measured cleanly, and what N workers add to the work is visible. ``spread`` lets the server
processes use both cores (the generator keeps core 1): what this 2-core machine can show of
the scaling itself.

Derived from the one-core figures (formulas in the printed report and in docs/deployment.md):
the handoff cost per polling request handed over, the bus cost per broadcast and per worker,
and a projection of each load to 16 cores. Short runs: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import ROOT, machine_info, markdown_table, package_versions, write_results
from bench.harness import (
    GENERATOR_CORE,
    SERVER_CORE,
    _pin,
    free_port,
    generator_cpu,
    keep_heap,
    raise_nofile,
)
from bench.loadgen.wsclient import PER_MESSAGE

__all__ = ["IMPLEMENTATIONS", "add_arguments", "main", "project"]

SOCKJET = Path(sys.executable).with_name("sockjet")
_SERVERS = ROOT / "bench" / "servers"
PLACEMENTS = ("one-core", "spread")
LOADS = ("fanout", "bus", "echo", "polling")
HANDOFFS = re.compile(rb"total sent=(\d+) adopted=(\d+) failed=(\d+)")
PROJECT_TO = 16


@dataclass(frozen=True, slots=True)
class Implementation:
    name: str
    argv: Callable[[int, int, bool], list[str]]
    """(port, workers, polling) -> the command line."""
    ready: bytes
    """What it prints once every worker serves."""
    env: tuple[tuple[str, str], ...] = ()


def _sockjet(port: int, workers: int, polling: bool) -> list[str]:
    target = "bench.servers.sockjet_workers:io"
    argv = [str(SOCKJET), "serve", target, "--port", str(port), "--workers", str(workers)]
    return [*argv, "--log-level", "warning"]


def _node(port: int, workers: int, polling: bool) -> list[str]:
    if workers == 1:  # one process, as one sockjet worker is
        return ["node", str(_SERVERS / "node_socketio.js"), "--port", str(port)]
    argv = ["node", str(_SERVERS / "node_workers.js"), "--port", str(port)]
    return [*argv, "--workers", str(workers), *(["--sticky"] if polling else [])]


IMPLEMENTATIONS = {
    "sockjet": Implementation("sockjet", _sockjet, b"sockjet: serving"),
    "node": Implementation("node", _node, b"READY"),
    # each worker with its own SO_REUSEPORT socket instead of one shared socket (docs:
    # "Listening"): to compare how evenly the kernel spreads connections
    "sockjet-reuseport": Implementation(
        "sockjet-reuseport", _sockjet, b"sockjet: serving", (("SOCKJET_REUSE_PORT", "1"),)
    ),
}


class TreeProbe:
    """CPU of a server's whole process tree (supervisor or primary, and its workers)."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.root = psutil.Process(pid)

    def _processes(self) -> list[Any]:
        return [self.root, *self.root.children(recursive=True)]

    def per_process(self) -> dict[int, float]:
        """pid -> user + system CPU seconds so far."""
        import psutil

        cpu = {}
        for process in self._processes():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                cpu[process.pid] = float(times.user + times.system)
        return cpu

    def cpu(self) -> float:
        return sum(self.per_process().values())

    def syscalls(self) -> tuple[int, int]:
        return (0, 0)

    def system_cpu(self) -> float:
        import psutil

        total = 0.0
        for process in self._processes():
            with contextlib.suppress(psutil.Error):
                total += float(process.cpu_times().system)
        return total


class Running:
    """One server (all its workers), started fresh for one measurement."""

    def __init__(self, impl: Implementation, workers: int, polling: bool, placement: str) -> None:
        self.port = free_port()
        argv = impl.argv(self.port, workers, polling)
        if placement == "one-core":
            argv = ["taskset", "-c", str(SERVER_CORE), *argv]
        self.workers = workers
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **dict(impl.env)},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            preexec_fn=raise_nofile,
        )
        self.impl = impl
        self._out = b""

    def wait_ready(self, timeout: float = 60.0) -> TreeProbe:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.impl.name} exited before serving")
            if self.impl.ready in line:
                os.set_blocking(self.proc.stdout.fileno(), False)
                return TreeProbe(self.proc.pid)
        raise TimeoutError(f"{self.impl.name} did not serve within {timeout}s")

    def handoffs(self) -> int | None:
        """Connections handed over so far (sockjet: asked with SIGUSR1), None for Node."""
        if not self.impl.name.startswith("sockjet") or self.workers == 1:
            return None
        assert self.proc.stdout is not None
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(BlockingIOError, TypeError):
                chunk = self.proc.stdout.read()
                if chunk:
                    self._out += chunk
            found = list(HANDOFFS.finditer(self._out))
            if found:
                self._out = self._out[found[-1].end() :]
                return int(found[-1][1])
            time.sleep(0.02)  # a subprocess's pipe: nothing to await in this sync harness
        raise TimeoutError("no handoff counts")

    def stop(self) -> None:
        """SIGKILL the whole tree (nothing on the way out is measured)."""
        import psutil

        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child.kill()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# -- the polling load: a new connection for every request ------------------------------------------


class _Hop(asyncio.Protocol):
    """One HTTP request on its own connection; resolves with the response body."""

    def __init__(self, request: bytes, done: asyncio.Future[bytes]) -> None:
        self.request = request
        self.done = done
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        at = head.find(b"content-length:")
        if at < 0:
            return
        stop = head.find(b"\r\n", at)
        length = int(head[at + 15 : stop if stop > 0 else None])
        if len(self.buffer) >= end + 4 + length and not self.done.done():
            self.done.set_result(self.buffer[end + 4 : end + 4 + length])
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("closed before the response"))


async def _request(port: int, source: str, head: str, body: bytes = b"") -> bytes:
    from bench.loadgen.tcp import open_tcp

    length = f"Content-Length: {len(body)}\r\n" if body else ""
    request = f"{head} HTTP/1.1\r\nHost: 127.0.0.1\r\n{length}\r\n".encode() + body
    done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    transport, _ = await open_tcp(lambda: _Hop(request, done), port, source, 10.0)
    try:
        return await asyncio.wait_for(done, 10.0)
    finally:
        transport.abort()


async def _poller(port: int, source: str, counter: list[int], running: list[bool]) -> None:
    import json

    base = "/socket.io/?EIO=4&transport=polling"
    body = await _request(port, source, f"GET {base}")
    sid = json.loads(body[1:].split(b"\x1e")[0])["sid"]
    path = f"{base}&sid={sid}"
    assert await _request(port, source, f"POST {path}", b"40") == b"ok"
    await _request(port, source, f"GET {path}")  # the CONNECT answer
    ack = 0
    while running[0]:
        ack += 1
        event = b'42%d["echo",%d]' % (ack, ack)
        assert await _request(port, source, f"POST {path}", event) == b"ok"
        while True:
            answer = await _request(port, source, f"GET {path}")
            packets = answer.split(b"\x1e")
            if b"2" in packets:  # a ping: answer it
                await _request(port, source, f"POST {path}", b"3")
            if any(p.startswith(b"43%d[" % ack) for p in packets):
                break
        counter[0] += 2  # two requests


async def _measure_polling(
    port: int, probe: TreeProbe, run: Running, args: argparse.Namespace
) -> dict[str, float]:
    from bench.loadgen.wsclient import SourceAddresses

    sources = SourceAddresses()
    counter = [0]
    running = [True]
    tasks = [
        asyncio.ensure_future(_poller(port, sources.next(), counter, running))
        for _ in range(args.pollers)
    ]
    try:
        await asyncio.sleep(0.5 if args.quick else 1.0)
        handed0 = run.handoffs()
        n0, cpu0, gen0, t0 = counter[0], probe.cpu(), generator_cpu(), time.perf_counter()
        await asyncio.sleep(0.3 if args.quick else args.duration)
        n1, cpu1, gen1, t1 = counter[0], probe.cpu(), generator_cpu(), time.perf_counter()
        handed1 = run.handoffs()
    finally:
        running[0] = False
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    requests = n1 - n0
    if not requests:
        raise RuntimeError("no polling round trip completed")
    result = {
        "rate": requests / (t1 - t0),
        "server_us_per_unit": (cpu1 - cpu0) / requests * 1e6,
        "server_cpu": (cpu1 - cpu0) / (t1 - t0),
        "generator_cpu": (gen1 - gen0) / (t1 - t0),
    }
    if handed0 is not None and handed1 is not None:
        result["handoffs_per_request"] = (handed1 - handed0) / requests
    return result


# -- one measurement ----------------------------------------------------------------------------------


def _namespace(args: argparse.Namespace, **values: Any) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), **values})


async def _measure(
    load: str, run: Running, probe: TreeProbe, args: argparse.Namespace
) -> dict[str, float]:
    from bench import echo, fanout

    port = run.port
    if load == "polling":
        return await _measure_polling(port, probe, run, args)
    before = probe.per_process()
    if load in ("fanout", "bus"):
        ns = _namespace(args, rooms=0, polling=False, client_writes=PER_MESSAGE)
        if load == "bus":
            ns = _namespace(ns, clients=args.bus_clients, window=args.bus_window)
        raw = await fanout.measure(port, probe, ns)  # type: ignore[arg-type]
        per = ns.clients if load == "bus" else 1  # bus: per broadcast
        result = {
            "rate": raw["deliveries_per_s"] / per,
            "server_us_per_unit": raw["server_us_per_delivery"] * per,
            "server_cpu": raw["server_cpu"],
            "generator_cpu": raw["generator_cpu"],
            "latency_p50_ms": raw["latency_p50_ms"],
        }
    else:
        ns = _namespace(args, clients=args.echo_clients, client_writes=PER_MESSAGE)
        raw = await echo.measure(port, probe, ns)  # type: ignore[arg-type]
        result = {
            "rate": raw["acks_per_s"],
            "server_us_per_unit": raw["server_us_per_ack"],
            "server_cpu": raw["server_cpu"],
            "generator_cpu": raw["generator_cpu"],
            "latency_p50_ms": raw["latency_p50_ms"],
        }
    after = probe.per_process()
    used = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    root = probe.root.pid
    workers = {pid: cpu for pid, cpu in used.items() if pid != root} or used
    total = sum(used.values()) or 1.0
    result["root_share"] = used.get(root, 0.0) / total if len(used) > 1 else 0.0
    result["busiest_share"] = max(workers.values()) / (sum(workers.values()) or 1.0)
    return result


def _run_one(
    impl: Implementation, workers: int, placement: str, load: str, args: argparse.Namespace
) -> dict[str, float]:
    import uvloop

    pinned = placement if not getattr(args, "no_pin", False) else "spread"
    run = Running(impl, workers, load == "polling", pinned)
    try:
        probe = run.wait_ready()
        return uvloop.run(asyncio.wait_for(_measure(load, run, probe, args), args.timeout))
    finally:
        run.stop()


# -- the projection -------------------------------------------------------------------------------------


def project(
    medians: dict[str, dict[str, float]], clients: int, cores: int = PROJECT_TO
) -> dict[str, Any]:
    """Per-worker costs from the one-core runs, and what they make of ``cores`` cores.

    ``medians`` maps ``"<impl> <load> N=<n> <placement>"`` to figures. With d the CPU per
    delivery of one worker, C the clients, beta the extra CPU per broadcast that each further
    worker costs (its bus traffic, decoding, the sender's writes: measured as the CPU per
    broadcast at N=2 minus at N=1), a broadcast costs C*d + (N-1)*beta spread over N cores:
    fan-out efficiency E(N) = C*d / (C*d + (N-1)*beta). Echo has no traffic between workers:
    E = e1 / e2 (CPU per ack at 1 and 2 workers). Polling with a new connection per request:
    a request costs r1 + h*(N-1)/N, h the handoff cost (the extra CPU per request at N=2 over
    the share of requests handed over), E(N) = r1 / (r1 + h*(N-1)/N). Projected rate = N x the
    one-worker rate x E(N); the target is E >= 0.8.
    """
    out: dict[str, Any] = {"cores": cores, "loads": {}}
    for impl in IMPLEMENTATIONS:
        if any(key.startswith(f"{impl} ") for key in medians):
            out["loads"][impl] = _project_one(impl, medians, clients, cores)
    return out


def _base(impl: str) -> str:
    """Whose one-worker runs ``impl`` is compared with (one worker has nothing to share)."""
    return "sockjet" if impl.startswith("sockjet") else impl


def _figure(
    medians: dict[str, dict[str, float]], impl: str, load: str, n: int, key: str
) -> float | None:
    name = _base(impl) if n == 1 else impl
    return medians.get(f"{name} {load} N={n} one-core", {}).get(key)


def _project_one(
    impl: str, medians: dict[str, dict[str, float]], clients: int, cores: int
) -> dict[str, Any]:
    def get(load: str, n: int, key: str) -> float | None:
        return _figure(medians, impl, load, n, key)

    loads: dict[str, Any] = {}
    d1 = get("fanout", 1, "server_us_per_unit")
    rate1 = get("fanout", 1, "rate")
    b1, b2 = get("bus", 1, "server_us_per_unit"), get("bus", 2, "server_us_per_unit")
    if d1 and rate1 and b1 and b2:
        per_broadcast_1 = d1 * clients
        beta = max(b2 - b1, 0.0)  # what one more worker adds to a broadcast
        efficiency = per_broadcast_1 / (per_broadcast_1 + (cores - 1) * beta)
        fanout: dict[str, float] = {
            "us_per_delivery_1": d1,
            "us_per_broadcast_1": per_broadcast_1,
            "bus_us_per_broadcast_per_worker": beta,
            "efficiency": efficiency,
            "projected_rate": cores * rate1 * efficiency,
        }
        share = get("bus", 2, "root_share")
        if impl == "node" and share:
            # the primary relays every broadcast to every other worker: it caps the rate
            primary_us = share * b2  # at N=2, one copy relayed per broadcast
            cap = 1e6 / (primary_us * (cores - 1)) * clients
            fanout["primary_us_per_relayed_copy"] = primary_us
            fanout["primary_capped_rate"] = cap
            fanout["projected_rate"] = min(fanout["projected_rate"], cap)
        loads["fanout"] = fanout
    e1, e2 = get("echo", 1, "server_us_per_unit"), get("echo", 2, "server_us_per_unit")
    acks1 = get("echo", 1, "rate")
    if e1 and e2 and acks1:
        efficiency = min(e1 / e2, 1.0)
        loads["echo"] = {
            "us_per_ack_1": e1,
            "us_per_ack_2": e2,
            "efficiency": efficiency,
            "projected_rate": cores * acks1 * efficiency,
        }
    r1, r2 = get("polling", 1, "server_us_per_unit"), get("polling", 2, "server_us_per_unit")
    req1 = get("polling", 1, "rate")
    handed = get("polling", 2, "handoffs_per_request")
    if r1 and r2 and req1:
        fraction = handed if handed else 0.5  # Node's primary routes every request
        h = max(r2 - r1, 0.0) / fraction
        efficiency = r1 / (r1 + h * (cores - 1) / cores)
        loads["polling"] = {
            "us_per_request_1": r1,
            "us_per_request_2": r2,
            "handed_over_share_2": fraction,
            "handoff_us": h,
            "efficiency": efficiency,
            "projected_rate": cores * req1 * efficiency,
        }
    return loads


# -- the scenario -----------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--servers", default="sockjet,node", help="of: sockjet, node (%(default)s)")
    parser.add_argument(
        "--workers", default="", help="comma-separated counts (default: 1, 2 and the cores)"
    )
    parser.add_argument("--placements", default=",".join(PLACEMENTS), help="%(default)s")
    parser.add_argument("--loads", default=",".join(LOADS), help="%(default)s")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (%(default)s)")
    parser.add_argument("--clients", type=int, default=1000, help="fan-out WebSocket clients")
    parser.add_argument("--window", type=int, default=8, help="fan-out broadcasts in flight")
    parser.add_argument(
        "--bus-clients", type=int, default=20, help="clients of the bus load (10 sample latency)"
    )
    parser.add_argument("--bus-window", type=int, default=64, help="its broadcasts in flight")
    parser.add_argument("--echo-clients", type=int, default=50)
    parser.add_argument("--inflight", type=int, default=16, help="echo acks in flight per client")
    parser.add_argument("--pollers", type=int, default=40, help="polling clients")
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny counts")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    parser.add_argument(
        "--no-pin", action="store_true", help="pin nothing (placements then only differ by name)"
    )


def _counts(text: str) -> list[int]:
    if text:
        return [int(part) for part in text.split(",") if part.strip()]
    cores = len(os.sched_getaffinity(0))
    return sorted({1, 2, cores})


def main(args: argparse.Namespace) -> int:
    raise_nofile()
    keep_heap()
    if not args.no_pin:
        _pin(GENERATOR_CORE)
    impls = [IMPLEMENTATIONS[name.strip()] for name in args.servers.split(",") if name.strip()]
    counts = _counts(args.workers)
    placements = [p.strip() for p in args.placements.split(",") if p.strip()]
    loads = [load.strip() for load in args.loads.split(",") if load.strip()]
    if args.quick:
        args.clients, args.echo_clients, args.pollers, args.duration = 20, 5, 4, 0.3
        args.bus_clients, args.bus_window = 20, 8
    raw: dict[str, list[dict[str, float]]] = {}
    errors: dict[str, list[str]] = {}
    for round_index in range(args.rounds):
        for load in loads:
            for placement in placements:
                for n in counts:
                    if placement == "spread" and n == 1:
                        continue  # one worker uses one core wherever it is
                    for impl in (
                        impls[round_index % len(impls) :] + impls[: round_index % len(impls)]
                    ):
                        if n == 1 and impl.name != _base(impl.name):
                            continue  # the same single process as sockjet's
                        key = f"{impl.name} {load} N={n} {placement}"
                        try:
                            result = _run_one(impl, n, placement, load, args)
                        except Exception as exc:
                            errors.setdefault(key, []).append(repr(exc))
                            print(f"  [workers] {key}: FAILED {exc!r}", flush=True)
                            continue
                        result["load_1min"] = os.getloadavg()[0]
                        raw.setdefault(key, []).append(result)
                        shown = ", ".join(f"{k}={v:,.3g}" for k, v in result.items())
                        print(f"  [workers] round {round_index + 1} {key}: {shown}", flush=True)
    medians = {
        key: {k: statistics.median(r[k] for r in results if k in r) for k in results[0]}
        for key, results in raw.items()
    }
    print(render(medians, loads, placements, counts, impls))
    projection = project(medians, args.clients)
    print(render_projection(projection))
    data = {
        "scenario": "workers",
        "machine": machine_info(),
        "versions": package_versions("sockjet", "uvloop"),
        "settings": {
            k: v for k, v in vars(args).items() if isinstance(v, int | float | str | bool)
        },
        "raw": raw,
        "medians": medians,
        "projection": projection,
        "errors": errors,
    }
    if not args.no_save:
        path = write_results("workers", data)
        print(f"raw results: {path.relative_to(ROOT)}")
    return 1 if errors and not raw else 0


UNITS = {
    "fanout": "deliveries/s",
    "bus": "broadcasts/s",
    "echo": "acks/s",
    "polling": "requests/s",
}
CPU_UNITS = {
    "fanout": "us/delivery",
    "bus": "us/broadcast",
    "echo": "us/ack",
    "polling": "us/request",
}


def render(
    medians: dict[str, dict[str, float]],
    loads: Sequence[str],
    placements: Sequence[str],
    counts: Sequence[int],
    impls: Sequence[Implementation],
) -> str:
    parts = []
    for load in loads:
        headers = [
            "server",
            "workers",
            "placement",
            UNITS[load],
            "x 1 worker",
            "per worker",
            f"CPU {CPU_UNITS[load]}",
            "server CPU",
            "busiest worker",
            "generator CPU",
        ]
        rows = []
        for impl in impls:
            base = _figure(medians, impl.name, load, 1, "rate")
            for placement in placements:
                for n in counts:
                    values = medians.get(f"{impl.name} {load} N={n} {placement}")
                    if not values:
                        continue
                    ratio = values["rate"] / base if base else float("nan")
                    busiest = values.get("busiest_share")
                    rows.append(
                        [
                            impl.name,
                            str(n),
                            placement,
                            f"{values['rate']:,.0f}",
                            f"{ratio:.2f}",
                            f"{ratio / n:.2f}",
                            f"{values['server_us_per_unit']:.2f}",
                            f"{values['server_cpu']:.0%}",
                            "-" if busiest is None or n == 1 else f"{busiest:.0%}",
                            f"{values['generator_cpu']:.0%}",
                        ]
                    )
        parts.append(
            f"\n## workers: {load}\n\n" + markdown_table(headers, rows, ["l"] * 3 + ["r"] * 7)
        )
    return "\n".join(parts)


def render_projection(projection: dict[str, Any]) -> str:
    cores = projection["cores"]
    lines = [f"\n## Per-worker costs (one core) and a projection to {cores} cores\n"]
    rows = []
    for impl, loads in projection["loads"].items():
        for load, figures in loads.items():
            detail = ", ".join(
                f"{k}={v:,.2f}"
                for k, v in figures.items()
                if k not in ("efficiency", "projected_rate")
            )
            rows.append(
                [
                    impl,
                    load,
                    detail,
                    f"{figures['efficiency']:.2f}",
                    f"{figures['projected_rate']:,.0f}",
                ]
            )
    lines.append(
        markdown_table(
            ["server", "load", "measured", f"E({cores})", f"projected at {cores}"],
            rows,
            ["l", "l", "l", "r", "r"],
        )
    )
    lines.append(
        "\nE(N) = fan-out: C*d / (C*d + (N-1)*beta); echo: e1/e2; polling: r1 / (r1 + h*(N-1)/N)."
        " Projected = N x (1 worker's rate) x E(N); the target is E >= 0.8 (0.8 x N)."
    )
    return "\n".join(lines)
