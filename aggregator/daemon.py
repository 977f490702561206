"""`aggregator serve`: one long-lived process that keeps every input fresh and serves the feeds.

One event loop runs the scheduler (aggregator.schedule) and the HTTP server (aggregator.server,
under uvicorn). The work itself is the same as `aggregator sync` and runs in threads beside the
loop, so serving never waits for it:

    scheduler ──(input due)──▶ refresh lane: claim lease, run inputs, decide, release
                                   │ something changed
                                   ▼
    check_every ───────────▶ publish lane: publish (only what changed), then ping the hub

Inputs that come due together are refreshed as one batch, so feeds share the fetcher's limits
(all hosts and per host). Every input is claimed through a lease in the store first: with
several daemons on one PostgreSQL, an input is refreshed by one at a time, and the due times in
the store keep the others from fetching it again. Each daemon publishes into its own output
folder; publishing is a pure function of the store, so all serve the same bytes and ETags, and
`check_every` picks up what the others changed.

SIGTERM or SIGINT: no new work is taken, the refresh and publish under way finish (their
transactions commit, files are replaced whole), leases are released, exit 0.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aggregator.config import Config
from aggregator.config import Input as InputConfig
from aggregator.errors import AggregatorError, StoreError
from aggregator.leases import Leases, owner_name
from aggregator.publish import PublishResult, publish
from aggregator.schedule import Schedule
from aggregator.store import Store
from aggregator.sync import (
    BodyLoader,
    InputReport,
    QuietReporter,
    SyncReport,
    claim_inputs,
    input_spec,
    run_inputs,
)

log = logging.getLogger("aggregator")
timing = logging.getLogger("aggregator.timing")  # when each publish starts (`-v`)

BATCH_WINDOW = 0.2
"""Seconds to wait for other inputs coming due, so they are refreshed together."""

RESTART_ONLY: tuple[tuple[str, Callable[[Config], Any]], ...] = (
    ("database", lambda c: c.database_url),
    ("output", lambda c: c.output_dir),
    ("site.base_url", lambda c: c.site.base_url),
    ("serve.max_age", lambda c: c.serve.max_age),
    ("serve.lease", lambda c: c.serve.lease),
    ("serve.jitter", lambda c: c.serve.jitter),
)
"""Settings the running server, leases or scheduler were built with: a reload that changes
one is refused (the store, output and URLs must not change under the daemon)."""

RESTART_AT_START: tuple[tuple[str, Callable[[Config], Any]], ...] = (
    ("serve.host", lambda c: c.serve.host),
    ("serve.port", lambda c: c.serve.port),
)
"""Settings only read when the daemon starts (and overridden by --host/--port): a reload says
so and applies the rest."""


class LogReporter(QuietReporter):
    """What a refresh tells the person watching: log lines (the daemon has no terminal)."""

    def skipped(self, path: str, reason: str) -> None:
        fields = {"event": "skipped", "path": path, "reason": reason}
        log.warning("skipped %s: %s", path, reason, extra={"fields": fields})

    def warning(self, path: str, message: str) -> None:
        fields = {"event": "warning", "path": path, "reason": message}
        log.warning("%s: %s", path, message, extra={"fields": fields})


@dataclass
class Refreshed:
    """One input's refresh, as the daemon logs and counts it."""

    report: InputReport
    seconds: float
    next_due: datetime | None = None
    retired: bool = False


@dataclass
class Stats:
    """Counters since the daemon started, for /metrics."""

    added: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    refreshes: dict[tuple[str, str], int] = field(default_factory=dict)
    durations: dict[str, list[float]] = field(default_factory=dict)
    """input -> [count, sum] of refresh seconds"""
    publishes: int = 0
    last_publish: float | None = None

    def count(self, done: Refreshed) -> None:
        name = done.report.name
        self.added[name] = self.added.get(name, 0) + done.report.new
        self.updated[name] = self.updated.get(name, 0) + done.report.updated
        key = (name, outcome(done.report))
        self.refreshes[key] = self.refreshes.get(key, 0) + 1
        total = self.durations.setdefault(name, [0, 0.0])
        total[0] += 1
        total[1] += done.seconds


def failing_inputs(listing: list[dict[str, Any]]) -> list[str]:
    """Names of the enabled inputs whose last run failed. The stored status says how ("error",
    "HTTP 404", "HTTP 200" for a page that is not a feed, "gone"…), so it is not the test:
    the error count is, which every success resets (the same number /metrics reports as
    consecutive failures)."""
    return [i["name"] for i in listing if i["error_count"] > 0 and i["status"] != "disabled"]


def outcome(report: InputReport) -> str:
    if report.error:
        return "error"
    return "ok" if report.ran else "skipped"


class Daemon:
    def __init__(self, config: Config, store: Store):
        self.config = config
        self.store = store
        self.inputs: dict[str, InputConfig] = {
            inp.display_name: inp for inp in config.inputs if inp.enabled
        }
        self.leases = Leases(store, owner_name("serve"), config.serve.lease)
        self.stats = Stats()
        self.reporter = LogReporter()
        self.refresh_lane = ThreadPoolExecutor(1, "refresh")
        self.publish_lane = ThreadPoolExecutor(1, "publish")
        self.wanted: dict[str, asyncio.Future[None]] = {}
        self.batching: asyncio.Task[None] | None = None
        self.publishing: asyncio.Task[None] | None = None
        self.publish_again = False
        self.stopping = False
        self.workers = os.cpu_count() or 1
        self.loop: asyncio.AbstractEventLoop | None = None
        self.schedule: Schedule | None = None
        self.app: Any = None
        """The ASGI app, whose request counters /metrics reports."""
        self.config_file: Path | None = None
        """Where the configuration was read from (SIGHUP reads it again)."""

    # ---- refreshing ---------------------------------------------------------------------

    async def refresh(self, name: str) -> None:
        """The scheduler's job for one input: join the next batch and wait for its end (so the
        scheduler sees the run as going on, and starts no second one). When the daemon stops,
        the scheduler cancels the wait: runs not started are dropped, and a refresh under way
        goes on in its lane (`drain` waits for it)."""
        if self.stopping:
            return
        assert self.loop is not None
        future = self.wanted.get(name)
        if future is None:
            future = self.wanted[name] = self.loop.create_future()
        if self.batching is None or self.batching.done():
            self.batching = asyncio.create_task(self._run_batches())
        await asyncio.shield(future)

    async def _run_batches(self) -> None:
        assert self.loop is not None
        while self.wanted and not self.stopping:
            await asyncio.sleep(BATCH_WINDOW)
            if self.stopping:
                break
            batch, self.wanted = self.wanted, {}
            try:
                results, changed = await self.loop.run_in_executor(
                    self.refresh_lane, self._refresh_batch, list(batch)
                )
            except Exception:  # a bug: say so loudly, keep serving and refreshing
                log.exception("refresh of %s failed", ", ".join(batch))
                results, changed = {}, False
            self._after_batch(results, changed)
            for future in batch.values():
                if not future.done():
                    future.set_result(None)
        for future in self.wanted.values():  # stopping: runs not started are dropped
            future.cancel()

    def _refresh_batch(self, names: list[str]) -> tuple[dict[str, Refreshed], bool]:
        """Runs in the refresh lane (a thread): the same stages as `aggregator sync`."""
        # A reload may replace both meanwhile: this batch runs with those it started with,
        # and inputs a reload removed before it started are dropped.
        config, inputs = self.config, self.inputs
        chosen = [inputs[n] for n in names if n in inputs]
        now = datetime.now(UTC)
        started = time.perf_counter()
        try:
            claimed = claim_inputs(self.store, config, chosen, self.leases, now)
        except StoreError as exc:
            failed = {i.display_name: self._failed(config, i, str(exc), started) for i in chosen}
            return failed, False
        ids = claimed.ids
        out = {name: Refreshed(busy, 0.0) for name, busy in claimed.busy.items()}
        changed = False
        try:
            report = SyncReport()
            done = run_inputs(
                self.store, config, claimed.runnable, report, self.reporter, now,
                self.workers, due_only=True, ids=ids,
            )  # fmt: skip
            for name, result in done.items():
                out[name] = Refreshed(result, result.seconds or 0.0)
            changed = report.entries_new + report.entries_updated + report.entries_removed > 0
        except AggregatorError as exc:
            for inp in chosen:
                out.setdefault(inp.display_name, self._failed(config, inp, str(exc), started))
            changed = True
        finally:
            try:
                self.leases.release(ids.values())
            except StoreError as exc:
                log.warning("leases not released: %s", exc)
        try:
            states = self.store.fetch_states([ids[n] for n in out])
        except StoreError:
            states = {}
        for name, done_one in out.items():
            state = states.get(ids[name])
            if state is not None:
                done_one.next_due = state.next_due_at
                done_one.retired = state.retired_at is not None
        return out, changed

    def _failed(self, config: Config, inp: InputConfig, error: str, started: float) -> Refreshed:
        name, kind, location = input_spec(config, inp)
        report = InputReport(name, kind, location, error=error)
        return Refreshed(report, time.perf_counter() - started)

    def _after_batch(self, results: dict[str, Refreshed], changed: bool) -> None:
        now = datetime.now(UTC)
        for name, done in results.items():
            self.stats.count(done)
            log_refresh(done)
            if self.schedule is None:
                continue
            if done.retired:
                self.schedule.stop_input(name)
            else:
                self.schedule.next_run(name, done.next_due, now)
        if changed:
            self.publish_soon()

    # ---- publishing ---------------------------------------------------------------------

    def publish_soon(self) -> None:
        if self.schedule is not None and not self.stopping:
            self.schedule.run_soon(
                "publish-soon", self.publish_now, self.config.serve.publish_delay
            )

    async def publish_now(self) -> None:
        """Publish (only what changed since the last publish) and ping the hub; one at a time:
        a request while one runs makes one more run afterwards."""
        if self.publishing is not None and not self.publishing.done():
            self.publish_again = True
            return
        self.publishing = asyncio.create_task(self._publish_loop())
        await asyncio.shield(self.publishing)

    async def _publish_loop(self) -> None:
        assert self.loop is not None
        while not self.stopping:
            self.publish_again = False
            started = time.perf_counter()
            timing.info("publishing", extra={"fields": {"event": "publish-start"}})
            try:
                result = await self.loop.run_in_executor(self.publish_lane, self._publish)
            except AggregatorError as exc:
                log.error("publish failed: %s", exc)
                result = None
            except Exception:
                log.exception("publish failed")
                result = None
            if result is not None:
                self.stats.publishes += 1
                self.stats.last_publish = time.time()
                if result.written or result.removed:
                    log.info(
                        "published %s, %s written, %d removed in %.2fs",
                        plural(result.rendered, "feed"),
                        plural(len(result.written), "file"),
                        len(result.removed),
                        time.perf_counter() - started,
                        extra={"fields": {"event": "publish", "files": len(result.written)}},
                    )
                    await self._ping_hub(result)
            if not self.publish_again:
                return

    def _publish(self) -> PublishResult:
        # A large publish (the first, say) is shared with worker processes; they come from a
        # fork server, since this process runs threads (see `publish._worker_context`).
        return publish(
            self.store,
            self.config,
            workers=os.cpu_count() or 1,
            bodies=BodyLoader(self.config.feeds.summary_length),
        )

    async def _ping_hub(self, result: PublishResult) -> None:
        hub = self.config.websub.hub
        if hub is None:
            return
        base = self.config.site.base_url
        written = set(result.written)
        topics = [
            listed.ref.url(base, fmt)
            for listed in result.feeds
            for fmt in self.config.feeds.formats
            if listed.ref.path(fmt) in written
        ]
        if not topics:
            return
        from aggregator import fetch
        from aggregator.live import fetch_settings

        problems = await fetch.ping_hub(hub, topics, fetch_settings(self.config))
        for problem in problems:
            log.warning("websub: %s", problem)
        told = plural(len(topics) - len(problems), "changed feed")
        log.info("websub: told %s about %s", hub, told)

    # ---- health and metrics -------------------------------------------------------------

    async def health(self) -> tuple[int, dict[str, Any]]:
        from aggregator.report import input_listing

        try:
            rows = await asyncio.to_thread(self.store.input_rows)
        except StoreError as exc:
            return 503, {"status": "error", "error": f"store unreachable: {exc}"}
        listing = input_listing(self.config, {r["name"]: r for r in rows})
        failing = failing_inputs(listing)
        return 200, {
            "status": "degraded" if failing else "ok",
            "failing": failing,
            "inputs": listing,
        }

    async def metrics(self) -> tuple[bytes, str]:
        from aggregator.metrics import render

        try:
            rows = await asyncio.to_thread(self.store.input_rows)
            entries: int | None = await asyncio.to_thread(self.store.entry_count)
        except StoreError:
            rows, entries = [], None
        files = self.app.state.files if self.app is not None else None
        return render(self, rows, entries, files.counters.requests if files else {})

    # ---- running ------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Schedule every input from its stored due time, the periodic check, a first
        publish."""
        self.loop = loop
        self.schedule = Schedule(loop, self.config.serve.jitter)
        self._schedule_inputs(self._due_times(list(self.inputs.values())))
        self.schedule.add_periodic("check", self.publish_now, self.config.serve.check_every)
        self.schedule.run_soon("publish-soon", self.publish_now, timedelta(0))
        self.schedule.start()

    def _due_times(self, chosen: list[InputConfig]) -> dict[str, datetime | None]:
        """Register these inputs in the store; name -> first refresh time (None: retired)."""
        now = datetime.now(UTC)
        ids = self.store.ensure_inputs([input_spec(self.config, i) for i in chosen], now)
        states = self.store.fetch_states(list(ids.values()))
        due: dict[str, datetime | None] = {}
        for inp in chosen:
            state = states[ids[inp.display_name]]
            retired = state.retired_at is not None
            due[inp.display_name] = None if retired else max(state.next_due_at or now, now)
        return due

    def _schedule_inputs(self, due: dict[str, datetime | None]) -> None:
        assert self.schedule is not None
        for name, first in due.items():
            inp = self.inputs[name]
            job = functools.partial(self.refresh, name)
            self.schedule.add_input(name, job, inp.every, first or datetime.now(UTC))
            if first is None:
                self.schedule.stop_input(name)

    async def reload(self) -> None:
        """Read the configuration file again and apply it (SIGHUP): inputs added, removed or
        changed are scheduled accordingly, and every other setting applies from the next
        refresh or publish. A file that does not validate, or that changes a setting only a
        restart can apply, is reported in one line and the running configuration kept."""
        from aggregator import config as config_module

        if self.config_file is None or self.schedule is None or self.stopping:
            return
        try:
            config = await asyncio.to_thread(config_module.load, self.config_file)
        except AggregatorError as exc:
            log.error("reload refused, the running configuration is kept: %s", exc)
            return
        fixed = [key for key, get in RESTART_ONLY if get(config) != get(self.config)]
        if fixed:
            log.error(
                "reload refused, the running configuration is kept: %s changed; restart "
                "`aggregator serve` to apply %s",
                ", ".join(fixed),
                "it" if len(fixed) == 1 else "them",
            )
            return
        for key, get in RESTART_AT_START:
            if get(config) != get(self.config):
                log.warning("%s changed: it applies when `aggregator serve` starts again", key)
        old = self.inputs
        new = {inp.display_name: inp for inp in config.inputs if inp.enabled}
        added = [n for n in new if n not in old]
        removed = [n for n in old if n not in new]
        changed = [n for n in new if n in old and new[n] != old[n]]
        self.config, self.inputs = config, new
        try:
            due = await asyncio.to_thread(self._due_times, [new[n] for n in added + changed])
        except StoreError as exc:
            log.error("reload: inputs not scheduled: %s", exc)
            due = {}
        for name in removed + changed:
            self.schedule.remove_input(name)
        self._schedule_inputs(due)
        self.schedule.add_periodic("check", self.publish_now, config.serve.check_every)
        log.info(
            "reloaded %s: %s added, %d removed, %d changed",
            self.config_file,
            plural(len(added), "input"),
            len(removed),
            len(changed),
            extra={
                "fields": {
                    "event": "reload",
                    "added": added,
                    "removed": removed,
                    "changed": changed,
                }
            },
        )
        self.publish_soon()  # feed settings may have changed; cheap when nothing did

    def stop(self) -> None:
        """Take no new work (the refresh and publish under way finish)."""
        if self.stopping:
            return
        self.stopping = True
        log.info("stopping: finishing the work under way")
        if self.schedule is not None:
            self.schedule.shutdown()

    async def drain(self) -> None:
        """Wait for the refresh and publish under way, then give up the leases."""
        for task in (self.batching, self.publishing):
            if task is not None and not task.done():
                try:
                    await task
                except Exception:
                    log.exception("work under way at shutdown failed")
        self.refresh_lane.shutdown(wait=True)
        self.publish_lane.shutdown(wait=True)
        await asyncio.to_thread(self.leases.close)


def log_refresh(done: Refreshed) -> None:
    r = done.report
    fields: dict[str, Any] = {
        "event": "refresh",
        "input": r.name,
        "kind": r.kind,
        "outcome": outcome(r),
        "new": r.new,
        "updated": r.updated,
        "removed": r.removed,
        "unchanged": r.unchanged,
        "skipped": len(r.skipped),
        "seconds": round(done.seconds, 3),
    }
    if done.next_due is not None:
        fields["next_due"] = done.next_due.isoformat()
    if r.error:
        fields["error"] = r.error
        log.error(
            "refresh %s: error: %s (%.2fs)", r.name, r.error, done.seconds, extra={"fields": fields}
        )
        return
    if r.note:
        fields["note"] = r.note
        log.info("refresh %s: %s", r.name, r.note, extra={"fields": fields})
        return
    log.info(
        "refresh %s: ok, %d new, %d updated, %d removed, %d unchanged, %d skipped in %.2fs",
        r.name,
        r.new,
        r.updated,
        r.removed,
        r.unchanged,
        len(r.skipped),
        done.seconds,
        extra={"fields": fields},
    )


# ---- logging --------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors. Written here rather than taken from a
    library: it is these few lines, and the fields come from our own `extra={"fields": …}`."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def setup_logging(log_format: str, verbose: bool) -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # Per-stage timings of each refresh are for `-v`; the refresh line says what happened.
    logging.getLogger("aggregator").setLevel(logging.INFO)
    quiet = logging.INFO if verbose else logging.WARNING
    for noisy in ("httpx", "httpcore", "alembic", "uvicorn.error", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(quiet, logging.WARNING))
    if not verbose:
        logging.getLogger("aggregator.timing").setLevel(logging.WARNING)


# ---- the process ----------------------------------------------------------------------------


def plural(n: int, noun: str) -> str:
    """`1 input`, `2 inputs`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def base_url_mismatch(base_url: str, port: int) -> str | None:
    """What to tell someone whose site.base_url is this machine on another port than the one
    served (`serve --port 8002` with the default base URL): the links in the feeds and the
    index point to base_url. A public base URL is left alone: it may well be a proxy in front
    of this port."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        loopback = True
    else:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    try:
        linked = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # not a port number: config validation's business
        return None
    if not loopback or linked == port:
        return None
    return (
        f"links in the feeds point to {base_url} (site.base_url), port {linked}, but this "
        f"daemon listens on port {port}: set site.base_url to the address readers use"
    )


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a port in use is a clear one-line error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)


def cannot_listen(host: str, port: int, exc: OSError) -> str:
    """The one line for a port that could not be had: what to do when it is taken, else the
    system's reason (without the "(while attempting to bind on address …)" that
    `socket.create_server` adds to it)."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {where}: address already in use (is another aggregator serve "
            "running? use --port or serve.port)"
        )
    if exc.errno is not None and exc.errno > 0:
        reason = os.strerror(exc.errno)
    else:  # a host name that does not resolve (a getaddrinfo error code)
        reason = str(exc.strerror or exc).split(" (while attempting to bind", 1)[0]
    return f"cannot listen on {where}: {reason[:1].lower()}{reason[1:]}"


def serve(config: Config, host: str, port: int, config_file: Path | None = None) -> int:
    """Run the daemon until SIGTERM or SIGINT; returns the exit code. SIGHUP reads
    `config_file` again (see `Daemon.reload`)."""
    import uvicorn

    from aggregator.server import make_app

    try:
        sock = listen(host, port)
    except OSError as exc:
        raise ServeError(cannot_listen(host, port, exc)) from None
    store = Store.open(config.database_url)
    daemon = Daemon(config, store)
    daemon.config_file = config_file
    app = make_app(
        config.output_dir,
        config.site.base_url,
        int(config.serve.max_age.total_seconds()),
        daemon.health,
        daemon.metrics,
    )
    daemon.app = app

    class Server(uvicorn.Server):
        # uvicorn re-raises the signal it caught once it has stopped, which would end the
        # process with "killed by SIGTERM" before the work under way is finished; the daemon
        # handles the signals itself.
        @contextmanager
        def capture_signals(self) -> Any:
            yield

    server = Server(
        uvicorn.Config(
            app,
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            daemon.stop()
            server.should_exit = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        reloads: set[asyncio.Task[None]] = set()

        def on_hangup() -> None:
            task = loop.create_task(daemon.reload())
            reloads.add(task)  # held until done: the loop keeps only a weak reference
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hangup)
        bound = sock.getsockname()
        log.info(
            "listening on http://%s:%d/ (%s); feeds link to %s (site.base_url)",
            host if ":" not in host else f"[{host}]",
            bound[1],
            plural(len(daemon.inputs), "input"),
            config.site.base_url,
            extra={"fields": {"event": "listening", "port": bound[1]}},
        )
        mismatch = base_url_mismatch(config.site.base_url, bound[1])
        if mismatch:
            log.warning("%s", mismatch)
        daemon.start(loop)
        try:
            await server.serve(sockets=[sock])
        finally:
            daemon.stop()
            await daemon.drain()

    from aggregator.fetch import run_async

    try:
        run_async(main())
    finally:
        store.close()
    log.info("stopped")
    return 0


class ServeError(AggregatorError):
    pass
