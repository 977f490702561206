"""Sanitising untrusted HTML, rendering Markdown, summaries: `normalise.html`."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.normalise.html import (
    looks_like_html,
    promote_lazy_images,
    render_markdown,
    sanitise,
    summarise,
)

BASE = "https://www.example.com/news/2022/story.html"
# Characters XML 1.0 forbids: C0 controls but tab/LF/CR, surrogates, U+FFFE, U+FFFF.
INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def attr_values(html: str, name: str) -> list[str]:
    return re.findall(rf'\b{name}="([^"]*)"', html)


@pytest.mark.parametrize(
    ("dirty", "kept"),
    [
        pytest.param("<p>a</p><script>alert('x')</script>", "<p>a</p>", id="script"),
        pytest.param("<p>a</p><SCRIPT SRC=//evil.example/x.js></SCRIPT>", "<p>a</p>", id="SCRIPT"),
        pytest.param("<p>a</p><style>p{color:red}</style>", "<p>a</p>", id="style"),
        pytest.param(
            '<p>a</p><iframe src="https://evil.example/"></iframe>', "<p>a</p>", id="iframe"
        ),
        pytest.param(
            '<p>a</p><object data="x.swf"></object><embed src="x.swf">', "<p>a</p>", id="obj"
        ),
        pytest.param("<p>a</p><noscript><img src=x></noscript>", "<p>a</p>", id="noscript"),
        pytest.param('<p onclick="steal()">a</p>', "<p>a</p>", id="onclick"),
        pytest.param(
            '<p>a<img src="https://e.com/i.jpg" onerror="steal()"></p>', "<p>a", id="onerror"
        ),
        pytest.param('<p>a</p><a href="javascript:alert(1)">x</a>', "<p>a</p>", id="javascript"),
        pytest.param('<p>a</p><a href="JaVaScRiPt:alert(1)">x</a>', "<p>a</p>", id="JaVaScRiPt"),
        pytest.param('<p>a</p><a href="  javascript:alert(1)">x</a>', "<p>a</p>", id="spaced-js"),
        pytest.param('<p>a</p><a href="java\tscript:alert(1)">x</a>', "<p>a</p>", id="tab-js"),
        pytest.param(
            '<p>a</p><a href="&#106;avascript:alert(1)">x</a>', "<p>a</p>", id="entity-js"
        ),
        pytest.param(
            '<p>a</p><a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', "<p>a</p>", id="data-a"
        ),
        pytest.param(
            '<p>a</p><img src="data:image/svg+xml,<svg onload=x>">', "<p>a</p>", id="data"
        ),
        pytest.param('<p>a</p><a href="vbscript:msgbox(1)">x</a>', "<p>a</p>", id="vbscript"),
        pytest.param('<p>a</p><a href="file:///etc/passwd">x</a>', "<p>a</p>", id="file"),
        pytest.param(
            '<p>a</p><svg><a xlink:href="javascript:alert(1)">x</a></svg>', "<p>a</p>", id="svg"
        ),
        pytest.param(
            '<p>a</p><math><a href="javascript:alert(1)">x</a></math>', "<p>a</p>", id="mathml"
        ),
        pytest.param('<p style="background:url(javascript:x)">a</p>', "<p>a</p>", id="style-attr"),
        pytest.param(
            '<form action="https://evil.example"><input name=pw></form><p>a</p>',
            "<p>a</p>",
            id="form",
        ),
        pytest.param("<p>a</p><!-- <script>alert(1)</script> -->", "<p>a</p>", id="comment"),
    ],
)
def test_dangerous_html_is_removed(dirty: str, kept: str) -> None:
    clean = sanitise(dirty, BASE)
    assert kept in clean
    for bad in ("<script", "<style", "<iframe", "<object", "<embed", "<svg", "<math", "<form"):
        assert bad not in clean.lower()
    for bad in ("javascript:", "vbscript:", "data:", "file:", "alert", "steal", " on", "style="):
        assert bad not in clean.lower()


@pytest.mark.parametrize(
    ("html", "attr", "expected"),
    [
        pytest.param('<a href="/about">x</a>', "href", "https://www.example.com/about", id="root"),
        pytest.param(
            '<a href="other.html">x</a>',
            "href",
            "https://www.example.com/news/2022/other.html",
            id="sibling",
        ),
        pytest.param(
            '<img src="../img/a.jpg">', "src", "https://www.example.com/news/img/a.jpg", id="parent"
        ),
        pytest.param(
            '<img src="//cdn.example.com/a.jpg">',
            "src",
            "https://cdn.example.com/a.jpg",
            id="protocol-relative",
        ),
        pytest.param(
            '<a href="https://other.example/x">x</a>',
            "href",
            "https://other.example/x",
            id="absolute-kept",
        ),
        pytest.param(
            '<a href="mailto:news@example.com">x</a>',
            "href",
            "mailto:news@example.com",
            id="mailto",
        ),
    ],
)
def test_relative_urls_are_resolved_against_the_original(html: str, attr: str, expected) -> None:
    assert attr_values(sanitise(html, BASE), attr) == [expected]


def test_relative_urls_stay_relative_without_a_base() -> None:
    assert attr_values(sanitise('<a href="/about">x</a>', None), "href") == ["/about"]


@pytest.mark.parametrize(
    ("html", "src"),
    [
        pytest.param(
            '<img class="lazyload" data-src="https://e.com/real.jpg">',
            "https://e.com/real.jpg",
            id="data-src-only",
        ),
        pytest.param(
            '<img src="https://e.com/placeholder.gif" data-src="https://e.com/real.jpg">',
            "https://e.com/real.jpg",
            id="placeholder-replaced",
        ),
        pytest.param(
            '<img src="data:image/gif;base64,R0lGOD" data-original="https://e.com/real.jpg">',
            "https://e.com/real.jpg",
            id="data-original",
        ),
        pytest.param(
            '<IMG DATA-SRC="https://e.com/real.jpg" ALT="x">', "https://e.com/real.jpg", id="upper"
        ),
        pytest.param(
            "<img data-src='/img/real.jpg' alt='a > b'>",
            "https://www.example.com/img/real.jpg",
            id="relative-single-quotes",
        ),
        pytest.param(
            '<img data-src="https://e.com/real.jpg" />', "https://e.com/real.jpg", id="self-closing"
        ),
        pytest.param(
            '<img src="https://e.com/normal.jpg">', "https://e.com/normal.jpg", id="not-lazy"
        ),
        pytest.param(
            '<img src="https://e.com/normal.jpg" data-src="">',
            "https://e.com/normal.jpg",
            id="empty-data-src",
        ),
    ],
)
def test_lazy_images_get_their_real_src(html: str, src: str) -> None:
    clean = sanitise(html, BASE)
    assert attr_values(clean, "src") == [src]
    assert "data-" not in clean


def test_zaobao_lazy_image_keeps_its_query_and_alt() -> None:
    html = (
        '<div class="figure-media"><img class="img-fluid lazyload" data-src="https://static.'
        'zaobao.com/s3fs-public/2022-07/a.jpg?VersionId=Vyw&amp;itok=ZSM" title="说明" alt="说明" '
        'src="https://static.zaobao.com/s3fs-public/2022-07/a.jpg?VersionId=Vyw&amp;itok=ZSM" '
        'referrerpolicy="no-referrer"></div>'
    )
    clean = sanitise(html, "https://www.zaobao.com/realtime/china/story20220707-1290628")
    assert attr_values(clean, "src") == [
        "https://static.zaobao.com/s3fs-public/2022-07/a.jpg?VersionId=Vyw&amp;itok=ZSM"
    ]
    assert attr_values(clean, "alt") == ["说明"]
    assert clean.count("<img") == 1


def test_promote_lazy_images_leaves_other_tags_alone() -> None:
    html = '<p data-src="x">text</p><img src="a.jpg">'
    assert promote_lazy_images(html) == html


@pytest.mark.parametrize(
    "html",
    [
        pytest.param("<p>a\x01b\x0bc\x1fd</p>", id="raw-controls"),
        pytest.param("<p>a\ufffeb\uffff</p>", id="raw-nonchars"),
        pytest.param('<p title="a\x08b">x</p>', id="raw-in-attribute"),
        pytest.param("<p>a&#1;b</p>", id="decimal-reference"),
        pytest.param("<p>a&#x0B;b</p>", id="hex-reference"),
        pytest.param("<p>a&#xFFFE;b</p>", id="nonchar-reference"),
        pytest.param('<p title="a&#8;b">x</p>', id="reference-in-attribute"),
    ],
)
def test_characters_invalid_in_xml_are_removed(html: str) -> None:
    clean = sanitise(html, BASE)
    assert not INVALID_XML.search(clean), repr(clean)
    assert "a" in clean


def test_ordinary_content_survives() -> None:
    html = (
        '<h2>标题</h2><p>段落 <strong>粗体</strong> <em>斜体</em> <a href="https://e.com/x">链接</a>'
        '</p><figure><img src="https://e.com/a.jpg" alt="图" width="530"><figcaption>说明'
        "</figcaption></figure><ul><li>一</li></ul><blockquote>引用</blockquote>"
        "<table><tr><td>1</td></tr></table><pre><code>x &lt; y</code></pre>"
    )
    clean = sanitise(html, BASE)
    for part in (
        "<h2>标题</h2>",
        "<strong>粗体</strong>",
        "<em>斜体</em>",
        'href="https://e.com/x"',
        "<figure>",
        "<figcaption>说明</figcaption>",
        'alt="图"',
        'width="530"',
        "<li>一</li>",
        "<blockquote>引用</blockquote>",
        "<td>1</td>",
        "x &lt; y",
    ):
        assert part in clean


# ---- Markdown ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "fragment"),
    [
        pytest.param("Some **bold** text", "<strong>bold</strong>", id="bold"),
        pytest.param("# 标题\n\n正文", "<h1>标题</h1>", id="heading"),
        pytest.param("[链接](https://e.com/a)", '<a href="https://e.com/a">链接</a>', id="link"),
        pytest.param("- 一\n- 二", "<li>一</li>", id="list"),
        pytest.param("~~删除~~", "<s>删除</s>", id="strikethrough"),
        pytest.param("| a | b |\n|---|---|\n| 1 | 2 |", "<td>1</td>", id="table"),
        pytest.param(
            "text\n\n<div class=x>raw html</div>", "<div class=x>raw html</div>", id="raw"
        ),
    ],
)
def test_render_markdown(markdown: str, fragment: str) -> None:
    assert fragment in render_markdown(markdown)


@pytest.mark.parametrize(
    ("body", "is_html"),
    [
        pytest.param("<p>one</p>", True, id="one-tag"),
        pytest.param("<div>\n<p>a</p>\n</div>", True, id="block"),
        pytest.param("\n  <p>a</p>\n\n  <p>b</p>", True, id="indented-paragraphs"),
        pytest.param("<!-- c -->\n<p>a</p>", True, id="comment-first"),
        pytest.param("<p>a</p>\n\n\n<p>b</p>", True, id="several-blank-lines"),
        # Scraped HTML often has a blank line before a closing tag: still HTML.
        pytest.param("<div>\n<p>a</p>\n\n</div>", True, id="closing-tag-after-blank"),
        pytest.param("<div>\n<p>a</p>\n\n    </div>", True, id="indented-closing-tag"),
        pytest.param("Just **markdown**", False, id="markdown"),
        pytest.param("<p>a</p>\n\nThen markdown.", False, id="mixed"),
        pytest.param("", False, id="empty"),
        pytest.param("2 < 3 and 4 > 1", False, id="less-than"),
    ],
)
def test_looks_like_html(body: str, is_html: bool) -> None:
    assert looks_like_html(body) is is_html


# ---- summaries -----------------------------------------------------------------------------------


def test_summary_is_plain_text_with_collapsed_whitespace() -> None:
    html = "<h2>标题</h2><p>第一段，\n  有 <b>粗体</b> 字。</p><p>第二段 &amp; 更多 &lt;tag&gt;</p>"
    assert summarise(html, 280) == "标题 第一段， 有 粗体 字。 第二段 & 更多 <tag>"


def test_summary_is_cut_with_an_ellipsis() -> None:
    html = "<p>" + "字" * 500 + "</p>"
    summary = summarise(html, 280)
    assert len(summary) == 280
    assert summary == "字" * 279 + "…"


def test_summary_limit_zero_is_empty() -> None:
    assert summarise("<p>text</p>", 0) == ""


@settings(max_examples=80, deadline=None)
@given(
    words=st.lists(st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=12)),
    limit=st.integers(min_value=1, max_value=60),
)
def test_summary_never_exceeds_its_limit(words: list[str], limit: int) -> None:
    html = "".join(f"<p>{w}</p>" for w in words)
    summary = summarise(html, limit)
    assert len(summary) <= limit
    full = " ".join(words)
    if len(full) <= limit:
        assert summary == full
    else:
        assert summary.endswith("…")
        assert full.startswith(summary[:-1].rstrip())


def test_summary_keeps_words_split_by_inline_markup_whole() -> None:
    from aggregator.normalise.html import summarise

    text = summarise(
        "<p>有<b>粗体</b>的</p><p>It is <em>im</em>portant</p><ul><li>a</li><li>b</li></ul>", 100
    )
    assert text == "有粗体的 It is important a b"
