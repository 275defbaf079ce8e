"""`sockjet chat --max-message-chars`: a long message in many-byte characters passes end to end
with the official client, over polling and over WebSocket, and one character more is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from chat_peers import ChatProcess, free_port
from peers import NodePuppet

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]

LIMIT = 100_000
# 100,000 characters, 300,000 bytes of UTF-8: 2, 3, 3 and 4 bytes (an emoji is two UTF-16
# units in JavaScript, one character here).
LONG = "é€漢😀" * (LIMIT // 4)


@pytest_asyncio.fixture(loop_scope="module")
async def chat(tmp_path: Path) -> AsyncIterator[ChatProcess]:
    db = f"sqlite:///{tmp_path}/chat.db"
    async with ChatProcess(free_port(), db, "--max-message-chars", str(LIMIT)) as process:
        yield process


async def test_a_long_unicode_message_passes_when_the_limit_allows_it(
    puppet: NodePuppet, chat: ChatProcess
) -> None:
    assert len(LONG) == LIMIT and len(LONG.encode()) == 300_000
    polling = await puppet.connect(chat.url, transports=["polling"])
    websocket = await puppet.connect(chat.url, transports=["websocket"])
    for client, name in ((polling, "Pat"), (websocket, "Wes")):
        (reply,) = await client.emit_with_ack(
            "joinRoom", {"roomId": "long", "userId": name.lower(), "username": name}
        )
        assert reply["ok"], reply
    for sender in (polling, websocket):
        text = f"{sender.handle}: {LONG}"[:LIMIT]
        (ack,) = await sender.emit_with_ack("sendMessage", {"roomId": "long", "message": text})
        assert ack["ok"], ack
        for receiver in (polling, websocket):
            (message,) = await receiver.next_event("receiveMessage")
            assert message["message"] == text and message["id"] == ack["id"]
    (refused,) = await polling.emit_with_ack(
        "sendMessage", {"roomId": "long", "message": LONG + "x"}
    )
    assert refused == {"ok": False, "error": f"message is longer than {LIMIT} characters"}
    # Both are in the history of whoever joins next.
    late = await puppet.connect(chat.url, transports=["polling"])
    (reply,) = await late.emit_with_ack(
        "joinRoom", {"roomId": "long", "userId": "lou", "username": "Lou"}
    )
    assert [m["message"] for m in reply["history"]] == [
        f"{c.handle}: {LONG}"[:LIMIT] for c in (polling, websocket)
    ]
