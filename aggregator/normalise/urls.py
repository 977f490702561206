"""URL cleaning and the canonical form used as an article's identity (pure functions).

Two URLs name the same article when they differ only in: scheme case or http/https, host case,
a default port, a trailing dot on the host, the fragment, tracking parameters, the order of
query parameters, percent-escape case, or a configured host alias.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote_plus, urljoin, urlsplit, urlunsplit

# Query parameters that only track the reader. `utm_` is a prefix; the rest are exact names.
TRACKING_PREFIXES = ("utm_",)
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "igshid",
        "mc_cid", "mc_eid", "spm", "scm", "_ga", "_gl", "ref_src", "share_source", "vd_source",
        "wt_mc", "wt.mc_id", "mkt_tok", "oly_anon_id", "oly_enc_id", "__twitter_impression",
    }
)  # fmt: skip
DEFAULT_PORTS = {"http": 80, "https": 443}
_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Characters left as they are in a path: reserved ones keep their meaning, `%` keeps escapes.
_PATH_SAFE = "/:@!$&'()*+,;=~%"
_QUERY_SAFE = "/:@!$'()*+,;?~%"  # `&` and `=` separate the pairs, so they stay escaped


@dataclass(frozen=True, slots=True)
class UrlRules:
    """Site-specific knowledge for canonical URLs, from the `identity` config section."""

    tracking_params: frozenset[str] = frozenset()
    host_aliases: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def make(cls, tracking: Iterable[str] = (), aliases: Mapping[str, str] | None = None):
        return cls(
            frozenset(p.lower() for p in tracking),
            {k.lower().rstrip("."): v.lower().rstrip(".") for k, v in (aliases or {}).items()},
        )


DEFAULT_RULES = UrlRules()


def _fix_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group()[1:], 16))
    return char if char in _UNRESERVED else match.group().upper()


def _is_tracking(name: str, rules: UrlRules) -> bool:
    low = name.lower()
    return (
        low.startswith(TRACKING_PREFIXES) or low in TRACKING_PARAMS or low in rules.tracking_params
    )


def clean_url(url: str, rules: UrlRules = DEFAULT_RULES, *, alias: bool = False) -> str | None:
    """The URL to publish: normalised, tracking parameters and fragment dropped, scheme kept.

    Host aliases apply only with `alias` (for the identity, `url_key`): the published link is
    the host the article was found on, which is the one readers and origin checks must visit.
    None when `url` is not an absolute http(s) URL.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    # A bracket belongs only around an IPv6 literal, which `hostname` gives without them:
    # `http://[::1]@a]b/` has the host `a]b`, and no URL can be built on it.
    if scheme not in DEFAULT_PORTS or not host or "[" in host or "]" in host:
        return None
    if alias:
        host = _alias(host, rules.host_aliases)
    if ":" in host:  # an IPv6 literal, or what urllib makes of a mangled authority
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
        host = f"[{host}]"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    path = _ESCAPE.sub(_fix_escape, quote(parts.path or "/", safe=_PATH_SAFE))
    return urlunsplit((scheme, host, path, _query(parts.query, rules), ""))


def _alias(host: str, aliases: Mapping[str, str]) -> str:
    """Apply a host alias to the host or any subdomain of it (`www.zaobao.com.sg`)."""
    if host in aliases:
        return aliases[host]
    for alias, target in aliases.items():
        if host.endswith("." + alias):
            return host[: -len(alias)] + target
    return host


def _component(text: str) -> str:
    # `+` is a space in query strings; written as %20 so both spellings give one key.
    return _ESCAPE.sub(_fix_escape, quote(text.replace("+", "%20"), safe=_QUERY_SAFE))


def _query(query: str, rules: UrlRules) -> str:
    """Tracking parameters dropped, the rest sorted. Values stay as the bytes they encode:
    decoding them as text would garble queries in other encodings (`?q=%D6%D0` is GBK)."""
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if _is_tracking(unquote_plus(name), rules):
            continue
        pairs.append((_component(name), sep, _component(value)))
    pairs.sort()
    return "&".join(f"{n}{s}{v}" for n, s, v in pairs)


def absolute_url(url: str, base: str | None = None) -> str | None:
    """An http(s) URL made absolute against `base`, otherwise as written: for resources such
    as images, whose query strings may be signatures that must not be reordered or trimmed."""
    url = url.strip()
    if base and "://" not in url:
        url = urljoin(base, url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        return None
    return url


def url_key(url: str, rules: UrlRules = DEFAULT_RULES) -> str | None:
    """The canonical form used as identity: `clean_url` without the scheme (http = https)."""
    cleaned = clean_url(url, rules, alias=True)
    if cleaned is None:
        return None
    return cleaned.split("://", 1)[1]


def clean_url_key(cleaned: str, rules: UrlRules = DEFAULT_RULES) -> str | None:
    """`url_key` of a URL `clean_url` returned. `clean_url` is idempotent (tested), so without
    host aliases the key is the URL less its scheme, with no second parse (a tenth of the
    cost of reading a feed item)."""
    if rules.host_aliases:
        return url_key(cleaned, rules)
    return cleaned.split("://", 1)[1]


def host_of(url: str) -> str | None:
    """The host name of an http(s) URL, without `www.`, for naming a source."""
    try:
        host = (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return None
    if not host:
        return None
    return host[4:] if host.startswith("www.") else host
