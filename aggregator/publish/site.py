"""The pages beside the feeds: `index.html` (every feed, with autodiscovery links) and
`feeds.opml` (every feed, for importing into a reader). Pure: same listing, same bytes."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from xml.etree import ElementTree as ET

from aggregator.publish.plan import EMPTY_FEED_DATE, MEDIA_TYPE, FeedRef

FORMAT_LABEL = {"atom": "Atom", "rss": "RSS", "json": "JSON Feed"}
KIND_HEADING = {"all": "Everything", "source": "Sources", "tag": "Tags"}


@dataclass(frozen=True, slots=True)
class Listed:
    """A feed as listed: where it is, how many entries it holds, when it last changed."""

    ref: FeedRef
    title: str
    entries: int
    updated: datetime


def _date(dt: datetime) -> str:
    return "—" if dt == EMPTY_FEED_DATE else dt.strftime("%Y-%m-%d %H:%M UTC")


def render_index(
    title: str, description: str, base_url: str, formats: Sequence[str], feeds: Sequence[Listed]
) -> bytes:
    e = html.escape
    head = [
        f'<link rel="alternate" type="{MEDIA_TYPE[fmt]}" title="{e(f.title)} ({FORMAT_LABEL[fmt]})"'
        f' href="{e(f.ref.url(base_url, fmt))}">'
        for f in feeds
        for fmt in formats
    ]
    sections: list[str] = []
    for kind in ("all", "source", "tag"):
        rows = [f for f in feeds if f.ref.kind == kind]
        if not rows:
            continue
        lines = [f"<h2>{KIND_HEADING[kind]} <small>({len(rows)})</small></h2>", "<table>"]
        lines.append("<tr><th>Feed</th><th>Entries</th><th>Last update</th><th>Formats</th></tr>")
        for f in rows:
            links = " ".join(
                f'<a href="{e(f.ref.url(base_url, fmt))}">{FORMAT_LABEL[fmt]}</a>'
                for fmt in formats
            )
            lines.append(
                f"<tr><td>{e(f.ref.name)}</td><td>{f.entries}</td>"
                f"<td>{_date(f.updated)}</td><td>{links}</td></tr>"
            )
        lines.append("</table>")
        sections.append("\n".join(lines))
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
{chr(10).join(head)}
<link rel="outline" type="text/x-opml" title="All feeds (OPML)" href="{e(base_url)}feeds.opml">
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #ddd; }}
td:nth-child(2) {{ text-align: right; }}
small {{ color: #666; font-weight: normal; }}
</style>
</head>
<body>
<h1>{e(title)}</h1>
<p>{e(description)}. Subscribe to any feed below in your feed reader, or import
<a href="{e(base_url)}feeds.opml">all of them (OPML)</a>.</p>
{chr(10).join(sections)}
</body>
</html>
"""
    return page.encode("utf-8")


def render_opml(
    title: str, base_url: str, formats: Sequence[str], feeds: Sequence[Listed]
) -> bytes:
    fmt = "atom" if "atom" in formats else formats[0]
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    newest = max((f.updated for f in feeds), default=EMPTY_FEED_DATE)
    ET.SubElement(head, "dateModified").text = newest.strftime("%a, %d %b %Y %H:%M:%S GMT")
    body = ET.SubElement(root, "body")
    groups: dict[str, ET.Element] = {}
    for f in feeds:
        parent = body
        if f.ref.kind != "all":
            if f.ref.kind not in groups:
                groups[f.ref.kind] = ET.SubElement(
                    body, "outline", text=KIND_HEADING[f.ref.kind], title=KIND_HEADING[f.ref.kind]
                )
            parent = groups[f.ref.kind]
        ET.SubElement(
            parent,
            "outline",
            type="rss",
            text=f.title,
            title=f.title,
            xmlUrl=f.ref.url(base_url, fmt),
            htmlUrl=base_url,
        )
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
