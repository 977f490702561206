"""Serving the output folder to feed readers (Starlette; run by uvicorn in `aggregator serve`).

Read-only: GET and HEAD of the published files under the path of `site.base_url`, plus
`/healthz` and `/metrics`. Nothing outside the output folder is reachable (no `..`, no hidden
files such as the publish manifest), and nothing served changes state.

Caching is what makes a feed server cheap: every response carries a strong ETag (a hash of the
bytes, so every daemon sharing a store gives the same one), Last-Modified (the file's time,
which the publisher sets to the newest entry's date: the same on every machine too) and
Cache-Control; If-None-Match and If-Modified-Since answer 304 with no body. Files are read and
compressed once per change and kept in memory, keyed by their size, time and inode.

Starlette's StaticFiles is not used: its ETag is built from the file's time and size, not its
bytes, and it neither compresses nor negotiates the type a browser needs to show a feed.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CONTENT_TYPES = {
    ".atom": "application/atom+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    ".xsl": "text/xsl; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
}
FEED_SUFFIXES = {".atom", ".rss"}
BROWSER_TYPE = "application/xml; charset=utf-8"
"""What a browser gets for an Atom or RSS file: browsers download `application/atom+xml`, but
show `application/xml` through the feed's xml-stylesheet as a readable page."""
GZIP_MIN = 512
"""Smaller bodies are sent as they are: compressing them saves less than it costs."""


@dataclass(frozen=True, slots=True)
class Cached:
    key: tuple[int, int, int]
    """(size, mtime_ns, inode) the entry was read at."""
    body: bytes
    gzipped: bytes | None
    etag: str
    last_modified: str
    mtime: int
    """Whole seconds, for If-Modified-Since."""


@dataclass
class Counters:
    """What the server counts for /metrics (kept here, read by the daemon's collector)."""

    requests: dict[int, int]
    """status -> responses"""

    def add(self, status: int) -> None:
        self.requests[status] = self.requests.get(status, 0) + 1


class Files:
    """The published files as HTTP responses (see module docstring)."""

    def __init__(self, root: Path, prefix: str, max_age: int):
        self.root = root.resolve()
        self.prefix = prefix
        self.cache_control = f"public, max-age={max_age}"
        self.cache: dict[str, Cached] = {}
        self.counters = Counters({})

    def locate(self, url_path: str) -> Path | None:
        """The file a request path names, or None when it names nothing we publish."""
        if not url_path.startswith(self.prefix):
            return None
        rel = url_path[len(self.prefix) :]
        if rel == "" or rel.endswith("/"):
            rel += "index.html"
        parts = rel.split("/")
        if any(p in ("", ".", "..") or p.startswith(".") or "\\" in p or "\0" in p for p in parts):
            return None
        return self.root.joinpath(*parts)

    def load(self, path: Path) -> Cached | None:
        try:
            st = path.stat()
        except (OSError, ValueError):
            return None
        if not path.is_file():
            return None
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        name = str(path)
        cached = self.cache.get(name)
        if cached is not None and cached.key == key:
            return cached
        try:
            body = path.read_bytes()
        except OSError:
            return None
        digest = hashlib.blake2b(body, digest_size=16).hexdigest()
        mtime = int(st.st_mtime)
        cached = Cached(
            key=key,
            body=body,
            # mtime=0: the same bytes on every machine (gzip otherwise stamps the time).
            gzipped=gzip.compress(body, 6, mtime=0) if len(body) >= GZIP_MIN else None,
            etag=f'"{digest}"',
            last_modified=email.utils.formatdate(mtime, usegmt=True),
            mtime=mtime,
        )
        if len(self.cache) > 10_000:
            self.cache.clear()
        self.cache[name] = cached
        return cached

    def respond(self, method: str, url_path: str, headers: Any) -> Response:
        path = self.locate(url_path)
        cached = self.load(path) if path is not None else None
        if cached is None or path is None:
            self.counters.add(404)
            return Response("not found\n", 404, media_type="text/plain")
        gzip_ok = cached.gzipped is not None and accepts_gzip(headers.get("accept-encoding", ""))
        # The compressed bytes are another representation: their own strong tag.
        etag = cached.etag[:-1] + '-gzip"' if gzip_ok else cached.etag
        suffix = path.suffix
        content_type = CONTENT_TYPES.get(suffix, "application/octet-stream")
        vary = "Accept-Encoding"
        if suffix in FEED_SUFFIXES:
            vary = "Accept, Accept-Encoding"
            if "text/html" in headers.get("accept", ""):
                content_type = BROWSER_TYPE
        out = {
            "ETag": etag,
            "Last-Modified": cached.last_modified,
            "Cache-Control": self.cache_control,
            "Vary": vary,
        }
        if not_modified(headers, cached):
            self.counters.add(304)
            return Response(status_code=304, headers=out)
        body = cached.gzipped if gzip_ok and cached.gzipped is not None else cached.body
        if gzip_ok:
            out["Content-Encoding"] = "gzip"
        out["Content-Length"] = str(len(body))
        self.counters.add(200)
        return Response(b"" if method == "HEAD" else body, 200, out, media_type=content_type)


def accepts_gzip(value: str) -> bool:
    for part in value.split(","):
        token, _, params = part.strip().partition(";")
        if token.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            return not (q.startswith("q=") and _q(q[2:]) == 0)
    return False


def _q(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return 1.0


def not_modified(headers: Any, cached: Cached) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present (weak comparison, as GET allows);
    If-Modified-Since only without it."""
    inm = headers.get("if-none-match")
    if inm is not None:
        if inm.strip() == "*":
            return True
        opaque = cached.etag.strip('"')
        for tag in inm.split(","):
            tag = tag.strip().removeprefix("W/").strip('"')
            if tag in (opaque, opaque + "-gzip"):
                return True
        return False
    ims = headers.get("if-modified-since")
    if ims is None:
        return False
    try:
        since = email.utils.parsedate_to_datetime(ims)
    except (TypeError, ValueError, IndexError):
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return cached.mtime <= since.timestamp()


Health = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]
"""(status code, JSON body) of /healthz."""
Metrics = Callable[[], Awaitable[tuple[bytes, str]]]
"""(body, content type) of /metrics."""


def make_app(output: Path, base_url: str, max_age: int, health: Health, metrics: Metrics) -> Any:
    """The ASGI application: files under base_url's path, /healthz and /metrics."""
    prefix = unquote(urlsplit(base_url).path) or "/"
    files = Files(output, prefix, max_age)

    async def healthz(request: Request) -> Response:
        status, body = await health()
        return JSONResponse(body, status, headers={"Cache-Control": "no-store"})

    async def prometheus(request: Request) -> Response:
        body, content_type = await metrics()
        return Response(body, 200, {"Cache-Control": "no-store"}, media_type=content_type)

    async def serve_file(request: Request) -> Response:
        return files.respond(request.method, request.scope["path"], request.headers)

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
            Route("/{path:path}", serve_file, methods=["GET"]),
        ]
    )
    app.state.files = files
    return app
