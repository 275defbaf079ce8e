"""Interop tests run the official JavaScript packages; this runs their Node helper scripts.

Node and the npm packages in tests/js/node_modules are required: a missing one fails the run
loudly instead of skipping, so interop can never pass by not running.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

NODE_SCRIPTS = Path(__file__).resolve().parent / "node"
NODE_MODULES = Path(__file__).resolve().parents[1] / "js" / "node_modules"

NodeScript = Callable[[str, Any], Any]


def run_node_script(name: str, request: Any, *, timeout: float = 60.0) -> Any:
    """Run ``tests/interop/node/<name>`` with ``request`` as JSON on stdin; return its JSON stdout.

    Modules resolve from tests/js/node_modules. Batch a whole corpus into one call: starting
    Node costs far more than anything a script does.
    """
    node = shutil.which("node")
    if node is None:
        pytest.fail("interop tests need Node.js on PATH (and `npm ci` in tests/js)")
    if not NODE_MODULES.is_dir():
        pytest.fail(f"interop tests need the npm packages: run `npm ci` in {NODE_MODULES.parent}")
    script = NODE_SCRIPTS / name
    if not script.is_file():
        pytest.fail(f"no Node helper script {script}")
    proc = subprocess.run(
        [node, str(script)],
        input=json.dumps(request).encode("utf-8"),
        capture_output=True,
        timeout=timeout,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        check=False,
    )
    if proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace")
        pytest.fail(f"node {name} exited with {proc.returncode}:\n{stderr}")
    return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def node_script() -> NodeScript:
    """``node_script(name, request)``: see :func:`run_node_script`."""
    return run_node_script
