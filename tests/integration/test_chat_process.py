"""`sockjet chat` as a person runs it: `./dev run` serves the built chat, and a clean shutdown
(SIGTERM) saves every message it accepted."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import aiohttp
import socketio
from chat_peers import ROOT, ChatProcess, free_port


async def test_sigterm_saves_every_accepted_message(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    chat = ChatProcess(free_port(), f"sqlite:///{db}")
    await chat.start()
    sio = socketio.AsyncClient(reconnection=False)
    acked: list[str] = []
    try:
        await sio.connect(chat.url, transports=["websocket"])
        await sio.call("joinRoom", {"roomId": "r", "userId": "u", "username": "Una"}, timeout=5)
        done = asyncio.get_running_loop().create_future()

        def on_ack(reply: dict[str, object]) -> None:
            assert reply["ok"], reply
            acked.append(str(reply["id"]))
            if len(acked) == 500 and not done.done():
                done.set_result(None)

        for n in range(500):
            await sio.emit("sendMessage", {"roomId": "r", "message": f"m{n}"}, callback=on_ack)
        await asyncio.wait_for(done, 10)
        assert await chat.stop() == 0  # at once: some messages are still queued for saving
    finally:
        await sio.disconnect()
        await chat.stop()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        saved = [row[0] for row in conn.execute("SELECT id FROM chat_messages ORDER BY seq")]
    assert saved == acked  # all of them, in the order they were accepted


async def test_dev_run_serves_the_chat(tmp_path: Path) -> None:
    # What a person does: ./dev run (set-up, front-end build, then `sockjet chat`).
    chat = ChatProcess(
        free_port(),
        f"sqlite:///{tmp_path}/chat.db",
        command=(str(ROOT / "dev"), "run"),
        env={"XDG_DATA_HOME": str(tmp_path)},
    )
    await chat.start(timeout=120)  # a first run installs and builds
    try:
        async with aiohttp.ClientSession() as http, http.get(chat.url + "/") as page:
            assert page.status == 200
            html = await page.text()
        assert '<div id="root"></div>' in html and "/assets/" in html
        sio = socketio.AsyncClient(reconnection=False)
        await sio.connect(chat.url)
        assert await sio.call("echo", "hi", timeout=5) == "hi"
        await sio.disconnect()
    finally:
        assert await chat.stop() == 0
