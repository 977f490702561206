"""A real HTTP server on 127.0.0.1 for tests: each path is a small function that answers.

    with serve() as server:
        server.route("/feed.xml", static(b"<rss>…</rss>", content_type="application/rss+xml"))
        url = server.url("/feed.xml")

Every request is logged (`server.requests`), so tests can count what reached the server.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Handler = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    at: float = field(default_factory=time.monotonic)
    """When the request reached the server (`time.monotonic()`)."""


@dataclass
class Server:
    httpd: ThreadingHTTPServer
    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def url(self, path: str) -> str:
        return f"http://{self.httpd.server_address[0]}:{self.port}{path}"

    def route(self, path: str, handler: Handler) -> str:
        self.routes[path] = handler
        return self.url(path)

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)


def _make_handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.dispatch("GET", b"")

        def do_HEAD(self) -> None:
            self.dispatch("GET", b"")

        def do_POST(self) -> None:
            self.dispatch("POST", self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        def dispatch(self, method: str, body: bytes) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            server.requests.append(Seen(method, self.path, headers, body))
            handler = server.routes.get(self.path.split("?", 1)[0])
            if handler is None:
                send(self, 404, b"not found")
                return
            with suppress(BrokenPipeError, ConnectionResetError):
                handler(self)

    return H


@contextmanager
def serve(host: str = "127.0.0.1") -> Iterator[Server]:
    httpd = ThreadingHTTPServer((host, 0), BaseHTTPRequestHandler)
    httpd.daemon_threads = True
    server = Server(httpd)
    httpd.RequestHandlerClass = _make_handler(server)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


def send(
    h: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> None:
    h.send_response(status)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)


def static(
    body: bytes,
    content_type: str = "application/xml",
    last_modified: str | None = "Sun, 10 Jul 2022 09:30:00 GMT",
    etag: bool = True,
    gzipped: bool = False,
) -> Handler:
    """A document with validators; conditional requests are answered with 304."""
    tag = '"' + hashlib.sha1(body).hexdigest() + '"'

    def handler(h: BaseHTTPRequestHandler) -> None:
        headers = {"Content-Type": content_type}
        if etag:
            headers["ETag"] = tag
        if last_modified:
            headers["Last-Modified"] = last_modified
        inm = h.headers.get("If-None-Match")
        ims = h.headers.get("If-Modified-Since")
        if (etag and inm == tag) or (not inm and last_modified and ims == last_modified):
            send(h, 304, b"", {k: v for k, v in headers.items() if k != "Content-Type"})
            return
        data = body
        if gzipped and "gzip" in (h.headers.get("Accept-Encoding") or ""):
            data = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        send(h, 200, data, headers)

    return handler


def status(code: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Handler:
    def handler(h: BaseHTTPRequestHandler) -> None:
        send(h, code, body, headers)

    return handler


def redirect(code: int, location: str) -> Handler:
    return status(code, {"Location": location})


def drip(byte_every: float, total: int = 10_000) -> Handler:
    """Headers at once, then one byte every `byte_every` seconds."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/xml")
        h.send_header("Content-Length", str(total))
        h.end_headers()
        for _ in range(total):
            h.wfile.write(b" ")
            h.wfile.flush()
            time.sleep(byte_every)

    return handler


def endless(chunk: int = 64 * 1024) -> Handler:
    """A chunked body that never ends."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/xml")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        block = b"<x>" + b"a" * chunk + b"</x>"
        while True:
            h.wfile.write(f"{len(block):x}\r\n".encode() + block + b"\r\n")

    return handler


def gzip_bomb(decoded_mib: int = 1024) -> Handler:
    """A small gzip body that decodes to `decoded_mib` MiB of zeros."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1024 * 1024)
    parts = [z.compress(block) for _ in range(decoded_mib)]
    parts.append(z.flush())
    data = b"".join(parts)

    def handler(h: BaseHTTPRequestHandler) -> None:
        send(h, 200, data, {"Content-Type": "application/xml", "Content-Encoding": "gzip"})

    return handler
