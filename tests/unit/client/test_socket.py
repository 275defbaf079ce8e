"""The namespace socket: buffers, acknowledgements both ways, retries, auth, lifecycle."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from client_fakes import Harness, settle

from sockjet.client import ClientSocket, ConnectError
from sockjet.client.socket import MAX_RECEIVE_BUFFER, V2_SERVER
from sockjet.errors import AckTimeout
from sockjet.protocol.engineio import PacketType


def events_sent(harness: Harness) -> list[str | bytes]:
    """Socket.IO messages the client wrote on every transport so far."""
    return [m for t in harness.factory.created for m in t.sent_messages()]


async def reconnect(harness: Harness, *namespaces: str) -> None:
    """Lose the connection, let the backoff run, accept the new one."""
    harness.transport.fail(None)
    harness.clock.advance(harness.clock.pending()[0])
    harness.handshake("e2")
    for index, name in enumerate(namespaces or ("/",)):
        harness.accept(name, sid=f"r{index}")


# -- the send buffer ------------------------------------------------------------------------------


async def test_emits_before_the_namespace_connects_wait_and_go_in_order() -> None:
    harness = Harness()
    harness.client.emit("a", 1)
    await harness.client.connect("http://server", wait=False)
    harness.client.emit("b", {"x": [2]})
    harness.handshake()
    assert harness.transport.sent_messages() == ["0"]  # only the CONNECT so far
    harness.accept()
    assert harness.transport.sent_messages() == ["0", '2["a",1]', '2["b",{"x":[2]}]']
    await harness.client.disconnect()


async def test_emits_during_a_disconnection_are_sent_once_after_it() -> None:
    harness = Harness()
    await harness.connect()
    harness.client.emit("before")
    harness.transport.fail(None)
    harness.client.emit("during", 1)
    harness.client.emit("during", 2)
    harness.clock.advance(1.0)
    harness.handshake("e2")
    harness.accept()
    harness.clock.advance(60)  # nothing is sent again later
    assert events_sent(harness) == ["0", '2["before"]', "0", '2["during",1]', '2["during",2]']
    await harness.client.disconnect()


async def test_volatile_emits_are_dropped_unless_they_can_go_at_once() -> None:
    harness = Harness()
    harness.client.emit("lost", volatile=True)
    transport = await harness.connect()
    harness.client.emit("sent", volatile=True)
    transport.fail(None)
    harness.client.emit("lost too", volatile=True)
    await reconnect(harness)
    assert '2["sent"]' in events_sent(harness)
    assert not [m for m in events_sent(harness) if "lost" in str(m)]
    await harness.client.disconnect()


def test_bad_events_are_refused_at_once() -> None:
    harness = Harness()
    with pytest.raises(ValueError, match="reserved"):
        harness.client.emit("disconnect")
    with pytest.raises(TypeError):
        harness.client.emit(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        harness.client.emit("x", object())  # refused even while offline


def test_namespace_names_are_checked() -> None:
    harness = Harness()
    for bad in ("chat", "/a,b"):
        with pytest.raises(ValueError):
            harness.client.socket(bad)


# -- acknowledgements from the server -------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"), [("[]", None), ('["x"]', "x"), ('[1,{"a":2}]', (1, {"a": 2}))]
)
async def test_emit_with_ack_returns_the_answer(answer: str, expected: Any) -> None:
    harness = Harness()
    transport = await harness.connect()
    pending = asyncio.ensure_future(harness.client.emit_with_ack("q", 1))
    await settle()
    assert transport.sent_messages()[-1] == '20["q",1]'
    transport.receive_messages("30" + answer)
    assert await pending == expected
    await harness.client.disconnect()


async def test_binary_answers_and_binary_emits() -> None:
    harness = Harness()
    transport = await harness.connect()
    pending = asyncio.ensure_future(harness.client.emit_with_ack("up", b"\x00\x01"))
    await settle()
    assert transport.sent_messages()[-2:] == [
        '51-0["up",{"_placeholder":true,"num":0}]',
        b"\x00\x01",
    ]
    transport.receive_messages('61-0[{"_placeholder":true,"num":0}]', b"\xff")
    assert await pending == b"\xff"
    await harness.client.disconnect()


async def test_an_ack_timeout_raises_and_unsends_a_buffered_event() -> None:
    harness = Harness()
    pending = asyncio.ensure_future(harness.client.emit_with_ack("q", timeout=5))
    await settle()
    harness.clock.advance(5)
    with pytest.raises(AckTimeout, match="timed out"):
        await pending
    await harness.connect()
    assert events_sent(harness) == ["0"]  # the timed-out event is not sent late
    await harness.client.disconnect()


async def test_the_client_ack_timeout_is_the_default() -> None:
    harness = Harness(ack_timeout=2)
    await harness.connect()
    pending = asyncio.ensure_future(harness.client.emit_with_ack("q"))
    await settle()
    harness.clock.advance(2)
    with pytest.raises(AckTimeout):
        await pending
    await harness.client.disconnect()


async def test_awaited_answers_fail_when_the_connection_drops_unless_never_sent() -> None:
    harness = Harness()
    transport = await harness.connect()
    sent = asyncio.ensure_future(harness.client.emit_with_ack("sent"))
    await settle()
    transport.fail(None)
    buffered = asyncio.ensure_future(harness.client.emit_with_ack("buffered"))
    await settle()
    with pytest.raises(AckTimeout, match="disconnected"):
        await sent
    await reconnect(harness)
    assert harness.transport.sent_messages()[-1] == '21["buffered"]'
    harness.transport.receive_messages("31[true]")
    assert await buffered is True
    await harness.client.disconnect()


async def test_a_cancelled_emit_with_ack_forgets_its_event() -> None:
    harness = Harness()
    pending = asyncio.ensure_future(harness.client.emit_with_ack("q"))
    await settle()
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    await harness.connect()
    assert events_sent(harness) == ["0"]
    await harness.client.disconnect()


async def test_unknown_or_late_answers_are_ignored() -> None:
    harness = Harness()
    transport = await harness.connect()
    transport.receive_messages("37[1]", "3[1]")
    assert harness.client.connected
    await harness.client.disconnect()


# -- events from the server -----------------------------------------------------------------------


async def test_handler_return_values_answer_the_server() -> None:
    harness = Harness()
    harness.client.on("none", lambda: None)
    harness.client.on("one", lambda x: x * 2)
    harness.client.on("two", lambda: (1, "b"))
    harness.client.on("list", lambda: [1, 2])

    async def later(x: int) -> dict[str, int]:
        await asyncio.sleep(0)
        return {"x": x}

    harness.client.on("async", later)
    transport = await harness.connect()
    transport.receive_messages(
        '21["none"]', '22["one",4]', '23["two"]', '24["list"]', '25["async",7]', '2["one",1]'
    )
    await settle()
    assert transport.sent_messages()[1:] == [
        "31[]",
        "32[8]",
        '33[1,"b"]',
        "34[[1,2]]",
        '35[{"x":7}]',
    ]
    await harness.client.disconnect()


async def test_only_the_first_handler_answers_and_unhandled_events_are_not_answered() -> None:
    harness = Harness()
    seen: list[int] = []
    harness.client.on("e", lambda: 1)
    harness.client.on("e", lambda: seen.append(2) or 2)
    transport = await harness.connect()
    transport.receive_messages('21["e"]', '22["nobody"]')
    assert transport.sent_messages()[1:] == ["31[1]"]
    assert seen == [2]
    await harness.client.disconnect()


async def test_a_failing_handler_is_logged_and_answers_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = Harness()

    def broken() -> None:
        raise RuntimeError("boom")

    async def broken_async() -> None:
        raise RuntimeError("async boom")

    harness.client.on("e", broken)
    harness.client.on("f", broken_async)
    transport = await harness.connect()
    with caplog.at_level(logging.ERROR, logger="sockjet.client"):
        transport.receive_messages('21["e"]', '22["f"]')
        await settle()
    assert transport.sent_messages() == ["0"]
    assert "broken" in caplog.text and "broken_async" in caplog.text
    await harness.client.disconnect()


async def test_binary_events_reach_handlers_as_bytes() -> None:
    harness = Harness()
    harness.record("file")
    transport = await harness.connect()
    transport.receive_messages(
        '52-["file",{"_placeholder":true,"num":1},[{"_placeholder":true,"num":0}]]'
    )
    assert harness.events == []
    transport.receive_messages(b"first", b"second")
    assert harness.events == [("file", (b"second", [b"first"]))]
    await harness.client.disconnect()


async def test_on_any_sees_every_event_first_and_can_be_removed() -> None:
    harness = Harness()
    seen: list[tuple[Any, ...]] = []
    harness.record("e")

    def spy(*args: Any) -> str:
        seen.append(args)
        return "ignored"

    harness.client.on_any(spy)
    transport = await harness.connect()
    transport.receive_messages('2["e",1]', '21["unhandled"]', '2[7,"numeric"]')
    assert seen == [("e", 1), ("unhandled",), ("7", "numeric")]
    assert transport.sent_messages() == ["0"]  # catch-alls answer nothing
    harness.client.off_any(spy)
    transport.receive_messages('2["e",2]')
    assert len(seen) == 3
    assert harness.events == [("e", (1,)), ("e", (2,))]
    await harness.client.disconnect()


async def test_off_removes_handlers() -> None:
    harness = Harness()
    socket = harness.client.socket()
    first, second = socket.on("e", lambda: 1), socket.on("e", lambda: 2)
    assert socket.listeners("e") == [first, second]
    socket.off("e", first)
    assert socket.listeners("e") == [second]
    socket.off("e", second)
    socket.off("e", second)
    assert socket.listeners("e") == []
    socket.on("e", first)
    harness.client.off("e")
    assert socket.listeners("e") == []


async def test_events_before_the_connect_reply_wait_for_it() -> None:
    harness = Harness()
    harness.record("early", "connect")
    await harness.client.connect("http://server", wait=False)
    harness.handshake()
    harness.transport.receive_messages('2["early",1]')
    assert harness.events == []
    harness.accept()
    assert harness.events == [("early", (1,)), ("connect", ())]
    await harness.client.disconnect()


async def test_the_receive_buffer_is_bounded() -> None:
    harness = Harness()
    harness.record("e")
    await harness.client.connect("http://server", wait=False)
    harness.handshake()
    harness.transport.receive_messages(*['2["e"]'] * (MAX_RECEIVE_BUFFER + 5))
    harness.accept()
    assert len(harness.events) == MAX_RECEIVE_BUFFER
    await harness.client.disconnect()


# -- lifecycle ------------------------------------------------------------------------------------


async def test_connect_error_from_the_server_gives_up_on_the_namespace() -> None:
    harness = Harness()
    harness.record("connect_error")
    await harness.client.connect("http://server", wait=False)
    transport = harness.handshake()
    transport.receive_messages('4{"message":"not authorized","data":{"code":42}}')
    [(_, (error,))] = harness.events
    assert isinstance(error, ConnectError)
    assert (error.message, error.data) == ("not authorized", {"code": 42})
    assert not harness.client.socket().active
    assert transport.closed is True  # no namespace left: the connection closes
    assert harness.clock.pending() == []  # and does not come back
    await harness.client.disconnect()


async def test_a_connect_reply_without_sid_is_a_v2_server() -> None:
    harness = Harness()
    harness.record("connect_error")
    await harness.client.connect("http://server", wait=False)
    harness.handshake().receive_messages("0")
    [(_, (error,))] = harness.events
    assert error.message == V2_SERVER
    await harness.client.disconnect()


async def test_a_string_connect_error() -> None:
    harness = Harness()
    harness.record("connect_error")
    await harness.client.connect("http://server", wait=False)
    harness.handshake().receive_messages('4"bad"')
    assert harness.events[0][1][0].message == "bad"
    await harness.client.disconnect()


async def test_server_disconnect_is_final_for_the_namespace() -> None:
    harness = Harness()
    harness.record("disconnect")
    harness.record("disconnect", namespace="/chat")
    transport = await harness.connect("/", "/chat")
    transport.receive_messages("1/chat,")
    assert harness.events == [("disconnect", ("io server disconnect",))]
    assert harness.client.socket("/").connected and transport.closed is None
    transport.receive_messages("1")
    assert transport.closed is True
    assert harness.clock.pending() == []
    await harness.client.disconnect()


async def test_client_namespace_disconnect() -> None:
    harness = Harness()
    harness.record("disconnect", namespace="/chat")
    transport = await harness.connect("/", "/chat")
    harness.client.socket("/chat").disconnect()
    assert transport.sent_messages()[-1] == "1/chat,"
    assert harness.events == [("disconnect", ("io client disconnect",))]
    assert transport.closed is None  # "/" still uses the connection
    await harness.client.disconnect()
    assert transport.sent_messages()[-1] == "1"


async def test_a_socket_can_join_a_namespace_later() -> None:
    harness = Harness()
    transport = await harness.connect()
    other = harness.client.socket("/late")
    other.connect()
    assert transport.sent_messages()[-1] == "0/late,"
    harness.accept("/late", sid="L")
    assert other.connected and other.id == "L"
    assert "ClientSocket /late connected" in repr(other)
    await harness.client.disconnect()


def test_a_socket_needs_a_connection() -> None:
    with pytest.raises(RuntimeError):
        Harness().client.socket().connect()


# -- auth -----------------------------------------------------------------------------------------


async def test_auth_dict_and_callable_are_sent_at_each_connection() -> None:
    harness = Harness()
    calls: list[int] = []

    def auth() -> dict[str, int]:
        calls.append(1)
        return {"n": len(calls)}

    await harness.client.connect("http://server", namespaces=["/"], auth=auth, wait=False)
    harness.handshake()
    harness.accept()
    await reconnect(harness)
    assert events_sent(harness) == ['0{"n":1}', '0{"n":2}']
    await harness.client.disconnect()


async def test_async_auth() -> None:
    harness = Harness()

    async def auth() -> dict[str, str]:
        await asyncio.sleep(0)
        return {"token": "t"}

    await harness.client.connect("http://server", auth=auth, wait=False)
    harness.handshake()
    assert harness.transport.sent_messages() == []
    await settle()
    assert harness.transport.sent_messages() == ['0{"token":"t"}']
    await harness.client.disconnect()


@pytest.mark.parametrize("auth", [lambda: 1 / 0, lambda: ["not", "a", "dict"], {"x": object()}])
async def test_bad_auth_is_a_connect_error(auth: Any) -> None:
    harness = Harness()
    harness.record("connect_error")
    await harness.client.connect("http://server", auth=auth, wait=False)
    harness.handshake()
    [(_, (error,))] = harness.events
    assert error.message == "auth failed"
    assert harness.transport.sent_messages() == []
    await harness.client.disconnect()


# -- retries --------------------------------------------------------------------------------------


async def test_retries_resend_until_acknowledged_one_event_at_a_time() -> None:
    harness = Harness(retries=2, ack_timeout=1)
    transport = await harness.connect()
    harness.client.emit("first")
    harness.client.emit("second")
    assert transport.sent_messages()[1:] == ['20["first"]']  # second waits its turn
    harness.clock.advance(1)
    harness.clock.advance(1)
    assert transport.sent_messages()[1:] == ['20["first"]', '21["first"]', '22["first"]']
    transport.receive_messages("32[]")
    assert transport.sent_messages()[-1] == '23["second"]'
    transport.receive_messages("30[]")  # a late answer to an earlier try changes nothing
    transport.receive_messages("33[]")
    harness.clock.advance(10)
    assert len(transport.sent_messages()) == 5
    await harness.client.disconnect()


async def test_retries_give_up_after_the_last_try() -> None:
    harness = Harness(retries=1, ack_timeout=1)
    transport = await harness.connect()
    pending = asyncio.ensure_future(harness.client.emit_with_ack("q"))
    await settle()
    harness.clock.advance(1)
    harness.clock.advance(1)
    with pytest.raises(AckTimeout):
        await pending
    assert transport.sent_messages()[1:] == ['20["q"]', '21["q"]']
    await harness.client.disconnect()


async def test_retries_resend_after_a_reconnection() -> None:
    harness = Harness(retries=3)
    transport = await harness.connect()
    pending = asyncio.ensure_future(harness.client.emit_with_ack("q", 1))
    await settle()
    assert transport.sent_messages()[-1] == '20["q",1]'
    await reconnect(harness)
    assert harness.transport.sent_messages()[-1] == '21["q",1]'
    harness.transport.receive_messages('31["ok"]')
    assert await pending == "ok"
    await harness.client.disconnect()


async def test_volatile_emits_skip_the_retry_queue() -> None:
    harness = Harness(retries=1)
    transport = await harness.connect()
    harness.client.emit("v", volatile=True)
    assert transport.sent_messages()[-1] == '2["v"]'
    with pytest.raises(TypeError):
        harness.client.emit("x", object())
    await harness.client.disconnect()


async def test_a_cancelled_queued_emit_leaves_the_queue() -> None:
    harness = Harness(retries=1)
    transport = await harness.connect()
    harness.client.emit("head")
    pending = asyncio.ensure_future(harness.client.emit_with_ack("queued"))
    await settle()
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    transport.receive_messages("30[]")
    assert transport.sent_messages()[1:] == ['20["head"]']
    await harness.client.disconnect()


# -- other serializers ----------------------------------------------------------------------------


async def test_msgpack_messages_are_binary() -> None:
    import msgpack  # type: ignore[import-untyped]

    harness = Harness(serializer="msgpack")
    await harness.client.connect("http://server", wait=False)
    transport = harness.handshake()
    transport.receive_messages(msgpack.packb({"type": 0, "nsp": "/", "data": {"sid": "m"}}))
    assert harness.client.sid == "m"
    harness.client.emit("e", b"\x01")
    sent = [msgpack.unpackb(m) for m in transport.sent_messages()]
    assert sent[-1] == {"type": 2, "nsp": "/", "data": ["e", b"\x01"]}
    await harness.client.disconnect()


async def test_an_ack_from_an_earlier_connection_is_not_sent_on_a_new_one() -> None:
    harness = Harness()
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def slow() -> int:
        return await gate

    harness.client.on("slow", slow)
    transport = await harness.connect()
    transport.receive_messages('21["slow"]')
    await settle()
    await reconnect(harness)
    gate.set_result(1)
    await settle()
    assert harness.transport.sent_messages() == ["0"]
    assert isinstance(harness.client.socket(), ClientSocket)
    await harness.client.disconnect()


async def test_garbage_from_the_server_is_a_parse_error() -> None:
    harness = Harness()
    harness.record("disconnect")
    transport = await harness.connect()
    transport.receive_messages("9garbage")
    assert harness.events == [("disconnect", ("parse error",))]
    assert harness.clock.pending() == [1.0]  # and it reconnects
    assert [p.type for p in transport.sent] == [PacketType.MESSAGE]
    await harness.client.disconnect()


async def test_a_finished_connection_cannot_be_joined() -> None:
    harness = Harness(reconnection=False)
    transport = await harness.connect()
    transport.fail(None)
    with pytest.raises(RuntimeError):
        harness.client.socket("/other").connect()
    await harness.client.disconnect()
