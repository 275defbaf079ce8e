"""The chat as ``sockjet chat`` runs it: a Server, a store, the app, and the built front end on
one port."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sockjet.chat.app import ChatApp
from sockjet.chat.stores import open_store
from sockjet.chat.validation import MAX_PAYLOAD
from sockjet.engine.io import HTTPRequest, HTTPResponse
from sockjet.server import AdapterFactory, ConnectionStateRecovery, Server

__all__ = ["ChatService", "find_web_dir"]

logger = logging.getLogger("sockjet.chat")

WEB_BUILD = Path("examples") / "chat" / "web" / "dist"
"""Where the front end's build lands, relative to the repository root."""

_NOT_BUILT = b"""<!doctype html>
<meta charset="utf-8"><title>sockjet chat</title>
<h1>The chat front end is not built</h1>
<p>Run <code>./dev run</code> from the sockjet repository (it builds it), or
<code>npm install &amp;&amp; npm run build</code> in <code>examples/chat/web</code>, then reload.
Socket.IO clients can connect already.</p>
"""


def find_web_dir() -> Path | None:
    """The built front end: under the current directory, else under the source checkout this
    package runs from (an editable install); None when it is not built."""
    checkout = Path(__file__).resolve().parents[3]
    for root in (Path.cwd(), checkout):
        candidate = root / WEB_BUILD
        if (candidate / "index.html").is_file():
            return candidate
    return None


async def _not_built(request: HTTPRequest) -> HTTPResponse:
    return HTTPResponse(503, [("content-type", "text/html; charset=utf-8")], _NOT_BUILT)


class ChatService:
    """Everything ``sockjet chat`` serves, built from its options.

    ``app_options`` go to :class:`~sockjet.chat.app.ChatApp` (``max_message_chars``...); the
    server accepts packets of :data:`~sockjet.chat.validation.MAX_PAYLOAD` bytes.
    ``connection_state_recovery`` as in :class:`~sockjet.Server` (across a cluster it needs the
    Redis Streams adapter).

    ``await serve(host, port)`` opens the database (raising
    :class:`~sockjet.chat.store.StoreError` when it cannot) and starts serving; ``await
    close()`` disconnects everyone, then saves what was accepted and closes the database.
    """

    def __init__(
        self,
        *,
        database_url: str,
        ping_interval: float = 25.0,
        ping_timeout: float = 20.0,
        adapter: AdapterFactory | None = None,
        web_dir: str | os.PathLike[str] | None = None,
        cluster_timeout: float = 10.0,
        connection_state_recovery: bool | ConnectionStateRecovery = False,
        **app_options: Any,
    ) -> None:
        self.io = Server(
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            adapter=adapter,
            max_payload=MAX_PAYLOAD,
            connection_state_recovery=connection_state_recovery,
        )
        self.store = open_store(database_url)
        self.app = ChatApp(self.io, self.store, **app_options)
        self.web_dir = Path(web_dir) if web_dir is not None else None
        self.cluster_timeout = cluster_timeout

    async def serve(self, host: str = "127.0.0.1", port: int = 5000, **options: Any) -> Any:
        """Open the database, then serve the front end and ``/socket.io/`` on ``host:port``;
        returns the running native server."""
        await self.app.start()
        logger.info("messages are saved in %s", self.store.description)
        if self.web_dir is not None:
            options.setdefault("static_dir", self.web_dir)
        else:
            logger.warning("the front end is not built: serving Socket.IO only")
            fallback: Callable[[HTTPRequest], Any] = _not_built
            options.setdefault("fallback", fallback)
        server = await self.io.serve(host, port, **options)
        await self._cluster_ready()
        return server

    async def _cluster_ready(self) -> None:
        """With a cluster adapter, wait (bounded) until it receives the other servers'
        messages, so that "serving" means what it says."""
        wait_ready = getattr(self.app.nsp.adapter, "wait_ready", None)
        if wait_ready is None:
            return
        try:
            async with asyncio.timeout(self.cluster_timeout):
                await wait_ready()
        except TimeoutError:
            logger.warning(
                "the cluster adapter is not connected after %ss: serving anyway, it keeps trying",
                self.cluster_timeout,
            )

    async def close(self) -> None:
        """Disconnect every client, save every accepted message, close the database."""
        try:
            await self.io.close()
        finally:
            await self.app.close()
