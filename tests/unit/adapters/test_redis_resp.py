"""The RESP reader of the subscriber connection: every RESP2/RESP3 type, any chunking, and
garbage refused with RespProtocolError only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sockjet.adapters.redis_resp import RespError, RespProtocolError, RespReader, pack_command

MESSAGE = b"*3\r\n$7\r\nmessage\r\n$3\r\nreq\r\n$5\r\nhello\r\n"
PMESSAGE = b">4\r\n$8\r\npmessage\r\n$3\r\nbc*\r\n$3\r\nbc1\r\n$0\r\n\r\n"
SUBSCRIBED = b"*3\r\n$9\r\nsubscribe\r\n$3\r\nreq\r\n:1\r\n"


def test_pack_command() -> None:
    assert pack_command(b"SUBSCRIBE", b"a#b") == b"*2\r\n$9\r\nSUBSCRIBE\r\n$3\r\na#b\r\n"
    assert pack_command(b"PING") == b"*1\r\n$4\r\nPING\r\n"


def test_push_messages_in_one_chunk() -> None:
    reader = RespReader()
    values = reader.feed(MESSAGE + PMESSAGE + SUBSCRIBED + b"+PONG\r\n")
    assert values == [
        [b"message", b"req", b"hello"],
        [b"pmessage", b"bc*", b"bc1", b""],
        [b"subscribe", b"req", 1],
        b"PONG",
    ]
    assert reader.buffered == 0


@given(st.lists(st.integers(min_value=1, max_value=len(MESSAGE + PMESSAGE) - 1), max_size=6))
def test_any_chunking_gives_the_same_values(cuts: list[int]) -> None:
    stream = MESSAGE + SUBSCRIBED + PMESSAGE
    reader = RespReader()
    values = []
    last = 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        values.extend(reader.feed(stream[last:cut]))
        last = cut
    assert values == [
        [b"message", b"req", b"hello"],
        [b"subscribe", b"req", 1],
        [b"pmessage", b"bc*", b"bc1", b""],
    ]
    assert reader.buffered == 0


def test_every_resp3_type() -> None:
    reader = RespReader()
    stream = (
        b"$-1\r\n*-1\r\n_\r\n#t\r\n#f\r\n,1.5\r\n(12345678901234567890\r\n"
        b"%1\r\n+k\r\n:2\r\n~2\r\n:1\r\n:2\r\n=7\r\ntxt:abc\r\n"
        b"|1\r\n+ttl\r\n:3\r\n:9\r\n"  # an attribute, then the value it describes
        b"-ERR unknown command\r\n!5\r\nOOPS!\r\n*2\r\n*1\r\n:1\r\n$1\r\nx\r\n"
    )
    values = reader.feed(stream)
    assert values[:10] == [
        None,
        None,
        None,
        True,
        False,
        1.5,
        12345678901234567890,
        {b"k": 2},
        [1, 2],
        b"abc",
    ]
    assert values[10] == 9
    assert isinstance(values[11], RespError) and values[11].message == "ERR unknown command"
    assert isinstance(values[12], RespError) and repr(values[12]) == "RespError('OOPS!')"
    assert values[13] == [[1], b"x"]


@pytest.mark.parametrize(
    "garbage",
    [
        b"?what\r\n",
        b"*x\r\n",
        b"$5\r\nhelloXX",
        b":1.5\r\n",
        b",nan?\r\n",
        b"!-1\r\n",
        b"*1\r\n" * 20 + b":1\r\n",
        b"$999999\r\n",
    ],
)
def test_garbage_is_refused(garbage: bytes) -> None:
    with pytest.raises(RespProtocolError):
        RespReader(max_bulk=1000).feed(garbage)


def test_endless_lines_are_refused() -> None:
    reader = RespReader()
    reader.feed(b"+" + b"x" * 1000)
    with pytest.raises(RespProtocolError, match="too long"):
        reader.feed(b"x" * 70_000)
