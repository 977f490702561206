"""What `aggregator` prints: a progress bar and a summary table on a terminal (rich), plain
lines otherwise. Skipped files and warnings are one line each on stderr with path and reason."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aggregator.config import Config
from aggregator.sync import SyncReport, Unlisted

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

# rich is imported only when output goes to a terminal: a cron job's `sync` starts faster.


class ConsoleReporter:
    """Progress for `sync`: a rich bar on a terminal, nothing but problems otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.out: Console | None = None
        self.progress: Progress | None = None
        self.task: Any = None
        self.problems = 0

    def __enter__(self) -> ConsoleReporter:
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.out = Console(highlight=False, soft_wrap=True)
            err = Console(stderr=True, highlight=False, soft_wrap=True)
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()

    def input_started(self, name: str, to_read: int) -> None:
        if self.progress:
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task(f"reading {name}", total=to_read)

    def advance(self, n: int) -> None:
        if self.progress and self.task is not None:
            self.progress.advance(self.task, n)

    def _line(self, text: str) -> None:
        self.problems += 1
        if self.progress:
            self.progress.console.print(text, markup=False)
        else:
            print(text, file=sys.stderr)

    def skipped(self, path: str, reason: str) -> None:
        self._line(f"skipped {path}: {reason}")

    def warning(self, path: str, message: str) -> None:
        self._line(f"warning {path}: {message}")

    def publishing(self, done: int, total: int) -> None:
        if self.progress:
            if self.task is not None and done == 1:
                self.progress.remove_task(self.task)
                self.task = self.progress.add_task("publishing", total=total)
            if self.task is not None:
                self.progress.update(self.task, completed=done)


def _reasons(skipped: list[Any]) -> str:
    counts = Counter(s.reason.split(" (")[0] for s in skipped).most_common()
    shown = "; ".join(f"{n}× {reason}" for reason, n in counts[:3])
    rest = sum(n for _, n in counts[3:])
    # every file was named on its own line as it was skipped; the summary stays one line
    if not rest:
        return shown
    others = len(counts) - 3
    return f"{shown}; {rest}× for {others} other reason{'s' if others > 1 else ''}"


def print_summary(report: SyncReport, config: Config, reporter: ConsoleReporter) -> None:
    published = report.published
    written = len(published.written) if published else 0
    feeds = len(published.feeds) if published else 0
    if reporter.tty and reporter.out is not None:
        from rich.table import Table

        table = Table(title="aggregator sync", title_justify="left")
        for col in ("input", "new", "updated", "unchanged", "removed", "skipped"):
            table.add_column(col, justify="left" if col == "input" else "right")
        table.add_column("notes")
        for i in report.inputs:
            table.add_row(
                i.name, str(i.new), str(i.updated), str(i.unchanged), str(i.removed),
                str(len(i.skipped)), i.error or i.note or _reasons(i.skipped),
            )  # fmt: skip
        reporter.out.print(table)
    for i in report.inputs:
        if i.error:
            print(f"error: input {i.name}: {i.error}", file=sys.stderr)
        elif not reporter.tty:
            line = (
                f"{i.name}: {i.new} new, {i.updated} updated, {i.unchanged} unchanged, "
                f"{i.removed} removed, {len(i.skipped)} skipped"
            )
            if i.skipped:
                line += f" ({_reasons(i.skipped)})"
            if i.note:
                line = f"{i.name}: {i.note}"
            print(line)
    print(
        f"entries: {report.entries_total} in store ({report.entries_new} new, "
        f"{report.entries_updated} updated, {report.entries_removed} removed)"
    )
    print(f"published: {feeds} feeds in {config.output_dir}, {written} files written")


def print_feeds(listing: list[dict[str, Any]]) -> None:
    if not sys.stdout.isatty():
        for f in listing:
            url = f["urls"].get("atom") or next(iter(f["urls"].values()))
            print(f"{f['kind']}\t{f['name']}\t{f['entries']}\t{f['updated']}\t{url}")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    urls = [f["urls"].get("atom") or next(iter(f["urls"].values())) for f in listing]
    table = Table()
    for col in ("kind", "name", "entries", "updated (UTC)"):
        table.add_column(col, justify="right" if col == "entries" else "left")
    # the column a person copies from: never cut short (folded onto more lines if need be)
    table.add_column("url", overflow="fold")
    for f, url in zip(listing, urls, strict=True):
        table.add_row(f["kind"], f["name"], str(f["entries"]), _short_time(f["updated"]), url)
    console.print(table)


def _short_time(value: str | None) -> str:
    """An ISO time from a listing, for a table: `2026-11-22 10:04` (UTC)."""
    if not value:
        return ""
    return f"{datetime.fromisoformat(value.replace('Z', '+00:00')).astimezone(UTC):%Y-%m-%d %H:%M}"


def input_listing(
    config: Config, rows: dict[str, dict[str, Any]], unlisted: Sequence[Unlisted] = ()
) -> list[dict[str, Any]]:
    """Configured inputs with their stored state, then the stored inputs the configuration
    no longer names (for `aggregator inputs`)."""
    now = datetime.now(UTC)
    out: list[dict[str, Any]] = []
    for inp in config.inputs:
        row = rows.get(inp.display_name, {})
        if inp.kind == "files":
            location = str(config.resolve(inp.path))
        elif inp.kind == "feed":
            location = inp.url
        else:
            location = "original pages of entries"
        state = "disabled" if not inp.enabled else row.get("status") or "never run"
        if row.get("retired_at"):
            state = "retired (410 Gone)"
        holder = _holder(row, now)
        out.append(
            {
                "name": inp.display_name,
                "kind": inp.kind,
                "location": row.get("url") or location,
                "status": state,
                "last_attempt": _iso(row.get("last_attempt_at")),
                "last_success": _iso(row.get("last_success_at")),
                "error_count": row.get("error_count") or 0,
                "last_error": row.get("last_error"),
                "next_due": _iso(row.get("next_due_at")),
                "held_by": holder,
            }
        )
    for u in unlisted:
        row = rows.get(u.name, {})
        out.append(
            {
                "name": u.name,
                "kind": u.kind,
                "location": u.location,
                "status": f"not in the config: `aggregator prune` removes it and its "
                f"{u.copies_text}",
                "last_attempt": _iso(row.get("last_attempt_at")),
                "last_success": _iso(row.get("last_success_at")),
                "error_count": row.get("error_count") or 0,
                "last_error": row.get("last_error"),
                "next_due": None,
                "held_by": u.held_by,
            }
        )
    return out


def _holder(row: dict[str, Any], now: datetime) -> str | None:
    """Who runs the input now: the owner of a live lease on it (none when that process is
    known to be gone: its lease is free for the taking)."""
    from aggregator.leases import live_holder

    return live_holder(row.get("lease_owner"), row.get("lease_until"), now)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def print_inputs(listing: list[dict[str, Any]]) -> None:
    columns = (
        "name", "kind", "status", "last_attempt", "last_success", "error_count", "next_due",
        "location",
    )  # fmt: skip
    listing = [
        {**i, "status": f"{i['status']}, being refreshed by {i['held_by']}"} if i["held_by"] else i
        for i in listing
    ]
    if not sys.stdout.isatty():
        for i in listing:
            print("\t".join(str(i[c] if i[c] is not None else "") for c in columns))
            if i["last_error"]:
                print(f"\tlast error: {i['last_error']}")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    table = Table()
    times = ("last_attempt", "last_success", "next_due")
    for col in (*columns, "last_error"):
        header = col.replace("_", " ") + (" (UTC)" if col in times else "")
        table.add_column(header, overflow="fold" if col == "location" else "ellipsis")
    for i in listing:
        table.add_row(
            *(
                _short_time(i[c]) if c in times else str(i[c] if i[c] is not None else "")
                for c in (*columns, "last_error")
            )
        )
    console.print(table)
