"""``python -m bench [SCENARIO] [OPTIONS]``: run sockjet's side-by-side benchmarks.

Without a scenario every registered scenario runs with its defaults; several scenarios may be
named, sharing the options that follow them (``fanout echo --rounds 3``). A scenario is a module
of this package with ``add_arguments(parser)`` and ``main(args) -> int``; add one by listing it
in ``SCENARIOS``. Scenario modules keep heavy imports inside ``main`` so that ``--help`` stays
instant and one missing peer cannot break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

# name -> (module, one-line description); order is the order of a full run
SCENARIOS: dict[str, tuple[str, str]] = {
    "fanout": ("bench.fanout", "fan-out to 1,000 WebSocket clients: deliveries/s, CPU/delivery"),
    "echo": ("bench.echo", "echo with acks, 50 clients x 16 in flight: acks/s, latency"),
    "rooms": ("bench.rooms", "room fan-out: 1,000 clients in 10 rooms"),
    "connect": ("bench.connect", "connection storm: rate, handshake latency, memory per idle conn"),
    "polling": ("bench.polling", "fan-out to 1,000 long-polling clients"),
    "binary": ("bench.binary", "64 KiB binary events echoed with acks"),
    "scale": ("bench.scale", "50,000 idle connections in one process, broadcasts to all"),
    "cluster": ("bench.cluster", "cross-node fan-out: 2 nodes on one Redis, 1,000 clients"),
    "workers": ("bench.workers", "one port, N workers: sockjet --workers vs Node's cluster module"),
    "recovery": ("bench.recovery", "recovery across nodes (streams adapter): sessions restored"),
    "protocol": ("bench.protocol", "Engine.IO / Socket.IO codecs: sockjet vs python-socketio"),
}


def _load(name: str) -> ModuleType:
    return importlib.import_module(SCENARIOS[name][0])


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per scenario."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="sockjet side-by-side benchmarks (no scenario: run them all).",
    )
    sub = parser.add_subparsers(dest="scenario", metavar="SCENARIO")
    for name, (_, description) in SCENARIOS.items():
        scenario_parser = sub.add_parser(name, help=description, description=description)
        _load(name).add_arguments(scenario_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen scenario (or all of them); the exit status is the worst one's.

    Several scenarios may be named (``fanout echo --rounds 3``): each runs in turn with the
    options that follow them."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    names = [arg for arg in argv if arg in SCENARIOS]
    if len(names) > 1 and argv[: len(names)] == names:
        options = argv[len(names) :]
        return max(int(_load(name).main(parser.parse_args([name, *options]))) for name in names)
    args = parser.parse_args(argv)
    if args.scenario is not None:
        return int(_load(args.scenario).main(args))
    status = 0
    for name in SCENARIOS:
        # each scenario gets its own defaults, parsed exactly as if it had been named
        status = max(status, int(_load(name).main(parser.parse_args([name]))))
    return status


if __name__ == "__main__":
    sys.exit(main())
