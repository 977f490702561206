"""The fetcher against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import http_server as hs
import pytest

from aggregator import __version__, config, fetch, live
from aggregator.fetch import FetchSettings, Request

LOCAL = FetchSettings(allow_private_networks=True, deadline=5.0)


def get(url: str, settings: FetchSettings = LOCAL, **kw: str) -> fetch.Fetched:
    return fetch.fetch_all([Request(url, **kw)], settings)[0]


def test_200_gives_body_validators_and_an_honest_user_agent(tmp_path: Path) -> None:
    cfg = config.parse(
        {
            "site": {"base_url": "https://news.example.org/feeds/"},
            "fetch": {"allow_private_networks": True, "timeout": "5s"},
        },
        base_dir=tmp_path,
    )
    settings = live.fetch_settings(cfg)  # what `aggregator sync` and `serve` send
    with hs.serve() as server:
        url = server.route("/f.xml", hs.static(b"<rss/>", "application/rss+xml; charset=GBK"))
        got = get(url, settings)
        assert got.ok and got.content == b"<rss/>"
        assert got.charset == "gbk"
        assert got.etag and got.last_modified == "Sun, 10 Jul 2022 09:30:00 GMT"
        # aggregator/<version> (+<site.base_url>): who is fetching, and where to read about it
        agent = server.requests[0].headers["user-agent"]
        assert re.fullmatch(
            r"aggregator/\d+\.\d+\S* \(\+https://news\.example\.org/feeds/\)", agent
        )
        assert agent == f"aggregator/{__version__} (+https://news.example.org/feeds/)"


def test_conditional_get_gets_304_and_no_body() -> None:
    with hs.serve() as server:
        url = server.route("/f.xml", hs.static(b"<rss/>"))
        first = get(url)
        again = get(url, etag=first.etag or "", last_modified=first.last_modified or "")
        assert again.status == 304 and again.not_modified and again.content == b""
        assert server.requests[1].headers["if-none-match"] == first.etag
        assert server.requests[1].headers["if-modified-since"] == first.last_modified


@pytest.mark.parametrize("code", [404, 410, 500, 503])
def test_http_errors_are_results_not_exceptions(code: int) -> None:
    with hs.serve() as server:
        got = get(server.route("/x", hs.status(code)))
        assert got.status == code and not got.ok and got.error is None


def test_retry_after_in_seconds_and_as_a_date() -> None:
    with hs.serve() as server:
        assert get(server.route("/a", hs.status(429, {"Retry-After": "120"}))).retry_after == 120
        later = "Wed, 21 Oct 2037 07:28:00 GMT"
        got = get(server.route("/b", hs.status(503, {"Retry-After": later})))
        assert got.retry_after is not None and got.retry_after > 300 * 24 * 3600


def test_retry_after_parser() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert fetch.retry_after("30", now) == 30
    assert fetch.retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now) == 60
    assert fetch.retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now) == 0
    assert fetch.retry_after("soon", now) is None
    assert fetch.retry_after(None, now) is None


def test_redirect_chain_is_followed_and_recorded() -> None:
    with hs.serve() as server:
        final = server.route("/final", hs.static(b"<feed/>"))
        server.route("/b", hs.redirect(308, "/final"))
        got = get(server.route("/a", hs.redirect(301, server.url("/b"))))
        assert got.ok and got.url == final
        assert got.redirects == ((301, server.url("/b")), (308, final))
        assert got.moved_permanently_to == final


def test_a_temporary_hop_means_no_permanent_move() -> None:
    with hs.serve() as server:
        server.route("/final", hs.static(b"<feed/>"))
        server.route("/b", hs.redirect(302, "/final"))
        got = get(server.route("/a", hs.redirect(301, "/b")))
        assert got.ok and got.moved_permanently_to is None


def test_redirect_loop_and_too_many_redirects_fail_in_one_line() -> None:
    with hs.serve() as server:
        server.route("/a", hs.redirect(302, "/b"))
        server.route("/b", hs.redirect(302, "/a"))
        got = get(server.url("/a"))
        assert got.status == 0 and got.error and "loop" in got.error
        for i in range(10):
            server.route(f"/r{i}", hs.redirect(301, f"/r{i + 1}"))
        got = get(server.url("/r0"))
        assert got.error == "more than 5 redirects"
        assert server.hits("/r6") == 0


def test_slow_drip_is_cut_by_the_overall_deadline() -> None:
    with hs.serve() as server:
        url = server.route("/slow", hs.drip(0.2, total=100))
        started = time.monotonic()
        got = get(url, FetchSettings(allow_private_networks=True, deadline=1.0))
        assert time.monotonic() - started < 3
        assert got.status == 0 and got.error == "no complete answer within 1 s"


def test_endless_body_stops_at_the_cap() -> None:
    with hs.serve() as server:
        url = server.route("/endless", hs.endless())
        got = get(url, FetchSettings(allow_private_networks=True, max_bytes=2 * fetch.MiB))
        assert got.status == 0 and got.error == "body larger than 2 MiB"


def test_gzip_bomb_stops_at_the_cap_while_decompressing() -> None:
    with hs.serve() as server:
        url = server.route("/bomb", hs.gzip_bomb(decoded_mib=256))
        started = time.monotonic()
        got = get(url, FetchSettings(allow_private_networks=True, max_bytes=fetch.MiB))
        assert got.error == "body larger than 1 MiB"
        assert time.monotonic() - started < 5


def test_gzip_body_is_decoded() -> None:
    with hs.serve() as server:
        body = b"<rss>" + "早报".encode() * 1000 + b"</rss>"
        got = get(server.route("/gz", hs.static(body, gzipped=True)))
        assert got.ok and got.content == body
        assert "gzip" in server.requests[0].headers["accept-encoding"]


def test_unreachable_and_unfetchable_urls() -> None:
    with hs.serve() as server:
        port = server.port
    got = get(f"http://127.0.0.1:{port}/gone")  # the server is closed now
    assert got.status == 0 and got.error and got.error.startswith("cannot connect")
    assert get("ftp://127.0.0.1/feed").error == "not an http(s) URL: ftp://127.0.0.1/feed"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # CGNAT
        ("224.0.0.1", False),  # multicast
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
    ],
)
def test_which_addresses_are_public(address: str, public: bool) -> None:
    assert fetch.is_public(address) is public


def test_guard_refuses_loopback_by_name_and_by_address() -> None:
    with hs.serve() as server:
        server.route("/f", hs.static(b"<rss/>"))
        guarded = FetchSettings(deadline=5.0)
        for url in (server.url("/f"), f"http://localhost:{server.port}/f"):
            got = get(url, guarded)
            assert got.status == 0 and got.error and "not a public address" in got.error
        assert server.requests == []


def test_guard_checks_every_redirect_hop(monkeypatch: pytest.MonkeyPatch) -> None:
    # 127.0.0.2 plays a public site here; it redirects to a private one, 127.0.0.1.
    real = fetch.is_public
    monkeypatch.setattr(fetch, "is_public", lambda a: a == "127.0.0.2" or real(a))
    with hs.serve() as private, hs.serve("127.0.0.2") as public:
        private.route("/admin", hs.static(b"secret"))
        url = public.route("/feed", hs.redirect(302, private.url("/admin")))
        got = get(url, FetchSettings(deadline=5.0))
        assert public.hits("/feed") == 1
        assert private.requests == []
        assert got.status == 0 and got.error and "127.0.0.1" in got.error


def test_per_host_limit_holds() -> None:
    active = 0
    peak = 0

    def slow(h: hs.BaseHTTPRequestHandler) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        time.sleep(0.1)
        active -= 1
        hs.send(h, 200, b"<rss/>")

    with hs.serve() as server:
        server.route("/s", slow)
        requests = [Request(server.url("/s") + f"?{i}") for i in range(8)]
        settings = FetchSettings(allow_private_networks=True, per_host=2, concurrency=8)
        results = fetch.fetch_all(requests, settings)
    assert [r.request for r in results] == requests
    assert all(r.ok for r in results)
    assert peak == 2


def test_waiting_for_a_host_slot_does_not_count_against_the_deadline() -> None:
    def slow(h: hs.BaseHTTPRequestHandler) -> None:
        time.sleep(0.4)
        hs.send(h, 200, b"<rss/>")

    with hs.serve() as server:
        server.route("/s", slow)
        requests = [Request(server.url("/s") + f"?{i}") for i in range(6)]
        settings = FetchSettings(allow_private_networks=True, per_host=1, deadline=1.0)
        results = fetch.fetch_all(requests, settings)
    assert all(r.ok for r in results)


def test_fetch_many_yields_as_results_arrive() -> None:
    async def run(urls: list[str]) -> list[str]:
        return [r.url async for r in fetch.fetch_many([Request(u) for u in urls], LOCAL)]

    def slow(h: hs.BaseHTTPRequestHandler) -> None:
        time.sleep(0.5)
        hs.send(h, 200, b"slow")

    with hs.serve() as a, hs.serve() as b:
        a.route("/slow", slow)
        b.route("/fast", hs.static(b"fast"))
        order = asyncio.run(run([a.url("/slow"), b.url("/fast")]))
    assert order == [b.url("/fast"), a.url("/slow")]


def test_host_interval_spaces_fetches_from_one_host_and_not_across_hosts() -> None:
    # One host is one host name, whatever the port: two servers on 127.0.0.1 share the spacing,
    # while `localhost` (the same machine under another name) is another host.
    interval = 0.3
    with hs.serve() as a, hs.serve() as b:
        for server in (a, b):
            server.route("/p", hs.static(b"page", "text/html"))
        by_address = [a.url(f"/p?{i}") for i in range(2)] + [b.url(f"/p?{i}") for i in range(2)]
        by_name = [f"http://localhost:{a.port}/p?{i}" for i in range(4)]
        settings = FetchSettings(
            allow_private_networks=True, per_host=1, host_interval=interval, deadline=5.0
        )
        results = fetch.fetch_all([Request(u) for u in by_address + by_name], settings)
        seen = a.requests + b.requests
    assert all(r.ok for r in results)
    address = sorted(r.at for r in seen if r.headers["host"].startswith("127.0.0.1"))
    name = sorted(r.at for r in seen if r.headers["host"].startswith("localhost"))
    assert len(address) == len(name) == 4
    for times in (address, name):
        gaps = [later - earlier for earlier, later in pairwise(times)]
        assert min(gaps) >= interval * 0.9  # a little slack: the first request also connects
    # the two hosts went side by side: one after the other would take 7 intervals or more
    assert max(address + name) - min(address + name) < 5 * interval
