"""Fan-out to 1,000 long-polling clients (the fan-out scenario with ``--polling``; see
:mod:`bench.fanout`): every receiver keeps one GET pending on a keep-alive connection and
re-issues it as soon as a response comes back; a WebSocket client drives the broadcasts."""

from __future__ import annotations

import argparse

from bench import fanout

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Scenario options (fan-out's, over polling)."""
    fanout.add_arguments(parser)
    parser.set_defaults(polling=True)


def main(args: argparse.Namespace) -> int:
    """Run the polling fan-out."""
    return fanout.main(args)
