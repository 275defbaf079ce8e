"""Protocol codec benchmark: sockjet's Engine.IO + Socket.IO codecs beside python-socketio's.

What one server does per message, timed in isolation (no sockets, no event loop):

* ``encode`` -- Socket.IO layer: an event ``(namespace, name, args)`` to its Socket.IO frames
  (one text frame, plus one binary frame per attachment). Polling case: 100 Engine.IO MESSAGE
  packets (built from Socket.IO frames) to one polling body.
* ``decode`` -- the reverse, from the very same input bytes for both sides: Socket.IO frames
  (fed to a per-connection decoder, attachments included) to a packet with its data rebuilt;
  polling case: one polling body to its 100 Engine.IO packets.
* ``round`` -- both layers both ways, as a WebSocket server sends and receives one event:
  Socket.IO encode, Engine.IO encode of each frame, Engine.IO decode, Socket.IO decode.
  Polling case: 100 events through Socket.IO encode, payload encode, payload decode and
  Socket.IO decode.

Cases: a small event, a 1 KB event, an event with a 64 KB binary attachment, a polling payload
of 100 messages (the default set, JSON parser), and the three event cases again with the msgpack
parser (``--cases msgpack`` or ``all``): sockjet's ``MSGPACK_SERIALIZER`` beside python-socketio's
``MsgPackPacket``.

python-socketio is measured as its users get it: its default ``json`` (the standard library, via
``engineio.json`` with its integer-size guard) and its packet classes used exactly as its
``AsyncServer`` uses them. Before anything is timed, every case's wire output of each side is
decoded by both sides and compared with the input, so both do the same work.

Timing: ``time.perf_counter_ns`` around a loop of a calibrated number of calls (each batch lasts
at least ``--min-time``), garbage collector paused during a batch (as ``timeit`` does), several
rounds alternating which implementation goes first; the reported figure is the median of the
rounds' ns/op, the ratio is python-socketio / sockjet (how many times faster sockjet is).
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import format_ns, machine_info, markdown_table, package_versions, write_results

__all__ = [
    "CASES",
    "DEFAULT_CASES",
    "OPS",
    "Case",
    "EquivalenceError",
    "Event",
    "Measurement",
    "Report",
    "add_arguments",
    "main",
    "run",
]

OPS: tuple[str, ...] = ("encode", "decode", "round")
MAX_PAYLOAD = 1_000_000  # sockjet's default max_payload, passed to decode_payload

Frame = str | bytes
Op = Callable[[], object]
# A decoded Socket.IO event reduced to what both sides must agree on: (namespace, [name, *args]).
Normal = tuple[str, list[Any]]


class EquivalenceError(AssertionError):
    """The two implementations do not produce or understand the same wire for a case."""


@dataclass(frozen=True, slots=True)
class Event:
    """One Socket.IO event as an application emits it."""

    nsp: str
    name: str
    args: tuple[Any, ...]

    @property
    def normal(self) -> Normal:
        """``(namespace, [name, *args])``: what a decoded packet must hold."""
        return (self.nsp, [self.name, *self.args])


@dataclass(frozen=True, slots=True)
class Case:
    """A benchmark case: one event over WebSocket, or many events in one polling payload."""

    name: str
    description: str
    events: tuple[Event, ...]
    polling: bool = False
    parser: str = "json"  # Socket.IO parser: "json" (the default) or "msgpack"


def _small_event() -> Event:
    return Event("/", "chat", ({"user": "ana", "text": "hi"},))


def _kilobyte_event() -> Event:
    # A realistic 1 KB event: a page of chat history, mixed ints/strings/bools, ASCII only so
    # both JSON encoders (ensure_ascii or not) emit identical bytes.
    messages = [
        {
            "id": 1000 + i,
            "user": f"user{i:02d}",
            "text": f"message number {i} of the backlog, lorem ipsum",
            "ts": 1_700_000_000_000 + i * 1_337,
            "seen": i % 3 == 0,
        }
        for i in range(9)
    ]
    return Event("/", "history", ({"room": "lobby", "messages": messages},))


def _binary_event() -> Event:
    blob = random.Random(64).randbytes(64 * 1024)
    return Event("/", "upload", ({"name": "photo.jpg", "size": len(blob), "data": blob},))


def _payload_events() -> tuple[Event, ...]:
    return tuple(
        Event("/", "chat", ({"user": f"user{i % 7}", "text": f"message {i}"},)) for i in range(100)
    )


def _build_cases() -> dict[str, Case]:
    cases = [
        Case("small", "small event", (_small_event(),)),
        Case("1kb", "1 KB event", (_kilobyte_event(),)),
        Case("binary-64kb", "event + 64 KB binary attachment", (_binary_event(),)),
        Case("polling-100", "polling payload, 100 messages", _payload_events(), polling=True),
        Case("msgpack-small", "msgpack: small event", (_small_event(),), parser="msgpack"),
        Case("msgpack-1kb", "msgpack: 1 KB event", (_kilobyte_event(),), parser="msgpack"),
        Case(
            "msgpack-binary-64kb",
            "msgpack: event + 64 KB binary",
            (_binary_event(),),
            parser="msgpack",
        ),
    ]
    return {case.name: case for case in cases}


CASES: dict[str, Case] = _build_cases()
DEFAULT_CASES: tuple[str, ...] = tuple(
    name for name, case in CASES.items() if case.parser == "json"
)
"""What a run without ``--cases`` measures: the default parser's cases."""


# --------------------------------------------------------------------------------------------
# Implementations. Each builds, per case, one tight closure per op (no shared indirection that
# would add the same constant to both sides and flatten the ratio), plus untimed helpers used
# to check that both sides speak the same wire.


class Implementation:
    """One side of the comparison."""

    name: str = ""

    def ops(self, case: Case, reference: CaseWire) -> dict[str, Op]:
        """The timed closures for ``case``; ``reference`` is the input every decoder gets."""
        raise NotImplementedError

    def sio_frames(self, event: Event, parser: str) -> list[Frame]:
        """The Socket.IO frames (before Engine.IO) this side sends for ``event``."""
        raise NotImplementedError

    def unframe(self, frames: Sequence[Frame], parser: str) -> Normal:
        """Decode Socket.IO frames (a packet and its attachments) to a normal event."""
        raise NotImplementedError

    def wire(self, event: Event, parser: str) -> list[Frame]:
        """The WebSocket messages (Engine.IO-encoded) this side sends for ``event``."""
        raise NotImplementedError

    def unwire(self, messages: Sequence[Frame], parser: str) -> Normal:
        """Decode WebSocket messages (Engine.IO then Socket.IO) to a normal event."""
        raise NotImplementedError

    def payload(self, events: Sequence[Event]) -> str:
        """The polling body this side sends for ``events`` (JSON parser)."""
        raise NotImplementedError

    def unpayload(self, body: str) -> list[Normal]:
        """Decode a polling body (Engine.IO then Socket.IO) to normal events."""
        raise NotImplementedError

    def result(self, case: Case, op: str, value: Any) -> object:
        """Reduce an op's return value to something comparable across implementations:
        ``encode`` -> the frames (or the polling body), ``decode`` -> a normal event (or the
        (type, data) of each Engine.IO packet), ``round`` -> a normal event (or a list)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class CaseWire:
    """The reference input of a case's decoders, identical for both sides."""

    frames: list[Frame]  # Socket.IO frames of the (first) event
    texts: list[Frame]  # Socket.IO frames of all events, in order (polling cases)
    body: str  # polling body of all events (polling cases)


class Sockjet(Implementation):
    """sockjet's codecs: ``sockjet.protocol.engineio`` and ``.socketio`` (or ``.msgpack``)."""

    name = "sockjet"

    def __init__(self) -> None:
        from sockjet.protocol import engineio, socketio
        from sockjet.protocol.msgpack import MSGPACK_SERIALIZER

        self.eio = engineio
        self.sio = socketio
        self.serializers: dict[str, Any] = {
            "json": socketio.JSON_SERIALIZER,
            "msgpack": MSGPACK_SERIALIZER,
        }

    @staticmethod
    def _normal(packet: Any) -> Normal:
        return (packet.nsp, list(packet.data))

    def sio_frames(self, event: Event, parser: str) -> list[Frame]:
        if parser == "json":  # the server's emit fast path
            return list(self.sio.encode_event(event.nsp, event.name, list(event.args)))
        packet = self.sio.Packet(self.sio.PacketType.EVENT, event.nsp, [event.name, *event.args])
        return list(self.serializers[parser].encode(packet))

    def unframe(self, frames: Sequence[Frame], parser: str) -> Normal:
        decoder = self.serializers[parser].decoder()
        packet = None
        for frame in frames:
            packet = decoder.feed(frame)
        return self._normal(packet)

    def wire(self, event: Event, parser: str) -> list[Frame]:
        eio = self.eio
        return [
            eio.encode_packet(eio.Packet(eio.PacketType.MESSAGE, f))
            for f in self.sio_frames(event, parser)
        ]

    def unwire(self, messages: Sequence[Frame], parser: str) -> Normal:
        return self.unframe([self.eio.decode_packet(m).data for m in messages], parser)

    def payload(self, events: Sequence[Event]) -> str:
        eio = self.eio
        packets = [
            eio.Packet(eio.PacketType.MESSAGE, f)
            for ev in events
            for f in self.sio_frames(ev, "json")
        ]
        return str(eio.encode_payload(packets))

    def unpayload(self, body: str) -> list[Normal]:
        decoder = self.sio.JSON_SERIALIZER.decoder()
        packets = self.eio.decode_payload(body, max_payload=MAX_PAYLOAD)
        return [self._normal(decoder.feed(p.data)) for p in packets]

    def result(self, case: Case, op: str, value: Any) -> object:
        if case.polling:
            if op == "encode":
                return value
            if op == "decode":
                return [(int(p.type), p.data) for p in value]
            return [self._normal(p) for p in value]
        if op == "encode":
            return list(value)
        return self._normal(value)

    def ops(self, case: Case, reference: CaseWire) -> dict[str, Op]:
        eio, sio = self.eio, self.sio
        serializer = self.serializers[case.parser]
        new_decoder = serializer.decoder
        encode_packet, decode_packet = eio.encode_packet, eio.decode_packet
        encode_payload, decode_payload = eio.encode_payload, eio.decode_payload
        EioPacket, MESSAGE = eio.Packet, eio.PacketType.MESSAGE

        if case.polling:
            encode_event = sio.encode_event
            calls = [(ev.nsp, ev.name, list(ev.args)) for ev in case.events]
            sio_texts, body = reference.texts, reference.body

            def encode() -> object:
                return encode_payload([EioPacket(MESSAGE, text) for text in sio_texts])

            def decode() -> object:
                return decode_payload(body, max_payload=MAX_PAYLOAD)

            feed = new_decoder().feed  # one decoder per connection

            def round_trip() -> object:
                sent = encode_payload(
                    [
                        EioPacket(MESSAGE, frame)
                        for nsp, name, args in calls
                        for frame in encode_event(nsp, name, args)
                    ]
                )
                return [feed(p.data) for p in decode_payload(sent, max_payload=MAX_PAYLOAD)]

            return {"encode": encode, "decode": decode, "round": round_trip}

        (event,) = case.events
        nsp, name, args = event.nsp, event.name, list(event.args)
        if case.parser == "json":
            encode_json_event = sio.encode_event

            def encode_one() -> Any:
                return encode_json_event(nsp, name, args)

        else:
            encode_packet_with = serializer.encode
            SioPacket, EVENT = sio.Packet, sio.PacketType.EVENT

            def encode_one() -> Any:
                return encode_packet_with(SioPacket(EVENT, nsp, [name, *args]))

        frames = reference.frames
        decoder_feed = new_decoder().feed

        def decode_one() -> object:
            packet = None
            for frame in frames:
                packet = decoder_feed(frame)
            return packet

        round_feed = new_decoder().feed

        def round_one() -> object:
            messages = [encode_packet(EioPacket(MESSAGE, frame)) for frame in encode_one()]
            packet = None
            for message in messages:
                packet = round_feed(decode_packet(message).data)
            return packet

        return {"encode": encode_one, "decode": decode_one, "round": round_one}


class PythonSocketIO(Implementation):
    """python-socketio 5 / python-engineio 4 packet classes, used as ``AsyncServer`` uses them."""

    name = "python-socketio"

    def __init__(self) -> None:
        from engineio import packet as eio_packet  # type: ignore[import-untyped]
        from engineio import payload as eio_payload
        from socketio import msgpack_packet, packet  # type: ignore[import-untyped]

        class Payload(eio_payload.Payload):  # type: ignore[misc]
            # python-engineio refuses a POST of more than 16 packets; raised so the 100-packet
            # case can run at all (the per-packet work is unchanged).
            max_decode_packets = 1_000

        self.eio = eio_packet
        self.Payload = Payload
        self.EVENT = packet.EVENT
        # AsyncServer(serializer="default" | "msgpack") picks its packet class the same way.
        self.packet_classes: dict[str, Any] = {
            "json": packet.Packet,
            "msgpack": msgpack_packet.MsgPackPacket,
        }

    @staticmethod
    def _normal(packet: Any) -> Normal:
        return (packet.namespace or "/", list(packet.data))

    def sio_frames(self, event: Event, parser: str) -> list[Frame]:
        packet_class = self.packet_classes[parser]
        encoded = packet_class(
            self.EVENT, data=[event.name, *event.args], namespace=event.nsp
        ).encode()
        return list(encoded) if isinstance(encoded, list) else [encoded]

    def unframe(self, frames: Sequence[Frame], parser: str) -> Normal:
        # What AsyncServer._handle_eio_message does: a packet, then add_attachment per binary.
        packet = self.packet_classes[parser](encoded_packet=frames[0])
        for attachment in frames[1:]:
            packet.add_attachment(attachment)
        return self._normal(packet)

    def wire(self, event: Event, parser: str) -> list[Frame]:
        eio = self.eio
        return [eio.Packet(eio.MESSAGE, data=f).encode() for f in self.sio_frames(event, parser)]

    def unwire(self, messages: Sequence[Frame], parser: str) -> Normal:
        return self.unframe([self.eio.Packet(encoded_packet=m).data for m in messages], parser)

    def payload(self, events: Sequence[Event]) -> str:
        eio = self.eio
        packets = [
            eio.Packet(eio.MESSAGE, data=f) for ev in events for f in self.sio_frames(ev, "json")
        ]
        return str(self.Payload(packets=packets).encode())

    def unpayload(self, body: str) -> list[Normal]:
        packet_class = self.packet_classes["json"]
        packets = self.Payload(encoded_payload=body).packets
        return [self._normal(packet_class(encoded_packet=p.data)) for p in packets]

    def result(self, case: Case, op: str, value: Any) -> object:
        if case.polling:
            if op == "encode":
                return value
            if op == "decode":
                return [(int(p.packet_type), p.data) for p in value]
            return [self._normal(p) for p in value]
        if op == "encode":
            return list(value) if isinstance(value, list) else [value]
        return self._normal(value)

    def ops(self, case: Case, reference: CaseWire) -> dict[str, Op]:
        SioPacket, EVENT = self.packet_classes[case.parser], self.EVENT
        EioPacket, MESSAGE = self.eio.Packet, self.eio.MESSAGE
        Payload = self.Payload

        if case.polling:
            calls = [(ev.nsp, [ev.name, *ev.args]) for ev in case.events]
            sio_texts, body = reference.texts, reference.body

            def encode() -> object:
                # Packets are built inside the loop: python-engineio caches each packet's
                # encoding, and a server builds a new one per message anyway.
                return Payload(
                    packets=[EioPacket(MESSAGE, data=text) for text in sio_texts]
                ).encode()

            def decode() -> object:
                return Payload(encoded_payload=body).packets

            def round_trip() -> object:
                sent = Payload(
                    packets=[
                        EioPacket(MESSAGE, data=SioPacket(EVENT, data=data, namespace=nsp).encode())
                        for nsp, data in calls
                    ]
                ).encode()
                return [
                    SioPacket(encoded_packet=p.data) for p in Payload(encoded_payload=sent).packets
                ]

            return {"encode": encode, "decode": decode, "round": round_trip}

        (event,) = case.events
        nsp, name, args = event.nsp, event.name, list(event.args)
        first, rest = reference.frames[0], reference.frames[1:]

        def encode_one() -> object:
            # AsyncServer._emit_internal builds [event] + args and a packet per emit.
            return SioPacket(EVENT, data=[name, *args], namespace=nsp).encode()

        def decode_one() -> object:
            packet = SioPacket(encoded_packet=first)
            for attachment in rest:
                packet.add_attachment(attachment)
            return packet

        def round_one() -> object:
            encoded = SioPacket(EVENT, data=[name, *args], namespace=nsp).encode()
            messages = [
                EioPacket(MESSAGE, data=frame).encode()
                for frame in (encoded if isinstance(encoded, list) else [encoded])
            ]
            packet = SioPacket(encoded_packet=EioPacket(encoded_packet=messages[0]).data)
            for message in messages[1:]:
                packet.add_attachment(EioPacket(encoded_packet=message).data)
            return packet

        return {"encode": encode_one, "decode": decode_one, "round": round_one}


IMPLEMENTATIONS: dict[str, type[Implementation]] = {
    Sockjet.name: Sockjet,
    PythonSocketIO.name: PythonSocketIO,
}
BASELINE = PythonSocketIO.name  # the ratio is baseline / sockjet


# --------------------------------------------------------------------------------------------
# Equivalence: both sides must send the same thing and understand each other's wire.


@dataclass(slots=True)
class CaseCheck:
    """What the equivalence check learned about one case."""

    wire_identical: bool
    wire_bytes: dict[str, int]


def _size(messages: Sequence[Frame] | str) -> int:
    if isinstance(messages, str):
        return len(messages.encode())
    return sum(len(m.encode()) if isinstance(m, str) else len(m) for m in messages)


def _expect(what: str, got: object, expected: object) -> None:
    if got != expected:
        raise EquivalenceError(f"{what}: got {_short(got)}, expected {_short(expected)}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def reference_wire(case: Case, baseline: Implementation) -> CaseWire:
    """The decoders' input for ``case``: what the established peer (python-socketio) sends."""
    texts = [f for ev in case.events for f in baseline.sio_frames(ev, case.parser)]
    frames = baseline.sio_frames(case.events[0], case.parser)
    body = baseline.payload(case.events) if case.polling else ""
    return CaseWire(frames, texts, body)


def check_case(
    case: Case, impls: Sequence[Implementation], ops: dict[str, dict[str, Op]], ref: CaseWire
) -> CaseCheck:
    """Raise :class:`EquivalenceError` unless both sides do the same work for ``case``.

    Every side's complete wire (Engine.IO over Socket.IO) must decode, on every side, to the
    case's input; every timed op, run once, must produce output that every side decodes to the
    input (``encode``), the reference packets (``decode``) or the input (``round``).
    """
    sizes: dict[str, int] = {}
    wires: list[object] = []
    events = [ev.normal for ev in case.events]
    expected: object = events if case.polling else events[0]

    def decoded_by(receiver: Implementation, output: Any) -> object:
        if case.polling:
            return receiver.unpayload(output)
        return receiver.unwire(output, case.parser)

    for sender in impls:
        wire: Any = (
            sender.payload(case.events)
            if case.polling
            else sender.wire(case.events[0], case.parser)
        )
        sizes[sender.name] = _size(wire)
        wires.append(wire)
        for receiver in impls:
            _expect(
                f"{case.name}: {sender.name} wire decoded by {receiver.name}",
                decoded_by(receiver, wire),
                expected,
            )

    for impl in impls:
        timed = ops[impl.name]
        encoded = impl.result(case, "encode", timed["encode"]())
        for receiver in impls:
            got = (
                receiver.unpayload(encoded)  # type: ignore[arg-type]
                if case.polling
                else receiver.unframe(encoded, case.parser)  # type: ignore[arg-type]
            )
            _expect(
                f"{case.name}/encode: {impl.name} output decoded by {receiver.name}", got, expected
            )
        reference_packets: object = [(4, text) for text in ref.texts] if case.polling else expected
        _expect(
            f"{case.name}/decode: {impl.name}",
            impl.result(case, "decode", timed["decode"]()),
            reference_packets,
        )
        _expect(
            f"{case.name}/round: {impl.name}",
            impl.result(case, "round", timed["round"]()),
            expected,
        )

    identical = all(wire == wires[0] for wire in wires)
    return CaseCheck(wire_identical=identical, wire_bytes=sizes)


# --------------------------------------------------------------------------------------------
# Timing.


def _time_batch(op: Op, iterations: int) -> int:
    """Nanoseconds for ``iterations`` calls of ``op``, garbage collector paused."""
    loop = range(iterations)
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in loop:
            op()
        return time.perf_counter_ns() - start
    finally:
        if enabled:
            gc.enable()


def calibrate(op: Op, min_time_ns: int) -> int:
    """Iterations needed for one batch of ``op`` to last at least ``min_time_ns``."""
    iterations = 1
    while True:
        elapsed = _time_batch(op, iterations)
        if elapsed >= min_time_ns // 10 or iterations >= 10**9:
            break
        iterations *= 10
    # 10% headroom so that a batch stays over the minimum when the machine gets faster.
    return max(1, math.ceil(iterations * min_time_ns * 1.1 / max(elapsed, 1)))


@dataclass(slots=True)
class Measurement:
    """All rounds of one (case, op, implementation)."""

    case: str
    op: str
    impl: str
    iterations: int
    samples: list[float] = field(default_factory=list)  # ns/op, one per round

    @property
    def median(self) -> float:
        """Median ns/op over the rounds."""
        return statistics.median(self.samples)


@dataclass(slots=True)
class Row:
    """One line of the table."""

    case: str
    op: str
    median_ns: dict[str, float]
    ratio: float  # baseline / sockjet


@dataclass(slots=True)
class Report:
    """Everything one run measured."""

    rows: list[Row]
    measurements: list[Measurement]
    checks: dict[str, CaseCheck]
    settings: dict[str, Any]
    impls: list[str]

    def _label(self, case: str) -> str:
        size = self.checks[case].wire_bytes[BASELINE]
        shown = f"{size} B" if size < 10_000 else f"{size / 1024:.0f} KiB"
        return f"{CASES[case].description}, {shown}"

    def worst_deviation(self) -> float:
        """Largest median absolute deviation of the rounds, relative to their median, over all
        measurements: how far a typical round strays (0 for a single round)."""
        return max(
            (
                statistics.median(abs(x - m.median) for x in m.samples) / m.median
                for m in self.measurements
            ),
            default=0.0,
        )

    def table(self) -> str:
        """The compact markdown table of medians and ratios."""
        baseline = BASELINE
        others = [name for name in self.impls if name != baseline]
        headers = [
            "case",
            "op",
            *(f"{n} ns/op" for n in others),
            f"{baseline} ns/op",
            "sockjet faster",
        ]
        rows = [
            [
                self._label(row.case) if row.op == OPS[0] else "",
                row.op,
                *(format_ns(row.median_ns[n]) for n in others),
                format_ns(row.median_ns[baseline]),
                f"{row.ratio:.1f}x",
            ]
            for row in self.rows
        ]
        align = ["l", "l", *("r" for _ in others), "r", "r"]
        return markdown_table(headers, rows, align)

    def to_json(self) -> dict[str, Any]:
        """The raw results, for bench/results/."""
        return {
            "scenario": "protocol",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine_info(),
            "versions": package_versions(
                "sockjet", "python-socketio", "python-engineio", "orjson", "msgpack"
            ),
            "settings": self.settings,
            "notes": [
                "ns/op = median over rounds of one batch's time / iterations",
                "ratio = python-socketio median / sockjet median (how many times faster sockjet is)",
                "python-socketio measured as users get it: default stdlib json via engineio.json",
                "python-engineio's 16-packet limit per polling POST raised for polling-100",
                "msgpack cases: sockjet MSGPACK_SERIALIZER vs python-socketio MsgPackPacket",
                "sockjet's Engine.IO layer measured through its codec API (Packet + "
                "encode_packet), not the runtime's cheaper Outgoing.message",
            ],
            "cases": {
                name: {
                    "description": CASES[name].description,
                    "wire_identical": check.wire_identical,
                    "wire_bytes": check.wire_bytes,
                }
                for name, check in self.checks.items()
            },
            "rows": [
                {"case": r.case, "op": r.op, "median_ns": r.median_ns, "ratio": r.ratio}
                for r in self.rows
            ],
            "measurements": [
                {
                    "case": m.case,
                    "op": m.op,
                    "impl": m.impl,
                    "iterations": m.iterations,
                    "samples_ns_per_op": m.samples,
                    "median_ns_per_op": m.median,
                }
                for m in self.measurements
            ],
        }


def run(
    *,
    rounds: int = 7,
    min_time: float = 0.2,
    iterations: int | None = None,
    cases: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Check equivalence, then time every case and op on both sides.

    ``iterations`` fixes the batch size (skipping calibration, for smoke tests); otherwise each
    (case, op, side) is calibrated so that a batch lasts at least ``min_time`` seconds.
    """
    say = progress or (lambda _message: None)
    names = list(cases) if cases else list(DEFAULT_CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    impls = [cls() for cls in IMPLEMENTATIONS.values()]
    baseline = next(impl for impl in impls if impl.name == BASELINE)

    plan: list[tuple[str, str, dict[str, Op]]] = []  # (case, op, impl -> op)
    checks: dict[str, CaseCheck] = {}
    for name in names:
        case = CASES[name]
        ref = reference_wire(case, baseline)
        ops = {impl.name: impl.ops(case, ref) for impl in impls}
        checks[name] = check_case(case, impls, ops, ref)
        plan.extend((name, op, {impl: ops[impl][op] for impl in ops}) for op in OPS)

    min_time_ns = int(min_time * 1e9)
    measurements: dict[tuple[str, str, str], Measurement] = {}
    for case_name, op, per_impl in plan:
        for impl_name, fn in per_impl.items():
            n = iterations if iterations is not None else calibrate(fn, min_time_ns)
            measurements[case_name, op, impl_name] = Measurement(case_name, op, impl_name, n)
    say(f"calibrated {len(measurements)} measurements; timing {rounds} round(s)")

    order = [impl.name for impl in impls]
    for r in range(rounds):
        # Alternate who goes first, and keep the two sides of a measurement adjacent in time
        # so that a burst of noise from the shared machine hits both.
        turn = order if r % 2 == 0 else order[::-1]
        for case_name, op, per_impl in plan:
            for impl_name in turn:
                m = measurements[case_name, op, impl_name]
                m.samples.append(_time_batch(per_impl[impl_name], m.iterations) / m.iterations)
        gc.collect()  # batches run with the collector paused: settle the heap once per round
        say(f"round {r + 1}/{rounds} done")

    rows = []
    for case_name, op, _ in plan:
        medians = {impl: measurements[case_name, op, impl].median for impl in order}
        ratio = medians[BASELINE] / medians[Sockjet.name]
        rows.append(Row(case_name, op, medians, ratio))
    settings = {
        "rounds": rounds,
        "min_time_s": min_time,
        "fixed_iterations": iterations,
        "cases": names,
    }
    return Report(rows, list(measurements.values()), checks, settings, order)


# --------------------------------------------------------------------------------------------
# Command line.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m bench protocol``."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: fixed tiny batches (--iterations, default 3), 1 round unless --rounds",
    )
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (default 7)")
    parser.add_argument(
        "--min-time",
        type=float,
        default=0.2,
        help="seconds each batch lasts at least, after calibration (default 0.2)",
    )
    parser.add_argument(
        "--iterations", type=int, default=None, help="fixed batch size (skips calibration)"
    )
    parser.add_argument(
        "--cases",
        default="default",
        help=(
            "comma-separated cases, or 'default' (the JSON parser's), 'msgpack', 'all'; "
            f"cases: {','.join(CASES)}"
        ),
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="directory for the JSON results (default bench/results/)",
    )
    parser.add_argument("--no-save", action="store_true", help="print only, write no JSON")


def _select_cases(spec: str) -> list[str]:
    groups = {
        "default": list(DEFAULT_CASES),
        "msgpack": [name for name, case in CASES.items() if case.parser == "msgpack"],
        "all": list(CASES),
    }
    names: list[str] = []
    for item in filter(None, spec.split(",")):
        names.extend(name for name in groups.get(item, [item]) if name not in names)
    return names


def main(args: argparse.Namespace) -> int:
    """Run the benchmark as the command line asked, print the table, save the JSON."""
    iterations = args.iterations
    rounds = args.rounds
    if args.quick:
        iterations = 3 if iterations is None else iterations
        rounds = 1 if rounds is None else rounds
    rounds = 7 if rounds is None else rounds
    if rounds < 1 or (iterations is not None and iterations < 1) or args.min_time <= 0:
        print("rounds, iterations and min-time must be positive", file=sys.stderr)
        return 2
    cases = _select_cases(args.cases)

    def progress(message: str) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)

    try:
        report = run(
            rounds=rounds,
            min_time=args.min_time,
            iterations=iterations,
            cases=cases,
            progress=progress,
        )
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    data = report.to_json()
    machine = data["machine"]
    versions = data["versions"]
    print(
        f"\nProtocol codecs, median ns/op over {rounds} round(s) "
        f"(faster = python-socketio / sockjet); Python {machine['python']}, "
        f"{machine['cpu_count']} CPUs, {machine['platform']}"
    )
    print(
        f"sockjet {versions['sockjet']}, python-socketio {versions['python-socketio']} / "
        f"python-engineio {versions['python-engineio']} with its default json (stdlib)\n"
    )
    print(report.table())
    load = machine["load_average"]
    print(
        f"\nBoth sides' wire output checked to decode, on both sides, to the input. Rounds "
        f"stray from their median by at most {report.worst_deviation():.0%} (median absolute "
        f"deviation); load average at the end: {f'{load[0]:.2f}' if load else 'n/a'}."
    )
    different = [name for name, check in report.checks.items() if not check.wire_identical]
    if different:
        print(f"Wire differs byte-wise (but decodes equally) for: {', '.join(different)}")
    if not args.no_save:
        path = write_results("protocol", data, args.output)
        print(f"\nraw results: {path}")
    return 0
