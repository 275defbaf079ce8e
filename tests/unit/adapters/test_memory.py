"""The in-memory adapter: room index bookkeeping and recipient selection."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from server_fakes import FakeConn, socket_of

from sockjet.adapters.memory import MemoryAdapter
from sockjet.protocol.socketio import Packet, PacketType
from sockjet.server.adapter import Adapter
from sockjet.server.server import Server
from sockjet.server.targets import BroadcastFlags, BroadcastOptions


def make() -> MemoryAdapter:
    adapter = Server().sockets.adapter
    assert isinstance(adapter, MemoryAdapter) and isinstance(adapter, Adapter)
    return adapter


async def test_room_index_add_and_delete() -> None:
    adapter = make()
    adapter.add_all("s1", ["s1", "a", "b"])
    adapter.add_all("s2", ["s2", "b"])
    assert adapter.rooms == {"s1": {"s1"}, "a": {"s1"}, "b": {"s1", "s2"}, "s2": {"s2"}}
    assert adapter.sids == {"s1": {"s1", "a", "b"}, "s2": {"s2", "b"}}
    assert adapter.socket_rooms("s1") == {"s1", "a", "b"}
    adapter.del_("s1", "a")
    assert "a" not in adapter.rooms
    adapter.del_("s1", "missing")
    adapter.del_("unknown", "b")
    adapter.del_all("s1")
    assert adapter.rooms == {"b": {"s2"}, "s2": {"s2"}}
    assert adapter.socket_rooms("s1") is None
    adapter.del_("s2", "b")
    adapter.del_("s2", "s2")
    assert adapter.rooms == {} and adapter.sids == {}
    adapter.del_all("s2")


async def test_interface_basics() -> None:
    adapter = make()
    assert await adapter.server_count() == 1
    assert adapter.init() is None and adapter.close() is None
    adapter.server_side_emit(["ev", 1])  # nothing to reach: no error


async def test_sockets_and_selection_ignore_sockets_not_connected() -> None:
    io = Server()
    adapter = io.sockets.adapter
    assert isinstance(adapter, MemoryAdapter)
    conn = FakeConn(io)
    socket = socket_of(io, conn.connect())
    socket.join("r")
    adapter.add_all("ghost", ["r"])  # e.g. joined during a connection middleware
    assert await adapter.sockets(["r"]) == {socket.id}
    assert await adapter.sockets() == {socket.id}
    adapter.broadcast(Packet(PacketType.EVENT, "/", ["ev"]), BroadcastOptions(frozenset({"r"})))
    assert conn.take() == ['2["ev"]']


async def test_broadcast_sets_the_namespace_and_honours_flags() -> None:
    io = Server()
    io.of("/n")
    conn = FakeConn(io)
    conn.connect("/n")
    adapter = io.of("/n").adapter
    conn.writable = False
    adapter.broadcast(
        Packet(PacketType.EVENT, "/", ["ev"]),
        BroadcastOptions(flags=BroadcastFlags(volatile=True)),
    )
    assert conn.take() == []
    conn.writable = True
    adapter.broadcast(Packet(PacketType.EVENT, "/", ["ev"]), BroadcastOptions())
    assert conn.take() == ['2/n,["ev"]']


@pytest.mark.parametrize("close", [False, True])
async def test_disconnect_during_delivery_is_safe(close: bool) -> None:
    """Delivering may close a recipient (engine buffer overflow): the selection is a copy."""
    io = Server()
    conns = [FakeConn(io) for _ in range(3)]
    for conn in conns:
        socket_of(io, conn.connect()).join("r")
    original = conns[0].send

    def send_and_die(message: object, *, volatile: bool = False) -> bool:
        conns[1].drop("transport error")
        return original(message, volatile=volatile)  # type: ignore[arg-type]

    conns[0].send = send_and_die  # type: ignore[method-assign]
    if close:
        io.to("r").emit("ev")
    else:
        io.emit("ev")
    assert conns[2].take() == ['2["ev"]']
