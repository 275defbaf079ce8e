"""One ``str`` per distinct header name and common header value, shared by all requests.

A session keeps its handshake request (``socket.handshake``) for as long as it lives, headers
included. Decoded afresh for every connection, a browser's eleven upgrade headers cost about
1.4 KiB per idle WebSocket, almost all of it the same strings again and again ("host",
"user-agent", "Upgrade", "no-cache"...). Names and the values of headers that repeat across
clients are therefore decoded once and shared. The table is bounded: a client inventing names
or values fills it up to :data:`MAX_SHARED`, after which new strings are simply not shared.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_SHARED", "SharedStrings"]

MAX_SHARED: Final = 4096
"""Most distinct names plus values kept (each at most :data:`MAX_SHARED_LENGTH` bytes)."""

MAX_SHARED_LENGTH: Final = 256

_REPEATING: Final = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "connection",
        "host",
        "origin",
        "pragma",
        "sec-ch-ua",
        "sec-ch-ua-mobile",
        "sec-ch-ua-platform",
        "sec-fetch-dest",
        "sec-fetch-mode",
        "sec-fetch-site",
        "sec-websocket-extensions",
        "sec-websocket-version",
        "upgrade",
        "user-agent",
        "x-forwarded-proto",
    }
)
"""Headers whose values repeat across clients (not keys, cookies, tokens or addresses)."""


class SharedStrings:
    """Decodes header names (lower-cased) and values to shared ``str`` objects."""

    __slots__ = ("_names", "_strs", "_values")

    def __init__(self) -> None:
        self._names: dict[bytes, str] = {}
        self._values: dict[bytes, str] = {}
        self._strs: dict[str, str] = {}

    def name(self, raw: bytes) -> str:
        """``raw`` lower-cased and decoded (latin-1), shared when it was seen before."""
        found = self._names.get(raw)
        if found is None:
            found = raw.decode("latin-1").lower()
            if len(raw) <= MAX_SHARED_LENGTH and len(self) < MAX_SHARED:
                self._names[raw] = found
        return found

    def value(self, name: str, raw: bytes) -> str:
        """``raw`` decoded (latin-1); shared for the headers whose values repeat."""
        if name not in _REPEATING:
            return raw.decode("latin-1")
        return self.text(raw)

    def text(self, raw: bytes) -> str:
        """``raw`` decoded (latin-1), shared (a request path, a common header value)."""
        found = self._values.get(raw)
        if found is None:
            found = raw.decode("latin-1")
            if len(raw) <= MAX_SHARED_LENGTH and len(self) < MAX_SHARED:
                self._values[raw] = found
        return found

    def share(self, text: str) -> str:
        """``text`` itself, or an equal string seen before (a query parameter's name)."""
        found = self._strs.get(text)
        if found is None:
            found = text
            if len(text) <= MAX_SHARED_LENGTH and len(self) < MAX_SHARED:
                self._strs[text] = text
        return found

    def __len__(self) -> int:
        return len(self._names) + len(self._values) + len(self._strs)
