"""The file server's rules, one request at a time through its ASGI callable (the daemon tests
drive the same code through a real `aggregator serve` on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import os
from pathlib import Path
from typing import Any

import pytest

from aggregator import server

BODY = b"<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'>" + b"x" * 2000 + b"</feed>"
MTIME = 1_657_446_600  # 2022-07-10 09:50:00 UTC


@pytest.fixture
def files(tmp_path: Path) -> server.Files:
    (tmp_path / "tag").mkdir()
    for rel in ("all.atom", "tag/联合早报.atom", "index.html", ".aggregator-manifest.json"):
        (tmp_path / rel).write_bytes(BODY)
        os.utime(tmp_path / rel, (MTIME, MTIME))
    return server.Files(tmp_path, "/news/", 300)


def call(
    files: server.Files, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    asyncio.run(files(scope, receive, send))
    start, body = sent
    out = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], out, body["body"]


def test_validators_and_conditional_requests(files: server.Files) -> None:
    status, headers, body = call(files, "/news/all.atom")
    assert (status, body) == (200, BODY)
    etag = headers["etag"]
    assert headers["last-modified"] == email.utils.formatdate(MTIME, usegmt=True)
    for inm in (etag, f"W/{etag}", f'"other", {etag}', "*", etag[:-1] + '-gzip"'):
        assert call(files, "/news/all.atom", {"If-None-Match": inm})[0] == 304, inm
    assert call(files, "/news/all.atom", {"If-None-Match": '"other"'})[0] == 200
    # If-None-Match decides when present, whatever If-Modified-Since says.
    later = email.utils.formatdate(MTIME + 60, usegmt=True)
    assert (
        call(files, "/news/all.atom", {"If-None-Match": '"x"', "If-Modified-Since": later})[0]
        == 200
    )
    assert call(files, "/news/all.atom", {"If-Modified-Since": later})[0] == 304
    earlier = email.utils.formatdate(MTIME - 60, usegmt=True)
    assert call(files, "/news/all.atom", {"If-Modified-Since": earlier})[0] == 200
    assert call(files, "/news/all.atom", {"If-Modified-Since": "yesterday-ish"})[0] == 200
    assert files.counters.requests == {200: 5, 304: 6}


def test_gzip_only_when_accepted(files: server.Files) -> None:
    for accept, zipped in (
        ("gzip", True),
        ("deflate, gzip;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("br", False),
    ):
        _, headers, body = call(files, "/news/all.atom", {"Accept-Encoding": accept})
        assert (headers.get("content-encoding") == "gzip") is zipped, accept
        assert (gzip.decompress(body) if zipped else body) == BODY
        assert headers["content-length"] == str(len(body))


def test_head_browsers_and_types(files: server.Files) -> None:
    status, headers, body = call(files, "/news/all.atom", method="HEAD")
    assert (status, body) == (200, b"") and headers["content-length"] == str(len(BODY))
    assert headers["content-type"] == "application/atom+xml; charset=utf-8"
    _, browser, _ = call(files, "/news/all.atom", {"Accept": "text/html,*/*;q=0.8"})
    assert browser["content-type"] == "application/xml; charset=utf-8"
    assert call(files, "/news/")[1]["content-type"] == "text/html; charset=utf-8"
    assert call(files, "/news/tag/联合早报.atom")[0] == 200


ATOM = """<?xml version='1.0' encoding='UTF-8'?>
<?xml-stylesheet type="text/xsl" href="https://feeds.example.org/news/feed.xsl"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <id>https://feeds.example.org/news/all.atom</id>
  <title>Everything</title>
  <updated>2022-07-10T09:50:00+00:00</updated>
  <link href="https://feeds.example.org/news/all.atom" rel="self"/>
  <entry>
    <id>urn:uuid:1</id>
    <title>{title}</title>
    <updated>2022-07-10T09:50:00+00:00</updated>
    <link href="https://example.org/1" rel="alternate"/>
    <summary>{summary}</summary>
  </entry>
</feed>
"""
CHROME = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


def test_browsers_get_a_page_made_from_the_feed_and_its_stylesheet(tmp_path: Path) -> None:
    from aggregator.publish import stylesheet

    feed = tmp_path / "all.atom"
    feed.write_text(ATOM.format(title="First 标题", summary="x" * 600), encoding="utf-8")
    (tmp_path / "broken.rss").write_bytes(b"<rss><channel>")
    files = server.Files(tmp_path, "/news/", 300, stylesheet())

    status, headers, page = call(files, "/news/all.atom", {"Accept": CHROME})
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert "First 标题" in page.decode("utf-8") and b"<script" not in page
    assert headers["vary"] == "Accept, Accept-Encoding"
    assert headers["etag"] != call(files, "/news/all.atom")[1]["etag"]
    again = {"Accept": CHROME, "If-None-Match": headers["etag"]}
    assert call(files, "/news/all.atom", again)[0] == 304
    zipped = call(files, "/news/all.atom", {"Accept": CHROME, "Accept-Encoding": "gzip"})
    assert gzip.decompress(zipped[2]) == page and zipped[1]["content-encoding"] == "gzip"
    head = call(files, "/news/all.atom", {"Accept": CHROME}, method="HEAD")
    assert head[2] == b"" and head[1]["content-length"] == str(len(page))

    # Feed readers get the feed, whatever else they accept.
    for accept in ("*/*", "application/atom+xml, text/html;q=0.5", "application/xml"):
        assert call(files, "/news/all.atom", {"Accept": accept})[2] == feed.read_bytes(), accept

    # The page follows the file.
    feed.write_text(ATOM.format(title="Second", summary="y"), encoding="utf-8")
    os.utime(feed, (MTIME + 60, MTIME + 60))
    files.paths.clear()  # as RECHECK seconds later
    status, _, page = call(files, "/news/all.atom", again)
    assert status == 200 and b"Second" in page and b"First" not in page

    # A file that does not go through the stylesheet is served as the file, typed for display.
    status, headers, body = call(files, "/news/broken.rss", {"Accept": CHROME})
    assert (status, body) == (200, b"<rss><channel>")
    assert headers["content-type"] == "application/xml; charset=utf-8"


@pytest.mark.parametrize(
    "path",
    [
        "/news/../all.atom",
        "/news/tag/../../etc/passwd",
        "/news/.aggregator-manifest.json",
        "/news/tag",
        "/news/tag//联合早报.atom",
        "/all.atom",
        "/news/missing.atom",
        "/news/all.atom\0",
    ],
)
def test_nothing_else_is_served(files: server.Files, path: str) -> None:
    assert call(files, path)[0] == 404


def test_other_methods_are_refused(files: server.Files) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, headers, _ = call(files, "/news/all.atom", method=method)
        assert status == 405 and headers["allow"] == "GET, HEAD"


def test_a_changed_file_is_served_after_the_recheck(
    files: server.Files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etag = call(files, "/news/all.atom")[1]["etag"]
    (tmp_path / "all.atom").write_bytes(BODY.replace(b"x", b"y"))
    clock = [server.time.monotonic()]
    monkeypatch.setattr(server.time, "monotonic", lambda: clock[0])
    clock[0] += server.RECHECK + 0.01
    status, headers, body = call(files, "/news/all.atom", {"If-None-Match": etag})
    assert status == 200 and headers["etag"] != etag and b"y" in body
    (tmp_path / "all.atom").unlink()
    clock[0] += server.RECHECK + 0.01
    assert call(files, "/news/all.atom")[0] == 404
