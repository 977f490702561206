#!/usr/bin/env python3
"""Feed benchmark: `aggregator sync` on M loopback feeds, cold and warm, beside a plain loop.

Usage (from the repository root, with the virtual environment's Python)::

    .venv/bin/python bench/feeds.py                        # 500 feeds of 50 entries, 3 repeats
    .venv/bin/python bench/feeds.py --feeds 50 --repeat 1  # quick run
    .venv/bin/python bench/feeds.py --set concurrency=32 --set per_host=16   # fetch settings

It:

1. generates a corpus of ``--posts`` posts (25 000) with ``../shared/bench/make_corpus.py`` into
   ``WORK/feeds-corpus``, or reuses it when the generator's arguments still match;
2. starts ``../shared/bench/feed_server.py`` (loopback only) on a free port, serving ``--feeds``
   RSS feeds of ``--entries`` full-content items each (about 230 KB a feed at 50 entries), cached
   in ``WORK/feeds-cache-M-E``, and waits for it to print its port;
3. for each of ``--repeat`` rounds, in a fresh folder ``WORK/feeds-run-*``:

   * writes a config.yaml with one ``kind: feed`` input per URL (``fetch.allow_private_networks``
     on, every other setting at its default unless ``--set`` changes it);
   * cold: ``aggregator -v --config config.yaml sync --force`` on an empty database;
   * warm: the same command again; every feed answers 304. The database is compared table by
     table before and after (only the ``inputs`` table, the fetch state, may change) and so is
     the output folder (no file may be written);
   * the plain loop, in a separate process of this same Python: one ``httpx.Client``, for each
     URL in order ``get`` then ``feedparser.parse(content)`` (cold), then a second pass sending
     the ETag / Last-Modified of the first (warm, all 304). It also times feedparser-rs on the
     same documents, after the timed passes, to show what the parser alone costs;

4. prints a Markdown report with medians (min–max beside them), and stops the server.

Figures:

* wall: the whole command, process start to exit (imports, config of M inputs, opening the
  store, fetch, parse, store, decide, publish, exit);
* phases, from the timestamps of the ``-v`` log (millisecond resolution): *startup* (process
  start to the moment the feed jobs are created), *feeds* (fetching, parsing, storing copies and
  fetch state; it ends where deciding starts), *decide*, *publish*, *exit* (after publishing);
* feeds/s (warm) = M / the warm *feeds* phase, and M / the whole command;
* peak memory: the largest single process of the command (kernel high-water mark from
  ``os.wait4``, which covers the parse workers it reaped) and the RSS summed over its process tree
  (sampled every 50 ms; counts pages shared by forked workers more than once);
* server CPU: user+system seconds the feed server used during the command (it shares the same
  cores: on the 2-core machine it competes with the aggregator's parse workers).

Each command's output is kept in ``WORK/feeds-logs``. Standard library only (the plain loop uses
httpx and feedparser from the venv, as the aggregator does); the helpers the benchmarks share
(running and measuring a command, the machine description, the table formatting) are in
``bench/common.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    MB,
    Run,
    Snapshot,
    add_path_options,
    check_paths,
    command_line,
    command_output,
    db_files_size,
    log,
    machine_lines,
    markdown_table,
    med,
    run_measured,
    secs,
    snapshot,
    verdict,
)

# Targets (500 feeds of 50 entries, the 2-core machine).
TARGET_COLD_SPEEDUP = 3.0
TARGET_WARM_FEEDS_PER_S = 1000.0


# --- running and measuring a command ------------------------------------------------------------


def measure(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    logs: Path,
    label: str,
    server_pid: int | None = None,
    interval: float = 0.05,
    check: bool = True,
) -> Run:
    """Run `cmd` alone, time it, track its memory and the server's CPU; keep its output."""
    run = run_measured(cmd, cwd=cwd, interval=interval, server_pid=server_pid)
    log_path = logs / f"{label}.log"
    run.write_log(log_path, cpu_note=f", server cpu {run.server_cpu:.2f} s")
    if check:
        run.fail_unless_ok(log_path)
    return run


# --- the -v log ---------------------------------------------------------------------------------

_STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
_INPUT_LINE = re.compile(_STAMP + r" input (\S+): (.*) in ([\d.]+)s$")
_DECIDED = re.compile(_STAMP + r" decided entries in ([\d.]+)s$")
_PUBLISHED = re.compile(
    _STAMP + r" published in ([\d.]+)s: (\d+) of \d+ feeds rendered again, (\d+) files written$"
)
_RENDERED = re.compile(_STAMP + r" rendered (\d+) entries \((\d+) blocks\) in ([\d.]+)s")


def _when(stamp: str) -> float:
    """A logging asctime (local time) as a Unix timestamp."""
    return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


@dataclass
class Phases:
    startup: float | None = None
    feeds: float | None = None
    decide: float | None = None
    publish: float | None = None
    render: float | None = None
    """Of publish: rendering the entries (the first pass; the rest assembles the documents)."""
    exit: float | None = None
    feed_lines: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


def phases(run: Run) -> Phases:
    """Phase times of one `aggregator -v sync` from its log lines (None when not found).

    Every feed job is created at the same moment, just before fetching starts, and its log line
    gives the seconds since then: the feeds phase starts at min(line time - seconds). Deciding
    starts where the feeds phase (including the last store flush) ends.
    """
    ph = Phases()
    starts: list[float] = []
    decided = published = None
    for line in run.stderr.splitlines():
        if m := _INPUT_LINE.match(line):
            starts.append(_when(m.group(1)) - float(m.group(4)))
            status = m.group(3).split(",", 1)[0]
            ph.statuses[status] = ph.statuses.get(status, 0) + 1
            ph.feed_lines += 1
        elif m := _DECIDED.match(line):
            decided = (_when(m.group(1)), float(m.group(2)))
        elif m := _PUBLISHED.match(line):
            published = (_when(m.group(1)), float(m.group(2)))
        elif m := _RENDERED.match(line):
            ph.render = float(m.group(4))
    if starts:
        ph.startup = min(starts) - run.start
    if decided:
        ph.decide = decided[1]
        if starts:
            ph.feeds = decided[0] - decided[1] - min(starts)
    if published:
        ph.publish = published[1]
        ph.exit = run.start + run.wall - published[0]
    return ph


# --- the store and the output folder ------------------------------------------------------------


def db_path(run_dir: Path) -> Path:
    return run_dir / "aggregator.db"


def db_counts(run_dir: Path) -> dict[str, int]:
    """Rows per table, and inputs with stored validators."""
    con = sqlite3.connect(f"file:{db_path(run_dir)}?mode=ro", uri=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        counts["inputs with an ETag"] = con.execute(
            "SELECT count(*) FROM inputs WHERE etag IS NOT NULL"
        ).fetchone()[0]
        return counts
    finally:
        con.close()


@dataclass
class DbImage:
    digests: dict[str, tuple[int, str]]
    """Per table other than `inputs`: (rows, sha1 of every row in scan order)."""
    inputs: dict[int, dict[str, Any]]
    """The inputs table, by id."""


def db_image(run_dir: Path) -> DbImage:
    con = sqlite3.connect(f"file:{db_path(run_dir)}?mode=ro", uri=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        digests = {}
        for t in tables:
            if t == "inputs":
                continue
            h, n = hashlib.sha1(), 0
            for row in con.execute(f'SELECT * FROM "{t}"'):
                h.update(repr(row).encode())
                n += 1
            digests[t] = (n, h.hexdigest())
        cur = con.execute("SELECT * FROM inputs")
        names = [d[0] for d in cur.description]
        inputs = {row[0]: dict(zip(names, row, strict=True)) for row in cur}
        return DbImage(digests, inputs)
    finally:
        con.close()


def db_changes(before: DbImage, after: DbImage) -> tuple[list[str], dict[str, int]]:
    """Tables (other than inputs) whose rows changed, and per column of inputs, rows changed."""
    tables = sorted(
        t
        for t in set(before.digests) | set(after.digests)
        if before.digests.get(t) != after.digests.get(t)
    )
    columns: dict[str, int] = {}
    for key in set(before.inputs) | set(after.inputs):
        old, new = before.inputs.get(key, {}), after.inputs.get(key, {})
        for col in set(old) | set(new):
            if old.get(col) != new.get(col):
                columns[col] = columns.get(col, 0) + 1
    return tables, dict(sorted(columns.items()))


def files_written(before: Snapshot, after: Snapshot) -> int:
    changed = sum(1 for p, sig in after.items() if before.get(p) != sig)
    return changed + sum(1 for p in before if p not in after)


# --- corpus and server --------------------------------------------------------------------------


def ensure_corpus(args: argparse.Namespace) -> Path:
    corpus = args.work / "feeds-corpus"
    stamp = args.work / "feeds-corpus.args.json"
    make = args.shared / "bench" / "make_corpus.py"
    gen_args = ["--posts", str(args.posts), "--out", str(corpus)]
    wanted = {"generator": str(make), "args": gen_args}
    if (
        corpus.is_dir()
        and stamp.exists()
        and json.loads(stamp.read_text(encoding="utf-8")) == wanted
        and sum(1 for e in os.scandir(corpus) if e.is_file()) == args.posts
    ):
        log(f"reusing corpus {corpus}")
        return corpus
    log(f"generating corpus {corpus} ({args.posts} posts) ...")
    stamp.unlink(missing_ok=True)
    for cache in args.work.glob("feeds-cache-*"):  # generated from the old corpus
        shutil.rmtree(cache)
    args.work.mkdir(parents=True, exist_ok=True)
    run = measure([sys.executable, make, *gen_args, "--clean"], logs=args.logs, label="make-corpus")
    log(f"corpus generated in {run.wall:.1f} s")
    stamp.write_text(json.dumps(wanted), encoding="utf-8")
    return corpus


class Server:
    """feed_server.py as a child process; `port`, `urls` and `/stats` once it is up."""

    def __init__(self, args: argparse.Namespace, corpus: Path) -> None:
        self.cache = args.work / f"feeds-cache-{args.feeds}-{args.entries}"
        self.urls_file = args.work / "feeds-urls.txt"
        self.urls_file.unlink(missing_ok=True)
        cmd = [
            sys.executable,
            str(args.shared / "bench" / "feed_server.py"),
            "--corpus",
            str(corpus),
            "--feeds",
            str(args.feeds),
            "--entries",
            str(args.entries),
            "--cache",
            str(self.cache),
            "--urls-out",
            str(self.urls_file),
            "--max-seconds",
            str(args.server_seconds),
        ]
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.port = 0
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:  # "generated ..." (first time), then "serving ... on URL"
            line = raw.decode("utf-8", "replace").rstrip()
            self.lines.append(line)
            log(f"server: {line}")
            if m := re.search(r"on http://127\.0\.0\.1:(\d+)/", line):
                self.port = int(m.group(1))
                break
        if not self.port:
            self.proc.wait()
            raise SystemExit("feed_server.py stopped before serving:\n" + "\n".join(self.lines))
        self.pump = threading.Thread(target=self._drain, daemon=True)
        self.pump.start()
        self.urls = self.urls_file.read_text(encoding="utf-8").split()
        self.bytes = sum(p.stat().st_size for p in self.cache.glob("*.xml"))

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip())

    def stats(self, reset: bool = False) -> dict[str, int]:
        url = f"http://127.0.0.1:{self.port}/stats" + ("?reset=1" if reset else "")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=10) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.pump.join(5)
        if self.lines:
            log(f"server: {self.lines[-1]}")


# --- the plain loop (runs in a child process: `feeds.py --plain-loop URLS`) ----------------------


def plain_loop(urls_file: str) -> None:
    """Sequential httpx + feedparser, cold then warm; prints one JSON object."""
    t0 = time.perf_counter()
    import feedparser
    import httpx

    imports = time.perf_counter() - t0
    urls = Path(urls_file).read_text(encoding="utf-8").split()
    out: dict[str, Any] = {"imports": imports, "feeds": len(urls)}
    validators: list[tuple[str | None, str | None]] = []
    bodies: list[bytes] = []
    fetch_s = parse_s = 0.0
    entries = unique = statuses_200 = 0
    # trust_env off only so that no proxy from the environment is used: loopback only.
    with httpx.Client(trust_env=False) as client:
        t0 = time.perf_counter()
        for url in urls:
            a = time.perf_counter()
            r = client.get(url)
            b = time.perf_counter()
            d = feedparser.parse(r.content)
            parse_s += time.perf_counter() - b
            fetch_s += b - a
            statuses_200 += r.status_code == 200
            validators.append((r.headers.get("etag"), r.headers.get("last-modified")))
            bodies.append(r.content)
            entries += len(d.entries)
            unique += len({e.get("id") or e.get("link") for e in d.entries})
        out["cold"] = time.perf_counter() - t0
        out.update(cold_fetch=fetch_s, cold_parse=parse_s, cold_200=statuses_200)
        out.update(entries=entries, unique_entries=unique, bytes=sum(map(len, bodies)))

        statuses_304 = 0
        t0 = time.perf_counter()
        for url, (etag, modified) in zip(urls, validators, strict=True):
            headers = {}
            if etag:
                headers["If-None-Match"] = etag
            if modified:
                headers["If-Modified-Since"] = modified
            r = client.get(url, headers=headers)
            statuses_304 += r.status_code == 304
        out["warm"] = time.perf_counter() - t0
        out["warm_304"] = statuses_304
    try:  # what the parser alone costs with feedparser-rs (not part of the timed loops)
        import feedparser_rs

        t0 = time.perf_counter()
        for body in bodies:
            feedparser_rs.parse(body)
        out["rs_parse"] = time.perf_counter() - t0
    except ImportError:
        out["rs_parse"] = None
    print(json.dumps(out))


# --- one round ----------------------------------------------------------------------------------


def config_text(urls: Sequence[str], settings: dict[str, str]) -> str:
    lines = [
        "# Written by bench/feeds.py; paths are relative to this file's folder.",
        "database: sqlite:///aggregator.db",
        "output: public",
        "fetch:",
        "  allow_private_networks: true",
        *(f"  {k}: {v}" for k, v in settings.items()),
        "inputs:",
    ]
    for i, url in enumerate(urls):
        lines += ["  - kind: feed", f"    url: {url}", f"    name: feed-{i}"]
    return "\n".join(lines) + "\n"


@dataclass
class Round:
    cold: Run
    cold_phases: Phases
    cold_server: dict[str, int]
    cold_counts: dict[str, int]
    warm: Run
    warm_phases: Phases
    warm_server: dict[str, int]
    warm_tables: list[str]
    warm_inputs_columns: dict[str, int]
    warm_db_delta: int
    warm_files: int
    plain: Run
    plain_figures: dict[str, Any]
    plain_server: dict[str, int]


def one_round(args: argparse.Namespace, server: Server, rep: int) -> Round:
    tag = f"{rep + 1}/{args.repeat}"
    run_dir = Path(tempfile.mkdtemp(prefix=f"feeds-run-{rep + 1}-", dir=args.work))
    try:
        config = run_dir / "config.yaml"
        config.write_text(config_text(server.urls, args.settings), encoding="utf-8")
        sync = [args.aggregator, "-v", "--config", config, "sync", "--force"]

        server.stats(reset=True)
        cold = measure(
            sync, cwd=run_dir, logs=args.logs, label=f"cold-{rep + 1}", server_pid=server.proc.pid
        )
        cold_server = server.stats(reset=True)
        cold_phases = phases(cold)
        counts = db_counts(run_dir)
        log(
            f"{tag} cold sync {cold.wall:.2f} s (feeds {fmt(cold_phases.feeds)}, decide "
            f"{fmt(cold_phases.decide)}, publish {fmt(cold_phases.publish)}), peak "
            f"{cold.peak_largest / MB:.0f} MB largest / {cold.peak_tree / MB:.0f} MB tree; "
            f"server {cold_server}; versions {counts.get('versions')}, entries "
            f"{counts.get('entries')}"
        )

        before, image, size = (
            snapshot(run_dir / "public"),
            db_image(run_dir),
            db_files_size(run_dir),
        )
        server.stats(reset=True)
        warm = measure(
            sync, cwd=run_dir, logs=args.logs, label=f"warm-{rep + 1}", server_pid=server.proc.pid
        )
        warm_server = server.stats(reset=True)
        warm_phases = phases(warm)
        tables, columns = db_changes(image, db_image(run_dir))
        written = files_written(before, snapshot(run_dir / "public"))
        delta = db_files_size(run_dir) - size
        log(
            f"{tag} warm sync {warm.wall:.2f} s (feeds {fmt(warm_phases.feeds)}), server "
            f"{warm_server}; tables changed besides inputs: {tables or 'none'}; inputs columns "
            f"changed: {columns}; {written} files written"
        )
    finally:
        if args.keep:
            log(f"{tag} kept {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)

    plain = measure(
        [sys.executable, Path(__file__).resolve(), "--plain-loop", server.urls_file],
        logs=args.logs,
        label=f"plain-{rep + 1}",
        server_pid=server.proc.pid,
    )
    plain_server = server.stats(reset=True)
    figures = json.loads(plain.stdout.strip().splitlines()[-1])
    log(
        f"{tag} plain loop: cold {figures['cold']:.2f} s (parse {figures['cold_parse']:.2f} s), "
        f"warm {figures['warm']:.2f} s, process {plain.wall:.2f} s; server {plain_server}"
    )
    return Round(
        cold,
        cold_phases,
        cold_server,
        counts,
        warm,
        warm_phases,
        warm_server,
        tables,
        columns,
        delta,
        written,
        plain,
        figures,
        plain_server,
    )


# --- report -------------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f} s"


def rate(n: int, values: Sequence[float | None]) -> str:
    known = [n / v for v in values if v]
    if not known:
        return "–"
    if len(known) == 1:
        return f"{known[0]:,.0f}/s"
    return f"{med(known):,.0f}/s ({min(known):,.0f}–{max(known):,.0f})"


def report(args: argparse.Namespace, server: Server, rounds: list[Round]) -> str:
    n = args.feeds
    rows = [("measurement", "aggregator", "plain loop", "target", "met")]

    def row(label: str, agg: str, plain: str = "", target: str = "", met: str = "") -> None:
        rows.append((label, agg, plain, target, met))

    def col(getter: Any) -> list[Any]:
        return [getter(r) for r in rounds]

    cold_wall = col(lambda r: r.cold.wall)
    plain_cold = col(lambda r: r.plain_figures["cold"])
    imports = med(col(lambda r: r.plain_figures["imports"]))
    speedup = med(plain_cold) / med(cold_wall)
    row(
        "cold: whole command / loop",
        secs(cold_wall),
        secs(plain_cold) + f" (loop only; importing httpx + feedparser: {imports:.2f} s more)",
    )
    row(
        "cold: plain loop ÷ aggregator (whole command)",
        f"{speedup:.2f}×",
        "1×",
        f"≥ {TARGET_COLD_SPEEDUP:g}×",
        verdict(speedup >= TARGET_COLD_SPEEDUP),
    )
    cold_feeds = col(lambda r: r.cold_phases.feeds)
    known = [v for v in cold_feeds if v]
    row(
        "cold: plain loop ÷ aggregator's feeds phase",
        f"{med(plain_cold) / med(known):.2f}×" if known else "–",
        "1×",
    )

    def until_stored(ph: Phases) -> float | None:
        parts = (ph.startup, ph.feeds, ph.decide)
        return None if None in parts else sum(v for v in parts if v is not None)

    stored = col(lambda r: until_stored(r.cold_phases))
    known = [v for v in stored if v]
    row(
        "cold: plain loop ÷ aggregator until everything is stored (startup + feeds + decide)",
        f"{med(plain_cold) / med(known):.2f}× ({med(known):.2f} s)" if known else "–",
        "1×",
    )
    row(
        "cold phases: startup / feeds / decide / publish (of which rendering entries) / exit",
        " / ".join(
            fmt_med(col(lambda r, k=k: getattr(r.cold_phases, k)))
            + (f" ({fmt_med(col(lambda r: r.cold_phases.render))})" if k == "publish" else "")
            for k in ("startup", "feeds", "decide", "publish", "exit")
        ),
        f"fetch {med(col(lambda r: r.plain_figures['cold_fetch'])):.2f} s / feedparser "
        f"{med(col(lambda r: r.plain_figures['cold_parse'])):.2f} s",
    )
    rs = [v for v in col(lambda r: r.plain_figures.get("rs_parse")) if v is not None]
    if rs:
        row("the same documents parsed by feedparser-rs (not in the loop)", "", f"{med(rs):.2f} s")
    counts = rounds[0].cold_counts
    row(
        "cold: stored (first run)",
        f"{counts.get('versions', '?')} copies, {counts.get('entries', '?')} entries, "
        f"{counts.get('inputs with an ETag', '?')} ETags",
        f"{rounds[0].plain_figures['entries']} items parsed "
        f"({rounds[0].plain_figures['unique_entries']} distinct GUIDs per feed; aggregator "
        "keeps one copy per canonical URL)",
    )
    row(
        "cold: peak MB largest process / tree RSS",
        f"{med(col(lambda r: r.cold.peak_largest)) / MB:.0f} / "
        f"{med(col(lambda r: r.cold.peak_tree)) / MB:.0f}",
        f"{med(col(lambda r: r.plain.peak_largest)) / MB:.0f} (cold + warm process)",
    )
    row(
        "cold: CPU s (user+sys) / server CPU s",
        f"{med(col(lambda r: r.cold.cpu)):.1f} / {med(col(lambda r: r.cold.server_cpu)):.1f}",
        f"{med(col(lambda r: r.plain.cpu)):.1f} / {med(col(lambda r: r.plain.server_cpu)):.1f} "
        "(cold + warm process)",
    )
    warm_wall = col(lambda r: r.warm.wall)
    warm_feeds = col(lambda r: r.warm_phases.feeds)
    plain_warm = col(lambda r: r.plain_figures["warm"])
    row("warm (all 304): whole command / loop", secs(warm_wall), secs(plain_warm))
    row(
        "warm phases: startup / feeds / decide / publish / exit",
        " / ".join(
            fmt_med(col(lambda r, k=k: getattr(r.warm_phases, k)))
            for k in ("startup", "feeds", "decide", "publish", "exit")
        ),
    )
    known = [v for v in warm_feeds if v]
    rate_med = n / med(known) if known else 0.0
    row(
        "warm feeds/s: feeds phase (fetch + state)",
        rate(n, warm_feeds),
        rate(n, plain_warm),
        f"≥ {TARGET_WARM_FEEDS_PER_S:,.0f}/s",
        verdict(rate_med >= TARGET_WARM_FEEDS_PER_S),
    )
    row("warm feeds/s: whole command (process start to exit)", rate(n, warm_wall))
    row(
        "warm: peak MB largest process / tree RSS",
        f"{med(col(lambda r: r.warm.peak_largest)) / MB:.0f} / "
        f"{med(col(lambda r: r.warm.peak_tree)) / MB:.0f}",
    )
    row(
        "warm: CPU s (user+sys) / server CPU s",
        f"{med(col(lambda r: r.warm.cpu)):.1f} / {med(col(lambda r: r.warm.server_cpu)):.1f}",
    )
    tables = sorted({t for r in rounds for t in r.warm_tables})
    columns = sorted({c for r in rounds for c in r.warm_inputs_columns})
    row(
        "warm: database tables changed besides inputs",
        ", ".join(tables) or "none",
        target="none",
        met=verdict(not tables),
    )
    row("warm: inputs columns changed", ", ".join(columns) or "none")
    row(
        "warm: database file size change / files written",
        ", ".join(f"{r.warm_db_delta:+d} B" for r in rounds)
        + f" / {max(r.warm_files for r in rounds)}",
    )
    row(
        "server answers (cold / warm / plain loop)",
        "; ".join(f"{r.cold_server['200']}×200 / {r.warm_server['304']}×304" for r in rounds[:1])
        + (" (every run)" if all_same(rounds) else " (run 1; see logs)"),
        f"{rounds[0].plain_server['200']}×200 + {rounds[0].plain_server['304']}×304",
    )

    loads = [x.load for r in rounds for x in (r.cold, r.warm, r.plain)]
    head = [
        f"### {n} feeds × {args.entries} entries",
        "",
        f"Served by `feed_server.py` on 127.0.0.1: {n} feeds, {server.bytes / MB:.1f} MB "
        f"({server.bytes / n / 1e3:.0f} KB a feed), from `{args.work / 'feeds-corpus'}` "
        f"({args.posts} posts). Fetch settings: defaults"
        + (", " + ", ".join(f"{k}={v}" for k, v in args.settings.items()) if args.settings else "")
        + f". 1-minute load average before the measured commands: {min(loads):.2f}–"
        f"{max(loads):.2f}.",
        "",
    ]
    tail = ["", "aggregator's own summaries (run 1):", ""]
    for label, run in (("cold", rounds[0].cold), ("warm", rounds[0].warm)):
        keep = [ln for ln in run.stdout.splitlines() if ln.startswith(("entries:", "published:"))]
        tail.append(f"- {label}: " + "; ".join(f"`{s}`" for s in keep))
    notes = []
    for i, r in enumerate(rounds, 1):
        for label, run, ph in (("cold", r.cold, r.cold_phases), ("warm", r.warm, r.warm_phases)):
            other = [
                ln
                for ln in run.stderr.splitlines()
                if ln.strip() and not _INPUT_LINE.match(ln) and not _DECIDED.match(ln)
                if not _PUBLISHED.match(ln) and not _RENDERED.match(ln)
            ]
            if other:
                notes.append(
                    f"{label} sync (run {i}) printed {len(other)} other line(s) on stderr; "
                    f"first: `{other[0][:160]}`"
                )
            if ph.feed_lines != n:
                notes.append(f"{label} sync (run {i}) logged {ph.feed_lines} feed lines, not {n}")
            if len(ph.statuses) != 1:
                notes.append(f"{label} sync (run {i}) feed statuses: {ph.statuses}")
    if notes:
        tail += ["", "Notes:", ""] + [f"- {note}" for note in notes]
    return "\n".join([*head, markdown_table(rows), *tail])


def fmt_med(values: Sequence[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{med(known):.2f}" if known else "?"


def all_same(rounds: Sequence[Round]) -> bool:
    first = rounds[0]
    return all(
        r.cold_server["200"] == first.cold_server["200"]
        and r.warm_server["304"] == first.warm_server["304"]
        for r in rounds
    )


def machine(args: argparse.Namespace) -> list[str]:
    libs = command_output(
        [
            sys.executable,
            "-c",
            "import importlib.metadata as m; print(', '.join(p + ' ' + m.version(p) for p in "
            "('httpx', 'feedparser', 'feedparser-rs')))",
        ]
    )
    return machine_lines(args.aggregator, python_note=f" ({sys.executable}); {libs}")


# --- command line -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark `aggregator sync` on loopback feeds, cold and warm, beside a "
        "plain httpx + feedparser loop.",
        epilog="See the module docstring (top of bench/feeds.py) for what is measured.",
    )
    p.add_argument("--feeds", type=int, default=500, help="feeds served (default 500)")
    p.add_argument("--entries", type=int, default=50, help="entries per feed (default 50)")
    p.add_argument("--posts", type=int, default=25000, help="posts in the corpus (default 25000)")
    p.add_argument(
        "--repeat", type=int, default=3, help="rounds (cold, warm, plain loop); default 3"
    )
    p.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a `fetch:` setting for the config, e.g. per_host=16 (repeatable)",
    )
    p.add_argument("--keep", action="store_true", help="keep the run folders (database, output)")
    add_path_options(
        p,
        work_help="folder for the corpus, the feed cache, runs and logs (default: bench/work)",
        shared_holds="bench/feed_server.py",
    )
    p.add_argument(
        "--server-seconds",
        type=float,
        default=7200,
        help="the feed server stops by itself after this long (default 7200)",
    )
    p.add_argument("--plain-loop", metavar="URLS", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.plain_loop:
        return args
    if min(args.feeds, args.entries, args.posts, args.repeat) < 1:
        p.error("--feeds, --entries, --posts and --repeat take positive numbers")
    check_paths(p, args, "bench/feed_server.py")
    args.logs = args.work / "feeds-logs"
    settings = {}
    for item in args.settings:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[a-z_]+", key):
            p.error(f"--set {item}: expected KEY=VALUE")
        settings[key] = value
    args.settings = settings
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.plain_loop:
        plain_loop(args.plain_loop)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(args.logs, ignore_errors=True)
    for old in args.work.glob("feeds-run-*"):  # left by an interrupted run
        shutil.rmtree(old, ignore_errors=True)
    corpus = ensure_corpus(args)

    command = command_line(argv)
    server = Server(args, corpus)
    try:
        rounds = [one_round(args, server, rep) for rep in range(args.repeat)]
    finally:
        server.stop()
    print("## Feed benchmark\n")
    print(f"Produced by `{command}`\n")
    print("\n".join(machine(args)))
    print(
        "\nMedians of "
        + (f"{args.repeat} rounds" if args.repeat > 1 else "1 round")
        + " (min–max beside them); each round runs a cold sync on an empty database, a warm "
        "sync (every feed answers 304) and the plain loop, one after the other, against the same "
        "server. aggregator runs with `-v` (phases come from its log). 1 MB = 10^6 bytes.\n",
        flush=True,
    )
    print(report(args, server, rounds), flush=True)


if __name__ == "__main__":
    main()
