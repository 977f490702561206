#!/usr/bin/env python3
"""Serving benchmark (issue 4): `aggregator serve` beside nginx, measured with wrk on loopback.

Usage (from the repository root, with the virtual environment's Python)::

    .venv/bin/python bench/serve.py                         # 10 s per case, 64 connections
    .venv/bin/python bench/serve.py --duration 10 --connections 64 --threads 2 --posts 200
    .venv/bin/python bench/serve.py --rounds 3              # every case 3 times, interleaved
    .venv/bin/python bench/serve.py --skip-nginx --duration 5 --cases 304   # aggregator only

It:

1. generates a corpus of ``--posts`` posts with ``../shared/bench/make_corpus.py`` into
   ``WORK/serve-corpus/posts`` (reused when the generator's arguments match), writes
   ``WORK/serve-corpus/config.yaml`` (SQLite, output ``public``, 50 entries a feed) and runs
   ``aggregator sync`` once;
2. starts ``aggregator serve --port P --log-format json`` on a free port of 127.0.0.1, waits for
   its ``listening`` log event and for ``PATH`` (``/all.atom``) to be served (the corpus's next
   refresh is an hour away, the sync having just done it);
3. starts nginx (``daemon off``, ``worker_processes auto`` unless ``--nginx-workers``) with a
   generated configuration in a temporary folder, serving the same ``public`` folder on another
   free port (default ``etag on``; ``sendfile``/``tcp_nopush`` as Debian's default site;
   ``keepalive_requests`` raised so that neither server closes wrk's connections);
4. checks with one request to each server that it answers 200 with the file's bytes without a
   validator and 304 with an empty body to its own ETag;
5. measures how busy the machine is for 2 s with both servers idle (someone else's work on
   the machine shows here and in the "rest" CPU column);
6. runs ``wrk -tT -cC -dDs --latency`` for each server and case, ``--rounds`` times
   interleaved: ``200`` (full responses, no ``Accept-Encoding``, so both send the file as it
   is) and ``304`` (``If-None-Match: <that server's ETag>``), each after a ``--warmup`` run of
   the same request, and samples the CPU time used by the server (summed over nginx's
   processes), by wrk, and by the rest of the machine;
7. prints a Markdown report: requests/s, p50/p99 latency, bytes read per request (a 304 reads
   only headers: a check that wrk really got 304s), CPU, the ratio aggregator/nginx of the
   median requests/s for each case and whether the target (304 ratio >= 0.5) is met. The
   aggregator's /metrics counters of 200s and 304s are printed beside wrk's request counts.

Every process started is stopped on exit, Ctrl-C and SIGTERM included. The report goes to
stdout, progress to stderr; the servers' logs are kept in ``WORK/serve-logs``. wrk runs on the
same machine as the servers and competes with them for its cores (the report says how many).
Standard library only; the helpers the benchmarks share (the machine description, the table
formatting, the command-line paths) are in ``bench/common.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    TICKS,
    add_path_options,
    check_paths,
    command_line,
    command_output,
    cpu_ticks,
    log,
    machine_lines,
    markdown_table,
)

TARGET_304_RATIO = 0.5
ENTRIES = 50

CONFIG_TEMPLATE = """\
# Written by bench/serve.py; paths are relative to this file's folder.
database: sqlite:///aggregator.db
output: public
site: {{title: Bench, base_url: "http://127.0.0.1:8000/"}}
feeds: {{entries: {entries}, formats: [atom, rss, json]}}
inputs:
  - {{kind: files, path: posts, name: corpus, every: 1h}}
"""

NGINX_TEMPLATE = """\
# Written by bench/serve.py.
daemon off;
master_process on;
worker_processes {workers};
{user}pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{
        application/atom+xml atom;
        application/rss+xml rss;
        application/feed+json json;
        text/html html;
    }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000000;
    server_tokens off;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        etag on;
        location / {{ }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- processes --------------------------------------------------------------------------------


class Server:
    """A server process whose stderr a thread collects (aggregator's JSON log events)."""

    def __init__(self, name: str, cmd: Sequence[str], cwd: Path, log_path: Path):
        self.name = name
        self.log_path = log_path
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [str(c) for c in cmd],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        with open(self.log_path, "w", encoding="utf-8") as out:
            for line in self.proc.stderr:
                out.write(line)
                out.flush()
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    with suppress(ValueError):
                        event = json.loads(line)
                        if isinstance(event, dict):
                            self.events.append(event)
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self.events:
                    if match(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    tail = "\n".join(self.lines[-20:])
                    raise SystemExit(f"{self.name}: expected log event missing; it said:\n{tail}")
                self._changed.wait(min(left, 0.2))

    def pids(self) -> list[int]:
        """The process and its children (nginx's workers)."""
        found = [self.proc.pid]
        with suppress(OSError):
            for task in os.listdir(f"/proc/{self.proc.pid}/task"):
                with open(f"/proc/{self.proc.pid}/task/{task}/children", encoding="ascii") as f:
                    found += [int(p) for p in f.read().split()]
        return found

    def cpu(self) -> float:
        """User + system CPU seconds of the process and its live children."""
        return sum(cpu_ticks(pid) for pid in self.pids()) / TICKS

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop within 15 s of SIGTERM: killing it")
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)


@contextmanager
def started(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


def request(
    url: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, Any, bytes]:
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def wait_served(url: str, server: Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with suppress(OSError):
            if request(url)[0] == 200:
                return
        if server.proc.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(server.lines[-20:])
            raise SystemExit(f"{server.name} does not serve {url}; it said:\n{tail}")
        time.sleep(0.1)


# --- preparing the site -----------------------------------------------------------------------


def prepare(args: argparse.Namespace) -> Path:
    """The site folder (config.yaml, posts/, public/), synced once."""
    site = args.work / "serve-corpus"
    posts = site / "posts"
    stamp = site / "posts.args.json"
    gen = [
        sys.executable,
        str(args.shared / "bench" / "make_corpus.py"),
        "--posts",
        str(args.posts),
        "--out",
        str(posts),
        "--clean",
    ]
    wanted = json.dumps(gen[2:])
    if not (stamp.exists() and stamp.read_text(encoding="utf-8") == wanted):
        log(f"generating {args.posts} posts into {posts}")
        shutil.rmtree(site, ignore_errors=True)
        site.mkdir(parents=True)
        subprocess.run(gen, check=True, stdout=subprocess.DEVNULL)
        stamp.write_text(wanted, encoding="utf-8")
    (site / "config.yaml").write_text(CONFIG_TEMPLATE.format(entries=ENTRIES), encoding="utf-8")
    log("aggregator sync")
    res = subprocess.run(
        [str(args.aggregator), "--config", str(site / "config.yaml"), "sync"],
        cwd=site,
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise SystemExit(f"aggregator sync failed ({res.returncode}):\n{res.stderr}{res.stdout}")
    return site


def start_aggregator(args: argparse.Namespace, stack: ExitStack, site: Path) -> tuple[Server, int]:
    port = free_port()
    cmd = [
        args.aggregator,
        "--config",
        site / "config.yaml",
        "serve",
        "--port",
        str(port),
        "--log-format",
        "json",
    ]
    server = stack.enter_context(
        started(Server("aggregator", cmd, site, args.work / "serve-logs" / "aggregator.log"))
    )
    event = server.wait_for(lambda e: e.get("event") == "listening", timeout=30)
    port = int(event["port"])
    wait_served(f"http://127.0.0.1:{port}{args.path}", server)
    # The sync just done set the corpus's next refresh an hour ahead (`every: 1h`): nothing
    # but the store check (every 30 s) runs beside the requests. Let the start-up settle.
    time.sleep(1)
    return server, port


def start_nginx(args: argparse.Namespace, stack: ExitStack, site: Path) -> tuple[Server, int]:
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-nginx-")))
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(
        NGINX_TEMPLATE.format(
            workers=args.nginx_workers,
            user="user root;\n" if os.geteuid() == 0 else "",
            tmp=tmp,
            port=port,
            root=(site / "public").resolve(),
        ),
        encoding="utf-8",
    )
    cmd = [args.nginx, "-p", tmp, "-c", conf, "-e", tmp / "error.log"]
    server = stack.enter_context(
        started(Server("nginx", cmd, tmp, args.work / "serve-logs" / "nginx.log"))
    )
    wait_served(f"http://127.0.0.1:{port}{args.path}", server)
    return server, port


def check(name: str, url: str, expected: bytes) -> str:
    """The server's ETag, after checking it answers 200 with the bytes and 304 to the tag."""
    status, headers, body = request(url)
    if status != 200 or body != expected:
        raise SystemExit(f"{name}: {url} answered {status} with {len(body)} bytes, not the file")
    etag = headers.get("ETag")
    if not etag:
        raise SystemExit(f"{name}: {url} sent no ETag")
    status, _, body = request(url, {"If-None-Match": etag})
    if (status, body) != (304, b""):
        raise SystemExit(f"{name}: If-None-Match {etag} answered {status}, {len(body)} bytes")
    log(f"{name}: 200 with {len(expected)} bytes, 304 to If-None-Match {etag}")
    return str(etag)


# --- measuring --------------------------------------------------------------------------------


@dataclass
class Measure:
    server: str
    case: str
    rps: float
    p50: float
    """Seconds."""
    p99: float
    requests: int
    bytes_read: int
    errors: str
    cpu: float
    """Server CPU seconds per wall second during the run."""
    wrk_cpu: float
    """wrk's CPU seconds per wall second."""
    other_cpu: float
    """The rest of the machine's busy CPU seconds per wall second (other processes, kernel
    work not charged to either): high figures mean the run was disturbed."""
    seconds: float
    round: int


UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
SIZES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _duration(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(text)
    return float(m[1]) * UNITS[m[2]]


def parse_wrk(out: str) -> tuple[float, float, float, int, int, str]:
    """(requests/s, p50 s, p99 s, requests, bytes read, errors) from wrk's --latency output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p50 = _duration(re.search(r"^\s+50%\s+(\S+)", out, re.M)[1])  # type: ignore[index]
    p99 = _duration(re.search(r"^\s+99%\s+(\S+)", out, re.M)[1])  # type: ignore[index]
    m = re.search(r"(\d+) requests in \S+, ([\d.]+)([KMGT]?B) read", out)
    assert m is not None, out
    errors = []
    sock = re.search(r"Socket errors: (.*)", out)
    if sock:
        errors.append(f"socket errors: {sock[1]}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        errors.append(f"{bad[1]} non-2xx/3xx")
    return rps, p50, p99, int(m[1]), int(float(m[2]) * SIZES[m[3]]), "; ".join(errors)


def run_wrk(
    args: argparse.Namespace,
    server: Server,
    url: str,
    case: str,
    headers: list[str],
    round_no: int,
) -> Measure:
    base = [args.wrk, f"-t{args.threads}", f"-c{args.connections}", "--latency"]
    for h in headers:
        base += ["-H", h]

    def wrk(seconds: str) -> str:
        res = subprocess.run([*base, f"-d{seconds}s", url], capture_output=True, text=True)
        if res.returncode != 0 or server.proc.poll() is not None:
            raise SystemExit(
                f"wrk exited with {res.returncode} ({res.stderr.strip() or res.stdout.strip()}); "
                f"{server.name} "
                + ("is running" if server.proc.poll() is None else "has stopped")
                + ":\n"
                + "\n".join(server.lines[-10:])
            )
        return res.stdout

    if args.warmup > 0:
        wrk(f"{args.warmup:g}")
    busy0, wrk0 = machine_busy(), children_cpu()
    cpu0, t0 = server.cpu(), time.monotonic()
    out = wrk(str(args.duration))
    cpu1, t1 = server.cpu(), time.monotonic()
    busy1, wrk1 = machine_busy(), children_cpu()
    if args.verbose:
        log(out)
    rps, p50, p99, n, nbytes, errors = parse_wrk(out)
    wall = t1 - t0
    server_cpu, wrk_cpu = (cpu1 - cpu0) / wall, (wrk1 - wrk0) / wall
    other = max(0.0, (busy1 - busy0) / wall - server_cpu - wrk_cpu)
    m = Measure(
        server.name,
        case,
        rps,
        p50,
        p99,
        n,
        nbytes,
        errors,
        server_cpu,
        wrk_cpu,
        other,
        wall,
        round_no,
    )
    log(
        f"[round {round_no}] {server.name} {case}: {rps:,.0f} requests/s, p50 {ms(p50)}, "
        f"p99 {ms(p99)}, {nbytes / max(n, 1):,.0f} B/request, CPU server {m.cpu * 100:.0f}% / "
        f"wrk {wrk_cpu * 100:.0f}% / rest {other * 100:.0f}%" + (f" ({errors})" if errors else "")
    )
    return m


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy since boot (all but idle and iowait)."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICKS


def children_cpu() -> float:
    """User + system CPU seconds of the children waited for (wrk)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def aggregator_counts(port: int) -> dict[str, float]:
    """aggregator_http_requests_total by status, from /metrics."""
    _, _, body = request(f"http://127.0.0.1:{port}/metrics")
    counts = {}
    for line in body.decode().splitlines():
        m = re.match(r'aggregator_http_requests_total\{status="(\d+)"\} ([\d.e+]+)', line)
        if m:
            counts[m[1]] = float(m[2])
    return counts


# --- report -----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def machine(args: argparse.Namespace) -> list[str]:
    def out(cmd: Sequence[str | Path], any_code: bool = False) -> str:
        return command_output(cmd, with_stderr=True, any_code=any_code)

    versions = []
    for mod in ("uvicorn", "starlette", "httptools", "uvloop"):
        v = out([sys.executable, "-c", f"import {mod}; print({mod}.__version__)"])
        versions.append(f"{mod} {v or 'missing'}")
    # wrk --version prints its version and usage, and exits with 1.
    wrk_lines = out([args.wrk, "--version"], any_code=True).splitlines()
    wrk_version = wrk_lines[0].split(" Copyright")[0] if wrk_lines else "wrk ?"
    return [
        *machine_lines(
            args.aggregator,
            with_ram=False,
            machine_note=f". wrk ({args.threads} threads) runs on the same cores as the server it "
            "measures and competes with it for CPU: the figures are lower than on separate "
            f"machines, and nginx (worker_processes {args.nginx_workers}) can use every core "
            "while aggregator serves from one process.",
            python_note=f"; {', '.join(versions)}",
            with_stderr=True,
        ),
        f"- {out([args.nginx, '-v'])}; {wrk_version}",
    ]


def report(
    args: argparse.Namespace, results: list[Measure], feed: Path, size: int, notes: list[str]
) -> str:
    rows = [
        (
            "round",
            "server",
            "case",
            "requests/s",
            "p50",
            "p99",
            "B/request read",
            "CPU server / wrk / rest",
            "errors",
        )
    ]
    for m in results:
        rows.append(
            (
                str(m.round),
                m.server,
                m.case,
                f"{m.rps:,.0f}",
                ms(m.p50),
                ms(m.p99),
                f"{m.bytes_read / max(m.requests, 1):,.0f}",
                f"{m.cpu * 100:.0f}% / {m.wrk_cpu * 100:.0f}% / {m.other_cpu * 100:.0f}%",
                m.errors or "none",
            )
        )
    out = [
        "## Serving benchmark",
        "",
        f"Produced by `{args.command}`",
        "",
        *machine(args),
        "",
        f"`{args.path}` ({size:,} bytes, {ENTRIES} entries) of `{feed}`; wrk "
        f"`-t{args.threads} -c{args.connections} -d{args.duration}s --latency` per case after a "
        f"{args.warmup:g} s warm-up, {args.rounds} round(s). `200` = full responses (no "
        "Accept-Encoding), `304` = `If-None-Match` with the server's own ETag. CPU: CPU seconds "
        "per second of the run of the server (all nginx processes), of wrk, and of the rest of "
        "the machine (other processes, kernel work charged to neither; 200% = both cores busy). "
        f"Before the runs, with the servers idle, the machine was {args.idle_busy * 100:.0f}% "
        "busy.",
        "",
        markdown_table(rows),
    ]
    lines = []
    verdict = ""
    for case in args.cases:
        agg = [m.rps for m in results if m.server == "aggregator" and m.case == case]
        ngx = [m.rps for m in results if m.server == "nginx" and m.case == case]
        if not (agg and ngx):
            continue
        ratio = statistics.median(agg) / statistics.median(ngx)
        per_round = [
            a.rps / n.rps
            for a in results
            for n in results
            if a.server == "aggregator"
            and n.server == "nginx"
            and a.case == n.case == case
            and a.round == n.round
        ]
        lines.append(
            f"- {case}: {ratio:.2f} (medians: {statistics.median(agg):,.0f} / "
            f"{statistics.median(ngx):,.0f} requests/s"
            + (f"; per round {', '.join(f'{r:.2f}' for r in per_round)}" if len(agg) > 1 else "")
            + ")"
        )
        if case == "304":
            met = ratio >= TARGET_304_RATIO
            verdict = (
                f"Target (304s at least {TARGET_304_RATIO:g} × nginx's requests/s): "
                f"**{'met' if met else 'missed'}** ({ratio:.3f})."
            )
    if lines:
        out += ["", "Ratio aggregator/nginx (requests/s):", "", *lines]
    if verdict:
        out += ["", verdict]
    if notes:
        out += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(out)


# --- command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark `aggregator serve` beside nginx with wrk (full responses and 304s).",
        epilog="See the module docstring (top of bench/serve.py) for what is measured.",
    )
    p.add_argument("--duration", type=int, default=10, help="seconds per case (default 10)")
    p.add_argument("--warmup", type=float, default=2, help="warm-up seconds per case (default 2)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument(
        "--posts", type=int, default=200, help="posts in the corpus (default 200; at least 60)"
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every server and case this many times, interleaved (default 1); ratios "
        "are of the medians",
    )
    p.add_argument("--path", default="/all.atom", help="path requested (default /all.atom)")
    p.add_argument(
        "--cases", default="200,304", help="comma-separated cases among 200, 304 (default both)"
    )
    p.add_argument("--skip-nginx", action="store_true", help="measure aggregator only")
    p.add_argument("--skip-aggregator", action="store_true", help="measure nginx only")
    p.add_argument("--nginx-workers", default="auto", help="nginx worker_processes (default auto)")
    add_path_options(
        p,
        work_help="folder for the corpus, site and logs (default: bench/work)",
        shared_holds="bench/make_corpus.py",
    )
    p.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    p.add_argument("-v", "--verbose", action="store_true", help="log wrk's whole output")
    args = p.parse_args(argv)

    if args.posts < ENTRIES + 10:
        p.error(f"--posts must be at least {ENTRIES + 10} (the feed must hold {ENTRIES} entries)")
    if min(args.duration, args.connections, args.threads, args.rounds) < 1:
        p.error("--duration, --connections, --threads and --rounds take positive numbers")
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not args.cases or any(c not in ("200", "304") for c in args.cases):
        p.error("--cases takes 200, 304 or both")
    check_paths(p, args, "bench/make_corpus.py")
    if shutil.which(args.wrk) is None:
        p.error("wrk not found: `apt-get install wrk`")
    if not args.skip_nginx and shutil.which(args.nginx) is None:
        p.error("nginx not found: `apt-get install nginx-light` (or --skip-nginx)")
    args.command = command_line(argv)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a shell without job control starts background commands with SIGINT ignored.
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    site = prepare(args)
    feed = site / "public" / args.path.lstrip("/")
    expected = feed.read_bytes()
    entries = expected.count(b"<entry>") + expected.count(b"<entry ")
    notes = []
    if entries != ENTRIES:
        notes.append(f"{args.path} holds {entries} entries, not {ENTRIES}")

    results: list[Measure] = []
    try:
        with ExitStack() as stack:
            servers = []
            if not args.skip_aggregator:
                servers.append(start_aggregator(args, stack, site))
            if not args.skip_nginx:
                servers.append(start_nginx(args, stack, site))
            tags = {
                s.name: check(s.name, f"http://127.0.0.1:{port}{args.path}", expected)
                for s, port in servers
            }
            busy0 = machine_busy()
            time.sleep(2)
            args.idle_busy = (machine_busy() - busy0) / 2
            log(f"machine busy before the runs: {args.idle_busy * 100:.0f}% (servers idle)")
            agg_port = next((port for s, port in servers if s.name == "aggregator"), None)
            before = aggregator_counts(agg_port) if agg_port else {}
            for round_no in range(1, args.rounds + 1):
                for server, port in servers:
                    url = f"http://127.0.0.1:{port}{args.path}"
                    for case in args.cases:
                        headers = [f"If-None-Match: {tags[server.name]}"] if case == "304" else []
                        results.append(run_wrk(args, server, url, case, headers, round_no))
            if agg_port:
                after = aggregator_counts(agg_port)
                counted = {k: int(after.get(k, 0) - before.get(k, 0)) for k in after}
                sent = {
                    case: sum(
                        m.requests for m in results if m.server == "aggregator" and m.case == case
                    )
                    for case in args.cases
                }
                notes.append(
                    "aggregator's /metrics counted "
                    + ", ".join(f"{n:,} × {k}" for k, n in sorted(counted.items()) if n)
                    + " over all its runs, warm-ups included; wrk's measured runs completed "
                    + ", ".join(f"{n:,} {case} requests" for case, n in sent.items())
                )
    except KeyboardInterrupt:
        log("interrupted: servers stopped")
        raise SystemExit(130) from None
    print(report(args, results, feed, len(expected), notes), flush=True)


if __name__ == "__main__":
    main()
