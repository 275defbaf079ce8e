"""The smallest sockjet server: every ``echo`` event is acknowledged with its own arguments.

Run it from the repository root (after ``./dev setup``)::

    .venv/bin/sockjet serve examples.hello:io --port 5000
    .venv/bin/sockjet serve examples.hello:io --port 5000 --static examples/hello_static

and talk to it with any Socket.IO v4 client, e.g. ``socket.io-client`` in Node::

    const socket = io("http://127.0.0.1:5000");
    socket.emit("echo", "hi", 42, (...args) => console.log(args));   // ["hi", 42]
"""

from __future__ import annotations

import logging
from typing import Any

import sockjet

logger = logging.getLogger("examples.hello")

io = sockjet.Server()


@io.on("connection")
async def connection(socket: sockjet.Socket) -> None:
    logger.info("%s connected", socket.id)
    socket.emit("hello", {"sid": socket.id})  # emits queue at once: nothing to await


@io.on("echo")
async def echo(socket: sockjet.Socket, *args: Any) -> tuple[Any, ...]:
    return args  # a tuple answers the ack with several arguments
