"""The harness proves itself against Node's reference socket.io server before judging sockjet."""

from __future__ import annotations

import pytest
from peers import ConnectError, NodePuppet, NodeSocketIOServer

pytestmark = [pytest.mark.node, pytest.mark.asyncio(loop_scope="module")]


async def test_connect_welcome_and_ack(puppet: NodePuppet, node_server: NodeSocketIOServer) -> None:
    assert puppet.client_version.startswith("4.")
    c = await puppet.connect(node_server.url)
    welcome = await c.next_event("welcome")
    assert welcome == [{"id": c.id, "nsp": "/", "auth": {}}]
    assert await c.emit_with_ack("echo", 1, "two", {"three": [3]}) == [1, "two", {"three": [3]}]
    await c.emit("echo", "back")
    assert await c.next_event("echo") == ["back"]
    await c.disconnect()
    assert await c.wait_disconnect() == "io client disconnect"
    report = await node_server.next_report("disconnect", c.id)
    assert report["reason"] == "client namespace disconnect"


async def test_binary_round_trip_both_ways(
    puppet: NodePuppet, node_server: NodeSocketIOServer
) -> None:
    c = await puppet.connect(node_server.url, transports=["websocket"])
    payload = {"blob": b"\x00\x01\xff" * 10, "nested": [b"", {"deep": b"\xde\xad"}], "n": 1}
    assert await c.emit_with_ack("echo", payload, b"tail") == [payload, b"tail"]
    await c.forget()


async def test_polling_upgrade_and_transport_names(
    puppet: NodePuppet, node_server: NodeSocketIOServer
) -> None:
    polling = await puppet.connect(node_server.url, transports=["polling"])
    assert await polling.transport() == "polling"
    assert await polling.emit_with_ack("echo", b"\x01") == [b"\x01"]
    upgrading = await puppet.connect(node_server.url)
    assert await upgrading.wait_upgrade() == "websocket"
    assert await upgrading.transport() == "websocket"
    await polling.forget()
    await upgrading.forget()


async def test_server_ack_answered_by_registered_reply(
    puppet: NodePuppet, node_server: NodeSocketIOServer
) -> None:
    c = await puppet.connect(node_server.url)
    c.on_ack_reply("question", ["yes", b"\x02"])
    await c.emit("ask", 2000, "question", 42)
    assert await c.next_event("question") == [42]
    assert await c.next_event("answer") == ["yes", b"\x02"]
    await c.forget()


async def test_server_ack_answered_manually_and_timeout(
    puppet: NodePuppet, node_server: NodeSocketIOServer
) -> None:
    c = await puppet.connect(node_server.url)
    await c.emit("ask", 2000, "manual", "q")
    received = await c.next_received("manual")
    assert received.args == ["q"] and received.ack_id is not None
    await c.ack(received.ack_id, "a", 1)
    assert await c.next_event("answer") == ["a", 1]
    await c.emit("ask", 50, "ignored")
    assert (await c.next_received("ignored")).ack_id is not None
    assert await c.next_event("answer_error") == ["operation has timed out"]
    await c.forget()


async def test_namespaces_and_middleware_refusal(
    puppet: NodePuppet, node_server: NodeSocketIOServer
) -> None:
    main = await puppet.connect(node_server.url)
    admin = await puppet.connect(node_server.url, "/admin", share=main)
    assert (await admin.next_event("welcome"))[0]["nsp"] == "/admin"
    assert await admin.emit_with_ack("echo", "a") == ["a"]
    assert await main.emit_with_ack("echo", "m") == ["m"]
    assert (await node_server.next_report("connection", main.id))["nsp"] == "/"
    assert (await node_server.next_report("connection", admin.id))["nsp"] == "/admin"
    with pytest.raises(ConnectError) as refused:
        await puppet.connect(node_server.url, "/private")
    assert refused.value.message == "not authorized"
    assert refused.value.data == {"code": 42, "hint": "token"}
    ok = await puppet.connect(node_server.url, "/private", auth={"token": "secret"})
    assert (await ok.next_event("welcome"))[0]["auth"] == {"token": "secret"}
    with pytest.raises(ConnectError, match="Invalid namespace"):
        await puppet.connect(node_server.url, "/nowhere")
    for c in (admin, main, ok):
        await c.forget()


async def test_disconnect_reasons(puppet: NodePuppet, node_server: NodeSocketIOServer) -> None:
    kicked = await puppet.connect(node_server.url, transports=["websocket"])
    await kicked.emit("kick")
    assert await kicked.wait_disconnect() == "io server disconnect"
    closed = await puppet.connect(node_server.url, transports=["websocket"])
    await closed.emit("close_engine")
    assert await closed.wait_disconnect() == "transport close"
    gone = await puppet.connect(node_server.url)
    await gone.close_engine()
    assert await gone.wait_disconnect() == "forced close"
    reasons = {
        kicked.id: "server namespace disconnect",
        closed.id: "forced close",
        gone.id: "transport close",
    }
    seen: dict[str | None, str] = {}
    while len(seen) < len(reasons):
        report = await node_server.next_report("disconnect")
        if report["id"] in reasons:
            seen[report["id"]] = report["reason"]
    assert seen == reasons


async def test_frozen_client_is_dropped_for_ping_timeout(
    puppet: NodePuppet, node_server: NodeSocketIOServer
) -> None:
    c = await puppet.connect(node_server.url, transports=["websocket"])
    await c.freeze()
    # The server pings every 300 ms and waits 300 ms for the pong.
    assert await c.wait_disconnect(timeout=3) == "transport close"
    report = await node_server.next_report("disconnect", c.id)
    assert report["reason"] == "ping timeout"


async def test_puppet_crash_fails_waits_loudly() -> None:
    async with NodePuppet(timeout=2) as p:
        assert p.proc is not None
        c = await p.connect("http://127.0.0.1:9", wait=False)
        p.proc.kill()
        with pytest.raises(Exception, match="exited with code"):
            await c.next_event("never")
        assert not p.alive
