"""Engine.IO request checks and the handshake's OPEN packet, sans-I/O.

:func:`check_request` applies, in Node engine.io 6.x's order, the checks every Engine.IO HTTP
request and WebSocket upgrade goes through before the runtime touches a session. A refused request
raises :class:`~sockjet.errors.HandshakeError`, which the runtime answers with
``error.status`` and :func:`error_body` (``Content-Type: application/json``), as Node does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from enum import IntEnum
from types import MappingProxyType
from typing import Final

import orjson

from sockjet.errors import HandshakeError
from sockjet.protocol.engineio import PROTOCOL_VERSION, Packet, PacketType

__all__ = [
    "ERROR_MESSAGES",
    "ErrorCode",
    "check_request",
    "error_body",
    "handshake_error",
    "open_packet",
]


class ErrorCode(IntEnum):
    """Engine.IO error codes, sent as ``{"code": N, "message": ...}``. Code 0 is a real code."""

    UNKNOWN_TRANSPORT = 0
    UNKNOWN_SID = 1
    BAD_HANDSHAKE_METHOD = 2
    BAD_REQUEST = 3
    FORBIDDEN = 4
    UNSUPPORTED_PROTOCOL_VERSION = 5


ERROR_MESSAGES: Final[Mapping[ErrorCode, str]] = MappingProxyType(
    {
        ErrorCode.UNKNOWN_TRANSPORT: "Transport unknown",
        ErrorCode.UNKNOWN_SID: "Session ID unknown",
        ErrorCode.BAD_HANDSHAKE_METHOD: "Bad handshake method",
        ErrorCode.BAD_REQUEST: "Bad request",
        ErrorCode.FORBIDDEN: "Forbidden",
        ErrorCode.UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
    }
)
"""The message Node engine.io sends with each code (``Server.errorMessages``)."""

_EIO: Final = str(PROTOCOL_VERSION)

# Node's checkInvalidHeaderChar: a header value may hold TAB, 0x20-0x7E and 0x80-0xFF only.
_INVALID_HEADER_CHAR: Final = re.compile("[^\t\x20-\x7e\x80-\xff]")


def handshake_error(code: ErrorCode, message: str | None = None) -> HandshakeError:
    """The error for ``code``: HTTP 403 for FORBIDDEN, 400 for every other code.

    ``message`` replaces the standard message when given and non-empty, as Node does with the
    message an ``allowRequest`` callback refuses with.
    """
    code = ErrorCode(code)
    status = 403 if code is ErrorCode.FORBIDDEN else 400
    return HandshakeError(code, message or ERROR_MESSAGES[code], status)


def error_body(error: HandshakeError) -> bytes:
    """The JSON body Node engine.io answers a refused request with, byte for byte.

    E.g. ``b'{"code":0,"message":"Transport unknown"}'``.
    """
    code = int(error.code)
    try:
        return orjson.dumps({"code": code, "message": error.message})
    except orjson.JSONEncodeError:
        # Only a custom message with a lone surrogate gets here; answer rather than fail.
        message = error.message.encode("utf-8", "replace").decode("utf-8")
        return orjson.dumps({"code": code, "message": message})


def check_request(
    *,
    method: str,
    query: Mapping[str, str],
    upgrade: bool,
    transports: Collection[str],
    session_transport: Callable[[str], str | None],
    origin: str | None = None,
) -> str | None:
    """Validate an Engine.IO request; return its sid, or None for a new handshake.

    ``upgrade`` is True for a WebSocket upgrade request. ``transports`` are the enabled transport
    names. ``session_transport(sid)`` returns the current transport name of session ``sid``, or
    None when there is no such session. ``origin`` is the Origin header, if any.

    The order is Node engine.io 6.x's (``Server.verify``, then ``Server.handshake``)::

        transport unknown                                      0 Transport unknown
        Origin header holds invalid characters                 3 Bad request
        with a sid:
            sid unknown                                        1 Session ID unknown
            other transport than the session's, no upgrade     3 Bad request
            EIO is not 4 (Node's protocol mismatch)            3 Bad request
        without a sid (a new handshake):
            method is not GET                                  2 Bad handshake method
            transport websocket without an upgrade             3 Bad request
            EIO is not 4                                       5 Unsupported protocol version

    Node checks the EIO version of a new handshake after ``allowRequest``; here it comes before
    (the runtime calls its own ``allow_request`` afterwards and refuses with
    ``handshake_error(FORBIDDEN)``), which differs only for a request that is both forbidden and
    of another protocol version. An empty ``sid`` counts as absent, as in Node.

    Left to the runtime, as Node leaves them to later stages: a WebSocket upgrade whose transport
    is not ``websocket``, an upgrade for a session already upgraded or upgrading (Node accepts
    the WebSocket and closes it), the method of a request within a session.

    Raises :class:`~sockjet.errors.HandshakeError`.
    """
    transport = query.get("transport")
    # Node refuses "webtransport" here too: WebTransport sessions never come through HTTP.
    if transport is None or transport not in transports or transport == "webtransport":
        raise handshake_error(ErrorCode.UNKNOWN_TRANSPORT)
    if origin is not None and _INVALID_HEADER_CHAR.search(origin) is not None:
        raise handshake_error(ErrorCode.BAD_REQUEST)
    sid = query.get("sid")
    if sid:
        current = session_transport(sid)
        if current is None:
            raise handshake_error(ErrorCode.UNKNOWN_SID)
        if not upgrade and current != transport:
            raise handshake_error(ErrorCode.BAD_REQUEST)
        # Every session here speaks EIO 4, so any other version is Node's PROTOCOL_MISMATCH.
        if query.get("EIO") != _EIO:
            raise handshake_error(ErrorCode.BAD_REQUEST)
        return sid
    if method != "GET":
        raise handshake_error(ErrorCode.BAD_HANDSHAKE_METHOD)
    if transport == "websocket" and not upgrade:
        raise handshake_error(ErrorCode.BAD_REQUEST)
    # Node reads any EIO other than "4" (missing included) as revision 3, refused without
    # allowEIO3, which sockjet does not implement.
    if query.get("EIO") != _EIO:
        raise handshake_error(ErrorCode.UNSUPPORTED_PROTOCOL_VERSION)
    return None


def open_packet(
    sid: str,
    *,
    upgrades: Sequence[str],
    ping_interval_ms: int,
    ping_timeout_ms: int,
    max_payload: int,
) -> Packet:
    """The OPEN packet that answers a handshake, keys in Node's order.

    E.g. ``0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,
    "pingTimeout":20000,"maxPayload":1000000}`` once encoded.
    """
    data = orjson.dumps(
        {
            "sid": sid,
            "upgrades": list(upgrades),
            "pingInterval": ping_interval_ms,
            "pingTimeout": ping_timeout_ms,
            "maxPayload": max_payload,
        }
    )
    return Packet(PacketType.OPEN, data.decode("utf-8"))
