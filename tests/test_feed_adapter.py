"""Reading fetched feed documents (both parsers) and normalising their items."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from aggregator.adapters import feed
from aggregator.errors import ParseError
from aggregator.normalise.item import ItemSettings, normalise_document, normalise_item
from aggregator.parsing import parse_feed
from aggregator.types import FeedDocument

URL = "https://news.example.com/feed.xml"

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/">
<channel>
  <title>Example News</title><link>https://news.example.com/</link><language>zh-CN</language>
  <item>
    <title>First &amp; foremost</title>
    <link>https://news.example.com/a/1?utm_source=rss</link>
    <guid isPermaLink="false">item-1</guid>
    <pubDate>Sun, 10 Jul 2022 09:30:00 +0800</pubDate>
    <dc:creator>Li Wei</dc:creator>
    <category>World</category><category>Asia</category>
    <description>Short &lt;b&gt;summary&lt;/b&gt;</description>
    <content:encoded><![CDATA[<p>Body <img data-src="/img/1.jpg"> text</p><script>alert(1)</script>
      <a href="javascript:alert(2)">x</a>]]></content:encoded>
    <enclosure url="https://cdn.example.com/1.mp3" type="audio/mpeg" length="1234"/>
    <media:thumbnail url="https://cdn.example.com/1.jpg?w=1&amp;h=2"/>
  </item>
  <item>
    <title>Second</title>
    <link>/a/2</link>
    <pubDate>Mon, 11 Jul 2022 10:00:00 GMT</pubDate>
    <description>Only a description</description>
  </item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
  <title>Atom Site</title><link href="https://atom.example.org/"/>
  <id>urn:x</id><updated>2022-07-12T00:00:00Z</updated>
  <author><name>Feed Author</name></author>
  <entry>
    <title type="html">Atom &lt;em&gt;entry&lt;/em&gt;</title>
    <link rel="alternate" href="https://atom.example.org/e/1"/>
    <id>tag:atom.example.org,2022:1</id>
    <published>2022-07-10T08:00:00+02:00</published>
    <updated>2022-07-12T08:00:00+02:00</updated>
    <category term="tech"/>
    <summary>Atom summary</summary>
    <content type="html">&lt;p&gt;Atom body&lt;/p&gt;</content>
  </entry>
</feed>"""

JSON_FEED = b"""{
  "version": "https://jsonfeed.org/version/1.1",
  "title": "JSON Site", "home_page_url": "https://json.example.net/", "language": "de",
  "authors": [{"name": "Site Team"}],
  "items": [
    {"id": "j1", "url": "https://json.example.net/p/1", "title": "Eins",
     "content_html": "<p>Hallo <b>Welt</b></p>", "summary": "Kurz",
     "date_published": "2022-07-10T09:30:00+02:00", "date_modified": "2022-07-11T09:30:00Z",
     "tags": ["news", "Welt"], "image": "/i/1.png",
     "attachments": [{"url": "https://json.example.net/a.mp3", "mime_type": "audio/mpeg",
                      "size_in_bytes": 99}]},
    {"id": "j2", "content_text": "No title here, just text\\n\\nand more"},
    "not an item"
  ]
}"""

JSON_FEED_10 = b"""{"version": "https://jsonfeed.org/version/1", "title": "Old",
  "author": {"name": "Solo"},
  "items": [{"id": "1", "url": "https://old.example/1", "title": "T", "content_text": "x"}]}"""


def settings(**kw: object) -> ItemSettings:
    return ItemSettings(scope=str(kw.pop("scope", "news")), **kw)  # type: ignore[arg-type]


def test_rss_items_are_read_fully(parser: str) -> None:
    doc = feed.parse_document(RSS, URL)
    assert doc.title == "Example News" and doc.language == "zh-CN"
    first, second = doc.items
    assert first.guid == "item-1"
    assert first.link == "https://news.example.com/a/1?utm_source=rss"
    assert first.title == "First & foremost"
    assert first.published == "Sun, 10 Jul 2022 09:30:00 +0800"
    assert first.authors == ("Li Wei",)
    assert first.categories == ("World", "Asia")
    assert first.content is not None and "data-src" in first.content
    assert first.summary == "Short <b>summary</b>"
    assert first.enclosures[0][:2] == ("https://cdn.example.com/1.mp3", "audio/mpeg")
    assert first.image == "https://cdn.example.com/1.jpg?w=1&h=2"
    assert second.link == "https://news.example.com/a/2"  # resolved against the feed
    assert second.content == "Only a description" and second.summary is None


def test_rss_items_normalise_to_clean_versions(parser: str) -> None:
    doc = feed.parse_document(RSS, URL)
    versions, skipped = normalise_document(doc, settings(tags=("extra",)))
    assert skipped == []
    v = versions[0]
    assert v.link == "https://news.example.com/a/1"  # tracking parameter dropped
    assert v.identity_key == "url:news.example.com/a/1"
    assert v.locator == v.identity_key
    assert v.title == "First & foremost"
    assert v.published == datetime(2022, 7, 10, 1, 30, tzinfo=UTC)
    assert v.source_name == "Example News"
    assert [d for _, d in v.tags] == ["World", "Asia", "extra"]
    assert v.content is not None
    assert "<script" not in v.content and "alert" not in v.content
    assert "javascript:" not in v.content
    assert 'src="https://news.example.com/img/1.jpg"' in v.content  # lazy image promoted
    assert v.summary == "Short summary"
    assert v.language == "zh-CN"
    assert v.enclosures == (("https://cdn.example.com/1.mp3", "audio/mpeg", 1234),)


def test_atom_entries(parser: str) -> None:
    doc = feed.parse_document(ATOM, "https://atom.example.org/feed")
    (v,), _ = normalise_document(doc, settings())
    assert v.title == "Atom entry"
    assert v.published == datetime(2022, 7, 10, 6, 0, tzinfo=UTC)
    assert v.declared_updated == datetime(2022, 7, 12, 6, 0, tzinfo=UTC)
    assert v.content == "<p>Atom body</p>"
    assert v.summary == "Atom summary"
    assert [d for _, d in v.tags] == ["tech"]


def test_json_feed_11_and_10() -> None:
    doc = feed.parse_document(JSON_FEED, "https://json.example.net/feed.json")
    assert doc.title == "JSON Site" and len(doc.items) == 2
    (one, two), _skipped = normalise_document(doc, settings())
    assert one.link == "https://json.example.net/p/1"
    assert one.author == "Site Team"
    assert one.image == "https://json.example.net/i/1.png"
    assert one.enclosures == (("https://json.example.net/a.mp3", "audio/mpeg", 99),)
    assert one.declared_updated == datetime(2022, 7, 11, 9, 30, tzinfo=UTC)
    assert one.language == "de" and one.summary == "Kurz"
    assert two.title == "No title here, just text and more"  # from the text
    assert two.identity_key.startswith("guid:")
    old = feed.parse_document(JSON_FEED_10, "https://old.example/feed.json")
    assert old.items[0].authors == ("Solo",)


@pytest.mark.parametrize(
    ("encoding", "declared", "http_charset"),
    [
        ("gbk", "gbk", None),  # declared in the document
        ("gbk", None, None),  # undeclared: detected
        ("gbk", "utf-8", None),  # mislabelled: detected
        ("gb18030", None, "utf-8"),  # the server lies: detected
        ("big5", "big5", None),
        ("big5", None, "big5"),  # declared by HTTP only
    ],
)
def test_chinese_encodings(
    parser: str, encoding: str, declared: str | None, http_charset: str | None
) -> None:
    decl = f' encoding="{declared}"' if declared else ""
    title = "联合早报：中国经济新闻" if encoding != "big5" else "聯合早報：中國經濟新聞"
    body = "新加坡联合早报报道，中国经济持续增长。" * 20
    if encoding == "big5":
        body = "新加坡聯合早報報道，中國經濟持續增長。" * 20
    text = (
        f'<?xml version="1.0"{decl}?><rss version="2.0"><channel><title>{title}</title>'
        f"<item><title>{title}</title><link>https://www.zaobao.com/n/1</link>"
        f"<description>{body}</description></item></channel></rss>"
    )
    doc = feed.parse_document(text.encode(encoding), URL, http_charset)
    assert doc.title == title
    assert doc.items[0].title == title
    assert doc.items[0].content == body


@pytest.mark.parametrize(
    ("title", "encoding", "declared", "http_charset", "warning"),
    [
        ("联合早报", "utf-8", "utf-8", "iso-8859-1",
         "declared charset iso-8859-1 in HTTP but the document says utf-8; read as utf-8"),
        ("联合早报", "gbk", "gbk", "ISO-8859-1",
         "declared charset ISO-8859-1 in HTTP but the document says gbk; read as gbk"),
        ("联合早报", "utf-8", None, "windows-1252",
         "declared charset windows-1252 in HTTP but the document is valid utf-8; read as utf-8"),
        ("Café crème", "latin-1", "iso-8859-1", "iso-8859-1", None),  # correctly labelled
        ("Café crème", "latin-1", None, "iso-8859-1", None),  # not UTF-8: the label holds
        ("Café crème", "latin-1", "utf-8", "iso-8859-1", None),  # the declaration is wrong
        ("Café crème", "cp1252", "windows-1252", "windows-1252", None),
    ],
    ids=["utf8-declared", "gbk-declared", "utf8-undeclared", "latin1", "latin1-undeclared",
         "latin1-declared-utf8", "cp1252"],
)  # fmt: skip
def test_a_western_http_charset_gives_way_to_the_document(
    title: str, encoding: str, declared: str | None, http_charset: str, warning: str | None
) -> None:
    decl = f'<?xml version="1.0" encoding="{declared}"?>' if declared else ""
    text = (
        f"{decl}<rss version='2.0'><channel><title>{title}</title><item><title>{title}</title>"
        f"<link>https://site.example/1</link></item></channel></rss>"
    )
    doc = feed.parse_document(text.encode(encoding), URL, http_charset)
    assert doc.title == title and doc.items[0].title == title
    assert doc.warnings == ((warning,) if warning else ())


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>Bomb</title>
<item><title>&lol9;</title><link>https://bomb.example/1</link></item></channel></rss>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>XXE</title>
<item><title>leak: &xxe;</title><link>https://xxe.example/1</link>
<description>&xxe;</description></item></channel></rss>"""


def test_entity_bomb_is_harmless() -> None:
    started = time.monotonic()
    result = parse_feed(BILLION_LAUGHS, URL, None, settings())
    assert time.monotonic() - started < 5
    (v,) = result.versions  # the item is still read, its entity left unexpanded
    assert v.link == "https://bomb.example/1"
    assert "lollollol" not in v.title + (v.content or "")


def test_external_entities_are_not_read() -> None:
    result = parse_feed(XXE, URL, None, settings())
    (v,) = result.versions
    assert v.link == "https://xxe.example/1"
    assert "root:" not in v.title + (v.content or "") + (v.summary or "")


def test_not_a_feed_is_a_parse_error() -> None:
    for data in (b"", b"   ", b"<html><body><p>Hello</p></body></html>", b"{not json"):
        with pytest.raises(ParseError):
            feed.parse_document(data, URL)
    assert parse_feed(b"<html><p>hi</p></html>", URL, None, settings()).error


def test_malformed_feed_is_recovered_by_feedparser() -> None:
    broken = RSS.replace(b"<title>Second</title>", b"<title>Second & third</title>")
    doc = feed.parse_document(broken, URL)
    assert len(doc.items) == 2
    assert doc.warnings and doc.warnings[0].startswith("not well-formed")


@pytest.mark.parametrize("data", [RSS.split(b"<item>")[0], ATOM.split(b"<entry>")[0]])
def test_a_feed_cut_off_before_its_first_item_is_a_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError, match="not well-formed, and no item could be read"):
        feed.parse_document(data, URL)


def test_a_feed_without_items_is_read(parser: str) -> None:
    data = b"<rss version='2.0'><channel><title>Quiet</title></channel></rss>"
    doc = feed.parse_document(data, URL)
    assert (doc.title, doc.items, doc.warnings) == ("Quiet", (), ())
    # an HTML entity XML does not define loses nothing: still a feed with no items
    lenient = feed.parse_document(data.replace(b"Quiet", b"Quiet &yen;"), URL)
    assert (lenient.title, lenient.items) == ("Quiet \xa5", ())
    # nor does a script a free host appends after the document: it did close
    hosted = feed.parse_document(data + b"<script src='//ads.example/x.js'></script>", URL)
    assert (hosted.title, hosted.items) == ("Quiet", ())


def test_a_guid_repeated_in_one_document_is_one_version(parser: str) -> None:
    item = "<item><title>Same {n}</title><guid>dup</guid><description>v{n}</description></item>"
    items = item.format(n=1) + item.format(n=2)
    text = f"<rss version='2.0'><channel><title>D</title>{items}</channel></rss>"
    versions, _ = normalise_document(feed.parse_document(text.encode(), URL), settings())
    assert len(versions) == 1 and versions[0].title == "Same 1"


def test_changing_guids_for_one_link_are_one_identity() -> None:
    def doc(guid: str) -> bytes:
        return (
            "<rss version='2.0'><channel><title>U</title><item><title>T</title>"
            f"<link>https://u.example/1</link><guid>{guid}</guid></item></channel></rss>"
        ).encode()

    a = normalise_document(feed.parse_document(doc("g-1"), URL), settings())[0][0]
    b = normalise_document(feed.parse_document(doc("g-2"), URL), settings())[0][0]
    assert a.identity_key == b.identity_key and a.locator == b.locator


def test_guid_identity_is_scoped_to_its_input() -> None:
    text = (
        b"<rss version='2.0'><channel><title>G</title>"
        b"<item><title>T</title><guid>42</guid></item></channel></rss>"
    )
    doc = feed.parse_document(text, URL)
    a = normalise_item(doc.items[0], doc, settings(scope="one"))
    b = normalise_item(doc.items[0], doc, settings(scope="two"))
    assert a.identity_key.startswith("guid:") and a.identity_key != b.identity_key


def test_cst_is_china_time_when_the_input_zone_says_so() -> None:
    text = (
        b"<rss version='2.0'><channel><title>Z</title><item><title>T</title>"
        b"<link>https://z.example/1</link><pubDate>Sun, 10 Jul 2022 09:30:00 CST</pubDate>"
        b"</item></channel></rss>"
    )
    doc = feed.parse_document(text, URL)
    china = normalise_item(doc.items[0], doc, settings(timezone="Asia/Shanghai"))
    assert china.published == datetime(2022, 7, 10, 1, 30, tzinfo=UTC)
    us = normalise_item(doc.items[0], doc, settings())
    assert us.published == datetime(2022, 7, 10, 15, 30, tzinfo=UTC)
    # a zone of UTC says nothing about CST: the email parser's meaning, as for posts
    utc = normalise_item(doc.items[0], doc, settings(timezone="UTC"))
    assert utc.published == us.published


def test_item_with_nothing_to_show_is_skipped() -> None:
    text = (
        b"<rss version='2.0'><channel><title>E</title><item><guid>x</guid></item></channel></rss>"
    )
    result = parse_feed(text, URL, None, settings())
    assert result.versions == [] and result.skipped == [
        (0, "item has no title, no content and no link")
    ]


def test_control_characters_never_reach_a_version() -> None:
    text = (
        b"<rss version='2.0'><channel><title>C</title><item><title>Bad &#1;title\x0b</title>"
        b"<link>https://c.example/1</link><description>body &amp;#2; here</description>"
        b"</item></channel></rss>"
    )
    result = parse_feed(text, URL, None, settings())
    v = result.versions[0]
    for value in (v.title, v.content or "", v.summary or ""):
        assert not any(ord(c) < 9 or ord(c) == 11 for c in value)


def read_by_both(data: bytes, url: str = URL) -> tuple[FeedDocument, FeedDocument]:
    """The same document read by the fast path and by feedparser."""
    pytest.importorskip("feedparser_rs")
    fast = feed.parse_document(data, url)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(feed, "_fast_parse", lambda data, bases: None)
        slow = feed.parse_document(data, url)
    return fast, slow


def rss_doc(item: str, extra_ns: str = "") -> bytes:
    return (
        f"<rss version='2.0' {extra_ns}><channel><title>D</title>"
        f"<link>https://site.example/</link><item><title>T</title>{item}</item></channel></rss>"
    ).encode()


def atom_doc(entry: str) -> bytes:
    return (
        "<feed xmlns='http://www.w3.org/2005/Atom'><title>D</title><id>urn:d</id>"
        "<updated>2022-07-13T00:00:00Z</updated>"
        f"<entry><title>T</title><id>urn:e</id><link href='https://site.example/a'/>{entry}"
        "</entry></feed>"
    ).encode()


PUB = "Sun, 10 Jul 2022 09:30:00 GMT"
P, U = "2022-07-10T00:00:00Z", "2022-07-12T00:00:00Z"
ATOM_NS = "xmlns:atom='http://www.w3.org/2005/Atom'"


@pytest.mark.parametrize(
    ("data", "published", "updated"),
    [
        (rss_doc(f"<link>https://site.example/a</link><pubDate>{PUB}</pubDate>"), PUB, None),
        (atom_doc(f"<published>{P}</published><updated>{U}</updated>"), P, U),
        (atom_doc(f"<updated>{U}</updated>"), None, U),
        (atom_doc(f"<published>{P}</published>"), P, None),  # invalid Atom, but seen
        (atom_doc(f"<published>{U}</published><updated>{U}</updated>"), U, U),
        (
            rss_doc(
                f"<link>https://site.example/a</link><pubDate>{PUB}</pubDate>"
                f"<atom:updated>{U}</atom:updated>",
                ATOM_NS,
            ),
            PUB,
            U,
        ),
        (
            rss_doc(
                f"<link>https://site.example/a</link><dc:date>{P}</dc:date>",
                "xmlns:dc='http://purl.org/dc/elements/1.1/'",
            ),
            P,  # Dublin Core's date is when it was published
            None,
        ),
    ],
    ids=["rss-pubdate", "atom-both", "atom-updated", "atom-published", "atom-equal",
         "rss-atom-updated", "rss-dc-date"],
)  # fmt: skip
def test_both_parsers_give_the_dates_the_document_has(
    data: bytes, published: str | None, updated: str | None
) -> None:
    # An `updated` made up from the published date would let a feed's teaser win the merge
    # against an archived copy of the same article with the full text (DESIGN: the copy with
    # the latest `updated` supplies the content).
    fast, slow = read_by_both(data)
    for doc in (fast, slow):
        (item,) = doc.items
        assert (item.published, item.updated) == (published, updated)


@pytest.mark.parametrize(
    ("item", "guid", "link"),
    [
        ("<guid>42</guid>", "42", None),
        ("<guid isPermaLink='false'>42</guid>", "42", None),
        ("<guid>/p/42</guid>", "/p/42", None),
        ("<guid>tag:site.example,2022:42</guid>", "tag:site.example,2022:42", None),
        ("<guid>https://site.example/p/42</guid>", "https://site.example/p/42",
         "https://site.example/p/42"),  # RSS 2.0: a permalink GUID serves as the link
        ("<guid isPermaLink='false'>https://site.example/p/42</guid>",
         "https://site.example/p/42", None),
        ("<guid>//site.example/p/42</guid>", "//site.example/p/42",
         "https://site.example/p/42"),  # scheme-relative: one page too
        ("<guid>42</guid><link>https://site.example/a</link>", "42", "https://site.example/a"),
        ("<link>https://site.example/a</link><guid>42</guid>", "42", "https://site.example/a"),
        ("<link>/a</link><guid isPermaLink='false'>g</guid>", "g", "https://site.example/a"),
    ],
)  # fmt: skip
def test_both_parsers_give_one_guid_and_link(item: str, guid: str, link: str | None) -> None:
    # The feed is served from another folder than its channel link: a GUID made into an address
    # would be made up differently by each parser, and a feed that flips between them (well-
    # formed, then not) would get a second entry for every item.
    fast, slow = read_by_both(rss_doc(item), "https://site.example/feeds/rss.xml")
    for doc in (fast, slow):
        assert (doc.items[0].guid, doc.items[0].link) == (guid, link)
    keys = [normalise_document(d, settings())[0][0].identity_key for d in (fast, slow)]
    assert keys[0] == keys[1]


def test_an_atom_id_that_is_no_web_address_is_not_the_link() -> None:
    data = (
        b"<feed xmlns='http://www.w3.org/2005/Atom'><title>D</title><id>urn:d</id>"
        b"<entry><title>T</title><id>tag:site.example,2022:1</id>"
        b"<updated>2022-07-12T00:00:00Z</updated></entry></feed>"
    )
    for doc in read_by_both(data):
        assert (doc.items[0].guid, doc.items[0].link) == ("tag:site.example,2022:1", None)


PRIVATE_HOSTS = ["127.0.0.1:8765", "localhost", "192.168.1.5", "10.1.2.3", "[::1]", "printer.local"]


def private_rss(host: str) -> bytes:
    base = f"http://{host}"
    return (
        f"<rss version='2.0'><channel><title>Home</title><link>{base}/</link>"
        f"<item><title>A</title><link>{base}/a1.html</link><guid>a1</guid>"
        f"<enclosure url='{base}/a1.mp3' type='audio/mpeg' length='5'/></item>"
        f"<item><title>B</title><guid>{base}/b1.html</guid></item>"  # permalink GUID as link
        "</channel></rss>"
    ).encode()


def private_atom(host: str) -> bytes:
    base = f"http://{host}"
    return (
        "<feed xmlns='http://www.w3.org/2005/Atom'><title>Home</title><id>urn:home</id>"
        f"<link href='{base}/'/><updated>2022-07-12T00:00:00Z</updated>"
        f"<entry><title>A</title><id>urn:a1</id><link href='{base}/a1.html'/>"
        f"<link rel='enclosure' href='{base}/a1.mp3' type='audio/mpeg' length='5'/>"
        "<updated>2022-07-12T00:00:00Z</updated></entry></feed>"
    ).encode()


@pytest.mark.parametrize("host", PRIVATE_HOSTS)
def test_links_to_private_network_hosts_are_kept(parser: str, host: str) -> None:
    # feedparser-rs blanks such links (a request-forgery filter); with
    # allow_private_networks a home server's feed is read, and its entries need their links.
    base = f"http://{host}"
    rss = feed.parse_document(private_rss(host), f"{base}/feed.xml")
    assert rss.link == f"{base}/"
    assert [item.link for item in rss.items] == [f"{base}/a1.html", f"{base}/b1.html"]
    assert rss.items[0].enclosures == ((f"{base}/a1.mp3", "audio/mpeg", 5),)
    atom = feed.parse_document(private_atom(host), f"{base}/atom.xml")
    assert atom.link == f"{base}/"
    assert atom.items[0].link == f"{base}/a1.html"
    assert atom.items[0].enclosures == ((f"{base}/a1.mp3", "audio/mpeg", 5),)


@pytest.mark.parametrize("host", ["192.168.1.5", "localhost:8080"])
def test_relative_links_under_a_private_network_xml_base(parser: str, host: str) -> None:
    data = (
        f"<feed xmlns='http://www.w3.org/2005/Atom' xml:base='http://{host}/blog/'>"
        "<title>Home</title><id>urn:home</id><link href='./'/>"
        "<entry><title>A</title><id>urn:a1</id><link href='a1.html'/>"
        "<updated>2022-07-12T00:00:00Z</updated></entry></feed>"
    ).encode()
    doc = feed.parse_document(data, f"http://{host}/feed.xml")
    assert (doc.link, doc.items[0].link) == (f"http://{host}/blog/", f"http://{host}/blog/a1.html")


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        pytest.param("<channel><link>https://site.example/news/</link>",
                     ["https://site.example/a/1", "https://site.example/news/b/2"],
                     id="channel-link"),
        pytest.param("<channel xml:base='https://base.example/x/'>"
                     "<link>https://site.example/news/</link>",
                     ["https://base.example/a/1", "https://base.example/x/b/2"], id="xml-base"),
        pytest.param("<channel>",
                     ["https://feeds.example/a/1", "https://feeds.example/rss/b/2"],
                     id="no-channel-link"),
    ],
)  # fmt: skip
def test_relative_rss_item_urls_are_the_same_whichever_parser(
    parser: str, channel: str, expected: list[str]
) -> None:
    """Relative URLs in an RSS item (its link, enclosure, thumbnail) are relative to the site
    (the channel's link, often on another host than the feed), unless `xml:base` says
    otherwise; without either, to the feed. Both parsers give the same URLs, so a feed that
    is sometimes read by one and sometimes by the other keeps its articles' identities and
    content."""
    data = (
        f"<rss version='2.0' xmlns:media='http://search.yahoo.com/mrss/'>{channel}<title>T</title>"
        "<item><title>A</title><link>/a/1</link><guid isPermaLink='false'>g1</guid>"
        "<enclosure url='/a/1.mp3' type='audio/mpeg' length='5'/></item>"
        "<item><title>B</title><link>b/2</link><guid isPermaLink='false'>g2</guid>"
        "<media:thumbnail url='b/2.jpg'/></item>"
        "</channel></rss>"
    ).encode()
    doc = feed.parse_document(data, "https://feeds.example/rss/feed.xml")
    assert [item.link for item in doc.items] == expected
    assert doc.items[0].enclosures == ((expected[0] + ".mp3", "audio/mpeg", 5),)
    assert doc.items[1].image == expected[1] + ".jpg"


@pytest.mark.parametrize(
    ("root", "content", "expected"),
    [
        pytest.param(" xml:base='http://h/blog/'", "<content type='html'>",
                     ['<a href="http://h/about"', 'src="http://h/blog/i.png"'], id="root-base"),
        pytest.param("", "<content type='html' xml:base='http://cdn.example/img/'>",
                     ['<a href="http://cdn.example/about"', 'src="http://cdn.example/img/i.png"'],
                     id="content-base"),
        pytest.param("", "<content type='html'>",
                     ['<a href="http://h/blog/about"', 'src="http://h/blog/posts/i.png"'],
                     id="no-base-the-item-link"),
    ],
)  # fmt: skip
def test_relative_urls_in_atom_content_follow_its_xml_base(
    parser: str, root: str, content: str, expected: list[str]
) -> None:
    data = (
        f"<feed xmlns='http://www.w3.org/2005/Atom'{root}><title>F</title><id>urn:f</id>"
        "<updated>2022-07-10T00:00:00Z</updated><entry><title>T</title><id>urn:e</id>"
        "<updated>2022-07-10T00:00:00Z</updated><link href='http://h/blog/posts/1'/>"
        f"{content}&lt;a href='../about'&gt;a&lt;/a&gt;&lt;img src='i.png'&gt;</content>"
        "</entry></feed>"
    ).encode()
    versions, _ = normalise_document(feed.parse_document(data, "http://h/feed.xml"), settings())
    (version,) = versions
    assert version.link == "http://h/blog/posts/1"
    for part in expected:
        assert part in (version.content or ""), version.content


def _rss(items: str) -> bytes:
    return (
        "<rss version='2.0'><channel><title>C</title><link>https://n.example/</link>"
        f"{items}</channel></rss>"
    ).encode()


def test_permalinks_to_posts_on_one_page_are_separate_articles(parser: str) -> None:
    """Scripting News links each of a day's posts as the day's page plus an anchor, and says
    so in the GUID: each is an article of its own, linked with its anchor."""
    items = "".join(
        f"<item><description>Post {n}</description><link>https://n.example/day.html#a{n}</link>"
        f"<guid>https://n.example/day.html#a{n}</guid></item>"
        for n in (1, 2)
    )
    versions, _ = normalise_document(feed.parse_document(_rss(items), "https://n.example/rss"),
                                     settings())  # fmt: skip
    assert [v.link for v in versions] == [
        "https://n.example/day.html#a1",
        "https://n.example/day.html#a2",
    ]
    assert len({v.identity_key for v in versions}) == 2


def test_a_tracking_fragment_in_a_permalink_is_dropped(parser: str) -> None:
    link = "https://n.example/story.html#xtor=RSS-3208"
    item = f"<item><title>T</title><link>{link}</link><guid>{link}</guid></item>"
    (version,), _ = normalise_document(
        feed.parse_document(_rss(item), "https://n.example/rss"), settings()
    )
    assert version.link == "https://n.example/story.html"


def test_items_on_one_page_told_apart_only_by_fragments_are_one_article_said(
    parser: str,
) -> None:
    items = "".join(
        f"<item><title>Note {n}</title><link>https://n.example/01.html#a{n}</link>"
        f"<guid isPermaLink='false'>note-a{n}</guid><description>{n}</description></item>"
        for n in (1, 2)
    )
    (version,), _ = normalise_document(
        feed.parse_document(_rss(items), "https://n.example/rss"), settings()
    )
    assert version.title == "Note 1"
    assert version.warnings == (
        "items 1 and 2 link to one page (https://n.example/01.html) but for their #fragments; "
        "read as one article, the first",
    )


def test_items_with_an_empty_link_stay_apart_whichever_parser(parser: str) -> None:
    """feedparser-rs would give every `<link></link>` its channel's link, making the items one
    article: such a document is read by feedparser, and each item keeps its own GUID."""
    items = "".join(
        f"<item><title>T{n}</title><link></link><guid isPermaLink='false'>g{n}</guid></item>"
        for n in range(3)
    )
    data = (
        "<rss version='2.0'><channel><title>C</title><link>https://ex.com/</link>"
        f"{items}</channel></rss>"
    ).encode()
    doc = feed.parse_document(data, "https://ex.com/rss.xml")
    versions, _ = normalise_document(doc, settings())
    assert len(versions) == 3 and {v.link for v in versions} == {None}


@pytest.mark.parametrize(
    "data",
    [
        b"<rss version='2.0'><channel><title>C</title><link></link>"
        b"<item><title>T</title><link>https://ex.com/a</link></item></channel></rss>",
        b"<feed xmlns='http://www.w3.org/2005/Atom' xml:base='https://ex.com/blog/'><title>F</title>"
        b"<id>urn:f</id><updated>2022-07-10T00:00:00Z</updated><entry><title>T</title>"
        b"<id>urn:e</id><updated>2022-07-10T00:00:00Z</updated></entry></feed>",
        b"<feed xmlns='http://www.w3.org/2005/Atom'><title>F</title><id>urn:f</id>"
        b"<updated>2022-07-10T00:00:00Z</updated><entry><title>T</title><id>urn:e</id>"
        b"<updated>2022-07-10T00:00:00Z</updated><link href='https://ex.com/a'/>"
        b"<link rel='enclosure' href=''/></entry></feed>",
    ],
    ids=["empty-channel-link", "public-xml-base", "empty-enclosure"],
)
def test_public_feeds_with_odd_links_keep_the_fast_path(data: bytes) -> None:
    pytest.importorskip("feedparser_rs")
    assert (
        feed._fast_parse(data, feed._XML_BASE.findall(data)) is not None
    )  # not 18 times slower for nothing


def test_an_item_dated_in_the_future_keeps_its_identity() -> None:
    from datetime import UTC, datetime

    item = "<item><title>No link</title><pubDate>Thu, 01 Jan 2099 09:30:00 GMT</pubDate></item>"
    doc = feed.parse_document(_rss(item), "https://n.example/rss")
    (later,), _ = normalise_document(doc, settings())
    (now,), _ = normalise_document(doc, settings(not_after=datetime(2098, 12, 31, tzinfo=UTC)))
    assert now.published is None and later.published is not None
    assert now.identity_key == later.identity_key
