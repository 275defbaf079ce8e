"""EngineServer over WebSocket: direct sessions, the polling -> websocket upgrade, limits.

A fake WebSocketConnection records the Outgoing objects it is given.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from engine_fakes import App, FakeConnection, Handler, pending, session_of

from sockjet.engine.io import EngineSocket, HTTPRequest, HTTPResponse, Outgoing, WebSocketHandler
from sockjet.engine.server import EngineServer
from sockjet.engine.session import PING
from sockjet.engine.transports.websocket import RefusedWebSocket

# -- fakes ---------------------------------------------------------------------------------------


def request(
    method: str = "GET",
    *,
    sid: str | None = None,
    transport: str = "polling",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> HTTPRequest:
    query = {"EIO": "4", "transport": transport}
    if sid is not None:
        query["sid"] = sid
    return HTTPRequest(
        method=method,
        path="/socket.io/",
        query=query,
        headers={"host": "localhost:8000", **(headers or {})},
        body=body,
    )


def ws_request(sid: str | None = None, **headers: str) -> HTTPRequest:
    return request(sid=sid, transport="websocket", headers=headers)


def post(sid: str, body: str) -> HTTPRequest:
    return request(
        "POST", sid=sid, body=body.encode(), headers={"content-type": "text/plain;charset=UTF-8"}
    )


def payload(response: HTTPResponse) -> list[str]:
    assert response.status == 200
    return response.body.decode().split("\x1e")


def error_of(response: HTTPResponse | None) -> dict[str, Any]:
    assert response is not None
    result: dict[str, Any] = json.loads(response.body)
    return result


async def open_ws(server: EngineServer) -> tuple[FakeConnection, WebSocketHandler, str]:
    req = ws_request()
    assert await server.check_websocket(req) is None
    conn = FakeConnection()
    handler = server.open_websocket(req, conn)
    first = conn.sent[0].data
    assert isinstance(first, str) and first.startswith("0{")
    return conn, handler, json.loads(first[1:])["sid"]


async def open_polling(server: EngineServer) -> str:
    response = await server.handle_request(request())
    sid: str = json.loads(payload(response)[0][1:])["sid"]
    return sid


async def start_upgrade(server: EngineServer, sid: str) -> tuple[FakeConnection, WebSocketHandler]:
    req = ws_request(sid)
    assert await server.check_websocket(req) is None
    conn = FakeConnection()
    return conn, server.open_websocket(req, conn)


@pytest.fixture
def app() -> App:
    return App()


@pytest.fixture
async def server(app: App) -> Any:
    engine = EngineServer(app)
    yield engine
    await engine.close(grace=0)
    assert engine.clients_count == 0


# -- websocket sessions -------------------------------------------------------------------------


async def test_websocket_handshake(server: EngineServer, app: App) -> None:
    conn, _, sid = await open_ws(server)
    data = json.loads(str(conn.data[0])[1:])
    assert data["upgrades"] == []
    assert len(sid) == 20
    socket = app.handler.socket
    assert (socket.sid, socket.transport) == (sid, "websocket")
    assert server.clients_count == 1


async def test_websocket_messages_reach_the_handler(server: EngineServer, app: App) -> None:
    _, ws, _ = await open_ws(server)
    ws.on_message("4hello")
    ws.on_message(b"\x00\x01")
    ws.on_message("4")
    ws.on_message("6")
    ws.on_message("3")  # unsolicited pong: harmless
    ws.on_message("bAQI=")  # base64 binary message in a text frame
    assert app.handler.messages == ["hello", b"\x00\x01", "", b"\x01\x02"]
    assert app.handler.closes == []


async def test_sends_pass_the_same_outgoing_through(server: EngineServer, app: App) -> None:
    conn, _, _ = await open_ws(server)
    message = Outgoing.message("broadcast")
    assert app.handler.socket.send(message)
    assert app.handler.socket.send(message, volatile=True)
    assert conn.sent[1] is message and conn.sent[2] is message


@pytest.mark.parametrize(
    ("frame", "reason", "code"),
    [
        ("2", "parse error", 1002),
        ("0", "parse error", 1002),
        ("5", "parse error", 1002),
        ("x", "parse error", 1002),
        ("", "parse error", 1002),
        ("b!!", "parse error", 1002),
        ("1", "transport close", 1000),
    ],
)
async def test_bad_frames_close_only_that_session(
    server: EngineServer, app: App, frame: str, reason: str, code: int
) -> None:
    conn, ws, _sid = await open_ws(server)
    other_conn, _, other = await open_ws(server)
    ws.on_message(frame)
    assert app.handlers[0].closes == [reason]
    assert conn.close_code == code
    assert list(server.sessions) == [other]
    assert other_conn.close_code is None
    # the serving layer's close notification afterwards changes nothing
    ws.on_message("4late")
    ws.on_close(code, "")
    assert app.handlers[0].closes == [reason]
    assert app.handlers[0].messages == []


async def test_peer_close_is_transport_close(server: EngineServer, app: App) -> None:
    _, ws, _ = await open_ws(server)
    ws.on_close(None, "")
    assert app.handler.closes == ["transport close"]
    assert server.clients_count == 0


async def test_forced_close_over_websocket(server: EngineServer, app: App) -> None:
    conn, ws, _ = await open_ws(server)
    app.handler.socket.send(Outgoing.message("bye"))
    app.handler.socket.close()
    assert conn.data[-1] == "4bye"
    assert conn.close_code == 1000
    assert app.handler.closes == ["forced close"]
    ws.on_close(1000, "")
    assert app.handler.closes == ["forced close"]


async def test_heartbeat_over_websocket(app: App) -> None:
    server = EngineServer(app, ping_interval=0.02, ping_timeout=0.05)
    conn, ws, sid = await open_ws(server)
    session = session_of(server, sid)
    for _ in range(100):
        if len(conn.sent) > 1:
            break
        await asyncio.sleep(0.01)
    assert conn.sent[1] is PING
    ws.on_message("3")
    for _ in range(100):
        if len(conn.sent) > 2:
            break
        await asyncio.sleep(0.01)
    assert conn.sent[2] is PING
    # no pong this time
    for _ in range(100):
        if app.handler.closes:
            break
        await asyncio.sleep(0.01)
    assert app.handler.closes == ["ping timeout"]
    assert conn.close_code == 1000
    assert session._timer is None
    assert server.clients_count == 0


async def test_over_the_high_water_mark_volatile_is_dropped_and_the_rest_queued(
    app: App,
) -> None:
    server = EngineServer(app, max_buffered_bytes=100, max_outbound_bytes=1000)
    conn, _, _ = await open_ws(server)
    socket = app.handler.socket
    conn.buffered_amount = 98
    assert socket.send(Outgoing.message("v"), volatile=True)  # 98 + 2 = at the mark
    conn.buffered_amount = 99
    assert not socket.send(Outgoing.message("v"), volatile=True)  # would pass it
    assert server.stats.volatile_dropped == 1
    assert socket.send(Outgoing.message("kept"))
    conn.buffered_amount = 990
    assert socket.send(Outgoing.message("kept too"))  # 999: under the cap
    assert app.handler.closes == []
    assert conn.data[1:] == ["4v", "4kept", "4kept too"]
    assert conn.watched == 100  # the session waits to hear it went back under the mark


async def test_past_the_outbound_cap_the_client_is_a_slow_consumer(app: App) -> None:
    server = EngineServer(app, max_buffered_bytes=100, max_outbound_bytes=1000)
    conn, _, _ = await open_ws(server)
    socket = app.handler.socket
    conn.buffered_amount = 996
    assert not socket.send(Outgoing.message("over"))  # 996 + 5 would pass the cap
    assert app.handler.closes == ["slow consumer"]
    assert conn.aborted and conn.close_code is None  # dropped, no close frame behind its queue
    assert server.stats.slow_consumers == 1
    assert server.clients_count == 0


async def test_one_packet_larger_than_the_cap_goes_to_an_empty_queue(app: App) -> None:
    server = EngineServer(app, max_buffered_bytes=100, max_outbound_bytes=1000)
    conn, _, _ = await open_ws(server)
    conn.buffered_amount = 0
    assert app.handler.socket.send(Outgoing.message("x" * 5000))
    assert app.handler.closes == []


async def test_a_queue_over_the_mark_for_the_timeout_is_a_slow_consumer(app: App) -> None:
    server = EngineServer(
        app, max_buffered_bytes=100, max_outbound_bytes=10_000, slow_consumer_timeout=0.05
    )
    conn, _, _ = await open_ws(server)
    conn.buffered_amount = 500
    assert app.handler.socket.send(Outgoing.message("late"))
    await asyncio.wait_for(app.handler.closed.wait(), 2)
    assert app.handler.closes == ["slow consumer"]
    assert conn.aborted


async def test_a_queue_back_under_the_mark_stops_the_slow_consumer_clock(app: App) -> None:
    server = EngineServer(
        app, max_buffered_bytes=100, max_outbound_bytes=10_000, slow_consumer_timeout=0.05
    )
    conn, handler, _ = await open_ws(server)
    session = session_of(server, app.handler.socket.sid)
    conn.buffered_amount = 500
    assert app.handler.socket.send(Outgoing.message("late"))
    assert session._slow_timer is not None
    conn.buffered_amount = 50
    handler.on_drain()  # the connection reports it fell to the watched level
    assert session._slow_timer is None
    await asyncio.sleep(0.1)
    assert app.handler.closes == []


async def test_drain_waits_for_the_low_water_mark(app: App) -> None:
    server = EngineServer(app, max_buffered_bytes=1000)
    conn, handler, _ = await open_ws(server)
    socket = app.handler.socket
    conn.buffered_amount = 100
    await asyncio.wait_for(socket.drain(), 1)  # 100 <= 250: at once
    conn.buffered_amount = 800
    waiting = asyncio.ensure_future(socket.drain())
    await asyncio.sleep(0)
    assert not waiting.done() and conn.watched == 250
    conn.buffered_amount = 200
    handler.on_drain()
    await asyncio.wait_for(waiting, 1)


async def test_drain_returns_when_the_session_ends(app: App) -> None:
    server = EngineServer(app, max_buffered_bytes=1000)
    conn, _handler, _ = await open_ws(server)
    conn.buffered_amount = 800
    waiting = asyncio.ensure_future(app.handler.socket.drain())
    await asyncio.sleep(0)
    app.handler.socket.close()
    await asyncio.wait_for(waiting, 1)


async def test_pausing_reading_reaches_the_connection_and_the_heartbeat(app: App) -> None:
    server = EngineServer(app, ping_interval=0.02, ping_timeout=0.02)
    conn, handler, _ = await open_ws(server)
    socket = app.handler.socket
    socket.pause_reading()
    assert conn.paused
    await asyncio.sleep(0.15)  # pings went out, no pong can be read: no ping timeout
    assert app.handler.closes == []
    socket.resume_reading()
    assert not conn.paused
    handler.on_message("3")  # the pong that waited in the socket
    await asyncio.sleep(0.01)
    assert app.handler.closes == []


async def test_server_close_closes_websockets_with_going_away(
    server: EngineServer, app: App
) -> None:
    conn, _, _ = await open_ws(server)
    sid = await open_polling(server)
    probe, _ = await start_upgrade(server, sid)
    await server.close(grace=0)
    assert conn.close_code == 1001
    assert probe.close_code == 1001
    assert [h.closes for h in app.handlers] == [["forced server close"]] * 2
    # refused afterwards
    refused = await server.check_websocket(ws_request())
    assert refused is not None and refused.status == 503
    late = FakeConnection()
    assert isinstance(server.open_websocket(ws_request(), late), RefusedWebSocket)
    assert late.close_code == 1001


async def test_failing_on_connection_closes_the_websocket() -> None:
    def on_connection(socket: EngineSocket) -> Handler:
        raise RuntimeError("boom")

    server = EngineServer(on_connection)
    conn = FakeConnection()
    handler = server.open_websocket(ws_request(), conn)
    assert isinstance(handler, RefusedWebSocket)
    handler.on_message("4x")
    handler.on_close(None, "")
    assert conn.close_code == 1000
    assert server.clients_count == 0


# -- check_websocket refusals -------------------------------------------------------------------


async def test_check_websocket_refusals(app: App) -> None:
    async def allow(req: HTTPRequest) -> bool:
        return "ok" in req.headers

    server = EngineServer(app, allow_request=allow)
    assert error_of(await server.check_websocket(ws_request())) == {
        "code": 4,
        "message": "Forbidden",
    }
    assert await server.check_websocket(ws_request(ok="1")) is None
    assert error_of(await server.check_websocket(ws_request("unknown")))["code"] == 1
    assert error_of(await server.check_websocket(request(headers={"ok": "1"})))["code"] == 3
    # allow_request is not asked for upgrades of existing sessions
    response = await server.handle_request(request(headers={"ok": "1"}))
    sid = json.loads(payload(response)[0][1:])["sid"]
    assert await server.check_websocket(ws_request(sid)) is None
    await server.close(grace=0)


async def test_websocket_transport_disabled(app: App) -> None:
    server = EngineServer(app, transports=["polling"])
    response = await server.check_websocket(ws_request())
    assert error_of(response) == {"code": 0, "message": "Transport unknown"}


async def test_upgrade_refused_when_disabled_or_impossible(app: App) -> None:
    server = EngineServer(app, allow_upgrades=False)
    sid = await open_polling(server)
    # accepted at the HTTP level, then closed by open_websocket (as Node does)
    assert await server.check_websocket(ws_request(sid)) is None
    conn = FakeConnection()
    assert isinstance(server.open_websocket(ws_request(sid), conn), RefusedWebSocket)
    assert conn.close_code == 1000
    await server.close(grace=0)


async def test_upgrade_refused_for_websocket_sessions_and_twice(
    server: EngineServer, app: App
) -> None:
    # Node accepts these WebSockets, then closes them: so do we (the official suite checks it)
    _, _, ws_sid = await open_ws(server)
    assert await server.check_websocket(ws_request(ws_sid)) is None
    sid = await open_polling(server)
    await start_upgrade(server, sid)
    assert await server.check_websocket(ws_request(sid)) is None
    # a second socket for a session that is already upgrading is closed
    second = FakeConnection()
    assert isinstance(server.open_websocket(ws_request(sid), second), RefusedWebSocket)
    assert second.close_code == 1000
    # and one for a session that vanished
    gone = FakeConnection()
    assert isinstance(server.open_websocket(ws_request("gone"), gone), RefusedWebSocket)
    # a closing session cannot upgrade
    app.handlers[1].socket.close()
    late = FakeConnection()
    assert isinstance(server.open_websocket(ws_request(sid), late), RefusedWebSocket)
    assert late.close_code == 1000


# -- upgrade --------------------------------------------------------------------------------------


async def test_upgrade_with_pending_get(server: EngineServer, app: App) -> None:
    sid = await open_polling(server)
    socket = app.handler.socket
    poll = await pending(server.handle_request(request(sid=sid)))
    conn, ws = await start_upgrade(server, sid)
    assert socket.transport == "polling"
    ws.on_message("2probe")
    assert conn.data == ["3probe"]
    # the pending GET is released with a NOOP so the client can pause polling
    assert payload(await poll) == ["6"]
    # packets sent while the client is paused wait for the new transport
    first, second = Outgoing.message("one"), Outgoing.message(b"\x02")
    assert socket.send(first)
    assert socket.send(second)
    ws.on_message("5")
    assert socket.transport == "websocket"
    assert conn.sent[1] is first and conn.sent[2] is second
    third = Outgoing.message("three")
    assert socket.send(third)
    assert conn.sent[3] is third
    # the session now lives on the websocket
    ws.on_message("4up")
    assert app.handler.messages == ["up"]
    refused = await server.handle_request(request(sid=sid))
    assert error_of_response(refused) == {"code": 3, "message": "Bad request"}
    assert app.handler.closes == []


def error_of_response(response: HTTPResponse) -> dict[str, Any]:
    assert response.status == 400
    result: dict[str, Any] = json.loads(response.body)
    return result


async def test_get_after_probe_is_released_at_once(server: EngineServer, app: App) -> None:
    sid = await open_polling(server)
    conn, ws = await start_upgrade(server, sid)
    ws.on_message("2probe")
    assert payload(await server.handle_request(request(sid=sid))) == ["6"]
    app.handler.socket.send(Outgoing.message("queued"))
    # a GET still gets what is queued rather than a NOOP
    assert payload(await server.handle_request(request(sid=sid))) == ["4queued"]
    ws.on_message("5")
    assert conn.data == ["3probe"]


async def test_polling_keeps_working_before_the_probe(server: EngineServer, app: App) -> None:
    sid = await open_polling(server)
    await start_upgrade(server, sid)
    poll = await pending(server.handle_request(request(sid=sid)))
    app.handler.socket.send(Outgoing.message("still polling"))
    assert payload(await poll) == ["4still polling"]
    assert (await server.handle_request(post(sid, "4in"))).status == 200
    assert app.handler.messages == ["in"]


async def test_pending_get_at_upgrade_gets_a_noop(server: EngineServer, app: App) -> None:
    sid = await open_polling(server)
    _conn, ws = await start_upgrade(server, sid)
    poll = await pending(server.handle_request(request(sid=sid)))
    ws.on_message("5")  # a client that skipped the probe and the pause
    assert payload(await poll) == ["6"]
    assert app.handler.socket.transport == "websocket"


async def test_upgrade_timeout_closes_only_the_probe(app: App) -> None:
    server = EngineServer(app, upgrade_timeout=0.02)
    sid = await open_polling(server)
    conn, ws = await start_upgrade(server, sid)
    ws.on_message("2probe")
    for _ in range(100):
        if conn.close_code is not None:
            break
        await asyncio.sleep(0.01)
    assert conn.close_code == 1000
    assert app.handler.socket.transport == "polling"
    assert app.handler.closes == []
    ws.on_message("5")  # too late: ignored, the socket is closed
    ws.on_close(1000, "")
    assert app.handler.socket.transport == "polling"
    # polling goes on, and a new upgrade may be tried
    app.handler.socket.send(Outgoing.message("x"))
    assert payload(await server.handle_request(request(sid=sid))) == ["4x"]
    _conn2, ws2 = await start_upgrade(server, sid)
    ws2.on_message("2probe")
    ws2.on_message("5")
    assert app.handler.socket.transport == "websocket"
    await server.close(grace=0)


@pytest.mark.parametrize("frame", ["4hello", "2nope", "x", "1"])
async def test_unexpected_probe_frame_drops_the_probe(
    server: EngineServer, app: App, frame: str
) -> None:
    sid = await open_polling(server)
    conn, ws = await start_upgrade(server, sid)
    ws.on_message(frame)
    assert conn.close_code == 1000
    assert app.handler.socket.transport == "polling"
    assert app.handler.closes == [] and app.handler.messages == []
    assert await server.check_websocket(ws_request(sid)) is None  # may try again


async def test_probe_closed_by_peer(server: EngineServer, app: App) -> None:
    sid = await open_polling(server)
    _conn, ws = await start_upgrade(server, sid)
    ws.on_message("2probe")
    ws.on_close(None, "")
    assert app.handler.closes == []
    assert app.handler.socket.transport == "polling"
    # the client resumes polling: the GET waits again instead of getting NOOPs
    poll = await pending(server.handle_request(request(sid=sid)))
    app.handler.socket.send(Outgoing.message("back"))
    assert payload(await poll) == ["4back"]


async def test_close_while_upgrading_completes_on_the_new_transport(
    server: EngineServer, app: App
) -> None:
    sid = await open_polling(server)
    conn, ws = await start_upgrade(server, sid)
    ws.on_message("2probe")
    socket = app.handler.socket
    socket.send(Outgoing.message("goodbye"))
    socket.close()
    assert app.handler.closes == []
    ws.on_message("5")
    assert conn.data == ["3probe", "4goodbye"]
    assert conn.close_code == 1000
    assert app.handler.closes == ["forced close"]
    assert server.clients_count == 0


async def test_session_failure_closes_the_probe(server: EngineServer, app: App) -> None:
    sid = await open_polling(server)
    conn, ws = await start_upgrade(server, sid)
    await server.handle_request(post(sid, "garbage"))
    assert app.handler.closes == ["parse error"]
    assert conn.close_code == 1002
    ws.on_message("5")
    assert app.handler.closes == ["parse error"]


async def test_websocket_closed_during_on_connection_is_told_once() -> None:
    handlers: list[Handler] = []

    def on_connection(socket: EngineSocket) -> Handler:
        socket.send(Outgoing.message("bye"))
        socket.close()
        handler = Handler(socket)
        handlers.append(handler)
        return handler

    server = EngineServer(on_connection)
    conn = FakeConnection()
    ws = server.open_websocket(ws_request(), conn)
    assert conn.data[1:] == ["4bye"]
    assert conn.close_code == 1000
    assert handlers[0].closes == ["forced close"]
    ws.on_close(1000, "")
    assert handlers[0].closes == ["forced close"]
    assert server.clients_count == 0


async def test_close_handler_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Failing(Handler):
        def on_close(self, reason: str) -> None:
            super().on_close(reason)
            raise RuntimeError("bug")

    server = EngineServer(Failing)
    conn = FakeConnection()
    ws = server.open_websocket(ws_request(), conn)
    with caplog.at_level("ERROR", "sockjet.engine"):
        ws.on_close(None, "")
    assert "close handler failed" in caplog.text
    assert server.clients_count == 0


async def test_session_repr(server: EngineServer) -> None:
    _, _, sid = await open_ws(server)
    assert repr(session_of(server, sid)) == f"<Session {sid} websocket open>"


async def test_server_closing_during_allow_request_refuses_the_upgrade(app: App) -> None:
    gate = asyncio.Event()

    async def allow(req: HTTPRequest) -> bool:
        await gate.wait()
        return True

    server = EngineServer(app, allow_request=allow)
    task = asyncio.ensure_future(server.check_websocket(ws_request()))
    await asyncio.sleep(0)
    await server.close(grace=0)
    gate.set()
    response = await task
    assert response is not None and response.status == 503
