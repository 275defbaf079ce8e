"""Test support shared by the engine tests: a recording SessionHandler and small helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from sockjet.engine.io import EngineSocket, HTTPResponse
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
