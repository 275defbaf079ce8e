"""Test support shared by the engine tests: a recording SessionHandler and small helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from sockjet.engine.io import EngineSocket, HTTPResponse, Outgoing
from sockjet.engine.server import EngineServer
from sockjet.engine.session import Session


class Handler:
    """A SessionHandler that records what the engine tells it."""

    def __init__(self, socket: EngineSocket) -> None:
        self.socket = socket
        self.messages: list[str | bytes] = []
        self.closes: list[str] = []
        self.closed = asyncio.Event()

    def on_message(self, data: str | bytes) -> None:
        self.messages.append(data)

    def on_close(self, reason: str) -> None:
        self.closes.append(reason)
        self.closed.set()


class App:
    """on_connection: one Handler per session."""

    def __init__(self) -> None:
        self.handlers: list[Handler] = []

    def __call__(self, socket: EngineSocket) -> Handler:
        handler = Handler(socket)
        self.handlers.append(handler)
        return handler

    @property
    def handler(self) -> Handler:
        assert len(self.handlers) == 1
        return self.handlers[0]


def session_of(server: EngineServer, sid: str) -> Session:
    session = server.sessions[sid]
    assert isinstance(session, Session)
    return session


async def pending(coro: Awaitable[HTTPResponse]) -> asyncio.Task[HTTPResponse]:
    """Start a request and let it reach its wait."""
    task = asyncio.ensure_future(coro)
    await asyncio.sleep(0)
    assert not task.done()
    return task


class FakeConnection:
    """A WebSocketConnection that records what the engine does with it."""

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []
        self.buffered_amount = 0
        self.close_code: int | None = None
        self.close_calls = 0
        self.aborted = False
        self.watched: int | None = None
        self.paused = False

    def send(self, message: Outgoing) -> None:
        assert self.close_code is None and not self.aborted, "sent after close"
        self.sent.append(message)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.close_calls += 1
        if self.close_code is None:
            self.close_code = code

    def abort(self) -> None:
        self.aborted = True

    def watch_drain(self, level: int) -> None:
        self.watched = level

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    @property
    def data(self) -> list[str | bytes]:
        return [message.data for message in self.sent]
