"""OPML subscription lists (owns listparser): the feeds a person already follows elsewhere."""

from __future__ import annotations

import os
from typing import Any

from aggregator.errors import ParseError, SourceError


def read_opml(
    path: str | os.PathLike[str], ignored: list[str] | None = None
) -> list[dict[str, Any]]:
    """Feed specs (url, name, tags) from an OPML file; its folders become tags. An outline
    whose URL cannot be fetched (not http or https) is left out, and said in `ignored`."""
    import listparser

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror})") from None
    # bytes, never a path or URL string: listparser would fetch a URL it is given
    result = listparser.parse(data)
    if not result.feeds:
        problem = result.get("bozo_exception")
        reason = " ".join(str(problem).split()) if problem else "no feeds in it"
        raise ParseError(f"{path}: not an OPML subscription list ({reason})")
    feeds: list[dict[str, Any]] = []
    for feed in result.feeds:
        url = (feed.url or "").strip()
        scheme, colon, rest = url.partition(":")
        if colon and scheme.lower() in ("http", "https"):
            url = scheme.lower() + colon + rest  # `HTTP://` is http too
        if not url.startswith(("http://", "https://")):
            if ignored is not None:
                shown = url or f"{(feed.title or '').strip() or 'an outline'} (no URL)"
                ignored.append(f"{shown}: not an http(s) URL, left out")
            continue
        tags = [t for t in feed.get("tags", []) if t]
        feeds.append({"url": url, "name": (feed.title or "").strip() or url, "tags": tags})
    return feeds
