"""Static files for the native server: a built front end served next to the engine.

GET and HEAD only. A request path is resolved inside the root and refused unless the result is
still inside it (``..``, encoded ``%2e%2e``, symlinks pointing out); dot-files are never served.
``/`` and any unknown extension-less path get ``index.html`` (single-page-app routing); an unknown
path with an extension is not ours (the caller answers 404). Files are looked up and read in a
worker thread, never on the event loop, and capped in size.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
from pathlib import Path
from typing import Final

from sockjet.engine.io import HTTPRequest, HTTPResponse

__all__ = ["StaticFiles"]

logger = logging.getLogger("sockjet.serving")

# Fixed types for what front-end builds contain: the system's mime.types varies by machine.
_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".wasm": "application/wasm",
    ".mp3": "audio/mpeg",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
}


def content_type(path: Path) -> str:
    """The Content-Type for a file name."""
    suffix = path.suffix.lower()
    known = _TYPES.get(suffix)
    if known is not None:
        return known
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


class StaticFiles:
    """Serves one directory. Call it with a request; None means "not a file of mine"."""

    __slots__ = ("_max_file_size", "_root")

    def __init__(self, directory: str | os.PathLike[str], *, max_file_size: int = 64 << 20) -> None:
        root = Path(directory).resolve()
        if not root.is_dir():
            raise ValueError(f"static_dir {os.fspath(directory)!r} is not a directory")
        self._root = root
        self._max_file_size = max_file_size

    @property
    def root(self) -> Path:
        return self._root

    async def __call__(self, request: HTTPRequest) -> HTTPResponse | None:
        if request.method != "GET" and request.method != "HEAD":
            return None
        return await asyncio.to_thread(self._respond, request.path, request.headers)

    def _respond(self, url_path: str, headers: dict[str, str]) -> HTTPResponse | None:
        target = self.resolve(url_path)
        if target is None:
            return None
        try:
            stat = target.stat()
            if stat.st_size > self._max_file_size:
                logger.warning("static file %s over max_file_size, not served", target)
                return None
            etag = f'W/"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
            response_headers = [
                ("content-type", content_type(target)),
                ("etag", etag),
                ("cache-control", "no-cache"),
                ("x-content-type-options", "nosniff"),
            ]
            if etag in (tag.strip() for tag in headers.get("if-none-match", "").split(",")):
                return HTTPResponse(304, response_headers[1:3])
            return HTTPResponse(200, response_headers, target.read_bytes())
        except OSError:
            return None

    def resolve(self, url_path: str) -> Path | None:
        """The file to serve for a (percent-decoded) URL path, or None."""
        segments = [segment for segment in url_path.split("/") if segment]
        for segment in segments:
            # ".." and dot-files, NUL, and Windows separators/drives never name a file here.
            if segment.startswith(".") or "\x00" in segment or "\\" in segment or ":" in segment:
                return None
        root = self._root
        target = self._contained(root.joinpath(*segments))
        if target is not None and target.is_dir():
            target = self._contained(target / "index.html")
        if target is not None and target.is_file():
            return target
        if not segments or "." not in segments[-1]:
            index = self._contained(root / "index.html")
            if index is not None and index.is_file():
                return index
        return None

    def _contained(self, path: Path) -> Path | None:
        """``path`` resolved (symlinks followed), if it is still inside the root."""
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError, ValueError):
            return None
        return resolved if resolved.is_relative_to(self._root) else None
