"""ChatService: the database opened before serving, the front end and Socket.IO on one port,
everything saved and closed at the end."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from sockjet.adapters.memory import MemoryAdapter
from sockjet.chat import service as service_module
from sockjet.chat.service import ChatService, find_web_dir
from sockjet.chat.store import StoreError


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        response = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_find_web_dir_prefers_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = tmp_path / "examples" / "chat" / "web" / "dist"
    build.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(service_module, "WEB_BUILD", Path("no") / "such" / "dir")
    assert find_web_dir() is None
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert find_web_dir() != build  # no index.html yet: not a build
    (build / "index.html").write_text("<p>built</p>")
    assert find_web_dir() == build


async def test_serves_the_front_end_and_saves_on_close(tmp_path: Path) -> None:
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<p>the chat</p>")
    chat = ChatService(database_url=f"sqlite:///{tmp_path}/chat.db", web_dir=web)
    server = await chat.serve("127.0.0.1", 0)
    try:
        assert await http_get(server.port, "/") == (200, b"<p>the chat</p>")
        assert await http_get(server.port, "/rooms/general") == (200, b"<p>the chat</p>")
    finally:
        await chat.close()
        await server.close()
    assert (tmp_path / "chat.db").exists()


async def test_without_a_build_the_page_says_how_to_build_it(tmp_path: Path) -> None:
    chat = ChatService(database_url="sqlite://:memory:", ping_interval=5, ping_timeout=3)
    assert chat.io.engine.ping_interval == 5
    server = await chat.serve("127.0.0.1", 0)
    try:
        status, body = await http_get(server.port, "/")
        assert status == 503 and b"./dev run" in body
    finally:
        await chat.close()
        await server.close()


async def test_a_database_that_cannot_open_stops_before_listening(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    chat = ChatService(database_url=f"sqlite:///{tmp_path}/file/chat.db")
    with pytest.raises(StoreError, match="cannot create"):
        await chat.serve("127.0.0.1", 0)
    await chat.close()


class WaitingAdapter(MemoryAdapter):
    """A cluster adapter whose subscriptions complete when ``ready`` is set."""

    ready: asyncio.Event
    waiting = asyncio.Event()

    async def wait_ready(self) -> None:
        self.waiting.set()
        await self.ready.wait()


async def test_serving_waits_for_the_cluster_adapter(caplog: pytest.LogCaptureFixture) -> None:
    ready = asyncio.Event()
    WaitingAdapter.ready = ready
    chat = ChatService(database_url="sqlite://:memory:", adapter=WaitingAdapter)
    serving = asyncio.create_task(chat.serve("127.0.0.1", 0))
    await WaitingAdapter.waiting.wait()
    assert not serving.done()  # not announced before the cluster hears us
    ready.set()
    server = await serving
    await chat.close()
    await server.close()

    WaitingAdapter.ready = asyncio.Event()  # never ready: served anyway, with a warning
    chat = ChatService(
        database_url="sqlite://:memory:", adapter=WaitingAdapter, cluster_timeout=0.01
    )
    with caplog.at_level(logging.WARNING, "sockjet.chat"):
        server = await chat.serve("127.0.0.1", 0)
    assert "the cluster adapter is not connected after 0.01s" in caplog.text
    await chat.close()
    await server.close()
