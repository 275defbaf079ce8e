"""Engine.IO request checks, error bodies and the OPEN packet, against Node engine.io 6.x."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
import pytest

from sockjet.errors import HandshakeError
from sockjet.protocol.engineio import Packet, PacketType, encode_packet
from sockjet.protocol.handshake import (
    ERROR_MESSAGES,
    ErrorCode,
    check_request,
    error_body,
    handshake_error,
    open_packet,
)

# Node engine.io's abortRequest(): status, then JSON.stringify({code, message}).
EXPECTED: list[tuple[ErrorCode, int, bytes]] = [
    (ErrorCode.UNKNOWN_TRANSPORT, 400, b'{"code":0,"message":"Transport unknown"}'),
    (ErrorCode.UNKNOWN_SID, 400, b'{"code":1,"message":"Session ID unknown"}'),
    (ErrorCode.BAD_HANDSHAKE_METHOD, 400, b'{"code":2,"message":"Bad handshake method"}'),
    (ErrorCode.BAD_REQUEST, 400, b'{"code":3,"message":"Bad request"}'),
    (ErrorCode.FORBIDDEN, 403, b'{"code":4,"message":"Forbidden"}'),
    (ErrorCode.UNSUPPORTED_PROTOCOL_VERSION, 400,
     b'{"code":5,"message":"Unsupported protocol version"}'),
]  # fmt: skip


def test_error_codes_and_messages() -> None:
    assert [int(c) for c in ErrorCode] == [0, 1, 2, 3, 4, 5]
    assert set(ERROR_MESSAGES) == set(ErrorCode)
    with pytest.raises(TypeError):
        ERROR_MESSAGES[ErrorCode.FORBIDDEN] = "x"  # type: ignore[index]


@pytest.mark.parametrize(("code", "status", "body"), EXPECTED)
def test_every_error_code(code: ErrorCode, status: int, body: bytes) -> None:
    error = handshake_error(code)
    assert isinstance(error, HandshakeError)
    assert error.code == code
    assert error.code is code
    assert error.status == status
    assert error.message == ERROR_MESSAGES[code]
    assert error_body(error) == body


def test_code_zero_is_a_real_code() -> None:
    error = handshake_error(ErrorCode.UNKNOWN_TRANSPORT)
    assert error.code is not None
    assert error.code == 0
    assert error_body(error).startswith(b'{"code":0,')


def test_plain_int_codes_are_accepted() -> None:
    error = handshake_error(4)  # type: ignore[arg-type]
    assert error.code is ErrorCode.FORBIDDEN
    assert error.status == 403


def test_custom_message_as_node_allow_request_sends_it() -> None:
    error = handshake_error(ErrorCode.FORBIDDEN, "not today ✋")
    assert error.status == 403
    assert error_body(error) == '{"code":4,"message":"not today ✋"}'.encode()
    # Node falls back to the standard message when the custom one is empty
    assert handshake_error(ErrorCode.FORBIDDEN, "").message == "Forbidden"


def test_error_body_survives_a_lone_surrogate() -> None:
    body = error_body(handshake_error(ErrorCode.FORBIDDEN, "bad \ud800 message"))
    assert orjson.loads(body) == {"code": 4, "message": "bad ? message"}


# --- check_request ---

SESSIONS = {"pollsid": "polling", "wssid": "websocket"}
BOTH = ("polling", "websocket")


def check(
    query: Mapping[str, str],
    *,
    method: str = "GET",
    upgrade: bool = False,
    transports: tuple[str, ...] = BOTH,
    origin: str | None = None,
) -> str | None:
    return check_request(
        method=method,
        query=query,
        upgrade=upgrade,
        transports=transports,
        session_transport=SESSIONS.get,
        origin=origin,
    )


def code_of(query: Mapping[str, str], **kwargs: object) -> ErrorCode:
    with pytest.raises(HandshakeError) as info:
        check(query, **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value.code, ErrorCode)
    return info.value.code


def test_new_handshakes_pass() -> None:
    assert check({"EIO": "4", "transport": "polling"}) is None
    assert check({"EIO": "4", "transport": "websocket"}, upgrade=True) is None
    assert check({"EIO": "4", "transport": "polling", "t": "x"}, origin="https://a.example") is None


def test_session_requests_return_their_sid() -> None:
    assert check({"EIO": "4", "transport": "polling", "sid": "pollsid"}) == "pollsid"
    assert check({"EIO": "4", "transport": "polling", "sid": "pollsid"}, method="POST") == "pollsid"
    # the upgrade from polling to websocket
    assert (
        check({"EIO": "4", "transport": "websocket", "sid": "pollsid"}, upgrade=True) == "pollsid"
    )
    assert check({"EIO": "4", "transport": "websocket", "sid": "wssid"}, upgrade=True) == "wssid"


def test_empty_sid_is_a_new_handshake() -> None:
    assert check({"EIO": "4", "transport": "polling", "sid": ""}) is None


@pytest.mark.parametrize(
    "query",
    [
        {"EIO": "4"},
        {"EIO": "4", "transport": ""},
        {"EIO": "4", "transport": "flashsocket"},
        {"EIO": "4", "transport": "POLLING"},
        {"EIO": "4", "transport": "__proto__"},
        {"EIO": "4", "transport": "webtransport"},
    ],
)
def test_unknown_transport(query: dict[str, str]) -> None:
    transports = (*BOTH, "webtransport")
    assert code_of(query, transports=transports) is ErrorCode.UNKNOWN_TRANSPORT


def test_disabled_transport_is_unknown() -> None:
    query = {"EIO": "4", "transport": "polling"}
    assert code_of(query, transports=("websocket",)) is ErrorCode.UNKNOWN_TRANSPORT


@pytest.mark.parametrize(
    "origin", ["http://a\x00", "\n", "http://a\r\nX: y", "a\x7f", "\u0100", "😀"]
)
def test_invalid_origin_characters(origin: str) -> None:
    assert code_of({"EIO": "4", "transport": "polling"}, origin=origin) is ErrorCode.BAD_REQUEST


@pytest.mark.parametrize(
    "origin", ["", "null", "http://a\tb", "http://caf\xe9.example", "\x80\xff"]
)
def test_valid_origin_characters(origin: str) -> None:
    assert check({"EIO": "4", "transport": "polling"}, origin=origin) is None


def test_unknown_sid() -> None:
    query = {"EIO": "4", "transport": "polling", "sid": "nope"}
    assert code_of(query) is ErrorCode.UNKNOWN_SID
    assert code_of(query, upgrade=True) is ErrorCode.UNKNOWN_SID


def test_other_transport_without_upgrade() -> None:
    query = {"EIO": "4", "transport": "websocket", "sid": "pollsid"}
    assert code_of(query) is ErrorCode.BAD_REQUEST
    # back to polling once upgraded
    assert code_of({"EIO": "4", "transport": "polling", "sid": "wssid"}) is ErrorCode.BAD_REQUEST


@pytest.mark.parametrize("eio", [None, "3", "5", "", "04"])
def test_session_request_with_other_protocol_version(eio: str | None) -> None:
    query = {"transport": "polling", "sid": "pollsid"}
    if eio is not None:
        query["EIO"] = eio
    assert code_of(query) is ErrorCode.BAD_REQUEST


@pytest.mark.parametrize("method", ["POST", "PUT", "OPTIONS", "get"])
def test_handshake_must_be_get(method: str) -> None:
    query = {"EIO": "4", "transport": "polling"}
    assert code_of(query, method=method) is ErrorCode.BAD_HANDSHAKE_METHOD


def test_websocket_handshake_without_upgrade() -> None:
    assert code_of({"EIO": "4", "transport": "websocket"}) is ErrorCode.BAD_REQUEST


@pytest.mark.parametrize("eio", [None, "3", "5", "", " 4"])
def test_unsupported_protocol_version(eio: str | None) -> None:
    query = {"transport": "polling"}
    if eio is not None:
        query["EIO"] = eio
    assert code_of(query) is ErrorCode.UNSUPPORTED_PROTOCOL_VERSION


# Each case breaks two rules; the first one in Node's order decides the code.
ORDER: list[tuple[dict[str, str], dict[str, object], ErrorCode]] = [
    ({"EIO": "3", "transport": "tcp"}, {}, ErrorCode.UNKNOWN_TRANSPORT),
    ({"EIO": "4", "transport": "tcp"}, {"origin": "\n"}, ErrorCode.UNKNOWN_TRANSPORT),
    ({"EIO": "4", "transport": "tcp", "sid": "nope"}, {}, ErrorCode.UNKNOWN_TRANSPORT),
    ({"EIO": "4", "transport": "tcp"}, {"method": "POST"}, ErrorCode.UNKNOWN_TRANSPORT),
    ({"EIO": "4", "transport": "polling", "sid": "nope"}, {"origin": "\n"}, ErrorCode.BAD_REQUEST),
    ({"EIO": "3", "transport": "polling"}, {"origin": "\n"}, ErrorCode.BAD_REQUEST),
    ({"EIO": "4", "transport": "polling"}, {"origin": "\n", "method": "POST"},
     ErrorCode.BAD_REQUEST),
    ({"EIO": "3", "transport": "polling", "sid": "nope"}, {}, ErrorCode.UNKNOWN_SID),
    ({"EIO": "3", "transport": "websocket", "sid": "pollsid"}, {}, ErrorCode.BAD_REQUEST),
    ({"EIO": "3", "transport": "polling"}, {"method": "POST"}, ErrorCode.BAD_HANDSHAKE_METHOD),
    ({"EIO": "4", "transport": "websocket"}, {"method": "POST"}, ErrorCode.BAD_HANDSHAKE_METHOD),
    ({"EIO": "3", "transport": "websocket"}, {}, ErrorCode.BAD_REQUEST),
    # a session request is never a handshake: no method check, no code 5
    ({"EIO": "3", "transport": "polling", "sid": "pollsid"}, {"method": "POST"},
     ErrorCode.BAD_REQUEST),
]  # fmt: skip


@pytest.mark.parametrize(("query", "kwargs", "expected"), ORDER)
def test_order_of_checks(
    query: dict[str, str], kwargs: dict[str, object], expected: ErrorCode
) -> None:
    assert code_of(query, **kwargs) is expected


def test_session_lookup_only_for_sid_requests() -> None:
    seen: list[str] = []

    def lookup(sid: str) -> str | None:
        seen.append(sid)
        return "polling"

    def run(query: dict[str, str]) -> str | None:
        return check_request(
            method="GET", query=query, upgrade=False, transports=BOTH, session_transport=lookup
        )

    assert run({"EIO": "4", "transport": "polling"}) is None
    assert seen == []
    assert run({"EIO": "4", "transport": "polling", "sid": "abc"}) == "abc"
    assert seen == ["abc"]
    with pytest.raises(HandshakeError):
        run({"EIO": "4", "transport": "bogus", "sid": "abc"})
    assert seen == ["abc"]


# --- OPEN packet ---


def test_open_packet_matches_the_spec_example() -> None:
    packet = open_packet(
        "lv_VI97HAXpY6yYWAAAC",
        upgrades=["websocket"],
        ping_interval_ms=25000,
        ping_timeout_ms=20000,
        max_payload=1000000,
    )
    assert packet.type is PacketType.OPEN
    assert encode_packet(packet) == (
        '0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],'
        '"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
    )


def test_open_packet_without_upgrades() -> None:
    packet = open_packet("s", upgrades=(), ping_interval_ms=1, ping_timeout_ms=2, max_payload=3)
    assert packet == Packet(
        PacketType.OPEN,
        '{"sid":"s","upgrades":[],"pingInterval":1,"pingTimeout":2,"maxPayload":3}',
    )
    assert list(orjson.loads(packet.data)) == [
        "sid",
        "upgrades",
        "pingInterval",
        "pingTimeout",
        "maxPayload",
    ]
