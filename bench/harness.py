"""What every load scenario shares: the servers, starting them pinned, probing their CPU and
memory, rounds with the servers interleaved, medians, ratios and the raw results.

A scenario module supplies ``METRICS`` (key, label, "higher"/"lower" is better, format) and an
``async def measure(port, probe, args) -> dict[str, float]`` that drives one fresh server; the
harness does the rest through :func:`run_scenario`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench import ROOT, machine_info, markdown_table, package_versions, write_results

__all__ = [
    "SERVERS",
    "Metric",
    "Probe",
    "ServerSpec",
    "add_common_arguments",
    "run_scenario",
]

# --quick (smoke runs, the test suite): measured and warm-up seconds of every scenario
QUICK_DURATION = 0.3
QUICK_WARMUP = 0.1
SERVER_CORE = 0
GENERATOR_CORE = 1


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """How to start one server of the comparison (``{port}`` is substituted)."""

    name: str
    argv: tuple[str, ...]
    polling: bool = True  # serves HTTP long-polling
    default: bool = True  # compared when no --servers is given


_PY = sys.executable
_SERVERS_DIR = ROOT / "bench" / "servers"
SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec("sockjet", (_PY, str(_SERVERS_DIR / "sockjet_server.py"), "--port", "{port}")),
        ServerSpec(
            "sockjet-asgi",
            (_PY, str(_SERVERS_DIR / "sockjet_server.py"), "--port", "{port}", "--mode", "asgi"),
        ),
        ServerSpec("node", ("node", str(_SERVERS_DIR / "node_socketio.js"), "--port", "{port}")),
        ServerSpec(
            "psio-uvicorn",
            (_PY, str(_SERVERS_DIR / "psio_server.py"), "--port", "{port}", "--mode", "uvicorn"),
        ),
        ServerSpec(
            "psio-aiohttp",
            (_PY, str(_SERVERS_DIR / "psio_server.py"), "--port", "{port}", "--mode", "aiohttp"),
        ),
        ServerSpec(
            "floor-ws",
            ("node", str(_SERVERS_DIR / "node_ws_floor.js"), "--port", "{port}"),
            polling=False,
        ),
        # Connection state recovery on (every broadcast recorded): its cost, on demand only.
        ServerSpec(
            "sockjet-recovery",
            (_PY, str(_SERVERS_DIR / "sockjet_server.py"), "--port", "{port}", "--recovery"),
            default=False,
        ),
        # Instrumented for the Admin UI (no admin connected): the cost of its hooks.
        ServerSpec(
            "sockjet-admin",
            (
                _PY,
                str(_SERVERS_DIR / "sockjet_server.py"),
                "--port",
                "{port}",
                "--admin",
                "production",
            ),
            default=False,
        ),
        ServerSpec(
            "sockjet-admin-dev",
            (
                _PY,
                str(_SERVERS_DIR / "sockjet_server.py"),
                "--port",
                "{port}",
                "--admin",
                "development",
            ),
            default=False,
        ),
        ServerSpec(
            "node-recovery",
            ("node", str(_SERVERS_DIR / "node_socketio.js"), "--port", "{port}", "--recovery"),
            default=False,
        ),
    )
}
REFERENCE = "sockjet"


@dataclass(frozen=True, slots=True)
class Metric:
    """One reported figure of a scenario."""

    key: str
    label: str
    better: str  # "higher" or "lower"
    fmt: str = "{:,.0f}"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Probe:
    """CPU time and memory of a server process (from /proc, via psutil)."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)

    def cpu(self) -> float:
        """User + system CPU seconds so far."""
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def rss(self) -> int:
        """Resident memory, bytes."""
        return int(self.process.memory_info().rss)


def generator_cpu() -> float:
    """This (generator) process's user + system CPU seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raise_nofile() -> int:
    """Lift RLIMIT_NOFILE to its hard limit (to 200k when we are allowed to raise that);
    returns the limit now in force."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (200_000, 200_000))
        return 200_000
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return int(hard)


def keep_heap() -> None:
    """Stop glibc from trimming this process's heap (Linux only; a no-op elsewhere).

    By default glibc hands freed memory at the top of the heap back to the kernel once more than
    128 KiB is free there, and allocating it again faults every page back in: with a few 64 KiB
    buffers alive at a time that is ~30 us per allocation instead of ~2 us on this VM. The
    generator is not what is measured, so it keeps its heap (``MALLOC_TRIM_THRESHOLD_`` in the
    environment does the same for the servers; docs/performance.md shows its effect)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20)


_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter number


def _pin(core: int) -> None:
    with contextlib.suppress(AttributeError, OSError):
        if len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(0, {core})


class RunningServer:
    """A server subprocess pinned to the server core, started fresh for one measurement."""

    def __init__(self, spec: ServerSpec, pin: bool) -> None:
        self.spec = spec
        self.port = free_port()
        argv = [part.format(port=self.port) for part in spec.argv]
        if pin and len(os.sched_getaffinity(0) | {SERVER_CORE}) > 1:
            argv = ["taskset", "-c", str(SERVER_CORE), *argv]
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            preexec_fn=raise_nofile,
        )
        self.probe: Probe | None = None

    def wait_ready(self, timeout: float = 30.0) -> Probe:
        """Block until the server prints READY; returns its probe."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        os.set_blocking(self.proc.stdout.fileno(), True)
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"{self.spec.name} exited before READY: {err[-2000:]}")
            if line.startswith(b"READY"):
                self.probe = Probe(self.proc.pid)
                return self.probe
        raise TimeoutError(f"{self.spec.name} not ready in {timeout}s")

    def stop(self) -> None:
        """SIGKILL: the measurement is over and nothing on the way out is measured (a graceful
        stop waits up to seconds for polling clients that the generator already dropped)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def add_common_arguments(parser: argparse.ArgumentParser, rounds: int = 5) -> None:
    """Options every load scenario has."""
    parser.add_argument(
        "--servers",
        default=",".join(name for name, spec in SERVERS.items() if spec.default),
        help="comma-separated servers to compare (default: %(default)s)",
    )
    parser.add_argument("--rounds", type=int, default=rounds, help="rounds (default %(default)s)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: one round, tiny counts, well under 1 s per server",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin server/generator cores")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="give up one measurement after this (s)"
    )


Measure = Callable[[int, Probe, argparse.Namespace], Awaitable[dict[str, float]]]


def _run_one(spec: ServerSpec, measure: Measure, args: argparse.Namespace) -> dict[str, float]:
    import uvloop

    server = RunningServer(spec, pin=not args.no_pin)
    try:
        probe = server.wait_ready()

        async def bounded() -> dict[str, float]:
            return await asyncio.wait_for(measure(server.port, probe, args), args.timeout)

        result = uvloop.run(bounded())
    finally:
        server.stop()
    # Not a metric: the machine is shared, so every raw result says how busy it was.
    result["load_1min"] = os.getloadavg()[0]
    return result


def run_scenario(
    name: str,
    title: str,
    metrics: Sequence[Metric],
    measure: Measure,
    args: argparse.Namespace,
    servers_filter: Callable[[ServerSpec], bool] | None = None,
    settings: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Run ``measure`` against every chosen server, ``args.rounds`` rounds with the server
    order rotated each round; print the medians and ratios; save the raw results."""
    raise_nofile()
    keep_heap()
    if not args.no_pin:
        _pin(GENERATOR_CORE)
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        print(f"unknown servers: {', '.join(unknown)} (known: {', '.join(SERVERS)})")
        return 2, {}
    specs = [SERVERS[n] for n in names if servers_filter is None or servers_filter(SERVERS[n])]
    rounds = 1 if args.quick else args.rounds
    raw: dict[str, list[dict[str, float]]] = {spec.name: [] for spec in specs}
    errors: dict[str, list[str]] = {}
    for round_index in range(rounds):
        shift = round_index % max(len(specs), 1)
        for spec in specs[shift:] + specs[:shift]:
            try:
                result = _run_one(spec, measure, args)
            except Exception as exc:  # one peer failing must not lose the others' numbers
                errors.setdefault(spec.name, []).append(repr(exc))
                print(f"  [{name}] round {round_index + 1} {spec.name}: FAILED {exc!r}")
                continue
            raw[spec.name].append(result)
            shown = ", ".join(
                f"{m.key}={m.fmt.format(result[m.key])}" for m in metrics if m.key in result
            )
            print(f"  [{name}] round {round_index + 1} {spec.name}: {shown}", flush=True)
    medians = {
        server: {
            m.key: statistics.median(r[m.key] for r in results if m.key in r)
            for m in metrics
            if any(m.key in r for r in results)
        }
        for server, results in raw.items()
        if results
    }
    print()
    print(f"## {title}  (medians of {rounds} round(s))")
    print()
    print(render_table(metrics, medians))
    print()
    data = {
        "scenario": name,
        "title": title,
        "machine": machine_info(),
        "versions": package_versions("sockjet", "python-socketio", "uvicorn", "aiohttp"),
        "settings": {**(settings or {}), "rounds": rounds, "quick": args.quick},
        "metrics": [m.key for m in metrics],
        "raw": raw,
        "medians": medians,
        "errors": errors,
    }
    if not args.no_save:
        path = write_results(name, data)
        print(f"raw results: {path.relative_to(ROOT)}")
    status = 1 if errors and not any(raw.values()) else 0
    return status, data


def render_table(metrics: Sequence[Metric], medians: dict[str, dict[str, float]]) -> str:
    """Servers as rows, metrics as columns; each figure followed by its ratio to sockjet's
    (``sockjet is N x better``: >1 means sockjet wins)."""
    headers = ["server", *(m.label for m in metrics)]
    ref = medians.get(REFERENCE, {})
    rows = []
    for server, values in medians.items():
        row = [server]
        for m in metrics:
            value = values.get(m.key)
            if value is None:
                row.append("-")
                continue
            cell = m.fmt.format(value)
            base = ref.get(m.key)
            if server != REFERENCE and base and value:
                ratio = base / value if m.better == "higher" else value / base
                cell += f" ({ratio:.2f}x)"
            row.append(cell)
        rows.append(row)
    note = "(N x) after a peer's figure: how many times better sockjet's is (>1: sockjet wins)."
    return markdown_table(headers, rows, ["l"] + ["r"] * len(metrics)) + "\n" + note
