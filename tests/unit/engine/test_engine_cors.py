"""CORS headers and the Origin check, on polling requests, preflights and WebSocket upgrades."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sockjet.engine.cors import CorsOptions, CorsPolicy, is_same_origin
from sockjet.engine.io import EngineSocket, HTTPRequest, HTTPResponse
from sockjet.engine.server import EngineServer

SITE = "http://app.example:5173"
EVIL = "https://evil.example"


class Handler:
    def __init__(self, socket: EngineSocket) -> None:
        self.socket = socket

    def on_message(self, data: str | bytes) -> None:
        pass

    def on_close(self, reason: str) -> None:
        pass


def request(
    method: str = "GET",
    *,
    origin: str | None = None,
    transport: str = "polling",
    host: str = "localhost:8000",
    **headers: str,
) -> HTTPRequest:
    all_headers = {"host": host, **{k.replace("_", "-"): v for k, v in headers.items()}}
    if origin is not None:
        all_headers["origin"] = origin
    return HTTPRequest(
        method=method,
        path="/socket.io/",
        query={"EIO": "4", "transport": transport},
        headers=all_headers,
    )


def headers_of(response: HTTPResponse) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for name, value in response.headers:
        result.setdefault(name.lower(), []).append(value)
    return result


def assert_forbidden(response: HTTPResponse | None) -> None:
    assert response is not None
    assert response.status == 403
    assert json.loads(response.body) == {"code": 4, "message": "Forbidden"}
    assert not any(k.lower().startswith("access-control") for k, _ in response.headers)


async def close(server: EngineServer) -> None:
    await server.close(grace=0)
    assert server.clients_count == 0


# -- the policy ---------------------------------------------------------------------------------


async def test_closed_policy() -> None:
    policy = CorsPolicy(None)
    assert not policy.enabled
    assert await policy.check(request()) == []
    assert await policy.check(request(origin="http://localhost:8000")) == []
    assert await policy.check(request(origin=EVIL)) is None
    assert policy.preflight(request("OPTIONS"), []) == []


async def test_any_origin_without_credentials() -> None:
    policy = CorsPolicy(CorsOptions("*"))
    assert await policy.check(request(origin=EVIL)) == [("Access-Control-Allow-Origin", "*")]


async def test_any_origin_with_credentials_reflects_the_origin() -> None:
    policy = CorsPolicy(CorsOptions("*", credentials=True))
    assert await policy.check(request(origin=EVIL)) == [
        ("Access-Control-Allow-Origin", EVIL),
        ("Vary", "Origin"),
        ("Access-Control-Allow-Credentials", "true"),
    ]


@pytest.mark.parametrize("origins", [SITE, [SITE, "http://other.example"], (SITE,)])
async def test_listed_origins(origins: Any) -> None:
    policy = CorsPolicy(CorsOptions(origins, credentials=True, exposed_headers=["X-A", "X-B"]))
    assert await policy.check(request(origin=SITE)) == [
        ("Access-Control-Allow-Origin", SITE),
        ("Vary", "Origin"),
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Expose-Headers", "X-A,X-B"),
    ]
    # never reflected with credentials unless allowed
    assert await policy.check(request(origin=EVIL)) is None
    assert await policy.check(request(origin="null")) is None
    # same origin and no origin still pass, without CORS headers
    assert await policy.check(request(origin="http://localhost:8000")) == []
    assert await policy.check(request()) == []


async def test_callable_origins_sync_and_async() -> None:
    def sync(origin: str) -> bool:
        return origin.endswith(".example:5173")

    async def asynchronous(origin: str) -> bool:
        return origin == SITE

    for predicate in (sync, asynchronous):
        policy = CorsPolicy(CorsOptions(predicate))
        assert (await policy.check(request(origin=SITE)))[0] == (
            "Access-Control-Allow-Origin",
            SITE,
        )
        assert await policy.check(request(origin=EVIL)) is None
        assert policy.calls_application  # so the engine bounds the check by hook_timeout


def test_only_a_predicate_calls_the_application() -> None:
    assert not CorsPolicy(None).calls_application
    assert not CorsPolicy(CorsOptions("*")).calls_application
    assert not CorsPolicy(CorsOptions([SITE])).calls_application


async def test_preflight_headers() -> None:
    policy = CorsPolicy(CorsOptions([SITE], max_age=600))
    req = request("OPTIONS", origin=SITE, access_control_request_headers="x-token, content-type")
    headers = await policy.check(req)
    assert headers is not None
    assert policy.preflight(req, headers) == [
        ("Access-Control-Allow-Origin", SITE),
        ("Vary", "Origin"),
        ("Access-Control-Allow-Methods", "GET,POST"),
        ("Vary", "Access-Control-Request-Headers"),
        ("Access-Control-Allow-Headers", "x-token, content-type"),
        ("Access-Control-Max-Age", "600"),
    ]
    bare = request("OPTIONS", origin=SITE)
    assert ("Access-Control-Allow-Headers", "") not in policy.preflight(bare, headers)
    fixed = CorsPolicy(CorsOptions("*", methods=["GET"], allowed_headers=["x-token"]))
    assert fixed.preflight(req, [("Access-Control-Allow-Origin", "*")]) == [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Methods", "GET"),
        ("Access-Control-Allow-Headers", "x-token"),
    ]
    none = CorsPolicy(CorsOptions("*", allowed_headers=[]))
    assert none.preflight(req, [("Access-Control-Allow-Origin", "*")]) == [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Methods", "GET,POST"),
    ]
    # a same-origin preflight gets nothing to grant
    assert policy.preflight(req, []) == []


@pytest.mark.parametrize(
    ("origin", "headers", "same"),
    [
        ("http://localhost:8000", {"host": "localhost:8000"}, True),
        ("http://LOCALHOST:8000", {"host": "localhost:8000"}, True),
        ("https://example.com", {"host": "example.com"}, True),
        ("https://example.com", {"host": "example.com:443"}, True),
        ("http://example.com:80", {"host": "example.com"}, True),
        ("http://[::1]:8000", {"host": "[::1]:8000"}, True),
        ("http://[::1]", {"host": "[::1]"}, True),
        (
            "https://example.com",
            {"host": "127.0.0.1:5000", "x-forwarded-host": "example.com"},
            True,
        ),
        (
            "https://example.com",
            {"host": "127.0.0.1:5000", "x-forwarded-host": "example.com, proxy.internal"},
            True,
        ),
        ("https://evil.com", {"host": "127.0.0.1:5000", "x-forwarded-host": "example.com"}, False),
        ("http://localhost:8001", {"host": "localhost:8000"}, False),
        ("http://localhost:8000", {}, False),
        ("null", {"host": "localhost:8000"}, False),
        ("localhost:8000", {"host": "localhost:8000"}, False),
        ("http://[::1", {"host": "[::1"}, False),
    ],
)
def test_same_origin(origin: str, headers: dict[str, str], same: bool) -> None:
    req = HTTPRequest("GET", "/socket.io/", {}, headers)
    assert is_same_origin(origin, req) is same


# -- on the server ------------------------------------------------------------------------------


async def test_closed_cors_sends_no_headers_and_refuses_other_origins() -> None:
    server = EngineServer(Handler)
    same = await server.handle_request(request(origin="http://localhost:8000"))
    assert same.status == 200
    assert not any(k.lower().startswith("access-control") for k, _ in same.headers)
    assert (await server.handle_request(request())).status == 200
    assert_forbidden(await server.handle_request(request(origin=EVIL)))
    # cross-site WebSocket hijacking: refused on the upgrade itself
    assert_forbidden(await server.check_websocket(request(origin=EVIL, transport="websocket")))
    assert (
        await server.check_websocket(request(origin="http://localhost:8000", transport="websocket"))
        is None
    )
    # no preflight handling when CORS is closed: it is a (bad) handshake
    options = await server.handle_request(request("OPTIONS", origin="http://localhost:8000"))
    assert json.loads(options.body)["code"] == 2
    await close(server)


async def test_configured_cors_on_the_server() -> None:
    server = EngineServer(Handler, cors=CorsOptions([SITE], credentials=True))
    preflight = await server.handle_request(
        request("OPTIONS", origin=SITE, access_control_request_headers="content-type")
    )
    assert preflight.status == 204
    assert preflight.body == b""
    headers = headers_of(preflight)
    assert headers["access-control-allow-origin"] == [SITE]
    assert headers["access-control-allow-credentials"] == ["true"]
    assert headers["access-control-allow-methods"] == ["GET,POST"]
    assert headers["access-control-allow-headers"] == ["content-type"]
    assert server.clients_count == 0

    handshake = await server.handle_request(request(origin=SITE))
    assert handshake.status == 200
    assert headers_of(handshake)["access-control-allow-origin"] == [SITE]
    sid = json.loads(handshake.body[1:])["sid"]
    post = HTTPRequest(
        "POST",
        "/socket.io/",
        {"EIO": "4", "transport": "polling", "sid": sid},
        {"origin": SITE, "content-type": "text/plain"},
        b"6",
    )
    answered = await server.handle_request(post)
    assert answered.body == b"ok"
    assert headers_of(answered)["access-control-allow-origin"] == [SITE]
    # errors carry the CORS headers too, so the page can read them
    error = await server.handle_request(request(origin=SITE, transport="nope"))
    assert error.status == 400
    assert headers_of(error)["access-control-allow-origin"] == [SITE]

    assert_forbidden(await server.handle_request(request(origin=EVIL)))
    assert_forbidden(await server.handle_request(request("OPTIONS", origin=EVIL)))
    assert_forbidden(await server.check_websocket(request(origin=EVIL, transport="websocket")))
    assert await server.check_websocket(request(origin=SITE, transport="websocket")) is None
    await close(server)


async def test_invalid_origin_characters_are_a_bad_request() -> None:
    server = EngineServer(Handler, cors=CorsOptions("*"))
    response = await server.handle_request(request(origin="http://a.example\x01"))
    assert response.status == 400
    assert json.loads(response.body) == {"code": 3, "message": "Bad request"}
    await close(server)


async def test_session_closed_while_the_origin_check_awaited() -> None:
    sockets: list[EngineSocket] = []

    def on_connection(socket: EngineSocket) -> Handler:
        sockets.append(socket)
        return Handler(socket)

    async def origins(origin: str) -> bool:
        # the session closes while this request is being checked
        for socket in sockets:
            socket.close()
        return True

    server = EngineServer(on_connection, cors=CorsOptions(origins), close_timeout=5)
    handshake = await server.handle_request(request())  # no Origin: not checked
    sid = json.loads(handshake.body[1:])["sid"]
    get = HTTPRequest(
        "GET",
        "/socket.io/",
        {"EIO": "4", "transport": "polling", "sid": sid},
        {"origin": SITE, "host": "localhost:8000"},
    )
    # the close drains with this very GET
    response = await server.handle_request(get)
    assert response.body == b"1"
    assert server.clients_count == 0
    again = await server.handle_request(get)
    assert json.loads(again.body)["code"] == 1
    await close(server)
