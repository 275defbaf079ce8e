"""The session cookie: Engine.IO's ``cookie`` option, for load balancers that stick by cookie.

With ``Server(cookie=True)`` the answer to a polling handshake sets a cookie whose value is the
Engine.IO session id (``io=<sid>; Path=/; HttpOnly; SameSite=Lax`` by default), as Node's
engine.io does with its ``cookie`` option. A load balancer configured to route by that cookie
(HAProxy ``cookie io prefix``, AWS ALB application cookies, Traefik sticky cookies...) then sends
the session's later requests to the same node. WebSocket handshakes set none, as in Node: the
whole session is one connection there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["SessionCookie"]

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 6265 cookie-name (token)
_ATTRIBUTE_VALUE: Final = re.compile(r"[\x21-\x3a\x3c-\x7e]*")  # no CTLs, spaces or ";"


@dataclass(frozen=True, slots=True)
class SessionCookie:
    """How the session cookie is written (the attributes of Node's ``cookie`` option)."""

    name: str = "io"
    path: str | None = "/"
    http_only: bool = True
    same_site: Literal["Strict", "Lax", "None"] | None = "Lax"
    secure: bool = False
    """Only over HTTPS (required by browsers with ``same_site="None"``)."""
    domain: str | None = None
    max_age: int | None = None
    """Seconds; None makes it a session cookie (gone when the browser closes)."""

    def __post_init__(self) -> None:
        if not _TOKEN.fullmatch(self.name):
            raise ValueError(f"invalid cookie name {self.name!r}")
        for attribute in (self.path, self.domain):
            if attribute is not None and not _ATTRIBUTE_VALUE.fullmatch(attribute):
                raise ValueError(f"invalid cookie attribute {attribute!r}")
        if self.same_site not in (None, "Strict", "Lax", "None"):
            raise ValueError(
                f"same_site must be 'Strict', 'Lax', 'None' or None, not {self.same_site!r}"
            )
        if self.max_age is not None and self.max_age < 0:
            raise ValueError("max_age must not be negative")

    def header(self, sid: str) -> tuple[str, str]:
        """The ``Set-Cookie`` header for session ``sid`` (base64url: a valid cookie value)."""
        parts = [f"{self.name}={sid}"]
        if self.path is not None:
            parts.append(f"Path={self.path}")
        if self.domain is not None:
            parts.append(f"Domain={self.domain}")
        if self.max_age is not None:
            parts.append(f"Max-Age={self.max_age}")
        if self.http_only:
            parts.append("HttpOnly")
        if self.secure:
            parts.append("Secure")
        if self.same_site is not None:
            parts.append(f"SameSite={self.same_site}")
        return ("Set-Cookie", "; ".join(parts))
