"""The load generator's two write modes (bench/loadgen/wsclient.py): ``per-message`` frames carry
a fresh random masking key and decode to the payload; every message leaves in its own write
(checked on a fake transport and counted as syscalls on a real uvloop socket); ``batched``
keeps the old generator's behaviour (zero key, one write per read). And the harness measures
and reports both modes side by side."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from bench import harness
from bench.loadgen import wsclient
from bench.loadgen.wsclient import (
    BATCHED,
    PER_MESSAGE,
    WSClient,
    apply_mask,
    client_frame,
    masked_frame,
    upgrade_request,
)

from sockjet.protocol.websocket import FrameParser

SIZES = [0, 1, 3, 4, 5, 125, 126, 127, 2047, 2048, 4099, 65535, 65536, 70001]


def decode(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """An independent decoder of client frames: (opcode, mask key, unmasked payload) each."""
    frames = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert b0 & 0x80, "FIN"
        assert b1 & 0x80, "client frames are masked"
        length = b1 & 0x7F
        pos += 2
        if length == 126:
            length = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
        elif length == 127:
            length = int.from_bytes(data[pos : pos + 8], "big")
            pos += 8
        key = data[pos : pos + 4]
        pos += 4
        masked = data[pos : pos + length]
        assert len(masked) == length, "truncated frame"
        payload = bytes(byte ^ key[i % 4] for i, byte in enumerate(masked))
        frames.append((b0 & 0x0F, key, payload))
        pos += length
    return frames


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("opcode", [1, 2])
def test_masked_frame_decodes_to_the_payload(size: int, opcode: int) -> None:
    payload = os.urandom(size)
    frame = masked_frame(payload, opcode)
    [(got_opcode, key, got)] = decode(frame)
    assert (got_opcode, got) == (opcode, payload)
    assert len(key) == 4
    if size >= 4:  # the payload really is masked on the wire (the key is not zero)
        assert key == b"\x00\x00\x00\x00" or frame[-size:] != payload


@pytest.mark.parametrize("size", SIZES)
def test_sockjets_own_parser_reads_the_frames(size: int) -> None:
    text = ("é" * size)[: max(size // 2, 0)].encode()
    binary = os.urandom(size)
    parser = FrameParser(max_payload=1 << 20)
    events = parser.feed(masked_frame(text) + masked_frame(binary, opcode=2))
    assert events == [(1, text.decode()), (2, binary)]


def test_every_frame_gets_a_fresh_key() -> None:
    keys = [decode(masked_frame(b'42["echo",1]'))[0][1] for _ in range(2000)]
    assert len(set(keys)) > 1990  # 32 random bits: a repeat in 2,000 is rare, 10 is impossible
    assert b"\x00\x00\x00\x00" not in keys


def test_mask_is_its_own_inverse_at_every_size() -> None:
    key = b"\x12\x34\x56\x78"
    for size in SIZES:
        payload = os.urandom(size)
        assert apply_mask(apply_mask(payload, key), key) == payload
        assert apply_mask(payload, key) == bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def test_a_fixed_key_frames_exactly() -> None:
    expected = b"\x81\x82\x01\x02\x03\x04" + bytes((ord("a") ^ 1, ord("b") ^ 2))
    assert masked_frame(b"ab", mask=b"\x01\x02\x03\x04") == expected


def test_batched_frames_keep_the_zero_key() -> None:
    [(opcode, key, payload)] = decode(client_frame(b"40"))
    assert (opcode, key, payload) == (1, b"\x00\x00\x00\x00", b"40")


def test_upgrade_requests() -> None:
    browser = upgrade_request("k==", 8123, browser=True).decode()
    assert browser.startswith("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n")
    assert "Host: 127.0.0.1:8123\r\n" in browser
    assert "Origin: http://127.0.0.1:8123\r\n" in browser  # the same origin: no CORS refusal
    assert "User-Agent: Mozilla/5.0" in browser and browser.endswith("\r\n\r\n")
    assert "Sec-WebSocket-Extensions" not in browser  # the generator does not inflate
    minimal = upgrade_request("k==").decode()
    assert "Origin" not in minimal and "Sec-WebSocket-Key: k==\r\n" in minimal


class FakeTransport:
    """Records every write call."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def get_extra_info(self, name: str) -> Any:
        return None

    def abort(self) -> None:
        pass


def _server_frame(text: bytes) -> bytes:
    assert len(text) < 126
    return bytes((0x81, len(text))) + text


def _open_client(writes: str) -> tuple[WSClient, FakeTransport]:
    loop = asyncio.new_event_loop()
    try:
        connected: asyncio.Future[int] = loop.create_future()
        client = WSClient(connected, writes=writes, port=9)  # type: ignore[arg-type]
        transport = FakeTransport()
        client.connection_made(transport)  # type: ignore[arg-type]
        handshake = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
            + _server_frame(b'0{"sid":"x"}')
        )
        client.data_received(handshake)
        client.data_received(_server_frame(b'40{"sid":"y"}'))
        assert connected.result() == 0
    finally:
        loop.close()
    return client, transport


def _replies_to_three_acks(writes: str) -> tuple[list[bytes], FakeTransport]:
    client, transport = _open_client(writes)
    before = len(transport.writes)

    def on_message(c: WSClient, payload: bytes) -> None:
        c.send(b"42" + payload[2:3] + b'["echo",1]')

    client.on_message = on_message
    client.data_received(b"".join(_server_frame(b"43%d[1]" % i) for i in range(3)))
    return transport.writes[before:], transport


def test_per_message_writes_every_reply_at_once() -> None:
    writes, transport = _replies_to_three_acks(PER_MESSAGE)
    assert len(writes) == 3  # three messages, three writes, one frame each
    frames = [decode(w) for w in writes]
    assert [len(f) for f in frames] == [1, 1, 1]
    assert [f[0][2] for f in frames] == [b'42%d["echo",1]' % i for i in range(3)]
    assert len({f[0][1] for f in frames}) == 3  # three keys
    upgrade, connect = transport.writes[0], decode(transport.writes[1])
    assert b"Origin: http://127.0.0.1:9" in upgrade
    assert connect[0][2] == b"40" and connect[0][1] != b"\x00\x00\x00\x00"


def test_batched_writes_the_replies_to_one_read_together() -> None:
    writes, transport = _replies_to_three_acks(BATCHED)
    assert len(writes) == 1
    frames = decode(writes[0])
    assert [f[2] for f in frames] == [b'42%d["echo",1]' % i for i in range(3)]
    assert {f[1] for f in frames} == {b"\x00\x00\x00\x00"}
    assert b"Origin" not in transport.writes[0]


def test_ping_is_answered_in_the_clients_mode() -> None:
    for writes, zero in ((PER_MESSAGE, False), (BATCHED, True)):
        client, transport = _open_client(writes)
        client.data_received(_server_frame(b"2"))
        [(_, key, payload)] = decode(transport.writes[-1])
        assert payload == b"3" and (key == b"\x00\x00\x00\x00") is zero


def test_unknown_mode_is_refused() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="unknown client writes mode"):
            WSClient(loop.create_future(), writes="sometimes")  # type: ignore[arg-type]
    finally:
        loop.close()


class _Bare(WSClient):
    """A WSClient that skips the HTTP upgrade (the peer is a plain socket)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]


def _syscalls_for_sends(writes: str, count: int) -> tuple[int, list[bytes]]:
    """Send ``count`` messages through a real uvloop TCP transport on loopback; return the
    write syscalls the sends cost this process (/proc/self/io) and what the peer received."""
    import uvloop
    from bench.loadgen.tcp import open_tcp

    async def run() -> tuple[int, list[bytes]]:
        loop = asyncio.get_running_loop()
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]
            connected: asyncio.Future[int] = loop.create_future()
            transport, client = await open_tcp(
                lambda: _Bare(connected, writes=writes),  # type: ignore[arg-type]
                port,
                "127.0.0.1",
                5.0,
            )
            peer, _ = listener.accept()
        with peer:
            peer.setblocking(False)
            payloads = [b'42%d["echo",%d]' % (i, i) for i in range(count)]
            before = harness.generator_syscalls()[1]
            for payload in payloads:
                client.send(payload)
            client.flush()
            after = harness.generator_syscalls()[1]
            received = b""
            while len(received) < sum(len(p) + 6 for p in payloads):
                received += await loop.sock_recv(peer, 65536)
            transport.abort()
        return after - before, [payload for _, _, payload in decode(received)]

    return uvloop.run(run())


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts syscalls in /proc")
def test_per_message_is_one_write_syscall_per_message() -> None:
    syscalls, received = _syscalls_for_sends(PER_MESSAGE, 20)
    assert received == [b'42%d["echo",%d]' % (i, i) for i in range(20)]
    assert syscalls == 20  # uvloop writes at once: nothing coalesced them


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts syscalls in /proc")
def test_batched_is_one_write_syscall_for_the_burst() -> None:
    syscalls, received = _syscalls_for_sends(BATCHED, 20)
    assert received == [b'42%d["echo",%d]' % (i, i) for i in range(20)]
    assert syscalls == 1


def test_harness_measures_and_reports_both_modes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[str, str]] = []

    def fake_run_one(spec: Any, measure: Any, args: argparse.Namespace) -> dict[str, float]:
        seen.append((spec.name, args.client_writes))
        rate = 100.0 if args.client_writes == PER_MESSAGE else 200.0
        return {"acks_per_s": rate, "server_us_per_ack": 1e6 / rate}

    monkeypatch.setattr(harness, "_run_one", fake_run_one)
    metrics = (
        harness.Metric("acks_per_s", "acks/s", "higher"),
        harness.Metric("server_us_per_ack", "server CPU us/ack", "lower", "{:.2f}"),
    )
    args = argparse.Namespace(
        servers="sockjet,node",
        rounds=2,
        quick=False,
        no_pin=True,
        no_save=True,
        client_writes="both",
    )
    status, data = harness.run_scenario("echo", "Echo", metrics, None, args)  # type: ignore[arg-type]
    assert status == 0
    # every server in both modes every round, the mode order rotated between rounds
    assert sorted(seen) == sorted(
        [(s, m) for s in ("sockjet", "node") for m in (PER_MESSAGE, BATCHED)] * 2
    )
    assert seen[0][1] != seen[4][1] or seen[0][0] != seen[4][0]
    assert data["settings"]["client_writes"] == [PER_MESSAGE, BATCHED]
    assert data["modes"][PER_MESSAGE]["medians"]["node"]["acks_per_s"] == 100.0
    assert data["modes"][BATCHED]["medians"]["node"]["acks_per_s"] == 200.0
    assert data["medians"] == data["modes"][PER_MESSAGE]["medians"]
    out = capsys.readouterr().out
    assert "## Echo [client writes: per-message]" in out
    assert "## Echo [client writes: batched]" in out
    assert "### Echo: per-message / batched" in out and "0.50" in out


def test_one_mode_runs_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def fake_run_one(spec: Any, measure: Any, args: argparse.Namespace) -> dict[str, float]:
        seen.append(args.client_writes)
        return {"acks_per_s": 1.0}

    monkeypatch.setattr(harness, "_run_one", fake_run_one)
    metrics = (harness.Metric("acks_per_s", "acks/s", "higher"),)
    args = argparse.Namespace(
        servers="sockjet", rounds=1, quick=False, no_pin=True, no_save=True, client_writes=BATCHED
    )
    _, data = harness.run_scenario("echo", "Echo", metrics, None, args)  # type: ignore[arg-type]
    assert seen == [BATCHED]
    assert list(data["modes"]) == [BATCHED]


def test_the_default_mode_is_per_message() -> None:
    parser = argparse.ArgumentParser()
    harness.add_common_arguments(parser)
    assert parser.parse_args([]).client_writes == PER_MESSAGE
    assert wsclient.WSClient.__init__.__defaults__ == (None, PER_MESSAGE, None)
