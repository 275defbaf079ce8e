"""The official Socket.IO Admin UI (the built page of the npm package ``@socket.io/admin-ui``)
in a real headless Chromium, against an instrumented sockjet server: a refused login, a login,
the dashboard, the sockets, rooms and events pages, and the "disconnect" button.

Everything is asserted on what the page shows (text, rows), never on sockjet's internals: the
test guards that the official UI keeps working whatever the admin namespace is built on.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from chat_peers import chromium_available, launch_chromium
from peers import NodePuppet, Serve

from sockjet import Server, Socket

pytestmark = [
    pytest.mark.node,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not chromium_available(), reason="Chromium or Playwright is missing"),
]

UI_DIST = Path(__file__).resolve().parents[1] / "js/node_modules/@socket.io/admin-ui/ui/dist"
USERNAME = "admin"
PASSWORD = "s3cret-admin"
HASHED = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
TIMEOUT_MS = 10_000
# The page links two stylesheets on CDNs (Roboto, Material Design Icons): nothing the test needs,
# so they are refused at once rather than left to the network (none in CI).
OUTSIDE = re.compile(r"^https?://(?!127\.0\.0\.1[:/])")


@contextlib.asynccontextmanager
async def serve_ui() -> AsyncIterator[str]:
    """The UI's static files on a free port of their own: another origin than the server's,
    as when the UI is hosted apart (admin.socket.io). Its router uses the URL's hash, so the
    page is ``/`` and its assets are relative paths."""
    from aiohttp import web

    async def index(_: web.Request) -> web.FileResponse:
        return web.FileResponse(UI_DIST / "index.html")

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_static("/", UI_DIST)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def expect(target: Any) -> Any:
    from playwright.async_api import expect as playwright_expect

    return playwright_expect(target)


def row(table: Any, key: str) -> Any:
    """The row of ``table`` that has a cell reading exactly ``key``."""
    return table.locator("tr").filter(has=table.page.get_by_role("cell", name=key, exact=True))


async def cells(row: Any, *texts: str | re.Pattern[str]) -> None:
    """Wait until the cells of ``row`` read ``texts`` (whitespace normalized)."""
    await expect(row.locator("td")).to_have_text(list(texts))


async def refuse(route: Any) -> None:
    await route.abort()


ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.mark.skipif(
    not (UI_DIST / "index.html").exists(),
    reason="@socket.io/admin-ui is not installed in tests/js (./dev setup)",
)
async def test_admin_ui_in_chromium(puppet: NodePuppet, serve: Serve) -> None:
    from playwright.async_api import expect as playwright_expect

    playwright_expect.set_options(timeout=TIMEOUT_MS)
    async with serve_ui() as ui_url:
        # The UI is a page of another origin whose client sends credentials: CORS lets it in.
        io = Server(cors_origins=[ui_url], cors_credentials=True)
        io.instrument(
            auth={"type": "basic", "username": USERNAME, "password": HASHED},
            server_id="sockjet-ui-test",
            stats_interval=0.25,  # the dashboard's figures come with each server_stats
        )
        gone: asyncio.Queue[tuple[str, str]] = asyncio.Queue()  # (socket id, reason)

        @io.on("enter")
        def enter(socket: Socket, room: str) -> str:
            socket.join(room)
            return "entered"

        @io.on("disconnect")
        def left(socket: Socket, reason: str) -> None:
            gone.put_nowait((socket.id, reason))

        url = await serve(io)
        ann = await puppet.connect(url, transports=["websocket"])
        bob = await puppet.connect(url, transports=["polling"])
        cy = await puppet.connect(url, transports=["websocket"])
        for client, room in ((ann, "lobby"), (bob, "lobby"), (cy, "games")):
            assert await client.emit_with_ack("enter", room) == ["entered"]

        async with launch_chromium(viewport={"width": 1400, "height": 900}) as browser:
            browser.set_default_timeout(TIMEOUT_MS)
            await browser.route(OUTSIDE, refuse)
            page = await browser.new_page()
            problems: list[str] = []  # exceptions and errors in the page
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on(
                "console",
                lambda m: (
                    problems.append(m.text)
                    if m.type == "error" and not m.text.startswith("Failed to load resource")
                    else None
                ),
            )
            failed: list[str] = []  # requests that got no response
            page.on("requestfailed", lambda r: failed.append(r.url))

            # The page's parts (the selectors come from the package's sources, in the source
            # map of ui/dist/js/app.*.js: App.vue, ConnectionModal.vue, AppBar.vue...).
            main = page.locator("main")
            rows = main.locator("tbody tr >> visible=true")  # not those of a page leaving
            nav = page.locator("nav")  # the navigation drawer, open on a wide screen
            dialog = page.locator(".v-dialog")  # the connection form (Vuetify's role "document")
            # The app bar has a wide and a narrow layout, one of them hidden.
            status = page.locator("header >> text=/^(dis)?connected$/ >> visible=true")

            # A wrong password: the form says so and stays, and no socket shows.
            await page.goto(ui_url)
            await expect(dialog.get_by_text("Connection")).to_be_visible()
            await dialog.get_by_label("Server URL").fill(url)
            await dialog.get_by_label("Username").fill(USERNAME)
            await dialog.get_by_label("Password").fill("wrong password")
            await dialog.get_by_role("button", name="Connect").click()
            await expect(dialog.get_by_text("Invalid credentials")).to_be_visible()
            await expect(status).to_have_text("disconnected")
            await page.goto(f"{ui_url}/#/sockets")  # the socket list, behind the form
            await expect(rows).to_have_text(["No data available"])

            # The right password: in, and the sockets are there.
            await dialog.get_by_label("Password").fill(PASSWORD)
            await dialog.get_by_role("button", name="Connect").click()
            await expect(dialog).to_be_hidden()
            await expect(status).to_have_text("connected")
            await expect(page.locator("header code >> visible=true")).to_have_text(url)
            await expect(rows).to_have_count(3)

            # The dashboard: sockets per namespace, clients per transport (the UI's own
            # included, once upgraded to WebSocket), one healthy server.
            await nav.get_by_role("link", name="Dashboard").click()
            namespaces = main.locator(".v-card").filter(has_text="Namespaces")
            await cells(row(namespaces, "/"), "/", "3")
            await cells(row(namespaces, "/admin"), "/admin", "1")
            clients = main.locator(".v-card").filter(has_text="Clients")
            await expect(row(clients, "WebSocket").locator("h2")).to_have_text("3")
            await expect(row(clients, "HTTP long-polling").locator("h2")).to_have_text("1")
            servers = main.locator(".v-card").filter(has_text="Servers")
            await expect(row(servers, "Healthy").locator("h2")).to_have_text("1")
            await expect(row(servers, "Unhealthy").locator("h2")).to_have_text("0")
            await nav.get_by_role("link", name="Servers").click()
            await expect(rows).to_have_count(1)
            await expect(rows).to_contain_text("sockjet-ui-test")
            await expect(rows).to_contain_text("Healthy")

            # Someone comes while the UI watches.
            dan = await puppet.connect(url, transports=["websocket"])
            assert await dan.emit_with_ack("enter", "games") == ["entered"]

            # The sockets page: every socket of "/", with its address and transport.
            await nav.get_by_role("link", name="Sockets").click()
            await expect(rows).to_have_count(4)
            for client, transport in (
                (ann, "WebSocket"),
                (bob, "HTTP long-polling"),
                (cy, "WebSocket"),
                (dan, "WebSocket"),
            ):
                await cells(row(main, client.id), client.id, "127.0.0.1", transport, "")

            # The rooms page: the public rooms and their number of sockets, by name.
            await nav.get_by_role("link", name="Rooms").click()
            await expect(rows).to_have_count(2)
            await cells(rows.nth(0), "games", "Public", "2", "")
            await cells(rows.nth(1), "lobby", "Public", "2", "")

            # A socket's own page.
            await nav.get_by_role("link", name="Sockets").click()
            await row(main, ann.id).click()
            socket_table = main.locator(".v-data-table").filter(has_text="Creation date")
            await cells(row(socket_table, "ID"), "ID", ann.id, "")
            await cells(row(socket_table, "Namespace"), "Namespace", "/", "")
            await cells(row(socket_table, "Status"), "Status", "connected", "")
            created = row(socket_table, "Creation date").locator("td").nth(1)
            await expect(created).to_have_text(ISO_TIME)
            shown = datetime.fromisoformat((await created.inner_text()).strip())
            assert abs(shown - datetime.now(UTC)) < timedelta(minutes=5)
            rooms_card = main.locator(".v-card").filter(has_text="Join a room")
            await expect(row(rooms_card, "lobby")).to_have_count(1)

            # Its "disconnect" button (the one of the socket, not the one of its client).
            disconnect = row(socket_table, "Status").get_by_role("button")
            await disconnect.hover()
            await expect(page.get_by_text("Disconnect this Socket instance")).to_be_visible()
            await disconnect.click()

            # The server really disconnected it, and the client was told so.
            reason = await asyncio.wait_for(gone.get(), TIMEOUT_MS / 1000)
            assert reason == (ann.id, "server namespace disconnect")
            assert await ann.wait_disconnect() == "io server disconnect"
            await cells(row(socket_table, "Status"), "Status", "disconnected", "")
            await expect(disconnect).to_have_count(0)

            # The lists follow.
            await page.locator(".v-breadcrumbs").get_by_role("link", name="Sockets").click()
            await expect(rows).to_have_count(3)
            await expect(row(main, ann.id)).to_have_count(0)
            await nav.get_by_role("link", name="Rooms").click()
            await cells(rows.nth(0), "games", "Public", "2", "")
            await cells(rows.nth(1), "lobby", "Public", "1", "")

            # The events page: what happened while the UI watched.
            await nav.get_by_role("link", name="Events").click()
            theirs = rows.filter(has_text=ann.id)
            await cells(
                theirs.filter(has_text="Disconnection"),
                *(ISO_TIME, ann.id, "Disconnection", "Reason: server namespace disconnect", ""),
            )
            await cells(
                theirs.filter(has_text="Room: lobby"),
                *(ISO_TIME, ann.id, "Room left", "Room: lobby", ""),
            )
            theirs = rows.filter(has_text=dan.id)
            await cells(
                theirs.filter(has=page.get_by_text("Connection", exact=True)),
                *(ISO_TIME, dan.id, "Connection", "", ""),
            )
            await cells(
                theirs.filter(has_text="Room: games"),
                *(ISO_TIME, dan.id, "Room joined", "Room: games", ""),
            )
            received = theirs.filter(has_text="Event received")
            await cells(received, ISO_TIME, dan.id, "Event received", "Event name: enter", "")
            await received.get_by_role("button").click()  # unfolds the arguments
            await expect(rows.filter(has_text="Event arguments")).to_contain_text(
                re.compile(r'Event arguments:\s*\[\s*"games"\s*\]')
            )

            # A reload logs in again with the session id the server gave, without the form.
            await page.goto(f"{ui_url}/#/sockets")
            await page.reload()
            await expect(status).to_have_text("connected")
            await expect(dialog).to_be_hidden()
            await expect(rows).to_have_count(3)
            for client in (bob, cy, dan):
                await expect(row(main, client.id)).to_have_count(1)

            assert gone.empty()  # nobody else was disconnected
            assert problems == []
            assert failed and all(OUTSIDE.match(u) for u in failed)  # only the CDNs'
