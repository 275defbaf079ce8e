"""The server process is killed and started again on the same port: the client reconnects
within its backoff window, and what it emitted meanwhile arrives exactly once, in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from client_peers import Events, ServerProcess, client_tasks

from sockjet.client import AsyncClient

DELAY, DELAY_MAX = 0.1, 0.4

CASES = [
    pytest.param("node", ["websocket"], marks=pytest.mark.node, id="node-websocket"),
    pytest.param("node", ["polling", "websocket"], marks=pytest.mark.node, id="node-polling"),
    pytest.param("sockjet", ["websocket"], id="sockjet-serve-websocket"),
]


async def events_until(server: ServerProcess, last: str) -> list[tuple[str, Any]]:
    """The events the server reported, up to (and with) the ``sync`` carrying ``last``."""
    seen: list[tuple[str, Any]] = []
    while not seen or seen[-1] != ("sync", [last]):
        report = await server.next_report("event")
        seen.append((report["event"], report["args"]))
    return seen


@pytest.mark.parametrize(("kind", "transports"), CASES)
async def test_the_client_survives_a_server_restart(kind: str, transports: list[str]) -> None:
    loop = asyncio.get_running_loop()
    events = Events()
    client = AsyncClient(reconnection_delay=DELAY, reconnection_delay_max=DELAY_MAX)
    client.on("disconnect", events.handler("disconnect"))
    client.on("reconnect", events.handler("reconnect"))
    client.on("reconnect_error", events.handler("reconnect_error"))
    async with ServerProcess(kind) as server, client:
        await client.connect(server.url, transports=transports)
        client.emit("msg", "before")
        assert await client.emit_with_ack("sync", "first") == "ok"
        assert await events_until(server, "first") == [("msg", ["before"]), ("sync", ["first"])]
        port = server.port

        await server.kill()
        assert await events.get("disconnect") in ("transport close", "transport error")
        for n in range(20):  # offline: buffered
            client.emit("msg", n)
        for _ in range(2):  # attempts fail while the server is down
            assert (await events.get("reconnect_error")).message in (
                "websocket error",
                "xhr poll error",
            )

        await server.start()
        assert server.port == port
        back = loop.time()
        assert await events.get("reconnect") >= 3
        # the next attempt starts at most DELAY_MAX after the server is back (jitter included)
        assert loop.time() - back < DELAY_MAX + 1.0
        assert await client.emit_with_ack("sync", "second") == "ok"
        assert await events_until(server, "second") == [
            *[("msg", [n]) for n in range(20)],
            ("sync", ["second"]),
        ]
    assert client_tasks() == []
