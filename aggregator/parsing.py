"""Reading posts and feed documents into versions: stages 1 and 2, here or in workers.

This module imports only the adapter and normalisation (PyYAML, nh3, markdown-it), never the
store or the publisher: parse workers are started from a fork server that preloads just this
module, so each holds a few tens of MB instead of a copy of everything the main process has
loaded (SQLAlchemy, pydantic, the folder listing).
"""

from __future__ import annotations

import multiprocessing
import signal
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from aggregator.adapters import feed as feed_adapter
from aggregator.adapters import files as files_adapter
from aggregator.errors import ParseError
from aggregator.normalise import PostSettings, normalise_post
from aggregator.normalise.item import ItemSettings, normalise_document
from aggregator.types import FileStat, Skipped, Version

CHUNK = 250  # files per task handed to a worker process
PARALLEL_MIN = 1500  # below this many files, parse in this process

Parsed = Version | Skipped


def parse_file(file: FileStat, settings: PostSettings) -> Parsed:
    """Read and normalise one post; a file that is not a post becomes a Skipped."""
    try:
        return normalise_post(files_adapter.read_post(file), settings)
    except ParseError as exc:
        return Skipped(file.locator, str(exc))


def parse_files(files: Sequence[FileStat], settings: PostSettings) -> list[Parsed]:
    return [parse_file(f, settings) for f in files]


_settings: PostSettings | None = None


def _init_worker(settings: PostSettings) -> None:
    global _settings
    _settings = settings
    # Ctrl-C reaches the whole process group: the main process decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _parse_chunk(files: Sequence[FileStat]) -> list[Parsed]:
    assert _settings is not None
    return parse_files(files, _settings)


def worker_context() -> multiprocessing.context.BaseContext:
    """Where worker processes come from: a fork server preloading this module (spawn where
    there is none)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def parsed(
    files: Sequence[FileStat], settings: PostSettings, workers: int
) -> Iterator[list[Parsed]]:
    """Parse files in order, in chunks; in worker processes when there are many."""
    chunks = [files[i : i + CHUNK] for i in range(0, len(files), CHUNK)]
    if workers <= 1 or len(files) < PARALLEL_MIN:
        for chunk in chunks:
            yield parse_files(chunk, settings)
        return
    # Chunks in flight: enough that workers never wait while the caller writes a batch to the
    # store (results are small: bodies stay in their files), and still bounded.
    window = 16 * workers
    with ProcessPoolExecutor(
        workers, mp_context=worker_context(), initializer=_init_worker, initargs=(settings,)
    ) as pool:
        pending: deque[Future[list[Parsed]]] = deque()
        todo = iter(chunks)
        for chunk in todo:
            pending.append(pool.submit(_parse_chunk, chunk))
            if len(pending) >= window:
                break
        while pending:
            result = pending.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(_parse_chunk, nxt))
            yield result


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A fetched feed document, read and normalised."""

    versions: list[Version]
    skipped: list[tuple[int, str]]
    """(item position, reason) of items with nothing to show."""
    warnings: tuple[str, ...] = ()
    error: str | None = None
    """Why the document could not be read at all."""


def parse_feed(content: bytes, url: str, charset: str | None, settings: ItemSettings) -> ParsedFeed:
    """Read one fetched document into versions; a document that is not a feed is an error."""
    try:
        doc = feed_adapter.parse_document(content, url, charset)
    except ParseError as exc:
        return ParsedFeed([], [], error=str(exc))
    versions, skipped = normalise_document(doc, settings)
    warnings = list(doc.warnings)
    for v in versions:
        warnings.extend(v.warnings)
    return ParsedFeed(versions, skipped, tuple(dict.fromkeys(warnings)))


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def feed_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for `parse_feed` (from the same lean fork server as post parsing)."""
    return ProcessPoolExecutor(workers, mp_context=worker_context(), initializer=_ignore_sigint)
