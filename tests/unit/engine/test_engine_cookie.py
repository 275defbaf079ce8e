"""The session cookie: its header, its validation, and where the engine sets it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from engine_fakes import App

from sockjet.engine.cookie import SessionCookie
from sockjet.engine.io import HTTPRequest, HTTPResponse
from sockjet.engine.server import EngineServer


def get(sid: str | None = None) -> HTTPRequest:
    query = {"EIO": "4", "transport": "polling"}
    if sid is not None:
        query["sid"] = sid
    return HTTPRequest(method="GET", path="/socket.io/", query=query, headers={"host": "x"})


def cookies(response: HTTPResponse) -> list[str]:
    return [v for k, v in response.headers if k.lower() == "set-cookie"]


def test_default_header_is_nodes_default() -> None:
    assert SessionCookie().header("abc") == ("Set-Cookie", "io=abc; Path=/; HttpOnly; SameSite=Lax")


def test_every_attribute() -> None:
    cookie = SessionCookie(
        name="lb",
        path=None,
        http_only=False,
        same_site="None",
        secure=True,
        domain="example.com",
        max_age=3600,
    )
    assert cookie.header("s1") == (
        "Set-Cookie",
        "lb=s1; Domain=example.com; Max-Age=3600; Secure; SameSite=None",
    )
    assert SessionCookie(same_site=None, http_only=False).header("s") == (
        "Set-Cookie",
        "io=s; Path=/",
    )


@pytest.mark.parametrize(
    "options",
    [
        {"name": ""},
        {"name": "a b"},
        {"name": "a;b"},
        {"name": "a=b"},
        {"path": "/x; Secure"},
        {"domain": "a\r\nSet-Cookie: x=1"},
        {"same_site": "lax"},
        {"max_age": -1},
    ],
)
def test_header_injection_and_bad_values_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SessionCookie(**options)


async def test_set_on_the_polling_handshake_only() -> None:
    engine = EngineServer(App(), cookie=SessionCookie())
    try:
        response = await engine.handle_request(get())
        sid = json.loads(response.body.decode().split("\x1e")[0][1:])["sid"]
        assert cookies(response) == [f"io={sid}; Path=/; HttpOnly; SameSite=Lax"]
        post = HTTPRequest(
            method="POST",
            path="/socket.io/",
            query={"EIO": "4", "transport": "polling", "sid": sid},
            headers={"host": "x", "content-type": "text/plain"},
            body=b"4hi",
        )
        assert cookies(await engine.handle_request(post)) == []
    finally:
        await engine.close(grace=0)


async def test_none_without_the_option() -> None:
    engine = EngineServer(App())
    try:
        assert cookies(await engine.handle_request(get())) == []
    finally:
        await engine.close(grace=0)
