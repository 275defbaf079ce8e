"""The official Engine.IO and Socket.IO protocol test suites, against examples/conformance.

The suites live in the ``test-suite/`` folder of the ``socketio/engine.io-protocol`` and
``socketio/socket.io-protocol`` repositories; we do not ship them. Point ``SOCKJET_SUITES`` at a
folder holding both clones, their npm dependencies installed (see docs/conformance.md)::

    SOCKJET_SUITES=/path/to/suites ./dev test tests/integration/test_conformance_suites.py

Without it this module is not collected (``./dev conformance DIR`` sets it). The suites hard-code ``http://localhost:3000``, so port 3000
must be free; the four runs (two suites, two serving modes) go one after the other.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from orphans import die_with_parent

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "examples" / "conformance" / "server.py"
SUITES_ENV = "SOCKJET_SUITES"
PORT = 3000  # hard-coded by the suites

pytestmark = [pytest.mark.node, pytest.mark.slow]


def _suite(suite: str) -> tuple[Path, Path]:
    """The suite's folder and its mocha entry point (``bin/mocha.js``, ``bin/mocha`` before 10)."""
    folder = Path(os.environ[SUITES_ENV]) / f"{suite}-protocol" / "test-suite"
    bin_dir = folder / "node_modules" / "mocha" / "bin"
    for mocha in (bin_dir / "mocha.js", bin_dir / "mocha"):
        if mocha.is_file():
            return folder, mocha
    pytest.fail(f"{folder} has no installed suite (run `npm ci` there; docs/conformance.md)")


def _port_free() -> bool:
    with socket.socket() as probe:
        # as the servers bind: connections of the previous run in TIME_WAIT do not count
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", PORT))
        except OSError:
            return False
    return True


def _run_mocha(folder: Path, mocha: Path) -> dict[str, Any]:
    """Run the suite with mocha's JSON reporter; return its report."""
    result = subprocess.run(
        ["node", str(mocha), "--reporter", "json", "test-suite.js"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"mocha printed no report (exit {result.returncode}):\n{result.stderr}")
    return report


@pytest.mark.parametrize("serving", ["native", "asgi"])
@pytest.mark.parametrize("suite", ["engine.io", "socket.io"])
def test_official_suite_passes(suite: str, serving: str, tmp_path: Path) -> None:
    folder, mocha = _suite(suite)
    if not _port_free():
        pytest.fail(f"port {PORT} is busy (the suites hard-code http://localhost:{PORT})")
    errors = tmp_path / "server.err"
    with errors.open("w") as stderr:
        server = subprocess.Popen(
            [sys.executable, str(SERVER), "--suite", suite, "--serving", serving],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            preexec_fn=die_with_parent,
        )
        try:
            assert server.stdout is not None
            ready = server.stdout.readline()  # "ready 3000", or "" if it died
            assert ready.split() == ["ready", str(PORT)], errors.read_text()
            report = _run_mocha(folder, mocha)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                code = server.wait(timeout=15)
            finally:
                if server.poll() is None:
                    server.kill()
                    server.wait()
                if server.stdout is not None:
                    server.stdout.close()
    stats = report["stats"]
    failed = [
        f"{failure['fullTitle']}: {failure['err'].get('message', '')}"
        for failure in report["failures"]
    ]
    assert failed == [], f"{stats['passes']}/{stats['tests']} passed:\n" + "\n".join(failed)
    assert stats["passes"] == stats["tests"] > 0
    assert code == 0, f"the server did not exit cleanly on SIGTERM:\n{errors.read_text()}"
    assert "Traceback" not in errors.read_text()
