"""EngineServer over HTTP long-polling: handshake, GET/POST, errors, heartbeat, close, limits.

Driven directly with HTTPRequest objects; no sockets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from typing import Any

import pytest
from engine_fakes import App, Handler, pending, session_of

from sockjet.engine.io import EngineSocket, HTTPRequest, HTTPResponse, Outgoing
from sockjet.engine.server import EngineServer
from sockjet.errors import HandshakeError

# -- fakes ---------------------------------------------------------------------------------------


def request(
    method: str = "GET",
    *,
    sid: str | None = None,
    transport: str = "polling",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    eio: str = "4",
) -> HTTPRequest:
    query = {"EIO": eio, "transport": transport}
    if sid is not None:
        query["sid"] = sid
    return HTTPRequest(
        method=method,
        path="/socket.io/",
        query=query,
        headers={"host": "localhost:8000", **(headers or {})},
        body=body,
    )


def post(sid: str, body: str | bytes, **headers: str) -> HTTPRequest:
    data = body.encode() if isinstance(body, str) else body
    return request(
        "POST",
        sid=sid,
        body=data,
        headers={"content-type": "text/plain;charset=UTF-8", **headers},
    )


def header(response: HTTPResponse, name: str) -> str | None:
    values = [v for k, v in response.headers if k.lower() == name.lower()]
    assert len(values) <= 1
    return values[0] if values else None


def error_of(response: HTTPResponse) -> dict[str, Any]:
    assert header(response, "content-type") == "application/json"
    result: dict[str, Any] = json.loads(response.body)
    return result


async def handshake(server: EngineServer) -> tuple[str, list[str]]:
    response = await server.handle_request(request())
    assert response.status == 200
    packets = response.body.decode().split("\x1e")
    assert packets[0].startswith("0{")
    return json.loads(packets[0][1:])["sid"], packets


def payload(response: HTTPResponse) -> list[str]:
    assert response.status == 200
    return response.body.decode().split("\x1e")


@pytest.fixture
def app() -> App:
    return App()


@pytest.fixture
async def server(app: App) -> Any:
    engine = EngineServer(app)
    yield engine
    await engine.close(grace=0)
    assert engine.clients_count == 0


# -- handshake ----------------------------------------------------------------------------------


async def test_handshake_opens_a_session(server: EngineServer, app: App) -> None:
    req = request()
    response = await server.handle_request(req)
    assert response.status == 200
    assert header(response, "content-type") == "text/plain; charset=UTF-8"
    assert header(response, "cache-control") == "no-store"
    body = response.body.decode()
    assert body[0] == "0"
    data = json.loads(body[1:])
    assert list(data) == ["sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"]
    assert len(data["sid"]) == 20
    assert data["upgrades"] == ["websocket"]
    assert (data["pingInterval"], data["pingTimeout"], data["maxPayload"]) == (
        25000,
        20000,
        1_000_000,
    )
    socket = app.handler.socket
    assert socket.sid == data["sid"]
    assert socket.transport == "polling"
    assert socket.request is req
    assert server.clients_count == 1
    assert data["sid"] in server.sessions


@pytest.mark.parametrize(
    ("kwargs", "upgrades"),
    [
        ({"transports": ["polling"]}, []),
        ({"allow_upgrades": False}, []),
        ({"ping_interval": 1.5, "ping_timeout": 0.25, "max_payload": 10}, ["websocket"]),
    ],
)
async def test_open_packet_follows_the_options(
    app: App, kwargs: dict[str, Any], upgrades: list[str]
) -> None:
    server = EngineServer(app, **kwargs)
    _, packets = await handshake(server)
    data = json.loads(packets[0][1:])
    assert data["upgrades"] == upgrades
    if "ping_interval" in kwargs:
        assert (data["pingInterval"], data["pingTimeout"], data["maxPayload"]) == (1500, 250, 10)
    await server.close(grace=0)


async def test_packets_sent_on_connection_follow_the_open_packet() -> None:
    def on_connection(socket: EngineSocket) -> Handler:
        assert socket.send(Outgoing.message("welcome"))
        return Handler(socket)

    server = EngineServer(on_connection)
    _, packets = await handshake(server)
    assert packets[1:] == ["4welcome"]
    await server.close(grace=0)


async def test_failing_on_connection_answers_500_and_leaves_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def on_connection(socket: EngineSocket) -> Handler:
        raise RuntimeError("boom")

    server = EngineServer(on_connection)
    with caplog.at_level(logging.ERROR, "sockjet.engine"):
        response = await server.handle_request(request())
    assert response.status == 500
    assert server.clients_count == 0
    assert "on_connection failed" in caplog.text


async def test_socket_closed_during_on_connection_is_told_once() -> None:
    handlers: list[Handler] = []

    def on_connection(socket: EngineSocket) -> Handler:
        socket.send(Outgoing.message("bye"))
        socket.close()
        assert not socket.send(Outgoing.message("dropped"))
        handler = Handler(socket)
        handlers.append(handler)
        return handler

    server = EngineServer(on_connection)
    _, packets = await handshake(server)
    assert packets[1:] == ["4bye", "1"]
    assert handlers[0].closes == ["forced close"]
    assert server.clients_count == 0


def test_invalid_options_are_refused(app: App) -> None:
    with pytest.raises(ValueError, match="transports"):
        EngineServer(app, transports=["polling", "flash"])
    with pytest.raises(ValueError, match="transports"):
        EngineServer(app, transports="polling")
    with pytest.raises(ValueError, match="ping_interval"):
        EngineServer(app, ping_interval=0)
    with pytest.raises(ValueError, match="max_buffered_bytes"):
        EngineServer(app, max_buffered_bytes=-1)
    engine = EngineServer(app, path="/engine")
    assert engine.path == "/engine/"
    assert EngineServer(app).path == "/socket.io/"


# -- refused requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("req", "status", "code", "message"),
    [
        (request(transport="flash"), 400, 0, "Transport unknown"),
        (request(sid="nope"), 400, 1, "Session ID unknown"),
        (request("POST"), 400, 2, "Bad handshake method"),
        (request("OPTIONS"), 400, 2, "Bad handshake method"),
        (request(transport="websocket"), 400, 3, "Bad request"),
        (request(eio="3"), 400, 5, "Unsupported protocol version"),
    ],
)
async def test_refused_requests_get_an_engineio_error(
    server: EngineServer, req: HTTPRequest, status: int, code: int, message: str
) -> None:
    response = await server.handle_request(req)
    assert response.status == status
    assert error_of(response) == {"code": code, "message": message}
    assert server.clients_count == 0


async def test_connection_error_handlers_see_every_refusal(
    server: EngineServer, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[HTTPRequest, int, str]] = []

    @server.on_connection_error
    def record(req: HTTPRequest, error: HandshakeError) -> None:
        seen.append((req, error.code, error.message))

    @server.on_connection_error
    def broken(req: HTTPRequest, error: HandshakeError) -> None:
        raise RuntimeError("a bug in a handler")

    unknown = request(sid="nope")
    with caplog.at_level(logging.ERROR, "sockjet.engine"):
        assert error_of(await server.handle_request(unknown))["code"] == 1
    assert seen == [(unknown, 1, "Session ID unknown")]
    assert "observation hook" in caplog.text and "a bug in a handler" in caplog.text  # logged
    upgrade = request(transport="websocket", eio="3")
    refusal = await server.check_websocket(upgrade)
    assert refusal is not None and refusal.status == 400
    assert seen[-1] == (upgrade, 5, "Unsupported protocol version")
    await handshake(server)
    assert len(seen) == 2  # accepted requests are not reported


async def test_other_methods_within_a_session_are_bad_requests(server: EngineServer) -> None:
    sid, _ = await handshake(server)
    response = await server.handle_request(request("PUT", sid=sid))
    assert response.status == 400
    assert error_of(response)["code"] == 3
    assert sid in server.sessions


async def test_allow_request(app: App) -> None:
    seen: list[HTTPRequest] = []

    async def allow(req: HTTPRequest) -> bool:
        seen.append(req)
        return req.headers.get("authorization") == "yes"

    server = EngineServer(app, allow_request=allow)
    refused = await server.handle_request(request())
    assert refused.status == 403
    assert error_of(refused) == {"code": 4, "message": "Forbidden"}
    assert server.clients_count == 0
    accepted = await server.handle_request(request(headers={"authorization": "yes"}))
    assert accepted.status == 200
    sid = json.loads(accepted.body[1:])["sid"]
    # asked for handshakes only
    await server.handle_request(post(sid, "6"))
    assert len(seen) == 2
    await server.close(grace=0)


async def test_allow_request_failure_refuses(app: App, caplog: pytest.LogCaptureFixture) -> None:
    async def allow(req: HTTPRequest) -> bool:
        raise RuntimeError("database down")

    server = EngineServer(app, allow_request=allow)
    with caplog.at_level(logging.ERROR, "sockjet.engine"):
        response = await server.handle_request(request())
    assert response.status == 403
    assert "allow_request failed" in caplog.text


async def test_server_closing_during_allow_request_refuses_the_handshake(app: App) -> None:
    gate = asyncio.Event()

    async def allow(req: HTTPRequest) -> bool:
        await gate.wait()
        return True

    server = EngineServer(app, allow_request=allow)
    task = await pending(server.handle_request(request()))
    await server.close(grace=0)
    gate.set()
    response = await task
    assert response.status == 503
    assert error_of(response) == {"code": 3, "message": "Bad request"}
    assert server.clients_count == 0


# -- polling exchange ---------------------------------------------------------------------------


async def test_get_waits_for_packets_and_takes_all_of_them(server: EngineServer, app: App) -> None:
    sid, _ = await handshake(server)
    socket = app.handler.socket
    task = await pending(server.handle_request(request(sid=sid)))
    shared = Outgoing.message("hello")
    assert socket.send(shared)
    assert socket.send(Outgoing.message(b"\x01\x02\x03"))
    assert socket.send(Outgoing.message("world"), volatile=True)  # writable: kept
    response = await task
    assert payload(response) == ["4hello", "bAQID", "4world"]
    assert shared.payload_form == "4hello"  # cached for the other recipients


async def test_get_answers_at_once_when_packets_are_queued(server: EngineServer, app: App) -> None:
    sid, _ = await handshake(server)
    app.handler.socket.send(Outgoing.message("queued"))
    assert payload(await server.handle_request(request(sid=sid))) == ["4queued"]


async def test_post_delivers_messages_in_order(server: EngineServer, app: App) -> None:
    sid, _ = await handshake(server)
    response = await server.handle_request(post(sid, "4hello\x1ebAQID\x1e6\x1e4"))
    assert response.status == 200
    assert response.body == b"ok"
    assert header(response, "content-type") == "text/html"
    assert app.handler.messages == ["hello", b"\x01\x02\x03", ""]
    assert sid in server.sessions


async def test_post_without_content_type_is_accepted(server: EngineServer, app: App) -> None:
    sid, _ = await handshake(server)
    response = await server.handle_request(request("POST", sid=sid, body=b"4x"))
    assert response.status == 200
    assert app.handler.messages == ["x"]


async def test_message_handler_failure_is_logged_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(Handler):
        def on_message(self, data: str | bytes) -> None:
            super().on_message(data)
            raise ValueError("bug")

    server = EngineServer(Failing)
    sid, _ = await handshake(server)
    with caplog.at_level(logging.ERROR, "sockjet.engine"):
        response = await server.handle_request(post(sid, "4a\x1e4b"))
    assert response.status == 200
    assert "message handler failed" in caplog.text
    assert sid in server.sessions
    await server.close(grace=0)


async def test_close_packet_from_client(server: EngineServer, app: App) -> None:
    sid, _ = await handshake(server)
    task = await pending(server.handle_request(request(sid=sid)))
    response = await server.handle_request(post(sid, "4last\x1e1\x1e4ignored"))
    assert response.status == 200
    assert app.handler.messages == ["last"]
    assert app.handler.closes == ["transport close"]
    # the client closed: its pending GET is released with a NOOP, as Node does
    assert payload(await task) == ["6"]
    assert server.clients_count == 0


@pytest.mark.parametrize("body", ["2", "0", "5", "2probe"])
async def test_out_of_state_packets_are_parse_errors(
    server: EngineServer, app: App, body: str
) -> None:
    sid, _ = await handshake(server)
    other, _ = await handshake(server)
    response = await server.handle_request(post(sid, body))
    assert response.status == 200  # the body parsed; the packet broke the session
    assert app.handlers[0].closes == ["parse error"]
    assert app.handlers[1].closes == []
    assert other in server.sessions and sid not in server.sessions


@pytest.mark.parametrize("body", [b"", b"x", b"4a\x1e", b"b!!!", b"\xff4"])
async def test_garbage_post_closes_only_that_session(
    server: EngineServer, app: App, body: bytes
) -> None:
    sid, _ = await handshake(server)
    other, _ = await handshake(server)
    task = await pending(server.handle_request(request(sid=sid)))
    response = await server.handle_request(post(sid, body))
    assert response.status == 400
    assert app.handlers[0].closes == ["parse error"]
    assert payload(await task) == ["1"]  # the pending poll learns about the close
    assert app.handlers[1].closes == []
    assert list(server.sessions) == [other]
    # the session is gone for good
    again = await server.handle_request(request(sid=sid))
    assert error_of(again)["code"] == 1


async def test_binary_content_type_is_refused(server: EngineServer, app: App) -> None:
    sid, _ = await handshake(server)
    response = await server.handle_request(
        request("POST", sid=sid, body=b"4x", headers={"content-type": "application/octet-stream"})
    )
    assert response.status == 400
    assert app.handler.closes == ["transport error"]
    assert app.handler.messages == []


async def test_post_over_max_payload_is_413(app: App) -> None:
    server = EngineServer(app, max_payload=10)
    sid, _ = await handshake(server)
    ok = await server.handle_request(post(sid, "4" + "a" * 9))
    assert ok.status == 200
    response = await server.handle_request(post(sid, "4" + "a" * 10))
    assert response.status == 413
    assert app.handler.closes == ["transport error"]
    assert app.handler.messages == ["a" * 9]
    assert server.clients_count == 0


async def test_concurrent_get_is_refused_and_closes_the_session(
    server: EngineServer, app: App
) -> None:
    sid, _ = await handshake(server)
    first = await pending(server.handle_request(request(sid=sid)))
    second = await server.handle_request(request(sid=sid))
    assert second.status == 400
    assert app.handler.closes == ["transport error"]
    assert payload(await first) == ["1"]
    assert server.clients_count == 0


async def test_abandoned_get_closes_the_session(server: EngineServer, app: App) -> None:
    sid, _ = await handshake(server)
    task = await pending(server.handle_request(request(sid=sid)))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert app.handler.closes == ["transport error"]
    assert server.clients_count == 0


async def test_get_after_upgrade_mismatch_is_bad_request(server: EngineServer) -> None:
    sid, _ = await handshake(server)
    response = await server.handle_request(request(sid=sid, transport="websocket"))
    assert error_of(response) == {"code": 3, "message": "Bad request"}


# -- compression --------------------------------------------------------------------------------


async def big_poll(server: EngineServer, app: App, accept: str | None) -> HTTPResponse:
    sid, _ = await handshake(server)
    app.handlers[-1].socket.send(Outgoing.message("x" * 2000))
    headers = {} if accept is None else {"accept-encoding": accept}
    return await server.handle_request(request(sid=sid, headers=headers))


@pytest.mark.parametrize(
    ("accept", "encoding"),
    [
        ("gzip, deflate, br", "gzip"),
        ("deflate", "deflate"),
        ("gzip;q=0, deflate;q=0.5", "deflate"),
        ("*", "gzip"),
        ("br, *;q=0", None),
        ("identity", None),
        ("gzip;q=bad", None),
        (None, None),
    ],
)
async def test_polling_answers_are_compressed_when_accepted(
    server: EngineServer, app: App, accept: str | None, encoding: str | None
) -> None:
    response = await big_poll(server, app, accept)
    assert header(response, "content-encoding") == encoding
    body = response.body
    if encoding == "gzip":
        body = zlib.decompress(body, 31)
    elif encoding == "deflate":
        body = zlib.decompress(body)
    assert body == b"4" + b"x" * 2000


async def test_small_answers_and_disabled_compression_stay_plain(app: App) -> None:
    server = EngineServer(app, http_compression=False)
    response = await big_poll(server, app, "gzip")
    assert header(response, "content-encoding") is None
    await server.close(grace=0)
    server = EngineServer(app)
    sid, _ = await handshake(server)
    app.handlers[-1].socket.send(Outgoing.message("x" * 100))
    small = await server.handle_request(request(sid=sid, headers={"accept-encoding": "gzip"}))
    assert header(small, "content-encoding") is None
    await server.close(grace=0)


# -- heartbeat ----------------------------------------------------------------------------------


async def test_heartbeat_over_polling(app: App) -> None:
    server = EngineServer(app, ping_interval=0.05, ping_timeout=0.2)
    sid, _ = await handshake(server)
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await server.handle_request(request(sid=sid))
    assert payload(response) == ["2"]
    assert loop.time() - started >= 0.04
    assert (await server.handle_request(post(sid, "3"))).status == 200
    # the pong keeps it alive: the next ping comes one interval after it
    assert payload(await server.handle_request(request(sid=sid))) == ["2"]
    assert app.handler.closes == []
    await server.close(grace=0)
    assert app.handler.closes == ["forced server close"]


async def test_missing_pong_closes_with_ping_timeout(app: App) -> None:
    server = EngineServer(app, ping_interval=0.02, ping_timeout=0.03)
    sid, _ = await handshake(server)
    assert payload(await server.handle_request(request(sid=sid))) == ["2"]
    session = session_of(server, sid)
    task = await pending(server.handle_request(request(sid=sid)))
    assert payload(await asyncio.wait_for(task, 1)) == ["1"]
    assert app.handler.closes == ["ping timeout"]
    assert server.clients_count == 0
    assert session._timer is None


async def test_pong_moves_the_timer_earlier_when_needed(app: App) -> None:
    # interval shorter than timeout: after a pong the next ping is due before the old pong
    # deadline, so the timer must be re-armed earlier
    server = EngineServer(app, ping_interval=0.02, ping_timeout=5.0)
    sid, _ = await handshake(server)
    assert payload(await server.handle_request(request(sid=sid))) == ["2"]
    await server.handle_request(post(sid, "3"))
    response = await asyncio.wait_for(server.handle_request(request(sid=sid)), 1)
    assert payload(response) == ["2"]
    await server.close(grace=0)


# -- closing ------------------------------------------------------------------------------------


async def test_forced_close_with_a_pending_get(server: EngineServer, app: App) -> None:
    sid, _ = await handshake(server)
    socket = app.handler.socket
    task = await pending(server.handle_request(request(sid=sid)))
    socket.send(Outgoing.message("last words"))
    socket.close()
    socket.close()
    assert not socket.send(Outgoing.message("too late"))
    assert payload(await task) == ["4last words", "1"]
    assert app.handler.closes == ["forced close"]
    assert server.clients_count == 0


async def test_forced_close_waits_for_the_next_get(server: EngineServer, app: App) -> None:
    sid, _ = await handshake(server)
    socket = app.handler.socket
    socket.send(Outgoing.message("bye"))
    socket.close("forced close")
    assert app.handler.closes == []  # not yet: "bye" is still queued
    assert server.clients_count == 1
    # a POST meanwhile is accepted and ignored
    assert (await server.handle_request(post(sid, "4ignored"))).status == 200
    assert app.handler.messages == []
    assert payload(await server.handle_request(request(sid=sid))) == ["4bye", "1"]
    assert app.handler.closes == ["forced close"]
    assert server.clients_count == 0


async def test_forced_close_gives_up_after_close_timeout(app: App) -> None:
    server = EngineServer(app, close_timeout=0.02)
    sid, _ = await handshake(server)
    session = session_of(server, sid)
    app.handler.socket.close()
    for _ in range(100):
        if app.handler.closes:
            break
        await asyncio.sleep(0.01)
    assert app.handler.closes == ["forced close"]
    assert server.clients_count == 0
    assert session._timer is None


async def test_server_close(server: EngineServer, app: App) -> None:
    sid, _ = await handshake(server)
    idle, _ = await handshake(server)
    draining, _ = await handshake(server)
    app.handlers[2].socket.send(Outgoing.message("x"))
    app.handlers[2].socket.close()
    task = await pending(server.handle_request(request(sid=sid)))
    sessions = [session_of(server, s) for s in (sid, idle, draining)]
    await server.close(grace=0)
    assert task.done()
    assert payload(task.result()) == ["1"]
    assert [h.closes for h in app.handlers] == [
        ["forced server close"],
        ["forced server close"],
        ["forced close"],  # it was already closing with its own reason
    ]
    assert server.clients_count == 0
    assert server.closed
    assert all(s._timer is None for s in sessions)
    refused = await server.handle_request(request())
    assert refused.status == 503
    assert error_of(refused) == {"code": 3, "message": "Bad request"}
    await server.close(grace=0)  # idempotent
    assert [len(h.closes) for h in app.handlers] == [1, 1, 1]


async def test_server_close_waits_briefly_for_polling_clients_to_collect_their_close(
    server: EngineServer, app: App
) -> None:
    # A polling client between two GETs gets the CLOSE packet on its next GET, so it sees an
    # orderly "transport close" rather than a refused request.
    sid, _ = await handshake(server)
    closing = asyncio.ensure_future(server.close(grace=5))
    await asyncio.sleep(0)
    assert not closing.done()
    answer = await server.handle_request(request(sid=sid))
    assert payload(answer) == ["1"]
    await asyncio.wait_for(closing, 1)  # done as soon as the last session is gone, not at 5 s
    assert app.handlers[0].closes == ["forced server close"]


async def test_server_close_drops_polling_clients_that_do_not_come_back(
    server: EngineServer, app: App
) -> None:
    await handshake(server)
    await server.close(grace=0.01)
    assert app.handlers[0].closes == ["forced server close"]
    assert server.clients_count == 0


async def test_nothing_left_behind_after_many_sessions(app: App) -> None:
    server = EngineServer(app)
    sids = [(await handshake(server))[0] for _ in range(20)]
    sessions = [session_of(server, sid) for sid in sids]
    for sid in sids[:10]:
        await server.handle_request(post(sid, "1"))
    for handler in app.handlers[10:]:
        handler.socket.close()
    for sid in sids[10:]:
        assert payload(await server.handle_request(request(sid=sid))) == ["1"]
    assert server.clients_count == 0
    assert all(s._timer is None for s in sessions)
    assert all(len(h.closes) == 1 for h in app.handlers)


# -- bounded queue ------------------------------------------------------------------------------


async def test_polling_queue_is_bounded(app: App) -> None:
    server = EngineServer(app, max_buffered_bytes=10, max_outbound_bytes=40)
    sid, _ = await handshake(server)
    socket = app.handler.socket
    session = session_of(server, sid)
    polling = session.polling
    assert polling is not None
    polling.take()  # forget the OPEN packet
    assert not socket.send(Outgoing.message("v"), volatile=True)  # no GET pending
    assert socket.send(Outgoing.message("a" * 10))  # 11 queued: over the mark
    assert polling.buffered_amount == 11
    assert not socket.send(Outgoing.message("v"), volatile=True)
    assert server.stats.volatile_dropped == 2
    assert socket.send(Outgoing.message("b" * 28))  # 40: at the cap
    assert app.handler.closes == []
    assert not socket.send(Outgoing.message("c"))  # past the cap: the client is not polling
    assert app.handler.closes == ["slow consumer"]
    assert server.stats.slow_consumers == 1
    assert server.clients_count == 0


async def test_a_poll_that_takes_the_queue_stops_the_slow_consumer_clock(app: App) -> None:
    server = EngineServer(app, max_buffered_bytes=10, slow_consumer_timeout=0.05)
    sid, _ = await handshake(server)
    session = session_of(server, sid)
    assert app.handler.socket.send(Outgoing.message("a" * 20))
    assert session._slow_timer is not None
    assert payload(await server.handle_request(request(sid=sid)))[-1] == "4" + "a" * 20
    assert session._slow_timer is None
    await asyncio.sleep(0.1)
    assert app.handler.closes == []


async def test_a_client_that_stops_polling_is_a_slow_consumer(app: App) -> None:
    server = EngineServer(app, max_buffered_bytes=10, slow_consumer_timeout=0.05)
    sid, _ = await handshake(server)
    assert app.handler.socket.send(Outgoing.message("a" * 20))
    await asyncio.wait_for(app.handler.closed.wait(), 2)
    assert app.handler.closes == ["slow consumer"]
    # its next poll learns the session is gone
    assert (await server.handle_request(request(sid=sid))).status == 400


async def test_polling_volatile_with_pending_get(app: App) -> None:
    server = EngineServer(app, max_buffered_bytes=10)
    sid, _ = await handshake(server)
    task = await pending(server.handle_request(request(sid=sid)))
    assert app.handler.socket.send(Outgoing.message("v"), volatile=True)
    assert payload(await task) == ["4v"]
    await server.close(grace=0)
