"""Connection state recovery on the client: the session id (``pid``) the server gives, the
offset it appends to events, both sent back in CONNECT, and ``recovered``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from client_fakes import Harness, settle

from sockjet.client import AsyncClient


def accept(harness: Harness, sid: str, pid: str | None = None, namespace: str = "/") -> None:
    """Play the server's CONNECT answer, with a session id when recovery is enabled."""
    prefix = "" if namespace == "/" else namespace + ","
    data = {"sid": sid} if pid is None else {"sid": sid, "pid": pid}
    harness.transport.receive_messages(f"0{prefix}{json.dumps(data)}")


def lose_connection(harness: Harness, engine_sid: str = "e2") -> None:
    """Drop the connection, let the backoff run and handshake again; the namespaces then send
    their CONNECT (read it with :func:`last_connect`)."""
    harness.transport.fail(None)
    harness.clock.advance(harness.clock.pending()[0])
    harness.handshake(engine_sid)


def last_connect(harness: Harness, namespace: str = "/") -> Any:
    """The payload of the last CONNECT sent for ``namespace`` (None: no payload)."""
    prefix = "0" if namespace == "/" else f"0{namespace},"
    sent = [m for t in harness.factory.created for m in t.sent_messages()]
    connects = [m for m in sent if isinstance(m, str) and m.startswith(prefix)]
    if namespace == "/":  # "0/chat,..." is another namespace's CONNECT
        connects = [m for m in connects if not m.startswith("0/")]
    assert connects, f"no CONNECT for {namespace} in {sent}"
    payload = connects[-1][len(prefix) :]
    return json.loads(payload) if payload else None


async def start(harness: Harness, **options: Any) -> None:
    await harness.client.connect("http://server", wait=False, **options)
    harness.handshake()


async def test_recovered_only_when_the_same_pid_comes_back() -> None:
    harness = Harness()
    harness.record("news", "connect")
    await start(harness)
    assert last_connect(harness) is None  # nothing known yet: a plain CONNECT
    accept(harness, "s1", pid="p1")
    assert harness.client.recovered is False  # a first connection recovers nothing
    harness.transport.receive_messages('2["news",1,"o1"]')

    lose_connection(harness)
    assert last_connect(harness) == {"pid": "p1", "offset": "o1"}
    accept(harness, "s1", pid="p1")
    assert harness.client.recovered is True
    assert harness.client.socket().recovered is True
    assert harness.client.sid == "s1"

    lose_connection(harness, "e3")
    accept(harness, "s2", pid="p2")  # the server could not restore it: a new session
    assert harness.client.recovered is False
    lose_connection(harness, "e4")
    assert last_connect(harness) == {"pid": "p2", "offset": "o1"}
    assert harness.events == [
        ("connect", ()),
        ("news", (1, "o1")),
        ("connect", ()),
        ("connect", ()),
    ]
    await harness.client.disconnect()


async def test_handlers_receive_the_offset_as_their_last_argument() -> None:
    harness = Harness()
    harness.record("news")
    seen: list[tuple[Any, ...]] = []
    harness.client.on_any(lambda *args: seen.append(args))
    await start(harness)
    accept(harness, "s1", pid="p1")
    harness.transport.receive_messages('2["news",{"a":1},"o1"]')
    assert harness.events == [("news", ({"a": 1}, "o1"))]
    assert seen == [("news", {"a": 1}, "o1")]
    await harness.client.disconnect()


async def test_the_offset_is_the_last_string_argument_of_events_without_ack() -> None:
    harness = Harness()
    await start(harness)
    accept(harness, "s1", pid="p1")
    harness.transport.receive_messages('2["e","o1"]')
    for ignored in ('2["e",1]', '2["e","x",{"not":"last"}]', '21["e","acked"]', '2["bare"]'):
        harness.transport.receive_messages(ignored)
    lose_connection(harness)
    assert last_connect(harness) == {"pid": "p1", "offset": "o1"}
    await harness.client.disconnect()


async def test_no_offset_is_recorded_while_no_pid_is_known() -> None:
    harness = Harness()
    await start(harness)
    accept(harness, "s1")  # recovery not enabled
    harness.transport.receive_messages('2["e","looks like an offset"]')
    lose_connection(harness)
    assert last_connect(harness) is None
    accept(harness, "s2", pid="p1")  # now it is (say, the server was upgraded)
    assert harness.client.recovered is False
    lose_connection(harness, "e3")
    assert last_connect(harness) == {"pid": "p1"}  # no offset received yet: no key at all
    await harness.client.disconnect()


async def test_without_a_pid_the_connect_payload_is_the_auth_alone() -> None:
    harness = Harness()
    await start(harness, auth={"token": "t"})
    assert last_connect(harness) == {"token": "t"}
    accept(harness, "s1")
    harness.transport.receive_messages('2["e","o1"]')
    lose_connection(harness)
    assert last_connect(harness) == {"token": "t"}
    accept(harness, "s1")
    assert harness.client.recovered is False
    await harness.client.disconnect()


async def test_pid_and_offset_are_merged_with_an_auth_dict_whose_keys_win() -> None:
    harness = Harness()
    await start(harness, auth={"token": "t"})
    accept(harness, "s1", pid="p1")
    harness.transport.receive_messages('2["e","o1"]')
    lose_connection(harness)
    assert last_connect(harness) == {"pid": "p1", "offset": "o1", "token": "t"}
    accept(harness, "s1", pid="p1")
    harness.client.socket().auth = {"token": "t", "offset": "mine"}
    lose_connection(harness, "e3")
    assert last_connect(harness) == {"pid": "p1", "offset": "mine", "token": "t"}
    await harness.client.disconnect()


async def test_pid_and_offset_are_merged_with_a_callable_auth() -> None:
    harness = Harness()
    calls: list[int] = []

    async def auth() -> dict[str, int]:
        await asyncio.sleep(0)
        calls.append(1)
        return {"n": len(calls)}

    await start(harness, auth=auth)
    await settle()
    assert last_connect(harness) == {"n": 1}
    accept(harness, "s1", pid="p1")
    harness.transport.receive_messages('2["e","o1"]')
    lose_connection(harness)
    await settle()
    assert last_connect(harness) == {"pid": "p1", "offset": "o1", "n": 2}
    accept(harness, "s1", pid="p1")
    assert harness.client.recovered is True

    harness.client.socket().auth = lambda: None  # a plain callable returning no payload
    lose_connection(harness, "e3")
    assert last_connect(harness) == {"pid": "p1", "offset": "o1"}
    await harness.client.disconnect()


async def test_missed_events_replayed_before_the_connect_answer_come_first() -> None:
    harness = Harness()
    seen: list[tuple[str, tuple[Any, ...], bool]] = []

    def recorder(event: str) -> Any:
        def handler(*args: Any) -> None:
            seen.append((event, args, harness.client.recovered))

        return handler

    harness.client.on("news", recorder("news"))
    harness.client.on("connect", recorder("connect"))
    await start(harness)
    accept(harness, "s1", pid="p1")
    harness.transport.receive_messages('2["news","live","o1"]')
    lose_connection(harness)
    # Node's server sends the events the session missed before its CONNECT answer.
    harness.transport.receive_messages('2["news","missed","o2"]')
    accept(harness, "s1", pid="p1")
    assert seen == [
        ("connect", (), False),
        ("news", ("live", "o1"), False),
        ("news", ("missed", "o2"), True),  # recovered is already known to its handlers
        ("connect", (), True),
    ]
    lose_connection(harness, "e3")
    assert last_connect(harness) == {"pid": "p1", "offset": "o2"}
    await harness.client.disconnect()


async def test_each_namespace_has_its_own_session() -> None:
    harness = Harness()
    await start(harness, namespaces=["/", "/chat"])
    accept(harness, "s1", pid="p-root")
    accept(harness, "c1", pid="p-chat", namespace="/chat")
    harness.transport.receive_messages('2/chat,["e","o-chat"]')
    lose_connection(harness)
    assert last_connect(harness) == {"pid": "p-root"}
    assert last_connect(harness, "/chat") == {"pid": "p-chat", "offset": "o-chat"}
    accept(harness, "s2", pid="p-root2")
    accept(harness, "c1", pid="p-chat", namespace="/chat")
    assert harness.client.recovered is False
    assert harness.client.socket("/chat").recovered is True
    await harness.client.disconnect()


async def test_the_session_is_offered_again_after_disconnect_as_in_js() -> None:
    # The JS client keeps its pid over disconnect(); the server refuses to restore a session
    # the client left on purpose, so the next connection is not recovered.
    harness = Harness()
    await start(harness)
    accept(harness, "s1", pid="p1")
    harness.transport.receive_messages('2["e","o1"]')
    await harness.client.disconnect()
    await start(harness)
    assert last_connect(harness) == {"pid": "p1", "offset": "o1"}
    accept(harness, "s2", pid="p2")
    assert harness.client.recovered is False
    await harness.client.disconnect()


def test_a_client_without_sockets_is_not_recovered() -> None:
    assert AsyncClient().recovered is False
