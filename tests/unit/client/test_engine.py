"""The Engine.IO client against in-process fake transports and a hand-driven clock."""

from __future__ import annotations

import asyncio

import pytest
from client_fakes import FakeClock, FakeFactory, FakeTransport, engine_open, message, settle

from sockjet.client.engine import EngineClient, EngineState
from sockjet.client.errors import TransportError
from sockjet.protocol.engineio import Packet, PacketType


class Listener:
    def __init__(self) -> None:
        self.opened = 0
        self.messages: list[str | bytes] = []
        self.closed: list[tuple[str, BaseException | None]] = []

    def engine_open(self, engine: EngineClient) -> None:
        self.opened += 1

    def engine_message(self, engine: EngineClient, data: str | bytes) -> None:
        self.messages.append(data)

    def engine_close(self, engine: EngineClient, reason: str, error: BaseException | None) -> None:
        self.closed.append((reason, error))


def make(
    *, manual_drain: bool = False, **options: object
) -> tuple[EngineClient, Listener, FakeFactory, FakeClock]:
    listener, factory, clock = Listener(), FakeFactory(manual_drain=manual_drain), FakeClock()
    engine = EngineClient(listener, factory, clock=clock, **options)  # type: ignore[arg-type]
    return engine, listener, factory, clock


def opened(
    *, manual_drain: bool = False, **open_options: object
) -> tuple[EngineClient, Listener, FakeTransport, FakeClock]:
    engine, listener, factory, clock = make(manual_drain=manual_drain)
    engine.open()
    factory.last.receive(engine_open(**open_options))  # type: ignore[arg-type]
    return engine, listener, factory.last, clock


PING = Packet(PacketType.PING)
PONG = Packet(PacketType.PONG)


# -- handshake ------------------------------------------------------------------------------------


def test_the_handshake_opens_the_session_on_the_first_transport() -> None:
    engine, listener, factory, _ = make()
    engine.open()
    transport = factory.last
    assert (transport.name, transport.sid, engine.state) == ("polling", None, EngineState.OPENING)
    transport.receive(engine_open("abc", ping_interval=300, ping_timeout=200, max_payload=5000))
    assert engine.state is EngineState.OPEN
    assert (engine.sid, transport.sid) == ("abc", "abc")
    assert (engine.ping_interval, engine.ping_timeout, engine.max_payload) == (0.3, 0.2, 5000)
    assert listener.opened == 1
    assert engine.writable


def test_websocket_only_opens_on_a_websocket() -> None:
    engine, listener, factory, _ = make(transports=["websocket"])
    engine.open()
    assert factory.last.name == "websocket"
    factory.last.receive(engine_open(upgrades=["websocket"]))
    assert listener.opened == 1
    assert [t.name for t in factory.created] == ["websocket"]


@pytest.mark.parametrize(
    "data",
    ["nope", "[]", '{"sid":""}', '{"sid":"a","pingInterval":"5","pingTimeout":1}', '{"sid":1}'],
)
def test_an_invalid_open_packet_fails_the_opening(data: str) -> None:
    engine, listener, factory, _ = make()
    engine.open()
    factory.last.receive(Packet(PacketType.OPEN, data))
    assert engine.state is EngineState.CLOSED
    assert listener.opened == 0
    [(reason, error)] = listener.closed
    assert reason == "transport error"
    assert isinstance(error, TransportError) and error.message == "parse error"
    assert factory.last.closed is False


def test_nothing_but_open_counts_before_the_handshake() -> None:
    engine, listener, factory, _ = make()
    engine.open()
    factory.last.receive(message("early"), PING)
    assert listener.messages == []
    assert factory.last.writes == []


def test_an_engine_opens_once() -> None:
    engine, *_ = make()
    engine.open()
    with pytest.raises(RuntimeError):
        engine.open()


def test_transports_cannot_be_empty() -> None:
    with pytest.raises(ValueError):
        make(transports=[])


# -- messages and heartbeat -----------------------------------------------------------------------


def test_messages_reach_the_listener_in_order() -> None:
    _engine, listener, transport, _ = opened()
    transport.receive(message("2[1]"), Packet(PacketType.NOOP), message(b"\x01"), message("x"))
    assert listener.messages == ["2[1]", b"\x01", "x"]


def test_a_ping_is_answered_with_a_pong() -> None:
    _engine, _, transport, _ = opened()
    transport.receive(PING)
    assert transport.sent == [PONG]


def test_the_watchdog_closes_when_no_ping_comes_within_interval_plus_timeout() -> None:
    engine, listener, transport, clock = opened(ping_interval=1000, ping_timeout=500)
    clock.advance(1.499)
    assert engine.state is EngineState.OPEN
    clock.advance(0.002)
    assert engine.state is EngineState.CLOSED
    assert listener.closed == [("ping timeout", None)]
    assert transport.closed is False  # a silent server is not sent a CLOSE


def test_each_ping_rearms_the_watchdog() -> None:
    engine, listener, transport, clock = opened(ping_interval=1000, ping_timeout=500)
    for _ in range(5):
        clock.advance(1.4)
        transport.receive(PING)
    clock.advance(1.4)
    assert engine.state is EngineState.OPEN
    clock.advance(0.2)
    assert listener.closed == [("ping timeout", None)]


def test_a_watchdog_deadline_passed_unnoticed_counts_as_expired() -> None:
    engine, listener, _, clock = opened(ping_interval=1000, ping_timeout=500)
    assert not engine.ping_expired()
    clock.now += 2  # the loop was blocked: the timer did not fire yet
    assert engine.ping_expired()
    assert engine.ping_expired()  # asked again: still expired, one close scheduled
    assert listener.closed == []
    clock.advance(0)
    assert listener.closed == [("ping timeout", None)]
    assert engine.ping_expired()  # closed


# -- writes ---------------------------------------------------------------------------------------


def test_what_is_sent_during_a_write_goes_out_together_after_it() -> None:
    engine, _, transport, _ = opened(manual_drain=True)
    engine.send(["a"])
    engine.send(["b"])
    engine.send(["c", b"d"])
    assert transport.writes == [[message("a")]]
    assert not engine.writable
    transport.drain()
    assert transport.writes[1:] == [[message("b"), message("c"), message(b"d")]]
    transport.drain()
    assert len(transport.writes) == 2 and engine.writable


def test_polling_writes_are_cut_at_max_payload_like_the_js_client() -> None:
    engine, _, transport, _ = opened(manual_drain=True, max_payload=12)
    engine.send(["x"])
    engine.send(["aaaa", "bbbb", "cccc"])
    transport.drain()
    transport.drain()
    # 1 + 4 + 2 + 4 = 11 fits in 12, the third packet would not
    assert transport.writes[1:] == [[message("aaaa"), message("bbbb")], [message("cccc")]]


def test_websocket_writes_are_not_cut() -> None:
    engine, _listener, factory, _ = make(transports=["websocket"], manual_drain=True)
    engine.open()
    factory.last.receive(engine_open(max_payload=5))
    engine.send(["x"])
    engine.send(["aaaa", "bbbb"])
    factory.last.drain()
    assert factory.last.writes[1] == [message("aaaa"), message("bbbb")]


def test_sends_are_buffered_until_the_handshake() -> None:
    engine, _, factory, _ = make()
    engine.open()
    engine.send(["early"])
    assert factory.last.writes == []
    factory.last.receive(engine_open())
    assert factory.last.sent == [message("early")]


# -- closing --------------------------------------------------------------------------------------


def test_close_waits_for_the_buffer_to_drain() -> None:
    engine, listener, transport, _ = opened(manual_drain=True)
    engine.send(["a"])
    engine.send(["b"])
    engine.close()
    assert engine.state is EngineState.CLOSING
    engine.send(["dropped"])  # nothing new once closing
    transport.drain()
    assert transport.writes[-1] == [message("b")]
    assert listener.closed == []
    transport.drain()
    assert listener.closed == [("forced close", None)]
    assert transport.closed is True  # the server is told (polling: a CLOSE packet)


def test_close_with_nothing_queued_is_immediate() -> None:
    engine, listener, _transport, clock = opened()
    engine.close()
    assert listener.closed == [("forced close", None)]
    assert clock.pending() == []  # the watchdog is gone
    engine.close()  # idempotent
    assert len(listener.closed) == 1


def test_close_while_opening() -> None:
    engine, listener, factory, _ = make()
    engine.open()
    engine.close()
    assert listener.closed == [("forced close", None)]
    assert factory.last.closed is True


def test_a_transport_closed_by_the_server_is_transport_close() -> None:
    engine, listener, transport, _ = opened()
    transport.fail(None)
    assert listener.closed == [("transport close", None)]
    engine.send(["late"])
    assert transport.writes == []


def test_a_failed_transport_is_transport_error() -> None:
    _engine, listener, transport, _ = opened()
    error = TransportError("xhr poll error")
    transport.fail(error)
    assert listener.closed == [("transport error", error)]


def test_packets_after_the_close_are_ignored() -> None:
    engine, listener, transport, _ = opened()

    def close_on_first(engine_: EngineClient, data: str | bytes) -> None:
        listener.messages.append(data)
        engine.close()

    listener.engine_message = close_on_first  # type: ignore[method-assign]
    transport.receive(message("a"), message("b"))
    assert listener.messages == ["a"]


# -- upgrade --------------------------------------------------------------------------------------


async def upgrading() -> tuple[EngineClient, Listener, FakeTransport, FakeTransport]:
    """An engine opened on polling, probing a websocket: (engine, listener, polling, probe)."""
    engine, listener, factory, _ = make()
    engine.open()
    polling = factory.last
    polling.receive(engine_open("s9", upgrades=["websocket"]))
    await settle()
    probe = factory.last
    assert (probe.name, probe.sid, probe.opened) == ("websocket", "s9", True)
    return engine, listener, polling, probe


async def test_upgrade_probes_then_switches_to_websocket() -> None:
    engine, listener, polling, probe = await upgrading()
    polling.pause_gate = asyncio.get_running_loop().create_future()
    engine.send(["on polling"])
    probe.connect()
    await settle()
    assert probe.sent == [Packet(PacketType.PING, "probe")]
    probe.receive(Packet(PacketType.PONG, "probe"))
    await settle()
    assert polling.paused
    engine.send(["while pausing"])  # waits: it must follow the UPGRADE on the websocket
    assert polling.sent == [message("on polling")]
    polling.receive(Packet(PacketType.NOOP), message("last poll"))  # the released GET
    polling.pause_gate.set_result(None)
    await settle()
    assert engine.transport is probe
    assert probe.sent[1:] == [Packet(PacketType.UPGRADE), message("while pausing")]
    assert polling.closed is False  # dropped without a CLOSE: the session lives on
    assert listener.messages == ["last poll"]
    probe.receive(message("on websocket"), PING)
    assert listener.messages == ["last poll", "on websocket"]
    assert probe.sent[-1] == PONG
    engine.close()
    await engine.wait_closed()
    assert listener.closed == [("forced close", None)] and probe.closed is True


async def test_a_failed_probe_keeps_the_session_on_polling() -> None:
    engine, listener, polling, probe = await upgrading()
    probe.fail(TransportError("websocket error"))
    await settle()
    assert engine.transport is polling
    assert probe.closed is not None
    assert listener.closed == []
    engine.send(["still polling"])
    assert polling.sent == [message("still polling")]


async def test_a_wrong_probe_answer_keeps_the_session_on_polling() -> None:
    engine, _listener, polling, probe = await upgrading()
    probe.connect()
    await settle()
    probe.receive(Packet(PacketType.PONG, "nope"))
    await settle()
    assert engine.transport is polling and not polling.paused
    assert probe.closed is False


async def test_a_probe_lost_while_polling_pauses_resumes_polling() -> None:
    engine, _listener, polling, probe = await upgrading()
    polling.pause_gate = asyncio.get_running_loop().create_future()
    probe.connect()
    await settle()
    probe.receive(Packet(PacketType.PONG, "probe"))
    await settle()
    engine.send(["queued"])
    probe.fail(None)
    polling.pause_gate.set_result(None)
    await settle()
    assert engine.transport is polling and polling.resumed
    assert polling.sent == [message("queued")]


async def test_close_during_an_upgrade_finishes_it_first() -> None:
    engine, listener, polling, probe = await upgrading()
    polling.pause_gate = asyncio.get_running_loop().create_future()
    probe.connect()
    await settle()
    probe.receive(Packet(PacketType.PONG, "probe"))
    await settle()
    engine.close()
    assert listener.closed == []
    polling.pause_gate.set_result(None)
    await settle()
    assert listener.closed == [("forced close", None)]
    assert probe.sent[-1] == Packet(PacketType.UPGRADE)
    assert probe.closed is True


async def test_losing_the_session_during_an_upgrade_abandons_it() -> None:
    engine, listener, polling, probe = await upgrading()
    polling.fail(TransportError("xhr poll error"))
    await engine.wait_closed()
    assert listener.closed[0][0] == "transport error"
    assert probe.closed is False
    assert engine.transport is polling


@pytest.mark.parametrize("options", [{"upgrade": False}, {"transports": ["polling"]}])
async def test_no_upgrade_when_not_allowed(options: dict[str, object]) -> None:
    engine, _listener, factory, _ = make(**options)
    engine.open()
    factory.last.receive(engine_open(upgrades=["websocket"]))
    await settle()
    assert [t.name for t in factory.created] == ["polling"]


async def test_packets_of_a_stale_probe_are_ignored() -> None:
    engine, listener, _polling, probe = await upgrading()
    probe.fail(None)
    await settle()
    probe.receive(message("stale"))
    assert listener.messages == []
    assert "EngineClient open" in repr(engine)


async def test_wait_closed_waits_for_a_closing_engine_to_drain() -> None:
    engine, listener, transport, _ = opened(manual_drain=True)
    engine.send(["last words"])
    engine.close()
    waiting = asyncio.ensure_future(engine.wait_closed())
    await settle()
    assert not waiting.done()
    transport.drain()
    await asyncio.wait_for(waiting, 1)
    assert listener.closed == [("forced close", None)]
