"""``sockjet chat --workers 3`` when workers go away under traffic: one killed with SIGKILL
(its clients reconnect to the others; the supervisor starts a new worker), and a rolling
restart (SIGHUP: every worker replaced, one at a time, while new clients keep connecting and
none of them is refused).

No connection state recovery here (the chat runs without it): a client of a worker that went
away starts a new session elsewhere, and the chat sees that user join again.
"""

# Every wait here takes its own `timeout`.

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chat_peers import free_port
from peers import AckTimeoutError, ConnectError, NodeClient, NodePuppet, PuppetError
from test_chat_protocol import joined
from test_workers_chat import TRANSPORTS, worker_of
from workers_peers import READY, WorkersChat

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]

# the official client reconnects by itself, here without making the test wait
RECONNECTING = {"reconnection": True, "reconnectionDelay": 50, "reconnectionDelayMax": 200}


@contextlib.asynccontextmanager
async def workers_chat(tmp_path: Path) -> AsyncIterator[WorkersChat]:
    chat = WorkersChat(free_port(), f"sqlite:///{tmp_path / 'chat.db'}")
    await chat.start()
    try:
        yield chat
    finally:
        await chat.stop()


class Member:
    """An official client in room ``room`` that joins it again each time it reconnects, as
    the chat's front end does."""

    def __init__(self, client: NodeClient, room: str, n: int) -> None:
        self.client = client
        self.room = room
        self.user = (f"u{n}", f"user{n}")
        self.websocket_only = n % 3 == 0
        self.moves = 0
        self.failed_attempts = 0
        self.rejoined = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def join(cls, puppet: NodePuppet, url: str, room: str, n: int) -> Member:
        client = await puppet.connect(url, **TRANSPORTS[n % 3], **RECONNECTING)
        member = cls(client, room, n)
        await joined(client, room, *member.user)
        member._task = asyncio.create_task(member._follow())
        return member

    async def _follow(self) -> None:
        while True:
            await self.client.wait_disconnect(timeout=300)
            self.rejoined.clear()
            async with asyncio.timeout(15):
                while True:
                    try:
                        await self.client.wait_connect(timeout=15)
                        break
                    except ConnectError:
                        # an attempt on a pooled keep-alive connection the dead worker held:
                        # the client tries again by itself
                        self.failed_attempts += 1
            self.moves += 1
            await joined(self.client, self.room, *self.user)
            self.rejoined.set()

    async def settled(self) -> None:
        """Connected and in the room (again, if it moved)."""
        assert self._task is not None
        if self._task.done():
            self._task.result()  # it failed: say how
        state = await self.client.state()
        if not state["connected"] or (self.moves and not self.rejoined.is_set()):
            await asyncio.wait_for(self.rejoined.wait(), 15)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def traffic(sender: NodeClient, room: str, stop: asyncio.Event) -> int:
    """Messages from ``sender`` until ``stop``; how many were acknowledged."""
    acked = 0
    n = 0
    while not stop.is_set():
        n += 1
        # an ack lost with the worker that was to send it: the client's own timeout says so
        with contextlib.suppress(PuppetError, AckTimeoutError):
            (ack,) = await sender.emit_with_ack(
                "sendMessage", {"roomId": room, "message": f"traffic {n}"}, timeout=1
            )
            acked += bool(ack.get("ok"))
    return acked


async def everyone_gets(members: list[Member], text: str) -> None:
    """A message from the first member reaches every member (then their queues are drained)."""
    for member in members:
        await member.settled()
    await members[0].client.emit_with_ack(
        "sendMessage", {"roomId": members[0].room, "message": text}
    )
    for member in members:
        while (await member.client.next_event("receiveMessage", timeout=10))[0]["message"] != text:
            pass


async def test_kill_9_a_worker_under_traffic(puppet: NodePuppet, tmp_path: Path) -> None:
    async with workers_chat(tmp_path) as chat:
        members = [await Member.join(puppet, chat.url, "k", n) for n in range(12)]
        holders = {m: await worker_of(m.client) for m in members}
        # the watcher is a WebSocket-only client: a polling one's request may be passing
        # through the killed worker at that instant, and then it reconnects too
        watcher = next(m for m in members if m.websocket_only)
        victim, _ = Counter(h for m, h in holders.items() if h != holders[watcher]).most_common(1)[
            0
        ]
        pid = chat.live_workers()[victim]
        on_victim = [m for m in members if holders[m] == victim]
        survivors = [m for m in members if holders[m] != victim]
        for _ in range(watcher.client.pending("userJoined")):  # those who joined after it
            await watcher.client.next_event("userJoined")
        stop = asyncio.Event()
        sending = asyncio.create_task(traffic(survivors[-1].client, "k", stop))
        await watcher.client.next_event("receiveMessage")  # the traffic flows
        mark = len(chat.lines)
        os.kill(pid, signal.SIGKILL)
        # the supervisor notices, and starts a new worker (a new id) in its place
        await chat.wait_line(
            rf"worker {victim} \(pid {pid}\) exited \(signal 9\); restarting", after=mark
        )
        replacement = await chat.wait_line(READY, after=mark)
        assert replacement[1] != victim
        # each client of the dead worker reconnected to a live one, with a new session
        for member in on_victim:
            await member.settled()
            assert member.moves == 1
            assert await worker_of(member.client) != victim
        # what the chat showed the others: those users joined again (nobody said they left)
        expected = {m.user[0] for m in on_victim}
        joined_again: set[str] = set()
        while not expected <= joined_again:
            (notice,) = await watcher.client.next_event("userJoined", timeout=10)
            joined_again.add(notice["userId"])
        left = [
            (await watcher.client.next_event("userLeft"))[0]["userId"]
            for _ in range(watcher.client.pending("userLeft"))
        ]
        assert not expected & set(left)  # a worker killed says nothing
        stop.set()
        assert await sending > 0
        await everyone_gets(members, "after the crash")
        # WebSocket-only clients of the other workers never noticed anything
        assert all(m.moves == 0 for m in survivors if m.websocket_only)
        for member in members:
            member.stop()


async def test_rolling_restart_under_traffic(puppet: NodePuppet, tmp_path: Path) -> None:
    async with workers_chat(tmp_path) as chat:
        before = chat.live_workers()
        members = [await Member.join(puppet, chat.url, "r", n) for n in range(9)]
        stop = asyncio.Event()
        handshakes: Counter[str] = Counter()

        async def probe() -> None:
            """New clients keep arriving: each must find a worker that takes it. (One whose
            handshake a draining worker had just accepted is disconnected with its other
            clients, and reconnects, as they do.)"""
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    client = await puppet.connect(chat.url, **TRANSPORTS[n % 3], **RECONNECTING)
                except (ConnectError, PuppetError) as exc:
                    handshakes[f"refused: {exc}"] += 1
                    continue
                handshakes["ok"] += 1
                await client.forget()

        probing = asyncio.create_task(probe())
        sending = asyncio.create_task(traffic(members[0].client, "r", stop))
        mark = len(chat.lines)
        chat.signal(signal.SIGHUP)
        await chat.wait_line("rolling restart done", after=mark, timeout=45)
        stop.set()
        await probing
        assert await sending > 0
        after = chat.live_workers()
        assert len(after) == 3 and not set(after) & set(before), (before, after)
        assert set(handshakes) == {"ok"} and handshakes["ok"] >= 10, handshakes
        # every member moved off its old worker and is in the room on a new one
        await everyone_gets(members, "after the restart")
        for member in members:
            assert member.moves >= 1
            assert await worker_of(member.client) in after
            member.stop()
        assert not any("forced exit" in line or "did not drain" in line for line in chat.lines)
