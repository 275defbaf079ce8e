"""The native server's WebSocket side, over real sockets against a fake engine."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import zlib

import pytest
from native_client import (
    KEY,
    WS_PATH,
    FakeEngine,
    FakeHandler,
    client,
    frame,
    running,
    upgrade_request,
    websocket,
)

from sockjet.engine.io import HTTPRequest, HTTPResponse, Outgoing, WebSocketConnection

TEXT, BINARY, CLOSE, PING, PONG, CONT = 1, 2, 8, 9, 10, 0


async def handler_of(engine: FakeEngine, index: int = 0) -> FakeHandler:
    await asyncio.wait_for(engine.opened.wait(), 5)
    return engine.handlers[index]


async def test_handshake_answers_101_with_accept_key() -> None:
    engine = FakeEngine()
    async with running(engine) as server, websocket(server.port) as ws:
        expected = base64.b64encode(
            hashlib.sha1(KEY.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        ).decode()
        assert ws.headers["sec-websocket-accept"] == expected  # type: ignore[attr-defined]
        assert ws.headers["upgrade"].lower() == "websocket"  # type: ignore[attr-defined]
        assert "sec-websocket-extensions" not in ws.headers  # type: ignore[attr-defined]
        assert server.connections == 1
    assert engine.requests == []  # the upgrade went to check/open_websocket, not handle_request


async def test_text_and_binary_messages_reach_the_handler_and_come_back() -> None:
    engine = FakeEngine()
    async with running(engine) as server, websocket(server.port) as ws:
        ws.send(frame(TEXT, "héllo") + frame(BINARY, b"\x00\x01\xff"))
        assert await ws.frame() == (0x81, TEXT, "héllo".encode())
        assert await ws.frame() == (0x82, BINARY, b"\x00\x01\xff")
        big = "x" * 300  # 16-bit length on both sides
        ws.send(frame(TEXT, big))
        assert await ws.frame() == (0x81, TEXT, big.encode())
        handler = await handler_of(engine)
        assert handler.messages == ["héllo", b"\x00\x01\xff", big]


async def test_fragmented_message_with_interleaved_ping() -> None:
    engine = FakeEngine()
    async with running(engine) as server, websocket(server.port) as ws:
        ws.send(
            frame(TEXT, "ab", fin=False)
            + frame(PING, b"p")
            + frame(CONT, "cd", fin=False)
            + frame(CONT, "é", fin=True)
        )
        assert await ws.frame() == (0x8A, PONG, b"p")
        assert await ws.frame() == (0x81, TEXT, "abcdé".encode())


async def test_two_sends_in_one_iteration_arrive_in_one_segment() -> None:
    engine = FakeEngine()
    async with running(engine) as server, websocket(server.port) as ws:
        ws.send(frame(TEXT, "twice"))
        data = await asyncio.wait_for(ws.reader.read(100), 5)
        assert data == b"\x81\x03one\x81\x03two"


class GreetingEngine(FakeEngine):
    """Sends a first message as it opens, as Engine.IO sends its OPEN packet."""

    def open_websocket(self, request: HTTPRequest, conn: WebSocketConnection) -> FakeHandler:
        handler = super().open_websocket(request, conn)
        conn.send(Outgoing("0{}"))
        return handler


async def test_handshake_and_first_frame_leave_in_one_write() -> None:
    async with running(GreetingEngine()) as server, client(server.port) as c:
        c.send(upgrade_request())
        data = await asyncio.wait_for(c.reader.read(4096), 5)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols")
        assert rest == b"\x81\x030{}"


async def test_ping_is_answered_with_pong() -> None:
    async with running() as server, websocket(server.port) as ws:
        ws.send(frame(PING, b"abc") + frame(PONG, b"ignored") + frame(PING))
        assert await ws.frame() == (0x8A, PONG, b"abc")
        assert await ws.frame() == (0x8A, PONG, b"")


async def test_client_close_handshake_and_on_close_once() -> None:
    engine = FakeEngine()
    async with running(engine) as server, websocket(server.port) as ws:
        ws.send(frame(CLOSE, b"\x03\xe8done"))
        assert await ws.close_frame() == (1000, "")
        assert await ws.eof() == b""
        handler = await handler_of(engine)
        await asyncio.wait_for(handler.closed.wait(), 5)
    assert handler.closes == [(1000, "done")]


async def test_close_without_code_is_1005() -> None:
    engine = FakeEngine()
    async with running(engine) as server, websocket(server.port) as ws:
        ws.send(frame(CLOSE))
        assert await ws.close_frame() == (None, "")
        handler = await handler_of(engine)
        await asyncio.wait_for(handler.closed.wait(), 5)
    assert handler.closes == [(1005, "")]


async def test_server_close_handshake() -> None:
    engine = FakeEngine()
    async with running(engine) as server, websocket(server.port) as ws:
        ws.send(frame(TEXT, "before") + frame(TEXT, "close-me") + frame(TEXT, "after"))
        assert await ws.frame() == (0x81, TEXT, b"before")
        assert await ws.close_frame() == (4000, "bye")
        handler = await handler_of(engine)
        assert handler.messages == ["before", "close-me"]  # nothing delivered after our close
        assert not handler.closed.is_set()  # waiting for the peer's close frame
        ws.send(frame(CLOSE, b"\x0f\xa0"))
        assert await ws.eof() == b""
        await asyncio.wait_for(handler.closed.wait(), 5)
    assert handler.closes == [(4000, "")]


async def test_server_close_without_answer_times_out() -> None:
    engine = FakeEngine()
    async with running(engine) as server, websocket(server.port) as ws:
        ws.send(frame(TEXT, "close-me"))
        assert await ws.close_frame() == (4000, "bye")
        assert await ws.eof() == b""  # close_timeout (0.3 s in FAST)
        handler = await handler_of(engine)
    assert handler.closes == [(None, "")]


async def test_dropped_connection_reports_none() -> None:
    engine = FakeEngine()
    async with running(engine) as server:
        async with websocket(server.port) as ws:
            ws.send(frame(TEXT, "hi"))
            await ws.frame()
        handler = await handler_of(engine)
        await asyncio.wait_for(handler.closed.wait(), 5)
    assert handler.closes == [(None, "")]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(TEXT, "unmasked", masked=False), 1002),
        (frame(TEXT, "rsv1", rsv=0x40), 1002),
        (frame(TEXT, "rsv2", rsv=0x20), 1002),
        (frame(3, "x"), 1002),
        (frame(11, "x"), 1002),
        (frame(CONT, "x"), 1002),
        (frame(PING, b"x" * 126), 1002),
        (frame(PING, b"x", fin=False), 1002),
        (frame(TEXT, "a", fin=False) + frame(TEXT, "b"), 1002),
        (frame(CLOSE, b"\x03"), 1002),
        (frame(CLOSE, b"\x03\xed"), 1002),  # 1005 may not be sent
        (frame(CLOSE, b"\x03\xe8\xff"), 1007),
        (frame(TEXT, b"\xff\xfe"), 1007),
        (frame(TEXT, b"\xed\xa0\x80"), 1007),  # an encoded surrogate
        (frame(TEXT, "x" * 1001), 1009),
        (frame(BINARY, length=2**62), 1009),  # declared, never sent: refused on the header
        (frame(TEXT, "x" * 600, fin=False) + frame(CONT, "x" * 600), 1009),
        (frame(TEXT, fin=False) + frame(CONT, fin=False) * 20, 1009),  # fragment flood
    ],
    ids=[
        "unmasked",
        "rsv1",
        "rsv2",
        "opcode3",
        "opcode11",
        "continuation",
        "long-ping",
        "fragmented-ping",
        "interleaved",
        "close-1-byte",
        "close-1005",
        "close-reason-utf8",
        "utf8",
        "surrogate",
        "too-big",
        "huge-declared",
        "fragments-too-big",
        "fragment-flood",
    ],
)
async def test_violations_close_with_the_right_code(data: bytes, code: int) -> None:
    engine = FakeEngine()
    async with running(engine) as server:
        async with websocket(server.port) as ws:
            ws.send(data)
            assert (await ws.close_frame())[0] == code
            assert await ws.eof() == b""
        handler = await handler_of(engine)
        await asyncio.wait_for(handler.closed.wait(), 5)
        assert [c for c, _ in handler.closes] == [code]
        assert handler.messages == []


async def test_canary_keeps_working_while_another_connection_is_closed() -> None:
    engine = FakeEngine()
    async with running(engine) as server, websocket(server.port) as canary:
        canary.send(frame(TEXT, "alive?"))
        assert (await canary.frame())[2] == b"alive?"
        async with websocket(server.port) as bad:
            bad.send(frame(BINARY, length=2**40))
            assert (await bad.close_frame())[0] == 1009
        canary.send(frame(TEXT, "still"))
        assert (await canary.frame())[2] == b"still"


async def test_handler_exception_closes_with_1011() -> None:
    engine = FakeEngine()
    async with running(engine) as server, websocket(server.port) as ws:
        ws.send(frame(TEXT, "raise"))
        assert (await ws.close_frame())[0] == 1011


async def test_frames_sent_with_the_upgrade_request_are_not_lost() -> None:
    engine = FakeEngine()
    async with running(engine) as server, client(server.port) as c:
        c.send(upgrade_request() + frame(TEXT, "early"))
        assert (await c.response()).status == 101
        assert await c.frame() == (0x81, TEXT, b"early")


# -- refused handshakes ------------------------------------------------------------------------


async def test_engine_can_refuse_the_upgrade() -> None:
    engine = FakeEngine(refuse_ws=HTTPResponse(400, [], b'{"code":3,"message":"Bad request"}'))
    async with running(engine) as server, client(server.port) as c:
        c.send(upgrade_request())
        response = await c.response()
        assert (response.status, response.body) == (400, b'{"code":3,"message":"Bad request"}')
        assert await c.eof() == b""
    assert engine.handlers == []


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (upgrade_request(key="short"), 400),
        (upgrade_request(key="!!!!"), 400),
        (upgrade_request().replace(b"Version: 13", b"Version: 8"), 426),
        (upgrade_request().replace(b"GET", b"POST"), 405),
        (upgrade_request(path="/chat"), 404),
    ],
    ids=["short-key", "bad-base64", "version", "method", "path"],
)
async def test_invalid_handshakes_are_refused(request_bytes: bytes, status: int) -> None:
    engine = FakeEngine()
    async with running(engine) as server, client(server.port) as c:
        c.send(request_bytes)
        response = await c.response()
        assert response.status == status
        assert await c.eof() == b""
    assert engine.handlers == []


async def test_other_upgrades_are_answered_over_http() -> None:
    engine = FakeEngine()
    async with running(engine) as server, client(server.port) as c:
        c.send(
            b"GET /socket.io/ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
        )
        response = await c.response()
        assert (response.status, response.headers["connection"]) == (200, "close")
        assert await c.eof() == b""


async def test_open_websocket_failure_closes_with_1011() -> None:
    engine = FakeEngine(fail_open=True)
    async with running(engine) as server, websocket(server.port) as ws:
        assert (await ws.close_frame())[0] == 1011


async def test_shutdown_closes_websockets_with_1001() -> None:
    engine = FakeEngine()
    async with running(engine) as server, websocket(server.port) as ws:
        handler = await handler_of(engine)
        closing = asyncio.create_task(server.close())
        assert await ws.close_frame() == (1001, "going away")
        ws.send(frame(CLOSE, b"\x03\xe9"))
        await closing
        assert handler.closes == [(1001, "")]
        assert server.connections == 0


async def test_upgrade_during_shutdown_is_refused() -> None:
    engine = FakeEngine()
    async with running(engine) as server, client(server.port) as c:
        request = upgrade_request()
        c.send(request[:20])  # a request under way is not cut by the shutdown
        await asyncio.sleep(0.05)
        closing = asyncio.create_task(server.close())
        await asyncio.sleep(0)
        c.send(request[20:])
        assert (await c.response()).status == 503
        await closing
    assert engine.handlers == []


async def test_upgrade_header_without_connection_upgrade_is_plain_http() -> None:
    engine = FakeEngine()
    async with running(engine) as server, client(server.port) as c:
        c.send(upgrade_request().replace(b"Connection: Upgrade", b"Connection: keep-alive"))
        assert (await c.response()).status == 200
    assert len(engine.requests) == 1 and engine.handlers == []


# -- permessage-deflate ------------------------------------------------------------------------


def compress(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


async def test_deflate_is_not_negotiated_unless_enabled() -> None:
    async with (
        running() as server,
        websocket(server.port, "Sec-WebSocket-Extensions: permessage-deflate\r\n") as ws,
    ):
        assert "sec-websocket-extensions" not in ws.headers  # type: ignore[attr-defined]
        ws.send(frame(TEXT, compress(b"hi"), rsv=0x40))
        assert (await ws.close_frame())[0] == 1002


async def test_deflate_round_trip() -> None:
    engine = FakeEngine(per_message_deflate=True, max_payload=5000)
    offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    async with running(engine) as server, websocket(server.port, offer) as ws:
        agreed = ws.headers["sec-websocket-extensions"]  # type: ignore[attr-defined]
        assert agreed == "permessage-deflate; server_no_context_takeover"
        text = "compressible " * 200
        ws.send(frame(TEXT, compress(text.encode()), rsv=0x40) + frame(TEXT, "small"))
        b0, opcode, payload = await ws.frame()
        assert (b0, opcode) == (0xC1, TEXT)  # over the threshold: compressed
        assert zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff") == text.encode()
        assert await ws.frame() == (0x81, TEXT, b"small")
        # a compressed message in fragments: RSV1 on the first frame only
        data = compress(b"fragmented")
        ws.send(frame(BINARY, data[:3], fin=False, rsv=0x40) + frame(CONT, data[3:]))
        assert await ws.frame() == (0x82, BINARY, b"fragmented")


async def test_deflate_skips_messages_sent_with_compress_false() -> None:
    engine = FakeEngine(per_message_deflate=True, max_payload=5000)
    offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    async with running(engine) as server, websocket(server.port, offer) as ws:
        text = "uncompressed:" + "x" * 2000  # over the threshold, yet sent as is
        ws.send(frame(TEXT, text))
        assert await ws.frame() == (0x81, TEXT, text.encode())


async def test_deflate_bomb_is_cut_at_max_payload() -> None:
    engine = FakeEngine(per_message_deflate=True, max_payload=5000)
    offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    async with running(engine) as server, websocket(server.port, offer) as ws:
        bomb = compress(b"\x00" * 1_000_000)
        assert len(bomb) < 5000
        ws.send(frame(BINARY, bomb, rsv=0x40))
        assert (await ws.close_frame())[0] == 1009


async def test_corrupt_compressed_data_is_1007() -> None:
    engine = FakeEngine(per_message_deflate=True)
    offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    async with running(engine) as server, websocket(server.port, offer) as ws:
        ws.send(frame(BINARY, b"\xff\xff\xff\xff", rsv=0x40))
        assert (await ws.close_frame())[0] == 1007


async def test_broadcast_frame_is_built_once_per_outgoing() -> None:
    engine = FakeEngine()
    async with running(engine) as server, websocket(server.port) as a, websocket(server.port) as b:
        a.send(frame(TEXT, "a"))
        b.send(frame(TEXT, "b"))
        await a.frame()
        await b.frame()
        message = Outgoing("tick")
        message.ws_frame = b"\x81\x06cached"  # whatever is cached is what goes out
        for handler in engine.handlers:
            handler.conn.send(message)
        assert await a.frame() == (0x81, TEXT, b"cached")
        assert await b.frame() == (0x81, TEXT, b"cached")
        fresh = Outgoing("new")
        engine.handlers[0].conn.send(fresh)
        assert fresh.ws_frame == b"\x81\x03new"
        assert engine.handlers[0].conn.buffered_amount >= len(b"\x81\x03new")
        assert await a.frame() == (0x81, TEXT, b"new")


async def test_unrelated_upgrade_path_with_query() -> None:
    engine = FakeEngine()
    async with running(engine) as server, client(server.port) as c:
        c.send(upgrade_request(path=WS_PATH + "&sid=abc"))
        assert (await c.response()).status == 101
        handler = await handler_of(engine)
        assert handler.conn is not None


async def test_shutdown_during_check_websocket_closes_the_new_websocket() -> None:
    release = asyncio.Event()
    checking = asyncio.Event()

    class SlowCheck(FakeEngine):
        async def check_websocket(self, request: object) -> HTTPResponse | None:  # type: ignore[override]
            checking.set()
            await release.wait()
            return None

    engine = SlowCheck()
    async with running(engine) as server, client(server.port) as c:
        c.send(upgrade_request())
        await asyncio.wait_for(checking.wait(), 5)
        closing = asyncio.create_task(server.close())
        await asyncio.sleep(0)
        release.set()
        assert (await c.response()).status == 101
        assert await c.close_frame() == (1001, "going away")
        await closing


async def test_interop_with_aiohttp_client() -> None:
    aiohttp = pytest.importorskip("aiohttp")
    engine = FakeEngine(per_message_deflate=True, max_payload=100_000)
    async with running(engine) as server, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{server.port}{WS_PATH}"
        async with session.ws_connect(url, compress=15, autoping=False) as conn:
            await conn.send_str("hello")
            assert (await conn.receive(timeout=5)).data == "hello"
            await conn.send_bytes(b"\x00" * 5000)
            assert (await conn.receive(timeout=5)).data == b"\x00" * 5000
            text = "long text " * 500  # compressed both ways
            await conn.send_str(text)
            assert (await conn.receive(timeout=5)).data == text
            await conn.ping(b"p")
            pong = await conn.receive(timeout=5)
            assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"p")
            await conn.close(code=4001, message=b"done")
        handler = engine.handlers[0]
        await asyncio.wait_for(handler.closed.wait(), 5)
        assert handler.closes == [(4001, "done")]
