"""Stage 5: publish the store as feeds, `index.html` and `feeds.opml` (owns feedgen).

Publishing is a pure function of the store: rendering is deterministic and files are written
atomically (temporary file, then rename) and only when their bytes change, so a second run with
nothing changed writes nothing and every HTTP validator stays valid.

Work is skipped where the store says nothing changed: the store keeps, per feed, the revision
of the last change to its entries, and the output folder keeps a manifest of the revisions it
was rendered from. Only feeds whose revision moved (or whose files are missing, or whose
settings changed) are looked at again; of those, only the documents whose entries changed
are rendered: the subscription document when its newest entries (or its newest archive page)
changed, an archive page when its own entries (or whether a next page exists) changed, each
told by a cheap hash of the entries' ids, dates and content hashes kept in the manifest.

Every file's modification time is set to the date of its content (a feed's `updated`; for
`index.html` and `feeds.opml` the newest feed's; a fixed date for `feed.xsl`), so every
machine publishing the same store serves the same `Last-Modified`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.resources import files as package_files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aggregator import __version__
from aggregator.config import Config
from aggregator.errors import PublishError
from aggregator.normalise.dates import iso
from aggregator.publish.plan import (
    EMPTY_FEED_DATE,
    STYLESHEET,
    FeedRef,
    archive_pages,
    feed_ref,
    page_places,
    sort_key,
)
from aggregator.publish.site import Listed, render_index, render_opml
from aggregator.store import ItemRef, Store
from aggregator.types import FeedItem

if TYPE_CHECKING:
    from aggregator.publish.render import FeedMeta

log = logging.getLogger("aggregator")
timing = logging.getLogger("aggregator.timing")  # how long each stage took (`-v`)

MANIFEST = ".aggregator-manifest.json"
TEMP_PREFIX = ".tmp-aggregator-"
INDEX = "index.html"
OPML = "feeds.opml"
LAYOUT = 3
"""Version of what the renderers write; a new one renders every feed again (2: archive pages,
hub links, xml-stylesheet; 3: complete feeds)."""
STYLESHEET_DATE = datetime(2026, 11, 22, tzinfo=UTC)
"""Modification time of `feed.xsl`: move it whenever `feed.xsl` changes."""
PAGES_PER_TASK = 4
"""Archive pages rendered by one task (tasks are shared among worker processes)."""


@dataclass
class PublishResult:
    written: list[str] = field(default_factory=list)
    """Files whose bytes changed (relative paths)."""
    removed: list[str] = field(default_factory=list)
    rendered: int = 0
    """Feeds rendered, wholly or in part (a rendered file whose bytes did not change is not
    written)."""
    feeds: list[Listed] = field(default_factory=list)


def config_fingerprint(config: Config) -> str:
    """Everything besides the store that changes published bytes."""
    settings = {
        "version": __version__,
        "layout": LAYOUT,
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


def write_if_changed(path: Path, data: bytes, mtime: datetime | None = None) -> bool:
    """Write `data` atomically unless the file already holds exactly these bytes. With
    `mtime`, the file's modification time is set to it (also when the bytes were already
    there but the time was not)."""
    ns = None if mtime is None else int(mtime.timestamp()) * 1_000_000_000
    try:
        st = path.stat()
        if st.st_size == len(data) and path.read_bytes() == data:
            if ns is not None and st.st_mtime_ns != ns:
                os.utime(path, ns=(ns, ns))
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
            if ns is not None:
                os.utime(tmp, ns=(ns, ns))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise PublishError(f"{path}: cannot write ({exc.strerror})") from None
    return True


def stylesheet() -> bytes:
    """The XSLT that shows Atom and RSS files as a page in a browser (package data)."""
    return (package_files("aggregator.publish") / STYLESHEET).read_bytes()


def archive_settings(config: Config) -> tuple[int, tuple[str, ...]]:
    """(entries per archive page, formats of archive pages); (0, ()) without archives."""
    formats = tuple(f for f in config.feeds.formats if f in config.feeds.archive_formats)
    if not formats or not config.feeds.archive_page:
        return 0, ()
    return config.feeds.archive_page, formats


def feed_meta(config: Config, ref: FeedRef, last_place: int, complete: bool = False) -> FeedMeta:
    """What the subscription document of a feed says about itself; `last_place` is the last
    place given in its archive (it decides the newest archive page, which it links to), and a
    `complete` feed (see `is_complete`) has no archive."""
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
    formats = config.feeds.formats
    page_size, archived = archive_settings(config)
    pages = 0 if complete else archive_pages(last_place, page_size)
    return FeedMeta(
        title=title,
        description=description,
        home_url=site.base_url,
        self_urls={fmt: ref.url(site.base_url, fmt) for fmt in formats},
        language=site.language,
        stylesheet=site.base_url + STYLESHEET,
        hub=config.websub.hub,
        prev_archive=(
            {fmt: ref.archive_url(site.base_url, pages, fmt) for fmt in archived} if pages else None
        ),
        complete=complete,
    )


def is_complete(config: Config, entries: int) -> bool:
    """Whether a feed of `entries` entries is complete: its subscription document holds them
    all, so an archive would only repeat it (RFC 5005 section 2). It gets one when it grows."""
    return entries <= config.feeds.entries


def archive_meta(config: Config, ref: FeedRef, page: int, pages: int) -> FeedMeta:
    """What archive page `page` of `pages` says about itself (see `plan`)."""
    base, (_, formats) = config.site.base_url, archive_settings(config)
    feed = feed_meta(config, ref, 0)

    def urls(n: int) -> dict[str, str]:
        return {fmt: ref.archive_url(base, n, fmt) for fmt in formats}

    return replace(
        feed,
        self_urls=urls(page),
        hub=None,
        current=feed.self_urls,
        prev_archive=urls(page - 1) if page > 1 else None,
        next_archive=urls(page + 1) if page < pages else None,
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
    page_size, archived = archive_settings(config)
    settings = config_fingerprint(config)
    manifest = {} if force else read_manifest(output)
    same_settings = manifest.get("settings") == settings
    old_feeds: dict[str, Any] = manifest.get("feeds", {}) if same_settings else {}
    # Read revisions before any data: a change committed while we render is then seen as
    # newer than what we rendered, and picked up by the next run.
    store_revision = store.revision()
    states = store.feed_states()
    result = PublishResult()

    folder = f"{output}{os.sep}"  # strings, not Paths: this runs for every file on every sync

    def present(rels: Iterable[str]) -> bool:
        return all(os.path.isfile(folder + rel) for rel in rels)

    # Post bodies that could not be read when last published, with the entries that showed
    # them empty: once a file is there again, the documents holding those entries are
    # rendered afresh; until then they are left alone (and not warned about again).
    old_unreadable = manifest.get("unreadable") if same_settings else None
    unreadable: dict[str, list[Any]] = (
        {p: v for p, v in old_unreadable.items() if isinstance(v, list) and len(v) == 2}
        if isinstance(old_unreadable, dict)
        else {}
    )
    back = [p for p in unreadable if os.path.exists(p)]
    if (
        same_settings
        and manifest.get("store_revision") == store_revision
        and not back
        and all(present(files_of(k, e)) for k, e in old_feeds.items())
        and present([INDEX, OPML, STYLESHEET])
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
    forced_feeds: set[str] = set()
    forced_pages: set[tuple[str, int]] = set()
    if back:
        readable = sorted({int(pk) for p in back for pk in unreadable.pop(p)[1]})
        for key, place in store.places_of(readable):
            forced_feeds.add(key)
            if page_size:
                forced_pages.add((key, (place - 1) // page_size + 1))
    if unreadable:  # files of entries removed since (the post deleted) are forgotten
        alive = store.present_entries([int(pk) for _, pks in unreadable.values() for pk in pks])
        for path, (reason, pks) in list(unreadable.items()):
            if shown := [pk for pk in pks if int(pk) in alive]:
                unreadable[path] = [reason, shown]
            else:
                del unreadable[path]
    new_manifest: dict[str, Any] = {}
    tasks: list[RenderTask] = []
    wanted: dict[int, set[str]] = {}  # entry pk -> formats it is to be rendered in
    # The store revision the output was last published at (None: render everything), and the
    # archive pages holding an entry written since (None: not looked up yet).
    last = manifest.get("store_revision") if same_settings else None
    last_publish = last if isinstance(last, int) else None
    rewritten: set[tuple[str, int]] | None = None
    for key, (name, entries) in sorted(counts.items()):
        ref = feed_ref(key, config.site.title if key == "all" else name)
        previous: dict[str, Any] = old_feeds.get(key) or {}
        if previous.get("name") != ref.name:
            previous = {}
        revision, last_place = states.get(key, (0, 0))
        complete = is_complete(config, entries)
        pages = 0 if complete else archive_pages(last_place, page_size)
        if (
            previous
            and key not in forced_feeds
            and previous.get("revision") == revision
            and previous.get("entries") == entries
            and len(previous.get("pages", ())) == pages
            and present(files_of(key, previous))
        ):
            new_manifest[key] = previous
            continue
        # Its entries changed, but perhaps none of its newest, nor any of some archive
        # pages: cheap fingerprints of those say which documents' bytes can differ at all.
        fingerprint, newest_pks = store.feed_fingerprint(key, config.feeds.entries)
        newest = f"{fingerprint}/{pages}"
        entry = {**previous, "revision": revision, "entries": entries, "fingerprint": newest}
        if key in forced_feeds or not (
            previous.get("fingerprint") == newest
            and previous.get("entries") == entries
            and present(previous.get("files", {}).values())
        ):
            tasks.append(RenderTask(ref, last_place, complete=complete))
            for pk in newest_pks:
                wanted.setdefault(pk, set()).update(formats)
        # Each page is kept as [summary of its places, store revision it was rendered at]; it
        # is rendered again when its places changed or one of its entries was written since.
        digests = store.archive_digests(key, page_size) if pages else {}
        if pages and rewritten is None and last_publish is not None:
            rewritten = store.pages_written_since(last_publish, page_size)
        old_pages: list[list[Any]] = previous.get("pages", [])
        entry["pages"] = []
        if pages:
            entry["archive_formats"] = list(archived)
        else:
            entry.pop("archive_formats", None)
        stale: list[tuple[int, int | None]] = []
        for n in range(1, pages + 1):
            digest = digests.get(n, "") + ("+next" if n < pages else "")
            old = old_pages[n - 1] if n <= len(old_pages) else None
            if not (isinstance(old, list) and len(old) == 2 and isinstance(old[1], int)):
                old = None  # not a page this version wrote: render it all
            if (key, n) in forced_pages:
                old = None  # it shows a body that can be read again: render it all
            if (
                old
                and old[0] == digest
                and rewritten is not None
                and (key, n) not in rewritten
                and present(ref.archive_path(n, f) for f in archived)
            ):
                entry["pages"].append(old)
                continue
            entry["pages"].append([digest, store_revision])
            # its entries written since its file was rendered are rendered, the others copied
            stale.append((n, old[1] if old else None))
        for i in range(0, len(stale), PAGES_PER_TASK):
            tasks.append(RenderTask(ref, last_place, tuple(stale[i : i + PAGES_PER_TASK])))
        new_manifest[key] = entry
    if any(task.pages for task in tasks):
        # The entries a stale archive page cannot copy from its old file are (but for pages
        # whose file is missing) those written since the last publish.
        for pk in store.entries_changed_since(last_publish):
            wanted.setdefault(pk, set()).update(archived)
    loader = bodies or _no_bodies
    touched: set[str] = set()
    rendering = _render_all(store, config, tasks, wanted, workers, progress, loader)
    for key, part, written in rendering:
        # bodies these documents show empty: (post file, entry pk, why it could not be read)
        for path, pk, reason in part.pop("unreadable", ()):
            if path not in unreadable:
                unreadable[path] = [reason, []]
                log.warning("%s: body not published: %s", path, reason)
            if pk not in unreadable[path][1]:
                unreadable[path][1].append(pk)
        new_manifest[key].update(part)
        result.written.extend(written)
        touched.add(key)
    result.rendered = len(touched)

    # Files published before and not now (a feed left empty, a format no longer configured,
    # archives turned off) are removed, whatever settings they were written with.
    kept = {rel for key, entry in new_manifest.items() for rel in files_of(key, entry)}
    for key, entry in manifest.get("feeds", {}).items():
        for rel in files_of(key, entry):
            if rel not in kept and (output / rel).is_file():
                (output / rel).unlink()
                result.removed.append(rel)
                _remove_empty_folders((output / rel).parent, output)

    listed = sorted(
        (_listed_from_manifest(k, v) for k, v in new_manifest.items()),
        key=lambda f: sort_key(f.ref),
    )
    site = config.site
    newest_update = max((f.updated for f in listed), default=EMPTY_FEED_DATE)
    for name, data, mtime in (
        (INDEX, render_index(site.title, site.description, site.base_url, formats, listed),
         newest_update),
        (OPML, render_opml(site.title, site.base_url, formats, listed), newest_update),
        (STYLESHEET, stylesheet(), STYLESHEET_DATE),
    ):  # fmt: skip
        if write_if_changed(output / name, data, mtime):
            result.written.append(name)
    state = {"settings": settings, "store_revision": store_revision, "feeds": new_manifest}
    if unreadable:
        state["unreadable"] = {p: [r, sorted(pks)] for p, (r, pks) in unreadable.items()}
    blob = json.dumps(
        state,
        ensure_ascii=False, sort_keys=True,
        indent=1,
    ).encode("utf-8")  # fmt: skip
    write_if_changed(output / MANIFEST, blob)
    result.feeds = listed
    return result


def files_of(key: str, entry: dict[str, Any]) -> list[str]:
    """Every file a feed's manifest entry says it published: its subscription documents in
    each format and its archive pages in each archive format."""
    out = list(entry.get("files", {}).values())
    pages = len(entry.get("pages", ()))
    if pages:
        ref = feed_ref(key, entry.get("name", ""))
        formats = entry.get("archive_formats", list(entry["files"]))
        out.extend(ref.archive_path(n, fmt) for fmt in formats for n in range(1, pages + 1))
    return out


def _remove_empty_folders(folder: Path, output: Path) -> None:
    while folder != output and output in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (or already gone)
            return
        folder = folder.parent


@dataclass(frozen=True, slots=True)
class RenderTask:
    """Render a feed's subscription documents (no `pages`) or some of its archive pages."""

    ref: FeedRef
    last_place: int
    """The last place given in the feed's archive (it decides how many pages there are)."""
    pages: tuple[tuple[int, int | None], ...] = ()
    """(page, store revision its file was rendered at, or None to render it all afresh)."""
    complete: bool = False
    """The feed is complete (see `is_complete`): no archive to link to."""


RenderDone = tuple[str, dict[str, Any], list[str]]
"""(feed key, what to record in its manifest entry, files written)"""


BodyLoader = Callable[[FeedItem], FeedItem]
"""Gives an item whose body is kept in a file its content and summary (see `sync.BodyLoader`)."""


def _no_bodies(item: FeedItem) -> FeedItem:
    return item


def _render_task(config: Config, task: RenderTask, blocks: Blocks) -> RenderDone:
    # feedgen and lxml load only to render
    from aggregator.publish.render import assemble

    ref, store = task.ref, blocks.store
    written: list[str] = []
    blocks.unreadable = []
    if task.pages:
        size, archived = archive_settings(config)
        total = archive_pages(task.last_place, size)
        for page, since in task.pages:
            places = page_places(page, size)
            refs = store.archive_refs(ref.key, *places)
            # entries written since the page's file was rendered (None: it cannot be trusted)
            changed = None if since is None else {r.entry_id for r in refs if r.changed > since}
            meta = archive_meta(config, ref, page, total)
            meta = replace(meta, updated_at=_newest_update(refs))
            for fmt in archived:
                path = config.output_dir / ref.archive_path(page, fmt)
                kept = _unchanged_blocks(path, fmt, changed)
                data = assemble(fmt, meta, blocks.gather(fmt, refs, kept))
                if write_if_changed(path, data, meta.updated_at):
                    written.append(ref.archive_path(page, fmt))
        return ref.key, {"unreadable": blocks.unreadable} if blocks.unreadable else {}, written
    refs = store.feed_refs(ref.key, config.feeds.entries)
    updated = _newest_update(refs)
    meta = replace(feed_meta(config, ref, task.last_place, task.complete), updated_at=updated)
    files: dict[str, str] = {}
    for fmt in config.feeds.formats:
        rel = ref.path(fmt)
        files[fmt] = rel
        data = assemble(fmt, meta, blocks.gather(fmt, refs, {}))
        if write_if_changed(config.output_dir / rel, data, updated):
            written.append(rel)
    entry: dict[str, Any] = {
        "kind": ref.kind,
        "name": ref.name,
        "title": meta.title,
        "updated": iso(updated),
        "files": files,
    }
    if blocks.unreadable:
        entry["unreadable"] = blocks.unreadable
    return ref.key, entry, written


def _newest_update(refs: list[ItemRef]) -> datetime:
    return max((r.updated for r in refs), default=EMPTY_FEED_DATE)


def _unchanged_blocks(path: Path, fmt: str, changed: set[str] | None) -> dict[str, bytes]:
    """The entries of an archive page's old file that can be copied: all but those written
    since it was rendered (`changed`; None: the file cannot be trusted, copy nothing)."""
    from aggregator.publish.render import entry_blocks

    if changed is None:
        return {}
    try:
        old = path.read_bytes()
    except OSError:
        return {}
    return {k: v for k, v in entry_blocks(fmt, old).items() if k not in changed}


# ---- rendering: entries once, then documents --------------------------------------------------
#
# One entry is in many documents (everything, its source, each of its tags, and an archive
# page of each), and rendering an entry with feedgen is most of the cost of a document. So
# publishing renders in two passes (see `render.assemble`): first every entry that some
# document to render shows afresh, once per format, into block files beside the output
# (`_render_blocks`); then every document, from its frame, the blocks of unchanged entries
# its old file holds, and the block files (`_render_task`). An entry the first pass did not
# render (the store changed in between, or an old file went missing) is rendered where it is
# needed. Both passes are CPU-bound; with many documents to render, forked worker processes
# share the work and each opens its own database connection.

BLOCKS_PER_TASK = 250
"""Entries rendered by one first-pass task."""
TASKS_PER_CHUNK = 8
PARALLEL_MIN = 24
PARALLEL_MIN_FRESH = 96

BlockIndex = dict[tuple[str, str], tuple[str, int, int]]
"""(format, entry id) -> (block file, offset, length)"""


class Blocks:
    """The rendered entries of the first pass, read back from their block files; entries it
    lacks are read from `store` and rendered."""

    def __init__(self, index: BlockIndex, store: Store, bodies: BodyLoader):
        self.index = index
        self.store = store
        self.bodies = bodies
        self.files: dict[str, int] = {}
        self.unreadable: list[tuple[str, int, str]] = []
        """(post file, entry pk, reason) of the bodies gathered since this was last reset that
        could not be read (they are shown empty)."""

    def gather(self, fmt: str, refs: list[ItemRef], kept: dict[str, bytes]) -> list[bytes]:
        """The blocks of these entries, in order: from `kept`, else the block files, else
        rendered now (an entry deleted meanwhile is left out)."""
        from aggregator.publish.render import render_blocks

        found: dict[str, bytes] = {}
        missing: list[int] = []
        for ref in refs:
            block = kept.get(ref.entry_id) or self._read(fmt, ref.entry_id)
            if block is None:
                missing.append(ref.pk)
            else:
                found[ref.entry_id] = block
        if missing:
            items: list[FeedItem] = []
            for pk, item in self.store.items_by_pk(missing).items():
                loaded = self.bodies(item)
                if loaded.body_error is not None and loaded.body_path is not None:
                    self.unreadable.append((loaded.body_path, pk, loaded.body_error))
                items.append(loaded)
            found.update(render_blocks(fmt, items))
        return [found[r.entry_id] for r in refs if r.entry_id in found]

    def _read(self, fmt: str, entry_id: str) -> bytes | None:
        where = self.index.get((fmt, entry_id))
        if where is None:
            return None
        path, offset, length = where
        fd = self.files.get(path)
        if fd is None:
            try:
                fd = self.files[path] = os.open(path, os.O_RDONLY)
            except OSError:  # swept away by another publisher's cleanup: render it here
                return None
        return os.pread(fd, length, offset)

    def close(self) -> None:
        for fd in self.files.values():
            os.close(fd)
        self.files.clear()


def _render_blocks(
    store: Store, config: Config, wanted: list[tuple[int, tuple[str, ...]]], bodies: BodyLoader
) -> BlockIndex:
    """Render these entries in these formats into a new block file in the output folder."""
    from aggregator.publish.render import render_blocks

    items = store.items_by_pk([pk for pk, _ in wanted])
    by_format: dict[str, list[FeedItem]] = {}
    for pk, formats in wanted:
        item = items.get(pk)
        if item is None:  # deleted meanwhile
            continue
        item = bodies(item)
        if item.body_error is not None:
            continue  # left to the documents showing it, which then know (see `Blocks`)
        for fmt in formats:
            by_format.setdefault(fmt, []).append(item)
    index: BlockIndex = {}
    fd, path = tempfile.mkstemp(dir=config.output_dir, prefix=TEMP_PREFIX + "blocks-")
    with os.fdopen(fd, "wb") as fh:
        offset = 0
        for fmt, fmt_items in sorted(by_format.items()):
            for entry_id, block in render_blocks(fmt, fmt_items).items():
                fh.write(block)
                index[fmt, entry_id] = (path, offset, len(block))
                offset += len(block)
    return index


_worker: tuple[Config, Blocks] | None = None


def _init_worker(config: Config, bodies: BodyLoader, index: BlockIndex) -> None:
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    store = Store.open(config.database_url, upgrade=False)
    _worker = (config, Blocks(index, store, bodies))


def _blocks_task(wanted: list[tuple[int, tuple[str, ...]]]) -> BlockIndex:
    assert _worker is not None
    config, blocks = _worker
    return _render_blocks(blocks.store, config, wanted, blocks.bodies)


def _render_chunk(tasks: list[RenderTask]) -> list[RenderDone]:
    assert _worker is not None
    config, blocks = _worker
    return [_render_task(config, task, blocks) for task in tasks]


def _render_all(
    store: Store,
    config: Config,
    tasks: list[RenderTask],
    wanted: dict[int, set[str]],
    workers: int,
    progress: Callable[[int, int], None] | None,
    bodies: BodyLoader,
) -> Iterator[RenderDone]:
    ordered = [(pk, tuple(sorted(wanted[pk]))) for pk in sorted(wanted)]
    first = [ordered[i : i + BLOCKS_PER_TASK] for i in range(0, len(ordered), BLOCKS_PER_TASK)]
    total = len(first) + len(tasks)
    context = _worker_context()
    # Workers that are not forked start a fresh interpreter and import the publisher (about a
    # second a pool): worth it only for a large publish, such as the daemon's first.
    least = PARALLEL_MIN if context.get_start_method() == "fork" else PARALLEL_MIN_FRESH
    parallel = workers > 1 and total >= least
    done = 0
    index: BlockIndex = {}
    blocks = Blocks(index, store, bodies)
    started = time.perf_counter()
    try:
        if not first:
            parts: Iterable[BlockIndex] = ()
        elif parallel:
            parts = _pool_map(context, workers, config, bodies, {}, _blocks_task, first)
        else:
            parts = (_render_blocks(store, config, w, bodies) for w in first)
        for part in parts:
            index.update(part)
            done += 1
            if progress:
                progress(done, total)
        where = f"{workers} workers ({context.get_start_method()})" if parallel else "here"
        timing.info(
            "rendered %d entries (%d blocks) in %.2fs, %s",
            len(ordered), len(index), time.perf_counter() - started, where,
        )  # fmt: skip
        if parallel:
            chunks = [tasks[i : i + TASKS_PER_CHUNK] for i in range(0, len(tasks), TASKS_PER_CHUNK)]
            # started after the first pass, the workers get its index (forked: shared)
            results = _pool_map(context, workers, config, bodies, index, _render_chunk, chunks)
            documents: Iterable[RenderDone] = (d for chunk in results for d in chunk)
        else:
            documents = (_render_task(config, task, blocks) for task in tasks)
        for document in documents:
            done += 1
            yield document
            if progress:
                progress(done, total)
    finally:
        blocks.close()
        for path in {where[0] for where in index.values()}:
            Path(path).unlink(missing_ok=True)


def _pool_map(
    context: multiprocessing.context.BaseContext,
    workers: int,
    config: Config,
    bodies: BodyLoader,
    index: BlockIndex,
    fn: Callable[[Any], Any],
    args: list[Any],
) -> Iterator[Any]:
    """fn over args in worker processes, results in order."""
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(config, bodies, index)
    )
    try:
        yield from pool.map(fn, args)
    except BaseException:
        # Ctrl-C, or a failed task: the tasks not started yet are dropped, not waited for
        # (with archive pages there can be thousands).
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


def _worker_context() -> multiprocessing.context.BaseContext:
    """Fork when this process runs one thread (`aggregator sync`): workers start at once.
    With other threads running (the daemon's server and scheduler), a forked child could
    inherit a lock one of them held, locked forever; workers then come from the fork server
    post parsing uses (a clean single-threaded process) and import what they need."""
    if threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    from aggregator.parsing import worker_context

    return worker_context()


def _listed_from_manifest(key: str, entry: dict[str, Any]) -> Listed:
    return Listed(
        ref=feed_ref(key, entry["name"]),
        title=entry["title"],
        entries=entry["entries"],
        updated=datetime.fromisoformat(entry["updated"].replace("Z", "+00:00")),
    )
