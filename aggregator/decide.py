"""Stage 3: from every stored copy of an article, decide what its entry is (pure functions).

- The winning copy supplies title, content, link and dates: the one with the latest declared
  `updated`, else the later published date, else the most recently changed file, else (for a
  stable answer) the smallest locator.
- Tags and sources are the union over all copies, in the winner's order first.
- The entry's `updated` moves only when its content hash (title, content, link, tags) changes;
  then it takes the winner's declared date when that is newer, else the time of the change.
- An article with no copies left is removed; so is one whose only copies are the origin
  input's (its original page read again: that input only follows articles others carry).
- `relinked`: what readers see is unchanged, but the store must record another winning copy,
  date or set of sources (the feeds it belongs to are republished; their bytes may not change).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

from aggregator.normalise import identity
from aggregator.types import EntryIntent, StoredEntry, StoredVersion, Tag, is_mark

_EPOCH = datetime.min.replace(tzinfo=UTC)

ALL_FEED = "all"


def feeds_of(source_keys: Iterable[str], tag_keys: Iterable[str]) -> set[str]:
    """Keys of every feed an entry with these sources and tags appears in (a mark has none)."""
    feeds = {"source:" + k for k in source_keys}
    feeds.update(["tag:" + k for k in tag_keys if not is_mark(k)])
    feeds.add(ALL_FEED)
    return feeds


def _rank(v: StoredVersion) -> tuple[datetime, datetime, int]:
    return (v.declared_updated or _EPOCH, v.published or _EPOCH, v.mtime_ns)


def _tie(v: StoredVersion) -> tuple[str, int]:
    return (v.locator, v.version_id)


def winner(versions: Sequence[StoredVersion]) -> StoredVersion:
    """The copy that supplies an entry's title and content; among exact ties, the smallest
    (locator, version id), so the answer never depends on the order copies are given in."""
    best = versions[0]
    for v in versions[1:]:
        a, b = _rank(v), _rank(best)
        if a > b or (a == b and _tie(v) < _tie(best)):
            best = v
    return best


def _union(first: Iterable[Tag], *rest: Iterable[Tag]) -> tuple[Tag, ...]:
    seen: dict[str, str] = dict(first)
    for group in rest:
        for key, display in group:
            seen.setdefault(key, display)
    return tuple(seen.items())


def decide_entry(
    key: str,
    versions: Sequence[StoredVersion],
    stored: StoredEntry | None,
    now: datetime,
) -> EntryIntent:
    """What the entry `key` becomes, given all its copies and what the store holds of it."""
    if all(v.from_origin for v in versions):
        versions = ()  # the article's own copies are gone: what its page says does not count
    if not versions:
        if stored is None:
            return EntryIntent(identity_key=key, action="unchanged")
        return EntryIntent(
            identity_key=key,
            action="removed",
            feeds=frozenset(feeds_of(stored.source_keys, stored.tag_keys)),
        )
    if len(versions) == 1:  # the common case, without the merging machinery
        best = versions[0]
        tags = best.tags
        sources: tuple[Tag, ...] = ((best.source_key, best.source_name),)
    else:
        best = winner(versions)
        others = [v for v in sorted(versions, key=_tie) if v is not best]
        tags = _union(best.tags, *(v.tags for v in others))
        sources = _union(
            [(best.source_key, best.source_name)],
            *([(v.source_key, v.source_name)] for v in others),
        )
    chash = identity.content_hash(best.body_hash, (k for k, _ in tags))
    published = best.published or (stored.published if stored else now)
    declared = best.declared_updated or published
    feeds = feeds_of((k for k, _ in sources), (k for k, _ in tags))
    action: Literal["new", "updated", "relinked", "unchanged"]
    if stored is None:
        action = "new"
        updated = max(declared, published)
    elif stored.content_hash != chash:
        action = "updated"
        updated = declared if declared > stored.updated else now
    else:
        unchanged = (
            stored.version_id == best.version_id
            and stored.published == published
            and stored.source_key == best.source_key
            and stored.source_keys == frozenset(k for k, _ in sources)
        )
        action = "unchanged" if unchanged else "relinked"
        updated = stored.updated
    if stored is not None:
        feeds |= feeds_of(stored.source_keys, stored.tag_keys)
    return EntryIntent(
        identity_key=key,
        action=action,
        entry_id=identity.entry_id(key),
        version_id=best.version_id,
        published=published,
        updated=updated,
        content_hash=chash,
        source_key=best.source_key,
        source_name=best.source_name,
        tags=tags,
        sources=sources,
        feeds=frozenset(feeds) if action != "unchanged" else frozenset(),
    )


def decide_entries(
    keys: Iterable[str],
    versions: Mapping[str, Sequence[StoredVersion]],
    stored: Mapping[str, StoredEntry],
    now: datetime,
) -> list[EntryIntent]:
    """`decide_entry` for each key, in a stable order."""
    return [decide_entry(k, versions.get(k, ()), stored.get(k), now) for k in sorted(set(keys))]
