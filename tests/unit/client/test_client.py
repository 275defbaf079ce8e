"""The AsyncClient API: connecting (and waiting for it), options, state, disconnecting."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from client_fakes import Harness, settle

from sockjet.client import AsyncClient, ConnectError, TransportError
from sockjet.errors import AckTimeout


async def start(harness: Harness, **options: Any) -> asyncio.Task[None]:
    """``connect()`` (waiting) in a task, run up to its first wait."""
    options.setdefault("namespaces", ["/"])
    task = asyncio.ensure_future(harness.client.connect("http://server", **options))
    await settle()
    return task


def others() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


async def test_connect_returns_once_every_namespace_is_connected() -> None:
    harness = Harness()
    task = await start(harness, namespaces=["/", "/chat"])
    harness.handshake()
    harness.accept("/")
    await settle()
    assert not task.done()
    harness.accept("/chat", sid="c")
    await task
    client = harness.client
    assert client.connected and client.sid == "s1" and client.transport == "polling"
    assert client.socket("/chat").id == "c"
    assert "AsyncClient connected sid=s1" in repr(client)
    await client.disconnect()
    assert not client.connected and client.sid is None and client.transport is None
    assert others() == set()


async def test_a_refused_namespace_raises_and_cleans_up() -> None:
    harness = Harness()
    task = await start(harness, namespaces=["/", "/private"])
    transport = harness.handshake()
    harness.accept("/")
    transport.receive_messages('4/private,{"message":"not authorized","data":{"code":42}}')
    with pytest.raises(ConnectError) as info:
        await task
    assert (info.value.message, info.value.data) == ("not authorized", {"code": 42})
    assert transport.closed is True
    assert harness.client.manager is None
    assert others() == set()


async def test_a_failed_first_attempt_raises_without_retrying() -> None:
    harness = Harness()
    harness.record("connect_error")
    task = await start(harness)
    harness.transport.fail(TransportError("xhr poll error", description="HTTP 400"))
    with pytest.raises(TransportError, match="xhr poll error: HTTP 400"):
        await task
    assert len(harness.factory.created) == 1
    assert harness.clock.pending() == []
    assert [name for name, _ in harness.events] == ["connect_error"]


async def test_with_retry_the_first_attempt_is_retried() -> None:
    harness = Harness()
    task = await start(harness, retry=True)
    harness.transport.fail(TransportError("websocket error"))
    harness.clock.advance(1)
    harness.handshake()
    harness.accept()
    await task
    assert harness.client.connected
    await harness.client.disconnect()


async def test_with_retry_connect_fails_once_reconnection_gives_up() -> None:
    harness = Harness(reconnection_attempts=1)
    task = await start(harness, retry=True)
    harness.transport.fail(TransportError("websocket error"))
    harness.clock.advance(1)
    harness.transport.fail(TransportError("websocket error"))
    with pytest.raises(ConnectError):
        await task
    assert others() == set()


async def test_a_handshake_over_the_timeout_raises() -> None:
    harness = Harness(timeout=5)
    task = await start(harness)
    harness.clock.advance(5)
    with pytest.raises(ConnectError, match="timeout"):
        await task


async def test_the_namespaces_must_answer_within_the_timeout() -> None:
    harness = Harness(timeout=0.01)
    task = await start(harness)
    harness.handshake()
    with pytest.raises(ConnectError, match="timeout"):
        await task  # the server never answers the CONNECT
    assert harness.transport.closed is True


async def test_cancelling_connect_cleans_up() -> None:
    harness = Harness()
    task = await start(harness)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert harness.transport.closed is True
    assert harness.client.manager is None


async def test_connect_twice_is_an_error_until_disconnected() -> None:
    harness = Harness()
    await harness.connect()
    with pytest.raises(RuntimeError, match="already connected"):
        await harness.client.connect("http://server")
    await harness.client.disconnect()
    await harness.connect()
    assert harness.client.connected
    await harness.client.disconnect()


async def test_connect_again_after_the_server_ended_it() -> None:
    harness = Harness()
    transport = await harness.connect()
    transport.receive_messages("1")  # the server disconnects the only namespace
    await asyncio.wait_for(harness.client.wait(), 1)
    await harness.connect()
    assert harness.client.connected and len(harness.factory.created) == 2
    await harness.client.disconnect()
    await harness.client.wait()  # returns at once once disconnected


@pytest.mark.parametrize(
    ("url", "base", "namespace", "query"),
    [
        ("http://h:1", "http://h:1", "/", {}),
        ("https://h/", "https://h", "/", {}),
        ("ws://h:2/chat?a=1", "http://h:2", "/chat", {"a": "1"}),
        ("WSS://h/x/y/", "https://h", "/x/y", {}),
    ],
)
async def test_urls(url: str, base: str, namespace: str, query: dict[str, str]) -> None:
    harness = Harness()
    await harness.client.connect(
        url, wait=False, query={"b": "2"}, path="engine", headers={"X": "y"}
    )
    options = harness.factory.options
    assert options is not None
    assert (options.url, options.path, dict(options.query)) == (
        base,
        "/engine/",
        query | {"b": "2"},
    )
    assert options.headers == {"X": "y"}
    manager = harness.client.manager
    assert manager is not None and list(manager.sockets) == [namespace]
    await harness.client.disconnect()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "localhost:5000"}, "invalid URL"),
        ({"url": "ftp://h"}, "invalid URL"),
        ({"transports": []}, "transports"),
        ({"transports": ["carrier-pigeon"]}, "transports"),
        ({"namespaces": []}, "namespaces"),
        ({"namespaces": ["chat"]}, "namespace"),
    ],
)
async def test_bad_connect_arguments(options: dict[str, Any], message: str) -> None:
    url = options.pop("url", "http://h")
    with pytest.raises(ValueError, match=message):
        await Harness().client.connect(url, **options)


@pytest.mark.parametrize(
    "options",
    [
        {"reconnection_attempts": -1},
        {"reconnection_delay": -1},
        {"randomization_factor": 2},
        {"timeout": 0},
        {"retries": -1},
        {"ack_timeout": 0},
        {"max_payload": 0},
        {"serializer": "yaml"},
    ],
)
def test_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        AsyncClient(**options)


async def test_default_namespaces_are_those_used_before_connecting() -> None:
    harness = Harness()
    harness.client.on("news", lambda: None, namespace="/news")
    harness.client.on_any(lambda *a: None, namespace="/spy")
    await harness.client.connect("http://h", wait=False)
    harness.handshake()
    assert harness.transport.sent_messages() == ["0/news,", "0/spy,"]
    await harness.client.disconnect()


async def test_emit_and_emit_with_ack_for_a_namespace() -> None:
    harness = Harness()
    transport = await harness.connect("/chat")
    harness.client.emit("a", 1, namespace="/chat")
    harness.client.send("hello", namespace="/chat")
    pending = asyncio.ensure_future(harness.client.emit_with_ack("b", namespace="/chat"))
    await settle()
    transport.receive_messages("3/chat,0[5]")
    assert await pending == 5
    assert transport.sent_messages()[1:] == [
        '2/chat,["a",1]',
        '2/chat,["message","hello"]',
        '2/chat,0["b"]',
    ]
    await harness.client.disconnect()


async def test_disconnect_fails_what_is_pending_and_waits_for_handlers() -> None:
    harness = Harness()
    finished: list[str] = []

    async def on_disconnect(reason: str) -> None:
        await asyncio.sleep(0)
        finished.append(reason)

    harness.client.on("disconnect", on_disconnect)
    await harness.connect()
    pending = asyncio.ensure_future(harness.client.emit_with_ack("q"))
    await settle()
    await harness.client.disconnect()
    assert finished == ["io client disconnect"]
    with pytest.raises(AckTimeout, match="disconnected"):
        await pending
    assert others() == set()
    await harness.client.disconnect()  # idempotent


async def test_disconnect_cancels_handlers_still_running_after_the_grace() -> None:
    harness = Harness()
    cancelled: list[bool] = []

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    harness.client.on("connect", forever)
    await harness.connect()
    await settle()
    await harness.client.disconnect(grace=0.01)
    assert cancelled == [True]
    assert others() == set()


async def test_a_handler_may_disconnect_the_client() -> None:
    harness = Harness()
    done: list[bool] = []

    async def bye() -> None:
        await harness.client.disconnect()
        done.append(True)

    harness.client.on("bye", bye)
    transport = await harness.connect()
    transport.receive_messages('2["bye"]')
    await asyncio.wait_for(harness.client.wait(), 1)
    await settle()
    assert done == [True] and transport.closed is True


async def test_async_context_manager_disconnects() -> None:
    harness = Harness()
    async with harness.client as client:
        await harness.connect()
        assert client.connected
    assert not harness.client.connected
    assert harness.transport.sent_messages()[-1] == "1"
