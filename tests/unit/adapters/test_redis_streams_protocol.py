"""The Redis Streams protocol (@socket.io/redis-streams-adapter 0.3) byte for byte, its session
records, and the ClusterAdapter envelope shared with the sharded protocol. Reference values come
from Node (the package's own hashCode and @msgpack/msgpack), the entries' layout from captured
traffic."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import msgpack  # type: ignore[import-untyped]
import orjson
import pytest

from sockjet.adapters import cluster_envelope as envelope
from sockjet.adapters.cluster_envelope import MessageType
from sockjet.adapters.redis_codec import ClusterRequest, ClusterResponse, RequestType
from sockjet.adapters.redis_protocols import Role, SubscriptionKind
from sockjet.adapters.redis_streams import (
    SessionRecord,
    StreamsProtocol,
    decode_data,
    hash_code,
    stream_of,
)
from sockjet.adapters.redis_streams_io import EntryWriter, entries_of, entry_key
from sockjet.errors import InvalidPacket
from sockjet.server.targets import BroadcastFlags, BroadcastOptions

UID = "5c58edd0794a6282"


def protocol(**options: Any) -> StreamsProtocol:
    return StreamsProtocol("socket.io", "/", UID, stream="socket.io", **options)


def opts(
    rooms: tuple[str, ...] = (), except_: tuple[str, ...] = (), **flags: Any
) -> BroadcastOptions:
    return BroadcastOptions(frozenset(rooms), frozenset(except_), BroadcastFlags(**flags))


def test_hash_code_and_stream_names_are_javascripts() -> None:
    # Values computed by the package's own hashCode (UTF-16 code units, int32, JS's %).
    assert [hash_code(s) for s in ("/", "/chat", "/é", "/😀x", "")] == [
        47,
        46457863,
        1690,
        56360166,
        0,
    ]
    assert hash_code("/some-longer-namespace-name") == -1216880329
    assert stream_of("socket.io", "/", 1) == "socket.io"
    assert stream_of("socket.io", "/", 4) == "socket.io-3"
    assert stream_of("socket.io", "/some-longer-namespace-name", 4) == "socket.io--1"


def test_stream_entries_are_nodes() -> None:
    p = protocol()
    head = (
        "XADD",
        b"socket.io",
        b"MAXLEN",
        b"~",
        b"10000",
        b"*",
        b"uid",
        UID.encode(),
        b"nsp",
        b"/",
    )
    assert p.entry(envelope.broadcast(["hello", "world", 1], opts())) == (
        *head,
        b"type",
        b"3",
        b"data",
        b'{"packet":{"type":2,"data":["hello","world",1]},"opts":{"rooms":[],"except":[],"flags":{}}}',
    )
    # Binary: base64 of msgpack, the bytes @msgpack/msgpack writes.
    binary = p.entry(envelope.broadcast(["bin", b"\x01\x02\x03", {"nested": b"hi"}], opts()))
    assert binary[-1] == (
        b"gqZwYWNrZXSCpHR5cGUCpGRhdGGTo2JpbsQDAQIDgaZuZXN0ZWTEAmhppG9wdHODpXJvb21zkKZleGNlcHSQpWZsYWdzgA=="
    )
    assert p.entry(envelope.sockets_join(opts(("sid1",)), ["room-x", "room-y"]))[-3:] == (
        b"4",
        b"data",
        b'{"opts":{"rooms":["sid1"],"except":[],"flags":{}},"rooms":["room-x","room-y"]}',
    )
    assert p.entry(envelope.disconnect_sockets(opts(("room-kick",)), True))[-1] == (
        b'{"opts":{"rooms":["room-kick"],"except":[],"flags":{}},"close":true}'
    )
    assert p.entry(envelope.broadcast(["vol"], opts(volatile=True, compress=False)))[-1] == (
        b'{"packet":{"type":2,"data":["vol"]},"opts":{"rooms":[],"except":[],'
        b'"flags":{"volatile":true,"compress":false}}}'
    )
    # The emitter writes as "emitter"; only_plaintext never writes msgpack.
    assert p.entry(envelope.broadcast(["x"], opts()), uid="emitter")[6:8] == (b"uid", b"emitter")
    with pytest.raises(TypeError):
        protocol(only_plaintext=True).entry(envelope.broadcast(["b", b"\x00"], opts()))
    assert protocol(max_len=7).entry(envelope.broadcast(["x"], opts()))[4] == b"7"


def test_stream_entries_are_read_as_node_writes_them() -> None:
    p = protocol()
    fields = {
        b"uid": b"bb1543d368225912",
        b"nsp": b"/",
        b"type": b"3",
        b"data": b'{"packet":{"type":2,"data":["hello",1]},"opts":{"rooms":["r"],"except":["x"],"flags":{}}}',
    }
    uid, message = p.decode_entry(fields)
    assert uid == "bb1543d368225912" and isinstance(message, ClusterRequest)
    assert message.type is RequestType.BROADCAST and message.data == ["hello", 1]
    assert message.opts == opts(("r",), ("x",))
    data = base64.b64encode(
        msgpack.packb({"packet": {"type": 2, "data": ["b", b"\x01"]}, "opts": {}})
    )
    _, message = p.decode_entry({**fields, b"data": data})
    assert isinstance(message, ClusterRequest) and message.data == ["b", b"\x01"]
    assert p.decode_entry({**fields, b"type": b"2"})[1] is None  # a heartbeat (0.2.x)
    assert p.decode_entry({**fields, b"type": b"x"})[1] is None
    with pytest.raises(InvalidPacket):
        p.decode_entry({**fields, b"data": b"!!not base64!!"})
    assert decode_data(None) is None
    with pytest.raises(InvalidPacket):
        decode_data(b"{not json")


def test_pub_sub_is_msgpack_envelopes_on_nodes_channels() -> None:
    p = protocol()
    assert p.subscriptions() == {
        (SubscriptionKind.CHANNEL, b"socket.io#/#"): Role.REQUEST,
        (SubscriptionKind.CHANNEL, b"socket.io#/#" + UID.encode() + b"#"): Role.RESPONSE,
    }
    assert p.server_count_channel() == (SubscriptionKind.CHANNEL, b"socket.io#/#")
    assert protocol(sharded_pubsub=True).server_count_channel()[0] is SubscriptionKind.SHARD
    channel, payload = p.fetch_sockets("902481bb911a911c", opts())
    assert channel == b"socket.io#/#"
    assert payload == msgpack.packb(
        {
            "type": 7,
            "data": {
                "opts": {"rooms": [], "except": [], "flags": {}},
                "requestId": "902481bb911a911c",
            },
            "uid": UID,
            "nsp": "/",
        }
    )
    assert msgpack.unpackb(p.server_side_emit(["ping-server", {"n": 1}], "d81c")[1]) == {
        "type": 9,
        "data": {"requestId": "d81c", "packet": ["ping-server", {"n": 1}]},
        "uid": UID,
        "nsp": "/",
    }
    request = ClusterRequest(RequestType.REMOTE_FETCH, "25b12a93a7cec77f", "902481bb911a911c")
    answer = p.respond_fetch(request, [])
    assert answer is not None and answer[0] == b"socket.io#/#25b12a93a7cec77f#"
    assert msgpack.unpackb(answer[1])["type"] == 8
    assert p.respond_fetch(ClusterRequest(RequestType.REMOTE_FETCH, None, "r"), []) is None
    # Received: msgpack only (JSON is refused, as Node drops it), own messages ignored.
    count = {"type": 11, "data": {"requestId": "r1", "clientCount": 2}, "uid": "other", "nsp": "/"}
    response = p.decode(Role.RESPONSE, b"", msgpack.packb(count))
    assert isinstance(response, ClusterResponse) and response.body == {"clientCount": 2}
    assert p.decode(Role.REQUEST, b"", msgpack.packb({**count, "uid": UID})) is None
    assert p.decode(Role.REQUEST, b"", msgpack.packb({**count, "nsp": "/admin"})) is None
    with pytest.raises(InvalidPacket):
        p.decode(Role.REQUEST, b"", orjson.dumps(count))


def test_session_records_are_nodes() -> None:
    record = SessionRecord(
        "EXVexJStdENjZcQwAAAC",
        "HCcFTSfKXV-c7bLOAAAD",
        ["EXVexJStdENjZcQwAAAC", "room-y"],
        {"user": "s2-user-2", "server": "s2"},
    )
    # What Node's persistSession writes for the same session (@msgpack/msgpack, base64).
    node = (
        b"hKNzaWS0RVhWZXhKU3RkRU5qWmNRd0FBQUOjcGlktEhDY0ZUU2ZLWFYtYzdiTE9BQUFEpXJvb21zkrRFWFZleEpTdGR"
        b"FTmpaY1F3QUFBQ6Zyb29tLXmkZGF0YYKkdXNlcqlzMi11c2VyLTKmc2VydmVyonMy"
    )
    assert record.encode() == node
    assert SessionRecord.decode(node) == record
    # sockjet's records add who holds the session and where its stream stood; Node ignores it.
    live = SessionRecord("s", "p", ["s"], None, "5c58edd0794a6282", "1795677783006-0")
    value = msgpack.unpackb(base64.b64decode(live.encode()))
    assert value["sockjet"] == {"node": "5c58edd0794a6282", "since": "1795677783006-0"}
    assert SessionRecord.decode(live.encode()) == live
    # What cannot be encoded is dropped (the session is still kept).
    assert SessionRecord.decode(SessionRecord("s", "p", [], {"x": object()}).encode()).data is None
    for raw in (b"@@@", base64.b64encode(b"\xc1"), base64.b64encode(msgpack.packb([1]))):
        with pytest.raises(InvalidPacket):
            SessionRecord.decode(raw)
    with pytest.raises(InvalidPacket):
        SessionRecord.decode(base64.b64encode(msgpack.packb({"sid": 1, "pid": "p"})))


def test_entry_ids_order_as_redis_orders_them() -> None:
    assert entry_key(b"1795677783006-0") == (1795677783006, 0)
    assert entry_key("10-2") > entry_key("9-99") > entry_key("9-3") > entry_key("0-0")
    raw = [[b"1-0", [b"uid", b"u", b"nsp", b"/"]], [b"2-0", None], ["bad"]]
    assert list(entries_of(raw)) == [(b"1-0", {b"uid": b"u", b"nsp": b"/"})]
    assert list(entries_of([(b"3-0", {b"a": b"b"})])) == [(b"3-0", {b"a": b"b"})]


def test_the_envelope_reads_every_cluster_message() -> None:
    o = {"rooms": ["r"], "except": [], "flags": {}}
    decode = envelope.decode_body
    assert decode(MessageType.HEARTBEAT, "u", None) is None
    assert decode(MessageType.ADAPTER_CLOSE, "u", None) is None
    assert decode(99, "u", {}) is None
    join = decode(4, "u", {"opts": o, "rooms": ["a", 2]})
    assert isinstance(join, ClusterRequest) and join.type is RequestType.REMOTE_JOIN
    assert set(join.rooms) == {"a", "2"}
    leave = decode(5, "u", {"opts": o, "rooms": ["a"]})
    assert isinstance(leave, ClusterRequest) and leave.type is RequestType.REMOTE_LEAVE
    kick = decode(6, "u", {"opts": o, "close": True})
    assert isinstance(kick, ClusterRequest) and kick.close
    fetch = decode(7, "u", {"opts": o, "requestId": "r"})
    assert isinstance(fetch, ClusterRequest) and fetch.request_id == "r"
    emit = decode(9, "u", {"packet": ["ev", 1]})
    assert isinstance(emit, ClusterRequest) and emit.request_id is None and emit.data == ["ev", 1]
    ack = decode(3, "u", {"packet": {"type": 2, "data": ["ask"]}, "requestId": "r", "opts": o})
    assert isinstance(ack, ClusterRequest) and ack.request_id == "r"
    answers = [
        decode(8, "u", {"requestId": "r", "sockets": []}),
        decode(10, "u", {"requestId": "r", "packet": "pong"}),
        decode(12, "u", {"requestId": "r", "packet": "yes"}),
    ]
    assert [a.type for a in answers if isinstance(a, ClusterResponse)] == [
        None,
        RequestType.SERVER_SIDE_EMIT,
        RequestType.BROADCAST_ACK,
    ]
    for bad in (None, {"packet": "x"}, {"requestId": 3}):
        with pytest.raises(InvalidPacket):
            decode(3 if bad is None or "packet" in bad else 8, "u", bad)
    with pytest.raises(InvalidPacket):
        envelope.decode([], "me", "/")
    assert envelope.envelope(envelope.broadcast(["x"], opts()), "u", "/") == {
        "type": 3,
        "data": {
            "packet": {"type": 2, "data": ["x"]},
            "opts": {"rooms": [], "except": [], "flags": {}},
        },
        "uid": "u",
        "nsp": "/",
    }


def test_handover_messages_stay_between_sockjet_servers() -> None:
    p = protocol()
    request = msgpack.unpackb(p.handover("r", "pid", "sid", 123))
    assert request == {
        "type": 100,
        "data": {"requestId": "r", "pid": "pid", "sid": "sid", "deadline": 123},
        "uid": UID,
        "nsp": "/",
    }
    # Outside Node's MessageType: a Node server (or the envelope) ignores them.
    assert envelope.decode({**request, "uid": "x"}, UID, "/") is None
    assert msgpack.unpackb(p.handover_done("r"))["type"] == 101


# -- the entry writer, on stand-in connections ----------------------------------------------------


class FakeWriter:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.transport = None

    def write(self, data: bytes) -> None:
        self.written.append(data)


class FakeConnection:
    """What EntryWriter uses of a redis-py connection: its reader and writer."""

    def __init__(self) -> None:
        self._reader = asyncio.StreamReader()
        self._writer = FakeWriter()
        self.closed = False

    def reply(self, data: bytes) -> None:
        self._reader.feed_data(data)

    def drop(self) -> None:
        self._reader.feed_eof()

    async def disconnect(self, nowait: bool = False) -> None:
        self.closed = True


class Connector:
    def __init__(self) -> None:
        self.made: list[FakeConnection] = []
        self.ready = asyncio.Event()
        self.refuse = 0

    async def __call__(self) -> FakeConnection:
        if self.refuse:
            self.refuse -= 1
            raise ConnectionError("refused")
        connection = FakeConnection()
        self.made.append(connection)
        self.ready.set()
        return connection

    async def next(self) -> FakeConnection:
        count = len(self.made)
        async with asyncio.timeout(5):
            while len(self.made) == count or self.made[-1] is None:
                self.ready.clear()
                await self.ready.wait()
        return self.made[-1]


def xadd(n: int) -> tuple[Any, ...]:
    return ("XADD", b"s", b"*", b"n", b"%d" % n)


async def test_the_entry_writer_writes_at_once_and_in_order() -> None:
    connector = Connector()
    recorded: list[tuple[bytes, str]] = []
    writer = EntryWriter(
        connector, on_recorded=lambda i, k: recorded.append((i, k)), max_delay=0.01
    )
    writer.send(xadd(0), "broadcast")  # not connected yet: waits
    first = await connector.next()
    await asyncio.sleep(0)
    assert len(first._writer.written) == 1
    writer.send(xadd(1), "broadcast")
    # written before anything else runs: the caller's next write (an ack) goes after it
    assert len(first._writer.written) == 2 and b"n\r\n$1\r\n1" in first._writer.written[1]
    first.reply(b"$3\r\n1-0\r\n$3\r\n2-0\r\n")
    assert await writer.flush(1)
    assert recorded == [(b"1-0", "broadcast"), (b"2-0", "broadcast")]
    assert writer.lost == {} and writer.queued == 0
    await writer.close()


async def test_what_was_on_its_way_is_counted_lost_and_what_waited_is_sent() -> None:
    connector = Connector()
    writer = EntryWriter(connector, max_delay=0.01)
    writer.send(xadd(0), "broadcast")
    writer.send(xadd(1), "operation")
    first = await connector.next()
    first.drop()  # no reply: those two may or may not be in Redis
    connector.refuse = 2  # and Redis refuses connections for a while
    second_wait = asyncio.ensure_future(connector.next())
    await asyncio.sleep(0.02)
    writer.send(xadd(2), "broadcast")  # waits until Redis answers again
    second = await second_wait
    await asyncio.sleep(0)
    assert writer.lost == {"broadcast": 1, "operation": 1}
    assert len(second._writer.written) == 1 and b"$1\r\n2" in second._writer.written[0]
    second.reply(b"$3\r\n3-0\r\n")
    assert await writer.flush(1)
    assert writer.lost == {"broadcast": 1, "operation": 1}  # nothing more
    await writer.close()


async def test_a_moved_stream_is_written_again_where_it_is() -> None:
    connector = Connector()
    writer = EntryWriter(connector, max_delay=0.01)
    writer.send(xadd(0), "broadcast")
    first = await connector.next()
    await asyncio.sleep(0)
    first.reply(b"-MOVED 3999 127.0.0.1:6381\r\n")
    second = await connector.next()
    await asyncio.sleep(0)
    assert len(second._writer.written) == 1  # the same command, not lost
    second.reply(b"-ERR wrong type\r\n")
    assert await writer.flush(1)
    assert writer.lost == {"broadcast": 1}  # refused by Redis: reported
    await writer.close()


async def test_the_entry_writer_bounds_what_waits() -> None:
    connector = Connector()
    connector.refuse = 1_000
    writer = EntryWriter(connector, max_queued=2, max_delay=0.01)
    for n in range(5):
        writer.send(xadd(n), "broadcast")
    assert writer.queued == 2 and writer.dropped == {"broadcast": 3}
    await writer.close(grace=0.01)
    assert writer.dropped == {"broadcast": 5}
