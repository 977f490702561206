"""Third-party feeds (../shared/corpora: feedparser's test suite and real-world feeds saved by
feed-rs) go through ingest and publish: no crash, and nothing executable in any output."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator import config as config_module
from aggregator.normalise.item import ItemSettings
from aggregator.parsing import parse_feed
from aggregator.publish import publish
from aggregator.store import Store
from aggregator.sync import decide_pending

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
NOW = datetime(2026, 11, 22, tzinfo=UTC)
DANGEROUS = re.compile(
    r"<\s*(script|iframe|object|embed|style)\b|javascript:|vbscript:|\bon[a-z]+\s*=", re.I
)


def corpus_files() -> list[Path]:
    files = [
        p
        for p in sorted(CORPORA.rglob("*"))
        if p.is_file() and p.suffix in (".xml", ".json") and not p.name.endswith(".serde.json")
    ]
    return files


@pytest.fixture(scope="module")
def files() -> list[Path]:
    if not CORPORA.is_dir():
        pytest.skip(f"{CORPORA} is absent (CI has it)")
    found = corpus_files()
    assert len(found) > 2000
    return found


def test_every_corpus_feed_is_ingested_and_published_safely(
    files: list[Path], tmp_path: Path
) -> None:
    cfg = config_module.parse(
        {"database": "sqlite:///c.db", "output": "public", "feeds": {"entries": 10_000}},
        base_dir=tmp_path,
    )
    read = errors = items = 0
    with Store.open(cfg.database_url) as store:
        input_id = store.ensure_input("corpus", "feed", str(CORPORA), NOW)
        for n, path in enumerate(files):
            settings = ItemSettings(scope=f"corpus-{n}")
            result = parse_feed(path.read_bytes(), f"http://example.org/{n}/feed", None, settings)
            if result.error:
                errors += 1
                continue
            read += 1
            items += len(result.versions)
            with store.transaction() as tx:
                tx.put_versions(input_id, result.versions, NOW)
                tx.mark_pending({v.identity_key for v in result.versions})
        decide_pending(store, NOW)
        published = publish(store, cfg)
    assert read > 2000 and items > 500, (read, errors, items)
    assert published.feeds
    outputs = list(cfg.output_dir.rglob("*.json"))
    checked = 0
    for out in outputs:
        if out.name.startswith("."):
            continue
        doc = json.loads(out.read_text(encoding="utf-8"))
        for item in doc["items"]:
            for key in ("content_html", "summary", "title"):
                value = item.get(key) or ""
                assert not DANGEROUS.search(value), (out.name, item["id"], value[:300])
            checked += 1
    assert checked > 300, checked
    for out in cfg.output_dir.rglob("*"):
        if out.suffix in (".atom", ".rss", ".html", ".opml"):
            raw = out.read_text(encoding="utf-8")
            assert "<script" not in raw.lower(), out
