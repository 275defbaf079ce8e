"""`sockjet chat --database postgresql://...` against a real PostgreSQL: a private cluster made
by the test (initdb + pg_ctl), never the machine's own server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import asyncpg
import pytest
import socketio
from chat_peers import ChatProcess, PrivatePostgres, free_port, postgres_binaries

from sockjet.chat.models import ChatMessage
from sockjet.chat.postgres_store import PostgresStore
from sockjet.chat.service import ChatService

pytestmark = pytest.mark.skipif(
    postgres_binaries() is None, reason="PostgreSQL 15 (initdb, pg_ctl) is not installed"
)


@pytest.fixture(scope="module")
def pg() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as cluster:
        yield cluster


def msg(n: int, room: str = "r", text: str | None = None) -> ChatMessage:
    return ChatMessage(
        f"id-{n}",
        room,
        "u",
        "Ünï",
        text or f"m{n}",
        f"2026-05-06T07:08:{n % 60:02d}.{n % 1000:03d}Z",
    )


async def test_store_round_trip(pg: PrivatePostgres) -> None:
    # Two servers starting at once create the schema once (an advisory lock serialises them).
    first, second = PostgresStore(pg.url), PostgresStore(pg.url)
    await asyncio.gather(first.open(), second.open())
    try:
        await first.save([msg(n) for n in range(1, 4)])
        await second.save([msg(3), msg(4, room="other", text="<b>'; DROP TABLE x; --</b> 😀\n")])
        assert await first.recent("r", 50) == [msg(1), msg(2), msg(3)]
        assert await second.recent("r", 2) == [msg(2), msg(3)]
        assert await first.recent("other", 50) == [
            msg(4, room="other", text="<b>'; DROP TABLE x; --</b> 😀\n")
        ]
        assert first.description == f"PostgreSQL postgresql://postgres@127.0.0.1:{pg.port}/postgres"
    finally:
        await first.close()
        await second.close()
        await first.close()  # idempotent


async def test_chat_command_on_postgres_keeps_history_across_restarts(pg: PrivatePostgres) -> None:
    port = free_port()
    chat = ChatProcess(port, pg.url)
    sio = socketio.AsyncClient(reconnection=False)
    await chat.start()
    try:
        await sio.connect(chat.url)
        await sio.call("joinRoom", {"roomId": "pg", "userId": "p", "username": "Pat"}, timeout=5)
        for n in range(30):
            await sio.emit("sendMessage", {"roomId": "pg", "message": f"pg {n}"})
        assert await sio.call("echo", "sync", timeout=5) == "sync"
        await sio.disconnect()
        assert await chat.stop() == 0  # SIGTERM: accepted messages are saved before exiting
        await chat.start()
        await sio.connect(chat.url)
        reply = await sio.call(
            "joinRoom", {"roomId": "pg", "userId": "q", "username": "Quinn"}, timeout=5
        )
        assert [m["message"] for m in reply["history"]] == [f"pg {n}" for n in range(30)]
        await sio.disconnect()
    finally:
        await chat.stop()
    conn = await asyncpg.connect(pg.url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM chat_messages WHERE room_id = 'pg'") == 30
    finally:
        await conn.close()


async def test_a_database_outage_is_reported_to_the_sender(
    pg: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    chat = ChatService(database_url=pg.url, retry_delays=(0.05,))
    server = await chat.serve("127.0.0.1", 0)
    sio = socketio.AsyncClient(reconnection=False)
    errors: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    sio.on("error", errors.put_nowait)
    try:
        await sio.connect(f"http://127.0.0.1:{server.port}")
        await sio.call("joinRoom", {"roomId": "down", "userId": "o", "username": "Otto"}, timeout=5)
        pg.stop_server()  # the database goes away under the running chat
        with caplog.at_level(logging.WARNING, "sockjet.chat"):
            ack = await sio.call("sendMessage", {"roomId": "down", "message": "anyone?"}, timeout=5)
            assert ack["ok"]  # delivered live at once...
            error = await asyncio.wait_for(errors.get(), 10)  # ...then reported as not saved
        assert error == {
            "event": "sendMessage",
            "id": ack["id"],
            "message": "your message could not be saved: it will not be in the history",
        }
        assert "1 chat messages could not be saved" in caplog.text
        await sio.disconnect()
    finally:
        await chat.close()
        await server.close()
        pg.start_server()
