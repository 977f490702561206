"""URL cleaning and canonical URLs: `normalise.urls`."""

from __future__ import annotations

import string
from urllib.parse import quote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aggregator.normalise.urls import UrlRules, clean_url, clean_url_key, host_of, url_key

ZAOBAO = UrlRules.make(aliases={"zaobao.com.sg": "zaobao.com"})
SITE_PARAMS = UrlRules.make(tracking=["From", "share_token"])


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("https://example.com/a", "https://example.com/a", id="already-clean"),
        pytest.param("HTTPS://WWW.Example.COM/News", "https://www.example.com/News", id="case"),
        pytest.param("https://example.com", "https://example.com/", id="empty-path"),
        pytest.param("http://example.com:80/a", "http://example.com/a", id="http-default-port"),
        pytest.param("https://example.com:443/a", "https://example.com/a", id="https-default"),
        pytest.param("https://example.com:8443/a", "https://example.com:8443/a", id="other-port"),
        pytest.param("http://example.com:443/a", "http://example.com:443/a", id="443-on-http"),
        pytest.param("https://example.com./a", "https://example.com/a", id="trailing-dot"),
        pytest.param("https://example.com/a#comments", "https://example.com/a", id="fragment"),
        pytest.param(
            "https://example.com/a?utm_source=rss&utm_medium=feed&UTM_Campaign=x",
            "https://example.com/a",
            id="utm",
        ),
        pytest.param(
            "https://example.com/a?fbclid=IwAR0&gclid=Cj0&spm=a2c.b&id=7",
            "https://example.com/a?id=7",
            id="fbclid-gclid-spm",
        ),
        pytest.param(
            "https://example.com/a?b=2&a=1&c=3", "https://example.com/a?a=1&b=2&c=3", id="sorted"
        ),
        pytest.param(
            "https://example.com/story?id=1290628&page=2",
            "https://example.com/story?id=1290628&page=2",
            id="meaningful-params-kept",
        ),
        pytest.param("https://example.com/a?", "https://example.com/a", id="empty-query"),
        pytest.param(" https://example.com/a \n", "https://example.com/a", id="whitespace"),
        pytest.param("https://example.com/a%7eb", "https://example.com/a~b", id="unreserved-esc"),
        pytest.param("https://example.com/a%2fb", "https://example.com/a%2Fb", id="escape-case"),
        pytest.param(
            "https://example.com/新闻/报道",
            "https://example.com/%E6%96%B0%E9%97%BB/%E6%8A%A5%E9%81%93",
            id="unicode-path",
        ),
        pytest.param(
            "https://example.com/s?q=中文", "https://example.com/s?q=%E4%B8%AD%E6%96%87", id="uni-q"
        ),
        pytest.param("https://example.com/s?q=a+b", "https://example.com/s?q=a%20b", id="plus"),
        pytest.param("https://user:pw@example.com/a", "https://example.com/a", id="userinfo"),
        pytest.param("http://[::1]:8080/a", "http://[::1]:8080/a", id="ipv6"),
        pytest.param("http://[fe80::1%25eth0]/a", "http://[fe80::1%25eth0]/a", id="ipv6-zone"),
    ],
)
def test_clean_url(url: str, expected: str) -> None:
    assert clean_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("ftp://example.com/a", id="ftp"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("mailto:news@example.com", id="mailto"),
        pytest.param("data:text/html,<b>x</b>", id="data"),
        pytest.param("/realtime/china/story.html", id="relative"),
        pytest.param("www.example.com/a", id="no-scheme"),
        pytest.param("//example.com/a", id="protocol-relative"),
        pytest.param("https://", id="no-host"),
        pytest.param("http://example.com:99999/a", id="port-out-of-range"),
        pytest.param("http://[::1]@a]b/", id="bracket-in-host"),
        pytest.param("https://[::1]@a.b[:443-2?20", id="host-not-ipv6"),
        pytest.param("http://example.com:port/a", id="port-not-a-number"),
        pytest.param("", id="empty"),
    ],
)
def test_clean_url_refuses_what_is_not_an_http_url(url: str) -> None:
    assert clean_url(url) is None
    assert url_key(url) is None


def test_configured_tracking_params_are_dropped_case_insensitively() -> None:
    url = "https://example.com/a?from=timeline&share_token=abc&id=3"
    assert clean_url(url, SITE_PARAMS) == "https://example.com/a?id=3"
    # Without the configuration they are ordinary parameters.
    assert clean_url(url) == "https://example.com/a?from=timeline&id=3&share_token=abc"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param("http://example.com/a", "https://example.com/a", id="http-https"),
        pytest.param("https://EXAMPLE.com/a", "https://example.com/a", id="host-case"),
        pytest.param("HTTPS://example.com/a", "https://example.com/a", id="scheme-case"),
        pytest.param("https://example.com:443/a", "http://example.com:80/a", id="default-ports"),
        pytest.param("https://example.com/a#x", "https://example.com/a", id="fragment"),
        pytest.param("https://example.com/a?b=2&a=1", "https://example.com/a?a=1&b=2", id="order"),
        pytest.param(
            "https://example.com/a?utm_source=x&id=1", "https://example.com/a?id=1", id="utm"
        ),
        pytest.param(
            "https://zaobao.com.sg/realtime/story20220707-1290628",
            "https://zaobao.com/realtime/story20220707-1290628",
            id="alias",
        ),
        pytest.param(
            "https://ZAOBAO.com.sg./realtime/story20220707-1290628",
            "https://zaobao.com/realtime/story20220707-1290628",
            id="alias-case-and-dot",
        ),
        # The sites themselves live at www.: the configured alias `zaobao.com.sg: zaobao.com` in
        # config.yaml has to cover them, or it never matches a real article URL.
        pytest.param(
            "https://www.zaobao.com.sg/realtime/china/story20220707-1290628",
            "https://www.zaobao.com/realtime/china/story20220707-1290628",
            id="alias-www",
        ),
    ],
)
def test_same_article_same_url_key(a: str, b: str) -> None:
    assert url_key(a, ZAOBAO) == url_key(b, ZAOBAO)
    assert url_key(a, ZAOBAO) is not None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param("https://example.com/a", "https://example.com/b", id="path"),
        pytest.param("https://example.com/A", "https://example.com/a", id="path-case"),
        pytest.param("https://example.com/a?id=1", "https://example.com/a?id=2", id="query"),
        pytest.param("https://example.com/a", "https://example.com:8080/a", id="port"),
        pytest.param("https://example.com/a", "https://example.org/a", id="host"),
        pytest.param("https://news.example.com/a", "https://example.com/a", id="subdomain"),
        pytest.param("https://example.com/a%2Fb", "https://example.com/a/b", id="escaped-slash"),
        # Chinese sites still put GBK bytes in query strings: two different searches or
        # articles must not collapse into one (and the link must still work).
        pytest.param(
            "http://search.example.cn/s?q=%D6%D0%CE%C4",
            "http://search.example.cn/s?q=%C8%D5%D6%D0",
            id="gbk-query",
        ),
    ],
)
def test_different_articles_different_url_keys(a: str, b: str) -> None:
    assert url_key(a, ZAOBAO) != url_key(b, ZAOBAO)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "http://search.example.cn/s?q=%D6%D0%CE%C4&page=2",
            "http://search.example.cn/s?page=2&q=%D6%D0%CE%C4",
            id="gbk",
        ),
        pytest.param(
            "http://bbs.example.tw/view?title=%A4%A4%A4%E5",
            "http://bbs.example.tw/view?title=%A4%A4%A4%E5",
            id="big5",
        ),
        pytest.param(
            "https://example.com/a?sig=%ff%fe", "https://example.com/a?sig=%FF%FE", id="token"
        ),
    ],
)
def test_percent_encoded_bytes_in_the_query_survive(url: str, expected: str) -> None:
    """The published link must reach the same page: query bytes that are not UTF-8 are kept."""
    assert clean_url(url) == expected


@pytest.mark.parametrize(
    ("url", "host"),
    [
        pytest.param("https://www.zaobao.com/realtime/x", "zaobao.com", id="www-dropped"),
        pytest.param("https://WWW.Guancha.CN/x", "guancha.cn", id="case"),
        pytest.param("https://news.example.com./x", "news.example.com", id="subdomain-dot"),
        pytest.param("not a url", None, id="not-a-url"),
    ],
)
def test_host_of(url: str, host: str | None) -> None:
    assert host_of(url) == host


def test_alias_rules_are_case_insensitive() -> None:
    rules = UrlRules.make(aliases={"ZaoBao.com.SG.": "ZAOBAO.com"})
    assert url_key("https://zaobao.com.sg/a", rules) == "zaobao.com/a"


def test_aliases_change_the_identity_not_the_published_link() -> None:
    link = "https://www.zaobao.com.sg/realtime/china/x2?utm_source=rss"
    assert clean_url(link, ZAOBAO) == "https://www.zaobao.com.sg/realtime/china/x2"
    assert url_key(link, ZAOBAO) == "www.zaobao.com/realtime/china/x2"


# ---- properties ----------------------------------------------------------------------------------

LABEL = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
HOSTS = st.lists(LABEL, min_size=2, max_size=4).map(".".join)
PATH_TEXT = st.text(
    st.sampled_from(list(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@ 新闻报道é")),
    max_size=10,
)
SEGMENTS = st.lists(PATH_TEXT, max_size=4).map(lambda parts: "/" + "/".join(parts))
PARAM_NAMES = st.sampled_from(["id", "page", "q", "a", "b", "p", "sort", "lang"])
PARAM_VALUES = st.text(
    st.sampled_from(list(string.ascii_letters + string.digits + " -_.~+/=?&%新闻")), max_size=8
)
PARAMS = st.lists(st.tuples(PARAM_NAMES, PARAM_VALUES), max_size=5)
TRACKERS = st.lists(
    st.tuples(
        st.sampled_from(
            ["utm_source", "utm_medium", "utm_campaign", "UTM_Term", "fbclid", "gclid", "spm"]
        ),
        PARAM_VALUES,
    ),
    min_size=1,
    max_size=3,
)


def build(scheme: str, host: str, path: str, params: list[tuple[str, str]], extra: str = "") -> str:
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)
    return f"{scheme}://{host}{extra}{quote(path, safe='/')}" + (f"?{query}" if query else "")


@settings(max_examples=150, deadline=None)
@given(url=st.one_of(st.text(max_size=40).map(lambda s: "http://" + s), st.text(max_size=40)))
@example("http://[::1]@a]b/")  # urllib's host `a]b`: no URL can be built on it
@example("https://[::1]@a.b[:443-2?20")  # urllib's host `:443-2`: not an IPv6 address
def test_clean_url_is_idempotent_on_any_text(url: str) -> None:
    once = clean_url(url)
    if once is not None:
        assert clean_url(once) == once


@settings(max_examples=150, deadline=None)
@given(
    url=st.one_of(
        st.text(max_size=40).map(lambda s: "http://" + s),
        st.text(max_size=30).map(lambda s: "https://www.zaobao.com.sg/" + s),
    ),
    rules=st.sampled_from([UrlRules(), ZAOBAO, SITE_PARAMS]),
)
@example("http://[::1]@a]b/", ZAOBAO)
@example("https://[::1]@a.b[:443-2?20", ZAOBAO)
def test_the_key_of_a_cleaned_url_is_its_url_key(url: str, rules: UrlRules) -> None:
    """Readers clean a link once and take its identity from the cleaned form."""
    cleaned = clean_url(url, rules)
    if cleaned is not None:
        assert clean_url_key(cleaned, rules) == url_key(url, rules)


@settings(max_examples=150, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https"]),
    host=HOSTS,
    path=SEGMENTS,
    params=PARAMS,
    fragment=st.text(max_size=5),
)
def test_clean_url_is_idempotent(
    scheme: str, host: str, path: str, params: list[tuple[str, str]], fragment: str
) -> None:
    url = build(scheme, host, path, params) + (f"#{fragment}" if fragment else "")
    once = clean_url(url)
    assert once is not None
    assert clean_url(once) == once
    assert url_key(once) == url_key(url)


@settings(max_examples=150, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https"]),
    host=HOSTS,
    path=SEGMENTS,
    params=PARAMS,
    order=st.randoms(use_true_random=False),
    trackers=TRACKERS,
    fragment=st.text(st.characters(codec="ascii", exclude_characters="#"), min_size=1, max_size=8),
    upper=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_url_key_ignores_what_does_not_name_the_article(
    scheme: str,
    host: str,
    path: str,
    params: list[tuple[str, str]],
    order,
    trackers: list[tuple[str, str]],
    fragment: str,
    upper: list[bool],
) -> None:
    key = url_key(build(scheme, host, path, params))
    assert key is not None

    shuffled = list(params)
    order.shuffle(shuffled)
    assert url_key(build(scheme, host, path, shuffled)) == key, "query order"

    tracked = list(params)
    for tracker in trackers:
        tracked.insert(order.randint(0, len(tracked)), tracker)
    assert url_key(build(scheme, host, path, tracked)) == key, "tracking parameters"

    other_scheme = "https" if scheme == "http" else "http"
    assert url_key(build(other_scheme, host, path, params)) == key, "http = https"
    assert url_key(build(scheme.upper(), host, path, params)) == key, "scheme case"

    mixed = "".join(c.upper() if u else c for c, u in zip(host, upper, strict=False)) + host[40:]
    assert url_key(build(scheme, mixed, path, params)) == key, "host case"

    assert url_key(build(scheme, host, path, params) + "#" + fragment) == key, "fragment"

    port = ":80" if scheme == "http" else ":443"
    assert url_key(build(scheme, host, path, params, extra=port)) == key, "default port"
