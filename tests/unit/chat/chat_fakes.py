"""Test support for the chat: an in-memory store with injectable failures, and fake clients
that talk to a real :class:`sockjet.Server` without a network (a fake Engine.IO session)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from sockjet.chat.models import ChatMessage
from sockjet.engine.io import HTTPRequest, Outgoing
from sockjet.server.client import Client
from sockjet.server.server import Server


class MemoryStore:
    """A MessageStore in a list. ``fail`` makes the next N saves raise; ``gate`` (when set to
    an unset Event) holds saves until it is set."""

    def __init__(self) -> None:
        self.description = "memory"
        self.rows: list[ChatMessage] = []
        self.batches: list[list[str]] = []
        self.fail = 0
        self.fail_reads = False
        self.gate: asyncio.Event | None = None
        self.opened = False
        self.closed = False

    async def open(self) -> None:
        self.opened = True

    async def save(self, messages: Sequence[ChatMessage]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            self.fail -= 1
            raise ConnectionError("database down")
        self.batches.append([m.id for m in messages])
        known = {m.id for m in self.rows}
        self.rows.extend(m for m in messages if m.id not in known)

    async def recent(self, room_id: str, limit: int) -> list[ChatMessage]:
        if self.fail_reads:
            raise ConnectionError("database down")
        return [m for m in self.rows if m.room_id == room_id][-limit:]

    async def close(self) -> None:
        self.closed = True


def message(n: int, room: str = "r", user: str = "u1") -> ChatMessage:
    return ChatMessage(
        f"id{n}", room, user, user.upper(), f"text {n}", f"2026-01-01T00:00:{n:02d}.000Z"
    )


class StepClock:
    """A clock that advances one millisecond per call, from a fixed start."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def counter_ids() -> Any:
    numbers = itertools.count(1)
    return lambda: f"m{next(numbers)}"


class FakeClient:
    """One Socket.IO client on a fake Engine.IO session: ``emit`` packets in, decoded events
    and acks out."""

    _count = 0

    def __init__(self, io: Server, auth: dict[str, Any] | None = None) -> None:
        FakeClient._count += 1
        self.sid = f"eio{FakeClient._count}"
        self.transport = "websocket"
        self.request = HTTPRequest(
            method="GET",
            path="/socket.io/",
            query={"EIO": "4", "transport": "websocket"},
            headers={"host": "localhost"},
            remote_addr=("127.0.0.1", 1),
            url="/socket.io/?EIO=4&transport=websocket",
        )
        self.events: list[tuple[str, list[Any]]] = []
        self.arrived = asyncio.Event()  # set whenever an event arrives
        self.writable = True  # False: as a polling client with no GET pending (volatile lost)
        self.volatile_dropped = 0
        self.acks: dict[int, list[Any]] = {}
        self.close_reason: str | None = None
        self.offset: str | None = None  # of the last packet received, with recovery on
        self._next_ack = itertools.count(1)
        self.id: str = ""
        self.connected: dict[str, Any] = {}  # the CONNECT reply (sid, pid with recovery)
        self.client: Client = io.on_engine_connection(self)
        self.client.on_message("0" + (orjson.dumps(auth).decode() if auth else ""))
        assert self.id, "no CONNECT reply"

    # -- EngineSocket -------------------------------------------------------------------------

    def send(self, message: Outgoing, *, volatile: bool = False) -> bool:
        if self.close_reason is not None:
            return False
        if volatile and not self.writable:
            self.volatile_dropped += 1
            return False
        data = message.data
        assert isinstance(data, str) and data[0] == "4", data
        self._packet(data[1:])
        return True

    def close(self, reason: str = "forced close") -> None:
        self.drop(reason)

    # -- helpers ------------------------------------------------------------------------------

    def _packet(self, text: str) -> None:
        kind, rest = text[0], text[1:]
        if kind == "0":
            self.connected = orjson.loads(rest)
            self.id = self.connected["sid"]
        elif kind == "2":
            payload = orjson.loads(rest)
            event, *args = payload
            if self.connected.get("pid") is not None and args and isinstance(args[-1], str):
                self.offset = args.pop()  # recovery appends the packet's offset
            self.events.append((event, args))
            self.arrived.set()
        elif kind == "3":
            digits = len(rest) - len(rest.lstrip("0123456789"))
            self.acks[int(rest[:digits])] = orjson.loads(rest[digits:])

    def emit(self, event: str, *args: Any) -> None:
        """Send an event without asking for an ack."""
        self.client.on_message("2" + orjson.dumps([event, *args]).decode())

    async def call(self, event: str, *args: Any) -> list[Any]:
        """Send an event with an ack and return the ack's arguments."""
        ack_id = next(self._next_ack)
        self.client.on_message(f"2{ack_id}" + orjson.dumps([event, *args]).decode())
        for _ in range(50):
            if ack_id in self.acks:
                return self.acks.pop(ack_id)
            await asyncio.sleep(0)
        raise AssertionError(f"no ack for {event}")

    async def join(self, room: str, user_id: str, username: str) -> dict[str, Any]:
        (reply,) = await self.call(
            "joinRoom", {"roomId": room, "userId": user_id, "username": username}
        )
        assert isinstance(reply, dict)
        return reply

    def take(self, event: str | None = None) -> list[Any]:
        """Events received since the last call (their first argument), optionally of one
        name; the others stay."""
        picked = [args[0] if args else None for name, args in self.events if event in (None, name)]
        self.events = [(n, a) for n, a in self.events if event not in (None, n)]
        return picked

    async def wait_for(self, event: str, count: int = 1) -> None:
        """Wait (2 s at most) until ``count`` events named ``event`` are held (not taken yet)."""
        async with asyncio.timeout(2):
            while sum(1 for name, _ in self.events if name == event) < count:
                self.arrived.clear()
                await self.arrived.wait()

    def names(self) -> list[str]:
        """The names of the events held, in arrival order."""
        return [name for name, _ in self.events]

    def drop(self, reason: str = "transport close") -> None:
        if self.close_reason is None:
            self.close_reason = reason
            self.client.on_close(reason)


async def settle(rounds: int = 10) -> None:
    """Let scheduled tasks and callbacks run."""
    for _ in range(rounds):
        await asyncio.sleep(0)
