"""The chat end to end in a real headless Chromium: two people chat, see each other typing, get
the history back after a reload, and the page recovers on its own when the server restarts.

The test also takes the screenshot in docs/chat.png: set SOCKJET_UPDATE_SCREENSHOT=1 to
refresh it (it is written when missing, and otherwise only to the test's temporary directory,
so that running the tests leaves the work tree clean).
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from chat_peers import ROOT, WEB_DIST, ChatProcess, chromium_available, free_port, launch_chromium

pytestmark = [
    pytest.mark.skipif(not chromium_available(), reason="Chromium or Playwright is missing"),
    pytest.mark.skipif(
        not (WEB_DIST / "index.html").exists(),
        reason="the chat front end is not built (./dev test builds it)",
    ),
]

SCREENSHOT = ROOT / "docs" / "chat.png"
TIMEOUT_MS = 10_000


async def sign_in(page: Any, url: str, name: str, room: str) -> None:
    await page.goto(url)
    await page.get_by_test_id("name-input").fill(name)
    await page.get_by_test_id("name-submit").click()
    await page.get_by_test_id("room-input").fill(room)
    await page.get_by_test_id("join-button").click()


# Waits in the page, checked on every animation frame (expect() backs off up to a second).
LAST_TEXT = """text => {
    const all = document.querySelectorAll("[data-testid=message-text]");
    return all.length > 0 && all[all.length - 1].textContent === text;
}"""
BOX_EMPTY = "() => document.querySelector('[data-testid=message-input]').value === ''"


async def say(page: Any, text: str) -> None:
    await page.get_by_test_id("message-input").fill(text)
    await page.get_by_test_id("send-button").click()
    await page.wait_for_function(BOX_EMPTY)  # cleared once the server acknowledged it


async def last_message(page: Any, text: str) -> None:
    await page.wait_for_function(LAST_TEXT, arg=text)


def expect(target: Any) -> Any:
    from playwright.async_api import expect as playwright_expect

    return playwright_expect(target)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_two_people_chat_in_chromium(tmp_path: Path) -> None:
    from playwright.async_api import expect as playwright_expect

    playwright_expect.set_options(timeout=TIMEOUT_MS)
    chat = ChatProcess(free_port(), f"sqlite:///{tmp_path}/chat.db", "--web", str(WEB_DIST))
    await chat.start()
    try:
        async with launch_chromium(viewport={"width": 1100, "height": 640}) as browser:
            browser.set_default_timeout(TIMEOUT_MS)
            outside: list[str] = []
            problems: list[str] = []
            browser.on(
                "request",
                lambda r: None if r.url.startswith((chat.url, "data:")) else outside.append(r.url),
            )
            ann, bob = await browser.new_page(), await browser.new_page()
            for page in (ann, bob):
                page.on("pageerror", lambda exc: problems.append(str(exc)))
            await sign_in(ann, chat.url, "Ann", "general")
            await expect(ann.get_by_test_id("status")).to_have_text("connected")
            await sign_in(bob, chat.url, "Bob", "general")

            # Presence and the join notice.
            await expect(ann.get_by_test_id("online-user")).to_have_count(2)
            await expect(ann.get_by_test_id("online")).to_contain_text("Bob")
            await expect(ann.get_by_test_id("system-line").last).to_have_text("Bob joined the chat")

            # Messages both ways.
            await say(ann, "Hi Bob! The chat runs on sockjet now.")
            await last_message(bob, "Hi Bob! The chat runs on sockjet now.")
            await say(bob, "Nice: React in front, history in SQLite.")
            await last_message(ann, "Nice: React in front, history in SQLite.")
            await say(bob, "And it comes back by itself when the server restarts.")
            await last_message(ann, "And it comes back by itself when the server restarts.")

            # The typing indicator.
            await say(ann, "Let me reload to check the history…")
            await bob.get_by_test_id("message-input").press_sequentially("See you", delay=20)
            await expect(ann.get_by_test_id("typing")).to_have_text("Bob is typing…")
            shot = tmp_path / "chat.png"
            await ann.screenshot(path=str(shot))
            assert png_size(shot) == (1100, 640)
            if os.environ.get("SOCKJET_UPDATE_SCREENSHOT") or not SCREENSHOT.exists():
                shutil.copyfile(shot, SCREENSHOT)
            await expect(ann.get_by_test_id("typing")).to_have_text("")  # the notice expires

            # What people type is text, never HTML.
            payload = '<img src=x onerror="window.pwned=1"> <b>bold?</b>'
            await say(bob, payload)
            await last_message(ann, payload)
            assert (
                await ann.locator("[data-testid=messages] img, [data-testid=messages] b").count()
                == 0
            )
            assert await ann.evaluate("window.pwned") is None

            # The page does not cap messages itself: the server's limit (--max-message-chars)
            # applies, its refusal is shown and the text stays in the box.
            box = ann.get_by_test_id("message-input")
            await box.fill("x" * 2001)
            await ann.get_by_test_id("send-button").click()
            await expect(ann.get_by_test_id("error")).to_contain_text(
                "message is longer than 2000 characters"
            )
            await expect(box).to_have_value("x" * 2001)
            await box.fill("")
            await ann.get_by_role("button", name="dismiss").click()
            await expect(ann.get_by_test_id("error")).to_have_count(0)

            # A reload brings the history back (name and room are kept by the tab).
            sent = await ann.get_by_test_id("message").count()
            assert sent == 5
            await bob.reload()
            await expect(bob.get_by_test_id("status")).to_have_text("connected")
            await expect(bob.get_by_test_id("message")).to_have_count(sent)
            await expect(bob.get_by_test_id("message-text").first).to_have_text(
                "Hi Bob! The chat runs on sockjet now."
            )

            # The server restarts: both pages see it, reconnect by themselves, and carry on.
            assert await chat.stop() == 0
            await expect(ann.get_by_test_id("status")).to_have_attribute(
                "data-status", "reconnecting"
            )
            await chat.start()
            for page in (ann, bob):
                await expect(page.get_by_test_id("status")).to_have_text("connected")
            await expect(ann.get_by_test_id("send-button")).to_be_disabled()  # empty box
            await say(ann, "Back after the restart")
            await last_message(bob, "Back after the restart")
            await expect(bob.get_by_test_id("message")).to_have_count(sent + 1)  # none doubled

            # Someone new gets the whole history from the restarted server.
            cy = await browser.new_page()
            await sign_in(cy, chat.url, "Cy", "general")
            await expect(cy.get_by_test_id("message")).to_have_count(sent + 1)
            await expect(cy.get_by_test_id("online-user")).to_have_count(3)

            # Switching rooms, then leaving.
            await cy.get_by_role("button", name="# random").click()
            await expect(cy.get_by_test_id("room-title")).to_have_text("# random")
            await expect(ann.get_by_test_id("system-line").last).to_have_text("Cy left the chat")
            await expect(ann.get_by_test_id("online-user")).to_have_count(2)
            await expect(cy.get_by_test_id("online-user")).to_have_count(1)
            await say(cy, "Anyone in random?")
            await expect(cy.get_by_test_id("message")).to_have_count(1)
            await cy.get_by_test_id("leave-button").click()
            await expect(cy.get_by_test_id("room-title")).to_have_text("no room")
            await say(ann, "general only")
            await last_message(bob, "general only")
            assert await cy.get_by_test_id("message").count() == 0

            assert problems == []
            assert outside == []  # the page loads nothing from anywhere else
    finally:
        await chat.stop()
