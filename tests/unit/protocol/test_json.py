"""Bounded JSON: what orjson accepts, what we refuse on top, and that nothing else escapes."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sockjet.errors import InvalidPacket
from sockjet.protocol import json as sjson
from sockjet.protocol.json import MAX_DEPTH, depth_within, dumps, loads


def nested(depth: int, leaf: Any = 1) -> str:
    """JSON text nesting ``depth`` arrays around ``leaf``."""
    return "[" * depth + sjson.dumps(leaf) + "]" * depth


def test_dumps_is_compact_utf8_text() -> None:
    assert dumps(["é", {"a": 1.5, "b": None, "c": True}]) == '["é",{"a":1.5,"b":null,"c":true}]'


def test_dumps_stringifies_non_str_keys_like_javascript() -> None:
    assert dumps({1: "a", 2.5: "b"}) == '{"1":"a","2.5":"b"}'


@pytest.mark.parametrize("value", [b"bytes", object(), 2**64])
def test_dumps_refuses_what_json_cannot_carry(value: Any) -> None:
    with pytest.raises(TypeError):
        dumps([value])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1,2]", [1, 2]),
        (b'{"a":"\xc3\xa9"}', {"a": "é"}),
        (' "\\ud83d\\ude00" ', "😀"),
        ("18446744073709551615", 2**64 - 1),
    ],
)
def test_loads_accepts_valid_json(text: str | bytes, expected: Any) -> None:
    assert loads(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[1,",
        "[1]x",
        "{'a':1}",
        "NaN",
        '"\\ud800"',  # lone surrogate escape
        '"\ud800"',  # lone surrogate in the str itself
        b'"\xff"',  # invalid UTF-8
        "1" * 400,  # beyond the float range
        "1" * 100_000,  # a very long literal is refused, in linear time
    ],
)
def test_loads_refuses_invalid_json(text: str | bytes) -> None:
    with pytest.raises(InvalidPacket):
        loads(text)


def test_long_integers_become_floats_as_in_javascript() -> None:
    # orjson never builds a Python int beyond 64 bits: no quadratic big-int conversion.
    value = loads("1" + "0" * 25)
    assert isinstance(value, float)
    assert value == 1e25


@pytest.mark.parametrize("as_bytes", [False, True])
def test_nesting_up_to_max_depth_is_accepted(as_bytes: bool) -> None:
    text = nested(MAX_DEPTH)
    value = loads(text.encode() if as_bytes else text)
    assert depth_within(value, MAX_DEPTH)
    assert not depth_within(value, MAX_DEPTH - 1)


@pytest.mark.parametrize("as_bytes", [False, True])
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 1025])
def test_deeper_nesting_is_refused(depth: int, as_bytes: bool) -> None:
    text = nested(depth)
    with pytest.raises(InvalidPacket):
        loads(text.encode() if as_bytes else text)


def test_deep_objects_are_refused_too() -> None:
    text = '{"a":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1)
    with pytest.raises(InvalidPacket, match="deeper"):
        loads(text)


def test_many_shallow_containers_are_fine() -> None:
    text = sjson.dumps([{"a": [i]} for i in range(1000)])
    assert len(loads(text)) == 1000


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    text = sjson.dumps(["[" * 1000 + "{" * 1000])
    assert loads(text) == ["[" * 1000 + "{" * 1000]


def test_long_flat_documents_skip_the_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(value: Any) -> bool:
        raise AssertionError("walked a document with few brackets")

    monkeypatch.setattr(sjson, "_depth_ok", boom)
    assert loads(sjson.dumps(["x" * 10_000, 1, 2])) == ["x" * 10_000, 1, 2]


def test_depth_within_scalars_and_limits() -> None:
    assert depth_within(1, 0)
    assert depth_within([], 1)
    assert not depth_within([], 0)
    assert depth_within({"a": [1, {"b": 2}]}, 3)
    assert not depth_within({"a": [1, {"b": 2}]}, 2)


def test_a_recursion_error_while_checking_depth_is_an_invalid_packet() -> None:
    text = nested(MAX_DEPTH + 1)
    depth = _stack_depth()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 40)  # far fewer frames than the walk needs
    try:
        with pytest.raises(InvalidPacket):
            loads(text)
    finally:
        sys.setrecursionlimit(limit)


def _stack_depth() -> int:
    frame = sys._getframe()
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back  # type: ignore[assignment]
    return depth


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_garbage_gives_a_value_or_invalid_packet(data: str | bytes) -> None:
    with contextlib.suppress(InvalidPacket):
        loads(data)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_roundtrip(value: Any) -> None:
    assert loads(dumps(value)) == value
