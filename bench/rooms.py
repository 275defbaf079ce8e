"""Room fan-out: 1,000 WebSocket clients in 10 rooms, ``io.to(room).emit`` cycling over them,
after a measured join phase (the fan-out scenario with ``--rooms``; see :mod:`bench.fanout`).
Both generator modes by default (``--client-writes both``)."""

from __future__ import annotations

import argparse

from bench import fanout

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Scenario options (fan-out's, with 10 rooms by default)."""
    fanout.add_arguments(parser)
    # the same deliveries in flight as the 1,000-socket fan-out: 8 broadcasts x 10 rooms
    parser.set_defaults(rooms=10, window=80, client_writes="both")


def main(args: argparse.Namespace) -> int:
    """Run the room fan-out."""
    return fanout.main(args)
