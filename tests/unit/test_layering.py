"""Keeps the layering of docs/architecture.md true: each layer imports only the layers above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "sockjet"

# layer -> sockjet subpackages it may import (besides itself and the shared top-level modules)
ALLOWED: dict[str, set[str]] = {
    "protocol": set(),
    "engine": {"protocol"},
    "server": {"protocol", "engine"},
    "adapters": {"protocol", "engine", "server"},
    "serving": {"protocol", "engine", "server", "adapters"},
    "client": {"protocol"},
    "observe": {"protocol", "engine", "server", "adapters"},
    "chat": {"protocol", "engine", "server", "adapters", "serving", "observe"},
}
SHARED = {"errors"}
FORBIDDEN_IN_PROTOCOL = {"asyncio", "socket", "selectors", "ssl", "threading", "time", "uvloop"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(layer: str) -> list[Path]:
    return sorted((SRC / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_layers_above(layer: str) -> None:
    for path in _files(layer):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "sockjet" or len(parts) < 2:
                continue
            target = parts[1]
            assert target == layer or target in SHARED or target in ALLOWED[layer], (
                f"{path.relative_to(SRC)} imports {name}: {layer}/ may import only "
                f"{sorted(ALLOWED[layer] | SHARED)}"
            )


def test_protocol_does_no_io() -> None:
    for path in _files("protocol"):
        for name in _imports(path):
            assert name.split(".")[0] not in FORBIDDEN_IN_PROTOCOL, (
                f"{path.relative_to(SRC)} imports {name}: protocol/ is sans-I/O and has no clock"
            )
