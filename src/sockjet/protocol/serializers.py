"""Serializers by name: what ``Server(serializer=...)`` and ``AsyncClient(serializer=...)`` take."""

from __future__ import annotations

from typing import Literal, TypeAlias

from sockjet.protocol.socketio import JSON_SERIALIZER, Serializer

__all__ = ["SerializerOption", "resolve_serializer"]

SerializerOption: TypeAlias = Literal["json", "msgpack"] | Serializer
"""``"json"`` (the default everywhere), ``"msgpack"`` (npm ``socket.io-msgpack-parser``), or an
object implementing :class:`~sockjet.protocol.socketio.Serializer`."""


def resolve_serializer(value: SerializerOption) -> Serializer:
    """The serializer ``value`` names, or ``value`` itself. Raises ValueError for other names."""
    if value == "json":
        return JSON_SERIALIZER
    if value == "msgpack":
        # Imported on demand: most applications never load the msgpack codec.
        from sockjet.protocol.msgpack import MSGPACK_SERIALIZER

        return MSGPACK_SERIALIZER
    if isinstance(value, str):
        raise ValueError(f"unknown serializer {value!r}: use 'json', 'msgpack' or a Serializer")
    return value
