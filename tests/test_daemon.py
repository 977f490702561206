"""`aggregator serve` as a real process on 127.0.0.1: scheduling, serving, stopping."""

from __future__ import annotations

import errno
import gzip
import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import daemon_process as dp
import feedparser
import http_server as hs
import pytest
import yaml
from lxml import etree
from pg_server import PostgresServer, find_bindir

from aggregator import daemon
from aggregator.store import Store

SEEDS = Path(__file__).resolve().parents[1] / "seeds"


def write_config(tmp_path: Path, **extra: Any) -> Path:
    data: dict[str, Any] = {
        "database": "sqlite:///agg.db",
        "output": "public",
        "site": {"base_url": "http://127.0.0.1:8000/news/"},
        "serve": {"publish_delay": "0.2s", "check_every": "1s"},
        "inputs": [{"kind": "files", "path": "posts", "name": "archive", "every": "1s"}],
    }
    data.update(extra)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def site(tmp_path: Path) -> Path:
    shutil.copytree(SEEDS, tmp_path / "posts")
    return write_config(tmp_path)


def sync(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`aggregator sync` in its own process, which must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "--config", str(config), "sync", *args],
        capture_output=True,
        text=True,
        cwd=config.parent,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done


def wait_for_file(d: dp.Daemon, path: str, contains: bytes = b"", timeout: float = 30) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = d.get(path)
        if status == 200 and contains in body:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never served with {contains!r} (last status {status})")
        time.sleep(0.1)


def test_serves_feeds_with_validators_and_answers_304(site: Path) -> None:
    with dp.running(site) as d:
        body = wait_for_file(d, "/news/all.atom", b"<entry>")
        status, headers, again = d.get("/news/all.atom")
        assert status == 200 and again == body
        assert headers["Content-Type"] == "application/atom+xml; charset=utf-8"
        etag = headers["ETag"]
        assert etag.startswith('"') and not etag.startswith("W/")
        assert headers["Cache-Control"] == "public, max-age=300"
        modified = parsedate_to_datetime(headers["Last-Modified"])
        # Last-Modified is the newest entry's date (the same on every machine), not the clock.
        newest = max(
            parsedate_to_datetime(e.updated) if "," in e.updated else _iso(e.updated)
            for e in feedparser.parse(body).entries
        )
        assert modified == newest.replace(microsecond=0)
        assert len(feedparser.parse(body).entries) == 2

        status, headers304, empty = d.get("/news/all.atom", {"If-None-Match": etag})
        assert (status, empty) == (304, b"")
        assert headers304["ETag"] == etag
        status, _, empty = d.get("/news/all.atom", {"If-Modified-Since": headers["Last-Modified"]})
        assert (status, empty) == (304, b"")
        status, _, _ = d.get("/news/all.atom", {"If-None-Match": '"something-else"'})
        assert status == 200

        status, head, nothing = d.get("/news/all.atom", method="HEAD")
        assert (status, nothing) == (200, b"")
        assert head["Content-Length"] == str(len(body)) and head["ETag"] == etag

        status, zipped, data = d.get("/news/all.atom", {"Accept-Encoding": "gzip"})
        assert zipped["Content-Encoding"] == "gzip" and gzip.decompress(data) == body
        assert zipped["ETag"] != etag and "Accept-Encoding" in zipped["Vary"]
        status, _, _ = d.get(
            "/news/all.atom", {"Accept-Encoding": "gzip", "If-None-Match": zipped["ETag"]}
        )
        assert status == 304

        # A browser gets a page (the feed's stylesheet applied by the server) instead of a
        # download or raw XML; a feed reader that also takes HTML still gets the feed.
        chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        _, page_head, page = d.get("/news/all.atom", {"Accept": chrome})
        assert page_head["Content-Type"] == "text/html; charset=utf-8"
        assert page.startswith(b"<!DOCTYPE html") and b"<script" not in page
        assert feedparser.parse(body).entries[0].title.encode() in page
        assert page_head["ETag"] != etag and "Accept" in page_head["Vary"]
        assert (
            d.get("/news/all.atom", {"Accept": chrome, "If-None-Match": page_head["ETag"]})[0]
            == 304
        )
        reader = "application/atom+xml, application/xml;q=0.9, text/html;q=0.1"
        assert d.get("/news/all.atom", {"Accept": reader})[2] == body

        for path, kind in (
            ("/news/all.rss", "application/rss+xml"),
            ("/news/all.json", "application/feed+json"),
            ("/news/", "text/html"),
            ("/news/index.html", "text/html"),
            ("/news/feeds.opml", "text/x-opml"),
        ):
            status, headers, _ = d.get(path)
            assert status == 200 and headers["Content-Type"].startswith(kind), path
            assert headers["ETag"] and headers["Last-Modified"], path


def _iso(value: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_start_says_where_it_listens_and_warns_when_links_point_to_another_port(
    site: Path,
) -> None:
    """`serve --port N` with the default site.base_url (this machine, port 8000): the feeds
    link to port 8000, which the start says in one warning."""
    with dp.running(site) as d:
        assert d.stop() == 0
    [listening] = [e for e in d.events if e.get("event") == "listening"]
    assert listening["message"] == (
        f"listening on http://127.0.0.1:{d.port}/ (1 input); "
        "feeds link to http://127.0.0.1:8000/news/ (site.base_url)"
    )
    [warning] = [e for e in d.events if e["level"] == "warning"]
    assert warning["message"] == (
        "links in the feeds point to http://127.0.0.1:8000/news/ (site.base_url), port 8000, "
        f"but this daemon listens on port {d.port}: set site.base_url to the address readers use"
    )


@pytest.mark.parametrize(
    ("base_url", "port", "warns"),
    [
        ("http://127.0.0.1:8000/news/", 8002, True),
        ("http://localhost:8000/", 8002, True),
        ("http://[::1]:8000/", 8002, True),
        ("http://127.0.0.2/", 8000, True),  # port 80
        ("http://127.0.0.1:8000/news/", 8000, False),
        ("http://localhost/", 80, False),
        ("https://localhost/", 443, False),
        ("https://news.example.org/", 8002, False),  # a proxy in front: not ours to judge
        ("http://192.0.2.7:8000/", 8002, False),
    ],
)
def test_base_url_mismatch_only_for_this_machine_on_another_port(
    base_url: str, port: int, warns: bool
) -> None:
    assert (daemon.base_url_mismatch(base_url, port) is not None) == warns


def test_plural() -> None:
    assert [daemon.plural(n, "input") for n in (0, 1, 2)] == ["0 inputs", "1 input", "2 inputs"]


def test_a_port_in_use_is_one_line_that_says_what_to_do(site: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "aggregator", "--config", str(site), "serve"]
        done = subprocess.run(
            [*command, "--port", str(port)],
            capture_output=True, text=True, cwd=site.parent, timeout=60,
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == (
        f"error: cannot listen on 127.0.0.1:{port}: address already in use (is another "
        "aggregator serve running? use --port or serve.port)\n"
    )


def bind_error(code: int, reason: str, host: str) -> OSError:
    """What `socket.create_server` raises when it cannot bind."""
    return OSError(code, f"{reason} (while attempting to bind on address ({host!r}, 8000))")


@pytest.mark.parametrize(
    ("host", "error", "message"),
    [
        (
            "::1",
            bind_error(errno.EADDRINUSE, "Address already in use", "::1"),
            "cannot listen on [::1]:8000: address already in use (is another aggregator "
            "serve running? use --port or serve.port)",
        ),
        (
            "192.0.2.1",
            bind_error(errno.EADDRNOTAVAIL, "Cannot assign requested address", "192.0.2.1"),
            "cannot listen on 192.0.2.1:8000: cannot assign requested address",
        ),
        (
            "news.invalid",
            bind_error(socket.EAI_NONAME, "Name or service not known", "news.invalid"),
            "cannot listen on news.invalid:8000: name or service not known",
        ),
    ],
)
def test_cannot_listen_gives_the_reason_in_plain_words(
    host: str, error: OSError, message: str
) -> None:
    assert daemon.cannot_listen(host, 8000, error) == message


def test_serves_nothing_outside_the_output_and_changes_nothing(site: Path) -> None:
    with dp.running(site) as d:
        wait_for_file(d, "/news/all.atom", b"<entry>")
        for path in (
            "/news/../config.yaml",
            "/news/%2e%2e/config.yaml",
            "/news/..%2fconfig.yaml",
            "/news/.aggregator-manifest.json",
            "/config.yaml",
            "/all.atom",  # outside the base URL's path
            "/news/missing.atom",
            "/news/source",
        ):
            status, _, body = d.get(path)
            assert status == 404, path
            assert b"posts" not in body and b"database" not in body
        for method in ("POST", "PUT", "DELETE"):
            status, _, _ = d.get("/news/all.atom", method=method)
            assert status == 405, method


def test_skipped_and_warned_posts_are_log_events_with_path_and_reason(site: Path) -> None:
    """JSON logs say what was skipped in fields a log collector can filter on."""
    broken = site.parent / "posts" / "broken.md"
    broken.write_text("---\ntitle: [unclosed\n---\nbody\n", encoding="utf-8")
    (site.parent / "posts" / "undated.md").write_text("---\ntitle: Undated\n---\nbody\n")
    with dp.running(site) as d:
        event = d.wait_for(lambda e: e.get("event") == "skipped")
        warned = d.wait_for(lambda e: e.get("event") == "warning")
    assert warned["level"] == "warning" and warned["path"] == "posts/undated.md"
    assert warned["reason"].startswith("no date")
    assert event["level"] == "warning"
    assert event["path"] == "posts/broken.md"  # as the config names the folder
    assert event["reason"].startswith("malformed YAML front matter")
    assert event["message"] == f"skipped posts/broken.md: {event['reason']}"


def test_healthz_and_metrics(site: Path) -> None:
    with dp.running(site) as d:
        wait_for_file(d, "/news/all.atom", b"<entry>")
        d.get("/news/all.atom", {"If-None-Match": d.get("/news/all.atom")[1]["ETag"]})
        d.wait_for(lambda e: e.get("event") == "refresh" and e.get("outcome") == "ok")
        status, headers, body = d.get("/healthz")
        assert status == 200 and headers["Content-Type"].startswith("application/json")
        health = json.loads(body)
        assert health["status"] == "ok"
        [archive] = health["inputs"]
        assert archive["name"] == "archive" and archive["status"] == "ok"
        assert archive["last_success"] and archive["next_due"]

        status, headers, body = d.get("/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        text = body.decode()
        assert 'aggregator_input_consecutive_failures{input="archive",kind="files"} 0.0' in text
        assert 'aggregator_input_last_success_timestamp_seconds{input="archive"' in text
        assert 'aggregator_entries_added_total{input="archive"} 2.0' in text
        assert 'aggregator_refresh_duration_seconds_count{input="archive"}' in text
        assert "aggregator_http_not_modified_total 1.0" in text
        assert 'aggregator_http_requests_total{status="200"}' in text
        assert "aggregator_entries 2.0" in text


def test_healthz_lists_feeds_that_fail_without_an_error_status(tmp_path: Path) -> None:
    """A feed answering 404 and a page that is not a feed are failing (their stored status is
    "HTTP 404" and "HTTP 200"): /healthz lists them and says "degraded", still with 200 since
    the store answers, and /metrics counts the same failures."""
    shutil.copytree(SEEDS, tmp_path / "posts")
    with hs.serve() as server:
        missing = server.route("/missing.xml", hs.status(404))
        page = server.route(
            "/page.html",
            hs.static(b"<!DOCTYPE html><html><body><p>Hello</p></body></html>", "text/html"),
        )
        config = write_config(
            tmp_path,
            inputs=[
                {"kind": "files", "path": "posts", "name": "archive", "every": "1h"},
                {"kind": "feed", "url": missing, "name": "missing", "every": "1h"},
                {"kind": "feed", "url": page, "name": "page", "every": "1h"},
            ],
            fetch={"allow_private_networks": True},
        )
        with dp.running(config) as d:
            for name in ("archive", "missing", "page"):
                d.wait_for(lambda e, name=name: e.get("event") == "refresh" and e["input"] == name)
            status, _, body = d.get("/healthz")
            metrics = d.get("/metrics")[2].decode()
            assert d.stop() == 0
    health = json.loads(body)
    assert status == 200
    assert health["status"] == "degraded"
    assert health["failing"] == ["missing", "page"]
    listed = {i["name"]: i for i in health["inputs"]}
    assert listed["missing"]["status"] == "HTTP 404" and listed["missing"]["error_count"] == 1
    assert listed["page"]["status"] == "HTTP 200" and listed["page"]["error_count"] == 1
    for name, failures in (("archive", 0), ("missing", 1), ("page", 1)):
        kind = "files" if name == "archive" else "feed"
        line = f'aggregator_input_consecutive_failures{{input="{name}",kind="{kind}"}}'
        assert f"{line} {failures}.0" in metrics


@pytest.mark.postgres
def test_healthz_is_not_200_when_the_store_is_unreachable(tmp_path: Path) -> None:
    # A server of its own, since this test stops it.
    server = PostgresServer(find_bindir())
    server.start()
    try:
        url = server.url(server.create_database())
        shutil.copytree(SEEDS, tmp_path / "posts")
        config = write_config(tmp_path, database=url)
        with dp.running(config) as d:
            wait_for_file(d, "/news/all.atom", b"<entry>")
            status, _, body = d.get("/healthz")
            assert status == 200 and json.loads(body)["status"] == "ok"
            server.stop()
            status, _, body = d.get("/healthz")
            assert status == 503
            health = json.loads(body)
            assert health["status"] == "error" and "store unreachable" in health["error"]
            assert "aggregator_store_up 0.0" in d.get("/metrics")[2].decode()
            # Feeds already published are still served.
            assert d.get("/news/all.atom")[0] == 200
            assert d.stop() == 0
    finally:
        server.stop()


def test_a_changed_post_shows_up_after_the_next_refresh(site: Path) -> None:
    with dp.running(site) as d:
        body = wait_for_file(d, "/news/all.atom", b"<entry>")
        etag = d.get("/news/all.atom")[1]["ETag"]
        post = sorted((site.parent / "posts").iterdir())[0]
        text = post.read_text(encoding="utf-8")
        title = next(line for line in text.splitlines() if line.startswith("title:"))
        post.write_text(text.replace(title, "title: 一篇改过的标题"), encoding="utf-8")
        changed = wait_for_file(d, "/news/all.atom", "一篇改过的标题".encode())
        assert changed != body
        status, headers, _ = d.get("/news/all.atom", {"If-None-Match": etag})
        assert status == 200 and headers["ETag"] != etag
        updated = d.refreshes("archive")
        assert any(e["updated"] == 1 for e in updated)


def test_sigterm_stops_cleanly_and_a_restart_resumes(site: Path) -> None:
    with dp.running(site) as d:
        wait_for_file(d, "/news/all.atom", b"<entry>")
        assert d.stop(signal.SIGTERM) == 0
        assert any(e.get("message") == "stopped" for e in d.events)
    with Store.open(f"sqlite:///{site.parent / 'agg.db'}") as store:
        [row] = store.input_rows()
        assert row["lease_owner"] is None  # released on the way out
        due = row["next_due_at"]
    with dp.running(site) as d:
        wait_for_file(d, "/news/all.atom", b"<entry>")
        first = d.wait_for(lambda e: e.get("event") == "refresh")
        # The first refresh after a restart happens when the store says it is due, and it
        # finds everything already stored.
        assert first["outcome"] == "ok" and first["new"] == 0 and first["unchanged"] == 2
        assert due is not None


def test_sigterm_before_a_refresh_starts_is_quiet(site: Path) -> None:
    """Stopped while a refresh waits to start (the first one, just after the start-up
    publish): the run is dropped without an error or a traceback in the log."""
    with dp.running(site) as d:
        d.wait_for(lambda e: e.get("event") == "publish")
        assert d.stop(signal.SIGTERM) == 0
    assert not [e for e in d.events if e.get("level") == "error"], d.lines
    assert not [line for line in d.lines if "Traceback" in line]


def test_sigterm_during_a_publish_is_quiet(tmp_path: Path) -> None:
    """Stopped while a publish runs (here the first publish of 1,500 posts): the publish
    finishes, and the scheduler's cancelling its job is no error and no traceback."""
    make_posts(tmp_path / "posts", 1500)
    config = write_config(
        tmp_path,
        inputs=[{"kind": "files", "path": "posts", "every": "1h"}],
        serve={"publish_delay": "0.2s", "check_every": "1h"},  # one publish after the refresh
    )
    with dp.running(config, verbose=True) as d:
        d.wait_for(lambda e: e.get("event") == "refresh" and e["new"] == 1500, timeout=120)
        mark = len(d.events)
        d.wait_for(lambda e: e.get("event") == "publish-start", after=mark)
        assert d.stop(signal.SIGTERM) == 0
    messages = [e.get("event") or e.get("message") for e in d.events[mark:]]
    # The signal came while the publish ran: it finished after the stop began.
    assert messages.index("stopping: finishing the work under way") < messages.index("publish")
    assert messages[-1] == "stopped"
    assert not [e for e in d.events if e.get("level") == "error"], d.lines
    assert not [line for line in d.lines if "Traceback" in line]


def test_sighup_applies_a_changed_configuration_and_keeps_a_broken_one_out(
    tmp_path: Path,
) -> None:
    """`aggregator add` (or an editor) changes config.yaml under a running daemon: SIGHUP
    reads it again. A new input is refreshed at once and its posts are served; an input taken
    out is no longer refreshed; a file that does not validate, or that moves the store, is
    refused in one line and the daemon goes on as it was."""
    shutil.copytree(SEEDS, tmp_path / "posts")
    make_posts(tmp_path / "more", 3)
    archive = {"kind": "files", "path": "posts", "name": "archive", "every": "1h"}
    more = {"kind": "files", "path": "more", "name": "more", "every": "1h"}
    config = write_config(tmp_path, inputs=[archive])
    with dp.running(config) as d:
        wait_for_file(d, "/news/all.atom", b"<entry>")
        assert b"Post 2" not in d.get("/news/all.atom")[2]

        write_config(tmp_path, inputs=[archive, more])
        mark = len(d.events)
        d.proc.send_signal(signal.SIGHUP)
        reload = d.wait_for(lambda e: e.get("event") == "reload", after=mark)
        assert (reload["added"], reload["removed"], reload["changed"]) == (["more"], [], [])
        assert reload["message"].endswith(": 1 input added, 0 removed, 0 changed")
        refresh = d.wait_for(lambda e: e.get("input") == "more", after=mark)
        assert refresh["outcome"] == "ok" and refresh["new"] == 3
        wait_for_file(d, "/news/all.atom", b"Post 2")

        (tmp_path / "config.yaml").write_text("inputs: []\nsurprise: 1\n", encoding="utf-8")
        mark = len(d.events)
        d.proc.send_signal(signal.SIGHUP)
        refused = d.wait_for(lambda e: "reload refused" in e.get("message", ""), after=mark)
        assert refused["level"] == "error" and "surprise: unknown key" in refused["message"]

        write_config(tmp_path, inputs=[archive, more], database="sqlite:///other.db")
        mark = len(d.events)
        d.proc.send_signal(signal.SIGHUP)
        refused = d.wait_for(lambda e: "reload refused" in e.get("message", ""), after=mark)
        assert "database changed; restart `aggregator serve` to apply it" in refused["message"]
        assert not (tmp_path / "other.db").exists()

        write_config(tmp_path, inputs=[archive])
        mark = len(d.events)
        d.proc.send_signal(signal.SIGHUP)
        reload = d.wait_for(lambda e: e.get("event") == "reload", after=mark)
        assert (reload["added"], reload["removed"], reload["changed"]) == ([], ["more"], [])

        write_config(tmp_path, inputs=[{**archive, "every": "2h"}])
        mark = len(d.events)
        d.proc.send_signal(signal.SIGHUP)
        reload = d.wait_for(lambda e: e.get("event") == "reload", after=mark)
        assert (reload["added"], reload["removed"], reload["changed"]) == ([], [], ["archive"])
        assert d.get("/news/all.atom")[0] == 200  # served all along
        assert d.stop(signal.SIGTERM) == 0
    assert not [line for line in d.lines if "Traceback" in line]
    assert [e["input"] for e in d.refreshes()] == ["archive", "more"]


def make_posts(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"post-{i:05d}.md").write_text(
            f"---\ntitle: Post {i}\ndate: 2024-01-{1 + i % 28:02d} 10:00:00\n"
            f"tags: [t{i % 7}]\nfrom: https://example.com/p/{i}\n---\n\n"
            + f"Paragraph {i} of the post. "
            * 40,
            encoding="utf-8",
        )


def count_rows(db: Path, table: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_sigterm_during_a_refresh_leaves_a_consistent_store(tmp_path: Path) -> None:
    make_posts(tmp_path / "posts", 4000)
    config = write_config(tmp_path)
    with dp.running(config) as d:
        deadline = time.monotonic() + 60
        while count_rows(tmp_path / "agg.db", "versions") == 0:  # the first batch is stored
            assert time.monotonic() < deadline, "the refresh never stored anything"
            time.sleep(0.02)
        assert count_rows(tmp_path / "agg.db", "entries") == 0  # not decided yet: under way
        assert d.stop(signal.SIGTERM) == 0
        [refresh] = d.refreshes("archive")
    # The refresh under way was finished, not cut: every post is an entry, nothing pending.
    assert refresh["outcome"] == "ok" and refresh["new"] == 4000
    assert count_rows(tmp_path / "agg.db", "pending") == 0
    assert count_rows(tmp_path / "agg.db", "entries") == 4000
    leftovers = [p for p in (tmp_path / "public").rglob("*") if p.name.startswith(".tmp")]
    assert leftovers == []
    for feed in (tmp_path / "public").rglob("*.atom"):
        etree.fromstring(feed.read_bytes())  # every file whole
    done = sync(config)
    assert "entries: 4000 in store (0 new, 0 updated, 0 removed)" in done.stdout


def slow_feed(n: int, server: hs.Server, path: str, delay: float) -> hs.Handler:
    """A feed that takes `delay` to answer and notes how many fetches of it overlap."""
    body = (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>Feed {n}</title><link>https://feed{n}.example/</link>"
        + "".join(
            f"<item><title>Feed {n} story {i}</title><link>https://feed{n}.example/{i}</link>"
            f"<pubDate>Sun, {i + 1:02d} Jul 2022 09:30:00 GMT</pubDate></item>"
            for i in range(3)
        )
        + "</channel></rss>"
    ).encode()
    inner = hs.static(body, content_type="application/rss+xml")
    lock = threading.Lock()

    def handler(h: Any) -> None:
        with lock:
            server.in_flight[path] = server.in_flight.get(path, 0) + 1
            server.most[path] = max(server.most.get(path, 0), server.in_flight[path])
        try:
            time.sleep(delay)
            inner(h)
        finally:
            with lock:
                server.in_flight[path] -= 1

    return handler


@pytest.mark.postgres
def test_two_daemons_on_one_postgres_never_fetch_an_input_at_once(
    tmp_path: Path, postgres_url: str
) -> None:
    with hs.serve() as server:
        server.in_flight, server.most = {}, {}  # type: ignore[attr-defined]
        paths = [f"/feed{n}.xml" for n in range(6)]
        feeds = [
            {"kind": "feed", "url": server.route(p, slow_feed(n, server, p, 0.3)), "every": "1s"}
            for n, p in enumerate(paths)
        ]
        configs = []
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            configs.append(
                write_config(
                    folder,
                    database=postgres_url,
                    inputs=feeds,
                    fetch={"allow_private_networks": True},
                    serve={"publish_delay": "0.2s", "check_every": "0.5s", "jitter": 0},
                )
            )
        with dp.running(configs[0]) as a, dp.running(configs[1]) as b:
            started = time.monotonic()
            time.sleep(6)
            elapsed = time.monotonic() - started
            # Both serve the same bytes and the same ETag from the shared store.
            status_a, headers_a, body_a = a.get("/news/all.atom")
            status_b, headers_b, body_b = b.get("/news/all.atom")
            assert a.stop() == 0 and b.stop() == 0
        assert status_a == status_b == 200
        assert body_a == body_b and headers_a["ETag"] == headers_b["ETag"]
        assert body_a.count(b"<entry>") == 18
        fetched_by = {"a": a.refreshes(), "b": b.refreshes()}
    fetches = {p: server.hits(p) for p in paths}
    assert server.most == {p: 1 for p in paths}, "two fetches of one feed overlapped"  # type: ignore[attr-defined]
    for path, count in fetches.items():
        # Refreshed on schedule (every second, each fetch 0.3 s), but never twice per interval,
        # as two daemons each fetching would.
        assert 3 <= count <= elapsed + 2, (path, count, fetched_by)
    # Both took part: each fetch is one daemon's refresh; the other stood back.
    assert fetched_by["a"] and fetched_by["b"]
    ok = [e for events in fetched_by.values() for e in events if e["outcome"] == "ok"]
    assert len(ok) == sum(fetches.values())


def test_sync_beside_a_daemon_leaves_its_inputs_alone(tmp_path: Path) -> None:
    with hs.serve() as server:
        path = "/slow.xml"
        server.in_flight, server.most = {}, {}  # type: ignore[attr-defined]
        # slow enough for a sync and two `aggregator inputs` while the daemon fetches it
        url = server.route(path, slow_feed(1, server, path, 6.0))
        config = write_config(
            tmp_path,
            inputs=[{"kind": "feed", "url": url, "name": "slow", "every": "1h"}],
            fetch={"allow_private_networks": True},
        )
        with dp.running(config) as d:
            deadline = time.monotonic() + 10
            while server.hits(path) == 0:  # the daemon is fetching
                assert time.monotonic() < deadline
                time.sleep(0.02)
            busy = sync(config, "--force")
            assert "slow: being refreshed by serve on" in busy.stdout
            listed = subprocess.run(
                [sys.executable, "-m", "aggregator", "--config", str(config), "inputs", "--json"],
                capture_output=True, text=True, cwd=tmp_path, timeout=60, check=True,
            )  # fmt: skip
            [slow] = json.loads(listed.stdout)
            assert slow["held_by"].startswith("serve on ")
            assert slow["held_by"].endswith(f"(pid {d.proc.pid})")
            table = subprocess.run(
                [sys.executable, "-m", "aggregator", "--config", str(config), "inputs"],
                capture_output=True, text=True, cwd=tmp_path, timeout=60, check=True,
            )  # fmt: skip
            assert f"being refreshed by serve on {socket.gethostname()}" in table.stdout
            d.wait_for(lambda e: e.get("event") == "refresh" and e.get("outcome") == "ok")
            after = sync(config)
            assert "slow: not due until" in after.stdout
            assert d.stop() == 0
    assert server.hits(path) == 1


def test_websub_hub_is_told_about_changed_feeds(site: Path) -> None:
    with hs.serve() as hub:
        hub.route("/hub", hs.status(202))
        write_config(
            site.parent,
            websub={"hub": hub.url("/hub")},
            fetch={"allow_private_networks": True},
        )
        with dp.running(site) as d:
            wait_for_file(d, "/news/all.atom", b"<entry>")
            d.wait_for(lambda e: "websub: told" in e.get("message", ""))
            feed = d.get("/news/all.atom")[2]
            assert f'<link href="{hub.url("/hub")}" rel="hub"/>'.encode() in feed
            assert d.stop() == 0
    pings = [r for r in hub.requests if r.method == "POST"]
    topics = {parse_qs(r.body.decode())["hub.url"][0] for r in pings}
    assert all(parse_qs(r.body.decode())["hub.mode"] == ["publish"] for r in pings)
    assert "http://127.0.0.1:8000/news/all.atom" in topics
    assert "http://127.0.0.1:8000/news/all.rss" in topics
    assert not any("index.html" in t for t in topics)


def test_a_slow_input_never_runs_twice_at_once_and_late_runs_coalesce(tmp_path: Path) -> None:
    with hs.serve() as server:
        path = "/slow.xml"
        server.in_flight, server.most = {}, {}  # type: ignore[attr-defined]
        url = server.route(path, slow_feed(1, server, path, 1.5))
        config = write_config(
            tmp_path,
            inputs=[{"kind": "feed", "url": url, "name": "slow", "every": "0.3s"}],
            fetch={"allow_private_networks": True},
            serve={"jitter": 0},
        )
        with dp.running(config) as d:
            time.sleep(5)
            assert d.stop() == 0
    # Due every 0.3 s but each fetch takes 1.5 s: runs follow one another, never overlap, and
    # the runs missed meanwhile are one run, not a backlog.
    assert server.most == {path: 1}  # type: ignore[attr-defined]
    assert 2 <= server.hits(path) <= 4
    assert [e["outcome"] for e in d.refreshes("slow")] == ["ok"] * server.hits(path)


def test_a_new_subscriber_walks_the_whole_history_over_http(tmp_path: Path) -> None:
    make_posts(tmp_path / "posts", 25)
    config = write_config(tmp_path, feeds={"entries": 5, "archive_page": 10})
    with dp.running(config) as d:
        feed = wait_for_file(d, "/news/all.atom", b"<entry>")
        assert feed.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<?xml-stylesheet")
        assert d.get("/news/feed.xsl")[0] == 200
        seen: list[str] = []
        pages = 0
        doc = etree.fromstring(feed)
        while True:
            prev = doc.find(f"{ATOM}link[@rel='prev-archive']")
            if prev is None:
                break
            href = prev.get("href")
            assert href.startswith("http://127.0.0.1:8000/news/archive/all/")
            status, _, body = d.get(href.removeprefix("http://127.0.0.1:8000"))
            assert status == 200, href
            doc = etree.fromstring(body)
            assert doc.find("{http://purl.org/syndication/history/1.0}archive") is not None
            seen += [e.findtext(f"{ATOM}id") for e in doc.findall(f"{ATOM}entry")]
            pages += 1
        assert d.stop() == 0
    # 25 entries: pages of 10, 10, 5, reached newest page first.
    assert pages == 3
    assert len(seen) == len(set(seen)) == 25


ATOM = "{http://www.w3.org/2005/Atom}"
