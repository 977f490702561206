"""Helpers shared by the benchmark scripts archive.py, feeds.py and serve.py.

It holds the default paths and the progress log; running a command alone while timing it and
sampling the memory of its process tree from /proc (peak RSS of the tree and of its largest
process, PSS), with the CPU time of a server beside it; CPU ticks of a process; snapshots of an
output folder and the size of the SQLite database files; the machine description at the top of a
report; the command line that produced it; the medians, min–max and Markdown tables of the
reports; and the --work, --shared and --aggregator options.

Standard library only. The scripts import it as ``common``: a script's own folder is at the head
of ``sys.path`` when it runs as ``python bench/NAME.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_WORK = HERE / "work"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
MB = 1e6


def log(msg: str) -> None:
    """Progress line on stderr (stdout carries only the report)."""
    print(msg, file=sys.stderr, flush=True)


# --- /proc --------------------------------------------------------------------------------------


def _stat_fields(pid: int | str) -> list[bytes] | None:
    """The fields of /proc/PID/stat after ``pid (comm)``: state, ppid, ... (None when gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:  # the process is gone
        return None
    # pid (comm) state ppid ... ; comm may hold spaces and parentheses.
    return stat[stat.rfind(b")") + 2 :].split()


def cpu_ticks(pid: int) -> int:
    """User + system CPU clock ticks of a live process so far (0 when it is gone)."""
    fields = _stat_fields(pid)
    return 0 if fields is None else int(fields[11]) + int(fields[12])


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a live process so far (0 when unknown)."""
    return 0.0 if pid is None else cpu_ticks(pid) / TICKS


def pss(pid: int) -> int:
    """Proportional set size of a process in bytes (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class TreeSampler(threading.Thread):
    """Samples /proc every `interval` seconds: RSS of `root` and all its descendants.

    With `pss_every` k > 0, every k-th sample also sums their PSS (proportional set size: shared
    pages divided among the processes sharing them) from /proc/PID/smaps_rollup, which costs
    about 3 ms per 100 MB of process, hence the lower rate.
    """

    def __init__(self, root: int, interval: float, pss_every: int = 0) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.pss_every = pss_every
        self.peak_pss = 0
        self.peak_tree = 0
        self.peak_single = 0
        self.samples = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def run(self) -> None:
        while True:
            self.sample()
            if self._stop_event.wait(self.interval):
                return

    def sample(self) -> None:
        children: dict[int, list[int]] = {}
        rss: dict[int, int] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            fields = _stat_fields(name)
            if fields is None:
                continue
            pid = int(name)
            children.setdefault(int(fields[1]), []).append(pid)
            rss[pid] = int(fields[21]) * PAGE
        if self.root not in rss:
            return
        total, todo, tree = 0, [self.root], []
        while todo:
            pid = todo.pop()
            tree.append(pid)
            total += rss.get(pid, 0)
            self.peak_single = max(self.peak_single, rss.get(pid, 0))
            todo.extend(children.get(pid, ()))
        self.peak_tree = max(self.peak_tree, total)
        if self.pss_every and self.samples % self.pss_every == 0:
            self.peak_pss = max(self.peak_pss, sum(pss(pid) for pid in tree))
        self.samples += 1


# --- running and measuring a command ------------------------------------------------------------


@dataclass
class Run:
    """One measured command (see `run_measured`)."""

    cmd: list[str]
    cwd: Path | None
    start: float
    """time.time() just before the process started (to place its log's timestamps)."""
    wall: float
    """Seconds from start to exit."""
    returncode: int
    max_rss: int
    """The kernel's high-water RSS, bytes, of the process and of every descendant it reaped."""
    cpu: float
    """User + system CPU seconds of the process and the descendants it reaped."""
    server_cpu: float
    """User + system CPU seconds `server_pid` used meanwhile (0 without one)."""
    load: float
    """1-minute load average just before the start (others' work makes wall times noisy)."""
    stdout: str
    stderr: str
    sampler: TreeSampler = field(repr=False)

    @property
    def peak_largest(self) -> int:
        """Peak RSS of the largest single process, bytes."""
        return max(self.max_rss, self.sampler.peak_single)

    @property
    def peak_tree(self) -> int:
        """Peak RSS summed over the process tree, bytes (sampled)."""
        # The tree is at least as big as its largest process was at its peak.
        return max(self.sampler.peak_tree, self.max_rss, self.sampler.peak_single)

    @property
    def peak_pss(self) -> int | None:
        """Peak PSS summed over the process tree, bytes (sampled less often), if asked for."""
        return self.sampler.peak_pss if self.sampler.pss_every else None

    def write_log(self, path: Path, *, tree_note: str = "", cpu_note: str = "") -> None:
        """Keep the command, its figures and its output in `path`.

        `tree_note` follows the sampled tree figure and `cpu_note` the CPU seconds in the
        header line (each script adds the figures of its own).
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"$ {shlex.join(self.cmd)}\n# cwd: {self.cwd or os.getcwd()}\n# exit "
            f"{self.returncode}, {self.wall:.3f} s, peak largest {self.max_rss} B / sampled tree "
            f"{self.sampler.peak_tree} B{tree_note}, cpu {self.cpu:.2f} s{cpu_note}, load average "
            f"before {self.load:.2f}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}",
            encoding="utf-8",
        )

    def fail_unless_ok(self, log_path: Path | None = None) -> None:
        """Stop the benchmark, with the end of the command's stderr, if it did not exit 0."""
        if self.returncode == 0:
            return
        tail = "\n".join(self.stderr.splitlines()[-40:]) or "(no stderr)"
        where = f" (full log: {log_path})" if log_path is not None else ""
        raise SystemExit(
            f"\nFAILED: {shlex.join(self.cmd)}\nexit status {self.returncode}{where}\n"
            f"--- last lines of stderr:\n{tail}"
        )


def run_measured(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    interval: float = 0.05,
    pss_every: int = 0,
    server_pid: int | None = None,
) -> Run:
    """Run `cmd` alone, capture its output, time it and track its memory (see `TreeSampler`).

    With `server_pid`, also the CPU time that process (a server the command talks to) uses
    while the command runs.
    """
    argv = [str(c) for c in cmd]
    load = os.getloadavg()[0]
    server_before = cpu_seconds(server_pid)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        sampler = TreeSampler(proc.pid, interval, pss_every)
        sampler.start()
        # wait4 rather than proc.wait(): its rusage holds the high-water RSS of the child and of
        # every descendant it reaped (the worker processes).
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    return Run(
        cmd=argv,
        cwd=cwd,
        start=start,
        wall=wall,
        returncode=proc.returncode,
        max_rss=usage.ru_maxrss * 1024,
        cpu=usage.ru_utime + usage.ru_stime,
        server_cpu=cpu_seconds(server_pid) - server_before,
        load=load,
        stdout=stdout,
        stderr=stderr,
        sampler=sampler,
    )


# --- output folder and database -----------------------------------------------------------------


Snapshot = dict[str, tuple[int, int, int]]


def snapshot(folder: Path) -> Snapshot:
    """(size, mtime_ns, inode) of every file under `folder`, by relative path."""
    snap: Snapshot = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            st = os.stat(path)
            snap[os.path.relpath(path, folder)] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return snap


def db_files_size(run_dir: Path) -> int:
    """Bytes of the SQLite database files (aggregator.db and its -wal, -shm) in `run_dir`."""
    return sum(p.stat().st_size for p in run_dir.glob("aggregator.db*") if p.is_file())


# --- machine and command line -------------------------------------------------------------------


def command_output(
    cmd: Sequence[str | Path],
    cwd: Path | None = None,
    *,
    with_stderr: bool = False,
    any_code: bool = False,
) -> str:
    """What `cmd` prints on stdout (and stderr after it, `with_stderr`), stripped.

    "" when it cannot be started, or exits with an error unless `any_code`.
    """
    try:
        res = subprocess.run(
            [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=30
        )
    except OSError:
        return ""
    text = res.stdout + res.stderr if with_stderr else res.stdout
    return text.strip() if res.returncode == 0 or any_code else ""


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("" when unknown)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), ""
            )
    except OSError:
        return ""


def ram() -> str:
    """The machine's memory, e.g. "4 GB RAM" ("" when unknown)."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kb = next((int(ln.split()[1]) for ln in f if ln.startswith("MemTotal")), 0)
    except OSError:
        return ""
    return f"{kb * 1024 / 1e9:.0f} GB RAM"


def machine_lines(
    aggregator: Path,
    *,
    with_ram: bool = True,
    machine_note: str = "",
    python_note: str = "",
    with_stderr: bool = False,
) -> list[str]:
    """The report's list of date, machine, Python, and aggregator's version and commit.

    `machine_note` and `python_note` end the machine and Python lines; `with_stderr` counts
    what git and `aggregator --version` print on stderr as their output (serve.py).
    """
    cpu = cpu_model()
    machine = [f"{len(os.sched_getaffinity(0))} cores (nproc)", cpu or "unknown CPU"]
    if with_ram:
        machine.append(ram())
    machine.append(f"Linux {platform.release()}")
    commit = command_output(["git", "rev-parse", "--short", "HEAD"], REPO, with_stderr=with_stderr)
    dirty = command_output(
        ["git", "status", "--porcelain", "--untracked-files=no"], REPO, with_stderr=with_stderr
    )
    version = command_output([aggregator, "--version"], with_stderr=with_stderr) or "?"
    return [
        f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "- Machine: " + ", ".join(machine) + machine_note,
        f"- Python {platform.python_version()}{python_note}",
        f"- {version}"
        + (f", commit {commit}{' + uncommitted changes' if dirty else ''}" if commit else ""),
    ]


def command_line(argv: Sequence[str] | None) -> str:
    """How the benchmark was started, for the report (this Python relative to here if inside)."""
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else "python"
    return shlex.join([python, sys.argv[0], *(sys.argv[1:] if argv is None else argv)])


def add_path_options(p: argparse.ArgumentParser, *, work_help: str, shared_holds: str) -> None:
    """--work, --shared (the folder holding `shared_holds`) and --aggregator."""
    p.add_argument("--work", type=Path, default=DEFAULT_WORK, help=work_help)
    p.add_argument(
        "--shared",
        type=Path,
        default=DEFAULT_SHARED,
        help=f"the shared folder holding {shared_holds} (default: {DEFAULT_SHARED})",
    )
    p.add_argument(
        "--aggregator",
        type=Path,
        default=Path(sys.executable).parent / "aggregator",
        help="aggregator executable (default: the one beside this Python)",
    )


def check_paths(p: argparse.ArgumentParser, args: argparse.Namespace, shared_holds: str) -> None:
    """Make the paths of `add_path_options` absolute; stop unless the files they need exist."""
    args.work = args.work.resolve()
    args.shared = args.shared.resolve()
    args.aggregator = args.aggregator.absolute()
    if not (args.shared / shared_holds).exists():
        p.error(f"{args.shared}/{shared_holds} not found (use --shared)")
    if not os.access(args.aggregator, os.X_OK):
        p.error(f"aggregator executable {args.aggregator} not found (use --aggregator)")


# --- report -------------------------------------------------------------------------------------


def med(values: Sequence[float]) -> float:
    return statistics.median(values)


def secs(values: Sequence[float | None]) -> str:
    """Median seconds of the known values, min–max beside them when there are several."""
    known = [v for v in values if v is not None]
    if not known:
        return "–"
    if len(known) == 1:
        return f"{known[0]:.2f} s"
    return f"{med(known):.2f} s ({min(known):.2f}–{max(known):.2f})"


def verdict(ok: bool, applies: bool = True) -> str:
    """A target's "met" cell."""
    if not applies:
        return "–"
    return "yes" if ok else "**no**"


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table, columns padded to their widest cell; the first row is the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, r in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
