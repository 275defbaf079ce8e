"""The native server's HTTP/1.1 side, over real sockets against a fake engine."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import socket
import struct

import pytest
from native_client import FAST, FakeEngine, client, running

from sockjet.engine.io import HTTPRequest, HTTPResponse
from sockjet.serving.http import encode_response
from sockjet.serving.native import NativeLimits, serve


async def test_request_reaches_engine_with_parsed_fields() -> None:
    engine = FakeEngine()
    async with running(engine) as server, client(server.port) as c:
        c.send(
            b"POST /socket.io/?EIO=4&transport=polling&sid=abc&sid=second&empty= HTTP/1.1\r\n"
            b"Host: x\r\nX-Many: a\r\nx-many: b\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 5\r\n\r\nhello"
        )
        response = await c.response()
    assert response.status == 200
    assert response.body == b"POST /socket.io/ 5"
    assert response.headers["content-type"] == "text/plain"
    request = engine.requests[0]
    assert request.method == "POST"
    assert request.path == "/socket.io/"
    assert request.query == {"EIO": "4", "transport": "polling", "sid": "abc", "empty": ""}
    assert request.headers["x-many"] == "a, b"
    assert request.headers["content-type"] == "text/plain"
    # an engine POST is handed over at its headers: the engine reads the body itself
    assert request.body == b"" and request.receive_body is not None
    assert engine.bodies == [b"hello"]
    assert request.url == "/socket.io/?EIO=4&transport=polling&sid=abc&sid=second&empty="
    assert request.remote_addr is not None and request.remote_addr[0] == "127.0.0.1"
    assert request.secure is False


async def test_path_is_percent_decoded_and_engine_path_without_slash_matches() -> None:
    engine = FakeEngine()
    async with running(engine) as server, client(server.port) as c:
        assert (await c.get("/socket.io?EIO=4")).status == 200
        assert (await c.get("/socket.io/%7Esid")).status == 200
        assert (await c.get("/socket.iox")).status == 404
    assert [r.path for r in engine.requests] == ["/socket.io", "/socket.io/~sid"]


async def test_keep_alive_serves_many_requests_on_one_connection() -> None:
    engine = FakeEngine()
    async with running(engine) as server, client(server.port) as c:
        assert server.sockets[0].getsockname()[1] == server.port
        for _ in range(3):
            response = await c.get("/socket.io/?EIO=4")
            assert response.status == 200
            assert "connection" not in response.headers
    assert len(engine.requests) == 3


async def test_pipelined_requests_are_answered_in_order_behind_a_long_poll() -> None:
    engine = FakeEngine()
    async with running(engine) as server, client(server.port) as c:
        c.send(
            b"GET /socket.io/?wait=1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /socket.io/?n=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab"
            b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        await asyncio.wait_for(engine.waiting.wait(), 5)
        engine.gate.set()
        first = await c.response()
        second = await c.response()
        third = await c.response()
    assert first.body == b"GET /socket.io/ 0"
    assert second.body == b"POST /socket.io/ 2"
    assert third.status == 404


async def test_client_leaving_during_long_poll_cancels_the_engine_call() -> None:
    engine = FakeEngine()
    async with running(engine) as server:
        async with client(server.port) as c:
            c.send(b"GET /socket.io/?wait=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(engine.waiting.wait(), 5)
        await asyncio.wait_for(engine.cancelled.wait(), 5)


async def test_http10_closes_unless_keep_alive_requested() -> None:
    async with running() as server:
        async with client(server.port) as c:
            c.send(b"GET /socket.io/ HTTP/1.0\r\n\r\n")
            response = await c.response()
            assert response.headers["connection"] == "close"
            assert await c.eof() == b""
        async with client(server.port) as c:
            c.send(b"GET /socket.io/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            assert (await c.response()).headers["connection"] == "keep-alive"
            assert (await c.get("/socket.io/")).status == 200


async def test_connection_close_request_is_honoured() -> None:
    async with running() as server, client(server.port) as c:
        response = await c.get("/socket.io/", "Connection: close\r\n")
        assert response.headers["connection"] == "close"
        assert await c.eof() == b""


async def test_fallback_and_default_404() -> None:
    seen: list[HTTPRequest] = []

    async def fallback(request: HTTPRequest) -> HTTPResponse:
        seen.append(request)
        return HTTPResponse(201, [("x-app", "yes")], b"app")

    async with running(fallback=fallback) as server, client(server.port) as c:
        response = await c.get("/api/thing?x=1")
        assert (response.status, response.body, response.headers["x-app"]) == (201, b"app", "yes")
    assert seen[0].path == "/api/thing" and seen[0].query == {"x": "1"}
    async with running() as server, client(server.port) as c:
        assert (await c.get("/api/thing")).status == 404


async def test_engine_exception_answers_500_and_closes() -> None:
    async with running() as server, client(server.port) as c:
        response = await c.get("/socket.io/?boom=1")
        assert response.status == 500
        assert response.headers["connection"] == "close"
        assert await c.eof() == b""


async def test_head_gets_headers_only() -> None:
    async with running() as server, client(server.port) as c:
        c.send(b"HEAD /socket.io/ HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await c.response(head=True)
        assert response.headers["content-length"] == str(len(b"HEAD /socket.io/ 0"))
        # the next response starts right after the headers: no body was sent
        assert (await c.get("/socket.io/")).body == b"GET /socket.io/ 0"


async def test_expect_100_continue() -> None:
    async with running() as server, client(server.port) as c:
        c.send(
            b"POST /socket.io/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        assert await c.reader.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert await c.reader.readline() == b"\r\n"
        c.send(b"abc")
        assert (await c.response()).body == b"POST /socket.io/ 3"


async def test_chunked_body_is_assembled() -> None:
    async with running() as server, client(server.port) as c:
        c.send(
            b"POST /socket.io/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        assert (await c.response()).body == b"POST /socket.io/ 5"


# -- refusals ----------------------------------------------------------------------------------


async def refused(port: int, data: bytes) -> tuple[int, bytes]:
    async with client(port) as c:
        c.send(data)
        response = await c.response()
        assert response.headers["connection"] == "close"
        assert await c.eof() == b""
        return response.status, response.body


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"v" * 400 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(11)) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"H%d: %s\r\n" % (i, b"v" * 200) for i in range(8)), 431),
        (b"GET / HTTP/1.1\r\nX: " + b"v" * 2000, 431),  # an endless header line, never ended
        (b"BREW / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00", 400),  # a TLS hello on the plain port
        (b"POST /socket.io/ HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", 413),
    ],
    ids=["url", "line", "count", "total", "endless", "method", "length", "tls", "content-length"],
)
async def test_bad_requests_are_answered_then_closed(data: bytes, status: int) -> None:
    async with running() as server:
        assert (await refused(server.port, data))[0] == status


async def test_body_over_max_payload_counted_while_streaming() -> None:
    async with running() as server, client(server.port) as c:
        c.send(b"POST /socket.io/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):
            c.send(b"190\r\n" + b"z" * 400 + b"\r\n")  # 1200 bytes > max_payload 1000
        response = await c.response()
        assert response.status == 413
        assert await c.eof() == b""


async def test_refusal_waits_for_the_answers_owed() -> None:
    engine = FakeEngine()
    async with running(engine) as server, client(server.port) as c:
        c.send(b"GET /socket.io/?wait=1 HTTP/1.1\r\nHost: x\r\n\r\nBREW / HTTP/1.1\r\n\r\n")
        await asyncio.wait_for(engine.waiting.wait(), 5)
        engine.gate.set()
        assert (await c.response()).status == 200
        assert (await c.response()).status == 400
        assert await c.eof() == b""


async def test_slow_headers_time_out_with_408() -> None:
    async with running() as server:
        status, _ = await refused(server.port, b"GET /socket.io/ HTTP/1.1\r\nHost: x\r\n")
        assert status == 408


async def test_slow_body_times_out_with_408() -> None:
    async with running() as server:
        data = b"POST /socket.io/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"
        assert (await refused(server.port, data))[0] == 408


async def test_silent_connection_and_idle_keep_alive_are_closed() -> None:
    async with running() as server:
        async with client(server.port) as c:
            assert await c.eof() == b""  # never sent a byte
        async with client(server.port) as c:
            assert (await c.get("/socket.io/")).status == 200
            assert await c.eof() == b""  # keep-alive timeout


async def test_a_request_begun_as_keep_alive_ends_gets_the_full_header_timeout() -> None:
    # The keep-alive deadline passes while the next request's headers trickle in: that must not
    # close the connection; the request's own header deadline (1 s after its first byte) does.
    limits = dataclasses.replace(FAST, header_timeout=1.0, keepalive_timeout=0.5)
    loop = asyncio.get_running_loop()
    async with running(limits=limits) as server, client(server.port) as c:
        assert (await c.get("/socket.io/")).status == 200
        await asyncio.sleep(0.1)
        c.send(b"GET /socket.io/ HTTP/1.1\r\n")
        started = loop.time()
        assert (await c.response()).status == 408
        assert loop.time() - started >= 0.9
        assert await c.eof() == b""


async def test_a_long_poll_outlasting_every_timeout_is_answered_and_kept_alive() -> None:
    engine = FakeEngine()
    async with running(engine) as server, client(server.port) as c:
        c.send(b"GET /socket.io/?wait=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(engine.waiting.wait(), 5)
        await asyncio.sleep(0.5)  # past the header, body and keep-alive timeouts (0.3 s)
        engine.gate.set()
        assert (await c.response()).status == 200
        assert (await c.get("/socket.io/")).status == 200


async def test_too_many_pipelined_requests_pause_reading_and_resume() -> None:
    engine = FakeEngine()
    async with running(engine) as server, client(server.port) as c:
        c.send(b"GET /socket.io/?wait=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        c.send(b"GET /socket.io/ HTTP/1.1\r\nHost: x\r\n\r\n" * 9)
        await asyncio.wait_for(engine.waiting.wait(), 5)
        engine.gate.set()
        statuses = [(await c.response()).status for _ in range(10)]
    assert statuses == [200] * 10


async def test_peer_reset_during_long_poll_cancels_it() -> None:
    engine = FakeEngine()
    async with running(engine) as server:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /socket.io/?wait=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(engine.waiting.wait(), 5)
        _reset(writer)
        await asyncio.wait_for(engine.cancelled.wait(), 5)
        async with client(server.port) as c:  # the server still works
            assert (await c.get("/socket.io/")).status == 200


async def test_peer_reset_while_writing_is_harmless(caplog: pytest.LogCaptureFixture) -> None:
    big = b"z" * (8 << 20)  # more than the socket buffers hold: the write is still going on

    async def fallback(request: HTTPRequest) -> HTTPResponse:
        return HTTPResponse(200, [], big)

    async with running(fallback=fallback) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 200")
        _reset(writer)
        async with client(server.port) as c:
            assert (await c.get("/socket.io/")).status == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# -- lifecycle ---------------------------------------------------------------------------------


async def test_close_is_idempotent_and_ends_serve_forever() -> None:
    server = await serve(FakeEngine(), port=0, limits=FAST)  # type: ignore[arg-type]
    forever = asyncio.create_task(server.serve_forever())
    async with client(server.port) as c:
        assert (await c.get("/socket.io/")).status == 200
        await asyncio.gather(server.close(), server.close())
        assert await c.eof() == b""
    await asyncio.wait_for(forever, 5)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", server.port)


async def test_cancelled_serve_forever_closes_the_server() -> None:
    server = await serve(FakeEngine(), port=0, limits=FAST)  # type: ignore[arg-type]
    async with server:
        forever = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0)
        forever.cancel()
        with pytest.raises(asyncio.CancelledError):
            await forever
        assert server.connections == 0
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", server.port)


async def test_shutdown_lets_the_answer_in_flight_finish() -> None:
    engine = FakeEngine()
    server = await serve(engine, port=0, limits=FAST)  # type: ignore[arg-type]
    async with client(server.port) as c:
        c.send(b"GET /socket.io/?wait=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(engine.waiting.wait(), 5)
        closing = asyncio.create_task(server.close())
        await asyncio.sleep(0)
        engine.gate.set()
        response = await c.response()
        assert response.status == 200 and response.headers["connection"] == "close"
        await closing


async def test_shutdown_aborts_what_does_not_finish() -> None:
    engine = FakeEngine()
    server = await serve(engine, port=0, limits=FAST)  # type: ignore[arg-type]
    async with client(server.port) as c:
        c.send(b"GET /socket.io/?wait=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(engine.waiting.wait(), 5)
        await server.close()  # the long-poll never ends: aborted after shutdown_timeout
        assert server.connections == 0
        assert engine.cancelled.is_set()
        assert await c.eof() == b""


def test_limits_are_documented_defaults() -> None:
    limits = NativeLimits()
    assert (limits.max_header_size, limits.max_headers, limits.max_url_size) == (16384, 100, 8192)
    with pytest.raises(AttributeError):
        limits.max_headers = 5  # type: ignore[misc]


def test_encode_response_owns_framing_headers_and_drops_unsafe_ones() -> None:
    response = HTTPResponse(
        204,
        [
            ("Content-Length", "99"),
            ("X-Ok", "1"),
            ("X-Bad", "a\r\nSet-Cookie: x"),
            ("Connection", "x"),
        ],
        b"",
    )
    assert encode_response(response, close=False) == b"HTTP/1.1 204 No Content\r\nX-Ok: 1\r\n\r\n"
    unusual = encode_response(HTTPResponse(299, [], b"x"), close=True)
    assert unusual == b"HTTP/1.1 299 Status\r\ncontent-length: 1\r\nconnection: close\r\n\r\nx"


async def test_asterisk_target_reaches_the_fallback() -> None:
    seen: list[HTTPRequest] = []

    async def fallback(request: HTTPRequest) -> HTTPResponse:
        seen.append(request)
        return HTTPResponse(204)

    async with running(fallback=fallback) as server, client(server.port) as c:
        c.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await c.response()).status == 204
    assert (seen[0].method, seen[0].path, seen[0].url) == ("OPTIONS", "*", "*")


class _FakeTransport(asyncio.Transport):
    def __init__(self, peer: object) -> None:
        super().__init__()
        self.peer = peer
        self.closed = False
        self.paused = False
        self.writes: list[bytes] = []

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.peer if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.paused = True

    def get_write_buffer_size(self) -> int:
        return 0


async def test_protocol_edges_without_sockets() -> None:
    from sockjet.serving.http import HTTPProtocol, ServerContext
    from sockjet.serving.websocket import Flusher

    ctx = ServerContext(FakeEngine(), FAST, Flusher(asyncio.get_running_loop()))  # type: ignore[arg-type]
    # a Unix-socket peer has no (host, port)
    proto = HTTPProtocol(ctx)
    transport = _FakeTransport("/run/sock")
    proto.connection_made(transport)
    proto.data_received(
        b"GET /socket.io/ HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nAB"
    )
    assert transport.paused
    proto.data_received(b"CD")  # a read already under way when reading paused: kept for later
    assert proto._upgrade_tail == [b"AB", b"CD"]
    proto.shutdown()  # an upgrade is owed: not closed now
    assert not transport.closed
    proto.connection_lost(None)
    proto.abort()  # already gone: nothing to do
    proto._close()
    assert ctx.connections == set()
    # a connection accepted while the server is closing is closed at once
    ctx.closing = True
    late = HTTPProtocol(ctx)
    late_transport = _FakeTransport(("127.0.0.1", 1))
    late.connection_made(late_transport)
    assert late_transport.closed
    late._write(b"nothing: the transport is closing")
    assert late_transport.writes == []


@pytest.mark.parametrize("yields", range(6))
async def test_close_racing_an_accept_closes_that_connection_too(yields: int) -> None:
    # CPython gh-109564: on the stdlib loop, Server.close() between accepting a socket and
    # building its transport fails the build and leaks the socket, never closed (a
    # ResourceWarning at GC, an error here). Whatever number of loop iterations separates the
    # client's connect from close(), the accepted connection must be closed by close().
    server = await serve(FakeEngine(), port=0, limits=FAST)  # type: ignore[arg-type]
    peer = socket.create_connection(("127.0.0.1", server.port))
    try:
        peer.setblocking(False)
        for _ in range(yields):
            await asyncio.sleep(0)
        await server.close()
        assert server.connections == 0
        loop = asyncio.get_running_loop()
        # Closed by us (EOF), or reset by the listening socket's close if never accepted.
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(loop.sock_recv(peer, 1), 5) == b""
    finally:
        peer.close()
    gc.collect()  # a leaked transport would warn here (warnings are errors)
