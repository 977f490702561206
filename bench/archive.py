#!/usr/bin/env python3
"""Archive benchmark: `aggregator sync` on a generated corpus of N posts, beside Hugo.

Usage (from the repository root, with the virtual environment's Python)::

    .venv/bin/python bench/archive.py                      # 10 000 and 100 000 posts, with Hugo
    .venv/bin/python bench/archive.py --posts 2000         # quick run
    .venv/bin/python bench/archive.py --posts 100000 --repeat 3 --corpus-dir 100000=/tmp/c100k
    .venv/bin/python bench/archive.py --posts 10000 --skip-hugo

For each corpus size N it:

1. generates the corpus with ``../shared/bench/make_corpus.py --posts N`` into
   ``WORK/corpus-N`` (manifest ``WORK/corpus-N.tsv``), or reuses it when the manifest, the file
   names and the generator's arguments still match (``--corpus-dir N=DIR`` uses an existing corpus
   instead; it is never regenerated, only edited and restored in step 5);
2. records the "floor" (``floor.py yaml``: read every file and YAML-parse its front matter), which
   also leaves the corpus in the page cache for everything after it;
3. cold sync: deletes ``WORK/run-N/aggregator.db*`` and ``WORK/run-N/public`` and runs
   ``aggregator --config WORK/run-N/config.yaml sync``;
4. nothing-changed sync: runs it again and counts the files under ``public/`` whose
   (size, mtime_ns, inode) changed, and the change in size of the database files;
5. 100 posts changed: appends ``<p>bench edit K</p>`` to every (N//100)-th file in sorted order,
   syncs, then writes the original bytes back (they are saved first in ``WORK/edit-backup-N``,
   so a run that dies half-way restores them at the start of the next run);
6. builds the same corpus with Hugo (``peer_sites.py hugo --full-content``, then
   ``hugo --quiet -d public`` in ``WORK/hugo-N``) unless ``--skip-hugo`` or Hugo is missing.

Steps 3-5 run ``--repeat`` times (medians reported; files/bytes written are the worst run), Hugo
``--hugo-repeat`` times. Every command runs alone, one after the other.

Memory is measured two ways for every command (three for the cold sync):

* largest process: the peak RSS of the biggest single process of the tree, from the kernel's
  high-water mark (``os.wait4`` on the child reports the maximum over it and every descendant it
  reaped), or the sampled figure below if that is higher;
* tree: the peak of the RSS summed over the process and all its descendants, sampled from
  ``/proc`` every ``--interval`` seconds (50 ms). Forked worker processes share pages with their
  parent, so this sum is an upper bound of what the tree really occupies.
* tree PSS (cold sync only): the proportional set size summed over the tree, which splits shared
  pages among their sharers, sampled every 10th sample (reading it costs more).

The Markdown report (command line, machine, date, one table per size) goes to stdout; progress
goes to stderr; each command's stdout/stderr is kept under ``WORK/run-N/logs`` and
``WORK/hugo-N/logs``. Sizes are in decimal units (1 MB = 10^6 bytes). Standard library only; the
helpers the benchmarks share (running and measuring a command, the machine description, the
table formatting) are in ``bench/common.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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

DEFAULT_POSTS = (10000, 100000)
EDITS = 100

# Targets, at 100 000 posts.
TARGET_SIZE = 100000
TARGET_COLD_VS_HUGO = 0.4
TARGET_PEAK_MB = 400
TARGET_NOOP_S = 1.5
TARGET_CHANGED_S = 3.0

CONFIG_TEMPLATE = """\
# Written by bench/archive.py; paths are relative to this file's folder.
database: sqlite:///aggregator.db
output: public
site: {{title: Bench, base_url: "http://127.0.0.1:8000/"}}
feeds: {{entries: 50, formats: [atom, rss, json]}}
inputs:
  - {{kind: files, path: {corpus}, name: corpus}}
"""


# --- running and measuring a command ------------------------------------------------------------


def measure(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    logs: Path | None = None,
    label: str = "",
    interval: float = 0.05,
    pss_every: int = 0,
) -> Run:
    """Run `cmd`, capture its output, time it and track its memory; fail loudly on error."""
    run = run_measured(cmd, cwd=cwd, interval=interval, pss_every=pss_every)
    log_path = logs / f"{label}.log" if logs is not None and label else None
    if log_path is not None:
        run.write_log(
            log_path,
            tree_note=f" / sampled tree PSS {run.sampler.peak_pss} B "
            f"({run.sampler.samples} samples)",
        )
    run.fail_unless_ok(log_path)
    return run


# --- corpus ---------------------------------------------------------------------------------


def count_files(folder: Path) -> list[str]:
    """Sorted names of the regular files directly in `folder`."""
    return sorted(e.name for e in os.scandir(folder) if e.is_file())


def manifest_names(manifest: Path) -> list[str]:
    with manifest.open(encoding="utf-8") as f:
        return sorted(line.split("\t", 1)[0] for line in f if line.strip())


def restore_pending_edits(work: Path, n: int) -> None:
    """Put back corpus files left edited by an interrupted run (see `edit_corpus`)."""
    backup = work / f"edit-backup-{n}"
    if not backup.exists():
        return
    done = backup / "complete.json"
    if done.exists():
        info = json.loads(done.read_text(encoding="utf-8"))
        corpus = Path(info["corpus"])
        for name in info["files"]:
            shutil.copyfile(backup / "files" / name, corpus / name)
        log(f"[{n}] restored {len(info['files'])} corpus files left edited by an earlier run")
    shutil.rmtree(backup)


def ensure_corpus(args: argparse.Namespace, n: int) -> tuple[Path, Path | None]:
    """The corpus folder for `n` posts (and its manifest), generated unless already there."""
    restore_pending_edits(args.work, n)
    if n in args.corpus_dirs:
        corpus = args.corpus_dirs[n].resolve()
        names = count_files(corpus)
        if len(names) != n:
            raise SystemExit(f"--corpus-dir {corpus} holds {len(names)} files, not {n}")
        manifest = corpus.with_name(corpus.name + ".tsv")
        if manifest.exists() and manifest_names(manifest) != names:
            raise SystemExit(f"{manifest} does not list the files of {corpus}")
        log(f"[{n}] using existing corpus {corpus}")
        return corpus, manifest if manifest.exists() else None

    corpus = args.work / f"corpus-{n}"
    manifest = args.work / f"corpus-{n}.tsv"
    stamp = args.work / f"corpus-{n}.args.json"
    make = args.shared / "bench" / "make_corpus.py"
    gen_args = ["--posts", str(n), "--out", str(corpus), "--manifest", str(manifest)]
    wanted = {"generator": str(make), "args": gen_args}
    if (
        corpus.is_dir()
        and manifest.exists()
        and stamp.exists()
        and json.loads(stamp.read_text(encoding="utf-8")) == wanted
        and manifest_names(manifest) == count_files(corpus)
        and len(count_files(corpus)) == n
    ):
        log(f"[{n}] reusing corpus {corpus}")
        return corpus, manifest
    log(f"[{n}] generating corpus {corpus} ...")
    stamp.unlink(missing_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    run = measure([sys.executable, make, *gen_args, "--clean"], logs=args.work, label=f"make-{n}")
    log(f"[{n}] corpus generated in {run.wall:.1f} s")
    stamp.write_text(json.dumps(wanted), encoding="utf-8")
    return corpus, manifest


def edit_corpus(work: Path, n: int, corpus: Path) -> tuple[list[str], Callable[[], None]]:
    """Append a paragraph to every (n // 100)-th file; return the names and an undo function.

    The original bytes are copied to WORK/edit-backup-N first, so an interrupted run is undone by
    `restore_pending_edits` at the start of the next one.
    """
    names = count_files(corpus)
    picked = names[:: max(1, len(names) // EDITS)][:EDITS]
    backup = work / f"edit-backup-{n}"
    shutil.rmtree(backup, ignore_errors=True)
    (backup / "files").mkdir(parents=True)
    originals = {}
    for name in picked:
        originals[name] = (corpus / name).read_bytes()
        (backup / "files" / name).write_bytes(originals[name])
    (backup / "complete.json").write_text(
        json.dumps({"corpus": str(corpus), "files": picked}), encoding="utf-8"
    )
    for k, name in enumerate(picked):
        with open(corpus / name, "ab") as f:
            f.write(f"\n<p>bench edit {k}</p>\n".encode())

    def undo() -> None:
        for name, data in originals.items():
            (corpus / name).write_bytes(data)
        shutil.rmtree(backup)

    return picked, undo


# --- output folder and database ---------------------------------------------------------------


@dataclass
class Written:
    files: int = 0
    """Files created or rewritten."""
    bytes: int = 0
    """Their total size now."""
    removed: int = 0
    examples: list[str] = field(default_factory=list)


def diff(before: Snapshot, after: Snapshot) -> Written:
    w = Written()
    for path, sig in after.items():
        if before.get(path) != sig:
            w.files += 1
            w.bytes += sig[0]
            if len(w.examples) < 5:
                w.examples.append(path)
    w.removed = sum(1 for path in before if path not in after)
    return w


def summary_lines(stdout: str) -> list[str]:
    """aggregator's own one-line summaries (`corpus: ...`, `entries: ...`, `published: ...`)."""
    keep = ("corpus:", "entries:", "published:")
    return [line.strip() for line in stdout.splitlines() if line.strip().startswith(keep)]


# --- one corpus size --------------------------------------------------------------------------


@dataclass
class AggregatorRound:
    cold: Run
    noop: Run
    noop_written: Written
    noop_db_delta: int
    changed: Run
    changed_written: Written
    changed_db_delta: int
    edited: int


@dataclass
class SizeResult:
    n: int
    corpus: Path
    corpus_bytes: int
    floor: str
    floor_wall: float
    rounds: list[AggregatorRound]
    hugo: list[Run]
    hugo_note: str
    notes: list[str]


def aggregator_round(
    args: argparse.Namespace, n: int, corpus: Path, rep: int, interval: float
) -> AggregatorRound:
    run_dir = args.work / f"run-{n}"
    logs = run_dir / "logs"
    config = run_dir / "config.yaml"
    public = run_dir / "public"
    sync = [args.aggregator, "--config", config, "sync"]
    tag = f"[{n}] {rep + 1}/{args.repeat}"

    for p in run_dir.glob("aggregator.db*"):
        p.unlink()
    shutil.rmtree(public, ignore_errors=True)
    cold = measure(
        sync, cwd=run_dir, logs=logs, label=f"cold-{rep + 1}", interval=interval, pss_every=10
    )
    log(
        f"{tag} cold sync {cold.wall:.2f} s, peak {cold.peak_largest / MB:.0f} MB largest / "
        f"{cold.peak_tree / MB:.0f} MB tree RSS / {(cold.peak_pss or 0) / MB:.0f} MB tree PSS"
    )

    before, db_before = snapshot(public), db_files_size(run_dir)
    noop = measure(sync, cwd=run_dir, logs=logs, label=f"noop-{rep + 1}", interval=interval)
    noop_written = diff(before, snapshot(public))
    noop_db = db_files_size(run_dir) - db_before
    log(
        f"{tag} nothing-changed sync {noop.wall:.2f} s, {noop_written.files} files / "
        f"{noop_written.bytes} B written, database {noop_db:+d} B"
    )

    edited, undo = edit_corpus(args.work, n, corpus)
    try:
        before, db_before = snapshot(public), db_files_size(run_dir)
        changed = measure(
            sync, cwd=run_dir, logs=logs, label=f"changed-{rep + 1}", interval=interval
        )
        changed_written = diff(before, snapshot(public))
        changed_db = db_files_size(run_dir) - db_before
    finally:
        undo()
    log(
        f"{tag} {len(edited)}-changed sync {changed.wall:.2f} s, {changed_written.files} files / "
        f"{changed_written.bytes} B written"
    )
    return AggregatorRound(
        cold, noop, noop_written, noop_db, changed, changed_written, changed_db, len(edited)
    )


def run_hugo(args: argparse.Namespace, n: int, corpus: Path, interval: float) -> list[Run]:
    site = args.work / f"hugo-{n}"
    logs = site / "logs"
    prep = [
        sys.executable,
        args.shared / "bench" / "peer_sites.py",
        "hugo",
        "--corpus",
        corpus,
        "--site",
        site,
        "--full-content",
    ]
    measure(prep, logs=logs, label="prepare")
    runs = []
    for rep in range(args.hugo_repeat):
        shutil.rmtree(site / "public", ignore_errors=True)
        run = measure(
            [args.hugo, "--quiet", "-d", site / "public"],
            cwd=site,
            logs=logs,
            label=f"build-{rep + 1}",
            interval=interval,
        )
        log(
            f"[{n}] hugo {rep + 1}/{args.hugo_repeat}: {run.wall:.2f} s, peak "
            f"{run.peak_largest / MB:.0f} MB largest / {run.peak_tree / MB:.0f} MB tree"
        )
        runs.append(run)
    return runs


def bench_size(args: argparse.Namespace, n: int) -> SizeResult:
    corpus, _manifest = ensure_corpus(args, n)
    corpus_bytes = sum(e.stat().st_size for e in os.scandir(corpus) if e.is_file())

    floor = measure(
        [sys.executable, args.shared / "bench" / "floor.py", "yaml", corpus],
        logs=args.work / f"run-{n}" / "logs",
        label="floor",
    )
    floor_line = floor.stdout.strip().splitlines()[-1] if floor.stdout.strip() else "(no output)"
    log(f"[{n}] floor: {floor_line}")

    run_dir = args.work / f"run-{n}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(
        CONFIG_TEMPLATE.format(corpus=json.dumps(str(corpus))), encoding="utf-8"
    )
    rounds = [aggregator_round(args, n, corpus, rep, args.interval) for rep in range(args.repeat)]

    hugo_runs: list[Run] = []
    hugo_note = ""
    if args.skip_hugo:
        hugo_note = "skipped (--skip-hugo)"
    elif args.hugo is None:
        hugo_note = "Hugo not found: `apt-get install hugo` (or pass --hugo PATH) for this column"
        log(f"[{n}] {hugo_note}")
    else:
        hugo_runs = run_hugo(args, n, corpus, args.interval)

    notes = []
    for i, r in enumerate(rounds, 1):
        for label, run in (("cold", r.cold), ("nothing-changed", r.noop), ("changed", r.changed)):
            lines = [line for line in run.stderr.splitlines() if line.strip()]
            if lines:
                notes.append(
                    f"aggregator printed {len(lines)} line(s) on stderr during the {label} sync "
                    f"(run {i}); first: `{lines[0][:120]}`"
                )
        if r.noop_written.files or r.noop_written.removed:
            notes.append(
                f"nothing-changed sync (run {i}) rewrote {r.noop_written.files} file(s) and "
                f"removed {r.noop_written.removed}, e.g. {', '.join(r.noop_written.examples)}"
            )
    for run in hugo_runs:
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        if lines:
            notes.append(f"hugo printed {len(lines)} line(s) on stderr; first: `{lines[0][:120]}`")
    return SizeResult(
        n, corpus, corpus_bytes, floor_line, floor.wall, rounds, hugo_runs, hugo_note, notes
    )


# --- report -----------------------------------------------------------------------------------


def mbytes(values: Sequence[int]) -> str:
    return f"{med(values) / MB:.0f}"


def human(n: float) -> str:
    """Decimal units; signed input keeps its sign."""
    for unit in ("B", "kB", "MB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def table(res: SizeResult, repeat: int) -> str:
    r = res.rounds
    h = res.hugo
    at_target = res.n == TARGET_SIZE
    worst = " (worst run)" if repeat > 1 else ""
    rows = [("measurement", "aggregator", "Hugo", f"target ({TARGET_SIZE // 1000}k)", "met")]

    def row(label: str, agg: str, hugo: str = "", target: str = "", met: str = "") -> None:
        rows.append((label, agg, hugo, target, met))

    cold = [x.cold.wall for x in r]
    ratio = med(cold) / med([x.wall for x in h]) if h else None
    row("cold sync / Hugo build", secs(cold), secs([x.wall for x in h]) if h else "–")
    row(
        "cold ÷ Hugo",
        f"{ratio:.2f}×" if ratio is not None else "–",
        "1×" if ratio is not None else "–",
        f"≤ {TARGET_COLD_VS_HUGO}×",
        verdict(ratio is not None and ratio <= TARGET_COLD_VS_HUGO, at_target and bool(h)),
    )
    cold_tree = [x.cold.peak_tree for x in r]
    row(
        "peak MB: largest process / tree RSS / tree PSS",
        f"{mbytes([x.cold.peak_largest for x in r])} / {mbytes(cold_tree)} / "
        f"{mbytes([x.cold.peak_pss or 0 for x in r])}",
        f"{mbytes([x.peak_largest for x in h])} / {mbytes([x.peak_tree for x in h])} / –"
        if h
        else "–",
        f"≤ {TARGET_PEAK_MB} (tree RSS)",
        verdict(med(cold_tree) / MB <= TARGET_PEAK_MB, at_target),
    )
    row(
        "CPU s (user+sys): cold / nothing / 100 changed",
        " / ".join(
            f"{med([getattr(x, k).cpu for x in r]):.1f}" for k in ("cold", "noop", "changed")
        ),
        f"{med([x.cpu for x in h]):.1f}" if h else "–",
    )
    noop = [x.noop.wall for x in r]
    row(
        "nothing-changed sync",
        secs(noop),
        target=f"≤ {TARGET_NOOP_S} s",
        met=verdict(med(noop) <= TARGET_NOOP_S, at_target),
    )
    nf = max(x.noop_written.files for x in r)
    nb = max(x.noop_written.bytes for x in r)
    nr = max(x.noop_written.removed for x in r)
    row(
        f"nothing-changed: files / bytes written{worst}",
        f"{nf} / {nb} B" + (f", {nr} removed" if nr else ""),
        target="0 / 0 B",
        met=verdict(nf == nb == nr == 0, at_target),
    )
    row("nothing-changed: database size change", ", ".join(f"{x.noop_db_delta:+d} B" for x in r))
    changed = [x.changed.wall for x in r]
    row(
        f"{r[0].edited} posts changed: sync",
        secs(changed),
        target=f"≤ {TARGET_CHANGED_S:g} s",
        met=verdict(med(changed) <= TARGET_CHANGED_S, at_target),
    )
    cf = max(x.changed_written.files for x in r)
    cb = max(x.changed_written.bytes for x in r)
    row(f"{r[0].edited} posts changed: files / bytes written{worst}", f"{cf} / {human(cb)}")
    row(
        f"{r[0].edited} posts changed: database size change",
        ", ".join(
            ("-" if x.changed_db_delta < 0 else "+") + human(abs(x.changed_db_delta)) for x in r
        ),
    )
    row("floor.py yaml (process wall)", f"{res.floor_wall:.2f} s")

    loads = [x.load for x in h] + [
        getattr(x, k).load for x in r for k in ("cold", "noop", "changed")
    ]
    head = [
        f"### {res.n:,} posts".replace(",", " "),
        "",
        f"Corpus `{res.corpus}`: {res.n} files, {human(res.corpus_bytes)}. "
        f"Floor (`floor.py yaml`): `{res.floor}`. 1-minute load average before the measured "
        f"commands: {min(loads):.2f}–{max(loads):.2f}.",
        "",
    ]
    tail = ["", "aggregator's own summaries:", ""]
    first = r[0]
    for label, run in (
        ("cold", first.cold),
        ("nothing changed", first.noop),
        (f"{first.edited} changed", first.changed),
    ):
        tail.append(f"- {label}: " + "; ".join(f"`{s}`" for s in summary_lines(run.stdout)))
    if res.hugo_note:
        tail.append(f"- Hugo: {res.hugo_note}")
    if res.notes:
        tail += ["", "Notes:", ""] + [f"- {note}" for note in res.notes]
    return "\n".join([*head, markdown_table(rows), *tail])


def machine(args: argparse.Namespace) -> list[str]:
    hugo = (
        command_output([args.hugo, "version"]).split(" BuildDate")[0]
        if args.hugo
        else "not installed"
    )
    return [
        *machine_lines(args.aggregator, python_note=f" ({sys.executable})"),
        f"- Hugo: {hugo}",
    ]


# --- command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark `aggregator sync` on a generated archive, beside Hugo.",
        epilog="See the module docstring (top of bench/archive.py) for what is measured.",
    )
    p.add_argument(
        "--posts",
        type=int,
        nargs="+",
        default=list(DEFAULT_POSTS),
        metavar="N",
        help="corpus sizes (default: 10000 100000)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="K",
        help="aggregator measurements per size; medians are reported (default 1)",
    )
    p.add_argument(
        "--hugo-repeat", type=int, default=1, metavar="K", help="Hugo builds per size (default 1)"
    )
    p.add_argument("--skip-hugo", action="store_true", help="do not build with Hugo")
    add_path_options(
        p,
        work_help="folder for corpora, runs and logs (default: bench/work)",
        shared_holds="bench/make_corpus.py",
    )
    p.add_argument(
        "--hugo", default=shutil.which("hugo"), help="hugo executable (default: from PATH)"
    )
    p.add_argument(
        "--corpus-dir",
        action="append",
        default=[],
        metavar="N=DIR",
        help="use an existing corpus of N posts instead of generating one (repeatable; plain DIR "
        "when a single size is given). Its files are edited and restored during the run.",
    )
    p.add_argument(
        "--interval",
        type=float,
        default=0.05,
        help="memory sampling period in seconds (default 0.05)",
    )
    args = p.parse_args(argv)

    if args.repeat < 1 or args.hugo_repeat < 1 or any(n < 1 for n in args.posts):
        p.error("--posts, --repeat and --hugo-repeat take positive numbers")
    check_paths(p, args, "bench/make_corpus.py")
    if args.hugo is not None and shutil.which(args.hugo) is None:
        args.hugo = None
    args.corpus_dirs = {}
    for item in args.corpus_dir:
        size, sep, folder = item.partition("=")
        if not sep:
            if len(args.posts) != 1:
                p.error("--corpus-dir takes N=DIR when several --posts sizes are given")
            size, folder = str(args.posts[0]), item
        if not size.isdigit() or int(size) not in args.posts:
            p.error(f"--corpus-dir {item}: {size} is not one of --posts")
        if not Path(folder).is_dir():
            p.error(f"--corpus-dir {item}: no such folder")
        found = len(count_files(Path(folder)))
        if found != int(size):
            p.error(f"--corpus-dir {item}: the folder holds {found} files, not {size}")
        args.corpus_dirs[int(size)] = Path(folder)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.skip_hugo and args.hugo is None:
        log("Hugo is not installed: `apt-get install hugo` to add the Hugo column (skipping it).")

    command = command_line(argv)
    print("## Archive benchmark\n")
    print(f"Produced by `{command}`\n")
    print("\n".join(machine(args)))
    print(
        "\nMedians of "
        + (f"{args.repeat} runs" if args.repeat > 1 else "1 run")
        + " (min–max beside them). Peak memory: largest single process (kernel high-water mark) "
        "/ RSS summed over the process tree (sampled every "
        f"{args.interval * 1000:.0f} ms; counts pages shared by forked workers more than once) "
        f"/ PSS summed over the tree (shared pages split; sampled every {args.interval * 10:g} s, "
        "aggregator's cold sync only). "
        "1 MB = 10^6 bytes. The corpus is in the page cache (the floor runs first). Targets apply "
        f"at {TARGET_SIZE} posts.\n",
        flush=True,
    )
    for n in args.posts:
        res = bench_size(args, n)
        print(table(res, args.repeat) + "\n", flush=True)


if __name__ == "__main__":
    main()
