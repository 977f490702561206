"""Stage 5: publish the store as feeds, `index.html` and `feeds.opml` (owns feedgen).

Publishing is a pure function of the store: rendering is deterministic and files are written
atomically (temporary file, then rename) and only when their bytes change, so a second run with
nothing changed writes nothing and every HTTP validator stays valid.

Work is skipped where the store says nothing changed: the store keeps, per feed, the revision
of the last change to its entries, and the output folder keeps a manifest of the revisions it
was rendered from. Only feeds whose revision moved (or whose files are missing, or whose
settings changed) are rendered again.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aggregator import __version__
from aggregator.config import Config
from aggregator.errors import PublishError
from aggregator.normalise.dates import iso
from aggregator.publish.plan import FeedRef, feed_ref, sort_key
from aggregator.publish.site import Listed, render_index, render_opml
from aggregator.store import Store
from aggregator.types import FeedItem

if TYPE_CHECKING:
    from aggregator.publish.render import FeedMeta

MANIFEST = ".aggregator-manifest.json"
TEMP_PREFIX = ".tmp-aggregator-"
INDEX = "index.html"
OPML = "feeds.opml"


@dataclass
class PublishResult:
    written: list[str] = field(default_factory=list)
    """Files whose bytes changed (relative paths)."""
    removed: list[str] = field(default_factory=list)
    rendered: int = 0
    """Feeds rendered (a rendered feed whose bytes did not change is not written)."""
    feeds: list[Listed] = field(default_factory=list)


def config_fingerprint(config: Config) -> str:
    """Everything besides the store that changes published bytes."""
    settings = {
        "version": __version__,
        "site": config.site.model_dump(),
        "feeds": config.feeds.model_dump(mode="json"),
        "websub": config.websub.model_dump(mode="json"),
    }
    blob = json.dumps(settings, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def read_manifest(output: Path) -> dict[str, Any]:
    try:
        data = json.loads((output / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write `data` atomically unless the file already holds exactly these bytes."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise PublishError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise PublishError(f"{path}: cannot write ({exc.strerror})") from None
    return True


def feed_meta(config: Config, ref: FeedRef) -> FeedMeta:
    from aggregator.publish.render import FeedMeta

    site = config.site
    if ref.kind == "all":
        title, description = site.title, site.description
    elif ref.kind == "source":
        title = f"{ref.name} · {site.title}"
        description = f"Articles from {ref.name}"
    else:
        title = f"#{ref.name} · {site.title}"
        description = f"Articles tagged {ref.name}"
    return FeedMeta(
        title=title,
        description=description,
        home_url=site.base_url,
        self_urls={fmt: ref.url(site.base_url, fmt) for fmt in config.feeds.formats},
        language=site.language,
    )


def publish(
    store: Store,
    config: Config,
    *,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
    bodies: BodyLoader | None = None,
) -> PublishResult:
    """Bring the output folder up to date with the store (see module docstring)."""
    output = config.output_dir
    try:
        output.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise PublishError(f"{output}: the output folder is a file, not a folder") from None
    except OSError as exc:
        raise PublishError(f"{output}: cannot create the output folder ({exc.strerror})") from None
    formats = config.feeds.formats
    settings = config_fingerprint(config)
    manifest = {} if force else read_manifest(output)
    same_settings = manifest.get("settings") == settings
    old_feeds: dict[str, Any] = manifest.get("feeds", {}) if same_settings else {}
    # Read revisions before any data: a change committed while we render is then seen as
    # newer than what we rendered, and picked up by the next run.
    store_revision = store.revision()
    revisions = store.feed_revisions()
    result = PublishResult()

    def present(entry: dict[str, Any]) -> bool:
        return all((output / p).is_file() for p in entry.get("files", {}).values())

    if (
        same_settings
        and manifest.get("store_revision") == store_revision
        and all(present(e) for e in old_feeds.values())
        and all((output / name).is_file() for name in (INDEX, OPML))
    ):
        result.feeds = sorted(
            (_listed_from_manifest(k, v) for k, v in old_feeds.items()),
            key=lambda f: sort_key(f.ref),
        )
        return result

    # A run killed while writing leaves its temporary file behind (and no manifest, so the next
    # run always comes here): remove such leftovers.
    for leftover in output.rglob(TEMP_PREFIX + "*"):
        if leftover.is_file():
            leftover.unlink()
    counts = store.feed_counts()
    counts.setdefault("all", ("", 0))
    new_manifest: dict[str, Any] = {}
    tasks: list[RenderTask] = []
    for key, (name, entries) in sorted(counts.items()):
        ref = feed_ref(key, config.site.title if key == "all" else name)
        previous: dict[str, Any] = old_feeds.get(key) or {}
        revision = revisions.get(key, 0)
        reusable = (
            bool(previous)
            and previous.get("name") == ref.name
            and previous.get("entries") == entries
            and present(previous)
        )
        if reusable and previous.get("revision") == revision:
            new_manifest[key] = previous
            continue
        # Its entries changed, but perhaps none of its newest: a cheap fingerprint of those
        # says whether the rendered bytes can differ at all.
        newest = store.feed_fingerprint(key, config.feeds.entries)
        if reusable and previous.get("fingerprint") == newest:
            new_manifest[key] = {**previous, "revision": revision}
        else:
            tasks.append(RenderTask(ref, revision, entries, newest))
    loader = bodies or _no_bodies
    for key, entry, written in _render_all(store, config, tasks, workers, progress, loader):
        new_manifest[key] = entry
        result.written.extend(written)
        result.rendered += 1

    # Files published before and not now (a feed left empty, a format no longer configured)
    # are removed, whatever settings they were written with.
    kept = {rel for entry in new_manifest.values() for rel in entry["files"].values()}
    for entry in manifest.get("feeds", {}).values():
        for rel in entry.get("files", {}).values():
            if rel not in kept and (output / rel).is_file():
                (output / rel).unlink()
                result.removed.append(rel)

    listed = sorted(
        (_listed_from_manifest(k, v) for k, v in new_manifest.items()),
        key=lambda f: sort_key(f.ref),
    )
    site = config.site
    for name, data in (
        (INDEX, render_index(site.title, site.description, site.base_url, formats, listed)),
        (OPML, render_opml(site.title, site.base_url, formats, listed)),
    ):
        if write_if_changed(output / name, data):
            result.written.append(name)
    blob = json.dumps(
        {"settings": settings, "store_revision": store_revision, "feeds": new_manifest},
        ensure_ascii=False, sort_keys=True,
        indent=1,
    ).encode("utf-8")  # fmt: skip
    write_if_changed(output / MANIFEST, blob)
    result.feeds = listed
    return result


@dataclass(frozen=True, slots=True)
class RenderTask:
    ref: FeedRef
    revision: int
    entries: int
    fingerprint: str


RenderDone = tuple[str, dict[str, Any], list[str]]
"""(feed key, manifest entry, files written)"""


BodyLoader = Callable[[FeedItem], FeedItem]
"""Gives an item whose body is kept in a file its content and summary (see `sync.BodyLoader`)."""


def _no_bodies(item: FeedItem) -> FeedItem:
    return item


def _render_feed(store: Store, config: Config, task: RenderTask, bodies: BodyLoader) -> RenderDone:
    from aggregator.publish.render import RENDERERS  # feedgen and lxml load only to render

    ref = task.ref
    items = [bodies(item) for item in store.feed_items(ref.key, config.feeds.entries)]
    meta = feed_meta(config, ref)
    files: dict[str, str] = {}
    written: list[str] = []
    for fmt in config.feeds.formats:
        rel = ref.path(fmt)
        files[fmt] = rel
        if write_if_changed(config.output_dir / rel, RENDERERS[fmt](meta, items)):
            written.append(rel)
    entry = {
        "kind": ref.kind,
        "name": ref.name,
        "title": meta.title,
        "revision": task.revision,
        "fingerprint": task.fingerprint,
        "entries": task.entries,
        "updated": iso(meta.updated(items)),
        "files": files,
    }
    return ref.key, entry, written


# Rendering is CPU-bound (feedgen builds an lxml tree per feed and format). With many feeds to
# render, forked worker processes share the work; each opens its own database connection.
PARALLEL_MIN = 24
_worker: tuple[Store, Config, BodyLoader] | None = None


def _init_worker(config: Config, bodies: BodyLoader) -> None:
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    _worker = (Store.open(config.database_url, upgrade=False), config, bodies)


def _render_chunk(tasks: list[RenderTask]) -> list[RenderDone]:
    assert _worker is not None
    store, config, bodies = _worker
    return [_render_feed(store, config, task, bodies) for task in tasks]


def _render_all(
    store: Store,
    config: Config,
    tasks: list[RenderTask],
    workers: int,
    progress: Callable[[int, int], None] | None,
    bodies: BodyLoader,
) -> Iterator[RenderDone]:
    total = len(tasks)
    if workers <= 1 or total < PARALLEL_MIN:
        for done, task in enumerate(tasks, start=1):
            yield _render_feed(store, config, task, bodies)
            if progress:
                progress(done, total)
        return
    chunks = [tasks[i : i + 8] for i in range(0, total, 8)]
    context = multiprocessing.get_context("fork")
    done = 0
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(config, bodies)
    ) as pool:
        for results in pool.map(_render_chunk, chunks):
            for item in results:
                done += 1
                yield item
                if progress:
                    progress(done, total)


def _listed_from_manifest(key: str, entry: dict[str, Any]) -> Listed:
    return Listed(
        ref=feed_ref(key, entry["name"]),
        title=entry["title"],
        entries=entry["entries"],
        updated=datetime.fromisoformat(entry["updated"].replace("Z", "+00:00")),
    )
