"""The Socket.IO Admin UI's side of the wire, played by the official socket.io-client: it logs in
to ``/admin`` of an instrumented sockjet server, watches other official clients come, join a
room and go, and disconnects one of them."""

from __future__ import annotations

from typing import Any

import bcrypt
import pytest
from peers import ConnectError, NodeClient, NodePuppet, Serve

from sockjet import Server, Socket
from sockjet.observe.admin import instrument

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]

UI_ORIGIN = "https://admin.socket.io"
PASSWORD = "changeit"
HASHED = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


async def next_about(
    admin: NodeClient, event: str, socket_id: str | None, room: str | None = None
) -> list[Any]:
    """The next ``event`` the admin receives about ``socket_id`` (and ``room`` for room
    events), skipping the others: the admin's own socket, the sockets' own rooms..."""
    while True:
        args = await admin.next_event(event)
        if event == "socket_connected":
            about = args[0]["id"]
        elif event in ("room_joined", "room_left"):
            about = args[2] if args[1] == room else None
        else:
            about = args[1]
        if about == socket_id:
            return args


async def test_admin_ui_watches_and_disconnects_clients(puppet: NodePuppet, serve: Serve) -> None:
    # The hosted UI is a cross-origin page that sends credentials: CORS must allow both.
    io = Server(cors_origins=[UI_ORIGIN], cors_credentials=True)
    instrument(
        io,
        auth={"type": "basic", "username": "admin", "password": HASHED},
        server_id="sockjet-test",
        stats_interval=0.1,
    )

    @io.on("enter")
    def enter(socket: Socket, room: str) -> str:
        socket.join(room)
        return "entered"

    url = await serve(io)
    ui: dict[str, Any] = {"extraHeaders": {"Origin": UI_ORIGIN}, "withCredentials": True}
    with pytest.raises(ConnectError) as refused:
        await puppet.connect(url, "/admin", auth={"username": "admin", "password": "nope"}, **ui)
    assert refused.value.message == "invalid credentials"

    early = await puppet.connect(url, transports=["websocket"])
    admin = await puppet.connect(
        url, "/admin", auth={"username": "admin", "password": PASSWORD}, **ui
    )
    (session,) = await admin.next_event("session")
    (config,) = await admin.next_event("config")
    assert config["supportedFeatures"] == [
        "EMIT",
        "JOIN",
        "LEAVE",
        "DISCONNECT",
        "MJOIN",
        "MLEAVE",
        "MDISCONNECT",
        "AGGREGATED_EVENTS",
        "ALL_EVENTS",
    ]
    (sockets,) = await admin.next_event("all_sockets")
    by_id = {item["id"]: item for item in sockets}
    assert set(by_id) == {early.id, admin.id}
    assert by_id[early.id]["nsp"] == "/" and by_id[early.id]["transport"] == "websocket"
    assert by_id[early.id]["rooms"] == [early.id]
    assert by_id[early.id]["handshake"]["address"] == "127.0.0.1"
    assert by_id[admin.id]["nsp"] == "/admin" and by_id[admin.id]["handshake"]["xdomain"]
    seen: set[str] = set()  # the aggregated event types reported so far

    async def next_stats() -> dict[str, Any]:
        (stats,) = await admin.next_event("server_stats")
        seen.update(item["type"] for item in stats["aggregatedEvents"])
        return dict(stats)

    stats = await next_stats()
    assert stats["serverId"] == "sockjet-test" and stats["clientsCount"] >= 2
    assert {"name": "/admin", "socketsCount": 1} in stats["namespaces"]

    # Another client comes over long-polling, joins a room and leaves.
    other = await puppet.connect(url, transports=["polling"])
    connected, when = await next_about(admin, "socket_connected", other.id)
    assert connected["nsp"] == "/" and connected["transport"] == "polling"
    assert connected["clientId"] and when.endswith("Z")
    while (await next_stats())["pollingClientsCount"] < 1:  # the polling client shows
        pass
    assert await other.emit_with_ack("enter", "lobby") == ["entered"]
    assert (await next_about(admin, "room_joined", other.id, "lobby"))[0] == "/"
    received = await admin.next_event("event_received")
    assert received[:3] == ["/", other.id, ["enter", "lobby"]]
    await other.disconnect()
    nsp, sid, reason, _ = await next_about(admin, "socket_disconnected", other.id)
    assert (nsp, sid, reason) == ("/", other.id, "client namespace disconnect")

    # The aggregated counters saw the engine traffic (the other client's connection closed).
    while not {"rawConnection", "rawDisconnection", "bytesIn", "bytesOut"} <= seen:
        await next_stats()

    # The admin disconnects the early client, as the UI's "disconnect" button does.
    await admin.emit("_disconnect", "/", False, early.id)
    assert await early.wait_disconnect() == "io server disconnect"
    nsp, sid, reason, _ = await next_about(admin, "socket_disconnected", early.id)
    assert (nsp, sid, reason) == ("/", early.id, "server namespace disconnect")

    # After a reload the UI logs in again with the session id alone.
    again = await puppet.connect(url, "/admin", auth={"sessionId": session}, **ui)
    assert "EMIT" in (await again.next_event("config"))[0]["supportedFeatures"]
    await again.disconnect()
    await admin.disconnect()
