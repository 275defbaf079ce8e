"""``sockjet chat``: a chat application on sockjet, with its history in SQLite or PostgreSQL.

* :mod:`~sockjet.chat.app`: the Socket.IO events (:class:`ChatApp`).
* :mod:`~sockjet.chat.validation`: checks of everything clients send.
* :mod:`~sockjet.chat.presence`: who is online in each room.
* :mod:`~sockjet.chat.store`, :mod:`~sockjet.chat.sqlite_store`,
  :mod:`~sockjet.chat.postgres_store`: the databases.
* :mod:`~sockjet.chat.writer`: messages are saved behind the send, in batches.
* :mod:`~sockjet.chat.service`: all of it with the front end on one port (:class:`ChatService`).

The front end lives in ``examples/chat/web`` (React + Vite + socket.io-client); see
``docs/chat.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sockjet.chat.app import ChatApp
    from sockjet.chat.models import ChatMessage
    from sockjet.chat.service import ChatService
    from sockjet.chat.store import MessageStore, StoreError
    from sockjet.chat.stores import open_store

# Imported on first use, so that the command line can read the store's defaults without
# loading the server.
_LAZY: dict[str, str] = {
    "ChatApp": "sockjet.chat.app",
    "ChatMessage": "sockjet.chat.models",
    "ChatService": "sockjet.chat.service",
    "MessageStore": "sockjet.chat.store",
    "StoreError": "sockjet.chat.store",
    "open_store": "sockjet.chat.stores",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sockjet.chat' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = ["ChatApp", "ChatMessage", "ChatService", "MessageStore", "StoreError", "open_store"]
