"""The files adapter: finding post files, decoding them, splitting front matter from the body."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aggregator.adapters.files import (
    decode,
    load_front_matter,
    read_post,
    scan,
    split_post,
)
from aggregator.errors import ParseError, SourceError
from aggregator.types import FileStat, PostDraft

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
HEXO_SEED = "000_c76d9f67d6ff494c.txt"
JEKYLL_SEED = "001_5d55ed8ea138fb0a.txt"
JEKYLL_TITLE = "李作成与美参谋长联席会主席通话：要求停止美台军事勾连"
JEKYLL_URL = "https://www.zaobao.com/realtime/china/story20220707-1290628"


def stat(locator: str = "post.md", path: str = "/nonexistent/post.md") -> FileStat:
    return FileStat(locator=locator, path=path, signature="0:0", mtime_ns=0)


def split(text: str, locator: str = "post.md") -> PostDraft:
    return split_post(text, stat(locator))


def write(root: Path, locator: str, content: str | bytes) -> FileStat:
    path = root / locator
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    (found,) = [f for f in scan(root) if f.locator == locator]
    return found


# ---- scan ----------------------------------------------------------------------------------------


def test_scan_finds_post_files_recursively_and_skips_the_rest(tmp_path: Path) -> None:
    for name in [
        "a.md",
        "b.markdown",
        "c.html",
        "d.htm",
        "e.txt",
        "UPPER.MD",
        "2022/07/deep.md",
        "2022/07/page.HTML",
        "image.jpg",
        "config.yaml",
        "README",
        ".hidden.md",
        ".git/objects/x.md",
        "2022/.drafts/secret.md",
    ]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("---\ntitle: x\n---\n", encoding="utf-8")

    found = scan(tmp_path)

    assert [f.locator for f in found] == sorted(
        [
            "2022/07/deep.md",
            "2022/07/page.HTML",
            "UPPER.MD",
            "a.md",
            "b.markdown",
            "c.html",
            "d.htm",
            "e.txt",
        ]
    )
    for f in found:
        assert Path(f.path) == tmp_path / f.locator


def test_scan_signature_is_mtime_and_size(tmp_path: Path) -> None:
    path = tmp_path / "post.md"
    content = b"---\ntitle: x\n---\nbody\n"
    path.write_bytes(content)
    os.utime(path, ns=(1_657_206_240_000_000_000, 1_657_206_240_123_456_789))

    (found,) = scan(tmp_path)

    assert found.mtime_ns == 1_657_206_240_123_456_789
    assert found.signature == f"1657206240123456789:{len(content)}"


def test_scan_signature_changes_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "post.md"
    path.write_bytes(b"---\ntitle: x\n---\nbody\n")
    os.utime(path, ns=(10**18, 10**18))
    before = scan(tmp_path)[0].signature
    path.write_bytes(b"---\ntitle: x\n---\nlonger body\n")
    os.utime(path, ns=(10**18, 10**18))  # same mtime, different size
    assert scan(tmp_path)[0].signature != before


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(lambda p: p / "missing", "does not exist", id="missing-folder"),
        pytest.param(lambda p: p / "file.md", "is not a folder", id="a-file-not-a-folder"),
    ],
)
def test_scan_refuses_a_root_that_is_not_a_folder(tmp_path: Path, make, reason: str) -> None:
    (tmp_path / "file.md").write_text("---\ntitle: x\n---\n")
    root = make(tmp_path)
    with pytest.raises(SourceError, match=reason) as info:
        scan(root)
    assert str(root) in str(info.value)


# ---- the two seed shapes -------------------------------------------------------------------------


def test_hexo_seed_is_read() -> None:
    (file,) = [f for f in scan(SEEDS) if f.locator == HEXO_SEED]
    draft = read_post(file)

    assert draft.meta["title"] == "被曝_私联中方_，米利上将遭围攻，拜登力挺"
    assert draft.meta["categories"] == ["新媒体", "观察者网", "首页"]
    assert draft.meta["author"] == "观察者网"
    assert draft.meta["date"] == "Thu, 16 Sep 2021 10:19:20 GMT"
    assert draft.meta["comments"] == "false"  # as written, not YAML's False
    assert draft.meta["headimg"] == "https://i.guancha.cn/news/vcg/2021/09/16/20210916092736727.jpg"
    assert draft.epoch_ms is None
    assert draft.heading_url is None
    assert draft.body.startswith("<div>")
    assert "（观察者网讯）美国参谋长联席会议主席马克·米利" in draft.body
    assert draft.body.rstrip().endswith("</div>")
    assert "---" not in draft.body.splitlines()
    assert draft.warnings == ()


def test_jekyll_seed_is_read() -> None:
    (file,) = [f for f in scan(SEEDS) if f.locator == JEKYLL_SEED]
    draft = read_post(file)

    assert draft.meta["layout"] == "post"
    assert draft.meta["title"] == JEKYLL_TITLE
    assert draft.meta["date"] == "2022-07-07T15:04:00.000Z"
    assert draft.meta["from"] == JEKYLL_URL
    assert draft.meta["tags"] == ["联合早报"]
    assert draft.meta["categories"] == ["联合早报"]
    assert draft.epoch_ms == 1_657_206_240_000
    # The `[title](url)` line underlined with `------` repeats the title: it is dropped.
    assert draft.heading_url == JEKYLL_URL
    assert draft.body.startswith("<div>")
    assert "------" not in draft.body
    assert f"[{JEKYLL_TITLE}]" not in draft.body
    assert "<!--1657206240000-->" not in draft.body
    assert draft.body_format == "html"


@pytest.mark.parametrize("seed", [HEXO_SEED, JEKYLL_SEED])
def test_a_body_read_again_for_publishing_is_the_body_read_at_first(seed: str) -> None:
    """Publishing reads a post's body again without parsing its front matter, given the
    stored title: the same body, the same repeated-title line dropped."""
    (file,) = [f for f in scan(SEEDS) if f.locator == seed]
    first = read_post(file)
    title = " ".join(str(first.meta["title"]).split())
    again = read_post(file, title=title)
    assert again.meta == {}
    assert (again.body, again.body_format, again.heading_url, again.epoch_ms) == (
        first.body, first.body_format, first.heading_url, first.epoch_ms
    )  # fmt: skip
    other = read_post(file, title="Another title")
    assert (other.heading_url is None) and (other.body != first.body) == (seed == JEKYLL_SEED)


# ---- variants real archives contain --------------------------------------------------------------

BASE = "---\ntitle: 示例标题\ndate: 2022-07-10 09:30:00\ntags: [新闻, 国际]\n---\n<p>第一段。</p>\n"
BASE_META = {"title": "示例标题", "date": "2022-07-10 09:30:00", "tags": ["新闻", "国际"]}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(BASE.encode(), id="plain-utf8"),
        pytest.param(b"\xef\xbb\xbf" + BASE.encode(), id="utf8-bom"),
        pytest.param(BASE.replace("\n", "\r\n").encode(), id="crlf"),
        pytest.param(BASE.replace("\n", "\r").encode(), id="old-mac-cr"),
        pytest.param(("\n\n\n" + BASE).encode(), id="leading-blank-lines"),
        pytest.param((" \n\t\n" + BASE).encode(), id="leading-whitespace-lines"),
        pytest.param(
            b"\xef\xbb\xbf" + ("\n\n" + BASE).replace("\n", "\r\n").encode(), id="bom-crlf-blank"
        ),
        pytest.param(BASE.replace("---\n<p>", "--- \n<p>").encode(), id="closing-fence-space"),
        pytest.param(BASE.replace("---\n<p>", "...\n<p>").encode(), id="closed-by-dots"),
        pytest.param(BASE.encode("utf-16"), id="utf16-with-bom"),
    ],
)
def test_post_variants_read_the_same(tmp_path: Path, data: bytes) -> None:
    draft = read_post(write(tmp_path, "post.md", data))
    assert draft.meta == BASE_META
    assert draft.body == "<p>第一段。</p>"
    assert draft.body_format == "html"


def test_jekyll_shape_with_crlf_still_drops_epoch_and_heading(tmp_path: Path) -> None:
    text = (
        "---\r\ntitle: 标题\r\n---\r\n<!--1657206240000-->\r\n"
        "[标题](https://example.com/a)\r\n------\r\n\r\n<p>正文</p>\r\n"
    )
    draft = read_post(write(tmp_path, "post.md", text))
    assert draft.epoch_ms == 1_657_206_240_000
    assert draft.heading_url == "https://example.com/a"
    assert draft.body == "<p>正文</p>"


# ---- encodings -----------------------------------------------------------------------------------

SIMPLIFIED = [
    "国务院总理主持召开国务院常务会议，部署推动稳经济一揽子政策措施全面落地见效，确定加快推进"
    "一批交通、水利等基础设施项目建设的措施。会议指出，当前经济恢复基础仍不牢固，必须坚持稳字"
    "当头、稳中求进，在发展中解决各种问题。",
    "会议强调，要抓紧出台配套实施细则，确保政策在六月底前全部落实到位。对于中小微企业和个体工商"
    "户，要继续实施减税降费，加大普惠金融支持力度，帮助市场主体渡过难关。各地区各部门要切实履行"
    "职责，加强督促检查，及时发现和解决政策执行中的问题。",
    "会议还研究了其他事项。专家表示，这些措施有利于稳定市场预期，提振消费和投资信心，为全年经济"
    "社会发展目标的实现打下坚实基础。",
]
TRADITIONAL = [
    "立法院今日三讀通過食品安全衛生管理法部分條文修正案，大幅提高違規業者的罰鍰上限，並要求進口"
    "食品必須標示原產地。衛生福利部表示，新制上路後將加強邊境查驗，確保民眾吃得安心。",
    "根據修正條文，業者若使用未經許可的添加物，最高可處新臺幣二億元罰鍰；情節重大者，主管機關得"
    "命其歇業或廢止登記。立法委員在審查過程中多次強調，食品安全關係全體國民健康，政府必須建立完"
    "整的追溯制度。",
    "消費者團體對此表示肯定，但也呼籲主管機關落實稽查，避免法律淪為具文。業界代表則希望政府給予"
    "合理的緩衝期，協助中小企業調整生產流程。",
]


def chinese_post(title: str, author: str, tags: list[str], paragraphs: list[str]) -> str:
    body = "\n\n".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"---\ntitle: {title}\nauthor: {author}\ndate: 2022-07-10 09:30:00\n"
        f"tags: [{', '.join(tags)}]\n---\n{body}\n"
    )


GBK_POST = chinese_post(
    "国务院常务会议部署稳经济一揽子措施", "新华社", ["国内", "经济"], SIMPLIFIED
)
# 𠮷 (U+20BB7) is outside GBK: only GB18030 can encode this post.
GB18030_POST = chinese_post(
    "𠮷野家门店恢复营业",
    "新华社",
    ["国内", "消费"],
    [*SIMPLIFIED[:2], "𠮷野家门店" + SIMPLIFIED[2]],
)
BIG5_POST = chinese_post(
    "立法院三讀通過修正案 強化食品安全管理", "中央社", ["臺灣", "食品安全"], TRADITIONAL
)


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        pytest.param(GBK_POST, "gbk", id="gbk"),
        pytest.param(GBK_POST.replace("\n", "\r\n"), "gbk", id="gbk-crlf"),
        pytest.param(GB18030_POST, "gb18030", id="gb18030"),
        pytest.param(BIG5_POST, "big5", id="big5"),
        pytest.param(BIG5_POST.replace("\n", "\r\n"), "big5", id="big5-crlf"),
        # Short posts, which charset-normalizer alone often ranks Korean or Japanese
        pytest.param(chinese_post("美国国务卿访华", "新华社", [], ["美国国务卿今天抵达北京。"]),
                     "gbk", id="gbk-short"),
        pytest.param("---\ntitle: 中文\n---\n你好\n", "gbk", id="gbk-tiny"),
        pytest.param("---\ntitle: 新闻\n---\nThe quick brown fox.\n", "gbk", id="gbk-title-only"),
        pytest.param("---\ntitle: 臺灣\n---\n總統府發言人\n", "big5", id="big5-short"),
        pytest.param("---\ntitle: 聯合早報\n---\n中國經濟新聞\n", "gbk", id="gbk-traditional"),
    ],
)  # fmt: skip
def test_legacy_chinese_encodings_are_detected(tmp_path: Path, text: str, encoding: str) -> None:
    data = text.encode(encoding)
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # the test is only meaningful when the bytes are not UTF-8

    draft = read_post(write(tmp_path, "legacy.md", data))

    expected = split(text.replace("\r\n", "\n"))
    assert draft.meta == expected.meta
    assert draft.body == expected.body
    assert any("decoded as" in w for w in draft.warnings)


@pytest.mark.parametrize(
    ("text", "encoding", "guess"),
    [
        ("대한민국의 수도는 서울이다. 오늘 날씨는 맑고 기온은 영상 십도입니다. 정부는 새로운 "
         "경제 정책을 발표했다. 국회는 내일 본회의를 열어 법안을 처리할 예정이다.",
         "euc_kr", "cp949"),
        ("日本の首都は東京です。今日は晴れで、気温は十度です。政府は新しい経済政策を発表した。",
         "euc_jp", "euc_jis_2004"),
    ],
    ids=["korean", "japanese"],
)  # fmt: skip
def test_korean_and_japanese_are_not_taken_for_chinese(
    text: str, encoding: str, guess: str
) -> None:
    post = f"---\ntitle: T\n---\n{text}\n"
    assert decode(post.encode(encoding)) == (post, [f"decoded as {guess}"])


def test_utf8_is_not_reported_as_a_guess() -> None:
    assert decode(GBK_POST.encode("utf-8")) == (GBK_POST, [])
    assert decode(b"\xef\xbb\xbf" + GBK_POST.encode("utf-8")) == (GBK_POST, [])


# ---- files that are not posts --------------------------------------------------------------------

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"---\ntitle: [unclosed\n---\nbody\n", "malformed YAML", id="bad-yaml-flow"),
        pytest.param(
            b"---\ntitle: a\n  bad: indent\n---\nbody\n", "malformed YAML", id="bad-yaml-indent"
        ),
        pytest.param(b"---\ntitle: x\ntitle2: 'open\n---\n", "malformed YAML", id="bad-yaml-quote"),
        pytest.param(PNG, "binary", id="png-renamed-md"),
        pytest.param(b"\x00\x01\x02\x03" * 100, "binary", id="zero-bytes"),
        pytest.param(b"Just some notes, no front matter.\n", "no front matter", id="plain-text"),
        pytest.param(b"# A heading\n\n---\ntitle: x\n---\n", "no front matter", id="fm-not-first"),
        pytest.param(b"", "no front matter", id="empty-file"),
        pytest.param(b"---\ntitle: x\nbody without end\n", "not closed", id="unclosed"),
        pytest.param(b"---\njust a sentence\n---\nbody\n", "not a mapping", id="fm-is-scalar"),
        pytest.param(b"---\n- a\n- b\n---\nbody\n", "not a mapping", id="fm-is-list"),
        pytest.param(b"---\na: &x [*x]\n---\nbody\n", "refers to itself", id="recursive-alias"),
    ],
)
def test_files_that_are_not_posts_raise_parse_error(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    with pytest.raises(ParseError, match=reason):
        read_post(write(tmp_path, "bad.md", data))


def test_malformed_yaml_reason_names_the_line(tmp_path: Path) -> None:
    data = b"---\ntitle: ok\nauthor: ok\ntags: [a, b\ndate: 2022-07-10\n---\nbody\n"
    with pytest.raises(ParseError) as info:
        read_post(write(tmp_path, "bad.md", data))
    # Line numbers are counted in the file (the opening `---` is line 1).
    assert "line" in str(info.value)


def test_alias_bomb_is_refused_quickly() -> None:
    """A 400-byte file whose aliases expand to 10**9 items must not hang a sync."""
    lines = ["title: x", "a0: &a0 [" + ", ".join(["lol"] * 10) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    front_matter = "\n".join(lines)
    script = textwrap.dedent(
        f"""
        from aggregator.adapters.files import load_front_matter
        from aggregator.errors import ParseError
        try:
            load_front_matter({front_matter!r})
        except ParseError:
            pass
        print("done")
        """
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=3
        )
    except subprocess.TimeoutExpired:
        pytest.fail("front matter with nested aliases took more than 3 s to read")
    assert result.stdout.strip() == "done", result.stderr


def test_read_post_reports_an_unreadable_file() -> None:
    with pytest.raises(ParseError, match="cannot read"):
        read_post(stat(path="/nonexistent/definitely/missing.md"))


# ---- front matter values are kept as written -----------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        pytest.param("title: NO", {"title": "NO"}, id="norway-problem"),
        pytest.param("title: 2024", {"title": "2024"}, id="number-title"),
        pytest.param("title: 1.0e3", {"title": "1.0e3"}, id="float-title"),
        pytest.param("title: yes", {"title": "yes"}, id="bool-title"),
        pytest.param("tags: [2024, yes, off]", {"tags": ["2024", "yes", "off"]}, id="odd-tags"),
        pytest.param("date: 2022-07-20", {"date": "2022-07-20"}, id="date-stays-text"),
        pytest.param(
            "date: 2022-07-07T15:04:00.000Z",
            {"date": "2022-07-07T15:04:00.000Z"},
            id="datetime-stays-text",
        ),
        pytest.param(
            "categories:\n- [新闻, 国际]\n- 评论",
            {"categories": [["新闻", "国际"], "评论"]},
            id="hexo-nested",
        ),
        pytest.param("tags:", {"tags": None}, id="empty-value"),  # YAML null, not text
        pytest.param('title: "tab\\there"', {"title": "tab\there"}, id="escapes-decoded"),
        pytest.param("", {}, id="empty"),
        pytest.param("1: one", {"1": "one"}, id="number-key"),
    ],
)
def test_load_front_matter_keeps_text_as_written(yaml_text: str, expected: dict) -> None:
    assert load_front_matter(yaml_text) == expected


# ---- the body: epoch comment, repeated heading, format -------------------------------------------


@pytest.mark.parametrize(
    ("body", "epoch_ms", "rest"),
    [
        pytest.param("<!--1657206240000-->\n<p>x</p>", 1_657_206_240_000, "<p>x</p>", id="ms"),
        pytest.param("<!-- 1657206240 -->\n<p>x</p>", 1_657_206_240_000, "<p>x</p>", id="seconds"),
        pytest.param("\n<!--1657206240000-->\n\n<p>x</p>", 1_657_206_240_000, "<p>x</p>", id="gap"),
        pytest.param("<p>x</p>", None, "<p>x</p>", id="none"),
        pytest.param("<!-- more -->\n<p>x</p>", None, "<!-- more -->\n<p>x</p>", id="not-a-number"),
        pytest.param(
            "<p>x</p>\n<!--1657206240000-->", None, "<p>x</p>\n<!--1657206240000-->", id="not-first"
        ),
    ],
)
def test_epoch_comment(body: str, epoch_ms: int | None, rest: str) -> None:
    draft = split(f"---\ntitle: T\n---\n{body}\n")
    assert draft.epoch_ms == epoch_ms
    assert draft.body == rest


@pytest.mark.parametrize(
    ("title", "body", "heading_url", "rest"),
    [
        pytest.param(
            "标题",
            "[标题](https://e.com/a)\n------\n\n<p>x</p>",
            "https://e.com/a",
            "<p>x</p>",
            id="repeats-title",
        ),
        pytest.param(
            "Trade  Talks Resume",
            "[trade talks resume](https://e.com/a)\n---------\n\n<p>x</p>",
            "https://e.com/a",
            "<p>x</p>",
            id="case-and-space-differ",
        ),
        pytest.param(
            "标题",
            "[标题](https://e.com/a)\n======\n\n<p>x</p>",
            "https://e.com/a",
            "<p>x</p>",
            id="equals-underline",
        ),
        pytest.param(
            "[视频] 标题",
            "[[视频] 标题](https://e.com/a)\n------\n\n<p>x</p>",
            "https://e.com/a",
            "<p>x</p>",
            id="brackets-in-title",
        ),
        pytest.param(
            "标题",
            "[另一篇文章](https://e.com/b)\n------\n\n<p>x</p>",
            None,
            "[另一篇文章](https://e.com/b)\n------\n\n<p>x</p>",
            id="other-title-kept",
        ),
        pytest.param(
            "标题",
            "[标题](https://e.com/a)\n\n<p>x</p>",
            None,
            "[标题](https://e.com/a)\n\n<p>x</p>",
            id="no-underline-kept",
        ),
        pytest.param(
            "标题",
            "<p>x</p>\n\n[标题](https://e.com/a)\n------\n",
            None,
            "<p>x</p>\n\n[标题](https://e.com/a)\n------",
            id="not-at-start-kept",
        ),
    ],
)
def test_repeated_title_heading(title: str, body: str, heading_url: str | None, rest: str) -> None:
    draft = split(f'---\ntitle: "{title}"\n---\n{body}\n')
    assert draft.heading_url == heading_url
    assert draft.body == rest


@pytest.mark.parametrize(
    ("locator", "body", "body_format"),
    [
        pytest.param("a.md", "Some **bold** text.", "markdown", id="md-markdown"),
        pytest.param("a.markdown", "# Heading\n\ntext", "markdown", id="markdown-suffix"),
        pytest.param("a.txt", "<div>\n<p>x</p>\n</div>", "html", id="txt-with-html"),
        pytest.param("a.md", "<p>one</p>\n\n<p>two</p>", "html", id="md-with-html"),
        pytest.param("a.html", "Looks like **markdown**", "html", id="html-suffix-wins"),
        pytest.param("a.HTM", "plain words", "html", id="htm-upper"),
        pytest.param("a.md", "<p>intro</p>\n\nThen *markdown*.", "markdown", id="mixed-is-md"),
    ],
)
def test_body_format(locator: str, body: str, body_format: str) -> None:
    assert split(f"---\ntitle: T\n---\n{body}\n", locator).body_format == body_format


def test_malformed_yaml_names_the_line_of_the_file() -> None:
    """Line numbers count from the top of the file, leading blank lines (Hexo) included."""
    file = FileStat("x.md", "/archive/x.md", "1:1", 1)
    with pytest.raises(ParseError, match=r"mapping values are not allowed .* at line 5\)"):
        split_post("\n\n---\ntitle: ok\nkey: a: b\n---\nbody\n", file)
