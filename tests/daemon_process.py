"""A real `aggregator serve` process for tests: started on a free port of 127.0.0.1 with JSON
logs, which a thread collects so tests can wait for events (a refresh, a publish)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

Event = dict[str, Any]


class Daemon:
    def __init__(self, proc: subprocess.Popen[str]):
        self.proc = proc
        self.events: list[Event] = []
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        listening = self.wait_for(lambda e: e.get("event") == "listening", timeout=30)
        self.port = int(listening["port"])

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                with suppress(ValueError):
                    self.events.append(json.loads(line))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(
        self, match: Callable[[Event], bool], timeout: float = 30, after: int = 0
    ) -> Event:
        """The first log event from index `after` on that matches."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self.events[after:]:
                    if match(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        "no such log event; the daemon said:\n" + "\n".join(self.lines[-40:])
                    )
                self._changed.wait(min(left, 0.5))

    def refreshes(self, name: str | None = None) -> list[Event]:
        return [
            e
            for e in list(self.events)
            if e.get("event") == "refresh" and (name is None or e.get("input") == name)
        ]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(
        self, path: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, Any, bytes]:
        """(status, headers (case-insensitive), body) of one request."""
        request = urllib.request.Request(self.url(path), headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code


@contextmanager
def running(
    config: Path, *args: str, env: dict[str, str] | None = None, verbose: bool = False
) -> Iterator[Daemon]:
    """`aggregator serve` with `args`; `verbose` adds `-v` (timings, publish starts)."""
    command = [sys.executable, "-m", "aggregator", "--config", str(config)]
    command += ["-v", "serve"] if verbose else ["serve"]
    proc = subprocess.Popen(
        [*command, "--port", "0", "--log-format", "json", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=config.parent,
        env={**os.environ, **(env or {})},
    )
    try:
        yield Daemon(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
