"""A thousand clients in one process connect to one server and exchange events."""

from __future__ import annotations

import asyncio

from client_peers import client_tasks, sockjet_server

import sockjet
from sockjet.client import AsyncClient

CLIENTS = 1000


async def test_a_thousand_clients_in_one_process() -> None:
    io = sockjet.Server()

    @io.on("hello")
    def hello(socket: sockjet.Socket, n: int) -> int:
        socket.join("everyone")
        return n + 1

    clients = [AsyncClient() for _ in range(CLIENTS)]
    received = 0
    all_received = asyncio.get_running_loop().create_future()

    def on_tick(value: int) -> None:
        nonlocal received
        received += value
        if received == CLIENTS:
            all_received.set_result(None)

    for client in clients:
        client.on("tick", on_tick)
    async with sockjet_server(io) as url:
        async with asyncio.timeout(30):
            await asyncio.gather(*(c.connect(url, transports=["websocket"]) for c in clients))
            assert len({c.sid for c in clients}) == CLIENTS
            replies = await asyncio.gather(
                *(c.emit_with_ack("hello", n) for n, c in enumerate(clients))
            )
            assert replies == [n + 1 for n in range(CLIENTS)]
            io.to("everyone").emit("tick", 1)
            await all_received
            await asyncio.gather(*(c.disconnect() for c in clients))
    assert received == CLIENTS
    assert client_tasks() == []
