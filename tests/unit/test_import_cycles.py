"""No new import cycle between sockjet's modules, whether the import runs or only type-checks.

Each cycle that remains is listed below, as the set of modules it ties together; the list may
only shrink. A new cycle fails this test; so does a listed cycle that is gone or smaller (then
shrink the list: the ratchet only turns one way).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "sockjet"

REMAINING: list[frozenset[str]] = [
    # The socket.io object graph itself (as in Node: a server owns namespaces, a namespace its
    # sockets and adapter, a socket its client and namespace, and each refers back).
    frozenset(
        {
            "server.adapter",
            "server.broadcast",
            "server.client",
            "server.namespace",
            "server.server",
            "server.socket",
        }
    ),
]


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    """Module -> the sockjet modules it imports (``sockjet.`` left out), TYPE_CHECKING too."""
    modules = {_module(path): path for path in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".") if package else []
                    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                    origin = ".".join([*base, *([node.module] if node.module else [])])
                    origin = "sockjet." + origin if origin else "sockjet"
                else:
                    origin = node.module or ""
                targets = [origin, *(f"{origin}.{alias.name}" for alias in node.names)]
            for target in targets:
                if target.startswith("sockjet."):
                    local = target[len("sockjet.") :]
                    if local in graph and local != name:
                        graph[name].add(local)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_the_finder_sees_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [frozenset({"a", "b", "c"})]


def test_no_import_cycle_but_the_listed_ones() -> None:
    cycles = set(_cycles(_graph()))
    new = [sorted(c) for c in cycles if c not in REMAINING]
    gone = [sorted(c) for c in REMAINING if c not in cycles]
    assert not new, f"new import cycle(s): {new} (listed: {[sorted(c) for c in REMAINING]})"
    assert not gone, f"a listed cycle is gone or smaller: shrink REMAINING ({gone})"
