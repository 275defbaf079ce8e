"""Serializers by name, as the Server and the AsyncClient take them."""

from __future__ import annotations

import pytest

from sockjet.protocol.msgpack import MSGPACK_SERIALIZER
from sockjet.protocol.serializers import resolve_serializer
from sockjet.protocol.socketio import JSON_SERIALIZER


def test_names_and_objects_resolve() -> None:
    assert resolve_serializer("json") is JSON_SERIALIZER
    assert resolve_serializer("msgpack") is MSGPACK_SERIALIZER
    assert resolve_serializer(MSGPACK_SERIALIZER) is MSGPACK_SERIALIZER


def test_an_unknown_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown serializer 'cbor'"):
        resolve_serializer("cbor")  # type: ignore[arg-type]
