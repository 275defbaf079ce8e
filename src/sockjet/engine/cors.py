"""Cross-origin rules for the Engine.IO endpoint: CORS headers and the Origin check.

Node engine.io applies the ``cors`` npm module, which only adds or omits headers; browsers then
refuse to let a page read a cross-origin polling response. A WebSocket is not covered by CORS
at all: a browser opens one to any site, with that user's cookies (cross-site WebSocket
hijacking). So sockjet also *refuses* requests from an Origin it does not allow:

* No ``Origin`` header (non-browser clients), or an Origin naming this server itself (same
  origin: its host matches ``Host`` or ``X-Forwarded-Host``): always allowed.
* ``cors=None`` (the default, "closed"): any other Origin is refused; no ``Access-Control-*``
  header is ever sent.
* ``CorsOptions(origins=...)``: an Origin the options allow gets the CORS headers; any other is
  refused.

Refused means HTTP 403 with ``{"code":4,"message":"Forbidden"}`` (the Engine.IO FORBIDDEN
answer), on polling requests, preflights and WebSocket upgrades alike.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sockjet.engine.io import HTTPRequest

__all__ = ["CorsOptions", "CorsPolicy", "is_same_origin"]

Headers = list[tuple[str, str]]

_NO_HEADERS: Headers = []  # shared: callers copy, never mutate
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


@dataclass(frozen=True, slots=True)
class CorsOptions:
    """Which other sites may talk to the server, and the CORS headers they get.

    ``origins`` is ``"*"`` (every origin), one origin or a list of origins (exact
    ``scheme://host[:port]`` strings, e.g. ``"http://localhost:5173"``), or a callable taking the
    request's Origin and returning (or awaiting to) whether it is allowed.

    With ``"*"`` and no credentials, responses carry ``Access-Control-Allow-Origin: *``. With
    ``"*"`` and ``credentials=True`` browsers refuse ``*``, so the request's own Origin is
    reflected instead (``"*"`` means every origin is allowed; that is what you asked for).
    Otherwise the Origin is reflected only when it is allowed, with ``Vary: Origin``.
    """

    origins: str | Sequence[str] | Callable[[str], bool | Awaitable[bool]]
    methods: Sequence[str] = ("GET", "POST")
    credentials: bool = False
    allowed_headers: Sequence[str] | None = None
    """None: reflect the preflight's ``Access-Control-Request-Headers``."""
    exposed_headers: Sequence[str] | None = None
    max_age: int | None = None
    """Seconds a browser may cache a preflight answer (``Access-Control-Max-Age``)."""


def _authority(value: str, default_port: str | None) -> str:
    """``host[:port]`` lower-cased, without the port when it is the scheme's default."""
    value = value.strip().lower()
    host, sep, port = value.rpartition(":")
    # "[::1]" has no port: its last ":" is followed by "1]", not digits
    if sep and port.isdigit() and port == default_port:
        return host
    return value


def is_same_origin(origin: str, request: HTTPRequest) -> bool:
    """True when ``origin`` names the server the request was sent to.

    Compares the Origin's host and port with the ``Host`` header and, behind a proxy, with
    ``X-Forwarded-Host`` (first value). The scheme is not compared: TLS is often terminated by a
    proxy, and a page on the same host is the same site either way.
    """
    try:
        parts = urlsplit(origin)
        netloc = parts.netloc
    except ValueError:
        return False
    if not netloc or not parts.scheme:
        return False
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    target = _authority(netloc, default)
    headers = request.headers
    host = headers.get("host")
    if host is not None and _authority(host, default) == target:
        return True
    forwarded = headers.get("x-forwarded-host")
    if forwarded is not None:
        return _authority(forwarded.split(",", 1)[0], default) == target
    return False


class CorsPolicy:
    """:class:`CorsOptions` compiled for the request path (or the closed policy for None).

    :meth:`check` decides whether a request's Origin may proceed and returns the CORS headers
    for its responses; :meth:`preflight` answers an OPTIONS request.
    """

    __slots__ = ("_any", "_credentials", "_exposed", "_fixed", "_options", "_predicate")

    def __init__(self, options: CorsOptions | None) -> None:
        self._options = options
        self._any = False
        self._fixed: frozenset[str] = frozenset()
        self._predicate: Callable[[str], bool | Awaitable[bool]] | None = None
        self._credentials: Headers = []
        self._exposed: Headers = []
        if options is None:
            return
        origins = options.origins
        if isinstance(origins, str):
            if origins == "*":
                self._any = True
            else:
                self._fixed = frozenset((origins,))
        elif callable(origins):
            self._predicate = origins
        else:
            self._fixed = frozenset(origins)
        if options.credentials:
            self._credentials = [("Access-Control-Allow-Credentials", "true")]
        if options.exposed_headers:
            self._exposed = [("Access-Control-Expose-Headers", ",".join(options.exposed_headers))]

    @property
    def enabled(self) -> bool:
        """Whether CORS is configured (False: closed, no ``Access-Control-*`` headers)."""
        return self._options is not None

    @property
    def calls_application(self) -> bool:
        """Whether :meth:`check` may run the application's origin predicate."""
        return self._predicate is not None

    async def _allowed(self, origin: str) -> bool:
        if self._any or origin in self._fixed:
            return True
        predicate = self._predicate
        if predicate is None:
            return False
        result = predicate(origin)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)

    async def check(self, request: HTTPRequest) -> Headers | None:
        """The CORS headers for responses to ``request``, or None to refuse it (403).

        A request without Origin, or from the same origin, is never refused.
        """
        origin = request.headers.get("origin")
        if origin is None:
            return _NO_HEADERS
        if self._options is not None and await self._allowed(origin):
            return self._headers(origin)
        if is_same_origin(origin, request):
            return _NO_HEADERS
        return None

    def _headers(self, origin: str) -> Headers:
        if self._any and not self._credentials:
            headers: Headers = [("Access-Control-Allow-Origin", "*")]
        else:
            headers = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        return headers + self._credentials + self._exposed

    def preflight(self, request: HTTPRequest, headers: Headers) -> Headers:
        """Headers for a 204 answer to an allowed OPTIONS preflight (``headers`` from check)."""
        options = self._options
        if options is None or not headers:
            # closed policy or same-origin preflight: nothing to grant
            return list(headers)
        result = list(headers)
        result.append(("Access-Control-Allow-Methods", ",".join(options.methods)))
        if options.allowed_headers is not None:
            if options.allowed_headers:
                result.append(("Access-Control-Allow-Headers", ",".join(options.allowed_headers)))
        else:
            requested = request.headers.get("access-control-request-headers")
            result.append(("Vary", "Access-Control-Request-Headers"))
            if requested:
                result.append(("Access-Control-Allow-Headers", requested))
        if options.max_age is not None:
            result.append(("Access-Control-Max-Age", str(options.max_age)))
        return result
