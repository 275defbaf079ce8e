"""Static files next to the engine: containment, SPA fallback, types, caching."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from native_client import FakeEngine, client, running

from sockjet.engine.io import HTTPRequest
from sockjet.serving.static import StaticFiles, content_type


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "index.html").write_text("<h1>app</h1>")
    (root / "assets" / "app.js").write_text("console.log(1)")
    (root / "assets" / "logo.svg").write_text("<svg/>")
    (root / "docs" / "index.html").write_text("docs")
    (root / "data.bin").write_bytes(b"\x00" * 10)
    (root / ".env").write_text("SECRET=1")
    (tmp_path / "secret.txt").write_text("outside")
    (root / "escape.txt").symlink_to(tmp_path / "secret.txt")
    (root / "linkdir").symlink_to(tmp_path)
    return root


def get(path: str, method: str = "GET", **headers: str) -> HTTPRequest:
    return HTTPRequest(method=method, path=path, query={}, headers=headers)


async def test_files_index_and_types(site: Path) -> None:
    static = StaticFiles(site)
    index = await static(get("/"))
    assert index is not None and index.status == 200 and index.body == b"<h1>app</h1>"
    assert dict(index.headers)["content-type"] == "text/html; charset=utf-8"
    script = await static(get("/assets/app.js"))
    assert script is not None and dict(script.headers)["content-type"].startswith("text/javascript")
    docs = await static(get("/docs/"))
    assert docs is not None and docs.body == b"docs"
    assert static.root.name == "dist" and static.root.is_absolute()


async def test_spa_fallback_only_for_extensionless_paths(site: Path) -> None:
    static = StaticFiles(site)
    route = await static(get("/chat/room-1"))
    assert route is not None and route.body == b"<h1>app</h1>"
    assert await static(get("/assets/missing.js")) is None


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/.env",
        "/escape.txt",
        "/linkdir/secret.txt",
        "/a\x00b.txt",
        "/..\\secret.txt",
        "/C:/secret.txt",
    ],
)
async def test_nothing_outside_the_root_or_hidden_is_served(site: Path, path: str) -> None:
    response = await StaticFiles(site)(get(path))
    assert response is None or response.body == b"<h1>app</h1>"  # at most the SPA index
    assert response is None or b"outside" not in response.body


async def test_only_get_and_head(site: Path) -> None:
    static = StaticFiles(site)
    assert await static(get("/", "POST")) is None
    head = await static(get("/", "HEAD"))
    assert head is not None and head.status == 200


async def test_etag_revalidation(site: Path) -> None:
    static = StaticFiles(site)
    first = await static(get("/data.bin"))
    assert first is not None
    etag = dict(first.headers)["etag"]
    again = await static(get("/data.bin", **{"if-none-match": f'"x", {etag}'}))
    assert again is not None and again.status == 304 and again.body == b""


async def test_files_over_the_size_cap_are_not_served(site: Path) -> None:
    assert await StaticFiles(site, max_file_size=5)(get("/data.bin")) is None


async def test_unreadable_file_is_not_served(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(self: Path) -> bytes:
        raise PermissionError(str(self))

    monkeypatch.setattr(Path, "read_bytes", fail)
    assert await StaticFiles(site)(get("/data.bin")) is None


def test_static_dir_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        StaticFiles(tmp_path / "nope")


def test_content_types() -> None:
    assert content_type(Path("a.WOFF2")) == "font/woff2"
    assert content_type(Path("a.pdf")) == "application/pdf"
    assert content_type(Path("a.unknownext")) == "application/octet-stream"


async def test_served_next_to_the_engine(site: Path) -> None:
    engine = FakeEngine()
    async with running(engine, static_dir=os.fspath(site)) as server, client(server.port) as c:
        response = await c.get("/")
        assert response.status == 200 and response.body == b"<h1>app</h1>"
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert (await c.get("/socket.io/?EIO=4")).body == b"GET /socket.io/ 0"
        assert (await c.get("/%2e%2e/secret.txt")).status == 404
        assert (await c.get("/assets/..%2f..%2fsecret.txt")).status == 404
        assert (await c.get("/assets/nope.css")).status == 404
        c.send(b"HEAD /assets/logo.svg HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await c.response(head=True)
        assert head.headers["content-type"] == "image/svg+xml"
        assert head.headers["content-length"] == "6"
        assert (await c.get("/assets/app.js")).body == b"console.log(1)"
