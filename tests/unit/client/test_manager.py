"""The manager: reconnection with backoff, its events, the connect timeout, multiplexing."""

from __future__ import annotations

import asyncio

import pytest
from client_fakes import Harness, engine_open

from sockjet.client import ConnectError, TransportError
from sockjet.client.manager import ManagerState


async def test_a_lost_connection_comes_back_after_the_backoff_delay() -> None:
    harness = Harness()
    harness.record("connect", "disconnect", "reconnect_attempt", "reconnect")
    transport = await harness.connect()
    transport.fail(None)
    assert harness.clock.pending() == [1.0]
    assert len(harness.factory.created) == 1
    harness.clock.advance(0.999)
    assert len(harness.factory.created) == 1
    harness.clock.advance(0.001)
    assert len(harness.factory.created) == 2
    harness.handshake("e2")
    harness.accept(sid="s2")
    assert harness.events == [
        ("connect", ()),
        ("disconnect", ("transport close",)),
        ("reconnect_attempt", (1,)),
        ("reconnect", (1,)),
        ("connect", ()),
    ]
    assert harness.client.sid == "s2"
    assert harness.factory.created[1].sid == "e2"  # a new Engine.IO session
    await harness.client.disconnect()


async def test_failed_attempts_double_the_delay_up_to_the_max() -> None:
    harness = Harness(reconnection_delay=1.0, reconnection_delay_max=5.0)
    harness.record("reconnect_attempt", "reconnect_error", "reconnect")
    transport = await harness.connect()
    transport.fail(TransportError("websocket error"))
    delays = []
    for _ in range(5):
        delays.append(harness.clock.pending()[0])
        harness.clock.advance(delays[-1])
        harness.transport.fail(TransportError("xhr poll error"))
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    harness.clock.advance(harness.clock.pending()[0])
    harness.handshake("ok")
    names = [name for name, _ in harness.events]
    assert names == ["reconnect_attempt", "reconnect_error"] * 5 + [
        "reconnect_attempt",
        "reconnect",
    ]
    assert harness.events[-1] == ("reconnect", (6,))
    error = harness.events[1][1][0]
    assert isinstance(error, ConnectError) and error.message == "xhr poll error"
    # a success resets the backoff
    harness.accept()
    harness.transport.fail(None)
    assert harness.clock.pending() == [1.0]
    await harness.client.disconnect()


async def test_jitter_randomizes_each_delay() -> None:
    harness = Harness(random=lambda: 0.25)  # even tenth: minus 25 % of 50 %
    transport = await harness.connect()
    transport.fail(None)
    assert harness.clock.pending() == [0.875]
    await harness.client.disconnect()


async def test_reconnection_gives_up_after_the_attempts() -> None:
    harness = Harness(reconnection_attempts=2)
    harness.record("reconnect_attempt", "reconnect_failed", "disconnect")
    transport = await harness.connect()
    transport.fail(None)
    for _ in range(2):
        harness.clock.advance(harness.clock.pending()[0])
        harness.transport.fail(TransportError("websocket error"))
    assert [name for name, _ in harness.events] == [
        "disconnect",
        "reconnect_attempt",
        "reconnect_attempt",
        "reconnect_failed",
    ]
    assert harness.clock.pending() == []
    await asyncio.wait_for(harness.client.wait(), 1)
    manager = harness.client.manager
    assert manager is not None and manager.finished
    await harness.client.disconnect()


async def test_no_reconnection_when_disabled() -> None:
    harness = Harness(reconnection=False)
    harness.record("disconnect")
    transport = await harness.connect()
    transport.fail(None)
    assert harness.clock.pending() == []
    assert harness.events == [("disconnect", ("transport close",))]
    await asyncio.wait_for(harness.client.wait(), 1)
    await harness.client.disconnect()


async def test_a_slow_handshake_times_out_and_is_retried() -> None:
    harness = Harness(timeout=3)
    harness.record("connect_error", "reconnect_attempt")
    await harness.client.connect("http://server", wait=False)
    first = harness.transport
    harness.clock.advance(3)
    [(_, (error,))] = harness.events
    assert error.message == "timeout"
    assert first.closed is True
    assert harness.clock.pending() == [1.0]  # without wait, the first attempt is retried too
    harness.clock.advance(1)
    harness.handshake()
    first.receive(engine_open("late"))  # the abandoned attempt is ignored
    harness.accept()
    assert harness.client.connected
    await harness.client.disconnect()


async def test_the_timeout_can_be_disabled() -> None:
    harness = Harness(timeout=None)
    await harness.client.connect("http://server", wait=False)
    assert harness.clock.pending() == []
    await harness.client.disconnect()


async def test_namespaces_share_one_connection() -> None:
    harness = Harness()
    harness.record("news")
    harness.record("news", namespace="/chat")
    transport = await harness.connect("/", "/chat")
    assert len(harness.factory.created) == 1
    assert transport.sent_messages() == ["0", "0/chat,"]
    transport.receive_messages('2/chat,["news","c"]', '2["news","root"]', '2/nope,["news",1]')
    assert harness.events == [("news", ("c",)), ("news", ("root",))]
    harness.client.emit("hi", namespace="/chat")
    assert transport.sent_messages()[-1] == '2/chat,["hi"]'
    assert harness.client.namespaces == ["/", "/chat"]
    assert harness.client.socket("/chat").id == "s2"
    await harness.client.disconnect()
    assert transport.sent_messages()[-2:] == ["1", "1/chat,"]


async def test_every_namespace_reconnects_on_the_new_connection() -> None:
    harness = Harness()
    transport = await harness.connect("/", "/chat")
    transport.fail(None)
    harness.clock.advance(1)
    harness.handshake("e2")
    assert harness.transport.sent_messages() == ["0", "0/chat,"]
    await harness.client.disconnect()


async def test_a_namespace_connecting_during_a_reconnection_waits_for_it() -> None:
    harness = Harness()
    transport = await harness.connect()
    transport.fail(None)
    harness.client.socket("/later").connect()
    assert len(harness.factory.created) == 1  # no second connection of its own
    harness.clock.advance(1)
    harness.handshake("e2")
    assert harness.transport.sent_messages() == ["0", "0/later,"]
    await harness.client.disconnect()


async def test_a_finished_manager_cannot_reopen() -> None:
    harness = Harness(reconnection=False)
    transport = await harness.connect()
    transport.fail(None)
    manager = harness.client.manager
    assert manager is not None and manager.state is ManagerState.CLOSED
    with pytest.raises(RuntimeError):
        manager.open()
    assert "Manager closed" in repr(manager)
    await harness.client.disconnect()


async def test_reconnect_handlers_can_stop_the_client() -> None:
    harness = Harness()
    harness.client.on("reconnect_attempt", lambda attempt: harness.client.socket().disconnect())
    transport = await harness.connect()
    transport.fail(None)
    harness.clock.advance(1)
    assert len(harness.factory.created) == 1
    assert harness.clock.pending() == []
    await asyncio.wait_for(harness.client.wait(), 1)
    await harness.client.disconnect()


async def test_manager_handlers_can_be_removed() -> None:
    harness = Harness()
    calls: list[int] = []
    handler = harness.client.on("reconnect_attempt", calls.append)
    transport = await harness.connect()
    harness.client.off("reconnect_attempt", handler)
    harness.client.off("reconnect_attempt", handler)
    transport.fail(None)
    harness.clock.advance(1)
    harness.client.on("reconnect", calls.append)
    harness.client.off("reconnect")
    harness.handshake()
    assert calls == []
    await harness.client.disconnect()
