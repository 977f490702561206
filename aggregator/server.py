"""Serving the output folder to feed readers (ASGI; run by uvicorn in `aggregator serve`).

Read-only: GET and HEAD of the published files under the path of `site.base_url`, plus
`/healthz` and `/metrics`. Nothing outside the output folder is reachable (no `..`, no hidden
files such as the publish manifest), and nothing served changes state.

Caching is what makes a feed server cheap: every response carries a strong ETag (a hash of the
bytes, so every daemon sharing a store gives the same one), Last-Modified (the file's time,
which the publisher sets to the newest entry's date: the same on every machine too) and
Cache-Control; If-None-Match and If-Modified-Since answer 304 with no body. Files are read and
compressed once per change and kept in memory, keyed by their size, time and inode; a file is
looked at again (one `stat`) at most every RECHECK seconds, so a published change is served
within that time.

A poll is the hot path (issue 4: `bench/serve.py`): files are answered by a plain ASGI callable
with the response headers built once per file change, no router, request or response object;
only /healthz and /metrics go through Starlette. Starlette's StaticFiles is not used: its ETag
is built from the file's time and size, not its bytes, and it neither compresses nor negotiates
what a browser needs to show a feed.

A browser opening an Atom or RSS file gets a page: the feed's own stylesheet (`feed.xsl`, which
every such file names in its `xml-stylesheet`) applied here, with lxml, once per file change.
Browsers used to apply it themselves, and Chrome is removing XSLT; a web server other than this
one still relies on the browser (those that still apply XSLT show the same page).
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import hashlib
import os
import stat
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from types import SimpleNamespace
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
FEED_ENDINGS = tuple(FEED_SUFFIXES)
BROWSER_TYPE = "application/xml; charset=utf-8"
"""What a browser gets for an Atom or RSS file: browsers download `application/atom+xml`, but
show `application/xml` through the feed's xml-stylesheet as a readable page."""
RECHECK = 0.5
"""Seconds a file's cached bytes are served for without looking at the file again: at most one
`stat` per file this often however many requests come, and a change published is served this
long after at the latest (old body and old ETag together, so always a consistent answer)."""
GZIP_MIN = 512
"""Smaller bodies are sent as they are: compressing them saves less than it costs."""


Headers = tuple[tuple[bytes, bytes], ...]
"""ASGI response headers; tuples, as the same ones are sent with every response."""


@dataclass(frozen=True, slots=True)
class Cached:
    name: str
    """The file's path."""
    key: tuple[int, int, int]
    """(size, mtime_ns, inode) the entry was read at."""
    body: bytes
    gzipped: bytes | None
    etag: str
    last_modified: str
    mtime: int
    """Whole seconds, for If-Modified-Since."""
    head: dict[tuple[bool, bool], tuple[Headers, Headers]]
    """(gzip, browser) -> (headers of a 200, headers of a 304), built once per change."""
    tags: frozenset[bytes]
    """If-None-Match values that match as they are (the common case: the tag a reader got)."""


@dataclass(slots=True)
class Slot:
    """A file that request paths name, and what it held when last looked at."""

    name: str
    cached: Cached | None = None
    until: float = 0.0
    """time.monotonic() until which `cached` is served without looking at the file."""


@dataclass
class Counters:
    """What the server counts for /metrics (kept here, read by the daemon's collector)."""

    requests: dict[int, int]
    """status -> responses"""

    def add(self, status: int) -> None:
        self.requests[status] = self.requests.get(status, 0) + 1


NOT_FOUND_BODY = b"not found\n"
NOT_FOUND: Headers = (
    (b"content-length", str(len(NOT_FOUND_BODY)).encode()),
    (b"content-type", b"text/plain; charset=utf-8"),
)
NOT_ALLOWED_BODY = b"Method Not Allowed"
NOT_ALLOWED: Headers = (
    (b"allow", b"GET, HEAD"),
    (b"content-length", str(len(NOT_ALLOWED_BODY)).encode()),
    (b"content-type", b"text/plain; charset=utf-8"),
)


class Files:
    """The published files as HTTP responses (see module docstring).

    Served as a plain ASGI callable: a feed reader's poll is answered without a router, a
    request object or a response object, with header lists built once per file change, and a
    file is looked at (`stat`) at most once every RECHECK seconds.
    """

    def __init__(self, root: Path, prefix: str, max_age: int, stylesheet: bytes | None = None):
        self.root = root.resolve()
        self.stylesheet = stylesheet
        """The XSLT that turns an Atom or RSS file into a page for browsers (None: they get
        the file, typed so that they apply its `xml-stylesheet` themselves)."""
        self.pages: dict[str, Cached] = {}
        """Feed file path -> the page browsers get for it, as last made."""
        self._transform: Any = None
        self._transforming = threading.Lock()
        self.prefix = prefix
        self.cache_control = f"public, max-age={max_age}"
        self.cache: dict[str, Cached] = {}
        """File path -> what was read from it."""
        self.paths: dict[str, Slot | None] = {}
        """Request path -> its file (None: names nothing we publish)."""
        self.counters = Counters({})
        self._gzip: dict[bytes, bool] = {}
        """Accept-Encoding values seen -> whether they accept gzip."""

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

    def lookup(self, url_path: str) -> Cached | None:
        """What a request path serves, or None: 404. The file is looked at again (one `stat`,
        and read again if it changed) when it was last looked at RECHECK seconds ago or more."""
        try:
            slot = self.paths[url_path]
        except KeyError:
            path = self.locate(url_path)
            slot = None if path is None else Slot(str(path))
            if len(self.paths) > 10_000:
                self.paths.clear()
            self.paths[url_path] = slot
        if slot is None:
            return None
        now = time.monotonic()
        if now < slot.until:
            return slot.cached
        slot.cached = cached = self.load(slot.name)
        # A missing file is looked for again on every request: it is served once it appears.
        slot.until = now + RECHECK if cached is not None else 0.0
        return cached

    def load(self, name: str) -> Cached | None:
        try:
            st = os.stat(name)
        except (OSError, ValueError):
            return None
        cached = self.cache.get(name)
        if cached is not None and cached.key == (st.st_size, st.st_mtime_ns, st.st_ino):
            return cached
        try:
            with open(name, "rb") as f:
                # The key of the bytes read, even if the file was replaced since the stat.
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    return None
                body = f.read()
        except OSError:
            return None
        cached = self._entry(name, body, (st.st_size, st.st_mtime_ns, st.st_ino), st.st_mtime)
        if len(self.cache) > 10_000:
            self.cache.clear()
        self.cache[name] = cached
        return cached

    def page(self, cached: Cached) -> Cached | None:
        """The page a browser gets for a feed file (see the module docstring), made again
        when the file changed; None when there is no stylesheet or the file does not go
        through it."""
        page = self.pages.get(cached.name)
        if page is not None and page.key == cached.key:
            return page
        if self.stylesheet is None:
            return None
        from lxml import etree

        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
        with self._transforming:  # one at a time: an XSLT object is not shared across threads
            try:
                if self._transform is None:
                    self._transform = etree.XSLT(etree.fromstring(self.stylesheet, parser))
                html = bytes(self._transform(etree.fromstring(cached.body, parser)))
            except (etree.XMLSyntaxError, etree.XSLTError):
                return None
        page = self._entry(cached.name, html, cached.key, cached.mtime, page=True)
        if len(self.pages) > 1_000:
            self.pages.clear()
        self.pages[cached.name] = page
        return page

    def _entry(
        self, name: str, body: bytes, key: tuple[int, int, int], mtime: float, page: bool = False
    ) -> Cached:
        digest = hashlib.blake2b(body, digest_size=16).hexdigest()
        # mtime=0: the same bytes on every machine (gzip otherwise stamps the time).
        gzipped = gzip.compress(body, 6, mtime=0) if len(body) >= GZIP_MIN else None
        etag = f'"{digest}"'
        last_modified = email.utils.formatdate(int(mtime), usegmt=True)
        suffix = ".html" if page else os.path.splitext(name)[1]
        feed = suffix in FEED_SUFFIXES
        vary = b"Accept, Accept-Encoding" if feed or page else b"Accept-Encoding"
        head: dict[tuple[bool, bool], tuple[Headers, Headers]] = {}
        for zipped in (False, True):
            if zipped and gzipped is None:
                continue
            # The compressed bytes are another representation: their own strong tag.
            tag = etag[:-1] + '-gzip"' if zipped else etag
            common = (
                (b"etag", tag.encode()),
                (b"last-modified", last_modified.encode()),
                (b"cache-control", self.cache_control.encode()),
                (b"vary", vary),
            )
            for browser in (False, True):
                content_type = CONTENT_TYPES.get(suffix, "application/octet-stream")
                if browser and feed:
                    content_type = BROWSER_TYPE
                length = len(gzipped if zipped and gzipped is not None else body)
                full = [*common]
                if zipped:
                    full.append((b"content-encoding", b"gzip"))
                full.append((b"content-length", str(length).encode()))
                full.append((b"content-type", content_type.encode()))
                head[zipped, browser] = (tuple(full), common)
        return Cached(
            name=name,
            key=key,
            body=body,
            gzipped=gzipped,
            etag=etag,
            last_modified=last_modified,
            mtime=int(mtime),
            head=head,
            tags=frozenset({etag.encode(), (etag[:-1] + '-gzip"').encode()}),
        )

    def accepts_gzip(self, value: bytes) -> bool:
        ok = self._gzip.get(value)
        if ok is None:
            ok = accepts_gzip(value.decode("latin-1"))
            if len(self._gzip) > 1000:
                self._gzip.clear()
            self._gzip[value] = ok
        return ok

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """ASGI: GET and HEAD of a published file."""
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            await _send(send, 405, NOT_ALLOWED, NOT_ALLOWED_BODY)
            return
        cached = self.lookup(scope["path"])
        if cached is None:
            self.counters.add(404)
            await _send(send, 404, NOT_FOUND, NOT_FOUND_BODY)
            return
        accept = accept_encoding = inm = ims = None
        for name, value in scope["headers"]:
            # The first of each, as Starlette's Headers.get.
            if name == b"if-none-match":
                if inm is None:
                    inm = value
            elif name == b"accept-encoding":
                if accept_encoding is None:
                    accept_encoding = value
            elif name == b"accept":
                if accept is None:
                    accept = value
            elif name == b"if-modified-since" and ims is None:
                ims = value
        browser = False
        if accept is not None and b"text/html" in accept:
            browser = True
            if accept.startswith(b"text/html") and cached.name.endswith(FEED_ENDINGS):
                # A browser's first choice is a page (a feed reader never puts HTML first).
                page = self.pages.get(cached.name)
                if page is None or page.key != cached.key:
                    page = await asyncio.to_thread(self.page, cached)
                if page is not None:
                    cached, browser = page, False
        gzip_ok = (
            cached.gzipped is not None
            and accept_encoding is not None
            and self.accepts_gzip(accept_encoding)
        )
        full, short = cached.head[gzip_ok, browser]
        # RFC 9110 13.2.2: If-None-Match decides when present (weak comparison, as GET
        # allows); If-Modified-Since only without it.
        if inm is not None:
            fresh = inm in cached.tags or etag_matches(inm.decode("latin-1"), cached)
        elif ims is not None:
            fresh = modified_since(ims.decode("latin-1"), cached)
        else:
            fresh = False
        if fresh:
            self.counters.add(304)
            await send({"type": "http.response.start", "status": 304, "headers": short})
            await send({"type": "http.response.body", "body": b""})
            return
        self.counters.add(200)
        if method == "HEAD":
            body = b""
        elif gzip_ok and cached.gzipped is not None:
            body = cached.gzipped
        else:
            body = cached.body
        await send({"type": "http.response.start", "status": 200, "headers": full})
        await send({"type": "http.response.body", "body": body})


async def _send(send: Any, status: int, headers: Headers, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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


def etag_matches(inm: str, cached: Cached) -> bool:
    """Whether an If-None-Match value names the file's content (either representation)."""
    if inm.strip() == "*":
        return True
    opaque = cached.etag.strip('"')
    for tag in inm.split(","):
        tag = tag.strip().removeprefix("W/").strip('"')
        if tag in (opaque, opaque + "-gzip"):
            return True
    return False


def modified_since(ims: str, cached: Cached) -> bool:
    """Whether the file is unchanged since an If-Modified-Since date."""
    if ims == cached.last_modified:
        return True
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
    from aggregator.publish import stylesheet

    prefix = unquote(urlsplit(base_url).path) or "/"
    files = Files(output, prefix, max_age, stylesheet())

    async def healthz(request: Request) -> Response:
        status, body = await health()
        return JSONResponse(body, status, headers={"Cache-Control": "no-store"})

    async def prometheus(request: Request) -> Response:
        body, content_type = await metrics()
        return Response(body, 200, {"Cache-Control": "no-store"}, media_type=content_type)

    others = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
        ]
    )
    return App(files, others)


class App:
    """Files first, straight from the server; the rest (/healthz, /metrics) through Starlette."""

    def __init__(self, files: Files, others: Starlette):
        self.files = files
        self.others = others
        self.state = SimpleNamespace(files=files)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] not in OWN_PATHS:
            await self.files(scope, receive, send)
        else:
            await self.others(scope, receive, send)


OWN_PATHS = frozenset({"/healthz", "/metrics"})
