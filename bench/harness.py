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
from bench.loadgen.wsclient import CLIENT_WRITES, PER_MESSAGE

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
    pythonpath: str | None = None  # import sockjet from there (another checkout)


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
            "sockjet-metrics",
            (_PY, str(_SERVERS_DIR / "sockjet_server.py"), "--port", "{port}", "--metrics"),
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

# SOCKJET_BASELINE=/path/to/another/checkout adds "sockjet-baseline": that checkout's sockjet and
# its own bench server, measured beside this one in the same run (a change's before and after:
# `git worktree add /tmp/before <ref>`).
_BASELINE = os.environ.get("SOCKJET_BASELINE")
if _BASELINE:
    SERVERS["sockjet-baseline"] = ServerSpec(
        "sockjet-baseline",
        (_PY, os.path.join(_BASELINE, "bench", "servers", "sockjet_server.py"), "--port", "{port}"),
        default=False,
        pythonpath=os.path.join(_BASELINE, "src"),
    )


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

    def system_cpu(self) -> float:
        """System (kernel) CPU seconds so far: syscalls, and the loopback TCP work done in them."""
        return float(self.process.cpu_times().system)

    def rss(self) -> int:
        """Resident memory, bytes."""
        return int(self.process.memory_info().rss)

    def syscalls(self) -> tuple[int, int]:
        """Read-family and write-family syscalls so far (``syscr``/``syscw`` of /proc/PID/io,
        all threads). libuv (uvloop, Node) moves TCP data with read() and write()/writev(),
        which these count exactly; recv*/send* and epoll_wait are not counted."""
        return _syscalls(self.process)


def _syscalls(process: Any) -> tuple[int, int]:
    try:
        counters = process.io_counters()
    except (AttributeError, OSError):  # not Linux, or /proc/PID/io not readable
        return (0, 0)
    return (int(counters.read_count), int(counters.write_count))


def generator_cpu() -> float:
    """This (generator) process's user + system CPU seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def syscalls_per(
    units: float,
    unit: str,
    server0: tuple[int, int],
    server1: tuple[int, int],
    generator0: tuple[int, int],
    generator1: tuple[int, int],
) -> dict[str, float]:
    """``server_reads_per_<unit>``, ``server_writes_per_<unit>`` and
    ``generator_writes_per_<unit>`` from two :meth:`Probe.syscalls` / :func:`generator_syscalls`
    readings each."""
    return {
        f"server_reads_per_{unit}": (server1[0] - server0[0]) / units,
        f"server_writes_per_{unit}": (server1[1] - server0[1]) / units,
        f"generator_writes_per_{unit}": (generator1[1] - generator0[1]) / units,
    }


def generator_syscalls() -> tuple[int, int]:
    """This (generator) process's read and write syscalls so far (see :meth:`Probe.syscalls`)."""
    import psutil

    return _syscalls(psutil.Process())


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
        env = None
        if spec.pythonpath is not None:
            env = {**os.environ, "PYTHONPATH": spec.pythonpath}
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=env,
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


CLIENT_WRITES_CHOICES = (*CLIENT_WRITES, "both")


def add_common_arguments(
    parser: argparse.ArgumentParser, rounds: int = 5, client_writes: str = PER_MESSAGE
) -> None:
    """Options every load scenario has (``client_writes``: this scenario's default mode)."""
    parser.add_argument(
        "--client-writes",
        choices=CLIENT_WRITES_CHOICES,
        default=client_writes,
        help="how the generator's WebSocket clients write: per-message (as browsers: one "
        "send() per message, random masking keys), batched (the old generator: replies to one "
        "read in one write, zero key) or both, side by side (default %(default)s)",
    )
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


def client_writes_modes(args: argparse.Namespace) -> list[str | None]:
    """The generator modes this run measures (``[None]`` for a scenario without modes)."""
    chosen = getattr(args, "client_writes", None)
    if chosen is None:
        return [None]
    return list(CLIENT_WRITES) if chosen == "both" else [chosen]


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
    mode_metrics: Sequence[str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Run ``measure`` against every chosen server, ``args.rounds`` rounds with the server
    order rotated each round; print the medians and ratios; save the raw results.

    With ``--client-writes both`` every server is measured in both generator modes within each
    round (mode order rotated too), and each mode gets its own table, ratios within the mode,
    followed by a per-message / batched comparison of the ``mode_metrics`` (keys; default: the
    first two metrics, the rate and the CPU per unit). ``data["modes"]`` holds each mode's raw
    results and medians; ``data["raw"]``/``["medians"]`` are the first mode's."""
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
    modes = client_writes_modes(args)
    rounds = 1 if args.quick else args.rounds
    raw: dict[str | None, dict[str, list[dict[str, float]]]] = {
        mode: {spec.name: [] for spec in specs} for mode in modes
    }
    errors: dict[str | None, dict[str, list[str]]] = {mode: {} for mode in modes}
    for round_index in range(rounds):
        shift = round_index % max(len(specs), 1)
        mode_shift = round_index % len(modes)
        for spec in specs[shift:] + specs[:shift]:
            for mode in modes[mode_shift:] + modes[:mode_shift]:
                mode_args = args
                label = spec.name
                if mode is not None:
                    mode_args = argparse.Namespace(**{**vars(args), "client_writes": mode})
                    if len(modes) > 1:
                        label = f"{spec.name} [{mode}]"
                try:
                    result = _run_one(spec, measure, mode_args)
                except Exception as exc:  # one peer failing must not lose the others' numbers
                    errors[mode].setdefault(spec.name, []).append(repr(exc))
                    print(f"  [{name}] round {round_index + 1} {label}: FAILED {exc!r}")
                    continue
                raw[mode][spec.name].append(result)
                shown = ", ".join(
                    f"{m.key}={m.fmt.format(result[m.key])}" for m in metrics if m.key in result
                )
                print(f"  [{name}] round {round_index + 1} {label}: {shown}", flush=True)
    medians = {mode: _medians(metrics, raw[mode]) for mode in modes}
    for mode in modes:
        print()
        suffix = f" [client writes: {mode}]" if mode is not None else ""
        print(f"## {title}{suffix}  (medians of {rounds} round(s))")
        print()
        print(render_table(metrics, medians[mode]))
        print()
    if len(modes) > 1:
        print(f"### {title}: per-message / batched")
        print()
        compared = [m for m in metrics if m.key in mode_metrics] if mode_metrics else metrics[:2]
        print(render_mode_table(compared, medians, modes))
        print()
    first = modes[0]
    data = {
        "scenario": name,
        "title": title,
        "machine": machine_info(),
        "versions": package_versions("sockjet", "python-socketio", "uvicorn", "aiohttp"),
        "settings": {
            **(settings or {}),
            "rounds": rounds,
            "quick": args.quick,
            "client_writes": [mode for mode in modes if mode is not None],
        },
        "metrics": [m.key for m in metrics],
        "raw": raw[first],
        "medians": medians[first],
        "errors": errors[first],
        "modes": {
            mode: {"raw": raw[mode], "medians": medians[mode], "errors": errors[mode]}
            for mode in modes
            if mode is not None
        },
    }
    if not args.no_save:
        path = write_results(name, data)
        print(f"raw results: {path.relative_to(ROOT)}")
    measured = any(results for per_mode in raw.values() for results in per_mode.values())
    failed = any(per_mode for per_mode in errors.values())
    status = 1 if failed and not measured else 0
    return status, data


def _medians(
    metrics: Sequence[Metric], raw: dict[str, list[dict[str, float]]]
) -> dict[str, dict[str, float]]:
    return {
        server: {
            m.key: statistics.median(r[m.key] for r in results if m.key in r)
            for m in metrics
            if any(m.key in r for r in results)
        }
        for server, results in raw.items()
        if results
    }


def render_mode_table(
    metrics: Sequence[Metric],
    medians: dict[str | None, dict[str, dict[str, float]]],
    modes: Sequence[str | None],
) -> str:
    """Per server, each of ``metrics`` in the first two modes and the ratio of the first to the
    second (per-message / batched)."""
    shown = metrics
    first, second = modes[0], modes[1]
    headers = ["server"]
    for m in shown:
        headers += [f"{m.label} [{first}]", f"{m.label} [{second}]", f"{first} / {second}"]
    rows = []
    for server in medians[first]:
        row = [server]
        for m in shown:
            a = medians[first].get(server, {}).get(m.key)
            b = medians[second].get(server, {}).get(m.key)
            row.append("-" if a is None else m.fmt.format(a))
            row.append("-" if b is None else m.fmt.format(b))
            row.append(f"{a / b:.2f}" if a and b else "-")
        rows.append(row)
    return markdown_table(headers, rows, ["l"] + ["r"] * (len(headers) - 1))


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
