"""sockjet.Emitter publishes exactly what Node's @socket.io/redis-emitter 5.x publishes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from redis_fakes import FakeRedis

import sockjet
from sockjet.adapters.emitter import Emitter
from sockjet.adapters.redis_codec import pack

SID = "pbM0rnSpDOcskq7KAAAB"


def published(redis: FakeRedis) -> list[tuple[bytes, bytes]]:
    out = [(c[1], c[2]) for c in redis.commands]
    redis.commands.clear()
    return out


async def test_emits_match_node_emitter_bytes() -> None:
    redis = FakeRedis()
    emitter = sockjet.Emitter(redis)  # type: ignore[arg-type]
    assert isinstance(emitter, Emitter)
    await emitter.emit("from-emitter", 1, {"a": "b"})
    await emitter.to("room-a").emit("emitter-room-a")
    await emitter.except_("room-a").emit("emitter-except")
    await emitter.volatile.emit("emitter-vol")
    await emitter.compress(False).volatile.emit("c")
    await emitter.of("admin").emit("emitter-admin")
    await emitter.emit("emitter-bin", b"\x09\x08\x07")
    await emitter.in_(["r1", "r2"]).to("r1").emit("two")

    def msg(data: list[object], nsp: str = "/", **opts: object) -> bytes:
        wire = {"rooms": [], "flags": {}, "except": []} | opts
        return pack(["emitter", {"type": 2, "data": data, "nsp": nsp}, wire])

    assert published(redis) == [
        (b"socket.io#/#", msg(["from-emitter", 1, {"a": "b"}])),
        (b"socket.io#/#room-a#", msg(["emitter-room-a"], rooms=["room-a"])),
        (b"socket.io#/#", msg(["emitter-except"], **{"except": ["room-a"]})),
        (b"socket.io#/#", msg(["emitter-vol"], flags={"volatile": True})),
        (b"socket.io#/#", msg(["c"], flags={"volatile": True, "compress": False})),
        (b"socket.io#/admin#", msg(["emitter-admin"], "/admin")),
        (b"socket.io#/#", msg(["emitter-bin", b"\x09\x08\x07"])),
        (b"socket.io#/#", msg(["two"], rooms=["r1", "r2"])),
    ]
    # The captured bytes of the first one, for the record.
    assert msg(["from-emitter", 1, {"a": "b"}])[:10] == b"\x93\xa7emitter\x83"
    await emitter.aclose()
    assert not redis.closed  # a client passed in belongs to the caller


async def test_requests_match_node_emitter_bytes() -> None:
    redis = FakeRedis()
    emitter = Emitter(redis, key="k")  # type: ignore[arg-type]
    await emitter.in_(SID).sockets_join("room-e")
    await emitter.in_(SID).sockets_leave(["room-e"])
    await emitter.server_side_emit("emitter-ping", "from-emitter")
    await emitter.in_("qxIG").disconnect_sockets(True)
    await emitter.sockets_join(["a", "b"])
    await emitter.of("/chat").disconnect_sockets()
    assert published(redis) == [
        (
            b"k-request#/#",
            b'{"type":2,"opts":{"rooms":["' + SID.encode() + b'"],"except":[]},"rooms":["room-e"]}',
        ),
        (
            b"k-request#/#",
            b'{"type":3,"opts":{"rooms":["' + SID.encode() + b'"],"except":[]},"rooms":["room-e"]}',
        ),
        (b"k-request#/#", b'{"uid":"emitter","type":6,"data":["emitter-ping","from-emitter"]}'),
        (b"k-request#/#", b'{"type":4,"opts":{"rooms":["qxIG"],"except":[]},"close":true}'),
        (b"k-request#/#", b'{"type":2,"opts":{"rooms":[],"except":[]},"rooms":["a","b"]}'),
        (b"k-request#/chat#", b'{"type":4,"opts":{"rooms":[],"except":[]},"close":false}'),
    ]
    await emitter.aclose()


async def test_reserved_names_closing_and_failures() -> None:
    redis = FakeRedis()
    async with Emitter(redis) as emitter:  # type: ignore[arg-type]
        for name in ("connect", "disconnect", "disconnecting"):
            with pytest.raises(ValueError):
                emitter.emit(name)
            with pytest.raises(ValueError):
                emitter.server_side_emit(name)
        emitter.emit("error", "as the servers may: clients receive it as an event")
        redis.down = True
        with pytest.raises(ConnectionError):
            await emitter.emit("lost")
        redis.down = False
        emitter.emit("queued")  # not awaited: aclose sends it
    assert published(redis)[-1][0] == b"socket.io#/#"
    with pytest.raises(RuntimeError, match="closed"):
        emitter.emit("late")
    await emitter.aclose()  # idempotent
    assert repr(emitter) == "Emitter(key='socket.io', nsp='/')"
    assert "room" in repr(emitter.to("room"))


async def test_owns_a_client_made_from_a_url() -> None:
    emitter = Emitter("redis://127.0.0.1:1/0")
    assert await emitter.flush()
    await emitter.aclose()
