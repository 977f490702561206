"""The `origin` input: archived posts' `from:` pages on a real server on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import feedparser
import http_server as hs
import pytest

from aggregator import config as config_module
from aggregator import origin
from aggregator.adapters.page import read_page
from aggregator.config import Config
from aggregator.normalise.urls import UrlRules
from aggregator.origin import other_page, recheck_after, same_text
from aggregator.sync import QuietReporter, SyncReport, sync

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
ARCHIVED = "".join(
    f"新加坡联合早报报道，中国经济在第{n}季度保持稳定增长，消费和出口在{n + 3}个省份有所回升。"
    for n in range(1, 9)
)


@pytest.fixture(autouse=True)
def quick_spacing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages on one host are fetched a second apart; a hundredth here, so tests stay quick."""
    monkeypatch.setattr(origin, "HOST_INTERVAL", 0.01)


def page(body: str, *, modified: str | None = None, title: str = "经济新闻") -> bytes:
    ld: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": title,
        "datePublished": "2022-07-10T09:30:00+08:00",
    }
    if modified:
        ld["dateModified"] = modified
    return (
        "<html><head><meta charset='utf-8'><title>站点 | 经济新闻</title>"
        f"<script type='application/ld+json'>{json.dumps(ld, ensure_ascii=False)}</script>"
        "<meta property='og:image' content='/img/lead.jpg'></head><body>"
        "<nav>首页 国际 中国 财经</nav>"
        f"<div class='story'><h1>{title}</h1><p>{body}</p></div>"
        "<footer>版权所有</footer></body></html>"
    ).encode()


def write_post(folder: Path, name: str, url: str, day: int = 10, tags: str = "[]") -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(
        f"---\ntitle: 经济新闻 {name}\ndate: 2022-07-{day:02d} 09:30:00\nauthor: 联合早报\n"
        f"tags: {tags}\nfrom: {url}\n---\n<p>{ARCHIVED}</p>\n",
        encoding="utf-8",
    )


def make_config(tmp_path: Path, **origin: Any) -> Config:
    return config_module.parse(
        {
            "database": "sqlite:///agg.db",
            "output": "public",
            "fetch": {"allow_private_networks": True, "timeout": "5s"},
            "inputs": [
                {"kind": "files", "path": "posts", "timezone": "Asia/Shanghai"},
                {"kind": "origin", **origin},
            ],
        },
        base_dir=tmp_path,
    )


class Warnings(QuietReporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warning(self, path: str, message: str) -> None:
        self.lines.append(f"{path}: {message}")


def run(cfg: Config, now: datetime = NOW, reporter: Warnings | None = None) -> SyncReport:
    return sync(cfg, now=now, workers=1, reporter=reporter)


def entries(cfg: Config) -> list[Any]:
    return list(feedparser.parse((cfg.output_dir / "all.atom").read_bytes()).entries)


def test_a_page_that_says_the_same_changes_nothing(tmp_path: Path) -> None:
    with hs.serve() as server:
        url = server.route("/news/1", hs.static(page(ARCHIVED), "text/html"))
        write_post(tmp_path / "posts", "a.md", url)
        cfg = make_config(tmp_path)
        report = run(cfg)
        assert report.inputs[1].new == 1  # the page is kept as a provenance copy
        (entry,) = entries(cfg)
        assert entry.title == "经济新闻 a.md"  # the archived copy still supplies it
        assert entry.updated == entry.published
        again = run(cfg, NOW + timedelta(days=31))
        assert server.requests[-1].headers.get("if-none-match")
        assert again.inputs[1].unchanged == 1 and again.entries_updated == 0


def test_an_article_deleted_from_the_archive_leaves_despite_its_page(tmp_path: Path) -> None:
    """The origin input follows articles other inputs carry: once the post is deleted, the
    copy of its page that input kept does not keep the entry in the feeds."""
    with hs.serve() as server:
        url = server.route("/news/1", hs.static(page(ARCHIVED), "text/html"))
        write_post(tmp_path / "posts", "a.md", url)
        cfg = make_config(tmp_path)
        assert run(cfg).inputs[1].new == 1  # the page, kept as a copy
        (tmp_path / "posts" / "a.md").unlink()
        report = run(cfg, NOW + timedelta(days=1))
    assert report.entries_removed == 1 and report.entries_total == 0
    assert entries(cfg) == []


@pytest.mark.parametrize(
    ("etag", "last_modified"),
    [
        (True, "Sun, 10 Jul 2022 09:30:00 GMT"),
        (True, None),
        (False, "Sun, 10 Jul 2022 09:30:00 GMT"),
    ],
    ids=["both", "etag", "last-modified"],
)
def test_a_second_check_is_conditional_and_a_304_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, etag: bool, last_modified: str | None
) -> None:
    statuses: list[int] = []
    serve_page = hs.static(page(ARCHIVED), "text/html", last_modified=last_modified, etag=etag)

    def counted(h: Any) -> None:  # the page, with each status it answers recorded
        def send_response(code: int, message: str | None = None) -> None:
            statuses.append(code)
            type(h).send_response(h, code, message)

        h.send_response = send_response
        serve_page(h)

    reads = 0
    read = origin._read

    def counting_read(*args: Any) -> Any:
        nonlocal reads
        reads += 1
        return read(*args)

    monkeypatch.setattr(origin, "_read", counting_read)
    with hs.serve() as server:
        url = server.route("/news/1", counted)
        write_post(tmp_path / "posts", "a.md", url)
        cfg = make_config(tmp_path)
        run(cfg)
        assert statuses == [200] and reads == 1
        published = (cfg.output_dir / "all.atom").read_bytes()
        later = NOW + timedelta(days=31)
        again = run(cfg, later)
        second = server.requests[-1].headers
        assert ("if-none-match" in second) is etag
        assert second.get("if-modified-since") == last_modified
        assert statuses == [200, 304]
        assert reads == 1  # the 304 was not parsed
        assert again.inputs[1].unchanged == 1 and again.entries_updated == 0
        assert (cfg.output_dir / "all.atom").read_bytes() == published
        run(cfg, later + timedelta(minutes=1))  # the 304 counts as a check: not due again yet
        assert len(server.requests) == 2


def test_a_page_that_really_changed_is_a_new_revision(tmp_path: Path) -> None:
    changed = "更正：" + "中国经济第二季度增长放缓，出口下降，消费疲软，专家建议加大刺激力度。" * 6
    with hs.serve() as server:
        url = server.route(
            "/news/1", hs.static(page(changed, modified="2026-11-20T10:00:00+08:00"))
        )
        write_post(tmp_path / "posts", "a.md", url)
        cfg = make_config(tmp_path)
        report = run(cfg)
    assert report.inputs[1].updated == 1 and report.entries_updated == 1
    (entry,) = entries(cfg)
    assert "更正" in entry.content[0].value and "版权所有" not in entry.content[0].value
    assert entry.updated == "2026-11-20T02:00:00+00:00"  # the page's own modification time
    assert entry.published == "2022-07-10T01:30:00+00:00"


def test_a_stored_body_that_cannot_be_read_is_not_taken_as_changed(tmp_path: Path) -> None:
    """An archived post's body lives in its file: with the folder moved away, the page has
    nothing to be compared with, so it is no revision; it is compared once the file is back."""
    with hs.serve() as server:
        url = server.route("/news/1", hs.static(page(ARCHIVED), "text/html"))
        write_post(tmp_path / "posts", "a.md", url)
        cfg = make_config(tmp_path)
        files, pages = (i.display_name for i in cfg.inputs)
        sync(cfg, now=NOW, workers=1, only=[files])
        (tmp_path / "posts").rename(tmp_path / "away")
        warnings = Warnings()
        report = sync(cfg, now=NOW, workers=1, only=[pages], reporter=warnings)
        assert report.entries_updated == 0 and report.inputs[0].updated == 0
        assert warnings.lines == [
            f"{url}: stored body cannot be read ({tmp_path / 'posts' / 'a.md'}); compared later"
        ]
        (tmp_path / "away").rename(tmp_path / "posts")
        later = sync(cfg, now=NOW + timedelta(days=31), workers=1, only=[pages])
        assert server.requests[-1].headers.get("if-none-match") is None  # read in full again
    assert later.inputs[0].new == 1 and later.entries_updated == 0  # the same text: provenance
    (entry,) = entries(cfg)
    assert ARCHIVED[:20] in entry.content[0].value and entry.updated == entry.published


def test_a_thin_extraction_never_replaces_stored_content(tmp_path: Path) -> None:
    with hs.serve() as server:
        url = server.route("/news/1", hs.static(page("登录后阅读全文。"), "text/html"))
        write_post(tmp_path / "posts", "a.md", url)
        cfg = make_config(tmp_path)
        report = run(cfg)
    assert report.inputs[1].skipped[0].reason.startswith("extraction too thin")
    assert not report.failed
    (entry,) = entries(cfg)
    assert ARCHIVED[:20] in entry.content[0].value


def test_a_page_gone_at_origin_marks_the_entry_and_keeps_it(tmp_path: Path) -> None:
    with hs.serve() as server:
        url = server.route("/news/1", hs.static(page(ARCHIVED), "text/html"))
        write_post(tmp_path / "posts", "a.md", url, tags="[经济]")
        cfg = make_config(tmp_path)
        run(cfg)
        server.route("/news/1", hs.status(404))
        later = NOW + timedelta(days=31)
        report = run(cfg, later)
        assert report.entries_updated == 1 and not report.failed
        (entry,) = entries(cfg)
        # the day it was noticed is shown, and the entry says when it changed
        assert [t.term for t in entry.tags] == ["经济", "removed at origin 2026-12-23"]
        assert entry.updated == later.isoformat()
        assert ARCHIVED[:20] in entry.content[0].value
        # the mark is no tag readers subscribe to: no feed of its own, nowhere listed
        published = {p.relative_to(cfg.output_dir).as_posix() for p in cfg.output_dir.rglob("*")}
        assert any(p.startswith("tag/") for p in published)  # the post's own tag has feeds
        assert not [p for p in published if "removed" in p]
        for listing in ("index.html", "feeds.opml"):
            assert "removed at origin" not in (cfg.output_dir / listing).read_text("utf-8")
        # still gone a month later: the same mark and date, the same bytes
        atom = (cfg.output_dir / "all.atom").read_bytes()
        again = run(cfg, later + timedelta(days=31))
        assert server.hits("/news/1") == 3 and again.entries_updated == 0
        assert (cfg.output_dir / "all.atom").read_bytes() == atom
        server.route("/news/1", hs.static(page(ARCHIVED), "text/html"))
        run(cfg, later + timedelta(days=62))
        (entry,) = entries(cfg)
        assert [t.term for t in entry.tags] == ["经济"]  # back at origin: the mark is gone


SITE_HOME = (
    "<html><head><meta charset='utf-8'><title>Site home</title><link rel='canonical' href='/'>"
    "</head><body><div class='news'>"
    + "<p>今日头条：各地新闻汇总，体育、娱乐、财经、科技报道一览无余，欢迎订阅。</p>" * 12
    + "</div></body></html>"
).encode()


def test_a_redirect_to_another_page_keeps_the_stored_content(tmp_path: Path) -> None:
    with hs.serve() as server:
        url = server.route("/story/123", hs.static(page(ARCHIVED), "text/html"))
        write_post(tmp_path / "posts", "a.md", url)
        cfg = make_config(tmp_path)
        run(cfg)
        home = server.route("/", hs.static(SITE_HOME, "text/html"))
        server.route("/story/123", hs.redirect(302, "/"))
        warnings = Warnings()
        later = NOW + timedelta(days=31)
        report = run(cfg, later, warnings)
        assert report.entries_updated == 0 and not report.failed
        (entry,) = entries(cfg)
        assert entry.title == "经济新闻 a.md"
        assert ARCHIVED[:20] in entry.content[0].value and "今日头条" not in entry.content[0].value
        (line,) = (w for w in warnings.lines if w.startswith(url))
        assert home in line and "\n" not in line
        assert "changed" not in line
        # retried like any failure, backing off: after 5 minutes, then after 10
        run(cfg, later + timedelta(minutes=6))
        run(cfg, later + timedelta(minutes=12))
        assert server.hits("/story/123") == 3
        run(cfg, later + timedelta(minutes=17))
        assert server.hits("/story/123") == 4
        (entry,) = entries(cfg)
        assert entry.title == "经济新闻 a.md"


def test_the_home_page_served_at_the_article_url_is_not_taken(tmp_path: Path) -> None:
    with hs.serve() as server:
        url = server.route("/story/123", hs.static(SITE_HOME, "text/html"))
        write_post(tmp_path / "posts", "a.md", url)
        cfg = make_config(tmp_path)
        warnings = Warnings()
        report = run(cfg, reporter=warnings)
        home = server.url("/")
    assert report.inputs[1].skipped[0].reason.startswith(f"the page names {home} as its own")
    (entry,) = entries(cfg)
    assert ARCHIVED[:20] in entry.content[0].value and "今日头条" not in entry.content[0].value


def test_a_redirect_to_the_same_page_with_a_trailing_slash_is_read(tmp_path: Path) -> None:
    changed = "更正：" + "中国经济第二季度增长放缓，出口下降，消费疲软，专家建议加大刺激力度。" * 6
    with hs.serve() as server:
        url = server.route("/news/1", hs.redirect(301, "/news/1/"))
        server.route("/news/1/", hs.static(page(changed), "text/html"))
        write_post(tmp_path / "posts", "a.md", url)
        cfg = make_config(tmp_path)
        report = run(cfg)
    assert report.inputs[1].updated == 1 and not report.inputs[1].skipped
    (entry,) = entries(cfg)
    assert "更正" in entry.content[0].value


ALIASES = UrlRules.make(aliases={"zaobao.com.sg": "zaobao.com"})


@pytest.mark.parametrize(
    ("article", "final", "canonical", "other"),
    [
        ("http://a.com/story/1", "https://a.com/story/1", None, None),
        ("http://a.com/story/1", "http://a.com/story/1/", None, None),
        ("https://a.com/story/1/", "https://A.com:443/story/1", None, None),
        ("http://a.com/story/1", "https://www.a.com/story/1", None, None),
        ("http://a.com/story/1?utm_source=x", "http://a.com/story/1#top", None, None),
        ("https://www.zaobao.com.sg/n/1", "https://www.zaobao.com/n/1", None, None),
        ("http://a.com/story/1", "http://a.com/", None, "http://a.com/"),
        ("http://a.com/story/1", "http://a.com/story/2", None, "http://a.com/story/2"),
        ("http://a.com/story/1", "http://b.com/story/1", None, "http://b.com/story/1"),
        ("http://a.com/s?id=1", "http://a.com/s?id=2", None, "http://a.com/s?id=2"),
        (
            "http://a.com/story/1",
            "http://a.com/login?next=1",
            "http://a.com/",
            "http://a.com/login?next=1",
        ),
        # the page it ended at names the article as its own
        ("http://a.com/story/1", "http://a.com/2022/story-1", "https://a.com/story/1/", None),
        # the article's URL answered with the home page
        ("http://a.com/story/1", "http://a.com/story/1", "http://a.com/", "http://a.com/"),
        # naming another form of the article (a slug, AMP) is not taken as proof
        ("http://a.com/story/1", "http://a.com/story/1", "http://a.com/story/1-slug", None),
        ("http://a.com/", "https://a.com", "http://a.com/", None),
    ],
)
def test_other_page(article: str, final: str, canonical: str | None, other: str | None) -> None:
    assert other_page(article, final, canonical, ALIASES) == other


@pytest.mark.parametrize(
    ("head", "canonical"),
    [
        ("<link rel='canonical' href='/story/1'>", "/story/1"),
        ("<link rel='Canonical alternate' href=' https://a.com/1 '>", "https://a.com/1"),
        # many site templates put the home page in og:url on every page: not taken
        ("<meta property='og:url' content='https://a.com/'>", None),
        (
            "<meta property='og:url' content='https://a.com/og'><link rel=canonical href='/c'>",
            "/c",
        ),
        ("<link rel='alternate' href='/amp'>", None),
    ],
)
def test_the_page_names_its_own_url(head: str, canonical: str | None) -> None:
    html = f"<html><head>{head}</head><body><p>text</p></body></html>".encode()
    assert read_page(html, "https://a.com/story/1").canonical == canonical


def test_unreachable_pages_are_warnings_not_failures(tmp_path: Path) -> None:
    with hs.serve() as server:
        url = server.route("/news/1", hs.status(500))
        write_post(tmp_path / "posts", "a.md", url)
        cfg = make_config(tmp_path)
        report = run(cfg)
    assert not report.failed
    assert report.inputs[1].skipped[0].reason == "HTTP 500"
    assert len(entries(cfg)) == 1


def test_newest_entries_first_and_a_bounded_number_per_run(tmp_path: Path) -> None:
    with hs.serve() as server:
        for day in (1, 2, 3):
            url = server.route(f"/news/{day}", hs.static(page(ARCHIVED), "text/html"))
            write_post(tmp_path / "posts", f"{day}.md", url, day=day)
        cfg = make_config(tmp_path, per_run=2)
        run(cfg)
        assert sorted(r.path for r in server.requests) == ["/news/2", "/news/3"]
        run(cfg, NOW + timedelta(minutes=1))
        assert server.hits("/news/1") == 1


def test_pages_on_one_host_are_fetched_spaced_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(origin, "HOST_INTERVAL", 0.25)
    with hs.serve() as server:
        for day in (1, 2, 3):
            url = server.route(f"/news/{day}", hs.static(page(ARCHIVED), "text/html"))
            write_post(tmp_path / "posts", f"{day}.md", url, day=day)
        run(make_config(tmp_path))
        times = sorted(r.at for r in server.requests)
    assert len(times) == 3
    assert all(b - a >= 0.25 * 0.9 for a, b in pairwise(times))


def test_per_host_selector_picks_the_body(tmp_path: Path) -> None:
    with hs.serve() as server:
        body = page("正文之外的内容。" * 40).replace(
            b"<footer>",
            b"<div class='real'>" + ("选择器选中的正文。" * 40).encode() + b"</div><footer>",
        )
        url = server.route("/news/1", hs.static(body, "text/html"))
        write_post(tmp_path / "posts", "a.md", url)
        cfg = make_config(tmp_path, selectors={"127.0.0.1": "div.real"})
        run(cfg)
    (entry,) = entries(cfg)
    assert "选择器选中的正文" in entry.content[0].value
    assert "正文之外的内容" not in entry.content[0].value


def test_new_selectors_read_pages_already_checked_again(tmp_path: Path) -> None:
    with hs.serve() as server:
        body = page("正文之外的内容。" * 40).replace(
            b"<footer>",
            b"<div class='real'>" + ("选择器选中的正文。" * 40).encode() + b"</div><footer>",
        )
        url = server.route("/news/1", hs.static(body, "text/html", etag=True))
        write_post(tmp_path / "posts", "a.md", url)
        run(make_config(tmp_path))
        assert len(server.requests) == 1
        cfg = make_config(tmp_path, selectors={"127.0.0.1": "div.real"})
        soon = NOW + timedelta(minutes=5)  # the page is not due for a recheck yet
        report = run(cfg, soon)
        assert len(server.requests) == 2
        assert "if-none-match" not in server.requests[1].headers  # read whole, not a 304
        assert report.entries_updated == 1
        (entry,) = entries(cfg)
        assert "选择器选中的正文" in entry.content[0].value
        run(cfg, soon + timedelta(minutes=1))  # read under these selectors: not due again
        assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (ARCHIVED, ARCHIVED.replace("，", " ").replace("。", "！"), True),
        (ARCHIVED, ARCHIVED + "图片：路透社", True),
        (ARCHIVED, ARCHIVED.replace("增长", "下跌").replace("回升", "回落"), False),
        ("The economy grew.", "the ECONOMY grew", True),
        ("", "", True),
        ("", "text", False),
    ],
)
def test_same_text(a: str, b: str, same: bool) -> None:
    assert same_text(a, b) is same


def test_older_entries_are_rechecked_less_often() -> None:
    assert recheck_after(NOW - timedelta(hours=2), NOW) == timedelta(hours=1)
    assert recheck_after(NOW - timedelta(days=10), NOW) == timedelta(days=1)
    assert recheck_after(NOW - timedelta(days=3650), NOW) == timedelta(days=30)
