"""Side-by-side benchmarks: sockjet against its peers (python-socketio today, Node socket.io later).

Every scenario is a module of this package exposing ``add_arguments(parser)`` and
``main(args) -> int`` and registered in :mod:`bench.__main__`. The helpers below are what all
scenarios share: where results go, the machine they were measured on, and how they are printed.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "RESULTS_DIR",
    "ROOT",
    "format_ns",
    "machine_info",
    "markdown_table",
    "package_versions",
    "write_results",
]

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"  # gitignored


def package_versions(*names: str) -> dict[str, str | None]:
    """Installed version of each distribution, ``None`` when it is not installed."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine_info() -> dict[str, Any]:
    """What a reader needs to judge a number: interpreter, CPU, OS, load and code version."""
    try:
        usable_cpus: int | None = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable_cpus = None
    try:
        load: list[float] | None = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus,
        "load_average": load,
        "git_commit": _git_commit(),
    }


def write_results(scenario: str, data: dict[str, Any], directory: Path | None = None) -> Path:
    """Write ``data`` as ``<directory>/<scenario>-<UTC timestamp>.json`` and return the path."""
    directory = RESULTS_DIR if directory is None else directory
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = directory / f"{scenario}-{stamp}.json"
    suffix = 1
    while path.exists():  # two runs within one second must not overwrite each other
        suffix += 1
        path = directory / f"{scenario}-{stamp}-{suffix}.json"
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def format_ns(ns: float) -> str:
    """Nanoseconds with thousands separators, e.g. ``12,345``."""
    return f"{ns:,.0f}"


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str] | None = None
) -> str:
    """A padded markdown table; ``align`` holds ``"l"`` or ``"r"`` per column."""
    align = align or ["l"] * len(headers)
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.rjust(width) if how == "r" else cell.ljust(width)
            for cell, width, how in zip(cells, widths, align, strict=True)
        )
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        "-" * (width + 1) + ":" if how == "r" else "-" * (width + 2)
        for width, how in zip(widths, align, strict=True)
    )
    return "\n".join([line(headers), rule + "|", *(line(row) for row in rows)])
