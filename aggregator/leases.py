"""Leases: which process runs an input now (several daemons and `aggregator sync` share a store).

A process claims an input in the database before running it and gives it up afterwards; while
it runs, a background thread renews its claims. A process that dies stops renewing, and its
inputs are free again once the lease runs out (`serve.lease`).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from aggregator.errors import StoreError
from aggregator.store import Store

log = logging.getLogger("aggregator")


_OWNER = re.compile(r"^\S+ on (?P<host>.+) \(pid (?P<pid>\d+)\)$")


def owner_name(role: str) -> str:
    """Who holds a lease, as shown to people: `serve on host (pid 123)`."""
    return f"{role} on {socket.gethostname()} (pid {os.getpid()})"


def is_dead(owner: str) -> bool:
    """Whether `owner` is a process of this machine that no longer runs (killed, crashed):
    its leases need not wait to run out. Owners on other machines are never known dead."""
    match = _OWNER.match(owner)
    if not match or match["host"] != socket.gethostname():
        return False
    pid = int(match["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def live_holder(owner: str | None, until: datetime | None, now: datetime) -> str | None:
    """Who runs an input now, from its lease columns: the owner of a lease that has not run
    out, unless that owner is known to be gone (its lease is then free for the taking)."""
    if owner is None or until is None or until < now or is_dead(owner):
        return None
    return owner


class Leases:
    """The leases one process holds. Times are the wall clock, whatever `now` a run uses."""

    def __init__(self, store: Store, owner: str, ttl: timedelta):
        self.store = store
        self.owner = owner
        self.ttl = ttl
        self.held: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def claim(self, input_ids: Iterable[int]) -> set[int]:
        """Claim what is free of these inputs; returns the ids claimed."""
        now = datetime.now(UTC)
        ids = list(input_ids)
        if not ids:
            return set()
        got = self.store.claim(ids, self.owner, now, now + self.ttl)
        if len(got) < len(ids):
            # Holders that were killed on this machine free their inputs at once.
            stale: dict[str, list[int]] = {}
            for input_id, holder in self.holders(set(ids) - got).items():
                if is_dead(holder):
                    stale.setdefault(holder, []).append(input_id)
            for holder, taken in stale.items():
                got |= self.store.claim(taken, self.owner, now, now + self.ttl, stale_owner=holder)
        with self._lock:
            self.held |= got
        self._start()
        return got

    def holders(self, input_ids: Iterable[int]) -> dict[int, str]:
        return self.store.lease_holders(list(input_ids), datetime.now(UTC))

    def release(self, input_ids: Iterable[int]) -> None:
        ids = set(input_ids)
        with self._lock:
            ids &= self.held
            self.held -= ids
        if ids:
            self.store.release(sorted(ids), self.owner)

    def close(self) -> None:
        """Stop renewing and give up every lease still held."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            ids, self.held = self.held, set()
        if ids:
            try:
                self.store.release(sorted(ids), self.owner)
            except StoreError as exc:  # they run out on their own
                log.warning("leases not released: %s", exc)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._renew, name="leases", daemon=True)
            self._thread.start()

    def _renew(self) -> None:
        every = max(self.ttl.total_seconds() / 3, 0.05)
        while not self._stop.wait(every):
            with self._lock:
                ids = sorted(self.held)
            if not ids:
                continue
            try:
                self.store.renew(ids, self.owner, datetime.now(UTC) + self.ttl)
            except StoreError as exc:
                log.warning("leases not renewed: %s", exc)
