"""``sockjet chat --workers N`` as a real process, for the workers tests.

:class:`WorkersChat` is a :class:`~chat_peers.ChatProcess` that runs the chat with ``--workers``
(and info logs: they name each worker and its pid) and lets a test await what it prints: a
worker ready, a restart, the handoff counts it reports on SIGUSR1.
"""

# Every wait here takes its own `timeout`.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import os
import re
import signal
from typing import Any

from chat_peers import ChatProcess

READY = re.compile(r"worker (\S\S) \(pid (\d+)\) ready")
EXITED = re.compile(r"worker (\S\S) \(pid (\d+)\) exited")
HANDOFFS = re.compile(r"sockjet: handoffs: (.*); total sent=(\d+) adopted=(\d+) failed=(\d+)")


class WorkersChat(ChatProcess):
    """``sockjet chat --workers N``; ``lines`` keeps everything it printed, in order."""

    def __init__(self, port: int, database: str, *extra: str, workers: int = 3) -> None:
        super().__init__(port, database, "--workers", str(workers), "--log-level", "info", *extra)
        self.workers = workers
        self.lines: list[str] = []
        self._changed: asyncio.Event | None = None

    async def _read(self, stream: Any, ready: asyncio.Future[None] | None) -> None:
        changed = self._changed = self._changed or asyncio.Event()
        async for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            self.output.append(line)
            self.lines.append(line)
            changed.set()
            if ready is not None and not ready.done() and "serving the chat on" in line:
                ready.set_result(None)
        if ready is not None and not ready.done():
            ready.set_exception(RuntimeError("exited"))
        changed.set()

    def log(self) -> str:
        return "\n".join(self.lines[-300:]) or "(no output)"

    async def wait_line(
        self, pattern: re.Pattern[str] | str, *, after: int = 0, timeout: float = 15.0
    ) -> re.Match[str]:
        """The first line from index ``after`` on that matches ``pattern``."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        seen = after
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for line in self.lines[seen:]:
                        found = regex.search(line)
                        if found is not None:
                            return found
                    seen = len(self.lines)
                    changed = self._changed
                    assert changed is not None
                    changed.clear()
                    if self.proc is None or self.proc.returncode is not None:
                        raise AssertionError(f"the chat exited:\n{self.log()}")
                    await changed.wait()
        except TimeoutError:
            raise AssertionError(f"no line like {regex.pattern!r}:\n{self.log()}") from None

    def live_workers(self) -> dict[str, int]:
        """Worker id -> pid of the workers that said they are ready and have not exited."""
        live: dict[str, int] = {}
        for line in self.lines:
            if found := READY.search(line):
                live[found[1]] = int(found[2])
            elif found := EXITED.search(line):
                live.pop(found[1], None)
        return live

    async def handoffs(self) -> tuple[int, int, int]:
        """(sent, adopted, failed) over every worker so far, as it reports them on SIGUSR1."""
        assert self.proc is not None
        mark = len(self.lines)
        os.kill(self.proc.pid, signal.SIGUSR1)
        found = await self.wait_line(HANDOFFS, after=mark)
        return int(found[2]), int(found[3]), int(found[4])

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signum)
