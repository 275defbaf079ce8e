"""Measure WebSocket codecs on the native server's hot path (the numbers behind the codec choice).

Run: ``.venv/bin/python bench/ws_codec.py`` (optionally ``--quick``). Candidates that are not
installed are skipped: ``pip install websockets wsproto picows aiohttp`` to compare them all.

Parsing: the cost to turn client bytes (masked frames, as a browser sends them) into complete
messages, text decoded to ``str`` (UTF-8 validation is part of the job), per frame:
  text50    one 50-byte text frame per read (the chat / Socket.IO event case)
  text1k    one 1 KiB text frame per read
  bin64k    one 64 KiB binary frame per read
  batch100  100 x 50-byte text frames in one read (a burst)
Building: the cost to build one unmasked server frame.

Each number is the best of several runs, in nanoseconds per frame; the last column is the ratio to
sockjet's own parser (>1 means slower than sockjet).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from sockjet.protocol.websocket import FrameParser, data_frame, unmask

Feed = Callable[[bytes], int]


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked, final client frame."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


TEXT50 = ('42["message",' + '"' + "x" * 34 + '"]').encode()
TEXT1K = ('42["message","' + "y" * (1024 - 16) + '"]').encode()
assert len(TEXT50) == 50 and len(TEXT1K) == 1024
SCENARIOS: dict[str, tuple[bytes, int]] = {
    "text50": (client_frame(1, TEXT50), 1),
    "text1k": (client_frame(1, TEXT1K), 1),
    "bin64k": (client_frame(2, os.urandom(65536)), 1),
    "batch100": (client_frame(1, TEXT50) * 100, 100),
}


# -- parsers -------------------------------------------------------------------------------------


def sockjet_parser() -> Feed:
    parser = FrameParser(max_payload=1 << 20)

    def feed(data: bytes) -> int:
        return len(parser.feed(data))

    return feed


def sockjet_pure_parser() -> Feed:
    """sockjet without websockets' C masker: the fallback when websockets is not installed."""
    parser = FrameParser(max_payload=1 << 20, mask=unmask)

    def feed(data: bytes) -> int:
        return len(parser.feed(data))

    return feed


def websockets_parser() -> Feed:
    from websockets.frames import Opcode
    from websockets.protocol import Protocol, Side, State

    proto = Protocol(Side.SERVER, state=State.OPEN, max_size=1 << 20)

    def feed(data: bytes) -> int:
        proto.receive_data(data)
        count = 0
        for frame in proto.events_received():
            if frame.opcode is Opcode.TEXT:
                frame.data.decode()
            count += 1
        proto.data_to_send()
        return count

    return feed


def wsproto_parser() -> Feed:
    from wsproto.frame_protocol import FrameProtocol

    proto = FrameProtocol(client=False, extensions=[])

    def feed(data: bytes) -> int:
        proto.receive_bytes(data)
        return sum(1 for frame in proto.received_frames() if frame.message_finished)

    return feed


def aiohttp_parser(loop: asyncio.AbstractEventLoop) -> Feed:
    # A private module of aiohttp (compiled with Cython): measured as a speed reference only.
    from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader

    class FlowControl:
        _reading_paused = False

        def pause_reading(self) -> None: ...

        def resume_reading(self) -> None: ...

    def fresh() -> tuple[Any, Any]:
        queue = WebSocketDataQueue(FlowControl(), 1 << 30, loop=loop)  # type: ignore[arg-type]
        return queue, WebSocketReader(queue, 1 << 20, compress=False, decode_text=True)

    state = list(fresh())

    def feed(data: bytes) -> int:
        queue, reader = state
        reader.feed_data(data)
        count = len(queue._buffer)
        queue._buffer.clear()  # the queue's own accounting only grows: start over well before
        if queue._size > 1 << 29:  # it would stall the reader (its read() is a coroutine)
            state[:] = fresh()
        return count

    return feed


def picows_parser() -> Feed:
    # picows owns the whole connection (handshake included); we drive its BufferedProtocol with
    # a stand-in transport over a socketpair, after a real upgrade request.
    import socket

    import picows
    from picows.picows import WSProtocol

    class Listener(picows.WSListener):  # type: ignore[misc]
        count = 0

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == picows.WSMsgType.TEXT:
                frame.get_payload_as_utf8_text()
            else:
                frame.get_payload_as_bytes()
            self.count += 1

    # picows sets TCP options on the socket: a loopback TCP pair, not a Unix socketpair.
    with socket.create_server(("127.0.0.1", 0)) as listener_socket:
        right = socket.create_connection(listener_socket.getsockname())
        left, _ = listener_socket.accept()

    class Transport(asyncio.Transport):
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return {"socket": left, "peername": None, "sockname": None}.get(name, default)

        def write(self, data: Any) -> None: ...

        def is_closing(self) -> bool:
            return False

    listener = Listener()
    proto = WSProtocol(
        None, None, False, lambda request: listener, logging.getLogger("picows.bench"), True, None,
        False, 20, 20, picows.WSAutoPingStrategy.PING_WHEN_IDLE, True, 1 << 20, None, 1 << 17,
    )  # fmt: skip
    proto.connection_made(Transport())

    def push(data: bytes) -> None:
        buffer = proto.get_buffer(-1)
        buffer[: len(data)] = data
        proto.buffer_updated(len(data))

    push(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )

    def feed(data: bytes) -> int:
        before = listener.count
        push(data)
        return listener.count - before

    feed.close = lambda: (left.close(), right.close())  # type: ignore[attr-defined]
    return feed


# -- builders ------------------------------------------------------------------------------------


def sockjet_builder(data: str | bytes) -> bytes:
    return data_frame(data)


def websockets_builder(data: str | bytes) -> bytes:
    from websockets.frames import Frame, Opcode

    if isinstance(data, str):
        return Frame(Opcode.TEXT, data.encode()).serialize(mask=False)
    return Frame(Opcode.BINARY, data).serialize(mask=False)


def wsproto_builder() -> Callable[[str | bytes], bytes]:
    from wsproto.frame_protocol import FrameProtocol

    proto = FrameProtocol(client=False, extensions=[])
    return lambda data: proto.send_data(data, fin=True)


# -- timing --------------------------------------------------------------------------------------


def best_ns(run: Callable[[], int], repeats: int, budget: float) -> float:
    """Best time per frame over ``repeats`` runs of about ``budget`` seconds each."""
    frames = run()
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            run()
        elapsed = time.perf_counter() - start
        if elapsed >= budget / 10:
            break
        loops *= 2
    loops = max(1, int(loops * budget / max(elapsed, 1e-9)))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(loops):
            run()
        best = min(best, (time.perf_counter_ns() - start) / loops / frames)
    return best


def main() -> None:
    arg_parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arg_parser.add_argument("--quick", action="store_true", help="shorter runs")
    args = arg_parser.parse_args()
    repeats, budget = (3, 0.05) if args.quick else (7, 0.2)

    loop = asyncio.new_event_loop()
    factories: dict[str, Callable[[], Feed]] = {
        "sockjet": sockjet_parser,
        "sockjet-py": sockjet_pure_parser,
        "websockets": websockets_parser,
        "wsproto": wsproto_parser,
        "aiohttp": lambda: aiohttp_parser(loop),
        "picows": lambda: loop.run_until_complete(_in_loop(picows_parser)),
    }
    print(f"Python {sys.version.split()[0]}; ns per frame (best of {repeats}); ratio vs sockjet")
    print("\nparse client frames")
    reference: dict[str, float] = {}
    for name, factory in factories.items():
        for scenario, (chunk, count) in SCENARIOS.items():
            try:
                feed = factory()
            except ImportError:
                print(f"  {name:<11} not installed")
                break
            got = feed(chunk)
            assert got == count, (name, scenario, got)
            ns = best_ns(lambda feed=feed, chunk=chunk: feed(chunk), repeats, budget)  # type: ignore[misc]
            if name == "sockjet":
                reference[scenario] = ns
            print(f"  {name:<11} {scenario:<9} {ns:>10.0f} ns  x{ns / reference[scenario]:.2f}")
            close = getattr(feed, "close", None)
            if close is not None:
                close()

    print("\nbuild server frames")
    builders: dict[str, Callable[[], Callable[[str | bytes], bytes]]] = {
        "sockjet": lambda: sockjet_builder,
        "websockets": lambda: websockets_builder,
        "wsproto": wsproto_builder,
    }
    payloads: dict[str, str | bytes] = {
        "text50": TEXT50.decode(),
        "text1k": TEXT1K.decode(),
        "bin64k": os.urandom(65536),
    }
    built: dict[str, float] = {}
    for name, make in builders.items():
        try:
            build = make()
            build("x")
        except ImportError:
            print(f"  {name:<11} not installed")
            continue
        for scenario, payload in payloads.items():
            assert build(payload) == sockjet_builder(payload), (name, scenario)
            ns = best_ns(lambda b=build, p=payload: len(b(p)) and 1, repeats, budget)  # type: ignore[misc]
            if name == "sockjet":
                built[scenario] = ns
            print(f"  {name:<11} {scenario:<9} {ns:>10.0f} ns  x{ns / built[scenario]:.2f}")
    loop.close()


async def _in_loop(factory: Callable[[], Feed]) -> Feed:
    return factory()


if __name__ == "__main__":
    main()
